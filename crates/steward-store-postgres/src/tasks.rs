//! The task queue on PostgreSQL, shared by every instance. Claims lock rows with
//! `FOR UPDATE SKIP LOCKED`, so concurrent workers (in any process) pass each other instead of
//! waiting; batches travel as arrays unpacked with `unnest`, so a batch of any size is one
//! statement and one commit; enqueues announce themselves with `NOTIFY`.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::FromRow;
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use steward_core::audit::Actor;
use steward_core::task::{Completion, NewTask, Task, TaskRun, TaskStatus};
use steward_store::TaskStore;
use steward_store::rows::{TaskRow, TaskRunRow};
use steward_store::tasks::{
    CancelStep, CompletionRow, MAX_CLAIM, MAX_TASK_PAGE, cancel_step, check_retryable,
    completion_answers, created_per_queue, distinct_queues, first_completions, keys_not_inserted,
    lease_states, pair_enqueued, parse_status, queues_with_queued, sort_claimed, task_counts,
    task_not_found, with_oldest_due,
};
use steward_store::{
    Claim, Enqueued, LeaseState, Reaped, StoreError, TaskCount, TaskQuery, now_ms,
};

use crate::pipelines::advance_runs;
use crate::{PostgresStore, settle};
use crate::{audit::append_audit, db_err};
use steward_store::pipelines::{Mode, runs_of};

#[async_trait]
impl TaskStore for PostgresStore {
    async fn enqueue_tasks(
        &self,
        new: &[NewTask],
        actor: &Actor,
    ) -> Result<Vec<Enqueued>, StoreError> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        settle(enqueue(&mut tx, new, actor).await, tx).await
    }

    async fn claim_tasks(&self, claim: &Claim) -> Result<Vec<Task>, StoreError> {
        self::claim(&self.pool, claim).await
    }

    async fn next_due_ms(&self, queue: &str) -> Result<Option<i64>, StoreError> {
        next_due(&self.pool, queue).await
    }

    async fn nodes_with_due_tasks(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(steward_store::sql::NODES_WITH_DUE_TASKS)
            .bind(now_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn extend_leases(
        &self,
        worker: &str,
        leases: &[(i64, i64)],
        lease_ms: u64,
    ) -> Result<Vec<LeaseState>, StoreError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        extend(&self.pool, worker, leases, lease_ms).await
    }

    async fn complete_tasks(&self, completions: &[Completion]) -> Result<Vec<bool>, StoreError> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        complete(self, completions).await
    }

    async fn reap_expired_leases(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<Reaped>, StoreError> {
        reap(self, now_ms, limit).await
    }

    async fn task(&self, id: i64) -> Result<Option<Task>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        get(&mut conn, id, false).await
    }

    async fn task_runs(&self, id: i64) -> Result<Vec<TaskRun>, StoreError> {
        runs(&self.pool, id).await
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
        list(&self.pool, query).await
    }

    async fn cancel_task(&self, id: i64, actor: &Actor) -> Result<Task, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let cancelled = cancel_and_advance(&mut tx, id, actor).await;
        let (task, changes) = settle(cancelled, tx).await?;
        self.announce(changes);
        Ok(task)
    }

    async fn retry_task(&self, id: i64, actor: &Actor) -> Result<Task, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        settle(retry(&mut tx, id, actor).await, tx).await
    }

    async fn task_counts(&self) -> Result<Vec<TaskCount>, StoreError> {
        counts(&self.pool).await
    }

    async fn tasks_finished_since(
        &self,
        queues: &[String],
        since_ms: i64,
    ) -> Result<Vec<TaskCount>, StoreError> {
        finished_since(&self.pool, queues, since_ms).await
    }

    async fn purge_tasks(
        &self,
        queue: &str,
        finished_before_ms: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        purge(&self.pool, queue, finished_before_ms, limit).await
    }
}

