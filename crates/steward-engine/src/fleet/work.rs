//! Remote work: tasks pinned to a node, claimed by its agent over HTTP with the same leases,
//! renewals and fences as an instance's workers.
//!
//! An agent's claim waits (long poll) on its node's signal. One watcher per instance wakes the
//! signals of the nodes whose tasks are due, looking after every store wake-up (an enqueue or
//! a lease taken back, on any instance) and once a second (delayed tasks, retries), so a
//! thousand waiting agents cost one query per wake-up, not a thousand.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use steward_core::Event;
use steward_core::queue::QueueSpec;
use steward_core::registry::is_valid_name;
use steward_core::task::{Completion, RetryPolicy, Task, TaskStatus, Verdict};
use steward_store::tasks::MAX_CLAIM;
use steward_store::{Claim, LeaseState, Store, StoreError, now_ms};
use tokio::sync::Notify;

use crate::bus::EventBus;

/// How often the watcher looks for due pinned tasks without a wake-up.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Why a remote-work call was refused.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// The agent's worker name is not a plain name.
    #[error("`worker`: `{0}` is not a valid name (letters, digits, `-`, `_`, `.`; at most 64)")]
    Worker(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How an attempt on a node ended, as its agent reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteEnd {
    /// The executor succeeded with this result.
    Succeeded(Option<serde_json::Value>),
    /// The executor failed; `retryable` says whether another attempt may help.
    Failed {
        /// Why.
        error: String,
        /// Whether the queue's retry policy applies (else the task is dead).
        retryable: bool,
    },
    /// Stopped because cancellation was asked for.
    Cancelled,
    /// Stopped because the agent shut down: the task runs again at once.
    Interrupted,
}

/// One attempt's result, as the hub takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteResult {
    /// The task.
    pub task_id: i64,
    /// The fence it was claimed with.
    pub fence: i64,
    /// The attempt.
    pub attempt: u32,
    /// When it started on the node.
    pub started_at_ms: i64,
    /// When it ended.
    pub ended_at_ms: i64,
    /// How it ended.
    pub end: RemoteEnd,
    /// The executor's outcome label.
    pub outcome: Option<String>,
    /// The end of what it printed or answered.
    pub tail: Option<String>,
}

/// A task leased to an agent, with its queue's timing.
#[derive(Debug, Clone, PartialEq)]
pub struct Leased {
    /// The task.
    pub task: Task,
    /// Its queue's attempt timeout.
    pub timeout_ms: u64,
    /// Its queue's lease.
    pub lease_ms: u64,
}

struct Signals {
    by_node: Mutex<HashMap<String, Arc<Notify>>>,
    waiting: AtomicUsize,
    /// The nodes with due tasks at the watcher's last pass, and when it was.
    due: Mutex<Due>,
}

/// What the watcher last saw.
#[derive(Default)]
struct Due {
    nodes: std::collections::HashSet<String>,
    at: Option<tokio::time::Instant>,
}

/// How old the watcher's last pass may be for a claim to trust it and wait at once.
const DUE_FRESH: Duration = Duration::from_millis(1_500);

/// The hub's remote work: claims, renewals and results of the tasks pinned to nodes.
pub struct RemoteWork {
    store: Arc<dyn Store>,
    bus: EventBus,
    signals: Arc<Signals>,
}

impl RemoteWork {
    /// Remote work over `store`, publishing on `bus`; starts this instance's watcher, which
    /// ends when the value is dropped.
    pub fn new(store: Arc<dyn Store>, bus: EventBus) -> Self {
        let signals = Arc::new(Signals {
            by_node: Mutex::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
            due: Mutex::new(Due::default()),
        });
        tokio::spawn(watch(Arc::clone(&store), Arc::downgrade(&signals)));
        Self {
            store,
            bus,
            signals,
        }
    }

