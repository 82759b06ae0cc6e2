//! The route table, and the handlers. Every route is declared once, with its access rule, its
//! summary and what it takes and answers, in [`table`]; the router is built from it,
//! [`crate::auth::authorize`] enforces it, and [`crate::openapi`] describes it.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, delete, get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_core::registry::is_valid_name;
use steward_core::{Dependency, Registry, Role, Service, WorkspaceStatus};
use steward_engine::KeyRequest;
use steward_store::{ApiKey, AuditQuery, StoreError};
use steward_wire::alertmanager::{
    AlertGroup, AlertmanagerStatus, GettableAlert, GettableSilence, PostableSilence, PostedSilence,
};
use steward_wire::index::ApiIndex;
use steward_wire::paths;
use steward_wire::schedules as schedules_wire;
use steward_wire::tasks as tasks_wire;
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterIn};

use crate::auth::{Access, Caller};
use crate::extract::{ApiBody, ApiPath, ApiQuery, page_limit};
use crate::openapi::{Answer, Doc, Payload, list_of, typed};
use crate::{ApiError, AppState};

/// Where people read about the API: the "HTTP API" section of the README.
pub const DOCS: &str = "README.md#http-api";

/// One route: method, path template, who may call it, what it does, and its handler.
pub struct RouteSpec {
    /// HTTP method.
    pub method: Method,
    /// Path template, as axum matches it.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// It takes large bodies (batches), up to `max_batch_body_bytes` instead of
    /// `max_body_bytes`.
    pub batch: bool,
    /// What it does, in one line (the operation's summary in the OpenAPI document).
    pub summary: &'static str,
    /// What it takes and answers, for the OpenAPI document.
    pub(crate) doc: Doc,
    handler: fn() -> MethodRouter<AppState>,
}

fn spec(
    method: Method,
    path: &'static str,
    access: Access,
    summary: &'static str,
    handler: fn() -> MethodRouter<AppState>,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        batch: false,
        summary,
        doc: Doc::default(),
        handler,
    }
}

/// A route that takes batches.
fn batch_spec(
    method: Method,
    path: &'static str,
    access: Access,
    summary: &'static str,
    handler: fn() -> MethodRouter<AppState>,
) -> RouteSpec {
    RouteSpec {
        batch: true,
        ..spec(method, path, access, summary, handler)
    }
}

/// The query parameters `T` (a handler's query type) declares.
fn query_params<T: IntoParams>() -> Vec<Parameter> {
    T::into_params(|| Some(ParameterIn::Query))
}

/// What a route takes and answers, declared beside it; the defaults are a JSON object answered
/// with 200, no query and no body.
impl RouteSpec {
    /// Its query string is `T`'s.
    fn query<T: IntoParams>(mut self) -> Self {
        self.doc.query = Some(query_params::<T>);
        self
    }

    /// Its query parameters, as `params` lists them (for queries no struct holds).
    fn query_with(mut self, params: fn() -> Vec<Parameter>) -> Self {
        self.doc.query = Some(params);
        self
    }

    /// It reads the request header `name`, described by `description`.
    fn header(mut self, name: &'static str, description: &'static str) -> Self {
        self.doc.header = Some((name, description));
        self
    }

    /// It takes a JSON body.
    fn body(mut self, body: Payload) -> Self {
        self.doc.body = Some((body, true));
        self
    }

    /// It takes a JSON body, or none.
    fn optional_body(mut self, body: Payload) -> Self {
        self.doc.body = Some((body, false));
        self
    }

    /// What it answers when it succeeds.
    fn answers(mut self, answer: Answer) -> Self {
        self.doc.answer = answer;
        self
    }

    /// The statuses of its success (200 unless said).
    fn status(mut self, ok: &'static [u16]) -> Self {
        self.doc.ok = ok;
        self
    }

    /// Refusals of its own, besides those every route of its kind has.
    fn refuses(mut self, statuses: &'static [u16]) -> Self {
        self.doc.refusals = statuses;
        self
    }

    /// What else a reader of the document should know about it.
    fn note(mut self, note: &'static str) -> Self {
        self.doc.note = Some(note);
        self
    }
}

