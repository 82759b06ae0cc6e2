//! The shapes of the scheduler's calls every backend implements — leadership leases, fires,
//! pause and resume, run history, heartbeats — and the rules a fire batch follows, decided
//! here once so both backends apply them the same way.

use steward_core::audit::Actor;

use crate::StoreError;
use crate::domain::domain_trait;
pub use crate::leases::Lease;
use std::collections::{HashMap, HashSet};

use steward_core::schedule::{HeartbeatState, MissedSlots, OverlapPolicy, PingStatus};
use steward_core::task::{NewTask, TaskStatus};

/// The lease the firing instance holds.
pub const SCHEDULER_ROLE: &str = "scheduler";
/// The most runs one history call returns.
pub const MAX_RUN_PAGE: u32 = 1_000;

/// Why a schedule fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireTrigger {
    /// Its slot came.
    Slot,
    /// A slot missed during an outage, fired afterwards by the missed-run policy.
    CatchUp,
    /// Someone asked for a run now.
    Manual,
}

impl FireTrigger {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slot => "slot",
            Self::CatchUp => "catch_up",
            Self::Manual => "manual",
        }
    }

    /// The trigger a stored name denotes.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "slot" => Some(Self::Slot),
            "catch_up" => Some(Self::CatchUp),
            "manual" => Some(Self::Manual),
            _ => None,
        }
    }
}

/// One fire to perform: enqueue `task` for `slot_ms`, unless the overlap policy says otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct Fire {
    /// The slot (for a manual fire, the moment it was asked for).
    pub slot_ms: i64,
    /// Why.
    pub trigger: FireTrigger,
    /// The task, its idempotency key and origin already set.
    pub task: NewTask,
}

/// What one schedule's tick asks the store to do, atomically with every other tick of the
/// batch: fire `fires` (increasing slots), record `missed` slots that will not fire, and move
/// the schedule's cursor to `cursor_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleTick {
    /// The schedule.
    pub schedule: String,
    /// Its overlap policy.
    pub overlap: OverlapPolicy,
    /// Fires, by increasing slot.
    pub fires: Vec<Fire>,
    /// Slots missed and not fired, recorded as one `missed` run.
    pub missed: Option<MissedSlots>,
    /// The latest slot handled.
    pub cursor_ms: i64,
}

/// Why a fire did not enqueue a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The schedule is paused.
    Paused,
    /// The slot was handled already (by this or an earlier leader).
    AlreadyHandled,
    /// `overlap = "forbid"` and this task has not finished.
    Overlap {
        /// The unfinished task.
        task_id: i64,
    },
    /// Another slot of the same catch-up fired instead (`forbid` fires the first of them,
    /// `replace` the last).
    Superseded,
}

impl SkipReason {
    /// The text stored with a recorded skip.
    pub fn describe(&self) -> String {
        match self {
            Self::Paused => "schedule paused".into(),
            Self::AlreadyHandled => "slot already handled".into(),
            Self::Overlap { task_id } => {
                format!("task {task_id} of an earlier fire has not finished")
            }
            Self::Superseded => "another slot of the same catch-up fired instead".into(),
        }
    }
}

/// What became of one fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireOutcome {
    /// The task was enqueued (or, with `created` false, its idempotency key named an existing
    /// task); `replaced` lists the earlier tasks cancelled by `overlap = "replace"`.
    Fired {
        /// The task.
        task_id: i64,
        /// False when the task existed already.
        created: bool,
        /// Tasks cancelled to make way.
        replaced: Vec<i64>,
    },
    /// Nothing was enqueued.
    Skipped(SkipReason),
}

/// What became of a tick: one outcome per fire, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickResult {
    /// The schedule.
    pub schedule: String,
    /// Per fire.
    pub outcomes: Vec<FireOutcome>,
    /// The tick's missed slots were recorded (they were new, and the schedule not paused).
    pub missed_recorded: bool,
}

/// A schedule's runtime state (its definition lives in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleState {
    /// The schedule.
    pub name: String,
    /// Paused schedules do not fire on their slots.
    pub paused: bool,
    /// The latest slot handled (fired, skipped or missed).
    pub cursor_ms: i64,
    /// When `paused` last changed (or the state was created).
    pub changed_at_ms: i64,
    /// Who changed it last.
    pub changed_by: Option<String>,
}

