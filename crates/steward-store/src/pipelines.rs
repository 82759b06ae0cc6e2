//! The shapes of the pipeline calls every backend implements, and what both share: the plan a
//! transaction writes to start, advance, cancel or retry runs, decided once here from the runs
//! as loaded (steps joined with their tasks) with `steward_core::pipeline::run::advance`.
//!
//! Advancing happens in the transaction that ends a step's task (a completion, a reaped lease,
//! a cancellation): the backend loads the runs of the tasks that ended (locked, on PostgreSQL),
//! and applies [`plan`]'s writes before the commit. So the next step's task exists exactly when
//! its need's success does, and a crash between the two cannot happen.

use std::sync::Arc;

use serde_json::Value as Json;
use steward_core::audit::{Actor, AuditEntry};
use steward_core::pipeline::StepState;
use steward_core::pipeline::run::{RunRef, RunStatus, StepChange, StepRecord, advance};
use steward_core::pipeline::spec::PipelineSpec;
use steward_core::task::{NewTask, RetryPolicy, TaskOrigin, TaskStatus};

use crate::StoreError;
use crate::domain::domain_trait;

/// The most runs one list call returns.
pub const MAX_RUN_PAGE: u32 = 500;

/// A run to start.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// The pipeline as declared now; the run keeps this copy.
    pub spec: PipelineSpec,
    /// Its input (an object).
    pub input: Json,
    /// Starting the same key again answers with the existing run.
    pub idempotency_key: Option<String>,
    /// Where it came from (its workspace is the pipeline's).
    pub origin: TaskOrigin,
}

/// What starting a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunStarted {
    /// The run's id (the existing one's for a repeated idempotency key).
    pub id: i64,
    /// False when the idempotency key named an existing run.
    pub created: bool,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineRun {
    /// Unique, increasing.
    pub id: i64,
    /// Its pipeline's name.
    pub pipeline: String,
    /// Where it stands.
    pub status: RunStatus,
    /// The pipeline as it was when the run started.
    pub spec: PipelineSpec,
    /// Its input.
    pub input: Json,
    /// 1, raised by each retry.
    pub attempt: u32,
    /// Its idempotency key.
    pub idempotency_key: Option<String>,
    /// Where it came from.
    pub origin: TaskOrigin,
    /// When it started.
    pub created_at_ms: i64,
    /// When it ended, if it has.
    pub finished_at_ms: Option<i64>,
}

/// One step of a stored run, with its task's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStep {
    /// Its index in the pipeline.
    pub position: u32,
    /// Its name.
    pub name: String,
    /// Where it stands.
    pub state: StepState,
    /// Its task, once started (kept after the step ends).
    pub task_id: Option<i64>,
    /// The task's status now (`None` once retention removed it).
    pub task_status: Option<TaskStatus>,
    /// Attempts its task has started.
    pub attempts: u32,
    /// What its task returned.
    pub result: Option<Json>,
    /// Why it failed, was skipped or was cancelled.
    pub error: Option<String>,
    /// When its task was enqueued.
    pub started_at_ms: Option<i64>,
    /// When it ended.
    pub finished_at_ms: Option<i64>,
}

/// Which runs to list: newest first, below `before_id` when given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineRunQuery {
    /// Only ids below this.
    pub before_id: Option<i64>,
    /// At most this many (capped at [`MAX_RUN_PAGE`]).
    pub limit: u32,
    /// Only runs of this pipeline.
    pub pipeline: Option<String>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Only runs of pipelines in this workspace (a scoped key's listing).
    pub workspace: Option<String>,
}

/// A step that changed in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepChanged {
    /// Its name.
    pub name: String,
    /// What it became.
    pub state: StepState,
    /// Its task, when it has one.
    pub task_id: Option<i64>,
    /// From its start to its end, for a step that ended having run.
    pub duration_ms: Option<i64>,
}

/// What a transaction changed in one run, announced once committed (see
/// [`crate::Database::pipeline_changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunChange {
    /// The run.
    pub run_id: i64,
    /// Its pipeline.
    pub pipeline: String,
    /// Its pipeline's workspace.
    pub workspace: Option<String>,
    /// Its status after the change.
    pub status: RunStatus,
    /// The run was created, or retried.
    pub started: bool,
    /// The run ended in this change.
    pub finished: bool,
    /// Its steps that changed, in the order they did.
    pub steps: Vec<StepChanged>,
}

