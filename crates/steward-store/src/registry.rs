//! The registry's persistence.

use steward_core::audit::Actor;
use steward_core::{Registry, RegistryDiff};

use crate::StoreError;
use crate::domain::domain_trait;

domain_trait! {
    /// The registry's persistence: the declared services, workspaces and dependencies.
    pub trait RegistryStore {
        /// The stored registry, in canonical order.
        async fn registry(&self) -> Result<Registry, StoreError>;

        /// Reconciles the stored registry with `desired` in one transaction: upserts what it
        /// declares, deletes what it no longer declares, and returns what changed. Concurrent calls
        /// are serialised, so each change is reported by exactly one of them. A non-empty diff is
        /// audited as `registry.sync` by `actor`, in the same transaction.
        async fn sync_registry(
            &self,
            desired: &Registry,
            actor: &Actor,
        ) -> Result<RegistryDiff, StoreError>;
    }
}