/// A recorded fire, skip or run of missed slots, with its task's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRun {
    /// Increasing id.
    pub id: i64,
    /// The schedule.
    pub schedule: String,
    /// The slot (the last one, for a run of missed slots).
    pub slot_ms: i64,
    /// Why it fired.
    pub trigger: FireTrigger,
    /// `fired`, `skipped` or `missed`.
    pub status: RunStatus,
    /// Why it was skipped, or which slots were missed.
    pub reason: Option<String>,
    /// The task enqueued.
    pub task_id: Option<i64>,
    /// When it was recorded.
    pub fired_at_ms: i64,
    /// The task's status now (`None` when it was never enqueued or was purged).
    pub task_status: Option<TaskStatus>,
    /// The task's outcome label.
    pub outcome: Option<String>,
    /// When the task's latest attempt started.
    pub started_at_ms: Option<i64>,
    /// When the task finished.
    pub finished_at_ms: Option<i64>,
    /// The task's error.
    pub error: Option<String>,
    /// The dead-man's switch flagged it: the task had not succeeded in time.
    pub overdue: bool,
}

/// What a recorded run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// A task was enqueued.
    Fired,
    /// The slot was skipped (overlap policy).
    Skipped,
    /// Slots passed while nothing could fire them and the missed-run policy dropped them.
    Missed,
}

impl RunStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fired => "fired",
            Self::Skipped => "skipped",
            Self::Missed => "missed",
        }
    }

    /// The status a stored name denotes.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "fired" => Some(Self::Fired),
            "skipped" => Some(Self::Skipped),
            "missed" => Some(Self::Missed),
            _ => None,
        }
    }
}

/// Which runs to list: newest first, below `before_id` when given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunQuery {
    /// Only this schedule.
    pub schedule: Option<String>,
    /// Only ids below this (keyset pagination).
    pub before_id: Option<i64>,
    /// At most this many (capped at [`MAX_RUN_PAGE`]).
    pub limit: u32,
}

/// A heartbeat's recorded pings and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRecord {
    /// The heartbeat.
    pub name: String,
    /// The latest ping, if any.
    pub last_ping: Option<(i64, PingStatus)>,
    /// Pings received.
    pub pings: i64,
    /// The state last evaluated.
    pub state: HeartbeatState,
    /// When it entered that state.
    pub state_changed_at_ms: i64,
    /// When watching began (the first time the heartbeat was seen).
    pub watching_since_ms: i64,
}

/// A heartbeat's move from one state to another, decided from what was read of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatTransition {
    /// The heartbeat.
    pub name: String,
    /// Its workspace (for the audit event).
    pub workspace: Option<String>,
    /// The state read.
    pub from: HeartbeatState,
    /// The state to move to.
    pub to: HeartbeatState,
    /// The latest ping's time as read (`None`: never pinged).
    pub seen_ping_ms: Option<i64>,
    /// When.
    pub at_ms: i64,
}

/// The longest dead-man's switch period honoured (a hundred years): longer ones are this.
pub const MAX_EXPECT_WITHIN_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// A stored run row to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    /// The schedule.
    pub schedule: String,
    /// The slot.
    pub slot_ms: i64,
    /// Why.
    pub trigger: FireTrigger,
    /// What.
    pub status: RunStatus,
    /// Why skipped or which slots were missed.
    pub reason: Option<String>,
    /// Index into the batch's enqueued tasks, for fired runs.
    pub task_index: Option<usize>,
}

/// What a planned fire becomes: the index of its task among the batch's enqueued ones and the
/// tasks it replaces, or why it is skipped.
pub type FireDecision = Result<(usize, Vec<i64>), SkipReason>;

