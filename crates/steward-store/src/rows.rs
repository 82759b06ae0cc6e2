//! Rows as both backends read them: one struct per kind of row, holding its columns as stored,
//! and the conversion to the domain type that checks them. The structs derive
//! [`sqlx::FromRow`], whose impl is generic over the database, so SQLite and PostgreSQL share
//! every column name, every parse and every [`StoreError::Corrupt`] message; a backend only
//! passes sqlx's own errors through its `db_err`, which knows its database's failures.
//!
//! Column types are chosen to decode on both: PostgreSQL's `INTEGER` as `i32` and `BOOLEAN`
//! as `bool` (which SQLite reads from its integers); JSON, stored as `jsonb` on PostgreSQL
//! but text on SQLite, as a [`JsonColumn`].

use sqlx::error::BoxDynError;
use sqlx::types::Json;
use sqlx::{Database, Decode, Type, ValueRef};
use steward_core::schedule::{HeartbeatState, PingStatus};
use steward_core::task::{Task, TaskOrigin, TaskRun};

use crate::codec::{
    decode_alert_state, decode_attempt_count, decode_attempt_status, decode_certificates,
    decode_check_state, decode_conditions, decode_count, decode_fingerprint, decode_group_clock,
    decode_labels, decode_matchers, decode_notice, decode_notification_state, decode_route_path,
    decode_severity, decode_verdict,
};
use crate::health::{CheckRecord, CheckTransition, NewTransition, ProbeRecord};
use crate::notifications::{Attempt, GroupRecord, StoredNotification};
use crate::schedules::{
    FireTrigger, HeartbeatRecord, Lease, RunStatus, ScheduleRun, ScheduleState,
};
use crate::sessions::Session;
use crate::tasks::parse_status;
use crate::{Ack, StoreError, StoredAlert, StoredSilence};

/// A JSON column: text on SQLite, which is parsed (and may turn out damaged) only when the row
/// is converted, or a value PostgreSQL has already parsed from `jsonb`.
#[derive(Debug)]
pub enum JsonColumn {
    /// Text still to parse.
    Text(String),
    /// A value the database parsed.
    Value(serde_json::Value),
}

impl JsonColumn {
    /// The value, with `what` naming it in the error for text that is not JSON.
    fn into_value(self, what: &str) -> Result<serde_json::Value, StoreError> {
        match self {
            Self::Text(text) => {
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
            }
            Self::Value(value) => Ok(value),
        }
    }
}

impl<DB: Database> Type<DB> for JsonColumn
where
    String: Type<DB>,
    Json<serde_json::Value>: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <Json<serde_json::Value> as Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as Type<DB>>::compatible(ty)
            || <Json<serde_json::Value> as Type<DB>>::compatible(ty)
    }
}

impl<'r, DB: Database> Decode<'r, DB> for JsonColumn
where
    String: Type<DB> + Decode<'r, DB>,
    Json<serde_json::Value>: Decode<'r, DB>,
{
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        // Text is kept as it is, so that bad JSON is reported as a corrupt row rather than as
        // a failure of the database.
        if <String as Type<DB>>::compatible(&value.type_info()) {
            <String as Decode<DB>>::decode(value).map(Self::Text)
        } else {
            <Json<serde_json::Value> as Decode<DB>>::decode(value).map(|json| Self::Value(json.0))
        }
    }
}

/// A stored count, which must not be negative.
fn count(n: i32) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative count {n}")))
}

/// The columns of a task.
#[derive(Debug, sqlx::FromRow)]
pub struct TaskRow {
    id: i64,
    queue: String,
    kind: String,
    payload: JsonColumn,
    priority: i32,
    status: String,
    attempt: i32,
    max_attempts: i32,
    run_at_ms: i64,
    outcome: Option<String>,
    result: Option<JsonColumn>,
    error: Option<String>,
    lease_owner: Option<String>,
    lease_expires_at_ms: Option<i64>,
    fence: i64,
    cancel_requested: bool,
    idempotency_key: Option<String>,
    workspace: Option<String>,
    schedule: Option<String>,
    alert: Option<String>,
    caller: Option<String>,
    created_at_ms: i64,
    finished_at_ms: Option<i64>,
    node: String,
    timeout_ms: Option<i64>,
    pipeline_run: Option<i64>,
}

