//! Alerts and silences on PostgreSQL. A call of `receive_alerts` is one transaction of a fixed
//! number of statements whatever its size: the batch's new fingerprints are inserted first
//! (`ON CONFLICT DO NOTHING`, so that two calls racing to create one alert queue on its key
//! instead of both creating it), the rows of the others read and locked with one
//! `SELECT … FOR UPDATE`, the receipts merged in Rust by the shared rules of
//! [`merge_receipts`], and the results written back with one upsert over `unnest(…)` (an
//! upsert rather than an update, so that a row pruned in between is written again).
//! Locks are taken in fingerprint order, so concurrent calls cannot lose each other's updates
//! and do not deadlock on each other.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use sqlx::FromRow;
use sqlx::postgres::{PgArguments, PgConnection, PgPool, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, QueryBuilder};
use steward_core::alert::mute::Silence;
use steward_core::alert::{AlertState, Fingerprint};
use steward_core::audit::Actor;
use steward_store::AlertStore;
use steward_store::alerts::{MAX_ALERT_PAGE, merge_receipt, merge_receipts};
use steward_store::codec::{decode_fingerprint, encode_labels, encode_matchers};
use steward_store::rows::{AlertRow, SilenceRow};
use steward_store::{Ack, AlertChange, AlertQuery, AlertReceipt, StoreError, StoredAlert};
use steward_store::{StoredSilence, audit};

use crate::audit::append_audit;
use crate::{PostgresStore, settle};
use crate::{db_err, listen};

#[async_trait]
impl AlertStore for PostgresStore {
    async fn receive_alerts(
        &self,
        receipts: &[AlertReceipt],
        actor: &Actor,
    ) -> Result<Vec<AlertChange>, StoreError> {
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = async {
            let changes = receive(&mut tx, receipts, actor).await?;
            let changed = steward_store::alerts::changed_fingerprints(receipts, &changes);
            listen::announce_alerts(&mut tx, &self.heard.origin, &changed).await?;
            Ok(changes)
        }
        .await;
        settle(result, tx).await
    }

    async fn resolve_stale_alerts(
        &self,
        source: &str,
        received_before_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Fingerprint>, StoreError> {
        resolve_stale(&self.pool, source, received_before_ms, now_ms).await
    }

    async fn alerts(&self, query: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError> {
        list(&self.pool, query).await
    }

    async fn alert(&self, fingerprint: Fingerprint) -> Result<Option<StoredAlert>, StoreError> {
        get(&self.pool, fingerprint).await
    }

    async fn alerts_by_fingerprint(
        &self,
        fingerprints: &[Fingerprint],
    ) -> Result<Vec<StoredAlert>, StoreError> {
        by_fingerprint(&self.pool, fingerprints).await
    }

    async fn alerts_received_after(
        &self,
        since_ms: i64,
        after: Option<(i64, Fingerprint)>,
        limit: u32,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        received_after(&self.pool, since_ms, after, limit).await
    }

    async fn firing_alerts_after(
        &self,
        after: Option<Fingerprint>,
        limit: u32,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        firing_after(&self.pool, after, limit).await
    }

    async fn ack_alert(
        &self,
        fingerprint: Fingerprint,
        ack: &Ack,
        actor: &Actor,
    ) -> Result<StoredAlert, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = async {
            let alert = self::ack(&mut tx, fingerprint, ack, actor).await?;
            listen::announce_alerts(&mut tx, &self.heard.origin, &[fingerprint]).await?;
            Ok(alert)
        }
        .await;
        settle(result, tx).await
    }

    async fn create_silence(
        &self,
        silence: &Silence,
        created_at_ms: i64,
        actor: &Actor,
    ) -> Result<StoredSilence, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = async {
            let created = create_silence(&mut tx, silence, created_at_ms, actor).await?;
            listen::announce_silences(&mut tx, &self.heard.origin).await?;
            Ok(created)
        }
        .await;
        settle(result, tx).await
    }

