//! Storage behind one trait. Each backend (`steward-store-sqlite`, `steward-store-postgres`)
//! implements [`Store`] with its own SQL and migrations; everything above the store sees only
//! this trait. [`Metered`] wraps any backend with timing and error metrics, and the
//! `conformance` feature holds the story suite that every backend's tests run.

pub mod alerts;
pub mod audit;
pub mod batch;
pub mod codec;
mod error;
pub mod events;
pub mod health;
mod metered;
pub mod notifications;
pub mod rows;
pub mod schedules;
pub mod sessions;
pub mod tasks;

#[cfg(feature = "conformance")]
pub mod conformance;

use async_trait::async_trait;
use steward_core::audit::{Actor, AuditEvent};
use steward_core::task::{Completion, NewTask, Task, TaskRun};
use steward_core::{Registry, RegistryDiff, Role};

pub use alerts::{
    Ack, AlertChange, AlertQuery, AlertReceipt, RemoteAlerts, StoredAlert, StoredSilence,
};
pub use health::{
    CertSeen, CheckRecord, CheckTransition, HealthPruned, NewTransition, ProbeBatch, ProbeRecord,
    TransitionQuery,
};
pub use schedules::{
    Fire, FireOutcome, FireTrigger, HeartbeatRecord, HeartbeatTransition, Lease, RunQuery,
    RunStatus, ScheduleRun, ScheduleState, ScheduleTick, SkipReason, TickResult,
};
pub use sessions::{NewSession, Session};
use steward_core::health::rollup::Rollup;
use steward_core::schedule::PingStatus;
pub use tasks::{Claim, Enqueued, LeaseState, Reaped, TaskCount, TaskQuery, Wakeup};

pub use error::{BoxError, StoreError};
pub use metered::{Metered, describe_metrics};

/// One migration that was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Its version number.
    pub version: i64,
    /// What it does.
    pub description: String,
}

/// What a `migrate` call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Migrations applied by this call (empty when the schema was current).
    pub applied: Vec<AppliedMigration>,
    /// The schema version afterwards.
    pub version: i64,
}

/// What a check of the database's own structure found ([`Store::check_integrity`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    /// The backend leaves this to its server (PostgreSQL checks its own pages).
    NotChecked,
    /// The whole database was read and found sound.
    Passed {
        /// How long the check took.
        elapsed_ms: u64,
    },
    /// The check ran out of its time; what it read was sound.
    CutShort {
        /// How long it ran.
        elapsed_ms: u64,
    },
    /// The database file is damaged.
    Damaged {
        /// How long the check took.
        elapsed_ms: u64,
        /// The first problems, as the database described them.
        problems: Vec<String>,
    },
}

/// A key to store; the plaintext never reaches the store, only its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// Unique name (the actor in audit events).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The one workspace it may see, if scoped.
    pub workspace: Option<String>,
    /// SHA-256 hex digest of the key.
    pub digest: String,
    /// A non-secret fragment for listings.
    pub hint: String,
    /// When it stops working (ms since the Unix epoch).
    pub expires_at_ms: Option<i64>,
}

/// A stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Unique name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The one workspace it may see, if scoped.
    pub workspace: Option<String>,
    /// SHA-256 hex digest of the key.
    pub digest: String,
    /// A non-secret fragment for listings.
    pub hint: String,
    /// Creation time (ms since the Unix epoch).
    pub created_at_ms: i64,
    /// Expiry, if any.
    pub expires_at_ms: Option<i64>,
    /// Last successful use, updated at most about once a minute.
    pub last_used_at_ms: Option<i64>,
    /// Revocation time, if revoked.
    pub revoked_at_ms: Option<i64>,
}

impl ApiKey {
    /// The key `key` becomes when stored at `at_ms`.
    pub fn created(key: &NewKey, at_ms: i64) -> Self {
        Self {
            name: key.name.clone(),
            role: key.role,
            workspace: key.workspace.clone(),
            digest: key.digest.clone(),
            hint: key.hint.clone(),
            created_at_ms: at_ms,
            expires_at_ms: key.expires_at_ms,
            last_used_at_ms: None,
            revoked_at_ms: None,
        }
    }

