//! Rendering notifications and remediation payloads with minijinja templates. Pure: no I/O.
//!
//! **The notice context** is Alertmanager's template data with snake_case names, built from
//! [`Notice::webhook_body`] so templates and webhooks see the same values:
//!
//! | name | what |
//! |---|---|
//! | `receiver` | the receiver's name |
//! | `status` | `"firing"` while any alert fires, else `"resolved"` |
//! | `title` | Alertmanager's subject line: `[FIRING:2] <group label values> (<other common label values>)` |
//! | `group_key` | the group's key |
//! | `group_labels`, `common_labels`, `common_annotations` | maps of strings |
//! | `external_url` | where Steward answers |
//! | `alerts` | every alert, firing first; each has `status`, `labels`, `annotations`, `starts_at`, `ends_at` (RFC 3339; Go's zero time while firing, as Alertmanager sends), `generator_url` (`""` when none) and `fingerprint` |
//! | `firing`, `resolved` | the alerts in each state |
//!
//! **Undefined values.** Notice templates are lenient: a missing label prints as an empty
//! string, so a template written for one alert shape still delivers for another (an alert
//! that is never sent is worse than one with a blank). Remediation payloads are strict about
//! printing (minijinja's semi-strict mode: `{% if labels.x %}` still works): a task started
//! with a blank where a service name belonged could act on the wrong thing, so the payload
//! fails to render instead.
//!
//! **Escaping.** Each format escapes printed values for itself: Telegram's HTML (`<`, `>`,
//! `&`, `"`) and Slack's mrkdwn control characters (`<`, `>`, `&`). Text written in the
//! template itself is not escaped, so `<b>{{ title }}</b>` works; `|safe` prints a value as is.
//! Email is plain text and escapes nothing.
//!
//! **Bounds.** Templates come from config, so every render runs on a fuel budget
//! ([`FUEL`]: bounds time and memory, and running out is an error) and its output is bounded
//! by [`MAX_OUTPUT_BYTES`]: a notification longer than that is cut (marked `…`), a payload
//! fails.

use crate::text::one_line;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};
use serde::Serialize;
use serde_json::Value as Json;

use super::notice::Notice;
use super::spec::ReceiverKind;
use super::webhook::{NotifiedAlert, WebhookAlert, WebhookBody, webhook_body};
use crate::registry::Labels;

/// The most bytes one render may produce (a message, or all strings of one payload together).
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// The fuel one render may use: roughly instructions executed plus one per 64 bytes of data
/// made, so about 16 MB at most; a template producing a few KiB uses a small fraction.
pub const FUEL: u64 = 250_000;
/// Telegram's limit on a message's text, in UTF-16 code units.
pub const TELEGRAM_MAX_TEXT: usize = 4_096;
/// The longest email subject kept, in characters.
pub const MAX_SUBJECT_CHARS: usize = 250;
/// The longest error detail kept, in characters.
const MAX_DETAIL_CHARS: usize = 300;

/// Template names, which select the auto-escaping (see [`auto_escape`]).
const SLACK_NAME: &str = "slack";
const TELEGRAM_NAME: &str = "telegram";
const EMAIL_NAME: &str = "email";
const PAYLOAD_NAME: &str = "payload";
/// The custom auto-escape formats (see [`format_value`]).
const SLACK_ESCAPE: &str = "slack";
const TELEGRAM_ESCAPE: &str = "telegram";

/// Slack's default message (mrkdwn): the title, then one line per alert.
pub const DEFAULT_SLACK: &str = r#"*{{ title }}*
{%- for a in alerts[:20] %}
{{ ":fire:" if a.status == "firing" else ":white_check_mark:" }} *{{ a.labels.alertname or "alert" }}*
{%- if a.labels.severity %} `{{ a.labels.severity }}`{% endif %}
{%- if a.annotations.summary %} {{ a.annotations.summary|replace("\n", " ") }}{% endif %}
{%- if a.annotations.description %} — {{ a.annotations.description|replace("\n", " ") }}{% endif %}
{%- for k, v in a.labels|items if k != "alertname" and k != "severity" %} `{{ k }}={{ v }}`{% endfor %}
{%- if a.generator_url %} <{{ a.generator_url }}|source>{% endif %}
{%- if external_url %} <{{ external_url }}/alerts/{{ a.fingerprint }}|open>{% endif %}
{%- endfor %}
{%- if alerts|length > 20 %}
…and {{ alerts|length - 20 }} more
{%- endif %}"#;

/// Telegram's default message (HTML parse mode): the title, then a short block per alert.
pub const DEFAULT_TELEGRAM: &str = r#"<b>{{ title }}</b>
{%- for a in alerts[:15] %}

{{ "🔥" if a.status == "firing" else "✅" }} <b>{{ a.labels.alertname or "alert" }}</b>
{%- if a.labels.severity %} ({{ a.labels.severity }}){% endif %}
{%- if a.annotations.summary %}: {{ a.annotations.summary }}{% endif %}
{%- if a.annotations.description %}
<i>{{ a.annotations.description }}</i>
{%- endif %}
{%- for k, v in a.labels|items if k not in ["alertname", "severity"] %}{% if loop.first %}
{% else %} {% endif %}<code>{{ k }}={{ v }}</code>{% endfor %}
{%- if a.generator_url %}
<a href="{{ a.generator_url }}">source</a>
{%- endif %}
{%- if external_url %}
<a href="{{ external_url }}/alerts/{{ a.fingerprint }}">open in Steward</a>
{%- endif %}
{%- endfor %}
{%- if alerts|length > 15 %}

