//! API keys as stored: only digests, never the plaintext.

use steward_core::Role;
use steward_core::audit::Actor;

use crate::StoreError;
use crate::domain::domain_trait;

/// A key to store; the plaintext never reaches the store, only its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// Unique name (the actor in audit events).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The one workspace it may see, if scoped.
    pub workspace: Option<String>,
    /// For an `agent` key, the node it acts as.
    pub node: Option<String>,
    /// SHA-256 hex digest of the key.
    pub digest: String,
    /// A non-secret fragment for listings.
    pub hint: String,
    /// When it stops working (ms since the Unix epoch).
    pub expires_at_ms: Option<i64>,
}

/// A stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Unique name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The one workspace it may see, if scoped.
    pub workspace: Option<String>,
    /// For an `agent` key, the node it acts as.
    pub node: Option<String>,
    /// SHA-256 hex digest of the key.
    pub digest: String,
    /// A non-secret fragment for listings.
    pub hint: String,
    /// Creation time (ms since the Unix epoch).
    pub created_at_ms: i64,
    /// Expiry, if any.
    pub expires_at_ms: Option<i64>,
    /// Last successful use, updated at most about once a minute.
    pub last_used_at_ms: Option<i64>,
    /// Revocation time, if revoked.
    pub revoked_at_ms: Option<i64>,
}

impl ApiKey {
    /// The key `key` becomes when stored at `at_ms`.
    pub fn created(key: &NewKey, at_ms: i64) -> Self {
        Self {
            name: key.name.clone(),
            role: key.role,
            workspace: key.workspace.clone(),
            node: key.node.clone(),
            digest: key.digest.clone(),
            hint: key.hint.clone(),
            created_at_ms: at_ms,
            expires_at_ms: key.expires_at_ms,
            last_used_at_ms: None,
            revoked_at_ms: None,
        }
    }

    /// True when the key authenticates at `now_ms`: not revoked, not expired.
    pub fn is_usable(&self, now_ms: i64) -> bool {
        self.revoked_at_ms.is_none() && self.expires_at_ms.is_none_or(|t| now_ms < t)
    }
}

domain_trait! {
    /// API keys' persistence: creation, lookup by digest, revocation and use.
    pub trait KeyStore {
        /// Stores a new key, audited as `key.create`. A taken name is [`StoreError::Conflict`].
        async fn create_key(&self, key: &NewKey, actor: &Actor) -> Result<ApiKey, StoreError>;

        /// Stores `key` only if no key exists yet (the first start's admin key), audited as
        /// `key.bootstrap`. Concurrent instances create at most one.
        async fn create_first_key(
            &self,
            key: &NewKey,
            actor: &Actor,
        ) -> Result<Option<ApiKey>, StoreError>;

        /// Every key, revoked ones included, by name.
        async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError>;

        /// The key with this digest.
        async fn key_by_digest(&self, digest: &str) -> Result<Option<ApiKey>, StoreError>;

        /// Revokes a key by name, audited as `key.revoke`. An unknown or already revoked name is
        /// [`StoreError::NotFound`].
        async fn revoke_key(&self, name: &str, actor: &Actor) -> Result<ApiKey, StoreError>;

        /// Records a key's use (not audited: it changes nothing a person did).
        async fn touch_key(&self, name: &str, at_ms: i64) -> Result<(), StoreError>;
    }
}
