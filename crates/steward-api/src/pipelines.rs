//! `/api/v1/pipelines` and `/api/v1/pipeline-runs`: declared pipelines with their latest run,
//! starting runs, runs with their timelines, cancelling and retrying. A workspace-scoped key
//! sees and touches only its workspace's pipelines and runs (others answer 404, as if they did
//! not exist).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use steward_core::pipeline::FailurePolicy;
use steward_core::pipeline::run::RunStatus;
use steward_core::pipeline::spec::PipelineSpec;
use steward_engine::pipelines::ops::{self, OpsError};
use steward_store::pipelines::MAX_RUN_PAGE;
use steward_store::{PipelineRun, PipelineRunQuery, RunStep};
use steward_wire::pipelines as wire;
use steward_wire::time::{rfc3339, rfc3339_opt};

use crate::caller::Caller;
use crate::error::store_error;
use crate::extract::{ApiBody, ApiPath, ApiQuery, page_limit, parse_body};
use crate::{ApiError, AppState};

fn ops_error(e: OpsError) -> ApiError {
    let message = e.to_string();
    match e {
        OpsError::UnknownPipeline(_) | OpsError::UnknownRun(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
        }
        OpsError::Invalid(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message),
        OpsError::State(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
        OpsError::Store(e) => store_error(e),
    }
}

fn sees(caller: &Caller, workspace: Option<&String>) -> bool {
    caller.principal.sees(workspace.map(String::as_str))
}

/// The pipeline `name` as declared now, if the caller may see it.
fn visible_pipeline(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<PipelineSpec, ApiError> {
    let config = state.control.config();
    match ops::find(&config, name) {
        Ok(spec) if sees(caller, spec.workspace.as_ref()) => Ok(spec.clone()),
        Ok(_) => Err(ops_error(OpsError::UnknownPipeline(name.to_owned()))),
        Err(e) => Err(ops_error(e)),
    }
}

/// Run `id`, if the caller may see it.
async fn visible_run(state: &AppState, caller: &Caller, id: i64) -> Result<PipelineRun, ApiError> {
    let run = ops::find_run(state.control.store().as_ref(), id)
        .await
        .map_err(ops_error)?;
    if !sees(caller, run.spec.workspace.as_ref()) {
        return Err(ops_error(OpsError::UnknownRun(id)));
    }
    Ok(run)
}

fn policy_name(policy: FailurePolicy) -> &'static str {
    match policy {
        FailurePolicy::Stop => "stop",
        FailurePolicy::Continue => "continue",
    }
}

/// A run as the API shows it.
pub(crate) fn run_of(run: PipelineRun) -> wire::PipelineRun {
    wire::PipelineRun {
        id: run.id,
        pipeline: run.pipeline,
        workspace: run.spec.workspace,
        status: run.status.as_str().to_owned(),
        attempt: run.attempt,
        input: run.input,
        idempotency_key: run.idempotency_key,
        schedule: run.origin.schedule,
        alert: run.origin.alert,
        caller: run.origin.caller,
        created_at: rfc3339(run.created_at_ms),
        created_at_ms: run.created_at_ms,
        finished_at: rfc3339_opt(run.finished_at_ms),
        finished_at_ms: run.finished_at_ms,
        duration_ms: run.finished_at_ms.map(|f| f - run.created_at_ms),
    }
}

fn pipeline_of(spec: PipelineSpec, last_run: Option<PipelineRun>) -> wire::Pipeline {
    wire::Pipeline {
        name: spec.name,
        workspace: spec.workspace,
        description: spec.description,
        on_failure: policy_name(spec.on_failure).to_owned(),
        steps: spec
            .steps
            .into_iter()
            .map(|s| wire::PipelineStep {
                name: s.name,
                queue: s.queue,
                kind: s.kind,
                payload: s.payload,
                needs: s.needs,
                condition: s.condition,
                max_attempts: s.max_attempts,
                timeout_ms: s.timeout_ms,
                node: s.node,
            })
            .collect(),
        last_run: last_run.map(run_of),
    }
}

/// A run with its timeline as the API shows it.
pub(crate) fn detail_of(
    run: PipelineRun,
    steps: Vec<RunStep>,
    created: Option<bool>,
) -> wire::RunDetail {
    let needs: Vec<Vec<String>> = run.spec.steps.iter().map(|s| s.needs.clone()).collect();
    let steps = steps
        .into_iter()
        .map(|s| wire::RunStep {
            needs: needs.get(s.position as usize).cloned().unwrap_or_default(),
            name: s.name,
            state: s.state.as_str().to_owned(),
            task_id: s.task_id,
            task_status: s.task_status.map(|t| t.as_str().to_owned()),
            attempts: s.attempts,
            result: s.result,
            error: s.error,
            started_at: rfc3339_opt(s.started_at_ms),
            started_at_ms: s.started_at_ms,
            finished_at: rfc3339_opt(s.finished_at_ms),
            finished_at_ms: s.finished_at_ms,
            duration_ms: s.started_at_ms.zip(s.finished_at_ms).map(|(a, b)| b - a),
        })
        .collect();
    wire::RunDetail {
        run: run_of(run),
        steps,
        created,
    }
}

async fn last_run(state: &AppState, name: &str) -> Result<Option<PipelineRun>, ApiError> {
    let runs = ops::runs(
        state.control.store().as_ref(),
        &PipelineRunQuery {
            limit: 1,
            pipeline: Some(name.to_owned()),
            ..PipelineRunQuery::default()
        },
    )
    .await
    .map_err(ops_error)?;
    Ok(runs.into_iter().next())
}

/// `GET /api/v1/pipelines`.
pub(crate) async fn list_pipelines(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<wire::PipelineList>, ApiError> {
    let config = state.control.config();
    let mut pipelines = Vec::new();
    for spec in config
        .pipelines
        .iter()
        .filter(|p| sees(&caller, p.workspace.as_ref()))
    {
        let last = last_run(&state, &spec.name).await?;
        pipelines.push(pipeline_of(spec.clone(), last));
    }
    Ok(Json(wire::PipelineList { pipelines }))
}

/// `GET /api/v1/pipelines/{name}`.
pub(crate) async fn get_pipeline(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<wire::Pipeline>, ApiError> {
    let spec = visible_pipeline(&state, &caller, &name)?;
    let last = last_run(&state, &name).await?;
    Ok(Json(pipeline_of(spec, last)))
}

/// `POST /api/v1/pipelines/{name}/runs`: 201 with the new run, or 200 with the run an
/// idempotency key named.
pub(crate) async fn start_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiBody(body): ApiBody,
) -> Result<impl IntoResponse, ApiError> {
    visible_pipeline(&state, &caller, &name)?;
    let request: wire::StartRun = if body.is_empty() {
        wire::StartRun::default()
    } else {
        parse_body(&body)?
    };
    let config = state.control.config();
    let store = state.control.store().as_ref();
    let started = ops::start(
        store,
        &config,
        &name,
        request.input.unwrap_or(serde_json::Value::Null),
        request.idempotency_key,
        &caller.actor(),
    )
    .await
    .map_err(ops_error)?;
    let (run, steps) = ops::run(store, started.id).await.map_err(ops_error)?;
    let status = if started.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(detail_of(run, steps, Some(started.created)))))
}

