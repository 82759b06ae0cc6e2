//! The audit chain on SQLite: appends inside each audited change's transaction, reads, and
//! the merge of other nodes' events.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteConnection;
use steward_core::audit::{Actor, ActorKind, AuditEntry, AuditEvent};
use steward_store::codec::decode_audit_details;
use steward_store::{AuditQuery, AuditStore, MAX_AUDIT_PAGE, StoreError, now_ms};

use crate::{SqliteStore, db_err};

#[async_trait]
impl AuditStore for SqliteStore {
    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, actor_kind, actor, source_ip, action, target, workspace, details, \
             prev_hash, hash, origin_node, origin_seq, origin_hash FROM audit_events \
             WHERE seq > ? AND (? IS NULL OR actor = ?) AND (? IS NULL OR action = ?) \
             AND (? IS NULL OR workspace = ?) AND (? IS NULL OR actor_kind = ?) \
             AND (? IS NULL OR origin_node = ?) ORDER BY seq LIMIT ?",
        )
        .bind(query.after_seq)
        .bind(&query.actor)
        .bind(&query.actor)
        .bind(&query.action)
        .bind(&query.action)
        .bind(&query.workspace)
        .bind(&query.workspace)
        .bind(query.actor_kind.map(ActorKind::as_str))
        .bind(query.actor_kind.map(ActorKind::as_str))
        .bind(query.origin_node.as_deref())
        .bind(query.origin_node.as_deref())
        .bind(i64::from(query.limit.min(MAX_AUDIT_PAGE)))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn merge_remote_audit(
        &self,
        node: &str,
        events: &[AuditEvent],
    ) -> Result<usize, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let head = read_head(&mut tx).await?;
        let added = merge_remote(&mut tx, node, events, head).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(added)
    }

    async fn last_merged_audit_seq(&self, node: &str) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(steward_store::sql::LAST_MERGED_ORIGIN_SEQ)
            .bind(node)
            .fetch_one(&self.reader)
            .await
            .map_err(db_err)
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        let (seq, hash): (i64, String) = sqlx::query_as(steward_store::sql::AUDIT_HEAD)
            .fetch_one(&self.reader)
            .await
            .map_err(db_err)?;
        Ok((seq > 0).then_some((seq, hash)))
    }
}

/// The audit chain's recorded head `(seq, hash)`.
pub(crate) async fn read_head(conn: &mut SqliteConnection) -> Result<(i64, String), StoreError> {
    sqlx::query_as(steward_store::sql::AUDIT_HEAD)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)
}

pub(crate) async fn write_head(
    conn: &mut SqliteConnection,
    seq: i64,
    hash: &str,
) -> Result<(), StoreError> {
    sqlx::query(steward_store::sql::WRITE_AUDIT_HEAD)
        .bind(seq)
        .bind(hash)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Appends `entry` to the audit chain. Runs inside the transaction of the change it records;
/// the single writer connection orders appends.
pub(crate) async fn append_audit(
    conn: &mut SqliteConnection,
    entry: AuditEntry,
) -> Result<AuditEvent, StoreError> {
    let (seq, prev_hash) = read_head(conn).await?;
    let event = AuditEvent::chain(entry, seq + 1, now_ms(), &prev_hash);
    insert_events(conn, std::slice::from_ref(&event)).await?;
    write_head(conn, event.seq, &event.hash).await?;
    Ok(event)
}

/// Inserts audit events with one multi-row statement.
pub(crate) async fn insert_events(
    conn: &mut SqliteConnection,
    events: &[AuditEvent],
) -> Result<(), StoreError> {
    let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO audit_events (seq, at_ms, actor_kind, actor, source_ip, action, target, \
         workspace, details, prev_hash, hash, origin_node, origin_seq, origin_hash) ",
    );
    insert.push_values(events, |mut row, event| {
        row.push_bind(event.seq)
            .push_bind(event.at_ms)
            .push_bind(event.actor.kind.as_str())
            .push_bind(&event.actor.name)
            .push_bind(&event.actor.source_ip)
            .push_bind(&event.action)
            .push_bind(&event.target)
            .push_bind(&event.workspace)
            .push_bind(event.details.to_string())
            .push_bind(&event.prev_hash)
            .push_bind(&event.hash)
            .push_bind(event.origin.as_ref().map(|o| o.node.clone()))
            .push_bind(event.origin.as_ref().map(|o| o.seq))
            .push_bind(event.origin.as_ref().map(|o| o.hash.clone()));
    });
    insert.build().execute(&mut *conn).await.map_err(db_err)?;
    Ok(())
}

fn origin_from_row(
    row: &sqlx::sqlite::SqliteRow,
) -> Result<Option<steward_core::audit::Origin>, StoreError> {
    let node: Option<String> = row.try_get("origin_node").map_err(db_err)?;
    let seq: Option<i64> = row.try_get("origin_seq").map_err(db_err)?;
    let hash: Option<String> = row.try_get("origin_hash").map_err(db_err)?;
    Ok(match (node, seq, hash) {
        (Some(node), Some(seq), Some(hash)) => {
            Some(steward_core::audit::Origin { node, seq, hash })
        }
        _ => None,
    })
}

/// Appends the events of `node` not merged before, chained after the current head.
async fn merge_remote(
    conn: &mut SqliteConnection,
    node: &str,
    events: &[AuditEvent],
    head: (i64, String),
) -> Result<usize, StoreError> {
    let (Some(low), Some(high)) = (
        events.iter().map(|e| e.seq).min(),
        events.iter().map(|e| e.seq).max(),
    ) else {
        return Ok(0);
    };
    let known: Vec<i64> = sqlx::query_scalar(steward_store::sql::MERGED_ORIGIN_SEQS)
        .bind(node)
        .bind(low)
        .bind(high)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    let mut seen: std::collections::HashSet<i64> = known.into_iter().collect();
    let mut ordered: Vec<&AuditEvent> = events.iter().collect();
    ordered.sort_by_key(|e| e.seq);
    let (mut seq, mut hash) = head;
    let mut merged = Vec::new();
    for remote in ordered {
        if !seen.insert(remote.seq) {
            continue;
        }
        let event = AuditEvent::chain_remote(remote, node, seq + 1, &hash);
        (seq, hash) = (event.seq, event.hash.clone());
        merged.push(event);
    }
    if let Some(last) = merged.last() {
        insert_events(conn, &merged).await?;
        write_head(conn, last.seq, &last.hash).await?;
    }
    Ok(merged.len())
}

fn audit_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<AuditEvent, StoreError> {
    let kind: String = row.try_get("actor_kind").map_err(db_err)?;
    let details: String = row.try_get("details").map_err(db_err)?;
    Ok(AuditEvent {
        seq: row.try_get("seq").map_err(db_err)?,
        at_ms: row.try_get("at_ms").map_err(db_err)?,
        actor: Actor {
            kind: ActorKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("actor kind `{kind}`")))?,
            name: row.try_get("actor").map_err(db_err)?,
            source_ip: row.try_get("source_ip").map_err(db_err)?,
        },
        action: row.try_get("action").map_err(db_err)?,
        target: row.try_get("target").map_err(db_err)?,
        workspace: row.try_get("workspace").map_err(db_err)?,
        details: decode_audit_details(&details)?,
        prev_hash: row.try_get("prev_hash").map_err(db_err)?,
        hash: row.try_get("hash").map_err(db_err)?,
        origin: origin_from_row(row)?,
    })
}
