//! Pipeline runs on SQLite. Runs advance inside the writer transaction that ends a step's
//! task; batches travel as one JSON array unpacked with `json_each`, as the task queue's do.

use async_trait::async_trait;
use serde_json::json;
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteConnection;
use steward_core::audit::Actor;
use steward_store::pipelines::{
    LoadedRun, MAX_RUN_PAGE, Mode, Plan, plan, run_acted, run_not_found, runs_started,
};
use steward_store::rows::{
    PIPELINE_RUN_COLUMNS, PIPELINE_STEP_COLUMNS, PipelineRunRow, PipelineStepRow,
};
use steward_store::{
    NewRun, PipelineRun, PipelineRunQuery, PipelineStore, RunChange, RunStarted, RunStep,
    StoreError, now_ms,
};

use crate::SqliteStore;
use crate::{audit::append_audit, db_err};

/// What a transaction advanced, to announce once it has committed.
#[derive(Debug, Default)]
pub(crate) struct Advanced {
    /// The changes, for [`steward_store::Database::pipeline_changes`].
    pub changes: Vec<RunChange>,
    /// The queues step tasks were added to, to wake.
    pub queues: Vec<String>,
}

#[async_trait]
impl PipelineStore for SqliteStore {
    async fn start_runs(
        &self,
        runs: &[NewRun],
        actor: &Actor,
    ) -> Result<Vec<RunStarted>, StoreError> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut answers = Vec::with_capacity(runs.len());
        let mut created = Vec::new();
        for run in runs {
            let answer = insert_run(&mut tx, run).await?;
            if answer.created {
                created.push(answer.id);
            }
            answers.push(answer);
        }
        let advanced = advance_runs(&mut tx, &created, Mode::Advance).await?;
        append_audit(&mut tx, runs_started(actor, runs, &answers)).await?;
        tx.commit().await.map_err(db_err)?;
        self.announce(advanced);
        Ok(answers)
    }

    async fn pipeline_run(&self, id: i64) -> Result<Option<PipelineRun>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(db_err)?;
        get_run(&mut conn, id).await
    }

    async fn run_steps(&self, id: i64) -> Result<Vec<RunStep>, StoreError> {
        let rows: Vec<PipelineStepRow> = sqlx::query_as(&format!(
            "SELECT {PIPELINE_STEP_COLUMNS} FROM pipeline_steps s \
             LEFT JOIN tasks t ON t.id = s.task_id WHERE s.run_id = ? ORDER BY s.position"
        ))
        .bind(id)
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(PipelineStepRow::into_step).collect()
    }

    async fn list_runs(&self, query: &PipelineRunQuery) -> Result<Vec<PipelineRun>, StoreError> {
        list(&self.reader, query).await
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
             WHERE finished_at_ms IS NOT NULL AND finished_at_ms < ? LIMIT ?)",
        )
        .bind(finished_before_ms)
        .bind(i64::from(limit))
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}

impl SqliteStore {
    /// Cancels or retries one run, audited, in one transaction; an unknown run changes nothing
    /// and is [`StoreError::NotFound`].
    async fn act_on_run(
        &self,
        id: i64,
        actor: &Actor,
        mode: Mode,
        action: &str,
    ) -> Result<PipelineRun, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let advanced = advance_runs(&mut tx, &[id], mode).await?;
        let after = get_run(&mut tx, id)
            .await?
            .ok_or_else(|| run_not_found(id))?;
        append_audit(&mut tx, run_acted(actor, action, &after)).await?;
        tx.commit().await.map_err(db_err)?;
        self.announce(advanced);
        Ok(after)
    }

    /// Wakes the queues step tasks went to and announces the changes, once committed.
    pub(crate) fn announce(&self, advanced: Advanced) {
        self.wake(advanced.queues.iter().map(String::as_str));
        if !advanced.changes.is_empty() {
            let _ = self.pipeline_changes.send(advanced.changes.into());
        }
    }
}

/// Inserts a run and its waiting steps, or finds the run holding its idempotency key.
async fn insert_run(conn: &mut SqliteConnection, run: &NewRun) -> Result<RunStarted, StoreError> {
    let spec = serde_json::to_string(&run.spec).map_err(|e| StoreError::Database(Box::new(e)))?;
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO pipeline_runs (pipeline, workspace, status, spec, input, attempt, \
         idempotency_key, schedule, alert, caller, created_at_ms) \
         VALUES (?, ?, 'running', ?, ?, 1, ?, ?, ?, ?, ?) \
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
            sqlx::query_scalar("SELECT id FROM pipeline_runs WHERE idempotency_key = ?")
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
         SELECT ?, key, value, 'waiting' FROM json_each(?)",
    )
    .bind(id)
    .bind(json!(names).to_string())
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(RunStarted { id, created: true })
}

