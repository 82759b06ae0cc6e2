//! The shapes of the task-queue calls every backend implements.

use steward_core::audit::Actor;
use steward_core::task::{Completion, TaskRun};

use crate::StoreError;
use crate::domain::domain_trait;
use std::sync::Arc;

use steward_core::task::{NewTask, Task, TaskStatus};

/// The most tasks one list call returns.
pub const MAX_TASK_PAGE: u32 = 1_000;
/// The most tasks one claim takes.
pub const MAX_CLAIM: u32 = 1_000;

/// What an enqueue did for one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The task's id (the existing one's for a repeated idempotency key).
    pub id: i64,
    /// False when the idempotency key named an existing task.
    pub created: bool,
}

/// A worker asking for tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The queue to take from.
    pub queue: String,
    /// The worker's unique name; becomes the lease owner.
    pub worker: String,
    /// At most this many (capped at [`MAX_CLAIM`]).
    pub limit: u32,
    /// How long the leases last without a heartbeat.
    pub lease_ms: u64,
    /// Only tasks pinned to this node (an agent's claim); `None` takes only unpinned ones.
    pub node: Option<String>,
}

/// The condition (on `tasks`, the same text on both backends) an expired lease must meet to be
/// taken back. A task pinned to a node can run only there, so taking it back gains nothing while
/// the hub has not heard from that node since the lease ran out: the agent may be cut off from
/// the hub and still running it, and its completion is then accepted when it is delivered. Once
/// the node has been heard from after the expiry without extending the lease (its agent
/// restarted and lost the attempt), or the node is gone, the lease is taken back as any other.
#[macro_export]
macro_rules! reapable {
    () => {
        "(tasks.node = '' OR NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = tasks.node \
         AND coalesce(n.last_seen_ms, 0) <= tasks.lease_expires_at_ms))"
    };
}

/// What a heartbeat learnt about one lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseState {
    /// The task.
    pub task_id: i64,
    /// False when the worker no longer holds the lease (it expired and was taken back).
    pub held: bool,
    /// Cancellation was asked for: the worker should stop the attempt.
    pub cancel_requested: bool,
}

/// A lease returned to the queue, or ended, by the reaper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    /// The task.
    pub task_id: i64,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// The attempt whose lease expired.
    pub attempt: u32,
    /// The worker that lost it.
    pub worker: String,
    /// What the task became: `queued` again, `dead` when out of attempts, `cancelled` when
    /// cancellation had been asked for.
    pub status: TaskStatus,
}

/// Which tasks to list: those with an id above `after_id` (keyset pagination), oldest first,
/// filtered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskQuery {
    /// Only ids greater than this.
    pub after_id: i64,
    /// At most this many (capped at [`MAX_TASK_PAGE`]).
    pub limit: u32,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this status.
    pub status: Option<TaskStatus>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this outcome label.
    pub outcome: Option<String>,
    /// Only tasks for this workspace.
    pub workspace: Option<String>,
}

/// How many tasks of a queue are in one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCount {
    /// The queue.
    pub queue: String,
    /// The status.
    pub status: TaskStatus,
    /// How many.
    pub count: i64,
    /// For `queued`: since when the longest-waiting due task has waited (its enqueue time, or
    /// its run-at time when it was enqueued to run later).
    pub oldest_due_at_ms: Option<i64>,
}

/// A wake-up: tasks may be ready in this queue.
pub type Wakeup = Arc<str>;

/// The wake-up that means "any queue" (sent when notifications may have been missed).
pub const ANY_QUEUE: &str = "*";

/// How many wake-ups may wait for a slow listener before it is told it lagged (and then
/// checks every queue).
pub const WAKEUP_BUFFER: usize = 1_024;

