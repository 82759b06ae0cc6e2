//! The database file's own soundness: SQLite's result codes for a damaged file, and
//! `PRAGMA quick_check` at start, bounded in time, with how to recover what it finds.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use steward_store::{Integrity, StoreError};

/// How an operator recovers a damaged file; the names are the data directory's.
pub(crate) const RECOVERY: &str = "stop steward; in the data directory, copy steward.db, \
    steward.db-wal and steward.db-shm somewhere safe; run \
    `sqlite3 steward.db \".recover\" | sqlite3 recovered.db`; replace steward.db with \
    recovered.db and delete steward.db-wal and steward.db-shm; start steward again";

/// SQLite's primary result codes (an extended code carries its primary one in its low byte).
const SQLITE_INTERRUPT: i32 = 9;
const SQLITE_CORRUPT: i32 = 11;
const SQLITE_NOTADB: i32 = 26;

/// How many problems the check lists before it stops.
const MAX_PROBLEMS: u32 = 10;
/// Virtual-machine steps between looks at the clock while the check runs.
const STEPS_PER_CLOCK_LOOK: i32 = 1_000;

/// The primary SQLite result code of `e`, if the database answered with one.
fn primary_code(e: &sqlx::Error) -> Option<i32> {
    let code = e.as_database_error()?.code()?;
    code.parse::<i32>().ok().map(|code| code & 0xff)
}

/// Whether SQLite said its file is damaged (`SQLITE_CORRUPT`, `SQLITE_NOTADB` or one of their
/// extended codes).
pub(crate) fn is_damage(e: &sqlx::Error) -> bool {
    matches!(primary_code(e), Some(SQLITE_CORRUPT | SQLITE_NOTADB))
}

/// Runs `PRAGMA quick_check` on a connection of its own (so the interrupt that bounds it
/// touches no pooled connection), interrupted once `budget` has passed.
pub(crate) async fn quick_check(path: &Path, budget: Duration) -> Result<Integrity, StoreError> {
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| StoreError::Connect(Box::new(e)))?;
    let started = Instant::now();
    let deadline = started + budget;
    conn.lock_handle()
        .await
        .map_err(crate::db_err)?
        .set_progress_handler(STEPS_PER_CLOCK_LOOK, move || Instant::now() < deadline);
    let rows: Result<Vec<String>, sqlx::Error> =
        sqlx::query_scalar(&format!("PRAGMA quick_check({MAX_PROBLEMS})"))
            .fetch_all(&mut conn)
            .await;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    // Only read from: nothing is lost if closing fails.
    let _ = conn.close().await;
    match rows {
        Ok(rows) if rows.iter().all(|row| row == "ok") => Ok(Integrity::Passed { elapsed_ms }),
        Ok(problems) => Ok(Integrity::Damaged {
            elapsed_ms,
            // SQLite breaks a problem over lines; a log line keeps it whole.
            problems: problems
                .iter()
                .map(|problem| problem.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect(),
        }),
        Err(e) if primary_code(&e) == Some(SQLITE_INTERRUPT) => {
            Ok(Integrity::CutShort { elapsed_ms })
        }
        // A page so damaged that the check itself cannot go on.
        Err(e) if is_damage(&e) => Ok(Integrity::Damaged {
            elapsed_ms,
            problems: vec![e.to_string()],
        }),
        Err(e) => Err(crate::db_err(e)),
    }
}

/// Logs what the check found: passed at info, cut short as a warning, damage as an error with
/// the first problems and how to recover.
pub(crate) fn log(data_dir: &Path, integrity: &Integrity) {
    match integrity {
        Integrity::NotChecked => {}
        Integrity::Passed { elapsed_ms } => {
            tracing::info!(elapsed_ms, "integrity check passed");
        }
        Integrity::CutShort { elapsed_ms } => tracing::warn!(
            elapsed_ms,
            "integrity check cut short after {elapsed_ms} ms; the part it read is sound, the rest was not checked"
        ),
        Integrity::Damaged {
            elapsed_ms,
            problems,
        } => tracing::error!(
            elapsed_ms,
            data_dir = %data_dir.display(),
            problems = %problems.join("; "),
            recovery = %RECOVERY,
            "integrity check failed: the database file is damaged; reads of the damaged rows fail and /readyz answers 503 until it is recovered"
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use std::io::{Seek, SeekFrom, Write};

    use steward_store::prelude::*;

    use super::*;
    use crate::SqliteStore;

    /// A migrated store in `dir` with a table `filler` spanning many pages.
    async fn store_with_filler(dir: &Path) -> SqliteStore {
        let store = SqliteStore::open(dir).await.unwrap();
        store.migrate().await.unwrap();
        sqlx::query(
            "CREATE TABLE filler (x TEXT); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) \
             INSERT INTO filler SELECT printf('%0200d', i) FROM n",
        )
        .execute(&store.writer)
        .await
        .unwrap();
        store
    }

    /// Closes the store with everything in the file, then overwrites the middle of `filler`'s
    /// root page with garbage.
    async fn damage_filler(store: SqliteStore) {
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        let root: i64 =
            sqlx::query_scalar("SELECT rootpage FROM sqlite_master WHERE name = 'filler'")
                .fetch_one(&store.writer)
                .await
                .unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&store.writer)
            .await
            .unwrap();
        let path = store.path().to_path_buf();
        store.close().await;
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start(((root - 1) * page_size + 16) as u64))
            .unwrap();
        file.write_all(&vec![0xA5; (page_size - 32) as usize])
            .unwrap();
        file.sync_all().unwrap();
    }

    #[tokio::test]
    async fn a_sound_file_passes() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_filler(dir.path()).await;
        let integrity = store
            .check_integrity(Duration::from_secs(10))
            .await
            .unwrap();
        assert!(
            matches!(integrity, Integrity::Passed { .. }),
            "{integrity:?}"
        );
        assert!(!store.damaged());
        store.close().await;
    }

    #[tokio::test]
    async fn a_check_out_of_time_is_cut_short_and_the_store_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_filler(dir.path()).await;
        let integrity = store.check_integrity(Duration::ZERO).await.unwrap();
        assert!(
            matches!(integrity, Integrity::CutShort { .. }),
            "{integrity:?}"
        );
        assert!(!store.damaged());
        store.ping().await.unwrap();
        store.close().await;
    }

    #[tokio::test]
    async fn a_damaged_page_is_found_and_reads_of_it_fail_as_damaged() {
        let dir = tempfile::tempdir().unwrap();
        damage_filler(store_with_filler(dir.path()).await).await;
        let store = SqliteStore::open(dir.path()).await.unwrap();
        store.migrate().await.unwrap();
        let integrity = store
            .check_integrity(Duration::from_secs(10))
            .await
            .unwrap();
        let Integrity::Damaged { problems, .. } = &integrity else {
            panic!("expected damage, got {integrity:?}");
        };
        assert!(!problems.is_empty());
        assert!(problems.iter().all(|p| !p.contains('\n')), "{problems:?}");
        assert!(store.damaged());
        let read = sqlx::query_scalar::<_, String>("SELECT max(x) FROM filler")
            .fetch_one(&store.reader)
            .await
            .map_err(crate::db_err);
        match read {
            Err(StoreError::Damaged { recovery, .. }) => assert_eq!(recovery, RECOVERY),
            other => panic!("expected a damaged file, got {other:?}"),
        }
        // Other tables still answer.
        store.registry().await.unwrap();
        store.close().await;
    }
}
