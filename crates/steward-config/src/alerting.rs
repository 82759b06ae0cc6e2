//! `[alerting]`: receivers (webhook, Slack, Telegram, email), the route tree that sends alerts
//! to them (with optional remediation tasks), inhibition rules, and alerting's settings.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use steward_core::Secret;
use steward_core::alert::is_label_name;
use steward_core::alert::mute::{MAX_WINDOW_MS, MaintenanceWindow};
use steward_core::alert::route::{GroupBy, Matcher, Route};
use steward_core::alert::rules::MIN_RULE_INTERVAL_MS;
use steward_core::alert::spec::{
    AlertingSettings, AlertingSpec, DEFAULT_TELEGRAM_API, Escalation, InhibitRule, ReceiverKind,
    ReceiverSpec, Remediation,
};
use steward_core::queue::QueueSpec;

use crate::readers::{TypedKeys, first_declaration, literal, name_field, read_headers};
use crate::schedules::{kind_ref, queue_ref, read_payload};
use crate::walk::{Cx, Element, Fields, Span, Spanned, choice_name, did_you_mean, url_problem};

const ALERTING_KEYS: &[&str] = &[
    "resolve_timeout",
    "notification_ttl",
    "retention",
    "receivers",
    "route",
    "inhibit_rules",
    "maintenance",
    "external_url",
    "rules",
    "rule_interval",
];
/// The keys every receiver may have, whatever its type.
const COMMON_KEYS: &[&str] = &["name", "type", "send_resolved", "template"];
const WEBHOOK_KEYS: &[&str] = &["url", "headers", "max_alerts"];
const SLACK_KEYS: &[&str] = &["webhook_url", "channel"];
const TELEGRAM_KEYS: &[&str] = &["bot_token", "chat_id", "api_url"];
const EMAIL_KEYS: &[&str] = &[
    "to",
    "from",
    "smarthost",
    "username",
    "password",
    "starttls",
];
/// Every key a receiver may have, and which types take which.
const RECEIVER_KEYS: TypedKeys<ReceiverType> = TypedKeys {
    common: COMMON_KEYS,
    types: &[
        (ReceiverType::Webhook, WEBHOOK_KEYS),
        (ReceiverType::Slack, SLACK_KEYS),
        (ReceiverType::Telegram, TELEGRAM_KEYS),
        (ReceiverType::Email, EMAIL_KEYS),
    ],
};
const ROUTE_KEYS: &[&str] = &[
    "receiver",
    "matchers",
    "continue",
    "group_by",
    "group_wait",
    "group_interval",
    "repeat_interval",
    "routes",
    "remediate",
    "escalate",
];
const REMEDIATE_KEYS: &[&str] = &["queue", "kind", "payload", "pipeline", "input"];
const ESCALATE_KEYS: &[&str] = &["after", "receiver"];
const MAINTENANCE_KEYS: &[&str] = &["name", "matchers", "cron", "timezone", "duration"];
/// The shortest `escalate.after`.
const MIN_ESCALATE_AFTER_MS: u64 = 1_000;
/// The shortest maintenance window.
const MIN_WINDOW_MS: u64 = 60_000;
const INHIBIT_KEYS: &[&str] = &["source_matchers", "target_matchers", "equal"];

/// The shortest `resolve_timeout`.
const MIN_RESOLVE_TIMEOUT_MS: u64 = 1_000;
/// The shortest `notification_ttl`.
const MIN_NOTIFICATION_TTL_MS: u64 = 60_000;
/// The shortest `retention`.
const MIN_RETENTION_MS: u64 = 3_600_000;
/// The shortest `group_interval`.
const MIN_GROUP_INTERVAL_MS: u64 = 1_000;
/// The shortest `repeat_interval`.
const MIN_REPEAT_INTERVAL_MS: u64 = 60_000;
/// The most alerts a webhook's `max_alerts` may name.
const MAX_MAX_ALERTS: i64 = 10_000;
/// How deep routes nest below the root.
const MAX_ROUTE_DEPTH: usize = 16;
/// `group_by = ["..."]`: every label.
const ALL_LABELS: &str = "...";