/// The writes a batch of ticks needs, decided from the current states and unfinished tasks.
#[derive(Debug, Default, PartialEq)]
pub struct TickPlan {
    /// Tasks to enqueue, in order.
    pub enqueue: Vec<NewTask>,
    /// Unfinished tasks to cancel first (`overlap = "replace"`).
    pub cancel: Vec<i64>,
    /// Run rows, referring to `enqueue` by index.
    pub runs: Vec<RunRow>,
    /// New cursors.
    pub cursors: Vec<(String, i64)>,
    /// Per tick, per fire: `Ok(index into enqueue, replaced tasks)` or the skip.
    pub outcomes: Vec<Vec<FireDecision>>,
    /// Per tick: its missed slots were recorded.
    pub missed_recorded: Vec<bool>,
}

/// Decides a batch of ticks. `states` are the current states of the ticks' schedules (absent:
/// never seen, nothing handled yet); `open` the unfinished tasks of each schedule.
pub fn plan_ticks(
    ticks: &[ScheduleTick],
    states: &HashMap<String, ScheduleState>,
    open: &HashMap<String, Vec<i64>>,
) -> TickPlan {
    let mut plan = TickPlan::default();
    let mut seen = HashSet::new();
    for tick in ticks {
        let state = states.get(&tick.schedule);
        let mut outcomes = Vec::with_capacity(tick.fires.len());
        if !seen.insert(tick.schedule.as_str()) {
            // A schedule ticks once per batch; a repeat is handled already by the first.
            outcomes.extend(tick.fires.iter().map(|_| Err(SkipReason::AlreadyHandled)));
            plan.outcomes.push(outcomes);
            plan.missed_recorded.push(false);
            continue;
        }
        let cursor = state.map(|s| s.cursor_ms);
        let paused = state.is_some_and(|s| s.paused);
        let mut unfinished: Vec<i64> = open.get(&tick.schedule).cloned().unwrap_or_default();
        let mut fired_in_tick = false;
        let last_replace = tick.fires.iter().rposition(|f| {
            cursor.is_none_or(|c| f.slot_ms > c || f.trigger == FireTrigger::Manual)
        });
        for (i, fire) in tick.fires.iter().enumerate() {
            let handled =
                fire.trigger != FireTrigger::Manual && cursor.is_some_and(|c| fire.slot_ms <= c);
            let decision = if handled {
                Err(SkipReason::AlreadyHandled)
            } else if paused && fire.trigger != FireTrigger::Manual {
                Err(SkipReason::Paused)
            } else {
                match (tick.overlap, unfinished.first()) {
                    (OverlapPolicy::Forbid, Some(&task_id)) => Err(SkipReason::Overlap { task_id }),
                    (OverlapPolicy::Forbid, None) if fired_in_tick => Err(SkipReason::Superseded),
                    (OverlapPolicy::Replace, _) if Some(i) != last_replace => {
                        Err(SkipReason::Superseded)
                    }
                    (OverlapPolicy::Replace, _) => {
                        let replaced = std::mem::take(&mut unfinished);
                        plan.cancel.extend(&replaced);
                        Ok(replaced)
                    }
                    _ => Ok(Vec::new()),
                }
            };
            let decision = decision.map(|replaced| {
                let index = plan.enqueue.len();
                plan.enqueue.push(fire.task.clone());
                fired_in_tick = true;
                (index, replaced)
            });
            record_run(&mut plan.runs, tick, fire, &decision);
            outcomes.push(decision);
        }
        // Missed slots are news only once (a retried tick repeats them) and not while paused.
        let advances = cursor.is_none_or(|c| tick.cursor_ms > c);
        let record_missed = tick.missed.is_some() && advances && !paused;
        if let Some(missed) = tick.missed.as_ref().filter(|_| record_missed) {
            plan.runs.push(RunRow {
                schedule: tick.schedule.clone(),
                slot_ms: missed.last_ms,
                trigger: FireTrigger::Slot,
                status: RunStatus::Missed,
                reason: Some(describe_missed(missed)),
                task_index: None,
            });
        }
        // A manual tick (cursor `i64::MIN`) leaves the cursor alone.
        if tick.cursor_ms != i64::MIN {
            let new_cursor = cursor.map_or(tick.cursor_ms, |c| c.max(tick.cursor_ms));
            plan.cursors.push((tick.schedule.clone(), new_cursor));
        }
        plan.outcomes.push(outcomes);
        plan.missed_recorded.push(record_missed);
    }
    plan
}

