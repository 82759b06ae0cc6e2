//! `steward agent register` and `steward agent start`, the real binary against a fake hub on
//! loopback: the credential it keeps, the beats it sends (everything first, what the hub needs
//! at once, digests only when idle, a kind again when it changes), and how it stops.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use steward_wire::error::{ErrorBody, ErrorDetail};
use steward_wire::nodes::{Heartbeat, HeartbeatAnswer, InventoryKind, Registered, Registration};
use steward_wire::paths;

const TOKEN: &str = "stj_one_time_token";
const CREDENTIAL: &str = "stw_node_credential";

/// What the fake hub has seen and how it answers.
#[derive(Default)]
struct Hub {
    token_used: bool,
    /// Each heartbeat and when it arrived.
    beats: Vec<(Instant, Heartbeat)>,
    /// Whether the first heartbeat was answered with `needs`.
    asked: bool,
    /// Refuse the credential from now on.
    revoked: bool,
}

type Shared = Arc<Mutex<Hub>>;

fn refused(message: &str) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: "unauthorized".into(),
            message: message.into(),
            details: Vec::new(),
        },
    };
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

async fn register(State(hub): State<Shared>, Json(registration): Json<Registration>) -> Response {
    let mut hub = hub.lock().unwrap();
    if registration.token != TOKEN || hub.token_used {
        return refused("the join token is invalid, expired or used up");
    }
    hub.token_used = true;
    Json(Registered {
        node: "vps-02".into(),
        credential: CREDENTIAL.into(),
        key_name: "node-vps-02".into(),
        interval_s: 1,
    })
    .into_response()
}

async fn heartbeat(
    State(hub): State<Shared>,
    UrlPath(node): UrlPath<String>,
    headers: HeaderMap,
    Json(beat): Json<Heartbeat>,
) -> Response {
    let mut hub = hub.lock().unwrap();
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
    let expected = format!("Bearer {CREDENTIAL}");
    if hub.revoked || node != "vps-02" || bearer != Some(expected.as_str()) {
        return refused("the key was revoked");
    }
    let mut answer = HeartbeatAnswer {
        needs: Vec::new(),
        holds: beat.digests.clone(),
        ..HeartbeatAnswer::default()
    };
    if !hub.asked {
        // The domains are asked for while every digest is held, so a beat that carries them
        // next can only be one sent because of `needs`, not a tick's.
        hub.asked = true;
        answer.needs = vec![InventoryKind::Domains];
    }
    hub.beats.push((Instant::now(), beat));
    Json(answer).into_response()
}

/// A fake hub serving on loopback from its own runtime.
struct FakeHub {
    url: String,
    state: Shared,
    _runtime: tokio::runtime::Runtime,
}

impl FakeHub {
    fn start() -> FakeHub {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let state = Shared::default();
        let app = axum::Router::new()
            .route(
                paths::AGENT_REGISTER.template(),
                axum::routing::post(register),
            )
            .route(
                paths::NODE_HEARTBEAT.template(),
                axum::routing::post(heartbeat),
            )
            .with_state(Arc::clone(&state));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeHub {
            url,
            state,
            _runtime: runtime,
        }
    }

    fn beats(&self) -> usize {
        self.state.lock().unwrap().beats.len()
    }

    /// Beat number `n` (from 0), waiting for it.
    fn beat(&self, n: usize) -> (Instant, Heartbeat) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(beat) = self.state.lock().unwrap().beats.get(n) {
                return beat.clone();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("no heartbeat #{} within 10s", n + 1);
    }
}