/// The kinds of receiver as `type` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReceiverType {
    Webhook,
    Slack,
    Telegram,
    Email,
}

impl ReceiverType {
    const CHOICES: [(&'static str, ReceiverType); 4] = [
        ("webhook", Self::Webhook),
        ("slack", Self::Slack),
        ("telegram", Self::Telegram),
        ("email", Self::Email),
    ];
}

impl fmt::Display for ReceiverType {
    /// The name `type` gives it, as [`Self::CHOICES`] spells it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(choice_name(&Self::CHOICES, self))
    }
}

/// Why `${VAR}` is refused in a value kept and shown in the clear.
const NOT_SECRET: &str = "cannot use `${VAR}`: this value is not kept secret (only `url`, `webhook_url`, `headers`, `bot_token` and `password` are)";

/// An optional string kept in the clear: `${VAR}` refused, and not empty.
fn plain_string(cx: &mut Cx<'_>, t: &Fields<'_>, key: &str) -> Option<Spanned<String>> {
    let value = t.string(cx, key)?;
    let value = t.without_template(cx, key, value, NOT_SECRET)?;
    if value.value.is_empty() {
        cx.error(
            &value.span,
            format!("`{}`: must not be empty", t.field(key)),
        );
        return None;
    }
    Some(value)
}

/// A required string kept in the clear: `${VAR}` refused, and not empty.
fn required_plain(cx: &mut Cx<'_>, t: &Fields<'_>, key: &str) -> Option<Spanned<String>> {
    let value = t.required_string(cx, key)?;
    t.without_template(cx, key, value, NOT_SECRET)
}

/// An optional array of strings taken as written (no `${VAR}`, no NUL), each with its field
/// name (`…matchers[1]`). `None` when absent; the flag is false when anything was refused.
fn string_list(cx: &mut Cx<'_>, t: &Fields<'_>, key: &str) -> Option<(Vec<Element>, bool)> {
    let (values, mut ok) = t.indexed_strings(cx, key)?;
    let mut kept = Vec::with_capacity(values.len());
    for (field, value) in values {
        if value.value.contains("${") {
            cx.error(
                &value.span,
                format!(
                    "`{field}`: cannot use `${{VAR}}`: this value is shown in the API and in messages"
                ),
            );
            ok = false;
        } else {
            kept.push((field, value));
        }
    }
    Some((kept, ok))
}

/// An optional array of matchers, each parsed as Alertmanager does; `None` when any is refused.
fn read_matchers(cx: &mut Cx<'_>, t: &Fields<'_>, key: &str) -> Option<Vec<Matcher>> {
    let Some((texts, mut ok)) = string_list(cx, t, key) else {
        return Some(Vec::new());
    };
    let mut matchers = Vec::new();
    for (field, text) in texts {
        match Matcher::parse(&text.value) {
            Ok(m) => matchers.push(m),
            Err(e) => {
                cx.error(&text.span, format!("`{field}`: {e}"));
                ok = false;
            }
        }
    }
    ok.then_some(matchers)
}

/// Matchers that must be given and not empty.
fn required_matchers(cx: &mut Cx<'_>, t: &Fields<'_>, key: &str) -> Option<Vec<Matcher>> {
    let item = t.required_item(cx, key, "e.g. [\"severity=critical\"]")?;
    let matchers = read_matchers(cx, t, key)?;
    if matchers.is_empty() && item.as_array().is_some_and(|a| a.is_empty()) {
        cx.error(
            &item.span(),
            format!(
                "`{}`: must not be empty (e.g. [\"severity=critical\"])",
                t.field(key)
            ),
        );
        return None;
    }
    Some(matchers)
}

