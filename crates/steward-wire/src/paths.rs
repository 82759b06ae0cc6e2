//! Where each route is. The server's route table is built from these templates and clients fill
//! them in, so a path is written once.

use std::fmt::{self, Display};

use serde::Serialize;

/// A route's path template, `{name}` marking each parameter segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route(&'static str);

impl Route {
    /// The template, as the server's router matches it.
    pub const fn template(self) -> &'static str {
        self.0
    }

    /// The path, each `{name}` segment replaced by the next of `values`, percent-encoded (so a
    /// name holding `/` or `?` stays one segment). Missing values leave their segment as it is,
    /// which no route matches.
    pub fn with(self, values: &[&dyn Display]) -> String {
        let mut values = values.iter();
        self.0
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') && segment.ends_with('}') {
                    values
                        .next()
                        .map_or_else(|| segment.to_owned(), |v| encode(&v.to_string()))
                } else {
                    segment.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The path with `query` as its query string (fields that are `None` left out).
    pub fn with_query<Q: Serialize>(
        self,
        values: &[&dyn Display],
        query: &Q,
    ) -> Result<String, QueryError> {
        let path = self.with(values);
        let query = serde_urlencoded::to_string(query).map_err(|e| QueryError(e.to_string()))?;
        Ok(if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        })
    }
}

impl Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A query type that cannot be written as a query string (a nested map or list).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot write the query string: {0}")]
pub struct QueryError(String);

