//! The process itself: the index, the OpenAPI document, liveness, readiness, metrics and
//! config reload.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use steward_wire::index::ApiIndex;
use steward_wire::paths;
use steward_wire::system::{ChangeCounts, Leadership, Liveness, Readiness, Reloaded, RoleLease};

use crate::caller::Caller;
use crate::{ApiError, AppState};

/// Where people read about the API: the "HTTP API" section of the README.
const DOCS: &str = "README.md#http-api";

/// What is serving, and where its API is described: so that `curl /` says more than 404.
pub(crate) async fn index() -> Json<ApiIndex> {
    Json(ApiIndex {
        name: "steward".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        openapi: paths::OPENAPI.template().to_owned(),
        docs: DOCS.to_owned(),
    })
}

/// The OpenAPI document, generated once from the route table.
pub(crate) async fn openapi_json() -> Result<impl IntoResponse, ApiError> {
    // Written on start-up's side thread; only a caller arriving before it is done waits for
    // it, on a blocking thread rather than the runtime.
    let document = match crate::openapi::written() {
        Some(written) => written,
        None => tokio::task::spawn_blocking(crate::openapi::json)
            .await
            .map_err(|e| unwritten(&e))?,
    }
    .map_err(|e| unwritten(&e))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], document))
}

/// The document could not be written: said in the log, answered as an internal error.
fn unwritten(error: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(%error, "the OpenAPI document could not be written");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the OpenAPI document could not be written; see the server log",
    )
}

/// Liveness: the process answers.
pub(crate) async fn healthz() -> Json<Liveness> {
    Json(Liveness {
        status: "ok".to_owned(),
    })
}

/// Readiness: the store answers too, and its file was not found damaged at start.
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let store = state.control.store();
    if store.damaged() {
        return Err(ApiError::damaged_store(StatusCode::SERVICE_UNAVAILABLE));
    }
    store.ping().await.map_err(|e| ApiError::store(&e))?;
    Ok(Json(Readiness {
        status: "ready".to_owned(),
        store: store.backend().to_owned(),
    }))
}

/// Metrics in Prometheus's text format.
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        (state.metrics)(),
    )
}

/// `POST /api/v1/config/reload`: re-reads the config file and puts it in force.
pub(crate) async fn reload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Reloaded>, ApiError> {
    let outcome = state.control.reload(&caller.actor()).await?;
    let counts = outcome.diff.counts();
    Ok(Json(Reloaded {
        changes: outcome.diff.summary_lines(),
        counts: ChangeCounts {
            added: counts.added,
            updated: counts.updated,
            removed: counts.removed,
        },
        warnings: outcome.warnings.iter().map(ToString::to_string).collect(),
        restart_required: outcome
            .restart_required
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    }))
}

/// The roles one instance plays at a time.
const ROLES: [&str; 3] = [
    steward_store::schedules::SCHEDULER_ROLE,
    steward_store::health::PROBER_ROLE,
    steward_store::alerts::ALERTING_ROLE,
];

/// `GET /api/v1/leadership`: which instance holds each role's lease.
pub(crate) async fn leadership(
    State(state): State<AppState>,
) -> Result<Json<Leadership>, ApiError> {
    let now = steward_store::now_ms();
    let mut leases = Vec::with_capacity(ROLES.len());
    for role in ROLES {
        let lease = state
            .control
            .store()
            .current_lease(role)
            .await
            .map_err(crate::error::store_error)?;
        leases.push(RoleLease {
            role: role.to_owned(),
            held: lease.as_ref().is_some_and(|l| l.expires_at_ms > now),
            expires_at: lease
                .as_ref()
                .map(|l| steward_wire::time::rfc3339(l.expires_at_ms)),
            expires_at_ms: lease.as_ref().map(|l| l.expires_at_ms),
            fence: lease.as_ref().map(|l| l.fence),
            holder: lease.map(|l| l.holder),
        });
    }
    Ok(Json(Leadership { leases }))
}
