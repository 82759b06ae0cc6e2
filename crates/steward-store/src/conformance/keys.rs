//! Stories of API keys: creation, lookup, listing, revocation, and racing creations.

use std::sync::Arc;

use steward_core::Role;

use super::{actor, new_key};
use crate::audit::verify_audit;
use crate::{Store, StoreError};

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
