//! Steward as Prometheus sees it, with Prometheus's own programs (Debian's `prometheus`
//! package, which `scripts/test.sh` installs): a live daemon's `/metrics` passes
//! `promtool check metrics`, and a real Prometheus scrapes it with a key, evaluates a rule and
//! sends the rule's alerts to Steward as its Alertmanager. A missing program fails the tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::Daemon;

const PROMTOOL: &str = "/usr/bin/promtool";
const PROMETHEUS: &str = "/usr/bin/prometheus";

/// `path`, or a failed test saying how to get it: these tests never skip.
fn program(path: &str) -> &str {
    assert!(
        Path::new(path).is_file(),
        "{path} is missing: install Debian's `prometheus` package (scripts/test.sh does)"
    );
    path
}

/// A queue with a schedule feeding it, a command check and a certificate file check probed
/// every second, and alerting: enough for most metric families to have samples soon.
fn start(dir: &Path) -> Daemon {
    let (cert, _key) = certificate();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    let config = dir.join("steward.toml");
    std::fs::write(
        &config,
        r#"
[[workspaces]]
key = "ops"

[[services]]
name = "box"
workspace = "ops"

[[queues]]
name = "jobs"
kinds = ["noop"]

[[schedules]]
name = "tick"
every = "1s"
queue = "jobs"
kind = "noop"

[[checks]]
service = "box"
type = "command"
command = "true"
interval = "1s"

[[checks]]
service = "box"
type = "cert_file"
paths = ["cert.pem"]
interval = "1s"

[alerting]
rule_interval = "1s"

[[alerting.rules]]
name = "BoxDown"
when = "check_down"
"#,
    )
    .unwrap();
    Daemon::start_on_sqlite(dir, &config, &[])
}

/// A self-signed certificate valid for 30 more days.
fn certificate() -> (rcgen::Certificate, rcgen::KeyPair) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let now = rcgen::date_time_ymd(1970, 1, 1)
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
    params.not_before = now - Duration::from_secs(86_400);
    params.not_after = now + Duration::from_secs(30 * 86_400);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert, key)
}

