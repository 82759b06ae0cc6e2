//! Dashboard sessions on SQLite, written through the single writer (callers pass it).

use async_trait::async_trait;
use sqlx::FromRow;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use steward_core::audit::Actor;
use steward_store::SessionStore;
use steward_store::StoreError;
use steward_store::rows::SessionRow;
use steward_store::sessions::{NewSession, Session, session_ended, session_started};

use crate::SqliteStore;
use crate::{audit::append_audit, db_err};

#[async_trait]
impl SessionStore for SqliteStore {
    async fn start_session(
        &self,
        session: &steward_store::NewSession,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        start(&self.writer, session, actor).await
    }

    async fn session(
        &self,
        id_digest: &str,
        now_ms: i64,
    ) -> Result<Option<steward_store::Session>, StoreError> {
        get(&self.reader, id_digest, now_ms).await
    }

    async fn touch_session(
        &self,
        id_digest: &str,
        idle_expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        touch(&self.writer, id_digest, idle_expires_at_ms).await
    }

    async fn end_session(&self, id_digest: &str, actor: &Actor) -> Result<bool, StoreError> {
        end(&self.writer, id_digest, actor).await
    }
}

const COLUMNS: &str =
    "id_digest, key_digest, key_name, csrf, created_at_ms, idle_expires_at_ms, expires_at_ms";

pub(crate) async fn start(
    pool: &SqlitePool,
    session: &NewSession,
    actor: &Actor,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    sqlx::query("DELETE FROM ui_sessions WHERE idle_expires_at_ms <= ?1 OR expires_at_ms <= ?1")
        .bind(session.created_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    sqlx::query(
        "INSERT INTO ui_sessions (id_digest, key_digest, key_name, csrf, created_at_ms, \
         idle_expires_at_ms, expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .bind(&session.id_digest)
    .bind(&session.key_digest)
    .bind(&session.key_name)
    .bind(&session.csrf)
    .bind(session.created_at_ms)
    .bind(session.idle_expires_at_ms)
    .bind(session.expires_at_ms)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    append_audit(&mut tx, session_started(actor, session)).await?;
    tx.commit().await.map_err(db_err)
}

pub(crate) async fn get(
    pool: &SqlitePool,
    id_digest: &str,
    now_ms: i64,
) -> Result<Option<Session>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM ui_sessions WHERE id_digest = ?1 \
         AND idle_expires_at_ms > ?2 AND expires_at_ms > ?2"
    ))
    .bind(id_digest)
    .bind(now_ms)
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    row.as_ref().map(session_from_row).transpose()
}

pub(crate) async fn touch(
    pool: &SqlitePool,
    id_digest: &str,
    idle_expires_at_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE ui_sessions SET idle_expires_at_ms = min(?2, expires_at_ms) \
         WHERE id_digest = ?1 AND idle_expires_at_ms < min(?2, expires_at_ms)",
    )
    .bind(id_digest)
    .bind(idle_expires_at_ms)
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

pub(crate) async fn end(
    pool: &SqlitePool,
    id_digest: &str,
    actor: &Actor,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let row = sqlx::query(&format!(
        "DELETE FROM ui_sessions WHERE id_digest = ?1 RETURNING {COLUMNS}"
    ))
    .bind(id_digest)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_err)?;
    let Some(session) = row.as_ref().map(session_from_row).transpose()? else {
        return Ok(false);
    };
    append_audit(&mut tx, session_ended(actor, &session)).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(true)
}

fn session_from_row(row: &SqliteRow) -> Result<Session, StoreError> {
    Ok(SessionRow::from_row(row).map_err(db_err)?.into())
}