…and {{ alerts|length - 15 }} more
{%- endif %}"#;

/// Email's default subject: Alertmanager's.
pub const DEFAULT_EMAIL_SUBJECT: &str = "{{ title }}";

/// Email's default body (plain text): firing alerts, then resolved ones, with their details.
pub const DEFAULT_EMAIL: &str = r#"{{ title }}
{% for group, list in [["Firing", firing], ["Resolved", resolved]] if list %}
{{ group }} ({{ list|length }}):
{%- for a in list[:100] %}
- {{ a.labels.alertname or "alert" }}{% if a.labels.severity %} [{{ a.labels.severity }}]{% endif %}{% if a.annotations.summary %}: {{ a.annotations.summary }}{% endif %}
{%- if a.annotations.description %}
  {{ a.annotations.description|indent(2) }}
{%- endif %}
  Labels: {% for k, v in a.labels|items %}{{ k }}={{ v }}{% if not loop.last %}, {% endif %}{% endfor %}
  Started: {{ a.starts_at }}
{%- if a.status == "resolved" %}
  Ended: {{ a.ends_at }}
{%- endif %}
{%- if a.generator_url %}
  Source: {{ a.generator_url }}
{%- endif %}
{%- if external_url %}
  Open: {{ external_url }}/alerts/{{ a.fingerprint }}
{%- endif %}
{%- endfor %}
{%- if list|length > 100 %}
…and {{ list|length - 100 }} more
{%- endif %}
{% endfor %}
{%- if external_url %}
Sent by Steward: {{ external_url }}
{%- endif %}"#;

/// Why a template did not check or render. Details are short and printable; the context holds
/// no secrets, so neither do they.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The source does not parse.
    #[error("template syntax error{}: {detail}", at_line(*.line))]
    Syntax {
        /// The line (from 1), when known.
        line: Option<usize>,
        /// What is wrong.
        detail: String,
    },
    /// Rendering failed: an unknown filter, a type error, an undefined value where a payload
    /// printed one.
    #[error("template error{}: {detail}", at_line(*.line))]
    Render {
        /// The line (from 1), when known.
        line: Option<usize>,
        /// What is wrong.
        detail: String,
    },
    /// The output grew past the limit.
    #[error("template output exceeds {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The render used up its fuel (a loop too long, data too large).
    #[error("template used up its fuel ({fuel}): it does too much work")]
    OutOfFuel {
        /// The budget it had.
        fuel: u64,
    },
    /// A string of a remediation payload failed.
    #[error("payload {path}: {source}")]
    Payload {
        /// Where in the payload, e.g. `args[0].service`.
        path: String,
        /// What went wrong there.
        source: Box<TemplateError>,
    },
}

impl TemplateError {
    /// The line of the template where it failed, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Syntax { line, .. } | Self::Render { line, .. } => *line,
            Self::Payload { source, .. } => source.line(),
            Self::TooLarge { .. } | Self::OutOfFuel { .. } => None,
        }
    }
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" at line {l}")).unwrap_or_default()
}

/// The message formats of receivers that take text (webhooks always get Alertmanager's JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Slack mrkdwn; printed values are escaped for it.
    Slack,
    /// Telegram HTML (`parse_mode: HTML`); printed values are escaped for it and the text is
    /// kept within [`TELEGRAM_MAX_TEXT`].
    Telegram,
    /// A plain-text email with a subject.
    Email,
}

impl Format {
    /// The format a receiver kind takes; `None` for webhooks.
    pub fn of(kind: &ReceiverKind) -> Option<Self> {
        match kind {
            ReceiverKind::Webhook { .. } => None,
            ReceiverKind::Slack { .. } => Some(Self::Slack),
            ReceiverKind::Telegram { .. } => Some(Self::Telegram),
            ReceiverKind::Email { .. } => Some(Self::Email),
        }
    }

    /// The template used when the receiver sets none (the body, for email).
    pub fn default_template(self) -> &'static str {
        match self {
            Self::Slack => DEFAULT_SLACK,
            Self::Telegram => DEFAULT_TELEGRAM,
            Self::Email => DEFAULT_EMAIL,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Slack => SLACK_NAME,
            Self::Telegram => TELEGRAM_NAME,
            Self::Email => EMAIL_NAME,
        }
    }
}

/// A rendered notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The email subject: one line, at most [`MAX_SUBJECT_CHARS`]; `None` for other formats.
    pub subject: Option<String>,
    /// The text (the email body).
    pub text: String,
}

/// Checks a template from config: syntax errors (with their line), and, on a trial render
/// against a sample notice, unknown filters, tests and functions on the path that sample takes.
/// Errors that depend on the data (an undefined value, a type error) are left to render time.
pub fn check(source: &str) -> Result<(), TemplateError> {
    let env = environment(UndefinedBehavior::Lenient);
    let template = env
        .template_from_named_str(EMAIL_NAME, source)
        .map_err(convert)?;
    let sample = sample_context();
    let mut sink = Capped::new(MAX_OUTPUT_BYTES, Overflow::Truncate);
    match template.render_captured_to(sample, &mut sink) {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnknownFilter
                    | ErrorKind::UnknownTest
                    | ErrorKind::UnknownFunction
                    | ErrorKind::UnknownMethod
            ) =>
        {
            Err(convert(e))
        }
        _ => Ok(()),
    }
}

