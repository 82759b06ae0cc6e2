//! Timing and error metrics for any store, so backends need no metrics code of their own.

use std::future::Future;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use steward_core::audit::{Actor, AuditEvent};
use steward_core::{Registry, RegistryDiff};

use steward_core::alert::Fingerprint;
use steward_core::alert::mute::Silence;
use steward_core::health::rollup::Rollup;
use steward_core::schedule::PingStatus;
use steward_core::task::{Completion, NewTask, Task, TaskRun};

use crate::notifications::{
    Attempt, AttemptOutcome, DispatchWrite, GroupRecord, NotificationCount, NotificationQuery,
    Queued, StoredNotification,
};
use crate::{
    Ack, AlertChange, AlertQuery, AlertReceipt, ApiKey, AuditQuery, CheckRecord, CheckTransition,
    Claim, Enqueued, HealthPruned, HeartbeatRecord, HeartbeatTransition, Integrity, Lease,
    LeaseState, MigrationReport, NewKey, ProbeBatch, ProbeRecord, Reaped, RunQuery, ScheduleRun,
    ScheduleState, ScheduleTick, Store, StoreError, StoredAlert, StoredSilence, TaskCount,
    TaskQuery, TickResult, TransitionQuery, Wakeup,
};

/// Describes the metric families the store records, for every backend, to the installed
/// recorder: [`Metered`]'s timings, errors and damage gauge, and the size of the batches the
/// batch writers commit. Call it once, right after installing the recorder.
pub fn describe_metrics() {
    metrics::describe_histogram!(
        "steward_store_operation_duration_seconds",
        metrics::Unit::Seconds,
        "Time one store call took, by backend and operation."
    );
    metrics::describe_counter!(
        "steward_store_errors_total",
        metrics::Unit::Count,
        "Store calls that failed, by backend, operation and kind (corrupt: a damaged file or undecodable data)."
    );
    metrics::describe_gauge!(
        "steward_store_damaged",
        "1 when the start-up integrity check found the database file damaged, else 0, by backend."
    );
    metrics::describe_histogram!(
        "steward_store_batch_size",
        metrics::Unit::Count,
        "Requests a batch writer committed in one transaction."
    );
}

/// Wraps a store, recording `steward_store_operation_duration_seconds{backend,operation}` and
/// `steward_store_errors_total{backend,operation,kind}` for every call.
pub struct Metered<S> {
    inner: S,
}

impl<S: Store> Metered<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    async fn observe<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        let backend = self.inner.backend();
        metrics::histogram!(
            "steward_store_operation_duration_seconds",
            "backend" => backend,
            "operation" => operation
        )
        .record(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            metrics::counter!(
                "steward_store_errors_total",
                "backend" => backend,
                "operation" => operation,
                "kind" => e.kind()
            )
            .increment(1);
        }
        result
    }
}

