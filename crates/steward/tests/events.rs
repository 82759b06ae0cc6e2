//! The live event stream through the real binary: `GET /api/v1/events` filtered by type,
//! workspace and the key's scope; replay after a reconnection and `reset` outside the window;
//! clear refusals; `steward events` and `steward audit tail` following it; and, on a shared
//! PostgreSQL database, a check going down on one instance seen through another within a
//! second.

#![allow(clippy::expect_used, clippy::unwrap_used)] // helpers of tests: a failure is a failed test

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use steward_store_postgres::testing::TestDatabase;
use support::{Daemon, steward};

/// One event as the stream sent it.
#[derive(Debug, Clone)]
struct Sse {
    kind: String,
    id: String,
    data: Value,
}

/// An open stream, read on a thread of its own. Events passed over while looking for one kind
/// are kept for later lookups, so the order in which kinds are looked for does not matter.
struct Stream {
    events: mpsc::Receiver<Sse>,
    passed: std::cell::RefCell<std::collections::VecDeque<Sse>>,
}

impl Stream {
    fn open(daemon: &Daemon, key: &str, query: &str, last_id: Option<&str>) -> Stream {
        let client = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .unwrap();
        let mut request = client
            .get(format!("{}/api/v1/events{query}", daemon.url))
            .bearer_auth(key);
        if let Some(id) = last_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().unwrap();
        assert_eq!(response.status(), 200, "{query}");
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "{query}"
        );
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || read_events(response, &tx));
        Stream {
            events,
            passed: Default::default(),
        }
    }

    /// The next event of `kind` within `timeout` (others are kept for later lookups).
    fn next_of(&self, kind: &str, timeout: Duration) -> Option<Sse> {
        let mut passed = self.passed.borrow_mut();
        if let Some(at) = passed.iter().position(|e| e.kind == kind) {
            return passed.remove(at);
        }
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(event) if event.kind == kind => return Some(event),
                Ok(event) => passed.push_back(event),
                Err(_) => return None,
            }
        }
        None
    }

    /// Every event arriving within `wait`.
    fn drain(&self, wait: Duration) -> Vec<Sse> {
        let deadline = Instant::now() + wait;
        let mut all: Vec<Sse> = self.passed.borrow_mut().drain(..).collect();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(event) => all.push(event),
                Err(_) => break,
            }
        }
        all
    }
}

fn read_events(response: impl Read, tx: &mpsc::Sender<Sse>) {
    let mut kind = String::new();
    let mut id = String::new();
    let mut data = String::new();
    for line in BufReader::new(response).lines() {
        let Ok(line) = line else { return };
        if line.is_empty() {
            if !data.is_empty() {
                let event = Sse {
                    kind: std::mem::take(&mut kind),
                    id: std::mem::take(&mut id),
                    data: serde_json::from_str(&data).expect("data is JSON"),
                };
                data.clear();
                if tx.send(event).is_err() {
                    return;
                }
            }
            continue;
        }
        if let Some(value) = line.strip_prefix("event: ") {
            kind = value.to_string();
        } else if let Some(value) = line.strip_prefix("id: ") {
            id = value.to_string();
        } else if let Some(value) = line.strip_prefix("data: ") {
            data.push_str(value);
        }
    }
}

fn key(daemon: &Daemon, name: &str, role: &str, workspace: Option<&str>) -> String {
    daemon.create_key(name, role, workspace)
}

fn enqueue(daemon: &Daemon, workspace: &str, n: usize) {
    let tasks: Vec<Value> = (0..n)
        .map(|i| json!({ "queue": "chores", "kind": "noop", "workspace": workspace, "payload": { "i": i } }))
        .collect();
    let response = daemon.send(
        Method::POST,
        "/api/v1/tasks",
        Some(json!({ "tasks": tasks })),
    );
    assert!(
        response.status().is_success(),
        "{}",
        response.text().unwrap()
    );
}

/// A loopback backend answering 200, or 500 once told to fail.
struct Backend {
    addr: SocketAddr,
    healthy: Arc<AtomicBool>,
}

impl Backend {
    fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let healthy = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&healthy);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let flag = Arc::clone(&flag);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf);
                    let status = if flag.load(Ordering::SeqCst) {
                        "200 OK"
                    } else {
                        "500 Internal Server Error"
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                    );
                });
            }
        });
        Backend { addr, healthy }
    }
}

