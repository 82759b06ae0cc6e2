//! What the API asks of the fleet: add, list, show and remove nodes, make join tokens,
//! register agents, and take their heartbeats.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use steward_config::Config;
use steward_core::Event;
use steward_core::Role;
use steward_core::audit::Actor;
use steward_core::auth::{format_key, key_digest, key_hint};
use steward_core::event::MAX_NAMED_ITEMS;
use steward_core::node::{
    DriftFinding, NodeSpec, check_join_token_format, drift, format_join_token,
};
use steward_store::batch::{BatchFuture, Batcher};
use steward_store::{
    KindChanges, KindReport, NewJoinToken, NewKey, NodeBeat, NodeItem, NodeRecord, Redeemed,
    Registration, Store, StoreError, now_ms,
};

use crate::bus::EventBus;
use crate::views::nodes::{declared_services, reported, status_now};

/// Why a fleet operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// No node has that id.
    #[error("no node `{0}`")]
    UnknownNode(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FleetError {
    fn of(error: StoreError, node: &str) -> Self {
        match error {
            StoreError::NotFound(_) => FleetError::UnknownNode(node.to_owned()),
            other => FleetError::Store(other),
        }
    }
}

/// A heartbeat as the hub takes it: the node's usage, the digest of each kind it gathers, and
/// the kinds it sent in full.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatIn {
    /// The node.
    pub node: String,
    /// When it arrived.
    pub at_ms: i64,
    /// The interval the agent keeps, in ms.
    pub interval_ms: i64,
    /// Its usage, as JSON.
    pub usage: serde_json::Value,
    /// Each kind's digest, by kind name.
    pub digests: BTreeMap<String, String>,
    /// The kinds sent in full (each with its digest and items).
    pub reports: Vec<KindReport>,
}

/// The hub's answer to a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatOut {
    /// Kinds whose digest differs from the one held and that were not sent.
    pub needs: Vec<String>,
    /// The digest held for each kind after this heartbeat.
    pub holds: BTreeMap<String, String>,
}

/// What merging a batch of a node's audit journal did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditMerged {
    /// How many events were new.
    pub merged: u64,
    /// The highest origin sequence number merged from the node now (0 for none).
    pub last_seq: i64,
    /// `(expected, got)` when the batch started past the event after the last merged one.
    pub gap: Option<(i64, i64)>,
}

/// A node with what it reported and what is judged of it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    /// The node.
    pub record: NodeRecord,
    /// Its status judged now (the stored one may lag by a monitor pass).
    pub status_now: steward_core::node::NodeStatus,
    /// What it reported, by kind and key.
    pub items: Vec<NodeItem>,
    /// Services declared on it.
    pub services: Vec<String>,
    /// Services declared on it that it does not report.
    pub drift: Vec<DriftFinding>,
}

/// The fleet's façade: the store, the bus, the heartbeat batcher and the digests this instance
/// last saw per node (so an idle node's beat reads nothing).
pub struct Fleet {
    store: Arc<dyn Store>,
    bus: EventBus,
    beats: Batcher<NodeBeat, bool>,
    digests: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    work: super::work::RemoteWork,
}

/// The most heartbeats written in one transaction: an agent fleet's beats arrive spread over
/// the interval, and each waits only for the batch it joins.
const MAX_BEAT_BATCH: usize = 1_024;

impl Fleet {
    /// The fleet over `store`, publishing on `bus`.
    pub fn new(store: Arc<dyn Store>, bus: EventBus) -> Self {
        let writer = Arc::clone(&store);
        let beats = Batcher::spawn_with_max(MAX_BEAT_BATCH, move |beats: Vec<NodeBeat>| {
            let store = Arc::clone(&writer);
            let future: BatchFuture<bool> = Box::pin(async move {
                let missing = store.record_node_beats(&beats).await?;
                Ok(beats.iter().map(|b| !missing.contains(&b.node)).collect())
            });
            future
        });
        let work = super::work::RemoteWork::new(Arc::clone(&store), bus.clone());
        Self {
            store,
            bus,
            beats,
            digests: Mutex::new(BTreeMap::new()),
            work,
        }
    }

    /// Records the results of the checks `node`'s agent probes (see [`super::checks`]).
    pub async fn record_checks(
        &self,
        node: &str,
        config: &Config,
        results: Vec<(steward_store::ProbeRecord, String)>,
    ) -> Result<super::ChecksRecorded, FleetError> {
        Ok(
            super::checks::record_node_results(&*self.store, &self.bus, config, node, results)
                .await?,
        )
    }

