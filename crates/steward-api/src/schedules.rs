//! `/api/v1/schedules` and `/api/v1/heartbeats`: schedules with their next fire and last run,
//! run history, pause, resume and trigger; heartbeat pings from external jobs. A
//! workspace-scoped key sees and touches only its workspace's schedules and heartbeats (others
//! answer 404, as if they did not exist).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use steward_core::schedule::timing::format_instant;
use steward_core::schedule::{
    HeartbeatSpec, PingStatus, ScheduleSpec, TaskTemplate, Timing, Zone, heartbeat::deadline_ms,
};
use steward_engine::scheduler::ops::{self, OpsError, ScheduleView};
use steward_store::schedules::MAX_RUN_PAGE;
use steward_store::{FireOutcome, HeartbeatRecord, ScheduleRun, ScheduleState};
use steward_wire::schedules as wire;
use steward_wire::time::{rfc3339, rfc3339_opt};

use crate::caller::Caller;
use crate::error::store_error;
use crate::extract::{ApiPath, ApiQuery, page_limit};
use crate::{ApiError, AppState};

fn ops_error(e: OpsError) -> ApiError {
    let message = e.to_string();
    match e {
        OpsError::UnknownSchedule(_) | OpsError::UnknownHeartbeat(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
        }
        OpsError::Store(e) => store_error(e),
    }
}

/// True when `caller` may see something of `workspace`.
fn in_scope(caller: &Caller, workspace: Option<&String>) -> bool {
    caller.principal.sees(workspace.map(String::as_str))
}

