//! Alerts and silences on SQLite. A call of `receive_alerts` is one transaction on the single
//! writer connection: the stored alerts of the batch's fingerprints are read with one statement
//! (the fingerprints unpacked from a JSON array with `json_each`), merged in Rust by the shared
//! rules of [`merge_receipts`], and written back with one upsert; no other connection writes
//! the file, so nothing can interleave.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::FromRow;
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Sqlite};
use steward_core::alert::mute::Silence;
use steward_core::alert::{AlertState, Fingerprint};
use steward_core::audit::Actor;
use steward_store::AlertStore;
use steward_store::alerts::{MAX_ALERT_PAGE, merge_receipts};
use steward_store::codec::{decode_fingerprint, encode_json, encode_labels, encode_matchers};
use steward_store::rows::{AlertRow, SilenceRow};
use steward_store::{Ack, AlertChange, AlertQuery, AlertReceipt, StoreError, StoredAlert};
use steward_store::{StoredSilence, audit};

use crate::SqliteStore;
use crate::audit::append_audit;
use crate::db_err;

#[async_trait]
impl AlertStore for SqliteStore {
    async fn receive_alerts(
        &self,
        receipts: &[AlertReceipt],
        actor: &Actor,
    ) -> Result<Vec<AlertChange>, StoreError> {
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        self.alert_writes
            .submit((receipts.to_vec(), actor.clone()))
            .await
    }

    async fn resolve_stale_alerts(
        &self,
        source: &str,
        received_before_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Fingerprint>, StoreError> {
        resolve_stale(&self.writer, source, received_before_ms, now_ms).await
    }

    async fn alerts(&self, query: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError> {
        list(&self.reader, query).await
    }

    async fn alert(&self, fingerprint: Fingerprint) -> Result<Option<StoredAlert>, StoreError> {
        get(&self.reader, fingerprint).await
    }

    async fn alerts_by_fingerprint(
        &self,
        fingerprints: &[Fingerprint],
    ) -> Result<Vec<StoredAlert>, StoreError> {
        by_fingerprint(&self.reader, fingerprints).await
    }

    async fn alerts_received_after(
        &self,
        since_ms: i64,
        after: Option<(i64, Fingerprint)>,
        limit: u32,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        received_after(&self.reader, since_ms, after, limit).await
    }

    async fn firing_alerts_after(
        &self,
        after: Option<Fingerprint>,
        limit: u32,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        firing_after(&self.reader, after, limit).await
    }

    async fn ack_alert(
        &self,
        fingerprint: Fingerprint,
        ack: &Ack,
        actor: &Actor,
    ) -> Result<StoredAlert, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let alert = self::ack(&mut tx, fingerprint, ack, actor).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(alert)
    }

    async fn create_silence(
        &self,
        silence: &Silence,
        created_at_ms: i64,
        actor: &Actor,
    ) -> Result<StoredSilence, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let stored = create_silence(&mut tx, silence, created_at_ms, actor).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(stored)
    }

    async fn expire_silence(
        &self,
        id: i64,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<StoredSilence, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let silence = expire_silence(&mut tx, id, now_ms, actor).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(silence)
    }

    async fn silences(&self, now_ms: i64) -> Result<Vec<StoredSilence>, StoreError> {
        silences(&self.reader, now_ms).await
    }

    async fn prune_alerts(&self, before_ms: i64) -> Result<(u64, u64), StoreError> {
        prune(&self.writer, before_ms).await
    }
}

/// Writes a batch of key creations, each with its audit event, in one transaction: one multi-row
/// insert for the keys, one for the events, one fsync for the lot. A taken name (in the store,
/// or earlier in the same batch) answers its own request with `Conflict`; any other failure
/// fails the batch, and nothing of it is committed.
/// Writes a batch of posted alerts in one transaction, each post applied (and audited) in
/// turn, as it would be alone.
pub(crate) async fn receive_alerts(
    pool: SqlitePool,
    requests: Vec<(Vec<AlertReceipt>, Actor)>,
) -> Result<Vec<Vec<AlertChange>>, StoreError> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let mut answers = Vec::with_capacity(requests.len());
    for (receipts, actor) in &requests {
        answers.push(receive(&mut tx, receipts, actor).await?);
    }
    tx.commit().await.map_err(db_err)?;
    Ok(answers)
}