/// A node's files: its config, vhosts and data directory.
struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Node {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("vhosts")).unwrap();
        // Relative paths in agent.toml are the config file's directory's.
        std::fs::write(
            dir.path().join("agent.toml"),
            "interval = \"1s\"\n\n[inventory]\nnginx = [\"vhosts/*.conf\"]\ndocker = false\n\
             mounts = [\"/\"]\n",
        )
        .unwrap();
        let node = Node { dir };
        node.write_vhost(&["app.example.com", "www.example.com"]);
        node
    }

    fn write_vhost(&self, names: &[&str]) {
        let text = format!(
            "server {{\n    listen 80;\n    server_name {};\n    location / {{\n        \
             proxy_pass http://127.0.0.1:3000;\n    }}\n}}\n",
            names.join(" ")
        );
        std::fs::write(self.dir.path().join("vhosts/app.conf"), text).unwrap();
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("agent.toml")
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn paths(&self) -> Vec<String> {
        vec![
            "--data-dir".into(),
            self.data().display().to_string(),
            "--config".into(),
            self.config().display().to_string(),
        ]
    }

    fn register(&self, hub: &str, token_on_stdin: Option<&str>) -> Output {
        let mut cmd = steward();
        cmd.args(["agent", "register", "--hub", hub])
            .args(self.paths());
        if token_on_stdin.is_some() {
            cmd.args(["--token", "-"]);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(token_on_stdin.unwrap_or_default().as_bytes())
            .unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    fn start(&self) -> Agent {
        let log = self.dir.path().join("agent.log");
        let child = steward()
            .args(["agent", "start"])
            .args(self.paths())
            .env("STEWARD_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Agent { child, log }
    }
}

/// A running `steward agent start`; killed when dropped.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the agent to exit by itself.
    fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the agent did not exit within {within:?}:\n{}", self.log());
    }

    fn terminate(&self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `steward` with none of the agent's variables inherited from the caller's environment.
fn steward() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_steward"));
    for var in [
        "STEWARD_JOIN_TOKEN",
        "STEWARD_AGENT_DATA_DIR",
        "STEWARD_LOG",
        "STEWARD_LOG_FORMAT",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_registered_agent_beats_changes_only_and_stops_on_sigterm() {
    let hub = FakeHub::start();
    let node = Node::new();

    let registered = node.register(&hub.url, Some(&format!("{TOKEN}\n")));
    assert!(registered.status.success(), "{}", text(&registered.stderr));
    assert_eq!(
        text(&registered.stdout).trim(),
        format!(
            "registered node vps-02 with hub {}; start the agent with: steward agent start {}",
            hub.url,
            node.paths().join(" ")
        )
    );
    let credential = node.data().join("credential.json");
    assert_eq!(mode_of(&credential), 0o600);
    assert_eq!(mode_of(&node.data()), 0o700);
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&credential).unwrap()).unwrap();
    assert_eq!(stored["node"], "vps-02");
    assert_eq!(stored["hub"], hub.url.as_str());
    assert_eq!(stored["credential"], CREDENTIAL);

    // The token is used up: a second registration is refused with the hub's words, and the
    // credential already kept is left alone.
    let again = steward()
        .args(["agent", "register", "--hub", &hub.url])
        .args(node.paths())
        .env("STEWARD_JOIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    let stderr = text(&again.stderr);
    assert!(stderr.contains("401 Unauthorized"), "{stderr}");
    assert!(
        stderr.contains("the join token is invalid, expired or used up"),
        "{stderr}"
    );
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&credential).unwrap()).unwrap();
    assert_eq!(kept, stored);

    // No hub in the config: `start` takes the one the node registered with.
    let agent = node.start();

    // Nothing is acknowledged after a start: every kind goes in full.
    let (first_at, first) = hub.beat(0);
    assert_eq!(
        first.inventory.kinds(),
        InventoryKind::ALL,
        "{}",
        agent.log()
    );
    assert_eq!(first.digests.len(), 4);
    assert_eq!(first.interval_s, 1);
    let names: Vec<String> = first
        .inventory
        .domains
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["app.example.com", "www.example.com"]);

    // The hub needed the domains: they come at once, not at the next tick a second later.
    let (needed_at, needed) = hub.beat(1);
    assert_eq!(needed.inventory.kinds(), [InventoryKind::Domains]);
    assert!(
        needed_at.duration_since(first_at) < Duration::from_millis(900),
        "the needed kinds came {:?} after the beat that asked",
        needed_at.duration_since(first_at)
    );
    assert_eq!(needed.digests, first.digests);

    // The hub now holds every digest: the beats that follow carry no inventory.
    for n in 2..4 {
        let (_, idle) = hub.beat(n);
        assert!(idle.inventory.is_empty(), "beat #{n}: {:?}", idle.inventory);
        assert_eq!(idle.digests, first.digests);
        assert!(!idle.usage.disks.is_empty());
    }

    // A changed vhost makes the next beat carry the domains again, and only them.
    let seen = hub.beats();
    node.write_vhost(&["app.example.com", "api.example.com"]);
    let changed = (seen..seen + 3)
        .map(|n| hub.beat(n).1)
        .find(|beat| !beat.inventory.is_empty())
        .expect("a beat with the changed domains");
    assert_eq!(changed.inventory.kinds(), [InventoryKind::Domains]);
    let names: Vec<String> = changed
        .inventory
        .domains
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["api.example.com", "app.example.com"]);
    assert_ne!(
        changed.digests[&InventoryKind::Domains],
        first.digests[&InventoryKind::Domains]
    );

    let mut agent = agent;
    agent.terminate();
    assert_eq!(
        agent.exit_code(Duration::from_secs(5)),
        Some(0),
        "{}",
        agent.log()
    );
    assert!(agent.log().contains("SIGTERM"), "{}", agent.log());
}

#[test]
fn a_refused_credential_stops_the_agent_with_code_3() {
    let hub = FakeHub::start();
    let node = Node::new();
    let registered = node.register(&hub.url, Some(TOKEN));
    assert!(registered.status.success(), "{}", text(&registered.stderr));
    let mut agent = node.start();
    hub.beat(0);
    hub.state.lock().unwrap().revoked = true;
    assert_eq!(agent.exit_code(Duration::from_secs(5)), Some(3));
    let log = agent.log();
    assert!(log.contains("the key was revoked"), "{log}");
    assert!(log.contains("register it again"), "{log}");
}

#[test]
fn a_credential_others_can_read_is_refused_before_anything_is_sent() {
    let hub = FakeHub::start();
    let node = Node::new();
    assert!(node.register(&hub.url, Some(TOKEN)).status.success());
    let credential = node.data().join("credential.json");
    std::fs::set_permissions(&credential, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = steward()
        .args(["agent", "start"])
        .args(node.paths())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("mode 0644 lets others read"), "{stderr}");
    assert_eq!(hub.beats(), 0);
}

#[test]
fn config_problems_are_reported_by_line_and_column() {
    let node = Node::new();
    std::fs::write(
        node.config(),
        "interval = \"10s\"\n[inventory]\nngnix = []\n",
    )
    .unwrap();
    let out = steward()
        .args(["agent", "start"])
        .args(node.paths())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        format!(
            "{}:3:1: error: unknown key `inventory.ngnix`: did you mean `nginx`?",
            node.config().display()
        )
    );
}
