//! Stories of the audit chain: every mutation audited, gapless under concurrency, queries,
//! verification during writes, merges from other nodes, and the tampering it detects.

use std::sync::Arc;

use steward_core::Role;
use steward_core::audit::Actor;

use super::registry::{entity_count, sample_registry};
use super::{actor, new_key};
use crate::audit::verify_audit;
use crate::{AuditQuery, Store};

/// Syncs that change something, key creations and revocations each leave one event, chained and
/// verifiable; a sync that changes nothing leaves none.
pub async fn every_mutation_is_audited_in_a_verifiable_chain(store: &Arc<dyn Store>) {
    assert_eq!(
        verify_audit(store.as_ref())
            .await
            .expect("empty chain verifies"),
        0
    );
    let desired = sample_registry();
    store
        .sync_registry(&desired, &Actor::system("startup"))
        .await
        .expect("sync");
    store
        .sync_registry(&desired, &actor())
        .await
        .expect("no-op sync");
    store
        .create_key(
            &new_key("ops", Role::Operator, None),
            &Actor::key("admin", Some("10.0.0.7".into())),
        )
        .await
        .expect("create");
    store
        .revoke_key("ops", &Actor::cli("steward keys revoke"))
        .await
        .expect("revoke");
    let events = store
        .audit_events(&AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .expect("events");
    let summary: Vec<(i64, &str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.seq,
                e.actor.name.as_str(),
                e.action.as_str(),
                e.target.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "startup", "registry.sync", "registry"),
            (2, "admin", "key.create", "ops"),
            (3, "steward keys revoke", "key.revoke", "ops"),
        ]
    );
    assert_eq!(events[1].actor.source_ip.as_deref(), Some("10.0.0.7"));
    assert_eq!(events[0].details["counts"]["added"], entity_count(&desired));
    assert!(
        !events[1]
            .details
            .to_string()
            .contains(&new_key("ops", Role::Operator, None).digest),
        "no digest in audit"
    );
    assert_eq!(verify_audit(store.as_ref()).await.expect("verifies"), 3);
    assert_eq!(
        store.audit_head().await.expect("head"),
        Some((3, events[2].hash.clone()))
    );
}

/// Audited writes racing from many tasks (and, on PostgreSQL, connections) still form one
/// gapless chain.
pub async fn concurrent_audited_writes_keep_the_chain_gapless(store: &Arc<dyn Store>) {
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                store
                    .create_key(&new_key(&format!("k{i:02}"), Role::Viewer, None), &actor())
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("join").expect("create");
    }
    assert_eq!(verify_audit(store.as_ref()).await.expect("verifies"), 40);
}

/// Filters select by actor, action and workspace; `after_seq` pages.
pub async fn audit_queries_filter_and_paginate(store: &Arc<dyn Store>) {
    for (i, ws) in ["a", "b", "a", "b", "a"].iter().enumerate() {
        store
            .create_key(
                &new_key(&format!("k{i}"), Role::Viewer, Some(ws)),
                &Actor::key(&format!("by{}", i % 2), None),
            )
            .await
            .expect("create");
    }
    store.revoke_key("k0", &actor()).await.expect("revoke");
    let q = |f: fn(&mut AuditQuery)| {
        let mut query = AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        };
        f(&mut query);
        query
    };
    let seqs = |events: Vec<steward_core::audit::AuditEvent>| {
        events.iter().map(|e| e.seq).collect::<Vec<_>>()
    };
    assert_eq!(
        seqs(
            store
                .audit_events(&q(|q| q.workspace = Some("a".into())))
                .await
                .expect("ws")
        ),
        [1, 3, 5, 6]
    );
    assert_eq!(
        seqs(
            store
                .audit_events(&q(|q| q.actor = Some("by1".into())))
                .await
                .expect("actor")
        ),
        [2, 4]
    );
    assert_eq!(
        seqs(
            store
                .audit_events(&q(|q| q.action = Some("key.revoke".into())))
                .await
                .expect("action")
        ),
        [6]
    );
    assert_eq!(
        seqs(
            store
                .audit_events(&q(|q| {
                    q.after_seq = 2;
                    q.limit = 2;
                }))
                .await
                .expect("page")
        ),
        [3, 4]
    );
}

/// Verifying while writes go on checks the chain up to the head it read first, and never takes
/// newer events for tampering.
pub async fn verify_during_writes_never_reports_a_break(store: &Arc<dyn Store>) {
    let writer = {
        let store = Arc::clone(store);
        tokio::spawn(async move {
            for i in 0..150 {
                store
                    .create_key(&new_key(&format!("v{i}"), Role::Viewer, None), &actor())
                    .await
                    .expect("create");
            }
        })
    };
    while !writer.is_finished() {
        verify_audit(store.as_ref())
            .await
            .expect("a chain being written to still verifies");
    }
    writer.await.expect("join");
    assert_eq!(verify_audit(store.as_ref()).await.expect("verifies"), 150);
}

