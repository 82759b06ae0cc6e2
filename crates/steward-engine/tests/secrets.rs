//! Programs the engine starts never carry the daemon's secrets into the store. The test runs
//! itself again as the "daemon", with secrets in its environment: one that nothing declares
//! and ones the config takes through `${VAR}` (a `shell` executor's `env`, an `http`
//! executor's header, a `command` check's `env`). A worker runs `/usr/bin/env` as a task and
//! the prober runs it as checks, on a real SQLite store; what they stored is searched for
//! those values.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: failing loudly is the point

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use steward_store::Database;

use steward_core::audit::Actor;
use steward_core::task::{TaskOrigin, TaskRun};
use steward_engine::prober::{self, ProberOptions};
use steward_engine::queue::EnqueueRequest;
use steward_engine::queue::worker::{self, WorkerOptions};
use steward_engine::{ControlPlane, EventBus, RedactorSource, SystemEnv};
use steward_store::{ProbeRecord, Store};
use steward_store_sqlite::SqliteStore;
use tokio_util::sync::CancellationToken;

/// Set in the environment of the test run as the daemon.
const AS_DAEMON: &str = "STEWARD_SECRETS_TEST_AS_DAEMON";

const DAEMON_ONLY: (&str, &str) = ("AAA_DAEMON_ONLY", "daemon-only-6b2e8c4a");
const TASK_TOKEN: (&str, &str) = ("SECRETS_TASK_TOKEN", "task-token-1f3b5d7e");
const HEADER_TOKEN: (&str, &str) = ("SECRETS_HEADER_TOKEN", "header-token-8e0a2c4b");
const CHECK_TOKEN: (&str, &str) = ("SECRETS_CHECK_TOKEN", "check-token-3c5e7a9d");

/// Every value that must never be stored.
const SECRETS: [&str; 4] = [DAEMON_ONLY.1, TASK_TOKEN.1, HEADER_TOKEN.1, CHECK_TOKEN.1];

const CONFIG: &str = r#"
[[services]]
name = "box"

[[executors]]
name = "dump-env"
type = "shell"
command = "/usr/bin/env"
env = { A_TASK_TOKEN = "${SECRETS_TASK_TOKEN}" }

[[executors]]
name = "hook"
type = "http"
url = "http://127.0.0.1:9/hook"
headers = { Authorization = "Bearer ${SECRETS_HEADER_TOKEN}" }

[[queues]]
name = "jobs"
kinds = ["dump-env", "hook"]
max_attempts = 1

[[checks]]
service = "box"
name = "env-body"
type = "command"
command = "/usr/bin/env"
env = { A_CHECK_TOKEN = "${SECRETS_CHECK_TOKEN}" }
interval = "1s"
conditions = ["[BODY] == nothing"]

[[checks]]
service = "box"
name = "env-error"
type = "command"
command = "/usr/bin/env"
args = ["sh", "-c", "env | sort >&2; exit 3"]
env = { A_CHECK_TOKEN = "${SECRETS_CHECK_TOKEN}" }
interval = "1s"
"#;