impl TryFrom<TaskRow> for Task {
    type Error = StoreError;

    fn try_from(row: TaskRow) -> Result<Self, StoreError> {
        Ok(Task {
            id: row.id,
            queue: row.queue,
            kind: row.kind,
            payload: row.payload.into_value("task payload")?,
            priority: row.priority,
            status: parse_status(&row.status)?,
            attempt: count(row.attempt)?,
            max_attempts: count(row.max_attempts)?,
            run_at_ms: row.run_at_ms,
            outcome: row.outcome,
            result: row
                .result
                .map(|r| r.into_value("task result"))
                .transpose()?,
            error: row.error,
            lease_owner: row.lease_owner,
            lease_expires_at_ms: row.lease_expires_at_ms,
            fence: row.fence,
            cancel_requested: row.cancel_requested,
            idempotency_key: row.idempotency_key,
            origin: TaskOrigin {
                pipeline_run: row.pipeline_run,
                workspace: row.workspace,
                schedule: row.schedule,
                alert: row.alert,
                caller: row.caller,
            },
            created_at_ms: row.created_at_ms,
            finished_at_ms: row.finished_at_ms,
            node: Some(row.node).filter(|n| !n.is_empty()),
            timeout_ms: row.timeout_ms.and_then(|t| u64::try_from(t).ok()),
        })
    }
}

/// The columns of one run of a task.
#[derive(Debug, sqlx::FromRow)]
pub struct TaskRunRow {
    task_id: i64,
    attempt: i32,
    worker: String,
    started_at_ms: i64,
    ended_at_ms: i64,
    status: String,
    outcome: Option<String>,
    error: Option<String>,
    output_tail: Option<String>,
}

impl TryFrom<TaskRunRow> for TaskRun {
    type Error = StoreError;

    fn try_from(row: TaskRunRow) -> Result<Self, StoreError> {
        Ok(TaskRun {
            task_id: row.task_id,
            attempt: count(row.attempt)?,
            worker: row.worker,
            started_at_ms: row.started_at_ms,
            ended_at_ms: row.ended_at_ms,
            status: row.status,
            outcome: row.outcome,
            error: row.error,
            output_tail: row.output_tail,
        })
    }
}

/// The columns of an alert.
#[derive(Debug, sqlx::FromRow)]
pub struct AlertRow {
    fingerprint: String,
    labels: String,
    annotations: String,
    severity: String,
    source: String,
    state: String,
    starts_at_ms: i64,
    ends_at_ms: Option<i64>,
    last_received_ms: i64,
    generator_url: Option<String>,
    episode: i64,
    acked_by: Option<String>,
    acked_at_ms: Option<i64>,
    ack_note: Option<String>,
}

impl TryFrom<AlertRow> for StoredAlert {
    type Error = StoreError;

    fn try_from(row: AlertRow) -> Result<Self, StoreError> {
        Ok(StoredAlert {
            fingerprint: decode_fingerprint(&row.fingerprint)?,
            labels: decode_labels(&row.labels)?.into(),
            annotations: decode_labels(&row.annotations)?.into(),
            severity: decode_severity(&row.severity)?,
            source: row.source,
            state: decode_alert_state(&row.state)?,
            starts_at_ms: row.starts_at_ms,
            ends_at_ms: row.ends_at_ms,
            last_received_ms: row.last_received_ms,
            generator_url: row.generator_url,
            episode: row.episode,
            ack: match (row.acked_by, row.acked_at_ms) {
                (Some(by), Some(at_ms)) => Some(Ack {
                    by,
                    at_ms,
                    note: row.ack_note.unwrap_or_default(),
                }),
                _ => None,
            },
        })
    }
}

/// The columns of a silence.
#[derive(Debug, sqlx::FromRow)]
pub struct SilenceRow {
    id: i64,
    matchers: String,
    starts_at_ms: i64,
    ends_at_ms: i64,
    created_by: String,
    created_at_ms: i64,
    comment: String,
}