/// The columns of an alert, in the order [`alert_from_row`] reads them.
const ALERT_COLUMNS: &str = "fingerprint, labels, annotations, severity, source, state, \
     starts_at_ms, ends_at_ms, last_received_ms, generator_url, episode, acked_by, \
     acked_at_ms, ack_note";

/// The columns of a silence, in the order [`silence_from_row`] reads them.
const SILENCE_COLUMNS: &str =
    "id, matchers, starts_at_ms, ends_at_ms, created_by, created_at_ms, comment";

/// Merges receipts into the stored alerts inside the caller's transaction, audited once.
pub(crate) async fn receive(
    conn: &mut SqliteConnection,
    receipts: &[AlertReceipt],
    actor: &Actor,
) -> Result<Vec<AlertChange>, StoreError> {
    let mut fingerprints: Vec<String> = receipts
        .iter()
        .map(|r| r.alert.fingerprint().to_string())
        .collect();
    fingerprints.sort_unstable();
    fingerprints.dedup();
    let rows = sqlx::query(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE fingerprint IN (SELECT value FROM json_each(?))"
    ))
    .bind(encode_json(&fingerprints)?)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let mut stored = HashMap::with_capacity(fingerprints.len());
    for row in &rows {
        let alert = alert_from_row(row)?;
        stored.insert(alert.fingerprint, alert);
    }
    let (changes, touched) = merge_receipts(&mut stored, receipts);
    let written: Vec<&StoredAlert> = touched.iter().filter_map(|f| stored.get(f)).collect();
    upsert(conn, &written).await?;
    append_audit(conn, audit::alerts_received(actor, receipts, &changes)).await?;
    Ok(changes)
}

/// Writes alerts whole, inserting or replacing the row of each fingerprint.
async fn upsert(conn: &mut SqliteConnection, alerts: &[&StoredAlert]) -> Result<(), StoreError> {
    if alerts.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = alerts
        .iter()
        .map(|a| {
            (
                a.fingerprint.to_string(),
                // Nested as strings, so `->>` hands the columns exactly this text.
                encode_labels(&a.labels),
                encode_labels(&a.annotations),
                a.severity.as_str(),
                a.source.as_str(),
                a.state.as_str(),
                a.starts_at_ms,
                a.ends_at_ms,
                a.last_received_ms,
                a.generator_url.as_deref(),
                a.episode,
                a.ack.as_ref().map(|k| k.by.as_str()),
                a.ack.as_ref().map(|k| k.at_ms),
                a.ack.as_ref().map(|k| k.note.as_str()),
            )
        })
        .collect();
    // `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT, not a join.
    sqlx::query(&format!(
        "INSERT INTO alerts ({ALERT_COLUMNS}) \
         SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, \
         value->>7, value->>8, value->>9, value->>10, value->>11, value->>12, value->>13 \
         FROM json_each(?) WHERE true ON CONFLICT (fingerprint) DO UPDATE SET \
         labels = excluded.labels, annotations = excluded.annotations, \
         severity = excluded.severity, source = excluded.source, state = excluded.state, \
         starts_at_ms = excluded.starts_at_ms, ends_at_ms = excluded.ends_at_ms, \
         last_received_ms = excluded.last_received_ms, generator_url = excluded.generator_url, \
         episode = excluded.episode, acked_by = excluded.acked_by, \
         acked_at_ms = excluded.acked_at_ms, ack_note = excluded.ack_note"
    ))
    .bind(encode_json(&rows)?)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Resolves, at `now_ms`, the firing alerts from `source` without an end last received before
/// `received_before_ms`; answers their fingerprints, in order.
pub(crate) async fn resolve_stale(
    pool: &SqlitePool,
    source: &str,
    received_before_ms: i64,
    now_ms: i64,
) -> Result<Vec<Fingerprint>, StoreError> {
    let resolved: Vec<String> = sqlx::query_scalar(
        "UPDATE alerts SET state = 'resolved', ends_at_ms = ?3 WHERE state = 'firing' \
         AND source = ?1 AND last_received_ms < ?2 AND ends_at_ms IS NULL RETURNING fingerprint",
    )
    .bind(source)
    .bind(received_before_ms)
    .bind(now_ms)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    let mut fingerprints = resolved
        .iter()
        .map(|f| decode_fingerprint(f))
        .collect::<Result<Vec<_>, _>>()?;
    fingerprints.sort_unstable();
    Ok(fingerprints)
}

/// Alerts matching `query`, most recently received first.
pub(crate) async fn list(
    pool: &SqlitePool,
    query: &AlertQuery,
) -> Result<Vec<StoredAlert>, StoreError> {
    // Only the filters given are written into the statement, so that SQLite can pick the
    // matching index.
    let mut select =
        QueryBuilder::<Sqlite>::new(format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE true"));
    if let Some(state) = query.state {
        select.push(" AND state = ").push_bind(state.as_str());
    }
    if let Some(severity) = query.severity {
        select.push(" AND severity = ").push_bind(severity.as_str());
    }
    if !query.labels.is_empty() {
        // No pair of the query's is missing from the alert's labels.
        select
            .push(" AND NOT EXISTS (SELECT 1 FROM json_each(")
            .push_bind(encode_labels(&query.labels))
            .push(
                ") AS q WHERE NOT EXISTS (SELECT 1 FROM json_each(alerts.labels) AS l \
                 WHERE l.key = q.key AND l.value = q.value))",
            );
    }
    select
        .push(" ORDER BY last_received_ms DESC, fingerprint LIMIT ")
        .push_bind(i64::from(query.limit.min(MAX_ALERT_PAGE)));
    let rows = select.build().fetch_all(pool).await.map_err(db_err)?;
    rows.iter().map(alert_from_row).collect()
}

/// One alert.
pub(crate) async fn get(
    pool: &SqlitePool,
    fingerprint: Fingerprint,
) -> Result<Option<StoredAlert>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE fingerprint = ?"
    ))
    .bind(fingerprint.to_string())
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    row.as_ref().map(alert_from_row).transpose()
}

