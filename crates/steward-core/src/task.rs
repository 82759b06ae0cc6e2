//! Durable tasks: what a task is, the states it moves through, the limits an enqueue must
//! respect, and the retry policy that decides when a failed attempt runs again.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::registry::is_valid_name;

/// The most tasks one enqueue call may carry.
pub const MAX_ENQUEUE_BATCH: usize = 10_000;
/// Priorities run from `-MAX_PRIORITY` to `MAX_PRIORITY`; higher runs first.
pub const MAX_PRIORITY: i32 = 1_000;
/// The furthest in the future a task may be scheduled: one year.
pub const MAX_DELAY_MS: i64 = 366 * 24 * 3600 * 1000;
/// The most attempts a task may be given.
pub const MAX_ATTEMPTS: u32 = 1_000;
/// The longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
/// The longest outcome label.
pub const MAX_OUTCOME_LEN: usize = 64;
/// How much of an error or output is kept on a run.
pub const MAX_TAIL_BYTES: usize = 8 * 1024;

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for a worker (possibly not before its run-at time).
    Queued,
    /// Leased by a worker.
    Running,
    /// Finished well.
    Succeeded,
    /// The last attempt failed; it runs again at its run-at time.
    Failed,
    /// Out of attempts (or failed for good); kept until retried or purged.
    Dead,
    /// Cancelled before it finished.
    Cancelled,
}

impl TaskStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TaskStatus; 6] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Dead,
        Self::Cancelled,
    ];

    /// The name used in the store, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    /// True once nothing more will happen to the task by itself.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Dead | Self::Cancelled)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a status name that is not one of [`TaskStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown task status `{0}` (expected queued, running, succeeded, failed, dead or cancelled)"
)]
pub struct UnknownTaskStatus(pub String);

impl FromStr for TaskStatus {
    type Err = UnknownTaskStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownTaskStatus(s.to_string()))
    }
}

/// Where a task came from, so that tasks can be traced and filtered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The pipeline run it is a step of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_run: Option<i64>,
}

/// A task to enqueue, after validation.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// The queue it goes to.
    pub queue: String,
    /// The executor that runs it.
    pub kind: String,
    /// Input for the executor, as JSON text.
    pub payload: String,
    /// Higher runs first.
    pub priority: i32,
    /// Not before this time (ms since the Unix epoch).
    pub run_at_ms: i64,
    /// Attempts before it is dead.
    pub max_attempts: u32,
    /// Enqueueing the same key again returns the existing task.
    pub idempotency_key: Option<String>,
    /// Where it came from.
    pub origin: TaskOrigin,
    /// The node whose agent must run it; `None` lets any instance's workers run it.
    pub node: Option<String>,
    /// How long one attempt may run, when not its queue's `timeout` (a pipeline step's own).
    pub timeout_ms: Option<u64>,
}

/// A stored task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Unique, increasing in enqueue order.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its executor.
    pub kind: String,
    /// Input for the executor.
    pub payload: serde_json::Value,
    /// Higher runs first.
    pub priority: i32,
    /// Where it is in its life.
    pub status: TaskStatus,
    /// Attempts started so far.
    pub attempt: u32,
    /// Attempts before it is dead.
    pub max_attempts: u32,
    /// Not before this time.
    pub run_at_ms: i64,
    /// A label the executor reported (`applied`, `skipped`, ...).
    pub outcome: Option<String>,
    /// What the last successful attempt returned.
    pub result: Option<serde_json::Value>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The worker holding the lease, while running.
    pub lease_owner: Option<String>,
    /// When the lease runs out unless extended.
    pub lease_expires_at_ms: Option<i64>,
    /// Increases with every claim; a completion must carry the current one.
    pub fence: i64,
    /// Cancellation was asked for while it ran.
    pub cancel_requested: bool,
    /// Its idempotency key.
    pub idempotency_key: Option<String>,
    /// Where it came from.
    pub origin: TaskOrigin,
    /// Enqueue time.
    pub created_at_ms: i64,
    /// When it finished, if it has.
    pub finished_at_ms: Option<i64>,
    /// The node whose agent must run it.
    pub node: Option<String>,
    /// How long one attempt may run, when not its queue's `timeout`.
    pub timeout_ms: Option<u64>,
}

