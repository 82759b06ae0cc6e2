//! `steward tasks`: enqueue, inspect, cancel and retry tasks through the API.

use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::{OutputFormat, TaskFilter, TasksCommand};
use crate::client::{Client, block_on, cell, print_table};

/// The most tasks sent per call when enqueueing a file.
const BATCH: usize = 10_000;

pub fn run(command: TasksCommand) -> anyhow::Result<ExitCode> {
    block_on(async move {
        match command {
            TasksCommand::Enqueue {
                queue,
                kind,
                payload,
                priority,
                delay_ms,
                max_attempts,
                idempotency_key,
                workspace,
                file,
                client,
            } => {
                let api = Client::new(&client)?;
                if let Some(file) = file {
                    return enqueue_file(&api, &file, client.output).await;
                }
                let payload = payload.as_deref().map(read_payload).transpose()?;
                let body = json!({
                    "queue": queue,
                    "kind": kind,
                    "payload": payload,
                    "priority": priority,
                    "delay_ms": delay_ms,
                    "max_attempts": max_attempts,
                    "idempotency_key": idempotency_key,
                    "workspace": workspace,
                });
                let answer = api.call(Method::POST, "/api/v1/tasks", Some(&body)).await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    let verb = if answer["created"] == json!(true) {
                        "enqueued"
                    } else {
                        "exists:"
                    };
                    println!(
                        "{verb} task {} ({})",
                        cell(&answer["task"]["id"]),
                        cell(&answer["task"]["status"])
                    );
                }
            }
            TasksCommand::Get { id, client } => {
                let answer = Client::new(&client)?
                    .call(Method::GET, &format!("/api/v1/tasks/{id}"), None)
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    print_task(&answer["task"]);
                    let rows: Vec<Vec<String>> = rows(&answer["runs"], |r| {
                        vec![
                            cell(&r["attempt"]),
                            cell(&r["status"]),
                            cell(&r["outcome"]),
                            format!(
                                "{} ms",
                                r["ended_at_ms"].as_i64().unwrap_or(0)
                                    - r["started_at_ms"].as_i64().unwrap_or(0)
                            ),
                            cell(&r["worker"]),
                            cell(&r["error"]),
                        ]
                    });
                    if !rows.is_empty() {
                        println!();
                        print_table(
                            &["ATTEMPT", "STATUS", "OUTCOME", "TOOK", "WORKER", "ERROR"],
                            &rows,
                        );
                    }
                }
            }
            TasksCommand::Ls {
                after,
                limit,
                filter,
                client,
            } => {
                let path = list_path(after, limit, &filter)?;
                let answer = Client::new(&client)?.call(Method::GET, &path, None).await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    let rows = rows(&answer["tasks"], |t| {
                        vec![
                            cell(&t["id"]),
                            cell(&t["queue"]),
                            cell(&t["kind"]),
                            cell(&t["status"]),
                            cell(&t["outcome"]),
                            format!("{}/{}", cell(&t["attempt"]), cell(&t["max_attempts"])),
                            cell(&t["origin"]["workspace"]),
                        ]
                    });
                    print_table(
                        &[
                            "ID",
                            "QUEUE",
                            "KIND",
                            "STATUS",
                            "OUTCOME",
                            "ATTEMPT",
                            "WORKSPACE",
                        ],
                        &rows,
                    );
                    if let Some(next) = answer["next_after"].as_i64() {
                        eprintln!("more: --after {next}");
                    }
                }
            }
            TasksCommand::Cancel { id, client } => {
                let answer = Client::new(&client)?
                    .call(Method::POST, &format!("/api/v1/tasks/{id}/cancel"), None)
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else if answer["task"]["status"] == json!("running") {
                    println!("task {id}: cancellation requested; its worker will stop it");
                } else {
                    println!("task {id}: {}", cell(&answer["task"]["status"]));
                }
            }
            TasksCommand::Retry { id, client } => {
                let answer = Client::new(&client)?
                    .call(Method::POST, &format!("/api/v1/tasks/{id}/retry"), None)
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    println!("task {id}: {}", cell(&answer["task"]["status"]));
                }
            }
            TasksCommand::Counts { client } => {
                let answer = Client::new(&client)?
                    .call(Method::GET, "/api/v1/queues", None)
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    let statuses = [
                        "queued",
                        "running",
                        "succeeded",
                        "failed",
                        "dead",
                        "cancelled",
                    ];
                    let rows = rows(&answer["queues"], |q| {
                        std::iter::once(cell(&q["name"]))
                            .chain(statuses.iter().map(|s| cell(&q["counts"][s])))
                            .collect()
                    });
                    print_table(
                        &[
                            "QUEUE",
                            "QUEUED",
                            "RUNNING",
                            "SUCCEEDED",
                            "FAILED",
                            "DEAD",
                            "CANCELLED",
                        ],
                        &rows,
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn rows(list: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    list.as_array()
        .map(|items| items.iter().map(row).collect())
        .unwrap_or_default()
}

fn print_task(task: &Value) {
    for field in [
        "id",
        "queue",
        "kind",
        "status",
        "outcome",
        "attempt",
        "max_attempts",
        "priority",
        "error",
    ] {
        if !task[field].is_null() {
            println!("{field:<13}{}", cell(&task[field]));
        }
    }
    println!("{:<13}{}", "payload", task["payload"]);
}

/// JSON text, or `@FILE` for a file's contents; checked here so that a typo is reported
/// before anything is sent.
fn read_payload(raw: &str) -> anyhow::Result<Value> {
    let text = match raw.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
        }
        None => raw.to_owned(),
    };
    serde_json::from_str(&text).context("--payload: not valid JSON")
}

fn list_path(after: i64, limit: u32, filter: &TaskFilter) -> anyhow::Result<String> {
    let mut url = reqwest::Url::parse("http://steward/api/v1/tasks").context("building the URL")?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("after", &after.to_string());
        query.append_pair("limit", &limit.to_string());
        for (name, value) in [
            ("queue", &filter.queue),
            ("status", &filter.status),
            ("kind", &filter.kind),
            ("outcome", &filter.outcome),
            ("workspace", &filter.workspace),
        ] {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
    }
    Ok(format!(
        "{}?{}",
        url.path(),
        url.query().unwrap_or_default()
    ))
}

/// Sends a JSON Lines file in calls of up to [`BATCH`] tasks. A bad line stops everything
/// before the first call, naming the line.
async fn enqueue_file(api: &Client, file: &Path, output: OutputFormat) -> anyhow::Result<ExitCode> {
    let reader = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?,
    );
    let mut tasks = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line =
            line.with_context(|| format!("{}: cannot read line {}", file.display(), number + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let task: Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a JSON object", file.display(), number + 1))?;
        if !task.is_object() {
            bail!("{}:{}: not a JSON object", file.display(), number + 1);
        }
        tasks.push(task);
    }
    let (mut sent, mut created) = (0usize, 0u64);
    for chunk in tasks.chunks(BATCH) {
        let answer = api
            .call(
                Method::POST,
                "/api/v1/tasks",
                Some(&json!({ "tasks": chunk })),
            )
            .await
            .with_context(|| format!("after {sent} tasks were enqueued"))?;
        sent += chunk.len();
        created += answer["created"].as_u64().unwrap_or(0);
        if output == OutputFormat::Json {
            println!("{answer}");
        }
    }
    if output == OutputFormat::Table {
        println!("enqueued {sent} tasks ({created} new)");
    }
    Ok(ExitCode::SUCCESS)
}
