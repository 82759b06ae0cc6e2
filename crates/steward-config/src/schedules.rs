//! `[[schedules]]` (tasks enqueued on a timetable), `[[heartbeats]]` (pings that external jobs
//! must send) and `[scheduler]` (how instances share the firing of schedules).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Number, Value as Json};
use steward_core::queue::QueueSpec;
use steward_core::schedule::timing::parse_instant;
use steward_core::schedule::{
    CronExpr, HeartbeatSpec, MissedPolicy, OverlapPolicy, RETENTION_SCHEDULE, ScheduleSpec,
    TaskTemplate, Timing, Zone,
};
use steward_core::task::{MAX_ATTEMPTS, MAX_PRIORITY};
use toml_edit::{Item, TableLike, Value};

use crate::schema::{
    Workspaces, first_declaration, literal, name_field, unreserved, workspace_ref,
};
use crate::walk::{Cx, Fields, Span, Spanned, shown_ms, suggestion};

const SCHEDULE_KEYS: &[&str] = &[
    "name",
    "workspace",
    "description",
    "owner",
    "cron",
    "every",
    "at",
    "timezone",
    "queue",
    "kind",
    "payload",
    "priority",
    "max_attempts",
    "overlap",
    "missed",
    "missed_limit",
    "jitter",
    "enabled",
    "expect_success_within",
];
const HEARTBEAT_KEYS: &[&str] = &["name", "workspace", "description", "period", "grace"];
const SCHEDULER_KEYS: &[&str] = &["lease", "grace"];
/// The keys that say when a schedule fires; a schedule gives exactly one.
const TIMING_KEYS: [&str; 3] = ["cron", "every", "at"];
const OVERLAP_CHOICES: [(&str, OverlapPolicy); 3] = [
    ("allow", OverlapPolicy::Allow),
    ("forbid", OverlapPolicy::Forbid),
    ("replace", OverlapPolicy::Replace),
];
const MISSED_CHOICES: [(&str, MissedPolicy); 3] = [
    ("skip", MissedPolicy::Skip),
    ("once", MissedPolicy::Once),
    (
        "all",
        MissedPolicy::All {
            limit: MissedPolicy::DEFAULT_ALL_LIMIT,
        },
    ),
];
/// The most missed slots `missed = "all"` may fire after one outage.
const MAX_MISSED_LIMIT: i64 = 10_000;
/// The shortest `every` interval, heartbeat period and heartbeat grace.
const MIN_PERIOD_MS: u64 = 1_000;

/// `[scheduler]`: how the instances sharing a database elect the one that fires schedules, and
/// when a slot counts as missed. What the file leaves out takes the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerSettings {
    /// `scheduler.lease`: how long the leader's lease lasts without renewal; once it has
    /// expired, another instance takes over.
    pub lease_ms: u64,
    /// `scheduler.grace`: a slot older than this by the time it can be fired counts as missed,
    /// and follows its schedule's `missed` policy.
    pub grace_ms: u64,
}

impl SchedulerSettings {
    /// The lease when `scheduler.lease` is not given: ten seconds.
    pub const DEFAULT_LEASE_MS: u64 = 10_000;
    /// The shortest lease accepted: two seconds.
    pub const MIN_LEASE_MS: u64 = 2_000;
    /// The longest lease accepted: five minutes.
    pub const MAX_LEASE_MS: u64 = 300_000;
    /// The grace when `scheduler.grace` is not given: five seconds.
    pub const DEFAULT_GRACE_MS: u64 = 5_000;
    /// The shortest grace accepted: one second.
    pub const MIN_GRACE_MS: u64 = 1_000;
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            lease_ms: Self::DEFAULT_LEASE_MS,
            grace_ms: Self::DEFAULT_GRACE_MS,
        }
    }
}

/// A heartbeat's grace when it gives none: a fifth of its period, but at least one second.
pub(crate) fn default_heartbeat_grace_ms(period_ms: u64) -> u64 {
    (period_ms / 5).max(MIN_PERIOD_MS)
}

/// Reads `[scheduler]`.
pub(crate) fn read_scheduler(cx: &mut Cx<'_>, root: &Fields<'_>) -> SchedulerSettings {
    let mut settings = SchedulerSettings::default();
    let Some(t) = root
        .item("scheduler")
        .and_then(|item| Fields::open_item(cx, item, "scheduler", SCHEDULER_KEYS))
    else {
        return settings;
    };
    if let Some(lease) = t.duration_ms(cx, "lease") {
        let range = SchedulerSettings::MIN_LEASE_MS..=SchedulerSettings::MAX_LEASE_MS;
        if range.contains(&lease.value) {
            settings.lease_ms = lease.value;
        } else {
            cx.error(
                &lease.span,
                format!(
                    "`{}`: {} is out of range ({} to {})",
                    t.field("lease"),
                    shown_ms(lease.value),
                    shown_ms(*range.start()),
                    shown_ms(*range.end())
                ),
            );
        }
    }
    if let Some(grace) = t
        .duration_at_least(cx, "grace", SchedulerSettings::MIN_GRACE_MS)
        .map(|d| d.value)
    {
        settings.grace_ms = grace;
    }
    settings
}