    /// Remote work: the tasks pinned to nodes, as their agents claim and finish them.
    pub fn work(&self) -> &super::work::RemoteWork {
        &self.work
    }

    /// The store, for reads the API makes directly.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Adds a node.
    pub async fn add(&self, spec: &NodeSpec, actor: &Actor) -> Result<NodeRecord, FleetError> {
        let node = self.store.add_node(spec, actor).await?;
        self.announce(&node, "added");
        Ok(node)
    }

    /// Removes a node, everything it reported and its credentials.
    pub async fn remove(&self, id: &str, actor: &Actor) -> Result<NodeRecord, FleetError> {
        let node = self
            .store
            .remove_node(id, actor)
            .await
            .map_err(|e| FleetError::of(e, id))?;
        self.forget(id);
        self.announce(&node, "removed");
        Ok(node)
    }

    /// Makes a join token for node `node`, valid for `ttl_ms` and `uses` registrations;
    /// answers the token (shown once; only its digest is stored) and its expiry.
    pub async fn create_token(
        &self,
        node: &str,
        ttl_ms: i64,
        uses: u32,
        actor: &Actor,
    ) -> Result<(String, i64), FleetError> {
        let plaintext = format_join_token(&crate::keys::random_32()?);
        let expires_at_ms = now_ms().saturating_add(ttl_ms);
        let token = NewJoinToken {
            node: node.to_owned(),
            digest: key_digest(&plaintext),
            hint: token_hint(&plaintext),
            expires_at_ms,
            uses,
        };
        self.store
            .create_join_token(&token, actor)
            .await
            .map_err(|e| FleetError::of(e, node))?;
        Ok((plaintext, expires_at_ms))
    }

    /// Exchanges a join token for a node credential: answers what the store made of it and,
    /// when the agent joined, the credential's plaintext (shown once).
    pub async fn register(
        &self,
        token: &str,
        hostname: &str,
        agent_version: &str,
        actor: &Actor,
    ) -> Result<(Redeemed, Option<String>), FleetError> {
        if check_join_token_format(token).is_err() {
            return Ok((Redeemed::Unknown, None));
        }
        let credential = format_key(&crate::keys::random_32()?);
        let at_ms = now_ms();
        let registration = Registration {
            token_digest: key_digest(token),
            key: NewKey {
                // Named for the node once the store knows which; the time keeps names unique.
                name: format!("node:{at_ms}"),
                role: Role::Agent,
                workspace: None,
                node: None,
                digest: key_digest(&credential),
                hint: key_hint(&credential),
                expires_at_ms: None,
            },
            hostname: hostname.to_owned(),
            agent_version: agent_version.to_owned(),
            at_ms,
        };
        let redeemed = self.store.redeem_join_token(&registration, actor).await?;
        if let Redeemed::Joined { node, .. } = &redeemed {
            self.forget(&node.spec.id);
            self.announce(node, "registered");
            return Ok((redeemed, Some(credential)));
        }
        Ok((redeemed, None))
    }

    /// Takes a heartbeat: reconciles the kinds sent, records the beat, and says which kinds
    /// the hub needs in full.
    pub async fn heartbeat(&self, beat: HeartbeatIn) -> Result<HeartbeatOut, FleetError> {
        let node = beat.node.clone();
        let mut held = self.held_digests(&node).await?;
        let workspace = if beat.reports.is_empty() {
            None
        } else {
            self.store
                .node(&node)
                .await?
                .ok_or_else(|| FleetError::UnknownNode(node.clone()))?
                .spec
                .workspace
        };
        for report in &beat.reports {
            let changes = self
                .store
                .reconcile_node_kind(report)
                .await
                .map_err(|e| FleetError::of(e, &node))?;
            held.insert(report.kind.clone(), report.digest.clone());
            self.announce_inventory(report, changes, workspace.clone());
        }
        let exists = self
            .beats
            .submit(NodeBeat {
                node: node.clone(),
                at_ms: beat.at_ms,
                interval_ms: beat.interval_ms,
                usage: beat.usage,
            })
            .await?;
        if !exists {
            self.forget(&node);
            return Err(FleetError::UnknownNode(node));
        }
        let needs = beat
            .digests
            .iter()
            .filter(|(kind, digest)| held.get(*kind) != Some(*digest))
            .map(|(kind, _)| kind.clone())
            .collect();
        self.remember(&node, &held);
        Ok(HeartbeatOut { needs, holds: held })
    }