/// Every route Steward serves. `/metrics` is listed as needing an unscoped viewer key;
/// `api.metrics_public` opens it (see [`access_of`]).
pub fn table() -> Vec<RouteSpec> {
    use Access::{Public, Role as R, Unscoped, Workspace};
    use Payload::Object;
    vec![
        spec(
            Method::GET,
            paths::INDEX.template(),
            Public,
            "What is serving, and where its API is described",
            || get(index),
        )
        .answers(Answer::Json(typed::<ApiIndex>())),
        spec(
            Method::GET,
            paths::OPENAPI.template(),
            Public,
            "This document: every route, who may call it, what it answers",
            || get(openapi_json),
        )
        .answers(Answer::Json(Payload::Typed(
            crate::openapi::document_schema,
        ))),
        spec(
            Method::GET,
            paths::HEALTHZ.template(),
            Public,
            "Liveness: the process answers",
            || get(healthz),
        ),
        spec(
            Method::GET,
            paths::READYZ.template(),
            Public,
            "Readiness: the database answers and was not found damaged",
            || get(readyz),
        )
        .refuses(&[500, 503]),
        // Series name every workspace's checks and queues, so a scoped key may not read them.
        spec(
            Method::GET,
            paths::METRICS.template(),
            Unscoped(Role::Viewer),
            "Metrics in Prometheus's text format",
            || get(metrics),
        )
        .answers(Answer::Text)
        .note("With `api.metrics_public` set, anyone may read it without a key."),
        // Events are filtered per key: a scoped key gets only its workspace's.
        spec(
            Method::GET,
            paths::EVENTS.template(),
            R(Role::Viewer),
            "The live event stream, as Server-Sent Events",
            || get(crate::events::stream),
        )
        .query::<crate::events::EventsQuery>()
        .header(
            "Last-Event-ID",
            "The `id` of the last event seen (`LOG-AUDIT`): the stream replays what came after it",
        )
        .answers(Answer::EventStream)
        .note(
            "A scoped key gets its workspace's events only, and audit events go to admin keys \
             only. Each event's `data` is a `StreamEvent`, or a `Reset` for a `reset` event.",
        ),
        spec(
            Method::GET,
            paths::WHOAMI.template(),
            R(Role::Viewer),
            "The calling key's name, role and scope",
            || get(whoami),
        ),
        spec(
            Method::GET,
            paths::WORKSPACES.template(),
            R(Role::Viewer),
            "The workspaces the key may see",
            || get(list_workspaces),
        ),
        spec(
            Method::GET,
            paths::WORKSPACE.template(),
            Workspace(Role::Viewer, "key"),
            "A workspace, its services and its edges in both directions",
            || get(get_workspace),
        ),
        spec(
            Method::GET,
            paths::SERVICES.template(),
            R(Role::Viewer),
            "Services with their state, what impacts them and their checks",
            || get(crate::health::list_services),
        ),
        spec(
            Method::GET,
            paths::SERVICE_CHECKS.template(),
            R(Role::Viewer),
            "A service's checks, with latency percentiles over a window",
            || get(crate::health::service_checks),
        )
        .query::<crate::health::WindowQuery>(),
        spec(
            Method::GET,
            paths::SERVICE_TRANSITIONS.template(),
            R(Role::Viewer),
            "State changes of a service's checks, newest first",
            || get(crate::health::service_transitions),
        )
        .query::<crate::health::TransitionsQuery>(),
        spec(
            Method::GET,
            paths::CHECK.template(),
            R(Role::Viewer),
            "A check with its last result, latency percentiles over a window",
            || get(crate::health::get_check),
        )
        .query::<crate::health::WindowQuery>(),
        spec(
            Method::GET,
            paths::CHECK_RESULTS.template(),
            R(Role::Viewer),
            "A check's raw results, newest first",
            || get(crate::health::check_results),
        )
        .query::<crate::health::ResultsQuery>(),
        spec(
            Method::GET,
            paths::CHECK_TRANSITIONS.template(),
            R(Role::Viewer),
            "A check's state changes, newest first",
            || get(crate::health::check_transitions),
        )
        .query::<crate::health::TransitionsQuery>(),
        spec(
            Method::POST,
            paths::CHECK_RUN.template(),
            R(Role::Operator),
            "Probe a check now and answer its judged result",
            || post(crate::health::run_check),
        ),
        spec(
            Method::GET,
            paths::GRAPH.template(),
            R(Role::Viewer),
            "The dependency graph: workspaces with their services, and edges",
            || get(graph),
        ),
        spec(
            Method::POST,
            paths::CONFIG_RELOAD.template(),
            Unscoped(Role::Admin),
            "Re-read the config file and put it in force",
            || post(reload),
        )
        .refuses(&[422]),
        spec(
            Method::GET,
            paths::KEYS.template(),
            Unscoped(Role::Admin),
            "Every API key: names, roles, scopes, hints and times",
            || get(list_keys),
        ),
        spec(
            Method::POST,
            paths::KEYS.template(),
            Unscoped(Role::Admin),
            "Create an API key; its secret is in this answer only",
            || post(create_key),
        )
        .body(Object)
        .status(&[201])
        .refuses(&[409]),
        spec(
            Method::DELETE,
            paths::KEY.template(),
            Unscoped(Role::Admin),
            "Revoke an API key: it stops working at once",
            || delete(revoke_key),
        ),
        spec(
            Method::GET,
            paths::AUDIT.template(),
            R(Role::Admin),
            "The audit trail, filtered, paged by sequence number",
            || get(list_audit),
        )
        .query::<AuditParams>(),
        spec(
            Method::GET,
            paths::AUDIT_VERIFY.template(),
            Unscoped(Role::Admin),
            "Verify the audit trail's hash chain",
            || get(verify_audit),
        )
        .refuses(&[409]),
        batch_spec(
            Method::POST,
            paths::TASKS.template(),
            R(Role::Operator),
            "Enqueue a task, or a batch of up to 10,000 in one transaction",
            || post(crate::tasks::enqueue),
        )
        .body(typed::<tasks_wire::Enqueue>())
        .answers(Answer::Json(typed::<tasks_wire::EnqueueAnswer>()))
        .status(&[200, 201])
        .refuses(&[404])
        .note("201 when something was stored, 200 when every idempotency key existed."),
        spec(
            Method::GET,
            paths::TASKS.template(),
            R(Role::Viewer),
            "List tasks, filtered, paged by id",
            || get(crate::tasks::list_tasks),
        )
        .query::<tasks_wire::TaskListQuery>()
        .answers(Answer::Json(typed::<tasks_wire::TaskList>())),
        spec(
            Method::GET,
            paths::TASK.template(),
            R(Role::Viewer),
            "A task and its finished runs",
            || get(crate::tasks::get_task),
        )
        .answers(Answer::Json(typed::<tasks_wire::TaskDetail>())),
        spec(
            Method::POST,
            paths::TASK_CANCEL.template(),
            R(Role::Operator),
            "Cancel a task: a queued one at once, a running one by its worker",
            || post(crate::tasks::cancel_task),
        )
        .answers(Answer::Json(typed::<tasks_wire::TaskChanged>()))
        .refuses(&[409]),
        spec(
            Method::POST,
            paths::TASK_RETRY.template(),
            R(Role::Operator),
            "Queue a dead or cancelled task again, with fresh attempts",
            || post(crate::tasks::retry_task),
        )
        .answers(Answer::Json(typed::<tasks_wire::TaskChanged>()))
        .refuses(&[409]),
        spec(
            Method::GET,
            paths::QUEUES.template(),
            Unscoped(Role::Viewer),
            "Each queue's settings and its tasks per status",
            || get(crate::tasks::list_queues),
        )
        .answers(Answer::Json(typed::<tasks_wire::QueueList>())),
        spec(
            Method::GET,
            paths::SCHEDULES.template(),
            R(Role::Viewer),
            "Schedules with their next fire and last run",
            || get(crate::schedules::list_schedules),
        )
        .answers(Answer::Json(typed::<schedules_wire::ScheduleList>())),
        spec(
            Method::GET,
            paths::SCHEDULE.template(),
            R(Role::Viewer),
            "A schedule with its next fire and last run",
            || get(crate::schedules::get_schedule),
        )
        .answers(Answer::Json(typed::<schedules_wire::Schedule>())),
        spec(
            Method::GET,
            paths::SCHEDULE_RUNS.template(),
            R(Role::Viewer),
            "A schedule's runs, newest first",
            || get(crate::schedules::list_runs),
        )
        .query::<schedules_wire::ScheduleRunsQuery>()
        .answers(Answer::Json(typed::<schedules_wire::ScheduleRunList>())),
        spec(
            Method::POST,
            paths::SCHEDULE_PAUSE.template(),
            R(Role::Operator),
            "Pause a schedule",
            || post(crate::schedules::pause),
        )
        .answers(Answer::Json(typed::<schedules_wire::ScheduleChanged>())),
        spec(
            Method::POST,
            paths::SCHEDULE_RESUME.template(),
            R(Role::Operator),
            "Resume a paused schedule",
            || post(crate::schedules::resume),
        )
        .answers(Answer::Json(typed::<schedules_wire::ScheduleChanged>())),
        spec(
            Method::POST,
            paths::SCHEDULE_TRIGGER.template(),
            R(Role::Operator),
            "Fire a schedule now, unless its overlap policy refuses",
            || post(crate::schedules::trigger),
        )
        .answers(Answer::Json(typed::<schedules_wire::ScheduleTriggered>()))
        .status(&[201])
        .refuses(&[409]),
        batch_spec(
            Method::POST,
            paths::ALERTS.template(),
            R(Role::Operator),
            "Receive alerts from other systems, up to 10,000, all or none",
            || post(crate::alerts::post_alerts),
        )
        .body(Payload::ArrayOrObject),
        // Where Prometheus and other Alertmanager clients post.
        batch_spec(
            Method::POST,
            paths::AM_ALERTS.template(),
            R(Role::Operator),
            "Receive alerts as Alertmanager does (`postableAlerts`)",
            || post(crate::alerts::post_alerts),
        )
        .body(Payload::ArrayOrObject),
        // Alertmanager's API v2, read by amtool and Grafana's Alertmanager data source.
        spec(
            Method::GET,
            paths::AM_ALERTS.template(),
            R(Role::Viewer),
            "Firing alerts in Alertmanager's shape, with what mutes them",
            || get(crate::alertmanager::get_alerts),
        )
        .query_with(crate::alertmanager::alerts_params)
        .answers(Answer::Json(list_of::<GettableAlert>())),
        spec(
            Method::GET,
            paths::AM_ALERT_GROUPS.template(),
            R(Role::Viewer),
            "Firing alerts in the groups their routes put them in",
            || get(crate::alertmanager::get_alert_groups),
        )
        .query_with(crate::alertmanager::alerts_params)
        .answers(Answer::Json(list_of::<AlertGroup>())),
        spec(
            Method::GET,
            paths::AM_SILENCES.template(),
            R(Role::Viewer),
            "Silences in Alertmanager's shape, ended ones too",
            || get(crate::alertmanager::get_silences),
        )
        .query_with(crate::alertmanager::silences_params)
        .answers(Answer::Json(list_of::<GettableSilence>())),
        spec(
            Method::POST,
            paths::AM_SILENCES.template(),
            R(Role::Operator),
            "Create a silence, or replace the one its `id` names",
            || post(crate::alertmanager::post_silences),
        )
        .body(typed::<PostableSilence>())
        .answers(Answer::Json(typed::<PostedSilence>()))
        .refuses(&[404]),
        spec(
            Method::GET,
            paths::AM_SILENCE.template(),
            R(Role::Viewer),
            "A silence in Alertmanager's shape",
            || get(crate::alertmanager::get_silence),
        )
        .answers(Answer::Json(typed::<GettableSilence>())),
        spec(
            Method::DELETE,
            paths::AM_SILENCE.template(),
            R(Role::Operator),
            "Expire a silence now",
            || delete(crate::alertmanager::delete_silence),
        )
        .answers(Answer::Empty),
        spec(
            Method::GET,
            paths::AM_STATUS.template(),
            R(Role::Viewer),
            "Alertmanager's status, enough for amtool and Grafana",
            || get(crate::alertmanager::get_status),
        )
        .answers(Answer::Json(typed::<AlertmanagerStatus>())),
        spec(
            Method::GET,
            paths::ALERTS.template(),
            R(Role::Viewer),
            "Alerts, most recently received first",
            || get(crate::alerts::list_alerts),
        )
        .query::<crate::alerts::AlertsQuery>(),
        spec(
            Method::GET,
            paths::ALERT.template(),
            R(Role::Viewer),
            "An alert with its newest notifications",
            || get(crate::alerts::get_alert),
        ),
        spec(
            Method::POST,
            paths::ALERT_ACK.template(),
            R(Role::Operator),
            "Acknowledge an alert's current episode: no repeats until it changes",
            || post(crate::alerts::ack_alert),
        )
        .optional_body(Object)
        .refuses(&[409]),
        spec(
            Method::GET,
            paths::NOTIFICATIONS.template(),
            R(Role::Viewer),
            "The notification outbox, newest first",
            || get(crate::alerts::list_notifications),
        )
        .query::<crate::alerts::NotificationsQuery>(),
        spec(
            Method::GET,
            paths::SILENCES.template(),
            R(Role::Viewer),
            "Silences in force or to come",
            || get(crate::alerts::list_silences),
        ),
        spec(
            Method::POST,
            paths::SILENCES.template(),
            R(Role::Operator),
            "Create a silence of at most 365 days",
            || post(crate::alerts::create_silence),
        )
        .body(Object)
        .status(&[201]),
        spec(
            Method::DELETE,
            paths::SILENCE.template(),
            R(Role::Operator),
            "End a silence now",
            || delete(crate::alerts::expire_silence),
        ),
        spec(
            Method::GET,
            paths::HEARTBEATS.template(),
            R(Role::Viewer),
            "Heartbeats with their state, last ping and deadline",
            || get(crate::schedules::list_heartbeats),
        )
        .answers(Answer::Json(typed::<schedules_wire::HeartbeatList>())),
        spec(
            Method::POST,
            paths::HEARTBEAT.template(),
            R(Role::Operator),
            "Record a successful ping of a heartbeat",
            || post(crate::schedules::ping_ok),
        )
        .answers(Answer::Json(typed::<schedules_wire::Heartbeat>())),
        spec(
            Method::POST,
            paths::HEARTBEAT_FAIL.template(),
            R(Role::Operator),
            "Record a failed ping of a heartbeat",
            || post(crate::schedules::ping_fail),
        )
        .answers(Answer::Json(typed::<schedules_wire::Heartbeat>())),
    ]
}

