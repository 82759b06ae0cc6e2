//! `steward events`: follow the live event stream, as lines for people or JSON for scripts.

use std::io::Write;
use std::process::ExitCode;

use chrono::{Local, TimeZone};
use serde_json::Value;
use steward_wire::events::StreamEvent;

use crate::cli::{EventsArgs, OutputFormat};
use crate::client::{Client, block_on, encode_query_value};
use crate::follow::{Follower, is_reset};

/// Runs `steward events`.
pub fn run(args: EventsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    let query = query(&args.types, args.workspace.as_deref());
    let output = args.client.output;
    block_on(async move {
        let mut follower = Follower::new(&client, &query);
        loop {
            let event = follower.next().await?;
            let mut out = std::io::stdout().lock();
            match output {
                OutputFormat::Json => writeln!(out, "{}", serde_json::to_string(&event)?)?,
                OutputFormat::Table => writeln!(out, "{}", line(&event))?,
            }
            out.flush()?;
        }
    })
}

/// `?types=…&workspace=…` (empty when neither is given).
pub fn query(types: &[String], workspace: Option<&str>) -> String {
    let mut parts = Vec::new();
    if !types.is_empty() {
        parts.push(format!("types={}", encode_query_value(&types.join(","))));
    }
    if let Some(workspace) = workspace {
        parts.push(format!("workspace={}", encode_query_value(workspace)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// One event as a line: local time with its zone, type, workspace and what happened.
pub fn line(event: &StreamEvent) -> String {
    let when = Local
        .timestamp_millis_opt(event.at_ms)
        .single()
        .map_or_else(
            || event.at.clone(),
            |t| t.format("%Y-%m-%d %H:%M:%S%.3f %:z").to_string(),
        );
    let workspace = event.workspace.as_deref().unwrap_or("-");
    if is_reset(event) {
        return format!(
            "{when}  reset  -  {} (reload what you show)",
            text(&event.detail, "reason")
        );
    }
    format!("{when}  {}  {workspace}  {}", event.kind, summary(event))
}

fn text(detail: &serde_json::Map<String, Value>, name: &str) -> String {
    match detail.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// The fields that say what happened, by type; `name=value` pairs for the rest.
fn summary(event: &StreamEvent) -> String {
    let d = &event.detail;
    let t = |name| text(d, name);
    match event.kind.as_str() {
        "task_changed" => format!(
            "task {} {}/{} attempt {} → {}",
            t("id"),
            t("queue"),
            t("kind"),
            t("attempt"),
            t("status")
        ),
        "check_changed" => {
            let reason = t("reason");
            let reason = if reason.is_empty() || reason == "-" {
                String::new()
            } else {
                format!(": {reason}")
            };
            format!(
                "{} ({}) {} → {}{reason}",
                t("check"),
                t("service"),
                t("from"),
                t("to")
            )
        }
        "audit" => format!(
            "#{} {} {} by {}",
            t("seq"),
            t("action"),
            t("target"),
            actor(d)
        ),
        "alerts_changed" => d
            .get("alerts")
            .and_then(Value::as_array)
            .map(|alerts| {
                alerts
                    .iter()
                    .map(|a| {
                        format!(
                            "{} {} {}",
                            cell(a, "alertname"),
                            cell(a, "state"),
                            cell(a, "fingerprint")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default(),
        _ => d
            .iter()
            .map(|(name, value)| match value {
                Value::String(s) => format!("{name}={s}"),
                other => format!("{name}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn cell(value: &Value, name: &str) -> String {
    value
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or("-")
        .to_string()
}

fn actor(detail: &serde_json::Map<String, Value>) -> String {
    detail
        .get("actor")
        .and_then(|a| a.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("-")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: Value) -> StreamEvent {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_query_names_types_and_workspace_encoded() {
        assert_eq!(query(&[], None), "");
        assert_eq!(
            query(&["task_changed".into(), "audit".into()], Some("a b")),
            "?types=task_changed%2Caudit&workspace=a%20b"
        );
    }

    #[test]
    fn lines_say_what_happened_with_a_local_time_and_zone() {
        let line = line(&event(serde_json::json!({
            "type": "check_changed", "at": "2026-12-06T21:48:32.123Z", "at_ms": 1_796_593_712_123_i64,
            "workspace": "ops", "instance": "a", "check": "api", "service": "api",
            "from": "up", "to": "down", "reason": "status 500"
        })));
        assert!(
            line.contains("check_changed  ops  api (api) up → down: status 500"),
            "{line}"
        );
        assert!(line.contains(":32.123 "), "{line}");
        assert!(line.contains('+') || line.contains('-'), "zone: {line}");
        let generic = super::line(&event(serde_json::json!({
            "type": "leadership_changed", "at": "x", "at_ms": 0, "role": "scheduler", "leading": true
        })));
        assert!(
            generic.ends_with("leading=true role=scheduler"),
            "{generic}"
        );
    }
}