/// One attempt at a task, kept after it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRun {
    /// The task.
    pub task_id: i64,
    /// Which attempt (1-based).
    pub attempt: u32,
    /// The worker that ran it.
    pub worker: String,
    /// Start time.
    pub started_at_ms: i64,
    /// End time.
    pub ended_at_ms: i64,
    /// How it ended: `succeeded`, `failed`, `dead`, `cancelled` or `lease_expired`.
    pub status: String,
    /// The executor's outcome label.
    pub outcome: Option<String>,
    /// The error, if it failed.
    pub error: Option<String>,
    /// The end of what it printed or answered.
    pub output_tail: Option<String>,
}

impl TaskRun {
    /// Milliseconds it took.
    pub fn duration_ms(&self) -> i64 {
        self.ended_at_ms - self.started_at_ms
    }
}

/// How an attempt ended, as a worker reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Done; `result` is kept on the task.
    Succeeded {
        /// What the executor returned.
        result: Option<serde_json::Value>,
    },
    /// Failed; runs again at `retry_at_ms`.
    Retry {
        /// Why.
        error: String,
        /// When to run again.
        retry_at_ms: i64,
    },
    /// Failed for good (out of attempts, or not worth retrying).
    Dead {
        /// Why.
        error: String,
    },
    /// Stopped because cancellation was asked for.
    Cancelled,
}

impl Verdict {
    /// The status the task takes.
    pub fn status(&self) -> TaskStatus {
        match self {
            Self::Succeeded { .. } => TaskStatus::Succeeded,
            Self::Retry { .. } => TaskStatus::Failed,
            Self::Dead { .. } => TaskStatus::Dead,
            Self::Cancelled => TaskStatus::Cancelled,
        }
    }

    /// The error text, if the attempt failed.
    pub fn error(&self) -> Option<&str> {
        match self {
            Self::Retry { error, .. } | Self::Dead { error } => Some(error),
            _ => None,
        }
    }
}

/// A worker's report of one finished attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The task.
    pub task_id: i64,
    /// The fencing token of the claim; a stale one is refused.
    pub fence: i64,
    /// The worker that ran it.
    pub worker: String,
    /// Which attempt.
    pub attempt: u32,
    /// Start time.
    pub started_at_ms: i64,
    /// End time.
    pub ended_at_ms: i64,
    /// How it ended.
    pub verdict: Verdict,
    /// The executor's outcome label.
    pub outcome: Option<String>,
    /// The end of what it printed or answered.
    pub output_tail: Option<String>,
}

/// Why a task to enqueue was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// The queue name is not a valid name.
    #[error("`queue`: `{0}` is not a valid name")]
    QueueName(String),
    /// The kind is not a valid name.
    #[error("`kind`: `{0}` is not a valid name")]
    KindName(String),
    /// The priority is out of range.
    #[error("`priority`: {0} is out of range (-{MAX_PRIORITY} to {MAX_PRIORITY})")]
    Priority(i64),
    /// The run-at time is too far away.
    #[error("`run_at`/`delay`: at most one year ahead")]
    Delay,
    /// Both a run-at time and a delay were given.
    #[error("give `run_at` or `delay_ms`, not both")]
    RunAtAndDelay,
    /// The delay is negative.
    #[error("`delay_ms`: must not be negative")]
    NegativeDelay,
    /// The attempts are out of range.
    #[error("`max_attempts`: {0} is out of range (1 to {MAX_ATTEMPTS})")]
    Attempts(i64),
    /// The idempotency key is empty or too long.
    #[error("`idempotency_key`: must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} bytes")]
    IdempotencyKey,
    /// An origin field is not a valid name.
    #[error("`origin.{0}`: not a valid name")]
    Origin(&'static str),
    /// The node is not a valid node id.
    #[error("`node`: {0}")]
    Node(crate::node::NodeIdError),
}