    async fn expire_silence(
        &self,
        id: i64,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<StoredSilence, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = async {
            let expired = expire_silence(&mut tx, id, now_ms, actor).await?;
            listen::announce_silences(&mut tx, &self.heard.origin).await?;
            Ok(expired)
        }
        .await;
        settle(result, tx).await
    }

    async fn silences(&self, now_ms: i64) -> Result<Vec<StoredSilence>, StoreError> {
        silences(&self.pool, now_ms).await
    }

    async fn prune_alerts(&self, before_ms: i64) -> Result<(u64, u64), StoreError> {
        prune(&self.pool, before_ms).await
    }
}

/// The columns of an alert, in the order [`alert_from_row`] reads them and [`bind_alerts`]
/// binds them.
const ALERT_COLUMNS: &str = "fingerprint, labels, annotations, severity, source, state, \
     starts_at_ms, ends_at_ms, last_received_ms, generator_url, episode, acked_by, \
     acked_at_ms, ack_note";

/// [`ALERT_COLUMNS`] as arrays to unpack with `unnest`, in the same order.
const ALERT_ARRAYS: &str = "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
     $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::bigint[], \
     $12::text[], $13::bigint[], $14::text[]";

/// The columns of a silence, in the order [`silence_from_row`] reads them.
const SILENCE_COLUMNS: &str =
    "id, matchers, starts_at_ms, ends_at_ms, created_by, created_at_ms, comment";

/// Merges receipts into the stored alerts inside the caller's transaction, audited once.
pub(crate) async fn receive(
    conn: &mut PgConnection,
    receipts: &[AlertReceipt],
    actor: &Actor,
) -> Result<Vec<AlertChange>, StoreError> {
    // Each fingerprint as its first receipt would create it, in fingerprint order.
    let mut firsts: BTreeMap<Fingerprint, StoredAlert> = BTreeMap::new();
    for receipt in receipts {
        firsts
            .entry(receipt.alert.fingerprint())
            .or_insert_with(|| merge_receipt(None, receipt).0);
    }
    let candidates: Vec<&StoredAlert> = firsts.values().collect();
    let inserted: Vec<String> = bind_alerts(
        sqlx::query_scalar(&format!(
            "INSERT INTO alerts ({ALERT_COLUMNS}) SELECT * FROM unnest({ALERT_ARRAYS}) \
             ON CONFLICT (fingerprint) DO NOTHING RETURNING fingerprint"
        )),
        &candidates,
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let inserted: HashSet<String> = inserted.into_iter().collect();
    let existing: Vec<String> = firsts
        .keys()
        .map(ToString::to_string)
        .filter(|f| !inserted.contains(f))
        .collect();
    let mut stored = HashMap::with_capacity(firsts.len());
    if !existing.is_empty() {
        let rows = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE fingerprint = ANY($1) \
             ORDER BY fingerprint COLLATE \"C\" FOR UPDATE"
        ))
        .bind(&existing)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        for row in &rows {
            let alert = alert_from_row(row)?;
            stored.insert(alert.fingerprint, alert);
        }
    }
    // The inserted rows are what merging their first receipt into nothing gives, so merging
    // starts from nothing for them.
    let (changes, touched) = merge_receipts(&mut stored, receipts);
    let written: Vec<&StoredAlert> = touched
        .iter()
        .filter_map(|f| stored.get(f))
        .filter(|a| {
            !inserted.contains(&a.fingerprint.to_string()) || firsts.get(&a.fingerprint) != Some(*a)
        })
        .collect();
    if !written.is_empty() {
        bind_alerts(
            sqlx::query(&format!(
                "INSERT INTO alerts ({ALERT_COLUMNS}) SELECT * FROM unnest({ALERT_ARRAYS}) \
                 ON CONFLICT (fingerprint) DO UPDATE SET labels = excluded.labels, \
                 annotations = excluded.annotations, severity = excluded.severity, \
                 source = excluded.source, state = excluded.state, \
                 starts_at_ms = excluded.starts_at_ms, ends_at_ms = excluded.ends_at_ms, \
                 last_received_ms = excluded.last_received_ms, \
                 generator_url = excluded.generator_url, episode = excluded.episode, \
                 acked_by = excluded.acked_by, acked_at_ms = excluded.acked_at_ms, \
                 ack_note = excluded.ack_note"
            )),
            &written,
        )
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    // Last, so that the audit head's lock is held only until the commit.
    append_audit(conn, audit::alerts_received(actor, receipts, &changes)).await?;
    Ok(changes)
}

