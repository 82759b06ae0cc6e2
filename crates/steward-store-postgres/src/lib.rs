//! The PostgreSQL backend: a shared database that several Steward instances use at once.
//! Cross-instance coordination uses PostgreSQL itself (transaction-scoped advisory locks), never
//! anything home-made.

mod alerts;
mod events;
mod health;
mod listen;
mod notifications;
mod schedules;
mod sessions;
mod tasks;
#[cfg(feature = "testing")]
pub mod testing;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Row};
use steward_core::alert::Fingerprint;
use steward_core::alert::mute::Silence;
use steward_core::audit::{Actor, ActorKind, AuditEntry, AuditEvent};
use steward_core::health::rollup::Rollup;
use steward_core::schedule::PingStatus;
use steward_core::task::{Completion, NewTask, Task, TaskRun};
use steward_core::{
    Dependency, Registry, RegistryDiff, Role, Secret, Service, Step, Workspace, WorkspaceStatus,
};
use steward_store::batch::Batcher;
use steward_store::codec::{
    decode_audit_details, decode_labels, decode_repo, encode_labels, encode_repo,
};
use steward_store::health::{
    CheckRecord, CheckTransition, HealthPruned, ProbeBatch, ProbeRecord, TransitionQuery,
};
use steward_store::notifications::{
    Attempt, AttemptOutcome, DispatchWrite, GroupRecord, NotificationCount, NotificationQuery,
    Queued, StoredNotification,
};
use steward_store::{
    Ack, AlertChange, AlertQuery, AlertReceipt, RemoteAlerts, StoredAlert, StoredSilence,
};
use steward_store::{
    ApiKey, AppliedMigration, AuditQuery, Claim, Enqueued, HeartbeatRecord, HeartbeatTransition,
    Lease, LeaseState, MAX_AUDIT_PAGE, MigrationReport, NewKey, Reaped, RunQuery, ScheduleRun,
    ScheduleState, ScheduleTick, Store, StoreError, TaskCount, TaskQuery, TickResult, Wakeup,
    now_ms,
};
use tokio::sync::broadcast;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The versions of the migrations this binary embeds.
pub fn migration_versions() -> Vec<i64> {
    MIGRATOR.iter().map(|m| m.version).collect()
}

/// The columns of a key, in the order `key_from_row` reads them.
macro_rules! key_select {
    () => {
        "SELECT name, role, workspace, digest, hint, created_at_ms, expires_at_ms, \
         last_used_at_ms, revoked_at_ms FROM api_keys"
    };
}

