//! Built-in alert rules: conditions over what Steward already knows (checks, certificates,
//! schedules, heartbeats, queues, nodes), declared as `[[alerting.rules]]`. Each rule yields one alert
//! per subject that meets its condition (a check, a schedule, a queue, …), labelled
//! `alertname` = the rule's name plus the subject's labels; an alert resolves when its subject
//! no longer meets the condition. This module says what a rule is and turns a subject's facts
//! into the alert it raises, if any; gathering the facts is the engine's job.

use std::collections::BTreeMap;

use super::{IncomingAlert, Severity};
use crate::health::state::CheckState;
use crate::registry::Labels;
use crate::schedule::HeartbeatState;

/// The shortest evaluation interval.
pub const MIN_RULE_INTERVAL_MS: u64 = 1_000;
/// How often rules are evaluated unless `alerting.rule_interval` says otherwise.
pub const DEFAULT_RULE_INTERVAL_MS: u64 = 15_000;
/// The source of the alerts a rule raises is `rule:` followed by its name.
pub const RULE_SOURCE_PREFIX: &str = "rule:";

/// A rule as declared.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    /// Unique; the alerts' `alertname`.
    pub name: String,
    /// The alerts' severity.
    pub severity: Severity,
    /// Extra labels for its alerts.
    pub labels: Labels,
    /// Annotations for its alerts; a `summary` replaces the one the rule writes.
    pub annotations: Labels,
    /// What it watches for.
    pub condition: Condition,
}

impl RuleSpec {
    /// The source of its alerts in the store.
    pub fn source(&self) -> String {
        format!("{RULE_SOURCE_PREFIX}{}", self.name)
    }
}

/// Which named subjects a rule covers: the names listed, or every one when none is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subjects(pub Vec<String>);

impl Subjects {
    /// Whether the rule covers `name`.
    pub fn covers(&self, name: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|n| n == name)
    }
}

/// A latency percentile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Percentile {
    /// The median.
    P50,
    /// The 95th.
    P95,
    /// The 99th.
    P99,
}

impl Percentile {
    /// Reads 50, 95 or 99.
    pub fn of(number: i64) -> Option<Self> {
        match number {
            50 => Some(Self::P50),
            95 => Some(Self::P95),
            99 => Some(Self::P99),
            _ => None,
        }
    }

    /// `p50`, `p95` or `p99`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::P50 => "p50",
            Self::P95 => "p95",
            Self::P99 => "p99",
        }
    }
}

/// What a rule watches for (`when = "…"`).
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `check_down` / `check_degraded`: a check in that state for at least `for_ms`.
    CheckState {
        /// The checks covered.
        checks: Subjects,
        /// Down or degraded (a down check also counts as degraded).
        state: CheckState,
        /// How long the state must have held.
        for_ms: u64,
    },
    /// `check_latency`: a latency percentile over a window above a threshold.
    CheckLatency {
        /// The checks covered.
        checks: Subjects,
        /// Which percentile.
        percentile: Percentile,
        /// Over how long.
        window_ms: u64,
        /// The threshold.
        above_ms: u64,
    },
    /// `check_failure_ratio`: failed probes over all probes in a window above a ratio.
    CheckFailureRatio {
        /// The checks covered.
        checks: Subjects,
        /// Over how long.
        window_ms: u64,
        /// The threshold, between 0 and 1.
        above: f64,
    },
    /// `cert_expiry`: the certificate a check last saw has fewer days left than this.
    CertExpiry {
        /// The checks covered.
        checks: Subjects,
        /// The threshold in whole days.
        days_left_below: i64,
    },
    /// `schedule_failed`: a schedule's latest run missed its slot, its task failed for good,
    /// or the dead-man's switch flagged it.
    ScheduleFailed {
        /// The schedules covered.
        schedules: Subjects,
    },
    /// `pipeline_failed`: a pipeline's latest run failed (resolved by a later run that does
    /// not).
    PipelineFailed {
        /// The pipelines covered.
        pipelines: Subjects,
    },
    /// `heartbeat_missed`: a heartbeat is late or its last ping reported a failure.
    HeartbeatMissed {
        /// The heartbeats covered.
        heartbeats: Subjects,
    },
    /// `task_dead`: a queue holds more dead tasks than this.
    TaskDead {
        /// The queues covered.
        queues: Subjects,
        /// The threshold (default 0: any dead task).
        above: u64,
    },
    /// `queue_depth`: more tasks waiting to run than this.
    QueueDepth {
        /// The queues covered.
        queues: Subjects,
        /// The threshold.
        above: u64,
    },
    /// `queue_age`: the oldest task due to run has waited longer than this.
    QueueAge {
        /// The queues covered.
        queues: Subjects,
        /// The threshold.
        above_ms: u64,
    },
    /// `node_down`: a node has been `down` (silent past `[fleet] down_after` intervals) for
    /// at least `for_ms`.
    NodeDown {
        /// The nodes covered.
        nodes: Subjects,
        /// How long it must have been down.
        for_ms: u64,
    },
    /// `node_late`: a node missed its heartbeat (it is `late` or `down`).
    NodeLate {
        /// The nodes covered.
        nodes: Subjects,
    },
    /// `node_drift`: a service declared on a node is reported by it neither as a container
    /// nor as a domain.
    NodeDrift {
        /// The nodes covered.
        nodes: Subjects,
    },
}