/// The columns of a task, in the order [`task_from_row`] reads them.
macro_rules! task_columns {
    () => {
        "id, queue, kind, payload, priority, status, attempt, max_attempts, run_at_ms, outcome, \
         result, error, lease_owner, lease_expires_at_ms, fence, cancel_requested, \
         idempotency_key, workspace, schedule, alert, caller, created_at_ms, finished_at_ms, \
         node, timeout_ms, pipeline_run"
    };
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Milliseconds as a database integer, saturating.
pub(crate) fn ms(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Inserts `tasks`, notifies their queues and audits the call, inside the caller's
/// transaction.
pub(crate) async fn enqueue(
    conn: &mut PgConnection,
    tasks: &[NewTask],
    actor: &Actor,
) -> Result<Vec<Enqueued>, StoreError> {
    let answers = insert_tasks(conn, tasks).await?;
    append_audit(
        conn,
        steward_store::audit::tasks_enqueued(actor, tasks, &answers),
    )
    .await?;
    Ok(answers)
}

/// Inserts `tasks` and notifies their queues inside the caller's transaction, unaudited: the
/// tasks of pipeline steps, which the run's start or retry was audited for.
pub(crate) async fn insert_tasks(
    conn: &mut PgConnection,
    tasks: &[NewTask],
) -> Result<Vec<Enqueued>, StoreError> {
    let column = |f: fn(&NewTask) -> Option<String>| tasks.iter().map(f).collect::<Vec<_>>();
    let priorities: Vec<i32> = tasks.iter().map(|t| t.priority).collect();
    let attempts: Vec<i32> = tasks.iter().map(|t| to_i32(t.max_attempts)).collect();
    let run_at: Vec<i64> = tasks.iter().map(|t| t.run_at_ms).collect();
    let mut inserted: Vec<(i64, Option<String>)> = sqlx::query_as(
        "INSERT INTO tasks (queue, kind, payload, priority, status, max_attempts, run_at_ms, \
         idempotency_key, workspace, schedule, alert, caller, created_at_ms, node, timeout_ms, \
         pipeline_run) \
         SELECT q, k, p::jsonb, pr, 'queued', ma, ra, ik, ws, sc, al, ca, $12, nd, tm, pl \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::bigint[], \
         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $13::text[], \
         $14::bigint[], $15::bigint[]) \
         WITH ORDINALITY AS n(q, k, p, pr, ma, ra, ik, ws, sc, al, ca, nd, tm, pl, ord) \
         ORDER BY ord \
         ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING id, idempotency_key",
    )
    .bind(column(|t| Some(t.queue.clone())))
    .bind(column(|t| Some(t.kind.clone())))
    .bind(column(|t| Some(t.payload.clone())))
    .bind(&priorities)
    .bind(&attempts)
    .bind(&run_at)
    .bind(column(|t| t.idempotency_key.clone()))
    .bind(column(|t| t.origin.workspace.clone()))
    .bind(column(|t| t.origin.schedule.clone()))
    .bind(column(|t| t.origin.alert.clone()))
    .bind(column(|t| t.origin.caller.clone()))
    .bind(now_ms())
    .bind(column(|t| Some(t.node.clone().unwrap_or_default())))
    .bind(
        tasks
            .iter()
            .map(|t| t.timeout_ms.map(ms))
            .collect::<Vec<_>>(),
    )
    .bind(
        tasks
            .iter()
            .map(|t| t.origin.pipeline_run)
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    inserted.sort_unstable_by_key(|(id, _)| *id);
    let existing = existing_keys(conn, tasks, &inserted).await?;
    let answers = pair_enqueued(tasks, &inserted, &existing)?;
    count_created(conn, &created_per_queue(tasks, &answers)).await?;
    notify(conn, tasks.iter().map(|t| t.queue.as_str())).await?;
    Ok(answers)
}

/// Adds what an enqueue created to the count deltas, one row per queue. This is the one
/// statement that inserts tasks, so it counts them here rather than a trigger over the whole
/// batch (status changes and deletes are counted by the triggers of migration 0016).
async fn count_created(
    conn: &mut PgConnection,
    created: &[(String, i64)],
) -> Result<(), StoreError> {
    if created.is_empty() {
        return Ok(());
    }
    let (queues, counts): (Vec<&str>, Vec<i64>) =
        created.iter().map(|(q, n)| (q.as_str(), *n)).unzip();
    sqlx::query(
        "INSERT INTO task_count_deltas (queue, status, n) \
         SELECT queue, 'queued', n FROM unnest($1::text[], $2::bigint[]) AS c(queue, n)",
    )
    .bind(queues)
    .bind(counts)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Announces, at commit, that `queues` may have tasks ready.
async fn notify<'q>(
    conn: &mut PgConnection,
    queues: impl Iterator<Item = &'q str>,
) -> Result<(), StoreError> {
    crate::listen::notify(conn, crate::listen::TASKS_CHANNEL, &distinct_queues(queues)).await
}

/// The ids of tasks holding the keys of `tasks` that were not inserted.
async fn existing_keys(
    conn: &mut PgConnection,
    tasks: &[NewTask],
    inserted: &[(i64, Option<String>)],
) -> Result<HashMap<String, i64>, StoreError> {
    let wanted = keys_not_inserted(tasks, inserted);
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT idempotency_key, id FROM tasks WHERE idempotency_key = ANY($1::text[])",
    )
    .bind(&wanted)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(rows.into_iter().collect())
}

/// The earliest run-at of the queue's waiting tasks.
pub(crate) async fn next_due(pool: &PgPool, queue: &str) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar(steward_store::sql::NEXT_DUE)
        .bind(queue)
        .fetch_one(pool)
        .await
        .map_err(db_err)
}

/// Leases due tasks to the claiming worker, skipping rows other claims hold.
pub(crate) async fn claim(pool: &PgPool, claim: &Claim) -> Result<Vec<Task>, StoreError> {
    let now = now_ms();
    let rows = sqlx::query(concat!(
        "UPDATE tasks t SET status = 'running', attempt = t.attempt + 1, fence = t.fence + 1, \
         lease_owner = $1, lease_expires_at_ms = $2, started_at_ms = $3 \
         WHERE t.id = ANY(ARRAY(SELECT id FROM tasks WHERE queue = $4 AND node = $6 \
         AND status IN ('queued', 'failed') AND run_at_ms <= $3 \
         ORDER BY priority DESC, run_at_ms, id LIMIT $5 FOR UPDATE SKIP LOCKED)) RETURNING ",
        task_columns!()
    ))
    .bind(&claim.worker)
    .bind(now.saturating_add(ms(claim.lease_ms)))
    .bind(now)
    .bind(&claim.queue)
    .bind(i64::from(claim.limit.min(MAX_CLAIM)))
    .bind(claim.node.as_deref().unwrap_or_default())
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    let mut tasks = rows
        .iter()
        .map(task_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    sort_claimed(&mut tasks);
    Ok(tasks)
}

/// Extends the worker's current leases. Rows are locked in id order first, as completions lock
/// them, so an extension and a completion batch sharing tasks never deadlock.
pub(crate) async fn extend(
    pool: &PgPool,
    worker: &str,
    leases: &[(i64, i64)],
    lease_ms: u64,
) -> Result<Vec<LeaseState>, StoreError> {
    let ids: Vec<i64> = leases.iter().map(|(id, _)| *id).collect();
    let fences: Vec<i64> = leases.iter().map(|(_, fence)| *fence).collect();
    let extended: Vec<(i64, bool)> = sqlx::query_as(
        "WITH l AS (SELECT * FROM unnest($2::bigint[], $3::bigint[]) AS l(lease_id, lease_fence)), \
         locked AS (SELECT t.id FROM tasks t JOIN l ON t.id = l.lease_id \
         WHERE t.fence = l.lease_fence AND t.status = 'running' AND t.lease_owner = $4 \
         ORDER BY t.id FOR UPDATE OF t) \
         UPDATE tasks t SET lease_expires_at_ms = $1 FROM locked \
         WHERE t.id = locked.id RETURNING t.id, t.cancel_requested",
    )
    .bind(now_ms().saturating_add(ms(lease_ms)))
    .bind(&ids)
    .bind(&fences)
    .bind(worker)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    Ok(lease_states(leases, extended))
}

/// Applies fenced completions and records their runs. The completions of tasks that are no
/// pipeline's steps take one statement (its own commit); those of step tasks, if any, a
/// transaction that also advances their runs, so a step's end and its successors' start
/// commit together.
pub(crate) async fn complete(
    store: &PostgresStore,
    completions: &[Completion],
) -> Result<Vec<bool>, StoreError> {
    let mut unique = first_completions(completions);
    // Rows are locked in id order before they are updated (`locked`), as lease extensions
    // lock them: an UPDATE joined to a list locks in whatever order its plan reads, and two
    // statements sharing rows in different orders deadlock.
    unique.sort_by_key(|c| c.task_id);
    let mut conn = store.pool.acquire().await.map_err(db_err)?;
    let rows = complete_statement(&mut conn, &unique, false).await?;
    drop(conn);
    let mut accepted: Vec<i64> = rows.iter().filter(|r| r.3).map(|r| r.0).collect();
    let steps: Vec<i64> = rows.iter().filter(|r| !r.3).map(|r| r.0).collect();
    if steps.is_empty() {
        return Ok(completion_answers(completions, &accepted));
    }
    let step_completions: Vec<&Completion> = unique
        .into_iter()
        .filter(|c| steps.contains(&c.task_id))
        .collect();
    let mut tx = store.pool.begin().await.map_err(db_err)?;
    let done = complete_statement(&mut tx, &step_completions, true).await?;
    let runs = runs_of(
        done.iter()
            .filter(|(_, _, status, _)| status != TaskStatus::Failed.as_str())
            .map(|(_, run, _, _)| *run),
    );
    let changes = advance_runs(&mut tx, &runs, Mode::Advance).await?;
    tx.commit().await.map_err(db_err)?;
    store.announce(changes);
    accepted.extend(done.iter().map(|r| r.0));
    Ok(completion_answers(completions, &accepted))
}

/// One completion statement over `unique` (sorted by task id) for the tasks that are pipeline
/// steps (`steps`) or those that are not. Only those rows are locked, so the pass that leaves
/// every task of a batch of steps to the other writes nothing (and waits for no flush). Answers `(id, pipeline run, status, applied)` rows:
/// the tasks it completed, and (when not `steps`) the step tasks it left for the other pass.
async fn complete_statement(
    conn: &mut PgConnection,
    unique: &[&Completion],
    steps: bool,
) -> Result<Vec<(i64, Option<i64>, String, bool)>, StoreError> {
    let rows: Vec<CompletionRow> = unique.iter().map(|c| CompletionRow::of(c)).collect();
    sqlx::query_as(
        "WITH c AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], \
         $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::text[], $10::int[], \
         $11::bigint[], $12::bigint[], $13::text[]) AS c(c_id, c_fence, c_status, c_outcome, \
         c_result, c_error, c_retry_at, c_finished_at, c_worker, c_attempt, c_started, c_ended, \
         c_tail)), \
         locked AS (SELECT t.id FROM tasks t JOIN c ON t.id = c.c_id \
         WHERE (t.pipeline_run IS NOT NULL) = $14 ORDER BY t.id FOR UPDATE OF t), \
         done AS (UPDATE tasks t SET status = c.c_status, outcome = c.c_outcome, \
         result = c.c_result::jsonb, error = c.c_error, \
         run_at_ms = coalesce(c.c_retry_at, t.run_at_ms), finished_at_ms = c.c_finished_at, \
         lease_owner = NULL, lease_expires_at_ms = NULL FROM c JOIN locked ON locked.id = c.c_id \
         WHERE t.id = c.c_id AND t.fence = c.c_fence AND t.status = 'running' \
         RETURNING t.id, t.pipeline_run, t.status), \
         runs AS (INSERT INTO task_runs (task_id, attempt, worker, started_at_ms, ended_at_ms, \
         status, outcome, error, output_tail) SELECT c.c_id, c.c_attempt, c.c_worker, \
         c.c_started, c.c_ended, c.c_status, c.c_outcome, c.c_error, c.c_tail \
         FROM c JOIN done ON done.id = c.c_id) \
         SELECT id, pipeline_run, status, TRUE FROM done \
         UNION ALL SELECT t.id, t.pipeline_run, t.status, FALSE FROM tasks t \
         JOIN c ON t.id = c.c_id WHERE NOT $14 AND t.pipeline_run IS NOT NULL",
    )
    .bind(unique.iter().map(|c| c.task_id).collect::<Vec<_>>())
    .bind(unique.iter().map(|c| c.fence).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.status).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.outcome.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.result.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.error.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.retry_at_ms).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.finished_at_ms).collect::<Vec<_>>())
    .bind(unique.iter().map(|c| c.worker.clone()).collect::<Vec<_>>())
    .bind(unique.iter().map(|c| to_i32(c.attempt)).collect::<Vec<_>>())
    .bind(unique.iter().map(|c| c.started_at_ms).collect::<Vec<_>>())
    .bind(unique.iter().map(|c| c.ended_at_ms).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.output_tail.clone())
            .collect::<Vec<_>>(),
    )
    .bind(steps)
    .fetch_all(conn)
    .await
    .map_err(db_err)
}