/// Percent-encodes a path segment or query value: everything but RFC 3986's unreserved
/// characters.
pub fn encode(v: &str) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// `GET /`.
pub const INDEX: Route = Route("/");
/// The OpenAPI document.
pub const OPENAPI: Route = Route("/api/v1/openapi.json");
/// Liveness.
pub const HEALTHZ: Route = Route("/healthz");
/// Readiness.
pub const READYZ: Route = Route("/readyz");
/// Prometheus's metrics.
pub const METRICS: Route = Route("/metrics");
/// A service's state as a badge (`{name}.svg`).
pub const BADGE: Route = Route("/badge/service/{file}");
/// A service's uptime as a badge.
pub const BADGE_UPTIME: Route = Route("/badge/service/{name}/uptime.svg");
/// Which instance leads what.
pub const LEADERSHIP: Route = Route("/api/v1/leadership");
/// The live event stream.
pub const EVENTS: Route = Route("/api/v1/events");
/// The calling key.
pub const WHOAMI: Route = Route("/api/v1/whoami");
/// Workspaces.
pub const WORKSPACES: Route = Route("/api/v1/workspaces");
/// One workspace.
pub const WORKSPACE: Route = Route("/api/v1/workspaces/{key}");
/// Services.
pub const SERVICES: Route = Route("/api/v1/services");
/// A service's checks.
pub const SERVICE_CHECKS: Route = Route("/api/v1/services/{name}/checks");
/// A service's state changes.
pub const SERVICE_TRANSITIONS: Route = Route("/api/v1/services/{name}/transitions");
/// One check.
pub const CHECK: Route = Route("/api/v1/checks/{name}");
/// A check's results.
pub const CHECK_RESULTS: Route = Route("/api/v1/checks/{name}/results");
/// A check's state changes.
pub const CHECK_TRANSITIONS: Route = Route("/api/v1/checks/{name}/transitions");
/// Probe a check now.
pub const CHECK_RUN: Route = Route("/api/v1/checks/{name}/run");
/// The dependency graph.
pub const GRAPH: Route = Route("/api/v1/graph");
/// Re-read the config.
pub const CONFIG_RELOAD: Route = Route("/api/v1/config/reload");
/// API keys.
pub const KEYS: Route = Route("/api/v1/keys");
/// One API key.
pub const KEY: Route = Route("/api/v1/keys/{name}");
/// The audit trail.
pub const AUDIT: Route = Route("/api/v1/audit");
/// The audit trail's verification.
pub const AUDIT_VERIFY: Route = Route("/api/v1/audit/verify");
/// Tasks.
pub const TASKS: Route = Route("/api/v1/tasks");
/// One task.
pub const TASK: Route = Route("/api/v1/tasks/{id}");
/// Cancel a task.
pub const TASK_CANCEL: Route = Route("/api/v1/tasks/{id}/cancel");
/// Retry a task.
pub const TASK_RETRY: Route = Route("/api/v1/tasks/{id}/retry");
/// Queues.
pub const QUEUES: Route = Route("/api/v1/queues");
/// Schedules.
pub const SCHEDULES: Route = Route("/api/v1/schedules");
/// One schedule.
pub const SCHEDULE: Route = Route("/api/v1/schedules/{name}");
/// A schedule's runs.
pub const SCHEDULE_RUNS: Route = Route("/api/v1/schedules/{name}/runs");
/// Pause a schedule.
pub const SCHEDULE_PAUSE: Route = Route("/api/v1/schedules/{name}/pause");
/// Resume a schedule.
pub const SCHEDULE_RESUME: Route = Route("/api/v1/schedules/{name}/resume");
/// Fire a schedule now.
pub const SCHEDULE_TRIGGER: Route = Route("/api/v1/schedules/{name}/trigger");
/// Declared pipelines with their latest runs.
pub const PIPELINES: Route = Route("/api/v1/pipelines");
/// One declared pipeline with its latest run.
pub const PIPELINE: Route = Route("/api/v1/pipelines/{name}");
/// Starting a run of a pipeline.
pub const PIPELINE_START: Route = Route("/api/v1/pipelines/{name}/runs");
/// Pipeline runs, newest first.
pub const PIPELINE_RUNS: Route = Route("/api/v1/pipeline-runs");
/// One run with its timeline.
pub const PIPELINE_RUN: Route = Route("/api/v1/pipeline-runs/{id}");
/// Cancelling a run.
pub const PIPELINE_RUN_CANCEL: Route = Route("/api/v1/pipeline-runs/{id}/cancel");
/// Retrying a run from its steps that did not succeed.
pub const PIPELINE_RUN_RETRY: Route = Route("/api/v1/pipeline-runs/{id}/retry");
/// Alerts (Steward's shape).
pub const ALERTS: Route = Route("/api/v1/alerts");
/// One alert.
pub const ALERT: Route = Route("/api/v1/alerts/{fingerprint}");
/// Acknowledge an alert.
pub const ALERT_ACK: Route = Route("/api/v1/alerts/{fingerprint}/ack");
/// The notification outbox.
pub const NOTIFICATIONS: Route = Route("/api/v1/notifications");
/// Silences (Steward's shape).
pub const SILENCES: Route = Route("/api/v1/silences");
/// One silence.
pub const SILENCE: Route = Route("/api/v1/silences/{id}");
/// Heartbeats.
pub const HEARTBEATS: Route = Route("/api/v1/heartbeats");
/// A heartbeat's successful ping.
pub const HEARTBEAT: Route = Route("/api/v1/heartbeats/{name}");
/// A heartbeat's failed ping.
pub const HEARTBEAT_FAIL: Route = Route("/api/v1/heartbeats/{name}/fail");
/// The fleet's nodes (list, add).
pub const NODES: Route = Route("/api/v1/nodes");
/// One node (show, remove).
pub const NODE: Route = Route("/api/v1/nodes/{id}");
/// A node's join tokens (create).
pub const NODE_TOKENS: Route = Route("/api/v1/nodes/{id}/tokens");
/// A node's heartbeat, sent by its agent.
pub const NODE_HEARTBEAT: Route = Route("/api/v1/nodes/{id}/heartbeat");
/// A node's audit journal, shipped by its agent.
pub const NODE_AUDIT: Route = Route("/api/v1/nodes/{id}/audit");
/// A node's agent claiming the tasks pinned to it (long poll).
pub const NODE_TASKS_CLAIM: Route = Route("/api/v1/nodes/{id}/tasks/claim");
/// A node's agent renewing the leases of its running attempts.
pub const NODE_TASKS_LEASES: Route = Route("/api/v1/nodes/{id}/tasks/leases");
/// A node's agent reporting its attempts' results.
pub const NODE_TASKS_COMPLETE: Route = Route("/api/v1/nodes/{id}/tasks/complete");
/// An agent's registration: a join token exchanged for a node credential.
pub const AGENT_REGISTER: Route = Route("/api/v1/agent/register");
/// Alerts, in Alertmanager's API v2.
pub const AM_ALERTS: Route = Route("/api/v2/alerts");
/// Alert groups, in Alertmanager's API v2.
pub const AM_ALERT_GROUPS: Route = Route("/api/v2/alerts/groups");
/// Silences, in Alertmanager's API v2.
pub const AM_SILENCES: Route = Route("/api/v2/silences");
/// One silence, in Alertmanager's API v2.
pub const AM_SILENCE: Route = Route("/api/v2/silence/{silenceID}");
/// Status, in Alertmanager's API v2.
pub const AM_STATUS: Route = Route("/api/v2/status");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_filled_in_order_and_encoded_as_one_segment() {
        assert_eq!(TASK.with(&[&42]), "/api/v1/tasks/42");
        assert_eq!(
            SCHEDULE_RUNS.with(&[&"nightly/report?x"]),
            "/api/v1/schedules/nightly%2Freport%3Fx/runs"
        );
        assert_eq!(TASKS.with(&[]), "/api/v1/tasks");
        assert_eq!(TASK.with(&[]), "/api/v1/tasks/{id}");
    }

    #[test]
    fn queries_leave_out_absent_fields_and_encode_values() {
        #[derive(Serialize)]
        struct Q {
            limit: u32,
            queue: Option<String>,
            kind: Option<String>,
        }
        let q = Q {
            limit: 5,
            queue: None,
            kind: Some("a b&c".into()),
        };
        assert_eq!(
            TASKS.with_query(&[], &q).unwrap(),
            "/api/v1/tasks?limit=5&kind=a+b%26c"
        );
        let none = Q {
            limit: 1,
            queue: None,
            kind: None,
        };
        assert_eq!(
            TASKS.with_query(&[], &none).unwrap(),
            "/api/v1/tasks?limit=1"
        );
    }

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(encode("1h"), "1h");
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(encode("-_.~"), "-_.~");
    }
}
