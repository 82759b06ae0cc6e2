//! Health checks' results on SQLite: raw probe results, per-minute roll-ups, each check's state
//! and its transitions. A prober batch is one transaction on the single writer connection, and
//! each of its parts one statement over a JSON array unpacked with `json_each`, whatever the
//! batch's size. Roll-ups are read, added to in Rust and written back inside that transaction;
//! no other connection writes the file, so nothing can interleave.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::FromRow;
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Sqlite};
use steward_core::health::rollup::Rollup;
use steward_store::HealthStore;
use steward_store::StoreError;
use steward_store::codec::{decode_rollup, encode_certificates, encode_conditions, encode_json};
use steward_store::health::{
    CheckRecord, CheckTransition, HealthPruned, MAX_HEALTH_PAGE, NewTransition, ProbeBatch,
    ProbeRecord, TransitionQuery, merge_rollup_increments, verdict_name,
};
use steward_store::rows::{CheckStateRow, ProbeResultRow, TransitionRow};

use crate::SqliteStore;
use crate::audit::append_audit;
use crate::db_err;
use crate::tasks::ms;

#[async_trait]
impl HealthStore for SqliteStore {
    async fn record_probes(&self, batch: &ProbeBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        record(&mut tx, batch).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn check_records(&self) -> Result<Vec<CheckRecord>, StoreError> {
        records(&self.reader).await
    }

    async fn probe_results(
        &self,
        check: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<ProbeRecord>, StoreError> {
        results(&self.reader, check, since_ms, limit).await
    }

    async fn check_rollups(
        &self,
        check: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Rollup>, StoreError> {
        rollups(&self.reader, check, from_ms, to_ms).await
    }

    async fn check_transitions(
        &self,
        query: &TransitionQuery,
    ) -> Result<Vec<CheckTransition>, StoreError> {
        transitions(&self.reader, query).await
    }

    async fn prune_health(
        &self,
        results_before_ms: i64,
        rollups_before_ms: i64,
    ) -> Result<HealthPruned, StoreError> {
        prune(&self.writer, results_before_ms, rollups_before_ms).await
    }
}

/// Rows one pruning statement deletes: each chunk is its own short write transaction, so the
/// prober's batches get the writer in between instead of waiting for the whole pass.
const PRUNE_CHUNK: i64 = 10_000;

/// The columns of a raw result, in the order [`result_from_row`] reads them.
const RESULT_COLUMNS: &str = "check_name, at_ms, verdict, latency_ms, status, cause, error, \
     conditions, cert_not_after_ms, certificates";

/// The columns of a check's state, in the order [`record_from_row`] reads them.
const STATE_COLUMNS: &str = "check_name, service, state, consecutive_failures, \
     consecutive_successes, since_ms, last_probe_ms";

/// The columns of a transition, in the order [`transition_from_row`] reads them.
const TRANSITION_COLUMNS: &str = "id, check_name, service, from_state, to_state, at_ms, reason";

/// Writes a prober batch inside the caller's transaction.
pub(crate) async fn record(
    conn: &mut SqliteConnection,
    batch: &ProbeBatch,
) -> Result<(), StoreError> {
    insert_results(conn, &batch.results).await?;
    add_rollups(conn, &batch.rollups).await?;
    replace_states(conn, &batch.states).await?;
    insert_transitions(conn, &batch.transitions).await?;
    // Last, so that the audit head's lock is held only until the commit.
    for entry in &batch.audit {
        append_audit(conn, entry.clone()).await?;
    }
    Ok(())
}

/// Appends raw results, in batch order.
async fn insert_results(
    conn: &mut SqliteConnection,
    results: &[ProbeRecord],
) -> Result<(), StoreError> {
    if results.is_empty() {
        return Ok(());
    }
    let rows = results
        .iter()
        .map(|r| {
            Ok((
                r.check.as_str(),
                r.at_ms,
                verdict_name(r.verdict),
                ms(r.latency_ms),
                r.status,
                r.cause.as_deref(),
                r.error.as_deref(),
                // Nested as a string, so `->>` hands the column exactly this text.
                encode_conditions(&r.conditions),
                r.cert_not_after_ms,
                encode_certificates(&r.certificates),
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    sqlx::query(
        "INSERT INTO check_results (check_name, at_ms, verdict, latency_ms, status, cause, \
         error, conditions, cert_not_after_ms, certificates) \
         SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, \
         value->>7, value->>8, value->>9 FROM json_each(?) ORDER BY key",
    )
    .bind(encode_json(&rows)?)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Adds roll-up increments to the stored roll-ups of their check and minute.
async fn add_rollups(
    conn: &mut SqliteConnection,
    increments: &[(String, Rollup)],
) -> Result<(), StoreError> {
    // One increment per (check, minute), so each stored row is read and written once.
    let merged = merge_rollup_increments(increments);
    if merged.is_empty() {
        return Ok(());
    }
    let keys: Vec<(&str, i64)> = merged
        .iter()
        .map(|(check, r)| (check.as_str(), r.minute_ms))
        .collect();
    // One JSON row rather than a row per roll-up: the driver hands each result row across
    // threads, which for a few thousand small rows costs more than reading them. The buckets
    // stay a string inside it, so a damaged one is reported as such instead of failing the
    // query.
    let stored: Option<String> = sqlx::query_scalar(
        "SELECT json_group_array(json_array(r.check_name, r.minute_ms, r.count, r.failures, \
         r.buckets)) FROM json_each(?) AS k JOIN check_rollups AS r \
         ON r.check_name = k.value->>0 AND r.minute_ms = k.value->>1",
    )
    .bind(encode_json(&keys)?)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    let stored: Vec<(String, i64, i64, i64, String)> =
        serde_json::from_str(stored.as_deref().unwrap_or("[]"))
            .map_err(|e| StoreError::Corrupt(format!("check roll-ups: {e}")))?;
    let mut existing = HashMap::with_capacity(stored.len());
    for (check, minute_ms, count, failures, buckets) in stored {
        let rollup = decode_rollup(&check, minute_ms, count, failures, &buckets)?;
        existing.insert((check, minute_ms), rollup);
    }
    let rows = merged
        .into_iter()
        .map(|(check, increment)| {
            let total = match existing.remove(&(check.clone(), increment.minute_ms)) {
                Some(mut total) => {
                    total.merge(&increment);
                    total
                }
                None => increment,
            };
            Ok((
                check,
                total.minute_ms,
                ms(total.count),
                ms(total.failures),
                encode_json(&total.buckets)?,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT, not a join.
    sqlx::query(
        "INSERT INTO check_rollups (check_name, minute_ms, count, failures, buckets) \
         SELECT value->>0, value->>1, value->>2, value->>3, value->>4 FROM json_each(?) \
         WHERE true ON CONFLICT (check_name, minute_ms) DO UPDATE SET \
         count = excluded.count, failures = excluded.failures, buckets = excluded.buckets",
    )
    .bind(encode_json(&rows)?)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Replaces the states of the batch's checks; a check listed twice ends with its last state
/// (the rows are applied in batch order).
async fn replace_states(
    conn: &mut SqliteConnection,
    states: &[CheckRecord],
) -> Result<(), StoreError> {
    if states.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = states
        .iter()
        .map(|s| {
            (
                s.check.as_str(),
                s.service.as_str(),
                s.state.as_str(),
                s.consecutive_failures,
                s.consecutive_successes,
                s.since_ms,
                s.last_probe_ms,
            )
        })
        .collect();
    sqlx::query(
        "INSERT INTO check_state (check_name, service, state, consecutive_failures, \
         consecutive_successes, since_ms, last_probe_ms) \
         SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6 \
         FROM json_each(?) WHERE true ORDER BY key ON CONFLICT (check_name) DO UPDATE SET \
         service = excluded.service, state = excluded.state, \
         consecutive_failures = excluded.consecutive_failures, \
         consecutive_successes = excluded.consecutive_successes, \
         since_ms = excluded.since_ms, last_probe_ms = excluded.last_probe_ms",
    )
    .bind(encode_json(&rows)?)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Appends transitions; ids increase in batch order.
async fn insert_transitions(
    conn: &mut SqliteConnection,
    transitions: &[NewTransition],
) -> Result<(), StoreError> {
    if transitions.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = transitions
        .iter()
        .map(|t| {
            (
                t.check.as_str(),
                t.service.as_str(),
                t.from.as_str(),
                t.to.as_str(),
                t.at_ms,
                t.reason.as_str(),
            )
        })
        .collect();
    sqlx::query(
        "INSERT INTO check_transitions (check_name, service, from_state, to_state, at_ms, \
         reason) SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5 \
         FROM json_each(?) ORDER BY key",
    )
    .bind(encode_json(&rows)?)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Every check's state, by check name.
pub(crate) async fn records(pool: &SqlitePool) -> Result<Vec<CheckRecord>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {STATE_COLUMNS} FROM check_state ORDER BY check_name"
    ))
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(record_from_row).collect()
}

/// A check's raw results since `since_ms`, newest first.
pub(crate) async fn results(
    pool: &SqlitePool,
    check: &str,
    since_ms: i64,
    limit: u32,
) -> Result<Vec<ProbeRecord>, StoreError> {
    // The index on (check_name, at_ms) also orders by rowid: read backwards, it gives this
    // order without sorting.
    let rows = sqlx::query(&format!(
        "SELECT {RESULT_COLUMNS} FROM check_results WHERE check_name = ? AND at_ms >= ? \
         ORDER BY at_ms DESC, id DESC LIMIT ?"
    ))
    .bind(check)
    .bind(since_ms)
    .bind(i64::from(limit.min(MAX_HEALTH_PAGE)))
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(result_from_row).collect()
}

/// A check's roll-ups of the minutes in `[from_ms, to_ms)`, oldest first.
pub(crate) async fn rollups(
    pool: &SqlitePool,
    check: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Rollup>, StoreError> {
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(steward_store::sql::CHECK_ROLLUPS)
        .bind(check)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.into_iter()
        .map(|(minute_ms, count, failures, buckets)| {
            decode_rollup(check, minute_ms, count, failures, &buckets)
        })
        .collect()
}

/// Transitions matching `query`, newest first.
pub(crate) async fn transitions(
    pool: &SqlitePool,
    query: &TransitionQuery,
) -> Result<Vec<CheckTransition>, StoreError> {
    // Only the filters given are written into the statement, so that SQLite can pick the
    // matching index (an `? IS NULL OR …` filter would keep it from using any).
    let mut select = QueryBuilder::<Sqlite>::new(format!(
        "SELECT {TRANSITION_COLUMNS} FROM check_transitions WHERE id < "
    ));
    select.push_bind(query.before_id.unwrap_or(i64::MAX));
    if let Some(check) = &query.check {
        select.push(" AND check_name = ").push_bind(check);
    }
    if let Some(service) = &query.service {
        select.push(" AND service = ").push_bind(service);
    }
    select
        .push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(query.limit.min(MAX_HEALTH_PAGE)));
    let rows = select.build().fetch_all(pool).await.map_err(db_err)?;
    rows.iter().map(transition_from_row).collect()
}

/// Deletes raw results before `results_before_ms`, and roll-ups and transitions before
/// `rollups_before_ms`, in chunks of [`PRUNE_CHUNK`] rows. Each chunk commits on its own: a
/// failure part-way leaves a partly pruned store, which the next pass finishes.
pub(crate) async fn prune(
    pool: &SqlitePool,
    results_before_ms: i64,
    rollups_before_ms: i64,
) -> Result<HealthPruned, StoreError> {
    Ok(HealthPruned {
        results: prune_chunks(
            pool,
            "DELETE FROM check_results WHERE id IN \
             (SELECT id FROM check_results WHERE at_ms < ?1 LIMIT ?2)",
            results_before_ms,
        )
        .await?,
        rollups: prune_chunks(
            pool,
            "DELETE FROM check_rollups WHERE (check_name, minute_ms) IN \
             (SELECT check_name, minute_ms FROM check_rollups WHERE minute_ms < ?1 LIMIT ?2)",
            rollups_before_ms,
        )
        .await?,
        transitions: prune_chunks(
            pool,
            "DELETE FROM check_transitions WHERE id IN \
             (SELECT id FROM check_transitions WHERE at_ms < ?1 LIMIT ?2)",
            rollups_before_ms,
        )
        .await?,
    })
}

/// Runs `delete` (bound to the cut-off and the chunk size) until a chunk comes back short.
async fn prune_chunks(
    pool: &SqlitePool,
    delete: &'static str,
    before_ms: i64,
) -> Result<u64, StoreError> {
    let mut total = 0u64;
    loop {
        let deleted = sqlx::query(delete)
            .bind(before_ms)
            .bind(PRUNE_CHUNK)
            .execute(pool)
            .await
            .map_err(db_err)?
            .rows_affected();
        total = total.saturating_add(deleted);
        if deleted < PRUNE_CHUNK.unsigned_abs() {
            return Ok(total);
        }
    }
}

fn result_from_row(row: &SqliteRow) -> Result<ProbeRecord, StoreError> {
    ProbeResultRow::from_row(row).map_err(db_err)?.try_into()
}

fn record_from_row(row: &SqliteRow) -> Result<CheckRecord, StoreError> {
    CheckStateRow::from_row(row).map_err(db_err)?.try_into()
}

fn transition_from_row(row: &SqliteRow) -> Result<CheckTransition, StoreError> {
    TransitionRow::from_row(row).map_err(db_err)?.try_into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use sqlx::Connection;
    use steward_core::health::state::{CheckState, ProbeVerdict};
    use steward_store::prelude::*;

    use super::*;
    use crate::SqliteStore;
    use steward_store::conformance::assert_corrupt;

    /// A store holding one result, roll-up, state and transition of check `c`, and a raw
    /// connection to its file.
    async fn store_with_one_of_each() -> (tempfile::TempDir, SqliteStore, sqlx::SqliteConnection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).await.expect("open");
        store.migrate().await.expect("migrate");
        let mut rollup = Rollup::new(60_000);
        rollup.record(5, true);
        let batch = ProbeBatch {
            results: vec![ProbeRecord {
                check: "c".into(),
                at_ms: 60_000,
                verdict: ProbeVerdict::Pass,
                latency_ms: 5,
                status: Some(200),
                cause: None,
                error: None,
                conditions: vec![(true, "[STATUS] (200) == 200".into())],
                cert_not_after_ms: None,
                certificates: Vec::new(),
            }],
            rollups: vec![("c".into(), rollup.clone())],
            states: vec![CheckRecord {
                check: "c".into(),
                service: "s".into(),
                state: CheckState::Up,
                consecutive_failures: 0,
                consecutive_successes: 1,
                since_ms: 60_000,
                last_probe_ms: Some(60_000),
            }],
            transitions: Vec::new(),
            audit: Vec::new(),
        };
        store.record_probes(&batch).await.expect("record");
        let url = format!("sqlite://{}", store.path().display());
        let raw = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("raw connection");
        (dir, store, raw)
    }

    async fn tamper(raw: &mut sqlx::SqliteConnection, sql: &str) {
        sqlx::raw_sql(sql).execute(&mut *raw).await.expect(sql);
    }

    #[tokio::test]
    async fn damaged_rows_are_reported_as_corrupt() {
        let (_dir, store, mut raw) = store_with_one_of_each().await;
        tamper(&mut raw, "UPDATE check_results SET conditions = '[[true'").await;
        assert_corrupt("conditions", store.probe_results("c", 0, 10).await);
        tamper(
            &mut raw,
            "UPDATE check_results SET conditions = '[]', latency_ms = -1",
        )
        .await;
        assert_corrupt("latency", store.probe_results("c", 0, 10).await);
        tamper(&mut raw, "UPDATE check_state SET consecutive_failures = -1").await;
        assert_corrupt("state counter", store.check_records().await);
        tamper(&mut raw, "UPDATE check_rollups SET buckets = 'not json'").await;
        assert_corrupt("buckets", store.check_rollups("c", 0, i64::MAX).await);
        // A batch adding to the damaged roll-up fails as a whole, rather than overwrite it.
        let mut increment = Rollup::new(60_000);
        increment.record(7, false);
        let batch = ProbeBatch {
            rollups: vec![("c".into(), increment)],
            ..ProbeBatch::default()
        };
        assert_corrupt("adding to buckets", store.record_probes(&batch).await);
        tamper(
            &mut raw,
            "UPDATE check_rollups SET buckets = '[1]', count = -3",
        )
        .await;
        assert_corrupt("roll-up count", store.check_rollups("c", 0, i64::MAX).await);
        raw.close().await.expect("close raw");
        store.close().await;
    }
}