impl TryFrom<SilenceRow> for StoredSilence {
    type Error = StoreError;

    fn try_from(row: SilenceRow) -> Result<Self, StoreError> {
        Ok(StoredSilence {
            id: row.id,
            matchers: decode_matchers(&row.matchers)?,
            starts_at_ms: row.starts_at_ms,
            ends_at_ms: row.ends_at_ms,
            created_by: row.created_by,
            created_at_ms: row.created_at_ms,
            comment: row.comment,
        })
    }
}

/// The columns of a raw probe result.
#[derive(Debug, sqlx::FromRow)]
pub struct ProbeResultRow {
    check_name: String,
    at_ms: i64,
    verdict: String,
    latency_ms: i64,
    status: Option<i32>,
    cause: Option<String>,
    error: Option<String>,
    conditions: String,
    cert_not_after_ms: Option<i64>,
    certificates: Option<String>,
}

impl TryFrom<ProbeResultRow> for ProbeRecord {
    type Error = StoreError;

    fn try_from(row: ProbeResultRow) -> Result<Self, StoreError> {
        let check = row.check_name;
        Ok(ProbeRecord {
            at_ms: row.at_ms,
            verdict: decode_verdict(&row.verdict)?,
            latency_ms: decode_count(row.latency_ms, "latency", &check)?,
            status: row
                .status
                .map(|s| decode_count(i64::from(s), "HTTP status", &check))
                .transpose()?,
            cause: row.cause,
            error: row.error,
            conditions: decode_conditions(&check, &row.conditions)?,
            cert_not_after_ms: row.cert_not_after_ms,
            certificates: decode_certificates(&check, row.certificates.as_deref())?,
            check,
        })
    }
}

/// The columns of a check's state.
#[derive(Debug, sqlx::FromRow)]
pub struct CheckStateRow {
    check_name: String,
    service: String,
    state: String,
    consecutive_failures: i64,
    consecutive_successes: i64,
    since_ms: i64,
    last_probe_ms: Option<i64>,
}

impl TryFrom<CheckStateRow> for CheckRecord {
    type Error = StoreError;

    fn try_from(row: CheckStateRow) -> Result<Self, StoreError> {
        let check = row.check_name;
        Ok(CheckRecord {
            service: row.service,
            state: decode_check_state(&row.state)?,
            consecutive_failures: decode_count(
                row.consecutive_failures,
                "consecutive failures",
                &check,
            )?,
            consecutive_successes: decode_count(
                row.consecutive_successes,
                "consecutive successes",
                &check,
            )?,
            since_ms: row.since_ms,
            last_probe_ms: row.last_probe_ms,
            check,
        })
    }
}

/// The columns of a check's transition.
#[derive(Debug, sqlx::FromRow)]
pub struct TransitionRow {
    id: i64,
    check_name: String,
    service: String,
    from_state: String,
    to_state: String,
    at_ms: i64,
    reason: String,
}

impl TryFrom<TransitionRow> for CheckTransition {
    type Error = StoreError;

    fn try_from(row: TransitionRow) -> Result<Self, StoreError> {
        Ok(CheckTransition {
            id: row.id,
            transition: NewTransition {
                check: row.check_name,
                service: row.service,
                from: decode_check_state(&row.from_state)?,
                to: decode_check_state(&row.to_state)?,
                at_ms: row.at_ms,
                reason: row.reason,
            },
        })
    }
}

/// The columns of an alert group.
#[derive(Debug, sqlx::FromRow)]
pub struct GroupRow {
    key: String,
    receiver: String,
    route_path: String,
    labels: String,
    clock: String,
}

impl TryFrom<GroupRow> for GroupRecord {
    type Error = StoreError;

    fn try_from(row: GroupRow) -> Result<Self, StoreError> {
        Ok(GroupRecord {
            receiver: row.receiver,
            route_path: decode_route_path(&row.key, &row.route_path)?,
            labels: decode_labels(&row.labels)?,
            clock: decode_group_clock(&row.key, &row.clock)?,
            key: row.key,
        })
    }
}

