//! Alertmanager's own client, `amtool` (Debian's `prometheus-alertmanager`), against the real
//! binary: alerts posted the Alertmanager way are queried (all, and by matcher), a silence is
//! added, listed, mutes its alert and is expired; a viewer key may not add one, and a key
//! scoped to a workspace sees only that workspace's alerts and silences. The rest of
//! Alertmanager's read API (groups, one silence, a silence replaced, the status, refusals) is
//! checked over HTTP. On SQLite, and on PostgreSQL when it answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reqwest::Method;
use serde_json::{Value, json};
use steward_store_postgres::testing::TestDatabase;
use support::{Daemon, refusal};

const CONFIG: &str = r#"
[[workspaces]]
key = "trading"
[[workspaces]]
key = "shop"

[alerting]
resolve_timeout = "1h"

[[alerting.receivers]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:9/hook"

[[alerting.receivers]]
name = "pager"
type = "webhook"
url = "http://127.0.0.1:9/pager"

[alerting.route]
receiver = "hook"
group_by = ["alertname"]
group_wait = "1h"

# Critical alerts go to the pager, and on to the next route; every alert goes to the hook.
[[alerting.route.routes]]
matchers = ["severity=critical"]
receiver = "pager"
continue = true

[[alerting.route.routes]]
matchers = ['alertname=~".+"']
receiver = "hook"

# While the API is down, its other warnings are held back.
[[alerting.inhibit_rules]]
source_matchers = ["alertname=ApiDown"]
target_matchers = ["severity=warning"]
equal = ["service"]
"#;

/// `amtool`, from `PATH`: the test fails without it (`scripts/test.sh` installs it).
fn amtool_binary() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("amtool"))
        .find(|path| path.is_file())
        .expect(
            "amtool is not installed: scripts/test.sh installs it (Debian's prometheus-alertmanager)",
        )
}

/// Runs amtool against the daemon with `key` as its bearer token, as its documentation says:
/// an `--http.config.file` with an `authorization` block.
struct Amtool {
    binary: PathBuf,
    dir: PathBuf,
    url: String,
}

impl Amtool {
    fn new(daemon: &Daemon, dir: &Path) -> Self {
        Self {
            binary: amtool_binary(),
            dir: dir.to_owned(),
            url: daemon.url.clone(),
        }
    }