/// Takes back expired leases (ones another reaper holds are skipped) and records their runs,
/// advancing the pipeline runs of step tasks that ended, in one transaction.
pub(crate) async fn reap(
    store: &PostgresStore,
    now: i64,
    limit: u32,
) -> Result<Vec<Reaped>, StoreError> {
    let mut tx = store.pool.begin().await.map_err(db_err)?;
    let reaped = reap_in(&mut tx, now, limit).await?;
    let ended: Vec<i64> = reaped
        .iter()
        .filter(|r| r.status != TaskStatus::Queued)
        .map(|r| r.task_id)
        .collect();
    let runs = if ended.is_empty() {
        Vec::new()
    } else {
        let runs: Vec<Option<i64>> = sqlx::query_scalar(
            "SELECT pipeline_run FROM tasks WHERE id = ANY($1) AND pipeline_run IS NOT NULL",
        )
        .bind(&ended)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        runs_of(runs)
    };
    let changes = advance_runs(&mut tx, &runs, Mode::Advance).await?;
    tx.commit().await.map_err(db_err)?;
    store.announce(changes);
    Ok(reaped)
}

async fn reap_in(conn: &mut PgConnection, now: i64, limit: u32) -> Result<Vec<Reaped>, StoreError> {
    let rows: Vec<(i64, String, String, String, String, i32)> = sqlx::query_as(concat!(
        "WITH expired AS (SELECT id AS e_id, coalesce(lease_owner, '') AS e_owner, \
         coalesce(started_at_ms, $1) AS e_started FROM tasks \
         WHERE status = 'running' AND lease_expires_at_ms < $1 AND ",
        steward_store::reapable!(),
        " ORDER BY lease_expires_at_ms LIMIT $2 FOR UPDATE OF tasks SKIP LOCKED), \
         upd AS (UPDATE tasks t SET \
         status = CASE WHEN t.cancel_requested THEN 'cancelled' \
                       WHEN t.attempt >= t.max_attempts THEN 'dead' ELSE 'queued' END, \
         finished_at_ms = CASE WHEN t.cancel_requested OR t.attempt >= t.max_attempts \
                          THEN $1 END, \
         error = format('lease expired: worker `%s` stopped sending heartbeats', e.e_owner), \
         run_at_ms = $1, lease_owner = NULL, lease_expires_at_ms = NULL \
         FROM expired e WHERE t.id = e.e_id \
         RETURNING t.id, t.queue, t.kind, t.status, t.attempt, t.error, e.e_owner, \
         e.e_started), \
         runs AS (INSERT INTO task_runs (task_id, attempt, worker, started_at_ms, ended_at_ms, \
         status, error) SELECT id, attempt, e_owner, e_started, $1, 'lease_expired', error \
         FROM upd) \
         SELECT id, queue, status, e_owner, kind, attempt FROM upd",
    ))
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let queued: Vec<&str> = rows
        .iter()
        .filter(|(_, _, status, ..)| status == "queued")
        .map(|(_, queue, ..)| queue.as_str())
        .collect();
    if !queued.is_empty() {
        notify(conn, queued.into_iter()).await?;
    }
    rows.into_iter()
        .map(|(id, queue, status, worker, kind, attempt)| {
            Ok(Reaped {
                task_id: id,
                queue,
                kind,
                attempt: to_u32(attempt)?,
                worker,
                status: parse_status(&status)?,
            })
        })
        .collect()
}

