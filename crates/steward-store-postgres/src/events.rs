//! The event log on PostgreSQL. Appends of every instance take one transaction-scoped
//! advisory lock, so ids are handed out in commit order: a reader that has seen id `n` never
//! later finds a smaller one committed. Each append announces itself on
//! [`listen::EVENTS_CHANNEL`].

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgPool;
use steward_store::EventLogStore;
use steward_store::StoreError;
use steward_store::events::{LoggedEvent, NewLoggedEvent};

use crate::PostgresStore;
use crate::{db_err, listen};

#[async_trait]
impl EventLogStore for PostgresStore {
    async fn append_events(
        &self,
        events: &[steward_store::events::NewLoggedEvent],
    ) -> Result<(), StoreError> {
        append(&self.pool, events).await?;
        // The announcement reaches this instance too; saying it here as well saves the trip.
        let _ = self.heard.appended.send(());
        Ok(())
    }

    async fn events_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<steward_store::events::LoggedEvent>, StoreError> {
        after(&self.pool, after_id, limit).await
    }

    async fn event_log_head(&self) -> Result<i64, StoreError> {
        head(&self.pool).await
    }

    async fn trim_event_log(&self, keep: u32) -> Result<u64, StoreError> {
        trim(&self.pool, keep).await
    }
}

/// The advisory lock key that orders appends across instances ("stewevt" in ASCII).
const APPEND_LOCK: i64 = 0x0073_7465_7765_7674;

pub(crate) async fn append(pool: &PgPool, events: &[NewLoggedEvent]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await.map_err(db_err)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(APPEND_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    let at: Vec<i64> = events.iter().map(|e| e.at_ms).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let workspaces: Vec<Option<&str>> = events.iter().map(|e| e.workspace.as_deref()).collect();
    let bodies: Vec<&str> = events.iter().map(|e| e.body.as_str()).collect();
    // WITH ORDINALITY keeps the caller's order in the ids.
    sqlx::query(
        "INSERT INTO event_log (at_ms, kind, workspace, body) \
         SELECT at_ms, kind, workspace, body FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) \
         WITH ORDINALITY AS e(at_ms, kind, workspace, body, n) ORDER BY n",
    )
    .bind(&at)
    .bind(&kinds)
    .bind(&workspaces)
    .bind(&bodies)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    listen::notify(&mut tx, listen::EVENTS_CHANNEL, &[""]).await?;
    tx.commit().await.map_err(db_err)
}

pub(crate) async fn after(
    pool: &PgPool,
    after_id: i64,
    limit: u32,
) -> Result<Vec<LoggedEvent>, StoreError> {
    let rows = sqlx::query(steward_store::sql::EVENTS_AFTER)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(pool)
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

pub(crate) async fn head(pool: &PgPool) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT coalesce(max(id), 0)::bigint FROM event_log")
        .fetch_one(pool)
        .await
        .map_err(db_err)
}

pub(crate) async fn trim(pool: &PgPool, keep: u32) -> Result<u64, StoreError> {
    let done = sqlx::query(steward_store::sql::TRIM_EVENT_LOG)
        .bind(i64::from(keep))
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(done.rows_affected())
}
