//! A hub and three real agents (`steward agent`, separate data directories) on loopback: each
//! registers with a join token made by the CLI, reports the vhosts and certificates of its own
//! directory, and the hub follows: a vhost removed is deleted from the node, an agent killed
//! with SIGKILL goes `late` then `down` and raises `node_down`, comes back `up` when restarted
//! (resolving it), a service its node does not report raises `node_drift`, and removing a node
//! stops its agent.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;
use steward_store_postgres::testing::TestDatabase;
use support::{Daemon, eventually, steward};

const HUB_CONFIG: &str = r#"
[[workspaces]]
key = "edge"

[[nodes]]
id = "vps-01"
hostname = "vps-01"

[[nodes]]
id = "vps-02"
hostname = "vps-02"

[[nodes]]
id = "vps-03"
hostname = "vps-03"

[[services]]
name = "shop"
workspace = "edge"
url = "https://shop.example.com/"
node = "vps-01"

[[services]]
name = "ghost"
workspace = "edge"
node = "vps-01"

[[services]]
name = "api"
workspace = "edge"
url = "https://api.example.com/"
node = "vps-02"

[fleet]
down_after = 4
grace = "1s"

[alerting]
rule_interval = "1s"

[[alerting.rules]]
name = "NodeDown"
when = "node_down"
severity = "critical"

[[alerting.rules]]
name = "NodeLate"
when = "node_late"
severity = "warning"

[[alerting.rules]]
name = "NodeDrift"
when = "node_drift"
severity = "warning"
"#;

fn vhost(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| {
            format!(
                "server {{\n  listen 443 ssl;\n  server_name {name};\n  location / {{ proxy_pass http://127.0.0.1:8080; }}\n  location /api/ {{ proxy_pass http://127.0.0.1:9000; }}\n}}\n"
            )
        })
        .collect()
}

/// One node's agent: its directory (data, config, vhosts), and the process while it runs.
struct Agent {
    node: String,
    dir: PathBuf,
    hub: String,
    child: Option<Child>,
}

impl Agent {
    fn new(root: &Path, node: &str, hub: &str, names: &[&str]) -> Agent {
        let dir = root.join(node);
        std::fs::create_dir_all(dir.join("nginx")).unwrap();
        std::fs::write(dir.join("nginx/site.conf"), vhost(names)).unwrap();
        let mut agent = Agent {
            node: node.into(),
            dir,
            hub: String::new(),
            child: None,
        };
        agent.point_to(hub);
        agent
    }

    /// Makes `hub` the one its config names (taken at its next start).
    fn point_to(&mut self, hub: &str) {
        self.configure(hub, "docker = false");
    }

