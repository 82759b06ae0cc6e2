//! `steward status`: every service's health at a glance. `steward checks`: list checks, show
//! one with its percentiles, read its transitions, run it now — all through the API.

use std::io::IsTerminal;
use std::process::ExitCode;

use reqwest::Method;
use serde_json::Value;

use crate::cli::{ChecksCommand, OutputFormat, StatusArgs};
use crate::client::{Client, block_on, cell, encode_query_value, instant, print_table};
use crate::commands::schedule::{duration, item_path};

/// Runs `steward status`.
pub fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let answer = Client::new(&args.client)?
            .call(Method::GET, "/api/v1/services", None)
            .await?;
        if args.client.output == OutputFormat::Json {
            println!("{answer}");
            return Ok(ExitCode::SUCCESS);
        }
        let paint = Paint::for_stdout();
        let services = answer["services"].as_array().cloned().unwrap_or_default();
        let rows: Vec<Vec<String>> = services.iter().map(|s| service_row(s, paint)).collect();
        print_table(
            &["SERVICE", "WORKSPACE", "STATE", "CHECKS", "DETAIL"],
            &rows,
        );
        println!("{}", summary(&services));
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs a `steward checks …` command.
pub fn run(command: ChecksCommand) -> anyhow::Result<ExitCode> {
    block_on(async move {
        match command {
            ChecksCommand::Ls { client } => {
                let answer = Client::new(&client)?
                    .call(Method::GET, "/api/v1/services", None)
                    .await?;
                let checks: Vec<Value> = answer["services"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|service| {
                        service["checks"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|check| {
                                let mut check = check.clone();
                                check["service"] = service["name"].clone();
                                check
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect();
                if client.output == OutputFormat::Json {
                    println!("{}", Value::Array(checks));
                } else {
                    let paint = Paint::for_stdout();
                    let rows: Vec<Vec<String>> = checks
                        .iter()
                        .map(|c| {
                            vec![
                                cell(&c["name"]),
                                cell(&c["service"]),
                                cell(&c["kind"]),
                                paint.state(&cell(&c["state"])),
                                instant(&c["since_ms"]),
                                instant(&c["last_probe_ms"]),
                            ]
                        })
                        .collect();
                    print_table(
                        &["NAME", "SERVICE", "TYPE", "STATE", "SINCE", "LAST PROBE"],
                        &rows,
                    );
                }
            }
            ChecksCommand::Show {
                name,
                window,
                client,
            } => {
                let mut path = item_path("/api/v1/checks", &name, None)?;
                path.push_str(&format!("?window={}", encode_query_value(&window)));
                let answer = Client::new(&client)?.call(Method::GET, &path, None).await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    for line in show_lines(&answer, Paint::for_stdout()) {
                        println!("{line}");
                    }
                }
            }
            ChecksCommand::Run { name, client } => {
                let path = item_path("/api/v1/checks", &name, Some("run"))?;
                let answer = Client::new(&client)?
                    .call(Method::POST, &path, None)
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    let paint = Paint::for_stdout();
                    for line in result_lines(&answer["result"], paint) {
                        println!("{line}");
                    }
                    if answer["recorded"] == Value::Bool(true) {
                        println!("state: {}", paint.state(&cell(&answer["state"])));
                    } else {
                        println!("(not recorded: another instance probes)");
                    }
                }
            }
            ChecksCommand::History {
                name,
                limit,
                before,
                client,
            } => {
                let mut path = item_path("/api/v1/checks", &name, Some("transitions"))?;
                path.push_str(&format!("?limit={limit}"));
                if let Some(before) = before {
                    path.push_str(&format!("&before={before}"));
                }
                let answer = Client::new(&client)?.call(Method::GET, &path, None).await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    let paint = Paint::for_stdout();
                    let rows: Vec<Vec<String>> = answer["transitions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|t| {
                            vec![
                                cell(&t["id"]),
                                instant(&t["at_ms"]),
                                format!(
                                    "{} -> {}",
                                    paint.state(&cell(&t["from"])),
                                    paint.state(&cell(&t["to"]))
                                ),
                                cell(&t["reason"]),
                            ]
                        })
                        .collect();
                    print_table(&["ID", "AT", "CHANGE", "REASON"], &rows);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Colours states when standard output is a terminal and `NO_COLOR` is unset.
#[derive(Debug, Clone, Copy)]
struct Paint {
    on: bool,
}

impl Paint {
    fn for_stdout() -> Self {
        Self {
            on: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    /// A certificate class, coloured green (valid), yellow (warning) or red (critical, expired).
    fn cert_class(self, class: &str) -> String {
        let state = match class {
            "valid" => "up",
            "warning" => "degraded",
            _ => "down",
        };
        if self.on {
            self.state(state).replace(state, class)
        } else {
            class.to_owned()
        }
    }

    /// The state's name, coloured green (up), yellow (degraded, impacted), red (down) or dim.
    fn state(self, state: &str) -> String {
        if !self.on {
            return state.to_owned();
        }
        let code = match state {
            "up" | "pass" => "32",
            "degraded" | "impacted" | "slow" => "33",
            "down" | "fail" => "31",
            _ => "2",
        };
        format!("\u{1b}[{code}m{state}\u{1b}[0m")
    }
}

/// One `status` row: SERVICE, WORKSPACE, STATE, CHECKS, DETAIL.
fn service_row(service: &Value, paint: Paint) -> Vec<String> {
    let checks = service["checks"].as_array().cloned().unwrap_or_default();
    let up = checks
        .iter()
        .filter(|c| matches!(c["state"].as_str(), Some("up" | "degraded")))
        .count();
    let counted = if checks.is_empty() {
        "-".to_owned()
    } else {
        format!("{up}/{} up", checks.len())
    };
    let impacted: Vec<String> = service["impacted_by"]
        .as_array()
        .into_iter()
        .flatten()
        .map(cell)
        .collect();
    let failing: Vec<String> = checks
        .iter()
        .filter(|c| matches!(c["state"].as_str(), Some("down" | "degraded")))
        .map(|c| format!("{} {}", cell(&c["name"]), cell(&c["state"])))
        .collect();
    let detail = if service["state"] == "impacted" {
        if impacted.is_empty() {
            "a dependency is down".to_owned()
        } else {
            format!("depends on down {}", impacted.join(", "))
        }
    } else if !failing.is_empty() {
        failing.join(", ")
    } else if checks.is_empty() {
        "no checks".to_owned()
    } else {
        String::new()
    };
    vec![
        cell(&service["name"]),
        cell(&service["workspace"]),
        paint.state(&cell(&service["state"])),
        counted,
        detail,
    ]
}

/// `12 services: 9 up, 1 down, 2 impacted`.
fn summary(services: &[Value]) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for service in services {
        *counts.entry(cell(&service["state"])).or_default() += 1;
    }
    let parts: Vec<String> = ["up", "degraded", "down", "impacted", "unknown"]
        .iter()
        .filter_map(|state| counts.get(*state).map(|n| format!("{n} {state}")))
        .collect();
    format!(
        "{} service{}: {}",
        services.len(),
        if services.len() == 1 { "" } else { "s" },
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    )
}

/// A result as lines: verdict, latency and status, failure, then each condition.
fn result_lines(result: &Value, paint: Paint) -> Vec<String> {
    let mut lines = vec![format!(
        "result: {} in {}{}",
        paint.state(&cell(&result["verdict"])),
        result["latency_ms"]
            .as_i64()
            .map_or_else(|| "-".to_owned(), duration),
        result["status"]
            .as_u64()
            .map(|s| format!(", status {s}"))
            .unwrap_or_default()
    )];
    if !result["cause"].is_null() {
        lines.push(format!(
            "  failed: {} ({})",
            cell(&result["error"]),
            cell(&result["cause"])
        ));
    }
    for cert in result["certificates"].as_array().into_iter().flatten() {
        let names: Vec<String> = cert["names"]
            .as_array()
            .into_iter()
            .flatten()
            .map(cell)
            .collect();
        lines.push(format!(
            "  certificate{}: {}, {} days left ({}); {}; issuer {}",
            cert["path"]
                .as_str()
                .map(|p| format!(" {p}"))
                .unwrap_or_default(),
            paint.cert_class(&cell(&cert["class"])),
            cell(&cert["days_left"]),
            instant(&cert["not_after_ms"]),
            if names.is_empty() {
                cell(&cert["subject"])
            } else {
                names.join(", ")
            },
            cell(&cert["issuer"]),
        ));
    }
    for condition in result["conditions"].as_array().into_iter().flatten() {
        let mark = if condition["success"] == Value::Bool(true) {
            "✓"
        } else {
            "✗"
        };
        lines.push(format!("  {mark} {}", cell(&condition["condition"])));
    }
    lines
}

/// `checks show` as `key: value` lines.
fn show_lines(check: &Value, paint: Paint) -> Vec<String> {
    let ms = |v: &Value| v.as_i64().map_or_else(|| "-".to_owned(), duration);
    let latency = &check["latency"];
    let mut lines = vec![
        format!("name: {}", cell(&check["name"])),
        format!("service: {}", cell(&check["service"])),
        format!("type: {}", cell(&check["kind"])),
        format!("state: {}", paint.state(&cell(&check["state"]))),
        format!("since: {}", instant(&check["since_ms"])),
        format!(
            "every: {}, timeout {}{}",
            ms(&check["interval_ms"]),
            ms(&check["timeout_ms"]),
            if check["enabled"] == Value::Bool(false) {
                " (disabled)"
            } else {
                ""
            }
        ),
        format!(
            "window {}: {} probes, {} failed{}; p50 {} p95 {} p99 {}",
            ms(&check["window_ms"]),
            cell(&latency["count"]),
            cell(&latency["failures"]),
            check["failure_ratio"]
                .as_f64()
                .map(|r| format!(" ({:.2}%)", r * 100.0))
                .unwrap_or_default(),
            ms(&latency["p50_ms"]),
            ms(&latency["p95_ms"]),
            ms(&latency["p99_ms"]),
        ),
    ];
    if let Some(cert) = check["certificate"].as_object() {
        lines.push(format!(
            "certificate: {} ({} days left, expires {})",
            cert.get("class").map(cell).unwrap_or_default(),
            cert.get("days_left").map(cell).unwrap_or_default(),
            cert.get("not_after_ms").map(instant).unwrap_or_default()
        ));
    }
    lines.push("conditions:".to_owned());
    for condition in check["conditions"].as_array().into_iter().flatten() {
        lines.push(format!("  {}", cell(condition)));
    }
    if check["last_result"].is_null() {
        lines.push("last result: none yet".to_owned());
    } else {
        lines.push(format!(
            "last probe: {}",
            instant(&check["last_result"]["at_ms"])
        ));
        lines.extend(result_lines(&check["last_result"], paint));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_explain_why_a_service_is_not_up() {
        let paint = Paint { on: false };
        let impacted = json!({
            "name": "web", "workspace": "shop", "state": "impacted",
            "impacted_by": ["db"], "checks": [{"name": "web-http", "state": "up"}]
        });
        assert_eq!(
            service_row(&impacted, paint),
            vec!["web", "shop", "impacted", "1/1 up", "depends on down db"]
        );
        let down = json!({
            "name": "db", "workspace": null, "state": "down", "impacted_by": [],
            "checks": [{"name": "db-tcp", "state": "down"}, {"name": "db-cmd", "state": "up"}]
        });
        assert_eq!(
            service_row(&down, paint),
            vec!["db", "-", "down", "1/2 up", "db-tcp down"]
        );
        assert_eq!(summary(&[impacted, down]), "2 services: 1 down, 1 impacted");
    }

    #[test]
    fn results_list_their_certificates() {
        let result = json!({
            "verdict": "fail", "latency_ms": 12, "status": null, "cause": null,
            "conditions": [{"success": false, "condition": "[CERTIFICATE_EXPIRATION] (216h) > 336h"}],
            "certificates": [{
                "path": "/etc/letsencrypt/live/a/fullchain.pem", "subject": "CN=a.example",
                "issuer": "CN=R3", "names": ["a.example", "www.a.example"],
                "not_after_ms": 0, "days_left": 9, "class": "critical"
            }]
        });
        let lines = result_lines(&result, Paint { on: false });
        assert_eq!(
            lines[1],
            "  certificate /etc/letsencrypt/live/a/fullchain.pem: critical, 9 days left (1970-01-01T00:00:00+00:00); a.example, www.a.example; issuer CN=R3"
        );
        assert_eq!(lines[2], "  ✗ [CERTIFICATE_EXPIRATION] (216h) > 336h");
    }

    #[test]
    fn colours_only_when_asked() {
        assert_eq!(Paint { on: false }.state("down"), "down");
        assert_eq!(Paint { on: true }.state("down"), "\u{1b}[31mdown\u{1b}[0m");
    }
}
