//! Pipelines through the real binary: Alba → Albi → Jona as `http` steps against agents on
//! loopback, results passed between steps, started from the CLI and by a schedule; runs that
//! survive SIGKILL between and during steps on SQLite and PostgreSQL, each step succeeding
//! exactly once in dependency order; three instances on PostgreSQL sharing a fan-out's steps.

#![allow(clippy::expect_used, clippy::unwrap_used)] // helpers of tests: a failure is a failed test

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use steward_store_postgres::testing::TestDatabase;
use support::{Daemon, db_scalar, eventually, sqlite_scalar, steward};

/// Every request body an agent received, with its path.
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// Agents on loopback: `/alba` collects (a URL and a count), `/albi` analyses what it is sent,
/// `/jona` synthesises; every body received is kept, by path.
fn start_agents() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let kept = Arc::clone(&kept);
            std::thread::spawn(move || answer(stream, &kept));
        }
    });
    (url, seen)
}

fn answer(stream: std::net::TcpStream, seen: &Mutex<Vec<(String, Value)>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
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
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock().unwrap().push((path.clone(), body.clone()));
    let reply = match path.as_str() {
        "/alba" => json!({ "url": format!("https://news.example/{}", body["topic"].as_str().unwrap_or("")), "items": 3 }),
        "/albi" => json!({ "summary": format!("{} has 3 items", body["url"].as_str().unwrap_or("?")) }),
        _ => json!({ "brief": "sent" }),
    }
    .to_string();
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("steward.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn brief_config(agents: &str) -> String {
    format!(
        r#"
[[executors]]
name = "alba"
type = "http"
method = "POST"
url = "{agents}/alba"

[[executors]]
name = "albi"
type = "http"
method = "POST"
url = "{agents}/albi"

[[executors]]
name = "jona"
type = "http"
method = "POST"
url = "{agents}/jona"

[[queues]]
name = "agents"
kinds = ["alba", "albi", "jona", "noop", "sleep"]

[[pipelines]]
name = "brief"
description = "Alba collects, Albi analyses, Jona synthesises"

[[pipelines.steps]]
name = "alba"
queue = "agents"
kind = "alba"
payload = {{ topic = "{{{{ input.topic }}}}" }}

[[pipelines.steps]]
name = "albi"
queue = "agents"
kind = "albi"
needs = ["alba"]
payload = {{ url = "{{{{ steps.alba.result.url }}}}" }}

[[pipelines.steps]]
name = "jona"
queue = "agents"
kind = "jona"
needs = ["albi"]
if = "steps.alba.result.items > 0"
payload = {{ summary = "{{{{ steps.albi.result.summary }}}}", run = "{{{{ run.id }}}}" }}

[[pipelines]]
name = "tick"
[[pipelines.steps]]
name = "only"
queue = "agents"
kind = "noop"

[[schedules]]
name = "ticking"
every = "1s"
pipeline = "tick"
input = {{ from = "schedule" }}

[[pipelines]]
name = "slow"
[[pipelines.steps]]
name = "nap"
queue = "agents"
kind = "sleep"
payload = {{ ms = 5000 }}
timeout = "300ms"
max_attempts = 1

[[pipelines]]
name = "broken"
[[pipelines.steps]]
name = "first"
queue = "agents"
kind = "noop"
[[pipelines.steps]]
name = "second"
queue = "agents"
kind = "noop"
needs = ["first"]
payload = {{ url = "{{{{ steps.first.result.url }}}}" }}

[alerting]
rule_interval = "1s"

[[alerting.rules]]
name = "PipelineBroken"
when = "pipeline_failed"
pipelines = ["broken"]
severity = "warning"
"#
    )
}

/// The `data` of each event of the live stream, as it arrives.
fn follow_events(daemon: &Daemon, query: &str) -> std::sync::mpsc::Receiver<Value> {
    let response = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .unwrap()
        .get(format!("{}/api/v1/events{query}", daemon.url))
        .bearer_auth(daemon.key.as_deref().unwrap())
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(response).lines() {
            let Ok(line) = line else { return };
            if let Some(data) = line.strip_prefix("data:")
                && let Ok(value) = serde_json::from_str::<Value>(data.trim())
                && tx.send(value).is_err()
            {
                return;
            }
        }
    });
    rx
}

