//! Schedules and heartbeats: `/api/v1/schedules…` and `/api/v1/heartbeats…`.
//!
//! A schedule's own times (`slot`, `next_fire`, `timing.at`) are written in the schedule's zone
//! with its offset, as its cron expression is read; the other times are RFC 3339 in UTC.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// When a schedule fires: one of three shapes, told apart by their fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ScheduleTiming {
    /// At each time matching a cron expression, read in the schedule's zone.
    Cron {
        /// The expression, as configured (`0 3 * * *`, `@hourly`, …).
        cron: String,
    },
    /// At each multiple of an interval since the Unix epoch.
    Every {
        /// The interval, in milliseconds.
        every_ms: u64,
    },
    /// Once, at an instant.
    Once {
        /// The instant, in the schedule's zone with its offset.
        #[schema(format = DateTime)]
        at: String,
        /// The same, in milliseconds since the Unix epoch.
        at_ms: i64,
    },
}

/// The task a schedule enqueues at each fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleTask {
    /// The queue.
    pub queue: String,
    /// The executor.
    pub kind: String,
    /// The payload, the same for every fire.
    pub payload: Value,
    /// Its priority.
    pub priority: i32,
    /// Attempts before it is dead; `null`: the queue's.
    pub max_attempts: Option<u32>,
}

/// A schedule's runtime state. Before the scheduler first saw the schedule, only `paused`
/// (false) and `changed_by` (`null`) are present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleState {
    /// Paused schedules do not fire on their slots.
    pub paused: bool,
    /// The latest slot handled (fired, skipped or missed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub cursor: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_ms: Option<i64>,
    /// When `paused` last changed (or the state was created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub changed_at: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at_ms: Option<i64>,
    /// Who changed it last (`key:NAME`, `cli`, …).
    pub changed_by: Option<String>,
}

/// A recorded fire, skip or run of missed slots, with its task's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleRun {
    /// Increasing id.
    pub id: i64,
    /// The schedule.
    pub schedule: String,
    /// The slot (the last one, for a run of missed slots), in the schedule's zone with its
    /// offset.
    #[schema(format = DateTime)]
    pub slot: String,
    /// The same, in milliseconds since the Unix epoch.
    pub slot_ms: i64,
    /// Why it fired: `slot`, `catch_up` or `manual`.
    pub trigger: String,
    /// What it is: `fired`, `skipped` or `missed`.
    pub status: String,
    /// Why it was skipped, or which slots were missed.
    pub reason: Option<String>,
    /// The task enqueued.
    pub task_id: Option<i64>,
    /// When it was recorded.
    #[schema(format = DateTime)]
    pub fired_at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub fired_at_ms: i64,
    /// The task's status now (`queued`, `running`, `succeeded`, …); `null` when it was never
    /// enqueued or was purged.
    pub task_status: Option<String>,
    /// The task's outcome label.
    pub outcome: Option<String>,
    /// When the task's latest attempt started.
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    pub started_at_ms: Option<i64>,
    /// When the task finished.
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    pub finished_at_ms: Option<i64>,
    /// Milliseconds from the start of the task's latest attempt to its end.
    pub duration_ms: Option<i64>,
    /// The task's error.
    pub error: Option<String>,
    /// The dead-man's switch flagged it: the task had not succeeded in time.
    pub overdue: bool,
}

/// A schedule with its next fire and last run: `GET /api/v1/schedules/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Schedule {
    /// Its name.
    pub name: String,
    /// The workspace it belongs to.
    pub workspace: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// Who to ask about it.
    pub owner: Option<String>,
    /// When it fires.
    pub timing: ScheduleTiming,
    /// The timing in words (`cron "0 3 * * *" in Europe/Berlin`).
    pub describe: String,
    /// The zone its wall-clock times are read in (an IANA name such as `Europe/Berlin`).
    pub timezone: String,
    /// The task each fire enqueues.
    pub task: ScheduleTask,
    /// What a fire does while the previous fire's task has not finished: `allow`, `forbid`
    /// or `replace`.
    pub overlap: String,
    /// What happens to slots that passed while nothing could fire them: `skip`, `once` or
    /// `all`.
    pub missed: String,
    /// Each fire waits up to this long after its slot, in milliseconds.
    pub jitter_ms: u64,
    /// A disabled schedule is kept but never fires.
    pub enabled: bool,
    /// Each fire's task must succeed within this long after its slot, in milliseconds.
    pub expect_success_within_ms: Option<u64>,
    /// Its runtime state.
    pub state: ScheduleState,
    /// Whether it is paused (the same as `state.paused`).
    pub paused: bool,
    /// The next slot, in the schedule's zone with its offset; `null` when disabled, paused or
    /// finished.
    #[schema(format = DateTime)]
    pub next_fire: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    pub next_fire_ms: Option<i64>,
    /// The latest recorded run.
    pub last_run: Option<ScheduleRun>,
}

