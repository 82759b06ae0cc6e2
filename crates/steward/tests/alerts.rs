//! Alerts posted to the real binary: Alertmanager's v2 shape at `/api/v2/alerts`, listing,
//! acknowledging, a new episode when an alert fires again, the resolve timeout, silences, and
//! what a workspace-scoped key may do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Daemon, eventually};

const CONFIG: &str = r#"
[[workspaces]]
key = "trading"
[[workspaces]]
key = "shop"

[alerting]
resolve_timeout = "2s"
"#;

fn start(dir: &std::path::Path) -> Daemon {
    let config = dir.join("steward.toml");
    std::fs::write(&config, CONFIG).unwrap();
    Daemon::start_on_sqlite(dir, &config, &[])
}

/// A key created through the API, by the daemon's admin key.
fn key(daemon: &Daemon, name: &str, role: &str, workspace: Option<&str>) -> String {
    daemon.create_key(name, role, workspace)
}

fn call(
    daemon: &Daemon,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let mut request = client
        .request(method, format!("{}{path}", daemon.url))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let body = response.json::<Value>().unwrap_or(Value::Null);
    (status, body)
}

fn alerts(daemon: &Daemon, key: &str, query: &str) -> Vec<Value> {
    let (status, body) = call(
        daemon,
        key,
        Method::GET,
        &format!("/api/v1/alerts{query}"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["alerts"].as_array().unwrap().clone()
}

#[test]
fn alerts_posted_the_alertmanager_way_are_stored_acked_and_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let operator = key(&daemon, "prometheus", "operator", None);
    let viewer = key(&daemon, "dashboard", "viewer", None);

    // Prometheus posts a list of postableAlerts; one names its end (already past).
    let posted = json!([
        {"labels": {"alertname": "ApiDown", "service": "api", "severity": "critical", "workspace": "trading"},
         "annotations": {"summary": "API down > 1 min"},
         "startsAt": "2026-12-01T08:00:00Z",
         "generatorURL": "http://prometheus:9090/graph"},
        {"labels": {"alertname": "DiskFull", "host": "vps-1"},
         "endsAt": "2020-01-01T00:00:00Z"}
    ]);
    let (status, body) = call(
        &daemon,
        &operator,
        Method::POST,
        "/api/v2/alerts",
        Some(posted.clone()),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["fired"], 1);
    assert_eq!(body["resolved"], 1);
    let (status, _) = call(
        &daemon,
        &viewer,
        Method::POST,
        "/api/v1/alerts",
        Some(posted.clone()),
    );
    assert_eq!(status, 403, "posting needs an operator");

    let firing = alerts(&daemon, &viewer, "?state=firing");
    assert_eq!(firing.len(), 1);
    let api = &firing[0];
    assert_eq!(api["labels"]["service"], "api");
    assert_eq!(api["severity"], "critical");
    assert_eq!(api["episode"], 1);
    let fingerprint = api["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(fingerprint.len(), 16);
    assert_eq!(
        alerts(&daemon, &viewer, "?severity=warning&state=resolved").len(),
        1
    );
    assert_eq!(alerts(&daemon, &viewer, "?labels=service=api").len(), 1);
    assert!(alerts(&daemon, &viewer, "?labels=service=db").is_empty());

    // Acknowledged by an operator, shown on the alert.
    let (status, _) = call(
        &daemon,
        &viewer,
        Method::POST,
        &format!("/api/v1/alerts/{fingerprint}/ack"),
        Some(json!({"note": "x"})),
    );
    assert_eq!(status, 403);
    let (status, acked) = call(
        &daemon,
        &operator,
        Method::POST,
        &format!("/api/v1/alerts/{fingerprint}/ack"),
        Some(json!({"note": "restarting the API"})),
    );
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["ack"]["by"], "prometheus");
    assert_eq!(acked["ack"]["note"], "restarting the API");

    // No longer re-sent: resolved after the resolve timeout (2 s here).
    eventually(
        Duration::from_secs(20),
        "the alert resolves when not re-sent",
        || {
            let (_, alert) = call(
                &daemon,
                &viewer,
                Method::GET,
                &format!("/api/v1/alerts/{fingerprint}"),
                None,
            );
            alert["state"] == "resolved"
        },
    );
    // Posted again: a new episode, the acknowledgement cleared.
    let (status, body) = call(
        &daemon,
        &operator,
        Method::POST,
        "/api/v1/alerts",
        Some(json!({"alerts": [posted[0].clone()]})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refired"], 1);
    let (_, alert) = call(
        &daemon,
        &viewer,
        Method::GET,
        &format!("/api/v1/alerts/{fingerprint}"),
        None,
    );
    assert_eq!(alert["state"], "firing");
    assert_eq!(alert["episode"], 2);
    assert_eq!(alert["ack"], Value::Null);

    // Every receipt and the acknowledgement are in the audit trail.
    let audit = daemon.get_json("/api/v1/audit?action=alert.receive");
    assert_eq!(audit["events"].as_array().unwrap().len(), 2, "{audit}");
    let audit = daemon.get_json("/api/v1/audit?action=alert.ack");
    assert_eq!(audit["events"].as_array().unwrap().len(), 1, "{audit}");

    // Bad input is refused whole, every problem listed.
    let (status, body) = call(
        &daemon,
        &operator,
        Method::POST,
        "/api/v2/alerts",
        Some(json!([{"labels": {}}, {"labels": {"a": "b"}, "startsAt": "soon"}])),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_alerts");
    let details = body["error"]["details"].to_string();
    assert!(
        details.contains("alerts[0].labels") && details.contains("alerts[1].startsAt"),
        "{details}"
    );
    let (status, _) = call(
        &daemon,
        &viewer,
        Method::GET,
        "/api/v1/alerts/not-a-fingerprint",
        None,
    );
    assert_eq!(status, 404);
}

#[test]
fn silences_and_workspace_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let operator = key(&daemon, "ops", "operator", None);
    let shop = key(&daemon, "shop-ops", "operator", Some("shop"));

    // A scoped key's alerts are its workspace's: labelled so, and never another's.
    let (status, body) = call(
        &daemon,
        &shop,
        Method::POST,
        "/api/v1/alerts",
        Some(json!({"alerts": [{"labels": {"alertname": "CartSlow"}}]})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        &daemon,
        &shop,
        Method::POST,
        "/api/v1/alerts",
        Some(json!({"alerts": [{"labels": {"alertname": "X", "workspace": "trading"}}]})),
    );
    assert_eq!(status, 403, "{body}");
    let (status, _) = call(
        &daemon,
        &operator,
        Method::POST,
        "/api/v1/alerts",
        Some(json!({"alerts": [{"labels": {"alertname": "ApiDown", "workspace": "trading"}}]})),
    );
    assert_eq!(status, 200);
    let seen = alerts(&daemon, &shop, "");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["labels"]["workspace"], "shop");
    assert_eq!(alerts(&daemon, &operator, "").len(), 2);
    let trading = alerts(&daemon, &operator, "?labels=workspace=trading")[0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = call(
        &daemon,
        &shop,
        Method::GET,
        &format!("/api/v1/alerts/{trading}"),
        None,
    );
    assert_eq!(
        status, 404,
        "another workspace's alert does not exist for a scoped key"
    );

    // Silences: validated, listed, expired.
    let (status, body) = call(
        &daemon,
        &operator,
        Method::POST,
        "/api/v1/silences",
        Some(json!({"matchers": [], "duration": "1h", "comment": "x"})),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(
        &daemon,
        &operator,
        Method::POST,
        "/api/v1/silences",
        Some(json!({"matchers": ["alertname=~\"Api.*\""], "duration": "1h"})),
    );
    assert_eq!(status, 400, "a comment is required: {body}");
    let (status, created) = call(
        &daemon,
        &operator,
        Method::POST,
        "/api/v1/silences",
        Some(
            json!({"matchers": ["alertname=~\"Api.*\"", "workspace=trading"], "duration": "1h", "comment": "deploy"}),
        ),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["created_by"], "ops");
    assert_eq!(created["matchers"][0], "alertname=~\"Api.*\"");
    let id = created["id"].as_i64().unwrap();
    // The scoped key's own silence is pinned to its workspace; it does not see the other one.
    let (status, own) = call(
        &daemon,
        &shop,
        Method::POST,
        "/api/v1/silences",
        Some(json!({"matchers": ["alertname=CartSlow"], "duration": "30m", "comment": "known"})),
    );
    assert_eq!(status, 201, "{own}");
    assert!(
        own["matchers"]
            .to_string()
            .contains("workspace=\\\"shop\\\""),
        "{own}"
    );
    let (_, listed) = call(&daemon, &shop, Method::GET, "/api/v1/silences", None);
    assert_eq!(listed["silences"].as_array().unwrap().len(), 1, "{listed}");
    let (status, _) = call(
        &daemon,
        &shop,
        Method::DELETE,
        &format!("/api/v1/silences/{id}"),
        None,
    );
    assert_eq!(status, 404);
    let (status, expired) = call(
        &daemon,
        &operator,
        Method::DELETE,
        &format!("/api/v1/silences/{id}"),
        None,
    );
    assert_eq!(status, 200, "{expired}");
    let (_, listed) = call(&daemon, &operator, Method::GET, "/api/v1/silences", None);
    assert_eq!(
        listed["silences"].as_array().unwrap().len(),
        1,
        "only the shop silence is left: {listed}"
    );
    let audit = daemon.get_json("/api/v1/audit?action=silence.expire");
    assert_eq!(audit["events"].as_array().unwrap().len(), 1, "{audit}");
}
