//! The scheduler's state on PostgreSQL, shared by every instance: leases decide which one
//! fires (their expiry is read on the database's clock, so instances' clocks need not agree),
//! a fire batch checks its lease and locks its schedules' states in the transaction that
//! enqueues, so a deposed leader can never fire a slot twice. Batches travel as arrays.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::FromRow;
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use steward_core::audit::Actor;
use steward_core::schedule::PingStatus;
use steward_store::ScheduleStore;
use steward_store::rows::{HeartbeatRow, LeaseRow, ScheduleRunRow, ScheduleStateRow};
use steward_store::schedules::{
    HeartbeatRecord, HeartbeatTransition, Lease, MAX_EXPECT_WITHIN_MS, MAX_RUN_PAGE, RunQuery,
    ScheduleRun, ScheduleState, ScheduleTick, TickPlan, TickResult, lease_lost, not_found,
    open_by_schedule, plan_ticks, run_task_ids, tick_results, watched_schedules,
};
use steward_store::sql::RUN_COLUMNS;
use steward_store::{Enqueued, StoreError, now_ms};

use crate::tasks::ms;
use crate::{PostgresStore, settle};
use crate::{audit::append_audit, db_err, tasks};

#[async_trait]
impl ScheduleStore for PostgresStore {
    async fn register_schedules(
        &self,
        names: &[String],
        now_ms: i64,
    ) -> Result<Vec<ScheduleState>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = register_schedules(&mut tx, names, now_ms).await;
        settle(result, tx).await
    }

    async fn schedule_states(&self) -> Result<Vec<ScheduleState>, StoreError> {
        schedule_states(&self.pool).await
    }

    async fn fire_schedules(
        &self,
        lease: Option<&Lease>,
        ticks: &[ScheduleTick],
        actor: &Actor,
    ) -> Result<Vec<TickResult>, StoreError> {
        if ticks.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = fire(&mut tx, lease, ticks, actor).await;
        settle(result, tx).await.map(|(results, _)| results)
    }

    async fn set_schedule_paused(
        &self,
        name: &str,
        workspace: Option<&str>,
        paused: bool,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<ScheduleState, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = set_paused(&mut tx, name, workspace, paused, now_ms, actor).await;
        settle(result, tx).await
    }

    async fn purge_schedule_runs(
        &self,
        taskless_before_ms: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        purge_runs(&self.pool, taskless_before_ms, limit).await
    }

    async fn schedule_runs(&self, query: &RunQuery) -> Result<Vec<ScheduleRun>, StoreError> {
        runs(&self.pool, query).await
    }

    async fn last_schedule_runs(&self) -> Result<Vec<ScheduleRun>, StoreError> {
        last_runs(&self.pool).await
    }

    async fn flag_overdue_runs(
        &self,
        schedule: &str,
        within_ms: u64,
        now_ms: i64,
    ) -> Result<Vec<ScheduleRun>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = flag_overdue(&mut tx, schedule, within_ms, now_ms).await;
        settle(result, tx).await
    }

    async fn register_heartbeats(
        &self,
        names: &[String],
        now_ms: i64,
    ) -> Result<Vec<HeartbeatRecord>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = register_heartbeats(&mut tx, names, now_ms).await;
        settle(result, tx).await
    }

    async fn record_ping(
        &self,
        name: &str,
        status: PingStatus,
        at_ms: i64,
    ) -> Result<HeartbeatRecord, StoreError> {
        record_ping(&self.pool, name, status, at_ms).await
    }

    async fn heartbeat_records(&self) -> Result<Vec<HeartbeatRecord>, StoreError> {
        heartbeat_records(&self.pool).await
    }

    async fn set_heartbeat_state(
        &self,
        change: &HeartbeatTransition,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let result = set_heartbeat_state(&mut tx, change, actor).await;
        settle(result, tx).await
    }
}

