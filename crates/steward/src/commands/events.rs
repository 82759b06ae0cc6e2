//! `steward events`: follow the live event stream, as lines for people or JSON for scripts.

use std::io::Write;
use std::process::ExitCode;

use chrono::{Local, TimeZone};
use serde_json::Value;
use steward_wire::events::{EventData, EventsQuery, StreamEvent};
use steward_wire::paths;

use crate::cli::{EventsArgs, OutputFormat};
use crate::client::{Client, block_on};
use crate::follow::Follower;

/// Runs `steward events`.
pub fn run(args: EventsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    let path = stream_path(&args.types, args.workspace.as_deref())?;
    let output = args.client.output;
    block_on(async move {
        let mut follower = Follower::new(&client, &path);
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

/// The stream's path with `types=…&workspace=…` (neither when not given).
pub fn stream_path(types: &[String], workspace: Option<&str>) -> anyhow::Result<String> {
    let query = EventsQuery {
        types: (!types.is_empty()).then(|| types.join(",")),
        workspace: workspace.map(str::to_owned),
    };
    Ok(paths::EVENTS.with_query(&[], &query)?)
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
    format!("{when}  {}  {workspace}  {}", event.kind, summary(event))
}

/// What happened, by type; `name=value` pairs for types this client does not know.
fn summary(event: &StreamEvent) -> String {
    match event.data() {
        Ok(EventData::TaskChanged {
            id,
            queue,
            kind,
            status,
            attempt,
            ..
        }) => format!("task {id} {queue}/{kind} attempt {attempt} → {status}"),
        Ok(EventData::CheckChanged {
            check,
            service,
            from,
            to,
            reason,
        }) => {
            let reason = if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            };
            format!("{check} ({service}) {from} → {to}{reason}")
        }
        Ok(EventData::Audit(record)) => format!(
            "#{} {} {} by {}",
            record.seq, record.action, record.target, record.actor.name
        ),
        Ok(EventData::AlertsChanged { alerts }) => alerts
            .iter()
            .map(|a| format!("{} {} {}", a.alertname, a.state, a.fingerprint))
            .collect::<Vec<_>>()
            .join("; "),
        Ok(EventData::Reset { reason }) => format!("{reason} (reload what you show)"),
        _ => fields(event),
    }
}

/// An event's fields as `name=value` pairs.
fn fields(event: &StreamEvent) -> String {
    event
        .detail
        .iter()
        .map(|(name, value)| match value {
            Value::String(s) => format!("{name}={s}"),
            other => format!("{name}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: Value) -> StreamEvent {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_query_names_types_and_workspace_encoded() {
        assert_eq!(stream_path(&[], None).unwrap(), "/api/v1/events");
        assert_eq!(
            stream_path(&["task_changed".into(), "audit".into()], Some("a b")).unwrap(),
            "/api/v1/events?types=task_changed%2Caudit&workspace=a+b"
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
