//! The route table: which handler answers each method and path, and who may call it. Every
//! route is declared once, with its access rule, its summary and what it takes and answers, in
//! [`table`]; the router is built from it, [`crate::auth::authorize`] enforces it, and
//! [`crate::openapi`] describes it. Handlers live in modules of their own and never import
//! from here, so the table depends on them and not the reverse.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, post};
use steward_core::Role;
use steward_wire::alertmanager::{
    AlertGroup, AlertmanagerStatus, GettableAlert, GettableSilence, PostableSilence, PostedSilence,
};
use steward_wire::alerts as alerts_wire;
use steward_wire::health as health_wire;
use steward_wire::index::ApiIndex;
use steward_wire::paths;
use steward_wire::pipelines as pipelines_wire;
use steward_wire::schedules as schedules_wire;
use steward_wire::tasks as tasks_wire;
use steward_wire::{
    audit as audit_wire, keys as keys_wire, nodes as nodes_wire, registry as registry_wire,
    system as system_wire, work as work_wire,
};
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterIn};

use crate::AppState;
use crate::access::Access;
use crate::describe::{Answer, Doc, Payload, list_of, typed};

/// One route: method, path template, who may call it, what it does, and its handler.
pub struct RouteSpec {
    /// HTTP method.
    pub method: Method,
    /// Path template, as axum matches it.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// It takes large bodies (batches), up to `max_batch_body_bytes` instead of
    /// `max_body_bytes`.
    pub batch: bool,
    /// The setting that opens it to anyone, without a key.
    pub opened_by: Option<Opener>,
    /// What it does, in one line (the operation's summary in the OpenAPI document).
    pub summary: &'static str,
    /// What it takes and answers, for the OpenAPI document.
    pub(crate) doc: Doc,
    handler: fn() -> MethodRouter<AppState>,
}

/// A route taking small bodies, opened by no setting, with nothing yet said of what it takes
/// and answers (the builders below say it).
fn spec(
    method: Method,
    path: &'static str,
    access: Access,
    summary: &'static str,
    handler: fn() -> MethodRouter<AppState>,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        batch: false,
        opened_by: None,
        summary,
        doc: Doc::default(),
        handler,
    }
}

/// A setting that opens a keyed route to anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opener {
    /// `api.metrics_public`.
    MetricsPublic,
    /// `ui.public_badges`.
    PublicBadges,
}

impl Opener {
    /// Whether the setting is on.
    fn is_on(self, options: &crate::ApiOptions) -> bool {
        match self {
            Opener::MetricsPublic => options.metrics_public,
            Opener::PublicBadges => options.public_badges,
        }
    }
}

/// A route that takes batches.
fn batch_spec(
    method: Method,
    path: &'static str,
    access: Access,
    summary: &'static str,
    handler: fn() -> MethodRouter<AppState>,
) -> RouteSpec {
    RouteSpec {
        batch: true,
        ..spec(method, path, access, summary, handler)
    }
}

/// The query parameters `T` (a handler's query type) declares.
fn query_params<T: IntoParams>() -> Vec<Parameter> {
    T::into_params(|| Some(ParameterIn::Query))
}

/// What a route takes and answers, declared beside it; the defaults are a JSON object answered
/// with 200, no query and no body.
impl RouteSpec {
    /// Its query string is `T`'s.
    fn query<T: IntoParams>(mut self) -> Self {
        self.doc.query = Some(query_params::<T>);
        self
    }

    /// Its query parameters, as `params` lists them (for queries no struct holds).
    fn query_with(mut self, params: fn() -> Vec<Parameter>) -> Self {
        self.doc.query = Some(params);
        self
    }

    /// It reads the request header `name`, described by `description`.
    fn header(mut self, name: &'static str, description: &'static str) -> Self {
        self.doc.header = Some((name, description));
        self
    }

    /// It takes a JSON body.
    fn body(mut self, body: Payload) -> Self {
        self.doc.body = Some((body, true));
        self
    }