/// Renders `notice` for `format` with the receiver's `template` (`None`: the format's default).
///
/// For email the template is the body; the subject is [`DEFAULT_EMAIL_SUBJECT`] unless the
/// template sets one at its top level (`{% set subject = "…" %}`), which keeps one template per
/// receiver in the config (a `subject` set in a Slack or Telegram template is ignored).
///
/// Text past [`MAX_OUTPUT_BYTES`] is cut and marked `…`; Telegram text over
/// [`TELEGRAM_MAX_TEXT`] is cut where no tag or entity is split, with the open tags closed.
pub fn render(
    format: Format,
    template: Option<&str>,
    notice: &Notice,
    external_url: &str,
) -> Result<Message, TemplateError> {
    let body = notice.webhook_body(0, external_url);
    let context = Value::from(Serde(NoticeData::new(&body)));
    let env = environment(UndefinedBehavior::Lenient);
    let source = template.unwrap_or(format.default_template());
    let (text, set_subject) = run(
        &env,
        format.name(),
        source,
        &context,
        MAX_OUTPUT_BYTES,
        Overflow::Truncate,
    )?;
    Ok(match format {
        Format::Slack => Message {
            subject: None,
            text,
        },
        Format::Telegram => Message {
            subject: None,
            text: truncate_html(&text, TELEGRAM_MAX_TEXT),
        },
        Format::Email => {
            let subject = match set_subject.map(|s| one_line(&s, MAX_SUBJECT_CHARS)) {
                Some(s) if !s.is_empty() => s,
                _ => {
                    let (s, _) = run(
                        &env,
                        EMAIL_NAME,
                        DEFAULT_EMAIL_SUBJECT,
                        &context,
                        MAX_OUTPUT_BYTES,
                        Overflow::Truncate,
                    )?;
                    one_line(&s, MAX_SUBJECT_CHARS)
                }
            };
            Message {
                subject: Some(subject),
                text,
            }
        }
    })
}

/// Renders a remediation payload for one alert: every string value, however deep, is a
/// template over the alert (`labels`, `annotations`, `fingerprint`, `status`, `starts_at`,
/// `ends_at`, `generator_url`), strict about printing undefined values; other values and object
/// keys are kept as they are. All strings together may produce at most [`MAX_OUTPUT_BYTES`].
pub fn render_payload(payload: &Json, alert: &NotifiedAlert) -> Result<Json, TemplateError> {
    let body = webhook_body("", "", &Labels::new(), std::slice::from_ref(alert), 0, "");
    let context = match body.alerts.first() {
        Some(a) => Value::from(Serde(AlertData::from(a))),
        None => Value::UNDEFINED,
    };
    let env = environment(UndefinedBehavior::SemiStrict);
    let mut budget = MAX_OUTPUT_BYTES;
    let mut path = String::new();
    render_json(&env, payload, &context, &mut budget, &mut path)
}

/// Renders `payload` as [`render_payload`] does, over any `context` (a pipeline step's payload
/// over its run: `input`, `run`, `steps`), strict about printing undefined values.
pub fn render_payload_over(payload: &Json, context: &Json) -> Result<Json, TemplateError> {
    let env = environment(UndefinedBehavior::SemiStrict);
    let mut budget = MAX_OUTPUT_BYTES;
    let mut path = String::new();
    render_json(
        &env,
        payload,
        &Value::from(Serde(context)),
        &mut budget,
        &mut path,
    )
}

/// Checks every template string of a payload for syntax, without rendering. Answers the
/// top-level and dotted names each one reads (`steps.alba.result`), so a reader can check what
/// they refer to.
pub fn check_payload(payload: &Json) -> Result<std::collections::BTreeSet<String>, TemplateError> {
    let env = environment(UndefinedBehavior::SemiStrict);
    let mut names = std::collections::BTreeSet::new();
    let mut path = String::new();
    check_json(&env, payload, &mut path, &mut names)?;
    Ok(names)
}

fn check_json(
    env: &Environment<'static>,
    value: &Json,
    path: &mut String,
    names: &mut std::collections::BTreeSet<String>,
) -> Result<(), TemplateError> {
    match value {
        Json::String(s) if s.contains("{{") || s.contains("{%") || s.contains("{#") => {
            let template = env.template_from_named_str(PAYLOAD_NAME, s).map_err(|e| {
                TemplateError::Payload {
                    path: if path.is_empty() {
                        "(root)".to_owned()
                    } else {
                        path.clone()
                    },
                    source: Box::new(convert(e)),
                }
            })?;
            names.extend(template.undeclared_variables(true));
        }
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                check_json(env, item, path, names)?;
                path.truncate(len);
            }
        }
        Json::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                check_json(env, item, path, names)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// A condition (a minijinja expression, as in `{% if … %}`) checked for syntax; answers the
/// names it reads, as [`check_payload`] does.
pub fn check_condition(expr: &str) -> Result<std::collections::BTreeSet<String>, TemplateError> {
    let env = environment(UndefinedBehavior::SemiStrict);
    let compiled = env.compile_expression(expr).map_err(convert)?;
    Ok(compiled.undeclared_variables(true).into_iter().collect())
}

/// Evaluates a condition over `context`: its truth, as `{% if %}` would judge it (an undefined
/// value is false).
pub fn eval_condition(expr: &str, context: &Json) -> Result<bool, TemplateError> {
    let env = environment(UndefinedBehavior::SemiStrict);
    let compiled = env.compile_expression(expr).map_err(convert)?;
    let value = compiled
        .eval(Value::from(Serde(context)))
        .map_err(convert)?;
    Ok(value.is_true())
}

