//! The conformance ("story") suite: behaviour every [`Store`] backend must show, written once
//! and run against each backend by [`conformance_suite!`](crate::conformance_suite).
//!
//! Each story receives a freshly created and migrated store of its own.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: a failed expectation is a failed story

use std::sync::Arc;

use steward_core::audit::Actor;
use steward_core::registry::Labels;
use steward_core::{Dependency, Registry, Repo, Role, Service, Workspace, WorkspaceStatus};

use crate::audit::verify_audit;
use crate::{AuditQuery, NewKey, Store, StoreError};

fn actor() -> Actor {
    Actor::system("conformance")
}

/// A key to store, with a digest derived from its name.
pub fn new_key(name: &str, role: Role, workspace: Option<&str>) -> NewKey {
    NewKey {
        name: name.into(),
        role,
        workspace: workspace.map(Into::into),
        digest: steward_core::auth::key_digest(&format!("secret-of-{name}")),
        hint: "stw_test…".into(),
        expires_at_ms: None,
    }
}

/// A store made for one story, with whatever keeps its database alive (a temporary directory,
/// a throwaway PostgreSQL database that is dropped with it).
pub struct TestStore {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// Dropped after the story, cleaning up.
    pub guard: Box<dyn Send>,
}

/// Generates one `#[tokio::test]` per story. `$factory` is an `async fn() -> Option<TestStore>`;
/// `None` means the backend is unreachable and the story is skipped (factories must panic
/// instead when `CI=true`).
#[macro_export]
macro_rules! conformance_suite {
    ($factory:path) => {
        $crate::conformance_suite!(@stories $factory;
            migrate_is_idempotent,
            sync_into_an_empty_store_adds_everything,
            a_second_sync_of_the_same_registry_changes_nothing,
            sync_applies_updates_and_removals,
            removing_a_workspace_takes_its_edges_and_services,
            concurrent_syncs_report_each_change_once,
            text_round_trips_exactly,
            a_large_registry_round_trips,
            keys_are_created_found_listed_and_revoked,
            only_one_first_key_is_created_however_many_race,
            every_mutation_is_audited_in_a_verifiable_chain,
            concurrent_audited_writes_keep_the_chain_gapless,
            racing_creations_of_one_name_create_it_once,
            verify_during_writes_never_reports_a_break,
            remote_events_merge_once_by_node_and_sequence,
            audit_queries_filter_and_paginate,
        );
    };
    (@stories $factory:path; $($story:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $story() {
                let Some(test_store) = $factory().await else { return };
                $crate::conformance::$story(&test_store.store).await;
                test_store.store.close().await;
                drop(test_store);
            }
        )*
    };
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn edge(from: &str, to: &str, kind: &str, note: Option<&str>) -> Dependency {
    Dependency {
        from: from.into(),
        to: to.into(),
        kind: kind.into(),
        note: note.map(Into::into),
    }
}

/// A registry shaped like a real platform's: every field used, cycles between workspaces.
pub fn sample_registry() -> Registry {
    let mut trading = Workspace::new("trading");
    trading.description = Some("Signals and execution".into());
    trading.owner = Some("desk".into());
    trading.labels = labels(&[("db_name", "AIDB"), ("tier", "critical")]);
    trading.repo = Some(Repo {
        name: Some("vizion-trading".into()),
        path: Some("/srv/trading".into()),
        remote: Some("git@example.com:org/trading.git".into()),
    });
    let mut analytics = Workspace::new("analytics");
    analytics.status = WorkspaceStatus::Paused;
    let platform = Workspace::new("platform");
    let mut nn = Service::new("nn");
    nn.workspace = Some("trading".into());
    nn.url = Some("http://127.0.0.1:8000/health".into());
    nn.node = Some("vps-1".into());
    nn.labels = labels(&[("kind", "model")]);
    let mut n8n = Service::new("n8n");
    n8n.url = Some("http://127.0.0.1:32769/".into());
    Registry::new(
        vec![trading, analytics, platform],
        vec![
            edge(
                "analytics",
                "trading",
                "read_trades",
                Some("Aggregates outcomes"),
            ),
            edge("trading", "analytics", "write_metrics", None),
            edge("analytics", "platform", "read_tasks", None),
        ],
        vec![nn, n8n],
    )
}

fn entity_count(r: &Registry) -> usize {
    r.workspaces.len() + r.dependencies.len() + r.services.len()
}

/// Migrating an up-to-date database applies nothing and leaves it usable.
pub async fn migrate_is_idempotent(store: &Arc<dyn Store>) {
    let again = store.migrate().await.expect("second migrate");
    assert!(again.applied.is_empty(), "nothing left to apply: {again:?}");
    assert!(again.version > 0);
    store.ping().await.expect("ping after migrate");
    assert_eq!(
        store.registry().await.expect("registry"),
        Registry::default()
    );
}

/// The first sync reports every entity as added and stores exactly the declared registry.
pub async fn sync_into_an_empty_store_adds_everything(store: &Arc<dyn Store>) {
    let desired = sample_registry();
    let diff = store.sync_registry(&desired, &actor()).await.expect("sync");
    assert_eq!(diff.counts().added, entity_count(&desired));
    assert_eq!(diff.counts().updated + diff.counts().removed, 0);
    assert_eq!(store.registry().await.expect("registry"), desired);
}

/// Syncing what is already stored is a no-op.
pub async fn a_second_sync_of_the_same_registry_changes_nothing(store: &Arc<dyn Store>) {
    let desired = sample_registry();
    store
        .sync_registry(&desired, &actor())
        .await
        .expect("first sync");
    let diff = store
        .sync_registry(&desired, &actor())
        .await
        .expect("second sync");
    assert!(diff.is_empty(), "{diff:?}");
}

/// Field changes are updates, new entities additions, missing ones removals, and the diff the
/// store reports is the one the domain computes.
pub async fn sync_applies_updates_and_removals(store: &Arc<dyn Store>) {
    let before = sample_registry();
    store
        .sync_registry(&before, &actor())
        .await
        .expect("first sync");
    let mut after = before.clone();
    after.workspaces[0].owner = Some("new owner".into()); // analytics
    after.workspaces[2]
        .labels
        .insert("tier".into(), "gold".into()); // trading
    after.dependencies.retain(|d| d.kind != "read_tasks");
    after.dependencies[0].note = Some("changed note".into());
    after.services.retain(|s| s.name != "n8n");
    after.services.push(Service::new("vaultwarden"));
    after.workspaces.push(Workspace::new("marketing"));
    let after = after.canonicalize();
    let diff = store
        .sync_registry(&after, &actor())
        .await
        .expect("second sync");
    assert_eq!(diff, before.diff(&after));
    assert_eq!(diff.counts().added, 2);
    assert_eq!(diff.counts().updated, 3);
    assert_eq!(diff.counts().removed, 2);
    assert_eq!(store.registry().await.expect("registry"), after);
}

/// Dropping a workspace from the config, with its edges and services, removes them all.
pub async fn removing_a_workspace_takes_its_edges_and_services(store: &Arc<dyn Store>) {
    let before = sample_registry();
    store
        .sync_registry(&before, &actor())
        .await
        .expect("first sync");
    let mut after = before.clone();
    after.workspaces.retain(|w| w.key != "trading");
    after
        .dependencies
        .retain(|d| d.from != "trading" && d.to != "trading");
    after
        .services
        .retain(|s| s.workspace.as_deref() != Some("trading"));
    let diff = store
        .sync_registry(&after, &actor())
        .await
        .expect("second sync");
    assert_eq!(diff.counts().removed, 4, "{:?}", diff.summary_lines());
    assert_eq!(store.registry().await.expect("registry"), after);
}

/// Several syncs racing (several instances starting at once) leave the declared registry and
/// report each addition exactly once between them.
pub async fn concurrent_syncs_report_each_change_once(store: &Arc<dyn Store>) {
    let desired = sample_registry();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(store);
            let desired = desired.clone();
            tokio::spawn(async move { store.sync_registry(&desired, &actor()).await })
        })
        .collect();
    let mut added = 0;
    for task in tasks {
        let diff = task.await.expect("join").expect("sync");
        assert_eq!(diff.counts().updated + diff.counts().removed, 0);
        added += diff.counts().added;
    }
    assert_eq!(added, entity_count(&desired));
    assert_eq!(store.registry().await.expect("registry"), desired);
}