/// The schedule `name`, if the caller may see it.
fn visible_schedule(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<ScheduleSpec, ApiError> {
    let config = state.control.config();
    match ops::find(&config, name) {
        Ok(spec) if in_scope(caller, spec.workspace.as_ref()) => Ok(spec.clone()),
        Ok(_) => Err(ops_error(OpsError::UnknownSchedule(name.to_owned()))),
        Err(e) => Err(ops_error(e)),
    }
}

/// A time in `zone`, with its offset, as a schedule's own times are written.
fn in_zone(ms: Option<i64>, zone: &Zone) -> Option<String> {
    ms.map(|ms| format_instant(ms, zone))
}

/// A schedule's timing as the API shows it.
fn timing_of(timing: &Timing, zone: &Zone) -> wire::ScheduleTiming {
    match timing {
        Timing::Cron(expr) => wire::ScheduleTiming::Cron {
            cron: expr.as_str().to_owned(),
        },
        Timing::Every { interval_ms } => wire::ScheduleTiming::Every {
            every_ms: *interval_ms,
        },
        Timing::Once { at_ms } => wire::ScheduleTiming::Once {
            at: format_instant(*at_ms, zone),
            at_ms: *at_ms,
        },
    }
}

/// A recorded run as the API shows it, its slot in the schedule's zone.
fn run_of(run: ScheduleRun, zone: &Zone) -> wire::ScheduleRun {
    wire::ScheduleRun {
        id: run.id,
        slot: format_instant(run.slot_ms, zone),
        slot_ms: run.slot_ms,
        schedule: run.schedule,
        trigger: run.trigger.as_str().to_owned(),
        status: run.status.as_str().to_owned(),
        reason: run.reason,
        task_id: run.task_id,
        fired_at: rfc3339(run.fired_at_ms),
        fired_at_ms: run.fired_at_ms,
        task_status: run.task_status.map(|s| s.as_str().to_owned()),
        outcome: run.outcome,
        started_at: rfc3339_opt(run.started_at_ms),
        started_at_ms: run.started_at_ms,
        finished_at: rfc3339_opt(run.finished_at_ms),
        finished_at_ms: run.finished_at_ms,
        duration_ms: run
            .started_at_ms
            .zip(run.finished_at_ms)
            .map(|(s, f)| f - s),
        error: run.error,
        overdue: run.overdue,
    }
}

/// A schedule's runtime state as the API shows it; `None` (never seen) is unpaused.
fn state_of(state: Option<ScheduleState>) -> wire::ScheduleState {
    match state {
        Some(s) => wire::ScheduleState {
            paused: s.paused,
            cursor: Some(rfc3339(s.cursor_ms)),
            cursor_ms: Some(s.cursor_ms),
            changed_at: Some(rfc3339(s.changed_at_ms)),
            changed_at_ms: Some(s.changed_at_ms),
            changed_by: s.changed_by,
        },
        None => wire::ScheduleState::default(),
    }
}

/// The task a schedule enqueues, as the API shows it.
fn task_of(task: TaskTemplate) -> wire::ScheduleTask {
    wire::ScheduleTask {
        queue: task.queue,
        kind: task.kind,
        payload: task.payload,
        priority: task.priority,
        max_attempts: task.max_attempts,
    }
}

/// A schedule with its state, next fire and last run as the API shows it.
fn schedule_of(view: ScheduleView) -> wire::Schedule {
    let ScheduleView {
        spec,
        state,
        next_slot_ms,
        last_run,
    } = view;
    let zone = spec.zone;
    wire::Schedule {
        timing: timing_of(&spec.timing, &zone),
        describe: spec.timing.describe(&zone),
        timezone: zone.name().to_owned(),
        name: spec.name,
        workspace: spec.workspace,
        description: spec.description,
        owner: spec.owner,
        task: task_of(spec.task),
        overlap: spec.overlap.as_str().to_owned(),
        missed: spec.missed.as_str().to_owned(),
        jitter_ms: spec.jitter_ms,
        enabled: spec.enabled,
        expect_success_within_ms: spec.expect_success_within_ms,
        paused: state.as_ref().is_some_and(|s| s.paused),
        state: state_of(state),
        next_fire: in_zone(next_slot_ms, &zone),
        next_fire_ms: next_slot_ms,
        last_run: last_run.map(|r| run_of(r, &zone)),
    }
}

/// `GET /api/v1/schedules`.
pub(crate) async fn list_schedules(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<wire::ScheduleList>, ApiError> {
    let config = state.control.config();
    let views = ops::list(state.control.store().as_ref(), &config)
        .await
        .map_err(ops_error)?;
    let schedules = views
        .into_iter()
        .filter(|v| in_scope(&caller, v.spec.workspace.as_ref()))
        .map(schedule_of)
        .collect();
    Ok(Json(wire::ScheduleList { schedules }))
}

/// `GET /api/v1/schedules/{name}`.
pub(crate) async fn get_schedule(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<wire::Schedule>, ApiError> {
    visible_schedule(&state, &caller, &name)?;
    let config = state.control.config();
    let view = ops::view(state.control.store().as_ref(), &config, &name)
        .await
        .map_err(ops_error)?;
    Ok(Json(schedule_of(view)))
}

/// `GET /api/v1/schedules/{name}/runs?before=ID&limit=N`: newest first; `next_before` pages on.
pub(crate) async fn list_runs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<wire::ScheduleRunsQuery>,
) -> Result<Json<wire::ScheduleRunList>, ApiError> {
    let spec = visible_schedule(&state, &caller, &name)?;
    let limit = page_limit(query.limit, 50, MAX_RUN_PAGE)?;
    let config = state.control.config();
    let runs = ops::runs(
        state.control.store().as_ref(),
        &config,
        &name,
        query.before,
        limit,
    )
    .await
    .map_err(ops_error)?;
    let next_before = (runs.len() == limit as usize)
        .then(|| runs.last().map(|r| r.id))
        .flatten();
    Ok(Json(wire::ScheduleRunList {
        runs: runs.into_iter().map(|r| run_of(r, &spec.zone)).collect(),
        next_before,
    }))
}

async fn set_paused(
    state: &AppState,
    caller: &Caller,
    name: &str,
    paused: bool,
) -> Result<Json<wire::ScheduleChanged>, ApiError> {
    visible_schedule(state, caller, name)?;
    let config = state.control.config();
    let saved = ops::set_paused(
        state.control.store().as_ref(),
        &config,
        name,
        paused,
        &caller.actor(),
    )
    .await
    .map_err(ops_error)?;
    Ok(Json(wire::ScheduleChanged {
        name: name.to_owned(),
        state: state_of(Some(saved)),
    }))
}

/// `POST /api/v1/schedules/{name}/pause`.
pub(crate) async fn pause(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    set_paused(&state, &caller, &name, true).await
}

/// `POST /api/v1/schedules/{name}/resume`.
pub(crate) async fn resume(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    set_paused(&state, &caller, &name, false).await
}

/// `POST /api/v1/schedules/{name}/trigger`: 201 with the task when it fired; 409 when the
/// overlap policy skipped it.
pub(crate) async fn trigger(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    visible_schedule(&state, &caller, &name)?;
    let config = state.control.config();
    let outcome = ops::trigger(
        state.control.store().as_ref(),
        state.control.bus(),
        &config,
        &name,
        &caller.actor(),
    )
    .await
    .map_err(ops_error)?;
    match outcome {
        FireOutcome::Fired {
            task_id,
            created,
            replaced,
        } => Ok((
            StatusCode::CREATED,
            Json(wire::ScheduleTriggered {
                schedule: name,
                fired: true,
                task_id,
                created,
                replaced,
            }),
        )),
        FireOutcome::Skipped(reason) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "skipped",
            format!("schedule `{name}` did not fire: {}", reason.describe()),
        )),
    }
}