/// The access rules by method and path template, built once from [`table`].
fn access_rules() -> &'static HashMap<(Method, &'static str), Access> {
    static RULES: OnceLock<HashMap<(Method, &'static str), Access>> = OnceLock::new();
    RULES.get_or_init(|| {
        table()
            .into_iter()
            .map(|r| ((r.method, r.path), r.access))
            .collect()
    })
}

/// The access rule of a matched route, `None` when the table has no entry for it.
pub(crate) fn access_of(method: &Method, path: &str, state: &AppState) -> Option<Access> {
    // axum answers HEAD with the GET handler; it gets the GET rule too.
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    if path == "/metrics" && *method == Method::GET && state.options.metrics_public {
        return Some(Access::Public);
    }
    access_rules().get(&(method.clone(), path)).copied()
}

pub(crate) fn routes(options: &crate::ApiOptions) -> Router<AppState> {
    let mut by_path: BTreeMap<&'static str, MethodRouter<AppState>> = BTreeMap::new();
    for route in table() {
        let limit = if route.batch {
            options.max_batch_body_bytes
        } else {
            options.max_body_bytes
        };
        let handler = (route.handler)().layer(DefaultBodyLimit::max(limit));
        let merged = match by_path.remove(route.path) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        by_path.insert(route.path, merged);
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, handler)| {
            router.route(path, handler)
        })
}

