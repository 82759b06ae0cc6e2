//! The periodic reads under a long history: the per-call time of the reads every instance
//! makes on a timer (the depth gauges' task counts, the schedule rule's latest runs) with
//! millions of finished tasks and runs retained, which must cost what they cost on an empty
//! database.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use steward_store::Store;

/// What to store before measuring, and how often to measure.
pub struct HistoryBench {
    /// Finished tasks stored.
    pub tasks: u64,
    /// Schedule runs stored (spread over 100 schedules).
    pub runs: u64,
    /// Calls of each read measured.
    pub calls: usize,
}

/// Times each periodic read on `store`, which holds the history [`Seed`] wrote.
pub async fn run(store: Arc<dyn Store>, bench: &HistoryBench) -> anyhow::Result<()> {
    // One call first: the first fold takes whatever the seeding left behind.
    store.task_counts().await?;
    let counts = time_calls(bench.calls, || store.task_counts()).await?;
    report("task_counts", &counts);
    let latest = time_calls(bench.calls, || store.last_schedule_runs()).await?;
    report("last_schedule_runs", &latest);
    Ok(())
}

/// Where to write the history: the SQLite file (before the store opens it) or the PostgreSQL
/// database.
pub enum Seed<'a> {
    /// The SQLite database file.
    Sqlite(&'a std::path::Path),
    /// The PostgreSQL database's URL.
    Postgres(&'a str),
}

impl Seed<'_> {
    /// Writes `tasks` finished tasks over four queues and `runs` schedule runs over 100
    /// schedules through the backend's own SQL (millions of rows through the API would take
    /// hours).
    pub async fn tasks_and_runs(&self, tasks: u64, runs: u64) -> anyhow::Result<()> {
        let started = Instant::now();
        self.write(tasks, runs).await?;
        println!(
            "stored {tasks} finished tasks and {runs} schedule runs in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    async fn write(&self, tasks: u64, runs: u64) -> anyhow::Result<()> {
        let tasks = i64::try_from(tasks).context("--tasks")?;
        let runs = i64::try_from(runs).context("--runs")?;
        let now = steward_store::now_ms();
        match self {
            Seed::Sqlite(path) => {
                use sqlx::Connection;
                let url = format!("sqlite://{}", path.display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await?;
                for statement in [
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
                     INSERT INTO tasks (queue, kind, payload, priority, status, attempt, \
                     max_attempts, run_at_ms, created_at_ms, started_at_ms, finished_at_ms) \
                     SELECT 'q' || (i % 4), 'noop', '{}', 0, 'succeeded', 1, 3, ?2 - i, ?2 - i, \
                     ?2 - i, ?2 - i FROM n",
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?3) \
                     INSERT INTO schedule_runs (schedule, slot_ms, trigger, status, fired_at_ms) \
                     SELECT 's' || (i % 100), ?2 - i, 'slot', 'skipped', ?2 - i FROM n",
                ] {
                    sqlx::query(statement)
                        .bind(tasks)
                        .bind(now)
                        .bind(runs)
                        .execute(&mut conn)
                        .await?;
                }
                conn.close().await?;
            }
            Seed::Postgres(url) => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(url).await?;
                for statement in [
                    "INSERT INTO tasks (queue, kind, payload, priority, status, attempt, \
                     max_attempts, run_at_ms, created_at_ms, started_at_ms, finished_at_ms) \
                     SELECT 'q' || (i % 4), 'noop', '{}', 0, 'succeeded', 1, 3, $2 - i, $2 - i, \
                     $2 - i, $2 - i FROM generate_series(1::bigint, $1) AS i",
                    "INSERT INTO schedule_runs (schedule, slot_ms, trigger, status, fired_at_ms) \
                     SELECT 's' || (i % 100), $2 - i, 'slot', 'skipped', $2 - i \
                     FROM generate_series(1::bigint, $3) AS i",
                ] {
                    sqlx::query(statement)
                        .bind(tasks)
                        .bind(now)
                        .bind(runs)
                        .execute(&mut conn)
                        .await?;
                }
                // Fresh statistics, as autovacuum would leave them in a long-lived database.
                sqlx::query("VACUUM ANALYZE tasks, schedule_runs")
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
            }
        }
        Ok(())
    }
}

/// The time of each of `calls` calls, in milliseconds.
async fn time_calls<T, F, Fut>(calls: usize, mut call: F) -> anyhow::Result<Vec<f64>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, steward_store::StoreError>>,
{
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls.max(1) {
        let started = Instant::now();
        call().await?;
        times.push(started.elapsed().as_secs_f64() * 1_000.0);
    }
    Ok(times)
}

fn report(read: &str, times: &[f64]) {
    println!(
        "{read}: {} calls, median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        times.len(),
        crate::percentile(times, 0.5),
        crate::percentile(times, 0.9),
        crate::percentile(times, 1.0)
    );
}