    fn run(&self, key: &str, args: &[&str]) -> Output {
        let config = self.dir.join(format!("http-{}.yml", &key[..12]));
        std::fs::write(
            &config,
            format!("authorization:\n  type: Bearer\n  credentials: {key}\n"),
        )
        .unwrap();
        Command::new(&self.binary)
            // No amtool.yml of the machine's user is read.
            .env("HOME", &self.dir)
            .arg(format!("--alertmanager.url={}", self.url))
            .arg(format!("--http.config.file={}", config.display()))
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs amtool, which must succeed; answers its standard output.
    fn ok(&self, key: &str, args: &[&str]) -> String {
        let output = self.run(key, args);
        assert!(
            output.status.success(),
            "amtool {args:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs amtool with `-o json`; answers what it printed.
    fn json(&self, key: &str, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let out = self.ok(key, &all);
        serde_json::from_str::<Value>(&out)
            .unwrap_or_else(|e| panic!("amtool {args:?} printed no JSON ({e}): {out}"))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// A key created by the daemon's admin key.
fn key(daemon: &Daemon, name: &str, role: &str, workspace: Option<&str>) -> String {
    daemon.create_key(name, role, workspace)
}

fn names(alerts: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = alerts
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

fn start_on_sqlite(dir: &Path) -> Daemon {
    let config = dir.join("steward.toml");
    std::fs::write(&config, CONFIG).unwrap();
    Daemon::start_on_sqlite(dir, &config, &[])
}

#[test]
fn amtool_queries_alerts_and_adds_and_expires_silences_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_on_sqlite(dir.path());
    amtool_works_unchanged(&daemon, dir.path());
}

#[test]
fn amtool_queries_alerts_and_adds_and_expires_silences_on_postgres() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steward.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let daemon = Daemon::start_on_postgres(dir.path(), &config, &db);
    amtool_works_unchanged(&daemon, dir.path());
}

fn amtool_works_unchanged(daemon: &Daemon, dir: &Path) {
    let amtool = Amtool::new(daemon, dir);
    let ops = key(daemon, "ops", "operator", None);
    let viewer = key(daemon, "dashboard", "viewer", None);
    let trading = key(daemon, "trading-viewer", "viewer", Some("trading"));
    let trading_ops = key(daemon, "trading-ops", "operator", Some("trading"));

    let posted = json!([
        {"labels": {"alertname": "ApiDown", "service": "api", "severity": "critical", "workspace": "trading"},
         "annotations": {"summary": "the API is down"},
         "generatorURL": "http://prometheus:9090/graph"},
        {"labels": {"alertname": "ApiSlow", "service": "api", "severity": "warning", "workspace": "trading"}},
        {"labels": {"alertname": "DiskFull", "host": "vps-1", "severity": "warning", "workspace": "shop"}},
        {"labels": {"alertname": "QueueSlow", "severity": "critical"}}
    ]);
    let response = daemon.send(Method::POST, "/api/v2/alerts", Some(posted));
    assert_eq!(response.status(), 200);

    // Every firing alert nothing mutes (amtool's default), in Alertmanager's shape.
    let all = amtool.json(&viewer, &["alert", "query"]);
    assert_eq!(names(&all), ["ApiDown", "DiskFull", "QueueSlow"]);
    let api = all
        .iter()
        .find(|a| a["labels"]["alertname"] == "ApiDown")
        .unwrap();
    assert_eq!(api["annotations"]["summary"], "the API is down");
    assert_eq!(api["generatorURL"], "http://prometheus:9090/graph");
    assert_eq!(api["status"]["state"], "active");
    assert_eq!(api["status"]["silencedBy"], json!([]));
    assert_eq!(
        api["receivers"],
        json!([{"name": "pager"}, {"name": "hook"}])
    );
    assert_eq!(api["fingerprint"].as_str().unwrap().len(), 16);
    for time in ["startsAt", "endsAt", "updatedAt"] {
        assert!(
            steward_wire::time::parse_rfc3339(api[time].as_str().unwrap()).is_some(),
            "{time}: {}",
            api[time]
        );
    }
    let disk = all
        .iter()
        .find(|a| a["labels"]["alertname"] == "DiskFull")
        .unwrap();
    assert_eq!(disk["receivers"], json!([{"name": "hook"}]));

    // ApiSlow is inhibited by ApiDown.
    let inhibited = amtool.json(&viewer, &["alert", "query", "--inhibited"]);
    assert_eq!(names(&inhibited), ["ApiSlow"]);
    assert_eq!(inhibited[0]["status"]["state"], "suppressed");
    assert_eq!(
        inhibited[0]["status"]["inhibitedBy"],
        json!([api["fingerprint"]])
    );

    // With matchers, as amtool sends them (a bare first argument is the alert's name).
    let by_name = amtool.json(&viewer, &["alert", "query", "alertname=ApiDown"]);
    assert_eq!(names(&by_name), ["ApiDown"]);
    let critical = amtool.json(&viewer, &["alert", "query", r#"severity=~"crit.*""#]);
    assert_eq!(names(&critical), ["ApiDown", "QueueSlow"]);
    let not_critical = amtool.json(&viewer, &["alert", "query", "severity!=critical"]);
    assert_eq!(names(&not_critical), ["DiskFull"]);
    let simple = amtool.ok(&viewer, &["alert", "query", "DiskFull"]);
    assert!(
        simple.contains("DiskFull") && !simple.contains("ApiDown"),
        "{simple}"
    );
    let paged = amtool.json(&viewer, &["alert", "query", "--receiver", "pag.*"]);
    assert_eq!(names(&paged), ["ApiDown", "QueueSlow"]);

    // A viewer may not silence.
    let refused = amtool.run(
        &viewer,
        &[
            "silence",
            "add",
            "alertname=ApiDown",
            "-c",
            "deploying",
            "-d",
            "1h",
        ],
    );
    assert!(!refused.status.success(), "a viewer added a silence");

    // An operator silences ApiDown: amtool prints the new id.
    let added = amtool.ok(
        &ops,
        &[
            "silence",
            "add",
            "alertname=ApiDown",
            "-c",
            "deploying",
            "-d",
            "1h",
        ],
    );
    let id = added.trim().to_owned();
    assert!(id.parse::<i64>().is_ok(), "amtool printed {added:?}");
    let silences = amtool.json(&viewer, &["silence", "query"]);
    assert_eq!(silences.len(), 1, "{silences:?}");
    let silence = &silences[0];
    assert_eq!(silence["id"], id.as_str());
    assert_eq!(silence["status"]["state"], "active");
    assert_eq!(silence["createdBy"], "ops", "the key, whatever amtool says");
    assert_eq!(silence["comment"], "deploying");
    assert_eq!(
        silence["matchers"],
        json!([{"name": "alertname", "value": "ApiDown", "isRegex": false, "isEqual": true}])
    );
    assert_eq!(amtool.ok(&viewer, &["silence", "query", "-q"]).trim(), id);
    let simple = amtool.ok(&viewer, &["silence", "query", "ApiDown"]);
    assert!(
        simple.contains(&id) && simple.contains("deploying"),
        "{simple}"
    );

    // `amtool silence update` posts the silence with its id: a new one takes its place.
    let updated = amtool.json(&ops, &["silence", "update", &id, "-c", "deploying v2"]);
    let new_id = updated[0]["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    let listed = amtool.json(&viewer, &["silence", "query"]);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], new_id.as_str());
    assert_eq!(listed[0]["comment"], "deploying v2");
    let replaced = amtool.ok(&viewer, &["silence", "query", "--expired", "-q"]);
    assert_eq!(replaced.trim(), id);
    let id = new_id;

    // Silenced: gone from the active alerts, shown suppressed among the silenced ones.
    let active = amtool.json(&viewer, &["alert", "query"]);
    assert_eq!(names(&active), ["DiskFull", "QueueSlow"]);
    let silenced = amtool.json(&viewer, &["alert", "query", "--silenced"]);
    assert_eq!(names(&silenced), ["ApiDown"]);
    assert_eq!(silenced[0]["status"]["state"], "suppressed");
    assert_eq!(silenced[0]["status"]["silencedBy"], json!([id]));

    // A key scoped to `trading` sees its workspace's alert only, and no unpinned silence; a
    // silence it adds is pinned to its workspace, and it cannot expire others'.
    let scoped = amtool.json(&trading, &["alert", "query", "--active", "--silenced"]);
    assert_eq!(names(&scoped), ["ApiDown"]);
    assert!(amtool.json(&trading, &["silence", "query"]).is_empty());
    let refused = amtool.run(&trading_ops, &["silence", "expire", &id]);
    assert!(
        !refused.status.success(),
        "a scoped key expired a silence it cannot see"
    );
    let pinned = amtool.ok(
        &trading_ops,
        &[
            "silence",
            "add",
            "service=api",
            "-c",
            "maintenance",
            "-d",
            "30m",
        ],
    );
    let pinned = pinned.trim().to_owned();
    let own = amtool.json(&trading, &["silence", "query"]);
    assert_eq!(own.len(), 1);
    assert_eq!(own[0]["id"], pinned.as_str());
    assert!(
        own[0]["matchers"].as_array().unwrap().contains(
            &json!({"name": "workspace", "value": "trading", "isRegex": false, "isEqual": true})
        ),
        "{own:?}"
    );
    let both = amtool.json(&viewer, &["alert", "query", "--silenced"]);
    let mut by: Vec<&str> = both[0]["status"]["silencedBy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    by.sort_unstable();
    let mut want = [id.as_str(), pinned.as_str()];
    want.sort_unstable();
    assert_eq!(by, want);
    amtool.ok(&trading_ops, &["silence", "expire", &pinned]);

    // The rest of the read API, over HTTP.
    alertmanager_over_http(daemon, &ops, &viewer, &trading, &id);

    // Expired: no longer listed (amtool hides expired silences) and the alert is active again.
    amtool.ok(&ops, &["silence", "expire", &id]);
    assert_eq!(amtool.ok(&viewer, &["silence", "query", "-q"]).trim(), "");
    let expired = amtool.ok(&viewer, &["silence", "query", "--expired", "-q"]);
    assert!(expired.lines().any(|l| l.trim() == id), "{expired}");
    let active = amtool.json(&viewer, &["alert", "query"]);
    assert_eq!(names(&active), ["ApiDown", "DiskFull", "QueueSlow"]);
    assert!(
        amtool
            .json(&viewer, &["alert", "query", "--silenced"])
            .is_empty()
    );
    let refused = amtool.run(&ops, &["silence", "expire", "not-a-silence"]);
    assert!(!refused.status.success());
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
    if status >= 400 {
        let (status, code, message) = refusal(response);
        return (status, json!({"code": code, "message": message}));
    }
    (status, response.json::<Value>().unwrap_or(Value::Null))
}

fn alertmanager_over_http(daemon: &Daemon, ops: &str, viewer: &str, trading: &str, id: &str) {
    // Groups, by their route's `group_by` labels; a critical alert is in the pager's group too.
    let (status, groups) = call(daemon, viewer, Method::GET, "/api/v2/alerts/groups", None);
    assert_eq!(status, 200, "{groups}");
    let groups = groups.as_array().unwrap();
    let summary: Vec<(String, String, usize)> = groups
        .iter()
        .map(|g| {
            (
                g["labels"]["alertname"].as_str().unwrap().to_owned(),
                g["receiver"]["name"].as_str().unwrap().to_owned(),
                g["alerts"].as_array().unwrap().len(),
            )
        })
        .collect();
    let group = |a: &str, r: &str| (a.to_owned(), r.to_owned(), 1);
    assert_eq!(
        summary,
        [
            group("ApiDown", "hook"),
            group("ApiDown", "pager"),
            group("ApiSlow", "hook"),
            group("DiskFull", "hook"),
            group("QueueSlow", "hook"),
            group("QueueSlow", "pager"),
        ]
    );
    let (_, paged) = call(
        daemon,
        viewer,
        Method::GET,
        "/api/v2/alerts/groups?receiver=pager&silenced=false",
        None,
    );
    assert_eq!(paged.as_array().unwrap().len(), 1, "{paged}");
    let (_, scoped) = call(daemon, trading, Method::GET, "/api/v2/alerts/groups", None);
    let scoped = scoped.as_array().unwrap();
    assert_eq!(scoped.len(), 3, "{scoped:?}");
    assert!(
        scoped
            .iter()
            .flat_map(|g| g["alerts"].as_array().unwrap())
            .all(|a| a["labels"]["workspace"] == "trading"),
        "{scoped:?}"
    );

    // One silence; the scoped key cannot see an unpinned one.
    let (status, silence) = call(
        daemon,
        viewer,
        Method::GET,
        &format!("/api/v2/silence/{id}"),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(silence["id"], id);
    let (status, _) = call(
        daemon,
        trading,
        Method::GET,
        &format!("/api/v2/silence/{id}"),
        None,
    );
    assert_eq!(status, 404);

    // Posted with the id of an existing silence: that one is expired and a new one answered.
    let start = steward_wire::time::rfc3339(steward_store::now_ms());
    let end = steward_wire::time::rfc3339(steward_store::now_ms() + 3_600_000);
    let body = json!({
        "matchers": [{"name": "host", "value": "vps-[0-9]+", "isRegex": true, "isEqual": true}],
        "startsAt": start, "endsAt": end, "createdBy": "grafana", "comment": "disk work"
    });
    let (status, created) = call(
        daemon,
        ops,
        Method::POST,
        "/api/v2/silences",
        Some(body.clone()),
    );
    assert_eq!(status, 200, "{created}");
    let first = created["silenceID"].as_str().unwrap().to_owned();
    let mut replacing = body.clone();
    replacing["id"] = first.clone().into();
    replacing["comment"] = "disk work, longer".into();
    let (status, replaced) = call(
        daemon,
        ops,
        Method::POST,
        "/api/v2/silences",
        Some(replacing),
    );
    assert_eq!(status, 200, "{replaced}");
    let second = replaced["silenceID"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    let (_, old) = call(
        daemon,
        viewer,
        Method::GET,
        &format!("/api/v2/silence/{first}"),
        None,
    );
    assert_eq!(old["status"]["state"], "expired");
    let (_, new) = call(
        daemon,
        viewer,
        Method::GET,
        &format!("/api/v2/silence/{second}"),
        None,
    );
    assert_eq!(new["status"]["state"], "active");
    assert_eq!(new["comment"], "disk work, longer");
    let (_, filtered) = call(
        daemon,
        viewer,
        Method::GET,
        "/api/v2/silences?filter=host%3D~%22vps-%5B0-9%5D%2B%22",
        None,
    );
    let states: Vec<&str> = filtered
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["active", "expired"], "{filtered}");
    let (status, _) = call(
        daemon,
        ops,
        Method::DELETE,
        &format!("/api/v2/silence/{second}"),
        None,
    );
    assert_eq!(status, 200);

    // The status amtool and Grafana read; Grafana's probe for Mimir finds nothing.
    let (status, about) = call(daemon, viewer, Method::GET, "/api/v2/status", None);
    assert_eq!(status, 200);
    assert_eq!(about["cluster"]["status"], "ready");
    assert_eq!(about["cluster"]["peers"], json!([]));
    assert_eq!(about["config"]["original"], "");
    assert!(about["versionInfo"]["version"].is_string());
    assert!(steward_wire::time::parse_rfc3339(about["uptime"].as_str().unwrap()).is_some());
    let (status, _) = call(
        daemon,
        viewer,
        Method::GET,
        "/alertmanager/api/v2/status",
        None,
    );
    assert_eq!(status, 404);

    // Refusals are the API's JSON errors.
    let refused = |method: Method, path: &str, body: Option<Value>| {
        let (status, error) = call(daemon, ops, method, path, body);
        (
            status,
            error["code"].as_str().unwrap_or_default().to_owned(),
        )
    };
    assert_eq!(
        refused(Method::GET, "/api/v2/alerts?filter=%3Dnope", None),
        (400, "invalid_query".into())
    );
    assert_eq!(
        refused(Method::GET, "/api/v2/alerts?active=maybe", None),
        (400, "invalid_query".into())
    );
    assert_eq!(
        refused(Method::GET, "/api/v2/alerts/groups?receiver=%28", None),
        (400, "invalid_query".into())
    );
    assert_eq!(
        refused(
            Method::GET,
            "/api/v2/silence/3fa85f64-5717-4562-b3fc-2c963f66afa6",
            None
        ),
        (404, "not_found".into())
    );
    assert_eq!(
        refused(Method::DELETE, "/api/v2/silence/999999", None),
        (404, "not_found".into())
    );
    let mut bad_time = body.clone();
    bad_time["endsAt"] = "tomorrow".into();
    assert_eq!(
        refused(Method::POST, "/api/v2/silences", Some(bad_time)),
        (400, "invalid_body".into())
    );
    let mut past = body.clone();
    past["endsAt"] = "2020-01-01T00:00:00Z".into();
    assert_eq!(
        refused(Method::POST, "/api/v2/silences", Some(past)),
        (400, "invalid_body".into())
    );
    let mut too_long = body.clone();
    too_long["endsAt"] =
        steward_wire::time::rfc3339(steward_store::now_ms() + 400 * 86_400_000).into();
    assert_eq!(
        refused(Method::POST, "/api/v2/silences", Some(too_long)),
        (400, "invalid_body".into())
    );
    let mut unknown = body;
    unknown["id"] = "424242".into();
    assert_eq!(
        refused(Method::POST, "/api/v2/silences", Some(unknown)),
        (404, "not_found".into())
    );
}
