//! `steward pipelines`: list pipelines, start runs, show a run's timeline, cancel and retry
//! runs through the API.

use std::process::ExitCode;
use std::time::Duration;

use steward_wire::paths;
use steward_wire::pipelines::{
    Pipeline, PipelineList, PipelineRun, PipelineRunList, PipelineRunsQuery, RunDetail, StartRun,
};

use crate::cli::{OutputFormat, PipelinesCommand};
use crate::client::{Client, block_on, or_dash, print_json, print_table};
use crate::commands::tasks::read_json;

/// How often `run --wait` looks at the run.
const WAIT_POLL: Duration = Duration::from_millis(500);

pub fn run(command: PipelinesCommand) -> anyhow::Result<ExitCode> {
    block_on(async move {
        match command {
            PipelinesCommand::Ls { client } => {
                let answer: PipelineList = Client::new(&client)?
                    .get(&paths::PIPELINES.with(&[]))
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    print_pipelines(&answer.pipelines);
                }
            }
            PipelinesCommand::Show { target, client } => {
                let api = Client::new(&client)?;
                match target.parse::<i64>() {
                    Ok(id) => {
                        let answer: RunDetail = api.get(&paths::PIPELINE_RUN.with(&[&id])).await?;
                        if client.output == OutputFormat::Json {
                            print_json(&answer)?;
                        } else {
                            print_detail(&answer);
                        }
                    }
                    Err(_) => {
                        let answer: Pipeline = api.get(&paths::PIPELINE.with(&[&target])).await?;
                        if client.output == OutputFormat::Json {
                            print_json(&answer)?;
                        } else {
                            print_pipeline(&answer);
                        }
                    }
                }
            }
            PipelinesCommand::Runs {
                pipeline,
                status,
                before,
                limit,
                client,
            } => {
                let query = PipelineRunsQuery {
                    pipeline,
                    status,
                    before,
                    limit: Some(limit),
                };
                let path = paths::PIPELINE_RUNS.with_query(&[], &query)?;
                let answer: PipelineRunList = Client::new(&client)?.get(&path).await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    print_runs(&answer.runs);
                    if let Some(next) = answer.next_before {
                        eprintln!("more: --before {next}");
                    }
                }
            }
            PipelinesCommand::Run {
                pipeline,
                input,
                idempotency_key,
                wait,
                client,
            } => {
                let api = Client::new(&client)?;
                let body = StartRun {
                    input: input
                        .as_deref()
                        .map(|i| read_json(i, "--input"))
                        .transpose()?,
                    idempotency_key,
                };
                let answer: RunDetail = api
                    .post(&paths::PIPELINE_START.with(&[&pipeline]), &body)
                    .await?;
                let verb = if answer.created == Some(false) {
                    "exists:"
                } else {
                    "started"
                };
                if !wait {
                    if client.output == OutputFormat::Json {
                        print_json(&answer)?;
                    } else {
                        println!("{verb} run {} of {pipeline}", answer.run.id);
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                if client.output != OutputFormat::Json {
                    println!("{verb} run {} of {pipeline}", answer.run.id);
                }
                let last = follow(&api, answer, client.output != OutputFormat::Json).await?;
                if client.output == OutputFormat::Json {
                    print_json(&last)?;
                } else {
                    println!("run {} {}", last.run.id, last.run.status);
                }
                return Ok(if last.run.status == "succeeded" {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                });
            }
            PipelinesCommand::Cancel { id, client } => {
                let answer: RunDetail = Client::new(&client)?
                    .post_empty(&paths::PIPELINE_RUN_CANCEL.with(&[&id]))
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else if answer.run.status == "running" {
                    println!("run {id}: cancelled; its running steps are asked to stop");
                } else {
                    println!("run {id}: {}", answer.run.status);
                }
            }
            PipelinesCommand::Retry { id, client } => {
                let answer: RunDetail = Client::new(&client)?
                    .post_empty(&paths::PIPELINE_RUN_RETRY.with(&[&id]))
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    println!(
                        "run {id}: retried (attempt {}), {}",
                        answer.run.attempt, answer.run.status
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Polls the run until it ends, printing each step whose state changed.
async fn follow(api: &Client, mut detail: RunDetail, print: bool) -> anyhow::Result<RunDetail> {
    let mut seen: Vec<String> = Vec::new();
    loop {
        for (i, step) in detail.steps.iter().enumerate() {
            if seen.get(i) != Some(&step.state) {
                if print {
                    println!("  {:<20} {}", step.name, step.state);
                }
                if i < seen.len() {
                    seen[i] = step.state.clone();
                } else {
                    seen.push(step.state.clone());
                }
            }
        }
        if detail.run.status != "running" {
            return Ok(detail);
        }
        tokio::time::sleep(WAIT_POLL).await;
        detail = api
            .get(&paths::PIPELINE_RUN.with(&[&detail.run.id]))
            .await?;
    }
}

fn print_pipelines(pipelines: &[Pipeline]) {
    let rows: Vec<Vec<String>> = pipelines
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.steps.len().to_string(),
                p.on_failure.clone(),
                or_dash(p.last_run.as_ref().map(|r| r.id)),
                or_dash(p.last_run.as_ref().map(|r| r.status.clone())),
                or_dash(p.last_run.as_ref().map(|r| r.created_at.clone())),
                or_dash(p.workspace.as_ref()),
            ]
        })
        .collect();
    print_table(
        &[
            "PIPELINE",
            "STEPS",
            "ON FAILURE",
            "LAST RUN",
            "STATUS",
            "STARTED",
            "WORKSPACE",
        ],
        &rows,
    );
}

fn print_pipeline(p: &Pipeline) {
    println!("pipeline:   {}", p.name);
    if let Some(description) = &p.description {
        println!("about:      {description}");
    }
    println!("workspace:  {}", or_dash(p.workspace.as_ref()));
    println!("on failure: {}", p.on_failure);
    if let Some(run) = &p.last_run {
        println!(
            "last run:   {} ({}, {})",
            run.id, run.status, run.created_at
        );
    }
    println!();
    let rows: Vec<Vec<String>> = p
        .steps
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                if s.needs.is_empty() {
                    "-".to_owned()
                } else {
                    s.needs.join(", ")
                },
                format!("{}/{}", s.queue, s.kind),
                or_dash(s.condition.as_ref()),
            ]
        })
        .collect();
    print_table(&["STEP", "NEEDS", "QUEUE/KIND", "IF"], &rows);
}