/// Takes or renews a lease.
pub(crate) async fn acquire_lease(
    pool: &PgPool,
    role: &str,
    holder: &str,
    ttl_ms: u64,
) -> Result<Option<Lease>, StoreError> {
    let row = sqlx::query(
        "INSERT INTO leases (role, holder, fence, expires_at_ms, acquired_at_ms) \
         SELECT $1, $2, 1, n + $3, n FROM (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS n) AS clock \
         ON CONFLICT (role) DO UPDATE SET \
         fence = CASE WHEN leases.holder = excluded.holder THEN leases.fence \
                      ELSE leases.fence + 1 END, \
         acquired_at_ms = CASE WHEN leases.holder = excluded.holder \
                               THEN leases.acquired_at_ms ELSE excluded.acquired_at_ms END, \
         holder = excluded.holder, expires_at_ms = excluded.expires_at_ms \
         WHERE leases.holder = excluded.holder OR leases.expires_at_ms <= excluded.acquired_at_ms \
         RETURNING role, holder, fence, expires_at_ms",
    )
    .bind(role)
    .bind(holder)
    .bind(ms(ttl_ms))
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    row.as_ref().map(lease_from_row).transpose()
}

/// Lets a lease lapse at once.
pub(crate) async fn release_lease(
    pool: &PgPool,
    role: &str,
    holder: &str,
) -> Result<(), StoreError> {
    sqlx::query(steward_store::sql::RELEASE_LEASE)
        .bind(role)
        .bind(holder)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// The recorded lease on `role`.
pub(crate) async fn current_lease(pool: &PgPool, role: &str) -> Result<Option<Lease>, StoreError> {
    let row = sqlx::query(steward_store::sql::LEASE)
        .bind(role)
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    row.as_ref().map(lease_from_row).transpose()
}

fn lease_from_row(row: &PgRow) -> Result<Lease, StoreError> {
    Ok(LeaseRow::from_row(row).map_err(db_err)?.into())
}

/// Fails unless `lease` is still the current, unexpired one.
pub(crate) async fn check_lease(conn: &mut PgConnection, lease: &Lease) -> Result<(), StoreError> {
    let held: Option<i64> = sqlx::query_scalar(
        "SELECT fence FROM leases WHERE role = $1 AND holder = $2 AND fence = $3 \
         AND expires_at_ms > (extract(epoch FROM clock_timestamp()) * 1000)::bigint FOR SHARE",
    )
    .bind(&lease.role)
    .bind(&lease.holder)
    .bind(lease.fence)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    match held {
        Some(_) => Ok(()),
        None => Err(lease_lost(lease)),
    }
}

const STATE_COLUMNS: &str = "name, paused, cursor_ms, changed_at_ms, changed_by";

/// Creates missing states (cursor at `now_ms`) and returns the states of `names`, locked
/// until the caller's transaction ends.
pub(crate) async fn register_schedules(
    conn: &mut PgConnection,
    names: &[String],
    now_ms: i64,
) -> Result<Vec<ScheduleState>, StoreError> {
    sqlx::query(
        "INSERT INTO schedule_state (name, cursor_ms, changed_at_ms) \
         SELECT n, $1, $1 FROM unnest($2::text[]) AS n ON CONFLICT (name) DO NOTHING",
    )
    .bind(now_ms)
    .bind(names)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    states_of(conn, names).await.map(|m| {
        names
            .iter()
            .filter_map(|n| m.get(n).cloned())
            .collect::<Vec<_>>()
    })
}

async fn states_of(
    conn: &mut PgConnection,
    names: &[String],
) -> Result<HashMap<String, ScheduleState>, StoreError> {
    // FOR UPDATE: a fire batch holds its schedules until it commits, so a concurrent one
    // sees the cursors it moved.
    let rows = sqlx::query(&format!(
        "SELECT {STATE_COLUMNS} FROM schedule_state WHERE name = ANY($1) ORDER BY name FOR UPDATE"
    ))
    .bind(names)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|row| state_from_row(row).map(|s| (s.name.clone(), s)))
        .collect()
}

/// Every recorded state.
pub(crate) async fn schedule_states(pool: &PgPool) -> Result<Vec<ScheduleState>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {STATE_COLUMNS} FROM schedule_state ORDER BY name"
    ))
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(state_from_row).collect()
}

fn state_from_row(row: &PgRow) -> Result<ScheduleState, StoreError> {
    Ok(ScheduleStateRow::from_row(row).map_err(db_err)?.into())
}

