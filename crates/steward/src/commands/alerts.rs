//! `steward alerts`: list, show and acknowledge alerts and create, list and end silences through
//! the API; `test-route` shows offline where the config's route tree sends an alert.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use reqwest::Method;
use serde_json::{Value, json};
use steward_core::alert::notice::group_key;
use steward_core::alert::route::{Destination, GroupBy, Matcher, Route};
use steward_core::alert::{
    Fingerprint, MAX_LABEL_VALUE_CHARS, MAX_LABELS, Severity, is_label_name,
};
use steward_core::registry::Labels;
use steward_core::text::printable;

use crate::EXIT_INVALID;
use crate::cli::{AlertsCommand, OutputFormat};
use crate::client::{Client, block_on, cell, encode_query_value, instant, print_table};
use crate::commands::load_or_exit;
use crate::commands::schedule::{duration, item_path};

/// The longest acknowledgement note the API takes, in characters.
const MAX_NOTE_CHARS: usize = 4_096;

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
                let path = match list_path(state.as_deref(), severity, &labels, limit) {
                    Ok(path) => path,
                    Err(e) => return Ok(invalid(&e)),
                };
                let answer = Client::new(&client)?.call(Method::GET, &path, None).await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    let rows: Vec<Vec<String>> = answer["alerts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(alert_row)
                        .collect();
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
                let path = item_path("/api/v1/alerts", &fingerprint.to_string(), None)?;
                let answer = Client::new(&client)?.call(Method::GET, &path, None).await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    for line in show_lines(&answer) {
                        println!("{line}");
                    }
                    if let Some(notifications) = answer["notifications"].as_array() {
                        println!();
                        if notifications.is_empty() {
                            println!("notifications: none");
                        } else {
                            println!("notifications:");
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
                                &notifications
                                    .iter()
                                    .map(notification_row)
                                    .collect::<Vec<_>>(),
                            );
                        }
                    }
                }
            }
            AlertsCommand::Ack {
                fingerprint,
                note,
                client,
            } => {
                let body = note.map(|note| json!({ "note": note }));
                let path = item_path("/api/v1/alerts", &fingerprint.to_string(), Some("ack"))?;
                let answer = Client::new(&client)?
                    .call(Method::POST, &path, body.as_ref())
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    println!(
                        "alert {fingerprint}: episode {} acknowledged by {}",
                        text(&answer["episode"]),
                        text(&answer["ack"]["by"])
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
                let answer = Client::new(&client)?
                    .call(Method::POST, "/api/v1/silences", Some(&body))
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    // Only the id, so that scripts can keep it to end the silence later.
                    println!("{}", text(&answer["id"]));
                }
            }
            AlertsCommand::Silences { client } => {
                let answer = Client::new(&client)?
                    .call(Method::GET, "/api/v1/silences", None)
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    let now = steward_store::now_ms();
                    let rows: Vec<Vec<String>> = answer["silences"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| silence_row(s, now))
                        .collect();
                    print_table(
                        &["ID", "STATE", "MATCHERS", "STARTS", "ENDS", "BY", "COMMENT"],
                        &rows,
                    );
                }
            }
            AlertsCommand::Unsilence { id, client } => {
                let path = item_path("/api/v1/silences", &id.to_string(), None)?;
                let answer = Client::new(&client)?
                    .call(Method::DELETE, &path, None)
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    println!("silence {id}: ended at {}", instant(&answer["ends_at_ms"]));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
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

/// An acknowledgement note: at most as long as the API takes.
pub fn parse_note(text: &str) -> Result<String, String> {
    if text.chars().count() > MAX_NOTE_CHARS {
        return Err(format!("at most {MAX_NOTE_CHARS} characters"));
    }
    Ok(text.to_owned())
}

/// A silence's comment: it must say something.
pub fn parse_comment(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("say why (it is shown with the silence)".to_owned());
    }
    Ok(text.to_owned())
}

/// A fingerprint as `steward alerts ls` prints it: 16 hex digits.
pub fn parse_fingerprint(text: &str) -> Result<Fingerprint, String> {
    let text = text.trim();
    // `Fingerprint::parse` alone would take a leading `+`, which is no fingerprint anyone saw.
    text.chars()
        .all(|c| c.is_ascii_hexdigit())
        .then(|| Fingerprint::parse(text))
        .flatten()
        .ok_or_else(|| {
            format!(
                "`{text}` is not a fingerprint: 16 hex digits, as `steward alerts ls` prints them"
            )
        })
}