/// An optional array of label names; `None` when any is refused.
fn read_label_names(cx: &mut Cx<'_>, t: &Fields<'_>, key: &str) -> Option<Vec<Spanned<String>>> {
    let Some((names, mut ok)) = string_list(cx, t, key) else {
        return Some(Vec::new());
    };
    let mut valid = Vec::new();
    for (field, name) in names {
        if name.value == ALL_LABELS || is_label_name(&name.value) {
            valid.push(name);
        } else {
            cx.error(
                &name.span,
                format!(
                    "`{field}`: `{}` is not a label name (letters, digits and `_`, not starting with a digit)",
                    name.value
                ),
            );
            ok = false;
        }
    }
    ok.then_some(valid)
}

/// Reads `[alerting]`. `queues` are the declared queues; `partial_kinds` names those some of
/// whose kinds were refused (their own problem has been reported).
pub(crate) fn read_alerting(
    cx: &mut Cx<'_>,
    root: &Fields<'_>,
    queues: &[QueueSpec],
    partial_kinds: &HashSet<String>,
    refs: &crate::alert_rules::Declared<'_>,
) -> AlertingSpec {
    let mut spec = AlertingSpec::default();
    let Some(t) = root
        .item("alerting")
        .and_then(|item| Fields::open_item(cx, item, "alerting", ALERTING_KEYS))
    else {
        return spec;
    };
    spec.settings = read_settings(cx, &t);
    let (receivers, declared) = read_receivers(cx, &t);
    spec.receivers = receivers;
    let mut routes = RouteReader {
        receivers: declared.keys().map(String::as_str).collect(),
        used: BTreeSet::new(),
        queues,
        partial_kinds,
        pipelines: &refs.pipelines,
        remediations: BTreeMap::new(),
        escalations: BTreeMap::new(),
    };
    match t.item("route") {
        Some(item) => {
            if let Some(route) = Fields::open_item(cx, item, t.field("route"), ROUTE_KEYS) {
                spec.route = Some(routes.read(cx, &route, Vec::new()));
            }
            // Only when the root was read: otherwise which receivers it uses is not known.
            if spec.route.is_some() {
                for (name, span) in &declared {
                    if !routes.used.contains(name.as_str()) {
                        cx.warning(
                            span,
                            format!(
                                "receiver `{name}` is used by no route in `alerting.route`, so it is never notified"
                            ),
                        );
                    }
                }
            }
        }
        None => {
            if let Some(span) = declared
                .values()
                .min_by_key(|s| s.as_ref().map(|s| s.start))
            {
                cx.error(
                    span,
                    "`alerting.route`: receivers are declared but `alerting.route` is missing (add `[alerting.route]` with `receiver = \"…\"`)",
                );
            }
        }
    }
    spec.remediations = routes.remediations;
    spec.escalations = routes.escalations;
    spec.maintenance = read_maintenance(cx, &t);
    spec.external_url = read_external_url(cx, &t);
    spec.inhibit_rules = read_inhibit_rules(cx, &t);
    spec.rules = crate::alert_rules::read_rules(cx, &t, refs);
    if let Some(interval) = t.duration_at_least(cx, "rule_interval", MIN_RULE_INTERVAL_MS) {
        spec.rule_interval_ms = interval.value;
    }
    spec
}

fn read_settings(cx: &mut Cx<'_>, t: &Fields<'_>) -> AlertingSettings {
    let mut settings = AlertingSettings::default();
    if let Some(ms) = t
        .duration_at_least(cx, "resolve_timeout", MIN_RESOLVE_TIMEOUT_MS)
        .map(|d| d.value)
    {
        settings.resolve_timeout_ms = ms;
    }
    if let Some(ms) = t
        .duration_at_least(cx, "notification_ttl", MIN_NOTIFICATION_TTL_MS)
        .map(|d| d.value)
    {
        settings.notification_ttl_ms = ms;
    }
    if let Some(ms) = t
        .duration_at_least(cx, "retention", MIN_RETENTION_MS)
        .map(|d| d.value)
    {
        settings.retention_ms = ms;
    }
    settings
}

