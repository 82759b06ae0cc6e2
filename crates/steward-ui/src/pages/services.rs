//! `/services` and `/services/{name}`: every service's state, and one service's checks with
//! their latency over three windows, transitions and certificates; "run now" for operators.

use axum::extract::{Path, Query, Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use steward_wire::health::{
    CheckDetail, CheckResults, CheckTransition, CheckTransitionList, ServiceChecks, ServiceHealth,
    ServiceHealthList,
};
use steward_wire::paths;

use crate::render::Page;
use crate::session::Signed;
use crate::{PageError, Ui};

use super::{SERVICE_STATES, read_form, state_rank};

/// The windows a service's latency is shown over.
const WINDOWS: [&str; 3] = ["1h", "24h", "30d"];
/// The span a check's latency chart covers.
const CHART_MS: i64 = 60 * 60 * 1000;
/// Probes a chart draws at most (an hour of probes every second).
const CHART_PROBES: u32 = 3_600;
/// Transitions listed on a service's page.
const TRANSITIONS_SHOWN: u32 = 50;
/// Services per page of the list.
const PAGE_SIZE: usize = 100;

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    /// Only services in this state.
    state: Option<String>,
    /// Only services of this workspace.
    workspace: Option<String>,
    /// The page, counting from 1.
    page: Option<usize>,
}

#[derive(Serialize)]
struct ServicesPage {
    services: Vec<ServiceHealth>,
    /// Services matching the filters, on every page.
    matching: usize,
    page: usize,
    pages: usize,
    states: Vec<(&'static str, usize)>,
    workspaces: Vec<String>,
    state: Option<String>,
    workspace: Option<String>,
}

/// `GET /services`: every service the key may see, worst first, filterable.
pub(crate) async fn list(
    State(ui): State<Ui>,
    Query(query): Query<ListQuery>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let all: ServiceHealthList = ui.get(&signed, paths::SERVICES.template()).await?;
        let states = SERVICE_STATES
            .iter()
            .map(|state| {
                (
                    *state,
                    all.services.iter().filter(|s| s.state == *state).count(),
                )
            })
            .collect();
        let mut workspaces: Vec<String> = all
            .services
            .iter()
            .filter_map(|s| s.workspace.clone())
            .collect();
        workspaces.sort();
        workspaces.dedup();
        let state = query.state.filter(|s| !s.is_empty());
        let workspace = query.workspace.filter(|w| !w.is_empty());
        let mut services: Vec<ServiceHealth> = all
            .services
            .into_iter()
            .filter(|s| state.as_ref().is_none_or(|want| &s.state == want))
            .filter(|s| {
                workspace
                    .as_ref()
                    .is_none_or(|want| s.workspace.as_ref() == Some(want))
            })
            .collect();
        services.sort_by(|a, b| {
            state_rank(&a.state)
                .cmp(&state_rank(&b.state))
                .then_with(|| a.name.cmp(&b.name))
        });
        let matching = services.len();
        let pages = matching.div_ceil(PAGE_SIZE).max(1);
        let page = query.page.unwrap_or(1).clamp(1, pages);
        let services: Vec<ServiceHealth> = services
            .into_iter()
            .skip((page - 1) * PAGE_SIZE)
            .take(PAGE_SIZE)
            .collect();
        ui.render(
            &signed,
            Page {
                template: "services.html",
                title: "Services".into(),
                nav: "services",
                live: true,
                data: ServicesPage {
                    services,
                    matching,
                    page,
                    pages,
                    states,
                    workspaces,
                    state,
                    workspace,
                },
            },
        )
    }
    .await;
    ui.respond(result)
}

#[derive(Serialize)]
struct ServicePage {
    service: ServiceHealth,
    /// The checks, with figures over the shortest window.
    checks: Vec<CheckDetail>,
    /// Per check, its latency and failures over each window.
    windows: Vec<CheckWindows>,
    transitions: Vec<CheckTransition>,
    /// Per check, its latency over the last hour.
    charts: Vec<CheckChart>,
}

#[derive(Serialize)]
struct CheckChart {
    check: String,
    chart: super::chart::Chart,
}