/// Pairs an enqueue's inputs with what the backend inserted. `inserted` holds the `(id, key)`
/// of each new row, in input order (ascending ids); `existing` maps the idempotency keys that
/// were not inserted to the ids of the tasks holding them. A task is new when it has no key,
/// or when its key is used first in the call and was inserted.
pub fn pair_enqueued(
    tasks: &[steward_core::task::NewTask],
    inserted: &[(i64, Option<String>)],
    existing: &std::collections::HashMap<String, i64>,
) -> Result<Vec<Enqueued>, crate::StoreError> {
    let inserted_keys: std::collections::HashMap<&str, i64> = inserted
        .iter()
        .filter_map(|(id, key)| key.as_deref().map(|k| (k, *id)))
        .collect();
    let mut new_rows = inserted.iter();
    let mut seen = std::collections::HashSet::new();
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        let answer = match task.idempotency_key.as_deref() {
            None => new_row(&mut new_rows, None)?,
            Some(key) if seen.insert(key) && inserted_keys.contains_key(key) => {
                new_row(&mut new_rows, Some(key))?
            }
            Some(key) => Enqueued {
                id: inserted_keys
                    .get(key)
                    .or_else(|| existing.get(key))
                    .copied()
                    .ok_or_else(|| {
                        crate::StoreError::Corrupt(format!(
                            "idempotency key `{key}` was neither inserted nor found"
                        ))
                    })?,
                created: false,
            },
        };
        answers.push(answer);
    }
    Ok(answers)
}

fn new_row<'a>(
    rows: &mut impl Iterator<Item = &'a (i64, Option<String>)>,
    key: Option<&str>,
) -> Result<Enqueued, crate::StoreError> {
    match rows.next() {
        Some((id, got)) if got.as_deref() == key => Ok(Enqueued {
            id: *id,
            created: true,
        }),
        _ => Err(crate::StoreError::Corrupt(
            "inserted tasks do not match the enqueued ones".into(),
        )),
    }
}

/// A completion as the columns a backend writes.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRow {
    /// The status the task takes.
    pub status: &'static str,
    /// The result, as JSON text.
    pub result: Option<String>,
    /// The error, cut to its tail.
    pub error: Option<String>,
    /// The next run-at, for a retry.
    pub retry_at_ms: Option<i64>,
    /// The finish time, for a final status.
    pub finished_at_ms: Option<i64>,
    /// The outcome label, cut to its limit.
    pub outcome: Option<String>,
    /// The output tail, cut to its limit.
    pub output_tail: Option<String>,
}

impl CompletionRow {
    /// The columns for `completion`: texts cut to their limits, and any NUL a program printed
    /// or an agent answered made visible (U+FFFD), since no backend stores one the same way
    /// (PostgreSQL refuses it, and a completion it refuses would be retried for ever).
    pub fn of(completion: &steward_core::task::Completion) -> Self {
        use steward_core::task::{MAX_OUTCOME_LEN, MAX_TAIL_BYTES, Verdict, head, tail};
        use steward_core::text::without_nul;
        let status = completion.verdict.status();
        let storable = |text: &str| without_nul(text).into_owned();
        Self {
            status: status.as_str(),
            result: match &completion.verdict {
                Verdict::Succeeded {
                    result: Some(result),
                } => Some(storable_json(result)),
                _ => None,
            },
            error: completion
                .verdict
                .error()
                .map(|e| storable(tail(e, MAX_TAIL_BYTES))),
            retry_at_ms: match completion.verdict {
                Verdict::Retry { retry_at_ms, .. } => Some(retry_at_ms),
                _ => None,
            },
            finished_at_ms: status.is_finished().then_some(completion.ended_at_ms),
            outcome: completion
                .outcome
                .as_deref()
                .map(|o| storable(head(o, MAX_OUTCOME_LEN))),
            output_tail: completion
                .output_tail
                .as_deref()
                .map(|t| storable(tail(t, MAX_TAIL_BYTES))),
        }
    }
}

/// `value` as JSON text without NUL: the common case costs one scan of the text; a value with
/// a NUL in a string or key (written `\u0000`) is cleaned and written again.
fn storable_json(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if !text.contains("\\u0000") {
        return text;
    }
    let mut clean = value.clone();
    steward_core::text::json_without_nul(&mut clean);
    clean.to_string()
}

/// The first completion of each task in a batch: a task reported twice in one batch is
/// completed at most once, by the first report.
pub fn first_completions(
    completions: &[steward_core::task::Completion],
) -> Vec<&steward_core::task::Completion> {
    let mut seen = std::collections::HashSet::new();
    completions
        .iter()
        .filter(|c| seen.insert(c.task_id))
        .collect()
}