/// Cancels a task and, when it was a pipeline step's and is cancelled at once, advances its
/// run, inside the caller's transaction.
async fn cancel_and_advance(
    conn: &mut PgConnection,
    id: i64,
    actor: &Actor,
) -> Result<(Task, Vec<steward_store::RunChange>), StoreError> {
    let task = cancel(conn, id, actor).await?;
    let runs = match task.status {
        TaskStatus::Cancelled => runs_of([task.origin.pipeline_run]),
        _ => Vec::new(),
    };
    let changes = advance_runs(conn, &runs, Mode::Advance).await?;
    Ok((task, changes))
}

/// One task; `lock` also locks its row until the transaction ends.
pub(crate) async fn get(
    conn: &mut PgConnection,
    id: i64,
    lock: bool,
) -> Result<Option<Task>, StoreError> {
    let statement = if lock {
        concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE id = $1 FOR UPDATE"
        )
    } else {
        concat!("SELECT ", task_columns!(), " FROM tasks WHERE id = $1")
    };
    let row = sqlx::query(statement)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    row.as_ref().map(task_from_row).transpose()
}

/// A task's runs.
pub(crate) async fn runs(pool: &PgPool, id: i64) -> Result<Vec<TaskRun>, StoreError> {
    let rows = sqlx::query(steward_store::sql::TASK_RUNS)
        .bind(id)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.iter()
        .map(|row| TaskRunRow::from_row(row).map_err(db_err)?.try_into())
        .collect()
}

