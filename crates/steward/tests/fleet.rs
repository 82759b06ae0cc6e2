//! The fleet's hub over HTTP and the CLI: nodes added, join tokens made and exchanged once,
//! heartbeats carrying inventory digests and the kinds that changed, reconciliation (stale
//! items deleted), an agent key held to its own node, and removal cascading.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Daemon, steward};

const CONFIG: &str = r#"
[[workspaces]]
key = "edge"

[[services]]
name = "shop"
workspace = "edge"
url = "https://shop.example.com/"
node = "vps-02"

[[services]]
name = "worker"
workspace = "edge"
node = "vps-02"
"#;

fn start(dir: &std::path::Path) -> Daemon {
    let config = dir.join("steward.toml");
    std::fs::write(&config, CONFIG).unwrap();
    Daemon::start_on_sqlite(dir, &config, &[])
}

/// Runs a client command against `daemon` with its key; answers its standard output.
fn cli(daemon: &Daemon, args: &[&str]) -> String {
    let out = steward()
        .args(args)
        .args(["--url", daemon.url.as_str()])
        .env("STEWARD_API_KEY", daemon.key.as_deref().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "steward {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn register(daemon: &Daemon, token: &str) -> reqwest::blocking::Response {
    reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/agent/register", daemon.url))
        .json(&json!({ "token": token, "hostname": "vps-02.internal", "agent_version": "9.9.9" }))
        .send()
        .unwrap()
}

fn beat(
    daemon: &Daemon,
    node: &str,
    credential: &str,
    body: &Value,
) -> reqwest::blocking::Response {
    reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/nodes/{node}/heartbeat", daemon.url))
        .bearer_auth(credential)
        .json(body)
        .send()
        .unwrap()
}

fn domain(name: &str, upstream: &str) -> Value {
    json!({
        "name": name,
        "listen": ["443 ssl"],
        "locations": [{ "path": "/", "upstream": upstream }],
        "file": "/etc/nginx/sites-enabled/shop.conf",
    })
}

#[test]
fn a_node_registers_once_reports_and_is_removed_with_what_it_reported() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());

    let added = cli(
        &daemon,
        &[
            "nodes",
            "add",
            "vps-02",
            "--hostname",
            "vps-02",
            "--label",
            "region=eu",
        ],
    );
    assert!(added.contains("added node `vps-02`"), "{added}");
    let token = cli(
        &daemon,
        &[
            "nodes", "token", "create", "--node", "vps-02", "--ttl", "1h",
        ],
    );
    let token = token.trim();
    assert!(token.starts_with("stj_"), "{token}");

    let registered = register(&daemon, token);
    assert_eq!(registered.status(), 201);
    let registered: Value = registered.json().unwrap();
    assert_eq!(registered["node"], "vps-02");
    let credential = registered["credential"].as_str().unwrap().to_owned();
    let reuse = register(&daemon, token);
    assert_eq!(reuse.status(), 401, "a token registers once");
    assert!(reuse.text().unwrap().contains("already used"));
    assert_eq!(register(&daemon, "stj_nonsense").status(), 401);

    // An expired token is told apart.
    let short: Value = daemon
        .send(
            Method::POST,
            "/api/v1/nodes/vps-02/tokens",
            Some(json!({ "ttl_s": 1 })),
        )
        .json()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1_100));
    let expired = register(&daemon, short["token"].as_str().unwrap());
    assert_eq!(expired.status(), 401);
    assert!(expired.text().unwrap().contains("expired"));

    // The first beat carries every kind; the hub holds their digests.
    let first = json!({
        "interval_s": 1,
        "digests": { "domains": "d1", "facts": "f1", "containers": "c1" },
        "inventory": {
            "domains": [domain("shop.example.com", "http://127.0.0.1:8080"), domain("old.example.com", "http://127.0.0.1:8081")],
            "facts": { "hostname": "vps-02", "os": "Debian GNU/Linux 13", "kernel": "6.12", "cpus": 2, "memory_bytes": 1_073_741_824u64, "agent_version": "9.9.9" },
            "containers": [{ "name": "shop-worker-1", "image": "worker:1", "state": "running", "ports": [], "restart_count": 0 }],
        },
        "usage": { "load": [0.5, 0.4, 0.3], "memory_available_bytes": 1, "uptime_s": 60, "disks": [] },
    });
    let answer: Value = beat(&daemon, "vps-02", &credential, &first).json().unwrap();
    assert_eq!(answer["needs"], json!([]));
    assert_eq!(answer["holds"]["domains"], "d1");

    // An idle beat carries digests only and needs nothing.
    let idle = json!({ "interval_s": 1, "digests": { "domains": "d1", "facts": "f1", "containers": "c1" } });
    let answer: Value = beat(&daemon, "vps-02", &credential, &idle).json().unwrap();
    assert_eq!(answer["needs"], json!([]));

    // A changed digest without its document: the hub asks for it.
    let changed = json!({ "interval_s": 1, "digests": { "domains": "d2", "facts": "f1", "containers": "c1" } });
    let answer: Value = beat(&daemon, "vps-02", &credential, &changed)
        .json()
        .unwrap();
    assert_eq!(answer["needs"], json!(["domains"]));
    let full = json!({
        "interval_s": 1,
        "digests": { "domains": "d2", "facts": "f1", "containers": "c1" },
        "inventory": { "domains": [domain("shop.example.com", "http://127.0.0.1:9090")] },
    });
    let answer: Value = beat(&daemon, "vps-02", &credential, &full).json().unwrap();
    assert_eq!(answer["needs"], json!([]));

    let shown = daemon.get_json("/api/v1/nodes/vps-02");
    assert_eq!(shown["node"]["status"], "up");
    assert_eq!(shown["node"]["agent_version"], "9.9.9");
    let domains = shown["inventory"]["domains"].as_array().unwrap();
    assert_eq!(domains.len(), 1, "the stale domain is deleted: {domains:?}");
    assert_eq!(
        domains[0]["locations"][0]["upstream"],
        "http://127.0.0.1:9090"
    );
    assert_eq!(shown["inventory"]["facts"]["os"], "Debian GNU/Linux 13");
    assert_eq!(shown["services"], json!(["shop", "worker"]));
    assert_eq!(
        shown["drift"],
        json!([]),
        "shop has its vhost, worker its container"
    );
    let text = cli(&daemon, &["nodes", "show", "vps-02"]);
    assert!(
        text.contains("shop.example.com") && text.contains("shop-worker-1"),
        "{text}"
    );

    // The agent's key acts as its node only.
    assert_eq!(beat(&daemon, "vps-03", &credential, &idle).status(), 403);
    let listing = reqwest::blocking::Client::new()
        .get(format!("{}/api/v1/nodes", daemon.url))
        .bearer_auth(&credential)
        .send()
        .unwrap();
    assert_eq!(listing.status(), 403);

    let listed = cli(&daemon, &["nodes", "ls"]);
    assert!(
        listed.contains("vps-02") && listed.contains("up"),
        "{listed}"
    );

    // Removing the node locks its agent out at once and takes what it reported.
    cli(&daemon, &["nodes", "rm", "vps-02"]);
    assert_eq!(beat(&daemon, "vps-02", &credential, &idle).status(), 401);
    assert_eq!(daemon.get("/api/v1/nodes/vps-02").status(), 404);
    let audit = daemon.get_json("/api/v1/audit?action=node.remove");
    assert_eq!(audit["events"].as_array().unwrap().len(), 1, "{audit}");
}