/// The answers to a batch of completions, given the task ids whose completion was accepted.
pub fn completion_answers(
    completions: &[steward_core::task::Completion],
    accepted: &[i64],
) -> Vec<bool> {
    let accepted: std::collections::HashSet<i64> = accepted.iter().copied().collect();
    let mut answered = std::collections::HashSet::new();
    completions
        .iter()
        .map(|c| accepted.contains(&c.task_id) && answered.insert(c.task_id))
        .collect()
}

/// What cancelling a task does, given its status now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelStep {
    /// Queued or awaiting retry: cancelled at once.
    CancelNow,
    /// Running: its worker is asked to stop it.
    RequestStop,
}

/// How `task` is cancelled; a finished task cannot be ([`crate::StoreError::State`]).
pub fn cancel_step(task: &Task) -> Result<CancelStep, crate::StoreError> {
    match task.status {
        TaskStatus::Queued | TaskStatus::Failed => Ok(CancelStep::CancelNow),
        TaskStatus::Running => Ok(CancelStep::RequestStop),
        finished => Err(crate::StoreError::State(format!(
            "task {} is {finished} and cannot be cancelled",
            task.id
        ))),
    }
}

/// Checks that `task` may be retried: only dead or cancelled tasks can, and not a pipeline
/// step's (its run is retried instead, which starts the step again with a fresh task).
pub fn check_retryable(task: &Task) -> Result<(), crate::StoreError> {
    if let Some(run) = task.origin.pipeline_run {
        return Err(crate::StoreError::State(format!(
            "task {} is a step of pipeline run {run}; retry the run instead",
            task.id
        )));
    }
    if matches!(task.status, TaskStatus::Dead | TaskStatus::Cancelled) {
        return Ok(());
    }
    Err(crate::StoreError::State(format!(
        "task {} is {}; only dead or cancelled tasks can be retried",
        task.id, task.status
    )))
}

/// The error for a task id that does not exist.
pub fn task_not_found(id: i64) -> crate::StoreError {
    crate::StoreError::NotFound(format!("task {id}"))
}

/// A stored status name, or [`crate::StoreError::Corrupt`].
pub fn parse_status(status: &str) -> Result<TaskStatus, crate::StoreError> {
    status
        .parse()
        .map_err(|e: steward_core::task::UnknownTaskStatus| {
            crate::StoreError::Corrupt(e.to_string())
        })
}

/// How many tasks an enqueue created per queue, by queue: what the enqueue adds to the queued
/// counts (a repeated idempotency key creates nothing).
pub fn created_per_queue(tasks: &[NewTask], answers: &[Enqueued]) -> Vec<(String, i64)> {
    let mut created = std::collections::BTreeMap::<&str, i64>::new();
    for (task, answer) in tasks.iter().zip(answers) {
        if answer.created {
            *created.entry(task.queue.as_str()).or_default() += 1;
        }
    }
    created
        .into_iter()
        .map(|(queue, n)| (queue.to_owned(), n))
        .collect()
}

/// The queues among counted `(queue, status, count)` rows that have queued tasks: those whose
/// oldest due task is worth looking up.
pub fn queues_with_queued(counted: &[(String, String, i64)]) -> Vec<String> {
    counted
        .iter()
        .filter(|(_, status, count)| status == TaskStatus::Queued.as_str() && *count > 0)
        .map(|(queue, _, _)| queue.clone())
        .collect()
}

/// Joins counted `(queue, status, count)` rows with each queue's oldest due task, which
/// belongs on the queue's `queued` row: the rows [`task_counts`] takes.
pub fn with_oldest_due(
    counted: Vec<(String, String, i64)>,
    oldest: &[(String, i64)],
) -> Vec<(String, String, i64, Option<i64>)> {
    counted
        .into_iter()
        .map(|(queue, status, count)| {
            let due = (status == TaskStatus::Queued.as_str())
                .then(|| oldest.iter().find(|(q, _)| *q == queue).map(|(_, at)| *at))
                .flatten();
            (queue, status, count, due)
        })
        .collect()
}

/// Counts read as `(queue, status, count, oldest due enqueue time)` rows.
pub fn task_counts(
    rows: Vec<(String, String, i64, Option<i64>)>,
) -> Result<Vec<TaskCount>, crate::StoreError> {
    rows.into_iter()
        .map(|(queue, status, count, oldest)| {
            Ok(TaskCount {
                queue,
                status: parse_status(&status)?,
                count,
                oldest_due_at_ms: oldest,
            })
        })
        .collect()
}

