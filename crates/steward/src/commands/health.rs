//! `steward status`: every service's health at a glance. `steward checks`: list checks, show
//! one with its percentiles, read its transitions, run it now — all through the API.

use std::io::IsTerminal;
use std::process::ExitCode;

use serde::Serialize;
use steward_wire::health::{
    CheckBrief, CheckDetail, CheckRun, CheckTransitionList, ProbeResult, ServiceHealth,
    ServiceHealthList, TransitionsQuery, WindowQuery,
};
use steward_wire::paths;

use crate::cli::{ChecksCommand, OutputFormat, StatusArgs};
use crate::client::{Client, block_on, local_time, or_dash, print_json, print_table};
use crate::commands::schedule::duration;

/// Runs `steward status`.
pub fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let answer: ServiceHealthList = Client::new(&args.client)?
            .get(&paths::SERVICES.with(&[]))
            .await?;
        if args.client.output == OutputFormat::Json {
            print_json(&answer)?;
            return Ok(ExitCode::SUCCESS);
        }
        let paint = Paint::for_stdout();
        let rows: Vec<Vec<String>> = answer
            .services
            .iter()
            .map(|s| service_row(s, paint))
            .collect();
        print_table(
            &["SERVICE", "WORKSPACE", "STATE", "CHECKS", "DETAIL"],
            &rows,
        );
        println!("{}", summary(&answer.services));
        Ok(ExitCode::SUCCESS)
    })
}

/// A check in brief with the service it watches: one element of `checks ls --output json`.
#[derive(Debug, Serialize)]
struct ListedCheck<'a> {
    /// The check.
    #[serde(flatten)]
    check: &'a CheckBrief,
    /// Its service's name.
    service: &'a str,
}

/// Every check of `services`, each with its service, in the services' order.
fn listed_checks(services: &[ServiceHealth]) -> Vec<ListedCheck<'_>> {
    services
        .iter()
        .flat_map(|service| {
            service.checks.iter().map(|check| ListedCheck {
                check,
                service: &service.name,
            })
        })
        .collect()
}