/// Reads `[[alerting.receivers]]`: the valid ones, and every name declared with where (also
/// of receivers with other problems, so that routes naming them do not report a second,
/// misleading problem).
fn read_receivers(
    cx: &mut Cx<'_>,
    alerting: &Fields<'_>,
) -> (Vec<ReceiverSpec>, BTreeMap<String, Span>) {
    let mut seen: HashMap<String, Span> = HashMap::new();
    let mut receivers = Vec::new();
    let keys = RECEIVER_KEYS.all();
    for (i, (table, span)) in alerting.tables(cx, "receivers").into_iter().enumerate() {
        let path = format!("{}[{i}]", alerting.field("receivers"));
        let t = Fields::open(cx, table, path, span, &keys);
        let name = name_field(cx, &t, "name");
        let kind = if t.item("type").is_none() {
            cx.error(
                &t.span,
                format!(
                    "`{}`: missing required field (\"webhook\", \"slack\", \"telegram\" or \"email\")",
                    t.field("type")
                ),
            );
            None
        } else {
            t.choice(cx, "type", &ReceiverType::CHOICES)
                .map(|k| k.value)
        };
        let send_resolved = t.boolean(cx, "send_resolved").unwrap_or(true);
        let template = match t.literal_string(cx, "template") {
            Some(text) if text.value.trim().is_empty() => {
                cx.error(
                    &text.span,
                    format!("`{}`: must not be empty", t.field("template")),
                );
                None
            }
            Some(text) => match steward_core::alert::template::check(&text.value) {
                Ok(()) => Some(Some(text.value)),
                Err(e) => {
                    cx.error(&text.span, format!("`{}`: {e}", t.field("template")));
                    None
                }
            },
            None if t.item("template").is_some() => None,
            None => Some(None),
        };
        let receiver_kind = kind.and_then(|kind| {
            foreign_keys(cx, &t, kind);
            read_kind(cx, &t, kind)
        });
        let Some(name) = name else { continue };
        let name_value = name.value.clone();
        if !first_declaration(cx, &mut seen, &t, "receiver", name) {
            continue;
        }
        let (Some(kind), Some(template)) = (receiver_kind, template) else {
            continue;
        };
        receivers.push(ReceiverSpec {
            name: name_value,
            kind,
            send_resolved,
            template,
        });
    }
    (receivers, seen.into_iter().collect())
}

/// Reports each key written that belongs to another type than `kind`.
fn foreign_keys(cx: &mut Cx<'_>, t: &Fields<'_>, kind: ReceiverType) {
    RECEIVER_KEYS.report_foreign(cx, t, kind, |owners| {
        format!("only goes with type = {owners} (this receiver's type is \"{kind}\")")
    });
}

fn read_kind(cx: &mut Cx<'_>, t: &Fields<'_>, kind: ReceiverType) -> Option<ReceiverKind> {
    match kind {
        ReceiverType::Webhook => {
            let url = required_http_url(cx, t, "url");
            let headers = read_headers(cx, t);
            let max_alerts = match t.integer(cx, "max_alerts", 0..=MAX_MAX_ALERTS) {
                Some(n) => usize::try_from(n.value).ok(),
                None if t.item("max_alerts").is_some() => None,
                None => Some(0),
            };
            Some(ReceiverKind::Webhook {
                url: Secret::new(url?.value),
                headers: headers?,
                max_alerts: max_alerts?,
            })
        }
        ReceiverType::Slack => {
            let webhook_url = required_http_url(cx, t, "webhook_url");
            let channel = optional(t, "channel", plain_string(cx, t, "channel"));
            Some(ReceiverKind::Slack {
                webhook_url: Secret::new(webhook_url?.value),
                channel: channel?.map(|c| c.value),
            })
        }
        ReceiverType::Telegram => {
            let bot_token = t.required_string(cx, "bot_token");
            let chat_id = read_chat_id(cx, t);
            let api_url = if t.item("api_url").is_some() {
                t.string(cx, "api_url")
                    .and_then(|v| t.without_template(cx, "api_url", v, NOT_SECRET))
                    .and_then(|v| http_url(cx, t, "api_url", v))
                    .map(|v| v.value)
            } else {
                Some(DEFAULT_TELEGRAM_API.to_owned())
            };
            Some(ReceiverKind::Telegram {
                bot_token: Secret::new(bot_token?.value),
                chat_id: chat_id?,
                api_url: api_url?,
            })
        }
        ReceiverType::Email => {
            let to = read_recipients(cx, t);
            let from = required_plain(cx, t, "from").and_then(|v| address(cx, t, "from", v));
            let smarthost =
                required_plain(cx, t, "smarthost").and_then(|v| {
                    match host_port_problem(&v.value) {
                        None => Some(v.value),
                        Some(problem) => {
                            cx.error(&v.span, format!("`{}`: {problem}", t.field("smarthost")));
                            None
                        }
                    }
                });
            let username = optional(t, "username", t.string(cx, "username"));
            let username = username.and_then(|u| match u {
                Some(u) if u.value.is_empty() => {
                    cx.error(
                        &u.span,
                        format!("`{}`: must not be empty", t.field("username")),
                    );
                    None
                }
                other => Some(other.map(|u| u.value)),
            });
            let password = optional(t, "password", t.string(cx, "password"));
            let password = password.and_then(|p| match p {
                Some(p) if p.value.is_empty() => {
                    cx.error(
                        &p.span,
                        format!("`{}`: must not be empty", t.field("password")),
                    );
                    None
                }
                other => Some(other.map(|p| Secret::new(p.value))),
            });
            let starttls = t.boolean(cx, "starttls").unwrap_or(true);
            Some(ReceiverKind::Email {
                to: to?,
                from: from?,
                smarthost: smarthost?,
                username: username?,
                password: password?,
                starttls,
            })
        }
    }
}