/// The schedules the key may see: `GET /api/v1/schedules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleList {
    /// The schedules, in the config's order.
    pub schedules: Vec<Schedule>,
}

/// The query of `GET /api/v1/schedules/{name}/runs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRunsQuery {
    /// Runs before this id (the last page's `next_before`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
    /// Runs per page (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A page of a schedule's runs, newest first: `GET /api/v1/schedules/{name}/runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleRunList {
    /// The runs.
    pub runs: Vec<ScheduleRun>,
    /// Pass as `before` for the next page; `null` on the last.
    pub next_before: Option<i64>,
}

/// A schedule after a pause or a resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleChanged {
    /// The schedule.
    pub name: String,
    /// Its state as it is now.
    pub state: ScheduleState,
}

/// A schedule fired by hand: `POST /api/v1/schedules/{name}/trigger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleTriggered {
    /// The schedule.
    pub schedule: String,
    /// Always true: a fire that was refused answers 409 instead.
    pub fired: bool,
    /// The task enqueued.
    pub task_id: i64,
    /// False when the task existed already.
    pub created: bool,
    /// Tasks cancelled to make way for it (`overlap = "replace"`).
    pub replaced: Vec<i64>,
}

/// A heartbeat with its state, last ping and deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Heartbeat {
    /// Its name.
    pub name: String,
    /// The workspace it belongs to.
    pub workspace: Option<String>,
    /// What it watches.
    pub description: Option<String>,
    /// How often a ping is expected, in milliseconds.
    pub period_ms: u64,
    /// How much longer than the period a ping may take, in milliseconds.
    pub grace_ms: u64,
    /// Its state: `new` (not pinged or evaluated yet), `up`, `late` or `failed`.
    pub state: String,
    /// When it entered that state.
    #[schema(format = DateTime)]
    pub state_changed_at: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    pub state_changed_at_ms: Option<i64>,
    /// The latest ping.
    #[schema(format = DateTime)]
    pub last_ping: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    pub last_ping_ms: Option<i64>,
    /// What the latest ping reported: `ok` or `fail`.
    pub last_status: Option<String>,
    /// Pings received.
    pub pings: i64,
    /// When it is late unless pinged again.
    #[schema(format = DateTime)]
    pub deadline: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    pub deadline_ms: Option<i64>,
}

/// The heartbeats the key may see: `GET /api/v1/heartbeats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatList {
    /// The heartbeats, in the config's order.
    pub heartbeats: Vec<Heartbeat>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_timing_reads_back_as_its_own_shape() {
        for (timing, text) in [
            (
                ScheduleTiming::Cron {
                    cron: "0 3 * * *".to_owned(),
                },
                json!({"cron": "0 3 * * *"}),
            ),
            (
                ScheduleTiming::Every { every_ms: 60_000 },
                json!({"every_ms": 60_000}),
            ),
            (
                ScheduleTiming::Once {
                    at: "2026-01-01T01:00:00+01:00".to_owned(),
                    at_ms: 1_767_225_600_000,
                },
                json!({"at": "2026-01-01T01:00:00+01:00", "at_ms": 1_767_225_600_000_i64}),
            ),
        ] {
            assert_eq!(serde_json::to_value(&timing).ok(), Some(text.clone()));
            assert_eq!(
                serde_json::from_value::<ScheduleTiming>(text).ok(),
                Some(timing)
            );
        }
    }

    #[test]
    fn a_state_not_yet_seen_is_paused_false_and_nobody() {
        assert_eq!(
            serde_json::to_value(ScheduleState::default()).ok(),
            Some(json!({"paused": false, "changed_by": null}))
        );
    }
}