/// A severity: critical, warning or info.
pub fn parse_severity(text: &str) -> Result<Severity, String> {
    Severity::parse(text).ok_or_else(|| format!("`{text}` is not critical, warning or info"))
}

/// A label matcher: `name=value`, `name!=value`, `name=~regex` or `name!~regex`.
pub fn parse_matcher(text: &str) -> Result<Matcher, String> {
    Matcher::parse(text).map_err(|e| e.to_string())
}

/// One `name=value` filter of `alerts ls`.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    let (name, value) = label_pair(text)?;
    // The API takes every filter in one parameter, separated by commas.
    if value.contains(',') {
        return Err(format!(
            "`{text}`: a value to filter by cannot contain a comma"
        ));
    }
    Ok((name, value))
}

/// An alert's labels as `name=value` pairs separated by commas; an error names the part at
/// fault.
pub fn parse_labels(text: &str) -> Result<Labels, String> {
    if text.trim().is_empty() {
        return Err("no labels: give name=value pairs separated by commas".to_owned());
    }
    let parts: Vec<&str> = text.split(',').collect();
    if parts.len() > MAX_LABELS {
        return Err(format!(
            "{} labels; an alert has at most {MAX_LABELS}",
            parts.len()
        ));
    }
    let mut labels = Labels::new();
    for (i, part) in parts.iter().enumerate() {
        let at = format!("label {} of {}", i + 1, parts.len());
        if part.trim().is_empty() {
            return Err(format!("{at} is empty (a stray comma?)"));
        }
        let (name, value) = label_pair(part).map_err(|e| format!("{at}: {e}"))?;
        if labels.contains_key(&name) {
            return Err(format!("{at}: `{name}` is given twice"));
        }
        labels.insert(name, value);
    }
    Ok(labels)
}

/// `name=value` with a label name, and a value no longer than alerts may have; both trimmed,
/// as the API reads them.
fn label_pair(text: &str) -> Result<(String, String), String> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(format!("`{text}` is not name=value"));
    };
    let (name, value) = (name.trim(), value.trim());
    if !is_label_name(name) {
        return Err(format!(
            "`{text}`: `{name}` is not a label name (letters, digits and `_`, not starting with a digit)"
        ));
    }
    if value.chars().count() > MAX_LABEL_VALUE_CHARS {
        return Err(format!(
            "`{name}`: the value is longer than {MAX_LABEL_VALUE_CHARS} characters"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// A silence's length: whole numbers with units, e.g. `90s`, `2h`, `1h30m`, `1d` (ms, s, m, h,
/// d, w), in milliseconds; more than zero.
pub fn parse_silence_duration(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "`{text}` is not a duration such as 30m, 2h, 1h30m or 1d (units: ms, s, m, h, d, w)"
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(unit_ms)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("`{text}` is too long"))?;
    }
    if total == 0 {
        return Err(format!("`{text}`: a silence must last longer than zero"));
    }
    Ok(total)
}

/// `GET /api/v1/alerts` with the filters as its query.
fn list_path(
    state: Option<&str>,
    severity: Option<Severity>,
    labels: &[(String, String)],
    limit: u32,
) -> anyhow::Result<String> {
    let mut path = format!("/api/v1/alerts?limit={limit}");
    if let Some(state) = state {
        path.push_str(&format!("&state={}", encode_query_value(state)));
    }
    if let Some(severity) = severity {
        path.push_str(&format!("&severity={}", severity.as_str()));
    }
    if !labels.is_empty() {
        let mut seen = Labels::new();
        for (name, value) in labels {
            // The API keeps only the last value of a name given twice: say so rather than
            // silently filter by one of them.
            if seen.insert(name.clone(), value.clone()).is_some() {
                bail!("--label: `{name}` is given twice (an alert has one value per label)");
            }
        }
        let pairs: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v}")).collect();
        path.push_str(&format!("&labels={}", encode_query_value(&pairs.join(","))));
    }
    Ok(path)
}