fn config(dir: &Path, backend: Option<&Backend>) -> PathBuf {
    let mut text = String::from(
        "[[workspaces]]\nkey = \"alpha\"\n\n\
         [[workspaces]]\nkey = \"beta\"\n\n\
         [[services]]\nname = \"api\"\nworkspace = \"alpha\"\n\n\
         [[queues]]\nname = \"chores\"\nkinds = [\"noop\"]\nconcurrency = 8\n",
    );
    if let Some(backend) = backend {
        text.push_str(&format!(
            "\n[[services]]\nname = \"web\"\nworkspace = \"alpha\"\nurl = \"http://{}\"\n\n\
             [[checks]]\nservice = \"web\"\ninterval = \"1s\"\nfailures_before_down = 1\nsuccesses_before_up = 1\n",
            backend.addr
        ));
    }
    let path = dir.join("steward.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn tasks_audit_and_scopes_flow_through_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &config(dir.path(), None), &[]);
    let admin = daemon.key.clone().unwrap();
    let alpha = key(&daemon, "alpha-viewer", "viewer", Some("alpha"));
    let viewer = key(&daemon, "viewer", "viewer", None);

    let everything = Stream::open(&daemon, &admin, "", None);
    let tasks_only = Stream::open(&daemon, &admin, "?types=task_changed", None);
    let scoped = Stream::open(&daemon, &alpha, "", None);
    let unscoped_viewer = Stream::open(&daemon, &viewer, "?workspace=beta", None);

    enqueue(&daemon, "beta", 1);
    let enqueued = everything
        .next_of("tasks_enqueued", Duration::from_secs(5))
        .expect("tasks_enqueued");
    assert_eq!(enqueued.data["workspace"], "beta");
    assert_eq!(enqueued.data["queue"], "chores");
    assert!(
        enqueued.data["at"].as_str().unwrap().ends_with('Z'),
        "RFC 3339: {:?}",
        enqueued.data
    );
    assert!(enqueued.data["instance"].is_string());
    let done = tasks_only
        .next_of("task_changed", Duration::from_secs(5))
        .expect("task_changed");
    assert_eq!(done.data["workspace"], "beta");
    let audit = std::iter::from_fn(|| everything.next_of("audit", Duration::from_secs(5)))
        .find(|e| e.data["action"] == "task.enqueue")
        .expect("an audit event for admins");
    assert!(audit.data["hash"].is_string());
    assert!(
        unscoped_viewer
            .next_of("task_changed", Duration::from_secs(5))
            .is_some()
    );

    enqueue(&daemon, "alpha", 1);
    let mine = scoped
        .next_of("task_changed", Duration::from_secs(5))
        .expect("alpha's task");
    assert_eq!(mine.data["workspace"], "alpha");
    let seen = scoped.drain(Duration::from_millis(700));
    for event in std::iter::once(&mine).chain(&seen) {
        assert_eq!(
            event.data["workspace"], "alpha",
            "a scoped key sees its workspace only: {event:?}"
        );
        assert_ne!(event.kind, "audit");
    }
    for event in tasks_only.drain(Duration::from_millis(300)) {
        assert_eq!(event.kind, "task_changed");
    }
    for event in unscoped_viewer.drain(Duration::from_millis(300)) {
        assert_eq!(event.data["workspace"], "beta");
        assert_ne!(event.kind, "audit", "audit events are for admins");
    }
}

#[test]
fn a_reconnecting_client_gets_what_it_missed_or_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &config(dir.path(), None), &[]);
    let admin = daemon.key.clone().unwrap();
    let first = Stream::open(&daemon, &admin, "?types=tasks_enqueued", None);
    enqueue(&daemon, "alpha", 1);
    let seen = first
        .next_of("tasks_enqueued", Duration::from_secs(5))
        .unwrap();
    drop(first);
    for _ in 0..3 {
        enqueue(&daemon, "beta", 2);
    }
    std::thread::sleep(Duration::from_millis(500));
    let again = Stream::open(&daemon, &admin, "?types=tasks_enqueued", Some(&seen.id));
    let missed: Vec<Sse> = again
        .drain(Duration::from_secs(2))
        .into_iter()
        .filter(|e| e.kind == "tasks_enqueued")
        .collect();
    assert_eq!(
        missed.len(),
        3,
        "the three calls made while away: {missed:?}"
    );
    assert!(missed.iter().all(|e| e.data["workspace"] == "beta"));

    // An id this database never gave: one reset, then live events.
    let lost = Stream::open(&daemon, &admin, "", Some("999999999-0"));
    let reset = lost
        .next_of("reset", Duration::from_secs(5))
        .expect("reset");
    assert!(
        reset.data["reason"]
            .as_str()
            .unwrap()
            .contains("no position")
    );
    enqueue(&daemon, "alpha", 1);
    assert!(
        lost.next_of("tasks_enqueued", Duration::from_secs(5))
            .is_some()
    );
}