#[async_trait]
impl<S: Store> Store for Metered<S> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn exclusive(&self) -> bool {
        self.inner.exclusive()
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        self.observe("migrate", self.inner.migrate()).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.observe("ping", self.inner.ping()).await
    }

    async fn check_integrity(&self, budget: Duration) -> Result<Integrity, StoreError> {
        let integrity = self
            .observe("check_integrity", self.inner.check_integrity(budget))
            .await?;
        let damaged = matches!(integrity, Integrity::Damaged { .. });
        metrics::gauge!("steward_store_damaged", "backend" => self.inner.backend())
            .set(if damaged { 1.0 } else { 0.0 });
        Ok(integrity)
    }

    fn damaged(&self) -> bool {
        self.inner.damaged()
    }

    async fn registry(&self) -> Result<Registry, StoreError> {
        self.observe("registry", self.inner.registry()).await
    }

    async fn sync_registry(
        &self,
        desired: &Registry,
        actor: &Actor,
    ) -> Result<RegistryDiff, StoreError> {
        self.observe("sync_registry", self.inner.sync_registry(desired, actor))
            .await
    }

    async fn create_key(&self, key: &NewKey, actor: &Actor) -> Result<ApiKey, StoreError> {
        self.observe("create_key", self.inner.create_key(key, actor))
            .await
    }

    async fn create_first_key(
        &self,
        key: &NewKey,
        actor: &Actor,
    ) -> Result<Option<ApiKey>, StoreError> {
        self.observe("create_first_key", self.inner.create_first_key(key, actor))
            .await
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.observe("list_keys", self.inner.list_keys()).await
    }

    async fn key_by_digest(&self, digest: &str) -> Result<Option<ApiKey>, StoreError> {
        self.observe("key_by_digest", self.inner.key_by_digest(digest))
            .await
    }

    async fn revoke_key(&self, name: &str, actor: &Actor) -> Result<ApiKey, StoreError> {
        self.observe("revoke_key", self.inner.revoke_key(name, actor))
            .await
    }

    async fn touch_key(&self, name: &str, at_ms: i64) -> Result<(), StoreError> {
        self.observe("touch_key", self.inner.touch_key(name, at_ms))
            .await
    }

    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        self.observe("audit_events", self.inner.audit_events(query))
            .await
    }

    async fn merge_remote_audit(
        &self,
        node: &str,
        events: &[AuditEvent],
    ) -> Result<usize, StoreError> {
        self.observe(
            "merge_remote_audit",
            self.inner.merge_remote_audit(node, events),
        )
        .await
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        self.observe("audit_head", self.inner.audit_head()).await
    }

    async fn enqueue_tasks(
        &self,
        tasks: &[NewTask],
        actor: &Actor,
    ) -> Result<Vec<Enqueued>, StoreError> {
        self.observe("enqueue_tasks", self.inner.enqueue_tasks(tasks, actor))
            .await
    }

    async fn claim_tasks(&self, claim: &Claim) -> Result<Vec<Task>, StoreError> {
        self.observe("claim_tasks", self.inner.claim_tasks(claim))
            .await
    }

    async fn next_due_ms(&self, queue: &str) -> Result<Option<i64>, StoreError> {
        self.observe("next_due_ms", self.inner.next_due_ms(queue))
            .await
    }

    async fn extend_leases(
        &self,
        worker: &str,
        leases: &[(i64, i64)],
        lease_ms: u64,
    ) -> Result<Vec<LeaseState>, StoreError> {
        self.observe(
            "extend_leases",
            self.inner.extend_leases(worker, leases, lease_ms),
        )
        .await
    }

    async fn complete_tasks(&self, completions: &[Completion]) -> Result<Vec<bool>, StoreError> {
        self.observe("complete_tasks", self.inner.complete_tasks(completions))
            .await
    }

    async fn reap_expired_leases(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<Reaped>, StoreError> {
        self.observe(
            "reap_expired_leases",
            self.inner.reap_expired_leases(now_ms, limit),
        )
        .await
    }

    async fn task(&self, id: i64) -> Result<Option<Task>, StoreError> {
        self.observe("task", self.inner.task(id)).await
    }

    async fn task_runs(&self, id: i64) -> Result<Vec<TaskRun>, StoreError> {
        self.observe("task_runs", self.inner.task_runs(id)).await
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
        self.observe("list_tasks", self.inner.list_tasks(query))
            .await
    }

    async fn cancel_task(&self, id: i64, actor: &Actor) -> Result<Task, StoreError> {
        self.observe("cancel_task", self.inner.cancel_task(id, actor))
            .await
    }

    async fn retry_task(&self, id: i64, actor: &Actor) -> Result<Task, StoreError> {
        self.observe("retry_task", self.inner.retry_task(id, actor))
            .await
    }

    async fn task_counts(&self) -> Result<Vec<TaskCount>, StoreError> {
        self.observe("task_counts", self.inner.task_counts()).await
    }

    async fn tasks_finished_since(
        &self,
        queues: &[String],
        since_ms: i64,
    ) -> Result<Vec<TaskCount>, StoreError> {
        self.observe(
            "tasks_finished_since",
            self.inner.tasks_finished_since(queues, since_ms),
        )
        .await
    }

    async fn purge_tasks(
        &self,
        queue: &str,
        finished_before_ms: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.observe(
            "purge_tasks",
            self.inner.purge_tasks(queue, finished_before_ms, limit),
        )
        .await
    }

    async fn acquire_lease(
        &self,
        role: &str,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<Option<Lease>, StoreError> {
        self.observe(
            "acquire_lease",
            self.inner.acquire_lease(role, holder, ttl_ms),
        )
        .await
    }

    async fn release_lease(&self, role: &str, holder: &str) -> Result<(), StoreError> {
        self.observe("release_lease", self.inner.release_lease(role, holder))
            .await
    }

    async fn current_lease(&self, role: &str) -> Result<Option<Lease>, StoreError> {
        self.observe("current_lease", self.inner.current_lease(role))
            .await
    }

    async fn register_schedules(
        &self,
        names: &[String],
        now_ms: i64,
    ) -> Result<Vec<ScheduleState>, StoreError> {
        self.observe(
            "register_schedules",
            self.inner.register_schedules(names, now_ms),
        )
        .await
    }

    async fn schedule_states(&self) -> Result<Vec<ScheduleState>, StoreError> {
        self.observe("schedule_states", self.inner.schedule_states())
            .await
    }

    async fn fire_schedules(
        &self,
        lease: Option<&Lease>,
        ticks: &[ScheduleTick],
        actor: &Actor,
    ) -> Result<Vec<TickResult>, StoreError> {
        self.observe(
            "fire_schedules",
            self.inner.fire_schedules(lease, ticks, actor),
        )
        .await
    }

    async fn set_schedule_paused(
        &self,
        name: &str,
        workspace: Option<&str>,
        paused: bool,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<ScheduleState, StoreError> {
        self.observe(
            "set_schedule_paused",
            self.inner
                .set_schedule_paused(name, workspace, paused, now_ms, actor),
        )
        .await
    }

    async fn purge_schedule_runs(
        &self,
        taskless_before_ms: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.observe(
            "purge_schedule_runs",
            self.inner.purge_schedule_runs(taskless_before_ms, limit),
        )
        .await
    }

    async fn schedule_runs(&self, query: &RunQuery) -> Result<Vec<ScheduleRun>, StoreError> {
        self.observe("schedule_runs", self.inner.schedule_runs(query))
            .await
    }

    async fn last_schedule_runs(&self) -> Result<Vec<ScheduleRun>, StoreError> {
        self.observe("last_schedule_runs", self.inner.last_schedule_runs())
            .await
    }

    async fn flag_overdue_runs(
        &self,
        schedule: &str,
        within_ms: u64,
        now_ms: i64,
    ) -> Result<Vec<ScheduleRun>, StoreError> {
        self.observe(
            "flag_overdue_runs",
            self.inner.flag_overdue_runs(schedule, within_ms, now_ms),
        )
        .await
    }

    async fn register_heartbeats(
        &self,
        names: &[String],
        now_ms: i64,
    ) -> Result<Vec<HeartbeatRecord>, StoreError> {
        self.observe(
            "register_heartbeats",
            self.inner.register_heartbeats(names, now_ms),
        )
        .await
    }

    async fn record_ping(
        &self,
        name: &str,
        status: PingStatus,
        at_ms: i64,
    ) -> Result<HeartbeatRecord, StoreError> {
        self.observe("record_ping", self.inner.record_ping(name, status, at_ms))
            .await
    }

    async fn record_probes(&self, batch: &ProbeBatch) -> Result<(), StoreError> {
        self.observe("record_probes", self.inner.record_probes(batch))
            .await
    }

    async fn check_records(&self) -> Result<Vec<CheckRecord>, StoreError> {
        self.observe("check_records", self.inner.check_records())
            .await
    }

    async fn probe_results(
        &self,
        check: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<ProbeRecord>, StoreError> {
        self.observe(
            "probe_results",
            self.inner.probe_results(check, since_ms, limit),
        )
        .await
    }

    async fn check_rollups(
        &self,
        check: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Rollup>, StoreError> {
        self.observe(
            "check_rollups",
            self.inner.check_rollups(check, from_ms, to_ms),
        )
        .await
    }

    async fn check_transitions(
        &self,
        query: &TransitionQuery,
    ) -> Result<Vec<CheckTransition>, StoreError> {
        self.observe("check_transitions", self.inner.check_transitions(query))
            .await
    }

    async fn prune_health(
        &self,
        results_before_ms: i64,
        rollups_before_ms: i64,
    ) -> Result<HealthPruned, StoreError> {
        self.observe(
            "prune_health",
            self.inner
                .prune_health(results_before_ms, rollups_before_ms),
        )
        .await
    }

    async fn receive_alerts(
        &self,
        receipts: &[AlertReceipt],
        actor: &Actor,
    ) -> Result<Vec<AlertChange>, StoreError> {
        self.observe("receive_alerts", self.inner.receive_alerts(receipts, actor))
            .await
    }

    async fn resolve_stale_alerts(
        &self,
        source: &str,
        received_before_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Fingerprint>, StoreError> {
        self.observe(
            "resolve_stale_alerts",
            self.inner
                .resolve_stale_alerts(source, received_before_ms, now_ms),
        )
        .await
    }

    async fn alerts(&self, query: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError> {
        self.observe("alerts", self.inner.alerts(query)).await
    }

    async fn alert(&self, fingerprint: Fingerprint) -> Result<Option<StoredAlert>, StoreError> {
        self.observe("alert", self.inner.alert(fingerprint)).await
    }

    async fn alerts_by_fingerprint(
        &self,
        fingerprints: &[Fingerprint],
    ) -> Result<Vec<StoredAlert>, StoreError> {
        self.observe(
            "alerts_by_fingerprint",
            self.inner.alerts_by_fingerprint(fingerprints),
        )
        .await
    }

    async fn alerts_received_after(
        &self,
        since_ms: i64,
        after: Option<(i64, Fingerprint)>,
        limit: u32,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        self.observe(
            "alerts_received_after",
            self.inner.alerts_received_after(since_ms, after, limit),
        )
        .await
    }

    async fn firing_alerts_after(
        &self,
        after: Option<Fingerprint>,
        limit: u32,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        self.observe(
            "firing_alerts_after",
            self.inner.firing_alerts_after(after, limit),
        )
        .await
    }

    async fn ack_alert(
        &self,
        fingerprint: Fingerprint,
        ack: &Ack,
        actor: &Actor,
    ) -> Result<StoredAlert, StoreError> {
        self.observe("ack_alert", self.inner.ack_alert(fingerprint, ack, actor))
            .await
    }

    async fn create_silence(
        &self,
        silence: &Silence,
        created_at_ms: i64,
        actor: &Actor,
    ) -> Result<StoredSilence, StoreError> {
        self.observe(
            "create_silence",
            self.inner.create_silence(silence, created_at_ms, actor),
        )
        .await
    }

    async fn expire_silence(
        &self,
        id: i64,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<StoredSilence, StoreError> {
        self.observe(
            "expire_silence",
            self.inner.expire_silence(id, now_ms, actor),
        )
        .await
    }

    async fn silences(&self, now_ms: i64) -> Result<Vec<StoredSilence>, StoreError> {
        self.observe("silences", self.inner.silences(now_ms)).await
    }

    async fn prune_alerts(&self, before_ms: i64) -> Result<(u64, u64), StoreError> {
        self.observe("prune_alerts", self.inner.prune_alerts(before_ms))
            .await
    }

    async fn alert_groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        self.observe("alert_groups", self.inner.alert_groups())
            .await
    }

    async fn write_dispatch(&self, write: &DispatchWrite) -> Result<Vec<Queued>, StoreError> {
        self.observe("write_dispatch", self.inner.write_dispatch(write))
            .await
    }

    async fn due_notifications(
        &self,
        now_ms: i64,
        excluding: &[i64],
        limit: u32,
    ) -> Result<Vec<StoredNotification>, StoreError> {
        self.observe(
            "due_notifications",
            self.inner.due_notifications(now_ms, excluding, limit),
        )
        .await
    }

    async fn next_notification_due(&self) -> Result<Option<i64>, StoreError> {
        self.observe("next_notification_due", self.inner.next_notification_due())
            .await
    }

    async fn link_notifications(&self, up_to: i64) -> Result<u64, StoreError> {
        self.observe("link_notifications", self.inner.link_notifications(up_to))
            .await
    }

    async fn record_attempts(
        &self,
        attempts: &[(i64, Attempt, AttemptOutcome)],
    ) -> Result<Vec<bool>, StoreError> {
        self.observe("record_attempts", self.inner.record_attempts(attempts))
            .await
    }

    async fn notifications(
        &self,
        query: &NotificationQuery,
    ) -> Result<Vec<StoredNotification>, StoreError> {
        self.observe("notifications", self.inner.notifications(query))
            .await
    }

    async fn notification_attempts(&self, id: i64) -> Result<Vec<Attempt>, StoreError> {
        self.observe(
            "notification_attempts",
            self.inner.notification_attempts(id),
        )
        .await
    }

    async fn notification_counts(&self) -> Result<Vec<NotificationCount>, StoreError> {
        self.observe("notification_counts", self.inner.notification_counts())
            .await
    }

    async fn prune_notifications(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.observe(
            "prune_notifications",
            self.inner.prune_notifications(before_ms),
        )
        .await
    }

    async fn heartbeat_records(&self) -> Result<Vec<HeartbeatRecord>, StoreError> {
        self.observe("heartbeat_records", self.inner.heartbeat_records())
            .await
    }

    async fn set_heartbeat_state(
        &self,
        change: &HeartbeatTransition,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        self.observe(
            "set_heartbeat_state",
            self.inner.set_heartbeat_state(change, actor),
        )
        .await
    }

    fn task_wakeups(&self) -> tokio::sync::broadcast::Receiver<Wakeup> {
        self.inner.task_wakeups()
    }

    fn remote_alerts(&self) -> tokio::sync::broadcast::Receiver<crate::RemoteAlerts> {
        self.inner.remote_alerts()
    }

    async fn append_events(
        &self,
        events: &[crate::events::NewLoggedEvent],
    ) -> Result<(), StoreError> {
        self.observe("append_events", self.inner.append_events(events))
            .await
    }

    async fn events_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<crate::events::LoggedEvent>, StoreError> {
        self.observe("events_after", self.inner.events_after(after_id, limit))
            .await
    }

    async fn event_log_head(&self) -> Result<i64, StoreError> {
        self.observe("event_log_head", self.inner.event_log_head())
            .await
    }

    async fn trim_event_log(&self, keep: u32) -> Result<u64, StoreError> {
        self.observe("trim_event_log", self.inner.trim_event_log(keep))
            .await
    }

    fn event_log_wakeups(&self) -> tokio::sync::broadcast::Receiver<()> {
        self.inner.event_log_wakeups()
    }

    async fn start_session(
        &self,
        session: &crate::NewSession,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        self.observe("start_session", self.inner.start_session(session, actor))
            .await
    }

    async fn session(
        &self,
        id_digest: &str,
        now_ms: i64,
    ) -> Result<Option<crate::Session>, StoreError> {
        self.observe("session", self.inner.session(id_digest, now_ms))
            .await
    }

    async fn touch_session(
        &self,
        id_digest: &str,
        idle_expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        self.observe(
            "touch_session",
            self.inner.touch_session(id_digest, idle_expires_at_ms),
        )
        .await
    }

    async fn end_session(&self, id_digest: &str, actor: &Actor) -> Result<bool, StoreError> {
        self.observe("end_session", self.inner.end_session(id_digest, actor))
            .await
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}
