//! The task queue through the real binary: the Nyx example against an agent on loopback, bad
//! input, cancellation and retries; and on PostgreSQL, crashes (SIGKILL), three processes
//! sharing one queue, and connections cut mid-run.

#![allow(clippy::expect_used, clippy::unwrap_used)] // helpers of tests: a failure is a failed test

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use steward_store_postgres::testing::TestDatabase;
use support::{Daemon, db_scalar, eventually, steward};

/// A tiny agent on loopback: `POST /apply` answers `applied` for even `n`, `skipped` for odd
/// ones, and 500 when the payload says `"fail": true`. Returns its base URL and a call counter.
fn start_agent() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || answer(stream, &counter));
        }
    });
    (url, calls)
}

fn answer(stream: std::net::TcpStream, calls: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    calls.fetch_add(1, Ordering::SeqCst);
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, reply) = if payload["fail"] == json!(true) {
        (
            "500 Internal Server Error",
            json!({ "error": "agent crashed" }),
        )
    } else if payload["n"].as_u64().unwrap_or(0).is_multiple_of(2) {
        ("200 OK", json!({ "outcome": "applied" }))
    } else {
        ("200 OK", json!({ "outcome": "skipped" }))
    };
    let reply = reply.to_string();
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

/// The Nyx example with its agent URL pointed at `agent`.
fn nyx_config(dir: &Path, agent: &str) -> PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/nyx/steward.toml");
    let text = std::fs::read_to_string(example)
        .unwrap()
        .replace("http://127.0.0.1:8790", agent)
        // The bot token would come from the environment; the test's Telegram is nowhere.
        .replace("${NYX_TELEGRAM_BOT_TOKEN}", "123:test-token");
    let path = dir.join("steward.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn enqueue(daemon: &Daemon, body: Value) -> reqwest::blocking::Response {
    daemon.send(Method::POST, "/api/v1/tasks", Some(body))
}

fn task(daemon: &Daemon, id: i64) -> Value {
    daemon.get_json(&format!("/api/v1/tasks/{id}"))
}

fn status_of(daemon: &Daemon, id: i64) -> String {
    task(daemon, id)["task"]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

fn count(daemon: &Daemon, queue: &str, status: &str) -> i64 {
    let queues = daemon.get_json("/api/v1/queues");
    queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == json!(queue))
        .map_or(0, |q| q["counts"][status].as_i64().unwrap())
}

/// Every task of `queue`, whatever its status, from one reading (tasks being worked move
/// between statuses from one reading to the next).
fn total(daemon: &Daemon, queue: &str) -> i64 {
    let queues = daemon.get_json("/api/v1/queues");
    queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == json!(queue))
        .map_or(0, |q| {
            q["counts"]
                .as_object()
                .unwrap()
                .values()
                .map(|n| n.as_i64().unwrap())
                .sum()
        })
}

fn error_code(response: reqwest::blocking::Response) -> (u16, String) {
    let (status, code, _) = support::refusal(response);
    (status, code)
}

#[test]
fn nyx_applications_are_worked_through_the_http_executor() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, calls) = start_agent();
    let config = nyx_config(dir.path(), &agent);
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    let tasks: Vec<Value> = (0..20)
        .map(|n| json!({ "queue": "applications", "kind": "apply", "payload": { "n": n, "job": format!("job-{n}") } }))
        .collect();
    let response = enqueue(&daemon, json!({ "tasks": tasks }));
    assert_eq!(response.status(), 201);
    let answer: Value = response.json().unwrap();
    assert_eq!(answer["created"], 20);
    eventually(Duration::from_secs(20), "20 applications succeeded", || {
        count(&daemon, "applications", "succeeded") == 20
    });
    let applied = daemon.get_json("/api/v1/tasks?queue=applications&outcome=applied");
    let skipped = daemon.get_json("/api/v1/tasks?queue=applications&outcome=skipped");
    assert_eq!(applied["tasks"].as_array().unwrap().len(), 10);
    assert_eq!(skipped["tasks"].as_array().unwrap().len(), 10);
    assert_eq!(calls.load(Ordering::SeqCst), 20);
    let first = answer["tasks"][0]["id"].as_i64().unwrap();
    let detail = task(&daemon, first);
    assert_eq!(detail["runs"].as_array().unwrap().len(), 1);
    assert_eq!(detail["runs"][0]["status"], "succeeded");
    assert_eq!(detail["task"]["origin"]["caller"], "admin");
}

