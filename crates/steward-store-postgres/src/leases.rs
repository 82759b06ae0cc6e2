//! Role leases on PostgreSQL (the statements live with the scheduler's, which took the first).

use async_trait::async_trait;
use steward_store::{Lease, LeaseStore, StoreError};

use crate::{PostgresStore, schedules};

#[async_trait]
impl LeaseStore for PostgresStore {
    async fn acquire_lease(
        &self,
        role: &str,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<Option<Lease>, StoreError> {
        schedules::acquire_lease(&self.pool, role, holder, ttl_ms).await
    }

    async fn release_lease(&self, role: &str, holder: &str) -> Result<(), StoreError> {
        schedules::release_lease(&self.pool, role, holder).await
    }

    async fn current_lease(&self, role: &str) -> Result<Option<Lease>, StoreError> {
        schedules::current_lease(&self.pool, role).await
    }
}
