//! `[[alerting.rules]]`: built-in alert rules over checks, certificates, schedules, heartbeats,
//! queues and nodes (see [`steward_core::alert::rules`]). Each `when` takes its own keys; a key of
//! another `when` is an error that names the ones that do apply, and every name a rule lists
//! (checks, schedules, heartbeats, queues) must be declared.

use std::collections::BTreeSet;

use steward_core::alert::rules::{Condition, Percentile, RuleSpec, Subjects, WHENS};
use steward_core::alert::{Severity, is_label_name};
use steward_core::health::state::CheckState;
use steward_core::registry::Labels;

use crate::readers::{TypedKeys, literal};
use crate::walk::{Cx, Fields, did_you_mean};

/// The keys every rule may have.
const COMMON_KEYS: &[&str] = &["name", "when", "severity", "labels", "annotations"];
/// Each `when`'s own keys.
const OWN_KEYS: &[(&str, &[&str])] = &[
    ("check_down", &["checks", "for"]),
    ("check_degraded", &["checks", "for"]),
    (
        "check_latency",
        &["checks", "percentile", "window", "latency_above"],
    ),
    ("check_failure_ratio", &["checks", "window", "ratio_above"]),
    ("cert_expiry", &["checks", "days_left_below"]),
    ("schedule_failed", &["schedules"]),
    ("pipeline_failed", &["pipelines"]),
    ("heartbeat_missed", &["heartbeats"]),
    ("task_dead", &["queues", "dead_above"]),
    ("queue_depth", &["queues", "depth_above"]),
    ("queue_age", &["queues", "age_above"]),
    ("node_down", &["nodes", "for"]),
    ("node_late", &["nodes"]),
    ("node_drift", &["nodes"]),
];
/// The keys of the other `when`s that `own` does not take, each once, in declared order.
fn other_whens_keys(own: &[&str]) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    for key in OWN_KEYS.iter().flat_map(|(_, keys)| keys.iter().copied()) {
        if !own.contains(&key) && !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// The shortest window over which latency or failures are judged.
const MIN_WINDOW_MS: u64 = 60_000;
/// The longest (check roll-ups are kept 30 days by default; a day is plenty for an alert).
const MAX_WINDOW_MS: u64 = 24 * 3_600_000;

/// What rules may name.
pub(crate) struct Declared<'a> {
    /// Check names.
    pub checks: Vec<&'a str>,
    /// Schedule names.
    pub schedules: Vec<&'a str>,
    /// Heartbeat names.
    pub heartbeats: Vec<&'a str>,
    /// Queue names.
    pub queues: Vec<&'a str>,
    /// Pipeline names.
    pub pipelines: Vec<&'a str>,
}

/// Every key a rule may have, for the unknown-key check (each `when`'s own are checked after).
const KEYS: TypedKeys<&str> = TypedKeys {
    common: COMMON_KEYS,
    types: OWN_KEYS,
};

/// Reads `[[alerting.rules]]`.
pub(crate) fn read_rules(
    cx: &mut Cx<'_>,
    alerting: &Fields<'_>,
    declared: &Declared<'_>,
) -> Vec<RuleSpec> {
    let keys = KEYS.all();
    let mut rules = Vec::new();
    let mut names = BTreeSet::new();
    for (i, (table, span)) in alerting.tables(cx, "rules").into_iter().enumerate() {
        let path = format!("{}[{i}]", alerting.field("rules"));
        let t = Fields::open(cx, table, path, span, &keys);
        let name = t
            .required_string(cx, "name")
            .and_then(|v| literal(cx, &t, "name", v))
            .and_then(|name| {
                if !is_label_name(&name.value) {
                    cx.error(
                        &name.span,
                        format!(
                            "`{}`: `{}` is not a valid alertname (letters, digits and `_`, not starting with a digit)",
                            t.field("name"),
                            name.value
                        ),
                    );
                    return None;
                }
                if !names.insert(name.value.clone()) {
                    cx.error(
                        &name.span,
                        format!(
                            "`{}`: a rule named `{}` is declared already",
                            t.field("name"),
                            name.value
                        ),
                    );
                    return None;
                }
                Some(name.value)
            });
        let severity = read_severity(cx, &t);
        let labels = alert_labels(cx, &t, "labels");
        let annotations = t.labels(cx, "annotations");
        let condition = read_condition(cx, &t, declared);
        if let (Some(name), Some(severity), Some(labels), Some(condition)) =
            (name, severity, labels, condition)
        {
            rules.push(RuleSpec {
                name,
                severity,
                labels,
                annotations,
                condition,
            });
        }
    }
    rules
}