/// The advisory lock key that serialises registry syncs across instances ("stewreg" in ASCII).
const REGISTRY_SYNC_LOCK: i64 = 0x0073_7465_7772_6567;
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
            Batcher::spawn(move |requests| Box::pin(create_keys(writer.clone(), requests)));
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

    async fn sync_registry(
        &self,
        desired: &Registry,
        actor: &Actor,
    ) -> Result<RegistryDiff, StoreError> {
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
        if !diff.is_empty() {
            append_audit(&mut tx, steward_store::audit::registry_sync(actor, &diff)).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(diff)
    }

    async fn create_key(&self, key: &NewKey, actor: &Actor) -> Result<ApiKey, StoreError> {
        self.key_writes.submit((key.clone(), actor.clone())).await?
    }

    async fn create_first_key(
        &self,
        key: &NewKey,
        actor: &Actor,
    ) -> Result<Option<ApiKey>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // The audit head's row lock serialises instances starting together, so that the count
        // below sees any key another one created.
        lock_audit_head(&mut tx).await?;
        let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if existing > 0 {
            return Ok(None);
        }
        let now = now_ms();
        if !insert_keys(&mut tx, &[key], now).await?.contains(&key.name) {
            return Err(StoreError::Conflict(format!("key `{}`", key.name)));
        }
        let stored = ApiKey::created(key, now);
        append_audit(
            &mut tx,
            steward_store::audit::key_created("key.bootstrap", actor, &stored),
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(stored))
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query(concat!(key_select!(), " ORDER BY name"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn key_by_digest(&self, digest: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query(concat!(key_select!(), " WHERE digest = $1"))
            .bind(digest)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn revoke_key(&self, name: &str, actor: &Actor) -> Result<ApiKey, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let row = sqlx::query(concat!(
            "UPDATE api_keys SET revoked_at_ms = $1 WHERE name = $2 AND revoked_at_ms IS NULL ",
            "RETURNING name, role, workspace, digest, hint, created_at_ms, expires_at_ms, ",
            "last_used_at_ms, revoked_at_ms"
        ))
        .bind(now_ms())
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let revoked = match row {
            Some(row) => key_from_row(&row)?,
            None => return Err(StoreError::NotFound(format!("active key `{name}`"))),
        };
        append_audit(&mut tx, steward_store::audit::key_revoked(actor, &revoked)).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(revoked)
    }

    async fn touch_key(&self, name: &str, at_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at_ms = $1 WHERE name = $2")
            .bind(at_ms)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, actor_kind, actor, source_ip, action, target, workspace, details, \
             prev_hash, hash, origin_node, origin_seq, origin_hash FROM audit_events \
             WHERE seq > $1 AND ($2::text IS NULL OR actor = $2) AND ($3::text IS NULL OR action = $3) \
             AND ($4::text IS NULL OR workspace = $4) AND ($5::text IS NULL OR actor_kind = $5) \
             ORDER BY seq LIMIT $6",
        )
        .bind(query.after_seq)
        .bind(&query.actor)
        .bind(&query.action)
        .bind(&query.workspace)
        .bind(query.actor_kind.map(ActorKind::as_str))
        .bind(i64::from(query.limit.min(MAX_AUDIT_PAGE)))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn merge_remote_audit(
        &self,
        node: &str,
        events: &[AuditEvent],
    ) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let head = lock_audit_head(&mut tx).await?;
        let added = merge_remote(&mut tx, node, events, head).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(added)
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        let (seq, hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
        Ok((seq > 0).then_some((seq, hash)))
    }

    async fn enqueue_tasks(
        &self,
        new: &[NewTask],
        actor: &Actor,
    ) -> Result<Vec<Enqueued>, StoreError> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        settle(tasks::enqueue(&mut tx, new, actor).await, tx).await
    }

    async fn claim_tasks(&self, claim: &Claim) -> Result<Vec<Task>, StoreError> {
        tasks::claim(&self.pool, claim).await
    }

    async fn next_due_ms(&self, queue: &str) -> Result<Option<i64>, StoreError> {
        tasks::next_due(&self.pool, queue).await
    }

    async fn extend_leases(
        &self,
        worker: &str,
        leases: &[(i64, i64)],
        lease_ms: u64,
    ) -> Result<Vec<LeaseState>, StoreError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        tasks::extend(&self.pool, worker, leases, lease_ms).await
    }

    async fn complete_tasks(&self, completions: &[Completion]) -> Result<Vec<bool>, StoreError> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        tasks::complete(&self.pool, completions).await
    }

    async fn reap_expired_leases(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<Reaped>, StoreError> {
        tasks::reap(&self.pool, now_ms, limit).await
    }

    async fn task(&self, id: i64) -> Result<Option<Task>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        tasks::get(&mut conn, id, false).await
    }

    async fn task_runs(&self, id: i64) -> Result<Vec<TaskRun>, StoreError> {
        tasks::runs(&self.pool, id).await
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
        tasks::list(&self.pool, query).await
    }

    async fn cancel_task(&self, id: i64, actor: &Actor) -> Result<Task, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        settle(tasks::cancel(&mut tx, id, actor).await, tx).await
    }

    async fn retry_task(&self, id: i64, actor: &Actor) -> Result<Task, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        settle(tasks::retry(&mut tx, id, actor).await, tx).await
    }

    async fn task_counts(&self) -> Result<Vec<TaskCount>, StoreError> {
        tasks::counts(&self.pool).await
    }

    async fn tasks_finished_since(
        &self,
        queues: &[String],
        since_ms: i64,
    ) -> Result<Vec<TaskCount>, StoreError> {
        tasks::finished_since(&self.pool, queues, since_ms).await
    }

    async fn purge_tasks(
        &self,
        queue: &str,
        finished_before_ms: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        tasks::purge(&self.pool, queue, finished_before_ms, limit).await
    }

    async fn acquire_lease(
        &self,
        role: &str,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<Option<Lease>, StoreError> {
        schedules::acquire_lease(&self.pool, role, holder, ttl_ms).await
    }

    async fn release_lease(&self, role: &str, holder: &str) -> Result<(), StoreError> {
        schedules::release_lease(&self.pool, role, holder).await
    }

    async fn current_lease(&self, role: &str) -> Result<Option<Lease>, StoreError> {
        schedules::current_lease(&self.pool, role).await
    }

    async fn register_schedules(
        &self,
        names: &[String],
        now_ms: i64,
    ) -> Result<Vec<ScheduleState>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = schedules::register_schedules(&mut tx, names, now_ms).await;
        settle(result, tx).await
    }

    async fn schedule_states(&self) -> Result<Vec<ScheduleState>, StoreError> {
        schedules::schedule_states(&self.pool).await
    }

    async fn fire_schedules(
        &self,
        lease: Option<&Lease>,
        ticks: &[ScheduleTick],
        actor: &Actor,
    ) -> Result<Vec<TickResult>, StoreError> {
        if ticks.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = schedules::fire(&mut tx, lease, ticks, actor).await;
        settle(result, tx).await.map(|(results, _)| results)
    }

    async fn set_schedule_paused(
        &self,
        name: &str,
        workspace: Option<&str>,
        paused: bool,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<ScheduleState, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = schedules::set_paused(&mut tx, name, workspace, paused, now_ms, actor).await;
        settle(result, tx).await
    }

    async fn purge_schedule_runs(
        &self,
        taskless_before_ms: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        schedules::purge_runs(&self.pool, taskless_before_ms, limit).await
    }

    async fn schedule_runs(&self, query: &RunQuery) -> Result<Vec<ScheduleRun>, StoreError> {
        schedules::runs(&self.pool, query).await
    }

    async fn last_schedule_runs(&self) -> Result<Vec<ScheduleRun>, StoreError> {
        schedules::last_runs(&self.pool).await
    }

    async fn flag_overdue_runs(
        &self,
        schedule: &str,
        within_ms: u64,
        now_ms: i64,
    ) -> Result<Vec<ScheduleRun>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = schedules::flag_overdue(&mut tx, schedule, within_ms, now_ms).await;
        settle(result, tx).await
    }

    async fn register_heartbeats(
        &self,
        names: &[String],
        now_ms: i64,
    ) -> Result<Vec<HeartbeatRecord>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = schedules::register_heartbeats(&mut tx, names, now_ms).await;
        settle(result, tx).await
    }

    async fn record_ping(
        &self,
        name: &str,
        status: PingStatus,
        at_ms: i64,
    ) -> Result<HeartbeatRecord, StoreError> {
        schedules::record_ping(&self.pool, name, status, at_ms).await
    }

    async fn heartbeat_records(&self) -> Result<Vec<HeartbeatRecord>, StoreError> {
        schedules::heartbeat_records(&self.pool).await
    }

    async fn set_heartbeat_state(
        &self,
        change: &HeartbeatTransition,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = schedules::set_heartbeat_state(&mut tx, change, actor).await;
        settle(result, tx).await
    }

    async fn record_probes(&self, batch: &ProbeBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = health::record(&mut tx, batch).await;
        settle(result, tx).await
    }

    async fn check_records(&self) -> Result<Vec<CheckRecord>, StoreError> {
        health::records(&self.pool).await
    }

    async fn probe_results(
        &self,
        check: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<ProbeRecord>, StoreError> {
        health::results(&self.pool, check, since_ms, limit).await
    }

    async fn check_rollups(
        &self,
        check: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Rollup>, StoreError> {
        health::rollups(&self.pool, check, from_ms, to_ms).await
    }

    async fn check_transitions(
        &self,
        query: &TransitionQuery,
    ) -> Result<Vec<CheckTransition>, StoreError> {
        health::transitions(&self.pool, query).await
    }

    async fn prune_health(
        &self,
        results_before_ms: i64,
        rollups_before_ms: i64,
    ) -> Result<HealthPruned, StoreError> {
        health::prune(&self.pool, results_before_ms, rollups_before_ms).await
    }

    async fn receive_alerts(
        &self,
        receipts: &[AlertReceipt],
        actor: &Actor,
    ) -> Result<Vec<AlertChange>, StoreError> {
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = async {
            let changes = alerts::receive(&mut tx, receipts, actor).await?;
            let changed = steward_store::alerts::changed_fingerprints(receipts, &changes);
            listen::announce_alerts(&mut tx, &self.heard.origin, &changed).await?;
            Ok(changes)
        }
        .await;
        settle(result, tx).await
    }

    async fn resolve_stale_alerts(
        &self,
        source: &str,
        received_before_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Fingerprint>, StoreError> {
        alerts::resolve_stale(&self.pool, source, received_before_ms, now_ms).await
    }

    async fn alerts(&self, query: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError> {
        alerts::list(&self.pool, query).await
    }

    async fn alert(&self, fingerprint: Fingerprint) -> Result<Option<StoredAlert>, StoreError> {
        alerts::get(&self.pool, fingerprint).await
    }

    async fn alerts_by_fingerprint(
        &self,
        fingerprints: &[Fingerprint],
    ) -> Result<Vec<StoredAlert>, StoreError> {
        alerts::by_fingerprint(&self.pool, fingerprints).await
    }

    async fn alerts_received_after(
        &self,
        since_ms: i64,
        after: Option<(i64, Fingerprint)>,
        limit: u32,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        alerts::received_after(&self.pool, since_ms, after, limit).await
    }

    async fn firing_alerts_after(
        &self,
        after: Option<Fingerprint>,
        limit: u32,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        alerts::firing_after(&self.pool, after, limit).await
    }

    async fn ack_alert(
        &self,
        fingerprint: Fingerprint,
        ack: &Ack,
        actor: &Actor,
    ) -> Result<StoredAlert, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = async {
            let alert = alerts::ack(&mut tx, fingerprint, ack, actor).await?;
            listen::announce_alerts(&mut tx, &self.heard.origin, &[fingerprint]).await?;
            Ok(alert)
        }
        .await;
        settle(result, tx).await
    }

    async fn create_silence(
        &self,
        silence: &Silence,
        created_at_ms: i64,
        actor: &Actor,
    ) -> Result<StoredSilence, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = async {
            let created = alerts::create_silence(&mut tx, silence, created_at_ms, actor).await?;
            listen::announce_silences(&mut tx, &self.heard.origin).await?;
            Ok(created)
        }
        .await;
        settle(result, tx).await
    }

    async fn expire_silence(
        &self,
        id: i64,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<StoredSilence, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = async {
            let expired = alerts::expire_silence(&mut tx, id, now_ms, actor).await?;
            listen::announce_silences(&mut tx, &self.heard.origin).await?;
            Ok(expired)
        }
        .await;
        settle(result, tx).await
    }

    async fn silences(&self, now_ms: i64) -> Result<Vec<StoredSilence>, StoreError> {
        alerts::silences(&self.pool, now_ms).await
    }

    async fn prune_alerts(&self, before_ms: i64) -> Result<(u64, u64), StoreError> {
        alerts::prune(&self.pool, before_ms).await
    }

    async fn alert_groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        notifications::groups(&self.pool).await
    }

    async fn write_dispatch(&self, write: &DispatchWrite) -> Result<Vec<Queued>, StoreError> {
        if write.groups.is_empty() && write.finished.is_empty() && write.notifications.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = notifications::write(&mut tx, write, now_ms()).await;
        settle(result, tx).await
    }

    async fn due_notifications(
        &self,
        now_ms: i64,
        excluding: &[i64],
        limit: u32,
    ) -> Result<Vec<StoredNotification>, StoreError> {
        notifications::due(&self.pool, now_ms, excluding, limit).await
    }

    async fn next_notification_due(&self) -> Result<Option<i64>, StoreError> {
        notifications::next_due(&self.pool).await
    }

    async fn link_notifications(&self, up_to: i64) -> Result<u64, StoreError> {
        notifications::link_alerts(&self.pool, up_to).await
    }

    async fn record_attempts(
        &self,
        attempts: &[(i64, Attempt, AttemptOutcome)],
    ) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = notifications::record_attempts(&mut tx, attempts).await;
        settle(result, tx).await
    }

    async fn notifications(
        &self,
        query: &NotificationQuery,
    ) -> Result<Vec<StoredNotification>, StoreError> {
        notifications::list(&self.pool, query).await
    }

    async fn notification_attempts(&self, id: i64) -> Result<Vec<Attempt>, StoreError> {
        notifications::attempts(&self.pool, id).await
    }

    async fn notification_counts(&self) -> Result<Vec<NotificationCount>, StoreError> {
        notifications::counts(&self.pool).await
    }

    async fn prune_notifications(&self, before_ms: i64) -> Result<u64, StoreError> {
        notifications::prune(&self.pool, before_ms).await
    }

    fn task_wakeups(&self) -> broadcast::Receiver<Wakeup> {
        let receiver = self.heard.wakeups.subscribe();
        self.start_listening();
        receiver
    }

    async fn append_events(
        &self,
        events: &[steward_store::events::NewLoggedEvent],
    ) -> Result<(), StoreError> {
        events::append(&self.pool, events).await?;
        // The announcement reaches this instance too; saying it here as well saves the trip.
        let _ = self.heard.appended.send(());
        Ok(())
    }

    async fn events_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<steward_store::events::LoggedEvent>, StoreError> {
        events::after(&self.pool, after_id, limit).await
    }

    async fn event_log_head(&self) -> Result<i64, StoreError> {
        events::head(&self.pool).await
    }

    async fn start_session(
        &self,
        session: &steward_store::NewSession,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        sessions::start(&self.pool, session, actor).await
    }

    async fn session(
        &self,
        id_digest: &str,
        now_ms: i64,
    ) -> Result<Option<steward_store::Session>, StoreError> {
        sessions::get(&self.pool, id_digest, now_ms).await
    }

    async fn touch_session(
        &self,
        id_digest: &str,
        idle_expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        sessions::touch(&self.pool, id_digest, idle_expires_at_ms).await
    }

    async fn end_session(&self, id_digest: &str, actor: &Actor) -> Result<bool, StoreError> {
        sessions::end(&self.pool, id_digest, actor).await
    }

    async fn trim_event_log(&self, keep: u32) -> Result<u64, StoreError> {
        events::trim(&self.pool, keep).await
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
async fn settle<T>(
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

/// Inserts keys with one multi-row statement; returns the names actually inserted (a taken
/// name is skipped, not an error).
async fn insert_keys(
    conn: &mut PgConnection,
    keys: &[&NewKey],
    now: i64,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut insert = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "INSERT INTO api_keys (name, role, workspace, digest, hint, created_at_ms, expires_at_ms) ",
    );
    insert.push_values(keys, |mut row, key| {
        row.push_bind(&key.name)
            .push_bind(key.role.as_str())
            .push_bind(&key.workspace)
            .push_bind(&key.digest)
            .push_bind(&key.hint)
            .push_bind(now)
            .push_bind(key.expires_at_ms);
    });
    insert.push(" ON CONFLICT DO NOTHING RETURNING name");
    let inserted: Vec<String> = insert
        .build_query_scalar()
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(inserted.into_iter().collect())
}

fn key_from_row(row: &sqlx::postgres::PgRow) -> Result<ApiKey, StoreError> {
    let role: String = row.try_get("role").map_err(db_err)?;
    Ok(ApiKey {
        name: row.try_get("name").map_err(db_err)?,
        role: Role::from_str(&role).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        workspace: row.try_get("workspace").map_err(db_err)?,
        digest: row.try_get("digest").map_err(db_err)?,
        hint: row.try_get("hint").map_err(db_err)?,
        created_at_ms: row.try_get("created_at_ms").map_err(db_err)?,
        expires_at_ms: row.try_get("expires_at_ms").map_err(db_err)?,
        last_used_at_ms: row.try_get("last_used_at_ms").map_err(db_err)?,
        revoked_at_ms: row.try_get("revoked_at_ms").map_err(db_err)?,
    })
}

/// Locks the audit head row until the transaction ends: appends from every instance queue here.
async fn lock_audit_head(conn: &mut PgConnection) -> Result<(i64, String), StoreError> {
    sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)
}

