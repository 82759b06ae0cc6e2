//! Input from outside that must be refused as the caller's mistake, the same way on both
//! backends: a NUL anywhere (PostgreSQL cannot store one), names of workspaces nobody declared,
//! silences of centuries, malformed paths and page sizes. Every refusal is the documented JSON
//! and stores nothing.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::{Value, json};
use steward_store_postgres::testing::TestDatabase;
use support::{Daemon, steward};

fn config(dir: &Path) -> PathBuf {
    let path = dir.join("steward.toml");
    std::fs::write(
        &path,
        r#"
[[workspaces]]
key = "trading"

[[queues]]
name = "chores"
kinds = ["noop"]
"#,
    )
    .unwrap();
    path
}

fn audit_head(daemon: &Daemon) -> i64 {
    daemon.get_json("/api/v1/audit?limit=1")["head"]
        .as_i64()
        .unwrap()
}

fn refused_as_bad_input(daemon: &Daemon) {
    let head = audit_head(daemon);
    let post = |path: &str, body: Value| daemon.send(Method::POST, path, Some(body));
    let cases = [
        (
            post(
                "/api/v1/tasks",
                json!({ "queue": "chores", "kind": "noop", "payload": { "msg": "a\u{0}b" } }),
            ),
            "invalid_body",
            "`payload.msg`",
        ),
        (
            post(
                "/api/v1/tasks",
                json!({ "tasks": [{ "queue": "chores", "kind": "noop", "idempotency_key": "k\u{0}" }] }),
            ),
            "invalid_body",
            "`tasks[0].idempotency_key`",
        ),
        (
            post(
                "/api/v1/silences",
                json!({ "matchers": ["a=b"], "duration": "1h", "comment": "why\u{0}" }),
            ),
            "invalid_body",
            "`comment`",
        ),
        (
            post(
                "/api/v2/alerts",
                json!([{ "labels": { "alertname": "X", "a\u{0}": "b" } }]),
            ),
            "invalid_body",
            "`[0].labels.a\\u0000`",
        ),
        (
            daemon.get("/api/v1/tasks?queue=a%00b"),
            "invalid_query",
            "NUL",
        ),
        (
            daemon.get("/api/v1/audit?actor=%00"),
            "invalid_query",
            "NUL",
        ),
        (daemon.get("/api/v1/schedules/a%00b"), "invalid_path", "NUL"),
        (daemon.get("/api/v1/tasks/abc"), "invalid_path", "abc"),
        (
            daemon.get("/api/v1/tasks?limit=0"),
            "invalid_query",
            "`limit`",
        ),
        (
            daemon.get("/api/v1/audit?limit=0"),
            "invalid_query",
            "`limit`",
        ),
        (
            daemon.get("/api/v1/tasks?limit=-1"),
            "invalid_query",
            "limit",
        ),
        (
            post(
                "/api/v1/tasks",
                json!({ "queue": "chores", "kind": "noop", "workspace": "nowhere" }),
            ),
            "invalid_task",
            "no workspace `nowhere`",
        ),
        (
            post(
                "/api/v1/keys",
                json!({ "name": "ghost", "role": "viewer", "workspace": "nowhere" }),
            ),
            "invalid_body",
            "no workspace `nowhere`",
        ),
        (
            post(
                "/api/v1/silences",
                json!({ "matchers": ["a=b"], "duration": "100000d", "comment": "forever" }),
            ),
            "invalid_body",
            "365 days",
        ),
        (
            post(
                "/api/v1/silences",
                json!({ "matchers": ["a=b"], "starts_at_ms": 0, "ends_at_ms": i64::MAX, "comment": "forever" }),
            ),
            "invalid_body",
            "365 days",
        ),
    ];
    for (i, (response, code, names)) in cases.into_iter().enumerate() {
        let (status, got, message) = support::refusal(response);
        assert_eq!((status, got.as_str()), (400, code), "case {i}: {message}");
        assert!(message.contains(names), "case {i}: {message}");
    }
    // The command line is refused the same way.
    let output = steward()
        .args([
            "keys",
            "create",
            "ghost",
            "--role",
            "viewer",
            "--workspace",
            "nowhere",
        ])
        .env("STEWARD_URL", &daemon.url)
        .env("STEWARD_API_KEY", daemon.key.as_deref().unwrap())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no workspace `nowhere`"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(audit_head(daemon), head, "nothing refused was stored");
    // What is declared is taken.
    let taken = post(
        "/api/v1/tasks",
        json!({ "queue": "chores", "kind": "noop", "workspace": "trading" }),
    );
    assert_eq!(taken.status(), 201);
}

/// A program printing NUL bytes, as a task and as a check: what it printed is kept with each
/// NUL made visible, on both backends (PostgreSQL refuses a NUL, and a completion it refuses
/// would be retried for ever).
fn programs_printing_nul(dir: &Path) -> PathBuf {
    let path = dir.join("programs.toml");
    std::fs::write(
        &path,
        r#"
[[services]]
name = "db"

[[checks]]
name = "nul-check"
service = "db"
type = "command"
command = "sh"
args = ["-c", "printf 'bad\\000news' >&2; exit 1"]
interval = "1s"

[[executors]]
name = "nul"
type = "shell"
command = "printf"
args = ["out\\000put"]

[[queues]]
name = "chores"
kinds = ["nul"]
"#,
    )
    .unwrap();
    path
}

fn nul_output_is_kept_visible(daemon: &Daemon) {
    let posted = daemon.send(
        Method::POST,
        "/api/v1/tasks",
        Some(json!({ "queue": "chores", "kind": "nul" })),
    );
    assert_eq!(posted.status(), 201);
    let id = posted.json::<Value>().unwrap()["task"]["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/tasks/{id}");
    support::eventually(
        std::time::Duration::from_secs(20),
        "the task's completion to be stored",
        || daemon.get_json(&path)["task"]["status"] == "succeeded",
    );
    let runs = daemon.get_json(&path)["runs"].clone();
    assert_eq!(runs[0]["output_tail"], "out\u{fffd}put", "{runs}");
    support::eventually(
        std::time::Duration::from_secs(20),
        "the check's failure to be stored",
        || {
            daemon.get_json("/api/v1/checks/nul-check/results")["results"][0]["error"]
                .as_str()
                .is_some_and(|e| e.contains("bad\u{fffd}news"))
        },
    );
}

#[test]
fn programs_printing_nul_are_stored_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &programs_printing_nul(dir.path()), &[]);
    nul_output_is_kept_visible(&daemon);
}

#[test]
fn programs_printing_nul_are_stored_on_postgres() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_on_postgres(dir.path(), &programs_printing_nul(dir.path()), &db);
    nul_output_is_kept_visible(&daemon);
}

#[test]
fn bad_input_is_refused_as_such_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &config(dir.path()), &[]);
    refused_as_bad_input(&daemon);
}

#[test]
fn bad_input_is_refused_as_such_on_postgres_never_as_an_outage() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_on_postgres(dir.path(), &config(dir.path()), &db);
    refused_as_bad_input(&daemon);
}