    /// It takes a JSON body, or none.
    fn optional_body(mut self, body: Payload) -> Self {
        self.doc.body = Some((body, false));
        self
    }

    /// What it answers when it succeeds.
    fn answers(mut self, answer: Answer) -> Self {
        self.doc.answer = Some(answer);
        self
    }

    /// The statuses of its success (200 unless said).
    fn status(mut self, ok: &'static [u16]) -> Self {
        self.doc.ok = ok;
        self
    }

    /// Refusals of its own, besides those every route of its kind has.
    fn refuses(mut self, statuses: &'static [u16]) -> Self {
        self.doc.refusals = statuses;
        self
    }

    /// What else a reader of the document should know about it.
    fn note(mut self, note: &'static str) -> Self {
        self.doc.note = Some(note);
        self
    }

    /// The setting that opens it to anyone (see [`access_of`]).
    fn opened_by(mut self, opener: Opener) -> Self {
        self.opened_by = Some(opener);
        self
    }
}

/// Every route Steward serves. `/metrics` and the badges are listed with the key they need;
/// the setting each is `opened_by` makes it public (see [`access_of`]).
pub fn table() -> Vec<RouteSpec> {
    use Access::{Node, Public, Role as R, Unscoped, Workspace};
    vec![
        spec(
            Method::GET,
            paths::INDEX.template(),
            Public,
            "What is serving, and where its API is described",
            || get(crate::system::index),
        )
        .answers(Answer::Json(typed::<ApiIndex>())),
        spec(
            Method::GET,
            paths::OPENAPI.template(),
            Public,
            "This document: every route, who may call it, what it answers",
            || get(crate::system::openapi_json),
        )
        .answers(Answer::Json(crate::describe::document_payload())),
        spec(
            Method::GET,
            paths::HEALTHZ.template(),
            Public,
            "Liveness: the process answers",
            || get(crate::system::healthz),
        )
        .answers(Answer::Json(typed::<system_wire::Liveness>())),
        spec(
            Method::GET,
            paths::READYZ.template(),
            Public,
            "Readiness: the database answers and was not found damaged",
            || get(crate::system::readyz),
        )
        .answers(Answer::Json(typed::<system_wire::Readiness>()))
        .refuses(&[500, 503]),
        // Series name every workspace's checks and queues, so a scoped key may not read them.
        spec(
            Method::GET,
            paths::METRICS.template(),
            Unscoped(Role::Viewer),
            "Metrics in Prometheus's text format",
            || get(crate::system::metrics),
        )
        .answers(Answer::Text)
        .opened_by(Opener::MetricsPublic)
        .note("With `api.metrics_public` set, anyone may read it without a key."),
        // A scoped key gets badges of its workspace's services only.
        spec(
            Method::GET,
            paths::BADGE.template(),
            R(Role::Viewer),
            "A service's state as a status badge: `{name}.svg`",
            || get(crate::badges::state),
        )
        .answers(Answer::Svg)
        .refuses(&[404])
        .opened_by(Opener::PublicBadges)
        .note("With `ui.public_badges` set, anyone may read it without a key."),
        spec(
            Method::GET,
            paths::BADGE_UPTIME.template(),
            R(Role::Viewer),
            "A service's uptime over a window as a status badge",
            || get(crate::badges::uptime),
        )
        .query::<health_wire::WindowQuery>()
        .answers(Answer::Svg)
        .refuses(&[404])
        .opened_by(Opener::PublicBadges)
        .note("With `ui.public_badges` set, anyone may read it without a key."),
        // Events are filtered per key: a scoped key gets only its workspace's.
        spec(
            Method::GET,
            paths::EVENTS.template(),
            R(Role::Viewer),
            "The live event stream, as Server-Sent Events",
            || get(crate::events::stream),
        )
        .query::<steward_wire::events::EventsQuery>()
        .header(
            "Last-Event-ID",
            "The `id` of the last event seen (`LOG-AUDIT`): the stream replays what came after it",
        )
        .answers(Answer::EventStream)
        .note(
            "A scoped key gets its workspace's events only, and audit events go to admin keys \
             only. Each event's `data` is a `StreamEvent`, or a `Reset` for a `reset` event.",
        ),
        spec(
            Method::GET,
            paths::LEADERSHIP.template(),
            R(Role::Viewer),
            "Which instance holds the scheduler's, the prober's and the alert manager's lease",
            || get(crate::system::leadership),
        )
        .answers(Answer::Json(typed::<system_wire::Leadership>())),
        spec(
            Method::GET,
            paths::WHOAMI.template(),
            R(Role::Viewer),
            "The calling key's name, role and scope",
            || get(crate::registry::whoami),
        )
        .answers(Answer::Json(typed::<registry_wire::WhoAmI>())),
        spec(
            Method::GET,
            paths::WORKSPACES.template(),
            R(Role::Viewer),
            "The workspaces the key may see",
            || get(crate::registry::list_workspaces),
        )
        .answers(Answer::Json(typed::<registry_wire::WorkspaceList>())),
        spec(
            Method::GET,
            paths::WORKSPACE.template(),
            Workspace(Role::Viewer, "key"),
            "A workspace, its services and its edges in both directions",
            || get(crate::registry::get_workspace),
        )
        .answers(Answer::Json(typed::<registry_wire::WorkspaceDetail>())),
        spec(
            Method::GET,
            paths::SERVICES.template(),
            R(Role::Viewer),
            "Services with their state, what impacts them and their checks",
            || get(crate::health::list_services),
        )
        .answers(Answer::Json(typed::<health_wire::ServiceHealthList>())),
        spec(
            Method::GET,
            paths::SERVICE_CHECKS.template(),
            R(Role::Viewer),
            "A service's checks, with latency percentiles over a window",
            || get(crate::health::service_checks),
        )
        .query::<health_wire::WindowQuery>()
        .answers(Answer::Json(typed::<health_wire::ServiceChecks>())),
        spec(
            Method::GET,
            paths::SERVICE_TRANSITIONS.template(),
            R(Role::Viewer),
            "State changes of a service's checks, newest first",
            || get(crate::health::service_transitions),
        )
        .query::<health_wire::TransitionsQuery>()
        .answers(Answer::Json(typed::<health_wire::CheckTransitionList>())),
        spec(
            Method::GET,
            paths::CHECK.template(),
            R(Role::Viewer),
            "A check with its last result, latency percentiles over a window",
            || get(crate::health::get_check),
        )
        .query::<health_wire::WindowQuery>()
        .answers(Answer::Json(typed::<health_wire::CheckDetail>())),
        spec(
            Method::GET,
            paths::CHECK_RESULTS.template(),
            R(Role::Viewer),
            "A check's raw results, newest first",
            || get(crate::health::check_results),
        )
        .query::<health_wire::CheckResultsQuery>()
        .answers(Answer::Json(typed::<health_wire::CheckResults>())),
        spec(
            Method::GET,
            paths::CHECK_TRANSITIONS.template(),
            R(Role::Viewer),
            "A check's state changes, newest first",
            || get(crate::health::check_transitions),
        )
        .query::<health_wire::TransitionsQuery>()
        .answers(Answer::Json(typed::<health_wire::CheckTransitionList>())),
        spec(
            Method::POST,
            paths::CHECK_RUN.template(),
            R(Role::Operator),
            "Probe a check now and answer its judged result",
            || post(crate::health::run_check),
        )
        .answers(Answer::Json(typed::<health_wire::CheckRun>())),
        spec(
            Method::GET,
            paths::GRAPH.template(),
            R(Role::Viewer),
            "The dependency graph: workspaces with their services, and edges",
            || get(crate::registry::graph),
        )
        .answers(Answer::Json(typed::<registry_wire::Graph>())),
        spec(
            Method::POST,
            paths::CONFIG_RELOAD.template(),
            Unscoped(Role::Admin),
            "Re-read the config file and put it in force",
            || post(crate::system::reload),
        )
        .answers(Answer::Json(typed::<system_wire::Reloaded>()))
        .refuses(&[422]),
        spec(
            Method::GET,
            paths::KEYS.template(),
            Unscoped(Role::Admin),
            "Every API key: names, roles, scopes, hints and times",
            || get(crate::keys::list_keys),
        )
        .answers(Answer::Json(typed::<keys_wire::KeyList>())),
        spec(
            Method::POST,
            paths::KEYS.template(),
            Unscoped(Role::Admin),
            "Create an API key; its secret is in this answer only",
            || post(crate::keys::create_key),
        )
        .body(typed::<keys_wire::NewKey>())
        .answers(Answer::Json(typed::<keys_wire::CreatedKey>()))
        .status(&[201])
        .refuses(&[409]),
        spec(
            Method::DELETE,
            paths::KEY.template(),
            Unscoped(Role::Admin),
            "Revoke an API key: it stops working at once",
            || delete(crate::keys::revoke_key),
        )
        .answers(Answer::Json(typed::<keys_wire::KeyChanged>())),
        spec(
            Method::GET,
            paths::NODES.template(),
            R(Role::Viewer),
            "Every node of the fleet the key may see, with its status",
            || get(crate::nodes::list_nodes),
        )
        .answers(Answer::Json(typed::<nodes_wire::NodeList>())),
        spec(
            Method::POST,
            paths::NODES.template(),
            Unscoped(Role::Admin),
            "Add a node; its agent registers later with a join token",
            || post(crate::nodes::add_node),
        )
        .body(typed::<nodes_wire::NewNode>())
        .answers(Answer::Json(typed::<nodes_wire::NodeChanged>()))
        .status(&[201])
        .refuses(&[409]),
        spec(
            Method::GET,
            paths::NODE.template(),
            R(Role::Viewer),
            "A node: status, inventory, usage, its services and their drift",
            || get(crate::nodes::show_node),
        )
        .answers(Answer::Json(typed::<nodes_wire::NodeDetail>()))
        .refuses(&[404]),
        spec(
            Method::DELETE,
            paths::NODE.template(),
            Unscoped(Role::Admin),
            "Remove a node and what it reported, revoking its agent's credentials",
            || delete(crate::nodes::remove_node),
        )
        .answers(Answer::Json(typed::<nodes_wire::NodeChanged>()))
        .refuses(&[404]),
        spec(
            Method::POST,
            paths::NODE_TOKENS.template(),
            Unscoped(Role::Admin),
            "Make a join token for a node; the token is in this answer only",
            || post(crate::nodes::create_token),
        )
        .body(typed::<nodes_wire::NewJoinToken>())
        .answers(Answer::Json(typed::<nodes_wire::JoinToken>()))
        .status(&[201])
        .refuses(&[404]),
        spec(
            Method::POST,
            paths::AGENT_REGISTER.template(),
            Public,
            "Register an agent: a join token exchanged for its node's credential",
            || post(crate::nodes::register),
        )
        .body(typed::<nodes_wire::Registration>())
        .answers(Answer::Json(typed::<nodes_wire::Registered>()))
        .status(&[201])
        .refuses(&[401]),
        batch_spec(
            Method::POST,
            paths::NODE_HEARTBEAT.template(),
            Node("id"),
            "A node's heartbeat: usage, inventory digests, and the kinds that changed",
            || post(crate::nodes::heartbeat),
        )
        .body(typed::<nodes_wire::Heartbeat>())
        .answers(Answer::Json(typed::<nodes_wire::HeartbeatAnswer>()))
        .refuses(&[404]),
        batch_spec(
            Method::POST,
            paths::NODE_TASKS_CLAIM.template(),
            Node("id"),
            "Claim the tasks pinned to a node, waiting up to 20 s for one",
            || post(crate::work::claim),
        )
        .body(typed::<work_wire::ClaimRequest>())
        .answers(Answer::Json(typed::<work_wire::Claimed>())),
        batch_spec(
            Method::POST,
            paths::NODE_TASKS_LEASES.template(),
            Node("id"),
            "Renew the leases of a node's running attempts",
            || post(crate::work::renew),
        )
        .body(typed::<work_wire::LeaseRenewal>())
        .answers(Answer::Json(typed::<work_wire::LeaseStatuses>())),
        batch_spec(
            Method::POST,
            paths::NODE_TASKS_COMPLETE.template(),
            Node("id"),
            "Report a node's attempts' results, each accepted while its lease holds",
            || post(crate::work::complete),
        )
        .body(typed::<work_wire::ResultBatch>())
        .answers(Answer::Json(typed::<work_wire::ResultsTaken>())),
        batch_spec(
            Method::POST,
            paths::NODE_AUDIT.template(),
            Node("id"),
            "A node's audit journal, up to 1,000 chained events, merged once each",
            || post(crate::nodes::ship_audit),
        )
        .body(typed::<nodes_wire::AuditBatch>())
        .answers(Answer::Json(typed::<nodes_wire::AuditShipped>()))
        .refuses(&[404]),
        spec(
            Method::GET,
            paths::AUDIT.template(),
            R(Role::Admin),
            "The audit trail, filtered, paged by sequence number",
            || get(crate::audit::list_audit),
        )
        .query::<audit_wire::AuditQuery>()
        .answers(Answer::Json(typed::<audit_wire::AuditPage>())),
        spec(
            Method::GET,
            paths::AUDIT_VERIFY.template(),
            Unscoped(Role::Admin),
            "Verify the audit trail's hash chain",
            || get(crate::audit::verify_audit),
        )
        .answers(Answer::Json(typed::<audit_wire::AuditVerified>()))
        .refuses(&[409]),
        batch_spec(
            Method::POST,
            paths::TASKS.template(),
            R(Role::Operator),
            "Enqueue a task, or a batch of up to 10,000 in one transaction",
            || post(crate::tasks::enqueue),
        )
        .body(typed::<tasks_wire::Enqueue>())
        .answers(Answer::Json(typed::<tasks_wire::EnqueueAnswer>()))
        .status(&[200, 201])
        .refuses(&[404])
        .note("201 when something was stored, 200 when every idempotency key existed."),
        spec(
            Method::GET,
            paths::TASKS.template(),
            R(Role::Viewer),
            "List tasks, filtered, paged by id",
            || get(crate::tasks::list_tasks),
        )
        .query::<tasks_wire::TaskListQuery>()
        .answers(Answer::Json(typed::<tasks_wire::TaskList>())),
        spec(
            Method::GET,
            paths::TASK.template(),
            R(Role::Viewer),
            "A task and its finished runs",
            || get(crate::tasks::get_task),
        )
        .answers(Answer::Json(typed::<tasks_wire::TaskDetail>())),
        spec(
            Method::POST,
            paths::TASK_CANCEL.template(),
            R(Role::Operator),
            "Cancel a task: a queued one at once, a running one by its worker",
            || post(crate::tasks::cancel_task),
        )
        .answers(Answer::Json(typed::<tasks_wire::TaskChanged>()))
        .refuses(&[409]),
        spec(
            Method::POST,
            paths::TASK_RETRY.template(),
            R(Role::Operator),
            "Queue a dead or cancelled task again, with fresh attempts",
            || post(crate::tasks::retry_task),
        )
        .answers(Answer::Json(typed::<tasks_wire::TaskChanged>()))
        .refuses(&[409]),
        spec(
            Method::GET,
            paths::QUEUES.template(),
            Unscoped(Role::Viewer),
            "Each queue's settings and its tasks per status",
            || get(crate::tasks::list_queues),
        )
        .query::<tasks_wire::QueueListQuery>()
        .answers(Answer::Json(typed::<tasks_wire::QueueList>())),
        spec(
            Method::GET,
            paths::PIPELINES.template(),
            R(Role::Viewer),
            "Declared pipelines with their steps and latest run",
            || get(crate::pipelines::list_pipelines),
        )
        .answers(Answer::Json(typed::<pipelines_wire::PipelineList>())),
        spec(
            Method::GET,
            paths::PIPELINE.template(),
            R(Role::Viewer),
            "A declared pipeline with its steps and latest run",
            || get(crate::pipelines::get_pipeline),
        )
        .answers(Answer::Json(typed::<pipelines_wire::Pipeline>())),
        spec(
            Method::POST,
            paths::PIPELINE_START.template(),
            R(Role::Operator),
            "Start a run of a pipeline; idempotent by key",
            || post(crate::pipelines::start_run),
        )
        .body(typed::<pipelines_wire::StartRun>())
        .answers(Answer::Json(typed::<pipelines_wire::RunDetail>()))
        .status(&[200, 201])
        .note("201 with the new run, 200 with the run an existing idempotency key named."),
        spec(
            Method::GET,
            paths::PIPELINE_RUNS.template(),
            R(Role::Viewer),
            "Pipeline runs, newest first, filtered by pipeline and status",
            || get(crate::pipelines::list_runs),
        )
        .query::<pipelines_wire::PipelineRunsQuery>()
        .answers(Answer::Json(typed::<pipelines_wire::PipelineRunList>())),
        spec(
            Method::GET,
            paths::PIPELINE_RUN.template(),
            R(Role::Viewer),
            "A pipeline run with each step's state, attempts, duration, result and error",
            || get(crate::pipelines::get_run),
        )
        .answers(Answer::Json(typed::<pipelines_wire::RunDetail>())),
        spec(
            Method::POST,
            paths::PIPELINE_RUN_CANCEL.template(),
            R(Role::Operator),
            "Cancel a run: waiting steps cancelled, running ones asked to stop",
            || post(crate::pipelines::cancel_run),
        )
        .answers(Answer::Json(typed::<pipelines_wire::RunDetail>()))
        .refuses(&[409]),
        spec(
            Method::POST,
            paths::PIPELINE_RUN_RETRY.template(),
            R(Role::Operator),
            "Retry a failed or cancelled run from the steps that did not succeed",
            || post(crate::pipelines::retry_run),
        )
        .answers(Answer::Json(typed::<pipelines_wire::RunDetail>()))
        .refuses(&[409]),
        spec(
            Method::GET,
            paths::SCHEDULES.template(),
            R(Role::Viewer),
            "Schedules with their next fire and last run",
            || get(crate::schedules::list_schedules),
        )
        .answers(Answer::Json(typed::<schedules_wire::ScheduleList>())),
        spec(
            Method::GET,
            paths::SCHEDULE.template(),
            R(Role::Viewer),
            "A schedule with its next fire and last run",
            || get(crate::schedules::get_schedule),
        )
        .answers(Answer::Json(typed::<schedules_wire::Schedule>())),
        spec(
            Method::GET,
            paths::SCHEDULE_RUNS.template(),
            R(Role::Viewer),
            "A schedule's runs, newest first",
            || get(crate::schedules::list_runs),
        )
        .query::<schedules_wire::ScheduleRunsQuery>()
        .answers(Answer::Json(typed::<schedules_wire::ScheduleRunList>())),
        spec(
            Method::POST,
            paths::SCHEDULE_PAUSE.template(),
            R(Role::Operator),
            "Pause a schedule",
            || post(crate::schedules::pause),
        )
        .answers(Answer::Json(typed::<schedules_wire::ScheduleChanged>())),
        spec(
            Method::POST,
            paths::SCHEDULE_RESUME.template(),
            R(Role::Operator),
            "Resume a paused schedule",
            || post(crate::schedules::resume),
        )
        .answers(Answer::Json(typed::<schedules_wire::ScheduleChanged>())),
        spec(
            Method::POST,
            paths::SCHEDULE_TRIGGER.template(),
            R(Role::Operator),
            "Fire a schedule now, unless its overlap policy refuses",
            || post(crate::schedules::trigger),
        )
        .answers(Answer::Json(typed::<schedules_wire::ScheduleTriggered>()))
        .status(&[201])
        .refuses(&[409]),
        batch_spec(
            Method::POST,
            paths::ALERTS.template(),
            R(Role::Operator),
            "Receive alerts from other systems, up to 10,000, all or none",
            || post(crate::alerts::post_alerts),
        )
        .body(typed::<alerts_wire::PostAlerts>())
        .answers(Answer::Json(typed::<alerts_wire::AlertsReceived>())),
        // Where Prometheus and other Alertmanager clients post.
        batch_spec(
            Method::POST,
            paths::AM_ALERTS.template(),
            R(Role::Operator),
            "Receive alerts as Alertmanager does (`postableAlerts`)",
            || post(crate::alerts::post_alerts),
        )
        .body(typed::<alerts_wire::PostAlerts>())
        .answers(Answer::Json(typed::<alerts_wire::AlertsReceived>())),
        // Alertmanager's API v2, read by amtool and Grafana's Alertmanager data source.
        spec(
            Method::GET,
            paths::AM_ALERTS.template(),
            R(Role::Viewer),
            "Firing alerts in Alertmanager's shape, with what mutes them",
            || get(crate::alertmanager::get_alerts),
        )
        .query_with(crate::alertmanager::alerts_params)
        .answers(Answer::Json(list_of::<GettableAlert>())),
        spec(
            Method::GET,
            paths::AM_ALERT_GROUPS.template(),
            R(Role::Viewer),
            "Firing alerts in the groups their routes put them in",
            || get(crate::alertmanager::get_alert_groups),
        )
        .query_with(crate::alertmanager::alerts_params)
        .answers(Answer::Json(list_of::<AlertGroup>())),
        spec(
            Method::GET,
            paths::AM_SILENCES.template(),
            R(Role::Viewer),
            "Silences in Alertmanager's shape, ended ones too",
            || get(crate::alertmanager::get_silences),
        )
        .query_with(crate::alertmanager::silences_params)
        .answers(Answer::Json(list_of::<GettableSilence>())),
        spec(
            Method::POST,
            paths::AM_SILENCES.template(),
            R(Role::Operator),
            "Create a silence, or replace the one its `id` names",
            || post(crate::alertmanager::post_silences),
        )
        .body(typed::<PostableSilence>())
        .answers(Answer::Json(typed::<PostedSilence>()))
        .refuses(&[404]),
        spec(
            Method::GET,
            paths::AM_SILENCE.template(),
            R(Role::Viewer),
            "A silence in Alertmanager's shape",
            || get(crate::alertmanager::get_silence),
        )
        .answers(Answer::Json(typed::<GettableSilence>())),
        spec(
            Method::DELETE,
            paths::AM_SILENCE.template(),
            R(Role::Operator),
            "Expire a silence now",
            || delete(crate::alertmanager::delete_silence),
        )
        .answers(Answer::Empty),
        spec(
            Method::GET,
            paths::AM_STATUS.template(),
            R(Role::Viewer),
            "Alertmanager's status, enough for amtool and Grafana",
            || get(crate::alertmanager::get_status),
        )
        .answers(Answer::Json(typed::<AlertmanagerStatus>())),
        spec(
            Method::GET,
            paths::ALERTS.template(),
            R(Role::Viewer),
            "Alerts, most recently received first",
            || get(crate::alerts::list_alerts),
        )
        .query::<alerts_wire::AlertListQuery>()
        .answers(Answer::Json(typed::<alerts_wire::AlertList>())),
        spec(
            Method::GET,
            paths::ALERT.template(),
            R(Role::Viewer),
            "An alert with its newest notifications",
            || get(crate::alerts::get_alert),
        )
        .answers(Answer::Json(typed::<alerts_wire::AlertDetail>())),
        spec(
            Method::POST,
            paths::ALERT_ACK.template(),
            R(Role::Operator),
            "Acknowledge an alert's current episode: no repeats until it changes",
            || post(crate::alerts::ack_alert),
        )
        .optional_body(typed::<alerts_wire::AckAlert>())
        .answers(Answer::Json(typed::<alerts_wire::Alert>()))
        .refuses(&[409]),
        spec(
            Method::GET,
            paths::NOTIFICATIONS.template(),
            R(Role::Viewer),
            "The notification outbox, newest first",
            || get(crate::alerts::list_notifications),
        )
        .query::<alerts_wire::NotificationListQuery>()
        .answers(Answer::Json(typed::<alerts_wire::NotificationList>())),
        spec(
            Method::GET,
            paths::SILENCES.template(),
            R(Role::Viewer),
            "Silences in force or to come",
            || get(crate::alerts::list_silences),
        )
        .answers(Answer::Json(typed::<alerts_wire::SilenceList>())),
        spec(
            Method::POST,
            paths::SILENCES.template(),
            R(Role::Operator),
            "Create a silence of at most 365 days",
            || post(crate::alerts::create_silence),
        )
        .body(typed::<alerts_wire::NewSilence>())
        .answers(Answer::Json(typed::<alerts_wire::Silence>()))
        .status(&[201]),
        spec(
            Method::DELETE,
            paths::SILENCE.template(),
            R(Role::Operator),
            "End a silence now",
            || delete(crate::alerts::expire_silence),
        )
        .answers(Answer::Json(typed::<alerts_wire::Silence>())),
        spec(
            Method::GET,
            paths::HEARTBEATS.template(),
            R(Role::Viewer),
            "Heartbeats with their state, last ping and deadline",
            || get(crate::schedules::list_heartbeats),
        )
        .answers(Answer::Json(typed::<schedules_wire::HeartbeatList>())),
        spec(
            Method::POST,
            paths::HEARTBEAT.template(),
            R(Role::Operator),
            "Record a successful ping of a heartbeat",
            || post(crate::schedules::ping_ok),
        )
        .answers(Answer::Json(typed::<schedules_wire::Heartbeat>())),
        spec(
            Method::POST,
            paths::HEARTBEAT_FAIL.template(),
            R(Role::Operator),
            "Record a failed ping of a heartbeat",
            || post(crate::schedules::ping_fail),
        )
        .answers(Answer::Json(typed::<schedules_wire::Heartbeat>())),
    ]
}