/// A key created through the API by the daemon's admin key.
fn key(daemon: &Daemon, name: &str, role: &str) -> String {
    let response = daemon.send(
        Method::POST,
        "/api/v1/keys",
        Some(json!({ "name": name, "role": role })),
    );
    assert_eq!(response.status(), 201);
    response.json::<Value>().unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `GET path` on the daemon with `key`: the status and the body.
fn get(daemon: &Daemon, key: &str, path: &str) -> (u16, String) {
    let response = reqwest::blocking::Client::new()
        .get(format!("{}{path}", daemon.url))
        .bearer_auth(key)
        .timeout(Duration::from_secs(10))
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

/// The value of the sample `series` (name and labels exactly as rendered) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

#[test]
fn metrics_pass_promtool_check_metrics() {
    let promtool = program(PROMTOOL);
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let viewer = key(&daemon, "scraper", "viewer");
    let operator = key(&daemon, "prometheus", "operator");

    // A little work of every kind: a task, a posted alert, a refused key.
    let response = daemon.send(
        Method::POST,
        "/api/v1/tasks",
        Some(json!({"queue": "jobs", "kind": "noop"})),
    );
    assert_eq!(response.status(), 201);
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/api/v2/alerts", daemon.url))
        .bearer_auth(&operator)
        .json(&json!([{"labels": {"alertname": "DiskFull", "host": "vps-1"}}]))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(get(&daemon, "stw_not_a_key", "/api/v1/whoami").0, 401);

    // The families that take a moment: probes, fires, finished tasks, the alerting leader's
    // 5-second sample.
    let wanted = [
        "steward_tasks_finished_total{",
        "steward_schedule_fires_total{",
        "steward_check_up{",
        "steward_check_certificate_expiry_timestamp_seconds{",
        "steward_alerts{",
        "steward_alerts_received_total{",
        "steward_auth_failures_total{",
        "steward_store_operation_duration_seconds_bucket{",
    ];
    let metrics = wait_for(
        Duration::from_secs(30),
        "most families have samples",
        || {
            let (status, text) = get(&daemon, &viewer, "/metrics");
            assert_eq!(status, 200, "{text}");
            let missing: Vec<_> = wanted.iter().filter(|f| !text.contains(*f)).collect();
            if missing.is_empty() {
                Ok(text)
            } else {
                Err(format!("missing {missing:?} in:\n{text}"))
            }
        },
    );

    // Leadership is one gauge per role, 1 here (the one instance leads every role).
    for role in ["scheduler", "prober", "alerting"] {
        assert_eq!(
            sample(&metrics, &format!("steward_leader{{role=\"{role}\"}}")),
            Some(1.0),
            "{metrics}"
        );
    }
    for gone in [
        "steward_scheduler_leader",
        "steward_prober_leader",
        "steward_alerting_leader",
    ] {
        assert!(!metrics.contains(gone), "{gone} is still shown:\n{metrics}");
    }
    // The certificate's expiry is Unix time, 30 days from now.
    let expiry = sample(
        &metrics,
        r#"steward_check_certificate_expiry_timestamp_seconds{check="box-cert_file"}"#,
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (expiry - now - 30.0 * 86_400.0).abs() < 3_600.0,
        "expiry {expiry}, now {now}"
    );
    let families = metrics.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert!(families >= 25, "only {families} families:\n{metrics}");

    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = check.wait_with_output().unwrap();
    let problems = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && problems.trim().is_empty(),
        "promtool check metrics exited with {}:\n{problems}\non:\n{metrics}",
        output.status
    );
}

/// Polls `poll` until it answers `Ok`; after `timeout`, fails with `what` and the last `Err`
/// (what was seen instead).
fn wait_for<T>(timeout: Duration, what: &str, mut poll: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match poll() {
            Ok(done) => return done,
            Err(seen) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for: {what}\n{seen}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A Prometheus server started in a directory of its own; killed when dropped.
struct Prometheus {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    url: String,
    log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus on `config` on a free loopback port, and waits until it is ready.
    fn start(dir: &Path, config: &Path) -> Prometheus {
        let prometheus = program(PROMETHEUS);
        // The port is free when chosen; if another process takes it first, try another.
        for attempt in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let log = dir.join(format!("prometheus-{attempt}.log"));
            let output = std::fs::File::create(&log).unwrap();
            let child = Command::new(prometheus)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join(format!("data-{attempt}")).display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                // Alerts fire from the first evaluation, which may come before the
                // Alertmanager is discovered (the send is dropped); resend soon, not after 1m.
                .arg("--rules.alert.resend-delay=1s")
                .stdin(Stdio::null())
                .stdout(output.try_clone().unwrap())
                .stderr(output)
                .spawn()
                .expect("spawn prometheus");
            let mut server = Prometheus {
                child,
                url: format!("http://127.0.0.1:{port}"),
                log,
            };
            if server.ready(Duration::from_secs(30)) {
                return server;
            }
            assert!(
                server.logs().contains("address already in use"),
                "prometheus did not get ready:\n{}",
                server.logs()
            );
        }
        panic!("prometheus found no free port in 3 attempts");
    }

    /// Waits for `/-/ready`; false if the process exits first.
    fn ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let client = reqwest::blocking::Client::new();
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            let answer = client
                .get(format!("{}/-/ready", self.url))
                .timeout(Duration::from_secs(2))
                .send();
            if answer.is_ok_and(|r| r.status().is_success()) {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus was not ready within {timeout:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `data` of a Prometheus HTTP API answer.
    fn api(&self, path: &str) -> Value {
        let body: Value = reqwest::blocking::Client::new()
            .get(format!("{}{path}", self.url))
            .timeout(Duration::from_secs(10))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(body["status"], "success", "{path}: {body}");
        body["data"].clone()
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prometheus_scrapes_steward_and_sends_it_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let viewer = key(&daemon, "prometheus-scrape", "viewer");
    let operator = key(&daemon, "prometheus-alerts", "operator");
    let steward = daemon.url.strip_prefix("http://").unwrap().to_owned();

    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        r#"
groups:
  - name: steward-test
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
        labels: { severity: warning }
        annotations: { summary: "fires from the first evaluation on" }
      - alert: StewardSchedulerLeads
        expr: steward_leader{role="scheduler"} == 1
        annotations: { summary: "fires once Steward's own samples are scraped" }
"#,
    )
    .unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            r#"
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{rules}"]
scrape_configs:
  - job_name: steward
    authorization: {{ type: Bearer, credentials: "{viewer}" }}
    static_configs: [{{ targets: ["{steward}"] }}]
alerting:
  alertmanagers:
    - api_version: v2
      authorization: {{ type: Bearer, credentials: "{operator}" }}
      static_configs: [{{ targets: ["{steward}"] }}]
"#,
            rules = rules.display()
        ),
    )
    .unwrap();
    let checked = Command::new(program(PROMTOOL))
        .args(["check", "config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "promtool check config:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let prometheus = Prometheus::start(dir.path(), &config);
    let within = Duration::from_secs(30);

    // The target is up: scraped with the viewer key.
    let target = wait_for(within, "Prometheus reports the Steward target up", || {
        let targets = prometheus.api("/api/v1/targets?state=active");
        targets["activeTargets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["labels"]["job"] == "steward" && t["health"] == "up")
            .cloned()
            .ok_or_else(|| format!("targets: {targets}\n{}", prometheus.logs()))
    });
    assert_eq!(target["scrapeUrl"], format!("{}/metrics", daemon.url));
    assert_eq!(target["lastError"], "", "{target}");
    let up = prometheus.api("/api/v1/query?query=up%7Bjob%3D%22steward%22%7D");
    assert_eq!(up["result"][0]["value"][1], "1", "{up}");

    // Both alerts reach Steward through its Alertmanager API, posted with the operator key.
    let alerts = wait_for(within, "Prometheus's alerts show up in Steward", || {
        let (status, body) = get(&daemon, &viewer, "/api/v1/alerts?state=firing");
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        let alerts = body["alerts"].as_array().unwrap().clone();
        let all = ["AlwaysFiring", "StewardSchedulerLeads"]
            .iter()
            .all(|name| alerts.iter().any(|a| a["labels"]["alertname"] == *name));
        if all {
            return Ok(alerts);
        }
        Err(format!(
            "in Steward: {alerts:?}\nin Prometheus: {}\nits Alertmanagers: {}\n{}",
            prometheus.api("/api/v1/alerts"),
            prometheus.api("/api/v1/alertmanagers"),
            prometheus.logs()
        ))
    });
    let leads = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "StewardSchedulerLeads")
        .unwrap();
    assert_eq!(leads["labels"]["job"], "steward", "{leads}");
    assert_eq!(leads["labels"]["role"], "scheduler", "{leads}");
    let always = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "AlwaysFiring")
        .unwrap();
    assert_eq!(always["severity"], "warning", "{always}");
    let notifier = prometheus.api("/api/v1/alertmanagers");
    assert_eq!(
        notifier["activeAlertmanagers"][0]["url"],
        format!("{}/api/v2/alerts", daemon.url),
        "{notifier}"
    );
    // Prometheus reported no failed sends.
    let logs = prometheus.logs();
    assert!(
        !logs.contains("Error sending alert"),
        "Prometheus failed to send alerts:\n{logs}"
    );
    drop(prometheus);
}