/// `severity`: critical, warning (the default) or info.
fn read_severity(cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<Severity> {
    const CHOICES: [(&str, Severity); 3] = [
        ("critical", Severity::Critical),
        ("warning", Severity::Warning),
        ("info", Severity::Info),
    ];
    if t.item("severity").is_none() {
        return Some(Severity::Warning);
    }
    t.choice(cx, "severity", &CHOICES).map(|s| s.value)
}

/// Labels whose names are Prometheus label names (alerts' labels are).
fn alert_labels(cx: &mut Cx<'_>, t: &Fields<'_>, key: &str) -> Option<Labels> {
    let labels = t.labels(cx, key);
    let mut ok = true;
    for name in labels.keys() {
        if !is_label_name(name) || name == "alertname" || name == "severity" {
            cx.error(
                &t.key_span(key).unwrap_or_else(|| t.span.clone()),
                format!(
                    "`{}`: `{name}` cannot be an alert label (letters, digits and `_`; `alertname` and `severity` are the rule's own)",
                    t.field(key)
                ),
            );
            ok = false;
        }
    }
    ok.then_some(labels)
}

/// `when` and its own keys.
fn read_condition(cx: &mut Cx<'_>, t: &Fields<'_>, declared: &Declared<'_>) -> Option<Condition> {
    let when = t
        .required_string(cx, "when")
        .and_then(|v| literal(cx, t, "when", v))?;
    let Some((when_name, own)) = OWN_KEYS.iter().find(|(w, _)| *w == when.value) else {
        let hint = did_you_mean(&when.value, &WHENS).unwrap_or_default();
        cx.error(
            &when.span,
            format!(
                "`{}`: `{}` is not one of: {}{hint}",
                t.field("when"),
                when.value,
                WHENS.join(", ")
            ),
        );
        return None;
    };
    // Keys that belong to another `when`, each reported once however many `when`s take it.
    let mut foreign = false;
    for key in other_whens_keys(own) {
        if let Some(span) = t.key_span(key) {
            cx.error(
                &span,
                format!(
                    "`{}`: does not apply to `when = \"{when_name}\"` (its keys: {})",
                    t.field(key),
                    own.join(", ")
                ),
            );
            foreign = true;
        }
    }
    let condition = match *when_name {
        "check_down" | "check_degraded" => {
            let state = if *when_name == "check_down" {
                CheckState::Down
            } else {
                CheckState::Degraded
            };
            let checks = subjects(cx, t, "checks", "check", &declared.checks)?;
            let for_ms = match t.item("for") {
                None => 0,
                Some(_) => t.duration_at_least(cx, "for", 0)?.value,
            };
            Condition::CheckState {
                checks,
                state,
                for_ms,
            }
        }
        "check_latency" => {
            let checks = subjects(cx, t, "checks", "check", &declared.checks);
            let percentile = match t.integer(cx, "percentile", 1..=100) {
                None if t.item("percentile").is_none() => Some(Percentile::P95),
                None => None,
                Some(n) => Percentile::of(n.value).or_else(|| {
                    cx.error(
                        &n.span,
                        format!("`{}`: 50, 95 or 99", t.field("percentile")),
                    );
                    None
                }),
            };
            let window_ms = window(cx, t);
            let above_ms = t
                .required_item(cx, "latency_above", "e.g. \"1s\"")
                .and_then(|_| t.duration_at_least(cx, "latency_above", 1));
            Condition::CheckLatency {
                checks: checks?,
                percentile: percentile?,
                window_ms: window_ms?,
                above_ms: above_ms?.value,
            }
        }
        "check_failure_ratio" => {
            let checks = subjects(cx, t, "checks", "check", &declared.checks);
            let window_ms = window(cx, t);
            let above = t
                .required_item(cx, "ratio_above", "e.g. 0.01")
                .and_then(|_| ratio(cx, t));
            Condition::CheckFailureRatio {
                checks: checks?,
                window_ms: window_ms?,
                above: above?,
            }
        }
        "cert_expiry" => {
            let checks = subjects(cx, t, "checks", "check", &declared.checks);
            let days = t
                .required_item(cx, "days_left_below", "e.g. 14")
                .and_then(|_| t.integer(cx, "days_left_below", 1..=3_650));
            Condition::CertExpiry {
                checks: checks?,
                days_left_below: days?.value,
            }
        }
        "schedule_failed" => Condition::ScheduleFailed {
            schedules: subjects(cx, t, "schedules", "schedule", &declared.schedules)?,
        },
        "pipeline_failed" => Condition::PipelineFailed {
            pipelines: subjects(cx, t, "pipelines", "pipeline", &declared.pipelines)?,
        },
        "heartbeat_missed" => Condition::HeartbeatMissed {
            heartbeats: subjects(cx, t, "heartbeats", "heartbeat", &declared.heartbeats)?,
        },
        "task_dead" => {
            let queues = subjects(cx, t, "queues", "queue", &declared.queues);
            let above = match t.item("dead_above") {
                None => Some(0),
                Some(_) => t
                    .integer(cx, "dead_above", 0..=i64::from(u32::MAX))
                    .map(|n| n.value.unsigned_abs()),
            };
            Condition::TaskDead {
                queues: queues?,
                above: above?,
            }
        }
        "queue_depth" => {
            let queues = subjects(cx, t, "queues", "queue", &declared.queues);
            let above = t
                .required_item(cx, "depth_above", "e.g. 1000")
                .and_then(|_| t.integer(cx, "depth_above", 0..=i64::from(u32::MAX)));
            Condition::QueueDepth {
                queues: queues?,
                above: above?.value.unsigned_abs(),
            }
        }
        "queue_age" => {
            let queues = subjects(cx, t, "queues", "queue", &declared.queues);
            let above = t
                .required_item(cx, "age_above", "e.g. \"10m\"")
                .and_then(|_| t.duration_at_least(cx, "age_above", 1_000));
            Condition::QueueAge {
                queues: queues?,
                above_ms: above?.value,
            }
        }
        "node_down" => {
            let nodes = node_subjects(cx, t)?;
            let for_ms = match t.item("for") {
                None => 0,
                Some(_) => t.duration_at_least(cx, "for", 0)?.value,
            };
            Condition::NodeDown { nodes, for_ms }
        }
        "node_late" => Condition::NodeLate {
            nodes: node_subjects(cx, t)?,
        },
        "node_drift" => Condition::NodeDrift {
            nodes: node_subjects(cx, t)?,
        },
        _ => return None,
    };
    (!foreign).then_some(condition)
}

/// `window`: 5 minutes unless given, between a minute and a day.
fn window(cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<u64> {
    if t.item("window").is_none() {
        return Some(5 * 60_000);
    }
    let w = t.duration_at_least(cx, "window", MIN_WINDOW_MS)?;
    if w.value > MAX_WINDOW_MS {
        cx.error(&w.span, format!("`{}`: at most 1d", t.field("window")));
        return None;
    }
    Some(w.value)
}

/// `ratio_above`: a number between 0 and 1.
fn ratio(cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<f64> {
    let item = t.item("ratio_above")?;
    #[allow(clippy::cast_precision_loss)]
    let value = item
        .as_float()
        .or_else(|| item.as_integer().map(|n| n as f64));
    match value {
        Some(v) if (0.0..1.0).contains(&v) => Some(v),
        Some(v) => {
            cx.error(
                &item.span(),
                format!(
                    "`{}`: {v} is not a ratio from 0 up to (not including) 1, e.g. 0.01 for 1 %",
                    t.field("ratio_above")
                ),
            );
            None
        }
        None => {
            cx.error(
                &item.span(),
                format!(
                    "`{}`: expected a number, found {}",
                    t.field("ratio_above"),
                    item.type_name()
                ),
            );
            None
        }
    }
}

/// A list of declared names (`what`s), none meaning all.
fn subjects(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    key: &str,
    what: &str,
    known: &[&str],
) -> Option<Subjects> {
    let Some(names) = t.strings(cx, key) else {
        return t.item(key).is_none().then(Subjects::default);
    };
    let mut ok = true;
    for name in &names {
        if !known.contains(&name.value.as_str()) {
            let hint = did_you_mean(&name.value, known).unwrap_or_default();
            cx.error(
                &name.span,
                format!("`{}`: unknown {what} `{}`{hint}", t.field(key), name.value),
            );
            ok = false;
        }
    }
    ok.then(|| Subjects(names.into_iter().map(|n| n.value).collect()))
}

/// `nodes`: node ids, which need not be declared (nodes are also added at run time), but must
/// be ids.
fn node_subjects(cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<Subjects> {
    let Some(names) = t.strings(cx, "nodes") else {
        return t.item("nodes").is_none().then(Subjects::default);
    };
    let mut ok = true;
    for name in &names {
        if let Err(e) = steward_core::node::check_node_id(&name.value) {
            cx.error(&name.span, format!("`{}`: {e}", t.field("nodes")));
            ok = false;
        }
    }
    ok.then(|| Subjects(names.into_iter().map(|n| n.value).collect()))
}

#[cfg(test)]
mod tests;
