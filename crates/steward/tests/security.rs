//! Keys, roles, rate limits and the audit trail, as a user meets them: the real binary on
//! loopback, the `steward keys` / `steward audit` commands, SIGKILL.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Daemon, steward, vizion_config};

fn start(dir: &std::path::Path) -> Daemon {
    Daemon::start_on_sqlite(dir, &vizion_config(), &[])
}

/// Runs a client command against `daemon` with `key`.
fn client(daemon: &Daemon, key: &str, args: &[&str]) -> Output {
    steward()
        .args(args)
        .env("STEWARD_URL", &daemon.url)
        .env("STEWARD_API_KEY", key)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_api_is_closed_by_default_but_health_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let key = daemon
        .key
        .clone()
        .expect("the first start prints an admin key");
    assert!(key.starts_with("stw_"));
    assert!(
        !daemon.logs().contains(&key),
        "the key never reaches the logs"
    );
    for path in [
        "/api/v1/graph",
        "/api/v1/workspaces",
        "/metrics",
        "/api/v1/audit",
    ] {
        let response = daemon.get_anonymous(path);
        assert_eq!(response.status(), 401, "{path}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: Value = response.json().unwrap();
        assert_eq!(body["error"]["code"], "unauthenticated");
    }
    assert_eq!(daemon.get_anonymous("/healthz").status(), 200);
    assert_eq!(daemon.get_anonymous("/readyz").status(), 200);
    assert_eq!(
        daemon.get("/api/v1/whoami").json::<Value>().unwrap()["principal"]["role"],
        "admin"
    );
}

#[test]
fn brute_force_attempts_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let http = reqwest::blocking::Client::new();
    let guess = |i: u8| {
        let key = steward_core::auth::format_key(&[i; 32]);
        http.get(format!("{}/api/v1/graph", daemon.url))
            .bearer_auth(key)
            .send()
            .unwrap()
    };
    let statuses: Vec<u16> = (0..10).map(|i| guess(i).status().as_u16()).collect();
    assert_eq!(statuses, [401; 10], "the first failures are answered");
    let refused = guess(10);
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        guess(11).status(),
        429,
        "the address stays refused, without its guesses being checked"
    );
    assert_eq!(
        daemon.get_anonymous("/healthz").status(),
        200,
        "health stays reachable"
    );
}

#[test]
fn keys_and_audit_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let admin = daemon.key.clone().unwrap();

    let created = client(
        &daemon,
        &admin,
        &[
            "keys",
            "create",
            "dashboard",
            "--role",
            "viewer",
            "--workspace",
            "trading",
        ],
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let viewer = stdout(&created).trim().to_owned();
    assert!(viewer.starts_with("stw_"), "{viewer}");

    let viewer_graph = client(&daemon, &viewer, &["keys", "ls"]);
    assert_eq!(viewer_graph.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&viewer_graph.stderr).contains("403 forbidden"));
    let http = reqwest::blocking::Client::new();
    let graph: Value = http
        .get(format!("{}/api/v1/graph", daemon.url))
        .bearer_auth(&viewer)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        graph["nodes"].as_array().unwrap().len(),
        1,
        "a scoped key sees its workspace only"
    );

    let listed = stdout(&client(&daemon, &admin, &["keys", "ls"]));
    assert!(
        listed.contains("dashboard") && listed.contains("viewer") && listed.contains("trading"),
        "{listed}"
    );
    assert!(
        !listed.contains(&viewer[8..]),
        "listings never show secrets"
    );

    let duplicate = client(
        &daemon,
        &admin,
        &["keys", "create", "dashboard", "--role", "viewer"],
    );
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("409 conflict"));

    assert!(
        client(&daemon, &admin, &["keys", "revoke", "dashboard"])
            .status
            .success()
    );
    let after = http
        .get(format!("{}/api/v1/graph", daemon.url))
        .bearer_auth(&viewer)
        .send()
        .unwrap();
    assert_eq!(after.status(), 401, "revocation takes effect at once");

    let audit: Value = serde_json::from_str(&stdout(&client(
        &daemon,
        &admin,
        &["audit", "ls", "--output", "json"],
    )))
    .unwrap();
    let events = audit["events"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["registry.sync", "key.bootstrap", "key.create", "key.revoke"]
    );
    assert_eq!(
        events[2]["actor"],
        json!({ "kind": "key", "name": "admin", "source_ip": "127.0.0.1" })
    );
    assert_eq!(events[2]["workspace"], "trading");

    let verify = client(&daemon, &admin, &["audit", "verify"]);
    assert!(verify.status.success());
    let report = stdout(&verify);
    assert!(
        report.starts_with("audit chain intact: 4 events verified\nhead: 4:"),
        "{report}"
    );
    let head = report
        .lines()
        .nth(1)
        .unwrap()
        .trim_start_matches("head: ")
        .to_owned();
    let anchored = client(
        &daemon,
        &admin,
        &["audit", "verify", "--expect-head", &head],
    );
    assert!(anchored.status.success(), "{}", stdout(&anchored));
    let forged = format!("4:{}", "0".repeat(64));
    assert_eq!(
        client(
            &daemon,
            &admin,
            &["audit", "verify", "--expect-head", &forged]
        )
        .status
        .code(),
        Some(3)
    );

    let system: Value = serde_json::from_str(&stdout(&client(
        &daemon,
        &admin,
        &["audit", "ls", "--actor-kind", "system", "--output", "json"],
    )))
    .unwrap();
    let system_actions: Vec<&str> = system["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(system_actions, ["registry.sync", "key.bootstrap"]);

    let export = stdout(&client(
        &daemon,
        &admin,
        &["audit", "export", "--action", "key.create"],
    ));
    let lines: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["target"], "dashboard");
    assert_eq!(lines[0]["hash"].as_str().unwrap().len(), 64);
}

