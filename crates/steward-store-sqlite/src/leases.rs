//! Role leases on SQLite (the statements live with the scheduler's, which took the first).

use async_trait::async_trait;
use steward_store::{Lease, LeaseStore, StoreError};

use crate::{SqliteStore, schedules};

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn acquire_lease(
        &self,
        role: &str,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<Option<Lease>, StoreError> {
        schedules::acquire_lease(&self.writer, role, holder, ttl_ms).await
    }

    async fn release_lease(&self, role: &str, holder: &str) -> Result<(), StoreError> {
        schedules::release_lease(&self.writer, role, holder).await
    }

    async fn current_lease(&self, role: &str) -> Result<Option<Lease>, StoreError> {
        schedules::current_lease(&self.reader, role).await
    }
}
