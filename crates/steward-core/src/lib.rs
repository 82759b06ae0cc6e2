//! Steward's domain: the registry model (workspaces, dependency edges, services), the pure
//! reconciliation diff between two registries, secrets that never print (and the masking of
//! their values in text from elsewhere), and the events the control plane publishes, durable
//! tasks and the queues and executors that work them, and schedules (cron in a time zone,
//! intervals, one-off times; missed-run policies, jitter) and heartbeats, health checks (what
//! they declare, Gatus-compatible conditions, states, certificate classes, roll-ups), and alerts
//! (their fingerprints, and reading alerts other systems post).
//! Nothing in this crate does I/O or reads a clock.

pub mod alert;
pub mod audit;
pub mod auth;
pub mod event;
pub mod health;
pub mod node;
pub mod pipeline;
pub mod queue;
pub mod redact;
pub mod registry;
pub mod schedule;
pub mod secret;
pub mod task;
pub mod text;

pub use auth::{Principal, Role};
pub use event::Event;
pub use registry::{
    Change, Dependency, DependencyId, Registry, RegistryDiff, Repo, Service, Step, Workspace,
    WorkspaceStatus,
};
pub use secret::Secret;