/// Binds `alerts` as the arrays of [`ALERT_ARRAYS`].
fn bind_alerts<'q, Q: BindArrays<'q>>(query: Q, alerts: &[&StoredAlert]) -> Q {
    let text = |f: fn(&StoredAlert) -> String| alerts.iter().map(|a| f(a)).collect::<Vec<_>>();
    let int = |f: fn(&StoredAlert) -> i64| alerts.iter().map(|a| f(a)).collect::<Vec<_>>();
    let ack = |f: fn(&Ack) -> String| {
        alerts
            .iter()
            .map(|a| a.ack.as_ref().map(f))
            .collect::<Vec<_>>()
    };
    query
        .bind_array(text(|a| a.fingerprint.to_string()))
        .bind_array(text(|a| encode_labels(&a.labels)))
        .bind_array(text(|a| encode_labels(&a.annotations)))
        .bind_array(text(|a| a.severity.as_str().to_owned()))
        .bind_array(text(|a| a.source.clone()))
        .bind_array(text(|a| a.state.as_str().to_owned()))
        .bind_array(int(|a| a.starts_at_ms))
        .bind_array(alerts.iter().map(|a| a.ends_at_ms).collect::<Vec<_>>())
        .bind_array(int(|a| a.last_received_ms))
        .bind_array(
            alerts
                .iter()
                .map(|a| a.generator_url.clone())
                .collect::<Vec<_>>(),
        )
        .bind_array(int(|a| a.episode))
        .bind_array(ack(|k| k.by.clone()))
        .bind_array(
            alerts
                .iter()
                .map(|a| a.ack.as_ref().map(|k| k.at_ms))
                .collect::<Vec<_>>(),
        )
        .bind_array(ack(|k| k.note.clone()))
}

/// A query arrays can be bound to: plain queries and scalar ones alike.
trait BindArrays<'q>: Sized {
    fn bind_array<T>(self, values: Vec<T>) -> Self
    where
        Vec<T>: 'q + sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Send;
}

impl<'q> BindArrays<'q> for Query<'q, Postgres, PgArguments> {
    fn bind_array<T>(self, values: Vec<T>) -> Self
    where
        Vec<T>: 'q + sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Send,
    {
        self.bind(values)
    }
}

impl<'q, O> BindArrays<'q> for sqlx::query::QueryScalar<'q, Postgres, O, PgArguments> {
    fn bind_array<T>(self, values: Vec<T>) -> Self
    where
        Vec<T>: 'q + sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Send,
    {
        self.bind(values)
    }
}

/// Resolves, at `now_ms`, the firing alerts from `source` without an end last received before
/// `received_before_ms`; answers their fingerprints, in order. The rows are locked in
/// fingerprint order first, as `receive` locks them.
pub(crate) async fn resolve_stale(
    pool: &PgPool,
    source: &str,
    received_before_ms: i64,
    now_ms: i64,
) -> Result<Vec<Fingerprint>, StoreError> {
    let resolved: Vec<String> = sqlx::query_scalar(
        "UPDATE alerts SET state = 'resolved', ends_at_ms = $3 WHERE fingerprint IN (\
         SELECT fingerprint FROM alerts WHERE state = 'firing' AND source = $1 \
         AND last_received_ms < $2 AND ends_at_ms IS NULL \
         ORDER BY fingerprint COLLATE \"C\" FOR UPDATE) \
         AND state = 'firing' AND source = $1 AND last_received_ms < $2 \
         AND ends_at_ms IS NULL RETURNING fingerprint",
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
    pool: &PgPool,
    query: &AlertQuery,
) -> Result<Vec<StoredAlert>, StoreError> {
    // Only the filters given are written into the statement, so that the planner can pick the
    // matching index.
    let mut select =
        QueryBuilder::<Postgres>::new(format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE true"));
    if let Some(state) = query.state {
        select.push(" AND state = ").push_bind(state.as_str());
    }
    if let Some(severity) = query.severity {
        select.push(" AND severity = ").push_bind(severity.as_str());
    }
    if !query.labels.is_empty() {
        select
            .push(" AND labels::jsonb @> ")
            .push_bind(encode_labels(&query.labels))
            .push("::jsonb");
    }
    select
        .push(" ORDER BY last_received_ms DESC, fingerprint LIMIT ")
        .push_bind(i64::from(query.limit.min(MAX_ALERT_PAGE)));
    let rows = select.build().fetch_all(pool).await.map_err(db_err)?;
    rows.iter().map(alert_from_row).collect()
}

/// One alert.
pub(crate) async fn get(
    pool: &PgPool,
    fingerprint: Fingerprint,
) -> Result<Option<StoredAlert>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE fingerprint = $1"
    ))
    .bind(fingerprint.to_string())
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    row.as_ref().map(alert_from_row).transpose()
}

