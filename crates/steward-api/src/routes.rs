//! The route table, and the handlers. Every route is declared once, with its access rule, in
//! [`table`]; the router is built from it, and [`crate::auth::authorize`] enforces it.

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

use crate::auth::{Access, Caller};
use crate::extract::{ApiBody, ApiPath, ApiQuery, page_limit};
use crate::{ApiError, AppState};

/// One route: method, path template, who may call it, and its handler.
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
    handler: fn() -> MethodRouter<AppState>,
}

fn spec(
    method: Method,
    path: &'static str,
    access: Access,
    handler: fn() -> MethodRouter<AppState>,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        batch: false,
        handler,
    }
}

/// A route that takes batches.
fn batch_spec(
    method: Method,
    path: &'static str,
    access: Access,
    handler: fn() -> MethodRouter<AppState>,
) -> RouteSpec {
    RouteSpec {
        batch: true,
        ..spec(method, path, access, handler)
    }
}

/// Every route Steward serves. `/metrics` is listed as needing an unscoped viewer key;
/// `api.metrics_public` opens it (see [`access_of`]).
pub fn table() -> Vec<RouteSpec> {
    use Access::{Public, Role as R, Unscoped, Workspace};
    vec![
        spec(Method::GET, "/healthz", Public, || get(healthz)),
        spec(Method::GET, "/readyz", Public, || get(readyz)),
        // Series name every workspace's checks and queues, so a scoped key may not read them.
        spec(Method::GET, "/metrics", Unscoped(Role::Viewer), || {
            get(metrics)
        }),
        // Events are filtered per key: a scoped key gets only its workspace's.
        spec(Method::GET, "/api/v1/events", R(Role::Viewer), || {
            get(crate::events::stream)
        }),
        spec(Method::GET, "/api/v1/whoami", R(Role::Viewer), || {
            get(whoami)
        }),
        spec(Method::GET, "/api/v1/workspaces", R(Role::Viewer), || {
            get(list_workspaces)
        }),
        spec(
            Method::GET,
            "/api/v1/workspaces/{key}",
            Workspace(Role::Viewer, "key"),
            || get(get_workspace),
        ),
        spec(Method::GET, "/api/v1/services", R(Role::Viewer), || {
            get(crate::health::list_services)
        }),
        spec(
            Method::GET,
            "/api/v1/services/{name}/checks",
            R(Role::Viewer),
            || get(crate::health::service_checks),
        ),
        spec(
            Method::GET,
            "/api/v1/services/{name}/transitions",
            R(Role::Viewer),
            || get(crate::health::service_transitions),
        ),
        spec(
            Method::GET,
            "/api/v1/checks/{name}",
            R(Role::Viewer),
            || get(crate::health::get_check),
        ),
        spec(
            Method::GET,
            "/api/v1/checks/{name}/results",
            R(Role::Viewer),
            || get(crate::health::check_results),
        ),
        spec(
            Method::GET,
            "/api/v1/checks/{name}/transitions",
            R(Role::Viewer),
            || get(crate::health::check_transitions),
        ),
        spec(
            Method::POST,
            "/api/v1/checks/{name}/run",
            R(Role::Operator),
            || post(crate::health::run_check),
        ),
        spec(Method::GET, "/api/v1/graph", R(Role::Viewer), || get(graph)),
        spec(
            Method::POST,
            "/api/v1/config/reload",
            Unscoped(Role::Admin),
            || post(reload),
        ),
        spec(Method::GET, "/api/v1/keys", Unscoped(Role::Admin), || {
            get(list_keys)
        }),
        spec(Method::POST, "/api/v1/keys", Unscoped(Role::Admin), || {
            post(create_key)
        }),
        spec(
            Method::DELETE,
            "/api/v1/keys/{name}",
            Unscoped(Role::Admin),
            || delete(revoke_key),
        ),
        spec(Method::GET, "/api/v1/audit", R(Role::Admin), || {
            get(list_audit)
        }),
        spec(
            Method::GET,
            "/api/v1/audit/verify",
            Unscoped(Role::Admin),
            || get(verify_audit),
        ),
        batch_spec(Method::POST, "/api/v1/tasks", R(Role::Operator), || {
            post(crate::tasks::enqueue)
        }),
        spec(Method::GET, "/api/v1/tasks", R(Role::Viewer), || {
            get(crate::tasks::list_tasks)
        }),
        spec(Method::GET, "/api/v1/tasks/{id}", R(Role::Viewer), || {
            get(crate::tasks::get_task)
        }),
        spec(
            Method::POST,
            "/api/v1/tasks/{id}/cancel",
            R(Role::Operator),
            || post(crate::tasks::cancel_task),
        ),
        spec(
            Method::POST,
            "/api/v1/tasks/{id}/retry",
            R(Role::Operator),
            || post(crate::tasks::retry_task),
        ),
        spec(
            Method::GET,
            "/api/v1/queues",
            Unscoped(Role::Viewer),
            || get(crate::tasks::list_queues),
        ),
        spec(Method::GET, "/api/v1/schedules", R(Role::Viewer), || {
            get(crate::schedules::list_schedules)
        }),
        spec(
            Method::GET,
            "/api/v1/schedules/{name}",
            R(Role::Viewer),
            || get(crate::schedules::get_schedule),
        ),
        spec(
            Method::GET,
            "/api/v1/schedules/{name}/runs",
            R(Role::Viewer),
            || get(crate::schedules::list_runs),
        ),
        spec(
            Method::POST,
            "/api/v1/schedules/{name}/pause",
            R(Role::Operator),
            || post(crate::schedules::pause),
        ),
        spec(
            Method::POST,
            "/api/v1/schedules/{name}/resume",
            R(Role::Operator),
            || post(crate::schedules::resume),
        ),
        spec(
            Method::POST,
            "/api/v1/schedules/{name}/trigger",
            R(Role::Operator),
            || post(crate::schedules::trigger),
        ),
        batch_spec(Method::POST, "/api/v1/alerts", R(Role::Operator), || {
            post(crate::alerts::post_alerts)
        }),
        // Where Prometheus and other Alertmanager clients post.
        batch_spec(Method::POST, "/api/v2/alerts", R(Role::Operator), || {
            post(crate::alerts::post_alerts)
        }),
        // Alertmanager's API v2, read by amtool and Grafana's Alertmanager data source.
        spec(Method::GET, "/api/v2/alerts", R(Role::Viewer), || {
            get(crate::alertmanager::get_alerts)
        }),
        spec(
            Method::GET,
            "/api/v2/alerts/groups",
            R(Role::Viewer),
            || get(crate::alertmanager::get_alert_groups),
        ),
        spec(Method::GET, "/api/v2/silences", R(Role::Viewer), || {
            get(crate::alertmanager::get_silences)
        }),
        spec(Method::POST, "/api/v2/silences", R(Role::Operator), || {
            post(crate::alertmanager::post_silences)
        }),
        spec(
            Method::GET,
            "/api/v2/silence/{silenceID}",
            R(Role::Viewer),
            || get(crate::alertmanager::get_silence),
        ),
        spec(
            Method::DELETE,
            "/api/v2/silence/{silenceID}",
            R(Role::Operator),
            || delete(crate::alertmanager::delete_silence),
        ),
        spec(Method::GET, "/api/v2/status", R(Role::Viewer), || {
            get(crate::alertmanager::get_status)
        }),
        spec(Method::GET, "/api/v1/alerts", R(Role::Viewer), || {
            get(crate::alerts::list_alerts)
        }),
        spec(
            Method::GET,
            "/api/v1/alerts/{fingerprint}",
            R(Role::Viewer),
            || get(crate::alerts::get_alert),
        ),
        spec(
            Method::POST,
            "/api/v1/alerts/{fingerprint}/ack",
            R(Role::Operator),
            || post(crate::alerts::ack_alert),
        ),
        spec(
            Method::GET,
            "/api/v1/notifications",
            R(Role::Viewer),
            || get(crate::alerts::list_notifications),
        ),
        spec(Method::GET, "/api/v1/silences", R(Role::Viewer), || {
            get(crate::alerts::list_silences)
        }),
        spec(Method::POST, "/api/v1/silences", R(Role::Operator), || {
            post(crate::alerts::create_silence)
        }),
        spec(
            Method::DELETE,
            "/api/v1/silences/{id}",
            R(Role::Operator),
            || delete(crate::alerts::expire_silence),
        ),
        spec(Method::GET, "/api/v1/heartbeats", R(Role::Viewer), || {
            get(crate::schedules::list_heartbeats)
        }),
        spec(
            Method::POST,
            "/api/v1/heartbeats/{name}",
            R(Role::Operator),
            || post(crate::schedules::ping_ok),
        ),
        spec(
            Method::POST,
            "/api/v1/heartbeats/{name}/fail",
            R(Role::Operator),
            || post(crate::schedules::ping_fail),
        ),
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    #[serde(default)]
    after: i64,
    #[serde(default)]
    limit: Option<u32>,
    actor: Option<String>,
    action: Option<String>,
    workspace: Option<String>,
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
