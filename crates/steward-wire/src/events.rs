//! The live event stream, `GET /api/v1/events` (Server-Sent Events): what each event carries,
//! the types a client may ask for, and the cursor a reconnecting client sends back as
//! `Last-Event-ID`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The types of events the stream carries, as `types=` names them.
pub const EVENT_TYPES: &[&str] = &[
    "registry_synced",
    "config_rejected",
    "tasks_enqueued",
    "task_changed",
    "tasks_changed",
    "pipeline_run_changed",
    "leadership_changed",
    "schedule_fired",
    "schedule_skipped",
    "slots_missed",
    "schedule_overdue",
    "heartbeat_changed",
    "alerts_changed",
    "silences_changed",
    "check_changed",
    "node_changed",
    "node_status_changed",
    "node_inventory_changed",
    "audit",
    LOST,
];

/// Sent first, alone, to a client whose `Last-Event-ID` fell out of the replay window (or
/// names no position of this database): it should reload what it shows, then follow on.
pub const RESET: &str = "reset";

/// Events an instance could not put in the stream (its relay fell behind or the database was
/// unreachable), or a client did not read fast enough to get: `count` of them are missing.
pub const LOST: &str = "lost";

/// What an event of each type carries, besides its time, workspace and instance. A stream
/// event's `type` and fields are one of these; a client reads them with [`StreamEvent::data`]
/// (and treats a type it does not know, from a newer server, as just its fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventData {
    /// The registry in the store was reconciled with the config.
    RegistrySynced {
        /// Entities created.
        added: u64,
        /// Entities whose fields changed.
        updated: u64,
        /// Entities deleted.
        removed: u64,
    },
    /// A reload was refused; the running config stays.
    ConfigRejected {
        /// How many problems the new config had.
        problems: u64,
    },
    /// Tasks were enqueued: by one call, or (`coalesced` present) by many calls summed.
    TasksEnqueued {
        /// The queue.
        queue: String,
        /// Tasks in the calls.
        count: u64,
        /// Of those, new ones (the rest repeated an idempotency key).
        created: u64,
        /// How many enqueue events were summed into this one, when they were.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        coalesced: Option<u64>,
        /// When the first of them happened (ms since the Unix epoch), when summed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_ms: Option<i64>,
    },
    /// A pipeline run was started, advanced or ended: its status now and the steps that
    /// changed.
    PipelineRunChanged {
        /// The run.
        run_id: i64,
        /// Its pipeline.
        pipeline: String,
        /// Its status now (`running`, `succeeded`, `failed`, `cancelled`).
        status: String,
        /// The run was created or retried.
        started: bool,
        /// The run ended.
        finished: bool,
        /// Its steps that changed, in order.
        steps: Vec<StepChange>,
    },
    /// A task moved to another status.
    TaskChanged {
        /// The task.
        id: i64,
        /// Its queue.
        queue: String,
        /// Its kind.
        kind: String,
        /// The status it moved to.
        status: String,
        /// The attempt concerned.
        attempt: u32,
        /// The executor's outcome label, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<String>,
    },
    /// Task changes of one busy queue, summed: how many tasks reached each status.
    TasksChanged {
        /// The queue.
        queue: String,
        /// How many task events were summed.
        coalesced: u64,
        /// When the first of them happened (ms since the Unix epoch).
        first_ms: i64,
        /// Tasks per status reached.
        statuses: BTreeMap<String, u64>,
    },
    /// An instance took or lost a leadership lease.
    LeadershipChanged {
        /// What the lease is for (`scheduler`, …).
        role: String,
        /// The instance.
        holder: String,
        /// The lease's fencing token.
        fence: i64,
        /// True when taken, false when lost or given up.
        leading: bool,
    },
    /// A schedule fired: its task was enqueued.
    ScheduleFired {
        /// The schedule.
        schedule: String,
        /// The slot (ms since the Unix epoch).
        slot_ms: i64,
        /// `slot`, `catch_up` or `manual`.
        trigger: String,
        /// The task.
        task_id: i64,
        /// Milliseconds between the slot (plus its jitter) and the fire's commit.
        lateness_ms: i64,
    },
    /// A schedule's slot was skipped by its overlap policy.
    ScheduleSkipped {
        /// The schedule.
        schedule: String,
        /// The slot (ms since the Unix epoch).
        slot_ms: i64,
        /// Why.
        reason: String,
    },
    /// Slots passed while no instance could fire them, and the missed-run policy dropped them.
    SlotsMissed {
        /// The schedule.
        schedule: String,
        /// How many (a lower bound for very long outages).
        count: u64,
        /// The first one (ms since the Unix epoch).
        first_ms: i64,
        /// The last one (ms since the Unix epoch).
        last_ms: i64,
    },
    /// A fire's task did not succeed within the schedule's `expect_success_within`.
    ScheduleOverdue {
        /// The schedule.
        schedule: String,
        /// The slot (ms since the Unix epoch).
        slot_ms: i64,
        /// The task, if one was enqueued.
        task_id: Option<i64>,
        /// Its status now.
        task_status: Option<String>,
    },
    /// A heartbeat changed state.
    HeartbeatChanged {
        /// The heartbeat.
        name: String,
        /// The state before.
        from: String,
        /// The state now.
        to: String,
    },
    /// Alerts started firing, fired again, resolved or were acknowledged.
    AlertsChanged {
        /// The alerts, as they are now.
        alerts: Vec<AlertChange>,
    },
    /// A silence was created or expired.
    SilencesChanged,
    /// A health check changed state (after its thresholds, so a single blip is no event).
    CheckChanged {
        /// The check.
        check: String,
        /// The service it watches.
        service: String,
        /// The state before: `unknown`, `up`, `degraded` or `down`.
        from: String,
        /// The state now.
        to: String,
        /// The probe's failure or failed conditions, in one line (empty when it passed).
        reason: String,
    },
    /// A change recorded in the audit trail (admin keys only).
    Audit(AuditRecord),
    /// Events this client will never get: `count` of them.
    Lost {
        /// How many.
        count: u64,
        /// Why, when the server says (a client reading too slowly).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A node was added, registered or removed.
    NodeChanged {
        /// The node.
        node: String,
        /// `added`, `registered`, `removed` or `credentials_revoked`.
        change: String,
    },
    /// A node's status changed.
    NodeStatusChanged {
        /// The node.
        node: String,
        /// The status before.
        from: crate::nodes::NodeStatus,
        /// The status now.
        to: crate::nodes::NodeStatus,
    },
    /// One kind of a node's inventory changed.
    NodeInventoryChanged {
        /// The node.
        node: String,
        /// The kind.
        kind: String,
        /// Items that appeared.
        added: Vec<String>,
        /// Items that changed.
        changed: Vec<String>,
        /// Items no longer reported.
        removed: Vec<String>,
    },
    /// What the client missed cannot be replayed: reload, then follow on.
    Reset {
        /// Why.
        reason: String,
    },
}

