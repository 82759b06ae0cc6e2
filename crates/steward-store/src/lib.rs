//! Storage behind one trait. Each backend (`steward-store-sqlite`, `steward-store-postgres`)
//! implements [`Store`] with its own SQL and migrations; everything above the store sees only
//! this trait. [`Metered`] wraps any backend with timing and error metrics, and the
//! `conformance` feature holds the story suite that every backend's tests run.

pub mod alerts;
pub mod audit;
pub mod batch;
pub mod codec;
mod domain;
mod error;
pub mod events;
pub mod health;
pub mod keys;
pub mod leases;
mod metered;
pub mod nodes;
pub mod notifications;
pub mod pipelines;
pub mod registry;
pub mod rows;
pub mod schedules;
pub mod sessions;
pub mod sql;
pub mod tasks;

#[cfg(feature = "conformance")]
pub mod conformance;

use async_trait::async_trait;

pub use alerts::{
    Ack, AlertChange, AlertQuery, AlertReceipt, AlertStore, RemoteAlerts, StoredAlert,
    StoredSilence,
};
pub use audit::{AuditQuery, AuditStore, MAX_AUDIT_PAGE};
pub use events::EventLogStore;
pub use health::{
    CertSeen, CheckRecord, CheckTransition, HealthPruned, HealthStore, NewTransition, ProbeBatch,
    ProbeRecord, TransitionQuery,
};
pub use keys::{ApiKey, KeyStore, NewKey};
pub use leases::{Lease, LeaseStore};
pub use nodes::{
    KindChanges, KindReport, NewJoinToken, NodeBeat, NodeItem, NodeRecord, NodeSource, NodeStore,
    NodesSynced, Redeemed, Registration, StatusChange,
};
pub use notifications::{NotificationStore, RecordAttempt};
pub use pipelines::{
    NewRun, PipelineRun, PipelineRunQuery, PipelineStore, RunChange, RunChanges, RunStarted,
    RunStep,
};
pub use registry::RegistryStore;
pub use schedules::{
    Fire, FireOutcome, FireTrigger, HeartbeatRecord, HeartbeatTransition, RunQuery, RunStatus,
    ScheduleRun, ScheduleState, ScheduleStore, ScheduleTick, SkipReason, TickResult,
};
pub use sessions::{NewSession, Session, SessionStore};
pub use tasks::{Claim, Enqueued, LeaseState, Reaped, TaskCount, TaskQuery, TaskStore, Wakeup};

pub use error::{BoxError, StoreError};

/// Every store trait, for code that calls many domains on a concrete backend (tests, tools):
/// through `dyn Store` or an `S: Store` bound their methods need no import.
pub mod prelude {
    pub use crate::{
        AlertStore, AuditStore, Database, EventLogStore, HealthStore, KeyStore, LeaseStore,
        NodeStore, NotificationStore, PipelineStore, RecordAttempt, RegistryStore, ScheduleStore,
        SessionStore, Store, TaskStore,
    };
}
pub use metered::{Metered, describe_metrics};

/// One migration that was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Its version number.
    pub version: i64,
    /// What it does.
    pub description: String,
}

/// What a `migrate` call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Migrations applied by this call (empty when the schema was current).
    pub applied: Vec<AppliedMigration>,
    /// The schema version afterwards.
    pub version: i64,
}

/// What a check of the database's own structure found ([`Database::check_integrity`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    /// The backend leaves this to its server (PostgreSQL checks its own pages).
    NotChecked,
    /// The whole database was read and found sound.
    Passed {
        /// How long the check took.
        elapsed_ms: u64,
    },
    /// The check ran out of its time; what it read was sound.
    CutShort {
        /// How long it ran.
        elapsed_ms: u64,
    },
    /// The database file is damaged.
    Damaged {
        /// How long the check took.
        elapsed_ms: u64,
        /// The first problems, as the database described them.
        problems: Vec<String>,
    },
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The database itself: which backend, connecting checks, migrations, integrity, the
/// wake-up signals it sends, and closing. Each domain's calls are in its own trait
/// ([`TaskStore`], [`AlertStore`], ...); [`Store`] is all of them together.
///
/// Implementations must make every method safe to call concurrently, from several processes
/// sharing one database where the backend allows it.
#[async_trait]
pub trait Database: Send + Sync + 'static {
    /// The backend's name (`sqlite`, `postgres`), used as a metric label.
    fn backend(&self) -> &'static str;

    /// Whether this instance is the only writer of the database (an embedded file under a
    /// lock): then the events on its own bus tell it every change, and nothing need be polled.
    fn exclusive(&self) -> bool;

    /// Applies the migrations this binary embeds that the database has not seen yet.
    async fn migrate(&self) -> Result<MigrationReport, StoreError>;

    /// Checks the database answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Reads the database's own structure for at most about `budget` (SQLite's
    /// `PRAGMA quick_check`), logs what it found (with how to recover a damaged file) and
    /// remembers it for [`Database::damaged`]. The default, for backends whose server looks after
    /// its own files, checks nothing.
    async fn check_integrity(&self, budget: std::time::Duration) -> Result<Integrity, StoreError> {
        let _ = budget;
        Ok(Integrity::NotChecked)
    }

    /// Whether the last [`Database::check_integrity`] found the database damaged: readiness fails
    /// while it did, since reads of the damaged rows fail until the file is recovered.
    fn damaged(&self) -> bool {
        false
    }

    /// Wake-ups for workers: a queue's name each time tasks may have become ready in it,
    /// through this instance or (where the backend can tell) another one.
    fn task_wakeups(&self) -> tokio::sync::broadcast::Receiver<Wakeup>;

    /// Alerts received or acknowledged, and silences changed, through other instances sharing
    /// the database, where the backend can tell (PostgreSQL's `NOTIFY`); nothing on a database
    /// only this instance writes. Those announcements can be lost, so readers still poll.
    fn remote_alerts(&self) -> tokio::sync::broadcast::Receiver<alerts::RemoteAlerts>;

    /// A signal each time events were appended to the log or the audit trail, through this
    /// instance or (where the backend can tell) another one, sent once they are committed.
    /// Signals can be lost, so readers still look now and then.
    fn event_log_wakeups(&self) -> tokio::sync::broadcast::Receiver<()>;

    /// What each committed transaction of this instance changed in pipeline runs (started,
    /// advanced, ended), so the engine announces and counts each change once, on the instance
    /// that made it.
    fn pipeline_changes(&self) -> tokio::sync::broadcast::Receiver<RunChanges>;

    /// Closes connections and releases locks; later calls fail.
    async fn close(&self);
}

/// Persistence for the control plane's state: every domain trait on one database. Anything
/// that implements them all is a `Store`; callers import the domain traits whose methods they
/// call, so each module's imports say which parts of the state it touches.
pub trait Store:
    Database
    + RegistryStore
    + KeyStore
    + AuditStore
    + TaskStore
    + LeaseStore
    + ScheduleStore
    + HealthStore
    + AlertStore
    + NotificationStore
    + EventLogStore
    + SessionStore
    + NodeStore
    + PipelineStore
{
}

impl<T> Store for T where
    T: Database
        + RegistryStore
        + KeyStore
        + AuditStore
        + TaskStore
        + LeaseStore
        + ScheduleStore
        + HealthStore
        + AlertStore
        + NotificationStore
        + EventLogStore
        + SessionStore
        + NodeStore
        + PipelineStore
{
}