fn cli(daemon: &Daemon, args: &[&str]) -> Output {
    steward()
        .args(args)
        .env("STEWARD_URL", &daemon.url)
        .env("STEWARD_API_KEY", daemon.key.as_deref().unwrap())
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn alba_albi_jona_pass_results_along_and_show_their_timeline() {
    let (agents, seen) = start_agents();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &brief_config(&agents));
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    let events = follow_events(&daemon, "?types=pipeline_run_changed");

    let out = cli(
        &daemon,
        &[
            "pipelines",
            "run",
            "brief",
            "--input",
            r#"{"topic": "rust"}"#,
            "--wait",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("succeeded"), "{stdout}");
    let run_id: i64 = stdout
        .split_whitespace()
        .skip_while(|w| *w != "run")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();

    let jona = seen
        .lock()
        .unwrap()
        .iter()
        .find(|(path, _)| path == "/jona")
        .map(|(_, body)| body.clone())
        .expect("jona was called");
    assert_eq!(
        jona,
        json!({ "summary": "https://news.example/rust has 3 items", "run": run_id.to_string() })
    );

    let detail = daemon.get_json(&format!("/api/v1/pipeline-runs/{run_id}"));
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    let steps = detail["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    for step in steps {
        assert_eq!(step["state"], "succeeded", "{detail}");
        assert_eq!(step["attempts"], 1, "{detail}");
        assert!(step["duration_ms"].as_i64().is_some(), "{detail}");
    }
    assert_eq!(steps[0]["result"]["items"], 3, "{detail}");

    // The stream carried the run's changes: started, each step, and the end.
    let mut seen_end = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !seen_end && std::time::Instant::now() < deadline {
        if let Ok(data) = events.recv_timeout(Duration::from_millis(200))
            && data["run_id"] == run_id
        {
            seen_end = data["finished"] == true && data["status"] == "succeeded";
        }
    }
    assert!(
        seen_end,
        "a pipeline_run_changed event announced the run's end"
    );

    // A step's own timeout holds even when its queue's is longer.
    let out = cli(&daemon, &["pipelines", "run", "slow", "--wait"]);
    assert_eq!(out.status.code(), Some(1));
    let slow = daemon.get_json("/api/v1/pipeline-runs?pipeline=slow");
    let slow_id = slow["runs"][0]["id"].as_i64().unwrap();
    let slow = daemon.get_json(&format!("/api/v1/pipeline-runs/{slow_id}"));
    assert!(
        slow["steps"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out after 300 ms")),
        "{slow}"
    );

    let shown = cli(&daemon, &["pipelines", "show", &run_id.to_string()]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("albi") && shown.contains("succeeded"),
        "{shown}"
    );
    let listed = cli(&daemon, &["pipelines", "ls"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("brief"));

    // The schedule starts runs of `tick` through Steward's own task, its origin kept.
    eventually(Duration::from_secs(15), "a scheduled run succeeded", || {
        let runs = daemon.get_json("/api/v1/pipeline-runs?pipeline=tick&status=succeeded");
        runs["runs"].as_array().is_some_and(|r| {
            r.iter()
                .any(|r| r["schedule"] == "ticking" && r["input"]["from"] == "schedule")
        })
    });

    let metrics = daemon.get("/metrics").text().unwrap();
    assert!(
        metrics.contains(r#"steward_pipeline_runs_total{pipeline="brief",outcome="succeeded"} 1"#),
        "{metrics}"
    );
    let audit = daemon.get_json("/api/v1/audit?action=pipeline.start");
    assert!(!audit["events"].as_array().unwrap().is_empty(), "{audit}");

    // The dashboard draws the run with its steps coloured by state.
    let mut browser = support::browser::Browser::new(&daemon.url);
    browser.sign_in(daemon.key.as_deref().unwrap());
    assert!(
        browser
            .page("/pipelines")
            .contains("data-pipeline=\"brief\"")
    );
    let drawn = browser.page("/pipelines/brief");
    assert!(
        drawn.contains("<svg") && drawn.contains("data-to=\"albi\""),
        "{drawn}"
    );
    let run_page = browser.page(&format!("/pipelines/runs/{run_id}"));
    assert!(
        run_page.contains("data-step=\"jona\" data-state=\"succeeded\""),
        "{run_page}"
    );

    // A step whose template prints an undefined value fails with the template's message, and
    // the built-in `pipeline_failed` rule fires for it.
    let out = cli(&daemon, &["pipelines", "run", "broken", "--wait"]);
    assert_eq!(out.status.code(), Some(1), "a failed run exits 1");
    let failed = daemon.get_json("/api/v1/pipeline-runs?pipeline=broken&status=failed");
    let failed_id = failed["runs"][0]["id"].as_i64().unwrap();
    let detail = daemon.get_json(&format!("/api/v1/pipeline-runs/{failed_id}"));
    let error = detail["steps"][1]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("payload url") && error.contains("undefined"),
        "{detail}"
    );
    eventually(Duration::from_secs(15), "the pipeline_failed alert", || {
        let alerts = daemon.get_json("/api/v1/alerts?state=firing");
        alerts["alerts"].as_array().is_some_and(|a| {
            a.iter().any(|a| {
                a["labels"]["alertname"] == "PipelineBroken" && a["labels"]["pipeline"] == "broken"
            })
        })
    });
}

#[test]
fn a_bad_pipeline_is_refused_where_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[queues]]\nname = \"q\"\nkinds = [\"noop\"]\n\
         [[pipelines]]\nname = \"p\"\n\
         [[pipelines.steps]]\nname = \"a\"\nqueue = \"q\"\nkind = \"noop\"\nneeds = [\"b\"]\n\
         [[pipelines.steps]]\nname = \"b\"\nqueue = \"q\"\nkind = \"noop\"\nneeds = [\"a\"]\n\
         [[pipelines.steps]]\nname = \"c\"\nqueue = \"qq\"\nkind = \"noop\"\n\
         [[pipelines.steps]]\nname = \"d\"\nqueue = \"q\"\nkind = \"noop\"\npayload = { x = \"{{ input.x \" }\n",
    );
    let out = steward()
        .args(["check", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!("{stdout}{stderr}");
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains("steward.toml:18:9:"),
        "the unknown queue, located: {all}"
    );
    assert!(all.contains("unknown queue `qq`"), "{all}");
    assert!(all.contains("template syntax error"), "{all}");
    // The cycle is reported once the steps themselves read well.
    let config = write_config(
        dir.path(),
        "[[queues]]\nname = \"q\"\nkinds = [\"noop\"]\n\
         [[pipelines]]\nname = \"p\"\n\
         [[pipelines.steps]]\nname = \"a\"\nqueue = \"q\"\nkind = \"noop\"\nneeds = [\"b\"]\n\
         [[pipelines.steps]]\nname = \"b\"\nqueue = \"q\"\nkind = \"noop\"\nneeds = [\"a\", \"z\"]\n",
    );
    let out = steward()
        .args(["check", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("steward.toml:15:"), "{all}");
    assert!(all.contains("needs `z`, which is not a step"), "{all}");
}

/// A queue of `sleep` steps whose leases expire fast, and a three-step chain over it.
fn chain_config(dir: &Path) -> PathBuf {
    write_config(
        dir,
        r#"
[api.rate_limits]
admin = 100000

[[queues]]
name = "steps"
kinds = ["sleep"]
concurrency = 32
lease = "1s"
max_attempts = 20
backoff_base = "100ms"
backoff_cap = "500ms"

[[pipelines]]
name = "chain"
[[pipelines.steps]]
name = "a"
queue = "steps"
kind = "sleep"
payload = { ms = 200 }
[[pipelines.steps]]
name = "b"
queue = "steps"
kind = "sleep"
needs = ["a"]
payload = { ms = 200 }
[[pipelines.steps]]
name = "c"
queue = "steps"
kind = "sleep"
needs = ["b"]
payload = { ms = 200 }
"#,
    )
}

const RUNS: i64 = 500;

fn start_runs(daemon: &Daemon, from: i64, to: i64) {
    // From eight threads, so the runs are all started well before their steps are done.
    std::thread::scope(|scope| {
        for lane in 0..8 {
            scope.spawn(move || {
                for n in (from..to).filter(|n| n % 8 == lane) {
                    let response = daemon.send(
                        Method::POST,
                        "/api/v1/pipelines/chain/runs",
                        Some(json!({ "idempotency_key": format!("run-{n}"), "input": { "n": n } })),
                    );
                    assert!(
                        response.status().is_success(),
                        "start {n}: {}",
                        response.status()
                    );
                }
            });
        }
    });
}

fn succeeded_runs(daemon: &Daemon) -> usize {
    let mut count = 0;
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/api/v1/pipeline-runs?status=succeeded&limit=500&before={b}"),
            None => "/api/v1/pipeline-runs?status=succeeded&limit=500".to_owned(),
        };
        let page = daemon.get_json(&path);
        count += page["runs"].as_array().unwrap().len();
        match page["next_before"].as_i64() {
            Some(next) => before = Some(next),
            None => return count,
        }
    }
}

