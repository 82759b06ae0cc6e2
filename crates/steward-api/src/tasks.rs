//! `/api/v1/tasks` and `/api/v1/queues`: enqueue (one or a batch), read, list, cancel, retry,
//! and counts. A workspace-scoped key enqueues only for its workspace and sees only its
//! workspace's tasks.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use steward_core::task::{Task, TaskOrigin, TaskStatus};
use steward_engine::queue::{EnqueueError, EnqueueRequest};
use steward_store::TaskQuery;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::extract::{ApiBody, ApiPath, ApiQuery, page_limit};
use crate::routes::{parse_body, store_error};
use crate::{ApiError, AppState};

/// One task in an enqueue body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskBody {
    queue: String,
    kind: String,
    #[serde(default)]
    payload: Option<serde_json::Value>,
    #[serde(default)]
    priority: Option<i64>,
    #[serde(default)]
    run_at_ms: Option<i64>,
    #[serde(default)]
    delay_ms: Option<i64>,
    #[serde(default)]
    max_attempts: Option<i64>,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    workspace: Option<String>,
}

/// A batch: `{"tasks": [...]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    tasks: Vec<TaskBody>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
}

fn request_of(body: TaskBody, caller: &Caller) -> Result<EnqueueRequest, ApiError> {
    let workspace = match (&caller.principal.workspace, body.workspace) {
        (Some(scope), Some(asked)) if *scope != asked => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this key may only enqueue for workspace `{scope}`"),
            ));
        }
        (Some(scope), _) => Some(scope.clone()),
        (None, asked) => asked,
    };
    Ok(EnqueueRequest {
        queue: body.queue,
        kind: body.kind,
        payload: body.payload,
        priority: body.priority,
        run_at_ms: body.run_at_ms,
        delay_ms: body.delay_ms,
        max_attempts: body.max_attempts,
        idempotency_key: body.idempotency_key,
        origin: TaskOrigin {
            workspace,
            caller: Some(caller.principal.name.clone()),
            ..TaskOrigin::default()
        },
    })
}

fn enqueue_error(e: EnqueueError) -> ApiError {
    let message = e.to_string();
    match e {
        EnqueueError::UnknownQueue { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_queue", message)
        }
        EnqueueError::KindNotAllowed { .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "kind_not_allowed", message)
        }
        EnqueueError::PayloadTooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
        }
        EnqueueError::Empty | EnqueueError::TooMany(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_batch", message)
        }
        EnqueueError::Invalid { .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_task", message)
        }
        EnqueueError::Store(e) => ApiError::store(&e),
    }
}

/// `POST /api/v1/tasks`: one task (answered with the task) or `{"tasks": [...]}` (answered with
/// ids). 201 when something new was stored, 200 when every idempotency key existed.
pub(crate) async fn enqueue(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiBody(body): ApiBody,
) -> Result<impl IntoResponse, ApiError> {
    let value: serde_json::Value = parse_body(&body)?;
    let batch = value.get("tasks").is_some();
    let bodies = if batch {
        serde_json::from_value::<BatchBody>(value)
            .map_err(|e| invalid(format!("invalid batch: {e}")))?
            .tasks
    } else {
        vec![
            serde_json::from_value::<TaskBody>(value)
                .map_err(|e| invalid(format!("invalid task: {e}")))?,
        ]
    };
    let requests = bodies
        .into_iter()
        .map(|b| request_of(b, &caller))
        .collect::<Result<Vec<_>, _>>()?;
    let answers = state
        .control
        .enqueue(requests, &caller.actor())
        .await
        .map_err(enqueue_error)?;
    let created = answers.iter().filter(|a| a.created).count();
    let status = if created > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    if batch {
        let tasks: Vec<_> = answers
            .iter()
            .map(|a| json!({ "id": a.id, "created": a.created }))
            .collect();
        return Ok((status, Json(json!({ "tasks": tasks, "created": created }))));
    }
    let answer = answers.first().ok_or_else(|| invalid("no task"))?;
    let task = load(&state, answer.id).await?;
    Ok((
        status,
        Json(json!({ "task": task, "created": answer.created })),
    ))
}

async fn load(state: &AppState, id: i64) -> Result<Task, ApiError> {
    state
        .control
        .store()
        .task(id)
        .await
        .map_err(|e| ApiError::store(&e))?
        .ok_or_else(|| not_found(id))
}

fn not_found(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("task {id} not found"),
    )
}