/// The state of each lease of a heartbeat, given the `(task id, cancel requested)` pairs of the
/// leases the store extended (the others were lost).
pub fn lease_states(leases: &[(i64, i64)], extended: Vec<(i64, bool)>) -> Vec<LeaseState> {
    let extended: std::collections::HashMap<i64, bool> = extended.into_iter().collect();
    leases
        .iter()
        .map(|(id, _)| LeaseState {
            task_id: *id,
            held: extended.contains_key(id),
            cancel_requested: extended.get(id).copied().unwrap_or(false),
        })
        .collect()
}

/// The idempotency keys of `tasks` that `inserted` does not hold: they name existing tasks.
pub fn keys_not_inserted<'t>(
    tasks: &'t [NewTask],
    inserted: &[(i64, Option<String>)],
) -> Vec<&'t str> {
    let fresh: std::collections::HashSet<&str> =
        inserted.iter().filter_map(|(_, k)| k.as_deref()).collect();
    tasks
        .iter()
        .filter_map(|t| t.idempotency_key.as_deref())
        .filter(|k| !fresh.contains(k))
        .collect()
}

/// Puts claimed tasks in the order they are worked: highest priority, then oldest run-at.
pub fn sort_claimed(tasks: &mut [Task]) {
    tasks.sort_by_key(|t| (std::cmp::Reverse(t.priority), t.run_at_ms, t.id));
}

/// Each queue name once, sorted.
pub fn distinct_queues<'q>(queues: impl IntoIterator<Item = &'q str>) -> Vec<&'q str> {
    let mut queues: Vec<&str> = queues.into_iter().collect();
    queues.sort_unstable();
    queues.dedup();
    queues
}

/// The error kept on a task whose lease ran out.
pub fn lease_expired_error(worker: &str) -> String {
    format!("lease expired: worker `{worker}` stopped sending heartbeats")
}

