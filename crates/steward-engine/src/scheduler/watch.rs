//! Deadlines the leader watches: schedules whose fires must succeed within a time
//! (`expect_success_within`), and heartbeats that external jobs must ping every period. A
//! missed deadline becomes an event (and a heartbeat's new state is stored and audited), for
//! the alerting to act on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use steward_config::Config;
use steward_core::Event;
use steward_core::audit::Actor;
use steward_core::schedule::heartbeat::evaluate as evaluate_heartbeat;
use steward_core::schedule::{HeartbeatSpec, HeartbeatState};
use steward_store::{HeartbeatRecord, HeartbeatTransition, Store, now_ms};

use super::ConfigSource;
use crate::bus::EventBus;
use tokio_util::sync::CancellationToken;

/// How often deadlines are looked at.
const EVERY: Duration = Duration::from_secs(1);

/// Checks every deadline once a second until `stop` (the leader stops leading).
pub(crate) async fn run(
    store: Arc<dyn Store>,
    bus: EventBus,
    config: ConfigSource,
    actor: Actor,
    stop: CancellationToken,
) {
    let mut watcher = Watcher {
        store,
        bus,
        registered: None,
    };
    loop {
        let started = Instant::now();
        let config = config();
        watcher.overdue_fires(&config).await;
        watcher.heartbeats(&config, &actor).await;
        tokio::select! {
            () = tokio::time::sleep(EVERY.saturating_sub(started.elapsed())) => {}
            () = stop.cancelled() => return,
        }
    }
}

struct Watcher {
    store: Arc<dyn Store>,
    bus: EventBus,
    registered: Option<Vec<String>>,
}

impl Watcher {
    async fn overdue_fires(&self, config: &Config) {
        let now = now_ms();
        for spec in &config.schedules {
            let Some(within) = spec.expect_success_within_ms else {
                continue;
            };
            match self.store.flag_overdue_runs(&spec.name, within, now).await {
                Ok(runs) => {
                    for run in runs {
                        tracing::warn!(schedule = %spec.name, slot_ms = run.slot_ms, task = ?run.task_id, "a scheduled run did not succeed in time");
                        metrics::counter!("steward_schedule_overdue_total").increment(1);
                        self.bus.publish(Event::ScheduleOverdue {
                            schedule: spec.name.clone(),
                            slot_ms: run.slot_ms,
                            task_id: run.task_id,
                            task_status: run.task_status,
                        });
                    }
                }
                Err(error) => {
                    tracing::warn!(schedule = %spec.name, %error, "checking overdue runs failed")
                }
            }
        }
    }

    async fn heartbeats(&mut self, config: &Config, actor: &Actor) {
        if config.heartbeats.is_empty() {
            return;
        }
        let names: Vec<String> = config.heartbeats.iter().map(|h| h.name.clone()).collect();
        let records = if self.registered.as_ref() == Some(&names) {
            self.store.heartbeat_records().await
        } else {
            let registered = self.store.register_heartbeats(&names, now_ms()).await;
            if registered.is_ok() {
                self.registered = Some(names);
            }
            registered
        };
        let records = match records {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(%error, "reading heartbeats failed");
                return;
            }
        };
        let now = now_ms();
        for spec in &config.heartbeats {
            if let Some(record) = records.iter().find(|r| r.name == spec.name) {
                settle_heartbeat(self.store.as_ref(), &self.bus, spec, record, now, actor).await;
            }
        }
    }
}

/// Moves `record` to the state its pings call for at `now_ms`, if that differs, and publishes
/// the change (once, whichever instance gets there first). Returns the state the record is
/// known to have now, or `None` when another writer got there first or the write failed.
pub(crate) async fn settle_heartbeat(
    store: &dyn Store,
    bus: &EventBus,
    spec: &HeartbeatSpec,
    record: &HeartbeatRecord,
    now_ms: i64,
    actor: &Actor,
) -> Option<HeartbeatState> {
    let wanted = evaluate_heartbeat(spec, record.last_ping, record.watching_since_ms, now_ms);
    if wanted == record.state {
        return Some(wanted);
    }
    let change = HeartbeatTransition {
        name: spec.name.clone(),
        workspace: spec.workspace.clone(),
        from: record.state,
        to: wanted,
        seen_ping_ms: record.last_ping.map(|(at, _)| at),
        at_ms: now_ms,
    };
    match store.set_heartbeat_state(&change, actor).await {
        Ok(true) => {
            tracing::info!(heartbeat = %spec.name, from = record.state.as_str(), to = wanted.as_str(), "heartbeat changed state");
            metrics::counter!("steward_heartbeat_transitions_total", "to" => wanted.as_str())
                .increment(1);
            bus.publish(Event::HeartbeatChanged {
                name: spec.name.clone(),
                from: record.state,
                to: wanted,
            });
            Some(wanted)
        }
        Ok(false) => None,
        Err(error) => {
            tracing::warn!(heartbeat = %spec.name, %error, "recording a heartbeat state failed");
            None
        }
    }
}