impl EventData {
    /// Its `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            EventData::RegistrySynced { .. } => "registry_synced",
            EventData::ConfigRejected { .. } => "config_rejected",
            EventData::TasksEnqueued { .. } => "tasks_enqueued",
            EventData::TaskChanged { .. } => "task_changed",
            EventData::PipelineRunChanged { .. } => "pipeline_run_changed",
            EventData::TasksChanged { .. } => "tasks_changed",
            EventData::LeadershipChanged { .. } => "leadership_changed",
            EventData::ScheduleFired { .. } => "schedule_fired",
            EventData::ScheduleSkipped { .. } => "schedule_skipped",
            EventData::SlotsMissed { .. } => "slots_missed",
            EventData::ScheduleOverdue { .. } => "schedule_overdue",
            EventData::HeartbeatChanged { .. } => "heartbeat_changed",
            EventData::AlertsChanged { .. } => "alerts_changed",
            EventData::SilencesChanged => "silences_changed",
            EventData::CheckChanged { .. } => "check_changed",
            EventData::NodeChanged { .. } => "node_changed",
            EventData::NodeStatusChanged { .. } => "node_status_changed",
            EventData::NodeInventoryChanged { .. } => "node_inventory_changed",
            EventData::Audit(_) => "audit",
            EventData::Lost { .. } => LOST,
            EventData::Reset { .. } => RESET,
        }
    }
}

