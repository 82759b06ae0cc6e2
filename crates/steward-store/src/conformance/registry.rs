//! Stories of the registry: syncs, their diffs and audit, round trips, and the database's
//! migrations and integrity check.

use std::sync::Arc;

use steward_core::registry::Labels;
use steward_core::{Dependency, Registry, Repo, Service, Workspace, WorkspaceStatus};

use super::actor;
use crate::{Integrity, Store};

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

/// A sound database passes its integrity check (or its backend leaves checking to the server)
/// and is not taken for damaged.
pub async fn a_sound_database_passes_its_integrity_check(store: &Arc<dyn Store>) {
    store
        .sync_registry(&sample_registry(), &actor())
        .await
        .expect("sync");
    let integrity = store
        .check_integrity(std::time::Duration::from_secs(10))
        .await
        .expect("integrity check");
    assert!(
        matches!(integrity, Integrity::Passed { .. } | Integrity::NotChecked),
        "{integrity:?}"
    );
    assert!(!store.damaged());
}

pub(super) fn entity_count(r: &Registry) -> usize {
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
