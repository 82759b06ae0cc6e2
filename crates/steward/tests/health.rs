//! Health checks through the real binary: a service's outage seen through the API, the
//! `steward status` and `steward checks` commands and `/metrics`, with the impact on a
//! workspace that depends on it, roles and workspace scopes; on SQLite and on PostgreSQL.

#![allow(clippy::expect_used, clippy::unwrap_used)] // helpers of tests: a failure is a failed test

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use steward_store_postgres::testing::TestDatabase;
use support::{Daemon, db_scalar, eventually, steward};

/// A loopback HTTP server answering 200 `{"status":"UP"}` or, once failing, 500.
struct Backend {
    addr: SocketAddr,
    healthy: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
}

impl Backend {
    fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let backend = Backend {
            addr: listener.local_addr().unwrap(),
            healthy: Arc::new(AtomicBool::new(true)),
            requests: Arc::new(AtomicUsize::new(0)),
        };
        let (healthy, requests) = (Arc::clone(&backend.healthy), Arc::clone(&backend.requests));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (healthy, requests) = (Arc::clone(&healthy), Arc::clone(&requests));
                std::thread::spawn(move || answer(stream, &healthy, &requests));
            }
        });
        backend
    }

    fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn answer(mut stream: TcpStream, healthy: &AtomicBool, requests: &AtomicUsize) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let (status, body) = if healthy.load(Ordering::SeqCst) {
        ("200 OK", r#"{"status":"UP"}"#)
    } else {
        ("500 Internal Server Error", r#"{"status":"DOWN"}"#)
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// `shop` depends on `db-ws`; `db` (in `db-ws`) and `web` (in `shop`) are checked every second
/// against the two backends.
fn write_config(dir: &Path, db: &Backend, web: &Backend) -> PathBuf {
    let text = format!(
        r#"
[[workspaces]]
key = "db-ws"

[[workspaces]]
key = "shop"

[[dependencies]]
from = "shop"
to = "db-ws"
type = "reads"

[[services]]
name = "db"
workspace = "db-ws"
url = "{db}"

[[services]]
name = "web"
workspace = "shop"
url = "{web}"

[[checks]]
service = "db"
path = "/health"
interval = "1s"
failures_before_down = 2
successes_before_up = 1
conditions = ["[STATUS] == 200", "[BODY].status == UP"]

[[checks]]
service = "web"
interval = "1s"
successes_before_up = 1
"#,
        db = db.url(),
        web = web.url()
    );
    let path = dir.join("steward.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs a client command against `daemon` with `key`.
fn cli(daemon: &Daemon, key: &str, args: &[&str]) -> Output {
    steward()
        .args(args)
        .env("STEWARD_URL", &daemon.url)
        .env("STEWARD_API_KEY", key)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Runs a client command that must succeed; returns its standard output.
fn cli_ok(daemon: &Daemon, key: &str, args: &[&str]) -> String {
    let out = cli(daemon, key, args);
    assert!(
        out.status.success(),
        "steward {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Creates a key and returns it.
fn create_key(daemon: &Daemon, name: &str, role: &str, workspace: Option<&str>) -> String {
    let admin = daemon.key.clone().unwrap();
    let mut args = vec!["keys", "create", name, "--role", role];
    if let Some(workspace) = workspace {
        args.extend(["--workspace", workspace]);
    }
    let key = cli_ok(daemon, &admin, &args).trim().to_owned();
    assert!(key.starts_with("stw_"), "{key}");
    key
}

fn request(
    daemon: &Daemon,
    key: &str,
    method: reqwest::Method,
    path: &str,
) -> reqwest::blocking::Response {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .request(method, format!("{}{path}", daemon.url))
        .bearer_auth(key)
        .send()
        .unwrap()
}

/// The service named `name` in a `/api/v1/services` answer.
fn service<'a>(answer: &'a Value, name: &str) -> Option<&'a Value> {
    answer["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
}

fn state_of(answer: &Value, name: &str) -> String {
    service(answer, name).map_or_else(String::new, |s| {
        s["state"].as_str().unwrap_or_default().to_owned()
    })
}

/// Waits until `/api/v1/services` shows `db` and `web` in these states; returns the answer.
fn services_become(daemon: &Daemon, db: &str, web: &str) -> Value {
    let mut last = Value::Null;
    eventually(
        Duration::from_secs(30),
        &format!("db {db} and web {web}"),
        || {
            last = daemon.get_json("/api/v1/services");
            state_of(&last, "db") == db && state_of(&last, "web") == web
        },
    );
    last
}

/// Asserts the outage as `/api/v1/services` (or `steward status --output json`) shows it to
/// an unscoped key.
fn assert_outage(answer: &Value) {
    let db = service(answer, "db").unwrap();
    assert_eq!(db["state"], "down", "{answer:#}");
    assert_eq!(db["workspace"], "db-ws");
    assert_eq!(db["impacted_by"], serde_json::json!([]));
    assert_eq!(db["checks"][0]["name"], "db-http");
    assert_eq!(db["checks"][0]["kind"], "http");
    assert_eq!(db["checks"][0]["state"], "down");
    let web = service(answer, "web").unwrap();
    assert_eq!(web["state"], "impacted", "{answer:#}");
    assert_eq!(web["impacted_by"], serde_json::json!(["db"]));
    assert_eq!(web["checks"][0]["name"], "web-http");
    assert_eq!(web["checks"][0]["state"], "up", "web itself is fine");
}

#[test]
fn an_outage_shows_in_the_api_the_cli_and_metrics_with_its_impact() {
    let dir = tempfile::tempdir().unwrap();
    let db_backend = Backend::start();
    let web_backend = Backend::start();
    let config = write_config(dir.path(), &db_backend, &web_backend);
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    let admin = daemon.key.clone().unwrap();
    let operator = create_key(&daemon, "ops", "operator", None);
    let viewer = create_key(&daemon, "dashboard", "viewer", None);
    let shop = create_key(&daemon, "shop-dashboard", "viewer", Some("shop"));

    let healthy = services_become(&daemon, "up", "up");
    assert_eq!(
        service(&healthy, "web").unwrap()["impacted_by"],
        serde_json::json!([])
    );

    db_backend.set_healthy(false);
    let answer = services_become(&daemon, "down", "impacted");
    assert_outage(&answer);

    // `steward status`: the same, as JSON and as a table.
    let json: Value =
        serde_json::from_str(&cli_ok(&daemon, &viewer, &["status", "--output", "json"])).unwrap();
    assert_outage(&json);
    let table = cli_ok(&daemon, &viewer, &["status"]);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"))
            .to_owned()
    };
    let db_row = row("db");
    assert!(
        db_row.contains("db-ws") && db_row.contains("down"),
        "{table}"
    );
    assert!(
        db_row.contains("0/1 up") && db_row.contains("db-http down"),
        "{table}"
    );
    let web_row = row("web");
    assert!(
        web_row.contains("shop") && web_row.contains("impacted"),
        "{table}"
    );
    assert!(web_row.contains("depends on down db"), "{table}");
    assert!(table.contains("2 services: 1 down, 1 impacted"), "{table}");

    // `steward checks ls | show | history`.
    let listed = cli_ok(&daemon, &viewer, &["checks", "ls"]);
    assert!(
        listed.contains("db-http") && listed.contains("web-http"),
        "{listed}"
    );
    let shown = cli_ok(
        &daemon,
        &viewer,
        &["checks", "show", "db-http", "--window", "1h"],
    );
    for expected in [
        "name: db-http",
        "service: db",
        "type: http",
        "state: down",
        "[STATUS] == 200",
        "[BODY].status == UP",
        "status 500",
        "[STATUS] (500) == 200",
    ] {
        assert!(shown.contains(expected), "no `{expected}` in:\n{shown}");
    }
    let shown: Value = serde_json::from_str(&cli_ok(
        &daemon,
        &viewer,
        &["checks", "show", "db-http", "--output", "json"],
    ))
    .unwrap();
    assert_eq!(shown["state"], "down");
    assert_eq!(shown["window_ms"], 3_600_000);
    assert!(
        shown["latency"]["count"].as_u64().unwrap() >= 3,
        "{shown:#}"
    );
    assert!(
        shown["latency"]["failures"].as_u64().unwrap() >= 2,
        "{shown:#}"
    );
    assert_eq!(shown["last_result"]["verdict"], "fail");
    assert_eq!(shown["last_result"]["status"], 500);
    let history = cli_ok(&daemon, &viewer, &["checks", "history", "db-http"]);
    let went_down = history.find("up -> down");
    let went_up = history.find("unknown -> up");
    assert!(
        went_down.is_some() && went_up.is_some() && went_down < went_up,
        "newest first:\n{history}"
    );
    assert!(history.contains("[STATUS] (500) == 200"), "{history}");
    let history: Value = serde_json::from_str(&cli_ok(
        &daemon,
        &viewer,
        &["checks", "history", "db-http", "--output", "json"],
    ))
    .unwrap();
    let changes: Vec<(&str, &str)> = history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["from"].as_str().unwrap(), t["to"].as_str().unwrap()))
        .collect();
    assert_eq!(changes, [("up", "down"), ("unknown", "up")]);

    // The same history through the API, by check and by service, and the raw results.
    let by_service = daemon.get_json("/api/v1/services/db/transitions");
    assert_eq!(by_service["transitions"], history["transitions"]);
    let results = daemon.get_json("/api/v1/checks/db-http/results?limit=2");
    let results = results["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(results[0]["at_ms"].as_i64() > results[1]["at_ms"].as_i64());
    assert_eq!(results[0]["verdict"], "fail");
    let checks = daemon.get_json("/api/v1/services/db/checks?window=1h");
    assert_eq!(checks["checks"][0]["name"], "db-http");
    assert_eq!(checks["checks"][0]["state"], "down");

    // Running a check now takes an operator; a viewer may not.
    let run = request(
        &daemon,
        &operator,
        reqwest::Method::POST,
        "/api/v1/checks/db-http/run",
    );
    assert_eq!(run.status(), 200);
    let run: Value = run.json().unwrap();
    assert_eq!(run["check"], "db-http");
    assert_eq!(run["result"]["verdict"], "fail");
    assert_eq!(run["result"]["status"], 500);
    assert_eq!(run["recorded"], true);
    assert_eq!(run["state"], "down");
    assert!(
        run["reason"]
            .as_str()
            .unwrap()
            .contains("[STATUS] (500) == 200")
    );
    let refused = request(
        &daemon,
        &viewer,
        reqwest::Method::POST,
        "/api/v1/checks/db-http/run",
    );
    assert_eq!(refused.status(), 403);
    let ran = cli_ok(&daemon, &operator, &["checks", "run", "db-http"]);
    assert!(
        ran.contains("result: fail") && ran.contains("status 500"),
        "{ran}"
    );
    assert!(ran.contains("state: down"), "{ran}");
    let denied = cli(&daemon, &viewer, &["checks", "run", "db-http"]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );

    // A key scoped to `shop` sees its own service, impacted, but not `db` nor its check.
    let scoped: Value = request(&daemon, &shop, reqwest::Method::GET, "/api/v1/services")
        .json()
        .unwrap();
    let names: Vec<&str> = scoped["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web"], "{scoped:#}");
    assert_eq!(scoped["services"][0]["state"], "impacted");
    assert_eq!(
        scoped["services"][0]["impacted_by"],
        serde_json::json!([]),
        "the name of a service in another workspace is not shown"
    );
    for path in [
        "/api/v1/checks/db-http",
        "/api/v1/checks/db-http/results",
        "/api/v1/checks/db-http/transitions",
        "/api/v1/services/db/checks",
        "/api/v1/services/db/transitions",
    ] {
        let response = request(&daemon, &shop, reqwest::Method::GET, path);
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
    assert_eq!(
        request(
            &daemon,
            &shop,
            reqwest::Method::GET,
            "/api/v1/checks/web-http"
        )
        .status(),
        200
    );
    let scoped_status: Value =
        serde_json::from_str(&cli_ok(&daemon, &shop, &["status", "--output", "json"])).unwrap();
    assert!(service(&scoped_status, "db").is_none(), "{scoped_status:#}");

    // Metrics: each check's up gauge (db down, web up), durations and probe counts.
    let metrics = request(&daemon, &admin, reqwest::Method::GET, "/metrics")
        .text()
        .unwrap();
    let line = |prefix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{metrics}"))
            .to_owned()
    };
    let db_up = line(r#"steward_check_up{check="db-http""#);
    assert!(db_up.contains(r#"service="db""#), "{db_up}");
    assert!(db_up.ends_with(" 0"), "db is down: {db_up}");
    let web_up = line(r#"steward_check_up{check="web-http""#);
    assert!(web_up.ends_with(" 1"), "web is up: {web_up}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("steward_check_duration_seconds")
                && l.contains(r#"check="db-http""#)),
        "{metrics}"
    );
    line(r#"steward_probes_total{verdict="fail"}"#);
    line(r#"steward_probes_total{verdict="pass"}"#);
    line(r#"steward_checks{state="down"}"#);

    // Recovery: db comes back after one pass, and web is no longer impacted.
    db_backend.set_healthy(true);
    let recovered = services_become(&daemon, "up", "up");
    assert_eq!(
        service(&recovered, "web").unwrap()["impacted_by"],
        serde_json::json!([])
    );
    assert!(db_backend.requests.load(Ordering::SeqCst) >= 4);
    let logs = daemon.logs();
    assert!(logs.contains("check changed state"), "{logs}");
}

/// The same outage on PostgreSQL: states through the API, and the rows behind them.
#[test]
fn an_outage_shows_in_the_api_on_postgres() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db_backend = Backend::start();
    let web_backend = Backend::start();
    let config = write_config(dir.path(), &db_backend, &web_backend);
    let daemon = Daemon::start_on_postgres(dir.path(), &config, &db);

    services_become(&daemon, "up", "up");
    db_backend.set_healthy(false);
    let answer = services_become(&daemon, "down", "impacted");
    assert_outage(&answer);
    assert_eq!(
        db_scalar(
            &db,
            "SELECT count(*) FROM check_state WHERE check_name = 'db-http' AND state = 'down'"
        ),
        1
    );
    assert_eq!(
        db_scalar(
            &db,
            "SELECT count(*) FROM check_transitions WHERE check_name = 'db-http'"
        ),
        2
    );
    assert!(
        db_scalar(
            &db,
            "SELECT count(*) FROM check_results WHERE check_name = 'db-http' AND verdict = 'fail'"
        ) >= 2
    );
    let check = daemon.get_json("/api/v1/checks/db-http");
    assert_eq!(check["state"], "down");
    assert_eq!(check["last_result"]["status"], 500);
    assert!(
        check["latency"]["count"].as_u64().unwrap() >= 3,
        "{check:#}"
    );

    db_backend.set_healthy(true);
    services_become(&daemon, "up", "up");
    let history = daemon.get_json("/api/v1/checks/db-http/transitions");
    let changes: Vec<(&str, &str)> = history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["from"].as_str().unwrap(), t["to"].as_str().unwrap()))
        .collect();
    assert_eq!(changes, [("down", "up"), ("up", "down"), ("unknown", "up")]);
}