#[test]
fn bad_filters_and_ids_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &config(dir.path(), None), &[]);
    let viewer = key(&daemon, "viewer", "viewer", None);
    let alpha = key(&daemon, "alpha", "viewer", Some("alpha"));
    let client = reqwest::blocking::Client::new();
    let get = |key: &str, query: &str, last: Option<&str>| {
        let mut request = client
            .get(format!("{}/api/v1/events{query}", daemon.url))
            .bearer_auth(key);
        if let Some(id) = last {
            request = request.header("last-event-id", id);
        }
        support::refusal(request.send().unwrap())
    };
    let (status, code, message) = get(&viewer, "?types=task_changed,nope", None);
    assert_eq!((status, code.as_str()), (400, "invalid_query"));
    assert!(
        message.contains("`nope` is not an event type") && message.contains("check_changed"),
        "{message}"
    );
    let (status, code, message) = get(&viewer, "", Some("12;DROP"));
    assert_eq!(
        (status, code.as_str()),
        (400, "invalid_header"),
        "{message}"
    );
    assert!(message.contains("is not an event id"), "{message}");
    assert_eq!(
        get(&viewer, "?types=audit", None).0,
        403,
        "audit is for admins"
    );
    assert_eq!(
        get(&alpha, "?workspace=beta", None).0,
        403,
        "another workspace"
    );
    assert_eq!(get(&viewer, "?since=1", None).0, 400, "unknown parameter");
    let anonymous = client
        .get(format!("{}/api/v1/events", daemon.url))
        .send()
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[test]
fn the_cli_follows_events_and_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &config(dir.path(), None), &[]);
    let admin = daemon.key.clone().unwrap();
    let follow = |args: &[&str]| -> (Child, mpsc::Receiver<String>) {
        let mut child = steward()
            .args(args)
            .args(["--url", &daemon.url])
            .env("STEWARD_API_KEY", &admin)
            .env("TZ", "Europe/Berlin")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        (child, rx)
    };
    let (mut events, event_lines) = follow(&["events", "--types", "tasks_enqueued"]);
    let (mut json, json_lines) = follow(&["events", "--workspace", "beta", "--output", "json"]);
    let (mut tail, tail_lines) = follow(&["audit", "tail", "--action", "key.create"]);
    std::thread::sleep(Duration::from_millis(800));
    enqueue(&daemon, "beta", 1);
    key(&daemon, "late", "viewer", None);
    let line = event_lines
        .recv_timeout(Duration::from_secs(10))
        .expect("a line");
    assert!(line.contains("tasks_enqueued  beta  "), "{line}");
    assert!(
        line.contains(" +01:00 ") || line.contains(" +02:00 "),
        "local time with zone: {line}"
    );
    let first: Value =
        serde_json::from_str(&json_lines.recv_timeout(Duration::from_secs(10)).unwrap()).unwrap();
    assert_eq!(first["workspace"], "beta");
    let audited: Value =
        serde_json::from_str(&tail_lines.recv_timeout(Duration::from_secs(10)).unwrap()).unwrap();
    assert_eq!(audited["action"], "key.create");
    assert_eq!(audited["target"], "late");
    for child in [&mut events, &mut json, &mut tail] {
        let _ = child.kill();
        let _ = child.wait();
    }
    // Every listing prints times in the reader's zone, with its offset.
    let silenced = steward()
        .args([
            "alerts",
            "silence",
            "--matcher",
            "alertname=Disk",
            "--duration",
            "1h",
        ])
        .args(["--comment", "zone", "--url", &daemon.url])
        .env("STEWARD_API_KEY", &admin)
        .output()
        .unwrap();
    assert!(
        silenced.status.success(),
        "{}",
        String::from_utf8_lossy(&silenced.stderr)
    );
    let listed = steward()
        .args(["alerts", "silences", "--url", &daemon.url])
        .env("STEWARD_API_KEY", &admin)
        .env("TZ", "Asia/Kolkata")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("+05:30"), "local times: {listed}");
    let output = steward()
        .args(["events", "--types", "bogus", "--url", &daemon.url])
        .env("STEWARD_API_KEY", &admin)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("`bogus` is not an event type"));
}

#[test]
fn a_check_going_down_on_one_instance_is_streamed_by_another_within_a_second() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start();
    let config = config(dir.path(), Some(&backend));
    let first = Daemon::start_on_postgres(&dir.path().join("a"), &config, &db);
    let admin = first.key.clone().unwrap();
    let mut second = Daemon::start_on_postgres(&dir.path().join("b"), &config, &db);
    second.use_key(&admin);
    let streams = [
        Stream::open(&first, &admin, "?types=check_changed", None),
        Stream::open(&second, &admin, "?types=check_changed", None),
    ];
    // Up first (unknown → up), then down.
    for stream in &streams {
        stream
            .next_of("check_changed", Duration::from_secs(15))
            .expect("the check comes up");
    }
    backend.healthy.store(false, Ordering::SeqCst);
    let mut instances = Vec::new();
    for stream in &streams {
        let down = stream
            .next_of("check_changed", Duration::from_secs(15))
            .expect("the check goes down");
        let received = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert_eq!(down.data["to"], "down", "{down:?}");
        assert_eq!(down.data["workspace"], "alpha");
        let delay = received - down.data["at_ms"].as_i64().unwrap();
        assert!(delay < 1_000, "arrived {delay} ms after it happened");
        instances.push(down.data["instance"].as_str().unwrap().to_string());
    }
    assert_eq!(
        instances[0], instances[1],
        "one instance probed, both streamed it"
    );
}