/// One changed step of a `pipeline_run_changed` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = PipelineStepChange)]
pub struct StepChange {
    /// The step.
    pub name: String,
    /// What it became (`running`, `succeeded`, `failed`, `skipped`, `cancelled`, `waiting`).
    pub state: String,
    /// Its task, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<i64>,
}

/// One changed alert of an `alerts_changed` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertChange {
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// Its `alertname` label.
    pub alertname: String,
    /// Its state now (`firing`, `resolved`, …).
    pub state: String,
    /// Its severity.
    pub severity: String,
}

/// An audit record as an `audit` event carries it (its time and workspace are the event's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    /// Its position in the chain.
    pub seq: i64,
    /// Who.
    pub actor: crate::audit::Actor,
    /// What, as `noun.verb`.
    pub action: String,
    /// On what.
    pub target: String,
    /// What else was kept.
    pub details: serde_json::Value,
    /// The previous event's hash.
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
    /// For events merged from another node: where they were first recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<crate::audit::AuditOrigin>,
}

impl From<crate::audit::AuditEvent> for AuditRecord {
    /// The record an `audit` event carries for `event`, whose time and workspace go to the
    /// stream event itself.
    fn from(event: crate::audit::AuditEvent) -> Self {
        Self {
            seq: event.seq,
            actor: event.actor,
            action: event.action,
            target: event.target,
            details: event.details,
            prev_hash: event.prev_hash,
            hash: event.hash,
            origin: event.origin,
        }
    }
}

impl AuditRecord {
    /// The audit event this is, as `GET /api/v1/audit` lists it, given the time and workspace
    /// of the stream event that carried it.
    pub fn into_audit_event(self, event: &StreamEvent) -> crate::audit::AuditEvent {
        crate::audit::AuditEvent {
            seq: self.seq,
            at: event.at.clone(),
            at_ms: event.at_ms,
            actor: self.actor,
            action: self.action,
            target: self.target,
            workspace: event.workspace.clone(),
            details: self.details,
            prev_hash: self.prev_hash,
            hash: self.hash,
            origin: self.origin,
        }
    }
}

/// The query of `GET /api/v1/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Comma-separated event types; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<String>,
    /// Only this workspace's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

/// One event of the stream (the JSON of its `data:` line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamEvent {
    /// Its type, one of [`EVENT_TYPES`] or [`RESET`].
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened, RFC 3339.
    #[schema(format = DateTime)]
    pub at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The workspace it concerns; events of none are shown only to unscoped keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// The instance it happened on (absent for audit events, which the database records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// What else the type carries (a task's id and status, a check's states, …).
    #[serde(flatten)]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

/// Where a client is in the stream: the last event log entry and audit record it has seen.
/// Sent as each event's `id` and read back from `Last-Event-ID`, written `LOG-AUDIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    /// The last event log id seen.
    pub log: i64,
    /// The last audit sequence number seen.
    pub audit: i64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.log, self.audit)
    }
}

/// A `Last-Event-ID` that is not a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadCursor(pub String);

impl fmt::Display for BadCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.0.chars().take(40).collect();
        write!(
            f,
            "`{}` is not an event id (two non-negative numbers joined by `-`, as the stream sent them)",
            shown.escape_debug()
        )
    }
}

impl std::error::Error for BadCursor {}

impl FromStr for Cursor {
    type Err = BadCursor;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadCursor(text.to_string());
        let (log, audit) = text.trim().split_once('-').ok_or_else(bad)?;
        let number = |part: &str| {
            part.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse::<i64>().ok())
                .flatten()
                .ok_or_else(bad)
        };
        Ok(Self {
            log: number(log)?,
            audit: number(audit)?,
        })
    }
}

