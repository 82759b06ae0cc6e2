//! Timing and error metrics for any store, so backends need no metrics code of their own.

use std::future::Future;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::{Database, Integrity, MigrationReport, StoreError, Wakeup};

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

impl<S: Database> Metered<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The wrapped store, for the forwards [`domain_trait!`](crate::domain) writes.
    pub(crate) fn inner(&self) -> &S {
        &self.inner
    }

    /// Runs `call`, recording its duration under `operation` and its error, if any, by kind.
    pub(crate) async fn observe<T>(
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
impl<S: Database> Database for Metered<S> {
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

    fn task_wakeups(&self) -> tokio::sync::broadcast::Receiver<Wakeup> {
        self.inner.task_wakeups()
    }

    fn remote_alerts(&self) -> tokio::sync::broadcast::Receiver<crate::RemoteAlerts> {
        self.inner.remote_alerts()
    }

    fn pipeline_changes(&self) -> tokio::sync::broadcast::Receiver<crate::RunChanges> {
        self.inner.pipeline_changes()
    }

    fn event_log_wakeups(&self) -> tokio::sync::broadcast::Receiver<()> {
        self.inner.event_log_wakeups()
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}
