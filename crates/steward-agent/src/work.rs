//! Remote work on the node: the tasks the hub pins here, claimed over HTTP (long poll, as
//! many as there are free slots), run with the executors *this node's* `agent.toml` declares,
//! their leases renewed every third of the lease, and their results kept in the [`Outbox`]
//! until the hub has answered for them.
//!
//! The hub names a kind; a kind this node does not declare is never run. Its task is reported
//! failed for good, saying so, instead of being left waiting for ever.
//!
//! While the hub is unreachable, attempts run on and their results wait on disk. When it is
//! back, results are delivered and leases renewed before the next heartbeat: the hub keeps a
//! silent node's expired leases, and takes them back only once the node is heard from again,
//! so delivering first is what makes a partition cost no task a second run.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steward_core::Registry;
use steward_core::queue::ExecutorSpec;
use steward_core::redact::Redactor;
use steward_core::task::{Task, TaskOrigin, TaskStatus};
use steward_exec::{Executors, RunContext};
use steward_wire::work::{
    ClaimRequest, HeldLease, LeaseRenewal, MAX_CLAIM_WAIT_MS, RemoteEnd, RemoteResult, RemoteTask,
    ResultBatch,
};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::WorkConfig;
use crate::hub::{HubClient, HubError};
use crate::journal::{Journal, now_ms};
use crate::outbox::{Outbox, OutboxError};

/// The name this agent's claims are leased under (after the node's id).
pub const WORKER: &str = "agent";

/// The most results delivered in one call.
const RESULT_BATCH: usize = 100;

/// How long in-flight attempts may finish once the agent is asked to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why an attempt's token was cancelled.
const STOP_CANCEL: u8 = 1;
const STOP_LEASE_LOST: u8 = 2;
const STOP_SHUTDOWN: u8 = 3;

