//! The embedded SQLite backend: one file in the data directory, WAL, one writer connection and a
//! pool of read-only ones, foreign keys on, and an exclusive lock on the data directory so that
//! two daemons never share it.

mod lock;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Row};
use steward_core::{Dependency, Registry, RegistryDiff, Service, Step, Workspace, WorkspaceStatus};
use steward_store::codec::{decode_labels, decode_repo, encode_labels, encode_repo};
use steward_store::{AppliedMigration, MigrationReport, Store, StoreError};
use tokio::sync::Mutex;

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
    reader: SqlitePool,
    lock: Mutex<Option<DataDirLock>>,
    path: PathBuf,
}

fn db_err(e: sqlx::Error) -> StoreError {
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
        let base = SqliteConnectOptions::new()
            .filename(&path)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // FULL, not NORMAL: a commit must survive a power loss, not only a process crash.
        let writer_options = base
            .clone()
            .create_if_missing(true)
            .auto_vacuum(SqliteAutoVacuum::Incremental)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .optimize_on_close(true, None);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(writer_options)
            .await
            .map_err(|e| StoreError::Connect(Box::new(e)))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(base.read_only(true))
            .await
            .map_err(|e| StoreError::Connect(Box::new(e)))?;
        Ok(Self {
            writer,
            reader,
            lock: Mutex::new(Some(lock)),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
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
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
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

    async fn registry(&self) -> Result<Registry, StoreError> {
        // One read transaction: a consistent snapshot even while a sync commits.
        let mut tx = self.reader.begin().await.map_err(db_err)?;
        let registry = load_registry(&mut tx).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(registry)
    }

    async fn sync_registry(&self, desired: &Registry) -> Result<RegistryDiff, StoreError> {
        // The single writer connection serialises syncs; reading inside the write transaction
        // makes the diff exact.
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let current = load_registry(&mut tx).await?;
        let diff = current.diff(desired);
        for step in diff.steps() {
            apply(&mut tx, step).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(diff)
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

async fn load_registry(conn: &mut SqliteConnection) -> Result<Registry, StoreError> {
    let mut workspaces = Vec::new();
    let rows = sqlx::query("SELECT key, description, owner, status, labels, repo FROM workspaces")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    for row in rows {
        let status: String = row.try_get("status").map_err(db_err)?;
        workspaces.push(Workspace {
            key: row.try_get("key").map_err(db_err)?,
            description: row.try_get("description").map_err(db_err)?,
            owner: row.try_get("owner").map_err(db_err)?,
            status: WorkspaceStatus::from_str(&status)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            labels: decode_labels(row.try_get("labels").map_err(db_err)?)?,
            repo: decode_repo(row.try_get("repo").map_err(db_err)?)?,
        });
    }
    let mut dependencies = Vec::new();
    let rows = sqlx::query("SELECT from_workspace, to_workspace, type, note FROM dependencies")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    for row in rows {
        dependencies.push(Dependency {
            from: row.try_get("from_workspace").map_err(db_err)?,
            to: row.try_get("to_workspace").map_err(db_err)?,
            kind: row.try_get("type").map_err(db_err)?,
            note: row.try_get("note").map_err(db_err)?,
        });
    }
    let mut services = Vec::new();
    let rows = sqlx::query("SELECT name, workspace, url, node, labels FROM services")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    for row in rows {
        services.push(Service {
            name: row.try_get("name").map_err(db_err)?,
            workspace: row.try_get("workspace").map_err(db_err)?,
            url: row.try_get("url").map_err(db_err)?,
            node: row.try_get("node").map_err(db_err)?,
            labels: decode_labels(row.try_get("labels").map_err(db_err)?)?,
        });
    }
    Ok(Registry::new(workspaces, dependencies, services))
}

/// The timestamp expression for `updated_at`, as a macro so it can be spliced into `concat!`.
macro_rules! now {
    () => {
        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    };
}

async fn apply(conn: &mut SqliteConnection, step: Step<'_>) -> Result<(), StoreError> {
    let query = match step {
        Step::UpsertWorkspace(w) => sqlx::query(concat!(
            "INSERT INTO workspaces (key, description, owner, status, labels, repo) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (key) DO UPDATE SET description = excluded.description, \
             owner = excluded.owner, status = excluded.status, labels = excluded.labels, \
             repo = excluded.repo, updated_at = ",
            now!()
        ))
        .bind(&w.key)
        .bind(&w.description)
        .bind(&w.owner)
        .bind(w.status.as_str())
        .bind(encode_labels(&w.labels))
        .bind(encode_repo(w.repo.as_ref())),
        Step::UpsertService(s) => sqlx::query(concat!(
            "INSERT INTO services (name, workspace, url, node, labels) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET workspace = excluded.workspace, \
             url = excluded.url, node = excluded.node, labels = excluded.labels, \
             updated_at = ",
            now!()
        ))
        .bind(&s.name)
        .bind(&s.workspace)
        .bind(&s.url)
        .bind(&s.node)
        .bind(encode_labels(&s.labels)),
        Step::UpsertDependency(d) => sqlx::query(concat!(
            "INSERT INTO dependencies (from_workspace, to_workspace, type, note) \
             VALUES (?, ?, ?, ?) \
             ON CONFLICT (from_workspace, to_workspace, type) DO UPDATE SET \
             note = excluded.note, updated_at = ",
            now!()
        ))
        .bind(&d.from)
        .bind(&d.to)
        .bind(&d.kind)
        .bind(&d.note),
        Step::DeleteDependency(d) => sqlx::query(
            "DELETE FROM dependencies WHERE from_workspace = ? AND to_workspace = ? AND type = ?",
        )
        .bind(&d.from)
        .bind(&d.to)
        .bind(&d.kind),
        Step::DeleteService(s) => sqlx::query("DELETE FROM services WHERE name = ?").bind(&s.name),
        Step::DeleteWorkspace(w) => {
            sqlx::query("DELETE FROM workspaces WHERE key = ?").bind(&w.key)
        }
    };
    query.execute(&mut *conn).await.map_err(db_err)?;
    Ok(())
}