/// A route's access rule and the setting that may open it.
type Rule = (Access, Option<Opener>);

/// The access rules by method and path template, built once from [`table`].
fn access_rules() -> &'static HashMap<(Method, &'static str), Rule> {
    static RULES: OnceLock<HashMap<(Method, &'static str), Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        table()
            .into_iter()
            .map(|r| ((r.method, r.path), (r.access, r.opened_by)))
            .collect()
    })
}

/// The access rule of a matched route, `None` when the table has no entry for it.
pub(crate) fn access_of(method: &Method, path: &str, state: &AppState) -> Option<Access> {
    // axum answers HEAD with the GET handler; it gets the GET rule too.
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    let (access, opener) = access_rules().get(&(method.clone(), path)).copied()?;
    if opener.is_some_and(|o| o.is_on(&state.options)) {
        return Some(Access::Public);
    }
    Some(access)
}

/// The router of every route in [`table`], each with its body limit. Routes sharing a path are
/// merged into one method router, since axum takes one per path.
pub(crate) fn routes(options: &crate::ApiOptions) -> Router<AppState> {
    let mut by_path: BTreeMap<&'static str, MethodRouter<AppState>> = BTreeMap::new();
    for route in table() {
        let limit = if route.batch {
            options.max_batch_body_bytes
        } else {
            options.max_body_bytes
        };
        let handler = (route.handler)().layer(DefaultBodyLimit::max(limit));
        let merged = match by_path.remove(route.path) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        by_path.insert(route.path, merged);
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, handler)| {
            router.route(path, handler)
        })
}