#[test]
fn bad_input_is_refused_whole_with_stable_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, _) = start_agent();
    let config = nyx_config(dir.path(), &agent);
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    let raw = daemon
        .send(Method::POST, "/api/v1/tasks", None)
        .status()
        .as_u16();
    assert_eq!(raw, 400, "an empty body");
    let cases = [
        (
            json!({ "queue": "nope", "kind": "noop" }),
            404,
            "unknown_queue",
        ),
        (
            json!({ "queue": "chores", "kind": "apply" }),
            400,
            "kind_not_allowed",
        ),
        (
            json!({ "queue": "chores", "kind": "shell" }),
            400,
            "kind_not_allowed",
        ),
        (
            json!({ "queue": "chores", "kind": "noop", "payload": { "blob": "x".repeat(2000) } }),
            413,
            "payload_too_large",
        ),
        (
            json!({ "queue": "chores", "kind": "noop", "priority": 5000 }),
            400,
            "invalid_task",
        ),
        (
            json!({ "queue": "chores", "kind": "noop", "delay_ms": 10_000_000_000_000i64 }),
            400,
            "invalid_task",
        ),
        (
            json!({ "queue": "chores", "kind": "noop", "max_attempts": 0 }),
            400,
            "invalid_task",
        ),
        (
            json!({ "queue": "chores", "kind": "sleep", "payload": { "ms": "soon" } }),
            400,
            "invalid_task",
        ),
        (
            json!({ "queue": "chores", "kind": "noop", "bogus": 1 }),
            400,
            "invalid_body",
        ),
        (
            json!({ "tasks": [
                { "queue": "chores", "kind": "noop" },
                { "queue": "chores", "kind": "noop", "priority": -5000 }
            ] }),
            400,
            "invalid_task",
        ),
    ];
    for (body, status, code) in cases {
        let got = error_code(enqueue(&daemon, body.clone()));
        assert_eq!(got, (status, code.to_string()), "{body}");
    }
    let not_json = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/tasks", daemon.url))
        .bearer_auth(daemon.key.as_deref().unwrap())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(error_code(not_json), (400, "invalid_body".to_string()));
    assert_eq!(total(&daemon, "chores"), 0, "nothing was half-written");
}

#[test]
fn a_batch_is_taken_up_to_the_configured_body_limit_and_refused_as_json_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 4 * 1024 * 1024;
    let config = dir.path().join("steward.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nmax_batch_body_bytes = {limit}\n\n\
             [[queues]]\nname = \"chores\"\nkinds = [\"noop\"]\nconcurrency = 64\n"
        ),
    )
    .unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    let tasks = |size: usize, first: usize| -> Vec<Value> {
        (first..first + 10_000)
            .map(|i| json!({ "queue": "chores", "kind": "noop", "payload": { "n": i, "pad": "x".repeat(size) } }))
            .collect()
    };

    // 10,000 tasks of about 300 bytes: past the framework's 2 MiB default, under the limit.
    let batch = json!({ "tasks": tasks(300, 0) });
    let length = batch.to_string().len();
    assert!((3 << 20..limit).contains(&length), "{length} bytes");
    let response = enqueue(&daemon, batch);
    assert_eq!(response.status(), 201);
    assert_eq!(response.json::<Value>().unwrap()["created"], 10_000);

    // One byte past the limit: the documented JSON, and nothing stored.
    let mut padded = json!({ "tasks": tasks(0, 10_000) }).to_string();
    padded.insert_str(1, &" ".repeat(limit + 1 - padded.len()));
    assert_eq!(padded.len(), limit + 1);
    let over = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/tasks", daemon.url))
        .bearer_auth(daemon.key.as_deref().unwrap())
        .header("content-type", "application/json")
        .body(padded)
        .send()
        .unwrap();
    assert_eq!(error_code(over), (413, "payload_too_large".to_string()));
    assert_eq!(total(&daemon, "chores"), 10_000);

    // The CLI's file of 10,000 lines of 300 bytes goes in one call.
    let file = dir.path().join("tasks.jsonl");
    let lines: Vec<String> = tasks(300, 20_000).iter().map(Value::to_string).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let output = steward()
        .args(["tasks", "enqueue", "--file", file.to_str().unwrap()])
        .env("STEWARD_URL", &daemon.url)
        .env("STEWARD_API_KEY", daemon.key.as_deref().unwrap())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(total(&daemon, "chores"), 20_000);
}