/// The checks after a crash test, each a count that must be as given, the same text on both
/// backends.
const EXACTLY_ONCE: [(&str, i64); 5] = [
    (
        "SELECT count(*) FROM pipeline_runs WHERE status = 'succeeded'",
        RUNS,
    ),
    (
        "SELECT count(*) FROM pipeline_steps WHERE state = 'succeeded'",
        RUNS * 3,
    ),
    (
        "SELECT count(*) FROM tasks WHERE pipeline_run IS NOT NULL",
        RUNS * 3,
    ),
    (
        "SELECT count(*) FROM task_runs r JOIN tasks t ON t.id = r.task_id \
         WHERE t.pipeline_run IS NOT NULL AND r.status = 'succeeded'",
        RUNS * 3,
    ),
    // No attempt of a step started before the step it needs had succeeded.
    (
        "SELECT count(*) FROM pipeline_steps b JOIN pipeline_steps a \
         ON a.run_id = b.run_id AND a.position = b.position - 1 \
         JOIN task_runs ra ON ra.task_id = a.task_id AND ra.status = 'succeeded' \
         JOIN task_runs rb ON rb.task_id = b.task_id WHERE rb.started_at_ms < ra.ended_at_ms",
        0,
    ),
];

/// Attempts a kill cut short: the kills landed while steps ran.
const CUT_SHORT: &str = "SELECT count(*) FROM task_runs r JOIN tasks t ON t.id = r.task_id \
     WHERE t.pipeline_run IS NOT NULL AND r.status = 'lease_expired'";