/// A batch of run changes, as announced.
pub type RunChanges = Arc<[RunChange]>;

/// How many batches of changes may wait for a slow listener before it is told it lagged.
pub const CHANGES_BUFFER: usize = 1_024;

/// A step as loaded for planning: its row joined with its task.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedStep {
    /// Its row's state.
    pub state: StepState,
    /// Its task.
    pub task_id: Option<i64>,
    /// The task's status, result and error now.
    pub task: Option<(TaskStatus, Option<Json>, Option<String>)>,
    /// Its row's result and error.
    pub result: Option<Json>,
    /// Its row's error.
    pub error: Option<String>,
    /// When its task was enqueued.
    pub started_at_ms: Option<i64>,
}

/// A run as loaded for planning.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedRun {
    /// The run's row.
    pub run: PipelineRun,
    /// Its steps, by position.
    pub steps: Vec<LoadedStep>,
}

/// What planning is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Tasks ended, or the run was just created: take what ended into account and start what
    /// is due.
    Advance,
    /// The run is cancelled: nothing starts, waiting steps are cancelled, running ones stopped.
    Cancel,
    /// The run is retried: every step that did not succeed waits again, then it advances.
    Retry,
}

/// One step's row as a transaction writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepWrite {
    /// The run.
    pub run_id: i64,
    /// The step's position.
    pub position: u32,
    /// Its state.
    pub state: StepState,
    /// Its task: `Some(Ok(id))` keeps or sets one, `Some(Err(i))` takes the id of the `i`th
    /// task of [`Plan::tasks`] once inserted, `None` clears it.
    pub task: Option<Result<i64, usize>>,
    /// Its result, as JSON text.
    pub result: Option<String>,
    /// Its error.
    pub error: Option<String>,
    /// When its task was enqueued.
    pub started_at_ms: Option<i64>,
    /// When it ended.
    pub finished_at_ms: Option<i64>,
}

/// A run's row as a transaction writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunWrite {
    /// The run.
    pub id: i64,
    /// Its status.
    pub status: RunStatus,
    /// Its attempt.
    pub attempt: u32,
    /// When it ended, if it has.
    pub finished_at_ms: Option<i64>,
}

/// Everything one transaction writes for the runs it planned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Step tasks to insert (unaudited: the run's start or retry was audited).
    pub tasks: Vec<NewTask>,
    /// Step rows to write.
    pub steps: Vec<StepWrite>,
    /// Queued or waiting step tasks to cancel at once.
    pub cancel_now: Vec<i64>,
    /// Running step tasks whose workers are asked to stop.
    pub request_cancel: Vec<i64>,
    /// Run rows to write.
    pub runs: Vec<RunWrite>,
    /// What changed, to announce after the commit (the ids of started steps' tasks filled in
    /// by [`Plan::announce`]).
    pub changes: Vec<RunChange>,
    /// Each started step's place in [`Plan::changes`] (change, step) and its task's in
    /// [`Plan::tasks`], whose id is known once inserted.
    started_tasks: Vec<(usize, usize, usize)>,
}

impl Plan {
    /// The changes to announce, with the ids the inserted tasks got (`ids`, in the order of
    /// [`Plan::tasks`]).
    pub fn announce(mut self, ids: &[i64]) -> Vec<RunChange> {
        for &(change, step, task) in &self.started_tasks {
            if let Some(step) = self
                .changes
                .get_mut(change)
                .and_then(|c| c.steps.get_mut(step))
            {
                step.task_id = ids.get(task).copied();
            }
        }
        self.changes
    }

    /// The queues of the tasks to insert, to wake once committed.
    pub fn queues(&self) -> Vec<&str> {
        crate::tasks::distinct_queues(self.tasks.iter().map(|t| t.queue.as_str()))
    }
}

/// Plans the writes for `runs` at `now_ms`. A retried run must have ended without succeeding,
/// a cancelled one must not have ended ([`StoreError::State`] otherwise; nothing is planned).
pub fn plan(runs: &[LoadedRun], mode: Mode, now_ms: i64) -> Result<Plan, StoreError> {
    let mut plan = Plan::default();
    for loaded in runs {
        check_mode(&loaded.run, mode)?;
        plan_run(&mut plan, loaded, mode, now_ms)?;
    }
    Ok(plan)
}

