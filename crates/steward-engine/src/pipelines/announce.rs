//! Announces what this instance's transactions changed in pipeline runs: one
//! `pipeline_run_changed` event per run per transaction, and the pipeline metrics.

use std::sync::Arc;

use steward_core::event::Event;
use steward_store::{RunChange, Store};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::EventBus;

/// Follows the store's pipeline changes until `stop`, then announces those already made (await
/// it after the workers, whose last completions may advance runs).
pub fn spawn(store: Arc<dyn Store>, bus: EventBus, stop: CancellationToken) -> JoinHandle<()> {
    let mut changes = store.pipeline_changes();
    tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                received = changes.recv() => received,
                () = stop.cancelled() => break,
            };
            match received {
                Ok(batch) => announce(&bus, &batch),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "pipeline changes were not announced: too many at once"
                    );
                }
                Err(RecvError::Closed) => return,
            }
        }
        while let Ok(batch) = changes.try_recv() {
            announce(&bus, &batch);
        }
    })
}

fn announce(bus: &EventBus, batch: &[RunChange]) {
    for change in batch {
        record(change);
        bus.publish(event_of(change));
    }
}

/// The metrics of one change: runs started and ended by outcome, steps ended by state with
/// the duration of those that ran.
fn record(change: &RunChange) {
    let pipeline = change.pipeline.clone();
    if change.started {
        metrics::counter!("steward_pipeline_runs_started_total", "pipeline" => pipeline.clone())
            .increment(1);
    }
    if change.finished {
        metrics::counter!(
            "steward_pipeline_runs_total",
            "pipeline" => pipeline.clone(),
            "outcome" => change.status.as_str()
        )
        .increment(1);
    }
    for step in change.steps.iter().filter(|s| s.state.is_final()) {
        metrics::counter!(
            "steward_pipeline_steps_total",
            "pipeline" => pipeline.clone(),
            "state" => step.state.as_str()
        )
        .increment(1);
        if let Some(ms) = step.duration_ms {
            metrics::histogram!(
                "steward_pipeline_step_duration_seconds",
                "pipeline" => pipeline.clone(),
                "step" => step.name.clone()
            )
            .record(ms.max(0) as f64 / 1000.0);
        }
    }
}

fn event_of(change: &RunChange) -> Event {
    Event::PipelineRunChanged {
        run_id: change.run_id,
        pipeline: change.pipeline.clone(),
        workspace: change.workspace.clone(),
        status: change.status,
        started: change.started,
        finished: change.finished,
        steps: change
            .steps
            .iter()
            .map(|s| (s.name.clone(), s.state, s.task_id))
            .collect(),
    }
}