/// Why remote work could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkSetupError {
    /// An executor could not be built from its declaration.
    #[error(transparent)]
    Executor(#[from] steward_exec::ExecutorError),
    /// The outbox could not be read.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

struct Running {
    fence: i64,
    lease_ms: u64,
    stop: CancellationToken,
    reason: Arc<AtomicU8>,
}

/// The node's remote work: claims, attempts, renewals and results.
pub struct Work {
    client: HubClient,
    node: String,
    credential: String,
    executors: Executors,
    kinds: Vec<String>,
    redactor: Arc<Redactor>,
    slots: Arc<Semaphore>,
    concurrency: u32,
    running: Mutex<HashMap<i64, Running>>,
    outbox: Outbox,
    journal: Option<Journal>,
    /// Serialises deliveries, so results reach the hub in the order they ended.
    delivering: tokio::sync::Mutex<()>,
    /// Rung when a result is kept, to deliver it at once.
    kept: Notify,
}

impl Work {
    /// The work of `node` as `config` allows it, its results kept under `data_dir`.
    pub fn new(
        client: HubClient,
        node: &str,
        credential: &str,
        config: &WorkConfig,
        data_dir: &Path,
        journal: Option<Journal>,
    ) -> Result<Self, WorkSetupError> {
        let executors = Executors::from_specs(&config.executors)?;
        Ok(Self {
            client,
            node: node.to_owned(),
            credential: credential.to_owned(),
            executors,
            kinds: config.kinds(),
            redactor: Arc::new(Redactor::new(secrets_of(&config.executors))),
            slots: Arc::new(Semaphore::new(config.concurrency as usize)),
            concurrency: config.concurrency,
            running: Mutex::new(HashMap::new()),
            outbox: Outbox::open(data_dir)?,
            journal,
            delivering: tokio::sync::Mutex::new(()),
            kept: Notify::new(),
        })
    }

    /// Claims and runs tasks, renews leases and delivers results until `shutdown`; then lets
    /// running attempts finish for a grace period and delivers what it can.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        tracing::info!(node = %self.node, kinds = ?self.kinds, concurrency = self.concurrency, "remote work started");
        let renewals = tokio::spawn(Arc::clone(&self).renew_loop(shutdown.clone()));
        let deliveries = tokio::spawn(Arc::clone(&self).deliver_loop(shutdown.clone()));
        self.claim_loop(&shutdown).await;
        self.drain().await;
        renewals.abort();
        deliveries.abort();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.deliver()).await;
        tracing::info!(node = %self.node, undelivered = self.outbox.len(), "remote work stopped");
    }

    /// Delivers waiting results, then renews running attempts' leases: what the heartbeat
    /// loop does before each beat, so the hub hears of them before it hears the node is back.
    pub async fn before_beat(&self) {
        if let Err(error) = self.deliver().await {
            tracing::debug!(%error, "results not delivered before the beat");
        }
        if let Err(error) = self.renew().await {
            tracing::debug!(%error, "leases not renewed before the beat");
        }
    }

    async fn claim_loop(self: &Arc<Self>, shutdown: &CancellationToken) {
        let mut failures = 0u32;
        loop {
            let first = tokio::select! {
                permit = Arc::clone(&self.slots).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                () = shutdown.cancelled() => return,
            };
            let free = 1 + self.slots.available_permits();
            let request = ClaimRequest {
                worker: WORKER.to_owned(),
                limit: u32::try_from(free).unwrap_or(1).clamp(1, 100),
                wait_ms: MAX_CLAIM_WAIT_MS,
            };
            let claimed = tokio::select! {
                claimed = self.client.claim(&self.node, &self.credential, &request) => claimed,
                () = shutdown.cancelled() => return,
            };
            match claimed {
                Ok(claimed) => {
                    failures = 0;
                    self.start_all(claimed.tasks, first);
                }
                Err(error) => {
                    drop(first);
                    failures += 1;
                    if matches!(error, HubError::Unauthorized { .. }) || failures == 1 {
                        tracing::warn!(%error, "claiming tasks failed; retrying");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff(failures)) => {}
                        () = shutdown.cancelled() => return,
                    }
                }
            }
        }
    }

    fn start_all(self: &Arc<Self>, tasks: Vec<RemoteTask>, first: OwnedSemaphorePermit) {
        let mut first = Some(first);
        for task in tasks {
            let permit = match first.take() {
                Some(permit) => permit,
                // Only the claim loop takes slots, so the ones counted free are still there.
                None => match Arc::clone(&self.slots).try_acquire_owned() {
                    Ok(permit) => permit,
                    Err(_) => {
                        tracing::error!(
                            task = task.id,
                            "no free slot for a claimed task; its lease will run out"
                        );
                        continue;
                    }
                },
            };
            let stop = CancellationToken::new();
            let reason = Arc::new(AtomicU8::new(0));
            self.lock_running().insert(
                task.id,
                Running {
                    fence: task.fence,
                    lease_ms: task.lease_ms,
                    stop: stop.clone(),
                    reason: Arc::clone(&reason),
                },
            );
            tokio::spawn(Arc::clone(self).attempt(task, stop, reason, permit));
        }
    }

    /// Runs one attempt and keeps its result (unless the lease was lost: the hub has given the
    /// task to another attempt, and this one has nothing to say).
    async fn attempt(
        self: Arc<Self>,
        task: RemoteTask,
        stop: CancellationToken,
        reason: Arc<AtomicU8>,
        permit: OwnedSemaphorePermit,
    ) {
        let started_at_ms = now_ms();
        let outcome = self.execute(&task, &stop).await;
        let ended_at_ms = now_ms().max(started_at_ms);
        let stopped_by = stop.is_cancelled().then(|| reason.load(Ordering::SeqCst));
        let mut result = RemoteResult {
            id: task.id,
            fence: task.fence,
            attempt: task.attempt,
            started_at_ms,
            ended_at_ms,
            end: RemoteEnd::Succeeded,
            error: None,
            retryable: false,
            result: None,
            outcome: None,
            tail: None,
        };
        match (stopped_by, outcome) {
            (Some(STOP_LEASE_LOST), _) => {
                self.forget(task.id);
                tracing::warn!(task = task.id, "lease lost; attempt abandoned");
                return;
            }
            (Some(STOP_CANCEL), _) => result.end = RemoteEnd::Cancelled,
            (Some(_), _) => result.end = RemoteEnd::Interrupted,
            (None, Ok(output)) => {
                result.result = output.result;
                result.outcome = output.outcome;
                result.tail = output.tail;
            }
            (None, Err(failure)) => {
                result.end = RemoteEnd::Failed;
                result.error = Some(failure.error);
                result.retryable = failure.retryable;
                result.tail = failure.tail;
            }
        }
        self.record_in_journal(&task, &result);
        if let Err(error) = self.outbox.push(result) {
            // Not kept: the lease runs out and the task runs again; nothing is lost.
            tracing::error!(task = task.id, %error, "cannot keep an attempt's result");
        }
        self.forget(task.id);
        drop(permit);
        self.kept.notify_one();
    }

    async fn execute(
        &self,
        task: &RemoteTask,
        stop: &CancellationToken,
    ) -> Result<steward_exec::Output, steward_exec::Failure> {
        let Some(executor) = self.executors.get(&task.kind) else {
            return Err(steward_exec::Failure::permanent(format!(
                "executor `{}` is not allowed on node {}: its agent.toml declares {}",
                task.kind,
                self.node,
                self.kinds.join(", ")
            )));
        };
        executor.validate(&task.payload).map_err(|e| {
            steward_exec::Failure::permanent(format!("payload refused by this node: {e}"))
        })?;
        let cx = RunContext {
            cancel: stop.clone(),
            registry: Arc::new(Registry::default()),
            redactor: Arc::clone(&self.redactor),
        };
        let as_task = task_of(task);
        let timeout = Duration::from_millis(task.timeout_ms.max(1));
        tokio::select! {
            outcome = tokio::time::timeout(timeout, executor.run(&as_task, &cx)) => match outcome {
                Ok(Ok(output)) => Ok(output.redacted(&self.redactor)),
                Ok(Err(failure)) => Err(failure.redacted(&self.redactor)),
                Err(_) => Err(steward_exec::Failure::retryable(format!(
                    "timed out after {} ms",
                    task.timeout_ms
                ))),
            },
            () = stop.cancelled() => Err(steward_exec::Failure::retryable("stopped")),
        }
    }

    fn record_in_journal(&self, task: &RemoteTask, result: &RemoteResult) {
        let Some(journal) = &self.journal else {
            return;
        };
        let entry = crate::journal::task_ran(&self.node, task, result);
        if let Err(error) = journal.append(entry) {
            tracing::error!(task = task.id, %error, "cannot record an attempt in the audit journal");
        }
    }

    /// Renews every running attempt's lease every third of the shortest lease held.
    async fn renew_loop(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let every = self
                .lock_running()
                .values()
                .map(|r| r.lease_ms / 3)
                .min()
                .unwrap_or(1_000)
                .clamp(100, 10_000);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(every)) => {}
                () = shutdown.cancelled() => return,
            }
            if let Err(error) = self.renew().await {
                tracing::debug!(%error, "renewing leases failed; trying again");
            }
        }
    }

    async fn renew(&self) -> Result<(), HubError> {
        let leases: Vec<HeldLease> = self
            .lock_running()
            .iter()
            .map(|(id, r)| HeldLease {
                id: *id,
                fence: r.fence,
            })
            .collect();
        if leases.is_empty() {
            return Ok(());
        }
        let renewal = LeaseRenewal {
            worker: WORKER.to_owned(),
            leases,
        };
        let statuses = self
            .client
            .renew(&self.node, &self.credential, &renewal)
            .await?;
        let running = self.lock_running();
        for status in statuses.leases {
            let Some(attempt) = running.get(&status.id) else {
                continue;
            };
            let reason = if !status.held {
                STOP_LEASE_LOST
            } else if status.cancel_requested {
                STOP_CANCEL
            } else {
                continue;
            };
            attempt.reason.store(reason, Ordering::SeqCst);
            attempt.stop.cancel();
        }
        Ok(())
    }

    /// Delivers results as they are kept, and retries while the hub is away.
    async fn deliver_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut failures = 0u32;
        loop {
            if self.outbox.is_empty() {
                tokio::select! {
                    () = self.kept.notified() => {}
                    () = shutdown.cancelled() => return,
                }
            }
            match self.deliver().await {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(%error, waiting = self.outbox.len(), "results not delivered; keeping them until the hub answers");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff(failures)) => {}
                        () = shutdown.cancelled() => return,
                    }
                }
            }
        }
    }

    /// Sends the waiting results, oldest first, until none wait or a call fails.
    async fn deliver(&self) -> Result<(), DeliveryError> {
        let _order = self.delivering.lock().await;
        loop {
            let batch = self.outbox.peek(RESULT_BATCH);
            if batch.is_empty() {
                return Ok(());
            }
            let sent = batch.len();
            let request = ResultBatch {
                worker: WORKER.to_owned(),
                results: batch,
            };
            let taken = self
                .client
                .complete(&self.node, &self.credential, &request)
                .await?;
            for (result, accepted) in request.results.iter().zip(&taken.accepted) {
                if !accepted {
                    tracing::warn!(task = result.id, "result refused: the lease had moved on");
                }
            }
            self.outbox.delivered(sent)?;
        }
    }

    /// Waits for running attempts after shutdown began, stopping them after the grace.
    async fn drain(&self) {
        let all = self.concurrency;
        if tokio::time::timeout(SHUTDOWN_GRACE, self.slots.acquire_many(all))
            .await
            .is_ok()
        {
            return;
        }
        for attempt in self.lock_running().values() {
            attempt.reason.store(STOP_SHUTDOWN, Ordering::SeqCst);
            attempt.stop.cancel();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.slots.acquire_many(all)).await;
    }

    fn forget(&self, id: i64) {
        self.lock_running().remove(&id);
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Running>> {
        crate::lock(&self.running)
    }
}