fn check_mode(run: &PipelineRun, mode: Mode) -> Result<(), StoreError> {
    match mode {
        Mode::Retry if !matches!(run.status, RunStatus::Failed | RunStatus::Cancelled) => {
            Err(StoreError::State(format!(
                "pipeline run {} is {}; only failed or cancelled runs can be retried",
                run.id, run.status
            )))
        }
        Mode::Cancel if run.status.is_finished() => Err(StoreError::State(format!(
            "pipeline run {} is {} and cannot be cancelled",
            run.id, run.status
        ))),
        _ => Ok(()),
    }
}

fn plan_run(plan: &mut Plan, loaded: &LoadedRun, mode: Mode, now: i64) -> Result<(), StoreError> {
    let run = &loaded.run;
    let dag = run
        .spec
        .dag()
        .map_err(|e| StoreError::Corrupt(format!("pipeline run {}: {e}", run.id)))?;
    if dag.names().len() != loaded.steps.len() {
        return Err(StoreError::Corrupt(format!(
            "pipeline run {} has {} steps stored for {} declared",
            run.id,
            loaded.steps.len(),
            dag.names().len()
        )));
    }
    let attempt = if mode == Mode::Retry {
        run.attempt + 1
    } else {
        run.attempt
    };
    let mut records = Vec::with_capacity(loaded.steps.len());
    let mut writes: Vec<Option<StepWrite>> = vec![None; loaded.steps.len()];
    let mut changed = Vec::new();
    for (i, step) in loaded.steps.iter().enumerate() {
        let mut record = StepRecord {
            state: step.state,
            result: step.result.clone(),
            error: step.error.clone(),
        };
        let mut write = None;
        if mode == Mode::Retry && step.state != StepState::Succeeded {
            record = StepRecord::waiting();
            write = Some(step_write(
                run.id,
                i,
                StepState::Waiting,
                None,
                None,
                None,
                None,
                None,
            ));
        } else if let Some((ended, ended_write)) = task_ended(run.id, i, step, now) {
            record = ended;
            changed.push(StepChanged {
                name: dag.names()[i].clone(),
                state: record.state,
                task_id: step.task_id,
                duration_ms: step.started_at_ms.map(|s| now.saturating_sub(s)),
            });
            write = Some(ended_write);
        }
        writes[i] = write;
        records.push(record);
    }
    let decided = advance(
        &run.spec,
        &dag,
        RunRef {
            id: run.id,
            input: &run.input,
        },
        &records,
        mode == Mode::Cancel,
    );
    for change in decided {
        apply_change(
            plan,
            loaded,
            &dag,
            attempt,
            now,
            &change,
            &mut records,
            &mut writes,
            &mut changed,
        );
    }
    let states: Vec<StepState> = records.iter().map(|r| r.state).collect();
    let status = RunStatus::of(&states);
    let started = mode == Mode::Retry || (run.status == RunStatus::Running && is_new(loaded));
    if status != run.status || mode == Mode::Retry {
        plan.runs.push(RunWrite {
            id: run.id,
            status,
            attempt,
            finished_at_ms: status.is_finished().then_some(now),
        });
    }
    plan.steps.extend(writes.into_iter().flatten());
    if !changed.is_empty() || status != run.status || started {
        plan.changes.push(RunChange {
            run_id: run.id,
            pipeline: run.pipeline.clone(),
            workspace: run.spec.workspace.clone(),
            status,
            started,
            finished: status.is_finished() && status != run.status,
            steps: changed,
        });
    }
    Ok(())
}

/// A run none of whose steps has started: one being created.
fn is_new(loaded: &LoadedRun) -> bool {
    loaded
        .steps
        .iter()
        .all(|s| s.state == StepState::Waiting && s.task_id.is_none())
}