impl NewTask {
    /// Checks the limits every task must respect, whatever its queue, at time `now_ms`.
    pub fn validate(&self, now_ms: i64) -> Result<(), TaskError> {
        if !is_valid_name(&self.queue) {
            return Err(TaskError::QueueName(self.queue.clone()));
        }
        if !is_valid_name(&self.kind) {
            return Err(TaskError::KindName(self.kind.clone()));
        }
        // A range, not `abs()`: the absolute value of `i32::MIN` does not fit an `i32`.
        if !(-MAX_PRIORITY..=MAX_PRIORITY).contains(&self.priority) {
            return Err(TaskError::Priority(i64::from(self.priority)));
        }
        if self.run_at_ms > now_ms.saturating_add(MAX_DELAY_MS) {
            return Err(TaskError::Delay);
        }
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(TaskError::Attempts(i64::from(self.max_attempts)));
        }
        if self
            .idempotency_key
            .as_ref()
            .is_some_and(|k| k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY_LEN)
        {
            return Err(TaskError::IdempotencyKey);
        }
        let origin = &self.origin;
        for (field, value) in [
            ("workspace", &origin.workspace),
            ("schedule", &origin.schedule),
            ("alert", &origin.alert),
        ] {
            if value.as_deref().is_some_and(|v| !is_valid_name(v)) {
                return Err(TaskError::Origin(field));
            }
        }
        if let Some(node) = &self.node {
            crate::node::check_node_id(node).map_err(TaskError::Node)?;
        }
        Ok(())
    }
}

/// A priority given as any integer (a JSON number, a flag): within `-MAX_PRIORITY` to
/// `MAX_PRIORITY`, or refused.
pub fn priority_from(value: i64) -> Result<i32, TaskError> {
    i32::try_from(value)
        .ok()
        .filter(|p| (-MAX_PRIORITY..=MAX_PRIORITY).contains(p))
        .ok_or(TaskError::Priority(value))
}

/// Attempts given as any integer: 1 to [`MAX_ATTEMPTS`], or refused.
pub fn attempts_from(value: i64) -> Result<u32, TaskError> {
    u32::try_from(value)
        .ok()
        .filter(|n| (1..=MAX_ATTEMPTS).contains(n))
        .ok_or(TaskError::Attempts(value))
}

/// When a task runs, given at most one of a run-at time and a non-negative delay from `now_ms`
/// (neither: now). A delay past the end of time saturates, and [`NewTask::validate`] refuses
/// it as too far ahead.
pub fn run_at_from(
    run_at_ms: Option<i64>,
    delay_ms: Option<i64>,
    now_ms: i64,
) -> Result<i64, TaskError> {
    match (run_at_ms, delay_ms) {
        (Some(_), Some(_)) => Err(TaskError::RunAtAndDelay),
        (Some(at), None) => Ok(at),
        (None, Some(delay)) if delay < 0 => Err(TaskError::NegativeDelay),
        (None, Some(delay)) => Ok(now_ms.saturating_add(delay)),
        (None, None) => Ok(now_ms),
    }
}

/// When failed attempts run again: exponential backoff from `base_ms`, capped at `cap_ms`, with
/// full jitter (a uniform pick between zero and the capped delay) so that tasks failing
/// together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before a task is dead.
    pub max_attempts: u32,
    /// The delay ceiling after the first failure.
    pub base_ms: u64,
    /// The largest delay ceiling.
    pub cap_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_ms: 1_000,
            cap_ms: 300_000,
        }
    }
}

impl RetryPolicy {
    /// The delay ceiling after failed attempt `attempt` (1-based): `min(cap, base * 2^(attempt-1))`.
    pub fn ceiling_ms(&self, attempt: u32) -> u64 {
        let doubling = attempt.saturating_sub(1).min(63);
        self.base_ms
            .saturating_mul(1u64 << doubling)
            .min(self.cap_ms)
    }