/// Tasks matching a query.
pub(crate) async fn list(pool: &PgPool, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE id > $1 AND ($2::text IS NULL OR queue = $2) \
         AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR kind = $4) \
         AND ($5::text IS NULL OR outcome = $5) AND ($6::text IS NULL OR workspace = $6) \
         ORDER BY id LIMIT $7"
    ))
    .bind(query.after_id)
    .bind(&query.queue)
    .bind(query.status.map(TaskStatus::as_str))
    .bind(&query.kind)
    .bind(&query.outcome)
    .bind(&query.workspace)
    .bind(i64::from(query.limit.min(MAX_TASK_PAGE)))
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(task_from_row).collect()
}

/// Cancels (or asks to cancel) a task, inside the caller's transaction.
pub(crate) async fn cancel(
    conn: &mut PgConnection,
    id: i64,
    actor: &Actor,
) -> Result<Task, StoreError> {
    let before = get(conn, id, true)
        .await?
        .ok_or_else(|| task_not_found(id))?;
    let change = match cancel_step(&before)? {
        CancelStep::CancelNow => sqlx::query(concat!(
            "UPDATE tasks SET status = 'cancelled', finished_at_ms = $1 WHERE id = $2 RETURNING ",
            task_columns!()
        ))
        .bind(now_ms())
        .bind(id),
        CancelStep::RequestStop => sqlx::query(concat!(
            "UPDATE tasks SET cancel_requested = TRUE WHERE id = $1 RETURNING ",
            task_columns!()
        ))
        .bind(id),
    };
    let after = task_from_row(&change.fetch_one(&mut *conn).await.map_err(db_err)?)?;
    append_audit(
        conn,
        steward_store::audit::task_changed("task.cancel", actor, &after, before.status),
    )
    .await?;
    Ok(after)
}

