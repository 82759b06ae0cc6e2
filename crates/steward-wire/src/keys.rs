//! API keys: `/api/v1/keys…`. Secrets appear once, in the answer that creates a key; digests
//! never.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a key may do; each role includes the ones before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A node's agent: acts only as its node. Made by registration, never by `POST /keys`.
    Agent,
    /// Read anything in scope.
    Viewer,
    /// Also act: trigger, enqueue, acknowledge, silence.
    Operator,
    /// Also administer: keys, config reload.
    Admin,
}

impl Role {
    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Role::Agent, Role::Viewer, Role::Operator, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not `viewer`, `operator` or `admin`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}` (expected viewer, operator, admin or agent)")]
pub struct UnknownRole(pub String);

/// An API key as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Key {
    /// Its unique name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The one workspace it may see; `null` means all.
    pub workspace: Option<String>,
    /// For an `agent` key, the node it acts as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The secret's last characters, to tell keys apart.
    pub hint: String,
    /// When it was created.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// When it stops working, if it does.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    pub expires_at_ms: Option<i64>,
    /// When it was last used (recorded at most once a minute).
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    pub last_used_at_ms: Option<i64>,
    /// When it was revoked, if it was.
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    pub revoked_at_ms: Option<i64>,
}

/// Every key: `GET /api/v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    /// The keys, by name.
    pub keys: Vec<Key>,
}

/// A key to create: the body of `POST /api/v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// Its name (letters, digits, `_`, `-`, `.`; at most 64).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Limit it to this declared workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// It stops working this many seconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<u64>,
}

/// A created key and its secret, shown this once: `POST /api/v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedKey {
    /// The key.
    pub key: Key,
    /// Its secret (`stw_…`): the only time it is shown.
    pub secret: String,
}

/// A key after a change: `DELETE /api/v1/keys/{name}` answers it revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyChanged {
    /// The key as it is now.
    pub key: Key,
}
