//! The event log on SQLite: appends through the single writer (so ids follow commit order),
//! reads on the read-only connections.

use async_trait::async_trait;
use sqlx::{Row, SqlitePool};
use steward_store::EventLogStore;
use steward_store::StoreError;
use steward_store::events::{LoggedEvent, NewLoggedEvent};

use crate::SqliteStore;
use crate::db_err;

#[async_trait]
impl EventLogStore for SqliteStore {
    async fn append_events(
        &self,
        events: &[steward_store::events::NewLoggedEvent],
    ) -> Result<(), StoreError> {
        // Announced by the writer connection once committed (see `announce_appends`).
        append(&self.writer, events).await
    }

    async fn events_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<steward_store::events::LoggedEvent>, StoreError> {
        after(&self.reader, after_id, limit).await
    }

    async fn event_log_head(&self) -> Result<i64, StoreError> {
        head(&self.reader).await
    }

    async fn trim_event_log(&self, keep: u32) -> Result<u64, StoreError> {
        trim(&self.writer, keep).await
    }
}

/// Rows per insert statement (5 parameters each, under SQLite's 32,766).
const ROWS_PER_INSERT: usize = 1_000;

pub(crate) async fn append(
    writer: &SqlitePool,
    events: &[NewLoggedEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut tx = writer.begin().await.map_err(db_err)?;
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let mut insert =
            sqlx::QueryBuilder::new("INSERT INTO event_log (at_ms, kind, workspace, body) ");
        insert.push_values(chunk, |mut row, event| {
            row.push_bind(event.at_ms)
                .push_bind(&event.kind)
                .push_bind(&event.workspace)
                .push_bind(&event.body);
        });
        insert.build().execute(&mut *tx).await.map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)
}

pub(crate) async fn after(
    reader: &SqlitePool,
    after_id: i64,
    limit: u32,
) -> Result<Vec<LoggedEvent>, StoreError> {
    let rows = sqlx::query(steward_store::sql::EVENTS_AFTER)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(reader)
        .await
        .map_err(db_err)?;
    rows.iter()
        .map(|row| {
            Ok(LoggedEvent {
                id: row.try_get("id").map_err(db_err)?,
                at_ms: row.try_get("at_ms").map_err(db_err)?,
                kind: row.try_get("kind").map_err(db_err)?,
                workspace: row.try_get("workspace").map_err(db_err)?,
                body: row.try_get("body").map_err(db_err)?,
            })
        })
        .collect()
}

pub(crate) async fn head(reader: &SqlitePool) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM event_log")
        .fetch_one(reader)
        .await
        .map_err(db_err)
}

pub(crate) async fn trim(writer: &SqlitePool, keep: u32) -> Result<u64, StoreError> {
    let done = sqlx::query(steward_store::sql::TRIM_EVENT_LOG)
        .bind(i64::from(keep))
        .execute(writer)
        .await
        .map_err(db_err)?;
    Ok(done.rows_affected())
}