fn print_runs(runs: &[PipelineRun]) {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.pipeline.clone(),
                r.status.clone(),
                r.attempt.to_string(),
                r.created_at.clone(),
                or_dash(r.duration_ms.map(|d| format!("{d} ms"))),
                or_dash(r.schedule.as_ref().or(r.caller.as_ref())),
            ]
        })
        .collect();
    print_table(
        &[
            "RUN", "PIPELINE", "STATUS", "ATTEMPT", "STARTED", "TOOK", "BY",
        ],
        &rows,
    );
}

fn print_detail(detail: &RunDetail) {
    let run = &detail.run;
    println!("run:      {} of {}", run.id, run.pipeline);
    println!("status:   {} (attempt {})", run.status, run.attempt);
    println!("started:  {}", run.created_at);
    if let Some(finished) = &run.finished_at {
        println!("finished: {finished} ({} ms)", run.duration_ms.unwrap_or(0));
    }
    println!("input:    {}", run.input);
    println!();
    let rows: Vec<Vec<String>> = detail
        .steps
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.state.clone(),
                s.attempts.to_string(),
                or_dash(s.duration_ms.map(|d| format!("{d} ms"))),
                or_dash(s.task_id),
                or_dash(s.result.as_ref().map(|r| shorten(&r.to_string()))),
                or_dash(s.error.as_ref().map(|e| shorten(e))),
            ]
        })
        .collect();
    print_table(
        &[
            "STEP", "STATE", "ATTEMPTS", "TOOK", "TASK", "RESULT", "ERROR",
        ],
        &rows,
    );
}

/// Text cut to one table cell.
fn shorten(text: &str) -> String {
    const MAX: usize = 60;
    let line = text.replace('\n', " ");
    if line.chars().count() <= MAX {
        return line;
    }
    let mut cut: String = line.chars().take(MAX - 1).collect();
    cut.push('…');
    cut
}