/// An optional field's outcome: `Some(None)` when not written, `None` when written and refused.
fn optional<T>(t: &Fields<'_>, key: &str, read: Option<T>) -> Option<Option<T>> {
    match read {
        Some(value) => Some(Some(value)),
        None if t.item(key).is_some() => None,
        None => Some(None),
    }
}

/// A required http(s) URL, which may use `${VAR}` (the receiver keeps it secret).
fn required_http_url(cx: &mut Cx<'_>, t: &Fields<'_>, key: &str) -> Option<Spanned<String>> {
    let raw = t.required_string(cx, key)?;
    http_url(cx, t, key, raw)
}

/// Checks that `raw` is an http:// or https:// URL with a host (messages quote its template).
fn http_url(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    key: &str,
    raw: Spanned<String>,
) -> Option<Spanned<String>> {
    let problem = match url_problem(&raw.value, raw.shown()) {
        Some(problem) => problem,
        None if url::Url::parse(&raw.value)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https")) =>
        {
            return Some(raw);
        }
        None => format!("`{}` is not an http:// or https:// URL", raw.shown()),
    };
    cx.error(&raw.span, format!("`{}`: {problem}", t.field(key)));
    None
}

/// `chat_id`: a string, or an integer read as its decimal text.
fn read_chat_id(cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<String> {
    if let Some(n) = t.item("chat_id").and_then(|item| item.as_integer()) {
        return Some(n.to_string());
    }
    required_plain(cx, t, "chat_id").map(|v| v.value)
}

/// `to`: required, not empty, each an address.
fn read_recipients(cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<Vec<String>> {
    let item = t.required_item(cx, "to", "e.g. [\"ops@example.com\"]")?;
    let (addresses, mut ok) = string_list(cx, t, "to")?;
    if ok && addresses.is_empty() {
        cx.error(
            &item.span(),
            format!(
                "`{}`: must not be empty (e.g. [\"ops@example.com\"])",
                t.field("to")
            ),
        );
        return None;
    }
    let mut to = Vec::new();
    for (field, value) in addresses {
        match address_problem(&value.value) {
            None => to.push(value.value),
            Some(problem) => {
                cx.error(&value.span, format!("`{field}`: {problem}"));
                ok = false;
            }
        }
    }
    ok.then_some(to)
}

fn address(cx: &mut Cx<'_>, t: &Fields<'_>, key: &str, value: Spanned<String>) -> Option<String> {
    match address_problem(&value.value) {
        None => Some(value.value),
        Some(problem) => {
            cx.error(&value.span, format!("`{}`: {problem}", t.field(key)));
            None
        }
    }
}

/// Why `text` is not an email address (one `@` with text on both sides), if it is not.
fn address_problem(text: &str) -> Option<String> {
    match text.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            None
        }
        _ => Some(format!(
            "`{text}` is not an email address (e.g. \"ops@example.com\")"
        )),
    }
}

