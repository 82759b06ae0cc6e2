//! Timing and error metrics for any store, so backends need no metrics code of their own.

use std::future::Future;
use std::time::Instant;

use async_trait::async_trait;
use steward_core::audit::{Actor, AuditEvent};
use steward_core::{Registry, RegistryDiff};

use crate::{ApiKey, AuditQuery, MigrationReport, NewKey, Store, StoreError};

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

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        self.observe("migrate", self.inner.migrate()).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.observe("ping", self.inner.ping()).await
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

    async fn close(&self) {
        self.inner.close().await;
    }
}
