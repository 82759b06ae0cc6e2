//! `/api/v1/schedules` and `/api/v1/heartbeats`: schedules with their next fire and last run,
//! run history, pause, resume and trigger; heartbeat pings from external jobs. A
//! workspace-scoped key sees and touches only its workspace's schedules and heartbeats (others
//! answer 404, as if they did not exist).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use steward_core::schedule::timing::format_instant;
use steward_core::schedule::{
    HeartbeatSpec, PingStatus, ScheduleSpec, Timing, Zone, heartbeat::deadline_ms,
};
use steward_engine::scheduler::ops::{self, OpsError, ScheduleView};
use steward_store::schedules::MAX_RUN_PAGE;
use steward_store::{FireOutcome, HeartbeatRecord, ScheduleRun, ScheduleState};
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::extract::{ApiPath, ApiQuery, page_limit};
use crate::routes::store_error;
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

fn instant(ms: Option<i64>, zone: &Zone) -> Value {
    ms.map_or(Value::Null, |ms| Value::String(format_instant(ms, zone)))
}

fn timing_json(timing: &Timing, zone: &Zone) -> Value {
    match timing {
        Timing::Cron(expr) => json!({ "cron": expr.as_str() }),
        Timing::Every { interval_ms } => json!({ "every_ms": interval_ms }),
        Timing::Once { at_ms } => json!({ "at": format_instant(*at_ms, zone), "at_ms": at_ms }),
    }
}

fn run_json(run: &ScheduleRun, zone: &Zone) -> Value {
    json!({
        "id": run.id,
        "schedule": run.schedule,
        "slot": format_instant(run.slot_ms, zone),
        "slot_ms": run.slot_ms,
        "trigger": run.trigger.as_str(),
        "status": run.status.as_str(),
        "reason": run.reason,
        "task_id": run.task_id,
        "fired_at_ms": run.fired_at_ms,
        "task_status": run.task_status,
        "outcome": run.outcome,
        "started_at_ms": run.started_at_ms,
        "finished_at_ms": run.finished_at_ms,
        "duration_ms": run.started_at_ms.zip(run.finished_at_ms).map(|(s, f)| f - s),
        "error": run.error,
        "overdue": run.overdue,
    })
}

fn state_json(state: Option<&ScheduleState>) -> Value {
    match state {
        Some(s) => json!({
            "paused": s.paused,
            "cursor_ms": s.cursor_ms,
            "changed_at_ms": s.changed_at_ms,
            "changed_by": s.changed_by,
        }),
        None => json!({ "paused": false }),
    }
}

fn schedule_json(view: &ScheduleView) -> Value {
    let spec = &view.spec;
    let zone = &spec.zone;
    json!({
        "name": spec.name,
        "workspace": spec.workspace,
        "description": spec.description,
        "owner": spec.owner,
        "timing": timing_json(&spec.timing, zone),
        "describe": spec.timing.describe(zone),
        "timezone": zone.name(),
        "task": {
            "queue": spec.task.queue,
            "kind": spec.task.kind,
            "payload": spec.task.payload,
            "priority": spec.task.priority,
            "max_attempts": spec.task.max_attempts,
        },
        "overlap": spec.overlap.as_str(),
        "missed": spec.missed.as_str(),
        "jitter_ms": spec.jitter_ms,
        "enabled": spec.enabled,
        "expect_success_within_ms": spec.expect_success_within_ms,
        "state": state_json(view.state.as_ref()),
        "paused": view.state.as_ref().is_some_and(|s| s.paused),
        "next_fire": instant(view.next_slot_ms, zone),
        "next_fire_ms": view.next_slot_ms,
        "last_run": view.last_run.as_ref().map(|r| run_json(r, zone)),
    })
}

/// `GET /api/v1/schedules`.
pub(crate) async fn list_schedules(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    let config = state.control.config();
    let views = ops::list(state.control.store().as_ref(), &config)
        .await
        .map_err(ops_error)?;
    let schedules: Vec<Value> = views
        .iter()
        .filter(|v| in_scope(&caller, v.spec.workspace.as_ref()))
        .map(schedule_json)
        .collect();
    Ok(Json(json!({ "schedules": schedules })))
}

/// `GET /api/v1/schedules/{name}`.
pub(crate) async fn get_schedule(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    visible_schedule(&state, &caller, &name)?;
    let config = state.control.config();
    let view = ops::view(state.control.store().as_ref(), &config, &name)
        .await
        .map_err(ops_error)?;
    Ok(Json(schedule_json(&view)))
}

/// Query of `GET /api/v1/schedules/{name}/runs`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsQuery {
    /// Runs before this id (the last page's `next_before`).
    #[serde(default)]
    before: Option<i64>,
    /// Runs per page (default 50).
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /api/v1/schedules/{name}/runs?before=ID&limit=N`: newest first; `next_before` pages on.
pub(crate) async fn list_runs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<RunsQuery>,
) -> Result<impl IntoResponse, ApiError> {
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
    let runs: Vec<Value> = runs.iter().map(|r| run_json(r, &spec.zone)).collect();
    Ok(Json(json!({ "runs": runs, "next_before": next_before })))
}

async fn set_paused(
    state: &AppState,
    caller: &Caller,
    name: &str,
    paused: bool,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(
        json!({ "name": name, "state": state_json(Some(&saved)) }),
    ))
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
            Json(json!({
                "schedule": name,
                "fired": true,
                "task_id": task_id,
                "created": created,
                "replaced": replaced,
            })),
        )),
        FireOutcome::Skipped(reason) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "skipped",
            format!("schedule `{name}` did not fire: {}", reason.describe()),
        )),
    }
}

fn heartbeat_json(spec: &HeartbeatSpec, record: Option<&HeartbeatRecord>) -> Value {
    let utc = Zone::utc();
    let last = record.and_then(|r| r.last_ping);
    let since = record.map(|r| r.watching_since_ms);
    let deadline = last
        .map(|(at, _)| at)
        .or(since)
        .map(|at| deadline_ms(spec, at));
    json!({
        "name": spec.name,
        "workspace": spec.workspace,
        "description": spec.description,
        "period_ms": spec.period_ms,
        "grace_ms": spec.grace_ms,
        "state": record.map_or("new", |r| r.state.as_str()),
        "state_changed_at_ms": record.map(|r| r.state_changed_at_ms),
        "last_ping": instant(last.map(|(at, _)| at), &utc),
        "last_ping_ms": last.map(|(at, _)| at),
        "last_status": last.map(|(_, status)| status.as_str()),
        "pings": record.map_or(0, |r| r.pings),
        "deadline": instant(deadline, &utc),
    })
}

/// `GET /api/v1/heartbeats`.
pub(crate) async fn list_heartbeats(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    let config = state.control.config();
    let all = ops::heartbeats(state.control.store().as_ref(), &config)
        .await
        .map_err(ops_error)?;
    let heartbeats: Vec<Value> = all
        .iter()
        .filter(|(spec, _)| in_scope(&caller, spec.workspace.as_ref()))
        .map(|(spec, record)| heartbeat_json(spec, record.as_ref()))
        .collect();
    Ok(Json(json!({ "heartbeats": heartbeats })))
}

async fn ping(
    state: &AppState,
    caller: &Caller,
    name: &str,
    status: PingStatus,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(heartbeat_json(&spec, Some(&record))))
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
