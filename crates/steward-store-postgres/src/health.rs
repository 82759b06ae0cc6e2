//! Health checks' results on PostgreSQL: raw probe results, per-minute roll-ups, each check's
//! state and its transitions. A prober batch is one transaction and each of its parts one
//! statement over arrays unpacked with `unnest`, whatever the batch's size. Batches take a
//! transaction-scoped advisory lock first, so that the read-add-write of roll-ups (and the
//! order of states and transitions) holds even if two instances write at once, e.g. while the
//! prober's lease changes hands.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::FromRow;
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder};
use steward_core::health::rollup::Rollup;
use steward_store::HealthStore;
use steward_store::StoreError;
use steward_store::codec::{decode_rollup, encode_certificates, encode_conditions, encode_json};
use steward_store::health::{
    CheckRecord, CheckTransition, HealthPruned, MAX_HEALTH_PAGE, NewTransition, ProbeBatch,
    ProbeRecord, TransitionQuery, merge_rollup_increments, verdict_name,
};
use steward_store::rows::{CheckStateRow, ProbeResultRow, TransitionRow};

use crate::audit::append_audit;
use crate::db_err;
use crate::tasks::ms;
use crate::{PostgresStore, settle};

#[async_trait]
impl HealthStore for PostgresStore {
    async fn record_probes(&self, batch: &ProbeBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = record(&mut tx, batch).await;
        settle(result, tx).await
    }

    async fn check_records(&self) -> Result<Vec<CheckRecord>, StoreError> {
        records(&self.pool).await
    }