/// The stored alerts among `fingerprints`.
pub(crate) async fn by_fingerprint(
    pool: &SqlitePool,
    fingerprints: &[Fingerprint],
) -> Result<Vec<StoredAlert>, StoreError> {
    if fingerprints.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<String> = fingerprints
        .iter()
        .take(MAX_ALERT_PAGE as usize)
        .map(ToString::to_string)
        .collect();
    let rows = sqlx::query(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts \
         WHERE fingerprint IN (SELECT value FROM json_each(?))"
    ))
    .bind(serde_json::Value::from(wanted).to_string())
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(alert_from_row).collect()
}

/// Alerts received at or after `since_ms`, after the `after` pair.
pub(crate) async fn received_after(
    pool: &SqlitePool,
    since_ms: i64,
    after: Option<(i64, Fingerprint)>,
    limit: u32,
) -> Result<Vec<StoredAlert>, StoreError> {
    let (at, fp) = after.map_or((i64::MIN, String::new()), |(at, fp)| (at, fp.to_string()));
    let rows = sqlx::query(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE last_received_ms >= ? \
         AND (last_received_ms > ? OR (last_received_ms = ? AND fingerprint > ?)) \
         ORDER BY last_received_ms, fingerprint LIMIT ?"
    ))
    .bind(since_ms)
    .bind(at)
    .bind(at)
    .bind(fp)
    .bind(i64::from(limit.min(MAX_ALERT_PAGE)))
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(alert_from_row).collect()
}

/// Firing alerts after `after`, by fingerprint.
pub(crate) async fn firing_after(
    pool: &SqlitePool,
    after: Option<Fingerprint>,
    limit: u32,
) -> Result<Vec<StoredAlert>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE state = 'firing' AND fingerprint > ? \
         ORDER BY fingerprint LIMIT ?"
    ))
    .bind(after.map(|fp| fp.to_string()).unwrap_or_default())
    .bind(i64::from(limit.min(MAX_ALERT_PAGE)))
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(alert_from_row).collect()
}

