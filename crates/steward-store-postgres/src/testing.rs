//! Throwaway PostgreSQL databases for tests: one fresh database per test, dropped afterwards.
//!
//! The server is `STEWARD_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it cannot be reached, tests are skipped
//! with a message, except under `CI=true`, where they fail: CI must never pass by skipping.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: failing loudly is the point

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The server tests use when `STEWARD_TEST_DATABASE_URL` is not set.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A database created for one test and dropped (with its connections) when this is dropped.
pub struct TestDatabase {
    /// The URL of the new database.
    pub url: String,
    name: String,
    admin_url: String,
}

fn admin_url() -> String {
    std::env::var("STEWARD_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn database_url(admin_url: &str, name: &str) -> String {
    match admin_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => format!("{admin_url}/{name}"),
    }
}

impl TestDatabase {
    /// Creates a fresh database. Returns `None` (after saying so on stderr) when the server is
    /// unreachable outside CI; panics when it is unreachable under `CI=true`.
    pub async fn create() -> Option<Self> {
        let admin_url = admin_url();
        let mut admin = match PgConnection::connect(&admin_url).await {
            Ok(conn) => conn,
            Err(e) if in_ci() => {
                panic!("CI=true and PostgreSQL at {admin_url} is unreachable: {e}")
            }
            Err(e) => {
                eprintln!(
                    "SKIPPED: PostgreSQL at {admin_url} is unreachable ({e}); set STEWARD_TEST_DATABASE_URL"
                );
                return None;
            }
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "steward_test_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let _ = admin.close().await;
        let url = database_url(&admin_url, &name);
        Some(Self {
            url,
            name,
            admin_url,
        })
    }

    /// A store on this database with every migration applied.
    pub async fn migrated_store(&self, max_connections: u32) -> crate::PostgresStore {
        use steward_store::Database as _;
        let store = crate::PostgresStore::connect(
            &steward_core::Secret::new(self.url.clone()),
            max_connections,
        )
        .await
        .expect("connect");
        store.migrate().await.expect("migrate");
        store
    }

    /// [`TestDatabase::create`] for synchronous tests.
    pub fn create_blocking() -> Option<Self> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("test runtime")
            .block_on(Self::create())
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run inside a runtime; a plain thread with its own runtime works from anywhere.
        let dropper = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&sql).execute(&mut admin).await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = dropper.join();
    }
}