impl Condition {
    /// The `when` value naming it.
    pub fn when(&self) -> &'static str {
        match self {
            Self::CheckState {
                state: CheckState::Down,
                ..
            } => "check_down",
            Self::CheckState { .. } => "check_degraded",
            Self::CheckLatency { .. } => "check_latency",
            Self::CheckFailureRatio { .. } => "check_failure_ratio",
            Self::CertExpiry { .. } => "cert_expiry",
            Self::ScheduleFailed { .. } => "schedule_failed",
            Self::PipelineFailed { .. } => "pipeline_failed",
            Self::HeartbeatMissed { .. } => "heartbeat_missed",
            Self::TaskDead { .. } => "task_dead",
            Self::QueueDepth { .. } => "queue_depth",
            Self::QueueAge { .. } => "queue_age",
            Self::NodeDown { .. } => "node_down",
            Self::NodeLate { .. } => "node_late",
            Self::NodeDrift { .. } => "node_drift",
        }
    }
}

/// Every `when` a rule may name.
pub const WHENS: [&str; 14] = [
    "check_down",
    "check_degraded",
    "check_latency",
    "check_failure_ratio",
    "cert_expiry",
    "schedule_failed",
    "pipeline_failed",
    "heartbeat_missed",
    "task_dead",
    "queue_depth",
    "queue_age",
    "node_down",
    "node_late",
    "node_drift",
];

/// A subject that meets a rule's condition: its labels, since when, and what was seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Labels naming the subject (`check` and `service`, `schedule`, `queue`, …).
    pub labels: Labels,
    /// When the condition started to hold, if known.
    pub since_ms: Option<i64>,
    /// One line saying what was seen.
    pub summary: String,
    /// The value measured, as shown.
    pub value: String,
}

impl RuleSpec {
    /// The firing alert `finding` raises.
    pub fn alert(&self, finding: Finding) -> IncomingAlert {
        let mut labels = finding.labels;
        for (name, value) in &self.labels {
            labels.entry(name.clone()).or_insert_with(|| value.clone());
        }
        labels.insert("alertname".into(), self.name.clone());
        labels.insert("severity".into(), self.severity.as_str().to_owned());
        let mut annotations: BTreeMap<String, String> = BTreeMap::new();
        annotations.insert("summary".into(), finding.summary);
        annotations.insert("value".into(), finding.value);
        for (name, value) in &self.annotations {
            annotations.insert(name.clone(), value.clone());
        }
        IncomingAlert {
            labels,
            annotations,
            severity: self.severity,
            starts_at_ms: finding.since_ms,
            ends_at_ms: None,
            generator_url: None,
        }
    }
}

/// Whether a check in `state` since `since_ms` meets a `check_down`/`check_degraded` rule
/// wanting `wanted` for `for_ms`, at `now_ms`.
pub fn check_state_holds(
    state: CheckState,
    since_ms: i64,
    wanted: CheckState,
    for_ms: u64,
    now_ms: i64,
) -> bool {
    let meets = match wanted {
        CheckState::Degraded => matches!(state, CheckState::Degraded | CheckState::Down),
        other => state == other,
    };
    meets && now_ms.saturating_sub(since_ms) >= i64::try_from(for_ms).unwrap_or(i64::MAX)
}

/// Whether a heartbeat in `state` counts as missed.
pub fn heartbeat_missed(state: HeartbeatState) -> bool {
    matches!(state, HeartbeatState::Late | HeartbeatState::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_states_must_hold_long_enough_and_down_counts_as_degraded() {
        let minute: u64 = 60_000;
        let at = 60_000_i64;
        assert!(!check_state_holds(
            CheckState::Down,
            0,
            CheckState::Down,
            minute,
            at - 1
        ));
        assert!(check_state_holds(
            CheckState::Down,
            0,
            CheckState::Down,
            minute,
            at
        ));
        assert!(check_state_holds(
            CheckState::Down,
            0,
            CheckState::Degraded,
            0,
            0
        ));
        assert!(!check_state_holds(
            CheckState::Degraded,
            0,
            CheckState::Down,
            0,
            0
        ));
        assert!(!check_state_holds(
            CheckState::Up,
            0,
            CheckState::Degraded,
            0,
            0
        ));
    }

    #[test]
    fn a_finding_becomes_an_alert_named_after_the_rule() {
        let rule = RuleSpec {
            name: "ApiDown".into(),
            severity: Severity::Critical,
            labels: Labels::from([
                ("team".into(), "platform".into()),
                ("check".into(), "ignored".into()),
            ]),
            annotations: Labels::from([("runbook_url".into(), "https://r".into())]),
            condition: Condition::CheckState {
                checks: Subjects::default(),
                state: CheckState::Down,
                for_ms: 0,
            },
        };
        let alert = rule.alert(Finding {
            labels: Labels::from([("check".into(), "api-http".into())]),
            since_ms: Some(5),
            summary: "api-http is down".into(),
            value: "down".into(),
        });
        assert_eq!(alert.labels["alertname"], "ApiDown");
        assert_eq!(alert.labels["severity"], "critical");
        assert_eq!(alert.labels["team"], "platform");
        assert_eq!(
            alert.labels["check"], "api-http",
            "the subject's labels win"
        );
        assert_eq!(alert.annotations["summary"], "api-http is down");
        assert_eq!(alert.annotations["runbook_url"], "https://r");
        assert_eq!(alert.starts_at_ms, Some(5));
        assert_eq!(rule.source(), "rule:ApiDown");
        assert_eq!(rule.condition.when(), "check_down");
        assert!(Subjects::default().covers("x"));
        assert!(!Subjects(vec!["a".into()]).covers("x"));
    }
}
