//! The fleet as stored: nodes (declared or added), their join tokens, their heartbeats and
//! statuses, and the inventory they report, one row per item so that reconciling a kind writes
//! only what changed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use steward_core::audit::{Actor, AuditEntry};
use steward_core::node::{NodeSpec, NodeStatus};

use crate::domain::domain_trait;
use crate::{ApiKey, NewKey, StoreError};

/// Where a node comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeSource {
    /// `[[nodes]]` in the config: a reload that no longer declares it removes it.
    Config,
    /// `steward nodes add` or the API: only `nodes rm` removes it.
    Api,
}

impl NodeSource {
    /// Its name in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeSource::Config => "config",
            NodeSource::Api => "api",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "config" => Ok(NodeSource::Config),
            "api" => Ok(NodeSource::Api),
            other => Err(StoreError::Corrupt(format!(
                "unknown node source `{other}`"
            ))),
        }
    }
}

/// A stored node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRecord {
    /// What was declared or added.
    pub spec: NodeSpec,
    /// Where it comes from.
    pub source: NodeSource,
    /// The interval its agent heartbeats at, in ms.
    pub interval_ms: i64,
    /// When its agent last registered.
    pub registered_at_ms: Option<i64>,
    /// Its last heartbeat.
    pub last_seen_ms: Option<i64>,
    /// Its agent's version.
    pub agent_version: String,
    /// Its usage at the last heartbeat, as JSON.
    pub usage: serde_json::Value,
    /// Its status as last judged.
    pub status: NodeStatus,
    /// Since when it has had that status.
    pub status_since_ms: i64,
    /// When it was first stored.
    pub created_at_ms: i64,
}

/// The interval a node is expected to heartbeat at until its agent says otherwise.
pub const DEFAULT_NODE_INTERVAL_MS: i64 = 10_000;

/// A join token to store; only its digest reaches the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJoinToken {
    /// The node it registers.
    pub node: String,
    /// SHA-256 hex digest of the token.
    pub digest: String,
    /// A non-secret fragment for the audit trail.
    pub hint: String,
    /// When it stops working.
    pub expires_at_ms: i64,
    /// How many registrations it allows.
    pub uses: u32,
}

/// What redeeming a join token came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Redeemed {
    /// The agent joined: its node, and the key it now acts with.
    Joined {
        /// The node, registered.
        node: Box<NodeRecord>,
        /// The node credential.
        key: ApiKey,
    },
    /// No token has this digest.
    Unknown,
    /// The token expired.
    Expired,
    /// The token's uses are spent.
    Spent,
}

/// A registration: the agent presenting a token, and the credential it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The presented token's digest.
    pub token_digest: String,
    /// The key to create (role `agent`, `node` set by the store to the token's node).
    pub key: NewKey,
    /// The host name the agent reports.
    pub hostname: String,
    /// The agent's version.
    pub agent_version: String,
    /// When.
    pub at_ms: i64,
}

/// One heartbeat to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeBeat {
    /// The node.
    pub node: String,
    /// When it arrived.
    pub at_ms: i64,
    /// The interval the agent keeps, in ms.
    pub interval_ms: i64,
    /// Its usage, as JSON.
    pub usage: serde_json::Value,
}

/// One reported item of a kind: a container, a domain, a certificate, the facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeItem {
    /// Its kind (`containers`, `domains`, `certificates`, `facts`).
    pub kind: String,
    /// Its key within the kind (a container's or domain's name, a certificate's path).
    pub key: String,
    /// The item, as JSON text.
    pub doc: String,
}

/// A kind of a node's inventory, reported in full, to reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindReport {
    /// The node.
    pub node: String,
    /// The kind.
    pub kind: String,
    /// The digest the agent reported for it.
    pub digest: String,
    /// Every item of the kind, keys unique.
    pub items: Vec<NodeItem>,
    /// Replace the kind whole (containers: a recreated container is a new one) rather than
    /// upsert present and delete stale.
    pub replace_whole: bool,
    /// When.
    pub at_ms: i64,
}