/// Starts 500 runs of the chain, kills the daemon with SIGKILL up to four times while their
/// steps run (each kill with eight steps' tasks running and others between steps), and lets
/// the last one finish them.
fn kill_while_running(start: impl Fn() -> Daemon) -> Daemon {
    let mut daemon = start();
    let key = daemon.key.clone().unwrap();
    start_runs(&daemon, 0, RUNS);
    for round in 0..4 {
        std::thread::sleep(Duration::from_millis(300 + 150 * round));
        // Killed while steps' tasks run (others are between steps at that moment), unless
        // every run has ended already.
        let mut done = false;
        eventually(Duration::from_secs(20), "steps running", || {
            let running = daemon.get_json("/api/v1/tasks?queue=steps&status=running&limit=8");
            done = succeeded_runs(&daemon) == RUNS as usize;
            done || running["tasks"].as_array().is_some_and(|t| t.len() == 8)
        });
        if done {
            break;
        }
        daemon.signal("KILL");
        daemon.wait_exit(Duration::from_secs(5));
        daemon = start();
        daemon.use_key(&key);
        if round == 0 {
            // Repeated keys answer with the runs already started.
            start_runs(&daemon, 0, RUNS / 2);
        }
    }
    eventually(Duration::from_secs(120), "every run succeeded", || {
        succeeded_runs(&daemon) == RUNS as usize
    });
    daemon
}

