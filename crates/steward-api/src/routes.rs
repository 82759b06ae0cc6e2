//! The routes and their handlers.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use steward_core::{Dependency, Registry, Service, Workspace, WorkspaceStatus};

use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/workspaces", get(list_workspaces))
        .route("/api/v1/workspaces/{key}", get(get_workspace))
        .route("/api/v1/services", get(list_services))
        .route("/api/v1/graph", get(graph))
        .route("/api/v1/config/reload", post(reload))
}

/// The registry as stored (the database, not this process's memory, is the source of truth when
/// several instances share it).
async fn stored_registry(state: &AppState) -> Result<Registry, ApiError> {
    state
        .control
        .store()
        .registry()
        .await
        .map_err(|e| ApiError::store(&e))
}

/// Liveness: the process answers.
async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the store answers too.
async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    state
        .control
        .store()
        .ping()
        .await
        .map_err(|e| ApiError::store(&e))?;
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

async fn list_workspaces(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let registry = stored_registry(&state).await?;
    Ok(Json(json!({ "workspaces": registry.workspaces })))
}

async fn get_workspace(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let registry = stored_registry(&state).await?;
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

async fn list_services(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let registry = stored_registry(&state).await?;
    Ok(Json(json!({ "services": registry.services })))
}

/// A node of the dependency graph: a workspace and the services it owns.
#[derive(Serialize)]
struct GraphNode<'a> {
    key: &'a str,
    status: WorkspaceStatus,
    description: Option<&'a str>,
    services: Vec<&'a str>,
}

async fn graph(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let registry = stored_registry(&state).await?;
    let nodes: Vec<GraphNode<'_>> = registry
        .workspaces
        .iter()
        .map(|w: &Workspace| GraphNode {
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

async fn reload(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let outcome = state.control.reload().await?;
    Ok(Json(json!({
        "changes": outcome.diff.summary_lines(),
        "counts": outcome.diff.counts(),
        "warnings": outcome.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "restart_required": outcome.restart_required,
    })))
}
