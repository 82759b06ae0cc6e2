//! `steward up` as users run it: the real binary on loopback, a real SQLite file or a real
//! PostgreSQL database, real signals.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use steward_store_postgres::testing::TestDatabase;
use support::{Daemon, eventually, steward, vizion_config};

/// The seed's dependency list: twenty rows, one repeated, so nineteen distinct typed edges.
fn assert_vizion_graph(graph: &Value) {
    let nodes: BTreeSet<&str> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["key"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = [
        "agent_builder",
        "alert_reporting",
        "analytics",
        "maintenance",
        "marketing",
        "platform",
        "scheduling",
        "trading",
    ]
    .into();
    assert_eq!(nodes, expected);
    let edges: BTreeSet<(String, String, String)> = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().into(),
                e["to"].as_str().unwrap().into(),
                e["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(graph["edges"].as_array().unwrap().len(), 19);
    assert_eq!(edges.len(), 19);
    assert!(edges.contains(&(
        "platform".into(),
        "alert_reporting".into(),
        "read_alerts".into()
    )));
    let platform = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["key"] == "platform")
        .unwrap();
    assert_eq!(
        platform["services"],
        serde_json::json!(["n8n", "openclaw", "vaultwarden"])
    );
}

#[test]
fn serves_the_vizion_registry_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = vizion_config();
    let daemon = Daemon::start(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    assert!(
        data.join("steward.db").exists(),
        "the embedded database lives in the data directory"
    );

    assert_vizion_graph(&daemon.get_json("/api/v1/graph"));
    assert_eq!(daemon.get_json("/healthz")["status"], "ok");
    let ready = daemon.get_json("/readyz");
    assert_eq!(
        (ready["status"].as_str(), ready["store"].as_str()),
        (Some("ready"), Some("sqlite"))
    );

    let workspaces = daemon.get_json("/api/v1/workspaces");
    assert_eq!(workspaces["workspaces"].as_array().unwrap().len(), 8);
    let trading = daemon.get_json("/api/v1/workspaces/trading");
    assert_eq!(trading["workspace"]["repo"]["name"], "vizion-trading");
    assert_eq!(trading["workspace"]["labels"]["db_table_prefix"], "trade_");
    assert_eq!(
        trading["services"][0]["url"],
        "http://127.0.0.1:8000/health"
    );
    let services = daemon.get_json("/api/v1/services");
    let names: Vec<&str> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["n8n", "nn", "openclaw", "vaultwarden"]);

    let metrics = daemon.get("/metrics").text().unwrap();
    for needle in [
        r#"steward_http_requests_total{method="GET",route="/api/v1/graph",status="200"} 1"#,
        r#"steward_store_operation_duration_seconds_count{backend="sqlite",operation="sync_registry"} 1"#,
        r#"steward_registry_entities{kind="dependency"} 19"#,
        "steward_build_info",
    ] {
        assert!(
            metrics.contains(needle),
            "/metrics lacks {needle}:\n{metrics}"
        );
    }
}

#[test]
fn serves_the_vizion_registry_on_postgres_from_two_instances() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = vizion_config();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--database",
        db.url.as_str(),
    ];
    let first = Daemon::start(dir.path(), &args);
    let mut second = Daemon::start(dir.path(), &args);
    assert!(
        second.key.is_none(),
        "only the first start creates an admin key"
    );
    second.use_key(first.key.as_deref().unwrap());
    for daemon in [&first, &second] {
        assert_vizion_graph(&daemon.get_json("/api/v1/graph"));
        assert_eq!(daemon.get_json("/readyz")["store"], "postgres");
    }
    assert!(first.logs().contains("registry synced"));
    drop((first, second));
}

