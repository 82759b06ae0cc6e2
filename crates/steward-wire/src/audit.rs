//! The audit trail: `/api/v1/audit…`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// Who caused a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Actor {
    /// `key` (an API key), `cli` (a command run on the host) or `system` (a component).
    pub kind: String,
    /// The key's name, the command, or the component.
    pub name: String,
    /// The caller's address, for API calls.
    pub source_ip: Option<String>,
}

/// Where an event merged from another node was first recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditOrigin {
    /// The node that recorded it.
    pub node: String,
    /// Its sequence number there.
    pub seq: i64,
    /// Its hash there.
    pub hash: String,
}

/// A recorded change, chained to the one before by its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// Its position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When it was recorded.
    #[schema(format = DateTime)]
    pub at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Who.
    pub actor: Actor,
    /// What, as `noun.verb` (`key.create`, `registry.sync`, …).
    pub action: String,
    /// On what (a key's name, a workspace, `registry`, …).
    pub target: String,
    /// The workspace it concerns, if one.
    pub workspace: Option<String>,
    /// What else was worth keeping (a registry diff, a key's role, …).
    pub details: Value,
    /// The previous event's hash (64 zeros for the first).
    pub prev_hash: String,
    /// This event's hash, over every field above.
    pub hash: String,
    /// For events merged from another node: where they were first recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<AuditOrigin>,
}

/// The query of `GET /api/v1/audit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Events after this sequence number (the last page's `next_after`).
    #[serde(default)]
    pub after: i64,
    /// Events per page (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Only this actor's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Only events of this action (`key.create`, `registry.sync`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Only this workspace's events (a scoped key gets its own whatever it asks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Only events by this kind of actor: `key`, `cli` or `system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_kind: Option<String>,
    /// Only events merged from this node's agent (`vps-02`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A page of the trail: `GET /api/v1/audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// The events, by sequence number.
    pub events: Vec<AuditEvent>,
    /// Pass as `after` for the next page; `null` on the last.
    pub next_after: Option<i64>,
    /// The newest sequence number of the whole trail (0 when it is empty).
    pub head: i64,
}

/// The newest event a verification reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChainHead {
    /// Its sequence number.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
}

/// The trail's hash chain holds: `GET /api/v1/audit/verify` (a broken chain is answered 409).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditVerified {
    /// Always `true` (a broken chain is an error answer).
    pub ok: bool,
    /// How many events were checked.
    pub events: u64,
    /// The newest event checked; `null` when the trail is empty.
    pub head: Option<ChainHead>,
}