/// Applies a batch of ticks inside the caller's transaction; returns the results and the
/// queues that received tasks.
pub(crate) async fn fire(
    conn: &mut PgConnection,
    lease: Option<&Lease>,
    ticks: &[ScheduleTick],
    actor: &Actor,
) -> Result<(Vec<TickResult>, Vec<String>), StoreError> {
    if let Some(lease) = lease {
        check_lease(conn, lease).await?;
    }
    let names: Vec<String> = ticks.iter().map(|t| t.schedule.clone()).collect();
    let states = states_of(conn, &names).await?;
    let open = open_tasks(conn, ticks).await?;
    let plan = plan_ticks(ticks, &states, &open);
    for &id in &plan.cancel {
        match tasks::cancel(conn, id, actor).await {
            // Finished since it was read: there is nothing left to replace.
            Ok(_) | Err(StoreError::State(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let enqueued: Vec<Enqueued> = if plan.enqueue.is_empty() {
        Vec::new()
    } else {
        tasks::enqueue(conn, &plan.enqueue, actor).await?
    };
    insert_runs(conn, &plan, &enqueued).await?;
    move_cursors(conn, &plan).await?;
    let results = tick_results(ticks, &plan, &enqueued);
    if lease.is_none() {
        audit_manual_fires(conn, ticks, &results, actor).await?;
    }
    let queues = plan.enqueue.iter().map(|t| t.queue.clone()).collect();
    Ok((results, queues))
}

/// The unfinished tasks of the ticks' schedules whose overlap policy looks at them.
async fn open_tasks(
    conn: &mut PgConnection,
    ticks: &[ScheduleTick],
) -> Result<HashMap<String, Vec<i64>>, StoreError> {
    let watched = watched_schedules(ticks);
    if watched.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, i64, bool)> = sqlx::query_as(
        "SELECT schedule, id, cancel_requested FROM tasks WHERE schedule = ANY($1) \
         AND status IN ('queued', 'running', 'failed') ORDER BY id",
    )
    .bind(&watched)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(open_by_schedule(ticks, rows))
}

async fn insert_runs(
    conn: &mut PgConnection,
    plan: &TickPlan,
    enqueued: &[Enqueued],
) -> Result<(), StoreError> {
    if plan.runs.is_empty() {
        return Ok(());
    }
    let runs = &plan.runs;
    // DO NOTHING: a slot fired already (by an earlier leader) keeps its one row.
    sqlx::query(
        "INSERT INTO schedule_runs (schedule, slot_ms, trigger, status, reason, task_id, \
         fired_at_ms) \
         SELECT s, sl, tr, st, re, ti, $7 FROM unnest($1::text[], $2::bigint[], $3::text[], \
         $4::text[], $5::text[], $6::bigint[]) WITH ORDINALITY AS r(s, sl, tr, st, re, ti, ord) \
         ORDER BY ord ON CONFLICT DO NOTHING",
    )
    .bind(runs.iter().map(|r| r.schedule.clone()).collect::<Vec<_>>())
    .bind(runs.iter().map(|r| r.slot_ms).collect::<Vec<_>>())
    .bind(runs.iter().map(|r| r.trigger.as_str()).collect::<Vec<_>>())
    .bind(runs.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
    .bind(runs.iter().map(|r| r.reason.clone()).collect::<Vec<_>>())
    .bind(run_task_ids(plan, enqueued))
    .bind(now_ms())
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn move_cursors(conn: &mut PgConnection, plan: &TickPlan) -> Result<(), StoreError> {
    if plan.cursors.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO schedule_state (name, cursor_ms, changed_at_ms) \
         SELECT n, c, $3 FROM unnest($1::text[], $2::bigint[]) AS s(n, c) \
         ON CONFLICT (name) DO UPDATE SET \
         cursor_ms = greatest(schedule_state.cursor_ms, excluded.cursor_ms)",
    )
    .bind(
        plan.cursors
            .iter()
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>(),
    )
    .bind(plan.cursors.iter().map(|(_, c)| *c).collect::<Vec<_>>())
    .bind(now_ms())
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn audit_manual_fires(
    conn: &mut PgConnection,
    ticks: &[ScheduleTick],
    results: &[TickResult],
    actor: &Actor,
) -> Result<(), StoreError> {
    for (tick, result) in ticks.iter().zip(results) {
        for (fire, outcome) in tick.fires.iter().zip(&result.outcomes) {
            let entry = steward_store::audit::schedule_triggered(
                actor,
                &tick.schedule,
                fire.task.origin.workspace.clone(),
                outcome,
            );
            append_audit(conn, entry).await?;
        }
    }
    Ok(())
}

/// Pauses or resumes, inside the caller's transaction.
pub(crate) async fn set_paused(
    conn: &mut PgConnection,
    name: &str,
    workspace: Option<&str>,
    paused: bool,
    now_ms: i64,
    actor: &Actor,
) -> Result<ScheduleState, StoreError> {
    let row = sqlx::query(&format!(
        "INSERT INTO schedule_state (name, paused, cursor_ms, changed_at_ms, changed_by) \
         VALUES ($1, $2, $3, $3, $4) ON CONFLICT (name) DO UPDATE SET \
         paused = excluded.paused, changed_at_ms = excluded.changed_at_ms, \
         changed_by = excluded.changed_by, \
         cursor_ms = CASE WHEN excluded.paused THEN schedule_state.cursor_ms \
                          ELSE greatest(schedule_state.cursor_ms, excluded.cursor_ms) END \
         RETURNING {STATE_COLUMNS}"
    ))
    .bind(name)
    .bind(paused)
    .bind(now_ms)
    .bind(&actor.name)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    let state = state_from_row(&row)?;
    if paused {
        // Fires written ahead of their slot are withdrawn: a paused schedule runs nothing new.
        sqlx::query(
            "UPDATE tasks SET status = 'cancelled', finished_at_ms = $1 WHERE schedule = $2 \
         AND status = 'queued' AND run_at_ms > $1",
        )
        .bind(now_ms)
        .bind(name)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    append_audit(
        conn,
        steward_store::audit::schedule_paused(actor, name, workspace, paused),
    )
    .await?;
    Ok(state)
}

/// Deletes runs whose task is gone, and task-less runs older than `taskless_before_ms`.
pub(crate) async fn purge_runs(
    pool: &PgPool,
    taskless_before_ms: i64,
    limit: u32,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM schedule_runs WHERE id = ANY(ARRAY(SELECT r.id FROM schedule_runs r \
         WHERE (r.task_id IS NULL AND r.fired_at_ms < $1) OR (r.task_id IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = r.task_id)) LIMIT $2))",
    )
    .bind(taskless_before_ms)
    .bind(i64::from(limit))
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(done.rows_affected())
}

/// Runs newest first.
pub(crate) async fn runs(pool: &PgPool, query: &RunQuery) -> Result<Vec<ScheduleRun>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS} FROM schedule_runs r LEFT JOIN tasks t ON t.id = r.task_id \
         WHERE ($1::text IS NULL OR r.schedule = $1) AND r.id < $2 ORDER BY r.id DESC LIMIT $3"
    ))
    .bind(&query.schedule)
    .bind(query.before_id.unwrap_or(i64::MAX))
    .bind(i64::from(query.limit.clamp(1, MAX_RUN_PAGE)))
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(run_from_row).collect()
}