domain_trait! {
    /// The task queue's persistence: enqueueing, leasing, completing, reaping and reading tasks.
    pub trait TaskStore {
        /// Stores `tasks` in one transaction, audited as one `task.enqueue` by `actor`. A task whose
        /// idempotency key exists already (in the store or earlier in the call) is not stored
        /// again: its answer names the existing task. Answers are in the order of `tasks`. The
        /// caller validates the tasks first.
        async fn enqueue_tasks(
            &self,
            tasks: &[NewTask],
            actor: &Actor,
        ) -> Result<Vec<Enqueued>, StoreError>;

        /// Leases up to `claim.limit` due tasks of `claim.queue` to `claim.worker`, highest priority
        /// first, then oldest run-at: each becomes `running`, its attempt and fence go up by one.
        /// Concurrent claims (from any process) never take the same task.
        async fn claim_tasks(&self, claim: &Claim) -> Result<Vec<Task>, StoreError>;

        /// The earliest run-at among `queue`'s tasks waiting to run (queued, or failed and waiting
        /// for their retry), so an idle worker can sleep until exactly then.
        async fn next_due_ms(&self, queue: &str) -> Result<Option<i64>, StoreError>;

        /// The nodes some of whose pinned tasks are due at `now_ms`, so the hub wakes only
        /// their agents' waiting claims.
        async fn nodes_with_due_tasks(&self, now_ms: i64) -> Result<Vec<String>, StoreError>;

        /// Extends `worker`'s leases on `(task id, fence)` pairs to now + `lease_ms` and reports,
        /// for each, whether it is still held and whether cancellation was asked for.
        async fn extend_leases(
            &self,
            worker: &str,
            leases: &[(i64, i64)],
            lease_ms: u64,
        ) -> Result<Vec<LeaseState>, StoreError>;

        /// Records finished attempts in one transaction: each completion whose fence is still the
        /// task's current one moves the task to its verdict's status and adds a run row; a stale
        /// one changes nothing. Answers (accepted or not) are in the order of `completions`.
        async fn complete_tasks(&self, completions: &[Completion]) -> Result<Vec<bool>, StoreError>;

        /// Takes back up to `limit` leases that expired before `now_ms`, recording each as a
        /// `lease_expired` run: the task is queued again, dead when out of attempts, or cancelled
        /// when cancellation had been asked for.
        async fn reap_expired_leases(&self, now_ms: i64, limit: u32)
        -> Result<Vec<Reaped>, StoreError>;

        /// One task.
        async fn task(&self, id: i64) -> Result<Option<Task>, StoreError>;

        /// A task's finished attempts, oldest first.
        async fn task_runs(&self, id: i64) -> Result<Vec<TaskRun>, StoreError>;

        /// Tasks matching `query`, by id.
        async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError>;

        /// Cancels a task, audited as `task.cancel`: a queued or failed one is cancelled at once;
        /// for a running one cancellation is requested (its worker stops it). A finished task is
        /// [`StoreError::State`].
        async fn cancel_task(&self, id: i64, actor: &Actor) -> Result<Task, StoreError>;

        /// Queues a dead or cancelled task again with fresh attempts, audited as `task.retry`.
        async fn retry_task(&self, id: i64, actor: &Actor) -> Result<Task, StoreError>;

        /// Tasks per queue and status.
        async fn task_counts(&self) -> Result<Vec<TaskCount>, StoreError>;

        /// Tasks of each of `queues` that finished (succeeded, dead or cancelled) at or after
        /// `since_ms`, per queue and status: the queues' recent throughput. Reads only the recent
        /// rows of each queue, however many are stored.
        async fn tasks_finished_since(
            &self,
            queues: &[String],
            since_ms: i64,
        ) -> Result<Vec<TaskCount>, StoreError>;

        /// Deletes up to `limit` tasks of `queue` (with their runs) that finished before
        /// `finished_before_ms`; returns how many.
        async fn purge_tasks(
            &self,
            queue: &str,
            finished_before_ms: i64,
            limit: u32,
        ) -> Result<u64, StoreError>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_core::task::{NewTask, TaskOrigin};

    fn task(key: Option<&str>) -> NewTask {
        NewTask {
            timeout_ms: None,
            queue: "q".into(),
            kind: "noop".into(),
            payload: "{}".into(),
            priority: 0,
            run_at_ms: 0,
            max_attempts: 1,
            idempotency_key: key.map(Into::into),
            origin: TaskOrigin::default(),
            node: None,
        }
    }

    #[test]
    fn pairs_new_existing_and_repeated_keys() {
        let tasks = [
            task(None),
            task(Some("a")),
            task(Some("b")),
            task(Some("a")),
        ];
        let inserted = [(10, None), (11, Some("a".to_string()))];
        let existing = [("b".to_string(), 3)].into_iter().collect();
        let answers = pair_enqueued(&tasks, &inserted, &existing).unwrap();
        let got: Vec<(i64, bool)> = answers.iter().map(|a| (a.id, a.created)).collect();
        assert_eq!(got, [(10, true), (11, true), (3, false), (11, false)]);
    }

    #[test]
    fn a_mismatch_is_an_error_not_a_wrong_answer() {
        let tasks = [task(None)];
        assert!(pair_enqueued(&tasks, &[], &Default::default()).is_err());
    }

    #[test]
    fn the_oldest_due_time_goes_on_each_queues_queued_row() {
        let counted = vec![
            ("a".to_owned(), "queued".to_owned(), 3),
            ("a".to_owned(), "succeeded".to_owned(), 9),
            ("b".to_owned(), "queued".to_owned(), 0),
            ("c".to_owned(), "running".to_owned(), 1),
        ];
        assert_eq!(queues_with_queued(&counted), ["a"]);
        let rows = with_oldest_due(counted, &[("a".to_owned(), 42)]);
        let due: Vec<Option<i64>> = rows.iter().map(|r| r.3).collect();
        assert_eq!(due, [Some(42), None, None, None]);
    }

    #[test]
    fn only_created_tasks_are_counted_per_queue() {
        let mut b = task(None);
        b.queue = "b".into();
        let tasks = [task(Some("k")), b.clone(), task(None), b];
        let answers = [(1, false), (2, true), (3, true), (4, true)]
            .map(|(id, created)| Enqueued { id, created });
        assert_eq!(
            created_per_queue(&tasks, &answers),
            [("b".to_owned(), 2), ("q".to_owned(), 1)]
        );
    }
}
