//! `/queues`, `/tasks` and `/tasks/{id}`: every queue's settings and its tasks per status, a
//! filterable task list, and one task with its payload, result and attempts; "cancel" and
//! "retry" for operators.

use axum::extract::{Path, Query, Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use steward_wire::paths::{self, Route};
use steward_wire::tasks::{Queue, QueueList, Task, TaskDetail, TaskList, TaskListQuery, TaskRun};

use crate::render::Page;
use crate::session::Signed;
use crate::{PageError, Ui};

use super::{duration_text, elapsed_text, read_form};

/// Every task status, in the order the queues page shows them.
const TASK_STATUSES: [&str; 6] = [
    "queued",
    "running",
    "failed",
    "dead",
    "succeeded",
    "cancelled",
];
/// Tasks listed per page.
const TASKS_PER_PAGE: u32 = 50;

/// `GET /queues`'s context: the declared queues.
#[derive(Serialize)]
struct QueuesPage {
    /// The queues, in the config's order; `None` when the key may not read them.
    queues: Option<Vec<QueueRow>>,
    /// The statuses, in column order.
    statuses: [&'static str; 6],
}

/// One queue as the queues page shows it.
#[derive(Serialize)]
struct QueueRow {
    /// Its name.
    name: String,
    /// The executors its tasks may name.
    kinds: Vec<String>,
    /// Its tasks per status, in [`TASK_STATUSES`] order.
    counts: Vec<(&'static str, i64)>,
    /// All its tasks.
    total: i64,
    /// Tasks finished per minute over the last five, as text.
    per_minute: String,
    /// Since when its longest-waiting due task has waited (RFC 3339).
    oldest_waiting_since: Option<String>,
    /// Tasks run at once per instance.
    concurrency: u32,
    /// Tasks started per second per instance, if limited.
    rate_limit: Option<u32>,
    /// Attempts before a task is dead.
    max_attempts: u32,
    /// Longest an attempt may run, in words.
    timeout: String,
    /// How long a claim lasts without a heartbeat, in words.
    lease: String,
    /// Largest payload accepted, in bytes.
    max_payload_bytes: usize,
    /// How long finished tasks are kept, in words; `None` keeps them.
    retention: Option<String>,
}

/// `GET /queues`: every declared queue with its tasks per status and its settings.
pub(crate) async fn queues(State(ui): State<Ui>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        // Queue totals span every workspace, so a scoped key may not read them; it is shown
        // the way to its own tasks instead.
        let list: Option<QueueList> = ui.get_if_allowed(&signed, paths::QUEUES.template()).await?;
        ui.render(
            &signed,
            Page {
                template: "queues.html",
                title: "Queues".into(),
                nav: "queues",
                live: true,
                data: QueuesPage {
                    queues: list.map(|l| l.queues.into_iter().map(queue_row).collect()),
                    statuses: TASK_STATUSES,
                },
            },
        )
    }
    .await;
    ui.respond(result)
}

/// A queue as its row on the queues page.
fn queue_row(queue: Queue) -> QueueRow {
    let counts: Vec<(&'static str, i64)> = TASK_STATUSES
        .iter()
        .map(|s| (*s, queue.counts.get(*s).copied().unwrap_or(0)))
        .collect();
    QueueRow {
        total: queue.counts.values().sum(),
        per_minute: per_minute(&queue),
        oldest_waiting_since: queue.oldest_waiting_since.clone(),
        counts,
        kinds: queue.kinds,
        concurrency: queue.concurrency,
        rate_limit: queue.rate_limit,
        max_attempts: queue.max_attempts,
        timeout: duration_text(queue.timeout_ms),
        lease: duration_text(queue.lease_ms),
        max_payload_bytes: queue.max_payload_bytes,
        retention: queue.retention_ms.map(duration_text),
        name: queue.name,
    }
}

/// A queue's tasks finished per minute over the API's recent window, as people read it.
pub(crate) fn per_minute(queue: &Queue) -> String {
    let finished: i64 = queue.finished_recently.values().sum();
    let minutes = steward_wire::tasks::RECENT_WINDOW_MS as f64 / 60_000.0;
    let rate = finished as f64 / minutes;
    if rate == 0.0 || rate >= 10.0 {
        format!("{rate:.0}/min")
    } else {
        format!("{rate:.1}/min")
    }
}

/// The query of `GET /tasks`: the filter form's fields (empty means any) and the page.
#[derive(Deserialize)]
pub(crate) struct ListQuery {
    /// Only this queue's tasks.
    queue: Option<String>,
    /// Only tasks in this status.
    status: Option<String>,
    /// Only tasks of this kind.
    kind: Option<String>,
    /// Only tasks whose executor reported this outcome.
    outcome: Option<String>,
    /// Tasks after this id.
    after: Option<String>,
}

/// The filters a task list is shown with, each `None` when any value goes.
#[derive(Serialize)]
struct Filter {
    /// The queue.
    queue: Option<String>,
    /// The status.
    status: Option<String>,
    /// The kind.
    kind: Option<String>,
    /// The outcome label.
    outcome: Option<String>,
}

impl Filter {
    /// The filters of `query`, blank fields dropped.
    fn of(query: ListQuery) -> Self {
        let given = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        Self {
            queue: given(query.queue),
            status: given(query.status),
            kind: given(query.kind),
            outcome: given(query.outcome),
        }
    }

    /// The query string of a task list page with these filters, after task `after`.
    fn link_query(&self, after: Option<i64>) -> String {
        let after = after.map(|a| a.to_string());
        [
            ("queue", self.queue.as_ref()),
            ("status", self.status.as_ref()),
            ("kind", self.kind.as_ref()),
            ("outcome", self.outcome.as_ref()),
            ("after", after.as_ref()),
        ]
        .iter()
        .filter_map(|(name, value)| value.map(|v| format!("{name}={}", paths::encode(v))))
        .collect::<Vec<_>>()
        .join("&")
    }

    /// The API's query for one page of tasks after `after`.
    fn api_query(&self, after: i64) -> TaskListQuery {
        TaskListQuery {
            after,
            limit: Some(TASKS_PER_PAGE),
            queue: self.queue.clone(),
            status: self.status.clone(),
            kind: self.kind.clone(),
            outcome: self.outcome.clone(),
            workspace: None,
        }
    }
}

/// `GET /tasks`'s context.
#[derive(Serialize)]
struct TasksPage {
    /// This page's tasks, by id.
    tasks: Vec<Task>,
    /// The filters applied.
    filter: Filter,
    /// The declared queues' names, for the filter; `None` when the key may not list them.
    queues: Option<Vec<String>>,
    /// Every status, for the filter.
    statuses: [&'static str; 6],
    /// Whether this is a later page than the first.
    paged: bool,
    /// The query string of the first page, with the same filters.
    first: String,
    /// The query string of the next page; `None` on the last.
    next: Option<String>,
}

/// `GET /tasks`: the tasks the key may see, filtered by queue, status, kind and outcome, a
/// page at a time.
pub(crate) async fn list(
    State(ui): State<Ui>,
    Query(query): Query<ListQuery>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let after = page_after(query.after.as_deref())?;
        let filter = Filter::of(query);
        let page = read_tasks(&ui, &signed, filter, after).await?;
        ui.render(
            &signed,
            Page {
                template: "tasks.html",
                title: "Tasks".into(),
                nav: "queues",
                live: true,
                data: page,
            },
        )
    }
    .await;
    ui.respond(result)
}

/// The `after` of a task list's query: blank or absent is the first page.
fn page_after(raw: Option<&str>) -> Result<i64, PageError> {
    match raw.map(str::trim).filter(|a| !a.is_empty()) {
        None => Ok(0),
        Some(a) => a
            .parse()
            .map_err(|_| PageError::BadRequest(format!("`after` is not a task id: `{a}`"))),
    }
}

/// One page of tasks through the API, with what the filter form offers.
async fn read_tasks(
    ui: &Ui,
    signed: &Signed,
    filter: Filter,
    after: i64,
) -> Result<TasksPage, PageError> {
    let path = paths::TASKS
        .with_query(&[], &filter.api_query(after))
        .map_err(|e| PageError::Internal(e.to_string()))?;
    let list: TaskList = ui.get(signed, &path).await?;
    // The names alone: counting every stored task is the queues page's business.
    let names_only = format!("{}?counts=false", paths::QUEUES.template());
    let queues: Option<QueueList> = ui.get_if_allowed(signed, &names_only).await?;
    Ok(TasksPage {
        tasks: list.tasks,
        queues: queues.map(|q| q.queues.into_iter().map(|q| q.name).collect()),
        statuses: TASK_STATUSES,
        paged: after > 0,
        first: filter.link_query(None),
        next: list.next_after.map(|n| filter.link_query(Some(n))),
        filter,
    })
}

/// `GET /tasks/{id}`'s context.
#[derive(Serialize)]
struct TaskPage {
    /// The task.
    task: Task,
    /// Its finished attempts, oldest first.
    runs: Vec<RunRow>,
    /// Its payload as indented JSON.
    payload: String,
    /// Its result as indented JSON, if it has one.
    result: Option<String>,
    /// Whether its status allows cancelling it.
    can_cancel: bool,
    /// Whether its status allows queueing it again.
    can_retry: bool,
}

/// A finished attempt with how long it took.
#[derive(Serialize)]
struct RunRow {
    /// The attempt.
    #[serde(flatten)]
    run: TaskRun,
    /// How long it took, in words.
    took: String,
}

/// `GET /tasks/{id}`: one task in full, with its attempts.
pub(crate) async fn detail(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let id = task_id(&id)?;
        let path = paths::TASK.with(&[&id]);
        let detail: TaskDetail = ui.get(&signed, &path).await?;
        ui.render(
            &signed,
            Page {
                template: "task.html",
                title: format!("Task {id}"),
                nav: "queues",
                live: true,
                data: task_page(detail)?,
            },
        )
    }
    .await;
    ui.respond(result)
}

/// A task id from a path: anything else names no task.
fn task_id(raw: &str) -> Result<i64, PageError> {
    raw.parse()
        .map_err(|_| PageError::NotFound(format!("task `{raw}` not found")))
}

/// What the task page shows of `detail`.
fn task_page(detail: TaskDetail) -> Result<TaskPage, PageError> {
    let TaskDetail { task, runs } = detail;
    let payload = pretty(&task.payload)?;
    let result = task.result.as_ref().map(pretty).transpose()?;
    Ok(TaskPage {
        can_cancel: may_cancel(&task),
        can_retry: may_retry(&task),
        payload,
        result,
        runs: runs
            .into_iter()
            .map(|run| RunRow {
                took: elapsed_text(run.duration_ms()),
                run,
            })
            .collect(),
        task,
    })
}

/// JSON indented for reading.
fn pretty(value: &serde_json::Value) -> Result<String, PageError> {
    serde_json::to_string_pretty(value)
        .map_err(|e| PageError::Internal(format!("cannot show JSON: {e}")))
}

/// Whether the API would cancel `task`: queued or failed ones at once, a running one by its
/// worker unless that was asked already.
fn may_cancel(task: &Task) -> bool {
    match task.status.as_str() {
        "queued" | "failed" => true,
        "running" => !task.cancel_requested,
        _ => false,
    }
}

/// Whether the API would queue `task` again: only dead and cancelled ones.
fn may_retry(task: &Task) -> bool {
    matches!(task.status.as_str(), "dead" | "cancelled")
}

/// The body of an action form that carries nothing but the session's token.
#[derive(Deserialize)]
pub(crate) struct ActionForm {
    /// The session's form token.
    #[serde(default)]
    pub(super) csrf: String,
}

/// `POST /tasks/{id}/cancel`: cancels a task (operators), then back to its page.
pub(crate) async fn cancel(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    act_on_task(ui, &id, request, paths::TASK_CANCEL).await
}

/// `POST /tasks/{id}/retry`: queues a dead or cancelled task again (operators), then back to
/// its page.
pub(crate) async fn retry(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    act_on_task(ui, &id, request, paths::TASK_RETRY).await
}

/// Checks the form posted to a task's action, asks the API for it at `route`, and sends the
/// browser back to the task.
async fn act_on_task(ui: Ui, raw_id: &str, request: Request, route: Route) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let form: ActionForm = read_form(&ui, parts.clone(), body).await?;
        signed.check_form(&form.csrf)?;
        let id = task_id(raw_id)?;
        let path = route.with(&[&id]);
        ui.act(&signed, Method::POST, &path, None).await?;
        Ok(Redirect::to(&ui.link(&format!("/tasks/{id}"))).into_response())
    }
    .await;
    ui.respond(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_links_keep_the_filters_and_drop_blanks() {
        let filter = Filter::of(ListQuery {
            queue: Some("jobs & more".into()),
            status: Some(" ".into()),
            kind: None,
            outcome: Some("applied".into()),
            after: None,
        });
        assert_eq!(filter.status, None);
        assert_eq!(
            filter.link_query(None),
            "queue=jobs%20%26%20more&outcome=applied"
        );
        assert_eq!(
            filter.link_query(Some(42)),
            "queue=jobs%20%26%20more&outcome=applied&after=42"
        );
        assert_eq!(page_after(Some("")).ok(), Some(0));
        assert_eq!(page_after(Some("17")).ok(), Some(17));
        assert!(page_after(Some("x")).is_err());
    }

    #[test]
    fn actions_are_offered_only_where_the_api_allows_them() {
        for (status, requested, cancel, retry) in [
            ("queued", false, true, false),
            ("failed", false, true, false),
            ("running", false, true, false),
            ("running", true, false, false),
            ("succeeded", false, false, false),
            ("dead", false, false, true),
            ("cancelled", false, false, true),
        ] {
            let task: Task = serde_json::from_value(serde_json::json!({
                "id": 1, "queue": "q", "kind": "noop", "payload": null, "priority": 0,
                "status": status, "attempt": 0, "max_attempts": 3,
                "run_at": "2026-01-01T00:00:00Z", "run_at_ms": 0, "fence": 0,
                "cancel_requested": requested, "origin": {},
                "created_at": "2026-01-01T00:00:00Z", "created_at_ms": 0
            }))
            .unwrap();
            assert_eq!(may_cancel(&task), cancel, "{status}");
            assert_eq!(may_retry(&task), retry, "{status}");
        }
    }
}