#[derive(Serialize)]
struct CheckWindows {
    check: String,
    /// `(window, p50, p95, p99, probes, uptime %)`, one per window.
    figures: Vec<WindowFigures>,
}

#[derive(Serialize)]
struct WindowFigures {
    window: &'static str,
    p50_ms: Option<u64>,
    p95_ms: Option<u64>,
    p99_ms: Option<u64>,
    probes: u64,
    uptime_percent: Option<f64>,
}

/// `GET /services/{name}`: one service in full.
pub(crate) async fn detail(
    State(ui): State<Ui>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let page = read_service(&ui, &signed, &name).await?;
        ui.render(
            &signed,
            Page {
                template: "service.html",
                title: format!("Service {name}"),
                nav: "services",
                live: true,
                data: page,
            },
        )
    }
    .await;
    ui.respond(result)
}

async fn read_service(ui: &Ui, signed: &Signed, name: &str) -> Result<ServicePage, PageError> {
    // The list is what tells a scoped key's services from others: a service it may not see
    // is not found, exactly as the API answers.
    let all: ServiceHealthList = ui.get(signed, paths::SERVICES.template()).await?;
    let service = all
        .services
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| PageError::NotFound(format!("service `{name}` not found")))?;
    let mut per_window = Vec::with_capacity(WINDOWS.len());
    for window in WINDOWS {
        let path = format!("{}?window={window}", paths::SERVICE_CHECKS.with(&[&name]));
        let checks: ServiceChecks = ui.get(signed, &path).await?;
        per_window.push((window, checks.checks));
    }
    let transitions_path = format!(
        "{}?limit={TRANSITIONS_SHOWN}",
        paths::SERVICE_TRANSITIONS.with(&[&name])
    );
    let transitions: CheckTransitionList = ui.get(signed, &transitions_path).await?;
    let to_ms = steward_store::now_ms();
    let from_ms = to_ms - CHART_MS;
    let mut charts = Vec::new();
    for check in per_window
        .first()
        .map(|(_, checks)| checks.as_slice())
        .unwrap_or_default()
    {
        let path = format!(
            "{}?since={from_ms}&limit={CHART_PROBES}",
            paths::CHECK_RESULTS.with(&[&check.name])
        );
        let results: CheckResults = ui.get(signed, &path).await?;
        charts.push(CheckChart {
            check: check.name.clone(),
            chart: super::chart::latency_chart(&results.results, from_ms, to_ms),
        });
    }
    let checks = per_window
        .first()
        .map(|(_, checks)| checks.clone())
        .unwrap_or_default();
    let windows = checks
        .iter()
        .map(|check| CheckWindows {
            check: check.name.clone(),
            figures: per_window
                .iter()
                .filter_map(|(window, checks)| {
                    let c = checks.iter().find(|c| c.name == check.name)?;
                    Some(WindowFigures {
                        window,
                        p50_ms: c.latency.p50_ms,
                        p95_ms: c.latency.p95_ms,
                        p99_ms: c.latency.p99_ms,
                        probes: c.latency.count,
                        uptime_percent: c
                            .failure_ratio
                            .map(|r| ((1.0 - r) * 10_000.0).round() / 100.0),
                    })
                })
                .collect(),
        })
        .collect();
    Ok(ServicePage {
        service,
        checks,
        windows,
        transitions: transitions.transitions,
        charts,
    })
}

#[derive(Deserialize)]
pub(crate) struct RunForm {
    /// Absent counts as wrong.
    #[serde(default)]
    csrf: String,
    /// The service page to return to.
    service: String,
}

/// `POST /checks/{name}/run`: probes a check now (operators), then back to its service.
pub(crate) async fn run_check(
    State(ui): State<Ui>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let form: RunForm = read_form(&ui, parts.clone(), body).await?;
        signed.check_form(&form.csrf)?;
        let path = paths::CHECK_RUN.with(&[&name]);
        ui.act(&signed, Method::POST, &path, None).await?;
        let back = format!("/services/{}", paths::encode(&form.service));
        Ok(Redirect::to(&ui.link(&back)).into_response())
    }
    .await;
    ui.respond(result)
}