#[test]
fn idempotency_cancellation_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, _) = start_agent();
    let config = nyx_config(dir.path(), &agent);
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &[]);

    let body = json!({ "queue": "chores", "kind": "noop", "idempotency_key": "once" });
    let first = enqueue(&daemon, body.clone());
    assert_eq!(first.status(), 201);
    let first: Value = first.json().unwrap();
    let again = enqueue(&daemon, body);
    assert_eq!(again.status(), 200);
    let again: Value = again.json().unwrap();
    assert_eq!(again["created"], false);
    assert_eq!(again["task"]["id"], first["task"]["id"]);

    // A queued task (delayed) is cancelled at once.
    let delayed: Value = enqueue(
        &daemon,
        json!({ "queue": "chores", "kind": "noop", "delay_ms": 3_600_000 }),
    )
    .json()
    .unwrap();
    let delayed = delayed["task"]["id"].as_i64().unwrap();
    let cancelled: Value = daemon
        .post(&format!("/api/v1/tasks/{delayed}/cancel"))
        .json()
        .unwrap();
    assert_eq!(cancelled["task"]["status"], "cancelled");
    let again = daemon.post(&format!("/api/v1/tasks/{delayed}/cancel"));
    assert_eq!(error_code(again), (409, "invalid_state".to_string()));

    // A running task is stopped by its worker at the next heartbeat.
    let long: Value = enqueue(
        &daemon,
        json!({ "queue": "chores", "kind": "sleep", "payload": { "ms": 60_000 } }),
    )
    .json()
    .unwrap();
    let long = long["task"]["id"].as_i64().unwrap();
    eventually(Duration::from_secs(10), "the sleep task running", || {
        status_of(&daemon, long) == "running"
    });
    let asked: Value = daemon
        .post(&format!("/api/v1/tasks/{long}/cancel"))
        .json()
        .unwrap();
    assert_eq!(asked["task"]["cancel_requested"], true);
    eventually(Duration::from_secs(10), "the sleep task cancelled", || {
        status_of(&daemon, long) == "cancelled"
    });

    // A task failing every attempt ends dead, and a retry runs it again.
    let failing: Value = enqueue(
        &daemon,
        json!({ "queue": "applications", "kind": "apply", "payload": { "fail": true }, "max_attempts": 2 }),
    )
    .json()
    .unwrap();
    let failing = failing["task"]["id"].as_i64().unwrap();
    eventually(Duration::from_secs(20), "the failing task dead", || {
        status_of(&daemon, failing) == "dead"
    });
    let detail = task(&daemon, failing);
    let runs: Vec<&str> = detail["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(runs, ["failed", "dead"]);
    assert!(detail["task"]["error"].as_str().unwrap().contains("500"));
    let key = daemon.key.clone().unwrap();
    let retried = steward()
        .args(["tasks", "retry", &failing.to_string(), "--url", &daemon.url])
        .env("STEWARD_API_KEY", &key)
        .output()
        .unwrap();
    assert!(retried.status.success(), "{retried:?}");
    eventually(
        Duration::from_secs(20),
        "the retried task dead again",
        || {
            task(&daemon, failing)["runs"].as_array().unwrap().len() == 4
                && status_of(&daemon, failing) == "dead"
        },
    );
    let audit = daemon.get_json("/api/v1/audit?action=task.retry");
    assert_eq!(audit["events"].as_array().unwrap().len(), 1);

    // The CLI enqueues and lists.
    let out = steward()
        .args([
            "tasks",
            "enqueue",
            "chores",
            "noop",
            "--payload",
            "{\"x\": 1}",
            "--url",
            &daemon.url,
        ])
        .env("STEWARD_API_KEY", &key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = steward()
        .args(["tasks", "counts", "--url", &daemon.url])
        .env("STEWARD_API_KEY", &key)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("applications") && text.contains("chores"),
        "{text}"
    );
}