/// The body of `POST /api/v1/silences`; refuses an end in the past before anything is sent.
fn silence_body(
    matchers: &[Matcher],
    duration_ms: Option<u64>,
    until_ms: Option<i64>,
    comment: &str,
    now_ms: i64,
) -> anyhow::Result<Value> {
    let matchers: Vec<String> = matchers.iter().map(ToString::to_string).collect();
    let mut body = json!({ "matchers": matchers, "comment": comment });
    match (duration_ms, until_ms) {
        (Some(ms), None) => {
            // In milliseconds, so that the server (whose clock starts the silence) reads
            // exactly the length checked here.
            body["duration"] = json!(format!("{ms}ms"));
        }
        (None, Some(until)) => {
            if until <= now_ms {
                bail!(
                    "--until: {} has passed; a silence must end in the future",
                    instant(&json!(until))
                );
            }
            body["ends_at_ms"] = json!(until);
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
        println!("{report}");
    } else {
        let rows: Vec<Vec<String>> = report["destinations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(destination_row)
            .collect();
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

/// `{"labels", "destinations": [{route, path, matchers, receiver, group_by, group_wait_ms,
/// group_interval_ms, repeat_interval_ms, group_key}]}`; `group_by` is written as in the config
/// (`[]`: one group, `["..."]`: one group per alert).
fn route_report(root: &Route, labels: &Labels, destinations: &[Destination]) -> Value {
    let destinations: Vec<Value> = destinations
        .iter()
        .map(|d| {
            let matchers: Vec<String> = node(root, &d.path)
                .map(|r| r.matchers.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            let group_by: Vec<String> = match &d.group_by {
                GroupBy::None => Vec::new(),
                GroupBy::All => vec!["...".to_owned()],
                GroupBy::Labels(names) => names.clone(),
            };
            json!({
                "route": route_name(&d.path),
                "path": d.path,
                "matchers": matchers,
                "receiver": d.receiver,
                "group_by": group_by,
                "group_wait_ms": d.group_wait_ms,
                "group_interval_ms": d.group_interval_ms,
                "repeat_interval_ms": d.repeat_interval_ms,
                "group_key": group_key(&d.path, &d.receiver, &d.group_by.key(labels)),
            })
        })
        .collect();
    json!({ "labels": labels, "destinations": destinations })
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

/// One `test-route` row from [`route_report`]'s destination.
fn destination_row(d: &Value) -> Vec<String> {
    let list = |v: &Value, empty: &str| {
        let items: Vec<String> = v.as_array().into_iter().flatten().map(text).collect();
        if items.is_empty() {
            empty.to_owned()
        } else {
            items.join(", ")
        }
    };
    let ms = |v: &Value| v.as_i64().map_or_else(|| "-".to_owned(), duration);
    vec![
        text(&d["route"]),
        list(&d["matchers"], "-"),
        text(&d["receiver"]),
        list(&d["group_by"], "(one group)"),
        ms(&d["group_wait_ms"]),
        ms(&d["group_interval_ms"]),
        ms(&d["repeat_interval_ms"]),
        text(&d["group_key"]),
    ]
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// A JSON value as text for a terminal. Alerts carry text from other systems, so control
/// characters (which could drive the terminal) are shown as U+FFFD.
fn text(value: &Value) -> String {
    printable(&cell(value))
}

/// Like [`text`], but keeping line breaks (annotations such as `description` often have
/// several lines), each further line indented under the first.
fn block(value: &Value) -> String {
    cell(value)
        .split('\n')
        .map(printable)
        .collect::<Vec<_>>()
        .join("\n    ")
}

/// `name=value` pairs of a label object, comma-separated (as `--labels` takes them), leaving
/// out `skip`.
fn pairs(labels: &Value, skip: &str) -> String {
    let pairs: Vec<String> = labels
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| name.as_str() != skip)
        .map(|(name, value)| format!("{}={}", printable(name), text(value)))
        .collect();
    if pairs.is_empty() {
        "-".to_owned()
    } else {
        pairs.join(",")
    }
}

/// One `alerts ls` row: FINGERPRINT, STATE, SEVERITY, ALERTNAME, LABELS, STARTED, ACK.
fn alert_row(alert: &Value) -> Vec<String> {
    vec![
        text(&alert["fingerprint"]),
        text(&alert["state"]),
        text(&alert["severity"]),
        text(&alert["labels"]["alertname"]),
        pairs(&alert["labels"], "alertname"),
        instant(&alert["starts_at_ms"]),
        text(&alert["ack"]["by"]),
    ]
}

/// `alerts show` as `key: value` lines (the notifications are a table after them).
fn show_lines(alert: &Value) -> Vec<String> {
    let mut lines = vec![
        format!("fingerprint: {}", text(&alert["fingerprint"])),
        format!(
            "state: {} (episode {})",
            text(&alert["state"]),
            text(&alert["episode"])
        ),
        format!("severity: {}", text(&alert["severity"])),
        format!("source: {}", text(&alert["source"])),
        format!("started: {}", instant(&alert["starts_at_ms"])),
    ];
    if !alert["ends_at_ms"].is_null() {
        lines.push(format!("ends: {}", instant(&alert["ends_at_ms"])));
    }
    lines.push(format!(
        "last received: {}",
        instant(&alert["last_received_ms"])
    ));
    if !alert["generator_url"].is_null() {
        lines.push(format!("generator: {}", text(&alert["generator_url"])));
    }
    let ack = &alert["ack"];
    if ack.is_null() {
        lines.push("ack: none".to_owned());
    } else {
        let note = ack["note"].as_str().filter(|n| !n.is_empty());
        lines.push(format!(
            "ack: by {} at {}{}",
            text(&ack["by"]),
            instant(&ack["at_ms"]),
            note.map(|n| format!(": {}", printable(n)))
                .unwrap_or_default()
        ));
    }
    for (title, map) in [
        ("labels", &alert["labels"]),
        ("annotations", &alert["annotations"]),
    ] {
        let entries: Vec<String> = map
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, value)| format!("  {}: {}", printable(name), block(value)))
            .collect();
        if entries.is_empty() {
            lines.push(format!("{title}: none"));
        } else {
            lines.push(format!("{title}:"));
            lines.extend(entries);
        }
    }
    lines
}

/// One row of `alerts show`'s notifications: ID, RECEIVER, STATE, REASON, ATTEMPTS, CREATED,
/// NEXT ATTEMPT, FINISHED, LAST ERROR.
fn notification_row(n: &Value) -> Vec<String> {
    vec![
        text(&n["id"]),
        text(&n["receiver"]),
        text(&n["state"]),
        text(&n["reason"]),
        text(&n["attempts"]),
        instant(&n["created_ms"]),
        instant(&n["next_attempt_ms"]),
        instant(&n["finished_ms"]),
        text(&n["last_error"]),
    ]
}

/// One `alerts silences` row: ID, STATE (active, or pending until it starts), MATCHERS,
/// STARTS, ENDS, BY, COMMENT.
fn silence_row(silence: &Value, now_ms: i64) -> Vec<String> {
    let matchers: Vec<String> = silence["matchers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let state = if silence["starts_at_ms"].as_i64().is_some_and(|s| s > now_ms) {
        "pending"
    } else {
        "active"
    };
    vec![
        text(&silence["id"]),
        state.to_owned(),
        matchers.join(", "),
        instant(&silence["starts_at_ms"]),
        instant(&silence["ends_at_ms"]),
        text(&silence["created_by"]),
        text(&silence["comment"]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn fingerprints_are_sixteen_hex_digits() {
        assert_eq!(
            parse_fingerprint("00000000000000fF").unwrap().to_string(),
            "00000000000000ff"
        );
        for bad in [
            "",
            "abc",
            "+00000000000000f",
            "0000000000000000a",
            "zzzzzzzzzzzzzzzz",
        ] {
            let e = parse_fingerprint(bad).unwrap_err();
            assert!(e.contains("16 hex digits"), "{bad}: {e}");
        }
    }

    #[test]
    fn label_errors_name_the_part_at_fault() {
        assert_eq!(
            parse_labels("alertname=ApiDown, severity = critical,empty=").unwrap(),
            labels(&[
                ("alertname", "ApiDown"),
                ("severity", "critical"),
                ("empty", "")
            ])
        );
        assert_eq!(
            parse_labels("a=b,oops").unwrap_err(),
            "label 2 of 2: `oops` is not name=value"
        );
        assert_eq!(
            parse_labels("a=b,,c=d").unwrap_err(),
            "label 2 of 3 is empty (a stray comma?)"
        );
        assert!(
            parse_labels("1x=b")
                .unwrap_err()
                .starts_with("label 1 of 1: `1x=b`: `1x` is not a label name"),
        );
        assert_eq!(
            parse_labels("a=b,a=c").unwrap_err(),
            "label 2 of 2: `a` is given twice"
        );
        assert!(parse_labels(" ").unwrap_err().starts_with("no labels"));
        assert!(parse_label("service=a,b").unwrap_err().contains("comma"));
        assert_eq!(
            parse_label("url=http://x/?a=b").unwrap(),
            ("url".to_owned(), "http://x/?a=b".to_owned())
        );
    }

    #[test]
    fn durations_are_whole_units() {
        assert_eq!(parse_silence_duration("2h"), Ok(7_200_000));
        assert_eq!(parse_silence_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_silence_duration("1d"), Ok(86_400_000));
        assert_eq!(parse_silence_duration("500ms"), Ok(500));
        for bad in [
            "",
            "2",
            "h",
            "2x",
            "2 h",
            "-1h",
            "1.5h",
            "0s",
            "99999999999999999999w",
        ] {
            assert!(parse_silence_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn list_filters_are_encoded_into_one_query() {
        let path = list_path(
            Some("firing"),
            Some(Severity::Critical),
            &[
                ("service".to_owned(), "api".to_owned()),
                ("env".to_owned(), "a b&c".to_owned()),
            ],
            20,
        )
        .unwrap();
        assert_eq!(
            path,
            "/api/v1/alerts?limit=20&state=firing&severity=critical&labels=service%3Dapi%2Cenv%3Da%20b%26c"
        );
        let twice = [
            ("service".to_owned(), "a".to_owned()),
            ("service".to_owned(), "b".to_owned()),
        ];
        assert!(list_path(None, None, &twice, 1).is_err());
    }

    #[test]
    fn silences_are_checked_before_sending() {
        let matchers = [parse_matcher(r#"service=~"api|web""#).unwrap()];
        let body = silence_body(&matchers, Some(7_200_000), None, "deploy", 0).unwrap();
        assert_eq!(
            body,
            json!({"matchers": ["service=~\"api|web\""], "comment": "deploy", "duration": "7200000ms"})
        );
        let body = silence_body(&matchers, None, Some(5_000), "deploy", 1_000).unwrap();
        assert_eq!(body["ends_at_ms"], 5_000);
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
        let rows: Vec<Vec<String>> = report["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .map(destination_row)
            .collect();
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
        assert_eq!(report["destinations"][1]["group_by"], json!(["..."]));
        assert_eq!(report["destinations"][1]["path"], json!([1]));
        let other = labels(&[("alertname", "DiskFull")]);
        let report = route_report(&root, &other, &root.destinations(&other));
        assert_eq!(report["destinations"][0]["route"], "/");
        assert_eq!(
            destination_row(&report["destinations"][0])[1],
            "-",
            "the root has no matchers"
        );
    }

    #[test]
    fn an_alert_shows_its_notifications_when_there_are_some() {
        let alert = json!({
            "fingerprint": "00000000000000ff", "state": "firing", "episode": 2,
            "severity": "critical", "source": "external", "starts_at_ms": 0,
            "ends_at_ms": null, "last_received_ms": 1000, "generator_url": null,
            "labels": {"alertname": "ApiDown", "service": "api"},
            "annotations": {"summary": "down\u{1b}[2J"},
            "ack": {"by": "ops", "at_ms": 0, "note": "on it"}
        });
        let lines = show_lines(&alert);
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
        let row = notification_row(&json!({
            "id": 7, "receiver": "slack", "state": "failed", "reason": "first", "attempts": 3,
            "created_ms": 0, "next_attempt_ms": null, "finished_ms": 60_000,
            "last_error": "HTTP 500"
        }));
        assert_eq!(
            row,
            vec![
                "7",
                "slack",
                "failed",
                "first",
                "3",
                "1970-01-01T00:00:00+00:00",
                "-",
                "1970-01-01T00:01:00+00:00",
                "HTTP 500"
            ]
        );
        let described = json!({"annotations": {"description": "one\ntwo\r"}});
        assert!(
            show_lines(&described).contains(&"  description: one\n    two\u{fffd}".to_owned()),
            "{:?}",
            show_lines(&described)
        );
    }

    #[test]
    fn rows_put_alertname_in_its_own_column() {
        let row = alert_row(&json!({
            "fingerprint": "00000000000000ff", "state": "firing", "severity": "warning",
            "labels": {"alertname": "DiskFull", "host": "vps-1", "mount": "/"},
            "starts_at_ms": 0, "ack": null
        }));
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
        let pending = silence_row(
            &json!({"id": 1, "matchers": ["a=\"b\""], "starts_at_ms": 10}),
            5,
        );
        assert_eq!(pending[1], "pending");
    }
}
