//! The calling key and the registry as the key may see it: `/api/v1/whoami`,
//! `/api/v1/workspaces…` and `/api/v1/graph`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use steward_core::{Dependency, Principal, Registry, Service, Workspace};
use steward_wire::registry as wire;

use crate::caller::Caller;
use crate::extract::ApiPath;
use crate::keys::role_of;
use crate::{ApiError, AppState};

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

/// `GET /api/v1/whoami`.
pub(crate) async fn whoami(Extension(caller): Extension<Caller>) -> Json<wire::WhoAmI> {
    Json(wire::WhoAmI {
        principal: principal_of(&caller.principal),
    })
}

/// `GET /api/v1/workspaces`.
pub(crate) async fn list_workspaces(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<wire::WorkspaceList>, ApiError> {
    let registry = visible_registry(&state, &caller).await?;
    Ok(Json(wire::WorkspaceList {
        workspaces: registry.workspaces.iter().map(workspace_of).collect(),
    }))
}

/// `GET /api/v1/workspaces/{key}`: the workspace, its services and its edges both ways.
pub(crate) async fn get_workspace(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<wire::WorkspaceDetail>, ApiError> {
    let registry = visible_registry(&state, &caller).await?;
    let workspace = registry.workspace(&key).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no workspace `{key}`"),
        )
    })?;
    let edges = |keep: &dyn Fn(&Dependency) -> bool| {
        registry
            .dependencies
            .iter()
            .filter(|d| keep(d))
            .map(dependency_of)
            .collect()
    };
    Ok(Json(wire::WorkspaceDetail {
        workspace: workspace_of(workspace),
        services: registry.services_of(&key).map(service_of).collect(),
        depends_on: edges(&|d| d.from == key),
        depended_on_by: edges(&|d| d.to == key),
    }))
}

/// `GET /api/v1/graph`: workspaces with their services, and the edges between them.
pub(crate) async fn graph(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<wire::Graph>, ApiError> {
    let registry = visible_registry(&state, &caller).await?;
    let nodes = registry
        .workspaces
        .iter()
        .map(|w| wire::GraphNode {
            key: w.key.clone(),
            status: w.status.as_str().to_owned(),
            description: w.description.clone(),
            services: registry
                .services_of(&w.key)
                .map(|s| s.name.clone())
                .collect(),
        })
        .collect();
    Ok(Json(wire::Graph {
        nodes,
        edges: registry.dependencies.iter().map(dependency_of).collect(),
    }))
}

/// A caller as the API shows it.
pub(crate) fn principal_of(p: &Principal) -> wire::Principal {
    wire::Principal {
        name: p.name.clone(),
        role: role_of(p.role),
        workspace: p.workspace.clone(),
    }
}

fn workspace_of(w: &Workspace) -> wire::Workspace {
    wire::Workspace {
        key: w.key.clone(),
        description: w.description.clone(),
        owner: w.owner.clone(),
        status: w.status.as_str().to_owned(),
        labels: w.labels.clone(),
        repo: w.repo.as_ref().map(|r| wire::Repo {
            name: r.name.clone(),
            path: r.path.clone(),
            remote: r.remote.clone(),
        }),
    }
}

fn service_of(s: &Service) -> wire::Service {
    wire::Service {
        name: s.name.clone(),
        workspace: s.workspace.clone(),
        url: s.url.clone(),
        node: s.node.clone(),
        labels: s.labels.clone(),
    }
}

fn dependency_of(d: &Dependency) -> wire::Dependency {
    wire::Dependency {
        from: d.from.clone(),
        to: d.to.clone(),
        kind: d.kind.clone(),
        note: d.note.clone(),
    }
}