/// The columns of a notification.
#[derive(Debug, sqlx::FromRow)]
pub struct NotificationRow {
    id: i64,
    notice: String,
    state: String,
    attempts: i64,
    created_ms: i64,
    next_attempt_ms: i64,
    expires_ms: i64,
    finished_ms: Option<i64>,
    last_error: Option<String>,
}

impl TryFrom<NotificationRow> for StoredNotification {
    type Error = StoreError;

    fn try_from(row: NotificationRow) -> Result<Self, StoreError> {
        Ok(StoredNotification {
            id: row.id,
            notice: decode_notice(row.id, &row.notice)?,
            state: decode_notification_state(&row.state)?,
            attempts: decode_attempt_count(row.id, row.attempts)?,
            created_ms: row.created_ms,
            next_attempt_ms: row.next_attempt_ms,
            expires_ms: row.expires_ms,
            finished_ms: row.finished_ms,
            last_error: row.last_error,
        })
    }
}

/// The columns of one attempt to deliver a notification.
#[derive(Debug, sqlx::FromRow)]
pub struct AttemptRow {
    at_ms: i64,
    latency_ms: i64,
    status: Option<i32>,
    error: Option<String>,
}

impl AttemptRow {
    /// The attempt, of notification `notification` (which the row does not repeat), named
    /// in the error for a reply code that is out of range.
    pub fn into_attempt(self, notification: i64) -> Result<Attempt, StoreError> {
        Ok(Attempt {
            at_ms: self.at_ms,
            latency_ms: self.latency_ms,
            status: decode_attempt_status(notification, self.status.map(i64::from))?,
            error: self.error,
        })
    }
}

/// The columns of a lease.
#[derive(Debug, sqlx::FromRow)]
pub struct LeaseRow {
    role: String,
    holder: String,
    fence: i64,
    expires_at_ms: i64,
}

impl From<LeaseRow> for Lease {
    fn from(row: LeaseRow) -> Self {
        Lease {
            role: row.role,
            holder: row.holder,
            fence: row.fence,
            expires_at_ms: row.expires_at_ms,
        }
    }
}

/// The columns of a schedule's state.
#[derive(Debug, sqlx::FromRow)]
pub struct ScheduleStateRow {
    name: String,
    paused: bool,
    cursor_ms: i64,
    changed_at_ms: i64,
    changed_by: Option<String>,
}

impl From<ScheduleStateRow> for ScheduleState {
    fn from(row: ScheduleStateRow) -> Self {
        ScheduleState {
            name: row.name,
            paused: row.paused,
            cursor_ms: row.cursor_ms,
            changed_at_ms: row.changed_at_ms,
            changed_by: row.changed_by,
        }
    }
}

/// The columns of a schedule's run, with its task's status and times joined in.
#[derive(Debug, sqlx::FromRow)]
pub struct ScheduleRunRow {
    id: i64,
    schedule: String,
    slot_ms: i64,
    trigger: String,
    status: String,
    reason: Option<String>,
    task_id: Option<i64>,
    fired_at_ms: i64,
    task_status: Option<String>,
    outcome: Option<String>,
    started_at_ms: Option<i64>,
    finished_at_ms: Option<i64>,
    error: Option<String>,
    overdue: bool,
}

impl TryFrom<ScheduleRunRow> for ScheduleRun {
    type Error = StoreError;

    fn try_from(row: ScheduleRunRow) -> Result<Self, StoreError> {
        let trigger = row.trigger;
        let status = row.status;
        Ok(ScheduleRun {
            id: row.id,
            schedule: row.schedule,
            slot_ms: row.slot_ms,
            trigger: FireTrigger::parse(&trigger)
                .ok_or_else(|| StoreError::Corrupt(format!("run trigger `{trigger}`")))?,
            status: RunStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("run status `{status}`")))?,
            reason: row.reason,
            task_id: row.task_id,
            fired_at_ms: row.fired_at_ms,
            task_status: row.task_status.as_deref().map(parse_status).transpose()?,
            outcome: row.outcome,
            started_at_ms: row.started_at_ms,
            finished_at_ms: row.finished_at_ms,
            error: row.error,
            overdue: row.overdue,
        })
    }
}

