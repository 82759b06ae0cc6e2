//! Notifications end to end, on the real binary and a real loopback receiver: alerts posted,
//! grouped and fanned out to two webhooks; the receivers answer 500 for a while, Steward is
//! killed with SIGKILL with notifications pending, restarted, and then every notification is
//! delivered, in order per group, exactly once; a remediation task is enqueued once per
//! firing. On SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use steward_store_postgres::testing::TestDatabase;
use support::receiver::Receiver;
use support::{Daemon, db_scalar, eventually};

fn write_config(dir: &Path, receiver: &Receiver) -> std::path::PathBuf {
    let text = format!(
        r#"
[[queues]]
name = "platform"
kinds = ["noop"]

[alerting]
notification_ttl = "1h"

[[alerting.receivers]]
name = "n8n"
type = "webhook"
url = "{n8n}"

[[alerting.receivers]]
name = "openclaw"
type = "webhook"
url = "{openclaw}"
headers = {{ Authorization = "Bearer s3cret" }}

[alerting.route]
receiver = "n8n"
group_by = ["alertname"]
group_wait = "1s"
group_interval = "1s"

[[alerting.route.routes]]
matchers = ["severity=critical"]
receiver = "n8n"
continue = true
remediate = {{ queue = "platform", kind = "noop", payload = {{ plan = "restart {{{{ labels.instance }}}}" }} }}

[[alerting.route.routes]]
receiver = "openclaw"
"#,
        n8n = receiver.url("/n8n"),
        openclaw = receiver.url("/openclaw"),
    );
    let path = dir.join("steward.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn post_alerts(daemon: &Daemon, alerts: Value) {
    let response = daemon.send(Method::POST, "/api/v2/alerts", Some(alerts));
    assert_eq!(response.status(), 200, "{}", response.text().unwrap());
}

fn notifications(daemon: &Daemon, query: &str) -> Vec<Value> {
    daemon.get_json(&format!("/api/v1/notifications?limit=1000{query}"))["notifications"]
        .as_array()
        .unwrap()
        .clone()
}

/// What a receiver was told, as (status, instance → alert status) per notification.
fn told(body: &Value) -> (String, BTreeMap<String, String>) {
    let alerts = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["labels"]["instance"].as_str().unwrap().to_owned(),
                a["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (body["status"].as_str().unwrap().to_owned(), alerts)
}

fn scenario(dir: &Path, start: impl Fn() -> Daemon, receiver: &Receiver) {
    receiver.answer(500);
    let mut daemon = start();
    let key = daemon.key.clone().unwrap();
    post_alerts(
        &daemon,
        json!([
            { "labels": { "alertname": "ApiDown", "instance": "api-1", "severity": "critical" } },
            { "labels": { "alertname": "ApiDown", "instance": "api-2", "severity": "critical" } },
            { "labels": { "alertname": "DiskFull", "instance": "db-1", "severity": "warning" } },
        ]),
    );
    // The receiver refuses: attempts are made and recorded, the notifications stay pending.
    eventually(Duration::from_secs(20), "attempts answered 500", || {
        receiver.received().len() >= 4
    });
    let pending = notifications(&daemon, "&state=pending");
    assert!(!pending.is_empty());
    assert!(
        pending
            .iter()
            .any(|n| n["last_error"].as_str().is_some_and(|e| e.contains("500"))),
        "{pending:?}"
    );
    // A change while the receiver is down queues behind the first notification of its group.
    post_alerts(
        &daemon,
        json!([{ "labels": { "alertname": "ApiDown", "instance": "api-2", "severity": "critical" },
                 "endsAt": "2020-01-01T00:00:00Z" }]),
    );
    eventually(Duration::from_secs(10), "the change is queued", || {
        notifications(&daemon, "&state=pending").len() >= 5
    });
    daemon.signal("KILL");
    daemon.wait_exit(Duration::from_secs(10));
    let refused_before_restart = receiver.received().len();

    receiver.answer(200);
    let mut daemon = start();
    daemon.use_key(&key);
    eventually(
        Duration::from_secs(60),
        "every notification delivered",
        || notifications(&daemon, "&state=pending").is_empty(),
    );
    let all = notifications(&daemon, "");
    assert!(
        all.iter().all(|n| n["state"] == "delivered"),
        "nothing failed: {all:?}"
    );
    let accepted = receiver.accepted();
    assert_eq!(
        accepted.len(),
        all.len(),
        "each notification accepted exactly once (nothing was answered 2xx before the kill)"
    );
    assert!(refused_before_restart >= 4);

    // In order per group: the first notification of ApiDown (two firing) before its change.
    for path in ["/n8n", "/openclaw"] {
        let api_down: Vec<_> = accepted
            .iter()
            .filter(|r| r.path == path && r.body["groupLabels"]["alertname"] == "ApiDown")
            .map(|r| told(&r.body))
            .collect();
        let expected_first = (
            "firing".to_owned(),
            BTreeMap::from([
                ("api-1".to_owned(), "firing".to_owned()),
                ("api-2".to_owned(), "firing".to_owned()),
            ]),
        );
        let expected_change = (
            "firing".to_owned(),
            BTreeMap::from([
                ("api-1".to_owned(), "firing".to_owned()),
                ("api-2".to_owned(), "resolved".to_owned()),
            ]),
        );
        assert_eq!(api_down, [expected_first, expected_change], "{path}");
    }
    // The critical alerts went to both receivers; the warning only to openclaw.
    let disk: Vec<_> = accepted
        .iter()
        .filter(|r| r.body["groupLabels"]["alertname"] == "DiskFull")
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(disk, ["/openclaw"]);
    // Alertmanager's webhook JSON.
    let sample = &accepted[0].body;
    assert_eq!(sample["version"], "4");
    assert!(
        sample["externalURL"]
            .as_str()
            .unwrap()
            .starts_with("http://")
    );

    // The alert's detail lists its notifications with their attempts.
    let fp = daemon.get_json("/api/v1/alerts?state=firing")["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["instance"] == "api-1")
        .unwrap()["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let detail = daemon.get_json(&format!("/api/v1/alerts/{fp}"));
    let shown = detail["notifications"].as_array().unwrap();
    assert!(shown.len() >= 3, "{detail}");
    let statuses: Vec<_> = shown
        .iter()
        .flat_map(|n| n["attempt_log"].as_array().unwrap().clone())
        .map(|a| a["status"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        statuses.contains(&500) && statuses.contains(&200),
        "{statuses:?}"
    );

    // One remediation task per critical alert's firing, across the restart.
    let tasks = daemon.get_json("/api/v1/tasks?queue=platform")["tasks"]
        .as_array()
        .unwrap()
        .clone();
    let mut plans: Vec<_> = tasks
        .iter()
        .map(|t| t["payload"]["plan"].as_str().unwrap().to_owned())
        .collect();
    plans.sort();
    assert_eq!(plans, ["restart api-1", "restart api-2"]);

    let metrics = daemon.get("/metrics").text().unwrap();
    assert!(
        metrics.contains(r#"steward_notifications_total{receiver="n8n",result="delivered"}"#),
        "{metrics}"
    );
    let _ = dir;
}

#[test]
fn notifications_survive_a_receiver_outage_and_a_sigkill_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let config = write_config(dir.path(), &receiver);
    scenario(
        dir.path(),
        || Daemon::start_on_sqlite(dir.path(), &config, &[]),
        &receiver,
    );
}

#[test]
fn notifications_survive_a_receiver_outage_and_a_sigkill_on_postgres() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let config = write_config(dir.path(), &receiver);
    scenario(
        dir.path(),
        || Daemon::start_on_postgres(dir.path(), &config, &db),
        &receiver,
    );
}

/// A built-in rule end to end: a check goes down, the `check_down` rule raises an alert, its
/// receiver is told; a posted resolution of the same label set is refused; the check comes
/// back, and the resolution is told.
#[test]
fn a_check_down_rule_notifies_and_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let target = Receiver::start();
    let hook = Receiver::start();
    target.answer(500);
    let text = format!(
        r#"
[[services]]
name = "api"
url = "{target}"

[[checks]]
name = "api-health"
service = "api"
path = "/health"
interval = "1s"
failures_before_down = 1
successes_before_up = 1

[health]
check_service_urls = false

[alerting]
rule_interval = "1s"

[[alerting.receivers]]
name = "ops"
type = "webhook"
url = "{hook}"

[alerting.route]
receiver = "ops"
group_by = ["alertname", "service"]
group_wait = "0s"
group_interval = "1s"

[[alerting.rules]]
name = "ApiDown"
when = "check_down"
checks = ["api-health"]
severity = "critical"
annotations = {{ runbook_url = "https://wiki.example.com/api" }}
"#,
        target = target.url(""),
        hook = hook.url("/ops"),
    );
    let config = dir.path().join("steward.toml");
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    eventually(
        Duration::from_secs(20),
        "the down alert is notified",
        || !hook.accepted().is_empty(),
    );
    let first = hook.accepted()[0].body.clone();
    assert_eq!(first["status"], "firing", "{first}");
    let alert = &first["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "ApiDown");
    assert_eq!(alert["labels"]["check"], "api-health");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(
        alert["annotations"]["runbook_url"],
        "https://wiki.example.com/api"
    );
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("check api-health of api is down"),
        "{alert}"
    );

    // An operator's key posts the rule's label set as resolved: refused, the rule's alert is
    // left as it is.
    let ended = "2020-01-01T00:00:00Z";
    let posted = daemon.send(
        reqwest::Method::POST,
        "/api/v2/alerts",
        Some(json!([{ "labels": alert["labels"].clone(), "endsAt": ended }])),
    );
    assert_eq!(posted.status(), 200);
    let answer: Value = posted.json().unwrap();
    assert_eq!(answer["accepted"], 0, "{answer}");
    assert_eq!(answer["refused"][0]["index"], 0, "{answer}");
    std::thread::sleep(Duration::from_millis(1500));
    let firing = daemon.get_json("/api/v1/alerts?state=firing")["alerts"].clone();
    assert_eq!(firing[0]["source"], "rule:ApiDown", "{firing}");
    assert!(
        hook.accepted().iter().all(|r| r.body["status"] == "firing"),
        "no resolution was told"
    );
    target.answer(200);
    eventually(
        Duration::from_secs(20),
        "the resolution is notified",
        || {
            hook.accepted()
                .iter()
                .any(|r| r.body["status"] == "resolved")
        },
    );
    let alerts = daemon.get_json("/api/v1/alerts?state=resolved")["alerts"].clone();
    assert_eq!(alerts[0]["source"], "rule:ApiDown", "{alerts}");
}

/// Two instances share a PostgreSQL database. Alerts posted to the one that does not hold the
/// alerting lease reach the receiver as soon as the leader hears of them (the poster's
/// `NOTIFY`), not at its next catch-up a few seconds later; each is notified once.
#[test]
fn alerts_posted_to_another_instance_are_notified_at_once() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let config = dir.path().join("steward.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[alerting.receivers]]
name = "hook"
type = "webhook"
url = "{}"

[alerting.route]
receiver = "hook"
group_by = ["alertname"]
group_wait = "0s"
"#,
            receiver.url("/hook")
        ),
    )
    .unwrap();
    let leader = Daemon::start_on_postgres(dir.path(), &config, &db);
    let leading = || {
        db_scalar(
            &db,
            "SELECT coalesce(max(split_part(holder, ':', 2)::bigint), 0) FROM leases \
             WHERE role = 'alerting'",
        )
    };
    eventually(
        Duration::from_secs(20),
        "the first instance leading",
        || leading() == i64::from(leader.pid()),
    );
    let mut other = Daemon::start_on_postgres(dir.path(), &config, &db);
    other.use_key(leader.key.as_deref().unwrap());
    let names = ["First", "Second", "Third"];
    for name in names {
        let posted = std::time::Instant::now();
        post_alerts(
            &other,
            json!([{ "labels": { "alertname": name, "instance": "web-1" } }]),
        );
        let told = || {
            receiver
                .accepted()
                .iter()
                .any(|r| r.body["groupLabels"]["alertname"] == name)
        };
        eventually(Duration::from_secs(15), "the receiver told", told);
        let took = posted.elapsed();
        // Polling would take up to five seconds (uniformly): three times in a row under two
        // is what announcements do.
        assert!(took < Duration::from_secs(2), "{name} took {took:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        leading(),
        i64::from(leader.pid()),
        "the same leader throughout"
    );
    assert_eq!(receiver.accepted().len(), names.len(), "each told once");
}