/// Text survives storage byte for byte: quotes, SQL metacharacters, newlines, non-ASCII.
pub async fn text_round_trips_exactly(store: &Arc<dyn Store>) {
    let tricky = [
        "it's \"quoted\"",
        "'; DROP TABLE workspaces; --",
        "line\nbreak\ttab",
        "ünïcødé ✓ 日本語 🚀",
        "back\\slash %_ wildcards",
        &"x".repeat(10_000),
    ];
    let mut w = Workspace::new("w");
    w.description = Some(tricky.join(" | "));
    w.owner = Some(String::new());
    w.labels = tricky
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("k{i}"), v.to_string()))
        .collect();
    let mut s = Service::new("s");
    s.workspace = Some("w".into());
    s.node = Some(tricky[3].into());
    let desired = Registry::new(
        vec![w, Workspace::new("v")],
        vec![edge("w", "v", "t", Some(tricky[1]))],
        vec![s],
    );
    store.sync_registry(&desired, &actor()).await.expect("sync");
    assert_eq!(store.registry().await.expect("registry"), desired);
}

/// A registry far larger than any seed platform's syncs and changes in one transaction.
pub async fn a_large_registry_round_trips(store: &Arc<dyn Store>) {
    let keys: Vec<String> = (0..500).map(|i| format!("ws-{i:04}")).collect();
    let workspaces = keys.iter().map(Workspace::new).collect();
    let dependencies = (0..500)
        .flat_map(|i| (1..=4).map(move |d| (i, (i + d * 7) % 500)))
        .map(|(a, b)| edge(&keys[a], &keys[b], "feeds", None))
        .collect();
    let services = (0..500)
        .map(|i| {
            let mut s = Service::new(format!("svc-{i:04}"));
            s.workspace = Some(keys[i].clone());
            s
        })
        .collect();
    let desired = Registry::new(workspaces, dependencies, services);
    let diff = store.sync_registry(&desired, &actor()).await.expect("sync");
    assert_eq!(diff.counts().added, entity_count(&desired));
    let mut changed = desired.clone();
    changed.services.truncate(450);
    for w in changed.workspaces.iter_mut().take(50) {
        w.owner = Some("team".into());
    }
    let diff = store
        .sync_registry(&changed, &actor())
        .await
        .expect("resync");
    assert_eq!((diff.counts().updated, diff.counts().removed), (50, 50));
    assert_eq!(store.registry().await.expect("registry"), changed);
}