/// Reads `[[schedules]]`. `queues` are the declared queues; `partial_kinds` names those some of
/// whose kinds were refused (their own problem has been reported).
pub(crate) fn read_schedules(
    cx: &mut Cx<'_>,
    root: &Fields<'_>,
    workspaces: &Workspaces,
    queues: &[QueueSpec],
    partial_kinds: &HashSet<String>,
) -> Vec<ScheduleSpec> {
    let mut seen: HashMap<String, Span> = HashMap::new();
    let mut schedules = Vec::new();
    for (i, (table, span)) in root.tables(cx, "schedules").into_iter().enumerate() {
        let t = Fields::open(cx, table, format!("schedules[{i}]"), span, SCHEDULE_KEYS);
        let name = name_field(cx, &t, "name");
        let name = unreserved(cx, &t, name, RETENTION_SCHEDULE, "schedule");
        let workspace = t
            .string(cx, "workspace")
            .and_then(|v| workspace_ref(cx, &t, "workspace", v, workspaces));
        let description = t.string(cx, "description").map(Spanned::kept);
        let owner = t.string(cx, "owner").map(Spanned::kept);
        let timing = read_timing(cx, &t);
        let zone = read_zone(cx, &t);
        let task = read_task(cx, &t, queues, partial_kinds);
        let overlap = t
            .choice(cx, "overlap", &OVERLAP_CHOICES)
            .map_or_else(OverlapPolicy::default, |o| o.value);
        let missed = read_missed(cx, &t);
        let jitter_ms = read_jitter(cx, &t, timing.as_ref());
        let enabled = t.boolean(cx, "enabled").unwrap_or(true);
        let expect_success_within_ms = t.duration_ms(cx, "expect_success_within").map(|d| d.value);
        let Some(name) = name else { continue };
        let name_value = name.value.clone();
        if !first_declaration(cx, &mut seen, &t, "schedule", name) {
            continue;
        }
        // A refused field has been reported, and the config is rejected.
        let (Some(timing), Some(zone), Some(task)) = (timing, zone, task) else {
            continue;
        };
        schedules.push(ScheduleSpec {
            name: name_value,
            workspace,
            description,
            owner,
            timing,
            zone,
            task,
            overlap,
            missed,
            jitter_ms,
            enabled,
            expect_success_within_ms,
        });
    }
    schedules
}

