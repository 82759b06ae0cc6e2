//! The embedded SQLite backend: one file in the data directory, WAL, one writer connection and a
//! pool of read-only ones, foreign keys on, and an exclusive lock on the data directory so that
//! two daemons never share it.

mod alerts;
mod audit;
mod events;
mod health;
mod integrity;
mod keys;
mod leases;
mod lock;
mod nodes;
mod notifications;
mod pipelines;
mod registry;
mod schedules;
mod sessions;
mod tasks;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Connection;
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteSynchronous,
};
use steward_core::audit::Actor;
use steward_store::batch::Batcher;
use steward_store::{
    AlertChange, AlertReceipt, ApiKey, AppliedMigration, Database, Integrity, MigrationReport,
    NewKey, StoreError, Wakeup,
};
use tokio::sync::Mutex;
use tokio::sync::broadcast;

use crate::lock::DataDirLock;

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "steward.db";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a connection waits for a lock held by another connection before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Read-only connections; SQLite in WAL mode lets them run beside the writer.
const READERS: u32 = 4;

/// The SQLite store.
pub struct SqliteStore {
    writer: SqlitePool,
    key_writes: Batcher<(NewKey, Actor), Result<ApiKey, StoreError>>,
    /// Posted alerts, group-committed: concurrent posts share a transaction (and its fsync).
    alert_writes: Batcher<(Vec<AlertReceipt>, Actor), Vec<AlertChange>>,
    reader: SqlitePool,
    lock: Mutex<Option<DataDirLock>>,
    path: PathBuf,
    /// In-process wake-ups: only this process writes the file, so no other source exists.
    wakeups: broadcast::Sender<Wakeup>,
    /// Appends to the event log or the audit trail (only this process writes the file).
    appended: broadcast::Sender<()>,
    /// What committed transactions changed in pipeline runs.
    pipeline_changes: broadcast::Sender<steward_store::RunChanges>,
    /// Never sent on (kept so that receivers wait instead of seeing it closed).
    remote_alerts: broadcast::Sender<steward_store::RemoteAlerts>,
    /// Whether the last integrity check found the file damaged.
    damaged: AtomicBool,
}