/// The columns of a heartbeat.
#[derive(Debug, sqlx::FromRow)]
pub struct HeartbeatRow {
    name: String,
    last_ping_ms: Option<i64>,
    last_status: Option<String>,
    pings: i64,
    state: String,
    state_changed_at_ms: i64,
    watching_since_ms: i64,
}

impl TryFrom<HeartbeatRow> for HeartbeatRecord {
    type Error = StoreError;

    fn try_from(row: HeartbeatRow) -> Result<Self, StoreError> {
        let last_ping = match (row.last_ping_ms, row.last_status) {
            (Some(at), Some(status)) => Some((
                at,
                PingStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("ping status `{status}`")))?,
            )),
            _ => None,
        };
        let state = row.state;
        Ok(HeartbeatRecord {
            name: row.name,
            last_ping,
            pings: row.pings,
            state: HeartbeatState::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("heartbeat state `{state}`")))?,
            state_changed_at_ms: row.state_changed_at_ms,
            watching_since_ms: row.watching_since_ms,
        })
    }
}

/// The columns of a browser session.
#[derive(Debug, sqlx::FromRow)]
pub struct SessionRow {
    id_digest: String,
    key_digest: String,
    key_name: String,
    csrf: String,
    created_at_ms: i64,
    idle_expires_at_ms: i64,
    expires_at_ms: i64,
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Session {
            id_digest: row.id_digest,
            key_digest: row.key_digest,
            key_name: row.key_name,
            csrf: row.csrf,
            created_at_ms: row.created_at_ms,
            idle_expires_at_ms: row.idle_expires_at_ms,
            expires_at_ms: row.expires_at_ms,
        }
    }
}

/// The columns of a node ([`crate::sql::NODE_COLUMNS`]).
#[derive(Debug, sqlx::FromRow)]
pub struct NodeRow {
    id: String,
    hostname: String,
    address: Option<String>,
    workspace: Option<String>,
    labels: JsonColumn,
    source: String,
    interval_ms: i64,
    registered_at_ms: Option<i64>,
    last_seen_ms: Option<i64>,
    agent_version: String,
    usage: JsonColumn,
    status: String,
    status_since_ms: i64,
    created_at_ms: i64,
}

impl TryFrom<NodeRow> for crate::NodeRecord {
    type Error = StoreError;

    fn try_from(row: NodeRow) -> Result<Self, StoreError> {
        let labels: std::collections::BTreeMap<String, String> =
            serde_json::from_value(row.labels.into_value("node labels")?)
                .map_err(|e| StoreError::Corrupt(format!("node `{}` labels: {e}", row.id)))?;
        let status = row
            .status
            .parse()
            .map_err(|e: steward_core::node::UnknownNodeStatus| {
                StoreError::Corrupt(e.to_string())
            })?;
        Ok(crate::NodeRecord {
            spec: steward_core::node::NodeSpec {
                id: row.id,
                hostname: row.hostname,
                address: row.address,
                workspace: row.workspace,
                labels,
            },
            source: crate::NodeSource::parse(&row.source)?,
            interval_ms: row.interval_ms,
            registered_at_ms: row.registered_at_ms,
            last_seen_ms: row.last_seen_ms,
            agent_version: row.agent_version,
            usage: row.usage.into_value("node usage")?,
            status,
            status_since_ms: row.status_since_ms,
            created_at_ms: row.created_at_ms,
        })
    }
}

/// The columns of a reported item.
#[derive(Debug, sqlx::FromRow)]
pub struct NodeItemRow {
    kind: String,
    key: String,
    doc: String,
}

impl From<NodeItemRow> for crate::NodeItem {
    fn from(row: NodeItemRow) -> Self {
        crate::NodeItem {
            kind: row.kind,
            key: row.key,
            doc: row.doc,
        }
    }
}

/// The columns of a pipeline run (as [`PIPELINE_RUN_COLUMNS`] lists them).
#[derive(Debug, sqlx::FromRow)]
pub struct PipelineRunRow {
    id: i64,
    pipeline: String,
    status: String,
    spec: JsonColumn,
    input: JsonColumn,
    attempt: i32,
    idempotency_key: Option<String>,
    workspace: Option<String>,
    schedule: Option<String>,
    alert: Option<String>,
    caller: Option<String>,
    created_at_ms: i64,
    finished_at_ms: Option<i64>,
}