/// Runs a `steward checks …` command.
pub fn run(command: ChecksCommand) -> anyhow::Result<ExitCode> {
    block_on(async move {
        match command {
            ChecksCommand::Ls { client } => {
                let answer: ServiceHealthList = Client::new(&client)?
                    .get(&paths::SERVICES.with(&[]))
                    .await?;
                let checks = listed_checks(&answer.services);
                if client.output == OutputFormat::Json {
                    print_json(&checks)?;
                } else {
                    let paint = Paint::for_stdout();
                    let rows: Vec<Vec<String>> = checks
                        .iter()
                        .map(|c| {
                            vec![
                                c.check.name.clone(),
                                c.service.to_owned(),
                                c.check.kind.clone(),
                                paint.state(&c.check.state),
                                or_dash(c.check.since_ms.map(local_time)),
                                or_dash(c.check.last_probe_ms.map(local_time)),
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
                let query = WindowQuery {
                    window: Some(window),
                };
                let path = paths::CHECK.with_query(&[&name], &query)?;
                let answer: CheckDetail = Client::new(&client)?.get(&path).await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    for line in show_lines(&answer, Paint::for_stdout()) {
                        println!("{line}");
                    }
                }
            }
            ChecksCommand::Run { name, client } => {
                let answer: CheckRun = Client::new(&client)?
                    .post_empty(&paths::CHECK_RUN.with(&[&name]))
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    let paint = Paint::for_stdout();
                    for line in result_lines(&answer.result, paint) {
                        println!("{line}");
                    }
                    if answer.recorded {
                        println!("state: {}", paint.state(&answer.state));
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
                let query = TransitionsQuery {
                    before,
                    limit: Some(limit),
                };
                let path = paths::CHECK_TRANSITIONS.with_query(&[&name], &query)?;
                let answer: CheckTransitionList = Client::new(&client)?.get(&path).await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    let paint = Paint::for_stdout();
                    let rows: Vec<Vec<String>> = answer
                        .transitions
                        .iter()
                        .map(|t| {
                            vec![
                                t.id.to_string(),
                                local_time(t.at_ms),
                                format!("{} -> {}", paint.state(&t.from), paint.state(&t.to)),
                                t.reason.clone(),
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
fn service_row(service: &ServiceHealth, paint: Paint) -> Vec<String> {
    let checks = &service.checks;
    let up = checks
        .iter()
        .filter(|c| matches!(c.state.as_str(), "up" | "degraded"))
        .count();
    let counted = if checks.is_empty() {
        "-".to_owned()
    } else {
        format!("{up}/{} up", checks.len())
    };
    let failing: Vec<String> = checks
        .iter()
        .filter(|c| matches!(c.state.as_str(), "down" | "degraded"))
        .map(|c| format!("{} {}", c.name, c.state))
        .collect();
    let detail = if service.state == "impacted" {
        if service.impacted_by.is_empty() {
            "a dependency is down".to_owned()
        } else {
            format!("depends on down {}", service.impacted_by.join(", "))
        }
    } else if !failing.is_empty() {
        failing.join(", ")
    } else if checks.is_empty() {
        "no checks".to_owned()
    } else {
        String::new()
    };
    vec![
        service.name.clone(),
        or_dash(service.workspace.as_ref()),
        paint.state(&service.state),
        counted,
        detail,
    ]
}

/// `12 services: 9 up, 1 down, 2 impacted`.
fn summary(services: &[ServiceHealth]) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for service in services {
        *counts.entry(service.state.as_str()).or_default() += 1;
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
fn result_lines(result: &ProbeResult, paint: Paint) -> Vec<String> {
    let mut lines = vec![format!(
        "result: {} in {}{}",
        paint.state(&result.verdict),
        ms(Some(result.latency_ms)),
        result
            .status
            .map(|s| format!(", status {s}"))
            .unwrap_or_default()
    )];
    if let Some(cause) = &result.cause {
        lines.push(format!(
            "  failed: {} ({cause})",
            or_dash(result.error.as_ref())
        ));
    }
    for cert in &result.certificates {
        lines.push(format!(
            "  certificate{}: {}, {} days left ({}); {}; issuer {}",
            cert.path
                .as_deref()
                .map(|p| format!(" {p}"))
                .unwrap_or_default(),
            paint.cert_class(&cert.class),
            cert.days_left,
            local_time(cert.not_after_ms),
            if cert.names.is_empty() {
                cert.subject.clone()
            } else {
                cert.names.join(", ")
            },
            cert.issuer,
        ));
    }
    for condition in &result.conditions {
        let mark = if condition.success { "✓" } else { "✗" };
        lines.push(format!("  {mark} {}", condition.condition));
    }
    lines
}

/// Milliseconds as a duration for people (`-` when absent).
fn ms<T: TryInto<i64>>(value: Option<T>) -> String {
    or_dash(
        value
            .map(|v| v.try_into().unwrap_or(i64::MAX))
            .map(duration),
    )
}

/// `checks show` as `key: value` lines.
fn show_lines(check: &CheckDetail, paint: Paint) -> Vec<String> {
    let latency = &check.latency;
    let mut lines = vec![
        format!("name: {}", check.name),
        format!("service: {}", check.service),
        format!("type: {}", check.kind),
        format!("state: {}", paint.state(&check.state)),
        format!("since: {}", or_dash(check.since_ms.map(local_time))),
        format!(
            "every: {}, timeout {}{}",
            ms(Some(check.interval_ms)),
            ms(Some(check.timeout_ms)),
            if check.enabled { "" } else { " (disabled)" }
        ),
        format!(
            "window {}: {} probes, {} failed{}; p50 {} p95 {} p99 {}",
            ms(Some(check.window_ms)),
            latency.count,
            latency.failures,
            check
                .failure_ratio
                .map(|r| format!(" ({:.2}%)", r * 100.0))
                .unwrap_or_default(),
            ms(latency.p50_ms),
            ms(latency.p95_ms),
            ms(latency.p99_ms),
        ),
    ];
    if let Some(cert) = &check.certificate {
        lines.push(format!(
            "certificate: {} ({} days left, expires {})",
            cert.class,
            cert.days_left,
            local_time(cert.not_after_ms)
        ));
    }
    lines.push("conditions:".to_owned());
    for condition in &check.conditions {
        lines.push(format!("  {condition}"));
    }
    match &check.last_result {
        None => lines.push("last result: none yet".to_owned()),
        Some(result) => {
            lines.push(format!("last probe: {}", local_time(result.at_ms)));
            lines.extend(result_lines(result, paint));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use steward_wire::health::{ConditionResult, ProbeCertificate};

    use super::*;

    fn brief(name: &str, state: &str) -> CheckBrief {
        CheckBrief {
            name: name.to_owned(),
            kind: "http".to_owned(),
            state: state.to_owned(),
            since: None,
            since_ms: None,
            last_probe: None,
            last_probe_ms: None,
        }
    }

    fn service(
        name: &str,
        workspace: Option<&str>,
        state: &str,
        impacted_by: &[&str],
        checks: Vec<CheckBrief>,
    ) -> ServiceHealth {
        ServiceHealth {
            name: name.to_owned(),
            workspace: workspace.map(str::to_owned),
            url: None,
            node: None,
            labels: Default::default(),
            state: state.to_owned(),
            impacted_by: impacted_by.iter().map(|s| (*s).to_owned()).collect(),
            checks,
        }
    }

    #[test]
    fn rows_explain_why_a_service_is_not_up() {
        let paint = Paint { on: false };
        let impacted = service(
            "web",
            Some("shop"),
            "impacted",
            &["db"],
            vec![brief("web-http", "up")],
        );
        assert_eq!(
            service_row(&impacted, paint),
            vec!["web", "shop", "impacted", "1/1 up", "depends on down db"]
        );
        let down = service(
            "db",
            None,
            "down",
            &[],
            vec![brief("db-tcp", "down"), brief("db-cmd", "up")],
        );
        assert_eq!(
            service_row(&down, paint),
            vec!["db", "-", "down", "1/2 up", "db-tcp down"]
        );
        assert_eq!(summary(&[impacted, down]), "2 services: 1 down, 1 impacted");
    }

    #[test]
    fn listed_checks_carry_their_service() {
        let services = [service(
            "db",
            None,
            "down",
            &[],
            vec![brief("db-tcp", "down")],
        )];
        let listed = serde_json::to_value(listed_checks(&services)).unwrap_or_default();
        assert_eq!(
            listed,
            serde_json::json!([{
                "name": "db-tcp", "kind": "http", "state": "down", "service": "db",
                "since": null, "since_ms": null, "last_probe": null, "last_probe_ms": null
            }])
        );
    }

    #[test]
    fn results_list_their_certificates() {
        let result = ProbeResult {
            at: "1970-01-01T00:00:00.000Z".to_owned(),
            at_ms: 0,
            verdict: "fail".to_owned(),
            latency_ms: 12,
            status: None,
            cause: None,
            error: None,
            conditions: vec![ConditionResult {
                success: false,
                condition: "[CERTIFICATE_EXPIRATION] (216h) > 336h".to_owned(),
            }],
            certificates: vec![ProbeCertificate {
                path: Some("/etc/letsencrypt/live/a/fullchain.pem".to_owned()),
                subject: "CN=a.example".to_owned(),
                issuer: "CN=R3".to_owned(),
                names: vec!["a.example".to_owned(), "www.a.example".to_owned()],
                not_after: "1970-01-01T00:00:00.000Z".to_owned(),
                not_after_ms: 0,
                days_left: 9,
                class: "critical".to_owned(),
            }],
        };
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
