//! A queue's worker on this instance: claims due tasks in batches (as many as it has free
//! slots), runs each under its executor with the queue's timeout, keeps the leases alive with
//! heartbeats, and reports completions in batches. A completion only counts if the lease's
//! fencing token is still current, so an attempt that lost its lease can never overwrite a newer
//! one.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use metrics::{Counter, Histogram};
use steward_core::queue::QueueSpec;
use steward_core::task::{Completion, Task, TaskStatus, Verdict};
use steward_core::{Event, Registry};
use steward_store::batch::Batcher;
use steward_store::tasks::{ANY_QUEUE, MAX_CLAIM};
use steward_store::{Claim, Store, now_ms};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bus::EventBus;
use crate::control::RedactorSource;
use crate::executors::{Executors, Output, RunContext};

/// Gives the registry in force (read once per claimed batch).
pub type RegistrySource = Arc<dyn Fn() -> Arc<Registry> + Send + Sync>;

/// How a worker runs, besides its queue's settings.
#[derive(Clone)]
pub struct WorkerOptions {
    /// This worker's unique name (the lease owner).
    pub worker: String,
    /// How often to look for due tasks when no wake-up came (delayed tasks, retries, missed
    /// notifications).
    pub poll_interval: Duration,
    /// How long in-flight attempts may finish after shutdown begins before they are stopped.
    pub shutdown_grace: Duration,
    /// The secrets to mask in what attempts leave (read once per claimed batch).
    pub redactor: RedactorSource,
}

impl WorkerOptions {
    /// Defaults for a worker named `worker` (masking no secrets).
    pub fn new(worker: impl Into<String>) -> Self {
        Self {
            worker: worker.into(),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
            redactor: crate::no_redaction(),
        }
    }
}

/// Why an attempt's token was cancelled.
const STOP_CANCEL: u8 = 1;
const STOP_LEASE_LOST: u8 = 2;
const STOP_SHUTDOWN: u8 = 3;

struct Inflight {
    fence: i64,
    stop: CancellationToken,
    reason: Arc<AtomicU8>,
}

/// The queue's metric handles, each registered on first use and then kept: looking a metric up
/// by name and labels for every task would cost more than a no-op task itself.
struct QueueMetrics {
    queue: String,
    claim_latency: OnceLock<Histogram>,
    /// By `status as usize` (the declaration order).
    run_duration: [OnceLock<Histogram>; TaskStatus::ALL.len()],
    finished: [OnceLock<Counter>; TaskStatus::ALL.len()],
    retries: OnceLock<Counter>,
    dead: OnceLock<Counter>,
}

impl QueueMetrics {
    fn new(queue: &str) -> Self {
        Self {
            queue: queue.to_string(),
            claim_latency: OnceLock::new(),
            run_duration: Default::default(),
            finished: Default::default(),
            retries: OnceLock::new(),
            dead: OnceLock::new(),
        }
    }

    fn claim_latency(&self) -> &Histogram {
        self.claim_latency.get_or_init(|| {
            metrics::histogram!("steward_task_claim_latency_seconds", "queue" => self.queue.clone())
        })
    }

    fn run_duration(&self, status: TaskStatus) -> &Histogram {
        self.run_duration[status as usize].get_or_init(|| {
            metrics::histogram!("steward_task_run_duration_seconds", "queue" => self.queue.clone(), "status" => status.as_str())
        })
    }

    /// Counts an accepted completion.
    fn finished(&self, status: TaskStatus) {
        self.finished[status as usize]
            .get_or_init(|| {
                metrics::counter!("steward_tasks_finished_total", "queue" => self.queue.clone(), "status" => status.as_str())
            })
            .increment(1);
        match status {
            TaskStatus::Failed => self
                .retries
                .get_or_init(|| {
                    metrics::counter!("steward_task_retries_total", "queue" => self.queue.clone())
                })
                .increment(1),
            TaskStatus::Dead => self
                .dead
                .get_or_init(|| {
                    metrics::counter!("steward_tasks_dead_total", "queue" => self.queue.clone())
                })
                .increment(1),
            _ => {}
        }
    }
}

struct Shared {
    metrics: QueueMetrics,
    store: Arc<dyn Store>,
    bus: EventBus,
    executors: Arc<Executors>,
    spec: QueueSpec,
    options: WorkerOptions,
    inflight: Mutex<HashMap<i64, Inflight>>,
    completer: Batcher<Completion, bool>,
    limiter: Option<DefaultDirectRateLimiter>,
    shutdown: CancellationToken,
}

