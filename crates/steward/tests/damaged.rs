//! A SQLite file damaged while the daemon was stopped: the real binary notices at start, says
//! how to recover, answers not ready, and answers reads of the damaged rows `store_corrupt`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // helpers of tests: a failure is a failed test

mod support;

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Connection;
use support::Daemon;

const CONFIG: &str = r#"
[[workspaces]]
key = "ops"

[[queues]]
name = "jobs"
kinds = ["noop"]
"#;

/// Runs `f` on a SQLite connection to `db` (the daemon is stopped, so nothing else holds it).
fn with_sqlite<T: Send + 'static>(
    db: &Path,
    f: impl AsyncFnOnce(&mut sqlx::SqliteConnection) -> T + Send + 'static,
) -> T {
    let url = format!("sqlite://{}", db.display());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                let value = f(&mut conn).await;
                conn.close().await.unwrap();
                value
            })
    })
    .join()
    .unwrap()
}

/// Overwrites the middle of the `tasks` table's root page with garbage, after moving every
/// committed change from the WAL into the file (the WAL would otherwise hide the damage).
fn damage_the_tasks_table(db: &Path) {
    let (page_size, root) = with_sqlite(db, async |conn| {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut *conn)
            .await
            .unwrap();
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let root: i64 =
            sqlx::query_scalar("SELECT rootpage FROM sqlite_master WHERE name = 'tasks'")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        (page_size, root)
    });
    let page_start = (root - 1) * page_size;
    let mut file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    // The page header (its type and cell count) stays; what follows it does not.
    file.seek(SeekFrom::Start((page_start + 16) as u64))
        .unwrap();
    file.write_all(&vec![0xA5; (page_size - 32) as usize])
        .unwrap();
    file.sync_all().unwrap();
}

#[test]
fn a_damaged_table_is_found_at_start_and_read_as_store_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steward.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut first = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    let key = first.key.clone().unwrap();
    // Enough tasks for the table to span many pages; due in an hour, so no worker touches them.
    let tasks: Vec<Value> = (0..3_000)
        .map(|i| {
            json!({
                "queue": "jobs",
                "kind": "noop",
                "delay_ms": 3_600_000,
                "payload": { "n": i, "pad": "x".repeat(200) },
            })
        })
        .collect();
    let created = first.send(
        reqwest::Method::POST,
        "/api/v1/tasks",
        Some(json!({ "tasks": tasks })),
    );
    assert_eq!(created.status(), 201);
    assert_eq!(first.get("/api/v1/tasks?limit=10").status(), 200);
    first.signal("TERM");
    first.wait_exit(Duration::from_secs(15));

    damage_the_tasks_table(&dir.path().join("data").join("steward.db"));

    let mut second = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    second.use_key(&key);
    let logs = second.logs();
    assert!(
        logs.contains("integrity check failed"),
        "the start says the check failed:\n{logs}"
    );
    assert!(
        logs.contains(".recover") && logs.contains("steward.db"),
        "the log says how to recover:\n{logs}"
    );

    assert_eq!(second.get_anonymous("/healthz").status(), 200);
    let (status, code, _) = support::refusal(second.get_anonymous("/readyz"));
    assert_eq!((status, code.as_str()), (503, "store_corrupt"));

    let (status, code, message) = support::refusal(second.get("/api/v1/tasks?limit=1000"));
    assert_eq!(
        (status, code.as_str()),
        (500, "store_corrupt"),
        "a read of the damaged rows: {message}"
    );
    assert!(message.contains("damaged"), "{message}");
    assert!(
        second.logs().contains("sqlite3"),
        "the failed read logs the recovery steps"
    );
}