/// Queues a dead or cancelled task again, inside the caller's transaction.
pub(crate) async fn retry(
    conn: &mut PgConnection,
    id: i64,
    actor: &Actor,
) -> Result<Task, StoreError> {
    let before = get(conn, id, true)
        .await?
        .ok_or_else(|| task_not_found(id))?;
    check_retryable(&before)?;
    let row = sqlx::query(concat!(
        "UPDATE tasks SET status = 'queued', attempt = 0, run_at_ms = $1, error = NULL, \
         outcome = NULL, result = NULL, finished_at_ms = NULL, cancel_requested = FALSE \
         WHERE id = $2 RETURNING ",
        task_columns!()
    ))
    .bind(now_ms())
    .bind(id)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    let after = task_from_row(&row)?;
    notify(conn, std::iter::once(after.queue.as_str())).await?;
    append_audit(
        conn,
        steward_store::audit::task_changed("task.retry", actor, &after, before.status),
    )
    .await?;
    Ok(after)
}

/// Serialises folding the count deltas into the totals across instances: two folds deleting
/// the same delta rows in different orders could deadlock.
const COUNT_FOLD_LOCK: i64 = 0x0073_7465_7763_6e74;

/// Tasks per queue and status from the totals and deltas the triggers keep (migration 0016),
/// with the oldest due task of each queue that has queued tasks, read from those alone through
/// the `(queue, status)` index: neither read touches finished tasks, so the cost does not grow
/// with how many are retained. Folds the deltas into the totals first when
/// no other instance is folding, which keeps the deltas to what changed since the last read.
pub(crate) async fn counts(pool: &PgPool) -> Result<Vec<TaskCount>, StoreError> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    // Through `settle`, so a failure releases the fold's row locks at once.
    let counted = fold_and_count(&mut tx).await;
    settle(counted, tx).await
}