fn render_json(
    env: &Environment<'static>,
    value: &Json,
    context: &Value,
    budget: &mut usize,
    path: &mut String,
) -> Result<Json, TemplateError> {
    Ok(match value {
        // Text without template syntax is used as is; it still counts towards the budget.
        Json::String(s) if !s.contains("{{") && !s.contains("{%") && !s.contains("{#") => {
            *budget = budget.checked_sub(s.len()).ok_or(TemplateError::TooLarge {
                limit: MAX_OUTPUT_BYTES,
            })?;
            Json::String(s.clone())
        }
        Json::String(s) => {
            let (text, _) =
                run(env, PAYLOAD_NAME, s, context, *budget, Overflow::Fail).map_err(|e| {
                    TemplateError::Payload {
                        path: if path.is_empty() {
                            "(root)".to_owned()
                        } else {
                            path.clone()
                        },
                        source: Box::new(e),
                    }
                })?;
            *budget -= text.len().min(*budget);
            Json::String(text)
        }
        Json::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                out.push(render_json(env, item, context, budget, path)?);
                path.truncate(len);
            }
            Json::Array(out)
        }
        Json::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (key, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                out.insert(key.clone(), render_json(env, item, context, budget, path)?);
                path.truncate(len);
            }
            Json::Object(out)
        }
        other => other.clone(),
    })
}

/// The notice context (see the module's documentation).
#[derive(Serialize)]
struct NoticeData<'a> {
    receiver: &'a str,
    status: &'a str,
    title: String,
    group_key: &'a str,
    group_labels: &'a Labels,
    common_labels: &'a Labels,
    common_annotations: &'a Labels,
    external_url: &'a str,
    alerts: Vec<AlertData<'a>>,
    firing: Vec<AlertData<'a>>,
    resolved: Vec<AlertData<'a>>,
}

impl<'a> NoticeData<'a> {
    fn new(body: &'a WebhookBody) -> Self {
        let alerts: Vec<AlertData<'a>> = body.alerts.iter().map(AlertData::from).collect();
        let (firing, resolved) = alerts.iter().cloned().partition(|a| a.status == "firing");
        Self {
            receiver: &body.receiver,
            status: body.status,
            title: title(body),
            group_key: &body.group_key,
            group_labels: &body.group_labels,
            common_labels: &body.common_labels,
            common_annotations: &body.common_annotations,
            external_url: &body.external_url,
            alerts,
            firing,
            resolved,
        }
    }
}

/// One alert in a template's context.
#[derive(Serialize, Clone)]
struct AlertData<'a> {
    status: &'a str,
    labels: &'a Labels,
    annotations: &'a Labels,
    starts_at: &'a str,
    ends_at: &'a str,
    generator_url: &'a str,
    fingerprint: &'a str,
}

impl<'a> From<&'a WebhookAlert<'a>> for AlertData<'a> {
    fn from(a: &'a WebhookAlert<'a>) -> Self {
        Self {
            status: a.status,
            labels: a.labels,
            annotations: a.annotations,
            starts_at: &a.starts_at,
            ends_at: &a.ends_at,
            generator_url: &a.generator_url,
            fingerprint: &a.fingerprint,
        }
    }
}

/// Alertmanager's `__subject`: `[FIRING:n]` (or `[RESOLVED]`), the group label values, then the
/// other common label values in parentheses.
fn title(body: &WebhookBody) -> String {
    let mut title = if body.status == "firing" {
        let firing = body.alerts.iter().filter(|a| a.status == "firing").count();
        format!("[FIRING:{firing}]")
    } else {
        "[RESOLVED]".to_owned()
    };
    for value in body.group_labels.values() {
        title.push(' ');
        title.push_str(value);
    }
    let others: Vec<&str> = body
        .common_labels
        .iter()
        .filter(|(k, _)| !body.group_labels.contains_key(*k))
        .map(|(_, v)| v.as_str())
        .collect();
    if !others.is_empty() {
        title.push_str(" (");
        title.push_str(&others.join(" "));
        title.push(')');
    }
    title
}

