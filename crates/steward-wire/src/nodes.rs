//! The fleet: `/api/v1/nodes…` (what people read and manage), `/api/v1/agent/register` (a join
//! token exchanged for a node credential) and `/api/v1/nodes/{id}/heartbeat` (what an agent
//! sends every interval). The inventory types are shared by the agent that gathers them and the
//! hub that stores them, so both digest the same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One container the node's Docker Engine reports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct Container {
    /// Its name, without Docker's leading `/`.
    pub name: String,
    /// The image it runs, as Docker names it.
    pub image: String,
    /// Docker's state: `created`, `running`, `paused`, `restarting`, `exited`, `dead`.
    pub state: String,
    /// Its health check's status (`healthy`, `unhealthy`, `starting`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Published ports, `HOST_IP:HOST_PORT->PORT/PROTO` or `PORT/PROTO` when unpublished,
    /// sorted.
    #[serde(default)]
    pub ports: Vec<String>,
    /// How many times Docker restarted it.
    #[serde(default)]
    pub restart_count: i64,
}

/// One `location` block of a virtual host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct Location {
    /// The location's path or pattern as written (`/`, `/api/`, `~ \.php$`).
    pub path: String,
    /// Where it proxies to (`proxy_pass`, `fastcgi_pass`, `uwsgi_pass`, `grpc_pass`), if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

/// One domain (a `server_name`) served by NGINX on the node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct Domain {
    /// The server name.
    pub name: String,
    /// The `listen` directives' arguments, as written (`80`, `443 ssl`, `[::]:443 ssl`).
    #[serde(default)]
    pub listen: Vec<String>,
    /// Its `location` blocks, in file order.
    #[serde(default)]
    pub locations: Vec<Location>,
    /// The file that declares it.
    pub file: String,
    /// Its `ssl_certificate` file, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_file: Option<String>,
}

/// One certificate file on the node: a domain's `ssl_certificate` or a configured file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct Certificate {
    /// The file it was read from.
    pub path: String,
    /// The leaf certificate's subject.
    #[serde(default)]
    pub subject: String,
    /// DNS names from its Subject Alternative Name extension.
    #[serde(default)]
    pub names: Vec<String>,
    /// Its `notAfter`, milliseconds since the Unix epoch (0 when it could not be read).
    #[serde(default)]
    pub not_after_ms: i64,
    /// Why it could not be read, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Disk use of one mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct Disk {
    /// Where it is mounted.
    pub mount: String,
    /// Its size in bytes.
    pub total_bytes: u64,
    /// Bytes in use.
    pub used_bytes: u64,
}

/// What a node is: the facts that change rarely (their digest is compared every heartbeat).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Facts {
    /// The host's name.
    #[serde(default)]
    pub hostname: String,
    /// The operating system (`PRETTY_NAME` of `/etc/os-release`).
    #[serde(default)]
    pub os: String,
    /// The kernel release.
    #[serde(default)]
    pub kernel: String,
    /// Logical CPUs.
    #[serde(default)]
    pub cpus: u32,
    /// Memory in bytes.
    #[serde(default)]
    pub memory_bytes: u64,
    /// The agent's version.
    #[serde(default)]
    pub agent_version: String,
}

/// What a node is doing now: figures that change every heartbeat, sent with each and kept only
/// as the latest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    /// Load averages over 1, 5 and 15 minutes.
    #[serde(default)]
    pub load: [f64; 3],
    /// Memory available, in bytes.
    #[serde(default)]
    pub memory_available_bytes: u64,
    /// Seconds since boot.
    #[serde(default)]
    pub uptime_s: u64,
    /// Disk use per mount.
    #[serde(default)]
    pub disks: Vec<Disk>,
}

/// The kinds of inventory a node reports; each is digested, sent and reconciled on its own.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum InventoryKind {
    /// Docker containers.
    Containers,
    /// NGINX domains.
    Domains,
    /// Certificate files.
    Certificates,
    /// Facts.
    Facts,
}

impl InventoryKind {
    /// Every kind, in reconciliation order.
    pub const ALL: [InventoryKind; 4] = [
        InventoryKind::Containers,
        InventoryKind::Domains,
        InventoryKind::Certificates,
        InventoryKind::Facts,
    ];

    /// Its name on the wire and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            InventoryKind::Containers => "containers",
            InventoryKind::Domains => "domains",
            InventoryKind::Certificates => "certificates",
            InventoryKind::Facts => "facts",
        }
    }
}