/// Exactly one of `cron`, `every` and `at`. Each one written is read, so that each reports its
/// own problems.
fn read_timing(cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<Timing> {
    let written: Vec<&str> = TIMING_KEYS
        .into_iter()
        .filter(|key| t.item(key).is_some())
        .collect();
    let cron = read_cron(cx, t);
    let every = t
        .duration_at_least(cx, "every", MIN_PERIOD_MS)
        .map(|d| Timing::Every {
            interval_ms: d.value,
        });
    let at = read_at(cx, t);
    match written.as_slice() {
        [] => {
            cx.error(
                &t.span,
                format!(
                    "`{}`: says nothing about when it fires: give one of `cron` (e.g. \"0 8 * * *\"), `every` (e.g. \"30s\") or `at` (e.g. \"2026-12-24T18:00:00+01:00\")",
                    t.path()
                ),
            );
            None
        }
        [_] => cron.or(every).or(at),
        [_, rest @ ..] => {
            let quoted: Vec<String> = written.iter().map(|k| format!("`{k}`")).collect();
            let given = match quoted.split_last() {
                Some((last, [])) => last.clone(),
                Some((last, init)) => format!("{} and {last}", init.join(", ")),
                None => String::new(),
            };
            for key in rest {
                cx.error(
                    &t.key_span(key).flatten(),
                    format!(
                        "`{}`: a schedule takes exactly one of `cron`, `every` or `at`, and this one gives {given}; keep one",
                        t.field(key)
                    ),
                );
            }
            None
        }
    }
}

pub(crate) fn read_cron(cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<Timing> {
    let raw = t.literal_string(cx, "cron")?;
    match CronExpr::parse(&raw.value) {
        Ok(cron) => Some(Timing::Cron(cron)),
        Err(e) => {
            // The error quotes the expression and names the field at fault.
            cx.error(&raw.span, format!("`{}`: {e}", t.field("cron")));
            None
        }
    }
}

/// `at`: an RFC 3339 time with an offset, as a string or a TOML offset date-time.
fn read_at(cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<Timing> {
    let item = t.item("at")?;
    let (raw, span) = match item.as_datetime() {
        Some(datetime) => (datetime.to_string(), item.span()),
        None => {
            let raw = t.literal_string(cx, "at")?;
            (raw.value, raw.span)
        }
    };
    match parse_instant(&raw) {
        Ok(at_ms) => Some(Timing::Once { at_ms }),
        Err(why) => {
            // The reason quotes the text and gives an example.
            cx.error(&span, format!("`{}`: {why}", t.field("at")));
            None
        }
    }
}

/// `timezone`: an IANA zone name, UTC when not given; `None` when refused.
pub(crate) fn read_zone(cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<Zone> {
    if t.item("timezone").is_none() {
        return Some(Zone::utc());
    }
    let raw = t.literal_string(cx, "timezone")?;
    match Zone::parse(&raw.value) {
        Ok(zone) => Some(zone),
        Err(e) => {
            cx.error(&raw.span, format!("`{}`: {e}", t.field("timezone")));
            None
        }
    }
}

/// The task each fire enqueues: a declared queue, a kind it allows, and the task's fields.
fn read_task(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    queues: &[QueueSpec],
    partial_kinds: &HashSet<String>,
) -> Option<TaskTemplate> {
    let queue = t
        .required_string(cx, "queue")
        .and_then(|v| literal(cx, t, "queue", v))
        .and_then(|v| queue_ref(cx, t, v, queues));
    let kind = t
        .required_string(cx, "kind")
        .and_then(|v| literal(cx, t, "kind", v));
    let kind = match (queue, kind) {
        (Some(queue), Some(kind)) => kind_ref(cx, t, kind, queue, partial_kinds),
        _ => None,
    };
    let payload = read_payload(cx, t, queue);
    let priority = match t.integer(
        cx,
        "priority",
        -i64::from(MAX_PRIORITY)..=i64::from(MAX_PRIORITY),
    ) {
        Some(p) => i32::try_from(p.value).ok(),
        None if t.item("priority").is_some() => None,
        None => Some(0),
    };
    let max_attempts = t
        .positive_integer(cx, "max_attempts", MAX_ATTEMPTS.into())
        .map(|n| n.value);
    if max_attempts.is_none() && t.item("max_attempts").is_some() {
        return None;
    }
    Some(TaskTemplate {
        queue: queue?.name.clone(),
        kind: kind?,
        payload: payload?,
        priority: priority?,
        max_attempts,
    })
}

/// Checks that `queue` names a declared queue, suggesting the closest one if it does not.
pub(crate) fn queue_ref<'q>(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    name: Spanned<String>,
    queues: &'q [QueueSpec],
) -> Option<&'q QueueSpec> {
    if let Some(queue) = queues.iter().find(|q| q.name == name.value) {
        return Some(queue);
    }
    let known: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
    let hint = if known.is_empty() {
        "; no `[[queues]]` are declared".to_owned()
    } else {
        suggestion(&name.value, &known)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_else(|| format!("; declared queues: {}", known.join(", ")))
    };
    cx.error(
        &name.span,
        format!(
            "`{}`: unknown queue `{}` (not declared in `[[queues]]`){hint}",
            t.field("queue"),
            name.value
        ),
    );
    None
}

/// Checks that `queue` runs tasks of `kind` (the check every enqueue passes).
pub(crate) fn kind_ref(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    kind: Spanned<String>,
    queue: &QueueSpec,
    partial_kinds: &HashSet<String>,
) -> Option<String> {
    if queue.allows(&kind.value) {
        return Some(kind.value);
    }
    // When some of the queue's kinds were refused, which ones it meant to list is not known.
    if !partial_kinds.contains(&queue.name) {
        let known: Vec<&str> = queue.kinds.iter().map(String::as_str).collect();
        let hint = suggestion(&kind.value, &known)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        cx.error(
            &kind.span,
            format!(
                "`{}`: queue `{}` does not run `{}` tasks (allowed: {}){hint}",
                t.field("kind"),
                queue.name,
                kind.value,
                known.join(", ")
            ),
        );
    }
    None
}

/// `payload`: any TOML value as JSON (`{}` when not given), no larger than the queue accepts.
pub(crate) fn read_payload(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    queue: Option<&QueueSpec>,
) -> Option<Json> {
    let Some(item) = t.item("payload") else {
        return Some(Json::Object(Map::new()));
    };
    let mut ok = true;
    let payload = item_to_json(cx, &t.field("payload"), item, &mut ok);
    if !ok {
        return None;
    }
    if let Some(queue) = queue {
        let size = payload.to_string().len();
        if size > queue.max_payload_bytes {
            let span = item.span().or_else(|| t.key_span("payload").flatten());
            cx.error(
                &span,
                format!(
                    "`{}`: {size} bytes of JSON; queue `{}` accepts at most {} (its `max_payload_bytes`)",
                    t.field("payload"),
                    queue.name,
                    queue.max_payload_bytes
                ),
            );
            return None;
        }
    }
    Some(payload)
}

/// A TOML item as JSON; problems are reported and clear `ok`.
fn item_to_json(cx: &mut Cx<'_>, path: &str, item: &Item, ok: &mut bool) -> Json {
    match item {
        Item::None => Json::Null,
        Item::Value(value) => value_to_json(cx, path, value, ok),
        Item::Table(table) => table_to_json(cx, path, table, ok),
        Item::ArrayOfTables(array) => Json::Array(
            array
                .iter()
                .enumerate()
                .map(|(i, table)| table_to_json(cx, &format!("{path}[{i}]"), table, ok))
                .collect(),
        ),
    }
}

fn table_to_json(cx: &mut Cx<'_>, path: &str, table: &dyn TableLike, ok: &mut bool) -> Json {
    let mut map = Map::new();
    for (key, item) in table.iter() {
        if item.is_none() {
            continue;
        }
        if key.contains('\0') {
            cx.error(
                &table.key(key).and_then(|k| k.span()),
                format!("`{path}`: a key must not contain a NUL character"),
            );
            *ok = false;
            continue;
        }
        let value = item_to_json(cx, &format!("{path}.{key}"), item, ok);
        map.insert(key.to_owned(), value);
    }
    Json::Object(map)
}

fn value_to_json(cx: &mut Cx<'_>, path: &str, value: &Value, ok: &mut bool) -> Json {
    match value {
        Value::String(s) => {
            if s.value().contains('\0') {
                // PostgreSQL's JSONB cannot hold it.
                cx.error(
                    &value.span(),
                    format!("`{path}`: must not contain a NUL character"),
                );
                *ok = false;
            }
            Json::String(s.value().clone())
        }
        Value::Integer(n) => Json::from(*n.value()),
        Value::Float(f) => match Number::from_f64(*f.value()) {
            Some(n) => Json::Number(n),
            None => {
                cx.error(
                    &value.span(),
                    format!("`{path}`: `{}` has no JSON form", f.value()),
                );
                *ok = false;
                Json::Null
            }
        },
        Value::Boolean(b) => Json::Bool(*b.value()),
        // RFC 3339 text (or its date or time part, for local dates and times).
        Value::Datetime(d) => Json::String(d.value().to_string()),
        Value::Array(array) => Json::Array(
            array
                .iter()
                .enumerate()
                .map(|(i, v)| value_to_json(cx, &format!("{path}[{i}]"), v, ok))
                .collect(),
        ),
        Value::InlineTable(table) => table_to_json(cx, path, table, ok),
    }
}

/// `missed` and `missed_limit` (which only goes with `missed = "all"`).
fn read_missed(cx: &mut Cx<'_>, t: &Fields<'_>) -> MissedPolicy {
    let written = t.choice(cx, "missed", &MISSED_CHOICES);
    let policy_ok = written.is_some() || t.item("missed").is_none();
    let policy = written.map_or_else(MissedPolicy::default, |p| p.value);
    let limit = t.positive_integer(cx, "missed_limit", MAX_MISSED_LIMIT);
    match (policy, limit) {
        (MissedPolicy::All { .. }, Some(limit)) => MissedPolicy::All { limit: limit.value },
        (other, Some(limit)) if policy_ok => {
            let default = if t.item("missed").is_none() {
                ", the default"
            } else {
                ""
            };
            cx.error(
                &t.key_span("missed_limit").flatten().or(limit.span),
                format!(
                    "`{}`: only goes with `missed = \"all\"` (this schedule's policy is `{}`{default})",
                    t.field("missed_limit"),
                    other.as_str()
                ),
            );
            policy
        }
        _ => policy,
    }
}

/// `jitter`: zero when not given; for `every`, less than the interval.
fn read_jitter(cx: &mut Cx<'_>, t: &Fields<'_>, timing: Option<&Timing>) -> u64 {
    let Some(jitter) = t.duration_ms_or_zero(cx, "jitter") else {
        return 0;
    };
    if let Some(Timing::Every { interval_ms }) = timing
        && jitter.value >= *interval_ms
    {
        cx.error(
            &jitter.span,
            format!(
                "`{}`: {} is not less than the interval (`every` is {}); each fire must start before the next slot",
                t.field("jitter"),
                shown_ms(jitter.value),
                shown_ms(*interval_ms)
            ),
        );
    }
    jitter.value
}

/// Reads `[[heartbeats]]`.
pub(crate) fn read_heartbeats(
    cx: &mut Cx<'_>,
    root: &Fields<'_>,
    workspaces: &Workspaces,
) -> Vec<HeartbeatSpec> {
    let mut seen: HashMap<String, Span> = HashMap::new();
    let mut heartbeats = Vec::new();
    for (i, (table, span)) in root.tables(cx, "heartbeats").into_iter().enumerate() {
        let t = Fields::open(cx, table, format!("heartbeats[{i}]"), span, HEARTBEAT_KEYS);
        let name = name_field(cx, &t, "name");
        let workspace = t
            .string(cx, "workspace")
            .and_then(|v| workspace_ref(cx, &t, "workspace", v, workspaces));
        let description = t.string(cx, "description").map(Spanned::kept);
        let period_ms = if t.item("period").is_none() {
            cx.error(
                &t.span,
                format!(
                    "`{}`: missing required field (how often the job pings, e.g. period = \"1h\")",
                    t.field("period")
                ),
            );
            None
        } else {
            t.duration_at_least(cx, "period", MIN_PERIOD_MS)
                .map(|d| d.value)
        };
        let grace_ms = t
            .duration_at_least(cx, "grace", MIN_PERIOD_MS)
            .map(|d| d.value);
        let Some(name) = name else { continue };
        let name_value = name.value.clone();
        if !first_declaration(cx, &mut seen, &t, "heartbeat", name) {
            continue;
        }
        let Some(period_ms) = period_ms else { continue };
        heartbeats.push(HeartbeatSpec {
            name: name_value,
            workspace,
            description,
            period_ms,
            grace_ms: grace_ms.unwrap_or_else(|| default_heartbeat_grace_ms(period_ms)),
        });
    }
    heartbeats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{LoadError, parse_str};
    use proptest::prelude::*;
    use serde_json::json;

    use crate::test_support::{assert_error, env, errors, parse};

    /// A queue (lines 1–3) and a schedule's first lines (4–7) without its timing: a case's own
    /// lines start on line 8.
    const PREFIX: &str = "[[queues]]\nname = \"jobs\"\nkinds = [\"noop\", \"sleep\"]\n[[schedules]]\nname = \"s\"\nqueue = \"jobs\"\nkind = \"noop\"\n";

    fn with(lines: &str) -> String {
        format!("{PREFIX}{lines}\n")
    }

    const FULL: &str = r#"[scheduler]
lease = "15s"
grace = "2s"

[[workspaces]]
key = "trading"

[[queues]]
name = "maintenance"
kinds = ["noop", "sleep"]
max_payload_bytes = 4096

[[schedules]]
name = "morning-report"
workspace = "trading"
description = "The daily report"
owner = "desk"
cron = "0 8 * * 1-5"
timezone = "Europe/Berlin"
queue = "maintenance"
kind = "noop"
payload = { report = "daily", depth = 2, ratio = 0.5, tags = ["a", "b"], since = 2026-01-01T00:00:00Z, nested = { ok = true } }
priority = -10
max_attempts = 3
overlap = "forbid"
missed = "all"
missed_limit = 24
jitter = "30s"
enabled = false
expect_success_within = "1h"

[[schedules]]
name = "tick"
every = "30s"
timezone = "Asia/Tokyo"
queue = "maintenance"
kind = "sleep"
jitter = "5s"

[schedules.payload]
ms = 10

[[schedules]]
name = "launch"
at = "2026-12-24T18:00:00+01:00"
queue = "maintenance"
kind = "noop"
overlap = "replace"
missed = "skip"

[[heartbeats]]
name = "nightly-backup"
workspace = "trading"
description = "pg_dump on vps-1"
period = "1d"
grace = "2h"

[[heartbeats]]
name = "poller"
period = "10m"
"#;

    fn cron(text: &str) -> Timing {
        Timing::Cron(CronExpr::parse(text).unwrap())
    }

    #[test]
    fn a_full_example_parses_into_schedules_heartbeats_and_settings() {
        let config = parse(FULL);
        assert_eq!(
            config.settings.scheduler,
            SchedulerSettings {
                lease_ms: 15_000,
                grace_ms: 2_000
            }
        );
        let report = ScheduleSpec {
            name: "morning-report".into(),
            workspace: Some("trading".into()),
            description: Some("The daily report".into()),
            owner: Some("desk".into()),
            timing: cron("0 8 * * 1-5"),
            zone: Zone::parse("Europe/Berlin").unwrap(),
            task: TaskTemplate {
                queue: "maintenance".into(),
                kind: "noop".into(),
                payload: json!({
                    "report": "daily",
                    "depth": 2,
                    "ratio": 0.5,
                    "tags": ["a", "b"],
                    "since": "2026-01-01T00:00:00Z",
                    "nested": { "ok": true },
                }),
                priority: -10,
                max_attempts: Some(3),
            },
            overlap: OverlapPolicy::Forbid,
            missed: MissedPolicy::All { limit: 24 },
            jitter_ms: 30_000,
            enabled: false,
            expect_success_within_ms: Some(3_600_000),
        };
        let tick = ScheduleSpec {
            name: "tick".into(),
            workspace: None,
            description: None,
            owner: None,
            timing: Timing::Every {
                interval_ms: 30_000,
            },
            zone: Zone::parse("Asia/Tokyo").unwrap(),
            task: TaskTemplate {
                queue: "maintenance".into(),
                kind: "sleep".into(),
                payload: json!({ "ms": 10 }),
                priority: 0,
                max_attempts: None,
            },
            overlap: OverlapPolicy::Allow,
            missed: MissedPolicy::Once,
            jitter_ms: 5_000,
            enabled: true,
            expect_success_within_ms: None,
        };
        let launch = ScheduleSpec {
            name: "launch".into(),
            timing: Timing::Once {
                at_ms: 1_798_131_600_000,
            },
            zone: Zone::utc(),
            task: TaskTemplate {
                kind: "noop".into(),
                payload: json!({}),
                ..tick.task.clone()
            },
            overlap: OverlapPolicy::Replace,
            missed: MissedPolicy::Skip,
            jitter_ms: 0,
            ..tick.clone()
        };
        assert_eq!(config.schedules, vec![report, tick, launch]);
        assert_eq!(
            config.heartbeats,
            vec![
                HeartbeatSpec {
                    name: "nightly-backup".into(),
                    workspace: Some("trading".into()),
                    description: Some("pg_dump on vps-1".into()),
                    period_ms: 24 * 3_600_000,
                    grace_ms: 2 * 3_600_000,
                },
                HeartbeatSpec {
                    name: "poller".into(),
                    workspace: None,
                    description: None,
                    period_ms: 600_000,
                    grace_ms: 120_000,
                },
            ]
        );
    }

    #[test]
    fn defaults_when_left_out() {
        let config = parse(&with(
            "cron = \"*/5 * * * *\"\n[[heartbeats]]\nname = \"h\"\nperiod = \"2s\"",
        ));
        assert_eq!(config.settings.scheduler, SchedulerSettings::default());
        assert_eq!(config.settings.scheduler.lease_ms, 10_000);
        assert_eq!(config.settings.scheduler.grace_ms, 5_000);
        let s = &config.schedules[0];
        assert_eq!(s.zone, Zone::utc());
        assert_eq!(s.task.payload, json!({}));
        assert_eq!(s.task.priority, 0);
        assert_eq!(s.task.max_attempts, None);
        assert_eq!(s.overlap, OverlapPolicy::Allow);
        assert_eq!(s.missed, MissedPolicy::Once);
        assert_eq!(s.jitter_ms, 0);
        assert!(s.enabled);
        assert_eq!(s.expect_success_within_ms, None);
        // A fifth of the period, but at least a second.
        assert_eq!(config.heartbeats[0].grace_ms, 1_000);
        let all = parse(&with("every = \"1m\"\nmissed = \"all\"\njitter = \"0s\""));
        assert_eq!(
            all.schedules[0].missed,
            MissedPolicy::All {
                limit: MissedPolicy::DEFAULT_ALL_LIMIT
            }
        );
        assert_eq!(all.schedules[0].jitter_ms, 0);
        assert!(parse("[server]\n").schedules.is_empty());
    }

    #[test]
    fn at_may_be_a_toml_date_time() {
        let written = parse(&with("at = 2026-12-24T18:00:00+01:00"));
        let quoted = parse(&with("at = \"2026-12-24T18:00:00+01:00\""));
        assert_eq!(written.schedules[0].timing, quoted.schedules[0].timing);
        assert_eq!(
            written.schedules[0].timing,
            Timing::Once {
                at_ms: 1_798_131_600_000
            }
        );
    }

    #[test]
    fn payloads_become_json() {
        let config = parse(&with(
            "every = \"1m\"\n[schedules.payload]\nday = 2026-01-02\nlist = [1, 2.5, \"x\", [true]]\n[[schedules.payload.items]]\nid = 1\n[[schedules.payload.items]]\nid = 2",
        ));
        assert_eq!(
            config.schedules[0].task.payload,
            json!({
                "day": "2026-01-02",
                "list": [1, 2.5, "x", [true]],
                "items": [{ "id": 1 }, { "id": 2 }],
            })
        );
        let scalar = parse(&with("every = \"1m\"\npayload = \"just text\""));
        assert_eq!(scalar.schedules[0].task.payload, json!("just text"));
        // Payloads are stored and shown: `${VAR}` stays as written.
        let kept = parse(&with("every = \"1m\"\npayload = { token = \"${TOKEN}\" }"));
        assert_eq!(
            kept.schedules[0].task.payload,
            json!({ "token": "${TOKEN}" })
        );
    }

    #[test]
    fn payload_errors_name_the_field_and_line() {
        assert_error(
            &with("every = \"1m\"\npayload = { a = [1, nan] }"),
            9,
            "`schedules[0].payload.a[1]`: `NaN` has no JSON form",
        );
        assert_error(
            &with("every = \"1m\"\npayload = { a = \"x\\u0000\" }"),
            9,
            "`schedules[0].payload.a`: must not contain a NUL character",
        );
        assert_error(
            "[[queues]]\nname = \"jobs\"\nkinds = [\"noop\"]\nmax_payload_bytes = 10\n[[schedules]]\nname = \"s\"\nqueue = \"jobs\"\nkind = \"noop\"\nevery = \"1m\"\npayload = { text = \"more than ten bytes\" }\n",
            10,
            "`schedules[0].payload`: 30 bytes of JSON; queue `jobs` accepts at most 10",
        );
    }

    #[test]
    fn a_bad_cron_field_is_named_at_its_value() {
        let all = errors(&with("cron = \"0 25 * * *\""));
        assert!(
            all.starts_with(
                "f.toml:8:8: error: `schedules[0].cron`: cron expression \"0 25 * * *\": field hour is `25`: must be 0-23"
            ),
            "{all}"
        );
        assert_eq!(all.lines().count(), 1, "{all}");
        assert_error(
            &with("cron = \"* * *\""),
            8,
            "`schedules[0].cron`: cron expression \"* * *\"",
        );
        assert_error(
            &with("cron = 5"),
            8,
            "`schedules[0].cron`: expected a string, found integer",
        );
    }

    #[test]
    fn an_unknown_zone_suggests_a_close_one() {
        let all = errors(&with("cron = \"0 8 * * *\"\ntimezone = \"Europe/Berln\""));
        assert!(
            all.starts_with("f.toml:9:12: error: `schedules[0].timezone`: "),
            "{all}"
        );
        assert!(
            all.contains("unknown time zone `Europe/Berln` (did you mean `Europe/Berlin`?)"),
            "{all}"
        );
    }

    #[test]
    fn exactly_one_timing_is_given() {
        assert_error(
            &with("cron = \"0 8 * * *\"\nevery = \"1h\""),
            9,
            "`schedules[0].every`: a schedule takes exactly one of `cron`, `every` or `at`, and this one gives `cron` and `every`",
        );
        let all = errors(&with(
            "cron = \"0 8 * * *\"\nevery = \"1h\"\nat = \"2026-12-24T18:00:00Z\"",
        ));
        assert_eq!(all.lines().count(), 2, "{all}");
        assert!(
            all.contains("gives `cron`, `every` and `at`; keep one"),
            "{all}"
        );
        assert_error(
            &with(""),
            4,
            "`schedules[0]`: says nothing about when it fires: give one of `cron`",
        );
    }

    #[test]
    fn the_queue_must_be_declared_and_allow_the_kind() {
        assert_error(
            &with("every = \"1m\"").replace("queue = \"jobs\"", "queue = \"job\""),
            6,
            "`schedules[0].queue`: unknown queue `job` (not declared in `[[queues]]`); did you mean `jobs`?",
        );
        assert_error(
            "[[schedules]]\nname = \"s\"\nqueue = \"jobs\"\nkind = \"noop\"\nevery = \"1m\"\n",
            3,
            "`schedules[0].queue`: unknown queue `jobs` (not declared in `[[queues]]`); no `[[queues]]` are declared",
        );
        assert_error(
            &with("every = \"1m\"").replace("kind = \"noop\"", "kind = \"sleeep\""),
            7,
            "`schedules[0].kind`: queue `jobs` does not run `sleeep` tasks (allowed: noop, sleep); did you mean `sleep`?",
        );
        assert_error(
            "[[queues]]\nname = \"q\"\nkinds = [\"noop\"]\n[[schedules]]\nname = \"s\"\nqueue = \"q\"\nevery = \"1m\"\n",
            4,
            "`schedules[0].kind`: missing required field",
        );
        // A queue whose kinds were refused: one error, where the kind is listed.
        let all = errors(
            "[[queues]]\nname = \"q\"\nkinds = [\"noop\", \"bakup\"]\n[[schedules]]\nname = \"s\"\nqueue = \"q\"\nkind = \"bakup\"\nevery = \"1m\"\n",
        );
        assert_eq!(all.lines().count(), 1, "{all}");
        assert!(all.starts_with("f.toml:3:"), "{all}");
    }

    #[test]
    fn missed_limit_only_goes_with_missed_all() {
        assert_error(
            &with("every = \"1m\"\nmissed_limit = 5"),
            9,
            "`schedules[0].missed_limit`: only goes with `missed = \"all\"` (this schedule's policy is `once`, the default)",
        );
        assert_error(
            &with("every = \"1m\"\nmissed = \"skip\"\nmissed_limit = 5"),
            10,
            "(this schedule's policy is `skip`)",
        );
        assert_error(
            &with("every = \"1m\"\nmissed = \"all\"\nmissed_limit = 10001"),
            10,
            "`schedules[0].missed_limit`: 10001 is out of range (1 to 10000)",
        );
        assert_error(
            &with("every = \"1m\"\nmissed = \"some\""),
            9,
            "`schedules[0].missed`: `some` is not one of: skip, once, all",
        );
        assert_error(
            &with("every = \"1m\"\noverlap = \"queue\""),
            9,
            "`schedules[0].overlap`: `queue` is not one of: allow, forbid, replace",
        );
    }

    #[test]
    fn jitter_must_be_less_than_the_interval() {
        assert_error(
            &with("every = \"30s\"\njitter = \"30s\""),
            9,
            "`schedules[0].jitter`: 30s is not less than the interval (`every` is 30s)",
        );
        assert_error(
            &with("every = \"30s\"\njitter = \"soon\""),
            9,
            "`schedules[0].jitter`: `soon` is not a duration",
        );
        // Other timings take any jitter.
        assert_eq!(
            parse(&with("cron = \"0 * * * *\"\njitter = \"2h\"")).schedules[0].jitter_ms,
            7_200_000
        );
    }

    #[test]
    fn duplicate_names_point_at_the_first() {
        let schedule =
            "[[schedules]]\nname = \"s\"\nqueue = \"jobs\"\nkind = \"noop\"\nevery = \"1m\"\n";
        assert_error(
            &format!("{}{schedule}", with("every = \"1m\"")),
            10,
            "`schedules[1].name`: duplicate schedule `s` (first declared at f.toml:5:8)",
        );
        assert_error(
            "[[heartbeats]]\nname = \"h\"\nperiod = \"1h\"\n[[heartbeats]]\nname = \"h\"\nperiod = \"1h\"\n",
            5,
            "`heartbeats[1].name`: duplicate heartbeat `h` (first declared at f.toml:2:8)",
        );
    }

    #[test]
    fn names_and_workspaces_are_checked() {
        assert_error(
            &with("every = \"1m\"").replace("name = \"s\"", "name = \"a b\""),
            5,
            "`schedules[0].name`: `a b` is not a valid name",
        );
        assert_error(
            &with("every = \"1m\"\nworkspace = \"nope\""),
            9,
            "`schedules[0].workspace`: unknown workspace `nope`",
        );
        assert_error(
            "[[workspaces]]\nkey = \"ops\"\n[[heartbeats]]\nname = \"h\"\nperiod = \"1h\"\nworkspace = \"opz\"\n",
            6,
            "`heartbeats[0].workspace`: unknown workspace `opz`; did you mean `ops`?",
        );
        assert_error(
            "[[heartbeats]]\nperiod = \"1h\"\n",
            1,
            "`heartbeats[0].name`: missing required field",
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert_error(
            &with("every = \"1m\"\ntimezon = \"UTC\""),
            9,
            "unknown key `schedules[0].timezon`: did you mean `timezone`?",
        );
        assert_error(
            "[[heartbeats]]\nname = \"h\"\nperiod = \"1h\"\ngrace_period = \"1m\"\n",
            4,
            "unknown key `heartbeats[0].grace_period`",
        );
        assert_error(
            "[scheduler]\nleas = \"10s\"\n",
            2,
            "unknown key `scheduler.leas`: did you mean `lease`?",
        );
        assert_error(
            "[[schedule]]\nname = \"s\"\n",
            1,
            "unknown key `schedule`: did you mean `schedules`?",
        );
    }

    #[test]
    fn task_fields_are_checked() {
        assert_error(
            &with("every = \"1m\"\npriority = 1001"),
            9,
            "`schedules[0].priority`: 1001 is out of range (-1000 to 1000)",
        );
        assert_error(
            &with("every = \"1m\"\npriority = \"high\""),
            9,
            "`schedules[0].priority`: expected an integer, found string",
        );
        assert_error(
            &with("every = \"1m\"\nmax_attempts = 0"),
            9,
            "`schedules[0].max_attempts`: 0 is out of range (1 to 1000)",
        );
        assert_error(
            &with("every = \"1m\"\nenabled = \"yes\""),
            9,
            "`schedules[0].enabled`: expected true or false",
        );
        assert_error(
            &with("at = \"tomorrow\""),
            8,
            "`schedules[0].at`: `tomorrow` is not an RFC 3339 time",
        );
    }

    #[test]
    fn bad_durations_name_the_field_and_line() {
        assert_error(
            &with("every = \"500ms\""),
            8,
            "`schedules[0].every`: 500ms is less than 1s, the shortest allowed",
        );
        assert_error(
            &with("every = \"soon\""),
            8,
            "`schedules[0].every`: `soon` is not a duration",
        );
        assert_error(
            &with("every = 30"),
            8,
            "`schedules[0].every`: expected a duration as a string",
        );
        assert_error(
            &with("every = \"1m\"\nexpect_success_within = \"0s\""),
            9,
            "`schedules[0].expect_success_within`: must be more than zero",
        );
        assert_error(
            "[[heartbeats]]\nname = \"h\"\n",
            1,
            "`heartbeats[0].period`: missing required field",
        );
        assert_error(
            "[[heartbeats]]\nname = \"h\"\nperiod = \"10ms\"\n",
            3,
            "`heartbeats[0].period`: 10ms is less than 1s",
        );
        assert_error(
            "[[heartbeats]]\nname = \"h\"\nperiod = \"1h\"\ngrace = \"500ms\"\n",
            4,
            "`heartbeats[0].grace`: 500ms is less than 1s",
        );
        assert_error(
            "[scheduler]\nlease = \"1s\"\n",
            2,
            "`scheduler.lease`: 1s is out of range (2s to 5m)",
        );
        assert_error(
            "[scheduler]\nlease = \"6m\"\n",
            2,
            "`scheduler.lease`: 6m is out of range (2s to 5m)",
        );
        assert_error(
            "[scheduler]\ngrace = \"100ms\"\n",
            2,
            "`scheduler.grace`: 100ms is less than 1s",
        );
        assert_error(
            "[scheduler]\ngrace = 5\n",
            2,
            "`scheduler.grace`: expected a duration as a string",
        );
        assert_error(
            "scheduler = 1\n",
            1,
            "`scheduler`: expected a table, found integer",
        );
    }

    /// Text that looks like a cron expression, often malformed.
    fn cron_like() -> impl Strategy<Value = String> {
        let token = prop::sample::select(vec![
            "*",
            "*/",
            "/",
            ",",
            "-",
            " ",
            "  ",
            "0",
            "5",
            "7",
            "12",
            "23",
            "24",
            "25",
            "31",
            "32",
            "59",
            "60",
            "99999999999999999999",
            "JAN",
            "mon",
            "SUN",
            "L",
            "W",
            "#",
            "?",
            "@daily",
            "@hourly",
            "@reboot",
            "\t",
            "é",
            "-1",
            "0-",
            "-0",
            "1-0",
            "*/0",
            "0/0",
        ]);
        prop::collection::vec(token, 0..16).prop_map(|tokens| tokens.concat())
    }

    proptest! {
        #[test]
        fn cron_like_text_never_panics_and_errors_are_located(
            cron in cron_like(),
            zone in "[A-Za-z/_+0-9-]{0,20}",
            every in "[0-9]{0,4}(ms|s|m|h|d|x)?",
        ) {
            for line in [
                format!("cron = {}", Value::from(cron.as_str())),
                format!("cron = {}\ntimezone = {}", Value::from(cron.as_str()), Value::from(zone.as_str())),
                format!("every = {}\njitter = {}", Value::from(every.as_str()), Value::from(every.as_str())),
            ] {
                let text = with(&line);
                match parse_str("f.toml", &text, &env) {
                    Ok(loaded) => prop_assert_eq!(loaded.config.schedules.len(), 1),
                    Err(LoadError::Invalid(d)) => {
                        for diagnostic in d.0 {
                            prop_assert!(diagnostic.line >= 8, "{}", diagnostic);
                            prop_assert!(diagnostic.line <= text.lines().count(), "{}", diagnostic);
                        }
                    }
                    Err(other) => prop_assert!(false, "unexpected {}", other),
                }
            }
        }
    }
}