/// Inserts audit events with one multi-row statement.
async fn insert_events(conn: &mut PgConnection, events: &[AuditEvent]) -> Result<(), StoreError> {
    let mut insert = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "INSERT INTO audit_events (seq, at_ms, actor_kind, actor, source_ip, action, target, \
         workspace, details, prev_hash, hash, origin_node, origin_seq, origin_hash) ",
    );
    insert.push_values(events, |mut row, event| {
        row.push_bind(event.seq)
            .push_bind(event.at_ms)
            .push_bind(event.actor.kind.as_str())
            .push_bind(&event.actor.name)
            .push_bind(&event.actor.source_ip)
            .push_bind(&event.action)
            .push_bind(&event.target)
            .push_bind(&event.workspace)
            .push_bind(event.details.to_string())
            .push_bind(&event.prev_hash)
            .push_bind(&event.hash)
            .push_bind(event.origin.as_ref().map(|o| o.node.clone()))
            .push_bind(event.origin.as_ref().map(|o| o.seq))
            .push_bind(event.origin.as_ref().map(|o| o.hash.clone()));
    });
    insert.build().execute(&mut *conn).await.map_err(db_err)?;
    Ok(())
}

async fn write_head(conn: &mut PgConnection, seq: i64, hash: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(hash)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Appends `entry` to the audit chain inside the transaction of the change it records. Called
/// last, so that the head's row lock is held only until the commit.
pub(crate) async fn append_audit(
    conn: &mut PgConnection,
    entry: AuditEntry,
) -> Result<AuditEvent, StoreError> {
    let (seq, prev_hash) = lock_audit_head(conn).await?;
    let event = AuditEvent::chain(entry, seq + 1, now_ms(), &prev_hash);
    insert_events(conn, std::slice::from_ref(&event)).await?;
    write_head(conn, event.seq, &event.hash).await?;
    Ok(event)
}

/// Writes a batch of key creations, each with its audit event, in one transaction: one multi-row
/// insert for the keys, one for the events, one commit for the lot, and the audit head locked
/// only for the last steps. A taken name (in the store, or earlier in the same batch) answers
/// its own request with `Conflict`; any other failure fails the batch, and nothing of it is
/// committed.
async fn create_keys(
    pool: PgPool,
    requests: Vec<(NewKey, Actor)>,
) -> Result<Vec<Result<ApiKey, StoreError>>, StoreError> {
    let now = now_ms();
    let firsts =
        steward_store::batch::first_occurrences(requests.iter().map(|(k, _)| k.name.as_str()));
    let mut tx = pool.begin().await.map_err(db_err)?;
    let candidates: Vec<&NewKey> = requests
        .iter()
        .zip(&firsts)
        .filter(|(_, f)| **f)
        .map(|((k, _), _)| k)
        .collect();
    let inserted = insert_keys(&mut tx, &candidates, now).await?;
    let (seq, hash) = lock_audit_head(&mut tx).await?;
    let (answers, events) =
        steward_store::batch::chain_created_keys(&requests, &firsts, &inserted, now, seq, &hash);
    if let Some(last) = events.last() {
        insert_events(&mut tx, &events).await?;
        write_head(&mut tx, last.seq, &last.hash).await?;
    }
    tx.commit().await.map_err(db_err)?;
    Ok(answers)
}

fn origin_from_row(
    row: &sqlx::postgres::PgRow,
) -> Result<Option<steward_core::audit::Origin>, StoreError> {
    let node: Option<String> = row.try_get("origin_node").map_err(db_err)?;
    let seq: Option<i64> = row.try_get("origin_seq").map_err(db_err)?;
    let hash: Option<String> = row.try_get("origin_hash").map_err(db_err)?;
    Ok(match (node, seq, hash) {
        (Some(node), Some(seq), Some(hash)) => {
            Some(steward_core::audit::Origin { node, seq, hash })
        }
        _ => None,
    })
}

/// Appends the events of `node` not merged before, chained after the current head.
async fn merge_remote(
    conn: &mut PgConnection,
    node: &str,
    events: &[AuditEvent],
    head: (i64, String),
) -> Result<usize, StoreError> {
    let (Some(low), Some(high)) = (
        events.iter().map(|e| e.seq).min(),
        events.iter().map(|e| e.seq).max(),
    ) else {
        return Ok(0);
    };
    let known: Vec<i64> = sqlx::query_scalar("SELECT origin_seq FROM audit_events WHERE origin_node = $1 AND origin_seq BETWEEN $2 AND $3")
        .bind(node)
        .bind(low)
        .bind(high)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    let mut seen: std::collections::HashSet<i64> = known.into_iter().collect();
    let mut ordered: Vec<&AuditEvent> = events.iter().collect();
    ordered.sort_by_key(|e| e.seq);
    let (mut seq, mut hash) = head;
    let mut merged = Vec::new();
    for remote in ordered {
        if !seen.insert(remote.seq) {
            continue;
        }
        let event = AuditEvent::chain_remote(remote, node, seq + 1, &hash);
        (seq, hash) = (event.seq, event.hash.clone());
        merged.push(event);
    }
    if let Some(last) = merged.last() {
        insert_events(conn, &merged).await?;
        write_head(conn, last.seq, &last.hash).await?;
    }
    Ok(merged.len())
}

fn audit_from_row(row: &sqlx::postgres::PgRow) -> Result<AuditEvent, StoreError> {
    let kind: String = row.try_get("actor_kind").map_err(db_err)?;
    let details: String = row.try_get("details").map_err(db_err)?;
    Ok(AuditEvent {
        seq: row.try_get("seq").map_err(db_err)?,
        at_ms: row.try_get("at_ms").map_err(db_err)?,
        actor: Actor {
            kind: ActorKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("actor kind `{kind}`")))?,
            name: row.try_get("actor").map_err(db_err)?,
            source_ip: row.try_get("source_ip").map_err(db_err)?,
        },
        action: row.try_get("action").map_err(db_err)?,
        target: row.try_get("target").map_err(db_err)?,
        workspace: row.try_get("workspace").map_err(db_err)?,
        details: decode_audit_details(&details)?,
        prev_hash: row.try_get("prev_hash").map_err(db_err)?,
        hash: row.try_get("hash").map_err(db_err)?,
        origin: origin_from_row(row)?,
    })
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