#[test]
fn readyz_reports_an_unreachable_database_without_leaking_its_errors() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = vizion_config();
    let url = db.url.clone();
    let daemon = Daemon::start(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--database",
            url.as_str(),
        ],
    );
    assert_eq!(daemon.get("/readyz").status(), 200);
    drop(db); // DROP DATABASE … WITH (FORCE): the daemon's connections die
    let response = daemon.get("/readyz");
    assert_eq!(response.status(), 503);
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"]["code"], "store_unavailable");
    let text = body.to_string();
    assert!(
        !text.contains("steward_test"),
        "store error text reached the client: {text}"
    );
    assert_eq!(
        daemon.get("/healthz").status(),
        200,
        "liveness does not depend on the store"
    );
}

#[test]
fn a_second_daemon_on_the_same_data_dir_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = vizion_config();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let first = Daemon::start(dir.path(), &args);
    let (status, stderr) = match Daemon::try_start(dir.path(), &args) {
        Err(failure) => failure,
        Ok(_) => panic!("a second daemon started on the same data directory"),
    };
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("is in use by another steward process"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("pid {}", first.pid())), "{stderr}");
    assert_eq!(
        first.get("/readyz").status(),
        200,
        "the first is unaffected"
    );
}

#[test]
fn a_killed_daemon_leaves_its_data_usable_by_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = vizion_config();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let mut first = Daemon::start(dir.path(), &args);
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(5));
    let mut second = Daemon::start(dir.path(), &args);
    second.use_key(first.key.as_deref().unwrap());
    assert_vizion_graph(&second.get_json("/api/v1/graph"));
    assert!(
        !second.logs().contains("registry changed"),
        "nothing to change after a restart"
    );
}

#[test]
fn sigterm_stops_the_daemon_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start_on_sqlite(dir.path(), &vizion_config(), &[]);
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(daemon.logs().contains("steward stopped"));
}

fn edited_vizion(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("steward.toml");
    std::fs::copy(vizion_config(), &path).unwrap();
    path
}

#[test]
fn reload_over_the_api_applies_a_valid_config_and_keeps_the_running_one_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = edited_vizion(dir.path());
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &[]);

    let text = std::fs::read_to_string(&config).unwrap();
    let extra = "\n[[workspaces]]\nkey = \"research\"\nowner = \"lab\"\n\n[[dependencies]]\nfrom = \"research\"\nto = \"analytics\"\ntype = \"read_metrics\"\n";
    std::fs::write(&config, format!("{text}{extra}")).unwrap();
    let response = daemon.post("/api/v1/config/reload");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().unwrap();
    assert_eq!(
        body["changes"],
        serde_json::json!([
            "+ workspace research",
            "+ dependency research -[read_metrics]-> analytics"
        ])
    );
    assert_eq!(
        daemon.get_json("/api/v1/graph")["nodes"]
            .as_array()
            .unwrap()
            .len(),
        9
    );

    std::fs::write(
        &config,
        format!("{text}\n[[workspaces]]\nkey = \"research\"\nownr = \"lab\"\n"),
    )
    .unwrap();
    let response = daemon.post("/api/v1/config/reload");
    assert_eq!(response.status(), 422);
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"]["code"], "invalid_config");
    // Warnings (the example's programs are not on this host) come along with the error.
    let details = body["error"]["details"].as_array().unwrap();
    let errors: Vec<&str> = details
        .iter()
        .filter_map(Value::as_str)
        .filter(|d| d.contains(": error: "))
        .collect();
    assert!(
        errors.len() == 1
            && errors[0].contains("steward.toml:")
            && errors[0].contains("unknown key `workspaces[8].ownr`: did you mean `owner`?"),
        "{details:?}"
    );
    assert_eq!(
        daemon.get_json("/api/v1/graph")["nodes"]
            .as_array()
            .unwrap()
            .len(),
        9,
        "the running registry stays"
    );
}