/// Starts the worker of `spec`; it stops claiming when `shutdown` is cancelled and returns once
/// its in-flight attempts have been recorded (or stopped after the grace period).
pub fn spawn(
    store: Arc<dyn Store>,
    bus: EventBus,
    executors: Arc<Executors>,
    registry: RegistrySource,
    spec: QueueSpec,
    options: WorkerOptions,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let writer = Arc::clone(&store);
    // Half the slots per batch: while one batch commits, the slots the previous one freed are
    // already claiming and running, so the database's commits overlap instead of alternating.
    let batch = (spec.concurrency as usize / 2).clamp(1, MAX_CLAIM as usize);
    let completer = Batcher::spawn_with_max(batch, move |batch: Vec<Completion>| {
        let store = Arc::clone(&writer);
        Box::pin(async move { store.complete_tasks(&batch).await })
    });
    let limiter = spec
        .rate_limit
        .and_then(NonZeroU32::new)
        .map(|rate| RateLimiter::direct(Quota::per_second(rate)));
    let shared = Arc::new(Shared {
        metrics: QueueMetrics::new(&spec.name),
        store,
        bus,
        executors,
        spec,
        options,
        inflight: Mutex::new(HashMap::new()),
        completer,
        limiter,
        shutdown,
    });
    tokio::spawn(run(shared, registry))
}

async fn run(shared: Arc<Shared>, registry: RegistrySource) {
    let slots = Arc::new(Semaphore::new(shared.spec.concurrency.max(1) as usize));
    let heartbeats = tokio::spawn(heartbeat(Arc::clone(&shared)));
    let mut wakeups = shared.store.task_wakeups();
    tracing::info!(queue = %shared.spec.name, worker = %shared.options.worker, concurrency = shared.spec.concurrency, "worker started");
    claim_loop(&shared, &slots, &registry, &mut wakeups).await;
    drain(&shared, &slots).await;
    heartbeats.abort();
    tracing::info!(queue = %shared.spec.name, "worker stopped");
}

async fn claim_loop(
    shared: &Arc<Shared>,
    slots: &Arc<Semaphore>,
    registry: &RegistrySource,
    wakeups: &mut broadcast::Receiver<steward_store::Wakeup>,
) {
    let mut failures = 0u32;
    loop {
        let first = tokio::select! {
            permit = Arc::clone(slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = shared.shutdown.cancelled() => return,
        };
        // Slots freed by one completion batch come back together: let them gather.
        tokio::task::yield_now().await;
        let limit = claim_limit(shared, 1 + slots.available_permits());
        let claim = Claim {
            queue: shared.spec.name.clone(),
            worker: shared.options.worker.clone(),
            limit,
            lease_ms: shared.spec.lease_ms,
            node: None,
        };
        let claimed = match shared.store.claim_tasks(&claim).await {
            Ok(claimed) => {
                failures = 0;
                claimed
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(queue = %shared.spec.name, %error, "claiming tasks failed; retrying");
                drop(first);
                pause(shared, backoff(failures)).await;
                continue;
            }
        };
        let got = claimed.len();
        if got > 0 {
            start_all(shared, slots, registry, claimed, first);
        } else {
            drop(first);
        }
        if got < limit as usize {
            wait_for_work(shared, wakeups).await;
        }
    }
}

fn claim_limit(shared: &Shared, free: usize) -> u32 {
    let mut limit = u32::try_from(free).unwrap_or(MAX_CLAIM).min(MAX_CLAIM);
    if let Some(rate) = shared.spec.rate_limit {
        // Claim no more than about a second of work ahead of the rate limit.
        limit = limit.min(rate.max(1));
    }
    limit.max(1)
}

fn start_all(
    shared: &Arc<Shared>,
    slots: &Arc<Semaphore>,
    registry: &RegistrySource,
    claimed: Vec<Task>,
    first: OwnedSemaphorePermit,
) {
    let now = now_ms();
    let registry = registry();
    let redactor = (shared.options.redactor)();
    let mut first = Some(first);
    for task in claimed {
        let ready_at = task.run_at_ms.max(task.created_at_ms);
        shared
            .metrics
            .claim_latency()
            .record((now - ready_at).max(0) as f64 / 1000.0);
        let permit = match first.take() {
            Some(permit) => permit,
            // Only this loop takes slots, so the ones counted free are still there.
            None => match Arc::clone(slots).try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    tracing::error!(
                        task = task.id,
                        "no free slot for a claimed task; its lease will expire and it will run again"
                    );
                    continue;
                }
            },
        };
        // Not a child of the shutdown token: in-flight attempts get a grace period.
        let stop = CancellationToken::new();
        let reason = Arc::new(AtomicU8::new(0));
        if let Ok(mut inflight) = shared.inflight.lock() {
            inflight.insert(
                task.id,
                Inflight {
                    fence: task.fence,
                    stop: stop.clone(),
                    reason: Arc::clone(&reason),
                },
            );
        }
        let cx = RunContext {
            cancel: stop,
            registry: Arc::clone(&registry),
            redactor: Arc::clone(&redactor),
        };
        tokio::spawn(attempt(Arc::clone(shared), task, cx, reason, permit));
    }
}