fn as_node(daemon: &Daemon, credential: &str, suffix: &str, body: &Value) -> Value {
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/nodes/vps-02/{suffix}", daemon.url))
        .bearer_auth(credential)
        .json(body)
        .send()
        .unwrap();
    assert!(
        response.status().is_success(),
        "{suffix}: {}",
        response.status()
    );
    response.json().unwrap()
}

/// The fencing an agent's claims share with an instance's workers: a lease kept while the node
/// is silent, taken back once the node beats without renewing it, and the lost attempt's late
/// result refused while the new attempt's is accepted.
#[test]
fn a_late_result_of_a_lease_taken_back_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steward.toml");
    std::fs::write(
        &config,
        format!(
            "{CONFIG}\n[[queues]]\nname = \"remote\"\nnode = \"vps-02\"\nkinds = [\"backup\"]\nlease = \"1s\"\n"
        ),
    )
    .unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    cli(&daemon, &["nodes", "add", "vps-02"]);
    let token = cli(&daemon, &["nodes", "token", "create", "--node", "vps-02"]);
    let registered: Value = register(&daemon, token.trim()).json().unwrap();
    let credential = registered["credential"].as_str().unwrap().to_owned();
    // A local instance never runs it, and an unknown node or another node is refused.
    let refused = daemon.send(
        Method::POST,
        "/api/v1/tasks",
        Some(json!({"queue": "remote", "kind": "backup", "node": "vps-09"})),
    );
    assert_eq!(refused.status(), 400, "another node than the queue's");
    let enqueued = daemon.send(
        Method::POST,
        "/api/v1/tasks",
        Some(json!({"queue": "remote", "kind": "backup", "payload": {"n": 1}})),
    );
    assert_eq!(enqueued.status(), 201);
    let id = enqueued.json::<Value>().unwrap()["task"]["id"].clone();

    let claim = json!({"worker": "agent", "limit": 2, "wait_ms": 5000});
    let first = as_node(&daemon, &credential, "tasks/claim", &claim);
    assert_eq!(first["tasks"][0]["id"], id, "{first}");
    assert_eq!(first["tasks"][0]["lease_ms"], 1000);
    let old_fence = first["tasks"][0]["fence"].clone();
    // Silent past the lease: the lease is kept (the agent may be cut off and still running).
    std::thread::sleep(Duration::from_millis(2_500));
    let task = daemon.get_json(&format!("/api/v1/tasks/{id}"));
    assert_eq!(task["task"]["status"], "running", "{task}");
    // The node beats without renewing it: its agent lost the attempt; the lease is taken back.
    let beat_body = json!({"interval_s": 10, "digests": {}, "usage": {}});
    assert!(
        beat(&daemon, "vps-02", &credential, &beat_body)
            .status()
            .is_success()
    );
    support::eventually(Duration::from_secs(10), "the lease taken back", || {
        daemon.get_json(&format!("/api/v1/tasks/{id}"))["task"]["status"] == "queued"
    });
    let second = as_node(&daemon, &credential, "tasks/claim", &claim);
    assert_eq!(second["tasks"][0]["id"], id, "{second}");
    let new_fence = second["tasks"][0]["fence"].clone();
    assert_ne!(new_fence, old_fence);

    let result = |fence: &Value| {
        json!({"worker": "agent", "results": [{
            "id": id, "fence": fence, "attempt": 1, "started_at_ms": 1, "ended_at_ms": 2,
            "end": "succeeded", "result": {"fence": fence},
        }]})
    };
    let late = as_node(&daemon, &credential, "tasks/complete", &result(&old_fence));
    assert_eq!(
        late["accepted"],
        json!([false]),
        "the lost attempt's result"
    );
    let current = as_node(&daemon, &credential, "tasks/complete", &result(&new_fence));
    assert_eq!(current["accepted"], json!([true]));
    let task = daemon.get_json(&format!("/api/v1/tasks/{id}"));
    assert_eq!(task["task"]["status"], "succeeded");
    assert_eq!(task["task"]["result"]["fence"], new_fence);
    let runs: Vec<&str> = task["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(runs, ["lease_expired", "succeeded"], "{task}");

    // An idle claim waits out its `wait_ms` and answers empty.
    let started = std::time::Instant::now();
    let idle = as_node(
        &daemon,
        &credential,
        "tasks/claim",
        &json!({"worker": "agent", "limit": 1, "wait_ms": 600}),
    );
    assert_eq!(idle["tasks"], json!([]));
    assert!(started.elapsed() >= Duration::from_millis(550));

    // The dashboard lists the node and shows what it reported.
    let domains = json!({"interval_s": 10, "digests": {"domains": "d1"}, "inventory": {
        "domains": [domain("shop.example.com", "http://127.0.0.1:8080")]}, "usage": {}});
    assert!(
        beat(&daemon, "vps-02", &credential, &domains)
            .status()
            .is_success()
    );
    let mut browser = support::browser::Browser::new(&daemon.url);
    browser.sign_in(daemon.key.as_deref().unwrap());
    let nodes = browser.page("/nodes");
    assert!(nodes.contains("data-node=\"vps-02\""), "{nodes}");
    assert!(nodes.contains("aria-current=\"page\">Nodes<"), "{nodes}");
    let node = browser.page("/nodes/vps-02");
    assert!(node.contains("data-domain=\"shop.example.com\""), "{node}");
    assert!(
        node.contains("data-drift=\"worker\""),
        "a declared service not reported: {node}"
    );
    assert_eq!(browser.get("/nodes/vps-09").status(), 404);
}