/// `GET /api/v1/pipeline-runs`.
pub(crate) async fn list_runs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<wire::PipelineRunsQuery>,
) -> Result<Json<wire::PipelineRunList>, ApiError> {
    let limit = page_limit(query.limit, 50, MAX_RUN_PAGE)?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            s.parse::<RunStatus>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!("`status`: `{s}` is not one of running, succeeded, failed, cancelled"),
                )
            })
        })
        .transpose()?;
    if let Some(name) = &query.pipeline {
        visible_pipeline(&state, &caller, name)?;
    }
    let runs = ops::runs(
        state.control.store().as_ref(),
        &PipelineRunQuery {
            before_id: query.before,
            limit,
            pipeline: query.pipeline,
            status,
            // A scoped key's page holds its workspace's runs only, so a page is never emptied
            // by filtering after the limit.
            workspace: caller.principal.workspace.clone(),
        },
    )
    .await
    .map_err(ops_error)?;
    let next_before = (runs.len() == limit as usize)
        .then(|| runs.last().map(|r| r.id))
        .flatten();
    Ok(Json(wire::PipelineRunList {
        runs: runs.into_iter().map(run_of).collect(),
        next_before,
    }))
}

/// `GET /api/v1/pipeline-runs/{id}`.
pub(crate) async fn get_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<wire::RunDetail>, ApiError> {
    let run = visible_run(&state, &caller, id).await?;
    let steps = ops::steps(state.control.store().as_ref(), id)
        .await
        .map_err(ops_error)?;
    Ok(Json(detail_of(run, steps, None)))
}

/// What an operator does to a run.
#[derive(Clone, Copy)]
enum RunAction {
    Cancel,
    Retry,
}

/// `POST /api/v1/pipeline-runs/{id}/cancel`.
pub(crate) async fn cancel_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<wire::RunDetail>, ApiError> {
    act_on_run(&state, &caller, id, RunAction::Cancel).await
}

/// `POST /api/v1/pipeline-runs/{id}/retry`.
pub(crate) async fn retry_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<wire::RunDetail>, ApiError> {
    act_on_run(&state, &caller, id, RunAction::Retry).await
}

/// Cancels or retries a run the caller may see; answers the run as it is after, with its steps.
async fn act_on_run(
    state: &AppState,
    caller: &Caller,
    id: i64,
    action: RunAction,
) -> Result<Json<wire::RunDetail>, ApiError> {
    visible_run(state, caller, id).await?;
    let store = state.control.store().as_ref();
    let actor = caller.actor();
    let run = match action {
        RunAction::Cancel => ops::cancel(store, id, &actor).await,
        RunAction::Retry => ops::retry(store, id, &actor).await,
    }
    .map_err(ops_error)?;
    let steps = ops::steps(store, id).await.map_err(ops_error)?;
    Ok(Json(detail_of(run, steps, None)))
}