/// The registry as stored (the database, not this process's memory, is the source of truth when
/// several instances share it), cut to what the caller may see.
async fn visible_registry(state: &AppState, caller: &Caller) -> Result<Registry, ApiError> {
    let registry = state
        .control
        .store()
        .registry()
        .await
        .map_err(|e| ApiError::store(&e))?;
    Ok(registry.visible_to(&caller.principal))
}

/// Parses a JSON body strictly, answering 400 with serde's located message.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("invalid JSON body: {e}"),
        )
    })
}

/// A store refusal as an answer: conflicts and invalid states 409, unknown things 404, damaged
/// data `store_corrupt`, anything else `store_unavailable`.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::State(message) => ApiError::new(StatusCode::CONFLICT, "invalid_state", message),
        StoreError::Conflict(what) => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("{what} already exists"),
        ),
        StoreError::NotFound(what) => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        ),
        other => ApiError::store(&other),
    }
}

/// What is serving, and where its API is described: so that `curl /` says more than 404.
async fn index() -> Json<ApiIndex> {
    Json(ApiIndex {
        name: "steward".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        openapi: paths::OPENAPI.template().to_owned(),
        docs: DOCS.to_owned(),
    })
}

/// The OpenAPI document, generated once from [`table`].
async fn openapi_json() -> Result<impl IntoResponse, ApiError> {
    let document = crate::openapi::json().map_err(|e| {
        tracing::error!(error = %e, "the OpenAPI document could not be written");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the OpenAPI document could not be written; see the server log",
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], document))
}

