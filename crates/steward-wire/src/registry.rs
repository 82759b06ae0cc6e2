//! The calling key and the registry: `/api/v1/whoami`, `/api/v1/workspaces…` and
//! `/api/v1/graph`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::keys::Role;

/// Who is calling: `GET /api/v1/whoami`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// The calling key.
    pub principal: Principal,
}

/// An authenticated key: its name, role and scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Principal {
    /// The key's name (the actor in audit events).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The one workspace it may see and touch; `null` means all.
    pub workspace: Option<String>,
}

/// Where a workspace's code lives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Repo {
    /// Repository name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Checkout path on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Git remote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// A workspace: an agent, a pipeline, a team's slice of the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Workspace {
    /// Its unique key.
    pub key: String,
    /// What it does.
    pub description: Option<String>,
    /// Who answers for it.
    pub owner: Option<String>,
    /// Its lifecycle state: `active`, `paused`, `deprecated`, …
    pub status: String,
    /// Free-form labels.
    pub labels: BTreeMap<String, String>,
    /// Where its code lives, if declared.
    pub repo: Option<Repo>,
}

/// A service: something that answers on the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Service {
    /// Its unique name.
    pub name: String,
    /// The workspace it belongs to, if any.
    pub workspace: Option<String>,
    /// Where it answers.
    pub url: Option<String>,
    /// The node (host) it runs on.
    pub node: Option<String>,
    /// Free-form labels.
    pub labels: BTreeMap<String, String>,
}

/// A directed data-flow edge between two workspaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Dependency {
    /// The workspace that depends.
    pub from: String,
    /// The workspace depended on.
    pub to: String,
    /// What kind of dependency (`read_signals`, `provision_agent`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Why it exists.
    pub note: Option<String>,
}

/// The workspaces a key may see: `GET /api/v1/workspaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceList {
    /// The workspaces, by key.
    pub workspaces: Vec<Workspace>,
}

/// A workspace with its services and edges: `GET /api/v1/workspaces/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceDetail {
    /// The workspace.
    pub workspace: Workspace,
    /// Its services, by name.
    pub services: Vec<Service>,
    /// The edges from it.
    pub depends_on: Vec<Dependency>,
    /// The edges to it.
    pub depended_on_by: Vec<Dependency>,
}

/// A node of the dependency graph: a workspace and the services it owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GraphNode {
    /// The workspace's key.
    pub key: String,
    /// Its lifecycle state.
    pub status: String,
    /// What it does.
    pub description: Option<String>,
    /// The names of its services.
    pub services: Vec<String>,
}

/// The dependency graph: `GET /api/v1/graph`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Graph {
    /// The workspaces the key may see.
    pub nodes: Vec<GraphNode>,
    /// The edges between them.
    pub edges: Vec<Dependency>,
}