/// Acknowledges a firing alert inside the caller's transaction, audited.
pub(crate) async fn ack(
    conn: &mut SqliteConnection,
    fingerprint: Fingerprint,
    ack: &Ack,
    actor: &Actor,
) -> Result<StoredAlert, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE fingerprint = ?"
    ))
    .bind(fingerprint.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    let Some(mut alert) = row.as_ref().map(alert_from_row).transpose()? else {
        return Err(StoreError::NotFound(format!("alert {fingerprint}")));
    };
    if alert.state != AlertState::Firing {
        return Err(StoreError::State(format!(
            "alert {fingerprint} is resolved: only a firing alert can be acknowledged"
        )));
    }
    sqlx::query(steward_store::sql::ACK_ALERT)
        .bind(&ack.by)
        .bind(ack.at_ms)
        .bind(&ack.note)
        .bind(fingerprint.to_string())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    alert.ack = Some(ack.clone());
    append_audit(conn, audit::alert_acked(actor, &alert, ack)).await?;
    Ok(alert)
}

/// Stores a silence inside the caller's transaction, audited.
pub(crate) async fn create_silence(
    conn: &mut SqliteConnection,
    silence: &Silence,
    created_at_ms: i64,
    actor: &Actor,
) -> Result<StoredSilence, StoreError> {
    let id: i64 = sqlx::query_scalar(steward_store::sql::INSERT_SILENCE)
        .bind(encode_matchers(&silence.matchers))
        .bind(silence.starts_at_ms)
        .bind(silence.ends_at_ms)
        .bind(&silence.created_by)
        .bind(created_at_ms)
        .bind(&silence.comment)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    let stored = StoredSilence::stored(silence, id, created_at_ms);
    append_audit(conn, audit::silence_created(actor, &stored)).await?;
    Ok(stored)
}

/// Ends a silence at `now_ms` (if it ends later) inside the caller's transaction, audited.
pub(crate) async fn expire_silence(
    conn: &mut SqliteConnection,
    id: i64,
    now_ms: i64,
    actor: &Actor,
) -> Result<StoredSilence, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {SILENCE_COLUMNS} FROM silences WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    let Some(mut silence) = row.as_ref().map(silence_from_row).transpose()? else {
        return Err(StoreError::NotFound(format!("silence {id}")));
    };
    let previous = silence.ends_at_ms;
    if silence.ends_at_ms > now_ms {
        sqlx::query(steward_store::sql::END_SILENCE)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        silence.ends_at_ms = now_ms;
    }
    append_audit(conn, audit::silence_expired(actor, &silence, previous)).await?;
    Ok(silence)
}

/// The silences not ended at `now_ms`, by id.
pub(crate) async fn silences(
    pool: &SqlitePool,
    now_ms: i64,
) -> Result<Vec<StoredSilence>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {SILENCE_COLUMNS} FROM silences WHERE ends_at_ms > ? ORDER BY id"
    ))
    .bind(now_ms)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(silence_from_row).collect()
}

/// Deletes alerts resolved before `before_ms` and silences ended before it.
pub(crate) async fn prune(pool: &SqlitePool, before_ms: i64) -> Result<(u64, u64), StoreError> {
    // A resolved alert always has an end; the receipt time stands in should one lack it.
    let alerts = sqlx::query(
        "DELETE FROM alerts WHERE state = 'resolved' AND (ends_at_ms < ?1 \
         OR (ends_at_ms IS NULL AND last_received_ms < ?1))",
    )
    .bind(before_ms)
    .execute(pool)
    .await
    .map_err(db_err)?
    .rows_affected();
    let silences = sqlx::query(steward_store::sql::PRUNE_SILENCES)
        .bind(before_ms)
        .execute(pool)
        .await
        .map_err(db_err)?
        .rows_affected();
    Ok((alerts, silences))
}

fn alert_from_row(row: &SqliteRow) -> Result<StoredAlert, StoreError> {
    AlertRow::from_row(row).map_err(db_err)?.try_into()
}

fn silence_from_row(row: &SqliteRow) -> Result<StoredSilence, StoreError> {
    SilenceRow::from_row(row).map_err(db_err)?.try_into()
}