/// Whether the database has a table called `name` (one not migrated yet has none).
pub(crate) async fn table_exists(pool: &SqlitePool, name: &str) -> Result<bool, StoreError> {
    let found: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind(name)
            .fetch_one(pool)
            .await
            .map_err(db_err)?;
    Ok(found > 0)
}

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    if integrity::is_damage(&e) {
        return StoreError::Damaged {
            source: Box::new(e),
            recovery: integrity::RECOVERY,
        };
    }
    StoreError::Database(Box::new(e))
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir`, after taking the directory's
    /// lock. Does not migrate.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let lock = DataDirLock::acquire(data_dir)?;
        let path = data_dir.join(DATABASE_FILE);
        // Statement journals and sorts in memory rather than temporary files: a large
        // multi-row upsert otherwise writes its journal to disk first.
        let base = SqliteConnectOptions::new()
            .filename(&path)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .pragma("temp_store", "memory");
        // FULL, not NORMAL: a commit must survive a power loss, not only a process crash.
        let writer_options = base
            .clone()
            .create_if_missing(true)
            .auto_vacuum(SqliteAutoVacuum::Incremental)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            // Checkpoints every 16 MiB of WAL instead of 4: fewer commits pay for one.
            .pragma("wal_autocheckpoint", "4000")
            .optimize_on_close(true, None);
        let appended = broadcast::channel(steward_store::events::EVENT_LOG_WAKEUP_BUFFER).0;
        let writer = announce_appends(
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1),
            &appended,
        )
        .connect_with(writer_options)
        .await
        .map_err(|e| StoreError::Connect(Box::new(e)))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(base.read_only(true))
            .await
            .map_err(|e| StoreError::Connect(Box::new(e)))?;
        schedules::end_earlier_leases(&writer).await?;
        let pool = writer.clone();
        let key_writes =
            Batcher::spawn(move |requests| Box::pin(keys::create_keys(pool.clone(), requests)));
        let pool = writer.clone();
        let alert_writes = Batcher::spawn(move |requests| {
            Box::pin(alerts::receive_alerts(pool.clone(), requests))
        });
        Ok(Self {
            writer,
            key_writes,
            alert_writes,
            reader,
            lock: Mutex::new(Some(lock)),
            path,
            wakeups: broadcast::channel(steward_store::tasks::WAKEUP_BUFFER).0,
            pipeline_changes: broadcast::channel(steward_store::pipelines::CHANGES_BUFFER).0,
            appended,
            remote_alerts: broadcast::channel(1).0,
            damaged: AtomicBool::new(false),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tells workers that `queues` may have tasks ready (no one listening is fine).
    fn wake<'q>(&self, queues: impl IntoIterator<Item = &'q str>) {
        for queue in steward_store::tasks::distinct_queues(queues) {
            let _ = self.wakeups.send(Wakeup::from(queue));
        }
    }
}

/// The tables whose appends wake event-log readers: the log, and the audit trail the stream
/// also carries.
const ANNOUNCED_TABLES: [&str; 2] = ["event_log", "audit_events"];

/// Makes the writer announce appends to [`ANNOUNCED_TABLES`] on `appended` once they are
/// committed: audit appends happen inside many transactions (each in the change it records),
/// so the writer connection itself notices them. An insert marks the connection; its release
/// to the pool, which comes after the commit (or the rollback, which only wakes readers for
/// nothing), announces.
fn announce_appends(
    options: SqlitePoolOptions,
    appended: &broadcast::Sender<()>,
) -> SqlitePoolOptions {
    let marked = Arc::new(AtomicBool::new(false));
    let mark = Arc::clone(&marked);
    let appended = appended.clone();
    options
        .after_connect(move |conn, _| {
            let mark = Arc::clone(&mark);
            Box::pin(async move {
                conn.lock_handle().await?.set_update_hook(move |change| {
                    if ANNOUNCED_TABLES.contains(&change.table) {
                        mark.store(true, Ordering::Release);
                    }
                });
                Ok(())
            })
        })
        .after_release(move |_, _| {
            if marked.swap(false, Ordering::AcqRel) {
                let _ = appended.send(());
            }
            Box::pin(async { Ok(true) })
        })
}

async fn applied_versions(conn: &mut SqliteConnection) -> Result<Vec<i64>, StoreError> {
    let exists: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(steward_store::sql::APPLIED_MIGRATIONS)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)
}

#[async_trait]
impl Database for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn exclusive(&self) -> bool {
        true
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let before = {
            let mut conn = self.writer.acquire().await.map_err(db_err)?;
            applied_versions(&mut conn).await?
        };
        MIGRATOR
            .run(&self.writer)
            .await
            .map_err(|e| StoreError::Migrate(Box::new(e)))?;
        Ok(report(&before))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.reader.acquire().await.map_err(db_err)?;
        conn.ping().await.map_err(db_err)
    }

    async fn check_integrity(&self, budget: Duration) -> Result<Integrity, StoreError> {
        let integrity = integrity::quick_check(&self.path, budget).await?;
        self.damaged.store(
            matches!(integrity, Integrity::Damaged { .. }),
            Ordering::Relaxed,
        );
        let data_dir = self.path.parent().unwrap_or(&self.path);
        integrity::log(data_dir, &integrity);
        Ok(integrity)
    }

    fn damaged(&self) -> bool {
        self.damaged.load(Ordering::Relaxed)
    }

    fn task_wakeups(&self) -> broadcast::Receiver<Wakeup> {
        self.wakeups.subscribe()
    }

    fn pipeline_changes(&self) -> broadcast::Receiver<steward_store::RunChanges> {
        self.pipeline_changes.subscribe()
    }

    fn event_log_wakeups(&self) -> broadcast::Receiver<()> {
        self.appended.subscribe()
    }

    fn remote_alerts(&self) -> broadcast::Receiver<steward_store::RemoteAlerts> {
        // One instance writes a data directory: there is never anything to announce.
        self.remote_alerts.subscribe()
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
        self.lock.lock().await.take();
    }
}

fn report(before: &[i64]) -> MigrationReport {
    let applied = MIGRATOR
        .iter()
        .filter(|m| !before.contains(&m.version))
        .map(|m| AppliedMigration {
            version: m.version,
            description: m.description.to_string(),
        })
        .collect();
    MigrationReport {
        applied,
        version: MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0),
    }
}
