//! The PostgreSQL backend: a shared database that several Steward instances use at once.
//! Cross-instance coordination uses PostgreSQL itself (transaction-scoped advisory locks), never
//! anything home-made.

#[cfg(feature = "testing")]
pub mod testing;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Row};
use steward_core::{
    Dependency, Registry, RegistryDiff, Secret, Service, Step, Workspace, WorkspaceStatus,
};
use steward_store::codec::{decode_labels, decode_repo, encode_labels, encode_repo};
use steward_store::{AppliedMigration, MigrationReport, Store, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The advisory lock key that serialises registry syncs across instances ("stewreg" in ASCII).
const REGISTRY_SYNC_LOCK: i64 = 0x0073_7465_7772_6567;
/// The advisory lock key held while migrating ("stewmig" in ASCII).
const MIGRATE_LOCK: i64 = 0x0073_7465_776d_6967;
/// How long a request waits for a pooled connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: PgPool,
}

fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::Database(Box::new(e))
}

impl PostgresStore {
    /// Connects to `url` with a pool of at most `max_connections` (at least 2: migrating holds
    /// one connection for its lock while using another). Does not migrate.
    pub async fn connect(url: &Secret, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url.expose())
            .map_err(|e| StoreError::Connect(Box::new(e)))?
            .application_name("steward");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Connect(Box::new(e)))?;
        Ok(Self { pool })
    }

    async fn migrate_locked(&self) -> Result<MigrationReport, StoreError> {
        let before = applied_versions(&self.pool).await?;
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migrate(Box::new(e)))?;
        let after = applied_versions(&self.pool).await?;
        Ok(MigrationReport {
            applied: MIGRATOR
                .iter()
                .filter(|m| !before.contains(&m.version) && after.contains(&m.version))
                .map(|m| AppliedMigration {
                    version: m.version,
                    description: m.description.to_string(),
                })
                .collect(),
            version: after.iter().copied().max().unwrap_or(0),
        })
    }
}

async fn applied_versions(pool: &PgPool) -> Result<Vec<i64>, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(db_err)?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(pool)
        .await
        .map_err(db_err)
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        // Instances starting together queue on this session lock, so each migration is
        // applied, and reported, by exactly one of them.
        let mut guard = self.pool.acquire().await.map_err(db_err)?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATE_LOCK)
            .execute(&mut *guard)
            .await
            .map_err(db_err)?;
        let result = self.migrate_locked().await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATE_LOCK)
            .execute(&mut *guard)
            .await;
        if unlocked.is_err() {
            // Never hand a connection that may still hold the lock back to the pool.
            guard.detach();
        }
        result
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        conn.ping().await.map_err(db_err)
    }

    async fn registry(&self) -> Result<Registry, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let registry = load_registry(&mut tx).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(registry)
    }

    async fn sync_registry(&self, desired: &Registry) -> Result<RegistryDiff, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(REGISTRY_SYNC_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let current = load_registry(&mut tx).await?;
        let diff = current.diff(desired);
        for step in diff.steps() {
            apply(&mut tx, step).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(diff)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

async fn load_registry(conn: &mut PgConnection) -> Result<Registry, StoreError> {
    let mut workspaces = Vec::new();
    let rows = sqlx::query(
        "SELECT key, description, owner, status, labels::text AS labels, repo::text AS repo \
         FROM workspaces",
    )
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
    let rows =
        sqlx::query("SELECT name, workspace, url, node, labels::text AS labels FROM services")
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

async fn apply(conn: &mut PgConnection, step: Step<'_>) -> Result<(), StoreError> {
    let query = match step {
        Step::UpsertWorkspace(w) => sqlx::query(
            "INSERT INTO workspaces (key, description, owner, status, labels, repo) \
             VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb) \
             ON CONFLICT (key) DO UPDATE SET description = excluded.description, \
             owner = excluded.owner, status = excluded.status, labels = excluded.labels, \
             repo = excluded.repo, updated_at = now()",
        )
        .bind(&w.key)
        .bind(&w.description)
        .bind(&w.owner)
        .bind(w.status.as_str())
        .bind(encode_labels(&w.labels))
        .bind(encode_repo(w.repo.as_ref())),
        Step::UpsertService(s) => sqlx::query(
            "INSERT INTO services (name, workspace, url, node, labels) \
             VALUES ($1, $2, $3, $4, $5::jsonb) \
             ON CONFLICT (name) DO UPDATE SET workspace = excluded.workspace, \
             url = excluded.url, node = excluded.node, labels = excluded.labels, \
             updated_at = now()",
        )
        .bind(&s.name)
        .bind(&s.workspace)
        .bind(&s.url)
        .bind(&s.node)
        .bind(encode_labels(&s.labels)),
        Step::UpsertDependency(d) => sqlx::query(
            "INSERT INTO dependencies (from_workspace, to_workspace, type, note) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (from_workspace, to_workspace, type) DO UPDATE SET \
             note = excluded.note, updated_at = now()",
        )
        .bind(&d.from)
        .bind(&d.to)
        .bind(&d.kind)
        .bind(&d.note),
        Step::DeleteDependency(d) => sqlx::query(
            "DELETE FROM dependencies \
             WHERE from_workspace = $1 AND to_workspace = $2 AND type = $3",
        )
        .bind(&d.from)
        .bind(&d.to)
        .bind(&d.kind),
        Step::DeleteService(s) => sqlx::query("DELETE FROM services WHERE name = $1").bind(&s.name),
        Step::DeleteWorkspace(w) => {
            sqlx::query("DELETE FROM workspaces WHERE key = $1").bind(&w.key)
        }
    };
    query.execute(&mut *conn).await.map_err(db_err)?;
    Ok(())
}
