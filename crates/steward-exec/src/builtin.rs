//! Executors built into the binary.

use std::time::Duration;

use async_trait::async_trait;
use steward_core::task::Task;

use crate::{Executor, Failure, Output, RunContext};

/// Does nothing and succeeds: for wiring checks and benchmarks.
pub struct Noop;

#[async_trait]
impl Executor for Noop {
    async fn run(&self, _task: &Task, _cx: &RunContext) -> Result<Output, Failure> {
        Ok(Output::default())
    }
}

/// Sleeps for the payload's `ms`, then succeeds; stops early when cancelled.
pub struct Sleep;

/// The longest a `sleep` task may ask for: one hour.
const MAX_SLEEP_MS: u64 = 3_600_000;

fn sleep_ms(payload: &serde_json::Value) -> Result<u64, String> {
    match payload.get("ms").map(serde_json::Value::as_u64) {
        None => Ok(0),
        Some(Some(ms)) if ms <= MAX_SLEEP_MS => Ok(ms),
        Some(_) => Err(format!(
            "`payload.ms`: expected a whole number of milliseconds up to {MAX_SLEEP_MS}"
        )),
    }
}

#[async_trait]
impl Executor for Sleep {
    fn validate(&self, payload: &serde_json::Value) -> Result<(), String> {
        sleep_ms(payload).map(|_| ())
    }

    async fn run(&self, task: &Task, cx: &RunContext) -> Result<Output, Failure> {
        let ms = sleep_ms(&task.payload).map_err(Failure::permanent)?;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(Output::default()),
            () = cx.cancel.cancelled() => Err(Failure::retryable("cancelled")),
        }
    }
}