/// A task the caller may see; another workspace's task is "not found", not "forbidden", so that
/// scoped keys learn nothing about other workspaces.
async fn visible(state: &AppState, caller: &Caller, id: i64) -> Result<Task, ApiError> {
    let task = load(state, id).await?;
    match &caller.principal.workspace {
        Some(scope) if task.origin.workspace.as_ref() != Some(scope) => Err(not_found(id)),
        _ => Ok(task),
    }
}

/// `GET /api/v1/tasks/{id}`: the task and its finished attempts.
pub(crate) async fn get_task(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let task = visible(&state, &caller, id).await?;
    let runs = state
        .control
        .store()
        .task_runs(id)
        .await
        .map_err(|e| ApiError::store(&e))?;
    Ok(Json(json!({ "task": task, "runs": runs })))
}

/// The query of `GET /api/v1/tasks`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    /// Tasks after this id (the last page's `next_after`).
    #[serde(default)]
    after: i64,
    /// Tasks per page (default 100).
    limit: Option<u32>,
    /// Only this queue's tasks.
    queue: Option<String>,
    /// Only tasks in this status (`queued`, `running`, `succeeded`, `dead`, …).
    status: Option<String>,
    /// Only tasks of this kind.
    kind: Option<String>,
    /// Only tasks whose executor reported this outcome label (`applied`, `skipped`, …).
    outcome: Option<String>,
    /// Only this workspace's tasks (a scoped key gets its own whatever it asks).
    workspace: Option<String>,
}

/// `GET /api/v1/tasks`: filtered, by id, keyset-paginated with `after`.
pub(crate) async fn list_tasks(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<impl IntoResponse, ApiError> {
    let status = params
        .status
        .as_deref()
        .map(str::parse::<TaskStatus>)
        .transpose()
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("`status`: {e}"),
            )
        })?;
    let limit = page_limit(params.limit, 100, steward_store::tasks::MAX_TASK_PAGE)?;
    let workspace = match &caller.principal.workspace {
        Some(scope) => Some(scope.clone()),
        None => params.workspace,
    };
    let query = TaskQuery {
        after_id: params.after,
        limit,
        queue: params.queue,
        status,
        kind: params.kind,
        outcome: params.outcome,
        workspace,
    };
    let tasks = state
        .control
        .store()
        .list_tasks(&query)
        .await
        .map_err(|e| ApiError::store(&e))?;
    let next_after = (tasks.len() == limit as usize)
        .then(|| tasks.last().map(|t| t.id))
        .flatten();
    Ok(Json(json!({ "tasks": tasks, "next_after": next_after })))
}

/// The two changes a caller may make to a task.
enum TaskChange {
    Cancel,
    Retry,
}

async fn change_task(
    state: AppState,
    caller: Caller,
    id: i64,
    change: TaskChange,
) -> Result<Json<serde_json::Value>, ApiError> {
    visible(&state, &caller, id).await?;
    let store = state.control.store();
    let actor = caller.actor();
    let task = match change {
        TaskChange::Cancel => store.cancel_task(id, &actor).await,
        TaskChange::Retry => store.retry_task(id, &actor).await,
    }
    .map_err(store_error)?;
    Ok(Json(json!({ "task": task })))
}

/// `POST /api/v1/tasks/{id}/cancel`.
pub(crate) async fn cancel_task(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    change_task(state, caller, id, TaskChange::Cancel).await
}

/// `POST /api/v1/tasks/{id}/retry`.
pub(crate) async fn retry_task(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    change_task(state, caller, id, TaskChange::Retry).await
}

/// `GET /api/v1/queues`: each declared queue's settings and its tasks per status.
pub(crate) async fn list_queues(
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    let counts = state
        .control
        .store()
        .task_counts()
        .await
        .map_err(|e| ApiError::store(&e))?;
    let queues: Vec<_> = state
        .control
        .queues()
        .iter()
        .map(|q| {
            let per_status: serde_json::Map<String, serde_json::Value> = TaskStatus::ALL
                .iter()
                .map(|s| {
                    let n = counts
                        .iter()
                        .find(|c| c.queue == q.name && c.status == *s)
                        .map_or(0, |c| c.count);
                    (s.as_str().to_string(), json!(n))
                })
                .collect();
            json!({
                "name": q.name,
                "kinds": q.kinds,
                "concurrency": q.concurrency,
                "rate_limit": q.rate_limit,
                "max_attempts": q.retry.max_attempts,
                "timeout_ms": q.timeout_ms,
                "lease_ms": q.lease_ms,
                "max_payload_bytes": q.max_payload_bytes,
                "retention_ms": q.retention_ms,
                "counts": per_status,
            })
        })
        .collect();
    Ok(Json(json!({ "queues": queues })))
}
