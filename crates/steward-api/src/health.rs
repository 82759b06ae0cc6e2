//! `/api/v1/services/{name}/…` and `/api/v1/checks/…`: services' health with dependency impact,
//! checks with their last result, latency percentiles and certificate over a window, their
//! results and transitions, and "run this check now". A workspace-scoped key sees only its
//! workspace's services and their checks (others answer 404, as if they did not exist).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use steward_config::Config;
use steward_core::Registry;
use steward_engine::prober::RunError;
use steward_engine::prober::ops::{self, HealthOpsError, MAX_WINDOW_MS, ResultView};
use steward_store::health::MAX_HEALTH_PAGE;
use steward_store::{TransitionQuery, now_ms};
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::extract::{ApiPath, ApiQuery, page_limit};
use crate::routes::store_error;
use crate::{ApiError, AppState};

/// The window percentiles cover when none is asked for.
const DEFAULT_WINDOW_MS: i64 = 3_600_000;

fn ops_error(e: HealthOpsError) -> ApiError {
    let message = e.to_string();
    match e {
        HealthOpsError::UnknownCheck(_) | HealthOpsError::UnknownService(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
        }
        HealthOpsError::Store(e) => store_error(e),
    }
}

fn bad_query(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
}

/// The workspace of service `name` in `config`, if the caller may see the service.
fn visible_service<'a>(
    config: &'a Config,
    caller: &Caller,
    name: &str,
) -> Result<&'a steward_core::Service, ApiError> {
    config
        .registry
        .services
        .iter()
        .find(|s| s.name == name && caller.principal.sees(s.workspace.as_deref()))
        .ok_or_else(|| ops_error(HealthOpsError::UnknownService(name.to_owned())))
}

/// The check `name`, if the caller may see its service.
fn visible_check<'a>(
    config: &'a Config,
    caller: &Caller,
    name: &str,
) -> Result<&'a steward_core::health::spec::CheckSpec, ApiError> {
    let spec = ops::find(config, name).map_err(ops_error)?;
    let seen = config
        .registry
        .services
        .iter()
        .any(|s| s.name == spec.service && caller.principal.sees(s.workspace.as_deref()));
    if seen {
        Ok(spec)
    } else {
        Err(ops_error(HealthOpsError::UnknownCheck(name.to_owned())))
    }
}

/// Parses a window such as `15m`, `1h` or `7d` (at most 30 days).
fn window(text: Option<&str>) -> Result<i64, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_WINDOW_MS);
    };
    let parsed: Duration = humantime::parse_duration(text)
        .map_err(|e| bad_query(format!("`window`: `{text}`: {e} (e.g. 15m, 1h, 7d)")))?;
    let ms = i64::try_from(parsed.as_millis()).unwrap_or(i64::MAX);
    if !(60_000..=MAX_WINDOW_MS).contains(&ms) {
        return Err(bad_query(format!(
            "`window`: `{text}` must be between 1m and 30d"
        )));
    }
    Ok(ms)
}

/// The registry as stored, for dependency impact over every workspace (a scoped caller still
/// sees its services impacted by an outage elsewhere, without the other service's name).
async fn stored_registry(state: &AppState) -> Result<Registry, ApiError> {
    state.control.store().registry().await.map_err(store_error)
}

/// `GET /api/v1/services`: every visible service with its state, what impacts it and its
/// checks.
pub(crate) async fn list_services(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    let registry = stored_registry(&state).await?;
    let config = state.control.config();
    let views = ops::services(state.control.store().as_ref(), &config, &registry)
        .await
        .map_err(ops_error)?;
    let services: Vec<serde_json::Value> = registry
        .services
        .iter()
        .zip(views)
        .filter(|(service, _)| caller.principal.sees(service.workspace.as_deref()))
        .map(|(service, mut view)| {
            view.impacted_by.retain(|name| {
                registry
                    .services
                    .iter()
                    .any(|s| &s.name == name && caller.principal.sees(s.workspace.as_deref()))
            });
            json!({
                "name": service.name,
                "workspace": service.workspace,
                "url": service.url,
                "node": service.node,
                "labels": service.labels,
                "state": view.state,
                "impacted_by": view.impacted_by,
                "checks": view.checks,
            })
        })
        .collect();
    Ok(Json(json!({ "services": services })))
}

