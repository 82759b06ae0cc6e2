//! Per-instance queue upkeep: taking back expired leases and sampling queue depth for metrics.
//! Every instance runs it; the store makes concurrent runs safe (a lease is reaped once).
//! Retention is a scheduled task (the `prune` built-in), not upkeep.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use steward_core::Event;
use steward_core::queue::QueueSpec;
use steward_core::task::TaskStatus;
use steward_store::{Store, now_ms};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bus::EventBus;

/// How often upkeep runs.
#[derive(Debug, Clone)]
pub struct UpkeepOptions {
    /// Between looks for expired leases.
    pub reap_every: Duration,
    /// Between depth samples.
    pub sample_every: Duration,
}

impl Default for UpkeepOptions {
    fn default() -> Self {
        Self {
            reap_every: Duration::from_secs(1),
            sample_every: Duration::from_secs(5),
        }
    }
}

/// The most leases reaped per statement.
const SWEEP: u32 = 5_000;

/// Starts the upkeep loops; they end when `shutdown` is cancelled.
pub fn spawn(
    store: Arc<dyn Store>,
    bus: EventBus,
    queues: Vec<QueueSpec>,
    options: UpkeepOptions,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reap = tokio::time::interval(options.reap_every);
        let mut sample = tokio::time::interval(options.sample_every);
        for timer in [&mut reap, &mut sample] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                _ = reap.tick() => reap_expired(&*store, &bus).await,
                _ = sample.tick() => sample_depth(&*store, &queues).await,
                () = shutdown.cancelled() => return,
            }
        }
    })
}

/// Takes back leases whose workers stopped sending heartbeats.
pub async fn reap_expired(store: &dyn Store, bus: &EventBus) {
    let reaped = match store.reap_expired_leases(now_ms(), SWEEP).await {
        Ok(reaped) => reaped,
        Err(error) => {
            tracing::warn!(%error, "reaping expired leases failed");
            return;
        }
    };
    for lost in reaped {
        tracing::warn!(task = lost.task_id, queue = %lost.queue, worker = %lost.worker, status = %lost.status, "lease expired; task taken back");
        metrics::counter!("steward_task_leases_expired_total", "queue" => lost.queue.clone())
            .increment(1);
        if lost.status == TaskStatus::Dead {
            metrics::counter!("steward_tasks_dead_total", "queue" => lost.queue.clone())
                .increment(1);
        }
        bus.publish(Event::TaskChanged {
            id: lost.task_id,
            queue: lost.queue,
            kind: lost.kind,
            status: lost.status,
            attempt: lost.attempt,
            outcome: None,
            // A reaped lease names no origin; the event is shown to unscoped keys.
            workspace: None,
        });
    }
}

/// Sets `steward_tasks{queue,status}` and `steward_task_oldest_queued_age_seconds{queue}`.
pub async fn sample_depth(store: &dyn Store, queues: &[QueueSpec]) {
    let counts = match store.task_counts().await {
        Ok(counts) => counts,
        Err(error) => {
            tracing::warn!(%error, "sampling queue depth failed");
            return;
        }
    };
    let names: BTreeSet<&str> = queues
        .iter()
        .map(|q| q.name.as_str())
        .chain(counts.iter().map(|c| c.queue.as_str()))
        .collect();
    let now = now_ms();
    for name in names {
        for status in TaskStatus::ALL {
            let count = counts
                .iter()
                .find(|c| c.queue == name && c.status == status)
                .map_or(0, |c| c.count);
            metrics::gauge!("steward_tasks", "queue" => name.to_string(), "status" => status.as_str())
                .set(count as f64);
        }
        let oldest = counts
            .iter()
            .filter(|c| c.queue == name)
            .filter_map(|c| c.oldest_due_at_ms)
            .min();
        metrics::gauge!("steward_task_oldest_queued_age_seconds", "queue" => name.to_string())
            .set(oldest.map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0));
    }
}
