//! API keys on PostgreSQL: creations group-committed by a batch writer.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::{PgConnection, PgPool};
use steward_core::Role;
use steward_core::audit::Actor;
use steward_store::{ApiKey, KeyStore, NewKey, StoreError, now_ms};

use crate::audit::{append_audit, insert_events, lock_audit_head, write_head};
use crate::{PostgresStore, db_err};

/// The columns of a key, in the order `key_from_row` reads them.
macro_rules! key_select {
    () => {
        "SELECT name, role, workspace, digest, hint, created_at_ms, expires_at_ms, \
         last_used_at_ms, revoked_at_ms, node FROM api_keys"
    };
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn create_key(&self, key: &NewKey, actor: &Actor) -> Result<ApiKey, StoreError> {
        self.key_writes.submit((key.clone(), actor.clone())).await?
    }

    async fn create_first_key(
        &self,
        key: &NewKey,
        actor: &Actor,
    ) -> Result<Option<ApiKey>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // The audit head's row lock serialises instances starting together, so that the count
        // below sees any key another one created.
        lock_audit_head(&mut tx).await?;
        let existing: i64 = sqlx::query_scalar(steward_store::sql::COUNT_KEYS)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if existing > 0 {
            return Ok(None);
        }
        let now = now_ms();
        if !insert_keys(&mut tx, &[key], now).await?.contains(&key.name) {
            return Err(StoreError::Conflict(format!("key `{}`", key.name)));
        }
        let stored = ApiKey::created(key, now);
        append_audit(
            &mut tx,
            steward_store::audit::key_created("key.bootstrap", actor, &stored),
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(stored))
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query(concat!(key_select!(), " ORDER BY name"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn key_by_digest(&self, digest: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query(concat!(key_select!(), " WHERE digest = $1"))
            .bind(digest)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn revoke_key(&self, name: &str, actor: &Actor) -> Result<ApiKey, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let row = sqlx::query(concat!(
            "UPDATE api_keys SET revoked_at_ms = $1 WHERE name = $2 AND revoked_at_ms IS NULL ",
            "RETURNING name, role, workspace, digest, hint, created_at_ms, expires_at_ms, ",
            "last_used_at_ms, revoked_at_ms, node"
        ))
        .bind(now_ms())
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let revoked = match row {
            Some(row) => key_from_row(&row)?,
            None => return Err(StoreError::NotFound(format!("active key `{name}`"))),
        };
        append_audit(&mut tx, steward_store::audit::key_revoked(actor, &revoked)).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(revoked)
    }

    async fn touch_key(&self, name: &str, at_ms: i64) -> Result<(), StoreError> {
        sqlx::query(steward_store::sql::TOUCH_KEY)
            .bind(at_ms)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

/// Inserts keys with one multi-row statement; returns the names actually inserted (a taken
/// name is skipped, not an error).
pub(crate) async fn insert_keys(
    conn: &mut PgConnection,
    keys: &[&NewKey],
    now: i64,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut insert = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "INSERT INTO api_keys (name, role, workspace, digest, hint, created_at_ms, expires_at_ms, \
         node) ",
    );
    insert.push_values(keys, |mut row, key| {
        row.push_bind(&key.name)
            .push_bind(key.role.as_str())
            .push_bind(&key.workspace)
            .push_bind(&key.digest)
            .push_bind(&key.hint)
            .push_bind(now)
            .push_bind(key.expires_at_ms)
            .push_bind(&key.node);
    });
    insert.push(" ON CONFLICT DO NOTHING RETURNING name");
    let inserted: Vec<String> = insert
        .build_query_scalar()
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(inserted.into_iter().collect())
}

pub(crate) fn key_from_row(row: &sqlx::postgres::PgRow) -> Result<ApiKey, StoreError> {
    let role: String = row.try_get("role").map_err(db_err)?;
    Ok(ApiKey {
        name: row.try_get("name").map_err(db_err)?,
        role: Role::from_str(&role).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        workspace: row.try_get("workspace").map_err(db_err)?,
        node: row.try_get("node").map_err(db_err)?,
        digest: row.try_get("digest").map_err(db_err)?,
        hint: row.try_get("hint").map_err(db_err)?,
        created_at_ms: row.try_get("created_at_ms").map_err(db_err)?,
        expires_at_ms: row.try_get("expires_at_ms").map_err(db_err)?,
        last_used_at_ms: row.try_get("last_used_at_ms").map_err(db_err)?,
        revoked_at_ms: row.try_get("revoked_at_ms").map_err(db_err)?,
    })
}

/// Writes a batch of key creations, each with its audit event, in one transaction: one multi-row
/// insert for the keys, one for the events, one commit for the lot, and the audit head locked
/// only for the last steps. A taken name (in the store, or earlier in the same batch) answers
/// its own request with `Conflict`; any other failure fails the batch, and nothing of it is
/// committed.
pub(crate) async fn create_keys(
    pool: PgPool,
    requests: Vec<(NewKey, Actor)>,
) -> Result<Vec<Result<ApiKey, StoreError>>, StoreError> {
    let now = now_ms();
    let firsts =
        steward_store::batch::first_occurrences(requests.iter().map(|(k, _)| k.name.as_str()));
    let mut tx = pool.begin().await.map_err(db_err)?;
    let candidates: Vec<&NewKey> = requests
        .iter()
        .zip(&firsts)
        .filter(|(_, f)| **f)
        .map(|((k, _), _)| k)
        .collect();
    let inserted = insert_keys(&mut tx, &candidates, now).await?;
    let (seq, hash) = lock_audit_head(&mut tx).await?;
    let (answers, events) =
        steward_store::batch::chain_created_keys(&requests, &firsts, &inserted, now, seq, &hash);
    if let Some(last) = events.last() {
        insert_events(&mut tx, &events).await?;
        write_head(&mut tx, last.seq, &last.hash).await?;
    }
    tx.commit().await.map_err(db_err)?;
    Ok(answers)
}
