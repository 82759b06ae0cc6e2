//! The process itself: `/healthz`, `/readyz`, `/api/v1/config/reload` and which instance
//! leads what (`/api/v1/leadership`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The process answers: `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    pub status: String,
}

/// The store answers too: `GET /readyz` (503 otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// Always `ready`.
    pub status: String,
    /// The store's backend: `sqlite` or `postgres`.
    pub store: String,
}

/// How many registry entities a reload added, updated and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangeCounts {
    /// Entities added.
    pub added: usize,
    /// Entities updated.
    pub updated: usize,
    /// Entities removed.
    pub removed: usize,
}

/// What a reload put in force: `POST /api/v1/config/reload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reloaded {
    /// One line per registry change (`+ workspace platform`, `~ service nn`, …).
    pub changes: Vec<String>,
    /// The changes, counted.
    pub counts: ChangeCounts,
    /// What the new config holds that deserves a look.
    pub warnings: Vec<String>,
    /// Settings that changed but take effect only at the next start.
    pub restart_required: Vec<String>,
}

/// One role only one instance plays at a time, and who plays it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleLease {
    /// The role: `scheduler`, `prober` or `alerting`.
    pub role: String,
    /// The instance holding it; `null` when nobody has yet.
    pub holder: Option<String>,
    /// Whether the lease is in force now (not lapsed).
    pub held: bool,
    /// Its fencing token, raised at each change of holder.
    pub fence: Option<i64>,
    /// When it lapses unless renewed.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    pub expires_at_ms: Option<i64>,
}

/// Which instance leads what: `GET /api/v1/leadership`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Leadership {
    /// Every role, in a fixed order.
    pub leases: Vec<RoleLease>,
}
