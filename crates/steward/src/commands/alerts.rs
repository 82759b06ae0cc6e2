//! `steward alerts`: list, show and acknowledge alerts and create, list and end silences through
//! the API; `test-route` shows offline where the config's route tree sends an alert.

use std::path::Path;
use std::process::ExitCode;

use std::collections::BTreeMap;

use anyhow::bail;
use steward_core::alert::Severity;
use steward_core::alert::notice::group_key;
use steward_core::alert::route::{Destination, GroupBy, Matcher, Route};
use steward_core::registry::Labels;
use steward_core::text::printable;
use steward_wire::alerts::{
    AckAlert, Alert, AlertDetail, AlertList, AlertListQuery, NewSilence, Notification, Silence,
    SilenceList,
};
use steward_wire::paths;

use crate::EXIT_INVALID;
use crate::cli::{AlertsCommand, OutputFormat};
use crate::client::{Client, block_on, local_time, or_dash, print_json, print_table};
use crate::commands::load_or_exit;
use crate::commands::schedule::duration;

/// Runs a `steward alerts …` command.
pub fn run(command: AlertsCommand) -> anyhow::Result<ExitCode> {
    if let AlertsCommand::TestRoute {
        labels,
        config,
        output,
    } = command
    {
        return test_route(&labels, &config, output);
    }
    block_on(async move {
        match command {
            // Handled above, without a server.
            AlertsCommand::TestRoute { .. } => {}
            AlertsCommand::Ls {
                state,
                severity,
                labels,
                limit,
                client,
            } => {
                let query = match list_query(state, severity, &labels, limit) {
                    Ok(query) => query,
                    Err(e) => return Ok(invalid(&e)),
                };
                let path = paths::ALERTS.with_query(&[], &query)?;
                let answer: AlertList = Client::new(&client)?.get(&path).await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    let rows: Vec<Vec<String>> = answer.alerts.iter().map(alert_row).collect();
                    print_table(
                        &[
                            "FINGERPRINT",
                            "STATE",
                            "SEVERITY",
                            "ALERTNAME",
                            "LABELS",
                            "STARTED",
                            "ACK",
                        ],
                        &rows,
                    );
                }
            }
            AlertsCommand::Show {
                fingerprint,
                client,
            } => {
                let answer: AlertDetail = Client::new(&client)?
                    .get(&paths::ALERT.with(&[&fingerprint]))
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    print_detail(&answer);
                }
            }
            AlertsCommand::Ack {
                fingerprint,
                note,
                client,
            } => {
                let api = Client::new(&client)?;
                let path = paths::ALERT_ACK.with(&[&fingerprint]);
                let answer: Alert = match note {
                    Some(note) => api.post(&path, &AckAlert { note }).await?,
                    None => api.post_empty(&path).await?,
                };
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    println!(
                        "alert {fingerprint}: episode {} acknowledged by {}",
                        answer.episode,
                        or_dash(answer.ack.as_ref().map(|a| printable(&a.by)))
                    );
                }
            }
            AlertsCommand::Silence {
                matchers,
                duration,
                until,
                comment,
                client,
            } => {
                let body = match silence_body(
                    &matchers,
                    duration,
                    until,
                    &comment,
                    steward_store::now_ms(),
                ) {
                    Ok(body) => body,
                    Err(e) => return Ok(invalid(&e)),
                };
                let answer: Silence = Client::new(&client)?
                    .post(&paths::SILENCES.with(&[]), &body)
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    // Only the id, so that scripts can keep it to end the silence later.
                    println!("{}", answer.id);
                }
            }
            AlertsCommand::Silences { client } => {
                let answer: SilenceList = Client::new(&client)?
                    .get(&paths::SILENCES.with(&[]))
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    let now = steward_store::now_ms();
                    let rows: Vec<Vec<String>> = answer
                        .silences
                        .iter()
                        .map(|s| silence_row(s, now))
                        .collect();
                    print_table(
                        &["ID", "STATE", "MATCHERS", "STARTS", "ENDS", "BY", "COMMENT"],
                        &rows,
                    );
                }
            }
            AlertsCommand::Unsilence { id, client } => {
                let answer: Silence = Client::new(&client)?
                    .delete(&paths::SILENCE.with(&[&id]))
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    println!("silence {id}: ended at {}", local_time(answer.ends_at_ms));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Prints `alerts show`: the alert as `key: value` lines, then its notifications as a table.
fn print_detail(detail: &AlertDetail) {
    for line in show_lines(&detail.alert) {
        println!("{line}");
    }
    println!();
    if detail.notifications.is_empty() {
        println!("notifications: none");
        return;
    }
    println!("notifications:");
    let rows: Vec<Vec<String>> = detail
        .notifications
        .iter()
        .map(|n| notification_row(&n.notification))
        .collect();
    print_table(
        &[
            "ID",
            "RECEIVER",
            "STATE",
            "REASON",
            "ATTEMPTS",
            "CREATED",
            "NEXT ATTEMPT",
            "FINISHED",
            "LAST ERROR",
        ],
        &rows,
    );
}

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

/// Reports arguments that do not go together (found after parsing them) like those clap
/// refuses: exit code 2, and nothing sent.
fn invalid(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::from(EXIT_INVALID)
}

/// The query of `GET /api/v1/alerts` for these filters.
fn list_query(
    state: Option<String>,
    severity: Option<Severity>,
    labels: &[(String, String)],
    limit: u32,
) -> anyhow::Result<AlertListQuery> {
    let mut seen = Labels::new();
    for (name, value) in labels {
        // The API keeps only the last value of a name given twice: say so rather than
        // silently filter by one of them.
        if seen.insert(name.clone(), value.clone()).is_some() {
            bail!("--label: `{name}` is given twice (an alert has one value per label)");
        }
    }
    let pairs: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v}")).collect();
    Ok(AlertListQuery {
        state,
        severity: severity.map(|s| s.as_str().to_owned()),
        labels: (!pairs.is_empty()).then(|| pairs.join(",")),
        limit: Some(limit),
    })
}