/// The unfinished tasks each overlap policy looks at, from `(schedule, task, cancel requested)`
/// rows: `forbid` waits for all of them; `replace` cancels those not already being stopped
/// (asking a running task to stop twice would only repeat the request and its audit event).
pub fn open_by_schedule(
    ticks: &[ScheduleTick],
    rows: Vec<(String, i64, bool)>,
) -> HashMap<String, Vec<i64>> {
    let replacing: HashSet<&str> = ticks
        .iter()
        .filter(|t| t.overlap == OverlapPolicy::Replace)
        .map(|t| t.schedule.as_str())
        .collect();
    let mut open: HashMap<String, Vec<i64>> = HashMap::new();
    for (schedule, id, cancel_requested) in rows {
        if cancel_requested && replacing.contains(schedule.as_str()) {
            continue;
        }
        open.entry(schedule).or_default().push(id);
    }
    open
}

/// The schedules of `ticks` whose overlap policy looks at unfinished tasks.
pub fn watched_schedules(ticks: &[ScheduleTick]) -> Vec<&str> {
    ticks
        .iter()
        .filter(|t| t.overlap != OverlapPolicy::Allow)
        .map(|t| t.schedule.as_str())
        .collect()
}

/// Fires and overlap skips are recorded; a paused or already-handled slot leaves no row (a
/// paused every-second schedule would otherwise write one per second).
fn record_run(runs: &mut Vec<RunRow>, tick: &ScheduleTick, fire: &Fire, decision: &FireDecision) {
    let (status, reason, task_index) = match decision {
        Ok((index, _)) => (RunStatus::Fired, None, Some(*index)),
        Err(reason @ (SkipReason::Overlap { .. } | SkipReason::Superseded)) => {
            (RunStatus::Skipped, Some(reason.describe()), None)
        }
        Err(SkipReason::Paused | SkipReason::AlreadyHandled) => return,
    };
    runs.push(RunRow {
        schedule: tick.schedule.clone(),
        slot_ms: fire.slot_ms,
        trigger: fire.trigger,
        status,
        reason,
        task_index,
    });
}

fn describe_missed(missed: &MissedSlots) -> String {
    let count = if missed.count_is_lower_bound {
        format!("at least {}", missed.count)
    } else {
        missed.count.to_string()
    };
    format!(
        "{count} slot(s) from {} to {} (ms since the epoch) passed while no instance could fire them",
        missed.first_ms, missed.last_ms
    )
}

/// Turns a planned batch into per-tick results once the tasks are enqueued (`task_ids[i]` and
/// `created[i]` for `plan.enqueue[i]`).
pub fn tick_results(
    ticks: &[ScheduleTick],
    plan: &TickPlan,
    enqueued: &[crate::Enqueued],
) -> Vec<TickResult> {
    ticks
        .iter()
        .zip(&plan.outcomes)
        .zip(&plan.missed_recorded)
        .map(|((tick, outcomes), missed_recorded)| TickResult {
            schedule: tick.schedule.clone(),
            missed_recorded: *missed_recorded,
            outcomes: outcomes
                .iter()
                .map(|decision| match decision {
                    Ok((index, replaced)) => match enqueued.get(*index) {
                        Some(e) => FireOutcome::Fired {
                            task_id: e.id,
                            created: e.created,
                            replaced: replaced.clone(),
                        },
                        None => FireOutcome::Skipped(SkipReason::AlreadyHandled),
                    },
                    Err(reason) => FireOutcome::Skipped(reason.clone()),
                })
                .collect(),
        })
        .collect()
}

/// The task id of each run row, once the batch's tasks are enqueued.
pub fn run_task_ids(plan: &TickPlan, enqueued: &[crate::Enqueued]) -> Vec<Option<i64>> {
    plan.runs
        .iter()
        .map(|run| run.task_index.and_then(|i| enqueued.get(i)).map(|e| e.id))
        .collect()
}

/// The error a fire batch gets when its lease is no longer the current one.
pub fn lease_lost(lease: &Lease) -> crate::StoreError {
    crate::StoreError::LeaseLost(format!(
        "the {} lease (fence {}) is no longer held by `{}`",
        lease.role, lease.fence, lease.holder
    ))
}

