//! The store conformance suite against the SQLite backend, each story on a fresh file.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use steward_store::{Database, KeyStore, RegistryStore};

use steward_store::Metered;
use steward_store::conformance::TestStore;
use steward_store_sqlite::SqliteStore;

async fn fresh_store() -> Option<TestStore> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).await.expect("open");
    let store = Metered::new(store);
    let report = store.migrate().await.expect("migrate");
    assert!(
        !report.applied.is_empty(),
        "a new database gets every migration"
    );
    Some(TestStore {
        store: Arc::new(store),
        guard: Box::new(dir),
    })
}

steward_store::conformance_suite!(fresh_store);

#[tokio::test]
async fn a_second_open_of_the_same_data_dir_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = SqliteStore::open(dir.path()).await.expect("open");
    let err = match SqliteStore::open(dir.path()).await {
        Err(e) => e,
        Ok(_) => panic!("second open must fail"),
    };
    let text = err.to_string();
    assert!(text.contains("in use by another steward process"), "{text}");
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    first.close().await;
    let again = SqliteStore::open(dir.path())
        .await
        .expect("reopen after close");
    again.close().await;
}

#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).await.expect("open");
    store.migrate().await.expect("migrate");
    let desired = steward_store::conformance::sample_registry();
    store
        .sync_registry(&desired, &steward_core::audit::Actor::system("test"))
        .await
        .expect("sync");
    store.close().await;
    let store = SqliteStore::open(dir.path()).await.expect("reopen");
    assert!(store.migrate().await.expect("migrate").applied.is_empty());
    assert_eq!(store.registry().await.expect("registry"), desired);
    store.close().await;
}

/// Three audited key creations, then `tamper` run as raw SQL against the database file; returns
/// what `verify` says.
async fn verify_after(tamper: &str) -> Result<u64, steward_store::audit::VerifyError> {
    use sqlx::Connection;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).await.expect("open");
    store.migrate().await.expect("migrate");
    for name in ["a", "b", "c"] {
        let key = steward_store::conformance::new_key(name, steward_core::Role::Viewer, None);
        store
            .create_key(&key, &steward_core::audit::Actor::system("test"))
            .await
            .expect("create");
    }
    let url = format!("sqlite://{}", store.path().display());
    let mut raw = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("raw connection");
    sqlx::raw_sql(tamper)
        .execute(&mut raw)
        .await
        .expect("tamper");
    raw.close().await.expect("close raw");
    let verdict = steward_store::audit::verify_audit(&store).await;
    store.close().await;
    verdict
}

#[tokio::test]
async fn verify_names_edited_deleted_and_reordered_audit_rows() {
    use steward_store::audit::VerifyError::Broken;
    assert_eq!(verify_after("SELECT 1").await.expect("intact"), 3);
    for (tamper, expected) in steward_store::conformance::tamper_cases() {
        match verify_after(tamper).await {
            Err(Broken(found)) => assert_eq!(found, expected, "{tamper}"),
            other => panic!("{tamper}: {other:?}"),
        }
    }
}
