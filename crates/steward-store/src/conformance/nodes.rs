//! Stories of the fleet: nodes, join tokens, heartbeats, statuses and reconciled inventory.

use std::collections::BTreeMap;
use std::sync::Arc;

use steward_core::Role;
use steward_core::node::{NodeSpec, NodeStatus};

use super::{actor, audited};
use crate::{
    KindReport, NewJoinToken, NewKey, NodeBeat, NodeItem, NodeSource, Redeemed, Registration,
    StatusChange, Store, StoreError,
};

fn spec(id: &str) -> NodeSpec {
    NodeSpec {
        id: id.into(),
        hostname: format!("{id}.example.net"),
        address: Some("192.0.2.10".into()),
        workspace: None,
        labels: BTreeMap::from([("region".into(), "eu".into())]),
    }
}

fn registration(token_digest: &str, at_ms: i64, n: u32) -> Registration {
    Registration {
        token_digest: token_digest.into(),
        key: NewKey {
            name: format!("node:agent:{n}"),
            role: Role::Agent,
            workspace: None,
            node: None,
            digest: format!("key-digest-{n}"),
            hint: "stw_abcd…".into(),
            expires_at_ms: None,
        },
        hostname: "vps-02.internal".into(),
        agent_version: "0.1.0".into(),
        at_ms,
    }
}

fn items(kind: &str, pairs: &[(&str, &str)]) -> Vec<NodeItem> {
    pairs
        .iter()
        .map(|(key, doc)| NodeItem {
            kind: kind.into(),
            key: (*key).into(),
            doc: (*doc).into(),
        })
        .collect()
}

fn report(node: &str, kind: &str, digest: &str, pairs: &[(&str, &str)], whole: bool) -> KindReport {
    KindReport {
        node: node.into(),
        kind: kind.into(),
        digest: digest.into(),
        items: items(kind, pairs),
        replace_whole: whole,
        at_ms: crate::now_ms(),
    }
}

/// Declared nodes are synced (added, updated, removed) without touching added ones; adding a
/// taken id conflicts; each change is audited.
pub async fn declared_nodes_sync_and_added_nodes_stay(store: &Arc<dyn Store>) {
    let synced = store
        .sync_declared_nodes(&[spec("vps-01"), spec("vps-02")], &actor())
        .await
        .unwrap();
    assert_eq!(synced.added, ["vps-01", "vps-02"]);
    let again = store
        .sync_declared_nodes(&[spec("vps-01"), spec("vps-02")], &actor())
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");

    let added = store.add_node(&spec("edge-1"), &actor()).await.unwrap();
    assert_eq!(added.source, NodeSource::Api);
    assert_eq!(added.status, NodeStatus::Pending);
    assert_eq!(added.spec, spec("edge-1"));
    assert!(matches!(
        store.add_node(&spec("vps-01"), &actor()).await,
        Err(StoreError::Conflict(_))
    ));

    let mut moved = spec("vps-01");
    moved.address = Some("192.0.2.99".into());
    let synced = store
        .sync_declared_nodes(&[moved.clone()], &actor())
        .await
        .unwrap();
    assert_eq!(synced.updated, ["vps-01"]);
    assert_eq!(synced.removed, ["vps-02"]);
    let ids: Vec<String> = store
        .list_nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.spec.id)
        .collect();
    assert_eq!(ids, ["edge-1", "vps-01"]);
    assert_eq!(store.node("vps-01").await.unwrap().unwrap().spec, moved);
    assert_eq!(audited(store, "node.sync").await.len(), 2);
    assert_eq!(audited(store, "node.add").await.len(), 1);
}

