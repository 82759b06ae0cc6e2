//! `steward-bench queue`: the task queue end to end on a real database — batched enqueue, then
//! workers draining the queue with no-op tasks, then claim-to-start latency while the queue is
//! not saturated.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use steward_core::audit::Actor;
use steward_core::queue::QueueSpec;
use steward_core::task::{Task, TaskStatus};
use steward_engine::EventBus;
use steward_engine::executors::{Executor, Executors, Failure, Output, RunContext};
use steward_engine::queue::{EnqueueRequest, enqueue, worker};
use steward_store::Store;
use tokio_util::sync::CancellationToken;

/// What to run.
pub struct QueueBench {
    /// Tasks to enqueue and work.
    pub tasks: usize,
    /// Tasks per enqueue call.
    pub batch: usize,
    /// Concurrent enqueue callers.
    pub enqueuers: usize,
    /// Worker instances (each with its own claims and completions, as separate processes
    /// would have).
    pub workers: usize,
    /// Slots per worker.
    pub concurrency: u32,
    /// Tasks enqueued one by one for the latency phase.
    pub latency_tasks: usize,
}

/// A no-op that records how long each task waited between becoming due and starting.
#[derive(Default)]
struct Recorder {
    started: AtomicU64,
    waits_ms: Mutex<Vec<i64>>,
}

#[async_trait]
impl Executor for Recorder {
    async fn run(&self, task: &Task, _cx: &RunContext) -> Result<Output, Failure> {
        let wait = steward_store::now_ms() - task.run_at_ms.max(task.created_at_ms);
        if let Ok(mut waits) = self.waits_ms.lock() {
            waits.push(wait);
        }
        self.started.fetch_add(1, Ordering::Relaxed);
        Ok(Output::default())
    }
}

const KIND: &str = "bench";
const QUEUE: &str = "bench";

/// Runs the three phases and prints their figures.
pub async fn run(store: Arc<dyn Store>, bench: &QueueBench) -> anyhow::Result<()> {
    let bus = EventBus::new();
    let recorder = Arc::new(Recorder::default());
    let mut executors = Executors::builtins();
    executors.insert(KIND, recorder.clone());
    let executors = Arc::new(executors);
    let mut spec = QueueSpec::new(QUEUE, &[KIND]);
    spec.concurrency = bench.concurrency;
    let queues = vec![spec.clone()];
    let actor = Actor::system("bench");

    let started = Instant::now();
    let batches = batch_sizes(bench.tasks, bench.batch);
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..bench.enqueuers {
        let mine: Vec<usize> = batches
            .iter()
            .skip(caller)
            .step_by(bench.enqueuers)
            .copied()
            .collect();
        let (store, bus, queues, executors, actor) = (
            Arc::clone(&store),
            bus.clone(),
            queues.clone(),
            Arc::clone(&executors),
            actor.clone(),
        );
        callers.spawn(async move {
            for n in mine {
                let requests = (0..n)
                    .map(|_| EnqueueRequest {
                        queue: QUEUE.into(),
                        kind: KIND.into(),
                        ..EnqueueRequest::default()
                    })
                    .collect();
                enqueue(
                    store.as_ref(),
                    &bus,
                    &queues,
                    &executors,
                    &steward_core::Registry::default(),
                    requests,
                    &actor,
                )
                .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = callers.join_next().await {
        done.context("an enqueue caller failed")??;
    }
    let enqueue_secs = started.elapsed().as_secs_f64();
    println!(
        "enqueue: {} tasks in batches of {} from {} callers in {enqueue_secs:.2} s = {:.0} tasks/s",
        bench.tasks,
        bench.batch,
        bench.enqueuers,
        bench.tasks as f64 / enqueue_secs
    );

    let stop = CancellationToken::new();
    let registry: worker::RegistrySource = Arc::new(|| Arc::new(steward_core::Registry::default()));
    let started = Instant::now();
    let handles: Vec<_> = (0..bench.workers)
        .map(|i| {
            worker::spawn(
                Arc::clone(&store),
                bus.clone(),
                Arc::clone(&executors),
                Arc::clone(&registry),
                spec.clone(),
                worker::WorkerOptions::new(format!("bench-{i}")),
                stop.clone(),
            )
        })
        .collect();
    wait_until_succeeded(store.as_ref(), &recorder, bench.tasks as i64).await?;
    let work_secs = started.elapsed().as_secs_f64();
    println!(
        "work: {} no-op tasks by {} workers x {} slots in {work_secs:.2} s = {:.0} tasks/s",
        bench.tasks,
        bench.workers,
        bench.concurrency,
        bench.tasks as f64 / work_secs
    );

    if let Ok(mut waits) = recorder.waits_ms.lock() {
        waits.clear();
    }
    for _ in 0..bench.latency_tasks {
        let request = EnqueueRequest {
            queue: QUEUE.into(),
            kind: KIND.into(),
            ..EnqueueRequest::default()
        };
        enqueue(
            store.as_ref(),
            &bus,
            &queues,
            &executors,
            &steward_core::Registry::default(),
            vec![request],
            &actor,
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_until_succeeded(
        store.as_ref(),
        &recorder,
        (bench.tasks + bench.latency_tasks) as i64,
    )
    .await?;
    let mut waits = recorder
        .waits_ms
        .lock()
        .map(|w| w.clone())
        .unwrap_or_default();
    waits.sort_unstable();
    println!(
        "claim-to-start latency, {} tasks enqueued one by one every 10 ms: p50 {} ms, p99 {} ms, max {} ms",
        waits.len(),
        percentile(&waits, 0.50),
        percentile(&waits, 0.99),
        waits.last().copied().unwrap_or(0)
    );
    stop.cancel();
    for handle in handles {
        handle.await.context("a worker failed")?;
    }
    Ok(())
}

/// `total` split into calls of at most `batch`.
fn batch_sizes(total: usize, batch: usize) -> Vec<usize> {
    let batch = batch.max(1);
    (0..total.div_ceil(batch))
        .map(|i| batch.min(total - i * batch))
        .collect()
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Waits until `expected` tasks have succeeded in the store. Counting rows is a full scan of
/// the queue, so while tasks are still starting it watches the recorder instead, and only asks
/// the store once every task has run: polling the database would steal its time from the
/// workers being measured.
async fn wait_until_succeeded(
    store: &dyn Store,
    recorder: &Recorder,
    expected: i64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while (recorder.started.load(Ordering::Relaxed) as i64) < expected {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {expected} tasks started after 10 minutes",
            recorder.started.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    loop {
        let counts = store.task_counts().await?;
        let succeeded: i64 = counts
            .iter()
            .filter(|c| c.queue == QUEUE && c.status == TaskStatus::Succeeded)
            .map(|c| c.count)
            .sum();
        if succeeded >= expected {
            anyhow::ensure!(
                succeeded == expected,
                "{succeeded} succeeded, expected {expected}"
            );
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {succeeded} of {expected} succeeded after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
