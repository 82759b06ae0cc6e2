//! The `pipeline` built-in: starts a run of a declared pipeline. A schedule or an alert
//! route's remediation naming a pipeline enqueues it on Steward's own queue, so each fire or
//! remediation gets the scheduler's and the alert manager's guarantees (one task per slot or
//! episode) and the run is started once per task: its idempotency key is `task:ID`, so an
//! attempt run again after a crash finds the run the first one started.

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use serde_json::{Value as Json, json};
use steward_config::Config;
use steward_core::audit::Actor;
use steward_core::task::{Task, TaskOrigin};
use steward_store::Store;

use super::{Executor, Failure, Output, RunContext};
use crate::pipelines::ops::{self, OpsError};

/// Starts pipeline runs from tasks, reading the pipelines declared in the config in force.
pub struct StartPipeline {
    store: Arc<dyn Store>,
    config: Arc<ArcSwap<Config>>,
}

impl StartPipeline {
    /// A starter of the pipelines `config` declares (as reloads change it), in `store`.
    pub fn new(store: Arc<dyn Store>, config: Arc<ArcSwap<Config>>) -> Self {
        Self { store, config }
    }
}

/// What a `pipeline` task's payload holds.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    pipeline: String,
    #[serde(default)]
    input: Json,
}

#[async_trait]
impl Executor for StartPipeline {
    async fn run(&self, task: &Task, _cx: &RunContext) -> Result<Output, Failure> {
        let payload: Payload = serde_json::from_value(task.payload.clone()).map_err(|e| {
            Failure::permanent(format!(
                "payload: expected {{\"pipeline\": NAME, \"input\": {{…}}}}: {e}"
            ))
        })?;
        let config = self.config.load();
        let origin = TaskOrigin {
            schedule: task.origin.schedule.clone(),
            alert: task.origin.alert.clone(),
            caller: Some(format!("task:{}", task.id)),
            ..TaskOrigin::default()
        };
        let run = ops::new_run(&config, &payload.pipeline, payload.input, None, origin)
            .map_err(|e| Failure::permanent(e.to_string()))?;
        let run = steward_store::NewRun {
            idempotency_key: Some(format!("task:{}", task.id)),
            ..run
        };
        let actor = Actor::system(
            task.origin
                .schedule
                .as_deref()
                .map_or("remediation", |_| "scheduler"),
        );
        let started = self
            .store
            .start_runs(&[run], &actor)
            .await
            .map_err(|e| match OpsError::from(e) {
                OpsError::Store(e) => Failure::retryable(format!("starting the run: {e}")),
                other => Failure::permanent(other.to_string()),
            })?
            .pop()
            .ok_or_else(|| Failure::retryable("the store answered no run"))?;
        Ok(Output {
            result: Some(json!({ "pipeline": payload.pipeline, "run_id": started.id })),
            outcome: Some(
                if started.created {
                    "started"
                } else {
                    "existing"
                }
                .to_owned(),
            ),
            tail: None,
        })
    }
}
