//! Services and checks: `/api/v1/services…` and `/api/v1/checks…`.
//!
//! Fields that may be unknown (a check never probed, a result without an HTTP status) are
//! written as `null` rather than left out, as these answers always have been.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A check in brief, as services list them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckBrief {
    /// Its name.
    pub name: String,
    /// How it probes: `http`, `tcp`, `tls`, `cert_file` or `command`.
    pub kind: String,
    /// Its state: `unknown`, `up`, `degraded` or `down`.
    pub state: String,
    /// Since when it is in that state; `null` before its first probe.
    #[schema(format = DateTime)]
    pub since: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    pub since_ms: Option<i64>,
    /// When it was last probed; `null` before its first probe.
    #[schema(format = DateTime)]
    pub last_probe: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    pub last_probe_ms: Option<i64>,
}

/// A service and how it is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServiceHealth {
    /// Its name.
    pub name: String,
    /// Its workspace; `null` for a service in none.
    pub workspace: Option<String>,
    /// Where it answers.
    pub url: Option<String>,
    /// The node (host) it runs on.
    pub node: Option<String>,
    /// Its free-form labels.
    pub labels: BTreeMap<String, String>,
    /// Its state: the worst of its enabled checks' (`unknown`, `up`, `degraded`, `down`), or
    /// `impacted` when a service it depends on is down.
    pub state: String,
    /// When impacted: the down services it depends on that the caller may see.
    pub impacted_by: Vec<String>,
    /// Its checks.
    pub checks: Vec<CheckBrief>,
}

/// The services the caller may see: `GET /api/v1/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServiceHealthList {
    /// The services, in the registry's order.
    pub services: Vec<ServiceHealth>,
}

/// Probes, failures and latency percentiles over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LatencySummary {
    /// Probe results in the window.
    pub count: u64,
    /// Of which failed.
    pub failures: u64,
    /// Median latency in milliseconds (a histogram bucket's bound); `null` without probes.
    pub p50_ms: Option<u64>,
    /// 95th percentile latency in milliseconds.
    pub p95_ms: Option<u64>,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: Option<u64>,
}

/// A certificate's expiry and standing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CertStanding {
    /// When it expires.
    #[schema(format = DateTime)]
    pub not_after: String,
    /// The same, in milliseconds since the Unix epoch.
    pub not_after_ms: i64,
    /// Whole days left (negative once expired).
    pub days_left: i64,
    /// `valid`, `warning`, `critical` or `expired`.
    pub class: String,
}

/// A certificate a probe saw, with its standing at the time of the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProbeCertificate {
    /// The file it was read from (certificate-file checks); `null` otherwise.
    pub path: Option<String>,
    /// Its subject.
    pub subject: String,
    /// Its issuer.
    pub issuer: String,
    /// The names it is valid for.
    pub names: Vec<String>,
    /// When it expires.
    #[schema(format = DateTime)]
    pub not_after: String,
    /// The same, in milliseconds since the Unix epoch.
    pub not_after_ms: i64,
    /// Whole days left (negative once expired).
    pub days_left: i64,
    /// `valid`, `warning`, `critical` or `expired`.
    pub class: String,
}

/// A condition as resolved against one result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConditionResult {
    /// Whether it held.
    pub success: bool,
    /// The condition with its values: `[STATUS] (503) == 200`.
    pub condition: String,
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProbeResult {
    /// When the probe started.
    #[schema(format = DateTime)]
    pub at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// `pass`, `slow` or `fail`.
    pub verdict: String,
    /// How long it took, in milliseconds.
    pub latency_ms: u64,
    /// The HTTP status, if the probe got one.
    pub status: Option<u16>,
    /// Why the probe itself failed (`timeout`, `connect`, …), if it did.
    pub cause: Option<String>,
    /// A description of that failure.
    pub error: Option<String>,
    /// Each condition as resolved, with whether it held.
    pub conditions: Vec<ConditionResult>,
    /// The certificates it saw, classed as of the answer.
    pub certificates: Vec<ProbeCertificate>,
}