    /// The delay before the next attempt, `unit` being a uniform random number in `[0, 1)`.
    pub fn delay_ms(&self, attempt: u32, unit: f64) -> u64 {
        let ceiling = self.ceiling_ms(attempt);
        // Rounding down keeps the delay within the ceiling for every unit below one.
        ((ceiling as f64) * unit.clamp(0.0, 1.0))
            .floor()
            .min(ceiling as f64) as u64
    }

    /// What a failure of `attempt` (of `max_attempts`) becomes at `now_ms`.
    pub fn after_failure(
        &self,
        attempt: u32,
        max_attempts: u32,
        error: String,
        now_ms: i64,
        unit: f64,
    ) -> Verdict {
        if attempt >= max_attempts {
            return Verdict::Dead { error };
        }
        let delay = i64::try_from(self.delay_ms(attempt, unit)).unwrap_or(i64::MAX);
        Verdict::Retry {
            error,
            retry_at_ms: now_ms.saturating_add(delay),
        }
    }
}

/// Cuts `text` to its last `max` bytes on a character boundary (the end of output is what
/// explains a failure).
pub fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Cuts `text` to its first `max` bytes on a character boundary.
pub fn head(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn task() -> NewTask {
        NewTask {
            timeout_ms: None,
            queue: "default".into(),
            kind: "noop".into(),
            payload: "{}".into(),
            priority: 0,
            run_at_ms: 0,
            max_attempts: 3,
            idempotency_key: None,
            origin: TaskOrigin::default(),
            node: None,
        }
    }

    #[test]
    fn statuses_round_trip() {
        for status in TaskStatus::ALL {
            assert_eq!(status.as_str().parse::<TaskStatus>(), Ok(status));
        }
        assert!("done".parse::<TaskStatus>().is_err());
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(task().validate(0), Ok(()));
        let bad = NewTask {
            priority: 5_000,
            ..task()
        };
        assert_eq!(bad.validate(0), Err(TaskError::Priority(5_000)));
        let bad = NewTask {
            run_at_ms: MAX_DELAY_MS + 1,
            ..task()
        };
        assert_eq!(bad.validate(0), Err(TaskError::Delay));
        let bad = NewTask {
            max_attempts: 0,
            ..task()
        };
        assert_eq!(bad.validate(0), Err(TaskError::Attempts(0)));
        let bad = NewTask {
            queue: "no spaces".into(),
            ..task()
        };
        assert!(matches!(bad.validate(0), Err(TaskError::QueueName(_))));
        let bad = NewTask {
            idempotency_key: Some(String::new()),
            ..task()
        };
        assert_eq!(bad.validate(0), Err(TaskError::IdempotencyKey));
    }

    #[test]
    fn the_last_attempt_is_dead() {
        let policy = RetryPolicy::default();
        assert!(matches!(
            policy.after_failure(3, 3, "x".into(), 0, 0.5),
            Verdict::Dead { .. }
        ));
        assert!(matches!(
            policy.after_failure(2, 3, "x".into(), 0, 0.5),
            Verdict::Retry {
                retry_at_ms: 1_000,
                ..
            }
        ));
    }

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail("abc", 10), "abc");
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("aé", 1), "");
        assert_eq!(tail("aéb", 3), "éb");
    }

    #[test]
    fn head_keeps_the_start_on_a_char_boundary() {
        assert_eq!(head("abc", 10), "abc");
        assert_eq!(head("abcdef", 3), "abc");
        assert_eq!(head("éa", 1), "");
        assert_eq!(head("aéb", 3), "aé");
    }

    /// Integers at and around the edges of every range a task's numbers are checked against.
    fn edge_i64() -> impl Strategy<Value = i64> {
        let limits = [
            i64::MIN,
            i64::from(i32::MIN),
            -i64::from(MAX_PRIORITY),
            0,
            1,
            i64::from(MAX_PRIORITY),
            i64::from(MAX_ATTEMPTS),
            MAX_DELAY_MS,
            i64::from(i32::MAX),
            i64::from(u32::MAX),
            i64::MAX,
        ];
        let near: Vec<i64> = limits
            .iter()
            .flat_map(|&n| [n.saturating_sub(1), n, n.saturating_add(1)])
            .collect();
        prop_oneof![proptest::sample::select(near), any::<i64>()]
    }

    fn edge_i32() -> impl Strategy<Value = i32> {
        edge_i64().prop_map(|n| i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX }))
    }

    fn edge_u32() -> impl Strategy<Value = u32> {
        edge_i64().prop_map(|n| u32::try_from(n).unwrap_or(if n < 0 { 0 } else { u32::MAX }))
    }

    proptest! {
        #[test]
        fn validation_accepts_exactly_the_documented_ranges(
            priority in edge_i32(),
            max_attempts in edge_u32(),
            run_at_ms in edge_i64(),
            now_ms in edge_i64(),
        ) {
            let new = NewTask { priority, max_attempts, run_at_ms, ..task() };
            let expected = if !(-MAX_PRIORITY..=MAX_PRIORITY).contains(&priority) {
                Err(TaskError::Priority(i64::from(priority)))
            } else if i128::from(run_at_ms) > i128::from(now_ms) + i128::from(MAX_DELAY_MS) {
                Err(TaskError::Delay)
            } else if !(1..=MAX_ATTEMPTS).contains(&max_attempts) {
                Err(TaskError::Attempts(i64::from(max_attempts)))
            } else {
                Ok(())
            };
            prop_assert_eq!(new.validate(now_ms), expected);
        }

        #[test]
        fn integers_from_outside_convert_only_within_range(value in edge_i64()) {
            let max = i64::from(MAX_PRIORITY);
            match priority_from(value) {
                Ok(p) => prop_assert!((-max..=max).contains(&value) && i64::from(p) == value),
                Err(e) => prop_assert!(!(-max..=max).contains(&value) && e == TaskError::Priority(value)),
            }
            let attempts = 1..=i64::from(MAX_ATTEMPTS);
            match attempts_from(value) {
                Ok(n) => prop_assert!(attempts.contains(&value) && i64::from(n) == value),
                Err(e) => prop_assert!(!attempts.contains(&value) && e == TaskError::Attempts(value)),
            }
        }

        #[test]
        fn run_at_times_never_overflow(
            run_at in proptest::option::of(edge_i64()),
            delay in proptest::option::of(edge_i64()),
            now in edge_i64(),
        ) {
            let expected = match (run_at, delay) {
                (Some(_), Some(_)) => Err(TaskError::RunAtAndDelay),
                (Some(at), None) => Ok(at),
                (None, Some(d)) if d < 0 => Err(TaskError::NegativeDelay),
                (None, Some(d)) => {
                    Ok(i64::try_from(i128::from(now) + i128::from(d)).unwrap_or(i64::MAX))
                }
                (None, None) => Ok(now),
            };
            prop_assert_eq!(run_at_from(run_at, delay, now), expected);
        }

        #[test]
        fn delays_stay_under_the_ceiling_and_the_cap(
            base in 1u64..100_000, cap in 1u64..10_000_000, attempt in 1u32..2_000, unit in 0.0f64..1.0
        ) {
            let policy = RetryPolicy { max_attempts: 5, base_ms: base, cap_ms: cap };
            let delay = policy.delay_ms(attempt, unit);
            prop_assert!(delay <= policy.ceiling_ms(attempt));
            prop_assert!(delay <= cap);
        }

        #[test]
        fn ceilings_never_shrink(base in 1u64..100_000, cap in 1u64..10_000_000, attempt in 1u32..2_000) {
            let policy = RetryPolicy { max_attempts: 5, base_ms: base, cap_ms: cap };
            prop_assert!(policy.ceiling_ms(attempt + 1) >= policy.ceiling_ms(attempt));
        }
    }
}
