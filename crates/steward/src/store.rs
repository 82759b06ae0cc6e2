//! Opening the configured store.

use std::sync::Arc;

use anyhow::Context;
use steward_config::DatabaseTarget;
use steward_store::{Metered, Store};
use steward_store_postgres::PostgresStore;
use steward_store_sqlite::SqliteStore;

/// Opens the store (taking the data directory's lock for SQLite), wrapped with metrics.
pub async fn open(target: &DatabaseTarget) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match target {
        DatabaseTarget::Sqlite { data_dir } => Arc::new(Metered::new(
            SqliteStore::open(data_dir)
                .await
                .with_context(|| format!("cannot open the database in {}", data_dir.display()))?,
        )),
        DatabaseTarget::Postgres {
            url,
            max_connections,
        } => Arc::new(Metered::new(
            PostgresStore::connect(url, *max_connections)
                .await
                .with_context(|| format!("cannot connect to {}", target.describe()))?,
        )),
    };
    Ok(store)
}

/// The process environment, for `${VAR}` interpolation and `STEWARD_…` overrides.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