    async fn probe_results(
        &self,
        check: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<ProbeRecord>, StoreError> {
        results(&self.pool, check, since_ms, limit).await
    }

    async fn check_rollups(
        &self,
        check: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Rollup>, StoreError> {
        rollups(&self.pool, check, from_ms, to_ms).await
    }

    async fn check_transitions(
        &self,
        query: &TransitionQuery,
    ) -> Result<Vec<CheckTransition>, StoreError> {
        transitions(&self.pool, query).await
    }

    async fn prune_health(
        &self,
        results_before_ms: i64,
        rollups_before_ms: i64,
    ) -> Result<HealthPruned, StoreError> {
        prune(&self.pool, results_before_ms, rollups_before_ms).await
    }
}

/// The advisory lock key that serialises prober batches across instances ("stewhlt" in ASCII).
const HEALTH_WRITE_LOCK: i64 = 0x0073_7465_7768_6c74;

/// Rows one pruning statement deletes: each chunk is its own short transaction, so no pass
/// holds locks on (or bloats one transaction with) a day of results.
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
pub(crate) async fn record(conn: &mut PgConnection, batch: &ProbeBatch) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(HEALTH_WRITE_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
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
    conn: &mut PgConnection,
    results: &[ProbeRecord],
) -> Result<(), StoreError> {
    if results.is_empty() {
        return Ok(());
    }
    let checks: Vec<&str> = results.iter().map(|r| r.check.as_str()).collect();
    let at: Vec<i64> = results.iter().map(|r| r.at_ms).collect();
    let verdicts: Vec<&str> = results.iter().map(|r| verdict_name(r.verdict)).collect();
    let latencies: Vec<i64> = results.iter().map(|r| ms(r.latency_ms)).collect();
    let statuses: Vec<Option<i32>> = results.iter().map(|r| r.status.map(i32::from)).collect();
    let causes: Vec<Option<&str>> = results.iter().map(|r| r.cause.as_deref()).collect();
    let errors: Vec<Option<&str>> = results.iter().map(|r| r.error.as_deref()).collect();
    let conditions: Vec<String> = results
        .iter()
        .map(|r| encode_conditions(&r.conditions))
        .collect();
    let certs: Vec<Option<i64>> = results.iter().map(|r| r.cert_not_after_ms).collect();
    let certificates: Vec<Option<String>> = results
        .iter()
        .map(|r| encode_certificates(&r.certificates))
        .collect();
    sqlx::query(
        "INSERT INTO check_results (check_name, at_ms, verdict, latency_ms, status, cause, \
         error, conditions, cert_not_after_ms, certificates) \
         SELECT c, a, v, l, s, ca, e, co, ce, cs \
         FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::int[], \
         $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[]) WITH ORDINALITY \
         AS n(c, a, v, l, s, ca, e, co, ce, cs, ord) ORDER BY ord",
    )
    .bind(&checks)
    .bind(&at)
    .bind(&verdicts)
    .bind(&latencies)
    .bind(&statuses)
    .bind(&causes)
    .bind(&errors)
    .bind(&conditions)
    .bind(&certs)
    .bind(&certificates)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Adds roll-up increments to the stored roll-ups of their check and minute. The stored rows
/// are read under the batch's advisory lock, so no other batch adds to them in between.
async fn add_rollups(
    conn: &mut PgConnection,
    increments: &[(String, Rollup)],
) -> Result<(), StoreError> {
    // One increment per (check, minute): each stored row is read and written once, and an
    // upsert may not touch a row twice.
    let merged = merge_rollup_increments(increments);
    if merged.is_empty() {
        return Ok(());
    }
    let checks: Vec<&str> = merged.iter().map(|(check, _)| check.as_str()).collect();
    let minutes: Vec<i64> = merged.iter().map(|(_, r)| r.minute_ms).collect();
    let stored: Vec<(String, i64, i64, i64, String)> = sqlx::query_as(
        "SELECT r.check_name, r.minute_ms, r.count, r.failures, r.buckets \
         FROM unnest($1::text[], $2::bigint[]) AS k(c, m) \
         JOIN check_rollups AS r ON r.check_name = k.c AND r.minute_ms = k.m",
    )
    .bind(&checks)
    .bind(&minutes)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let mut existing = HashMap::with_capacity(stored.len());
    for (check, minute_ms, count, failures, buckets) in stored {
        let rollup = decode_rollup(&check, minute_ms, count, failures, &buckets)?;
        existing.insert((check, minute_ms), rollup);
    }
    let mut counts = Vec::with_capacity(merged.len());
    let mut failures = Vec::with_capacity(merged.len());
    let mut buckets = Vec::with_capacity(merged.len());
    for (check, increment) in &merged {
        let total = match existing.remove(&(check.clone(), increment.minute_ms)) {
            Some(mut total) => {
                total.merge(increment);
                total
            }
            None => increment.clone(),
        };
        counts.push(ms(total.count));
        failures.push(ms(total.failures));
        buckets.push(encode_json(&total.buckets)?);
    }
    sqlx::query(
        "INSERT INTO check_rollups (check_name, minute_ms, count, failures, buckets) \
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[]) \
         ON CONFLICT (check_name, minute_ms) DO UPDATE SET count = excluded.count, \
         failures = excluded.failures, buckets = excluded.buckets",
    )
    .bind(&checks)
    .bind(&minutes)
    .bind(&counts)
    .bind(&failures)
    .bind(&buckets)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Replaces the states of the batch's checks; a check listed twice ends with its last state.
async fn replace_states(conn: &mut PgConnection, states: &[CheckRecord]) -> Result<(), StoreError> {
    // An upsert may not touch a row twice, so only each check's last state is written.
    let mut last: HashMap<&str, &CheckRecord> = HashMap::with_capacity(states.len());
    for state in states {
        last.insert(state.check.as_str(), state);
    }
    if last.is_empty() {
        return Ok(());
    }
    let latest: Vec<&CheckRecord> = last.into_values().collect();
    let column = |f: fn(&CheckRecord) -> i64| latest.iter().map(|s| f(s)).collect::<Vec<_>>();
    let checks: Vec<&str> = latest.iter().map(|s| s.check.as_str()).collect();
    let services: Vec<&str> = latest.iter().map(|s| s.service.as_str()).collect();
    let names: Vec<&str> = latest.iter().map(|s| s.state.as_str()).collect();
    let last_probes: Vec<Option<i64>> = latest.iter().map(|s| s.last_probe_ms).collect();
    sqlx::query(
        "INSERT INTO check_state (check_name, service, state, consecutive_failures, \
         consecutive_successes, since_ms, last_probe_ms) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], \
         $6::bigint[], $7::bigint[]) \
         ON CONFLICT (check_name) DO UPDATE SET service = excluded.service, \
         state = excluded.state, consecutive_failures = excluded.consecutive_failures, \
         consecutive_successes = excluded.consecutive_successes, \
         since_ms = excluded.since_ms, last_probe_ms = excluded.last_probe_ms",
    )
    .bind(&checks)
    .bind(&services)
    .bind(&names)
    .bind(column(|s| i64::from(s.consecutive_failures)))
    .bind(column(|s| i64::from(s.consecutive_successes)))
    .bind(column(|s| s.since_ms))
    .bind(&last_probes)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Appends transitions; ids increase in batch order.
async fn insert_transitions(
    conn: &mut PgConnection,
    transitions: &[NewTransition],
) -> Result<(), StoreError> {
    if transitions.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&NewTransition) -> &str| transitions.iter().map(f).collect::<Vec<_>>();
    let at: Vec<i64> = transitions.iter().map(|t| t.at_ms).collect();
    sqlx::query(
        "INSERT INTO check_transitions (check_name, service, from_state, to_state, at_ms, \
         reason) SELECT c, s, f, t, a, r FROM unnest($1::text[], $2::text[], $3::text[], \
         $4::text[], $5::bigint[], $6::text[]) WITH ORDINALITY AS n(c, s, f, t, a, r, ord) \
         ORDER BY ord",
    )
    .bind(text(|t| t.check.as_str()))
    .bind(text(|t| t.service.as_str()))
    .bind(text(|t| t.from.as_str()))
    .bind(text(|t| t.to.as_str()))
    .bind(&at)
    .bind(text(|t| t.reason.as_str()))
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Every check's state, by check name.
pub(crate) async fn records(pool: &PgPool) -> Result<Vec<CheckRecord>, StoreError> {
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
    pool: &PgPool,
    check: &str,
    since_ms: i64,
    limit: u32,
) -> Result<Vec<ProbeRecord>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {RESULT_COLUMNS} FROM check_results WHERE check_name = $1 AND at_ms >= $2 \
         ORDER BY at_ms DESC, id DESC LIMIT $3"
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
    pool: &PgPool,
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
    pool: &PgPool,
    query: &TransitionQuery,
) -> Result<Vec<CheckTransition>, StoreError> {
    // Only the filters given are written into the statement, so that the planner can pick the
    // matching index (a `$1 IS NULL OR …` filter keeps a generic plan from using any).
    let mut select = QueryBuilder::<Postgres>::new(format!(
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
    pool: &PgPool,
    results_before_ms: i64,
    rollups_before_ms: i64,
) -> Result<HealthPruned, StoreError> {
    Ok(HealthPruned {
        results: prune_chunks(
            pool,
            "DELETE FROM check_results WHERE id = ANY(ARRAY(\
             SELECT id FROM check_results WHERE at_ms < $1 LIMIT $2))",
            results_before_ms,
        )
        .await?,
        rollups: prune_chunks(
            pool,
            "DELETE FROM check_rollups WHERE (check_name, minute_ms) IN (\
             SELECT check_name, minute_ms FROM check_rollups WHERE minute_ms < $1 LIMIT $2)",
            rollups_before_ms,
        )
        .await?,
        transitions: prune_chunks(
            pool,
            "DELETE FROM check_transitions WHERE id = ANY(ARRAY(\
             SELECT id FROM check_transitions WHERE at_ms < $1 LIMIT $2))",
            rollups_before_ms,
        )
        .await?,
    })
}

/// Runs `delete` (bound to the cut-off and the chunk size) until a chunk comes back short.
async fn prune_chunks(
    pool: &PgPool,
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

fn result_from_row(row: &PgRow) -> Result<ProbeRecord, StoreError> {
    ProbeResultRow::from_row(row).map_err(db_err)?.try_into()
}

fn record_from_row(row: &PgRow) -> Result<CheckRecord, StoreError> {
    CheckStateRow::from_row(row).map_err(db_err)?.try_into()
}

fn transition_from_row(row: &PgRow) -> Result<CheckTransition, StoreError> {
    TransitionRow::from_row(row).map_err(db_err)?.try_into()
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]
    use steward_store::prelude::*;

    use sqlx::Connection;
    use steward_core::health::state::{CheckState, ProbeVerdict};

    use super::*;
    use crate::testing::TestDatabase;
    use steward_store::conformance::assert_corrupt;

    async fn tamper(raw: &mut sqlx::PgConnection, sql: &str) {
        sqlx::raw_sql(sql).execute(&mut *raw).await.expect(sql);
    }

    #[tokio::test]
    async fn damaged_rows_are_reported_as_corrupt() {
        let Some(db) = TestDatabase::create().await else {
            return;
        };
        let store = db.migrated_store(4).await;
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
            rollups: vec![("c".into(), rollup)],
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
        let mut raw = sqlx::PgConnection::connect(&db.url)
            .await
            .expect("raw connection");

        tamper(&mut raw, "UPDATE check_results SET conditions = '[[true'").await;
        assert_corrupt("conditions", store.probe_results("c", 0, 10).await);
        tamper(
            &mut raw,
            "UPDATE check_results SET conditions = '[]', status = 70000",
        )
        .await;
        assert_corrupt("HTTP status", store.probe_results("c", 0, 10).await);
        tamper(
            &mut raw,
            "UPDATE check_state SET consecutive_successes = -1",
        )
        .await;
        assert_corrupt("state counter", store.check_records().await);
        tamper(&mut raw, "UPDATE check_rollups SET buckets = '{}'").await;
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
            "UPDATE check_rollups SET buckets = '[1]', failures = -3",
        )
        .await;
        assert_corrupt(
            "roll-up failures",
            store.check_rollups("c", 0, i64::MAX).await,
        );
        raw.close().await.expect("close raw");
        store.close().await;
    }
}