/// Events from another node (in any order, repeated, overlapping batches) are merged once each
/// by node and sequence, keep their origin, and leave a chain that verifies.
pub async fn remote_events_merge_once_by_node_and_sequence(store: &Arc<dyn Store>) {
    use steward_core::audit::{AuditEntry, AuditEvent, GENESIS_HASH};
    let mut remote: Vec<AuditEvent> = Vec::new();
    for seq in 1..=5 {
        let prev = remote
            .last()
            .map_or(GENESIS_HASH.to_owned(), |e| e.hash.clone());
        let entry = AuditEntry {
            actor: Actor::system("agent"),
            action: "container.start".into(),
            target: format!("c{seq}"),
            workspace: Some("trading".into()),
            details: serde_json::json!({ "n": seq }),
        };
        remote.push(AuditEvent::chain(entry, seq, 1_000 + seq, &prev));
    }
    store
        .create_key(&new_key("local", Role::Viewer, None), &actor())
        .await
        .expect("local event");
    let first: Vec<AuditEvent> = remote[..3].iter().rev().cloned().collect();
    assert_eq!(
        store
            .merge_remote_audit("vps-2", &first)
            .await
            .expect("merge"),
        3
    );
    let overlapping = [remote[2..].to_vec(), remote[..1].to_vec()].concat();
    assert_eq!(
        store
            .merge_remote_audit("vps-2", &overlapping)
            .await
            .expect("merge again"),
        2
    );
    assert_eq!(
        store
            .merge_remote_audit("vps-2", &remote)
            .await
            .expect("all again"),
        0
    );
    assert_eq!(
        store
            .merge_remote_audit("vps-3", &remote[..1])
            .await
            .expect("another node"),
        1
    );
    let events = store
        .audit_events(&AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .expect("events");
    let origins: Vec<(String, i64)> = events
        .iter()
        .filter_map(|e| e.origin.as_ref().map(|o| (o.node.clone(), o.seq)))
        .collect();
    let expected: Vec<(String, i64)> = [
        ("vps-2", 1),
        ("vps-2", 2),
        ("vps-2", 3),
        ("vps-2", 4),
        ("vps-2", 5),
        ("vps-3", 1),
    ]
    .iter()
    .map(|(n, s)| (n.to_string(), *s))
    .collect();
    assert_eq!(origins, expected);
    assert_eq!(
        events[1].origin.as_ref().map(|o| o.hash.clone()),
        Some(remote[0].hash.clone())
    );
    assert_eq!(verify_audit(store.as_ref()).await.expect("verifies"), 7);

    // Reading one node's merged events, and where its next batch should start.
    let of_node = |node: &str, after_seq: i64, limit: u32| AuditQuery {
        after_seq,
        limit,
        origin_node: Some(node.to_owned()),
        ..AuditQuery::default()
    };
    let vps2 = store
        .audit_events(&of_node("vps-2", 0, 100))
        .await
        .expect("vps-2's");
    assert_eq!(
        vps2.iter()
            .map(|e| e.origin.as_ref().map(|o| o.seq))
            .collect::<Vec<_>>(),
        (1..=5).map(Some).collect::<Vec<_>>()
    );
    let paged = store
        .audit_events(&of_node("vps-2", vps2[1].seq, 2))
        .await
        .expect("a page of vps-2's");
    assert_eq!(
        paged.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![vps2[2].seq, vps2[3].seq]
    );
    let vps3 = store
        .audit_events(&of_node("vps-3", 0, 100))
        .await
        .expect("vps-3's");
    assert_eq!(vps3.len(), 1);
    assert!(
        store
            .audit_events(&of_node("vps-4", 0, 100))
            .await
            .expect("none")
            .is_empty()
    );
    let with_action = store
        .audit_events(&AuditQuery {
            action: Some("key.create".into()),
            ..of_node("vps-2", 0, 100)
        })
        .await
        .expect("filters combine");
    assert!(with_action.is_empty());
    assert_eq!(
        store.last_merged_audit_seq("vps-2").await.expect("last"),
        Some(5)
    );
    assert_eq!(
        store.last_merged_audit_seq("vps-3").await.expect("last"),
        Some(1)
    );
    assert_eq!(
        store.last_merged_audit_seq("vps-4").await.expect("none"),
        None
    );
}

// The task queue ---------------------------------------------------------------------------------

/// Raw SQL edits of three audited key creations (seq 1 to 3), each with the break `verify` must
/// name. Every backend's tests apply them to a real database; the SQL is portable.
pub fn tamper_cases() -> Vec<(&'static str, steward_core::audit::ChainBreak)> {
    use steward_core::audit::ChainBreak;
    vec![
        (
            "UPDATE audit_events SET target = 'z' WHERE seq = 2",
            ChainBreak::Edited { seq: 2 },
        ),
        (
            "UPDATE audit_events SET actor = 'mallory' WHERE seq = 3",
            ChainBreak::Edited { seq: 3 },
        ),
        (
            "UPDATE audit_events SET details = '{\"role\":\"admin\"}' WHERE seq = 1",
            ChainBreak::Edited { seq: 1 },
        ),
        (
            "UPDATE audit_events SET details = ' ' || details WHERE seq = 2",
            ChainBreak::Edited { seq: 2 },
        ),
        (
            "DELETE FROM audit_events WHERE seq = 2",
            ChainBreak::Missing { from: 2, to: 2 },
        ),
        (
            "DELETE FROM audit_events WHERE seq = 3",
            ChainBreak::Truncated { last: 2, head: 3 },
        ),
        (
            "UPDATE audit_events SET seq = -seq WHERE seq IN (1, 2); \
             UPDATE audit_events SET seq = CASE seq WHEN -1 THEN 2 ELSE 1 END WHERE seq < 0",
            ChainBreak::Edited { seq: 1 },
        ),
    ]
}