/// The error for an unknown heartbeat or schedule state.
pub fn not_found(what: &str, name: &str) -> crate::StoreError {
    crate::StoreError::NotFound(format!("{what} `{name}`"))
}

domain_trait! {
    /// The scheduler's persistence: schedule cursors, fires and runs, and heartbeat records.
    pub trait ScheduleStore {
        /// The states of `names`, creating the missing ones with their cursor at `now_ms` (so a
        /// new schedule starts from its next slot instead of catching up on its past).
        async fn register_schedules(
            &self,
            names: &[String],
            now_ms: i64,
        ) -> Result<Vec<ScheduleState>, StoreError>;

        /// Every schedule state recorded.
        async fn schedule_states(&self) -> Result<Vec<ScheduleState>, StoreError>;

        /// Applies a batch of ticks in one transaction, as [`schedules::plan_ticks`] decides:
        /// enqueues their tasks (one `task.enqueue` audit event by `actor`), cancels what
        /// `overlap = "replace"` displaces, records runs and moves cursors. With `lease`, the whole
        /// batch is refused ([`StoreError::State`]) unless that lease is still current, so a
        /// deposed leader cannot fire; without it (a manual trigger), the fires are audited as
        /// `schedule.trigger`.
        async fn fire_schedules(
            &self,
            lease: Option<&Lease>,
            ticks: &[ScheduleTick],
            actor: &Actor,
        ) -> Result<Vec<TickResult>, StoreError>;

        /// Pauses or resumes a schedule, audited. Pausing cancels its queued tasks not yet due
        /// (fires written ahead of their slot); resuming moves the cursor to `now_ms`: slots that
        /// passed while paused are not caught up.
        async fn set_schedule_paused(
            &self,
            name: &str,
            workspace: Option<&str>,
            paused: bool,
            now_ms: i64,
            actor: &Actor,
        ) -> Result<ScheduleState, StoreError>;

        /// Deletes up to `limit` schedule runs whose task retention has deleted, and runs without a
        /// task (skips, missed slots) recorded before `taskless_before_ms`; returns how many.
        async fn purge_schedule_runs(
            &self,
            taskless_before_ms: i64,
            limit: u32,
        ) -> Result<u64, StoreError>;

        /// Recorded runs matching `query`, newest first, with their tasks' progress.
        async fn schedule_runs(&self, query: &RunQuery) -> Result<Vec<ScheduleRun>, StoreError>;

        /// The latest recorded run of each schedule.
        async fn last_schedule_runs(&self) -> Result<Vec<ScheduleRun>, StoreError>;

        /// Dead-man's switch: settles (once) `schedule`'s fired runs whose slot is more than
        /// `within_ms` before `now_ms`, and returns those whose task did not succeed within
        /// `within_ms` of its slot, flagged overdue.
        async fn flag_overdue_runs(
            &self,
            schedule: &str,
            within_ms: u64,
            now_ms: i64,
        ) -> Result<Vec<ScheduleRun>, StoreError>;

        /// The records of `names`, creating missing ones as `new`, watched from `now_ms`.
        async fn register_heartbeats(
            &self,
            names: &[String],
            now_ms: i64,
        ) -> Result<Vec<HeartbeatRecord>, StoreError>;

        /// Records a ping (creating the record if needed) and returns the record.
        async fn record_ping(
            &self,
            name: &str,
            status: PingStatus,
            at_ms: i64,
        ) -> Result<HeartbeatRecord, StoreError>;

        /// Every heartbeat record.
        async fn heartbeat_records(&self) -> Result<Vec<HeartbeatRecord>, StoreError>;

        /// Applies `change`, audited; false (nothing written) when the heartbeat's state or latest
        /// ping is no longer what the change was decided from, so concurrent evaluators record each
        /// transition once and a ping that lands meanwhile is never overruled.
        async fn set_heartbeat_state(
            &self,
            change: &HeartbeatTransition,
            actor: &Actor,
        ) -> Result<bool, StoreError>;
    }
}