/// The data of a [`RESET`] event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reset {
    /// Always [`RESET`].
    #[serde(rename = "type")]
    pub kind: String,
    /// Why the missed events cannot be replayed.
    pub reason: String,
}

impl StreamEvent {
    /// An event of `data`'s type that happened at `at_ms`.
    pub fn new(
        at_ms: i64,
        workspace: Option<String>,
        instance: Option<String>,
        data: &EventData,
    ) -> Self {
        let detail = match serde_json::to_value(data) {
            Ok(serde_json::Value::Object(mut fields)) => {
                fields.remove("type");
                fields
            }
            _ => serde_json::Map::new(),
        };
        Self {
            kind: data.kind().to_owned(),
            at: crate::time::rfc3339(at_ms),
            at_ms,
            workspace,
            instance,
            detail,
        }
    }

    /// What it carries, typed. An error means a type (or fields) this client does not know,
    /// as a newer server may send: show [`StreamEvent::detail`] as it is.
    pub fn data(&self) -> Result<EventData, serde_json::Error> {
        let mut fields = self.detail.clone();
        fields.insert("type".into(), self.kind.clone().into());
        serde_json::from_value(serde_json::Value::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let cursor = Cursor { log: 42, audit: 7 };
        assert_eq!(cursor.to_string().parse::<Cursor>(), Ok(cursor));
        for bad in [
            "",
            "1",
            "-1-2",
            "1--2",
            "a-b",
            "1-2-3",
            "1-+2",
            "99999999999999999999-1",
            "1 -2",
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_text_is_a_cursor_or_a_clear_refusal(text in ".{0,64}") {
            match text.parse::<Cursor>() {
                Ok(cursor) => prop_assert_eq!(cursor.to_string().parse::<Cursor>(), Ok(cursor)),
                Err(error) => prop_assert!(error.to_string().contains("is not an event id")),
            }
        }
    }

    #[test]
    fn event_data_round_trips_through_a_stream_event_and_unknown_types_stay_readable() {
        let data = EventData::CheckChanged {
            check: "api".into(),
            service: "api".into(),
            from: "up".into(),
            to: "down".into(),
            reason: "status 500".into(),
        };
        let event = StreamEvent::new(1_000, Some("ops".into()), Some("a".into()), &data);
        assert_eq!(event.kind, "check_changed");
        assert_eq!(event.detail["to"], "down");
        assert!(!event.detail.contains_key("type"));
        let text = serde_json::to_string(&event).unwrap();
        let back: StreamEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back.data().unwrap(), data);
        assert_eq!(
            StreamEvent::new(0, None, None, &EventData::SilencesChanged)
                .data()
                .unwrap(),
            EventData::SilencesChanged
        );
        let newer: StreamEvent = serde_json::from_value(serde_json::json!({
            "type": "node_joined", "at": "x", "at_ms": 0, "node": "n1"
        }))
        .unwrap();
        assert!(newer.data().is_err());
        assert_eq!(newer.detail["node"], "n1");
    }

    #[test]
    fn an_audit_event_carried_by_the_stream_reads_back_whole() {
        let event = crate::audit::AuditEvent {
            seq: 3,
            at: crate::time::rfc3339(1_000),
            at_ms: 1_000,
            actor: crate::audit::Actor {
                kind: "key".into(),
                name: "ops".into(),
                source_ip: Some("127.0.0.1".into()),
            },
            action: "key.create".into(),
            target: "ci".into(),
            workspace: Some("alpha".into()),
            details: serde_json::json!({"role": "viewer"}),
            prev_hash: "0".repeat(64),
            hash: "1".repeat(64),
            origin: Some(crate::audit::AuditOrigin {
                node: "n1".into(),
                seq: 9,
                hash: "2".repeat(64),
            }),
        };
        let record = AuditRecord::from(event.clone());
        let streamed = StreamEvent::new(
            event.at_ms,
            event.workspace.clone(),
            None,
            &EventData::Audit(record.clone()),
        );
        assert_eq!(record.into_audit_event(&streamed), event);
    }
}