/// A context with every name a template may use, for [`check`]'s trial render.
fn sample_context() -> Value {
    let labels: Labels = [("alertname", "Sample"), ("severity", "warning")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let annotations: Labels = [("summary", "sample"), ("description", "sample")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let alert = WebhookAlert {
        status: "firing",
        labels: &labels,
        annotations: &annotations,
        starts_at: "1970-01-01T00:00:00+00:00".to_owned(),
        ends_at: "0001-01-01T00:00:00Z".to_owned(),
        generator_url: String::new(),
        fingerprint: "0000000000000000".to_owned(),
    };
    let body = WebhookBody {
        version: "4",
        group_key: "/:sample:{}".to_owned(),
        truncated_alerts: 0,
        status: "firing",
        receiver: "sample".to_owned(),
        group_labels: Labels::new(),
        common_labels: labels.clone(),
        common_annotations: annotations.clone(),
        external_url: String::new(),
        alerts: vec![alert],
    };
    // One context serves notice and payload templates: the notice's names plus the alert's.
    let notice = Value::from(Serde(NoticeData::new(&body)));
    let alert = body
        .alerts
        .first()
        .map(|a| Value::from(Serde(AlertData::from(a))))
        .unwrap_or_default();
    Value::from_iter(
        alert
            .try_iter()
            .into_iter()
            .flatten()
            .chain(notice.try_iter().into_iter().flatten())
            .map(|k| {
                let v = notice
                    .get_item(&k)
                    .ok()
                    .filter(|v| !v.is_undefined())
                    .or_else(|| alert.get_item(&k).ok())
                    .unwrap_or_default();
                (k, v)
            }),
    )
}

/// A fresh environment: no loader, the formats' escaping, a fuel budget.
fn environment(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    env.set_fuel(Some(FUEL));
    env.set_auto_escape_callback(auto_escape);
    env.set_formatter(format_value);
    env
}

fn auto_escape(name: &str) -> AutoEscape {
    match name {
        TELEGRAM_NAME => AutoEscape::Custom(Cow::Borrowed(TELEGRAM_ESCAPE)),
        SLACK_NAME => AutoEscape::Custom(Cow::Borrowed(SLACK_ESCAPE)),
        _ => AutoEscape::None,
    }
}

/// Prints a value, escaped for the template's format. Slack's mrkdwn has only `&`, `<` and `>`
/// as control characters and decodes no other entity; Telegram's HTML knows only the named
/// entities for those and `"`, so neither gets minijinja's HTML escaping (which also writes
/// `&#x27;` and `&#x2f;`).
fn format_value(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    let quotes = match state.auto_escape() {
        AutoEscape::Custom(name) if name == SLACK_ESCAPE => false,
        AutoEscape::Custom(name) if name == TELEGRAM_ESCAPE => true,
        _ => return minijinja::escape_formatter(out, state, value),
    };
    // Notices are lenient, so an undefined value prints as nothing, as minijinja's own
    // formatter would print it.
    if value.is_undefined() {
        return Ok(());
    }
    let text = value.to_string();
    if value.is_safe() {
        return out.write_str(&text).map_err(minijinja::Error::from);
    }
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' if quotes => escaped.push_str("&quot;"),
            c => escaped.push(c),
        }
    }
    out.write_str(&escaped).map_err(minijinja::Error::from)
}

/// What a render does at its output limit.
#[derive(Clone, Copy)]
enum Overflow {
    /// Keeps what fits and marks the cut with `…`: a notification cut short still tells
    /// someone, where one refused would tell no one.
    Truncate,
    /// Fails: a payload is data, and data cut short could mean something else.
    Fail,
}

/// Renders `source` (named `name`, which picks the escaping) into at most `limit` bytes; also
/// gives the top-level `subject` the template set, if any.
fn run(
    env: &Environment<'static>,
    name: &'static str,
    source: &str,
    context: &Value,
    limit: usize,
    overflow: Overflow,
) -> Result<(String, Option<String>), TemplateError> {
    let template = env.template_from_named_str(name, source).map_err(convert)?;
    let mut out = Capped::new(limit, overflow);
    let captured = match template.render_captured_to(context.clone(), &mut out) {
        Ok(captured) => captured,
        Err(_) if out.overflowed && matches!(overflow, Overflow::Fail) => {
            return Err(TemplateError::TooLarge { limit });
        }
        Err(e) => return Err(convert(e)),
    };
    let subject = captured
        .state()
        .lookup("subject")
        .filter(|v| !v.is_undefined() && !v.is_none())
        .map(|v| v.to_string());
    let mut text = String::from_utf8_lossy(&out.buf).into_owned();
    if out.overflowed {
        text.push('…');
    }
    Ok((text, subject))
}

fn convert(e: minijinja::Error) -> TemplateError {
    let detail = printable(e.detail().unwrap_or_else(|| kind_text(e.kind())));
    match e.kind() {
        ErrorKind::SyntaxError | ErrorKind::BadEscape | ErrorKind::InvalidDelimiter => {
            TemplateError::Syntax {
                line: e.line(),
                detail,
            }
        }
        ErrorKind::OutOfFuel => TemplateError::OutOfFuel { fuel: FUEL },
        _ => TemplateError::Render {
            line: e.line(),
            detail: if e.detail().is_some() {
                format!("{}: {detail}", kind_text(e.kind()))
            } else {
                detail
            },
        },
    }
}

fn kind_text(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::UndefinedError => "undefined value",
        ErrorKind::UnknownFilter => "unknown filter",
        ErrorKind::UnknownTest => "unknown test",
        ErrorKind::UnknownFunction => "unknown function",
        ErrorKind::UnknownMethod => "unknown method",
        ErrorKind::InvalidOperation => "invalid operation",
        ErrorKind::TooManyArguments => "too many arguments",
        ErrorKind::MissingArgument => "missing argument",
        ErrorKind::NonPrimitive | ErrorKind::NonKey => "invalid value",
        ErrorKind::CannotUnpack => "cannot unpack",
        ErrorKind::SyntaxError => "syntax error",
        _ => "failed",
    }
}

/// Control characters become spaces and the text is cut, so a detail fits one log line.
fn printable(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_DETAIL_CHARS)
        .collect();
    if text.chars().count() > MAX_DETAIL_CHARS {
        out.push('…');
    }
    out
}

/// Collects output up to a limit; past it, writes fail or are dropped (see [`Overflow`]), and
/// `overflowed` says so.
struct Capped {
    buf: Vec<u8>,
    limit: usize,
    overflow: Overflow,
    overflowed: bool,
}

impl Capped {
    fn new(limit: usize, overflow: Overflow) -> Self {
        Self {
            buf: Vec::new(),
            limit,
            overflow,
            overflowed: false,
        }
    }
}

