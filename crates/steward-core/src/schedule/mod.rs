//! What `steward.toml` declares about time: schedules (`[[schedules]]`) that enqueue a task at
//! each slot, and heartbeats (`[[heartbeats]]`) that external jobs ping. The slot arithmetic —
//! cron in a time zone across DST, intervals, one-off times, missed-run policies, jitter — lives
//! in [`timing`] and [`plan`]; nothing here does I/O or reads a clock.

pub mod heartbeat;
pub mod plan;
pub mod timing;

pub use heartbeat::{HeartbeatSpec, HeartbeatState, PingStatus};
pub use plan::{DuePlan, MissedSlots, idempotency_key, jitter_offset_ms, plan_due};
pub use timing::{CronError, CronExpr, Timing, Zone, ZoneError};

/// The built-in schedule that runs retention; its name is reserved.
pub const RETENTION_SCHEDULE: &str = "steward-retention";

/// [`RETENTION_SCHEDULE`]: every minute, the `prune` built-in on Steward's own queue deletes
/// finished tasks (with their runs) past their queue's `retention`. One run at a time; a
/// minute missed is not caught up (the next run covers it).
pub fn retention_schedule() -> ScheduleSpec {
    ScheduleSpec {
        name: RETENTION_SCHEDULE.into(),
        workspace: None,
        description: Some("Delete finished tasks past their queue's retention".into()),
        owner: Some("steward".into()),
        timing: Timing::Every {
            interval_ms: 60_000,
        },
        zone: Zone::utc(),
        task: TaskTemplate {
            queue: crate::queue::SYSTEM_QUEUE.into(),
            kind: crate::queue::PRUNE_KIND.into(),
            payload: serde_json::Value::Object(serde_json::Map::new()),
            priority: 0,
            max_attempts: Some(1),
            node: None,
        },
        overlap: OverlapPolicy::Forbid,
        missed: MissedPolicy::Skip,
        jitter_ms: 0,
        enabled: true,
        expect_success_within_ms: None,
    }
}

/// A schedule: when it fires and what each fire enqueues.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    /// Its name, unique among schedules.
    pub name: String,
    /// The workspace it belongs to, if any (scoped keys see only their workspace's).
    pub workspace: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// Who to ask about it.
    pub owner: Option<String>,
    /// When it fires.
    pub timing: Timing,
    /// The zone its wall-clock times are read in (UTC unless given).
    pub zone: Zone,
    /// The task each fire enqueues.
    pub task: TaskTemplate,
    /// What a fire does while the previous fire's task has not finished.
    pub overlap: OverlapPolicy,
    /// What happens to slots that passed while no instance could fire them.
    pub missed: MissedPolicy,
    /// Each fire waits a fixed pseudo-random delay in `[0, jitter_ms)` after its slot, the same
    /// on every instance, so that many schedules on one slot do not all start at once.
    pub jitter_ms: u64,
    /// A disabled schedule is kept (with its history) but never fires.
    pub enabled: bool,
    /// Dead-man's switch: each fire's task must succeed within this long after its slot.
    pub expect_success_within_ms: Option<u64>,
}

/// The task a schedule enqueues at each fire.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskTemplate {
    /// The queue.
    pub queue: String,
    /// The executor (must be allowed by the queue).
    pub kind: String,
    /// The payload, the same for every fire.
    pub payload: serde_json::Value,
    /// Its priority.
    pub priority: i32,
    /// Attempts, if not the queue's.
    pub max_attempts: Option<u32>,
    /// The node whose agent runs each fire's task (its own, else its queue's).
    pub node: Option<String>,
}

/// What a fire does while an earlier fire's task is still queued or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverlapPolicy {
    /// Fire anyway: runs may overlap.
    #[default]
    Allow,
    /// Skip this slot (the skip is recorded).
    Forbid,
    /// Cancel the earlier task, then fire.
    Replace,
}

impl OverlapPolicy {
    /// The name used in the config and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Forbid => "forbid",
            Self::Replace => "replace",
        }
    }
}

/// What happens to slots that passed while no instance could fire them (downtime, a leader
/// change): a slot is missed when it is more than the grace period old by the time it can
/// be fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedPolicy {
    /// Fire none of them; the next on-time slot fires as usual.
    Skip,
    /// Fire the latest of them once.
    #[default]
    Once,
    /// Fire each of them, oldest first, but no more than the latest `limit`.
    All {
        /// The most missed slots fired after one outage.
        limit: u32,
    },
}

impl MissedPolicy {
    /// The bound used when `missed = "all"` gives none.
    pub const DEFAULT_ALL_LIMIT: u32 = 100;

    /// The name used in the config and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Once => "once",
            Self::All { .. } => "all",
        }
    }
}