/// The columns [`PipelineRunRow`] reads, in its order.
pub const PIPELINE_RUN_COLUMNS: &str = "id, pipeline, status, spec, input, attempt, \
     idempotency_key, workspace, schedule, alert, caller, created_at_ms, finished_at_ms";

impl TryFrom<PipelineRunRow> for crate::PipelineRun {
    type Error = StoreError;

    fn try_from(row: PipelineRunRow) -> Result<Self, StoreError> {
        let spec = row.spec.into_value("pipeline run spec")?;
        Ok(Self {
            id: row.id,
            spec: serde_json::from_value(spec)
                .map_err(|e| StoreError::Corrupt(format!("pipeline run {} spec: {e}", row.id)))?,
            pipeline: row.pipeline,
            status: row
                .status
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("pipeline run {}: {e}", row.id)))?,
            input: row.input.into_value("pipeline run input")?,
            attempt: count(row.attempt)?,
            idempotency_key: row.idempotency_key,
            origin: TaskOrigin {
                workspace: row.workspace,
                schedule: row.schedule,
                alert: row.alert,
                caller: row.caller,
                pipeline_run: None,
            },
            created_at_ms: row.created_at_ms,
            finished_at_ms: row.finished_at_ms,
        })
    }
}

/// A step's columns joined with its task's (as [`PIPELINE_STEP_COLUMNS`] lists them).
#[derive(Debug, sqlx::FromRow)]
pub struct PipelineStepRow {
    run_id: i64,
    position: i32,
    name: String,
    state: String,
    task_id: Option<i64>,
    result: Option<JsonColumn>,
    error: Option<String>,
    started_at_ms: Option<i64>,
    finished_at_ms: Option<i64>,
    task_status: Option<String>,
    task_attempt: Option<i32>,
    task_result: Option<JsonColumn>,
    task_error: Option<String>,
}

/// The columns [`PipelineStepRow`] reads from `pipeline_steps s LEFT JOIN tasks t`.
pub const PIPELINE_STEP_COLUMNS: &str = "s.run_id, s.position, s.name, s.state, s.task_id, \
     s.result, s.error, s.started_at_ms, s.finished_at_ms, t.status AS task_status, \
     t.attempt AS task_attempt, t.result AS task_result, t.error AS task_error";

impl PipelineStepRow {
    /// The run it belongs to.
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// The step as its run's timeline shows it.
    pub fn into_step(self) -> Result<crate::RunStep, StoreError> {
        Ok(crate::RunStep {
            position: count(self.position)?,
            state: self.state.parse().map_err(|e| {
                StoreError::Corrupt(format!("pipeline run {} step: {e}", self.run_id))
            })?,
            task_status: self.task_status.as_deref().map(parse_status).transpose()?,
            attempts: self.task_attempt.map(count).transpose()?.unwrap_or(0),
            name: self.name,
            task_id: self.task_id,
            result: self
                .result
                .map(|r| r.into_value("pipeline step result"))
                .transpose()?,
            error: self.error,
            started_at_ms: self.started_at_ms,
            finished_at_ms: self.finished_at_ms,
        })
    }

    /// The step as planning reads it.
    pub fn into_loaded(self) -> Result<crate::pipelines::LoadedStep, StoreError> {
        let task = match self.task_status.as_deref() {
            Some(status) => Some((
                parse_status(status)?,
                self.task_result
                    .map(|r| r.into_value("task result"))
                    .transpose()?,
                self.task_error,
            )),
            None => None,
        };
        Ok(crate::pipelines::LoadedStep {
            state: self.state.parse().map_err(|e| {
                StoreError::Corrupt(format!("pipeline run {} step: {e}", self.run_id))
            })?,
            task_id: self.task_id,
            task,
            result: self
                .result
                .map(|r| r.into_value("pipeline step result"))
                .transpose()?,
            error: self.error,
            started_at_ms: self.started_at_ms,
        })
    }
}
