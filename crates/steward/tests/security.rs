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
fn past_the_cap_newcomers_wait_for_keyed_connections_and_take_anonymous_ones_elsewhere() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_with_api(dir.path(), "max_connections = 2");
    let key = daemon.key.clone().unwrap();
    let addr = daemon.url.trim_start_matches("http://").to_owned();
    let keyed =
        format!("GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n");
    let health = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
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
    // Two connections that showed a valid key hold every place: a third waits its turn.
    let mut first = open(&addr);
    let mut second = open(&addr);
    first.write_all(keyed.as_bytes()).unwrap();
    second.write_all(keyed.as_bytes()).unwrap();
    assert!(answered(&mut first) && answered(&mut second));
    let mut third = open(&addr);
    third.write_all(health.as_bytes()).unwrap();
    assert!(
        !answered(&mut third),
        "a third connection waits while two keyed ones are open"
    );
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert!(answered(&mut third), "and is served once one closes");

    // Now an anonymous connection holds a place: one more from the same address is refused at
    // once rather than left waiting.
    let mut fourth = open(&addr);
    fourth.write_all(health.as_bytes()).unwrap();
    let mut buf = [0_u8; 64];
    fourth
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert!(
        matches!(fourth.read(&mut buf), Ok(0) | Err(_)),
        "closed, not served"
    );
}

/// A connection to `server` from the loopback address `from` (any of 127.0.0.0/8).
async fn connect_from(
    from: std::net::IpAddr,
    server: std::net::SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::new(from, 0))?;
    socket.connect(server).await
}

/// One attacker connection from `from`: sends a request line, then a header line every
/// second, and connects again at once whenever the server closes it, until `stop`.
async fn slowloris(
    from: std::net::IpAddr,
    server: std::net::SocketAddr,
    stop: tokio_util::sync::CancellationToken,
) {
    use tokio::io::AsyncWriteExt;
    while !stop.is_cancelled() {
        if let Ok(mut stream) = connect_from(from, server).await {
            let mut line: &[u8] = b"GET /healthz HTTP/1.1\r\n";
            while stream.write_all(line).await.is_ok() {
                line = b"X-Slow: y\r\n";
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `request` from `from` on a fresh connection; the status line, within a second.
async fn answer_within_a_second(
    from: std::net::IpAddr,
    server: std::net::SocketAddr,
    request: &str,
) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = connect_from(from, server)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0_u8; 256];
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned())
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .map_err(|_| "no answer within a second".to_owned())?
}

#[test]
fn a_slowloris_flood_of_1100_connections_never_keeps_out_health_or_a_keyed_caller() {
    let dir = tempfile::tempdir().unwrap();
    // The default caps: 1,024 connections, 256 per address.
    let daemon = start(dir.path());
    let key = daemon.key.clone().unwrap();
    let server: std::net::SocketAddr = daemon.url.trim_start_matches("http://").parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        // Five addresses, 220 connections each: every one under its share, together past the cap.
        let attackers: Vec<_> = (2..=6)
            .flat_map(|last| std::iter::repeat_n(std::net::IpAddr::from([127, 0, 0, last]), 220))
            .map(|from| tokio::spawn(slowloris(from, server, stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let health = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let keyed = format!(
            "GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {key}\r\n\r\n"
        );
        let checker = std::net::IpAddr::from([127, 0, 0, 1]);
        let operator = std::net::IpAddr::from([127, 0, 0, 7]);
        let until = std::time::Instant::now() + Duration::from_secs(12);
        let mut rounds = 0;
        while std::time::Instant::now() < until {
            let (h, k) = tokio::join!(
                answer_within_a_second(checker, server, health),
                answer_within_a_second(operator, server, &keyed)
            );
            assert_eq!(h.as_deref(), Ok("HTTP/1.1 200 OK"), "/healthz, round {rounds}");
            assert_eq!(k.as_deref(), Ok("HTTP/1.1 200 OK"), "whoami, round {rounds}");
            rounds += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        // The flood did fill the cap: places were taken from it for the callers above.
        let metrics = format!(
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {key}\r\n\r\n"
        );
        let _ = answer_within_a_second(operator, server, &metrics).await;
        stop.cancel();
        for attacker in attackers {
            attacker.await.unwrap();
        }
    });
    let metrics = daemon.get("/metrics").text().unwrap();
    let evicted = metrics
        .lines()
        .find_map(|l| l.strip_prefix("steward_http_connections_evicted_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(evicted > 0.0, "the flood never filled the cap:\n{metrics}");
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

/// A key and its Argon2 PHC string for `STEWARD_ADMIN_KEY_HASH`, with light parameters so a
/// debug build verifies it in milliseconds.
fn recovery_key() -> (String, String) {
    use argon2::PasswordHasher;
    let key = steward_core::auth::format_key(&[7; 32]);
    let salt = argon2::password_hash::SaltString::encode_b64(b"recovery key salt").unwrap();
    let params = argon2::Params::new(1024, 1, 1, None).unwrap();
    let phc = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(key.as_bytes(), &salt)
        .unwrap()
        .to_string();
    (key, phc)
}

/// GET `path` with `key` from the loopback address `from`; the status.
async fn status_from(
    from: std::net::IpAddr,
    server: std::net::SocketAddr,
    path: &str,
    key: &str,
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = connect_from(from, server).await else {
        return 0;
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {key}\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let mut buf = [0_u8; 12];
    match stream.read_exact(&mut buf).await {
        Ok(_) => std::str::from_utf8(&buf[9..12])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        Err(_) => 0,
    }
}

#[test]
fn the_recovery_key_is_never_refused_for_other_callers_failures() {
    let dir = tempfile::tempdir().unwrap();
    let (key, phc) = recovery_key();
    let config = vizion_config();
    let data = dir.path().join("data");
    let daemon = Daemon::try_start_with_env(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[("STEWARD_ADMIN_KEY_HASH", phc.as_str())],
    )
    .unwrap();
    let server: std::net::SocketAddr = daemon.url.trim_start_matches("http://").parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let clean = std::net::IpAddr::from([127, 0, 0, 1]);
        // An address blocked by guesses made from it (by someone sharing it).
        let blocked = std::net::IpAddr::from([127, 0, 0, 2]);
        let guess = steward_core::auth::format_key(&[1; 32]);
        let mut statuses = Vec::new();
        for _ in 0..11 {
            statuses.push(status_from(blocked, server, "/api/v1/whoami", &guess).await);
        }
        assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
        let stop = tokio_util::sync::CancellationToken::new();
        // Guesses from 500 addresses, 64 at a time: every Argon2 slot stays busy, and each
        // address is soon blocked for failing.
        let flood: Vec<_> = (0..64_u16)
            .map(|worker| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut n = worker;
                    while !stop.is_cancelled() {
                        let address = std::net::IpAddr::from([
                            127,
                            0,
                            1 + (n / 250) as u8,
                            1 + (n % 250) as u8,
                        ]);
                        let guess = steward_core::auth::format_key(&[(n % 251) as u8; 32]);
                        status_from(address, server, "/api/v1/whoami", &guess).await;
                        n = (n + 64) % 500;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
        for attempt in 0..6 {
            assert_eq!(
                status_from(clean, server, "/api/v1/whoami", &key).await,
                200,
                "clean, try {attempt}"
            );
            assert_eq!(
                status_from(blocked, server, "/api/v1/whoami", &key).await,
                200,
                "blocked, try {attempt}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        stop.cancel();
        for task in flood {
            task.await.unwrap();
        }
    });
}