/// What reconciling one kind changed, by item key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindChanges {
    /// Items that were not there.
    pub added: Vec<String>,
    /// Items whose document changed.
    pub changed: Vec<String>,
    /// Items no longer reported.
    pub removed: Vec<String>,
}

impl KindChanges {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// The changes reconciling `report` over the `stored` items of its kind makes, and the rows to
/// write: both backends decide them here, in the transaction that holds the stored rows.
pub fn plan_reconcile(stored: &[NodeItem], report: &KindReport) -> (KindChanges, Vec<NodeItem>) {
    let old: BTreeMap<&str, &str> = stored
        .iter()
        .map(|i| (i.key.as_str(), i.doc.as_str()))
        .collect();
    let new_keys: BTreeSet<&str> = report.items.iter().map(|i| i.key.as_str()).collect();
    let mut changes = KindChanges::default();
    let mut writes = Vec::new();
    for item in &report.items {
        match old.get(item.key.as_str()) {
            None => {
                changes.added.push(item.key.clone());
                writes.push(item.clone());
            }
            Some(doc) if *doc != item.doc => {
                changes.changed.push(item.key.clone());
                writes.push(item.clone());
            }
            Some(_) if report.replace_whole => writes.push(item.clone()),
            Some(_) => {}
        }
    }
    changes.removed = old
        .keys()
        .filter(|k| !new_keys.contains(*k))
        .map(|k| (*k).to_owned())
        .collect();
    (changes, writes)
}

/// A status change the fleet monitor judged, applied only if the node still has `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// The node.
    pub node: String,
    /// The status it had when judged.
    pub from: NodeStatus,
    /// The status it has now.
    pub to: NodeStatus,
    /// When.
    pub at_ms: i64,
}

/// What syncing the declared nodes did, by node id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodesSynced {
    /// Nodes declared for the first time.
    pub added: Vec<String>,
    /// Declared nodes whose fields changed.
    pub updated: Vec<String>,
    /// Declared nodes no longer declared, removed with what they reported.
    pub removed: Vec<String>,
}

impl NodesSynced {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }
}

/// `node.add`: a node added by a person.
pub fn node_added(actor: &Actor, spec: &NodeSpec) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action: "node.add".into(),
        target: spec.id.clone(),
        workspace: spec.workspace.clone(),
        details: json!({
            "hostname": spec.hostname,
            "address": spec.address,
            "labels": spec.labels,
        }),
    }
}

/// `node.sync`: the declared nodes reconciled with the config.
pub fn nodes_synced(actor: &Actor, synced: &NodesSynced) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action: "node.sync".into(),
        target: "nodes".into(),
        workspace: None,
        details: json!({
            "added": synced.added,
            "updated": synced.updated,
            "removed": synced.removed,
        }),
    }
}

/// `node.remove`: a node and everything it reported removed; its credentials revoked.
pub fn node_removed(actor: &Actor, node: &NodeRecord, revoked_keys: &[String]) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action: "node.remove".into(),
        target: node.spec.id.clone(),
        workspace: node.spec.workspace.clone(),
        details: json!({ "source": node.source.as_str(), "revoked_keys": revoked_keys }),
    }
}

/// `node.token.create`: a join token made (its hint only).
pub fn join_token_created(actor: &Actor, token: &NewJoinToken) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action: "node.token.create".into(),
        target: token.node.clone(),
        workspace: None,
        details: json!({
            "hint": token.hint,
            "expires_at_ms": token.expires_at_ms,
            "uses": token.uses,
        }),
    }
}

/// `node.register`: an agent exchanged a join token for a credential.
pub fn node_registered(
    actor: &Actor,
    node: &NodeRecord,
    key: &ApiKey,
    registration: &Registration,
) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action: "node.register".into(),
        target: node.spec.id.clone(),
        workspace: node.spec.workspace.clone(),
        details: json!({
            "key": key.name,
            "hint": key.hint,
            "hostname": registration.hostname,
            "agent_version": registration.agent_version,
        }),
    }
}