    /// True when the key authenticates at `now_ms`: not revoked, not expired.
    pub fn is_usable(&self, now_ms: i64) -> bool {
        self.revoked_at_ms.is_none() && self.expires_at_ms.is_none_or(|t| now_ms < t)
    }
}

/// Which audit events to read: those after `after_seq`, oldest first, filtered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events with a greater sequence number (keyset pagination).
    pub after_seq: i64,
    /// At most this many (the store caps it at 10,000).
    pub limit: u32,
    /// Only this actor name.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this workspace.
    pub workspace: Option<String>,
    /// Only this kind of actor (keys, the CLI, Steward's own components).
    pub actor_kind: Option<steward_core::audit::ActorKind>,
}

/// The most events one audit query returns.
pub const MAX_AUDIT_PAGE: u32 = 10_000;

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Persistence for the control plane's state.
///
/// Implementations must make every method safe to call concurrently, from several processes
/// sharing one database where the backend allows it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The backend's name (`sqlite`, `postgres`), used as a metric label.
    fn backend(&self) -> &'static str;

    /// Whether this instance is the only writer of the database (an embedded file under a
    /// lock): then the events on its own bus tell it every change, and nothing need be polled.
    fn exclusive(&self) -> bool;

    /// Applies the migrations this binary embeds that the database has not seen yet.
    async fn migrate(&self) -> Result<MigrationReport, StoreError>;

    /// Checks the database answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Reads the database's own structure for at most about `budget` (SQLite's
    /// `PRAGMA quick_check`), logs what it found (with how to recover a damaged file) and
    /// remembers it for [`Store::damaged`]. The default, for backends whose server looks after
    /// its own files, checks nothing.
    async fn check_integrity(&self, budget: std::time::Duration) -> Result<Integrity, StoreError> {
        let _ = budget;
        Ok(Integrity::NotChecked)
    }

    /// Whether the last [`Store::check_integrity`] found the database damaged: readiness fails
    /// while it did, since reads of the damaged rows fail until the file is recovered.
    fn damaged(&self) -> bool {
        false
    }

    /// The stored registry, in canonical order.
    async fn registry(&self) -> Result<Registry, StoreError>;

    /// Reconciles the stored registry with `desired` in one transaction: upserts what it
    /// declares, deletes what it no longer declares, and returns what changed. Concurrent calls
    /// are serialised, so each change is reported by exactly one of them. A non-empty diff is
    /// audited as `registry.sync` by `actor`, in the same transaction.
    async fn sync_registry(
        &self,
        desired: &Registry,
        actor: &Actor,
    ) -> Result<RegistryDiff, StoreError>;

    /// Stores a new key, audited as `key.create`. A taken name is [`StoreError::Conflict`].
    async fn create_key(&self, key: &NewKey, actor: &Actor) -> Result<ApiKey, StoreError>;

    /// Stores `key` only if no key exists yet (the first start's admin key), audited as
    /// `key.bootstrap`. Concurrent instances create at most one.
    async fn create_first_key(
        &self,
        key: &NewKey,
        actor: &Actor,
    ) -> Result<Option<ApiKey>, StoreError>;

    /// Every key, revoked ones included, by name.
    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// The key with this digest.
    async fn key_by_digest(&self, digest: &str) -> Result<Option<ApiKey>, StoreError>;

    /// Revokes a key by name, audited as `key.revoke`. An unknown or already revoked name is
    /// [`StoreError::NotFound`].
    async fn revoke_key(&self, name: &str, actor: &Actor) -> Result<ApiKey, StoreError>;

    /// Records a key's use (not audited: it changes nothing a person did).
    async fn touch_key(&self, name: &str, at_ms: i64) -> Result<(), StoreError>;

    /// Audit events matching `query`, oldest first.
    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError>;

    /// Merges events recorded on another node into this chain, in one transaction: each new
    /// `(node, seq)` is appended once (keeping its origin), ones already merged are skipped.
    /// Returns how many were added.
    async fn merge_remote_audit(
        &self,
        node: &str,
        events: &[AuditEvent],
    ) -> Result<usize, StoreError>;

    /// The recorded head of the audit chain: the last event's `(seq, hash)`, `None` when empty.
    async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError>;

    /// Stores `tasks` in one transaction, audited as one `task.enqueue` by `actor`. A task whose
    /// idempotency key exists already (in the store or earlier in the call) is not stored
    /// again: its answer names the existing task. Answers are in the order of `tasks`. The
    /// caller validates the tasks first.
    async fn enqueue_tasks(
        &self,
        tasks: &[NewTask],
        actor: &Actor,
    ) -> Result<Vec<Enqueued>, StoreError>;

    /// Leases up to `claim.limit` due tasks of `claim.queue` to `claim.worker`, highest priority
    /// first, then oldest run-at: each becomes `running`, its attempt and fence go up by one.
    /// Concurrent claims (from any process) never take the same task.
    async fn claim_tasks(&self, claim: &Claim) -> Result<Vec<Task>, StoreError>;

    /// The earliest run-at among `queue`'s tasks waiting to run (queued, or failed and waiting
    /// for their retry), so an idle worker can sleep until exactly then.
    async fn next_due_ms(&self, queue: &str) -> Result<Option<i64>, StoreError>;

    /// Extends `worker`'s leases on `(task id, fence)` pairs to now + `lease_ms` and reports,
    /// for each, whether it is still held and whether cancellation was asked for.
    async fn extend_leases(
        &self,
        worker: &str,
        leases: &[(i64, i64)],
        lease_ms: u64,
    ) -> Result<Vec<LeaseState>, StoreError>;

    /// Records finished attempts in one transaction: each completion whose fence is still the
    /// task's current one moves the task to its verdict's status and adds a run row; a stale
    /// one changes nothing. Answers (accepted or not) are in the order of `completions`.
    async fn complete_tasks(&self, completions: &[Completion]) -> Result<Vec<bool>, StoreError>;

    /// Takes back up to `limit` leases that expired before `now_ms`, recording each as a
    /// `lease_expired` run: the task is queued again, dead when out of attempts, or cancelled
    /// when cancellation had been asked for.
    async fn reap_expired_leases(&self, now_ms: i64, limit: u32)
    -> Result<Vec<Reaped>, StoreError>;

    /// One task.
    async fn task(&self, id: i64) -> Result<Option<Task>, StoreError>;

    /// A task's finished attempts, oldest first.
    async fn task_runs(&self, id: i64) -> Result<Vec<TaskRun>, StoreError>;

    /// Tasks matching `query`, by id.
    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError>;

    /// Cancels a task, audited as `task.cancel`: a queued or failed one is cancelled at once;
    /// for a running one cancellation is requested (its worker stops it). A finished task is
    /// [`StoreError::State`].
    async fn cancel_task(&self, id: i64, actor: &Actor) -> Result<Task, StoreError>;

    /// Queues a dead or cancelled task again with fresh attempts, audited as `task.retry`.
    async fn retry_task(&self, id: i64, actor: &Actor) -> Result<Task, StoreError>;

    /// Tasks per queue and status.
    async fn task_counts(&self) -> Result<Vec<TaskCount>, StoreError>;

    /// Tasks of each of `queues` that finished (succeeded, dead or cancelled) at or after
    /// `since_ms`, per queue and status: the queues' recent throughput. Reads only the recent
    /// rows of each queue, however many are stored.
    async fn tasks_finished_since(
        &self,
        queues: &[String],
        since_ms: i64,
    ) -> Result<Vec<TaskCount>, StoreError>;

    /// Deletes up to `limit` tasks of `queue` (with their runs) that finished before
    /// `finished_before_ms`; returns how many.
    async fn purge_tasks(
        &self,
        queue: &str,
        finished_before_ms: i64,
        limit: u32,
    ) -> Result<u64, StoreError>;

    /// Takes `role`'s lease for `holder` for `ttl_ms`, or renews it if `holder` has it: `None`
    /// while another holder's lease is unexpired. The fence goes up when the holder changes.
    async fn acquire_lease(
        &self,
        role: &str,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<Option<Lease>, StoreError>;

    /// Gives up `holder`'s lease on `role` at once (so another instance need not wait for it to
    /// expire); nothing happens if `holder` does not have it.
    async fn release_lease(&self, role: &str, holder: &str) -> Result<(), StoreError>;

    /// The lease on `role` as recorded, expired or not.
    async fn current_lease(&self, role: &str) -> Result<Option<Lease>, StoreError>;

    /// The states of `names`, creating the missing ones with their cursor at `now_ms` (so a
    /// new schedule starts from its next slot instead of catching up on its past).
    async fn register_schedules(
        &self,
        names: &[String],
        now_ms: i64,
    ) -> Result<Vec<ScheduleState>, StoreError>;

    /// Every schedule state recorded.
    async fn schedule_states(&self) -> Result<Vec<ScheduleState>, StoreError>;

    /// Applies a batch of ticks in one transaction, as [`schedules::plan_ticks`] decides:
    /// enqueues their tasks (one `task.enqueue` audit event by `actor`), cancels what
    /// `overlap = "replace"` displaces, records runs and moves cursors. With `lease`, the whole
    /// batch is refused ([`StoreError::State`]) unless that lease is still current, so a
    /// deposed leader cannot fire; without it (a manual trigger), the fires are audited as
    /// `schedule.trigger`.
    async fn fire_schedules(
        &self,
        lease: Option<&Lease>,
        ticks: &[ScheduleTick],
        actor: &Actor,
    ) -> Result<Vec<TickResult>, StoreError>;

    /// Pauses or resumes a schedule, audited. Pausing cancels its queued tasks not yet due
    /// (fires written ahead of their slot); resuming moves the cursor to `now_ms`: slots that
    /// passed while paused are not caught up.
    async fn set_schedule_paused(
        &self,
        name: &str,
        workspace: Option<&str>,
        paused: bool,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<ScheduleState, StoreError>;

    /// Deletes up to `limit` schedule runs whose task retention has deleted, and runs without a
    /// task (skips, missed slots) recorded before `taskless_before_ms`; returns how many.
    async fn purge_schedule_runs(
        &self,
        taskless_before_ms: i64,
        limit: u32,
    ) -> Result<u64, StoreError>;

    /// Recorded runs matching `query`, newest first, with their tasks' progress.
    async fn schedule_runs(&self, query: &RunQuery) -> Result<Vec<ScheduleRun>, StoreError>;

    /// The latest recorded run of each schedule.
    async fn last_schedule_runs(&self) -> Result<Vec<ScheduleRun>, StoreError>;

    /// Dead-man's switch: settles (once) `schedule`'s fired runs whose slot is more than
    /// `within_ms` before `now_ms`, and returns those whose task did not succeed within
    /// `within_ms` of its slot, flagged overdue.
    async fn flag_overdue_runs(
        &self,
        schedule: &str,
        within_ms: u64,
        now_ms: i64,
    ) -> Result<Vec<ScheduleRun>, StoreError>;

    /// The records of `names`, creating missing ones as `new`, watched from `now_ms`.
    async fn register_heartbeats(
        &self,
        names: &[String],
        now_ms: i64,
    ) -> Result<Vec<HeartbeatRecord>, StoreError>;

    /// Records a ping (creating the record if needed) and returns the record.
    async fn record_ping(
        &self,
        name: &str,
        status: PingStatus,
        at_ms: i64,
    ) -> Result<HeartbeatRecord, StoreError>;

    /// Every heartbeat record.
    async fn heartbeat_records(&self) -> Result<Vec<HeartbeatRecord>, StoreError>;

    /// Applies `change`, audited; false (nothing written) when the heartbeat's state or latest
    /// ping is no longer what the change was decided from, so concurrent evaluators record each
    /// transition once and a ping that lands meanwhile is never overruled.
    async fn set_heartbeat_state(
        &self,
        change: &HeartbeatTransition,
        actor: &Actor,
    ) -> Result<bool, StoreError>;

    /// Writes a prober batch in one transaction: raw results appended, roll-up increments
    /// added to the stored roll-ups (see [`ProbeBatch::rollups`]), states replaced, transitions
    /// appended in order.
    async fn record_probes(&self, batch: &ProbeBatch) -> Result<(), StoreError>;

    /// Every check's persisted state, by check name.
    async fn check_records(&self) -> Result<Vec<CheckRecord>, StoreError>;

    /// `check`'s raw results that started at or after `since_ms`, newest first, at most `limit`
    /// (capped at [`health::MAX_HEALTH_PAGE`]).
    async fn probe_results(
        &self,
        check: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<ProbeRecord>, StoreError>;

    /// `check`'s per-minute roll-ups for the minutes starting in `[from_ms, to_ms)`, oldest
    /// first.
    async fn check_rollups(
        &self,
        check: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Rollup>, StoreError>;

    /// Recorded transitions, newest first.
    async fn check_transitions(
        &self,
        query: &TransitionQuery,
    ) -> Result<Vec<CheckTransition>, StoreError>;

    /// Deletes raw results started before `results_before_ms`, and roll-ups and transitions
    /// before `rollups_before_ms`.
    async fn prune_health(
        &self,
        results_before_ms: i64,
        rollups_before_ms: i64,
    ) -> Result<HealthPruned, StoreError>;

    /// Merges received alerts into the stored ones of the same fingerprint, in one transaction
    /// with one audit event (`alert.receive`, with counts) for the call; answers what each
    /// receipt did, in order:
    /// - a new fingerprint is stored firing ([`AlertChange::Fired`]), or resolved when it
    ///   arrives with an end already past ([`AlertChange::Resolved`]);
    /// - a firing alert received with a past end resolves ([`AlertChange::Resolved`]);
    /// - a resolved alert received firing starts a new episode: episode + 1, its start from the
    ///   receipt (or the receipt time), any acknowledgement cleared ([`AlertChange::Refired`]);
    /// - otherwise labels stay, annotations, severity, end, generator URL and receipt time are
    ///   refreshed ([`AlertChange::Unchanged`]);
    /// - but an alert a built-in rule raised (source `rule:NAME`) is changed only by rules: a
    ///   receipt from another source leaves it as it is ([`AlertChange::Refused`]). A rule's
    ///   receipt takes over an alert posted from outside.
    ///
    /// Several receipts of one fingerprint in a call apply in order.
    async fn receive_alerts(
        &self,
        receipts: &[AlertReceipt],
        actor: &Actor,
    ) -> Result<Vec<AlertChange>, StoreError>;

    /// Resolves, at `now_ms`, the firing alerts from `source` that have no end and were last
    /// received before `received_before_ms` (senders that stopped re-sending them); answers
    /// their fingerprints.
    async fn resolve_stale_alerts(
        &self,
        source: &str,
        received_before_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<steward_core::alert::Fingerprint>, StoreError>;

    /// Alerts, most recently received first.
    async fn alerts(&self, query: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError>;

    /// One alert.
    async fn alert(
        &self,
        fingerprint: steward_core::alert::Fingerprint,
    ) -> Result<Option<StoredAlert>, StoreError>;

    /// The stored alerts among `fingerprints` (at most [`alerts::MAX_ALERT_PAGE`] of them), in
    /// no particular order; those not stored are left out.
    async fn alerts_by_fingerprint(
        &self,
        fingerprints: &[steward_core::alert::Fingerprint],
    ) -> Result<Vec<StoredAlert>, StoreError>;

    /// Up to `limit` (at most [`alerts::MAX_ALERT_PAGE`]) alerts last received at or after
    /// `since_ms`, by receipt time then fingerprint, after the `after` pair: what other
    /// instances received, page by page.
    async fn alerts_received_after(
        &self,
        since_ms: i64,
        after: Option<(i64, steward_core::alert::Fingerprint)>,
        limit: u32,
    ) -> Result<Vec<StoredAlert>, StoreError>;

    /// Up to `limit` (at most [`alerts::MAX_ALERT_PAGE`]) firing alerts whose fingerprints
    /// come after `after`, by fingerprint: reads every firing alert, page by page.
    async fn firing_alerts_after(
        &self,
        after: Option<steward_core::alert::Fingerprint>,
        limit: u32,
    ) -> Result<Vec<StoredAlert>, StoreError>;

    /// Acknowledges a firing alert's current episode, audited (`alert.ack`);
    /// [`StoreError::NotFound`] when there is no such alert, [`StoreError::State`] when it is
    /// resolved.
    async fn ack_alert(
        &self,
        fingerprint: steward_core::alert::Fingerprint,
        ack: &Ack,
        actor: &Actor,
    ) -> Result<StoredAlert, StoreError>;

    /// Stores a silence (already validated), audited (`silence.create`).
    async fn create_silence(
        &self,
        silence: &steward_core::alert::mute::Silence,
        created_at_ms: i64,
        actor: &Actor,
    ) -> Result<StoredSilence, StoreError>;

    /// Ends a silence at `now_ms` (if it ends later), audited (`silence.expire`);
    /// [`StoreError::NotFound`] when there is none with that id.
    async fn expire_silence(
        &self,
        id: i64,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<StoredSilence, StoreError>;

    /// The silences that have not ended at `now_ms` (in force or to come), by id.
    async fn silences(&self, now_ms: i64) -> Result<Vec<StoredSilence>, StoreError>;

    /// Deletes alerts resolved before `before_ms` and silences that ended before it; answers
    /// how many of each.
    async fn prune_alerts(&self, before_ms: i64) -> Result<(u64, u64), StoreError>;

    /// The groups the dispatcher keeps, by key.
    async fn alert_groups(&self) -> Result<Vec<notifications::GroupRecord>, StoreError>;

    /// Applies one dispatcher pass in one transaction: upserts `groups` (by key), deletes the
    /// `finished` ones, and queues `notifications` as pending with their first attempt due at
    /// their creation; answers the new notifications' ids, ascending, in order, each with
    /// whether it heads its group (no older notification of the group is pending). Which
    /// alerts they carry is recorded later, by [`Store::link_notifications`].
    async fn write_dispatch(
        &self,
        write: &notifications::DispatchWrite,
    ) -> Result<Vec<notifications::Queued>, StoreError>;

    /// Up to `limit` notifications to attempt at `now_ms`, by id: pending ones whose attempt is
    /// due and that are the oldest pending notification of their group (so each group's
    /// notifications go out in order: a later one waits until the earlier is delivered or
    /// fails). Those in `excluding` (the ones the caller is attempting already) are left out.
    async fn due_notifications(
        &self,
        now_ms: i64,
        excluding: &[i64],
        limit: u32,
    ) -> Result<Vec<notifications::StoredNotification>, StoreError>;

    /// The earliest next attempt among the pending notifications heading their groups, so the
    /// sender can sleep until then.
    async fn next_notification_due(&self) -> Result<Option<i64>, StoreError>;

    /// Records which alerts the notifications written since the last call carry (those above
    /// the highest notification linked so far, up to id `up_to`), read from their notices, so
    /// that [`NotificationQuery::fingerprint`](notifications::NotificationQuery) finds them;
    /// answers how many links it wrote. Kept out of [`Store::write_dispatch`] so a pass's
    /// notifications go out without waiting for thousands of links; whatever a crash left
    /// unlinked is linked by the next call. The caller names in `up_to` an id below which no
    /// write is under way: passes written at once may commit out of id order, and a
    /// notification committed below one linked already would never be linked.
    async fn link_notifications(&self, up_to: i64) -> Result<u64, StoreError>;

    /// Records attempts on pending notifications and what follows from each, in one
    /// transaction (the sender's completions arrive in bursts); answers, per attempt, whether it
    /// was recorded: false (nothing written for it) when its notification is not pending.
    async fn record_attempts(
        &self,
        attempts: &[(i64, notifications::Attempt, notifications::AttemptOutcome)],
    ) -> Result<Vec<bool>, StoreError>;

    /// Records one attempt, as [`Store::record_attempts`] does.
    async fn record_attempt(
        &self,
        id: i64,
        attempt: &notifications::Attempt,
        outcome: notifications::AttemptOutcome,
    ) -> Result<bool, StoreError> {
        let recorded = self
            .record_attempts(&[(id, attempt.clone(), outcome)])
            .await?;
        Ok(recorded.first().copied().unwrap_or(false))
    }

    /// Notifications matching `query`, newest first.
    async fn notifications(
        &self,
        query: &notifications::NotificationQuery,
    ) -> Result<Vec<notifications::StoredNotification>, StoreError>;

    /// A notification's attempts, oldest first.
    async fn notification_attempts(
        &self,
        id: i64,
    ) -> Result<Vec<notifications::Attempt>, StoreError>;

    /// Notifications per receiver and state.
    async fn notification_counts(
        &self,
    ) -> Result<Vec<notifications::NotificationCount>, StoreError>;

    /// Deletes delivered and failed notifications (with their attempts) that finished before
    /// `before_ms`; answers how many.
    async fn prune_notifications(&self, before_ms: i64) -> Result<u64, StoreError>;

    /// Wake-ups for workers: a queue's name each time tasks may have become ready in it,
    /// through this instance or (where the backend can tell) another one.
    fn task_wakeups(&self) -> tokio::sync::broadcast::Receiver<Wakeup>;

    /// Alerts received or acknowledged, and silences changed, through other instances sharing
    /// the database, where the backend can tell (PostgreSQL's `NOTIFY`); nothing on a database
    /// only this instance writes. Those announcements can be lost, so readers still poll.
    fn remote_alerts(&self) -> tokio::sync::broadcast::Receiver<alerts::RemoteAlerts>;

    /// Appends events to the event log in one transaction. Ids are handed out in commit order
    /// across every instance sharing the database, so a reader that has seen id `n` has seen
    /// every event with a smaller one.
    async fn append_events(&self, events: &[events::NewLoggedEvent]) -> Result<(), StoreError>;

    /// Up to `limit` events with ids above `after_id`, oldest first.
    async fn events_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<events::LoggedEvent>, StoreError>;

    /// The newest event's id, 0 for an empty log.
    async fn event_log_head(&self) -> Result<i64, StoreError>;

    /// Deletes all but the newest `keep` events; answers how many went.
    async fn trim_event_log(&self, keep: u32) -> Result<u64, StoreError>;

    /// A signal each time events were appended to the log or the audit trail, through this
    /// instance or (where the backend can tell) another one, sent once they are committed.
    /// Signals can be lost, so readers still look now and then.
    fn event_log_wakeups(&self) -> tokio::sync::broadcast::Receiver<()>;

    /// Starts a dashboard session, audited as `session.start`, and deletes every session
    /// that has expired by its start.
    async fn start_session(&self, session: &NewSession, actor: &Actor) -> Result<(), StoreError>;

    /// The session whose token has this digest, if it is live at `now_ms`.
    async fn session(&self, id_digest: &str, now_ms: i64) -> Result<Option<Session>, StoreError>;

    /// Moves a live session's idle expiry to `idle_expires_at_ms` (never past its absolute
    /// expiry, never earlier than it was).
    async fn touch_session(
        &self,
        id_digest: &str,
        idle_expires_at_ms: i64,
    ) -> Result<(), StoreError>;

    /// Ends a session, audited as `session.end`; answers whether there was one to end.
    async fn end_session(&self, id_digest: &str, actor: &Actor) -> Result<bool, StoreError>;

    /// Closes connections and releases locks; later calls fail.
    async fn close(&self);
}
