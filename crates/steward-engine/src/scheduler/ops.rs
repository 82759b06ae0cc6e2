//! What people ask of schedules and heartbeats, on any instance (not only the leader): list
//! them with their next fire and last run, page through run history, pause, resume, trigger
//! a run now, and record a heartbeat's ping.

use std::collections::HashMap;

use steward_config::Config;
use steward_core::Event;
use steward_core::audit::Actor;
use steward_core::schedule::{HeartbeatSpec, PingStatus, ScheduleSpec};
use steward_store::{
    FireOutcome, FireTrigger, HeartbeatRecord, RunQuery, ScheduleRun, ScheduleState, ScheduleTick,
    Store, StoreError, now_ms,
};

use super::timetable::{attempts_for, fire_of};
use super::watch::settle_heartbeat;
use crate::bus::EventBus;

/// Why a schedule or heartbeat operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// No schedule of that name is configured.
    #[error("no schedule named `{0}`")]
    UnknownSchedule(String),
    /// No heartbeat of that name is configured.
    #[error("no heartbeat named `{0}`")]
    UnknownHeartbeat(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A schedule as the API shows it: its definition, runtime state, next slot and last run.
#[derive(Debug, Clone)]
pub struct ScheduleView {
    /// The definition.
    pub spec: ScheduleSpec,
    /// Paused, cursor; `None` until the scheduler first saw it.
    pub state: Option<ScheduleState>,
    /// The next slot, unless disabled, paused or finished.
    pub next_slot_ms: Option<i64>,
    /// The latest recorded run.
    pub last_run: Option<ScheduleRun>,
}

/// The schedule called `name`.
pub fn find<'a>(config: &'a Config, name: &str) -> Result<&'a ScheduleSpec, OpsError> {
    config
        .schedules
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| OpsError::UnknownSchedule(name.to_owned()))
}

/// The heartbeat called `name`.
pub fn find_heartbeat<'a>(config: &'a Config, name: &str) -> Result<&'a HeartbeatSpec, OpsError> {
    config
        .heartbeats
        .iter()
        .find(|h| h.name == name)
        .ok_or_else(|| OpsError::UnknownHeartbeat(name.to_owned()))
}

/// Every configured schedule with its state, next slot and last run.
pub async fn list(store: &dyn Store, config: &Config) -> Result<Vec<ScheduleView>, OpsError> {
    let mut states: HashMap<String, ScheduleState> = store
        .schedule_states()
        .await?
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    let mut last_runs: HashMap<String, ScheduleRun> = store
        .last_schedule_runs()
        .await?
        .into_iter()
        .map(|r| (r.schedule.clone(), r))
        .collect();
    let now = now_ms();
    Ok(config
        .schedules
        .iter()
        .map(|spec| {
            view_of(
                spec,
                states.remove(&spec.name),
                last_runs.remove(&spec.name),
                now,
            )
        })
        .collect())
}

/// The schedule called `name`, with its state, next slot and last run (read for it alone).
pub async fn view(
    store: &dyn Store,
    config: &Config,
    name: &str,
) -> Result<ScheduleView, OpsError> {
    let spec = find(config, name)?;
    let state = store
        .schedule_states()
        .await?
        .into_iter()
        .find(|s| s.name == name);
    let last_run = store
        .schedule_runs(&RunQuery {
            schedule: Some(name.to_owned()),
            before_id: None,
            limit: 1,
        })
        .await?
        .into_iter()
        .next();
    Ok(view_of(spec, state, last_run, now_ms()))
}

fn view_of(
    spec: &ScheduleSpec,
    state: Option<ScheduleState>,
    last_run: Option<ScheduleRun>,
    now: i64,
) -> ScheduleView {
    let paused = state.as_ref().is_some_and(|s| s.paused);
    let from = state.as_ref().map_or(now, |s| s.cursor_ms.max(now));
    let next_slot_ms = (spec.enabled && !paused)
        .then(|| spec.timing.next_after(&spec.zone, from))
        .flatten();
    ScheduleView {
        spec: spec.clone(),
        state,
        next_slot_ms,
        last_run,
    }
}