#[test]
fn an_edited_audit_row_is_named_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = start(dir.path());
    let admin = daemon.key.clone().unwrap();
    assert!(
        client(
            &daemon,
            &admin,
            &["keys", "create", "ops", "--role", "operator"]
        )
        .status
        .success()
    );
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(10));

    let db = dir.path().join("data/steward.db");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query(
            "UPDATE audit_events SET details = '{\"role\":\"admin\"}' WHERE action = 'key.create'",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    });

    let mut daemon = start(dir.path());
    daemon.use_key(&admin);
    let verify = client(&daemon, &admin, &["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(3));
    let text = stdout(&verify);
    assert!(
        text.contains("BROKEN") && text.contains("event 3 was edited"),
        "{text}"
    );
}

#[test]
fn a_kill_never_leaves_a_change_without_its_audit_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = start(dir.path());
    let admin = daemon.key.clone().unwrap();
    let url = daemon.url.clone();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (url, admin) = (url.clone(), admin.clone());
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap();
                let mut acknowledged = Vec::new();
                for i in 0..10_000 {
                    let name = format!("w{w}-{i}");
                    let body = json!({ "name": name, "role": "viewer" });
                    match http
                        .post(format!("{url}/api/v1/keys"))
                        .bearer_auth(&admin)
                        .json(&body)
                        .send()
                    {
                        Ok(r) if r.status() == 201 => acknowledged.push(name),
                        _ => break, // the daemon is gone
                    }
                }
                acknowledged
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    daemon.signal("KILL");
    daemon.wait_exit(Duration::from_secs(5));
    let acknowledged: Vec<String> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(
        acknowledged.len() > 10,
        "the kill landed mid-stream ({} writes)",
        acknowledged.len()
    );

    let mut daemon = start(dir.path());
    daemon.use_key(&admin);
    let keys: Value = daemon.get("/api/v1/keys").json().unwrap();
    let stored: std::collections::BTreeSet<String> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect();
    let export = stdout(&client(
        &daemon,
        &admin,
        &["audit", "export", "--action", "key.create"],
    ));
    let audited: std::collections::BTreeSet<String> = export
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["target"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let created: std::collections::BTreeSet<String> =
        stored.iter().filter(|n| *n != "admin").cloned().collect();
    assert_eq!(
        created, audited,
        "every stored key has its audit event and no event lacks its key"
    );
    for name in &acknowledged {
        assert!(stored.contains(name), "acknowledged key {name} was lost");
    }
    assert!(
        client(&daemon, &admin, &["audit", "verify"])
            .status
            .success()
    );
}

/// A config with `[api]` settings appended to the VizionAI example.
fn start_with_api(dir: &std::path::Path, api: &str) -> Daemon {
    let config = dir.join("steward.toml");
    let text = std::fs::read_to_string(vizion_config()).unwrap();
    std::fs::write(&config, format!("[api]\n{api}\n{text}")).unwrap();
    Daemon::start_on_sqlite(dir, &config, &[])
}

#[test]
fn metrics_can_be_opened_and_cors_is_off_unless_configured() {
    let dir = tempfile::tempdir().unwrap();
    let closed = start(dir.path());
    let preflight = |daemon: &Daemon| {
        reqwest::blocking::Client::new()
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/v1/graph", daemon.url),
            )
            .header("origin", "https://dash.example.com")
            .header("access-control-request-method", "GET")
            .send()
            .unwrap()
    };
    assert!(
        preflight(&closed)
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    drop(closed);

    let dir = tempfile::tempdir().unwrap();
    let open = start_with_api(
        dir.path(),
        "metrics_public = true\ncors_origins = [\"https://dash.example.com\"]",
    );
    assert_eq!(open.get_anonymous("/metrics").status(), 200);
    let response = preflight(&open);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://dash.example.com"
    );
}