/// One check in full, with figures over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CheckDetail {
    /// Its name.
    pub name: String,
    /// How it probes: `http`, `tcp`, `tls`, `cert_file` or `command`.
    pub kind: String,
    /// Its state: `unknown`, `up`, `degraded` or `down`.
    pub state: String,
    /// Since when it is in that state; `null` before its first probe.
    #[schema(format = DateTime)]
    pub since: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    pub since_ms: Option<i64>,
    /// When it was last probed; `null` before its first probe.
    #[schema(format = DateTime)]
    pub last_probe: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    pub last_probe_ms: Option<i64>,
    /// The service it watches.
    pub service: String,
    /// Time between probes, in milliseconds.
    pub interval_ms: u64,
    /// How long a probe may take, in milliseconds.
    pub timeout_ms: u64,
    /// False when paused in the config.
    pub enabled: bool,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The conditions results are held to.
    pub conditions: Vec<String>,
    /// Failed probes in a row.
    pub consecutive_failures: u32,
    /// Passed probes in a row.
    pub consecutive_successes: u32,
    /// The latest result; `null` before its first probe.
    pub last_result: Option<ProbeResult>,
    /// The window the figures below cover, in milliseconds.
    pub window_ms: i64,
    /// Probes, failures and latency percentiles over the window.
    pub latency: LatencySummary,
    /// Failed probes over all probes in the window; `null` without probes.
    pub failure_ratio: Option<f64>,
    /// The certificate the latest result saw (TLS, HTTPS and certificate-file checks); `null`
    /// when that probe saw none, e.g. because it could not connect.
    pub certificate: Option<CertStanding>,
}

/// A service's checks in full: `GET /api/v1/services/{name}/checks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServiceChecks {
    /// The service.
    pub service: String,
    /// Its checks, in the config's order.
    pub checks: Vec<CheckDetail>,
}

/// A check's raw results: `GET /api/v1/checks/{name}/results`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckResults {
    /// The check.
    pub check: String,
    /// Its results, newest first.
    pub results: Vec<ProbeResult>,
}

/// A change of a check's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckTransition {
    /// Its id, increasing with each transition recorded (pages go below it).
    pub id: i64,
    /// The check.
    pub check: String,
    /// The service it watches.
    pub service: String,
    /// The state before: `unknown`, `up`, `degraded` or `down`.
    pub from: String,
    /// The state after.
    pub to: String,
    /// When it happened (the start of the probe that caused it).
    #[schema(format = DateTime)]
    pub at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The probe's failure or failed conditions, in one line.
    pub reason: String,
}

/// A page of transitions, newest first: `GET /api/v1/checks/{name}/transitions` and
/// `GET /api/v1/services/{name}/transitions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckTransitionList {
    /// The transitions, newest first.
    pub transitions: Vec<CheckTransition>,
    /// Pass as `before` for the next page; `null` on the last.
    pub next_before: Option<i64>,
}

/// What probing a check now found: `POST /api/v1/checks/{name}/run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckRun {
    /// The check.
    pub check: String,
    /// The result.
    pub result: ProbeResult,
    /// Why it did not pass (empty when it passed).
    pub reason: String,
    /// The check's state afterwards (unchanged when not recorded).
    pub state: String,
    /// True when the result counted toward the check's state; false when another instance
    /// probes and this one only looked.
    pub recorded: bool,
}

/// The query of the answers that report over a window: a check, a service's checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WindowQuery {
    /// The window percentiles cover, such as `15m`, `1h` or `7d` (1m to 30d; default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// The query of `GET /api/v1/checks/{name}/results`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CheckResultsQuery {
    /// Results since this time, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Results per page (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The query of the transition listings, by check and by service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TransitionsQuery {
    /// Transitions before this id (the last page's `next_before`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
    /// Transitions per page (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_times_are_written_as_null() {
        let brief = CheckBrief {
            name: "db-http".to_owned(),
            kind: "http".to_owned(),
            state: "unknown".to_owned(),
            since: None,
            since_ms: None,
            last_probe: None,
            last_probe_ms: None,
        };
        let json = serde_json::to_value(&brief).unwrap_or_default();
        for field in ["since", "since_ms", "last_probe", "last_probe_ms"] {
            assert_eq!(json.get(field), Some(&serde_json::Value::Null), "{field}");
        }
    }
}
