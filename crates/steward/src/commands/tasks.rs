//! `steward tasks`: enqueue, inspect, cancel and retry tasks through the API.

use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;
use steward_wire::paths;
use steward_wire::tasks::{
    BatchEnqueued, EnqueueAnswer, NewTask, NewTaskBatch, QueueList, Task, TaskChanged, TaskDetail,
    TaskList, TaskListQuery,
};

use crate::cli::{OutputFormat, TaskFilter, TasksCommand};
use crate::client::{Client, block_on, or_dash, print_json, print_table};

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
                node,
                file,
                client,
            } => {
                let api = Client::new(&client)?;
                if let Some(file) = file {
                    return enqueue_file(&api, &file, client.output).await;
                }
                let (Some(queue), Some(kind)) = (queue, kind) else {
                    anyhow::bail!("give the queue and the kind, or --file");
                };
                let task = NewTask {
                    queue,
                    kind,
                    payload: payload.as_deref().map(read_payload).transpose()?,
                    priority,
                    delay_ms,
                    max_attempts,
                    idempotency_key,
                    workspace,
                    node,
                    ..NewTask::default()
                };
                let answer: EnqueueAnswer = api.post(&paths::TASKS.with(&[]), &task).await?;
                let EnqueueAnswer::One(answer) = answer else {
                    anyhow::bail!("the server answered a batch to one task");
                };
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    let verb = if answer.created {
                        "enqueued"
                    } else {
                        "exists:"
                    };
                    println!("{verb} task {} ({})", answer.task.id, answer.task.status);
                }
            }
            TasksCommand::Get { id, client } => {
                let answer: TaskDetail =
                    Client::new(&client)?.get(&paths::TASK.with(&[&id])).await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    print_task(&answer.task);
                    let rows: Vec<Vec<String>> = answer
                        .runs
                        .iter()
                        .map(|r| {
                            vec![
                                r.attempt.to_string(),
                                r.status.clone(),
                                or_dash(r.outcome.as_ref()),
                                format!("{} ms", r.duration_ms()),
                                r.worker.clone(),
                                or_dash(r.error.as_ref()),
                            ]
                        })
                        .collect();
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
                let path = paths::TASKS.with_query(&[], &list_query(after, limit, filter))?;
                let answer: TaskList = Client::new(&client)?.get(&path).await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    let rows: Vec<Vec<String>> = answer
                        .tasks
                        .iter()
                        .map(|t| {
                            vec![
                                t.id.to_string(),
                                t.queue.clone(),
                                t.kind.clone(),
                                t.status.clone(),
                                or_dash(t.outcome.as_ref()),
                                format!("{}/{}", t.attempt, t.max_attempts),
                                or_dash(t.origin.workspace.as_ref()),
                            ]
                        })
                        .collect();
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
                    if let Some(next) = answer.next_after {
                        eprintln!("more: --after {next}");
                    }
                }
            }
            TasksCommand::Cancel { id, client } => {
                let answer: TaskChanged = Client::new(&client)?
                    .post_empty(&paths::TASK_CANCEL.with(&[&id]))
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else if answer.task.status == "running" {
                    println!("task {id}: cancellation requested; its worker will stop it");
                } else {
                    println!("task {id}: {}", answer.task.status);
                }
            }
            TasksCommand::Retry { id, client } => {
                let answer: TaskChanged = Client::new(&client)?
                    .post_empty(&paths::TASK_RETRY.with(&[&id]))
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    println!("task {id}: {}", answer.task.status);
                }
            }
            TasksCommand::Counts { client } => {
                let answer: QueueList = Client::new(&client)?.get(&paths::QUEUES.with(&[])).await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    let statuses = [
                        "queued",
                        "running",
                        "succeeded",
                        "failed",
                        "dead",
                        "cancelled",
                    ];
                    let rows: Vec<Vec<String>> =
                        answer
                            .queues
                            .iter()
                            .map(|q| {
                                std::iter::once(q.name.clone())
                                    .chain(statuses.iter().map(|s| {
                                        q.counts.get(*s).copied().unwrap_or(0).to_string()
                                    }))
                                    .collect()
                            })
                            .collect();
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

fn print_task(task: &Task) {
    let fields = [
        ("id", Some(task.id.to_string())),
        ("queue", Some(task.queue.clone())),
        ("kind", Some(task.kind.clone())),
        ("status", Some(task.status.clone())),
        ("outcome", task.outcome.clone()),
        ("attempt", Some(task.attempt.to_string())),
        ("max_attempts", Some(task.max_attempts.to_string())),
        ("priority", Some(task.priority.to_string())),
        ("error", task.error.clone()),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            println!("{name:<13}{value}");
        }
    }
    println!("{:<13}{}", "payload", task.payload);
}

/// JSON text, or `@FILE` for a file's contents; checked here so that a typo is reported
/// before anything is sent.
fn read_payload(raw: &str) -> anyhow::Result<Value> {
    read_json(raw, "--payload")
}

/// A JSON argument: the text itself, or `@FILE` to read it from a file; `flag` names it in
/// the error.
pub(crate) fn read_json(raw: &str, flag: &str) -> anyhow::Result<Value> {
    let text = match raw.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
        }
        None => raw.to_owned(),
    };
    serde_json::from_str(&text).with_context(|| format!("{flag}: not valid JSON"))
}

fn list_query(after: i64, limit: u32, filter: TaskFilter) -> TaskListQuery {
    TaskListQuery {
        after,
        limit: Some(limit),
        queue: filter.queue,
        status: filter.status,
        kind: filter.kind,
        outcome: filter.outcome,
        workspace: filter.workspace,
    }
}

/// Sends a JSON Lines file in calls of up to [`BATCH`] tasks. A bad line stops everything
/// before the first call, naming the line and what is wrong with it.
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
        let task: NewTask = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a task", file.display(), number + 1))?;
        tasks.push(task);
    }
    let (mut sent, mut created) = (0usize, 0usize);
    for chunk in tasks.chunks(BATCH) {
        let batch = NewTaskBatch {
            tasks: chunk.to_vec(),
        };
        let answer: EnqueueAnswer = api
            .post(&paths::TASKS.with(&[]), &batch)
            .await
            .with_context(|| format!("after {sent} tasks were enqueued"))?;
        let EnqueueAnswer::Batch(answer) = answer else {
            anyhow::bail!("the server answered one task to a batch");
        };
        sent += chunk.len();
        created += answer.created;
        if output == OutputFormat::Json {
            print_json::<BatchEnqueued>(&answer)?;
        }
    }
    if output == OutputFormat::Table {
        println!("enqueued {sent} tasks ({created} new)");
    }
    Ok(ExitCode::SUCCESS)
}
