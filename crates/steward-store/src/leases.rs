//! Leadership leases: one holder per role across every instance sharing the database.

use crate::StoreError;
use crate::domain::domain_trait;

/// A leadership lease: while it is unexpired, only `holder` acts in `role`. `fence` goes up by
/// one each time the lease changes hands, so a former holder's writes can be told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What the lease is for (e.g. [`SCHEDULER_ROLE`](crate::schedules::SCHEDULER_ROLE)).
    pub role: String,
    /// The instance holding it.
    pub holder: String,
    /// The fencing token.
    pub fence: i64,
    /// When it lapses unless renewed (the database's clock where it has one).
    pub expires_at_ms: i64,
}

domain_trait! {
    /// Role leases: which instance leads a role (scheduler, prober, alerting) and its fence.
    pub trait LeaseStore {
        /// Takes `role`'s lease for `holder` for `ttl_ms`, or renews it if `holder` has it: `None`
        /// while another holder's lease is unexpired. The fence goes up when the holder changes.
        async fn acquire_lease(
            &self,
            role: &str,
            holder: &str,
            ttl_ms: u64,
        ) -> Result<Option<Lease>, StoreError>;

        /// Gives up `holder`'s lease on `role` at once (so another instance need not wait for it to
        /// expire); nothing happens if `holder` does not have it.
        async fn release_lease(&self, role: &str, holder: &str) -> Result<(), StoreError>;

        /// The lease on `role` as recorded, expired or not.
        async fn current_lease(&self, role: &str) -> Result<Option<Lease>, StoreError>;
    }
}
