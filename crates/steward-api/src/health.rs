//! `/api/v1/services/{name}/…` and `/api/v1/checks/…`: services' health with dependency impact,
//! checks with their last result, latency percentiles and certificate over a window, their
//! results and transitions, and "run this check now". A workspace-scoped key sees only its
//! workspace's services and their checks (others answer 404, as if they did not exist).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use steward_config::Config;
use steward_core::health::rollup::Percentiles;
use steward_core::{Registry, Service};
use steward_engine::prober::ops::{
    self, CertDetail, CertView, CheckBrief, CheckView, ConditionView, HealthOpsError,
    MAX_WINDOW_MS, ResultView, ServiceView, TransitionView,
};
use steward_engine::prober::{RunError, RunReport};
use steward_store::health::MAX_HEALTH_PAGE;
use steward_store::{TransitionQuery, now_ms};
use steward_wire::health as wire;
use steward_wire::time::{rfc3339, rfc3339_opt};

use crate::caller::Caller;
use crate::error::store_error;
use crate::extract::{ApiPath, ApiQuery, page_limit};
use crate::{ApiError, AppState};

/// The window percentiles cover when none is asked for.
const DEFAULT_WINDOW_MS: i64 = 3_600_000;

pub(crate) fn ops_error(e: HealthOpsError) -> ApiError {
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
pub(crate) fn window(text: Option<&str>) -> Result<i64, ApiError> {
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
pub(crate) async fn stored_registry(state: &AppState) -> Result<Registry, ApiError> {
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
    let services = registry
        .services
        .iter()
        .zip(views)
        .filter(|(service, _)| caller.principal.sees(service.workspace.as_deref()))
        .map(|(service, mut view)| {
            // A scoped key is not told of services outside its workspace; a down node
            // (`node:ID`) that holds one of its own services is its business.
            view.impacted_by.retain(|name| {
                name.starts_with("node:")
                    || registry
                        .services
                        .iter()
                        .any(|s| &s.name == name && caller.principal.sees(s.workspace.as_deref()))
            });
            service_of(service, view)
        })
        .collect();
    Ok(Json(wire::ServiceHealthList { services }))
}

/// `GET /api/v1/services/{name}/checks?window=1h`.
pub(crate) async fn service_checks(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<wire::WindowQuery>,
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
    Ok(Json(wire::ServiceChecks {
        service: name,
        checks: checks.into_iter().map(check_of).collect(),
    }))
}

/// `GET /api/v1/checks/{name}?window=1h`.
pub(crate) async fn get_check(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<wire::WindowQuery>,
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
    Ok(Json(check_of(view)))
}

/// `GET /api/v1/checks/{name}/results?since=MS&limit=N`: raw results, newest first.
pub(crate) async fn check_results(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<wire::CheckResultsQuery>,
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
    Ok(Json(wire::CheckResults {
        check: name,
        results: results.into_iter().map(result_of).collect(),
    }))
}

/// A page of transitions, newest first, with where the next page starts.
async fn transitions_page(
    state: &AppState,
    query: TransitionQuery,
) -> Result<Json<wire::CheckTransitionList>, ApiError> {
    let limit = query.limit;
    let transitions = ops::transitions(state.control.store().as_ref(), &query)
        .await
        .map_err(ops_error)?;
    let next_before = (transitions.len() == limit as usize)
        .then(|| transitions.last().map(|t| t.id))
        .flatten();
    Ok(Json(wire::CheckTransitionList {
        transitions: transitions.into_iter().map(transition_of).collect(),
        next_before,
    }))
}

/// `GET /api/v1/checks/{name}/transitions?before=ID&limit=N`: newest first.
pub(crate) async fn check_transitions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<wire::TransitionsQuery>,
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
    ApiQuery(query): ApiQuery<wire::TransitionsQuery>,
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
    Ok(Json(run_of(name, report)))
}

/// A service as the API shows it: its registry entry with its state and checks.
fn service_of(service: &Service, view: ServiceView) -> wire::ServiceHealth {
    wire::ServiceHealth {
        name: service.name.clone(),
        workspace: service.workspace.clone(),
        url: service.url.clone(),
        node: service.node.clone(),
        labels: service.labels.clone(),
        state: view.state.as_str().to_owned(),
        impacted_by: view.impacted_by,
        checks: view.checks.into_iter().map(brief_of).collect(),
    }
}

/// A check in brief as the API shows it.
fn brief_of(b: CheckBrief) -> wire::CheckBrief {
    wire::CheckBrief {
        name: b.name,
        kind: b.kind.to_owned(),
        state: b.state.as_str().to_owned(),
        since: rfc3339_opt(b.since_ms),
        since_ms: b.since_ms,
        last_probe: rfc3339_opt(b.last_probe_ms),
        last_probe_ms: b.last_probe_ms,
    }
}

/// A check in full as the API shows it.
fn check_of(v: CheckView) -> wire::CheckDetail {
    let brief = brief_of(v.brief);
    wire::CheckDetail {
        name: brief.name,
        kind: brief.kind,
        state: brief.state,
        since: brief.since,
        since_ms: brief.since_ms,
        last_probe: brief.last_probe,
        last_probe_ms: brief.last_probe_ms,
        service: v.service,
        interval_ms: v.interval_ms,
        timeout_ms: v.timeout_ms,
        enabled: v.enabled,
        labels: v.labels,
        conditions: v.conditions,
        consecutive_failures: v.consecutive_failures,
        consecutive_successes: v.consecutive_successes,
        last_result: v.last_result.map(result_of),
        window_ms: v.window_ms,
        latency: latency_of(v.latency),
        failure_ratio: v.failure_ratio,
        certificate: v.certificate.map(standing_of),
    }
}

/// Counts and latency percentiles as the API shows them.
fn latency_of(p: Percentiles) -> wire::LatencySummary {
    wire::LatencySummary {
        count: p.count,
        failures: p.failures,
        p50_ms: p.p50_ms,
        p95_ms: p.p95_ms,
        p99_ms: p.p99_ms,
    }
}

/// A certificate's standing as the API shows it.
fn standing_of(c: CertView) -> wire::CertStanding {
    wire::CertStanding {
        not_after: rfc3339(c.not_after_ms),
        not_after_ms: c.not_after_ms,
        days_left: c.days_left,
        class: c.class.to_owned(),
    }
}

/// A certificate a probe saw as the API shows it.
fn certificate_of(c: CertDetail) -> wire::ProbeCertificate {
    let standing = standing_of(c.standing);
    wire::ProbeCertificate {
        path: c.path,
        subject: c.subject,
        issuer: c.issuer,
        names: c.names,
        not_after: standing.not_after,
        not_after_ms: standing.not_after_ms,
        days_left: standing.days_left,
        class: standing.class,
    }
}

/// A resolved condition as the API shows it.
fn condition_of(c: ConditionView) -> wire::ConditionResult {
    wire::ConditionResult {
        success: c.success,
        condition: c.condition,
    }
}

/// A probe result as the API shows it.
fn result_of(r: ResultView) -> wire::ProbeResult {
    wire::ProbeResult {
        at: rfc3339(r.at_ms),
        at_ms: r.at_ms,
        verdict: r.verdict.to_owned(),
        latency_ms: r.latency_ms,
        status: r.status,
        cause: r.cause,
        error: r.error,
        conditions: r.conditions.into_iter().map(condition_of).collect(),
        certificates: r.certificates.into_iter().map(certificate_of).collect(),
    }
}

/// A transition as the API shows it.
fn transition_of(t: TransitionView) -> wire::CheckTransition {
    wire::CheckTransition {
        id: t.id,
        check: t.check,
        service: t.service,
        from: t.from.as_str().to_owned(),
        to: t.to.as_str().to_owned(),
        at: rfc3339(t.at_ms),
        at_ms: t.at_ms,
        reason: t.reason,
    }
}

/// What running check `check` now found, as the API shows it.
fn run_of(check: String, report: RunReport) -> wire::CheckRun {
    wire::CheckRun {
        check,
        result: result_of(ResultView::of(&report.record, now_ms())),
        reason: report.reason,
        state: report.state.as_str().to_owned(),
        recorded: report.recorded,
    }
}