/// Why `text` is not `host:port`, if it is not.
fn host_port_problem(text: &str) -> Option<String> {
    let example = "(e.g. \"smtp.example.com:587\")";
    let Some((host, port)) = text.rsplit_once(':') else {
        return Some(format!("`{text}` is not `host:port` {example}"));
    };
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Some(format!("`{text}` has no valid host {example}"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => None,
        _ => Some(format!(
            "`{text}`: `{port}` is not a port (1-65535) {example}"
        )),
    }
}

/// What reading the route tree needs and collects.
struct RouteReader<'a> {
    /// Every declared receiver's name.
    receivers: Vec<&'a str>,
    /// The receivers routes name.
    used: BTreeSet<String>,
    queues: &'a [QueueSpec],
    partial_kinds: &'a HashSet<String>,
    pipelines: &'a [&'a str],
    remediations: BTreeMap<Vec<usize>, Remediation>,
    escalations: BTreeMap<Vec<usize>, Escalation>,
}

impl RouteReader<'_> {
    /// Reads the route `t` at `path` (child indices from the root) and its children.
    fn read(&mut self, cx: &mut Cx<'_>, t: &Fields<'_>, path: Vec<usize>) -> Route {
        let is_root = path.is_empty();
        let receiver = match t.string(cx, "receiver") {
            Some(v) => literal(cx, t, "receiver", v).and_then(|v| self.receiver_ref(cx, t, v)),
            None if is_root && t.item("receiver").is_none() => {
                cx.error(
                    &t.span,
                    format!(
                        "`{}`: missing required field (the receiver of the alerts no child route takes)",
                        t.field("receiver")
                    ),
                );
                None
            }
            None => None,
        };
        let matchers = read_matchers(cx, t, "matchers").unwrap_or_default();
        let continue_matching = t.boolean(cx, "continue").unwrap_or(false);
        if is_root {
            for (key, why) in [
                (
                    "matchers",
                    "the root route takes every alert; put matchers on its `routes`",
                ),
                ("continue", "the root route has no siblings to continue to"),
            ] {
                if let Some(span) = t.key_span(key) {
                    cx.error(&span, format!("`{}`: {why}", t.field(key)));
                }
            }
        }
        let group_by = self.read_group_by(cx, t);
        let group_wait_ms = t.duration_at_least(cx, "group_wait", 0).map(|d| d.value);
        let group_interval_ms = t
            .duration_at_least(cx, "group_interval", MIN_GROUP_INTERVAL_MS)
            .map(|d| d.value);
        let repeat_interval_ms = t
            .duration_at_least(cx, "repeat_interval", MIN_REPEAT_INTERVAL_MS)
            .map(|d| d.value);
        if let Some(remediation) = self.read_remediate(cx, t) {
            self.remediations.insert(path.clone(), remediation);
        }
        if let Some(escalation) = self.read_escalate(cx, t) {
            self.escalations.insert(path.clone(), escalation);
        }
        let mut routes = Vec::new();
        if path.len() >= MAX_ROUTE_DEPTH {
            if let Some(span) = t.key_span("routes") {
                cx.error(
                    &span,
                    format!(
                        "`{}`: routes nest at most {MAX_ROUTE_DEPTH} levels below `alerting.route`",
                        t.field("routes")
                    ),
                );
            }
        } else {
            for (i, (table, span)) in t.tables(cx, "routes").into_iter().enumerate() {
                let child = Fields::open(
                    cx,
                    table,
                    format!("{}[{i}]", t.field("routes")),
                    span,
                    ROUTE_KEYS,
                );
                let mut child_path = path.clone();
                child_path.push(i);
                routes.push(self.read(cx, &child, child_path));
            }
        }
        Route {
            receiver,
            matchers,
            continue_matching,
            group_by,
            group_wait_ms,
            group_interval_ms,
            repeat_interval_ms,
            routes,
        }
    }

    /// Checks that a route's `receiver` is declared, suggesting the closest one if it is not.
    fn receiver_ref(
        &mut self,
        cx: &mut Cx<'_>,
        t: &Fields<'_>,
        name: Spanned<String>,
    ) -> Option<String> {
        if self.receivers.contains(&name.value.as_str()) {
            self.used.insert(name.value.clone());
            return Some(name.value);
        }
        let hint = if self.receivers.is_empty() {
            "; no `[[alerting.receivers]]` are declared".to_owned()
        } else {
            did_you_mean(&name.value, &self.receivers)
                .unwrap_or_else(|| format!("; declared receivers: {}", self.receivers.join(", ")))
        };
        cx.error(
            &name.span,
            format!(
                "`{}`: unknown receiver `{}` (not declared in `[[alerting.receivers]]`){hint}",
                t.field("receiver"),
                name.value
            ),
        );
        None
    }

    /// `group_by`: label names, `["..."]` for every label, `[]` for none.
    fn read_group_by(&self, cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<GroupBy> {
        let names = read_label_names(cx, t, "group_by")?;
        t.item("group_by")?;
        if names.is_empty() {
            return Some(GroupBy::None);
        }
        if names.iter().any(|n| n.value == ALL_LABELS) {
            if names.len() == 1 {
                return Some(GroupBy::All);
            }
            if let Some(all) = names.iter().find(|n| n.value == ALL_LABELS) {
                cx.error(
                    &all.span,
                    format!(
                        "`{}`: `...` (every label, one group per alert) goes alone; remove the other labels or it",
                        t.field("group_by")
                    ),
                );
            }
            return None;
        }
        let mut labels: Vec<String> = Vec::new();
        for name in names {
            if !labels.contains(&name.value) {
                labels.push(name.value);
            }
        }
        Some(GroupBy::Labels(labels))
    }

    /// `escalate`: after how long an unacknowledged firing alert also goes to which receiver.
    fn read_escalate(&mut self, cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<Escalation> {
        let item = t.item("escalate")?;
        let e = Fields::open_item(cx, item, t.field("escalate"), ESCALATE_KEYS)?;
        let after = e
            .required_item(cx, "after", "e.g. \"15m\"")
            .and_then(|_| e.duration_at_least(cx, "after", MIN_ESCALATE_AFTER_MS));
        let receiver = e
            .required_string(cx, "receiver")
            .and_then(|v| literal(cx, &e, "receiver", v))
            .and_then(|v| self.receiver_ref(cx, &e, v));
        Some(Escalation {
            after_ms: after?.value,
            receiver: receiver?,
        })
    }

    /// `remediate`: a task on a declared queue of a kind it runs, enqueued per firing alert.
    fn read_remediate(&self, cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<Remediation> {
        let item = t.item("remediate")?;
        let r = Fields::open_item(cx, item, t.field("remediate"), REMEDIATE_KEYS)?;
        if r.item("pipeline").is_some() {
            let payload = crate::schedules::read_pipeline_start(cx, &r, self.pipelines)?;
            return Some(Remediation {
                queue: steward_core::queue::SYSTEM_QUEUE.to_owned(),
                kind: steward_core::queue::PIPELINE_KIND.to_owned(),
                payload,
            });
        }
        crate::schedules::reject_input(cx, &r);
        let queue = r
            .required_string(cx, "queue")
            .and_then(|v| literal(cx, &r, "queue", v))
            .and_then(|v| queue_ref(cx, &r, v, self.queues));
        let kind = r
            .required_string(cx, "kind")
            .and_then(|v| literal(cx, &r, "kind", v));
        let kind = match (queue, kind) {
            (Some(queue), Some(kind)) => kind_ref(cx, &r, kind, queue, self.partial_kinds),
            _ => None,
        };
        let payload = read_payload(cx, &r, queue);
        Some(Remediation {
            queue: queue?.name.clone(),
            kind: kind?,
            payload: payload?,
        })
    }
}

/// Reads `[[alerting.maintenance]]`: recurring windows (a cron start in a time zone, and a
/// duration) that mute the alerts matching their matchers.
fn read_maintenance(cx: &mut Cx<'_>, alerting: &Fields<'_>) -> Vec<MaintenanceWindow> {
    let mut windows = Vec::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    for (i, (table, span)) in alerting.tables(cx, "maintenance").into_iter().enumerate() {
        let path = format!("{}[{i}]", alerting.field("maintenance"));
        let t = Fields::open(cx, table, path, span, MAINTENANCE_KEYS);
        let name = t
            .required_string(cx, "name")
            .and_then(|v| literal(cx, &t, "name", v));
        if let Some(name) = &name
            && !names.insert(name.value.clone())
        {
            cx.error(
                &name.span,
                format!(
                    "`{}`: a maintenance window named `{}` is declared already",
                    t.field("name"),
                    name.value
                ),
            );
        }
        let matchers = read_matchers(cx, &t, "matchers");
        let starts = t
            .required_item(cx, "cron", "when each window starts, e.g. \"0 2 * * SUN\"")
            .and_then(|_| crate::schedules::read_cron(cx, &t));
        let zone = crate::schedules::read_zone(cx, &t);
        let duration = t
            .required_item(cx, "duration", "e.g. \"2h\"")
            .and_then(|_| t.duration_at_least(cx, "duration", MIN_WINDOW_MS));
        let duration = duration.and_then(|d| {
            if d.value > MAX_WINDOW_MS {
                cx.error(
                    &d.span,
                    format!(
                        "`{}`: at most 7 days (a longer mute is a silence, or a route change)",
                        t.field("duration")
                    ),
                );
                None
            } else {
                Some(d.value)
            }
        });
        if let (Some(name), Some(matchers), Some(starts), Some(zone), Some(duration_ms)) =
            (name, matchers, starts, zone, duration)
        {
            windows.push(MaintenanceWindow {
                name: name.value,
                matchers,
                starts,
                zone,
                duration_ms,
            });
        }
    }
    windows
}

/// `external_url`: an http(s) URL receivers link back to.
fn read_external_url(cx: &mut Cx<'_>, alerting: &Fields<'_>) -> Option<String> {
    let raw = alerting.literal_string(cx, "external_url")?;
    let field = alerting.field("external_url");
    if let Some(problem) = url_problem(&raw.value, &raw.value) {
        cx.error(&raw.span, format!("`{field}`: {problem}"));
        return None;
    }
    Some(raw.value.trim_end_matches('/').to_owned())
}

/// Reads `[[alerting.inhibit_rules]]`.
fn read_inhibit_rules(cx: &mut Cx<'_>, alerting: &Fields<'_>) -> Vec<InhibitRule> {
    let mut rules = Vec::new();
    for (i, (table, span)) in alerting.tables(cx, "inhibit_rules").into_iter().enumerate() {
        let path = format!("{}[{i}]", alerting.field("inhibit_rules"));
        let t = Fields::open(cx, table, path, span, INHIBIT_KEYS);
        let source = required_matchers(cx, &t, "source_matchers");
        let target = required_matchers(cx, &t, "target_matchers");
        let equal = read_label_names(cx, &t, "equal").and_then(|names| {
            let mut ok = true;
            for name in &names {
                if name.value == ALL_LABELS {
                    cx.error(
                        &name.span,
                        format!(
                            "`{}`: `...` is not a label name (it only has a meaning in `group_by`)",
                            t.field("equal")
                        ),
                    );
                    ok = false;
                }
            }
            ok.then(|| names.into_iter().map(|n| n.value).collect::<Vec<_>>())
        });
        if let (Some(source), Some(target), Some(equal)) = (source, target, equal) {
            rules.push(InhibitRule {
                source,
                target,
                equal,
            });
        }
    }
    rules
}

#[cfg(test)]
mod tests;