/// Why results could not be delivered.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

/// The task an executor runs, from what the hub sent.
fn task_of(remote: &RemoteTask) -> Task {
    Task {
        timeout_ms: None,
        id: remote.id,
        queue: remote.queue.clone(),
        kind: remote.kind.clone(),
        payload: remote.payload.clone(),
        priority: 0,
        status: TaskStatus::Running,
        attempt: remote.attempt,
        max_attempts: remote.max_attempts,
        run_at_ms: remote.ready_at_ms,
        outcome: None,
        result: None,
        error: None,
        lease_owner: None,
        lease_expires_at_ms: None,
        fence: remote.fence,
        cancel_requested: false,
        idempotency_key: None,
        origin: TaskOrigin::default(),
        created_at_ms: remote.ready_at_ms,
        finished_at_ms: None,
        node: None,
    }
}

/// The values the declared executors keep secret, masked in what attempts leave.
fn secrets_of(executors: &[ExecutorSpec]) -> Vec<String> {
    let mut secrets = Vec::new();
    for executor in executors {
        match executor {
            ExecutorSpec::Http(http) => {
                secrets.extend(http.headers.values().map(|s| s.expose().to_owned()));
            }
            ExecutorSpec::Shell(shell) => {
                secrets.extend(shell.env.values().map(|s| s.expose().to_owned()));
            }
        }
    }
    secrets
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << failures.min(5)).min(5_000))
}