impl io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.limit.saturating_sub(self.buf.len());
        if data.len() <= room {
            self.buf.extend_from_slice(data);
            return Ok(data.len());
        }
        self.overflowed = true;
        match self.overflow {
            Overflow::Fail => Err(io::Error::other("template output too large")),
            Overflow::Truncate => {
                // Keep whole characters only: back up over UTF-8 continuation bytes.
                let mut end = room;
                while end > 0 && data.get(end).is_some_and(|b| b & 0xC0 == 0x80) {
                    end -= 1;
                }
                self.buf.extend_from_slice(&data[..end]);
                self.limit = self.buf.len();
                Ok(data.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Cuts HTML to at most `max` UTF-16 code units (Telegram's measure) without splitting a tag
/// or an entity, closing the tags left open and marking the cut with `…`. Counting the markup
/// too overestimates the text Telegram sees, which errs on the safe side. Prefers to cut at a
/// line break in the last quarter.
pub fn truncate_html(text: &str, max: usize) -> String {
    let units = |s: &str| s.chars().map(char::len_utf16).sum::<usize>();
    if units(text) <= max {
        return text.to_owned();
    }
    const MARK: &str = "…";
    let closers = |stack: &[&str]| stack.iter().map(|t| t.len() + 3).sum::<usize>();
    let mut stack: Vec<&str> = Vec::new();
    // The best cut so far, and the best at a line break: (byte index, open tags).
    let mut best: (usize, Vec<&str>) = (0, Vec::new());
    let mut best_line: Option<(usize, Vec<&str>)> = None;
    let mut used = 0usize;
    let mut i = 0usize;
    while i < text.len() {
        if used + closers(&stack) + units(MARK) <= max {
            best = (i, stack.clone());
            if text[i..].starts_with('\n') && used * 4 >= max * 3 {
                best_line = Some((i, stack.clone()));
            }
        } else {
            break;
        }
        let rest = &text[i..];
        let step = if rest.starts_with('<') {
            match rest.find('>') {
                Some(end) => {
                    let tag = &rest[1..end];
                    if let Some(name) = tag.strip_prefix('/') {
                        let name = name.trim();
                        if let Some(pos) = stack.iter().rposition(|t| t.eq_ignore_ascii_case(name))
                        {
                            stack.truncate(pos);
                        }
                    } else if !tag.ends_with('/') {
                        let name = tag
                            .split(|c: char| c.is_whitespace())
                            .next()
                            .unwrap_or_default();
                        if !name.is_empty() {
                            stack.push(name);
                        }
                    }
                    end + 1
                }
                None => rest.len(),
            }
        } else if rest.starts_with('&') {
            // An entity is short; a `&` without a `;` soon after is a plain character.
            match rest.bytes().take(12).position(|b| b == b';') {
                Some(end) => end + 1,
                None => 1,
            }
        } else {
            rest.chars().next().map_or(1, char::len_utf8)
        };
        used += units(&rest[..step]);
        i += step;
    }
    let (cut, open) = best_line.unwrap_or(best);
    let mut out = text[..cut].trim_end().to_owned();
    out.push_str(MARK);
    for tag in open.iter().rev() {
        out.push_str("</");
        out.push_str(tag);
        out.push('>');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::group::Reason;
    use crate::alert::{AlertState, Fingerprint};
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn alert(service: &str, state: AlertState) -> NotifiedAlert {
        let l = labels(&[
            ("alertname", "ApiDown"),
            ("service", service),
            ("severity", "critical"),
        ]);
        NotifiedAlert {
            fingerprint: Fingerprint::of(&l),
            state,
            labels: l.into(),
            annotations: labels(&[
                ("summary", "API is down"),
                ("description", "5xx <for> 5 minutes & more"),
            ])
            .into(),
            starts_at_ms: 60_000,
            ends_at_ms: (state == AlertState::Resolved).then_some(120_000),
            generator_url: Some("http://prom/graph?a=1&b=2".into()),
        }
    }

    fn notice(alerts: Vec<NotifiedAlert>) -> Notice {
        Notice {
            receiver: "ops".into(),
            group_key: "/:ops:{alertname=\"ApiDown\"}".into(),
            group_labels: labels(&[("alertname", "ApiDown")]),
            reason: Reason::Changed,
            alerts,
            encodings: Default::default(),
        }
    }

    /// Two firing alerts (api, then web, which started later) and a resolved one.
    fn two() -> Notice {
        let mut web = alert("web", AlertState::Firing);
        web.starts_at_ms += 1_000;
        notice(vec![
            web,
            alert("db", AlertState::Resolved),
            alert("api", AlertState::Firing),
        ])
    }

    #[test]
    fn the_title_is_alertmanagers_subject() {
        let m = render(Format::Email, None, &two(), "http://steward").unwrap();
        assert_eq!(m.subject.as_deref(), Some("[FIRING:2] ApiDown (critical)"));
        let resolved = notice(vec![alert("db", AlertState::Resolved)]);
        let m = render(Format::Email, None, &resolved, "").unwrap();
        assert_eq!(
            m.subject.as_deref(),
            Some("[RESOLVED] ApiDown (db critical)")
        );
    }

    #[test]
    fn slack_lists_one_line_per_alert_escaped() {
        let m = render(Format::Slack, None, &two(), "http://steward").unwrap();
        assert_eq!(m.subject, None);
        let lines: Vec<&str> = m.text.lines().collect();
        assert_eq!(lines[0], "*[FIRING:2] ApiDown (critical)*", "{}", m.text);
        assert_eq!(lines.len(), 4, "{}", m.text);
        assert_eq!(
            lines[1],
            ":fire: *ApiDown* `critical` API is down — 5xx &lt;for&gt; 5 minutes &amp; more \
             `service=api` <http://prom/graph?a=1&amp;b=2|source> \
             <http://steward/alerts/fd87ecd0b9ef4465|open>"
        );
        assert!(lines[3].starts_with(":white_check_mark: *ApiDown*"));
        assert!(lines[3].contains("`service=db`"));
    }

    #[test]
    fn telegram_is_html_escaped() {
        let m = render(Format::Telegram, None, &two(), "").unwrap();
        assert!(
            m.text
                .starts_with("<b>[FIRING:2] ApiDown (critical)</b>\n\n🔥 <b>ApiDown</b> (critical): API is down\n"),
            "{}",
            m.text
        );
        assert!(
            m.text
                .contains("<i>5xx &lt;for&gt; 5 minutes &amp; more</i>")
        );
        assert!(m.text.contains("<code>service=api</code>\n"), "{}", m.text);
        assert!(
            m.text
                .contains("<a href=\"http://prom/graph?a=1&amp;b=2\">source</a>"),
            "{}",
            m.text
        );
        assert!(m.text.contains("✅ <b>ApiDown</b>"));
    }

    #[test]
    fn email_has_a_subject_and_a_plain_body() {
        let m = render(Format::Email, None, &two(), "http://steward").unwrap();
        let text = &m.text;
        assert!(text.starts_with("[FIRING:2] ApiDown (critical)\n\nFiring (2):\n- ApiDown [critical]: API is down\n  5xx <for> 5 minutes & more\n  Labels: alertname=ApiDown, service=api, severity=critical\n  Started: 1970-01-01T00:01:00+00:00\n  Source: http://prom/graph?a=1&b=2\n"), "{text}");
        assert!(text.contains("\nResolved (1):\n- ApiDown"), "{text}");
        assert!(
            text.contains("  Ended: 1970-01-01T00:02:00+00:00"),
            "{text}"
        );
        assert!(text.ends_with("Sent by Steward: http://steward"), "{text}");
    }

    #[test]
    fn a_users_template_replaces_the_body_and_may_set_the_subject() {
        let n = two();
        let m = render(
            Format::Email,
            Some("{{ firing|length }} of {{ alerts|length }} for {{ receiver }}"),
            &n,
            "",
        )
        .unwrap();
        assert_eq!(m.text, "2 of 3 for ops");
        assert_eq!(m.subject.as_deref(), Some("[FIRING:2] ApiDown (critical)"));
        let m = render(
            Format::Email,
            Some("{% set subject = status|upper ~ '\n ' ~ group_labels.alertname %}body"),
            &n,
            "",
        )
        .unwrap();
        assert_eq!(m.subject.as_deref(), Some("FIRING ApiDown"));
        assert_eq!(m.text, "body");
        let m = render(
            Format::Slack,
            Some("{{ alerts[0].labels.missing }}|{{ common_annotations.summary }}|{{ group_key }}"),
            &n,
            "",
        )
        .unwrap();
        assert_eq!(
            m.text, "|API is down|/:ops:{alertname=\"ApiDown\"}",
            "lenient"
        );
        let m = render(
            Format::Telegram,
            Some("<b>{{ '<x>'|safe }}</b>{{ '\"&\\'' }}{{ '<'|e }}"),
            &n,
            "",
        )
        .unwrap();
        assert_eq!(m.text, "<b><x></b>&quot;&amp;'&lt;");
    }

    #[test]
    fn long_notices_list_a_bounded_number_of_alerts() {
        let mut alerts = Vec::new();
        for i in 0..500 {
            let mut a = alert(&format!("svc{i}"), AlertState::Firing);
            for j in 0..60 {
                std::sync::Arc::make_mut(&mut a.labels)
                    .insert(format!("label{j}"), format!("{i:040}"));
            }
            a.fingerprint = Fingerprint(i);
            alerts.push(a);
        }
        let n = notice(alerts);
        let slack = render(Format::Slack, None, &n, "").unwrap();
        assert!(slack.text.ends_with("…and 480 more"), "{}", slack.text);
        let telegram = render(Format::Telegram, None, &n, "").unwrap();
        let units: usize = telegram.text.chars().map(char::len_utf16).sum();
        assert!(units <= TELEGRAM_MAX_TEXT, "{units}");
        assert!(telegram.text.ends_with('…'), "{}", telegram.text);
        // Past the output limit the text is cut, not refused.
        let email = render(Format::Email, None, &n, "").unwrap();
        assert_eq!(email.text.len(), MAX_OUTPUT_BYTES + '…'.len_utf8());
        let plain: Vec<NotifiedAlert> = (0..150)
            .map(|i| {
                let mut a = alert(&format!("svc{i}"), AlertState::Firing);
                a.fingerprint = Fingerprint(i);
                a
            })
            .collect();
        let email = render(Format::Email, None, &notice(plain), "").unwrap();
        assert!(email.text.ends_with("…and 50 more\n"), "{}", email.text);
    }

    #[test]
    fn html_is_cut_between_tags_and_entities() {
        let text = "<b>title</b>\n<i>aaaa &amp; bbbb</i>";
        assert_eq!(truncate_html(text, 100), text);
        let cut = truncate_html(text, 25);
        assert_eq!(cut, "<b>title</b>\n<i>aaaa…</i>");
        let cut = truncate_html(text, 18);
        assert_eq!(cut, "<b>title</b>…");
        // The markup counts too: 7 + 4 + 1 + 8 units.
        let cut = truncate_html("<b>x<i>yyyyyyyyyyyyyyyyyyy</i></b>", 20);
        assert_eq!(cut, "<b>x<i>yyyy…</i></b>");
        assert_eq!(truncate_html("a&amp;bcdefgh", 7), "a&amp;…");
        assert_eq!(truncate_html("a&amp;bcdefgh", 6), "a…");
        assert_eq!(truncate_html("😀😀😀", 5), "😀😀…");
        assert_eq!(truncate_html("<b>abc", 4), "…");
    }

    #[test]
    fn check_reports_syntax_errors_with_their_line() {
        assert_eq!(check("{{ title }}"), Ok(()));
        assert_eq!(check(DEFAULT_SLACK), Ok(()));
        assert_eq!(check(DEFAULT_TELEGRAM), Ok(()));
        assert_eq!(check(DEFAULT_EMAIL), Ok(()));
        let e = check("ok\nstill ok\n{% for a in alerts %}").unwrap_err();
        assert!(matches!(e, TemplateError::Syntax { .. }), "{e:?}");
        assert_eq!(e.line(), Some(3), "{e}");
        assert!(
            e.to_string()
                .starts_with("template syntax error at line 3: "),
            "{e}"
        );
        let e = check("a\n{{ title|no_such_filter }}").unwrap_err();
        assert!(e.to_string().contains("unknown filter"), "{e}");
        assert_eq!(e.line(), Some(2));
        // Data-dependent failures wait for render time.
        assert_eq!(check("{{ labels.nothing.deeper }}"), Ok(()));
    }

    #[test]
    fn runaway_templates_stop() {
        let n = two();
        let e = render(
            Format::Slack,
            Some("{% for i in range(100000) %}{{ i }}{% endfor %}"),
            &n,
            "",
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                TemplateError::OutOfFuel { .. } | TemplateError::TooLarge { .. }
            ),
            "{e:?}"
        );
        let e = render(Format::Slack, Some("{{ 'x' * 100000000 }}"), &n, "").unwrap_err();
        assert_eq!(e, TemplateError::OutOfFuel { fuel: FUEL });
        // Notifications are cut rather than refused; multi-byte characters stay whole.
        let m = render(
            Format::Email,
            Some("{% for i in range(70) %}{{ 'ü' * 500 }}{% endfor %}"),
            &n,
            "",
        )
        .unwrap();
        assert_eq!(m.text.len(), MAX_OUTPUT_BYTES + '…'.len_utf8());
        assert!(m.text.ends_with("üü…"));
        let e = render(
            Format::Email,
            Some("{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}"),
            &n,
            "",
        )
        .unwrap_err();
        assert_eq!(e, TemplateError::OutOfFuel { fuel: FUEL });
    }

    #[test]
    fn payloads_render_every_string_strictly() {
        let a = alert("api", AlertState::Firing);
        let payload = serde_json::json!({
            "service": "{{ labels.service }}",
            "args": ["restart", "{{ fingerprint }}", 3, {"since": "{{ starts_at }}"}],
            "note": "{{ annotations.summary|upper }} ({{ status }})",
            "plain": "no {template} here",
            "flag": true,
            "none": null,
        });
        let out = render_payload(&payload, &a).unwrap();
        assert_eq!(
            out,
            serde_json::json!({
                "service": "api",
                "args": ["restart", a.fingerprint.to_string(), 3, {"since": "1970-01-01T00:01:00+00:00"}],
                "note": "API IS DOWN (firing)",
                "plain": "no {template} here",
                "flag": true,
                "none": null,
            })
        );
        let e = render_payload(
            &serde_json::json!({"args": [{"team": "{{ labels.team }}"}]}),
            &a,
        )
        .unwrap_err();
        assert!(matches!(e, TemplateError::Payload { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("payload args[0].team: template error at line 1: undefined value"),
            "{e}"
        );
        // Tests of definedness still work under the strict rules.
        let out = render_payload(
            &serde_json::json!("{% if labels.team %}{{ labels.team }}{% else %}none{% endif %}"),
            &a,
        )
        .unwrap();
        assert_eq!(out, serde_json::json!("none"));
        // Payloads don't escape: they are data, not markup.
        let out = render_payload(&serde_json::json!("{{ annotations.description }}"), &a).unwrap();
        assert_eq!(out, serde_json::json!("5xx <for> 5 minutes & more"));
        let big = serde_json::json!(["{{ 'x' * 40000 }}", "{{ 'x' * 40000 }}"]);
        assert!(render_payload(&big, &a).is_err());
    }

    proptest! {
        #[test]
        fn nothing_panics(source in "[{}%#a-z .|()\\[\\]'\"=<>&;~*éü😀-]{0,60}") {
            let _ = check(&source);
            let n = two();
            for format in [Format::Slack, Format::Telegram, Format::Email] {
                let _ = render(format, Some(&source), &n, "");
            }
            let _ = render_payload(&Json::String(source.clone()), &n.alerts[0]);
            let _ = truncate_html(&source, 10);
        }

        #[test]
        fn cut_html_fits(text in "[<>/&;ab é😀\n]{0,80}", max in 1usize..40) {
            let cut = truncate_html(&text, max);
            let units: usize = cut.chars().map(char::len_utf16).sum();
            prop_assert!(units <= max, "{:?} → {:?}", text, cut);
        }
    }
}