/// The body of `POST /api/v1/silences`; refuses an end in the past before anything is sent.
fn silence_body(
    matchers: &[Matcher],
    duration_ms: Option<u64>,
    until_ms: Option<i64>,
    comment: &str,
    now_ms: i64,
) -> anyhow::Result<NewSilence> {
    let mut body = NewSilence {
        matchers: matchers.iter().map(ToString::to_string).collect(),
        comment: comment.to_owned(),
        ..NewSilence::default()
    };
    match (duration_ms, until_ms) {
        (Some(ms), None) => {
            // In milliseconds, so that the server (whose clock starts the silence) reads
            // exactly the length checked here.
            body.duration = Some(format!("{ms}ms"));
        }
        (None, Some(until)) => {
            if until <= now_ms {
                bail!(
                    "--until: {} has passed; a silence must end in the future",
                    local_time(until)
                );
            }
            body.ends_at_ms = Some(until);
        }
        _ => bail!("give one of --duration and --until"),
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------------------
// test-route
// ---------------------------------------------------------------------------------------------

/// Prints where the config's route tree sends an alert with `labels`.
fn test_route(labels: &Labels, config: &Path, output: OutputFormat) -> anyhow::Result<ExitCode> {
    let loaded = match load_or_exit(config) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    for warning in &loaded.warnings {
        eprintln!("{warning}");
    }
    let Some(route) = &loaded.config.alerting.route else {
        bail!(
            "{}: there is no [alerting.route], so alerts are stored but sent nowhere; declare \
             the root route (and its receiver) to route them",
            config.display()
        );
    };
    let destinations = route.destinations(labels);
    if destinations.is_empty() {
        bail!("{}: the root route names no receiver", config.display());
    }
    let report = route_report(route, labels, &destinations);
    if output == OutputFormat::Json {
        print_json(&report)?;
    } else {
        let rows: Vec<Vec<String>> = report.destinations.iter().map(destination_row).collect();
        print_table(
            &[
                "ROUTE",
                "MATCHERS",
                "RECEIVER",
                "GROUP BY",
                "WAIT",
                "INTERVAL",
                "REPEAT",
                "GROUP KEY",
            ],
            &rows,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What `test-route` reports: the labels, and each route and receiver they reach.
#[derive(Debug, serde::Serialize)]
struct RouteReport<'a> {
    labels: &'a Labels,
    destinations: Vec<RouteDestination>,
}

/// One route and receiver an alert reaches; `group_by` is written as in the config (`[]`: one
/// group, `["..."]`: one group per alert).
#[derive(Debug, serde::Serialize)]
struct RouteDestination {
    route: String,
    path: Vec<usize>,
    matchers: Vec<String>,
    receiver: String,
    group_by: Vec<String>,
    group_wait_ms: u64,
    group_interval_ms: u64,
    repeat_interval_ms: u64,
    group_key: String,
}

fn route_report<'a>(
    root: &Route,
    labels: &'a Labels,
    destinations: &[Destination],
) -> RouteReport<'a> {
    let destinations = destinations
        .iter()
        .map(|d| RouteDestination {
            route: route_name(&d.path),
            path: d.path.clone(),
            matchers: node(root, &d.path)
                .map(|r| r.matchers.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            receiver: d.receiver.clone(),
            group_by: match &d.group_by {
                GroupBy::None => Vec::new(),
                GroupBy::All => vec!["...".to_owned()],
                GroupBy::Labels(names) => names.clone(),
            },
            group_wait_ms: d.group_wait_ms,
            group_interval_ms: d.group_interval_ms,
            repeat_interval_ms: d.repeat_interval_ms,
            group_key: group_key(&d.path, &d.receiver, &d.group_by.key(labels)),
        })
        .collect();
    RouteReport {
        labels,
        destinations,
    }
}

/// The route at `path` (child indices from the root).
fn node<'a>(root: &'a Route, path: &[usize]) -> Option<&'a Route> {
    path.iter().try_fold(root, |route, &i| route.routes.get(i))
}

/// A route's place as group keys write it: `/` for the root, `/0/2` below it.
fn route_name(path: &[usize]) -> String {
    let parts: Vec<String> = path.iter().map(usize::to_string).collect();
    format!("/{}", parts.join("/"))
}

/// One `test-route` row.
fn destination_row(d: &RouteDestination) -> Vec<String> {
    let list = |items: &[String], empty: &str| {
        if items.is_empty() {
            empty.to_owned()
        } else {
            items
                .iter()
                .map(|i| printable(i))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let ms = |v: u64| duration(i64::try_from(v).unwrap_or(i64::MAX));
    vec![
        d.route.clone(),
        list(&d.matchers, "-"),
        printable(&d.receiver),
        list(&d.group_by, "(one group)"),
        ms(d.group_wait_ms),
        ms(d.group_interval_ms),
        ms(d.repeat_interval_ms),
        printable(&d.group_key),
    ]
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// Like [`printable`] (alerts carry text from other systems, so control characters, which
/// could drive the terminal, are shown as U+FFFD), but keeping line breaks (annotations such
/// as `description` often have several lines), each further line indented under the first.
fn block(value: &str) -> String {
    value
        .split('\n')
        .map(printable)
        .collect::<Vec<_>>()
        .join("\n    ")
}

/// `name=value` pairs of labels, comma-separated (as `--labels` takes them), leaving out
/// `skip`.
fn pairs(labels: &BTreeMap<String, String>, skip: &str) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .filter(|(name, _)| name.as_str() != skip)
        .map(|(name, value)| format!("{}={}", printable(name), printable(value)))
        .collect();
    if pairs.is_empty() {
        "-".to_owned()
    } else {
        pairs.join(",")
    }
}

/// One `alerts ls` row: FINGERPRINT, STATE, SEVERITY, ALERTNAME, LABELS, STARTED, ACK.
fn alert_row(alert: &Alert) -> Vec<String> {
    vec![
        printable(&alert.fingerprint),
        printable(&alert.state),
        printable(&alert.severity),
        or_dash(alert.labels.get("alertname").map(|n| printable(n))),
        pairs(&alert.labels, "alertname"),
        local_time(alert.starts_at_ms),
        or_dash(alert.ack.as_ref().map(|a| printable(&a.by))),
    ]
}

/// `alerts show` as `key: value` lines (the notifications are a table after them).
fn show_lines(alert: &Alert) -> Vec<String> {
    let mut lines = vec![
        format!("fingerprint: {}", printable(&alert.fingerprint)),
        format!(
            "state: {} (episode {})",
            printable(&alert.state),
            alert.episode
        ),
        format!("severity: {}", printable(&alert.severity)),
        format!("source: {}", printable(&alert.source)),
        format!("started: {}", local_time(alert.starts_at_ms)),
    ];
    if let Some(ends_at_ms) = alert.ends_at_ms {
        lines.push(format!("ends: {}", local_time(ends_at_ms)));
    }
    lines.push(format!(
        "last received: {}",
        local_time(alert.last_received_ms)
    ));
    if let Some(url) = &alert.generator_url {
        lines.push(format!("generator: {}", printable(url)));
    }
    match &alert.ack {
        None => lines.push("ack: none".to_owned()),
        Some(ack) => {
            let note = Some(ack.note.as_str()).filter(|n| !n.is_empty());
            lines.push(format!(
                "ack: by {} at {}{}",
                printable(&ack.by),
                local_time(ack.at_ms),
                note.map(|n| format!(": {}", printable(n)))
                    .unwrap_or_default()
            ));
        }
    }
    for (title, map) in [
        ("labels", &alert.labels),
        ("annotations", &alert.annotations),
    ] {
        if map.is_empty() {
            lines.push(format!("{title}: none"));
        } else {
            lines.push(format!("{title}:"));
            lines.extend(
                map.iter()
                    .map(|(name, value)| format!("  {}: {}", printable(name), block(value))),
            );
        }
    }
    lines
}

/// One row of `alerts show`'s notifications: ID, RECEIVER, STATE, REASON, ATTEMPTS, CREATED,
/// NEXT ATTEMPT, FINISHED, LAST ERROR.
fn notification_row(n: &Notification) -> Vec<String> {
    vec![
        n.id.to_string(),
        printable(&n.receiver),
        printable(&n.state),
        printable(&n.reason),
        n.attempts.to_string(),
        local_time(n.created_ms),
        local_time(n.next_attempt_ms),
        or_dash(n.finished_ms.map(local_time)),
        or_dash(n.last_error.as_deref().map(printable)),
    ]
}

/// One `alerts silences` row: ID, STATE (active, or pending until it starts), MATCHERS,
/// STARTS, ENDS, BY, COMMENT.
fn silence_row(silence: &Silence, now_ms: i64) -> Vec<String> {
    let matchers: Vec<String> = silence.matchers.iter().map(|m| printable(m)).collect();
    let state = if silence.starts_at_ms > now_ms {
        "pending"
    } else {
        "active"
    };
    vec![
        silence.id.to_string(),
        state.to_owned(),
        matchers.join(", "),
        local_time(silence.starts_at_ms),
        local_time(silence.ends_at_ms),
        printable(&silence.created_by),
        printable(&silence.comment),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::alert_args::{parse_comment, parse_matcher, parse_note};

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn list_filters_are_encoded_into_one_query() {
        let query = list_query(
            Some("firing".to_owned()),
            Some(Severity::Critical),
            &[
                ("service".to_owned(), "api".to_owned()),
                ("env".to_owned(), "a b&c".to_owned()),
            ],
            20,
        )
        .unwrap();
        assert_eq!(
            paths::ALERTS.with_query(&[], &query).unwrap(),
            "/api/v1/alerts?state=firing&severity=critical&labels=service%3Dapi%2Cenv%3Da+b%26c&limit=20"
        );
        let twice = [
            ("service".to_owned(), "a".to_owned()),
            ("service".to_owned(), "b".to_owned()),
        ];
        assert!(list_query(None, None, &twice, 1).is_err());
        assert_eq!(
            paths::ALERTS
                .with_query(&[], &list_query(None, None, &[], 5).unwrap())
                .unwrap(),
            "/api/v1/alerts?limit=5"
        );
    }

    #[test]
    fn silences_are_checked_before_sending() {
        let matchers = [parse_matcher(r#"service=~"api|web""#).unwrap()];
        let body = silence_body(&matchers, Some(7_200_000), None, "deploy", 0).unwrap();
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"matchers": ["service=~\"api|web\""], "comment": "deploy", "duration": "7200000ms"})
        );
        let body = silence_body(&matchers, None, Some(5_000), "deploy", 1_000).unwrap();
        assert_eq!(body.ends_at_ms, Some(5_000));
        assert_eq!(body.duration, None);
        assert!(silence_body(&matchers, None, Some(500), "x", 1_000).is_err());
        assert!(parse_comment(" ").is_err());
        assert!(parse_note(&"x".repeat(4_097)).is_err());
        assert!(
            parse_matcher("service~api")
                .unwrap_err()
                .contains("service~api")
        );
    }

    #[test]
    fn routes_report_each_destination_with_its_group_key() {
        let child = |matcher: &str, receiver: &str, cont: bool| Route {
            receiver: Some(receiver.to_owned()),
            matchers: vec![Matcher::parse(matcher).unwrap()],
            continue_matching: cont,
            ..Route::default()
        };
        let root = Route {
            receiver: Some("default".to_owned()),
            group_by: Some(GroupBy::Labels(vec!["alertname".to_owned()])),
            routes: vec![
                Route {
                    group_wait_ms: Some(0),
                    ..child("severity=critical", "pager", true)
                },
                Route {
                    group_by: Some(GroupBy::All),
                    ..child(r#"service=~"api|web""#, "web", false)
                },
            ],
            ..Route::default()
        };
        let alert = labels(&[
            ("alertname", "ApiDown"),
            ("severity", "critical"),
            ("service", "api"),
        ]);
        let report = route_report(&root, &alert, &root.destinations(&alert));
        let rows: Vec<Vec<String>> = report.destinations.iter().map(destination_row).collect();
        assert_eq!(
            rows[0],
            vec![
                "/0",
                "severity=\"critical\"",
                "pager",
                "alertname",
                "0ms",
                "5m00s",
                "4h00m",
                "/0:pager:{alertname=\"ApiDown\"}"
            ]
        );
        assert_eq!(rows[1][0], "/1");
        assert_eq!(rows[1][3], "...");
        assert_eq!(report.destinations[1].group_by, vec!["...".to_owned()]);
        assert_eq!(report.destinations[1].path, vec![1]);
        let other = labels(&[("alertname", "DiskFull")]);
        let report = route_report(&root, &other, &root.destinations(&other));
        assert_eq!(report.destinations[0].route, "/");
        assert_eq!(
            destination_row(&report.destinations[0])[1],
            "-",
            "the root has no matchers"
        );
    }

    /// An alert as the API answers it, with `fields` over a firing one's.
    fn alert(fields: Value) -> Alert {
        let mut alert = json!({
            "fingerprint": "00000000000000ff", "state": "firing", "episode": 1,
            "severity": "warning", "source": "external",
            "starts_at": "1970-01-01T00:00:00.000Z", "starts_at_ms": 0,
            "ends_at": null, "ends_at_ms": null,
            "last_received": "1970-01-01T00:00:01.000Z", "last_received_ms": 1000,
            "generator_url": null, "labels": {}, "annotations": {}, "ack": null
        });
        for (name, value) in fields.as_object().unwrap() {
            alert[name] = value.clone();
        }
        serde_json::from_value(alert).unwrap()
    }

    #[test]
    fn an_alert_shows_its_notifications_when_there_are_some() {
        let shown = alert(json!({
            "episode": 2, "severity": "critical",
            "labels": {"alertname": "ApiDown", "service": "api"},
            "annotations": {"summary": "down\u{1b}[2J"},
            "ack": {"by": "ops", "at": "1970-01-01T00:00:00.000Z", "at_ms": 0, "note": "on it"}
        }));
        let lines = show_lines(&shown);
        assert!(
            lines.contains(&"state: firing (episode 2)".to_owned()),
            "{lines:?}"
        );
        assert!(lines.contains(&"ack: by ops at 1970-01-01T00:00:00+00:00: on it".to_owned()));
        assert!(
            lines.contains(&"  summary: down\u{fffd}[2J".to_owned()),
            "{lines:?}"
        );
        assert!(!lines.iter().any(|l| l.starts_with("ends:")));
        let notification: Notification = serde_json::from_value(json!({
            "id": 7, "receiver": "slack", "group_key": "/:slack:{}", "reason": "first",
            "status": "firing", "alerts": 1, "state": "failed", "attempts": 3,
            "created": "1970-01-01T00:00:00.000Z", "created_ms": 0,
            "next_attempt": "1970-01-01T00:00:00.000Z", "next_attempt_ms": 0,
            "expires": "1970-01-01T01:00:00.000Z", "expires_ms": 3_600_000,
            "finished": "1970-01-01T00:01:00.000Z", "finished_ms": 60_000,
            "last_error": "HTTP 500"
        }))
        .unwrap();
        assert_eq!(
            notification_row(&notification),
            vec![
                "7",
                "slack",
                "failed",
                "first",
                "3",
                "1970-01-01T00:00:00+00:00",
                "1970-01-01T00:00:00+00:00",
                "1970-01-01T00:01:00+00:00",
                "HTTP 500"
            ]
        );
        let described = alert(json!({"annotations": {"description": "one\ntwo\r"}}));
        assert!(
            show_lines(&described).contains(&"  description: one\n    two\u{fffd}".to_owned()),
            "{:?}",
            show_lines(&described)
        );
    }

    #[test]
    fn rows_put_alertname_in_its_own_column() {
        let row = alert_row(&alert(json!({
            "labels": {"alertname": "DiskFull", "host": "vps-1", "mount": "/"}
        })));
        assert_eq!(
            row,
            vec![
                "00000000000000ff",
                "firing",
                "warning",
                "DiskFull",
                "host=vps-1,mount=/",
                "1970-01-01T00:00:00+00:00",
                "-"
            ]
        );
        let silence: Silence = serde_json::from_value(json!({
            "id": 1, "matchers": ["a=\"b\""],
            "starts_at": "1970-01-01T00:00:00.010Z", "starts_at_ms": 10,
            "ends_at": "1970-01-01T00:00:00.020Z", "ends_at_ms": 20,
            "created_by": "ops", "created_at": "1970-01-01T00:00:00.000Z", "created_at_ms": 0,
            "comment": "deploy"
        }))
        .unwrap();
        assert_eq!(silence_row(&silence, 5)[1], "pending");
        assert_eq!(silence_row(&silence, 10)[1], "active");
    }
}