    /// Writes its config with `work` appended: its `[work]` and `[[executors]]`.
    fn configure_work(&mut self, hub: &str, work: &str) {
        self.configure(hub, "docker = false");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("agent.toml"))
            .unwrap();
        file.write_all(work.as_bytes()).unwrap();
    }

    /// Writes its config: `hub`, a one-second interval, its own vhosts, and `docker` (the
    /// line saying whether and where it reads containers).
    fn configure(&mut self, hub: &str, docker: &str) {
        std::fs::write(
            self.dir.join("agent.toml"),
            format!(
                "hub = \"{hub}\"\ninterval = \"1s\"\n[inventory]\nnginx = [\"nginx/*.conf\"]\n{docker}\nmounts = [\"/\"]\n"
            ),
        )
        .unwrap();
        self.hub = hub.into();
    }

    fn register(&self, token: &str) {
        let mut child = steward()
            .args(["agent", "register", "--token", "-", "--hub", &self.hub])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .arg("--config")
            .arg(self.dir.join("agent.toml"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(token.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "register {}: {}",
            self.node,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(&mut self) {
        let log = std::fs::File::create(self.dir.join("agent.log")).unwrap();
        let child = steward()
            .args(["agent", "start", "--log-level", "info"])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .arg("--config")
            .arg(self.dir.join("agent.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            child.wait().unwrap();
        }
    }

    /// Stops it the clean way (SIGTERM) and waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            )
            .unwrap();
            let status = child.wait().unwrap();
            assert!(status.success(), "{status}: {}", self.log());
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

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

fn status_of(daemon: &Daemon, node: &str) -> String {
    let nodes = daemon.get_json("/api/v1/nodes");
    nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == node)
        .map(|n| n["status"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn firing(daemon: &Daemon, alertname: &str, node: &str) -> bool {
    let alerts = daemon.get_json("/api/v1/alerts?state=firing");
    alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["labels"]["alertname"] == alertname && a["labels"]["node"] == node)
}

fn domains_of(daemon: &Daemon, node: &str) -> Vec<String> {
    let shown: Value = daemon.get_json(&format!("/api/v1/nodes/{node}"));
    shown["inventory"]["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn three_agents_report_go_down_come_back_and_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steward.toml");
    std::fs::write(&config, HUB_CONFIG).unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &[]);

    let mut agents: Vec<Agent> = [
        ("vps-01", vec!["shop.example.com", "old.example.com"]),
        ("vps-02", vec!["api.example.com"]),
        ("vps-03", vec!["www.example.com"]),
    ]
    .into_iter()
    .map(|(node, names)| Agent::new(dir.path(), node, &daemon.url, &names))
    .collect();
    for agent in &mut agents {
        let token = cli(
            &daemon,
            &["nodes", "token", "create", "--node", &agent.node],
        );
        agent.register(token.trim());
        // A token registers once.
        let again = steward()
            .args([
                "agent",
                "register",
                "--token",
                token.trim(),
                "--hub",
                &daemon.url,
            ])
            .arg("--data-dir")
            .arg(agent.dir.join("data-again"))
            .output()
            .unwrap();
        assert!(!again.status.success(), "a spent token is refused");
        agent.start();
    }
    for agent in &agents {
        eventually(Duration::from_secs(20), "every node up", || {
            status_of(&daemon, &agent.node) == "up"
        });
    }
    eventually(Duration::from_secs(10), "vps-01's vhosts reported", || {
        domains_of(&daemon, "vps-01") == ["old.example.com", "shop.example.com"]
    });
    let shown = daemon.get_json("/api/v1/nodes/vps-01");
    assert_eq!(
        shown["inventory"]["containers"],
        Value::Null,
        "docker = false"
    );
    assert!(shown["inventory"]["facts"]["cpus"].as_u64().unwrap() >= 1);
    assert_eq!(shown["drift"][0]["service"], "ghost", "{shown}");

    // A vhost removed on the node is deleted on the hub.
    std::fs::write(
        agents[0].dir.join("nginx/site.conf"),
        vhost(&["shop.example.com"]),
    )
    .unwrap();
    eventually(Duration::from_secs(10), "the stale domain deleted", || {
        domains_of(&daemon, "vps-01") == ["shop.example.com"]
    });
    eventually(Duration::from_secs(10), "drift raised", || {
        firing(&daemon, "NodeDrift", "vps-01")
    });

    // An agent killed: late, then down with an alert; restarted: up, the alert resolved.
    agents[1].kill();
    eventually(Duration::from_secs(10), "vps-02 late", || {
        status_of(&daemon, "vps-02") == "late"
    });
    eventually(Duration::from_secs(15), "vps-02 down", || {
        status_of(&daemon, "vps-02") == "down"
    });
    eventually(Duration::from_secs(10), "node_down fires", || {
        firing(&daemon, "NodeDown", "vps-02")
    });
    assert_eq!(status_of(&daemon, "vps-01"), "up", "the others stay up");
    let services = daemon.get_json("/api/v1/services");
    let api = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "api")
        .unwrap()
        .clone();
    assert_eq!(api["state"], "impacted", "a down node's service: {api}");
    assert_eq!(api["impacted_by"], serde_json::json!(["node:vps-02"]));
    agents[1].start();
    eventually(Duration::from_secs(15), "vps-02 up again", || {
        status_of(&daemon, "vps-02") == "up"
    });
    eventually(Duration::from_secs(10), "node_down resolves", || {
        !firing(&daemon, "NodeDown", "vps-02")
    });
    let changes = daemon.get_json("/api/v1/audit?action=node.register");
    assert_eq!(changes["events"].as_array().unwrap().len(), 3);

    // Removing a node locks its agent out: it stops, saying why.
    cli(&daemon, &["nodes", "rm", "vps-03"]);
    let mut third = agents.pop().unwrap();
    let mut child = third.child.take().unwrap();
    let mut exited = None;
    eventually(
        Duration::from_secs(15),
        "the removed node's agent stops",
        || {
            exited = child.try_wait().unwrap();
            exited.is_some()
        },
    );
    assert_eq!(exited.unwrap().code(), Some(3), "{}", third.log());
    assert!(third.log().contains("register it again"), "{}", third.log());
    assert_eq!(daemon.get("/api/v1/nodes/vps-03").status(), 404);
}

/// The origin sequence numbers and actions of the events merged from `node`, in order.
fn node_audit(daemon: &Daemon, node: &str) -> Vec<(i64, String)> {
    let page = daemon.get_json(&format!("/api/v1/audit?node={node}&limit=100"));
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["origin"]["node"], node, "{e}");
            (
                e["origin"]["seq"].as_i64().unwrap(),
                e["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn an_agents_audit_reaches_the_hub_once_across_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steward.toml");
    std::fs::write(&config, HUB_CONFIG).unwrap();
    // The hub comes back on the same address, the one the agent knows.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &["--listen", &listen]);
    let key = daemon.key.clone().unwrap();

    let mut agent = Agent::new(dir.path(), "vps-01", &daemon.url, &["shop.example.com"]);
    let token = cli(&daemon, &["nodes", "token", "create", "--node", "vps-01"]);
    agent.register(token.trim());
    agent.start();
    eventually(
        Duration::from_secs(20),
        "register and start shipped",
        || node_audit(&daemon, "vps-01").len() == 2,
    );
    let journal = agent.dir.join("data/audit.jsonl");
    assert_eq!(
        std::fs::metadata(&journal).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The hub goes away; the agent is stopped and started again meanwhile.
    drop(daemon);
    std::thread::sleep(Duration::from_secs(3));
    agent.stop();
    agent.start();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap().lines().count(),
        4,
        "register, start, stop, start recorded locally"
    );

    let mut daemon = Daemon::start_on_sqlite(dir.path(), &config, &["--listen", &listen]);
    daemon.use_key(&key);
    let expected: Vec<(i64, String)> =
        ["agent.register", "agent.start", "agent.stop", "agent.start"]
            .iter()
            .enumerate()
            .map(|(i, a)| (i as i64 + 1, (*a).to_owned()))
            .collect();
    eventually(
        Duration::from_secs(20),
        "the outage's events shipped",
        || node_audit(&daemon, "vps-01").len() >= 4,
    );
    // A few more beats: nothing is merged twice.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(node_audit(&daemon, "vps-01"), expected);
    let verified = daemon.get_json("/api/v1/audit/verify");
    assert_eq!(verified["ok"], true, "{verified}");
    let listed = cli(&daemon, &["audit", "ls", "--node", "vps-01"]);
    assert_eq!(listed.matches("vps-01#").count(), 4, "{listed}");
    assert!(listed.contains("agent.stop"), "{listed}");
    assert_eq!(
        std::fs::read_to_string(agent.dir.join("data/audit.shipped"))
            .unwrap()
            .trim(),
        "4"
    );
}

#[test]
fn on_postgres_two_hubs_share_the_fleet_and_agents_switch_between_them() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steward.toml");
    std::fs::write(&config, HUB_CONFIG).unwrap();
    let mut first = Some(Daemon::start_on_postgres(
        &dir.path().join("a"),
        &config,
        &db,
    ));
    let a = first.as_ref().unwrap();
    let mut b = Daemon::start_on_postgres(&dir.path().join("b"), &config, &db);
    b.use_key(a.key.as_deref().unwrap());

    let hubs = [a.url.clone(), b.url.clone(), a.url.clone()];
    let mut agents: Vec<Agent> = [
        ("vps-01", vec!["shop.example.com", "old.example.com"]),
        ("vps-02", vec!["api.example.com"]),
        ("vps-03", vec!["www.example.com"]),
    ]
    .into_iter()
    .zip(&hubs)
    .map(|((node, names), hub)| Agent::new(dir.path(), node, hub, &names))
    .collect();
    for agent in &mut agents {
        let token = cli(a, &["nodes", "token", "create", "--node", &agent.node]);
        agent.register(token.trim());
        agent.start();
    }
    for agent in &agents {
        for hub in [a, &b] {
            eventually(
                Duration::from_secs(20),
                "every node up on both hubs",
                || status_of(hub, &agent.node) == "up",
            );
        }
    }
    eventually(
        Duration::from_secs(10),
        "vps-01's vhosts seen from b",
        || domains_of(&b, "vps-01") == ["old.example.com", "shop.example.com"],
    );

    // Hub a stops; its agents switch to b and the fleet goes on.
    drop(first.take());
    for i in [0, 2] {
        let agent = &mut agents[i];
        agent.kill();
        agent.point_to(&b.url);
        agent.start();
    }
    std::fs::write(
        agents[0].dir.join("nginx/site.conf"),
        vhost(&["shop.example.com"]),
    )
    .unwrap();
    eventually(
        Duration::from_secs(10),
        "the stale domain deleted through b",
        || domains_of(&b, "vps-01") == ["shop.example.com"],
    );
    for agent in &agents {
        eventually(Duration::from_secs(10), "every node up on b", || {
            status_of(&b, &agent.node) == "up"
        });
    }
    agents[1].kill();
    eventually(Duration::from_secs(15), "vps-02 down", || {
        status_of(&b, "vps-02") == "down"
    });
    eventually(Duration::from_secs(10), "node_down fires", || {
        firing(&b, "NodeDown", "vps-02")
    });
    agents[1].start();
    eventually(Duration::from_secs(15), "vps-02 up again", || {
        status_of(&b, "vps-02") == "up"
    });
    eventually(Duration::from_secs(10), "node_down resolves", || {
        !firing(&b, "NodeDown", "vps-02")
    });
}

/// The test Docker Engine's socket (`scripts/docker-test-env.sh`), or `None` after saying why;
/// under `CI=true` its absence fails the test.
fn engine_socket() -> Option<PathBuf> {
    if let Some(socket) = std::env::var_os("STEWARD_TEST_DOCKER_SOCKET") {
        return Some(PathBuf::from(socket));
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "STEWARD_TEST_DOCKER_SOCKET is unset under CI: run `eval \"$(scripts/docker-test-env.sh)\"`"
    );
    eprintln!("skipping: STEWARD_TEST_DOCKER_SOCKET is unset (scripts/docker-test-env.sh sets it)");
    None
}

/// Runs `docker -H unix://SOCKET ARGS`; answers whether it succeeded.
fn docker(socket: &Path, args: &[&str]) -> bool {
    std::process::Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Removes the test's containers, whatever happened.
struct Containers<'a> {
    socket: &'a Path,
    names: Vec<String>,
}

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        for name in &self.names {
            docker(self.socket, &["rm", "-f", name]);
        }
    }
}

fn containers_of(daemon: &Daemon, node: &str) -> Vec<(String, String)> {
    let shown = daemon.get_json(&format!("/api/v1/nodes/{node}"));
    shown["inventory"]["containers"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap().to_owned(),
                        c["state"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_hub_follows_containers_started_stopped_and_removed_on_a_node() {
    let Some(socket) = engine_socket() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steward.toml");
    std::fs::write(&config, HUB_CONFIG).unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    let mut agent = Agent::new(dir.path(), "vps-02", &daemon.url, &["api.example.com"]);
    agent.configure(
        &daemon.url,
        &format!("docker_socket = \"{}\"", socket.display()),
    );
    let token = cli(&daemon, &["nodes", "token", "create", "--node", "vps-02"]);
    agent.register(token.trim());
    agent.start();

    let name = format!("steward-fleet-{}", std::process::id());
    let containers = Containers {
        socket: &socket,
        names: vec![name.clone()],
    };
    assert!(docker(
        &socket,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            &name,
            "--label",
            "steward-test=fleet",
            "steward-test/busybox:latest",
            "sleep",
            "3600",
        ],
    ));
    let ours = |daemon: &Daemon| {
        containers_of(daemon, "vps-02")
            .into_iter()
            .find(|(n, _)| n == &name)
            .map(|(_, state)| state)
    };
    eventually(
        Duration::from_secs(20),
        "the container running on the hub",
        || ours(&daemon).as_deref() == Some("running"),
    );
    assert!(docker(&socket, &["stop", "-t", "0", &name]));
    eventually(
        Duration::from_secs(20),
        "the container exited on the hub",
        || ours(&daemon).as_deref() == Some("exited"),
    );
    assert!(docker(&socket, &["rm", &name]));
    eventually(
        Duration::from_secs(20),
        "the container gone from the hub",
        || ours(&daemon).is_none(),
    );
    drop(containers);
    let changes = daemon.get_json("/api/v1/nodes/vps-02");
    assert!(
        changes["inventory"]["containers"].is_array(),
        "{}",
        agent.log()
    );
}

/// The hub's tasks by id: `(status, node, error)`.
fn tasks_of(daemon: &Daemon) -> std::collections::BTreeMap<i64, (String, String, String)> {
    let page = daemon.get_json("/api/v1/tasks?limit=500");
    page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_i64().unwrap(),
                (
                    t["status"].as_str().unwrap().to_owned(),
                    t["node"].as_str().unwrap_or_default().to_owned(),
                    t["error"].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect()
}

/// How long the hub is away while its agents run pinned tasks.
const OUTAGE: Duration = Duration::from_secs(60);

#[test]
fn pinned_tasks_run_on_their_nodes_and_complete_once_across_a_hub_outage() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steward.toml");
    std::fs::write(
        &config,
        format!(
            "{HUB_CONFIG}
[[executors]]
name = \"stamp\"
type = \"shell\"
command = \"true\"

[[queues]]
name = \"remote\"
node = \"vps-01\"
kinds = [\"stamp\", \"wipe\"]
lease = \"3s\"

[[queues]]
name = \"shared\"
kinds = [\"stamp\"]
lease = \"3s\"
"
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &["--listen", &listen]);
    let key = daemon.key.clone().unwrap();

    // Each node's `stamp` writes the task's id in the node's own directory: what the hub
    // names is run as the node declares it.
    let work = "[work]\nconcurrency = 2\n\n[[executors]]\nname = \"stamp\"\ntype = \"shell\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"echo $STEWARD_TASK_ID >> ran.log; sleep 2\"]\nworkdir = \".\"\n";
    let mut agents: Vec<Agent> = ["vps-01", "vps-02", "vps-03"]
        .iter()
        .map(|node| {
            let mut agent = Agent::new(dir.path(), node, &daemon.url, &[]);
            agent.configure_work(&daemon.url, work);
            let token = cli(&daemon, &["nodes", "token", "create", "--node", node]);
            agent.register(token.trim());
            agent.start();
            agent
        })
        .collect();

    let mut expected: std::collections::BTreeMap<i64, &str> = std::collections::BTreeMap::new();
    let enqueue = |args: &[&str]| -> i64 {
        let out = cli(
            &daemon,
            &[&["tasks", "enqueue"], args, &["--output", "json"]].concat(),
        );
        let answer: Value = serde_json::from_str(&out).unwrap();
        answer["task"]["id"].as_i64().unwrap()
    };
    for _ in 0..8 {
        expected.insert(enqueue(&["remote", "stamp"]), "vps-01");
        expected.insert(enqueue(&["shared", "stamp", "--node", "vps-02"]), "vps-02");
        expected.insert(enqueue(&["shared", "stamp", "--node", "vps-03"]), "vps-03");
    }
    // A kind the node does not declare is refused by the node, for good, saying why.
    let refused = enqueue(&["remote", "wipe"]);
    eventually(
        Duration::from_secs(30),
        "the undeclared kind refused",
        || tasks_of(&daemon)[&refused].0 == "dead",
    );
    let error = tasks_of(&daemon)[&refused].2.clone();
    assert!(
        error.contains("executor `wipe` is not allowed on node vps-01"),
        "{error}"
    );
    // The hub goes away while nodes are in the middle of their tasks.
    eventually(
        Duration::from_secs(30),
        "some tasks done, some running",
        || {
            let tasks = tasks_of(&daemon);
            let count = |wanted: &str| tasks.values().filter(|(s, ..)| s == wanted).count();
            count("succeeded") >= 6 && count("running") >= 2
        },
    );
    drop(daemon);
    std::thread::sleep(OUTAGE);

    let mut daemon = Daemon::start_on_sqlite(dir.path(), &config, &["--listen", &listen]);
    daemon.use_key(&key);
    eventually(Duration::from_secs(60), "every pinned task done", || {
        let tasks = tasks_of(&daemon);
        expected.keys().all(|id| tasks[id].0 == "succeeded")
    });
    let tasks = tasks_of(&daemon);
    for (id, node) in &expected {
        assert_eq!(tasks[id].1, *node, "task {id} is pinned to {node}");
        let detail = daemon.get_json(&format!("/api/v1/tasks/{id}"));
        let runs: Vec<&str> = detail["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].as_str().unwrap())
            .collect();
        assert_eq!(runs, ["succeeded"], "task {id} completed once: {detail}");
    }
    assert!(
        agents
            .iter()
            .any(|a| a.log().contains("results not delivered; keeping them")),
        "some attempt ended while the hub was away"
    );
    // Each node ran exactly its own tasks, each once.
    for agent in &agents {
        let ran = std::fs::read_to_string(agent.dir.join("ran.log")).unwrap_or_default();
        let mut ids: Vec<i64> = ran.lines().map(|l| l.trim().parse().unwrap()).collect();
        ids.sort_unstable();
        let mine: Vec<i64> = expected
            .iter()
            .filter(|(_, node)| **node == agent.node)
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(
            ids,
            mine,
            "{} ran its tasks once each: {}",
            agent.node,
            agent.log()
        );
    }
    // What each node ran is in its audit, merged once, and the chain verifies.
    eventually(
        Duration::from_secs(20),
        "the nodes' task audit merged",
        || {
            agents.iter().all(|agent| {
                let ran = node_audit(&daemon, &agent.node)
                    .iter()
                    .filter(|(_, action)| action == "task.run")
                    .count();
                let wanted = expected.values().filter(|n| **n == agent.node).count()
                    + usize::from(agent.node == "vps-01");
                ran == wanted
            })
        },
    );
    let verified = daemon.get_json("/api/v1/audit/verify");
    assert_eq!(verified["ok"], true, "{verified}");
    for agent in &mut agents {
        agent.stop();
    }
}

/// A loopback HTTP server answering 200 while `healthy` holds, 503 otherwise.
fn health_target(healthy: std::sync::Arc<std::sync::atomic::AtomicBool>) -> u16 {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 2048];
            let _ = stream.read(&mut request);
            let status = if healthy.load(std::sync::atomic::Ordering::SeqCst) {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                    .as_bytes(),
            );
        }
    });
    port
}

fn check_state(daemon: &Daemon, check: &str) -> String {
    daemon.get_json(&format!("/api/v1/checks/{check}"))["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn result_times(daemon: &Daemon, check: &str) -> Vec<i64> {
    daemon.get_json(&format!("/api/v1/checks/{check}/results?limit=1000"))["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["at_ms"].as_i64().unwrap())
        .collect()
}

#[test]
fn a_nodes_checks_are_probed_from_the_node_and_judged_on_the_hub() {
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let target = health_target(std::sync::Arc::clone(&healthy));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steward.toml");
    std::fs::write(
        &config,
        format!(
            "{HUB_CONFIG}
[[checks]]
name = \"shop-local\"
service = \"shop\"
type = \"http\"
url = \"http://127.0.0.1:{target}/health\"
interval = \"1s\"
failures_before_down = 1
successes_before_up = 1
"
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &["--listen", &listen]);
    let key = daemon.key.clone().unwrap();
    // Nobody probes it until the node's agent does: the hub leaves it to the node.
    std::thread::sleep(Duration::from_secs(2));
    assert!(result_times(&daemon, "shop-local").is_empty());

    let mut agent = Agent::new(dir.path(), "vps-01", &daemon.url, &["shop.example.com"]);
    let token = cli(&daemon, &["nodes", "token", "create", "--node", "vps-01"]);
    agent.register(token.trim());
    agent.start();
    eventually(
        Duration::from_secs(20),
        "the check up from the node",
        || check_state(&daemon, "shop-local") == "up",
    );
    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    eventually(Duration::from_secs(20), "the check down", || {
        check_state(&daemon, "shop-local") == "down"
    });
    let services = daemon.get_json("/api/v1/services");
    let shop = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "shop")
        .unwrap();
    assert_eq!(
        shop["state"], "down",
        "judged from the node's results: {shop}"
    );
    let changes = daemon.get_json("/api/v1/checks/shop-local/transitions");
    assert!(
        changes.to_string().contains("[STATUS] (503) < 300"),
        "the reason resolved on the node: {changes}"
    );

    // The hub away: the node keeps probing; its results arrive once the hub is back.
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    drop(daemon);
    let away_from = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    std::thread::sleep(Duration::from_secs(4));
    let away_until = away_from + 4_000;
    let mut daemon = Daemon::start_on_sqlite(dir.path(), &config, &["--listen", &listen]);
    daemon.use_key(&key);
    eventually(
        Duration::from_secs(20),
        "the outage's results delivered",
        || {
            result_times(&daemon, "shop-local")
                .iter()
                .filter(|at| (away_from + 500..away_until - 500).contains(*at))
                .count()
                >= 2
        },
    );
    eventually(Duration::from_secs(20), "the check up again", || {
        check_state(&daemon, "shop-local") == "up"
    });

    // The agent gone, nothing probes the check: the hub does not take it over.
    agent.kill();
    std::thread::sleep(Duration::from_secs(1));
    let before = result_times(&daemon, "shop-local").len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(result_times(&daemon, "shop-local").len(), before);
}

#[test]
fn a_running_pinned_task_is_cancelled_on_its_node() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steward.toml");
    std::fs::write(
        &config,
        format!(
            "{HUB_CONFIG}
[[queues]]
name = \"remote\"
node = \"vps-01\"
kinds = [\"hold\"]
lease = \"3s\"
"
        ),
    )
    .unwrap();
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    let mut agent = Agent::new(dir.path(), "vps-01", &daemon.url, &[]);
    agent.configure_work(
        &daemon.url,
        "[[executors]]\nname = \"hold\"\ntype = \"shell\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"echo $$ > hold.pid; exec sleep 60\"]\nworkdir = \".\"\n",
    );
    let token = cli(&daemon, &["nodes", "token", "create", "--node", "vps-01"]);
    agent.register(token.trim());
    agent.start();
    let out = cli(
        &daemon,
        &["tasks", "enqueue", "remote", "hold", "--output", "json"],
    );
    let id = serde_json::from_str::<Value>(&out).unwrap()["task"]["id"]
        .as_i64()
        .unwrap();
    let pid_file = agent.dir.join("hold.pid");
    eventually(
        Duration::from_secs(30),
        "the task running on the node",
        || pid_file.exists() && tasks_of(&daemon)[&id].0 == "running",
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    cli(&daemon, &["tasks", "cancel", &id.to_string()]);
    eventually(Duration::from_secs(15), "the task cancelled", || {
        tasks_of(&daemon)[&id].0 == "cancelled"
    });
    eventually(Duration::from_secs(5), "its program stopped", || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        stat.map_or(true, |s| s.split_whitespace().nth(2) == Some("Z"))
    });
    let detail = daemon.get_json(&format!("/api/v1/tasks/{id}"));
    assert_eq!(detail["runs"][0]["status"], "cancelled", "{detail}");
    agent.stop();
}