/// The latest run of each schedule, read by index seeks ([`steward_store::sql::LAST_RUNS`]).
pub(crate) async fn last_runs(pool: &PgPool) -> Result<Vec<ScheduleRun>, StoreError> {
    let rows = sqlx::query(steward_store::sql::LAST_RUNS)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.iter().map(run_from_row).collect()
}

/// Settles the fired runs of `schedule` whose deadline (`within_ms` after the slot) passed
/// by `now_ms`, each once, and returns those whose task had not succeeded by then (flagged
/// overdue). Runs that succeeded in time are settled too, so a later purge of their task does
/// not make them look overdue.
pub(crate) async fn flag_overdue(
    conn: &mut PgConnection,
    schedule: &str,
    within_ms: u64,
    now_ms: i64,
) -> Result<Vec<ScheduleRun>, StoreError> {
    let within = ms(within_ms.min(MAX_EXPECT_WITHIN_MS));
    let settled: Vec<(i64, bool)> = sqlx::query_as(
        "UPDATE schedule_runs SET deadline_checked = TRUE, overdue = NOT EXISTS (SELECT 1 \
         FROM tasks t WHERE t.id = schedule_runs.task_id AND t.status = 'succeeded' \
         AND t.finished_at_ms <= schedule_runs.slot_ms + $2) \
         WHERE schedule = $1 AND status = 'fired' AND NOT deadline_checked AND slot_ms < $3 \
         RETURNING id, overdue",
    )
    .bind(schedule)
    .bind(within)
    .bind(now_ms.saturating_sub(within))
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let ids: Vec<i64> = settled
        .into_iter()
        .filter_map(|(id, overdue)| overdue.then_some(id))
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS} FROM schedule_runs r LEFT JOIN tasks t ON t.id = r.task_id \
         WHERE r.id = ANY($1) ORDER BY r.id"
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    rows.iter().map(run_from_row).collect()
}