/// Keys round-trip; names are unique; revocation is recorded and final.
pub async fn keys_are_created_found_listed_and_revoked(store: &Arc<dyn Store>) {
    let ops = new_key("ops", Role::Operator, Some("trading"));
    let created = store.create_key(&ops, &actor()).await.expect("create");
    assert_eq!(
        (created.role, created.workspace.as_deref()),
        (Role::Operator, Some("trading"))
    );
    assert!(created.is_usable(crate::now_ms()));
    match store.create_key(&ops, &actor()).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("a second key with the same name: {other:?}"),
    }
    store
        .create_key(&new_key("admin", Role::Admin, None), &actor())
        .await
        .expect("create admin");
    let found = store
        .key_by_digest(&ops.digest)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found, created);
    assert!(
        store
            .key_by_digest("0".repeat(64).as_str())
            .await
            .expect("lookup")
            .is_none()
    );
    let names: Vec<String> = store
        .list_keys()
        .await
        .expect("list")
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(names, ["admin", "ops"]);
    store.touch_key("ops", 42).await.expect("touch");
    assert_eq!(
        store
            .key_by_digest(&ops.digest)
            .await
            .expect("lookup")
            .expect("found")
            .last_used_at_ms,
        Some(42)
    );
    let revoked = store.revoke_key("ops", &actor()).await.expect("revoke");
    assert!(revoked.revoked_at_ms.is_some() && !revoked.is_usable(crate::now_ms()));
    assert!(matches!(
        store.revoke_key("ops", &actor()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.revoke_key("ghost", &actor()).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Instances starting together with an empty key table create exactly one first key.
pub async fn only_one_first_key_is_created_however_many_race(store: &Arc<dyn Store>) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                store
                    .create_first_key(&new_key(&format!("admin-{i}"), Role::Admin, None), &actor())
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        created += usize::from(task.await.expect("join").expect("create first").is_some());
    }
    assert_eq!(created, 1);
    assert_eq!(store.list_keys().await.expect("list").len(), 1);
    assert!(
        store
            .create_first_key(&new_key("late", Role::Admin, None), &actor())
            .await
            .expect("again")
            .is_none()
    );
}

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

/// Many callers creating the same name at once (they may share a batch): exactly one succeeds,
/// the others conflict, and the chain records exactly one creation.
pub async fn racing_creations_of_one_name_create_it_once(store: &Arc<dyn Store>) {
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                let mut key = new_key("contested", Role::Viewer, None);
                key.digest = steward_core::auth::key_digest(&format!("attempt-{i}"));
                store.create_key(&key, &actor()).await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.expect("join") {
            Ok(_) => created += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(verify_audit(store.as_ref()).await.expect("verifies"), 1);
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
}

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