/// A page of `name`'s runs, newest first.
pub async fn runs(
    store: &dyn Store,
    config: &Config,
    name: &str,
    before_id: Option<i64>,
    limit: u32,
) -> Result<Vec<ScheduleRun>, OpsError> {
    find(config, name)?;
    Ok(store
        .schedule_runs(&RunQuery {
            schedule: Some(name.to_owned()),
            before_id,
            limit,
        })
        .await?)
}

/// Pauses or resumes `name` (audited).
pub async fn set_paused(
    store: &dyn Store,
    config: &Config,
    name: &str,
    paused: bool,
    actor: &Actor,
) -> Result<ScheduleState, OpsError> {
    let spec = find(config, name)?;
    Ok(store
        .set_schedule_paused(name, spec.workspace.as_deref(), paused, now_ms(), actor)
        .await?)
}

/// Fires `name` now, whether or not it is paused, under its overlap policy (audited as
/// `schedule.trigger`).
pub async fn trigger(
    store: &dyn Store,
    bus: &EventBus,
    config: &Config,
    name: &str,
    actor: &Actor,
) -> Result<FireOutcome, OpsError> {
    let spec = find(config, name)?;
    let now = now_ms();
    // The state must exist first, so a schedule never seen does not catch up on its past.
    store
        .register_schedules(std::slice::from_ref(&spec.name), now)
        .await?;
    let fire = fire_of(
        spec,
        attempts_for(spec, &config.queues),
        now,
        FireTrigger::Manual,
        now,
    );
    let tick = ScheduleTick {
        schedule: spec.name.clone(),
        overlap: spec.overlap,
        fires: vec![fire],
        missed: None,
        cursor_ms: i64::MIN,
    };
    let results = store.fire_schedules(None, &[tick], actor).await?;
    let outcome = results
        .into_iter()
        .next()
        .and_then(|r| r.outcomes.into_iter().next())
        .ok_or_else(|| StoreError::Corrupt("a trigger returned no outcome".into()))?;
    match &outcome {
        FireOutcome::Fired { task_id, .. } => {
            bus.publish(Event::ScheduleFired {
                schedule: spec.name.clone(),
                slot_ms: now,
                trigger: FireTrigger::Manual.as_str().into(),
                task_id: *task_id,
                lateness_ms: 0,
            });
        }
        FireOutcome::Skipped(reason) => {
            bus.publish(Event::ScheduleSkipped {
                schedule: spec.name.clone(),
                slot_ms: now,
                reason: reason.describe(),
            });
        }
    }
    Ok(outcome)
}

/// Records a ping of heartbeat `name` and moves it to the state the ping calls for.
pub async fn ping(
    store: &dyn Store,
    bus: &EventBus,
    config: &Config,
    name: &str,
    status: PingStatus,
    actor: &Actor,
) -> Result<HeartbeatRecord, OpsError> {
    let spec = find_heartbeat(config, name)?;
    let now = now_ms();
    let mut record = store.record_ping(name, status, now).await?;
    match settle_heartbeat(store, bus, spec, &record, now, actor).await {
        Some(state) if state == record.state => Ok(record),
        Some(state) => {
            record.state = state;
            record.state_changed_at_ms = now;
            Ok(record)
        }
        // Another evaluator moved it meanwhile: read what it wrote.
        None => {
            let records = store.heartbeat_records().await?;
            Ok(records
                .into_iter()
                .find(|r| r.name == name)
                .unwrap_or(record))
        }
    }
}

/// Every configured heartbeat with its record (`None` until first seen).
pub async fn heartbeats(
    store: &dyn Store,
    config: &Config,
) -> Result<Vec<(HeartbeatSpec, Option<HeartbeatRecord>)>, OpsError> {
    let records = store.heartbeat_records().await?;
    Ok(config
        .heartbeats
        .iter()
        .map(|spec| {
            let record = records.iter().find(|r| r.name == spec.name).cloned();
            (spec.clone(), record)
        })
        .collect())
}
