//! The PostgreSQL backend: a shared database that several Steward instances use at once.
//! Cross-instance coordination uses PostgreSQL itself (transaction-scoped advisory locks), never
//! anything home-made.

mod alerts;
mod audit;
mod events;
mod health;
mod keys;
mod leases;
mod listen;
mod nodes;
mod notifications;
mod pipelines;
mod registry;
mod schedules;
mod sessions;
mod tasks;
#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use steward_core::Secret;
use steward_core::audit::Actor;
use steward_store::batch::Batcher;
use steward_store::{
    ApiKey, AppliedMigration, Database, MigrationReport, NewKey, RemoteAlerts, StoreError, Wakeup,
};
use tokio::sync::broadcast;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The versions of the migrations this binary embeds.
pub fn migration_versions() -> Vec<i64> {
    MIGRATOR.iter().map(|m| m.version).collect()
}

/// The advisory lock key held while migrating ("stewmig" in ASCII).
const MIGRATE_LOCK: i64 = 0x0073_7465_776d_6967;
/// How long a request waits for a pooled connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: PgPool,
    key_writes: Batcher<(NewKey, Actor), Result<ApiKey, StoreError>>,
    /// Where announcements from every instance go, and this store's name in its own.
    heard: listen::Listeners,
    /// The `LISTEN` task, started by the first subscriber, stopped by `close`.
    listener: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// What this instance's committed transactions changed in pipeline runs.
    pipeline_changes: broadcast::Sender<steward_store::RunChanges>,
}

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    if refuses_a_character(&e) {
        return StoreError::Unstorable(
            "a value holds a character PostgreSQL cannot store (such as NUL)".into(),
        );
    }
    StoreError::Database(Box::new(e))
}

/// Whether PostgreSQL refused a value for a character it cannot hold: a NUL in `text`
/// (`character_not_in_repertoire`) or `\u0000` in `jsonb` (`untranslatable_character`). The
/// value is at fault, not the database, so trying again cannot help.
fn refuses_a_character(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "22021" || code == "22P05")
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
        let writer = pool.clone();
        let key_writes =
            Batcher::spawn(move |requests| Box::pin(keys::create_keys(writer.clone(), requests)));
        Ok(Self {
            pool,
            key_writes,
            heard: listen::Listeners {
                wakeups: broadcast::channel(steward_store::tasks::WAKEUP_BUFFER).0,
                alerts: broadcast::channel(steward_store::alerts::REMOTE_ALERTS_BUFFER).0,
                appended: broadcast::channel(steward_store::events::EVENT_LOG_WAKEUP_BUFFER).0,
                origin: listen::new_origin(),
            },
            listener: std::sync::Mutex::new(None),
            pipeline_changes: broadcast::channel(steward_store::pipelines::CHANGES_BUFFER).0,
        })
    }

    /// Starts the `LISTEN` task unless it runs.
    fn start_listening(&self) {
        if let Ok(mut listener) = self.listener.lock()
            && listener.is_none()
        {
            *listener = Some(tokio::spawn(listen::listen(
                self.pool.clone(),
                self.heard.clone(),
            )));
        }
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
    sqlx::query_scalar(steward_store::sql::APPLIED_MIGRATIONS)
        .fetch_all(pool)
        .await
        .map_err(db_err)
}

#[async_trait]
impl Database for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn exclusive(&self) -> bool {
        false
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

    fn task_wakeups(&self) -> broadcast::Receiver<Wakeup> {
        let receiver = self.heard.wakeups.subscribe();
        self.start_listening();
        receiver
    }

    fn pipeline_changes(&self) -> broadcast::Receiver<steward_store::RunChanges> {
        self.pipeline_changes.subscribe()
    }

    fn event_log_wakeups(&self) -> broadcast::Receiver<()> {
        let receiver = self.heard.appended.subscribe();
        self.start_listening();
        receiver
    }

    fn remote_alerts(&self) -> broadcast::Receiver<RemoteAlerts> {
        let receiver = self.heard.alerts.subscribe();
        self.start_listening();
        receiver
    }

    async fn close(&self) {
        if let Some(listener) = self.listener.lock().ok().and_then(|mut l| l.take()) {
            listener.abort();
        }
        self.pool.close().await;
    }
}

/// Commits on success; on failure rolls back now rather than when the dropped transaction's
/// connection is next used, so that its row locks do not outlive the call (claims would skip
/// the locked rows meanwhile).
pub(crate) async fn settle<T>(
    result: Result<T, StoreError>,
    tx: sqlx::Transaction<'_, sqlx::Postgres>,
) -> Result<T, StoreError> {
    match result {
        Ok(value) => {
            tx.commit().await.map_err(db_err)?;
            Ok(value)
        }
        Err(e) => {
            if let Err(error) = tx.rollback().await {
                tracing::warn!(%error, "rolling back a failed transaction failed");
            }
            Err(e)
        }
    }
}