    /// Merges a batch of the node's own audit journal (checked by the caller to be one chained
    /// run, by origin sequence number) into the hub's chain. Events merged before are skipped,
    /// so an agent retrying a batch whose answer it lost adds nothing twice. A batch that does
    /// not start right after the last event merged from the node is merged all the same (the
    /// missing ones cannot be made up here) but reported as a gap, logged and counted.
    pub async fn merge_audit(
        &self,
        node: &str,
        events: &[steward_core::audit::AuditEvent],
    ) -> Result<AuditMerged, FleetError> {
        if self.store.node(node).await?.is_none() {
            return Err(FleetError::UnknownNode(node.to_owned()));
        }
        let last = self.store.last_merged_audit_seq(node).await?.unwrap_or(0);
        let (Some(first), Some(batch_last)) = (events.first(), events.last()) else {
            return Ok(AuditMerged {
                last_seq: last,
                ..AuditMerged::default()
            });
        };
        let gap = (first.seq > last + 1).then_some((last + 1, first.seq));
        if let Some((expected, got)) = gap {
            tracing::warn!(
                node,
                expected,
                got,
                "a node's audit batch skips events the hub never merged; merging it anyway"
            );
            metrics::counter!("steward_node_audit_gaps_total").increment(1);
        }
        let merged = self.store.merge_remote_audit(node, events).await?;
        tracing::debug!(
            node,
            merged,
            first = first.seq,
            last = batch_last.seq,
            "node audit merged"
        );
        Ok(AuditMerged {
            merged: merged as u64,
            last_seq: last.max(batch_last.seq),
            gap,
        })
    }

    /// Every node.
    pub async fn list(&self) -> Result<Vec<NodeRecord>, FleetError> {
        Ok(self.store.list_nodes().await?)
    }

    /// A node with its reports, its services and their drift, judged against `config`.
    pub async fn show(
        &self,
        id: &str,
        config: &Config,
        now_ms: i64,
    ) -> Result<NodeView, FleetError> {
        let record = self
            .store
            .node(id)
            .await?
            .ok_or_else(|| FleetError::UnknownNode(id.to_owned()))?;
        let items = self.store.node_items(id).await?;
        let digests = self.store.node_digests(id).await?;
        let declared = declared_services(config, id);
        let drift = if digests.is_empty() {
            Vec::new()
        } else {
            drift(&declared, &reported(&items, &digests))
        };
        let status_now = status_now(&record, config, now_ms);
        Ok(NodeView {
            status_now,
            services: declared.into_iter().map(|s| s.name).collect(),
            record,
            items,
            drift,
        })
    }

    /// The digests held for `node`: this instance's copy, or the store's on a miss.
    async fn held_digests(&self, node: &str) -> Result<BTreeMap<String, String>, FleetError> {
        if let Some(held) = self.digests.lock().ok().and_then(|d| d.get(node).cloned()) {
            return Ok(held);
        }
        Ok(self.store.node_digests(node).await?)
    }

    fn remember(&self, node: &str, held: &BTreeMap<String, String>) {
        if let Ok(mut digests) = self.digests.lock() {
            digests.insert(node.to_owned(), held.clone());
        }
    }

    fn forget(&self, node: &str) {
        if let Ok(mut digests) = self.digests.lock() {
            digests.remove(node);
        }
    }

    fn announce(&self, node: &NodeRecord, change: &str) {
        tracing::info!(node = %node.spec.id, change, "node changed");
        self.bus.publish(Event::NodeChanged {
            node: node.spec.id.clone(),
            change: change.to_owned(),
            workspace: node.spec.workspace.clone(),
        });
    }

    fn announce_inventory(
        &self,
        report: &KindReport,
        changes: KindChanges,
        workspace: Option<String>,
    ) {
        if changes.is_empty() {
            return;
        }
        metrics::counter!("steward_node_inventory_changes_total", "kind" => report.kind.clone())
            .increment(
                (changes.added.len() + changes.changed.len() + changes.removed.len()) as u64,
            );
        tracing::info!(
            node = %report.node,
            kind = %report.kind,
            added = changes.added.len(),
            changed = changes.changed.len(),
            removed = changes.removed.len(),
            "node inventory changed"
        );
        let cut = |mut keys: Vec<String>| {
            keys.truncate(MAX_NAMED_ITEMS);
            keys
        };
        self.bus.publish(Event::NodeInventoryChanged {
            node: report.node.clone(),
            kind: report.kind.clone(),
            added: cut(changes.added),
            changed: cut(changes.changed),
            removed: cut(changes.removed),
            workspace,
        });
    }
}

/// A non-secret fragment of a join token for the audit trail (`stj_4fQz…`).
fn token_hint(token: &str) -> String {
    let shown: String = token.chars().take(8).collect();
    format!("{shown}…")
}
