//! Pipeline runs on PostgreSQL, shared by every instance. A transaction that advances runs
//! locks their rows first (in id order), so two instances ending the last two branches of a
//! fan-in one after the other each see the other's step, and the join starts exactly once.

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgPool};
use steward_core::audit::Actor;
use steward_store::pipelines::{
    LoadedRun, MAX_RUN_PAGE, Mode, Plan, StepWrite, plan, run_acted, run_not_found, runs_started,
};
use steward_store::rows::{
    PIPELINE_RUN_COLUMNS, PIPELINE_STEP_COLUMNS, PipelineRunRow, PipelineStepRow,
};
use steward_store::{
    NewRun, PipelineRun, PipelineRunQuery, PipelineStore, RunChange, RunStarted, RunStep,
    StoreError, now_ms,
};

use crate::PostgresStore;
use crate::{audit::append_audit, db_err};

/// Each step's task, looked up by its key one step at a time: a join would let a generic plan
/// (sqlx prepares its statements) estimate hundreds of steps and scan every task, a cost that
/// grows with the tasks retained (`OFFSET 0` keeps the planner from flattening it into one).
const STEP_TASK: &str = "LEFT JOIN LATERAL (SELECT status, attempt, result, error FROM tasks \
     WHERE tasks.id = s.task_id OFFSET 0) t ON TRUE";

