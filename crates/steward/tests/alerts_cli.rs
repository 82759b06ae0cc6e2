//! The `steward alerts` commands through the real binary: listing, showing and acknowledging
//! alerts posted to a running daemon, creating, listing and ending silences, previewing routes
//! offline with `test-route`, and bad arguments refused before anything is sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Daemon, eventually, steward};

const DAEMON_CONFIG: &str = r#"
[[workspaces]]
key = "trading"

[alerting]
resolve_timeout = "1h"

# Nothing listens on the discard port: notifications are made, and fail.
[alerting.route]
receiver = "hook"
group_by = ["..."]
group_wait = "0s"

[[alerting.receivers]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:9/hook"
"#;

/// A route tree: critical alerts page and go on; api and web alerts go to their team, each its
/// own group; db alerts to the db team, whose warnings go elsewhere; the rest to `default`.
const ROUTE_CONFIG: &str = r#"
[alerting.route]
receiver = "default"
group_by = ["alertname"]

[[alerting.route.routes]]
matchers = ["severity=critical"]
receiver = "pager"
continue = true
group_wait = "10s"

[[alerting.route.routes]]
matchers = ['service=~"api|web"']
receiver = "web"
group_by = ["..."]

[[alerting.route.routes]]
matchers = ["team=db"]
receiver = "db"
repeat_interval = "1h"

[[alerting.route.routes.routes]]
matchers = ["severity=warning"]
receiver = "db-warn"

[[alerting.receivers]]
name = "default"
type = "webhook"
url = "http://127.0.0.1:9/default"

[[alerting.receivers]]
name = "pager"
type = "webhook"
url = "http://127.0.0.1:9/pager"

[[alerting.receivers]]
name = "web"
type = "webhook"
url = "http://127.0.0.1:9/web"

[[alerting.receivers]]
name = "db"
type = "webhook"
url = "http://127.0.0.1:9/db"

[[alerting.receivers]]
name = "db-warn"
type = "webhook"
url = "http://127.0.0.1:9/db-warn"
"#;

/// Runs `steward ARGS` against `url` with `key`, without colours.
fn run(url: &str, key: &str, args: &[&str]) -> Output {
    steward()
        .args(args)
        .env("STEWARD_URL", url)
        .env("STEWARD_API_KEY", key)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Runs a command that must succeed; returns its standard output.
fn ok(url: &str, key: &str, args: &[&str]) -> String {
    let out = run(url, key, args);
    assert!(
        out.status.success(),
        "steward {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail with `code`; returns its standard error.
fn fails(url: &str, key: &str, args: &[&str], code: i32) -> String {
    let out = run(url, key, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "steward {args:?}: stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).unwrap()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The line of `table` whose first column is `first`.
fn row<'a>(table: &'a str, first: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no row `{first}` in:\n{table}"))
}

#[test]
fn alerts_are_listed_shown_acknowledged_and_silenced_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steward.toml");
    std::fs::write(&config, DAEMON_CONFIG).unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    let key = daemon.key.clone().unwrap();
    let url = daemon.url.as_str();

    let response = daemon.send(
        Method::POST,
        "/api/v1/alerts",
        Some(json!({"alerts": [
            {"labels": {"alertname": "ApiDown", "service": "api", "severity": "critical", "workspace": "trading"},
             "annotations": {"summary": "API down for 1 minute"}},
            {"labels": {"alertname": "DiskFull", "host": "vps-1"}}
        ]})),
    );
    assert_eq!(response.status(), 200);

    // `ls`: a table with both, JSON, and each filter.
    let table = ok(url, &key, &["alerts", "ls"]);
    assert!(table.starts_with("FINGERPRINT"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
    let listed = json_of(&ok(url, &key, &["alerts", "ls", "--output", "json"]));
    assert_eq!(listed["alerts"].as_array().unwrap().len(), 2, "{listed}");
    let critical = json_of(&ok(
        url,
        &key,
        &["alerts", "ls", "--severity", "critical", "--output", "json"],
    ));
    assert_eq!(
        critical["alerts"].as_array().unwrap().len(),
        1,
        "{critical}"
    );
    assert_eq!(critical["alerts"][0]["labels"]["alertname"], "ApiDown");
    let api = critical["alerts"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let disk = json_of(&ok(
        url,
        &key,
        &[
            "alerts",
            "ls",
            "--label",
            "host=vps-1",
            "--state",
            "firing",
            "--output",
            "json",
        ],
    ));
    assert_eq!(
        disk["alerts"][0]["labels"]["alertname"], "DiskFull",
        "{disk}"
    );
    let disk = disk["alerts"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let line = row(&table, &api);
    for word in ["firing", "critical", "ApiDown", "service=api", "-"] {
        assert!(line.contains(word), "{word} in {line}");
    }
    assert!(row(&table, &disk).contains("host=vps-1"), "{table}");
    let none = ok(url, &key, &["alerts", "ls", "--state", "resolved"]);
    assert_eq!(none.lines().count(), 1, "only the header: {none}");
    let both = ok(
        url,
        &key,
        &[
            "alerts",
            "ls",
            "--label",
            "service=api",
            "--label",
            "workspace=trading",
        ],
    );
    assert_eq!(both.lines().count(), 2, "{both}");

    // `show`: the detail, as text and as JSON; notifications when the server reports them.
    let shown = ok(url, &key, &["alerts", "show", &api]);
    for line in [
        format!("fingerprint: {api}"),
        "state: firing (episode 1)".to_owned(),
        "severity: critical".to_owned(),
        "ack: none".to_owned(),
        "  summary: API down for 1 minute".to_owned(),
        "  service: api".to_owned(),
    ] {
        assert!(shown.lines().any(|l| l == line), "`{line}` in:\n{shown}");
    }
    let detail = json_of(&ok(
        url,
        &key,
        &["alerts", "show", &api, "--output", "json"],
    ));
    assert_eq!(detail["fingerprint"], api.as_str());
    // The route sends each alert to `hook` at once: its notification is listed with the alert.
    eventually(
        Duration::from_secs(30),
        "a notification about the alert",
        || {
            let detail = json_of(&ok(
                url,
                &key,
                &["alerts", "show", &api, "--output", "json"],
            ));
            detail["notifications"]
                .as_array()
                .is_some_and(|n| !n.is_empty())
        },
    );
    let shown = ok(url, &key, &["alerts", "show", &api]);
    let table = shown
        .split_once("notifications:\n")
        .unwrap_or_else(|| panic!("no notifications in:\n{shown}"))
        .1;
    assert!(table.starts_with("ID"), "{shown}");
    let line = table.lines().nth(1).unwrap();
    assert!(
        line.contains(" hook ") && line.contains(" first "),
        "{line}"
    );
    // Upper-case hex names the same alert.
    ok(url, &key, &["alerts", "show", &api.to_uppercase()]);

    // `ack`, seen on the alert.
    let acked = ok(
        url,
        &key,
        &["alerts", "ack", &api, "--note", "restarting the API"],
    );
    assert!(
        acked.starts_with(&format!("alert {api}: episode 1 acknowledged by ")),
        "{acked}"
    );
    let detail = json_of(&ok(
        url,
        &key,
        &["alerts", "show", &api, "--output", "json"],
    ));
    assert_eq!(detail["ack"]["note"], "restarting the API");
    let shown = ok(url, &key, &["alerts", "show", &api]);
    assert!(shown.contains(": restarting the API"), "{shown}");
    assert!(
        row(&ok(url, &key, &["alerts", "ls"]), &api)
            .ends_with(detail["ack"]["by"].as_str().unwrap()),
        "ACK names who acknowledged"
    );

    // `silence` prints the id; `silences` lists them; `unsilence` ends one.
    let first = ok(
        url,
        &key,
        &[
            "alerts",
            "silence",
            "--matcher",
            "alertname=ApiDown",
            "--matcher",
            r#"service=~"api|web""#,
            "--duration",
            "2h",
            "--comment",
            "deploying",
        ],
    );
    let first: i64 = first.trim().parse().expect("only the id is printed");
    // Whole seconds about 200 days ahead: within the year a silence may last.
    let until = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + Duration::from_secs(200 * 86_400),
    )
    .to_string();
    let second = ok(
        url,
        &key,
        &[
            "alerts",
            "silence",
            "--matcher",
            "host!~vps-[0-9]+",
            "--until",
            &until,
        ],
    );
    let second: i64 = second.trim().parse().unwrap();
    let silences = ok(url, &key, &["alerts", "silences"]);
    assert!(silences.starts_with("ID"), "{silences}");
    let line = row(&silences, &first.to_string());
    for word in [
        "active",
        r#"alertname="ApiDown", service=~"api|web""#,
        "deploying",
    ] {
        assert!(line.contains(word), "{word} in {line}");
    }
    let line = row(&silences, &second.to_string());
    assert!(
        line.contains(&until.replace('Z', "+00:00")) && line.contains("no comment given"),
        "{line}"
    );
    let ended = ok(url, &key, &["alerts", "unsilence", &first.to_string()]);
    assert!(
        ended.starts_with(&format!("silence {first}: ended at ")),
        "{ended}"
    );
    let listed = json_of(&ok(url, &key, &["alerts", "silences", "--output", "json"]));
    let ids: Vec<i64> = listed["silences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![second], "{listed}");

    // What the API refuses comes back as its error, with exit code 1.
    let error = fails(url, &key, &["alerts", "unsilence", "999999"], 1);
    assert!(error.contains("404 not_found"), "{error}");
    let error = fails(url, &key, &["alerts", "show", "00000000000000ff"], 1);
    assert!(error.contains("404 not_found"), "{error}");
}

#[test]
fn bad_arguments_are_refused_before_anything_is_sent() {
    // Nothing listens here: an error naming the argument shows no request was tried.
    let url = "http://127.0.0.1:9";
    let key = "stw_not_a_real_key";
    for (args, expected) in [
        (
            vec!["alerts", "show", "not-hex"],
            "`not-hex` is not a fingerprint: 16 hex digits",
        ),
        (vec!["alerts", "ack", "abc123"], "16 hex digits"),
        (
            vec![
                "alerts",
                "silence",
                "--matcher",
                "service~api",
                "--duration",
                "1h",
            ],
            "`service~api`: no operator (=, !=, =~ or !~)",
        ),
        (
            vec!["alerts", "silence", "--matcher", "1x=a", "--duration", "1h"],
            "`1x` is not a label name",
        ),
        (
            vec!["alerts", "silence", "--matcher", "a=~(", "--duration", "1h"],
            "not a regular expression",
        ),
        (
            vec!["alerts", "silence", "--matcher", "a=b", "--duration", "2x"],
            "`2x` is not a duration",
        ),
        (vec!["alerts", "silence", "--matcher", "a=b"], "--duration"),
        (
            vec![
                "alerts",
                "silence",
                "--matcher",
                "a=b",
                "--until",
                "2000-01-01T00:00:00Z",
            ],
            "has passed",
        ),
        (
            vec![
                "alerts",
                "silence",
                "--matcher",
                "a=b",
                "--duration",
                "1h",
                "--comment",
                " ",
            ],
            "say why",
        ),
        (vec!["alerts", "ls", "--label", "service=a,b"], "comma"),
        (
            vec!["alerts", "ls", "--label", "a=1", "--label", "a=2"],
            "`a` is given twice",
        ),
        (vec!["alerts", "ls", "--severity", "urgent"], "`urgent`"),
        (vec!["alerts", "ls", "--limit", "0"], "--limit"),
        (vec!["alerts", "unsilence", "0"], "not in 1.."),
    ] {
        let error = fails(url, key, &args, 2);
        assert!(
            error.contains(expected),
            "{args:?}: `{expected}` in {error}"
        );
        assert!(!error.contains("cannot reach"), "{args:?}: {error}");
    }
    // A valid command does try, and says it could not reach the server.
    let error = fails(url, key, &["alerts", "show", "00000000000000ff"], 1);
    assert!(error.contains("cannot reach"), "{error}");
}

/// Runs `alerts test-route` on `config` with `labels` (no server involved).
fn test_route(config: &Path, labels: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "alerts",
        "test-route",
        "--config",
        config.to_str().unwrap(),
        "--labels",
        labels,
    ];
    args.extend_from_slice(extra);
    steward().args(&args).output().unwrap()
}

fn route_ok(config: &Path, labels: &str, extra: &[&str]) -> String {
    let out = test_route(config, labels, extra);
    assert!(
        out.status.success(),
        "test-route {labels}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn test_route_prints_where_the_route_tree_sends_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steward.toml");
    std::fs::write(&config, ROUTE_CONFIG).unwrap();

    // A critical api alert pages (and goes on), then goes to the web team, in its own group.
    let critical = "alertname=ApiDown,severity=critical,service=api";
    let table = route_ok(&config, critical, &[]);
    assert!(table.starts_with("ROUTE"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
    let pager = row(&table, "/0");
    for word in [
        r#"severity="critical""#,
        "pager",
        "alertname",
        "10.0s",
        "5m00s",
        "4h00m",
        r#"/0:pager:{alertname="ApiDown"}"#,
    ] {
        assert!(pager.contains(word), "{word} in {pager}");
    }
    let web = row(&table, "/1");
    assert!(web.contains(" web ") && web.contains("..."), "{web}");
    let report = json_of(&route_ok(&config, critical, &["--output", "json"]));
    let destinations = report["destinations"].as_array().unwrap();
    let receivers: Vec<&str> = destinations
        .iter()
        .map(|d| d["receiver"].as_str().unwrap())
        .collect();
    assert_eq!(receivers, ["pager", "web"], "{report}");
    assert_eq!(destinations[0]["path"], json!([0]));
    assert_eq!(destinations[0]["group_wait_ms"], 10_000);
    assert_eq!(destinations[1]["group_by"], json!(["..."]));
    assert_eq!(
        destinations[1]["group_key"],
        r#"/1:web:{alertname="ApiDown",service="api",severity="critical"}"#
    );
    assert_eq!(report["labels"]["service"], "api");

    // A db warning goes to the nested route, with what it inherits.
    let report = json_of(&route_ok(
        &config,
        "alertname=DbSlow,team=db,severity=warning",
        &["--output", "json"],
    ));
    assert_eq!(
        report["destinations"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    let db = &report["destinations"][0];
    assert_eq!(db["route"], "/2/0");
    assert_eq!(db["receiver"], "db-warn");
    assert_eq!(db["repeat_interval_ms"], 3_600_000);
    assert_eq!(db["group_key"], r#"/2/0:db-warn:{alertname="DbSlow"}"#);

    // What no child takes stays at the root.
    let table = route_ok(&config, "alertname=DiskFull, severity=info", &[]);
    let root = row(&table, "/");
    assert!(
        root.contains("default") && root.contains(r#"/:default:{alertname="DiskFull"}"#),
        "{root}"
    );

    // Labels that do not parse: the part at fault is named, exit code 2.
    for (labels, expected) in [
        ("alertname=X,oops", "label 2 of 2: `oops` is not name=value"),
        ("alertname=X,,a=b", "label 2 of 3 is empty"),
        ("alertname=X,9lives=yes", "`9lives` is not a label name"),
        ("a=1,a=2", "`a` is given twice"),
    ] {
        let out = test_route(&config, labels, &[]);
        assert_eq!(out.status.code(), Some(2), "{labels}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "`{expected}` in {stderr}");
    }

    // No route: said plainly, exit code 1; a config that does not load: its problems, code 2.
    let bare = dir.path().join("bare.toml");
    std::fs::write(&bare, "[alerting]\nresolve_timeout = \"5m\"\n").unwrap();
    let out = test_route(&bare, "alertname=X", &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("there is no [alerting.route]"), "{stderr}");
    assert!(out.stdout.is_empty());
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[alerting.route]\nreceiver = \"nobody\"\n").unwrap();
    let out = test_route(&broken, "alertname=X", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken.toml:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