/// Waits for a wake-up of this queue, the next waiting task's run-at (a delayed task, a
/// retry), or the poll interval, whichever comes first.
async fn wait_for_work(shared: &Shared, wakeups: &mut broadcast::Receiver<steward_store::Wakeup>) {
    let mut wait = shared.options.poll_interval;
    if let Ok(Some(due)) = shared.store.next_due_ms(&shared.spec.name).await {
        // A task due already but not claimed is held by another claim for a moment: look
        // again shortly rather than spin.
        let until_due = u64::try_from(due.saturating_sub(now_ms())).unwrap_or(0);
        wait = wait.min(Duration::from_millis(until_due.max(2)));
    }
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            received = wakeups.recv() => match received {
                Ok(queue) if *queue == *shared.spec.name || &*queue == ANY_QUEUE => return,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => {
                    (&mut deadline).await;
                    return;
                }
            },
            () = &mut deadline => return,
            () = shared.shutdown.cancelled() => return,
        }
    }
}

async fn pause(shared: &Shared, delay: Duration) {
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = shared.shutdown.cancelled() => {}
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(6)).min(5_000))
}

/// Runs one attempt and records how it ended.
async fn attempt(
    shared: Arc<Shared>,
    task: Task,
    cx: RunContext,
    reason: Arc<AtomicU8>,
    permit: OwnedSemaphorePermit,
) {
    if let Some(limiter) = &shared.limiter {
        limiter.until_ready().await;
    }
    publish(&shared, &task, TaskStatus::Running, None);
    let started = now_ms();
    let result = execute(&shared, &task, &cx).await;
    let ended = now_ms();
    let stopped_by = cx
        .cancel
        .is_cancelled()
        .then(|| reason.load(Ordering::SeqCst));
    let (verdict, outcome, tail) = match (stopped_by, result) {
        (Some(STOP_LEASE_LOST), _) => {
            // Another worker owns the task now; this attempt has nothing to record.
            forget(&shared, task.id);
            tracing::warn!(task = task.id, queue = %task.queue, "lease lost; attempt abandoned");
            return;
        }
        (Some(STOP_CANCEL), _) => (Verdict::Cancelled, None, None),
        (Some(_), _) => (
            Verdict::Retry {
                error: "the worker shut down during the attempt".into(),
                retry_at_ms: ended,
            },
            None,
            None,
        ),
        (None, Ok(output)) => (
            Verdict::Succeeded {
                result: output.result,
            },
            output.outcome,
            output.tail,
        ),
        (None, Err((error, retryable, tail))) => {
            let verdict = if retryable {
                shared.spec.retry.after_failure(
                    task.attempt,
                    task.max_attempts,
                    error,
                    ended,
                    unit(),
                )
            } else {
                Verdict::Dead { error }
            };
            (verdict, None, tail)
        }
    };
    let status = verdict.status();
    let completion = Completion {
        task_id: task.id,
        fence: task.fence,
        worker: shared.options.worker.clone(),
        attempt: task.attempt,
        started_at_ms: started,
        ended_at_ms: ended,
        verdict,
        outcome: outcome.clone(),
        output_tail: tail,
    };
    let accepted = record(&shared, completion).await;
    forget(&shared, task.id);
    drop(permit);
    shared
        .metrics
        .run_duration(status)
        .record((ended - started).max(0) as f64 / 1000.0);
    if !accepted {
        tracing::warn!(task = task.id, queue = %shared.spec.name, "completion refused: the lease had moved on");
        return;
    }
    shared.metrics.finished(status);
    publish(&shared, &task, status, outcome);
}

