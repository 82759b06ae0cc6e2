//! Steward's running side: the control plane's shared state, the one path through which the
//! config is (re)loaded into the store, the in-process event bus, the task queue's workers and
//! executors, the scheduler, the prober, the alert manager and the live event stream. The
//! engines meet in the store and on the bus, never by calling into each other.

pub mod alerting;
pub mod audit_mirror;
pub mod bus;
mod control;
pub mod executors;
pub mod fleet;
pub mod keys;
mod lease;
pub mod memory;
mod metric_families;
pub mod pipelines;
pub mod prober;
pub mod queue;
pub mod scheduler;
pub mod stream;
pub mod views;

pub use bus::{Envelope, EventBus};
pub use metric_families::describe_metrics;

/// Histogram buckets for every `*_seconds` metric the engines record: 0.5 ms to 10 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
pub use control::{
    ControlPlane, EngineError, RedactorSource, ReloadOutcome, SystemEnv, no_redaction,
};
pub use keys::{AuthError, Authenticator, KeyRequest};
