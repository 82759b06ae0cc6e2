//! `/schedules` and `/schedules/{name}`: every schedule with its next fire (in its own zone and
//! the viewer's) and last run, the heartbeats, and one schedule with its runs; "pause",
//! "resume" and "fire now" for operators.

use axum::extract::{Path, Query, Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use steward_wire::paths::{self, Route};
use steward_wire::schedules::{
    Heartbeat, HeartbeatList, Schedule, ScheduleList, ScheduleRun, ScheduleRunList,
    ScheduleRunsQuery,
};

use crate::render::Page;
use crate::session::Signed;
use crate::{PageError, Ui};

use super::tasks::ActionForm;
use super::{duration_text, elapsed_text, read_form};

/// Runs listed per page on a schedule's page.
const RUNS_PER_PAGE: u32 = 50;

/// A schedule as its pages show it.
#[derive(Serialize)]
struct ScheduleView {
    /// The schedule as the API answers it.
    schedule: Schedule,
    /// Its latest run, marked.
    last_run: Option<RunRow>,
    /// Its jitter, in words.
    jitter: String,
    /// How soon each fire's task must succeed, in words.
    expect_within: Option<String>,
    /// The task's payload as indented JSON.
    payload: String,
}

/// A recorded run with what the page marks on it.
#[derive(Serialize)]
struct RunRow {
    /// The run as the API answers it.
    #[serde(flatten)]
    run: ScheduleRun,
    /// Its task is still unfinished past the time it had to succeed by, and the dead-man's
    /// switch has not flagged it overdue yet.
    late: bool,
    /// How long its task's latest attempt took, in words.
    took: Option<String>,
}

/// `GET /schedules`'s context.
#[derive(Serialize)]
struct SchedulesPage {
    /// The schedules, in the config's order.
    schedules: Vec<ScheduleView>,
    /// The heartbeats; `None` when the key may not read them.
    heartbeats: Option<Vec<HeartbeatRow>>,
}

/// A heartbeat with its period and grace in words.
#[derive(Serialize)]
struct HeartbeatRow {
    /// The heartbeat as the API answers it.
    #[serde(flatten)]
    heartbeat: Heartbeat,
    /// How often a ping is expected, in words.
    period: String,
    /// How much later a ping may come, in words.
    grace: String,
}

/// `GET /schedules`: the schedules and heartbeats the key may see.
pub(crate) async fn list(State(ui): State<Ui>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let page = read_schedules(&ui, &signed).await?;
        ui.render(
            &signed,
            Page {
                template: "schedules.html",
                title: "Schedules".into(),
                nav: "schedules",
                live: true,
                data: page,
            },
        )
    }
    .await;
    ui.respond(result)
}

/// The schedules and, when the key may read them, the heartbeats, through the API.
async fn read_schedules(ui: &Ui, signed: &Signed) -> Result<SchedulesPage, PageError> {
    let list: ScheduleList = ui.get(signed, paths::SCHEDULES.template()).await?;
    let heartbeats: Option<HeartbeatList> = ui
        .get_if_allowed(signed, paths::HEARTBEATS.template())
        .await?;
    let now = steward_store::now_ms();
    let schedules = list
        .schedules
        .into_iter()
        .map(|s| schedule_view(s, now))
        .collect::<Result<_, _>>()?;
    Ok(SchedulesPage {
        schedules,
        heartbeats: heartbeats.map(|h| h.heartbeats.into_iter().map(heartbeat_row).collect()),
    })
}

/// A schedule with its last run marked and its settings in words.
fn schedule_view(mut schedule: Schedule, now: i64) -> Result<ScheduleView, PageError> {
    let within = schedule.expect_success_within_ms;
    let last_run = schedule.last_run.take().map(|r| run_row(r, within, now));
    Ok(ScheduleView {
        last_run,
        jitter: duration_text(schedule.jitter_ms),
        expect_within: within.map(duration_text),
        payload: serde_json::to_string_pretty(&schedule.task.payload)
            .map_err(|e| PageError::Internal(format!("cannot show JSON: {e}")))?,
        schedule,
    })
}

/// A run with its marks, `within` being how soon its schedule expects the task to succeed.
fn run_row(run: ScheduleRun, within: Option<u64>, now: i64) -> RunRow {
    RunRow {
        late: is_late(&run, within, now),
        took: run.duration_ms.map(elapsed_text),
        run,
    }
}

/// Whether `run`'s task is still unfinished past its deadline (`within` after the slot) and
/// not yet flagged overdue.
fn is_late(run: &ScheduleRun, within: Option<u64>, now: i64) -> bool {
    let Some(within) = within.and_then(|w| i64::try_from(w).ok()) else {
        return false;
    };
    let unfinished = matches!(
        run.task_status.as_deref(),
        Some("queued" | "running" | "failed")
    );
    !run.overdue && run.status == "fired" && unfinished && now > run.slot_ms.saturating_add(within)
}

/// A heartbeat with its period and grace in words.
fn heartbeat_row(heartbeat: Heartbeat) -> HeartbeatRow {
    HeartbeatRow {
        period: duration_text(heartbeat.period_ms),
        grace: duration_text(heartbeat.grace_ms),
        heartbeat,
    }
}

/// The query of `GET /schedules/{name}`: which page of runs.
#[derive(Deserialize)]
pub(crate) struct DetailQuery {
    /// Runs before this id.
    before: Option<String>,
}