fn postgres_daemon(dir: &Path, config: &Path, db: &TestDatabase) -> Daemon {
    Daemon::start_on_postgres(dir, config, db)
}

fn chores_config(dir: &Path) -> PathBuf {
    let path = dir.join("steward.toml");
    std::fs::write(
        &path,
        "[[queues]]\nname = \"chores\"\nkinds = [\"noop\", \"sleep\"]\nconcurrency = 64\nlease = \"2s\"\n",
    )
    .unwrap();
    path
}

#[test]
fn a_worker_killed_mid_task_is_replaced_and_the_task_succeeds_once() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = chores_config(dir.path());
    let mut first = postgres_daemon(dir.path(), &config, &db);
    let answer: Value = enqueue(
        &first,
        json!({ "queue": "chores", "kind": "sleep", "payload": { "ms": 1500 } }),
    )
    .json()
    .unwrap();
    let id = answer["task"]["id"].as_i64().unwrap();
    eventually(Duration::from_secs(10), "the task running", || {
        status_of(&first, id) == "running"
    });
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(5));
    let mut second = postgres_daemon(dir.path(), &config, &db);
    second.use_key(first.key.as_deref().unwrap());
    eventually(Duration::from_secs(20), "the task succeeded", || {
        status_of(&second, id) == "succeeded"
    });
    let runs = task(&second, id)["runs"].clone();
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["lease_expired", "succeeded"]);
    assert_ne!(runs[0]["worker"], runs[1]["worker"]);
}

#[test]
fn three_processes_work_ten_thousand_tasks_exactly_once() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = chores_config(dir.path());
    let first = postgres_daemon(dir.path(), &config, &db);
    let key = first.key.clone().unwrap();
    let mut others: Vec<Daemon> = (0..2)
        .map(|_| postgres_daemon(dir.path(), &config, &db))
        .collect();
    for daemon in &mut others {
        daemon.use_key(&key);
    }
    for chunk in 0..2 {
        let tasks: Vec<Value> = (0..5_000)
            .map(|n| json!({ "queue": "chores", "kind": "noop", "payload": { "n": chunk * 5_000 + n } }))
            .collect();
        let response = enqueue(&others[chunk % 2], json!({ "tasks": tasks }));
        assert_eq!(response.status(), 201);
    }
    eventually(Duration::from_secs(60), "10,000 tasks succeeded", || {
        count(&first, "chores", "succeeded") == 10_000
    });
    assert_eq!(
        total(&first, "chores"),
        10_000,
        "none lost, none duplicated"
    );
    let runs = db_scalar(
        &db,
        // The built-in retention task (queue `steward`) may run too when a minute turns.
        "SELECT count(*) FROM task_runs r JOIN tasks t ON t.id = r.task_id \
         WHERE r.status = 'succeeded' AND t.queue = 'chores'",
    );
    assert_eq!(runs, 10_000, "each task completed exactly once");
    let workers = db_scalar(
        &db,
        "SELECT count(DISTINCT r.worker) FROM task_runs r JOIN tasks t ON t.id = r.task_id \
         WHERE t.queue = 'chores'",
    );
    assert!(workers >= 2, "the work was shared ({workers} workers)");
}

#[test]
fn workers_reconnect_after_their_connections_are_cut() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = chores_config(dir.path());
    let daemon = postgres_daemon(dir.path(), &config, &db);
    let tasks: Vec<Value> = (0..2_000)
        .map(|_| json!({ "queue": "chores", "kind": "sleep", "payload": { "ms": 20 } }))
        .collect();
    assert_eq!(enqueue(&daemon, json!({ "tasks": tasks })).status(), 201);
    eventually(Duration::from_secs(20), "work under way", || {
        count(&daemon, "chores", "succeeded") > 100
    });
    let cut = db_scalar(
        &db,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    assert!(cut > 0, "no connection was cut");
    eventually(Duration::from_secs(60), "all 2,000 tasks succeeded", || {
        daemon.get("/api/v1/queues").status().is_success()
            && count(&daemon, "chores", "succeeded") == 2_000
    });
    // Whether a cut shows in the log depends on which connections were busy at that moment
    // (idle ones are replaced silently); finishing the work after the cut is the point.
    let backends = db_scalar(
        &db,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid()",
    );
    assert!(backends > 0, "the daemon connected again");
}
