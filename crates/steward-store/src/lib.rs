//! Storage behind one trait. Each backend (`steward-store-sqlite`, `steward-store-postgres`)
//! implements [`Store`] with its own SQL and migrations; everything above the store sees only
//! this trait. [`Metered`] wraps any backend with timing and error metrics, and the
//! `conformance` feature holds the story suite that every backend's tests run.

pub mod codec;
mod error;
mod metered;

#[cfg(feature = "conformance")]
pub mod conformance;

use async_trait::async_trait;
use steward_core::{Registry, RegistryDiff};

pub use error::{BoxError, StoreError};
pub use metered::Metered;

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

/// Persistence for the control plane's state.
///
/// Implementations must make every method safe to call concurrently, from several processes
/// sharing one database where the backend allows it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The backend's name (`sqlite`, `postgres`), used as a metric label.
    fn backend(&self) -> &'static str;

    /// Applies the migrations this binary embeds that the database has not seen yet.
    async fn migrate(&self) -> Result<MigrationReport, StoreError>;

    /// Checks the database answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// The stored registry, in canonical order.
    async fn registry(&self) -> Result<Registry, StoreError>;

    /// Reconciles the stored registry with `desired` in one transaction: upserts what it
    /// declares, deletes what it no longer declares, and returns what changed. Concurrent calls
    /// are serialised, so each change is reported by exactly one of them.
    async fn sync_registry(&self, desired: &Registry) -> Result<RegistryDiff, StoreError>;

    /// Closes connections and releases locks; later calls fail.
    async fn close(&self);
}