/// `GET /schedules/{name}`'s context.
#[derive(Serialize)]
struct SchedulePage {
    /// The schedule.
    view: ScheduleView,
    /// This page of its runs, newest first.
    runs: Vec<RunRow>,
    /// Whether this is an older page than the first.
    paged: bool,
    /// The `before` of the next (older) page; `None` on the last.
    next_before: Option<i64>,
}

/// `GET /schedules/{name}`: one schedule with its runs, newest first.
pub(crate) async fn detail(
    State(ui): State<Ui>,
    Path(name): Path<String>,
    Query(query): Query<DetailQuery>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let before = runs_before(query.before.as_deref())?;
        let page = read_schedule(&ui, &signed, &name, before).await?;
        ui.render(
            &signed,
            Page {
                template: "schedule.html",
                title: format!("Schedule {name}"),
                nav: "schedules",
                live: true,
                data: page,
            },
        )
    }
    .await;
    ui.respond(result)
}

/// The `before` of a schedule page's query: blank or absent is the newest page.
fn runs_before(raw: Option<&str>) -> Result<Option<i64>, PageError> {
    raw.map(str::trim)
        .filter(|b| !b.is_empty())
        .map(|b| {
            b.parse()
                .map_err(|_| PageError::BadRequest(format!("`before` is not a run id: `{b}`")))
        })
        .transpose()
}

/// A schedule and a page of its runs through the API.
async fn read_schedule(
    ui: &Ui,
    signed: &Signed,
    name: &str,
    before: Option<i64>,
) -> Result<SchedulePage, PageError> {
    let path = paths::SCHEDULE.with(&[&name]);
    let schedule: Schedule = ui.get(signed, &path).await?;
    let query = ScheduleRunsQuery {
        before,
        limit: Some(RUNS_PER_PAGE),
    };
    let path = paths::SCHEDULE_RUNS
        .with_query(&[&name], &query)
        .map_err(|e| PageError::Internal(e.to_string()))?;
    let runs: ScheduleRunList = ui.get(signed, &path).await?;
    let now = steward_store::now_ms();
    let within = schedule.expect_success_within_ms;
    Ok(SchedulePage {
        view: schedule_view(schedule, now)?,
        runs: runs
            .runs
            .into_iter()
            .map(|r| run_row(r, within, now))
            .collect(),
        paged: before.is_some(),
        next_before: runs.next_before,
    })
}

/// `POST /schedules/{name}/pause`: pauses a schedule (operators), then back to its page.
pub(crate) async fn pause(
    State(ui): State<Ui>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    act_on_schedule(ui, &name, request, paths::SCHEDULE_PAUSE).await
}

/// `POST /schedules/{name}/resume`: resumes a paused schedule (operators), then back to its
/// page.
pub(crate) async fn resume(
    State(ui): State<Ui>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    act_on_schedule(ui, &name, request, paths::SCHEDULE_RESUME).await
}

/// `POST /schedules/{name}/trigger`: fires a schedule now (operators), then back to its page.
pub(crate) async fn trigger(
    State(ui): State<Ui>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    act_on_schedule(ui, &name, request, paths::SCHEDULE_TRIGGER).await
}

/// Checks the form posted to a schedule's action, asks the API for it at `route`, and sends
/// the browser back to the schedule.
async fn act_on_schedule(ui: Ui, name: &str, request: Request, route: Route) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let form: ActionForm = read_form(&ui, parts.clone(), body).await?;
        signed.check_form(&form.csrf)?;
        let path = route.with(&[&name]);
        ui.act(&signed, Method::POST, &path, None).await?;
        let back = format!("/schedules/{}", paths::encode(name));
        Ok(Redirect::to(&ui.link(&back)).into_response())
    }
    .await;
    ui.respond(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status: &str, task_status: Option<&str>, overdue: bool) -> ScheduleRun {
        serde_json::from_value(serde_json::json!({
            "id": 1, "schedule": "s", "slot": "2026-01-01T08:00:00+01:00", "slot_ms": 1_000,
            "trigger": "slot", "status": status, "reason": null, "task_id": 7,
            "fired_at": "2026-01-01T07:00:00Z", "fired_at_ms": 1_000,
            "task_status": task_status, "outcome": null, "started_at": null,
            "started_at_ms": null, "finished_at": null, "finished_at_ms": null,
            "duration_ms": null, "error": null, "overdue": overdue
        }))
        .unwrap()
    }

    #[test]
    fn a_run_is_late_only_while_unfinished_past_its_deadline_and_not_yet_overdue() {
        let pending = run("fired", Some("queued"), false);
        assert!(is_late(&pending, Some(500), 2_000));
        assert!(
            !is_late(&pending, Some(5_000), 2_000),
            "before the deadline"
        );
        assert!(!is_late(&pending, None, 2_000), "no deadline expected");
        assert!(!is_late(
            &run("fired", Some("queued"), true),
            Some(500),
            2_000
        ));
        assert!(!is_late(
            &run("fired", Some("succeeded"), false),
            Some(500),
            2_000
        ));
        assert!(!is_late(&run("skipped", None, false), Some(500), 2_000));
    }

    #[test]
    fn a_runs_page_is_asked_before_an_id() {
        assert_eq!(runs_before(None).ok(), Some(None));
        assert_eq!(runs_before(Some(" ")).ok(), Some(None));
        assert_eq!(runs_before(Some("12")).ok(), Some(Some(12)));
        assert!(runs_before(Some("x")).is_err());
    }
}
