//! The `prune` built-in: retention as a scheduled task. Run by the built-in
//! `steward-retention` schedule on Steward's own queue, it deletes each queue's finished tasks
//! (with their runs) older than the queue's `retention`, schedule runs whose task is gone, and
//! probe results and roll-ups past `[health]`'s retention, and resolved alerts and ended silences
//! past `[alerting]`'s. Audit events are never pruned.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;
use steward_core::health::spec::HealthSettings;
use steward_core::queue::QueueSpec;
use steward_core::task::Task;
use steward_store::{Store, StoreError, now_ms};

use super::{Executor, Failure, Output, RunContext};

/// The most tasks deleted per statement.
const SWEEP: u32 = 5_000;

/// Deletes what is past its retention, in the store every instance shares.
pub struct Prune {
    store: Arc<dyn Store>,
    queues: Arc<Vec<QueueSpec>>,
    health: HealthSettings,
    alerts_retention_ms: u64,
}

impl Prune {
    /// A pruner of `queues`' finished tasks and of probe history kept as `health` says, in
    /// `store`.
    /// `alerts_retention_ms` is how long resolved alerts and ended silences are kept.
    pub fn new(
        store: Arc<dyn Store>,
        queues: Arc<Vec<QueueSpec>>,
        health: HealthSettings,
        alerts_retention_ms: u64,
    ) -> Self {
        Self {
            store,
            queues,
            health,
            alerts_retention_ms,
        }
    }
}

#[async_trait]
impl Executor for Prune {
    async fn run(&self, _task: &Task, cx: &RunContext) -> Result<Output, Failure> {
        let mut purged = serde_json::Map::new();
        for queue in self.queues.iter() {
            if cx.cancel.is_cancelled() {
                return Err(Failure::retryable("stopped"));
            }
            let count = purge_queue(self.store.as_ref(), queue)
                .await
                .map_err(|e| Failure::retryable(format!("pruning `{}`: {e}", queue.name)))?;
            if count > 0 {
                purged.insert(queue.name.clone(), json!(count));
            }
        }
        let runs = purge_schedule_runs(self.store.as_ref())
            .await
            .map_err(|e| Failure::retryable(format!("pruning schedule runs: {e}")))?;
        let pipeline_runs = purge_pipeline_runs(self.store.as_ref(), &self.queues)
            .await
            .map_err(|e| Failure::retryable(format!("pruning pipeline runs: {e}")))?;
        let health = prune_health(self.store.as_ref(), &self.health)
            .await
            .map_err(|e| Failure::retryable(format!("pruning probe history: {e}")))?;
        let before =
            now_ms().saturating_sub(i64::try_from(self.alerts_retention_ms).unwrap_or(i64::MAX));
        let (alerts, silences) = self
            .store
            .prune_alerts(before)
            .await
            .map_err(|e| Failure::retryable(format!("pruning alerts: {e}")))?;
        let notifications = self
            .store
            .prune_notifications(before)
            .await
            .map_err(|e| Failure::retryable(format!("pruning notifications: {e}")))?;
        Ok(Output {
            result: Some(json!({
                "purged": purged,
                "schedule_runs": runs,
                "pipeline_runs": pipeline_runs,
                "alerts": alerts,
                "silences": silences,
                "notifications": notifications,
                "probe_results": health.results,
                "probe_rollups": health.rollups,
                "check_transitions": health.transitions,
            })),
            ..Output::default()
        })
    }
}

/// Deletes raw probe results and roll-ups (with transitions) past their retention.
pub async fn prune_health(
    store: &dyn Store,
    health: &HealthSettings,
) -> Result<steward_store::HealthPruned, StoreError> {
    let now = now_ms();
    let before = |keep: u64| now.saturating_sub(i64::try_from(keep).unwrap_or(i64::MAX));
    let pruned = store
        .prune_health(
            before(health.keep_results_ms),
            before(health.keep_rollups_ms),
        )
        .await?;
    if pruned.results + pruned.rollups + pruned.transitions > 0 {
        tracing::info!(
            results = pruned.results,
            rollups = pruned.rollups,
            transitions = pruned.transitions,
            "probe history past retention deleted"
        );
    }
    Ok(pruned)
}

/// How long a schedule run without a task (a skip, missed slots) is kept: a week. Runs with a
/// task go when retention deletes their task.
pub const TASKLESS_RUN_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// Deletes schedule runs whose task retention deleted, and old task-less runs.
pub async fn purge_schedule_runs(store: &dyn Store) -> Result<u64, StoreError> {
    let before = now_ms().saturating_sub(TASKLESS_RUN_RETENTION_MS);
    let mut total = 0;
    loop {
        let purged = store.purge_schedule_runs(before, SWEEP).await?;
        total += purged;
        if purged < u64::from(SWEEP) {
            return Ok(total);
        }
    }
}

/// How long ended pipeline runs are kept: as long as the longest queue `retention`, so a run
/// outlives its steps' tasks; `None` (kept for ever) when some queue keeps its tasks for ever.
pub fn pipeline_run_retention_ms(queues: &[QueueSpec]) -> Option<u64> {
    queues
        .iter()
        .map(|q| q.retention_ms)
        .try_fold(0u64, |longest, kept| kept.map(|k| longest.max(k)))
}

/// Deletes pipeline runs (with their steps) that ended before their retention, in sweeps.
pub async fn purge_pipeline_runs(
    store: &dyn Store,
    queues: &[QueueSpec],
) -> Result<u64, StoreError> {
    let Some(retention) = pipeline_run_retention_ms(queues) else {
        return Ok(0);
    };
    let before = now_ms().saturating_sub(i64::try_from(retention).unwrap_or(i64::MAX));
    let mut total = 0;
    loop {
        let purged = store.purge_runs(before, SWEEP).await?;
        total += purged;
        if purged < u64::from(SWEEP) {
            return Ok(total);
        }
    }
}

/// Deletes `queue`'s finished tasks older than its retention, in sweeps; returns how many.
pub async fn purge_queue(store: &dyn Store, queue: &QueueSpec) -> Result<u64, StoreError> {
    let Some(retention) = queue.retention_ms else {
        return Ok(0);
    };
    let before = now_ms().saturating_sub(i64::try_from(retention).unwrap_or(i64::MAX));
    let mut total = 0;
    loop {
        let purged = store.purge_tasks(&queue.name, before, SWEEP).await?;
        total += purged;
        if purged > 0 {
            metrics::counter!("steward_tasks_purged_total", "queue" => queue.name.clone())
                .increment(purged);
        }
        if purged < u64::from(SWEEP) {
            break;
        }
    }
    if total > 0 {
        tracing::info!(queue = %queue.name, purged = total, "finished tasks past retention deleted");
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_runs_are_kept_as_long_as_the_longest_queue_keeps_its_tasks() {
        let mut a = QueueSpec::new("a", &["noop"]);
        let mut b = QueueSpec::new("b", &["noop"]);
        a.retention_ms = Some(1_000);
        b.retention_ms = Some(5_000);
        assert_eq!(
            pipeline_run_retention_ms(&[a.clone(), b.clone()]),
            Some(5_000)
        );
        b.retention_ms = None;
        assert_eq!(
            pipeline_run_retention_ms(&[a, b]),
            None,
            "a queue keeping for ever"
        );
        assert_eq!(pipeline_run_retention_ms(&[]), Some(0));
    }
}