impl std::fmt::Display for InventoryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node's full inventory. `containers` is `None` when the node has no Docker Engine to ask
/// (which is not the same as one running no containers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Inventory {
    /// Containers, sorted by name; `None` without Docker.
    #[serde(default)]
    pub containers: Option<Vec<Container>>,
    /// Domains, sorted by name.
    #[serde(default)]
    pub domains: Vec<Domain>,
    /// Certificates, sorted by path.
    #[serde(default)]
    pub certificates: Vec<Certificate>,
    /// Facts.
    #[serde(default)]
    pub facts: Facts,
}

/// Some kinds of an inventory: what a heartbeat carries when those kinds changed or the hub
/// asked for them. An absent kind is unchanged, not empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InventoryParts {
    /// Containers (the inner `None`: the node has no Docker Engine, sent as `null`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub containers: Option<Option<Vec<Container>>>,
    /// Domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<Domain>>,
    /// Certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Vec<Certificate>>,
    /// Facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<Facts>,
}

impl InventoryParts {
    /// True when it carries no kind.
    pub fn is_empty(&self) -> bool {
        self.containers.is_none()
            && self.domains.is_none()
            && self.certificates.is_none()
            && self.facts.is_none()
    }

    /// The kinds it carries.
    pub fn kinds(&self) -> Vec<InventoryKind> {
        let mut kinds = Vec::new();
        if self.containers.is_some() {
            kinds.push(InventoryKind::Containers);
        }
        if self.domains.is_some() {
            kinds.push(InventoryKind::Domains);
        }
        if self.certificates.is_some() {
            kinds.push(InventoryKind::Certificates);
        }
        if self.facts.is_some() {
            kinds.push(InventoryKind::Facts);
        }
        kinds
    }
}

/// A field that is present, `null` included: serde reads a `null` `Option<Option<T>>` as the
/// outer `None`, which would make "no Docker Engine" read as "containers not sent".
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `POST /api/v1/agent/register`: a join token exchanged for the node's credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Registration {
    /// The join token (`stj_…`) made with `steward nodes token create`.
    pub token: String,
    /// The host's name, recorded on the node.
    #[serde(default)]
    pub hostname: String,
    /// The agent's version.
    #[serde(default)]
    pub agent_version: String,
}

/// The answer to a registration: who the agent now is. The credential is shown only here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    /// The node the token was made for.
    pub node: String,
    /// The node credential (`stw_…`), an `agent` key that acts only as this node.
    pub credential: String,
    /// The name of that key.
    pub key_name: String,
    /// How often the hub expects a heartbeat, in seconds.
    pub interval_s: u64,
}

/// `POST /api/v1/nodes/{id}/heartbeat`: the node is alive; here are its inventory digests, its
/// usage, and any kinds that changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = NodeHeartbeat)]
pub struct Heartbeat {
    /// The SHA-256 hex digest of each kind the agent gathers (see `digest_of`).
    #[serde(default)]
    pub digests: BTreeMap<InventoryKind, String>,
    /// The kinds sent in full: those whose digest changed since the hub last acknowledged them,
    /// or that the hub asked for.
    #[serde(default)]
    pub inventory: InventoryParts,
    /// What the node is doing now.
    #[serde(default)]
    pub usage: Usage,
    /// The heartbeat interval the agent keeps, in seconds.
    #[serde(default)]
    pub interval_s: u64,
    /// The digest of the checks the agent probes, as the hub last gave it (absent: none yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_digest: Option<String>,
    /// Results of those checks since the last beat that got through, oldest first (at most
    /// 1,000).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check_results: Vec<crate::node_checks::NodeCheckResult>,
}

/// The hub's answer to a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = NodeHeartbeatAnswer)]
pub struct HeartbeatAnswer {
    /// Kinds whose digest differs from what the hub holds and that were not sent: send them in
    /// full now.
    #[serde(default)]
    pub needs: Vec<InventoryKind>,
    /// The digests the hub now holds for the node, per kind.
    #[serde(default)]
    pub holds: BTreeMap<InventoryKind, String>,
    /// The digest of the checks the node probes.
    #[serde(default)]
    pub checks_digest: String,
    /// Those checks, when the agent's digest differs (absent: keep what it has).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<Vec<crate::node_checks::NodeCheck>>,
}

/// The most events one [`AuditBatch`] may carry.
pub const MAX_AUDIT_BATCH: usize = 1_000;

