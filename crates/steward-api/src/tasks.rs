//! `/api/v1/tasks` and `/api/v1/queues`: enqueue (one or a batch), read, list, cancel, retry,
//! and counts. A workspace-scoped key enqueues only for its workspace and sees only its
//! workspace's tasks.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use steward_core::task::{Task, TaskOrigin, TaskRun, TaskStatus};
use steward_engine::queue::{EnqueueError, EnqueueRequest};
use steward_store::{TaskCount, TaskQuery, now_ms};
use steward_wire::tasks as wire;
use steward_wire::time::{rfc3339, rfc3339_opt};

use crate::caller::Caller;
use crate::error::store_error;
use crate::extract::{ApiBody, ApiPath, ApiQuery, page_limit, parse_body};
use crate::{ApiError, AppState};

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
}

fn request_of(body: wire::NewTask, caller: &Caller) -> Result<EnqueueRequest, ApiError> {
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
        node: body.node,
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
        EnqueueError::UnknownNode { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_node", message)
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
        serde_json::from_value::<wire::NewTaskBatch>(value)
            .map_err(|e| invalid(format!("invalid batch: {e}")))?
            .tasks
    } else {
        vec![
            serde_json::from_value::<wire::NewTask>(value)
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
        let tasks = answers
            .iter()
            .map(|a| wire::EnqueuedId {
                id: a.id,
                created: a.created,
            })
            .collect();
        let answer = wire::EnqueueAnswer::Batch(wire::BatchEnqueued { tasks, created });
        return Ok((status, Json(answer)));
    }
    let answer = answers.first().ok_or_else(|| invalid("no task"))?;
    let task = task_of(load(&state, answer.id).await?);
    let answer = wire::EnqueueAnswer::One(Box::new(wire::Enqueued {
        task,
        created: answer.created,
    }));
    Ok((status, Json(answer)))
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
    Ok(Json(wire::TaskDetail {
        task: task_of(task),
        runs: runs.into_iter().map(run_of).collect(),
    }))
}

/// `GET /api/v1/tasks`: filtered, by id, keyset-paginated with `after`.
pub(crate) async fn list_tasks(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<wire::TaskListQuery>,
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
    Ok(Json(wire::TaskList {
        tasks: tasks.into_iter().map(task_of).collect(),
        next_after,
    }))
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
) -> Result<Json<wire::TaskChanged>, ApiError> {
    visible(&state, &caller, id).await?;
    let store = state.control.store();
    let actor = caller.actor();
    let task = match change {
        TaskChange::Cancel => store.cancel_task(id, &actor).await,
        TaskChange::Retry => store.retry_task(id, &actor).await,
    }
    .map_err(store_error)?;
    Ok(Json(wire::TaskChanged {
        task: task_of(task),
    }))
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
    ApiQuery(query): ApiQuery<wire::QueueListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let want_counts = query.counts.unwrap_or(true);
    let declared = state.control.queues();
    // Counting reads every stored task; a caller after the settings alone skips it.
    let (counts, recent) = if want_counts {
        let store = state.control.store();
        let names: Vec<String> = declared.iter().map(|q| q.name.clone()).collect();
        let since = now_ms() - wire::RECENT_WINDOW_MS;
        let (counts, recent) = tokio::try_join!(
            store.task_counts(),
            store.tasks_finished_since(&names, since)
        )
        .map_err(|e| ApiError::store(&e))?;
        (counts, recent)
    } else {
        (Vec::new(), Vec::new())
    };
    let queues = declared
        .iter()
        .map(|q| {
            let mine = |c: &&TaskCount| c.queue == q.name;
            let oldest = counts
                .iter()
                .filter(mine)
                .filter_map(|c| c.oldest_due_at_ms)
                .min();
            wire::Queue {
                name: q.name.clone(),
                kinds: q.kinds.clone(),
                concurrency: q.concurrency,
                rate_limit: q.rate_limit,
                max_attempts: q.retry.max_attempts,
                timeout_ms: q.timeout_ms,
                lease_ms: q.lease_ms,
                max_payload_bytes: q.max_payload_bytes,
                retention_ms: q.retention_ms,
                node: q.node.clone(),
                counts: if want_counts {
                    TaskStatus::ALL
                        .iter()
                        .map(|s| {
                            let n = counts
                                .iter()
                                .filter(mine)
                                .find(|c| c.status == *s)
                                .map_or(0, |c| c.count);
                            (s.as_str().to_owned(), n)
                        })
                        .collect()
                } else {
                    std::collections::BTreeMap::new()
                },
                finished_recently: recent
                    .iter()
                    .filter(mine)
                    .map(|c| (c.status.as_str().to_owned(), c.count))
                    .collect(),
                oldest_waiting_since: oldest.map(rfc3339),
                oldest_waiting_since_ms: oldest,
            }
        })
        .collect();
    Ok(Json(wire::QueueList { queues }))
}

/// A stored task as the API shows it.
fn task_of(t: Task) -> wire::Task {
    wire::Task {
        id: t.id,
        queue: t.queue,
        kind: t.kind,
        payload: t.payload,
        priority: t.priority,
        status: t.status.as_str().to_owned(),
        attempt: t.attempt,
        max_attempts: t.max_attempts,
        run_at: rfc3339(t.run_at_ms),
        run_at_ms: t.run_at_ms,
        outcome: t.outcome,
        result: t.result,
        error: t.error,
        lease_owner: t.lease_owner,
        lease_expires_at: rfc3339_opt(t.lease_expires_at_ms),
        lease_expires_at_ms: t.lease_expires_at_ms,
        fence: t.fence,
        cancel_requested: t.cancel_requested,
        idempotency_key: t.idempotency_key,
        origin: origin_of(t.origin),
        created_at: rfc3339(t.created_at_ms),
        created_at_ms: t.created_at_ms,
        finished_at: rfc3339_opt(t.finished_at_ms),
        finished_at_ms: t.finished_at_ms,
        node: t.node.clone(),
    }
}

fn origin_of(o: TaskOrigin) -> wire::TaskOrigin {
    wire::TaskOrigin {
        workspace: o.workspace,
        schedule: o.schedule,
        alert: o.alert,
        caller: o.caller,
    }
}

/// A finished attempt as the API shows it.
fn run_of(r: TaskRun) -> wire::TaskRun {
    wire::TaskRun {
        task_id: r.task_id,
        attempt: r.attempt,
        worker: r.worker,
        started_at: rfc3339(r.started_at_ms),
        started_at_ms: r.started_at_ms,
        ended_at: rfc3339(r.ended_at_ms),
        ended_at_ms: r.ended_at_ms,
        status: r.status,
        outcome: r.outcome,
        error: r.error,
        output_tail: r.output_tail,
    }
}