    /// Leases up to `limit` due tasks pinned to `node` to its agent's `worker`, waiting up to
    /// `wait` for one to be due. `queues` are the queues in force: each task is claimed with
    /// its queue's lease.
    pub async fn claim(
        &self,
        node: &str,
        worker: &str,
        limit: u32,
        wait: Duration,
        queues: &[QueueSpec],
    ) -> Result<Vec<Leased>, WorkError> {
        let owner = lease_owner(node, worker)?;
        let deadline = tokio::time::Instant::now() + wait;
        let signal = self.signal(node);
        let _waiting = Waiting::new(&self.signals);
        let mut first = true;
        loop {
            let notified = signal.notified();
            tokio::pin!(notified);
            // Registered before looking, so a wake-up between the look and the wait is kept.
            notified.as_mut().enable();
            // An idle node's claims cost no query: the watcher's fresh pass saw nothing due
            // for it, and the pass after an enqueue wakes this claim.
            let skip = first && !wait.is_zero() && self.known_idle(node);
            first = false;
            if !skip {
                let leased = self.claim_now(node, &owner, limit, queues).await?;
                if !leased.is_empty() || tokio::time::Instant::now() >= deadline {
                    return Ok(leased);
                }
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Extends the leases `worker` of `node` holds on `(task, fence)` pairs, by the longest
    /// lease of the queues the node works, and says which are still held.
    pub async fn renew(
        &self,
        node: &str,
        worker: &str,
        leases: &[(i64, i64)],
        queues: &[QueueSpec],
    ) -> Result<Vec<LeaseState>, WorkError> {
        let owner = lease_owner(node, worker)?;
        let lease_ms = eligible(queues, node)
            .map(|q| q.lease_ms)
            .max()
            .unwrap_or(QueueSpec::DEFAULT_LEASE_MS);
        Ok(self.store.extend_leases(&owner, leases, lease_ms).await?)
    }

    /// Records the results of `worker`'s attempts on `node`, each under its queue's retry
    /// policy. A result is refused (false) unless its task is pinned to the node and still
    /// leased to the worker with that fence: an agent can finish only what it holds.
    pub async fn complete(
        &self,
        node: &str,
        worker: &str,
        results: &[RemoteResult],
        queues: &[QueueSpec],
    ) -> Result<Vec<bool>, WorkError> {
        let owner = lease_owner(node, worker)?;
        let mut tasks = Vec::with_capacity(results.len());
        let mut completions = Vec::new();
        for result in results {
            let task = self
                .store
                .task(result.task_id)
                .await?
                .filter(|t| held_by(t, node, &owner, result.fence));
            if let Some(task) = &task {
                completions.push(completion_of(result, task, &owner, queues));
            }
            tasks.push(task);
        }
        let recorded = if completions.is_empty() {
            Vec::new()
        } else {
            self.store.complete_tasks(&completions).await?
        };
        let mut recorded = recorded.into_iter().zip(&completions);
        let mut accepted = Vec::with_capacity(results.len());
        for task in &tasks {
            let Some(task) = task else {
                accepted.push(false);
                continue;
            };
            let Some((ok, completion)) = recorded.next() else {
                accepted.push(false);
                continue;
            };
            if ok {
                self.announce(task, completion);
            }
            accepted.push(ok);
        }
        let refused = accepted.iter().filter(|a| !**a).count();
        count_results(accepted.len() - refused, refused);
        Ok(accepted)
    }

    async fn claim_now(
        &self,
        node: &str,
        owner: &str,
        limit: u32,
        queues: &[QueueSpec],
    ) -> Result<Vec<Leased>, WorkError> {
        let limit = limit.clamp(1, MAX_CLAIM);
        let mut leased = Vec::new();
        for queue in eligible(queues, node) {
            let left = limit.saturating_sub(u32::try_from(leased.len()).unwrap_or(u32::MAX));
            if left == 0 {
                break;
            }
            let claim = Claim {
                queue: queue.name.clone(),
                worker: owner.to_owned(),
                limit: left,
                lease_ms: queue.lease_ms,
                node: Some(node.to_owned()),
            };
            for task in self.store.claim_tasks(&claim).await? {
                self.claimed(&task);
                leased.push(Leased {
                    timeout_ms: task.timeout_ms.unwrap_or(queue.timeout_ms),
                    task,
                    lease_ms: queue.lease_ms,
                });
            }
        }
        Ok(leased)
    }

    fn claimed(&self, task: &Task) {
        let ready_at = task.run_at_ms.max(task.created_at_ms);
        metrics::histogram!("steward_node_task_claim_latency_seconds")
            .record((now_ms() - ready_at).max(0) as f64 / 1000.0);
        metrics::counter!("steward_node_tasks_claimed_total").increment(1);
        self.bus.publish(Event::TaskChanged {
            id: task.id,
            queue: task.queue.clone(),
            kind: task.kind.clone(),
            status: TaskStatus::Running,
            attempt: task.attempt,
            outcome: None,
            workspace: task.origin.workspace.clone(),
        });
    }

    fn announce(&self, task: &Task, completion: &Completion) {
        self.bus.publish(Event::TaskChanged {
            id: task.id,
            queue: task.queue.clone(),
            kind: task.kind.clone(),
            status: completion.verdict.status(),
            attempt: completion.attempt,
            outcome: completion.outcome.clone(),
            workspace: task.origin.workspace.clone(),
        });
    }

    /// True when the watcher's last pass is fresh and found nothing due for `node`.
    fn known_idle(&self, node: &str) -> bool {
        let due = locked(&self.signals.due);
        due.at.is_some_and(|at| at.elapsed() < DUE_FRESH) && !due.nodes.contains(node)
    }

    fn signal(&self, node: &str) -> Arc<Notify> {
        let mut by_node = locked(&self.signals.by_node);
        Arc::clone(by_node.entry(node.to_owned()).or_default())
    }
}

/// Counts the claims waiting, so an idle watcher asks the store nothing.
struct Waiting<'a>(&'a Signals);

impl<'a> Waiting<'a> {
    fn new(signals: &'a Signals) -> Self {
        signals.waiting.fetch_add(1, Ordering::SeqCst);
        Self(signals)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The lease owner of an agent's worker: the node's id first, so an owner names its node.
fn lease_owner(node: &str, worker: &str) -> Result<String, WorkError> {
    if !is_valid_name(worker) {
        return Err(WorkError::Worker(worker.to_owned()));
    }
    Ok(format!("node:{node}/{worker}"))
}

/// The queues whose tasks may be pinned to `node`: those pinned to it and those pinned to none
/// (a task may name its node itself).
fn eligible<'q>(queues: &'q [QueueSpec], node: &'q str) -> impl Iterator<Item = &'q QueueSpec> {
    queues
        .iter()
        .filter(move |q| q.node.as_deref().is_none_or(|n| n == node))
}

fn held_by(task: &Task, node: &str, owner: &str, fence: i64) -> bool {
    task.node.as_deref() == Some(node)
        && task.status == TaskStatus::Running
        && task.lease_owner.as_deref() == Some(owner)
        && task.fence == fence
}

/// The completion a result writes, its verdict decided by the task's queue's retry policy (the
/// default policy when the queue is no longer declared).
fn completion_of(
    result: &RemoteResult,
    task: &Task,
    owner: &str,
    queues: &[QueueSpec],
) -> Completion {
    let retry = queues
        .iter()
        .find(|q| q.name == task.queue)
        .map_or_else(RetryPolicy::default, |q| q.retry);
    let verdict = match &result.end {
        RemoteEnd::Succeeded(value) => Verdict::Succeeded {
            result: value.clone(),
        },
        RemoteEnd::Failed {
            error,
            retryable: true,
        } => retry.after_failure(
            task.attempt,
            task.max_attempts,
            error.clone(),
            now_ms(),
            crate::queue::worker::unit(),
        ),
        RemoteEnd::Failed {
            error,
            retryable: false,
        } => Verdict::Dead {
            error: error.clone(),
        },
        RemoteEnd::Cancelled => Verdict::Cancelled,
        RemoteEnd::Interrupted => Verdict::Retry {
            error: "the agent shut down during the attempt".into(),
            retry_at_ms: now_ms(),
        },
    };
    Completion {
        task_id: task.id,
        fence: task.fence,
        worker: owner.to_owned(),
        attempt: task.attempt,
        started_at_ms: result.started_at_ms,
        ended_at_ms: result.ended_at_ms.max(result.started_at_ms),
        verdict,
        outcome: result.outcome.clone(),
        output_tail: result.tail.clone(),
    }
}

fn count_results(accepted: usize, refused: usize) {
    for (label, n) in [("true", accepted), ("false", refused)] {
        if n > 0 {
            metrics::counter!("steward_node_task_results_total", "accepted" => label)
                .increment(n as u64);
        }
    }
}

/// A lock's guard, also after a panic elsewhere poisoned it: what it guards (signals, the last
/// pass's snapshot) stays valid whatever was interrupted.
fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Wakes the waiting claims of the nodes whose tasks are due, after each store wake-up and
/// every [`WATCH_EVERY`], until the remote work is dropped.
async fn watch(store: Arc<dyn Store>, signals: Weak<Signals>) {
    let mut wakeups = store.task_wakeups();
    loop {
        tokio::select! {
            received = wakeups.recv() => {
                if matches!(received, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    tokio::time::sleep(WATCH_EVERY).await;
                }
            }
            () = tokio::time::sleep(WATCH_EVERY) => {}
        }
        let Some(signals) = signals.upgrade() else {
            return;
        };
        if signals.waiting.load(Ordering::SeqCst) == 0 {
            // Unlooked-at work may now be due: the next claim must look for itself.
            locked(&signals.due).at = None;
            continue;
        }
        let looked_at = tokio::time::Instant::now();
        let due = match store.nodes_with_due_tasks(now_ms()).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "looking for nodes with due tasks failed");
                continue;
            }
        };
        {
            let mut seen = locked(&signals.due);
            seen.nodes = due.iter().cloned().collect();
            seen.at = Some(looked_at);
        }
        let by_node = locked(&signals.by_node);
        for node in due {
            if let Some(signal) = by_node.get(&node) {
                signal.notify_waiters();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_owners_name_their_node_and_refuse_odd_workers() {
        assert_eq!(lease_owner("vps-02", "agent").unwrap(), "node:vps-02/agent");
        assert!(lease_owner("vps-02", "a/b").is_err());
        assert!(lease_owner("vps-02", "").is_err());
    }

    #[test]
    fn a_node_works_its_own_queues_and_unpinned_ones() {
        let mut mine = QueueSpec::new("mine", &["backup"]);
        mine.node = Some("vps-02".into());
        let mut theirs = QueueSpec::new("theirs", &["backup"]);
        theirs.node = Some("vps-03".into());
        let open = QueueSpec::new("open", &["noop"]);
        let queues = [mine, theirs, open];
        let names: Vec<&str> = eligible(&queues, "vps-02")
            .map(|q| q.name.as_str())
            .collect();
        assert_eq!(names, ["mine", "open"]);
    }
}
