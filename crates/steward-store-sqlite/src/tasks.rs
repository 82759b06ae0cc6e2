//! The task queue on SQLite. Every write goes through the single writer connection, so a claim
//! is one `UPDATE … RETURNING` that no other claim can interleave with; batches travel as one
//! JSON array bound to one parameter and unpacked with `json_each`, so that a batch costs one
//! statement whatever its size.

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::json;
use sqlx::FromRow;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use steward_core::audit::Actor;
use steward_core::task::{Completion, NewTask, Task, TaskRun, TaskStatus};
use steward_store::TaskStore;
use steward_store::rows::{TaskRow, TaskRunRow};
use steward_store::tasks::{
    CancelStep, CompletionRow, MAX_CLAIM, MAX_TASK_PAGE, cancel_step, check_retryable,
    completion_answers, created_per_queue, first_completions, keys_not_inserted,
    lease_expired_error, lease_states, pair_enqueued, parse_status, sort_claimed, task_counts,
    task_not_found, with_oldest_due,
};
use steward_store::{
    Claim, Enqueued, LeaseState, Reaped, StoreError, TaskCount, TaskQuery, now_ms,
};

use crate::SqliteStore;
use crate::pipelines::advance_runs;
use crate::{audit::append_audit, db_err};
use steward_store::pipelines::{Mode, runs_of};