/// A heartbeat with its record (`None`: never seen) as the API shows it. Its deadline runs
/// from the last ping, or from when watching began.
fn heartbeat_of(spec: HeartbeatSpec, record: Option<HeartbeatRecord>) -> wire::Heartbeat {
    let utc = Zone::utc();
    let last = record.as_ref().and_then(|r| r.last_ping);
    let last_ms = last.map(|(at, _)| at);
    let deadline = last_ms
        .or(record.as_ref().map(|r| r.watching_since_ms))
        .map(|at| deadline_ms(&spec, at));
    let state_changed_at_ms = record.as_ref().map(|r| r.state_changed_at_ms);
    wire::Heartbeat {
        name: spec.name,
        workspace: spec.workspace,
        description: spec.description,
        period_ms: spec.period_ms,
        grace_ms: spec.grace_ms,
        state: record
            .as_ref()
            .map_or("new", |r| r.state.as_str())
            .to_owned(),
        state_changed_at: rfc3339_opt(state_changed_at_ms),
        state_changed_at_ms,
        last_ping: in_zone(last_ms, &utc),
        last_ping_ms: last_ms,
        last_status: last.map(|(_, status)| status.as_str().to_owned()),
        pings: record.as_ref().map_or(0, |r| r.pings),
        deadline: in_zone(deadline, &utc),
        deadline_ms: deadline,
    }
}

/// `GET /api/v1/heartbeats`.
pub(crate) async fn list_heartbeats(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<wire::HeartbeatList>, ApiError> {
    let config = state.control.config();
    let all = ops::heartbeats(state.control.store().as_ref(), &config)
        .await
        .map_err(ops_error)?;
    let heartbeats = all
        .into_iter()
        .filter(|(spec, _)| in_scope(&caller, spec.workspace.as_ref()))
        .map(|(spec, record)| heartbeat_of(spec, record))
        .collect();
    Ok(Json(wire::HeartbeatList { heartbeats }))
}

async fn ping(
    state: &AppState,
    caller: &Caller,
    name: &str,
    status: PingStatus,
) -> Result<Json<wire::Heartbeat>, ApiError> {
    let config = state.control.config();
    let spec = match ops::find_heartbeat(&config, name) {
        Ok(spec) if in_scope(caller, spec.workspace.as_ref()) => spec.clone(),
        Ok(_) => return Err(ops_error(OpsError::UnknownHeartbeat(name.to_owned()))),
        Err(e) => return Err(ops_error(e)),
    };
    let record = ops::ping(
        state.control.store().as_ref(),
        state.control.bus(),
        &config,
        name,
        status,
        &caller.actor(),
    )
    .await
    .map_err(ops_error)?;
    Ok(Json(heartbeat_of(spec, Some(record))))
}

/// `POST /api/v1/heartbeats/{name}`: the job ran fine.
pub(crate) async fn ping_ok(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    ping(&state, &caller, &name, PingStatus::Ok).await
}

/// `POST /api/v1/heartbeats/{name}/fail`: the job ran and failed.
pub(crate) async fn ping_fail(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    ping(&state, &caller, &name, PingStatus::Fail).await
}
