//! `steward-bench pipelines`: pipeline step overhead on a real database. Starts N runs of a
//! three-step chain or of a 1 → 10 → 1 fan-out of no-op steps while workers drain their steps
//! (runs/s, steps/s), then starts runs one at a time on an idle queue and measures each step's
//! hand-over: from the moment its last need's executor returned (its success then committed,
//! starting the step in the same transaction) to the step's own start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use clap::ValueEnum;
use serde_json::json;
use steward_core::audit::Actor;
use steward_core::pipeline::FailurePolicy;
use steward_core::pipeline::run::RunStatus;
use steward_core::pipeline::spec::{PipelineSpec, StepSpec};
use steward_core::queue::QueueSpec;
use steward_core::task::{Task, TaskOrigin};
use steward_engine::EventBus;
use steward_engine::executors::{Executor, Executors, Failure, Output, RunContext};
use steward_engine::queue::worker;
use steward_store::{NewRun, PipelineRunQuery, Store};
use tokio_util::sync::CancellationToken;

/// The pipeline measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    /// a → b → c.
    Chain,
    /// split → ten branches → join.
    Fanout,
}

/// What to run.
pub struct PipelineBench {
    /// The pipeline.
    pub shape: Shape,
    /// Runs in the throughput phase.
    pub runs: usize,
    /// Runs per start call.
    pub batch: usize,
    /// Worker instances.
    pub workers: usize,
    /// Slots per worker.
    pub concurrency: u32,
    /// Runs started one by one for the hand-over phase.
    pub latency_runs: usize,
}

const KIND: &str = "bench";
const QUEUE: &str = "bench";

/// When each step's executor started and returned, by (run, step).
#[derive(Default)]
struct Recorder {
    started: AtomicU64,
    times: Mutex<HashMap<(i64, String), (i64, i64)>>,
}

#[async_trait]
impl Executor for Recorder {
    async fn run(&self, task: &Task, _cx: &RunContext) -> Result<Output, Failure> {
        let start = now_us();
        let step = task
            .idempotency_key
            .as_deref()
            .and_then(|k| k.rsplit(':').next())
            .unwrap_or_default()
            .to_owned();
        let run = task.origin.pipeline_run.unwrap_or_default();
        if let Ok(mut times) = self.times.lock() {
            times.insert((run, step), (start, now_us()));
        }
        self.started.fetch_add(1, Ordering::Relaxed);
        Ok(Output::default())
    }
}

/// Microseconds since the Unix epoch.
fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn step(name: &str, needs: &[&str]) -> StepSpec {
    StepSpec {
        name: name.into(),
        queue: QUEUE.into(),
        kind: KIND.into(),
        payload: json!({}),
        needs: needs.iter().map(|n| (*n).to_owned()).collect(),
        condition: None,
        priority: 0,
        max_attempts: Some(3),
        timeout_ms: None,
        node: None,
    }
}

fn spec(shape: Shape) -> PipelineSpec {
    let steps = match shape {
        Shape::Chain => vec![step("a", &[]), step("b", &["a"]), step("c", &["b"])],
        Shape::Fanout => {
            let names: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
            let mut steps = vec![step("split", &[])];
            steps.extend(names.iter().map(|n| step(n, &["split"])));
            let needs: Vec<&str> = names.iter().map(String::as_str).collect();
            steps.push(step("join", &needs));
            steps
        }
    };
    PipelineSpec {
        name: "bench".into(),
        workspace: None,
        description: None,
        on_failure: FailurePolicy::Stop,
        steps,
    }
}

fn new_run(spec: &PipelineSpec) -> NewRun {
    NewRun {
        spec: spec.clone(),
        input: json!({}),
        idempotency_key: None,
        origin: TaskOrigin::default(),
    }
}