/// Query of the endpoints that report over a window.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowQuery {
    /// The window percentiles cover, such as `15m`, `1h` or `7d` (1m to 30d; default 1h).
    #[serde(default)]
    window: Option<String>,
}

/// `GET /api/v1/services/{name}/checks?window=1h`.
pub(crate) async fn service_checks(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<WindowQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let window_ms = window(query.window.as_deref())?;
    let config = state.control.config();
    visible_service(&config, &caller, &name)?;
    let checks = ops::checks_of(
        state.control.store().as_ref(),
        &config,
        &name,
        window_ms,
        now_ms(),
    )
    .await
    .map_err(ops_error)?;
    Ok(Json(json!({ "service": name, "checks": checks })))
}

/// `GET /api/v1/checks/{name}?window=1h`.
pub(crate) async fn get_check(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<WindowQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let window_ms = window(query.window.as_deref())?;
    let config = state.control.config();
    visible_check(&config, &caller, &name)?;
    let view = ops::check(
        state.control.store().as_ref(),
        &config,
        &name,
        window_ms,
        now_ms(),
    )
    .await
    .map_err(ops_error)?;
    Ok(Json(view))
}

/// Query of `GET /api/v1/checks/{name}/results`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResultsQuery {
    /// Results since this time, in milliseconds since the Unix epoch.
    #[serde(default)]
    since: Option<i64>,
    /// Results per page (default 50).
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /api/v1/checks/{name}/results?since=MS&limit=N`: raw results, newest first.
pub(crate) async fn check_results(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<ResultsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = page_limit(query.limit, 50, MAX_HEALTH_PAGE)?;
    let config = state.control.config();
    visible_check(&config, &caller, &name)?;
    let results = ops::results(
        state.control.store().as_ref(),
        &config,
        &name,
        query.since.unwrap_or(0),
        limit,
    )
    .await
    .map_err(ops_error)?;
    Ok(Json(json!({ "check": name, "results": results })))
}

/// Query of the transition listings.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransitionsQuery {
    /// Transitions before this id (the last page's `next_before`).
    #[serde(default)]
    before: Option<i64>,
    /// Transitions per page (default 50).
    #[serde(default)]
    limit: Option<u32>,
}

async fn transitions_page(
    state: &AppState,
    query: TransitionQuery,
) -> Result<impl IntoResponse + use<>, ApiError> {
    let limit = query.limit;
    let transitions = ops::transitions(state.control.store().as_ref(), &query)
        .await
        .map_err(ops_error)?;
    let next_before = (transitions.len() == limit as usize)
        .then(|| transitions.last().map(|t| t.id))
        .flatten();
    Ok(Json(
        json!({ "transitions": transitions, "next_before": next_before }),
    ))
}

/// `GET /api/v1/checks/{name}/transitions?before=ID&limit=N`: newest first.
pub(crate) async fn check_transitions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<TransitionsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = page_limit(query.limit, 50, MAX_HEALTH_PAGE)?;
    visible_check(&state.control.config(), &caller, &name)?;
    transitions_page(
        &state,
        TransitionQuery {
            check: Some(name),
            service: None,
            before_id: query.before,
            limit,
        },
    )
    .await
}

/// `GET /api/v1/services/{name}/transitions?before=ID&limit=N`: the service's checks'
/// transitions, newest first.
pub(crate) async fn service_transitions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<TransitionsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = page_limit(query.limit, 50, MAX_HEALTH_PAGE)?;
    visible_service(&state.control.config(), &caller, &name)?;
    transitions_page(
        &state,
        TransitionQuery {
            check: None,
            service: Some(name),
            before_id: query.before,
            limit,
        },
    )
    .await
}

/// `POST /api/v1/checks/{name}/run`: probes at once and answers the judged result.
pub(crate) async fn run_check(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    visible_check(&state.control.config(), &caller, &name)?;
    let Some(prober) = state.prober.as_ref() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this instance does not probe",
        ));
    };
    let report = prober
        .run_now(&name, &caller.actor())
        .await
        .map_err(|e| match e {
            RunError::UnknownCheck(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
        })?;
    tracing::info!(
        check = %name,
        actor = %caller.principal.name,
        verdict = steward_store::health::verdict_name(report.record.verdict),
        "check run on request"
    );
    Ok(Json(json!({
        "check": name,
        "result": ResultView::of(&report.record, now_ms()),
        "reason": report.reason,
        "state": report.state,
        "recorded": report.recorded,
    })))
}
