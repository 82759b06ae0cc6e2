//! Tasks and queues: `/api/v1/tasks…` and `/api/v1/queues`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// One task to enqueue: the body of `POST /api/v1/tasks`, or one element of a [`NewTaskBatch`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// The queue it goes to (declared in the config).
    pub queue: String,
    /// The executor that runs it (one the queue allows).
    pub kind: String,
    /// Input for the executor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Higher runs first (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Not before this time, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at_ms: Option<i64>,
    /// Not before this many milliseconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<i64>,
    /// Attempts before it is dead (default: the queue's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<i64>,
    /// Enqueueing the same key again answers the existing task instead of a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The workspace the work is for (a scoped key's own, whatever is asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// The node whose agent must run it (default: its queue's, when the queue is pinned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Up to 10,000 tasks enqueued in one transaction: `{"tasks": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTaskBatch {
    /// The tasks, all stored or none.
    pub tasks: Vec<NewTask>,
}

/// The body of `POST /api/v1/tasks`: one task, or a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Enqueue {
    /// A batch (a body with `tasks`).
    Batch(NewTaskBatch),
    /// One task.
    One(NewTask),
}

/// Where a task came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskOrigin {
    /// The workspace the work is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// The schedule that fired it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The alert that triggered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// The key (or component) that enqueued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
}

/// A stored task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    /// Unique, increasing in enqueue order.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its executor.
    pub kind: String,
    /// Input for the executor.
    pub payload: Value,
    /// Higher runs first.
    pub priority: i32,
    /// Where it is in its life: `queued`, `running`, `succeeded`, `failed` (waiting to be
    /// retried), `dead` or `cancelled`.
    pub status: String,
    /// Attempts started so far.
    pub attempt: u32,
    /// Attempts before it is dead.
    pub max_attempts: u32,
    /// Not before this time.
    #[schema(format = DateTime)]
    pub run_at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub run_at_ms: i64,
    /// A label the executor reported (`applied`, `skipped`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// What the last successful attempt returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The worker holding the lease, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
    /// When the lease runs out unless extended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub lease_expires_at: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at_ms: Option<i64>,
    /// Increases with every claim; a completion must carry the current one.
    pub fence: i64,
    /// Cancellation was asked for while it ran.
    pub cancel_requested: bool,
    /// Its idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Where it came from.
    pub origin: TaskOrigin,
    /// When it was enqueued.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// When it finished, if it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    /// The node whose agent runs it; absent when any instance may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// One finished attempt at a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskRun {
    /// The task.
    pub task_id: i64,
    /// Which attempt (1-based).
    pub attempt: u32,
    /// The worker that ran it.
    pub worker: String,
    /// When it started.
    #[schema(format = DateTime)]
    pub started_at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// When it ended.
    #[schema(format = DateTime)]
    pub ended_at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub ended_at_ms: i64,
    /// How it ended: `succeeded`, `failed`, `dead`, `cancelled` or `lease_expired`.
    pub status: String,
    /// The executor's outcome label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The error, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The end of what it printed or answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tail: Option<String>,
}

impl TaskRun {
    /// Milliseconds it took.
    pub fn duration_ms(&self) -> i64 {
        self.ended_at_ms - self.started_at_ms
    }
}

/// The answer to enqueueing one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Enqueued {
    /// The task: the new one, or the one its idempotency key already named.
    pub task: Task,
    /// Whether it is new.
    pub created: bool,
}

/// One task of an enqueued batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnqueuedId {
    /// Its id.
    pub id: i64,
    /// Whether it is new (not named by an existing idempotency key).
    pub created: bool,
}

/// The answer to enqueueing a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BatchEnqueued {
    /// The tasks, in the order they were sent.
    pub tasks: Vec<EnqueuedId>,
    /// How many are new.
    pub created: usize,
}

/// What `POST /api/v1/tasks` answers: [`Enqueued`] for one task, [`BatchEnqueued`] for a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EnqueueAnswer {
    /// One task.
    One(Box<Enqueued>),
    /// A batch.
    Batch(BatchEnqueued),
}

/// A task with its finished attempts: `GET /api/v1/tasks/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskDetail {
    /// The task.
    pub task: Task,
    /// Its finished attempts, oldest first.
    pub runs: Vec<TaskRun>,
}

/// A task after a change: cancel and retry answer it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskChanged {
    /// The task as it is now.
    pub task: Task,
}

/// The query of `GET /api/v1/tasks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TaskListQuery {
    /// Tasks after this id (the last page's `next_after`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub after: i64,
    /// Tasks per page (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Only this queue's tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Only tasks in this status (`queued`, `running`, `succeeded`, `dead`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Only tasks of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Only tasks whose executor reported this outcome label (`applied`, `skipped`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Only this workspace's tasks (a scoped key gets its own whatever it asks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A page of tasks: `GET /api/v1/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskList {
    /// The tasks, by id.
    pub tasks: Vec<Task>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<i64>,
}

/// A declared queue, with its tasks per status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Queue {
    /// Its name.
    pub name: String,
    /// The executors its tasks may name.
    pub kinds: Vec<String>,
    /// Tasks run at once by each instance.
    pub concurrency: u32,
    /// Tasks started per second by each instance, if limited.
    pub rate_limit: Option<u32>,
    /// Attempts before a task is dead.
    pub max_attempts: u32,
    /// Longest an attempt may run.
    pub timeout_ms: u64,
    /// How long a claim lasts without a heartbeat.
    pub lease_ms: u64,
    /// Largest payload accepted, in bytes of JSON.
    pub max_payload_bytes: usize,
    /// How long finished tasks are kept; absent keeps them.
    pub retention_ms: Option<u64>,
    /// The node whose agent works it; absent when every instance's workers do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Its tasks per status, every status named.
    pub counts: BTreeMap<String, i64>,
    /// Its tasks that finished within the last [`RECENT_WINDOW_MS`], per final status
    /// (`succeeded`, `dead`, `cancelled`): its throughput.
    #[serde(default)]
    pub finished_recently: BTreeMap<String, i64>,
    /// Since when its longest-waiting due task has waited; `null` when none waits.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub oldest_waiting_since: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub oldest_waiting_since_ms: Option<i64>,
}

/// The window `Queue::finished_recently` counts over: five minutes.
pub const RECENT_WINDOW_MS: i64 = 5 * 60 * 1000;

/// The query of `GET /api/v1/queues`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct QueueListQuery {
    /// `false` leaves each queue's `counts` and `finished_recently` empty: its settings
    /// alone, without counting every stored task (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<bool>,
}

/// The declared queues: `GET /api/v1/queues`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QueueList {
    /// The queues, in the config's order.
    pub queues: Vec<Queue>,
}