/// The executor's answer, or `(error, retryable, tail)`.
async fn execute(
    shared: &Shared,
    task: &Task,
    cx: &RunContext,
) -> Result<Output, (String, bool, Option<String>)> {
    let Some(executor) = shared.executors.get(&task.kind) else {
        return Err((
            format!("no executor `{}` on this instance", task.kind),
            true,
            None,
        ));
    };
    // A pipeline step may set its own timeout; other tasks take their queue's.
    let timeout_ms = task.timeout_ms.unwrap_or(shared.spec.timeout_ms);
    let timeout = Duration::from_millis(timeout_ms);
    tokio::select! {
        outcome = tokio::time::timeout(timeout, executor.run(task, cx)) => match outcome {
            Ok(Ok(output)) => Ok(output.redacted(&cx.redactor)),
            Ok(Err(failure)) => {
                let failure = failure.redacted(&cx.redactor);
                Err((failure.error, failure.retryable, failure.tail))
            }
            Err(_) => Err((format!("timed out after {timeout_ms} ms"), true, None)),
        },
        () = cx.cancel.cancelled() => Err(("stopped".into(), true, None)),
    }
}

/// Writes a completion, retrying while the store is unreachable: the attempt happened, and
/// dropping its record would make it run again.
async fn record(shared: &Shared, completion: Completion) -> bool {
    let mut failures = 0u32;
    loop {
        match shared.completer.submit(completion.clone()).await {
            Ok(accepted) => return accepted,
            Err(error) => {
                failures += 1;
                tracing::warn!(task = completion.task_id, %error, "recording a completion failed; retrying");
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }
}

fn forget(shared: &Shared, id: i64) {
    if let Ok(mut inflight) = shared.inflight.lock() {
        inflight.remove(&id);
    }
}

fn publish(shared: &Shared, task: &Task, status: TaskStatus, outcome: Option<String>) {
    shared.bus.publish(Event::TaskChanged {
        id: task.id,
        queue: task.queue.clone(),
        kind: task.kind.clone(),
        status,
        attempt: task.attempt,
        outcome,
        workspace: task.origin.workspace.clone(),
    });
}

/// A uniform random number in `[0, 1)` for backoff jitter.
pub(crate) fn unit() -> f64 {
    getrandom::u64().map_or(0.5, |n| (n >> 11) as f64 / (1u64 << 53) as f64)
}

/// Extends this worker's leases every third of the lease, and stops attempts whose lease was
/// lost or whose cancellation was asked for.
async fn heartbeat(shared: Arc<Shared>) {
    let every = Duration::from_millis((shared.spec.lease_ms / 3).max(50));
    loop {
        tokio::time::sleep(every).await;
        let leases: Vec<(i64, i64)> = match shared.inflight.lock() {
            Ok(inflight) => inflight.iter().map(|(id, f)| (*id, f.fence)).collect(),
            Err(_) => continue,
        };
        if leases.is_empty() {
            continue;
        }
        let states = match shared
            .store
            .extend_leases(&shared.options.worker, &leases, shared.spec.lease_ms)
            .await
        {
            Ok(states) => states,
            Err(error) => {
                tracing::warn!(queue = %shared.spec.name, %error, "extending leases failed");
                continue;
            }
        };
        let Ok(inflight) = shared.inflight.lock() else {
            continue;
        };
        for state in states {
            let Some(attempt) = inflight.get(&state.task_id) else {
                continue;
            };
            let reason = if !state.held {
                STOP_LEASE_LOST
            } else if state.cancel_requested {
                STOP_CANCEL
            } else {
                continue;
            };
            attempt.reason.store(reason, Ordering::SeqCst);
            attempt.stop.cancel();
        }
    }
}

/// Waits for in-flight attempts after shutdown began, stopping them after the grace period.
async fn drain(shared: &Shared, slots: &Arc<Semaphore>) {
    let all = shared.spec.concurrency.max(1);
    let finished =
        tokio::time::timeout(shared.options.shutdown_grace, slots.acquire_many(all)).await;
    if finished.is_ok() {
        return;
    }
    if let Ok(inflight) = shared.inflight.lock() {
        for attempt in inflight.values() {
            attempt.reason.store(STOP_SHUTDOWN, Ordering::SeqCst);
            attempt.stop.cancel();
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), slots.acquire_many(all)).await;
}