/// Liveness: the process answers.
async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the store answers too, and its file was not found damaged at start.
async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let store = state.control.store();
    if store.damaged() {
        return Err(ApiError::damaged_store(StatusCode::SERVICE_UNAVAILABLE));
    }
    store.ping().await.map_err(|e| ApiError::store(&e))?;
    Ok(Json(
        json!({ "status": "ready", "store": state.control.store().backend() }),
    ))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        (state.metrics)(),
    )
}

async fn whoami(Extension(caller): Extension<Caller>) -> impl IntoResponse {
    Json(json!({ "principal": caller.principal }))
}

async fn list_workspaces(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    let registry = visible_registry(&state, &caller).await?;
    Ok(Json(json!({ "workspaces": registry.workspaces })))
}

async fn get_workspace(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(key): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let registry = visible_registry(&state, &caller).await?;
    let workspace = registry.workspace(&key).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no workspace `{key}`"),
        )
    })?;
    let services: Vec<&Service> = registry.services_of(&key).collect();
    let depends_on: Vec<&Dependency> = registry
        .dependencies
        .iter()
        .filter(|d| d.from == key)
        .collect();
    let depended_on_by: Vec<&Dependency> = registry
        .dependencies
        .iter()
        .filter(|d| d.to == key)
        .collect();
    Ok(Json(json!({
        "workspace": workspace,
        "services": services,
        "depends_on": depends_on,
        "depended_on_by": depended_on_by,
    })))
}

