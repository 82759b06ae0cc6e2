//! Secrets never reach what programs print into the store: the real binary on PostgreSQL, its
//! `STEWARD_DATABASE` holding a password and its environment holding the values behind the
//! config's `${VAR}`s, runs `/usr/bin/env` as a `shell` task and as `command` checks, and the
//! tasks and check results the API serves are searched for those values.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use steward_store_postgres::testing::TestDatabase;
use support::{Daemon, eventually};

const DATABASE_PASSWORD: &str = "db-pw-7f3a9c1e";
const TASK_TOKEN: &str = "task-token-2b8d4e6f";
const HEADER_TOKEN: &str = "header-token-9c1a3e5b";
const CHECK_TOKEN: &str = "check-token-4d6f8a0c";
const DAEMON_ONLY: &str = "daemon-only-5e7a9b1d";

/// Every value that must never be served.
const SECRETS: [&str; 5] = [
    DATABASE_PASSWORD,
    TASK_TOKEN,
    HEADER_TOKEN,
    CHECK_TOKEN,
    DAEMON_ONLY,
];

fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("steward.toml");
    std::fs::write(
        &path,
        r#"
[[services]]
name = "box"

[[executors]]
name = "dump-env"
type = "shell"
command = "/usr/bin/env"
env = { TASK_TOKEN = "${SECRETS_TEST_TASK_TOKEN}" }

[[executors]]
name = "snoop"
type = "shell"
command = "/bin/sh"
args = ["-c", "tr '\\0' '\\n' < /proc/$PPID/environ"]

[[executors]]
name = "hook"
type = "http"
url = "http://127.0.0.1:9/hook"
headers = { Authorization = "Bearer ${SECRETS_TEST_HEADER_TOKEN}" }

[[queues]]
name = "jobs"
kinds = ["dump-env", "snoop", "hook"]
max_attempts = 1

[[checks]]
service = "box"
name = "env-body"
type = "command"
command = "/usr/bin/env"
env = { CHECK_TOKEN = "${SECRETS_TEST_CHECK_TOKEN}" }
interval = "1s"
conditions = ["[BODY] == nothing"]

[[checks]]
service = "box"
name = "env-error"
type = "command"
command = "/bin/sh"
args = ["-c", "printf 'token=%s daemon=%s db=%s\n' \"$CHECK_TOKEN\" \"$SECRETS_TEST_DAEMON_ONLY\" \"$STEWARD_DATABASE\" >&2; exit 3"]
env = { CHECK_TOKEN = "${SECRETS_TEST_CHECK_TOKEN}" }
interval = "1s"
"#,
    )
    .unwrap();
    path
}

/// `url` with [`DATABASE_PASSWORD`] as its password (the test server trusts loopback, so any
/// password connects), or `url` itself and the password it already has.
fn with_password(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap();
    match user.split_once(':') {
        Some((_, password)) => (url.to_owned(), password.to_owned()),
        None => (
            format!("{scheme}://{user}:{DATABASE_PASSWORD}@{host}"),
            DATABASE_PASSWORD.to_owned(),
        ),
    }
}

fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{what} shows `{secret}`:\n{text}");
    }
}

/// Enqueues a task of `kind` and returns the task with its runs once it finished.
fn run_task(daemon: &Daemon, kind: &str) -> Value {
    let answer: Value = daemon
        .send(
            Method::POST,
            "/api/v1/tasks",
            Some(json!({ "queue": "jobs", "kind": kind })),
        )
        .json()
        .unwrap();
    let id = answer["task"]["id"].as_i64().expect("an enqueued task");
    let mut finished = Value::Null;
    eventually(Duration::from_secs(20), "the task to finish", || {
        finished = daemon.get_json(&format!("/api/v1/tasks/{id}"));
        ["succeeded", "dead"].contains(&finished["task"]["status"].as_str().unwrap())
    });
    finished
}

/// The newest result of `check`, once there is one.
fn latest_result(daemon: &Daemon, check: &str) -> Value {
    let mut latest = Value::Null;
    eventually(Duration::from_secs(20), "a check result", || {
        let answer = daemon.get_json(&format!("/api/v1/checks/{check}/results?limit=1"));
        latest = answer["results"][0].clone();
        !latest.is_null()
    });
    latest
}

#[test]
fn programs_never_show_the_daemons_secrets() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let (database_url, password) = with_password(&db.url);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let daemon = Daemon::try_start_with_env(
        dir.path(),
        &["--config", config.to_str().unwrap()],
        &[
            ("STEWARD_DATABASE", &database_url),
            ("SECRETS_TEST_TASK_TOKEN", TASK_TOKEN),
            ("SECRETS_TEST_HEADER_TOKEN", HEADER_TOKEN),
            ("SECRETS_TEST_CHECK_TOKEN", CHECK_TOKEN),
            ("SECRETS_TEST_DAEMON_ONLY", DAEMON_ONLY),
        ],
    )
    .unwrap_or_else(|(status, stderr)| panic!("steward up exited with {status}:\n{stderr}"));
    let mut secrets = SECRETS.to_vec();
    secrets.push(&password);

    let dumped = run_task(&daemon, "dump-env");
    let text = dumped.to_string();
    assert_no_secret("the env task", &text, &secrets);
    let tail = dumped["runs"][0]["output_tail"].as_str().unwrap();
    assert!(tail.contains("TASK_TOKEN=***\n"), "{tail}");
    assert!(tail.contains("STEWARD_TASK_ID="), "{tail}");
    for leaked in ["STEWARD_DATABASE", "SECRETS_TEST_"] {
        assert!(!tail.contains(leaked), "the task saw {leaked}:\n{tail}");
    }

    // A program that digs the daemon's environment out of /proc finds its secrets masked.
    let snooped = run_task(&daemon, "snoop");
    let mut known = secrets.clone();
    known.retain(|s| *s != DAEMON_ONLY);
    assert_no_secret("the snooping task", &snooped.to_string(), &known);
    let tail = snooped["runs"][0]["output_tail"].as_str().unwrap();
    assert!(tail.contains("STEWARD_DATABASE=***\n"), "{tail}");

    let body = latest_result(&daemon, "env-body");
    assert_no_secret("the env check's result", &body.to_string(), &secrets);
    let resolved = body["conditions"][0].to_string();
    assert!(resolved.contains("CHECK_TOKEN=***"), "{resolved}");

    let error = latest_result(&daemon, "env-error");
    assert_no_secret("the failing check's result", &error.to_string(), &secrets);
    let message = error["error"].as_str().unwrap();
    assert!(message.contains("token=*** daemon= db="), "{message}");
}