#[test]
fn each_key_is_held_to_its_role_rate() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_with_api(dir.path(), "[api.rate_limits]\nviewer = 2\nadmin = 1000");
    let admin = daemon.key.clone().unwrap();
    let viewer = stdout(&client(
        &daemon,
        &admin,
        &["keys", "create", "slow", "--role", "viewer"],
    ))
    .trim()
    .to_owned();
    let http = reqwest::blocking::Client::new();
    let statuses: Vec<u16> = (0..5)
        .map(|_| {
            http.get(format!("{}/api/v1/whoami", daemon.url))
                .bearer_auth(&viewer)
                .send()
                .unwrap()
                .status()
                .as_u16()
        })
        .collect();
    // GCRA allows a burst of the per-second rate, then one request per 1/rate seconds.
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(
        daemon.get("/api/v1/whoami").status(),
        200,
        "other keys are not affected"
    );
}

#[test]
fn connections_beyond_the_cap_wait_for_a_free_slot() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_with_api(dir.path(), "max_connections = 2");
    let addr = daemon.url.trim_start_matches("http://").to_owned();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let open = |addr: &str| {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        s
    };
    let answered = |s: &mut std::net::TcpStream| {
        let mut buf = [0_u8; 12];
        s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 200")
    };
    let mut first = open(&addr);
    let mut second = open(&addr);
    first.write_all(request).unwrap();
    second.write_all(request).unwrap();
    assert!(answered(&mut first) && answered(&mut second));
    let mut third = open(&addr);
    third.write_all(request).unwrap();
    assert!(
        !answered(&mut third),
        "a third connection waits while two are open"
    );
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert!(answered(&mut third), "and is served once one closes");
}

#[test]
fn the_audit_trail_is_mirrored_to_a_jsonl_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steward.toml");
    let text = std::fs::read_to_string(vizion_config()).unwrap();
    std::fs::write(
        &config,
        format!("[audit]\nmirror = \"audit.jsonl\"\n{text}"),
    )
    .unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    let admin = daemon.key.clone().unwrap();
    assert!(
        client(
            &daemon,
            &admin,
            &["keys", "create", "shipper", "--role", "viewer"]
        )
        .status
        .success()
    );
    let mirror = dir.path().join("audit.jsonl");
    support::eventually(
        Duration::from_secs(10),
        "the mirror to hold key.create",
        || std::fs::read_to_string(&mirror).is_ok_and(|t| t.contains("\"target\":\"shipper\"")),
    );
    let lines: Vec<Value> = std::fs::read_to_string(&mirror)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<i64> = lines.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        [1, 2, 3],
        "registry.sync, key.bootstrap, key.create, in order, once each"
    );
}
