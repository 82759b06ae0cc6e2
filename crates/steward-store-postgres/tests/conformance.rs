//! The store conformance suite against a real PostgreSQL server, each story in a fresh
//! database.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use steward_core::Secret;
use steward_store::conformance::TestStore;
use steward_store::{Metered, Store};
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
    assert_eq!(applied, 1, "one migration exists and it is applied once");
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