#[test]
fn runs_survive_sigkill_between_and_during_steps_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let config = chain_config(dir.path());
    let daemon = kill_while_running(|| Daemon::start_on_sqlite(dir.path(), &config, &[]));
    drop(daemon);
    let db = dir.path().join("data").join("steward.db");
    for (sql, expected) in EXACTLY_ONCE {
        assert_eq!(sqlite_scalar(&db, sql), expected, "{sql}");
    }
    assert!(
        sqlite_scalar(&db, CUT_SHORT) > 0,
        "no kill landed during a step"
    );
}

#[test]
fn runs_survive_sigkill_between_and_during_steps_on_postgres() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = chain_config(dir.path());
    let daemon = kill_while_running(|| Daemon::start_on_postgres(dir.path(), &config, &db));
    drop(daemon);
    for (sql, expected) in EXACTLY_ONCE {
        assert_eq!(db_scalar(&db, sql), expected, "{sql}");
    }
    assert!(
        db_scalar(&db, CUT_SHORT) > 0,
        "no kill landed during a step"
    );
}

#[test]
fn three_instances_share_a_fan_outs_steps_on_postgres() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from(
        "[[queues]]\nname = \"fan\"\nkinds = [\"noop\", \"sleep\"]\nconcurrency = 8\n\
         [[pipelines]]\nname = \"wide\"\n\
         [[pipelines.steps]]\nname = \"split\"\nqueue = \"fan\"\nkind = \"noop\"\n",
    );
    for i in 0..10 {
        text.push_str(&format!(
            "[[pipelines.steps]]\nname = \"b{i}\"\nqueue = \"fan\"\nkind = \"sleep\"\nneeds = [\"split\"]\npayload = {{ ms = 5 }}\n"
        ));
    }
    let branches: Vec<String> = (0..10).map(|i| format!("\"b{i}\"")).collect();
    text.push_str(&format!(
        "[[pipelines.steps]]\nname = \"join\"\nqueue = \"fan\"\nkind = \"noop\"\nneeds = [{}]\n",
        branches.join(", ")
    ));
    let config = write_config(dir.path(), &text);
    let first = Daemon::start_on_postgres(dir.path(), &config, &db);
    let key = first.key.clone().unwrap();
    let mut others: Vec<Daemon> = (0..2)
        .map(|_| Daemon::start_on_postgres(dir.path(), &config, &db))
        .collect();
    for daemon in &mut others {
        daemon.use_key(&key);
    }
    let runs = 200;
    for n in 0..runs {
        let daemon = [&first, &others[0], &others[1]][n % 3];
        let response = daemon.send(Method::POST, "/api/v1/pipelines/wide/runs", Some(json!({})));
        assert_eq!(response.status(), 201);
    }
    eventually(Duration::from_secs(120), "every run succeeded", || {
        db_scalar(
            &db,
            "SELECT count(*) FROM pipeline_runs WHERE status = 'succeeded'",
        ) == runs as i64
    });
    let runs = runs as i64;
    assert_eq!(
        db_scalar(
            &db,
            "SELECT count(*) FROM tasks WHERE pipeline_run IS NOT NULL"
        ),
        runs * 12,
        "each step has one task: the join was started once"
    );
    assert_eq!(
        db_scalar(
            &db,
            "SELECT count(*) FROM task_runs r JOIN tasks t ON t.id = r.task_id \
             WHERE t.pipeline_run IS NOT NULL AND r.status = 'succeeded'"
        ),
        runs * 12,
        "each step succeeded once"
    );
    let joins_early = db_scalar(
        &db,
        "SELECT count(*) FROM pipeline_steps j JOIN tasks tj ON tj.id = j.task_id \
         JOIN pipeline_steps b ON b.run_id = j.run_id AND b.position BETWEEN 1 AND 10 \
         WHERE j.position = 11 AND b.finished_at_ms > tj.created_at_ms",
    );
    assert_eq!(
        joins_early, 0,
        "no join started before its last branch ended"
    );
    let workers = db_scalar(
        &db,
        "SELECT count(DISTINCT split_part(r.worker, '/', 1)) FROM task_runs r \
         JOIN tasks t ON t.id = r.task_id WHERE t.pipeline_run IS NOT NULL",
    );
    assert!(workers >= 2, "the steps were shared ({workers} instances)");
}