#[async_trait]
impl PipelineStore for PostgresStore {
    async fn start_runs(
        &self,
        runs: &[NewRun],
        actor: &Actor,
    ) -> Result<Vec<RunStarted>, StoreError> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let mut answers = Vec::with_capacity(runs.len());
        let mut created = Vec::new();
        for run in runs {
            let answer = insert_run(&mut tx, run).await?;
            if answer.created {
                created.push(answer.id);
            }
            answers.push(answer);
        }
        let changes = advance_runs(&mut tx, &created, Mode::Advance).await?;
        append_audit(&mut tx, runs_started(actor, runs, &answers)).await?;
        tx.commit().await.map_err(db_err)?;
        self.announce(changes);
        Ok(answers)
    }

    async fn pipeline_run(&self, id: i64) -> Result<Option<PipelineRun>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        get_run(&mut conn, id).await
    }

    async fn run_steps(&self, id: i64) -> Result<Vec<RunStep>, StoreError> {
        let rows: Vec<PipelineStepRow> = sqlx::query_as(&format!(
            "SELECT {PIPELINE_STEP_COLUMNS} FROM pipeline_steps s {STEP_TASK} \
             WHERE s.run_id = $1 ORDER BY s.position"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(PipelineStepRow::into_step).collect()
    }

    async fn list_runs(&self, query: &PipelineRunQuery) -> Result<Vec<PipelineRun>, StoreError> {
        list(&self.pool, query).await
    }

    async fn cancel_run(&self, id: i64, actor: &Actor) -> Result<PipelineRun, StoreError> {
        self.act_on_run(id, actor, Mode::Cancel, "cancel").await
    }

    async fn retry_run(&self, id: i64, actor: &Actor) -> Result<PipelineRun, StoreError> {
        self.act_on_run(id, actor, Mode::Retry, "retry").await
    }

    async fn purge_runs(&self, finished_before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM pipeline_runs WHERE id IN (SELECT id FROM pipeline_runs \
             WHERE finished_at_ms IS NOT NULL AND finished_at_ms < $1 LIMIT $2)",
        )
        .bind(finished_before_ms)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}

impl PostgresStore {
    /// Cancels or retries one run, audited, in one transaction; an unknown run changes nothing
    /// and is [`StoreError::NotFound`].
    async fn act_on_run(
        &self,
        id: i64,
        actor: &Actor,
        mode: Mode,
        action: &str,
    ) -> Result<PipelineRun, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // Step tasks first, then the run, in the order a completion locks them: a completion
        // of one of its steps meanwhile then waits, rather than deadlocking.
        sqlx::query(
            "SELECT t.id FROM tasks t JOIN pipeline_steps s ON s.task_id = t.id \
             WHERE s.run_id = $1 ORDER BY t.id FOR UPDATE OF t",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let changes = advance_runs(&mut tx, &[id], mode).await?;
        let after = get_run(&mut tx, id)
            .await?
            .ok_or_else(|| run_not_found(id))?;
        append_audit(&mut tx, run_acted(actor, action, &after)).await?;
        tx.commit().await.map_err(db_err)?;
        self.announce(changes);
        Ok(after)
    }

    /// Announces what a committed transaction changed in runs (its step tasks' queues were
    /// notified inside it).
    pub(crate) fn announce(&self, changes: Vec<RunChange>) {
        if !changes.is_empty() {
            let _ = self.pipeline_changes.send(changes.into());
        }
    }
}

/// Inserts a run and its waiting steps, or finds the run holding its idempotency key.
async fn insert_run(conn: &mut PgConnection, run: &NewRun) -> Result<RunStarted, StoreError> {
    let spec = serde_json::to_string(&run.spec).map_err(|e| StoreError::Database(Box::new(e)))?;
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO pipeline_runs (pipeline, workspace, status, spec, input, attempt, \
         idempotency_key, schedule, alert, caller, created_at_ms) \
         VALUES ($1, $2, 'running', $3::jsonb, $4::jsonb, 1, $5, $6, $7, $8, $9) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(&run.spec.name)
    .bind(&run.spec.workspace)
    .bind(spec)
    .bind(run.input.to_string())
    .bind(&run.idempotency_key)
    .bind(&run.origin.schedule)
    .bind(&run.origin.alert)
    .bind(&run.origin.caller)
    .bind(now_ms())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    let Some(id) = inserted else {
        let existing: i64 =
            sqlx::query_scalar("SELECT id FROM pipeline_runs WHERE idempotency_key = $1")
                .bind(&run.idempotency_key)
                .fetch_one(&mut *conn)
                .await
                .map_err(db_err)?;
        return Ok(RunStarted {
            id: existing,
            created: false,
        });
    };
    let names: Vec<&str> = run.spec.steps.iter().map(|s| s.name.as_str()).collect();
    sqlx::query(
        "INSERT INTO pipeline_steps (run_id, position, name, state) \
         SELECT $1, ord - 1, n, 'waiting' FROM unnest($2::text[]) WITH ORDINALITY AS u(n, ord)",
    )
    .bind(id)
    .bind(names)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(RunStarted { id, created: true })
}

/// Locks and loads `run_ids`, plans for `mode` and writes the plan, inside the caller's
/// transaction.
pub(crate) async fn advance_runs(
    conn: &mut PgConnection,
    run_ids: &[i64],
    mode: Mode,
) -> Result<Vec<RunChange>, StoreError> {
    if run_ids.is_empty() {
        return Ok(Vec::new());
    }
    let runs = load_runs(conn, run_ids).await?;
    let plan = plan(&runs, mode, now_ms())?;
    apply(conn, plan).await
}

async fn load_runs(conn: &mut PgConnection, run_ids: &[i64]) -> Result<Vec<LoadedRun>, StoreError> {
    let runs: Vec<PipelineRunRow> = sqlx::query_as(&format!(
        "SELECT {PIPELINE_RUN_COLUMNS} FROM pipeline_runs WHERE id = ANY($1) \
         ORDER BY id FOR UPDATE"
    ))
    .bind(run_ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let steps: Vec<PipelineStepRow> = sqlx::query_as(&format!(
        "SELECT {PIPELINE_STEP_COLUMNS} FROM pipeline_steps s {STEP_TASK} \
         WHERE s.run_id = ANY($1) ORDER BY s.run_id, s.position"
    ))
    .bind(run_ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    steward_store::pipelines::join_loaded(runs, steps)
}

/// Writes `plan`: the step tasks, the steps, the cancellations and the runs.
async fn apply(conn: &mut PgConnection, plan: Plan) -> Result<Vec<RunChange>, StoreError> {
    let ids: Vec<i64> = if plan.tasks.is_empty() {
        Vec::new()
    } else {
        crate::tasks::insert_tasks(conn, &plan.tasks)
            .await?
            .iter()
            .map(|a| a.id)
            .collect()
    };
    if !plan.steps.is_empty() {
        write_steps(conn, &plan.steps, &ids).await?;
    }
    if !plan.cancel_now.is_empty() {
        sqlx::query(
            "UPDATE tasks SET status = 'cancelled', finished_at_ms = $1 \
             WHERE id = ANY($2) AND status IN ('queued', 'failed')",
        )
        .bind(now_ms())
        .bind(&plan.cancel_now)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    if !plan.request_cancel.is_empty() {
        sqlx::query(
            "UPDATE tasks SET cancel_requested = TRUE WHERE id = ANY($1) AND status = 'running'",
        )
        .bind(&plan.request_cancel)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    if !plan.runs.is_empty() {
        // Arrays, not JSON: `unnest` of typed arrays is estimated small, so each row is found
        // through the primary key however many runs are kept.
        sqlx::query(
            "UPDATE pipeline_runs r SET status = w.status, attempt = w.attempt, \
             finished_at_ms = w.finished \
             FROM unnest($1::bigint[], $2::text[], $3::int[], $4::bigint[]) \
             AS w(id, status, attempt, finished) WHERE r.id = w.id",
        )
        .bind(plan.runs.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(
            plan.runs
                .iter()
                .map(|r| r.status.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            plan.runs
                .iter()
                .map(|r| i32::try_from(r.attempt).unwrap_or(i32::MAX))
                .collect::<Vec<_>>(),
        )
        .bind(
            plan.runs
                .iter()
                .map(|r| r.finished_at_ms)
                .collect::<Vec<_>>(),
        )
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    Ok(plan.announce(&ids))
}

/// Writes step rows, as typed arrays (see the runs' update in [`apply`]).
async fn write_steps(
    conn: &mut PgConnection,
    writes: &[StepWrite],
    ids: &[i64],
) -> Result<(), StoreError> {
    let task_ids = steward_store::pipelines::step_task_ids(writes, ids)?;
    sqlx::query(
        "UPDATE pipeline_steps s SET state = w.state, task_id = w.task_id, \
         result = w.result::jsonb, error = w.error, started_at_ms = w.started, \
         finished_at_ms = w.finished \
         FROM unnest($1::bigint[], $2::int[], $3::text[], $4::bigint[], $5::text[], $6::text[], \
         $7::bigint[], $8::bigint[]) \
         AS w(run_id, position, state, task_id, result, error, started, finished) \
         WHERE s.run_id = w.run_id AND s.position = w.position",
    )
    .bind(writes.iter().map(|w| w.run_id).collect::<Vec<_>>())
    .bind(
        writes
            .iter()
            .map(|w| i32::try_from(w.position).unwrap_or(i32::MAX))
            .collect::<Vec<_>>(),
    )
    .bind(writes.iter().map(|w| w.state.as_str()).collect::<Vec<_>>())
    .bind(task_ids)
    .bind(writes.iter().map(|w| w.result.clone()).collect::<Vec<_>>())
    .bind(writes.iter().map(|w| w.error.clone()).collect::<Vec<_>>())
    .bind(writes.iter().map(|w| w.started_at_ms).collect::<Vec<_>>())
    .bind(writes.iter().map(|w| w.finished_at_ms).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn get_run(conn: &mut PgConnection, id: i64) -> Result<Option<PipelineRun>, StoreError> {
    let row: Option<PipelineRunRow> = sqlx::query_as(&format!(
        "SELECT {PIPELINE_RUN_COLUMNS} FROM pipeline_runs WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    row.map(PipelineRun::try_from).transpose()
}

async fn list(pool: &PgPool, query: &PipelineRunQuery) -> Result<Vec<PipelineRun>, StoreError> {
    let statement = steward_store::pipelines::list_runs_statement(query);
    let mut select =
        sqlx::query_as::<_, PipelineRunRow>(&statement).bind(query.before_id.unwrap_or(i64::MAX));
    if let Some(pipeline) = &query.pipeline {
        select = select.bind(pipeline);
    }
    if let Some(status) = query.status {
        select = select.bind(status.as_str());
    }
    if let Some(workspace) = &query.workspace {
        select = select.bind(workspace);
    }
    let rows = select
        .bind(i64::from(query.limit.min(MAX_RUN_PAGE)))
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.into_iter().map(PipelineRun::try_from).collect()
}