domain_trait! {
    /// The fleet's persistence: nodes, join tokens, heartbeats, statuses and inventory.
    pub trait NodeStore {
        /// Makes the config-declared nodes exactly `declared`, audited as `node.sync` when
        /// anything changed: new ones added, changed ones updated (their status and reports
        /// kept), ones no longer declared removed as by [`NodeStore::remove_node`]. Nodes added
        /// through the API are left alone; declaring one makes it a config node.
        async fn sync_declared_nodes(
            &self,
            declared: &[NodeSpec],
            actor: &Actor,
        ) -> Result<NodesSynced, StoreError>;

        /// Adds a node, audited as `node.add`. A taken id is [`StoreError::Conflict`].
        async fn add_node(&self, spec: &NodeSpec, actor: &Actor) -> Result<NodeRecord, StoreError>;

        /// Every node, by id.
        async fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError>;

        /// The node with this id.
        async fn node(&self, id: &str) -> Result<Option<NodeRecord>, StoreError>;

        /// Removes a node with its join tokens, reports and digests, and revokes its agent
        /// keys, in one transaction audited as `node.remove` (the audit trail keeps what it
        /// shipped). An unknown id is [`StoreError::NotFound`].
        async fn remove_node(&self, id: &str, actor: &Actor) -> Result<NodeRecord, StoreError>;

        /// Stores a join token for an existing node, audited as `node.token.create`.
        async fn create_join_token(
            &self,
            token: &NewJoinToken,
            actor: &Actor,
        ) -> Result<(), StoreError>;

        /// Redeems a join token in one transaction: when it is known, unexpired and has uses
        /// left, spends one, creates the registration's key as the token's node's `agent` key,
        /// marks the node registered, and audits `node.register`.
        async fn redeem_join_token(
            &self,
            registration: &Registration,
            actor: &Actor,
        ) -> Result<Redeemed, StoreError>;

        /// Records heartbeats (last seen, interval, usage); not audited. Returns the nodes of
        /// `beats` that do not exist (removed since their agent started).
        async fn record_node_beats(&self, beats: &[NodeBeat]) -> Result<Vec<String>, StoreError>;

        /// The digest stored for each kind of a node's inventory.
        async fn node_digests(&self, node: &str) -> Result<BTreeMap<String, String>, StoreError>;

        /// Reconciles one kind of a node's inventory in one transaction (see
        /// [`plan_reconcile`]) and stores its digest. An unknown node is
        /// [`StoreError::NotFound`].
        async fn reconcile_node_kind(&self, report: &KindReport) -> Result<KindChanges, StoreError>;

        /// Every item a node reported, by kind and key.
        async fn node_items(&self, node: &str) -> Result<Vec<NodeItem>, StoreError>;

        /// Applies status changes whose node still has their `from` status; returns the ones
        /// applied (another instance may have judged first).
        async fn set_node_statuses(
            &self,
            changes: &[StatusChange],
        ) -> Result<Vec<StatusChange>, StoreError>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str, doc: &str) -> NodeItem {
        NodeItem {
            kind: "domains".into(),
            key: key.into(),
            doc: doc.into(),
        }
    }

    fn report(items: Vec<NodeItem>, replace_whole: bool) -> KindReport {
        KindReport {
            node: "n".into(),
            kind: "domains".into(),
            digest: "d".into(),
            items,
            replace_whole,
            at_ms: 0,
        }
    }

    #[test]
    fn reconciling_upserts_present_and_deletes_stale() {
        let stored = vec![item("a", "1"), item("b", "1"), item("c", "1")];
        let (changes, writes) = plan_reconcile(
            &stored,
            &report(vec![item("a", "1"), item("b", "2"), item("d", "1")], false),
        );
        assert_eq!(changes.added, ["d"]);
        assert_eq!(changes.changed, ["b"]);
        assert_eq!(changes.removed, ["c"]);
        let written: Vec<&str> = writes.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(written, ["b", "d"]);
    }

    #[test]
    fn replacing_whole_writes_every_item() {
        let stored = vec![item("a", "1")];
        let (changes, writes) = plan_reconcile(&stored, &report(vec![item("a", "1")], true));
        assert!(changes.is_empty());
        assert_eq!(writes.len(), 1);
    }
}