/// A join token registers its node once: the key made is an `agent` key of that node; reuse,
/// expiry and unknown tokens are told apart; removing the node revokes the key and takes the
/// node's reports, keeping the audit trail.
pub async fn join_tokens_register_once_and_removal_cascades(store: &Arc<dyn Store>) {
    store.add_node(&spec("vps-02"), &actor()).await.unwrap();
    let now = crate::now_ms();
    let token = NewJoinToken {
        node: "vps-02".into(),
        digest: "token-1".into(),
        hint: "stj_ab…".into(),
        expires_at_ms: now + 60_000,
        uses: 1,
    };
    store.create_join_token(&token, &actor()).await.unwrap();
    let missing = NewJoinToken {
        node: "nowhere".into(),
        digest: "token-x".into(),
        ..token.clone()
    };
    assert!(matches!(
        store.create_join_token(&missing, &actor()).await,
        Err(StoreError::NotFound(_))
    ));
    store
        .create_join_token(
            &NewJoinToken {
                digest: "token-old".into(),
                expires_at_ms: now - 1,
                ..token.clone()
            },
            &actor(),
        )
        .await
        .unwrap();

    let Redeemed::Joined { node, key } = store
        .redeem_join_token(&registration("token-1", now, 1), &actor())
        .await
        .unwrap()
    else {
        panic!("the token registers");
    };
    assert_eq!(node.spec.id, "vps-02");
    assert_eq!(node.spec.hostname, "vps-02.internal");
    assert_eq!(node.registered_at_ms, Some(now));
    assert_eq!(
        (key.role, key.node.as_deref()),
        (Role::Agent, Some("vps-02"))
    );
    let found = store.key_by_digest("key-digest-1").await.unwrap().unwrap();
    assert_eq!(found.node.as_deref(), Some("vps-02"));

    let reuse = store
        .redeem_join_token(&registration("token-1", now, 2), &actor())
        .await
        .unwrap();
    assert_eq!(reuse, Redeemed::Spent);
    let expired = store
        .redeem_join_token(&registration("token-old", now, 3), &actor())
        .await
        .unwrap();
    assert_eq!(expired, Redeemed::Expired);
    let unknown = store
        .redeem_join_token(&registration("token-none", now, 4), &actor())
        .await
        .unwrap();
    assert_eq!(unknown, Redeemed::Unknown);
    assert!(store.key_by_digest("key-digest-2").await.unwrap().is_none());

    store
        .reconcile_node_kind(&report(
            "vps-02",
            "domains",
            "d1",
            &[("a.example", "{}")],
            false,
        ))
        .await
        .unwrap();
    let removed = store.remove_node("vps-02", &actor()).await.unwrap();
    assert_eq!(removed.spec.id, "vps-02");
    assert!(store.node("vps-02").await.unwrap().is_none());
    assert!(store.node_items("vps-02").await.unwrap().is_empty());
    assert!(store.node_digests("vps-02").await.unwrap().is_empty());
    let revoked = store.key_by_digest("key-digest-1").await.unwrap().unwrap();
    assert!(revoked.revoked_at_ms.is_some(), "the node's key is revoked");
    assert!(matches!(
        store.remove_node("vps-02", &actor()).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(audited(store, "node.register").await.len(), 1);
    let removal = audited(store, "node.remove").await;
    assert_eq!(removal.len(), 1);
    assert_eq!(
        removal[0].details["revoked_keys"][0],
        steward_core::node::agent_key_name("vps-02", now)
    );
    assert_eq!(audited(store, "node.token.create").await.len(), 2);
}

/// Heartbeats record last-seen (never moving it back), interval and usage in one batch, and
/// name the nodes that do not exist; status changes apply only from the status judged.
pub async fn heartbeats_and_statuses_are_recorded(store: &Arc<dyn Store>) {
    store
        .sync_declared_nodes(&[spec("a"), spec("b")], &actor())
        .await
        .unwrap();
    let beat = |node: &str, at_ms: i64| NodeBeat {
        node: node.into(),
        at_ms,
        interval_ms: 5_000,
        usage: serde_json::json!({ "load": [0.5, 0.25, 0.125] }),
    };
    let missing = store
        .record_node_beats(&[beat("a", 2_000), beat("b", 1_000), beat("gone", 1_000)])
        .await
        .unwrap();
    assert_eq!(missing, ["gone"]);
    store.record_node_beats(&[beat("a", 1_500)]).await.unwrap();
    let a = store.node("a").await.unwrap().unwrap();
    assert_eq!(
        a.last_seen_ms,
        Some(2_000),
        "a late beat does not move it back"
    );
    assert_eq!(a.interval_ms, 5_000);
    assert_eq!(a.usage["load"][0], 0.5);

    let up = StatusChange {
        node: "a".into(),
        from: NodeStatus::Pending,
        to: NodeStatus::Up,
        at_ms: 2_000,
    };
    let stale = StatusChange {
        node: "b".into(),
        from: NodeStatus::Late,
        to: NodeStatus::Down,
        at_ms: 2_000,
    };
    let applied = store.set_node_statuses(&[up.clone(), stale]).await.unwrap();
    assert_eq!(applied, std::slice::from_ref(&up));
    let again = store.set_node_statuses(&[up]).await.unwrap();
    assert!(again.is_empty(), "already up");
    let a = store.node("a").await.unwrap().unwrap();
    assert_eq!((a.status, a.status_since_ms), (NodeStatus::Up, 2_000));
}

/// Reconciling a kind upserts what is present and deletes what is stale, or replaces it whole,
/// stores its digest, and leaves other kinds and nodes alone.
pub async fn inventory_kinds_reconcile_apart(store: &Arc<dyn Store>) {
    store
        .sync_declared_nodes(&[spec("a"), spec("b")], &actor())
        .await
        .unwrap();
    let first = store
        .reconcile_node_kind(&report(
            "a",
            "domains",
            "d1",
            &[("a.example", "{\"v\":1}"), ("b.example", "{\"v\":1}")],
            false,
        ))
        .await
        .unwrap();
    assert_eq!(first.added, ["a.example", "b.example"]);
    store
        .reconcile_node_kind(&report("a", "containers", "c1", &[("web", "{}")], true))
        .await
        .unwrap();
    store
        .reconcile_node_kind(&report("b", "domains", "x", &[("b.example", "{}")], false))
        .await
        .unwrap();
    let second = store
        .reconcile_node_kind(&report(
            "a",
            "domains",
            "d2",
            &[("b.example", "{\"v\":2}"), ("c.example", "{\"v\":1}")],
            false,
        ))
        .await
        .unwrap();
    assert_eq!(
        (second.added, second.changed, second.removed),
        (
            vec!["c.example".to_owned()],
            vec!["b.example".to_owned()],
            vec!["a.example".to_owned()]
        )
    );
    let replaced = store
        .reconcile_node_kind(&report("a", "containers", "c2", &[("api", "{}")], true))
        .await
        .unwrap();
    assert_eq!(
        (replaced.added, replaced.removed),
        (vec!["api".to_owned()], vec!["web".to_owned()])
    );

    let a: Vec<(String, String, String)> = store
        .node_items("a")
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.kind, i.key, i.doc))
        .collect();
    assert_eq!(
        a,
        [
            ("containers".into(), "api".into(), "{}".into()),
            ("domains".into(), "b.example".into(), "{\"v\":2}".into()),
            ("domains".into(), "c.example".into(), "{\"v\":1}".into()),
        ]
    );
    let digests = store.node_digests("a").await.unwrap();
    assert_eq!(
        digests,
        BTreeMap::from([
            ("containers".into(), "c2".into()),
            ("domains".into(), "d2".into())
        ])
    );
    assert_eq!(store.node_items("b").await.unwrap().len(), 1);
    assert!(matches!(
        store
            .reconcile_node_kind(&report("nobody", "domains", "d", &[], false))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// Tasks pinned to a node are claimed only by that node's claims, never by an instance's; an
/// expired lease of a pinned task is kept while the node has not been heard from since it ran
/// out (its agent may be cut off and still running it) and taken back once the node beats
/// without having extended it, or once the node is gone.
pub async fn pinned_tasks_are_claimed_by_their_node_and_kept_while_it_is_silent(
    store: &Arc<dyn Store>,
) {
    use crate::Claim;
    use steward_core::task::TaskStatus;

    let admin = actor();
    store.add_node(&spec("vps-01"), &admin).await.unwrap();
    store.add_node(&spec("vps-02"), &admin).await.unwrap();
    let mut local = super::new_task("pinned", "noop");
    local.idempotency_key = Some("pinned-local".into());
    let mut one = super::new_task("pinned", "backup");
    one.node = Some("vps-01".into());
    let mut two = super::new_task("pinned", "backup");
    two.node = Some("vps-02".into());
    let ids: Vec<i64> = store
        .enqueue_tasks(&[local, one, two], &admin)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(
        store.nodes_with_due_tasks(crate::now_ms()).await.unwrap(),
        ["vps-01", "vps-02"],
        "both nodes have work due"
    );
    assert!(
        store.nodes_with_due_tasks(0).await.unwrap().is_empty(),
        "nothing was due before it was enqueued"
    );
    let stored = store.task(ids[1]).await.unwrap().unwrap();
    assert_eq!(stored.node.as_deref(), Some("vps-01"), "the node is kept");
    assert_eq!(store.task(ids[0]).await.unwrap().unwrap().node, None);

    let claim = |node: Option<&str>, worker: &str, lease_ms: u64| Claim {
        queue: "pinned".into(),
        worker: worker.into(),
        limit: 10,
        lease_ms,
        node: node.map(str::to_owned),
    };
    let by_instance = store
        .claim_tasks(&claim(None, "hub", 60_000))
        .await
        .unwrap();
    assert_eq!(
        by_instance.iter().map(|t| t.id).collect::<Vec<_>>(),
        [ids[0]],
        "an instance's claim takes only the unpinned task"
    );
    let by_one = store
        .claim_tasks(&claim(Some("vps-01"), "node:vps-01", 1))
        .await
        .unwrap();
    assert_eq!(
        by_one.iter().map(|t| t.id).collect::<Vec<_>>(),
        [ids[1]],
        "a node's claim takes only its own task"
    );
    assert_eq!(
        store.nodes_with_due_tasks(crate::now_ms()).await.unwrap(),
        ["vps-02"],
        "a claimed task is no longer due"
    );
    let lease_expiry = by_one[0].lease_expires_at_ms.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // Silent since before the lease ran out: the lease is kept and a late completion counts.
    let reaped = store
        .reap_expired_leases(crate::now_ms(), 100)
        .await
        .unwrap();
    assert!(
        reaped.is_empty(),
        "a silent node's lease is kept: {reaped:?}"
    );
    // Heard from after the expiry without extending it: the attempt was lost, take it back.
    store
        .record_node_beats(&[crate::NodeBeat {
            node: "vps-01".into(),
            at_ms: lease_expiry + 5,
            interval_ms: 10_000,
            usage: serde_json::json!({}),
        }])
        .await
        .unwrap();
    let reaped = store
        .reap_expired_leases(crate::now_ms(), 100)
        .await
        .unwrap();
    assert_eq!(
        reaped
            .iter()
            .map(|r| (r.task_id, r.status))
            .collect::<Vec<_>>(),
        [(ids[1], TaskStatus::Queued)],
        "the node beat after the expiry: its lease is taken back"
    );
    let again = store
        .claim_tasks(&claim(Some("vps-01"), "node:vps-01", 1))
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "queued again for the same node");
    assert!(again[0].fence > by_one[0].fence, "with a new fence");

    // A removed node's expired leases are taken back too.
    let by_two = store
        .claim_tasks(&claim(Some("vps-02"), "node:vps-02", 1))
        .await
        .unwrap();
    assert_eq!(by_two.len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    store.remove_node("vps-02", &admin).await.unwrap();
    let reaped = store
        .reap_expired_leases(crate::now_ms(), 100)
        .await
        .unwrap();
    assert!(
        reaped.iter().any(|r| r.task_id == ids[2]),
        "a removed node's lease is taken back: {reaped:?}"
    );
}