/// The stored alerts among `fingerprints`.
pub(crate) async fn by_fingerprint(
    pool: &PgPool,
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
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE fingerprint = ANY($1)"
    ))
    .bind(&wanted)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(alert_from_row).collect()
}

/// Alerts received at or after `since_ms`, after the `after` pair.
pub(crate) async fn received_after(
    pool: &PgPool,
    since_ms: i64,
    after: Option<(i64, Fingerprint)>,
    limit: u32,
) -> Result<Vec<StoredAlert>, StoreError> {
    let (at, fp) = after.map_or((i64::MIN, String::new()), |(at, fp)| (at, fp.to_string()));
    let rows = sqlx::query(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE last_received_ms >= $1 \
         AND (last_received_ms, fingerprint COLLATE \"C\") > ($2, $3 COLLATE \"C\") \
         ORDER BY last_received_ms, fingerprint COLLATE \"C\" LIMIT $4"
    ))
    .bind(since_ms)
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
    pool: &PgPool,
    after: Option<Fingerprint>,
    limit: u32,
) -> Result<Vec<StoredAlert>, StoreError> {
    // Fingerprints are 16 lowercase hex digits: byte order is their numeric order.
    let rows = sqlx::query(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE state = 'firing' AND fingerprint COLLATE \"C\" > $1 \
         ORDER BY fingerprint COLLATE \"C\" LIMIT $2"
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
    conn: &mut PgConnection,
    fingerprint: Fingerprint,
    ack: &Ack,
    actor: &Actor,
) -> Result<StoredAlert, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE fingerprint = $1 FOR UPDATE"
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
    conn: &mut PgConnection,
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
    conn: &mut PgConnection,
    id: i64,
    now_ms: i64,
    actor: &Actor,
) -> Result<StoredSilence, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {SILENCE_COLUMNS} FROM silences WHERE id = $1 FOR UPDATE"
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
pub(crate) async fn silences(pool: &PgPool, now_ms: i64) -> Result<Vec<StoredSilence>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {SILENCE_COLUMNS} FROM silences WHERE ends_at_ms > $1 ORDER BY id"
    ))
    .bind(now_ms)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(silence_from_row).collect()
}

/// Deletes alerts resolved before `before_ms` and silences ended before it.
pub(crate) async fn prune(pool: &PgPool, before_ms: i64) -> Result<(u64, u64), StoreError> {
    // A resolved alert always has an end; the receipt time stands in should one lack it.
    let alerts = sqlx::query(
        "DELETE FROM alerts WHERE state = 'resolved' AND (ends_at_ms < $1 \
         OR (ends_at_ms IS NULL AND last_received_ms < $1))",
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

fn alert_from_row(row: &PgRow) -> Result<StoredAlert, StoreError> {
    AlertRow::from_row(row).map_err(db_err)?.try_into()
}

fn silence_from_row(row: &PgRow) -> Result<StoredSilence, StoreError> {
    SilenceRow::from_row(row).map_err(db_err)?.try_into()
}
