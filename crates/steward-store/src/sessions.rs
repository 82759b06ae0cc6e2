//! Dashboard sessions: a signed-in browser's claim to act as one API key. The store keeps the
//! session token's digest, never the token, and the key's digest, never the key.

use crate::StoreError;
use crate::domain::domain_trait;
use serde_json::json;
use steward_core::audit::{Actor, AuditEntry};

/// A session to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// SHA-256 of the session token (hex); the token itself lives only in the browser's cookie.
    pub id_digest: String,
    /// The digest of the API key the session acts as, as the key store keeps it.
    pub key_digest: String,
    /// The key's name, for the audit trail and the page header.
    pub key_name: String,
    /// The workspace the key is scoped to, for the audit trail.
    pub workspace: Option<String>,
    /// The token forms of this session must carry.
    pub csrf: String,
    /// When it starts (ms since the Unix epoch).
    pub created_at_ms: i64,
    /// When it ends unless used before (idle expiry).
    pub idle_expires_at_ms: i64,
    /// When it ends however much it is used (absolute expiry).
    pub expires_at_ms: i64,
}

/// A live session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the session token (hex).
    pub id_digest: String,
    /// The digest of the API key the session acts as.
    pub key_digest: String,
    /// The key's name.
    pub key_name: String,
    /// The token forms of this session must carry.
    pub csrf: String,
    /// When it started.
    pub created_at_ms: i64,
    /// When it ends unless used before.
    pub idle_expires_at_ms: i64,
    /// When it ends however much it is used.
    pub expires_at_ms: i64,
}

impl Session {
    /// Whether the session may still be used at `now_ms`.
    pub fn is_live(&self, now_ms: i64) -> bool {
        now_ms < self.idle_expires_at_ms && now_ms < self.expires_at_ms
    }
}

/// `session.start`: a key signed in to the dashboard. Never the token or the key.
pub fn session_started(actor: &Actor, session: &NewSession) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action: "session.start".into(),
        target: session.key_name.clone(),
        workspace: session.workspace.clone(),
        details: json!({
            "idle_expires_at_ms": session.idle_expires_at_ms,
            "expires_at_ms": session.expires_at_ms,
        }),
    }
}

/// `session.end`: a dashboard session was ended by its holder signing out. (Expired sessions
/// are deleted, unaudited, by the next sign-in.)
pub fn session_ended(actor: &Actor, session: &Session) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action: "session.end".into(),
        target: session.key_name.clone(),
        workspace: None,
        details: json!({
            "reason": "signed_out",
            "started_at_ms": session.created_at_ms,
        }),
    }
}

domain_trait! {
    /// Dashboard sessions.
    pub trait SessionStore {
        /// Starts a dashboard session, audited as `session.start`, and deletes every session
        /// that has expired by its start.
        async fn start_session(&self, session: &NewSession, actor: &Actor) -> Result<(), StoreError>;

        /// The session whose token has this digest, if it is live at `now_ms`.
        async fn session(&self, id_digest: &str, now_ms: i64) -> Result<Option<Session>, StoreError>;

        /// Moves a live session's idle expiry to `idle_expires_at_ms` (never past its absolute
        /// expiry, never earlier than it was).
        async fn touch_session(
            &self,
            id_digest: &str,
            idle_expires_at_ms: i64,
        ) -> Result<(), StoreError>;

        /// Ends a session, audited as `session.end`; answers whether there was one to end.
        async fn end_session(&self, id_digest: &str, actor: &Actor) -> Result<bool, StoreError>;
    }
}