#[test]
fn programs_never_carry_the_daemons_secrets_into_the_store() {
    if std::env::var_os(AS_DAEMON).is_some() {
        return tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(as_daemon());
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "programs_never_carry_the_daemons_secrets_into_the_store",
            "--nocapture",
        ])
        .env(AS_DAEMON, "1")
        .envs([DAEMON_ONLY, TASK_TOKEN, HEADER_TOKEN, CHECK_TOKEN])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the run as the daemon failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn as_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let env: SystemEnv = Arc::new(|name| std::env::var(name).ok());
    let config = steward_config::load_file(&path, &|name| env(name))
        .unwrap()
        .config;
    let store = open_store(dir.path()).await;
    let (control, _) = ControlPlane::start(Arc::clone(&store), EventBus::new(), &path, config, env)
        .await
        .unwrap();
    let control = Arc::new(control);
    let shutdown = CancellationToken::new();

    let run = run_env_task(&control, &shutdown).await;
    let tail = run.output_tail.clone().unwrap_or_default();
    assert_no_secret("the task's run", &format!("{run:?}"));
    let mut names: Vec<&str> = tail
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .collect();
    names.sort_unstable();
    let mut expected = vec![
        "A_TASK_TOKEN",
        "PATH",
        "STEWARD_TASK_ATTEMPT",
        "STEWARD_TASK_ID",
    ];
    expected.extend(
        ["HOME", "LANG"]
            .into_iter()
            .filter(|name| std::env::var_os(name).is_some()),
    );
    expected.sort_unstable();
    assert_eq!(names, expected, "{tail}");
    assert!(tail.starts_with("A_TASK_TOKEN=***\n"), "{tail}");

    let (body, error) = probe_env_checks(&control, &store, &shutdown).await;
    assert_no_secret("the check's result", &format!("{body:?}"));
    assert!(
        body.conditions[0].1.contains("A_CHECK_TOKEN=***"),
        "{:?}",
        body.conditions
    );
    assert_no_secret("the failed check's result", &format!("{error:?}"));
    assert!(
        error
            .error
            .as_deref()
            .is_some_and(|e| e.ends_with("exit status: 3: A_CHECK_TOKEN=***")),
        "{:?}",
        error.error
    );
    shutdown.cancel();
}

async fn open_store(dir: &Path) -> Arc<dyn Store> {
    let store = SqliteStore::open(&dir.join("data")).await.unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}

fn redactor(control: &Arc<ControlPlane>) -> RedactorSource {
    let control = Arc::clone(control);
    Arc::new(move || control.redactor())
}

fn assert_no_secret(what: &str, stored: &str) {
    for secret in SECRETS {
        assert!(
            !stored.contains(secret),
            "{what} shows `{secret}`: {stored}"
        );
    }
    assert!(
        !stored.contains(DAEMON_ONLY.0),
        "{what} shows the daemon's own variable: {stored}"
    );
}

/// Works one `dump-env` task on the `jobs` queue and returns its run.
async fn run_env_task(control: &Arc<ControlPlane>, shutdown: &CancellationToken) -> TaskRun {
    let queue = control.queues().iter().find(|q| q.name == "jobs").unwrap();
    let mut options = WorkerOptions::new("secrets-test");
    options.redactor = redactor(control);
    let registry = Arc::clone(control);
    worker::spawn(
        Arc::clone(control.store()),
        control.bus().clone(),
        Arc::clone(control.executors()),
        Arc::new(move || registry.registry()),
        queue.clone(),
        options,
        shutdown.clone(),
    );
    let request = EnqueueRequest {
        queue: "jobs".into(),
        kind: "dump-env".into(),
        payload: None,
        priority: None,
        run_at_ms: None,
        delay_ms: None,
        max_attempts: None,
        idempotency_key: None,
        origin: TaskOrigin::default(),
        node: None,
    };
    let enqueued = control
        .enqueue(vec![request], &Actor::system("test"))
        .await
        .unwrap();
    let id = enqueued[0].id;
    for _ in 0..200 {
        let runs = control.store().task_runs(id).await.unwrap();
        if let Some(run) = runs.into_iter().next() {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the task did not run within 10 s");
}

/// Probes the two `env` checks and returns the first stored result of each.
async fn probe_env_checks(
    control: &Arc<ControlPlane>,
    store: &Arc<dyn Store>,
    shutdown: &CancellationToken,
) -> (ProbeRecord, ProbeRecord) {
    let mut options = ProberOptions::new("secrets-test");
    options.flush_interval = Duration::from_millis(100);
    options.redactor = redactor(control);
    let config = Arc::clone(control);
    prober::spawn(
        Arc::clone(store),
        control.bus().clone(),
        Arc::new(move || config.config()),
        options,
        shutdown.clone(),
    )
    .unwrap();
    for _ in 0..200 {
        let body = store.probe_results("env-body", 0, 1).await.unwrap();
        let error = store.probe_results("env-error", 0, 1).await.unwrap();
        if let (Some(body), Some(error)) = (body.into_iter().next(), error.into_iter().next()) {
            return (body, error);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the checks were not probed within 10 s");
}