/// [`counts`] inside its transaction.
async fn fold_and_count(tx: &mut PgConnection) -> Result<Vec<TaskCount>, StoreError> {
    let folding: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(COUNT_FOLD_LOCK)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
    if folding {
        sqlx::query(
            "WITH moved AS (DELETE FROM task_count_deltas RETURNING queue, status, n) \
             INSERT INTO task_count_totals (queue, status, n) \
             SELECT queue, status, sum(n) FROM moved GROUP BY queue, status \
             ON CONFLICT (queue, status) DO UPDATE SET n = task_count_totals.n + excluded.n",
        )
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    }
    let counted: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT queue, status, sum(n)::bigint FROM (\
         SELECT queue, status, n FROM task_count_totals \
         UNION ALL SELECT queue, status, n FROM task_count_deltas) AS c \
         GROUP BY queue, status HAVING sum(n) <> 0 ORDER BY queue, status",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err)?;
    let oldest: Vec<(String, i64)> = sqlx::query_as(
        "SELECT queue, oldest FROM (SELECT c.queue, (SELECT min(GREATEST(t.created_at_ms, \
         t.run_at_ms)) FROM tasks t WHERE t.queue = c.queue AND t.status = 'queued' \
         AND t.run_at_ms <= $1) AS oldest FROM unnest($2::text[]) AS c(queue)) AS q \
         WHERE oldest IS NOT NULL",
    )
    .bind(now_ms())
    .bind(queues_with_queued(&counted))
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err)?;
    task_counts(with_oldest_due(counted, &oldest))
}

/// Tasks of each queue finished since `since_ms`, per status: one range of the
/// `(queue, finished_at_ms)` index per queue.
pub(crate) async fn finished_since(
    pool: &PgPool,
    queues: &[String],
    since_ms: i64,
) -> Result<Vec<TaskCount>, StoreError> {
    let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT q.queue, f.status, f.n, NULL::bigint FROM unnest($1::text[]) AS q(queue) \
         CROSS JOIN LATERAL (SELECT status, count(*) AS n FROM tasks \
         WHERE tasks.queue = q.queue AND finished_at_ms >= $2 GROUP BY status) f \
         ORDER BY q.queue, f.status",
    )
    .bind(queues)
    .bind(since_ms)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    task_counts(rows)
}

/// Deletes old finished tasks of a queue.
pub(crate) async fn purge(
    pool: &PgPool,
    queue: &str,
    before: i64,
    limit: u32,
) -> Result<u64, StoreError> {
    let purged: i64 = sqlx::query_scalar(
        "WITH gone AS (DELETE FROM tasks WHERE id = ANY(ARRAY(SELECT id FROM tasks \
         WHERE queue = $1 AND finished_at_ms IS NOT NULL AND finished_at_ms < $2 LIMIT $3 \
         FOR UPDATE SKIP LOCKED)) RETURNING id), \
         runs AS (DELETE FROM task_runs WHERE task_id IN (SELECT id FROM gone)) \
         SELECT count(*) FROM gone",
    )
    .bind(queue)
    .bind(before)
    .bind(i64::from(limit))
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    Ok(u64::try_from(purged).unwrap_or(0))
}

fn to_u32(n: i32) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative count {n}")))
}

fn task_from_row(row: &PgRow) -> Result<Task, StoreError> {
    TaskRow::from_row(row).map_err(db_err)?.try_into()
}