#[async_trait]
impl TaskStore for SqliteStore {
    async fn enqueue_tasks(
        &self,
        new: &[NewTask],
        actor: &Actor,
    ) -> Result<Vec<Enqueued>, StoreError> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let answers = enqueue(&mut tx, new, actor).await?;
        tx.commit().await.map_err(db_err)?;
        self.wake(new.iter().map(|t| t.queue.as_str()));
        Ok(answers)
    }

    async fn claim_tasks(&self, claim: &Claim) -> Result<Vec<Task>, StoreError> {
        self::claim(&self.writer, claim).await
    }

    async fn next_due_ms(&self, queue: &str) -> Result<Option<i64>, StoreError> {
        next_due(&self.reader, queue).await
    }

    async fn nodes_with_due_tasks(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(steward_store::sql::NODES_WITH_DUE_TASKS)
            .bind(now_ms)
            .fetch_all(&self.reader)
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
        extend(&self.writer, worker, leases, lease_ms).await
    }

    async fn complete_tasks(&self, completions: &[Completion]) -> Result<Vec<bool>, StoreError> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let (accepted, runs) = complete(&mut tx, completions).await?;
        let advanced = advance_runs(&mut tx, &runs, Mode::Advance).await?;
        tx.commit().await.map_err(db_err)?;
        self.announce(advanced);
        Ok(accepted)
    }

    async fn reap_expired_leases(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<Reaped>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let reaped = reap(&mut tx, now_ms, limit).await?;
        let ended: Vec<i64> = reaped
            .iter()
            .filter(|r| r.status != TaskStatus::Queued)
            .map(|r| r.task_id)
            .collect();
        let runs = runs_of_tasks(&mut tx, &ended).await?;
        let advanced = advance_runs(&mut tx, &runs, Mode::Advance).await?;
        tx.commit().await.map_err(db_err)?;
        self.announce(advanced);
        self.wake(
            reaped
                .iter()
                .filter(|r| r.status == TaskStatus::Queued)
                .map(|r| r.queue.as_str()),
        );
        Ok(reaped)
    }

    async fn task(&self, id: i64) -> Result<Option<Task>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(db_err)?;
        get(&mut conn, id).await
    }

    async fn task_runs(&self, id: i64) -> Result<Vec<TaskRun>, StoreError> {
        runs(&self.reader, id).await
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
        list(&self.reader, query).await
    }

    async fn cancel_task(&self, id: i64, actor: &Actor) -> Result<Task, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let task = cancel(&mut tx, id, actor).await?;
        let runs = match task.status {
            TaskStatus::Cancelled => runs_of([task.origin.pipeline_run]),
            _ => Vec::new(),
        };
        let advanced = advance_runs(&mut tx, &runs, Mode::Advance).await?;
        tx.commit().await.map_err(db_err)?;
        self.announce(advanced);
        Ok(task)
    }

    async fn retry_task(&self, id: i64, actor: &Actor) -> Result<Task, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let task = retry(&mut tx, id, actor).await?;
        tx.commit().await.map_err(db_err)?;
        self.wake([task.queue.as_str()]);
        Ok(task)
    }

    async fn task_counts(&self) -> Result<Vec<TaskCount>, StoreError> {
        counts(&self.reader).await
    }

    async fn tasks_finished_since(
        &self,
        queues: &[String],
        since_ms: i64,
    ) -> Result<Vec<TaskCount>, StoreError> {
        finished_since(&self.reader, queues, since_ms).await
    }

    async fn purge_tasks(
        &self,
        queue: &str,
        finished_before_ms: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        purge(&self.writer, queue, finished_before_ms, limit).await
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

/// Inserts `tasks` and audits the call, inside the caller's transaction.
pub(crate) async fn enqueue(
    conn: &mut SqliteConnection,
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

/// Inserts `tasks` inside the caller's transaction, unaudited: the tasks of pipeline steps,
/// which the run's start or retry was audited for.
pub(crate) async fn insert_tasks(
    conn: &mut SqliteConnection,
    tasks: &[NewTask],
) -> Result<Vec<Enqueued>, StoreError> {
    let now = now_ms();
    let rows: Vec<serde_json::Value> = tasks
        .iter()
        .map(|t| {
            json!([
                t.queue,
                t.kind,
                t.payload,
                t.priority,
                t.max_attempts,
                t.run_at_ms,
                t.idempotency_key,
                t.origin.workspace,
                t.origin.schedule,
                t.origin.alert,
                t.origin.caller,
                t.node.as_deref().unwrap_or_default(),
                t.timeout_ms.map(ms),
                t.origin.pipeline_run,
            ])
        })
        .collect();
    // AUTOINCREMENT ids only grow and this transaction is the only writer, so the new rows
    // are exactly those above the sequence as it stands now.
    let before: i64 = sqlx::query_scalar(
        "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'tasks'), 0)",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    // `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT, not a join.
    sqlx::query(
        "INSERT INTO tasks (queue, kind, payload, priority, status, max_attempts, run_at_ms, \
         idempotency_key, workspace, schedule, alert, caller, node, timeout_ms, pipeline_run, \
         created_at_ms) \
         SELECT value->>0, value->>1, value->>2, value->>3, 'queued', value->>4, value->>5, \
         value->>6, value->>7, value->>8, value->>9, value->>10, value->>11, value->>12, \
         value->>13, ? \
         FROM json_each(?) WHERE true ORDER BY key \
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(now)
    .bind(serde_json::Value::Array(rows).to_string())
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    let inserted = inserted_since(conn, before).await?;
    let existing = existing_keys(conn, tasks, &inserted).await?;
    let answers = pair_enqueued(tasks, &inserted, &existing)?;
    count_created(conn, &created_per_queue(tasks, &answers)).await?;
    Ok(answers)
}

/// Adds what an enqueue created to the queued counts, one row per queue. This is the one
/// statement that inserts tasks, so it counts them here rather than a trigger once per row
/// (status changes and deletes are counted by the triggers of migration 0013).
async fn count_created(
    conn: &mut SqliteConnection,
    created: &[(String, i64)],
) -> Result<(), StoreError> {
    if created.is_empty() {
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = created.iter().map(|(q, n)| json!([q, n])).collect();
    sqlx::query(
        "INSERT INTO task_counts (queue, status, n) \
         SELECT value->>0, 'queued', value->>1 FROM json_each(?) WHERE true \
         ON CONFLICT (queue, status) DO UPDATE SET n = n + excluded.n",
    )
    .bind(serde_json::Value::Array(rows).to_string())
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// The `(id, key)` of every task above id `before`, in id order, read as one JSON row: the
/// driver hands each result row across threads, which for a batch of 10,000 cost more than
/// the insert itself.
async fn inserted_since(
    conn: &mut SqliteConnection,
    before: i64,
) -> Result<Vec<(i64, Option<String>)>, StoreError> {
    let rows: Option<String> = sqlx::query_scalar(
        "SELECT json_group_array(json_array(id, idempotency_key)) \
         FROM (SELECT id, idempotency_key FROM tasks WHERE id > ? ORDER BY id)",
    )
    .bind(before)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    serde_json::from_str(rows.as_deref().unwrap_or("[]"))
        .map_err(|e| StoreError::Corrupt(format!("inserted task ids: {e}")))
}

/// The ids of tasks holding the keys of `tasks` that were not inserted.
async fn existing_keys(
    conn: &mut SqliteConnection,
    tasks: &[NewTask],
    inserted: &[(i64, Option<String>)],
) -> Result<HashMap<String, i64>, StoreError> {
    let wanted = keys_not_inserted(tasks, inserted);
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT idempotency_key, id FROM tasks \
         WHERE idempotency_key IN (SELECT value FROM json_each(?))",
    )
    .bind(json!(wanted).to_string())
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(rows.into_iter().collect())
}

/// Leases due tasks to the claiming worker.
/// Milliseconds as a database integer, saturating.
pub(crate) fn ms(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The earliest run-at of the queue's waiting tasks.
pub(crate) async fn next_due(pool: &SqlitePool, queue: &str) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar(steward_store::sql::NEXT_DUE)
        .bind(queue)
        .fetch_one(pool)
        .await
        .map_err(db_err)
}

pub(crate) async fn claim(pool: &SqlitePool, claim: &Claim) -> Result<Vec<Task>, StoreError> {
    let now = now_ms();
    let expires = now.saturating_add(ms(claim.lease_ms));
    let rows = sqlx::query(concat!(
        "UPDATE tasks SET status = 'running', attempt = attempt + 1, fence = fence + 1, \
         lease_owner = ?, lease_expires_at_ms = ?, started_at_ms = ? \
         WHERE id IN (SELECT id FROM tasks WHERE queue = ? AND node = ? \
         AND status IN ('queued', 'failed') AND run_at_ms <= ? \
         ORDER BY priority DESC, run_at_ms, id LIMIT ?) RETURNING ",
        task_columns!()
    ))
    .bind(&claim.worker)
    .bind(expires)
    .bind(now)
    .bind(&claim.queue)
    .bind(claim.node.as_deref().unwrap_or_default())
    .bind(now)
    .bind(i64::from(claim.limit.min(MAX_CLAIM)))
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

/// Extends the worker's current leases.
pub(crate) async fn extend(
    pool: &SqlitePool,
    worker: &str,
    leases: &[(i64, i64)],
    lease_ms: u64,
) -> Result<Vec<LeaseState>, StoreError> {
    let expires = now_ms().saturating_add(ms(lease_ms));
    let extended: Vec<(i64, bool)> = sqlx::query_as(
        "UPDATE tasks SET lease_expires_at_ms = ? \
         FROM (SELECT value->>0 AS id, value->>1 AS fence FROM json_each(?)) AS l \
         WHERE tasks.id = l.id AND tasks.fence = l.fence AND tasks.status = 'running' \
         AND tasks.lease_owner = ? RETURNING tasks.id, tasks.cancel_requested",
    )
    .bind(expires)
    .bind(json!(leases).to_string())
    .bind(worker)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    Ok(lease_states(leases, extended))
}

/// Applies fenced completions and records their runs, inside the caller's transaction.
/// Answers which were accepted, and the pipeline runs of the step tasks that ended.
pub(crate) async fn complete(
    conn: &mut SqliteConnection,
    completions: &[Completion],
) -> Result<(Vec<bool>, Vec<i64>), StoreError> {
    let rows: Vec<serde_json::Value> = first_completions(completions)
        .into_iter()
        .map(|c| {
            let row = CompletionRow::of(c);
            json!([
                c.task_id,
                c.fence,
                row.status,
                row.outcome,
                row.result,
                row.error,
                row.retry_at_ms,
                row.finished_at_ms,
                c.worker,
                c.attempt,
                c.started_at_ms,
                c.ended_at_ms,
                row.output_tail,
            ])
        })
        .collect();
    let batch = serde_json::Value::Array(rows).to_string();
    let accepted: Vec<(i64, Option<i64>, String)> = sqlx::query_as(
        "UPDATE tasks SET status = c.status, outcome = c.outcome, result = c.result, \
         error = c.error, run_at_ms = coalesce(c.retry_at, tasks.run_at_ms), \
         finished_at_ms = c.finished_at, lease_owner = NULL, lease_expires_at_ms = NULL \
         FROM (SELECT value->>0 AS id, value->>1 AS fence, value->>2 AS status, \
         value->>3 AS outcome, value->>4 AS result, value->>5 AS error, \
         value->>6 AS retry_at, value->>7 AS finished_at FROM json_each(?)) AS c \
         WHERE tasks.id = c.id AND tasks.fence = c.fence AND tasks.status = 'running' \
         RETURNING tasks.id, tasks.pipeline_run, tasks.status",
    )
    .bind(&batch)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let runs = runs_of(
        accepted
            .iter()
            .filter(|(_, _, status)| status != TaskStatus::Failed.as_str())
            .map(|(_, run, _)| *run),
    );
    let accepted: Vec<i64> = accepted.into_iter().map(|(id, _, _)| id).collect();
    if !accepted.is_empty() {
        sqlx::query(
            "INSERT INTO task_runs (task_id, attempt, worker, started_at_ms, ended_at_ms, \
             status, outcome, error, output_tail) \
             SELECT value->>0, value->>9, value->>8, value->>10, value->>11, value->>2, \
             value->>3, value->>5, value->>12 FROM json_each(?) \
             WHERE value->>0 IN (SELECT value FROM json_each(?))",
        )
        .bind(&batch)
        .bind(json!(accepted).to_string())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    Ok((completion_answers(completions, &accepted), runs))
}

/// The pipeline runs of `tasks` (those that are steps of one), each once.
async fn runs_of_tasks(conn: &mut SqliteConnection, tasks: &[i64]) -> Result<Vec<i64>, StoreError> {
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    let runs: Vec<Option<i64>> = sqlx::query_scalar(
        "SELECT pipeline_run FROM tasks WHERE id IN (SELECT value FROM json_each(?)) \
         AND pipeline_run IS NOT NULL",
    )
    .bind(json!(tasks).to_string())
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(runs_of(runs))
}

/// Takes back expired leases, inside the caller's transaction.
pub(crate) async fn reap(
    conn: &mut SqliteConnection,
    now: i64,
    limit: u32,
) -> Result<Vec<Reaped>, StoreError> {
    // Read the owners first: RETURNING shows the row after the update, lease cleared.
    let expired: Vec<(i64, String, i64, i64)> = sqlx::query_as(concat!(
        "SELECT id, coalesce(lease_owner, ''), attempt, coalesce(started_at_ms, ?) FROM tasks \
             WHERE status = 'running' AND lease_expires_at_ms < ? AND ",
        steward_store::reapable!(),
        " ORDER BY lease_expires_at_ms LIMIT ?"
    ))
    .bind(now)
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    if expired.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<serde_json::Value> = expired
        .iter()
        .map(|(id, worker, attempt, started)| {
            json!([id, worker, attempt, started, lease_expired_error(worker)])
        })
        .collect();
    let batch = serde_json::Value::Array(rows).to_string();
    let updated: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
        "UPDATE tasks SET \
         status = CASE WHEN cancel_requested THEN 'cancelled' \
                       WHEN attempt >= max_attempts THEN 'dead' ELSE 'queued' END, \
         finished_at_ms = CASE WHEN cancel_requested OR attempt >= max_attempts THEN ? END, \
         error = e.error, run_at_ms = ?, lease_owner = NULL, lease_expires_at_ms = NULL \
         FROM (SELECT value->>0 AS id, value->>4 AS error FROM json_each(?)) AS e \
         WHERE tasks.id = e.id \
         RETURNING tasks.id, tasks.queue, tasks.status, tasks.kind, tasks.attempt",
    )
    .bind(now)
    .bind(now)
    .bind(&batch)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    sqlx::query(
        "INSERT INTO task_runs (task_id, attempt, worker, started_at_ms, ended_at_ms, status, \
         error) SELECT value->>0, value->>2, value->>1, value->>3, ?, 'lease_expired', \
         value->>4 FROM json_each(?)",
    )
    .bind(now)
    .bind(&batch)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    let owners: HashMap<i64, &str> = expired
        .iter()
        .map(|(id, worker, _, _)| (*id, worker.as_str()))
        .collect();
    updated
        .into_iter()
        .map(|(id, queue, status, kind, attempt)| {
            Ok(Reaped {
                task_id: id,
                queue,
                kind,
                attempt: u32::try_from(attempt)
                    .map_err(|_| StoreError::Corrupt(format!("task {id}: attempt {attempt}")))?,
                worker: owners.get(&id).copied().unwrap_or_default().to_string(),
                status: parse_status(&status)?,
            })
        })
        .collect()
}

/// One task, read through `conn`.
pub(crate) async fn get(conn: &mut SqliteConnection, id: i64) -> Result<Option<Task>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    row.as_ref().map(task_from_row).transpose()
}

/// A task's runs.
pub(crate) async fn runs(pool: &SqlitePool, id: i64) -> Result<Vec<TaskRun>, StoreError> {
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
pub(crate) async fn list(pool: &SqlitePool, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE id > ? AND (? IS NULL OR queue = ?) AND (? IS NULL OR status = ?) \
         AND (? IS NULL OR kind = ?) AND (? IS NULL OR outcome = ?) \
         AND (? IS NULL OR workspace = ?) ORDER BY id LIMIT ?"
    ))
    .bind(query.after_id)
    .bind(&query.queue)
    .bind(&query.queue)
    .bind(query.status.map(TaskStatus::as_str))
    .bind(query.status.map(TaskStatus::as_str))
    .bind(&query.kind)
    .bind(&query.kind)
    .bind(&query.outcome)
    .bind(&query.outcome)
    .bind(&query.workspace)
    .bind(&query.workspace)
    .bind(i64::from(query.limit.min(MAX_TASK_PAGE)))
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(task_from_row).collect()
}

/// Cancels (or asks to cancel) a task, inside the caller's transaction.
pub(crate) async fn cancel(
    conn: &mut SqliteConnection,
    id: i64,
    actor: &Actor,
) -> Result<Task, StoreError> {
    let before = get(conn, id).await?.ok_or_else(|| task_not_found(id))?;
    let change = match cancel_step(&before)? {
        CancelStep::CancelNow => sqlx::query(concat!(
            "UPDATE tasks SET status = 'cancelled', finished_at_ms = ? WHERE id = ? RETURNING ",
            task_columns!()
        ))
        .bind(now_ms())
        .bind(id),
        CancelStep::RequestStop => sqlx::query(concat!(
            "UPDATE tasks SET cancel_requested = 1 WHERE id = ? RETURNING ",
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
    conn: &mut SqliteConnection,
    id: i64,
    actor: &Actor,
) -> Result<Task, StoreError> {
    let before = get(conn, id).await?.ok_or_else(|| task_not_found(id))?;
    check_retryable(&before)?;
    let row = sqlx::query(concat!(
        "UPDATE tasks SET status = 'queued', attempt = 0, run_at_ms = ?, error = NULL, \
         outcome = NULL, result = NULL, finished_at_ms = NULL, cancel_requested = 0 \
         WHERE id = ? RETURNING ",
        task_columns!()
    ))
    .bind(now_ms())
    .bind(id)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    let after = task_from_row(&row)?;
    append_audit(
        conn,
        steward_store::audit::task_changed("task.retry", actor, &after, before.status),
    )
    .await?;
    Ok(after)
}

/// Tasks per queue and status from the counters the triggers keep (migration 0013), with
/// the oldest due task of each queue that has queued tasks, read from those alone through the
/// `(queue, status)` index: neither read touches finished tasks, so the cost does not grow with
/// how many are retained. One read transaction, so both agree.
pub(crate) async fn counts(pool: &SqlitePool) -> Result<Vec<TaskCount>, StoreError> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let counted: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT queue, status, n FROM task_counts WHERE n <> 0 ORDER BY queue, status",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err)?;
    let oldest: Vec<(String, i64)> = sqlx::query_as(
        "SELECT c.queue, (SELECT min(max(t.created_at_ms, t.run_at_ms)) FROM tasks t \
         WHERE t.queue = c.queue AND t.status = 'queued' AND t.run_at_ms <= ?) AS oldest \
         FROM task_counts c WHERE c.status = 'queued' AND c.n > 0 AND oldest IS NOT NULL",
    )
    .bind(now_ms())
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    task_counts(with_oldest_due(counted, &oldest))
}

/// Tasks of each queue finished since `since_ms`, per status: one range of the
/// `(queue, finished_at_ms)` index per queue, in one read transaction.
pub(crate) async fn finished_since(
    pool: &SqlitePool,
    queues: &[String],
    since_ms: i64,
) -> Result<Vec<TaskCount>, StoreError> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let mut rows = Vec::new();
    for queue in queues {
        let found: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT queue, status, count(*), NULL FROM tasks \
             WHERE queue = ?1 AND finished_at_ms >= ?2 GROUP BY queue, status ORDER BY status",
        )
        .bind(queue)
        .bind(since_ms)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        rows.extend(found);
    }
    tx.commit().await.map_err(db_err)?;
    // By queue, then status, as PostgreSQL answers.
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    task_counts(rows)
}

/// Deletes old finished tasks of a queue.
pub(crate) async fn purge(
    pool: &SqlitePool,
    queue: &str,
    before: i64,
    limit: u32,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE queue = ? \
         AND finished_at_ms IS NOT NULL AND finished_at_ms < ? LIMIT ?)",
    )
    .bind(queue)
    .bind(before)
    .bind(i64::from(limit))
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(done.rows_affected())
}

fn task_from_row(row: &SqliteRow) -> Result<Task, StoreError> {
    TaskRow::from_row(row).map_err(db_err)?.try_into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use steward_core::audit::Actor;
    use steward_core::task::{NewTask, TaskOrigin, TaskStatus};
    use steward_store::prelude::*;
    use steward_store::{Claim, now_ms};

    use crate::SqliteStore;

    #[tokio::test]
    async fn a_reopened_store_returns_the_tasks_an_earlier_process_was_running() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        store.migrate().await.unwrap();
        let task = NewTask {
            timeout_ms: None,
            queue: "q".into(),
            kind: "noop".into(),
            payload: "{}".into(),
            priority: 0,
            run_at_ms: 0,
            max_attempts: 3,
            idempotency_key: None,
            origin: TaskOrigin::default(),
            node: None,
        };
        store
            .enqueue_tasks(&[task], &Actor::system("t"))
            .await
            .unwrap();
        let claim = Claim {
            queue: "q".into(),
            worker: "old".into(),
            limit: 1,
            lease_ms: 600_000,
            node: None,
        };
        let claimed = store.claim_tasks(&claim).await.unwrap();
        assert_eq!(claimed.len(), 1);
        // Closed while running it, as by a crash.
        store.close().await;

        let store = SqliteStore::open(dir.path()).await.unwrap();
        store.migrate().await.unwrap();
        let reaped = store.reap_expired_leases(now_ms(), 100).await.unwrap();
        assert_eq!(reaped.len(), 1, "taken back at once, not ten minutes later");
        let task = store.task(claimed[0].id).await.unwrap().unwrap();
        assert_eq!(task.status, TaskStatus::Queued);
        store.close().await;
    }

    #[tokio::test]
    async fn damaged_task_rows_are_reported_as_corrupt() {
        use sqlx::Connection;
        use steward_store::conformance::assert_corrupt;

        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        store.migrate().await.unwrap();
        let task = NewTask {
            timeout_ms: None,
            queue: "q".into(),
            kind: "noop".into(),
            payload: "{}".into(),
            priority: 0,
            run_at_ms: 0,
            max_attempts: 3,
            idempotency_key: None,
            origin: TaskOrigin::default(),
            node: None,
        };
        let id = store
            .enqueue_tasks(&[task], &Actor::system("t"))
            .await
            .unwrap()[0]
            .id;
        let url = format!("sqlite://{}", store.path().display());
        let mut raw = sqlx::SqliteConnection::connect(&url).await.unwrap();
        for (what, sql) in [
            ("payload", "UPDATE tasks SET payload = '{\"a\":'"),
            (
                "result",
                "UPDATE tasks SET payload = '{}', result = 'not json'",
            ),
            ("attempt", "UPDATE tasks SET result = NULL, attempt = -1"),
            // The status's CHECK is lifted for this connection only, to write what it forbids.
            (
                "status",
                "PRAGMA ignore_check_constraints = ON; \
                 UPDATE tasks SET attempt = 0, status = 'lost'",
            ),
        ] {
            sqlx::raw_sql(sql).execute(&mut raw).await.expect(sql);
            assert_corrupt(what, store.task(id).await);
        }
        raw.close().await.unwrap();
        store.close().await;
    }
}