/// `POST /api/v1/nodes/{id}/audit`: events of the node's own audit journal, in order, each
/// chained to the one before (the first to whatever the hub merged last).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = NodeAuditBatch)]
pub struct AuditBatch {
    /// The events, by their sequence number on the node (at most 1,000).
    pub events: Vec<crate::audit::AuditEvent>,
}

/// A hole between what the hub merged from a node and the batch it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = NodeAuditGap)]
pub struct AuditGap {
    /// The sequence number the hub expected next.
    pub expected: i64,
    /// The first one the batch carried.
    pub got: i64,
}

/// The hub's answer to an [`AuditBatch`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = NodeAuditShipped)]
pub struct AuditShipped {
    /// How many events were new (those already merged are skipped).
    pub merged: u64,
    /// The highest sequence number of the node's merged on the hub now (0 for none).
    pub last_seq: i64,
    /// Set when the batch started past the event after the last merged one; it was merged
    /// all the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<AuditGap>,
}

/// A node's state as the hub judges it from its heartbeats.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Declared or added, never heard from.
    Pending,
    /// Heartbeats arrive on time.
    Up,
    /// One interval plus grace passed without a heartbeat.
    Late,
    /// `down_after` passed without a heartbeat.
    Down,
}

impl NodeStatus {
    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Pending => "pending",
            NodeStatus::Up => "up",
            NodeStatus::Late => "late",
            NodeStatus::Down => "down",
        }
    }
}

/// A node as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Node {
    /// Its id (`vps-02`).
    pub id: String,
    /// Its host name, declared or reported.
    #[serde(default)]
    pub hostname: String,
    /// Its address, if declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Its workspace, if it belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Where it comes from: `config` (`[[nodes]]`) or `api` (added).
    pub source: String,
    /// Its status now.
    pub status: NodeStatus,
    /// Its last heartbeat, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// Its last heartbeat, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_ms: Option<i64>,
    /// The interval it heartbeats at, in seconds.
    pub interval_s: u64,
    /// When it registered, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<String>,
    /// Its agent's version.
    #[serde(default)]
    pub agent_version: String,
}

/// `GET /api/v1/nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeList {
    /// Every node in scope, by id.
    pub nodes: Vec<Node>,
}

/// A finding about a node: something declared that it does not report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Drift {
    /// The service declared on the node.
    pub service: String,
    /// What is missing, in words.
    pub reason: String,
}

/// `GET /api/v1/nodes/{id}`: a node with everything it reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeDetail {
    /// The node.
    pub node: Node,
    /// Its inventory as last reconciled.
    pub inventory: Inventory,
    /// Its usage at the last heartbeat.
    pub usage: Usage,
    /// Services declared on it.
    pub services: Vec<String>,
    /// Services declared on it that it does not report.
    pub drift: Vec<Drift>,
}

/// `POST /api/v1/nodes`: adds a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewNode {
    /// Its id: letters, digits, `-`, `_`, `.`; at most 64 characters.
    pub id: String,
    /// Its host name.
    #[serde(default)]
    pub hostname: String,
    /// Its address.
    #[serde(default)]
    pub address: Option<String>,
    /// Its workspace.
    #[serde(default)]
    pub workspace: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `POST /api/v1/nodes/{id}/tokens`: makes a join token for the node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewJoinToken {
    /// How long it stays valid, in seconds (default one hour, at most 30 days).
    #[serde(default)]
    pub ttl_s: Option<u64>,
    /// How many registrations it allows (default 1).
    #[serde(default)]
    pub uses: Option<u32>,
}

/// A join token, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JoinToken {
    /// The node it registers.
    pub node: String,
    /// The token itself (`stj_…`); only its digest is stored.
    pub token: String,
    /// When it stops working, RFC 3339.
    pub expires_at: String,
    /// How many registrations it allows.
    pub uses: u32,
}

/// The answer to a change of a node (added, removed, credential revoked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeChanged {
    /// The node as it was or now is.
    pub node: Node,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_sent_as_null_differ_from_containers_not_sent() {
        let none = InventoryParts {
            containers: Some(None),
            ..InventoryParts::default()
        };
        let json = serde_json::to_value(&none).unwrap();
        assert_eq!(json, serde_json::json!({"containers": null}));
        assert_eq!(
            serde_json::from_value::<InventoryParts>(json).unwrap(),
            none
        );
        let absent: InventoryParts = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.containers, None);
        assert!(absent.is_empty());
        let listed: InventoryParts = serde_json::from_str(r#"{"containers": []}"#).unwrap();
        assert_eq!(listed.containers, Some(Some(Vec::new())));
    }
}