/// Loads `run_ids`, plans for `mode` and writes the plan, inside the caller's transaction.
pub(crate) async fn advance_runs(
    conn: &mut SqliteConnection,
    run_ids: &[i64],
    mode: Mode,
) -> Result<Advanced, StoreError> {
    if run_ids.is_empty() {
        return Ok(Advanced::default());
    }
    let runs = load_runs(conn, run_ids).await?;
    let plan = plan(&runs, mode, now_ms())?;
    apply(conn, plan).await
}

async fn load_runs(
    conn: &mut SqliteConnection,
    run_ids: &[i64],
) -> Result<Vec<LoadedRun>, StoreError> {
    let ids = json!(run_ids).to_string();
    let runs: Vec<PipelineRunRow> = sqlx::query_as(&format!(
        "SELECT {PIPELINE_RUN_COLUMNS} FROM pipeline_runs \
         WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id"
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let steps: Vec<PipelineStepRow> = sqlx::query_as(&format!(
        "SELECT {PIPELINE_STEP_COLUMNS} FROM pipeline_steps s \
         LEFT JOIN tasks t ON t.id = s.task_id \
         WHERE s.run_id IN (SELECT value FROM json_each(?)) ORDER BY s.run_id, s.position"
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    steward_store::pipelines::join_loaded(runs, steps)
}

/// Writes `plan`: the step tasks, the steps, the cancellations and the runs.
async fn apply(conn: &mut SqliteConnection, plan: Plan) -> Result<Advanced, StoreError> {
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
        let rows = steward_store::pipelines::step_rows(&plan.steps, &ids)?;
        sqlx::query(
            "UPDATE pipeline_steps SET state = w.state, task_id = w.task_id, result = w.result, \
             error = w.error, started_at_ms = w.started, finished_at_ms = w.finished \
             FROM (SELECT value->>0 AS run_id, value->>1 AS position, value->>2 AS state, \
             value->>3 AS task_id, value->>4 AS result, value->>5 AS error, \
             value->>6 AS started, value->>7 AS finished FROM json_each(?)) AS w \
             WHERE pipeline_steps.run_id = w.run_id AND pipeline_steps.position = w.position",
        )
        .bind(rows.to_string())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    if !plan.cancel_now.is_empty() {
        sqlx::query(
            "UPDATE tasks SET status = 'cancelled', finished_at_ms = ? \
             WHERE id IN (SELECT value FROM json_each(?)) AND status IN ('queued', 'failed')",
        )
        .bind(now_ms())
        .bind(json!(plan.cancel_now).to_string())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    if !plan.request_cancel.is_empty() {
        sqlx::query(
            "UPDATE tasks SET cancel_requested = 1 \
             WHERE id IN (SELECT value FROM json_each(?)) AND status = 'running'",
        )
        .bind(json!(plan.request_cancel).to_string())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    if !plan.runs.is_empty() {
        let rows: Vec<serde_json::Value> = plan
            .runs
            .iter()
            .map(|r| json!([r.id, r.status.as_str(), r.attempt, r.finished_at_ms]))
            .collect();
        sqlx::query(
            "UPDATE pipeline_runs SET status = w.status, attempt = w.attempt, \
             finished_at_ms = w.finished \
             FROM (SELECT value->>0 AS id, value->>1 AS status, value->>2 AS attempt, \
             value->>3 AS finished FROM json_each(?)) AS w WHERE pipeline_runs.id = w.id",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    let queues = plan.queues().into_iter().map(str::to_owned).collect();
    Ok(Advanced {
        changes: plan.announce(&ids),
        queues,
    })
}

async fn get_run(conn: &mut SqliteConnection, id: i64) -> Result<Option<PipelineRun>, StoreError> {
    let row: Option<PipelineRunRow> = sqlx::query_as(&format!(
        "SELECT {PIPELINE_RUN_COLUMNS} FROM pipeline_runs WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    row.map(PipelineRun::try_from).transpose()
}

async fn list(pool: &SqlitePool, query: &PipelineRunQuery) -> Result<Vec<PipelineRun>, StoreError> {
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