/// A node of the dependency graph: a workspace and the services it owns.
#[derive(Serialize)]
struct GraphNode<'a> {
    key: &'a str,
    status: WorkspaceStatus,
    description: Option<&'a str>,
    services: Vec<&'a str>,
}

async fn graph(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    let registry = visible_registry(&state, &caller).await?;
    let nodes: Vec<GraphNode<'_>> = registry
        .workspaces
        .iter()
        .map(|w| GraphNode {
            key: &w.key,
            status: w.status,
            description: w.description.as_deref(),
            services: registry
                .services_of(&w.key)
                .map(|s| s.name.as_str())
                .collect(),
        })
        .collect();
    Ok(Json(
        json!({ "nodes": nodes, "edges": registry.dependencies }),
    ))
}

async fn reload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    let outcome = state.control.reload(&caller.actor()).await?;
    Ok(Json(json!({
        "changes": outcome.diff.summary_lines(),
        "counts": outcome.diff.counts(),
        "warnings": outcome.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "restart_required": outcome.restart_required,
    })))
}

/// A key as the API shows it: never its digest.
#[derive(Serialize)]
struct KeyView<'a> {
    name: &'a str,
    role: Role,
    workspace: Option<&'a str>,
    hint: &'a str,
    created_at_ms: i64,
    expires_at_ms: Option<i64>,
    last_used_at_ms: Option<i64>,
    revoked_at_ms: Option<i64>,
}

impl<'a> From<&'a ApiKey> for KeyView<'a> {
    fn from(k: &'a ApiKey) -> Self {
        Self {
            name: &k.name,
            role: k.role,
            workspace: k.workspace.as_deref(),
            hint: &k.hint,
            created_at_ms: k.created_at_ms,
            expires_at_ms: k.expires_at_ms,
            last_used_at_ms: k.last_used_at_ms,
            revoked_at_ms: k.revoked_at_ms,
        }
    }
}