fn run_from_row(row: &PgRow) -> Result<ScheduleRun, StoreError> {
    ScheduleRunRow::from_row(row).map_err(db_err)?.try_into()
}

const HEARTBEAT_COLUMNS: &str =
    "name, last_ping_ms, last_status, pings, state, state_changed_at_ms, watching_since_ms";

/// Creates missing heartbeat records and returns those of `names`.
pub(crate) async fn register_heartbeats(
    conn: &mut PgConnection,
    names: &[String],
    now_ms: i64,
) -> Result<Vec<HeartbeatRecord>, StoreError> {
    sqlx::query(
        "INSERT INTO heartbeats (name, state, state_changed_at_ms, watching_since_ms) \
         SELECT n, 'new', $1, $1 FROM unnest($2::text[]) AS n ON CONFLICT (name) DO NOTHING",
    )
    .bind(now_ms)
    .bind(names)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    let rows = sqlx::query(&format!(
        "SELECT {HEARTBEAT_COLUMNS} FROM heartbeats \
         WHERE name = ANY($1) ORDER BY name"
    ))
    .bind(names)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    rows.iter().map(heartbeat_from_row).collect()
}

/// Records a ping.
pub(crate) async fn record_ping(
    pool: &PgPool,
    name: &str,
    status: PingStatus,
    at_ms: i64,
) -> Result<HeartbeatRecord, StoreError> {
    let row = sqlx::query(&format!(
        "INSERT INTO heartbeats (name, last_ping_ms, last_status, pings, state, \
         state_changed_at_ms, watching_since_ms) VALUES ($1, $2, $3, 1, 'new', $2, $2) \
         ON CONFLICT (name) DO UPDATE SET last_ping_ms = excluded.last_ping_ms, \
         last_status = excluded.last_status, pings = heartbeats.pings + 1 \
         RETURNING {HEARTBEAT_COLUMNS}"
    ))
    .bind(name)
    .bind(at_ms)
    .bind(status.as_str())
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    heartbeat_from_row(&row)
}

/// Every heartbeat record.
pub(crate) async fn heartbeat_records(pool: &PgPool) -> Result<Vec<HeartbeatRecord>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {HEARTBEAT_COLUMNS} FROM heartbeats ORDER BY name"
    ))
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(heartbeat_from_row).collect()
}

/// Applies a heartbeat transition if the state and latest ping are still as read, audited.
pub(crate) async fn set_heartbeat_state(
    conn: &mut PgConnection,
    change: &HeartbeatTransition,
    actor: &Actor,
) -> Result<bool, StoreError> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT state FROM heartbeats WHERE name = $1 FOR UPDATE")
            .bind(&change.name)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    if exists.is_none() {
        return Err(not_found("heartbeat", &change.name));
    }
    let changed = sqlx::query(
        "UPDATE heartbeats SET state = $1, state_changed_at_ms = $2 WHERE name = $3 \
         AND state = $4 AND last_ping_ms IS NOT DISTINCT FROM $5",
    )
    .bind(change.to.as_str())
    .bind(change.at_ms)
    .bind(&change.name)
    .bind(change.from.as_str())
    .bind(change.seen_ping_ms)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?
    .rows_affected()
        == 1;
    if changed {
        append_audit(conn, steward_store::audit::heartbeat_state(actor, change)).await?;
    }
    Ok(changed)
}

fn heartbeat_from_row(row: &PgRow) -> Result<HeartbeatRecord, StoreError> {
    HeartbeatRow::from_row(row).map_err(db_err)?.try_into()
}
