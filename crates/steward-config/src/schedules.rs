//! `[[schedules]]` (tasks enqueued on a timetable), `[[heartbeats]]` (pings that external jobs
//! must send) and `[scheduler]` (how instances share the firing of schedules).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Number, Value as Json};
use steward_core::node::NodeSpec;
use steward_core::queue::QueueSpec;
use steward_core::schedule::timing::parse_instant;
use steward_core::schedule::{
    CronExpr, HeartbeatSpec, MissedPolicy, OverlapPolicy, RETENTION_SCHEDULE, ScheduleSpec,
    TaskTemplate, Timing, Zone,
};
use steward_core::task::{MAX_ATTEMPTS, MAX_PRIORITY};
use toml_edit::{Item, TableLike, Value};

use crate::nodes::work_node;
use crate::readers::{first_declaration, literal, name_field, unreserved};
use crate::registry::{Workspaces, workspace_ref};
use crate::walk::{Cx, Fields, Span, Spanned, did_you_mean, shown_ms};

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
    "node",
    "pipeline",
    "input",
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
    nodes: &[NodeSpec],
    pipelines: &[&str],
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
        let task = if t.item("pipeline").is_some() {
            read_pipeline_task(cx, &t, pipelines)
        } else {
            reject_input(cx, &t);
            read_task(cx, &t, queues, partial_kinds, nodes)
        };
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

/// A `cron` expression, or `None` after reporting why it does not parse.
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

/// The task each fire enqueues: a declared queue, a kind it allows, the task's fields, and the
/// node whose agent runs it (its own `node`, else its queue's; never another than the queue's).
pub(crate) fn read_task(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    queues: &[QueueSpec],
    partial_kinds: &HashSet<String>,
    nodes: &[NodeSpec],
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
    let node = work_node(cx, t, "node", nodes);
    if t.item("node").is_some() && node.is_none() {
        return None;
    }
    let node = match (node, queue.and_then(|q| q.node.as_ref())) {
        (Some(own), Some(pinned)) if own != *pinned => {
            if let Some(item) = t.item("node") {
                cx.error(
                    &item.span(),
                    format!(
                        "`{}`: queue `{}` is pinned to node `{pinned}`; its tasks cannot run on `{own}`",
                        t.field("node"),
                        queue.map_or("", |q| q.name.as_str())
                    ),
                );
            }
            return None;
        }
        (own, pinned) => own.or_else(|| pinned.cloned()),
    };
    Some(TaskTemplate {
        queue: queue?.name.clone(),
        kind: kind?,
        payload: payload?,
        priority: priority?,
        max_attempts,
        node,
    })
}

/// The keys that say which task a schedule or a remediation enqueues, which `pipeline` takes
/// the place of.
const TASK_KEYS: [&str; 6] = [
    "queue",
    "kind",
    "payload",
    "priority",
    "max_attempts",
    "node",
];

/// A schedule's task when it names a pipeline: Steward's own `pipeline` task, which starts a
/// run of it with `input`.
fn read_pipeline_task(cx: &mut Cx<'_>, t: &Fields<'_>, pipelines: &[&str]) -> Option<TaskTemplate> {
    let payload = read_pipeline_start(cx, t, pipelines)?;
    Some(TaskTemplate {
        queue: steward_core::queue::SYSTEM_QUEUE.to_owned(),
        kind: steward_core::queue::PIPELINE_KIND.to_owned(),
        payload,
        priority: 0,
        max_attempts: None,
        node: None,
    })
}

/// `pipeline` (a declared pipeline) and its optional `input` (a table), as the payload of
/// Steward's `pipeline` task; the task keys `pipeline` replaces are refused beside it.
pub(crate) fn read_pipeline_start(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    pipelines: &[&str],
) -> Option<Json> {
    let mut ok = true;
    for key in TASK_KEYS.into_iter().filter(|k| t.item(k).is_some()) {
        cx.error(
            &t.key_span(key).flatten(),
            format!(
                "`{}`: not with `pipeline` (the pipeline's steps say what runs where)",
                t.field(key)
            ),
        );
        ok = false;
    }
    let name = t
        .required_string(cx, "pipeline")
        .and_then(|v| literal(cx, t, "pipeline", v))?;
    if !pipelines.contains(&name.value.as_str()) {
        let hint = if pipelines.is_empty() {
            "; no `[[pipelines]]` are declared".to_owned()
        } else {
            did_you_mean(&name.value, pipelines)
                .unwrap_or_else(|| format!("; declared pipelines: {}", pipelines.join(", ")))
        };
        cx.error(
            &name.span,
            format!(
                "`{}`: unknown pipeline `{}` (not declared in `[[pipelines]]`){hint}",
                t.field("pipeline"),
                name.value
            ),
        );
        return None;
    }
    let input = match t.item("input") {
        None => Json::Object(Map::new()),
        Some(item) => {
            let input = item_to_json(cx, &t.field("input"), item, &mut ok);
            if !input.is_object() {
                cx.error(
                    &item.span(),
                    format!("`{}`: expected a table, the run's input", t.field("input")),
                );
                return None;
            }
            input
        }
    };
    ok.then(|| serde_json::json!({ "pipeline": name.value, "input": input }))
}

/// `input` belongs only beside `pipeline`.
pub(crate) fn reject_input(cx: &mut Cx<'_>, t: &Fields<'_>) {
    if t.item("input").is_some() {
        cx.error(
            &t.key_span("input").flatten(),
            format!(
                "`{}`: only with `pipeline` (the input of the run it starts)",
                t.field("input")
            ),
        );
    }
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
        did_you_mean(&name.value, &known)
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
        let hint = did_you_mean(&kind.value, &known).unwrap_or_default();
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
mod tests;
