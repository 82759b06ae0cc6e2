//! The registry on SQLite: read in one read transaction, reconciled on the single writer.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteConnection;
use steward_core::audit::Actor;
use steward_core::{Dependency, Registry, RegistryDiff, Service, Step, Workspace, WorkspaceStatus};
use steward_store::codec::{decode_labels, decode_repo, encode_labels, encode_repo};
use steward_store::{RegistryStore, StoreError};

use crate::audit::append_audit;
use crate::{SqliteStore, db_err};

/// The timestamp expression for `updated_at`, as a macro so it can be spliced into `concat!`.
macro_rules! now {
    () => {
        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    };
}

#[async_trait]
impl RegistryStore for SqliteStore {
    async fn registry(&self) -> Result<Registry, StoreError> {
        // One read transaction: a consistent snapshot even while a sync commits.
        let mut tx = self.reader.begin().await.map_err(db_err)?;
        let registry = load_registry(&mut tx).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(registry)
    }

    async fn sync_registry(
        &self,
        desired: &Registry,
        actor: &Actor,
    ) -> Result<RegistryDiff, StoreError> {
        // The single writer connection serialises syncs; reading inside the write transaction
        // makes the diff exact.
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let current = load_registry(&mut tx).await?;
        let diff = current.diff(desired);
        for step in diff.steps() {
            apply(&mut tx, step).await?;
        }
        if !diff.is_empty() {
            append_audit(&mut tx, steward_store::audit::registry_sync(actor, &diff)).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(diff)
    }
}

async fn load_registry(conn: &mut SqliteConnection) -> Result<Registry, StoreError> {
    let mut workspaces = Vec::new();
    let rows = sqlx::query("SELECT key, description, owner, status, labels, repo FROM workspaces")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    for row in rows {
        let status: String = row.try_get("status").map_err(db_err)?;
        workspaces.push(Workspace {
            key: row.try_get("key").map_err(db_err)?,
            description: row.try_get("description").map_err(db_err)?,
            owner: row.try_get("owner").map_err(db_err)?,
            status: WorkspaceStatus::from_str(&status)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            labels: decode_labels(row.try_get("labels").map_err(db_err)?)?,
            repo: decode_repo(row.try_get("repo").map_err(db_err)?)?,
        });
    }
    let mut dependencies = Vec::new();
    let rows = sqlx::query(steward_store::sql::DEPENDENCIES)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    for row in rows {
        dependencies.push(Dependency {
            from: row.try_get("from_workspace").map_err(db_err)?,
            to: row.try_get("to_workspace").map_err(db_err)?,
            kind: row.try_get("type").map_err(db_err)?,
            note: row.try_get("note").map_err(db_err)?,
        });
    }
    let mut services = Vec::new();
    let rows = sqlx::query("SELECT name, workspace, url, node, labels FROM services")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    for row in rows {
        services.push(Service {
            name: row.try_get("name").map_err(db_err)?,
            workspace: row.try_get("workspace").map_err(db_err)?,
            url: row.try_get("url").map_err(db_err)?,
            node: row.try_get("node").map_err(db_err)?,
            labels: decode_labels(row.try_get("labels").map_err(db_err)?)?,
        });
    }
    Ok(Registry::new(workspaces, dependencies, services))
}

async fn apply(conn: &mut SqliteConnection, step: Step<'_>) -> Result<(), StoreError> {
    let query = match step {
        Step::UpsertWorkspace(w) => sqlx::query(concat!(
            "INSERT INTO workspaces (key, description, owner, status, labels, repo) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (key) DO UPDATE SET description = excluded.description, \
             owner = excluded.owner, status = excluded.status, labels = excluded.labels, \
             repo = excluded.repo, updated_at = ",
            now!()
        ))
        .bind(&w.key)
        .bind(&w.description)
        .bind(&w.owner)
        .bind(w.status.as_str())
        .bind(encode_labels(&w.labels))
        .bind(encode_repo(w.repo.as_ref())),
        Step::UpsertService(s) => sqlx::query(concat!(
            "INSERT INTO services (name, workspace, url, node, labels) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET workspace = excluded.workspace, \
             url = excluded.url, node = excluded.node, labels = excluded.labels, \
             updated_at = ",
            now!()
        ))
        .bind(&s.name)
        .bind(&s.workspace)
        .bind(&s.url)
        .bind(&s.node)
        .bind(encode_labels(&s.labels)),
        Step::UpsertDependency(d) => sqlx::query(concat!(
            "INSERT INTO dependencies (from_workspace, to_workspace, type, note) \
             VALUES (?, ?, ?, ?) \
             ON CONFLICT (from_workspace, to_workspace, type) DO UPDATE SET \
             note = excluded.note, updated_at = ",
            now!()
        ))
        .bind(&d.from)
        .bind(&d.to)
        .bind(&d.kind)
        .bind(&d.note),
        Step::DeleteDependency(d) => sqlx::query(steward_store::sql::DELETE_DEPENDENCY)
            .bind(&d.from)
            .bind(&d.to)
            .bind(&d.kind),
        Step::DeleteService(s) => sqlx::query(steward_store::sql::DELETE_SERVICE).bind(&s.name),
        Step::DeleteWorkspace(w) => sqlx::query(steward_store::sql::DELETE_WORKSPACE).bind(&w.key),
    };
    query.execute(&mut *conn).await.map_err(db_err)?;
    Ok(())
}