/// Runs both phases and prints their figures.
pub async fn run(store: Arc<dyn Store>, bench: &PipelineBench) -> anyhow::Result<()> {
    let spec = spec(bench.shape);
    let steps_per_run = spec.steps.len();
    let recorder = Arc::new(Recorder::default());
    let mut executors = Executors::builtins();
    executors.insert(KIND, recorder.clone());
    let executors = Arc::new(executors);
    let mut queue = QueueSpec::new(QUEUE, &[KIND]);
    queue.concurrency = bench.concurrency;
    let actor = Actor::system("bench");
    let stop = CancellationToken::new();
    let registry: worker::RegistrySource = Arc::new(|| Arc::new(steward_core::Registry::default()));
    let handles: Vec<_> = (0..bench.workers)
        .map(|i| {
            worker::spawn(
                Arc::clone(&store),
                EventBus::new(),
                Arc::clone(&executors),
                Arc::clone(&registry),
                queue.clone(),
                worker::WorkerOptions::new(format!("bench-{i}")),
                stop.clone(),
            )
        })
        .collect();

    let started = Instant::now();
    let mut left = bench.runs;
    while left > 0 {
        let n = left.min(bench.batch.max(1));
        let runs: Vec<NewRun> = (0..n).map(|_| new_run(&spec)).collect();
        store.start_runs(&runs, &actor).await?;
        left -= n;
    }
    let start_secs = started.elapsed().as_secs_f64();
    let steps = (bench.runs * steps_per_run) as u64;
    wait_until_ended(store.as_ref(), &recorder, steps).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "throughput: {} runs of {:?} ({} steps each) started in {start_secs:.2} s, all ended in {secs:.2} s = {:.0} runs/s, {:.0} steps/s",
        bench.runs,
        bench.shape,
        steps_per_run,
        bench.runs as f64 / secs,
        steps as f64 / secs
    );
    let failed = store
        .list_runs(&PipelineRunQuery {
            limit: 1,
            status: Some(RunStatus::Failed),
            ..PipelineRunQuery::default()
        })
        .await?;
    anyhow::ensure!(
        failed.is_empty(),
        "a run failed: {:?}",
        failed.first().map(|r| r.id)
    );

    if let Ok(mut times) = recorder.times.lock() {
        times.clear();
    }
    let before = recorder.started.load(Ordering::Relaxed);
    let mut ids = Vec::new();
    for _ in 0..bench.latency_runs {
        let answer = store.start_runs(&[new_run(&spec)], &actor).await?;
        ids.extend(answer.iter().map(|a| a.id));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_until_ended(
        store.as_ref(),
        &recorder,
        before + (bench.latency_runs * steps_per_run) as u64,
    )
    .await?;
    let mut handovers = handovers(&recorder, &spec, &ids);
    handovers.sort_by(f64::total_cmp);
    println!(
        "hand-over (need's executor returned → next step started), {} runs started every 20 ms, {} hand-overs: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        bench.latency_runs,
        handovers.len(),
        percentile(&handovers, 0.50),
        percentile(&handovers, 0.99),
        handovers.last().copied().unwrap_or(0.0)
    );
    stop.cancel();
    for handle in handles {
        handle.await.context("a worker failed")?;
    }
    Ok(())
}

/// Each step with needs: its start minus the latest return among its needs, in ms.
fn handovers(recorder: &Recorder, spec: &PipelineSpec, runs: &[i64]) -> Vec<f64> {
    let Ok(times) = recorder.times.lock() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for run in runs {
        for step in spec.steps.iter().filter(|s| !s.needs.is_empty()) {
            let Some((start, _)) = times.get(&(*run, step.name.clone())) else {
                continue;
            };
            let last = step
                .needs
                .iter()
                .filter_map(|n| times.get(&(*run, n.clone())).map(|(_, end)| *end))
                .max();
            if let Some(last) = last {
                out.push((start - last) as f64 / 1000.0);
            }
        }
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Waits until `steps` steps have run and no run is left running.
async fn wait_until_ended(
    store: &dyn Store,
    recorder: &Recorder,
    steps: u64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(900);
    while recorder.started.load(Ordering::Relaxed) < steps {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {steps} steps ran after 15 minutes",
            recorder.started.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    loop {
        let running = store
            .list_runs(&PipelineRunQuery {
                limit: 1,
                status: Some(RunStatus::Running),
                ..PipelineRunQuery::default()
            })
            .await?;
        if running.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "runs still running after 15 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
