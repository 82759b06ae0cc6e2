//! Judging node statuses: every [`MONITOR_EVERY`], each node's silence since its last
//! heartbeat against its interval and `[fleet]`'s tolerance. A change is written only from the
//! status it was judged from, so instances judging together apply (and announce) it once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use steward_config::Config;
use steward_core::Event;
use steward_core::node::{NodeStatus, judge_status};
use steward_store::{StatusChange, Store, StoreError, now_ms};
use tokio_util::sync::CancellationToken;

use crate::bus::EventBus;
use crate::views::nodes::timing_of;

/// How often statuses are judged: a tenth of the shortest default interval, so a change shows
/// within a second of its moment.
pub const MONITOR_EVERY: Duration = Duration::from_secs(1);

/// Judges statuses until `stop`.
pub async fn run(
    store: Arc<dyn Store>,
    bus: EventBus,
    config: Arc<dyn Fn() -> Arc<Config> + Send + Sync>,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(MONITOR_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(error) = judge_once(store.as_ref(), &bus, &config(), now_ms()).await {
            tracing::warn!(%error, "judging node statuses failed");
        }
    }
}

/// One pass at `now_ms`: writes and announces the statuses that changed, and sets the
/// `steward_nodes{status}` gauges. Answers the changes applied.
pub async fn judge_once(
    store: &dyn Store,
    bus: &EventBus,
    config: &Config,
    now_ms: i64,
) -> Result<Vec<StatusChange>, StoreError> {
    let nodes = store.list_nodes().await?;
    let mut counts: BTreeMap<NodeStatus, usize> = BTreeMap::new();
    let mut changes = Vec::new();
    let mut workspaces = BTreeMap::new();
    for node in &nodes {
        let judged = judge_status(node.last_seen_ms, timing_of(node, config), now_ms);
        *counts.entry(judged).or_default() += 1;
        if judged != node.status {
            workspaces.insert(node.spec.id.clone(), node.spec.workspace.clone());
            changes.push(StatusChange {
                node: node.spec.id.clone(),
                from: node.status,
                to: judged,
                at_ms: now_ms,
            });
        }
    }
    for status in NodeStatus::ALL {
        let count = counts.get(&status).copied().unwrap_or(0);
        metrics::gauge!("steward_nodes", "status" => status.as_str()).set(count as f64);
    }
    if changes.is_empty() {
        return Ok(changes);
    }
    let applied = store.set_node_statuses(&changes).await?;
    for change in &applied {
        metrics::counter!("steward_node_status_changes_total", "to" => change.to.as_str())
            .increment(1);
        tracing::info!(node = %change.node, from = %change.from, to = %change.to, "node status changed");
        bus.publish(Event::NodeStatusChanged {
            node: change.node.clone(),
            from: change.from,
            to: change.to,
            workspace: workspaces.get(&change.node).cloned().flatten(),
        });
    }
    Ok(applied)
}
