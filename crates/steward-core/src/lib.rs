//! Steward's domain: the registry model (workspaces, dependency edges, services), the pure
//! reconciliation diff between two registries, secrets that never print, and the events the
//! control plane publishes. Nothing in this crate does I/O.

pub mod audit;
pub mod auth;
pub mod event;
pub mod registry;
pub mod secret;

pub use auth::{Principal, Role};
pub use event::Event;
pub use registry::{
    Change, Dependency, DependencyId, Registry, RegistryDiff, Repo, Service, Step, Workspace,
    WorkspaceStatus,
};
pub use secret::Secret;