fn position(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

#[allow(clippy::too_many_arguments)]
fn step_write(
    run_id: i64,
    i: usize,
    state: StepState,
    task: Option<Result<i64, usize>>,
    result: Option<String>,
    error: Option<String>,
    started_at_ms: Option<i64>,
    finished_at_ms: Option<i64>,
) -> StepWrite {
    StepWrite {
        run_id,
        position: position(i),
        state,
        task,
        result,
        error,
        started_at_ms,
        finished_at_ms,
    }
}

/// A running step whose task has ended: the step's record and row after it.
fn task_ended(
    run_id: i64,
    i: usize,
    step: &LoadedStep,
    now: i64,
) -> Option<(StepRecord, StepWrite)> {
    if step.state != StepState::Running {
        return None;
    }
    let (status, result, error) = step.task.as_ref()?;
    let state = match status {
        TaskStatus::Succeeded => StepState::Succeeded,
        TaskStatus::Dead => StepState::Failed,
        TaskStatus::Cancelled => StepState::Cancelled,
        TaskStatus::Queued | TaskStatus::Running | TaskStatus::Failed => return None,
    };
    let result = (state == StepState::Succeeded)
        .then(|| result.clone())
        .flatten();
    let error = match state {
        StepState::Succeeded => None,
        StepState::Cancelled => Some(
            error
                .clone()
                .unwrap_or_else(|| "its task was cancelled".into()),
        ),
        _ => Some(error.clone().unwrap_or_else(|| "its task failed".into())),
    };
    let write = StepWrite {
        run_id,
        position: position(i),
        state,
        task: step.task_id.map(Ok),
        result: result.as_ref().map(Json::to_string),
        error: error.clone(),
        started_at_ms: step.started_at_ms,
        finished_at_ms: Some(now),
    };
    Some((
        StepRecord {
            state,
            result,
            error,
        },
        write,
    ))
}

#[allow(clippy::too_many_arguments)]
fn apply_change(
    plan: &mut Plan,
    loaded: &LoadedRun,
    dag: &steward_core::pipeline::Dag,
    attempt: u32,
    now: i64,
    change: &StepChange,
    records: &mut [StepRecord],
    writes: &mut [Option<StepWrite>],
    changed: &mut Vec<StepChanged>,
) {
    let run = &loaded.run;
    let name = |i: usize| dag.names()[i].clone();
    match change {
        StepChange::Start { step, payload } => {
            let spec = &run.spec.steps[*step];
            let index = plan.tasks.len();
            plan.tasks.push(NewTask {
                queue: spec.queue.clone(),
                kind: spec.kind.clone(),
                payload: payload.to_string(),
                priority: spec.priority,
                run_at_ms: now,
                max_attempts: spec
                    .max_attempts
                    .unwrap_or(RetryPolicy::default().max_attempts),
                idempotency_key: Some(step_task_key(run.id, attempt, &spec.name)),
                origin: TaskOrigin {
                    workspace: run.spec.workspace.clone(),
                    schedule: None,
                    alert: None,
                    caller: Some(format!("pipeline:{}", run.pipeline)),
                    pipeline_run: Some(run.id),
                },
                node: spec.node.clone(),
                timeout_ms: spec.timeout_ms,
            });
            records[*step].state = StepState::Running;
            writes[*step] = Some(step_write(
                run.id,
                *step,
                StepState::Running,
                Some(Err(index)),
                None,
                None,
                Some(now),
                None,
            ));
            // This run's change is the next one pushed; the task's id is known once inserted.
            plan.started_tasks
                .push((plan.changes.len(), changed.len(), index));
            changed.push(StepChanged {
                name: name(*step),
                state: StepState::Running,
                task_id: None,
                duration_ms: None,
            });
        }
        StepChange::Skip { step, reason: why }
        | StepChange::Fail { step, error: why }
        | StepChange::Cancel { step, reason: why } => {
            let state = match change {
                StepChange::Skip { .. } => StepState::Skipped,
                StepChange::Fail { .. } => StepState::Failed,
                _ => StepState::Cancelled,
            };
            records[*step].state = state;
            writes[*step] = Some(step_write(
                run.id,
                *step,
                state,
                None,
                None,
                Some(why.clone()),
                None,
                Some(now),
            ));
            changed.push(StepChanged {
                name: name(*step),
                state,
                task_id: None,
                duration_ms: None,
            });
        }
        StepChange::Stop { step } => {
            let loaded_step = &loaded.steps[*step];
            let (Some(task_id), Some((status, _, _))) = (loaded_step.task_id, &loaded_step.task)
            else {
                return;
            };
            match status {
                TaskStatus::Running => plan.request_cancel.push(task_id),
                TaskStatus::Queued | TaskStatus::Failed => {
                    plan.cancel_now.push(task_id);
                    let reason = "the run stopped before its task ran".to_owned();
                    records[*step].state = StepState::Cancelled;
                    writes[*step] = Some(step_write(
                        run.id,
                        *step,
                        StepState::Cancelled,
                        Some(Ok(task_id)),
                        None,
                        Some(reason),
                        loaded_step.started_at_ms,
                        Some(now),
                    ));
                    changed.push(StepChanged {
                        name: name(*step),
                        state: StepState::Cancelled,
                        task_id: Some(task_id),
                        duration_ms: None,
                    });
                }
                TaskStatus::Succeeded | TaskStatus::Dead | TaskStatus::Cancelled => {}
            }
        }
    }
}

/// The runs named by the `pipeline_run` columns of tasks that ended, each once, in order.
pub fn runs_of(pipeline_runs: impl IntoIterator<Item = Option<i64>>) -> Vec<i64> {
    pipeline_runs
        .into_iter()
        .flatten()
        .collect::<std::collections::BTreeSet<i64>>()
        .into_iter()
        .collect()
}

/// Groups loaded run rows with their step rows (both ordered by run id, steps by position).
pub fn join_loaded(
    runs: Vec<crate::rows::PipelineRunRow>,
    steps: Vec<crate::rows::PipelineStepRow>,
) -> Result<Vec<LoadedRun>, StoreError> {
    let mut loaded: Vec<LoadedRun> = runs
        .into_iter()
        .map(|row| {
            Ok(LoadedRun {
                run: PipelineRun::try_from(row)?,
                steps: Vec::new(),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    for step in steps {
        let run_id = step.run_id();
        let Some(run) = loaded.iter_mut().find(|r| r.run.id == run_id) else {
            continue;
        };
        run.steps.push(step.into_loaded()?);
    }
    Ok(loaded)
}

/// The task id each step write sets, placeholders replaced by the ids the inserted tasks got
/// (`ids`, in the order of [`Plan::tasks`]).
pub fn step_task_ids(writes: &[StepWrite], ids: &[i64]) -> Result<Vec<Option<i64>>, StoreError> {
    writes
        .iter()
        .map(|w| match w.task {
            None => Ok(None),
            Some(Ok(id)) => Ok(Some(id)),
            Some(Err(i)) => ids.get(i).copied().map(Some).ok_or_else(|| {
                StoreError::Corrupt("inserted step tasks do not match the planned ones".into())
            }),
        })
        .collect()
}

/// Step writes as one JSON array of `[run_id, position, state, task_id, result, error,
/// started_at_ms, finished_at_ms]` rows, placeholders replaced by the ids the inserted tasks
/// got (`ids`, in the order of [`Plan::tasks`]).
pub fn step_rows(writes: &[StepWrite], ids: &[i64]) -> Result<Json, StoreError> {
    let task_ids = step_task_ids(writes, ids)?;
    writes
        .iter()
        .zip(task_ids)
        .map(|(w, task_id)| {
            Ok(serde_json::json!([
                w.run_id,
                w.position,
                w.state.as_str(),
                task_id,
                w.result,
                w.error,
                w.started_at_ms,
                w.finished_at_ms,
            ]))
        })
        .collect::<Result<Vec<_>, StoreError>>()
        .map(Json::Array)
}

/// The statement listing runs for `query` (the same text on both backends, `$N` parameters in
/// order): `before_id` (or the largest id), then the pipeline, the status and the workspace
/// when given, then the limit. Only the filters given are written, so each is an equality its index serves
/// (`(pipeline, id)`, `(status, id)`), and a pipeline's latest run is one index probe however
/// many runs of others are kept.
pub fn list_runs_statement(query: &PipelineRunQuery) -> String {
    let mut conditions = vec!["id < $1".to_owned()];
    let mut n = 1;
    if query.pipeline.is_some() {
        n += 1;
        conditions.push(format!("pipeline = ${n}"));
    }
    if query.status.is_some() {
        n += 1;
        conditions.push(format!("status = ${n}"));
    }
    if query.workspace.is_some() {
        n += 1;
        conditions.push(format!("workspace = ${n}"));
    }
    format!(
        "SELECT {} FROM pipeline_runs WHERE {} ORDER BY id DESC LIMIT ${}",
        crate::rows::PIPELINE_RUN_COLUMNS,
        conditions.join(" AND "),
        n + 1
    )
}

/// The idempotency key of a step's task in one attempt of a run: a step is enqueued at most
/// once per attempt, however often its run is advanced.
pub fn step_task_key(run_id: i64, attempt: u32, step: &str) -> String {
    format!("pipeline:{run_id}:{attempt}:{step}")
}

/// The audit entry of starting runs.
pub fn runs_started(actor: &Actor, runs: &[NewRun], answers: &[RunStarted]) -> AuditEntry {
    let created: Vec<i64> = answers.iter().filter(|a| a.created).map(|a| a.id).collect();
    let mut pipelines: Vec<&str> = runs.iter().map(|r| r.spec.name.as_str()).collect();
    pipelines.sort_unstable();
    pipelines.dedup();
    AuditEntry {
        actor: actor.clone(),
        action: "pipeline.start".into(),
        target: match answers {
            [one] => format!("pipeline_run/{}", one.id),
            _ => "pipeline_run".into(),
        },
        workspace: runs
            .first()
            .and_then(|r| r.spec.workspace.clone())
            .filter(|w| runs.iter().all(|r| r.spec.workspace.as_ref() == Some(w))),
        details: serde_json::json!({
            "pipelines": pipelines,
            "count": runs.len(),
            "created": created,
        }),
    }
}

/// The audit entry of cancelling or retrying a run.
pub fn run_acted(actor: &Actor, action: &str, run: &PipelineRun) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action: format!("pipeline.{action}"),
        target: format!("pipeline_run/{}", run.id),
        workspace: run.spec.workspace.clone(),
        details: serde_json::json!({ "pipeline": run.pipeline, "attempt": run.attempt }),
    }
}

/// The error for a run id that does not exist.
pub fn run_not_found(id: i64) -> StoreError {
    StoreError::NotFound(format!("pipeline run {id}"))
}

domain_trait! {
    /// Pipeline runs: starting, reading, cancelling and retrying them. Runs advance inside the
    /// task calls that end their steps' tasks ([`crate::TaskStore::complete_tasks`],
    /// [`crate::TaskStore::reap_expired_leases`], [`crate::TaskStore::cancel_task`]).
    pub trait PipelineStore {
        /// Creates `runs` and starts each one's first steps in one transaction, audited as one
        /// `pipeline.start` by `actor`. A run whose idempotency key exists already (in the store
        /// or earlier in the call) is not created again: its answer names the existing run.
        async fn start_runs(&self, runs: &[NewRun], actor: &Actor) -> Result<Vec<RunStarted>, StoreError>;

        /// One run.
        async fn pipeline_run(&self, id: i64) -> Result<Option<PipelineRun>, StoreError>;

        /// A run's steps, in the pipeline's order, each with its task's progress.
        async fn run_steps(&self, id: i64) -> Result<Vec<RunStep>, StoreError>;

        /// Runs matching `query`, newest first.
        async fn list_runs(&self, query: &PipelineRunQuery) -> Result<Vec<PipelineRun>, StoreError>;

        /// Cancels a run that has not ended, audited as `pipeline.cancel`: waiting steps are
        /// cancelled, queued step tasks cancelled, running ones asked to stop.
        async fn cancel_run(&self, id: i64, actor: &Actor) -> Result<PipelineRun, StoreError>;

        /// Starts a failed or cancelled run again from the steps that did not succeed, keeping
        /// the results of those that did, audited as `pipeline.retry`.
        async fn retry_run(&self, id: i64, actor: &Actor) -> Result<PipelineRun, StoreError>;

        /// Deletes up to `limit` runs (with their steps) that ended before `finished_before_ms`;
        /// returns how many.
        async fn purge_runs(&self, finished_before_ms: i64, limit: u32) -> Result<u64, StoreError>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_writes_only_the_filters_given_each_an_equality() {
        let all = list_runs_statement(&PipelineRunQuery::default());
        assert!(
            all.ends_with("WHERE id < $1 ORDER BY id DESC LIMIT $2"),
            "{all}"
        );
        let both = list_runs_statement(&PipelineRunQuery {
            pipeline: Some("p".into()),
            status: Some(RunStatus::Failed),
            ..PipelineRunQuery::default()
        });
        assert!(
            both.ends_with(
                "WHERE id < $1 AND pipeline = $2 AND status = $3 ORDER BY id DESC LIMIT $4"
            ),
            "{both}"
        );
    }

    #[test]
    fn step_keys_name_the_run_its_attempt_and_the_step() {
        assert_eq!(step_task_key(7, 2, "albi"), "pipeline:7:2:albi");
    }
}