async fn list_keys(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let keys = state
        .control
        .store()
        .list_keys()
        .await
        .map_err(|e| ApiError::store(&e))?;
    let views: Vec<KeyView<'_>> = keys.iter().map(KeyView::from).collect();
    Ok(Json(json!({ "keys": views })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    role: Role,
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    expires_in_seconds: Option<u64>,
}

async fn create_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiBody(body): ApiBody,
) -> Result<impl IntoResponse, ApiError> {
    let request: CreateKey = parse_body(&body)?;
    let invalid = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message);
    if !is_valid_name(&request.name) {
        return Err(invalid(format!(
            "`name`: `{}` is not a valid name (letters, digits, `_`, `-`, `.`; at most 64)",
            request.name
        )));
    }
    if let Some(ws) = request.workspace.as_deref() {
        if !is_valid_name(ws) {
            return Err(invalid(format!(
                "`workspace`: `{ws}` is not a valid workspace key"
            )));
        }
        // A key for a workspace nobody declared sees nothing now, and everything of whatever
        // is declared under that name later.
        if state.control.registry().workspace(ws).is_none() {
            return Err(invalid(format!(
                "`workspace`: no workspace `{ws}` is declared"
            )));
        }
    }
    let expires_at_ms = match request.expires_in_seconds {
        Some(0) => return Err(invalid("`expires_in_seconds`: must be positive".into())),
        Some(s) => Some(
            i64::try_from(s)
                .ok()
                .and_then(|s| s.checked_mul(1000))
                .and_then(|ms| steward_store::now_ms().checked_add(ms))
                .ok_or_else(|| invalid("`expires_in_seconds`: too large".into()))?,
        ),
        None => None,
    };
    let request = KeyRequest {
        name: request.name,
        role: request.role,
        workspace: request.workspace,
        expires_at_ms,
    };
    let (key, secret) =
        steward_engine::keys::create_key(state.control.store().as_ref(), &request, &caller.actor())
            .await
            .map_err(store_error)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "key": KeyView::from(&key), "secret": secret })),
    ))
}

async fn revoke_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let key = state
        .control
        .store()
        .revoke_key(&name, &caller.actor())
        .await
        .map_err(store_error)?;
    state.auth.forget_all();
    Ok(Json(json!({ "key": KeyView::from(&key) })))
}

/// The query of `GET /api/v1/audit`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    /// Events after this sequence number (the last page's `next_after`).
    #[serde(default)]
    after: i64,
    /// Events per page (default 100).
    #[serde(default)]
    limit: Option<u32>,
    /// Only this actor's events.
    actor: Option<String>,
    /// Only events of this action (`key.create`, `registry.sync`, …).
    action: Option<String>,
    /// Only this workspace's events (a scoped key gets its own whatever it asks).
    workspace: Option<String>,
    /// Only events by this kind of actor: `key`, `cli` or `system`.
    actor_kind: Option<String>,
}

async fn list_audit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<impl IntoResponse, ApiError> {
    // A scoped admin reads only its workspace's trail.
    let workspace = match &caller.principal.workspace {
        Some(scope) => Some(scope.clone()),
        None => params.workspace,
    };
    let limit = page_limit(params.limit, 100, steward_store::MAX_AUDIT_PAGE)?;
    let actor_kind = match params.actor_kind.as_deref() {
        None => None,
        Some(raw) => Some(steward_core::audit::ActorKind::parse(raw).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "`actor_kind`: expected key, cli or system",
            )
        })?),
    };
    let query = AuditQuery {
        after_seq: params.after,
        limit,
        actor: params.actor,
        action: params.action,
        workspace,
        actor_kind,
    };
    let store = state.control.store();
    let events = store
        .audit_events(&query)
        .await
        .map_err(|e| ApiError::store(&e))?;
    let head = store
        .audit_head()
        .await
        .map_err(|e| ApiError::store(&e))?
        .map_or(0, |(seq, _)| seq);
    let next_after = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    Ok(Json(
        json!({ "events": events, "next_after": next_after, "head": head }),
    ))
}

async fn verify_audit(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    match steward_store::audit::verify_audit_to_head(state.control.store().as_ref()).await {
        Ok(verified) => Ok(Json(json!({
            "ok": true,
            "events": verified.events,
            "head": verified.head.map(|(seq, hash)| json!({ "seq": seq, "hash": hash })),
        }))),
        Err(steward_store::audit::VerifyError::Broken(brk)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "audit_chain_broken",
            brk.to_string(),
        )),
        Err(steward_store::audit::VerifyError::Store(e)) => Err(ApiError::store(&e)),
    }
}
