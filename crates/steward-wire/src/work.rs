//! Remote work: the tasks a node's agent claims from the hub, the leases it keeps alive, and
//! the results it reports (`/api/v1/nodes/{id}/tasks/…`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The most tasks one claim may take.
pub const MAX_REMOTE_CLAIM: u32 = 100;
/// The longest a claim waits for work before answering empty: under the API's request
/// timeout, with room for the answer.
pub const MAX_CLAIM_WAIT_MS: u64 = 20_000;
/// The most leases or results in one call.
pub const MAX_REMOTE_BATCH: usize = 1_000;

/// `POST /api/v1/nodes/{id}/tasks/claim`: take up to `limit` due tasks pinned to the node,
/// waiting up to `wait_ms` for one to be due.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The agent process claiming (a name of its own, kept in the lease owner after the
    /// node's id): letters, digits, `-`, `_` and `.`, at most 64.
    pub worker: String,
    /// At most this many (1 to 100): the agent's free slots.
    pub limit: u32,
    /// How long to wait for work when none is due, in ms (at most 20,000).
    #[serde(default)]
    pub wait_ms: u64,
}

/// A task leased to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RemoteTask {
    /// The task.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// The executor, as the agent's own config declares it.
    pub kind: String,
    /// Input for the executor.
    pub payload: Value,
    /// This attempt (1-based).
    pub attempt: u32,
    /// Attempts before it is dead.
    pub max_attempts: u32,
    /// The lease's fencing token: results and renewals must carry it.
    pub fence: i64,
    /// The longest the attempt may run, in ms.
    pub timeout_ms: u64,
    /// How long the lease lasts without a renewal, in ms (renew every third of it).
    pub lease_ms: u64,
    /// When it became due (ms since the Unix epoch).
    pub ready_at_ms: i64,
}

/// The answer to a [`ClaimRequest`]: empty when nothing was due within the wait.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Claimed {
    /// The tasks leased, highest priority first.
    pub tasks: Vec<RemoteTask>,
}

/// One lease an agent holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeldLease {
    /// The task.
    pub id: i64,
    /// The fence it was claimed with.
    pub fence: i64,
}

/// `POST /api/v1/nodes/{id}/tasks/leases`: renew the leases of attempts still running.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRenewal {
    /// The agent process, as it claimed.
    pub worker: String,
    /// The leases (at most 1,000).
    pub leases: Vec<HeldLease>,
}

/// What the hub knows of one renewed lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LeaseStatus {
    /// The task.
    pub id: i64,
    /// False when the lease was lost (taken back, or the task was given to another attempt):
    /// the agent stops the attempt, and its result would be refused.
    pub held: bool,
    /// Cancellation was asked for: the agent stops the attempt and reports it cancelled.
    pub cancel_requested: bool,
}

/// The answer to a [`LeaseRenewal`], one entry per lease sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LeaseStatuses {
    /// The leases, in the order sent.
    pub leases: Vec<LeaseStatus>,
}

/// How an attempt on a node ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RemoteEnd {
    /// The executor succeeded.
    Succeeded,
    /// The executor failed; `retryable` says whether another attempt may help.
    Failed,
    /// Stopped because cancellation was asked for.
    Cancelled,
    /// Stopped because the agent shut down: the task runs again.
    Interrupted,
}

/// One attempt's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteResult {
    /// The task.
    pub id: i64,
    /// The fence it was claimed with.
    pub fence: i64,
    /// The attempt.
    pub attempt: u32,
    /// When the attempt started on the node (ms since the Unix epoch).
    pub started_at_ms: i64,
    /// When it ended.
    pub ended_at_ms: i64,
    /// How it ended.
    pub end: RemoteEnd,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether a failure may be retried (false sends the task straight to dead).
    #[serde(default)]
    pub retryable: bool,
    /// What a successful attempt returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// A label the executor reported (`applied`, `skipped`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The end of what the work printed or answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<String>,
}

/// `POST /api/v1/nodes/{id}/tasks/complete`: attempts' results, in the order they ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultBatch {
    /// The agent process, as it claimed.
    pub worker: String,
    /// The results (at most 1,000).
    pub results: Vec<RemoteResult>,
}

/// The answer to a [`ResultBatch`], one flag per result sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResultsTaken {
    /// True when the result was recorded; false when its lease had moved on (taken back,
    /// given to another attempt, the task cancelled), which no retry changes.
    pub accepted: Vec<bool>,
}