#[test]
fn sighup_reloads_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = edited_vizion(dir.path());
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "\nkey = \"maintenance\"\n",
            "\nkey = \"maintenance\"\nowner = \"ops\"\n",
        ),
    )
    .unwrap();
    daemon.signal("HUP");
    eventually(Duration::from_secs(10), "the reloaded owner", || {
        daemon.get_json("/api/v1/workspaces/maintenance")["workspace"]["owner"] == "ops"
    });
    eventually(Duration::from_secs(10), "the reload logged", || {
        daemon.logs().contains("config reloaded")
    });
}

#[test]
fn errors_are_json_with_stable_codes() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &vizion_config(), &[]);
    for (method_get, path, status, code) in [
        (true, "/nope", 404, "not_found"),
        (true, "/api/v1/workspaces/ghost", 404, "not_found"),
        (true, "/api/v1/config/reload", 405, "method_not_allowed"),
    ] {
        let response = if method_get {
            daemon.get(path)
        } else {
            daemon.post(path)
        };
        assert_eq!(response.status(), status, "{path}");
        let body: Value = response.json().unwrap();
        assert_eq!(body["error"]["code"], code, "{path}");
        assert!(body["error"]["message"].is_string());
    }
}

#[test]
fn an_invalid_config_stops_up_with_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steward.toml");
    std::fs::write(
        &config,
        "[[workspaces]]\nkey = \"a\"\nstatus = \"running\"\n",
    )
    .unwrap();
    let (status, stderr) =
        match Daemon::try_start(dir.path(), &["--config", config.to_str().unwrap()]) {
            Err(failure) => failure,
            Ok(_) => panic!("started on an invalid config"),
        };
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("steward.toml:3:10: error: `workspaces[0].status`: `running` is not one of: active, paused, retired"), "{stderr}");
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let config = vizion_config();
    let data = dir.path().join("data");
    let output = steward()
        .args([
            "up",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &addr,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &vizion_config(), &["--log-format", "json"]);
    let logs = daemon.logs();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "steward is up" && l["startup_ms"].is_u64()),
        "{logs}"
    );
}

#[test]
fn environment_overrides_the_file_and_flags_override_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steward.toml");
    std::fs::write(
        &config,
        "[storage]\ndata_dir = \"from-file\"\n\n[[workspaces]]\nkey = \"a\"\n",
    )
    .unwrap();
    let env_dir = dir.path().join("from-env");
    let output = steward()
        .args(["migrate", "--config", config.to_str().unwrap()])
        .env("STEWARD_DATA_DIR", &env_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(env_dir.join("steward.db").exists());
    assert!(!dir.path().join("from-file").exists());
    let flag_dir = dir.path().join("from-flag");
    let output = steward()
        .args([
            "migrate",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            flag_dir.to_str().unwrap(),
        ])
        .env("STEWARD_DATA_DIR", &env_dir)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(flag_dir.join("steward.db").exists());
}

#[test]
fn migrate_applies_once_then_reports_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = || {
        steward()
            .args(["migrate", "--data-dir", data.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success());
    assert_eq!(
        String::from_utf8_lossy(&first.stdout).trim(),
        "applied 0001 registry\napplied 0002 keys and audit\napplied 0003 audit origin\napplied 0004 tasks\napplied 0005 task write path\napplied 0006 schedules\napplied 0007 health\napplied 0008 probe certificates\napplied 0009 alerts\napplied 0010 notifications\napplied 0011 event log\napplied 0012 sessions\napplied 0013 task counts\napplied 0014 nodes\napplied 0015 task nodes\napplied 0016 pipelines"
    );
    let second = run();
    assert!(String::from_utf8_lossy(&second.stdout).contains("up to date (schema version 16)"));
}

#[test]
fn migrate_on_postgres_reports_without_the_password() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let url = db.url.replace("postgres@", "postgres:sekrit@");
    let output = steward()
        .args(["migrate", "--database", url.as_str()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let again = steward()
        .args(["migrate", "--database", url.as_str()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains("up to date"), "{stdout}");
    assert!(!stdout.contains("sekrit"), "{stdout}");
}
