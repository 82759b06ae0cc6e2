//! The store conformance suite against a real PostgreSQL server, each story in a fresh
//! database.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use steward_store::{Database, KeyStore, TaskStore};

use steward_core::Secret;
use steward_store::Metered;
use steward_store::conformance::TestStore;
use steward_store_postgres::PostgresStore;
use steward_store_postgres::testing::TestDatabase;

async fn fresh_store() -> Option<TestStore> {
    let db = TestDatabase::create().await?;
    let store = PostgresStore::connect(&Secret::new(db.url.clone()), 10)
        .await
        .expect("connect");
    let store = Metered::new(store);
    let report = store.migrate().await.expect("migrate");
    assert!(
        !report.applied.is_empty(),
        "a new database gets every migration"
    );
    Some(TestStore {
        store: Arc::new(store),
        guard: Box::new(db),
    })
}

steward_store::conformance_suite!(fresh_store);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_migrating_together_apply_each_migration_once() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let url = Secret::new(db.url.clone());
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(Arc::new(
            PostgresStore::connect(&url, 2).await.expect("connect"),
        ));
    }
    let tasks: Vec<_> = stores
        .iter()
        .map(|s| {
            let s = Arc::clone(s);
            tokio::spawn(async move { s.migrate().await })
        })
        .collect();
    let mut applied = 0;
    for t in tasks {
        applied += t.await.expect("join").expect("migrate").applied.len();
    }
    assert_eq!(
        applied,
        steward_store_postgres::migration_versions().len(),
        "each migration is applied once"
    );
    for s in stores {
        s.close().await;
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_connect_error() {
    let url = Secret::new("postgres://postgres@127.0.0.1:1/none");
    match PostgresStore::connect(&url, 1).await {
        Err(e) => assert_eq!(e.kind(), "connect"),
        Ok(_) => panic!("nothing listens on port 1"),
    }
}

/// Three audited key creations in a fresh database, then `tamper` as raw SQL; returns what
/// `verify` says (`None` when PostgreSQL is unreachable outside CI).
async fn verify_after(tamper: &str) -> Option<Result<u64, steward_store::audit::VerifyError>> {
    use sqlx::Connection;
    let db = TestDatabase::create().await?;
    let store = db.migrated_store(4).await;
    for name in ["a", "b", "c"] {
        let key = steward_store::conformance::new_key(name, steward_core::Role::Viewer, None);
        store
            .create_key(&key, &steward_core::audit::Actor::system("test"))
            .await
            .expect("create");
    }
    let mut raw = sqlx::PgConnection::connect(&db.url)
        .await
        .expect("raw connection");
    sqlx::raw_sql(tamper)
        .execute(&mut raw)
        .await
        .expect("tamper");
    raw.close().await.expect("close raw");
    let verdict = steward_store::audit::verify_audit(&store).await;
    store.close().await;
    Some(verdict)
}

#[tokio::test]
async fn verify_names_edited_deleted_and_reordered_audit_rows() {
    use steward_store::audit::VerifyError::Broken;
    let Some(intact) = verify_after("SELECT 1").await else {
        return;
    };
    assert_eq!(intact.expect("intact"), 3);
    for (tamper, expected) in steward_store::conformance::tamper_cases() {
        match verify_after(tamper).await {
            Some(Err(Broken(found))) => assert_eq!(found, expected, "{tamper}"),
            other => panic!("{tamper}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_value_holding_a_nul_is_unstorable_not_an_outage() {
    use steward_core::audit::Actor;
    use steward_core::task::{NewTask, TaskOrigin};
    use steward_store::StoreError;
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = db.migrated_store(2).await;
    let task = |payload: &str, key: Option<&str>| NewTask {
        timeout_ms: None,
        queue: "q".into(),
        kind: "noop".into(),
        payload: payload.into(),
        priority: 0,
        run_at_ms: 0,
        max_attempts: 1,
        idempotency_key: key.map(str::to_owned),
        origin: TaskOrigin::default(),
        node: None,
    };
    for refused in [
        task(r#"{"msg":"a\u0000b"}"#, None),
        task("{}", Some("key\u{0}")),
    ] {
        match store.enqueue_tasks(&[refused], &Actor::system("t")).await {
            Err(StoreError::Unstorable(_)) => {}
            other => panic!("expected unstorable, got {other:?}"),
        }
    }
    // The store is fine afterwards.
    store
        .enqueue_tasks(&[task("{}", Some("key"))], &Actor::system("t"))
        .await
        .unwrap();
    store.close().await;
}
