//! `/`: what needs attention now, on one page.

use axum::extract::{MatchedPath, Request, State};
use axum::response::Response;
use serde::Serialize;
use steward_wire::alerts::{Alert, AlertList};
use steward_wire::health::{ServiceHealth, ServiceHealthList};
use steward_wire::schedules::{Schedule, ScheduleList};
use steward_wire::system::{Leadership, RoleLease};
use steward_wire::tasks::QueueList;
use tower::ServiceExt;

use crate::render::Page;
use crate::{PageError, Ui};

use super::{SERVICE_STATES, state_rank, wants_html};

/// Schedules listed as due next.
const NEXT_SCHEDULES: usize = 8;
/// Firing alerts listed.
const FIRING_SHOWN: usize = 20;
/// Services that are not up listed; the services page lists the rest.
const TROUBLED_SHOWN: usize = 25;

#[derive(Serialize)]
struct Overview {
    /// Services per state, worst first, every state named.
    states: Vec<(&'static str, usize)>,
    services_total: usize,
    /// Services that are not up, worst first (the first few).
    troubled: Vec<ServiceHealth>,
    /// How many services are not up.
    troubled_total: usize,
    /// Firing alerts, newest first; `None` when the key may not read alerts.
    firing: Option<Vec<Alert>>,
    firing_total: usize,
    /// Queues with their tasks per status; `None` when the key may not read them.
    queues: Option<Vec<QueueRow>>,
    /// The schedules that fire next.
    schedules: Option<Vec<Schedule>>,
    /// Which instance leads what.
    leadership: Option<Vec<RoleLease>>,
}

#[derive(Serialize)]
struct QueueRow {
    name: String,
    /// Tasks finished per minute over the last five.
    per_minute: String,
    /// Since when its longest-waiting due task has waited.
    oldest_waiting_since: Option<String>,
    queued: i64,
    running: i64,
    failed: i64,
    dead: i64,
    succeeded: i64,
}

/// `GET /`: the overview for browsers, the API's index for everyone else.
pub(crate) async fn page(State(ui): State<Ui>, mut request: Request) -> Response {
    if !wants_html(request.headers()) {
        // The API's router matches the path itself; a match here must not be taken for a
        // prefix of its own.
        request.extensions_mut().remove::<MatchedPath>();
        return match ui.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
    }
    let (parts, _) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let overview = read(&ui, &signed).await?;
        ui.render(
            &signed,
            Page {
                template: "overview.html",
                title: "Overview".into(),
                nav: "overview",
                live: true,
                data: overview,
            },
        )
    }
    .await;
    ui.respond(result)
}

async fn read(ui: &Ui, signed: &crate::session::Signed) -> Result<Overview, PageError> {
    let services: ServiceHealthList = ui.get(signed, "/api/v1/services").await?;
    let alerts: Option<AlertList> = ui.get_if_allowed(signed, "/api/v1/alerts").await?;
    let queues: Option<QueueList> = ui.get_if_allowed(signed, "/api/v1/queues").await?;
    let schedules: Option<ScheduleList> = ui.get_if_allowed(signed, "/api/v1/schedules").await?;
    let leadership: Option<Leadership> = ui
        .get_if_allowed(signed, steward_wire::paths::LEADERSHIP.template())
        .await?;
    let states = SERVICE_STATES
        .iter()
        .map(|state| {
            let n = services
                .services
                .iter()
                .filter(|s| s.state == *state)
                .count();
            (*state, n)
        })
        .collect();
    let services_total = services.services.len();
    let mut troubled: Vec<ServiceHealth> = services
        .services
        .into_iter()
        .filter(|s| s.state != "up")
        .collect();
    troubled.sort_by(|a, b| {
        state_rank(&a.state)
            .cmp(&state_rank(&b.state))
            .then_with(|| a.name.cmp(&b.name))
    });
    let firing: Option<Vec<Alert>> = alerts.map(|list| {
        list.alerts
            .into_iter()
            .filter(|a| a.state == "firing")
            .collect()
    });
    let firing_total = firing.as_ref().map_or(0, Vec::len);
    let troubled_total = troubled.len();
    troubled.truncate(TROUBLED_SHOWN);
    Ok(Overview {
        states,
        services_total,
        troubled,
        troubled_total,
        firing: firing.map(|mut f| {
            f.truncate(FIRING_SHOWN);
            f
        }),
        firing_total,
        queues: queues.map(|list| list.queues.into_iter().map(queue_row).collect()),
        schedules: schedules.map(|list| {
            let mut due: Vec<Schedule> = list
                .schedules
                .into_iter()
                .filter(|s| s.next_fire_ms.is_some())
                .collect();
            due.sort_by_key(|s| s.next_fire_ms);
            due.truncate(NEXT_SCHEDULES);
            due
        }),
        leadership: leadership.map(|l| l.leases),
    })
}

fn queue_row(queue: steward_wire::tasks::Queue) -> QueueRow {
    let count = |status: &str| queue.counts.get(status).copied().unwrap_or(0);
    QueueRow {
        per_minute: super::tasks::per_minute(&queue),
        oldest_waiting_since: queue.oldest_waiting_since.clone(),
        queued: count("queued"),
        running: count("running"),
        failed: count("failed"),
        dead: count("dead"),
        succeeded: count("succeeded"),
        name: queue.name,
    }
}
