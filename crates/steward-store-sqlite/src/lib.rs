//! The embedded SQLite backend: one file in the data directory, WAL, one writer connection and a
//! pool of read-only ones, foreign keys on, and an exclusive lock on the data directory so that
//! two daemons never share it.

mod alerts;
mod events;
mod health;
mod integrity;
mod lock;
mod notifications;
mod schedules;
mod sessions;
mod tasks;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Row};
use steward_core::alert::Fingerprint;
use steward_core::alert::mute::Silence;
use steward_core::audit::{Actor, ActorKind, AuditEntry, AuditEvent};
use steward_core::health::rollup::Rollup;
use steward_core::schedule::PingStatus;
use steward_core::task::{Completion, NewTask, Task, TaskRun, TaskStatus};
use steward_core::{
    Dependency, Registry, RegistryDiff, Role, Service, Step, Workspace, WorkspaceStatus,
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
use steward_store::{Ack, AlertChange, AlertQuery, AlertReceipt, StoredAlert, StoredSilence};
use steward_store::{
    ApiKey, AppliedMigration, AuditQuery, Claim, Enqueued, HeartbeatRecord, HeartbeatTransition,
    Integrity, Lease, LeaseState, MAX_AUDIT_PAGE, MigrationReport, NewKey, Reaped, RunQuery,
    ScheduleRun, ScheduleState, ScheduleTick, Store, StoreError, TaskCount, TaskQuery, TickResult,
    Wakeup, now_ms,
};
use tokio::sync::Mutex;
use tokio::sync::broadcast;

use crate::lock::DataDirLock;

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "steward.db";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The columns of a key, in the order [`key_from_row`] reads them.
macro_rules! key_select {
    () => {
        "SELECT name, role, workspace, digest, hint, created_at_ms, expires_at_ms, \
         last_used_at_ms, revoked_at_ms FROM api_keys"
    };
}

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
            Batcher::spawn(move |requests| Box::pin(create_keys(pool.clone(), requests)));
        let pool = writer.clone();
        let alert_writes =
            Batcher::spawn(move |requests| Box::pin(receive_alerts(pool.clone(), requests)));
        Ok(Self {
            writer,
            key_writes,
            alert_writes,
            reader,
            lock: Mutex::new(Some(lock)),
            path,
            wakeups: broadcast::channel(steward_store::tasks::WAKEUP_BUFFER).0,
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

    async fn registry(&self) -> Result<Registry, StoreError> {
        // One read transaction: a consistent snapshot even while a sync commits.
        let mut tx = self.reader.begin().await.map_err(db_err)?;
        let registry = load_registry(&mut tx).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(registry)
    }

    async fn sync_registry(
        &self,
        desired: &Registry,
        actor: &Actor,
    ) -> Result<RegistryDiff, StoreError> {
        // The single writer connection serialises syncs; reading inside the write transaction
        // makes the diff exact.
        let mut tx = self.writer.begin().await.map_err(db_err)?;
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
        let mut tx = self.writer.begin().await.map_err(db_err)?;
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
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn key_by_digest(&self, digest: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query(concat!(key_select!(), " WHERE digest = ?"))
            .bind(digest)
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err)?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn revoke_key(&self, name: &str, actor: &Actor) -> Result<ApiKey, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let row = sqlx::query(concat!(
            "UPDATE api_keys SET revoked_at_ms = ? WHERE name = ? AND revoked_at_ms IS NULL ",
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
        sqlx::query("UPDATE api_keys SET last_used_at_ms = ? WHERE name = ?")
            .bind(at_ms)
            .bind(name)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, actor_kind, actor, source_ip, action, target, workspace, details, \
             prev_hash, hash, origin_node, origin_seq, origin_hash FROM audit_events \
             WHERE seq > ? AND (? IS NULL OR actor = ?) AND (? IS NULL OR action = ?) \
             AND (? IS NULL OR workspace = ?) AND (? IS NULL OR actor_kind = ?) \
             ORDER BY seq LIMIT ?",
        )
        .bind(query.after_seq)
        .bind(&query.actor)
        .bind(&query.actor)
        .bind(&query.action)
        .bind(&query.action)
        .bind(&query.workspace)
        .bind(&query.workspace)
        .bind(query.actor_kind.map(ActorKind::as_str))
        .bind(query.actor_kind.map(ActorKind::as_str))
        .bind(i64::from(query.limit.min(MAX_AUDIT_PAGE)))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn merge_remote_audit(
        &self,
        node: &str,
        events: &[AuditEvent],
    ) -> Result<usize, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let head = read_head(&mut tx).await?;
        let added = merge_remote(&mut tx, node, events, head).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(added)
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        let (seq, hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(&self.reader)
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
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let answers = tasks::enqueue(&mut tx, new, actor).await?;
        tx.commit().await.map_err(db_err)?;
        self.wake(new.iter().map(|t| t.queue.as_str()));
        Ok(answers)
    }

    async fn claim_tasks(&self, claim: &Claim) -> Result<Vec<Task>, StoreError> {
        tasks::claim(&self.writer, claim).await
    }

    async fn next_due_ms(&self, queue: &str) -> Result<Option<i64>, StoreError> {
        tasks::next_due(&self.reader, queue).await
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
        tasks::extend(&self.writer, worker, leases, lease_ms).await
    }

    async fn complete_tasks(&self, completions: &[Completion]) -> Result<Vec<bool>, StoreError> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let accepted = tasks::complete(&mut tx, completions).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(accepted)
    }

    async fn reap_expired_leases(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<Reaped>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let reaped = tasks::reap(&mut tx, now_ms, limit).await?;
        tx.commit().await.map_err(db_err)?;
        self.wake(
            reaped
                .iter()
                .filter(|r| r.status == TaskStatus::Queued)
                .map(|r| r.queue.as_str()),
        );
        Ok(reaped)
    }

    async fn task(&self, id: i64) -> Result<Option<Task>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(db_err)?;
        tasks::get(&mut conn, id).await
    }

    async fn task_runs(&self, id: i64) -> Result<Vec<TaskRun>, StoreError> {
        tasks::runs(&self.reader, id).await
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
        tasks::list(&self.reader, query).await
    }

    async fn cancel_task(&self, id: i64, actor: &Actor) -> Result<Task, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let task = tasks::cancel(&mut tx, id, actor).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(task)
    }

    async fn retry_task(&self, id: i64, actor: &Actor) -> Result<Task, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let task = tasks::retry(&mut tx, id, actor).await?;
        tx.commit().await.map_err(db_err)?;
        self.wake([task.queue.as_str()]);
        Ok(task)
    }

    async fn task_counts(&self) -> Result<Vec<TaskCount>, StoreError> {
        tasks::counts(&self.reader).await
    }

    async fn tasks_finished_since(
        &self,
        queues: &[String],
        since_ms: i64,
    ) -> Result<Vec<TaskCount>, StoreError> {
        tasks::finished_since(&self.reader, queues, since_ms).await
    }

    async fn purge_tasks(
        &self,
        queue: &str,
        finished_before_ms: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        tasks::purge(&self.writer, queue, finished_before_ms, limit).await
    }

    async fn acquire_lease(
        &self,
        role: &str,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<Option<Lease>, StoreError> {
        schedules::acquire_lease(&self.writer, role, holder, ttl_ms).await
    }

    async fn release_lease(&self, role: &str, holder: &str) -> Result<(), StoreError> {
        schedules::release_lease(&self.writer, role, holder).await
    }

    async fn current_lease(&self, role: &str) -> Result<Option<Lease>, StoreError> {
        schedules::current_lease(&self.reader, role).await
    }

    async fn register_schedules(
        &self,
        names: &[String],
        now_ms: i64,
    ) -> Result<Vec<ScheduleState>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let states = schedules::register_schedules(&mut tx, names, now_ms).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(states)
    }

    async fn schedule_states(&self) -> Result<Vec<ScheduleState>, StoreError> {
        schedules::schedule_states(&self.reader).await
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
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let (results, queues) = schedules::fire(&mut tx, lease, ticks, actor).await?;
        tx.commit().await.map_err(db_err)?;
        self.wake(queues.iter().map(String::as_str));
        Ok(results)
    }

    async fn set_schedule_paused(
        &self,
        name: &str,
        workspace: Option<&str>,
        paused: bool,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<ScheduleState, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let state = schedules::set_paused(&mut tx, name, workspace, paused, now_ms, actor).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(state)
    }

    async fn purge_schedule_runs(
        &self,
        taskless_before_ms: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        schedules::purge_runs(&self.writer, taskless_before_ms, limit).await
    }

    async fn schedule_runs(&self, query: &RunQuery) -> Result<Vec<ScheduleRun>, StoreError> {
        schedules::runs(&self.reader, query).await
    }

    async fn last_schedule_runs(&self) -> Result<Vec<ScheduleRun>, StoreError> {
        schedules::last_runs(&self.reader).await
    }

    async fn flag_overdue_runs(
        &self,
        schedule: &str,
        within_ms: u64,
        now_ms: i64,
    ) -> Result<Vec<ScheduleRun>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let runs = schedules::flag_overdue(&mut tx, schedule, within_ms, now_ms).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(runs)
    }

    async fn register_heartbeats(
        &self,
        names: &[String],
        now_ms: i64,
    ) -> Result<Vec<HeartbeatRecord>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let records = schedules::register_heartbeats(&mut tx, names, now_ms).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(records)
    }

    async fn record_ping(
        &self,
        name: &str,
        status: PingStatus,
        at_ms: i64,
    ) -> Result<HeartbeatRecord, StoreError> {
        schedules::record_ping(&self.writer, name, status, at_ms).await
    }

    async fn heartbeat_records(&self) -> Result<Vec<HeartbeatRecord>, StoreError> {
        schedules::heartbeat_records(&self.reader).await
    }

    async fn set_heartbeat_state(
        &self,
        change: &HeartbeatTransition,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let changed = schedules::set_heartbeat_state(&mut tx, change, actor).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(changed)
    }

    async fn record_probes(&self, batch: &ProbeBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        health::record(&mut tx, batch).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn check_records(&self) -> Result<Vec<CheckRecord>, StoreError> {
        health::records(&self.reader).await
    }

    async fn probe_results(
        &self,
        check: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<ProbeRecord>, StoreError> {
        health::results(&self.reader, check, since_ms, limit).await
    }

    async fn check_rollups(
        &self,
        check: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Rollup>, StoreError> {
        health::rollups(&self.reader, check, from_ms, to_ms).await
    }

    async fn check_transitions(
        &self,
        query: &TransitionQuery,
    ) -> Result<Vec<CheckTransition>, StoreError> {
        health::transitions(&self.reader, query).await
    }

    async fn prune_health(
        &self,
        results_before_ms: i64,
        rollups_before_ms: i64,
    ) -> Result<HealthPruned, StoreError> {
        health::prune(&self.writer, results_before_ms, rollups_before_ms).await
    }

    async fn receive_alerts(
        &self,
        receipts: &[AlertReceipt],
        actor: &Actor,
    ) -> Result<Vec<AlertChange>, StoreError> {
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        self.alert_writes
            .submit((receipts.to_vec(), actor.clone()))
            .await
    }

    async fn resolve_stale_alerts(
        &self,
        source: &str,
        received_before_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Fingerprint>, StoreError> {
        alerts::resolve_stale(&self.writer, source, received_before_ms, now_ms).await
    }

    async fn alerts(&self, query: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError> {
        alerts::list(&self.reader, query).await
    }

    async fn alert(&self, fingerprint: Fingerprint) -> Result<Option<StoredAlert>, StoreError> {
        alerts::get(&self.reader, fingerprint).await
    }

    async fn alerts_by_fingerprint(
        &self,
        fingerprints: &[Fingerprint],
    ) -> Result<Vec<StoredAlert>, StoreError> {
        alerts::by_fingerprint(&self.reader, fingerprints).await
    }

    async fn alerts_received_after(
        &self,
        since_ms: i64,
        after: Option<(i64, Fingerprint)>,
        limit: u32,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        alerts::received_after(&self.reader, since_ms, after, limit).await
    }

    async fn firing_alerts_after(
        &self,
        after: Option<Fingerprint>,
        limit: u32,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        alerts::firing_after(&self.reader, after, limit).await
    }

    async fn ack_alert(
        &self,
        fingerprint: Fingerprint,
        ack: &Ack,
        actor: &Actor,
    ) -> Result<StoredAlert, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let alert = alerts::ack(&mut tx, fingerprint, ack, actor).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(alert)
    }

    async fn create_silence(
        &self,
        silence: &Silence,
        created_at_ms: i64,
        actor: &Actor,
    ) -> Result<StoredSilence, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let stored = alerts::create_silence(&mut tx, silence, created_at_ms, actor).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(stored)
    }

    async fn expire_silence(
        &self,
        id: i64,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<StoredSilence, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let silence = alerts::expire_silence(&mut tx, id, now_ms, actor).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(silence)
    }

    async fn silences(&self, now_ms: i64) -> Result<Vec<StoredSilence>, StoreError> {
        alerts::silences(&self.reader, now_ms).await
    }

    async fn prune_alerts(&self, before_ms: i64) -> Result<(u64, u64), StoreError> {
        alerts::prune(&self.writer, before_ms).await
    }

    async fn alert_groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        notifications::groups(&self.reader).await
    }

    async fn write_dispatch(&self, write: &DispatchWrite) -> Result<Vec<Queued>, StoreError> {
        if write.groups.is_empty() && write.finished.is_empty() && write.notifications.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let queued = notifications::write(&mut tx, write, now_ms()).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(queued)
    }

    async fn due_notifications(
        &self,
        now_ms: i64,
        excluding: &[i64],
        limit: u32,
    ) -> Result<Vec<StoredNotification>, StoreError> {
        notifications::due(&self.reader, now_ms, excluding, limit).await
    }

    async fn next_notification_due(&self) -> Result<Option<i64>, StoreError> {
        notifications::next_due(&self.reader).await
    }

    async fn link_notifications(&self, up_to: i64) -> Result<u64, StoreError> {
        let mut conn = self.writer.acquire().await.map_err(db_err)?;
        notifications::link_alerts(&mut conn, up_to).await
    }

    async fn record_attempts(
        &self,
        attempts: &[(i64, Attempt, AttemptOutcome)],
    ) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let recorded = notifications::record_attempts(&mut tx, attempts).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(recorded)
    }

    async fn notifications(
        &self,
        query: &NotificationQuery,
    ) -> Result<Vec<StoredNotification>, StoreError> {
        notifications::list(&self.reader, query).await
    }

    async fn notification_attempts(&self, id: i64) -> Result<Vec<Attempt>, StoreError> {
        notifications::attempts(&self.reader, id).await
    }

    async fn notification_counts(&self) -> Result<Vec<NotificationCount>, StoreError> {
        notifications::counts(&self.reader).await
    }

    async fn prune_notifications(&self, before_ms: i64) -> Result<u64, StoreError> {
        notifications::prune(&self.writer, before_ms).await
    }

    fn task_wakeups(&self) -> broadcast::Receiver<Wakeup> {
        self.wakeups.subscribe()
    }

    async fn append_events(
        &self,
        events: &[steward_store::events::NewLoggedEvent],
    ) -> Result<(), StoreError> {
        // Announced by the writer connection once committed (see `announce_appends`).
        events::append(&self.writer, events).await
    }

    async fn events_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<steward_store::events::LoggedEvent>, StoreError> {
        events::after(&self.reader, after_id, limit).await
    }

    async fn event_log_head(&self) -> Result<i64, StoreError> {
        events::head(&self.reader).await
    }

    async fn start_session(
        &self,
        session: &steward_store::NewSession,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        sessions::start(&self.writer, session, actor).await
    }

    async fn session(
        &self,
        id_digest: &str,
        now_ms: i64,
    ) -> Result<Option<steward_store::Session>, StoreError> {
        sessions::get(&self.reader, id_digest, now_ms).await
    }

    async fn touch_session(
        &self,
        id_digest: &str,
        idle_expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        sessions::touch(&self.writer, id_digest, idle_expires_at_ms).await
    }

    async fn end_session(&self, id_digest: &str, actor: &Actor) -> Result<bool, StoreError> {
        sessions::end(&self.writer, id_digest, actor).await
    }

    async fn trim_event_log(&self, keep: u32) -> Result<u64, StoreError> {
        events::trim(&self.writer, keep).await
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

/// Inserts keys with one multi-row statement; returns the names actually inserted (a taken
/// name is skipped, not an error).
async fn insert_keys(
    conn: &mut SqliteConnection,
    keys: &[&NewKey],
    now: i64,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
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

fn key_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<ApiKey, StoreError> {
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

/// The audit chain's recorded head `(seq, hash)`.
async fn read_head(conn: &mut SqliteConnection) -> Result<(i64, String), StoreError> {
    sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)
}

async fn write_head(conn: &mut SqliteConnection, seq: i64, hash: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1")
        .bind(seq)
        .bind(hash)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Appends `entry` to the audit chain. Runs inside the transaction of the change it records;
/// the single writer connection orders appends.
pub(crate) async fn append_audit(
    conn: &mut SqliteConnection,
    entry: AuditEntry,
) -> Result<AuditEvent, StoreError> {
    let (seq, prev_hash) = read_head(conn).await?;
    let event = AuditEvent::chain(entry, seq + 1, now_ms(), &prev_hash);
    insert_events(conn, std::slice::from_ref(&event)).await?;
    write_head(conn, event.seq, &event.hash).await?;
    Ok(event)
}

/// Writes a batch of key creations, each with its audit event, in one transaction: one multi-row
/// insert for the keys, one for the events, one fsync for the lot. A taken name (in the store,
/// or earlier in the same batch) answers its own request with `Conflict`; any other failure
/// fails the batch, and nothing of it is committed.
/// Writes a batch of posted alerts in one transaction, each post applied (and audited) in
/// turn, as it would be alone.
async fn receive_alerts(
    pool: SqlitePool,
    requests: Vec<(Vec<AlertReceipt>, Actor)>,
) -> Result<Vec<Vec<AlertChange>>, StoreError> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let mut answers = Vec::with_capacity(requests.len());
    for (receipts, actor) in &requests {
        answers.push(alerts::receive(&mut tx, receipts, actor).await?);
    }
    tx.commit().await.map_err(db_err)?;
    Ok(answers)
}

async fn create_keys(
    pool: SqlitePool,
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
    let (seq, hash) = read_head(&mut tx).await?;
    let (answers, events) =
        steward_store::batch::chain_created_keys(&requests, &firsts, &inserted, now, seq, &hash);
    if let Some(last) = events.last() {
        insert_events(&mut tx, &events).await?;
        write_head(&mut tx, last.seq, &last.hash).await?;
    }
    tx.commit().await.map_err(db_err)?;
    Ok(answers)
}

/// Inserts audit events with one multi-row statement.
async fn insert_events(
    conn: &mut SqliteConnection,
    events: &[AuditEvent],
) -> Result<(), StoreError> {
    let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
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

fn origin_from_row(
    row: &sqlx::sqlite::SqliteRow,
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
    conn: &mut SqliteConnection,
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
    let known: Vec<i64> = sqlx::query_scalar(
        "SELECT origin_seq FROM audit_events WHERE origin_node = ? AND origin_seq BETWEEN ? AND ?",
    )
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

fn audit_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<AuditEvent, StoreError> {
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
