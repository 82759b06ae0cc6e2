//! The heartbeat loop against a fake hub on loopback: what it sends first, that an idle node
//! sends digests only, that it rides out the hub being away and catches up afterwards, that a
//! refused credential ends it, and that it stops when asked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use steward_agent::config::InventoryConfig;
use steward_agent::{RunError, RunOptions, StoredCredential};
use steward_wire::error::{ErrorBody, ErrorDetail};
use steward_wire::nodes::{Heartbeat, HeartbeatAnswer, InventoryKind};
use steward_wire::paths;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const CREDENTIAL: &str = "stw_node_credential";

/// What the fake hub answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Holds whatever digests it is sent.
    Acknowledge,
    /// Refuses the credential.
    Revoked,
}

#[derive(Debug)]
struct Hub {
    beats: Vec<(String, Heartbeat)>,
    mode: Mode,
}

type Shared = Arc<Mutex<Hub>>;

async fn heartbeat(
    State(hub): State<Shared>,
    UrlPath(node): UrlPath<String>,
    headers: HeaderMap,
    Json(beat): Json<Heartbeat>,
) -> Response {
    let mut hub = hub.lock().unwrap();
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if hub.mode == Mode::Revoked || bearer != format!("Bearer {CREDENTIAL}") {
        let body = ErrorBody {
            error: ErrorDetail {
                code: "unauthorized".into(),
                message: "the key was revoked".into(),
                details: Vec::new(),
            },
        };
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    let answer = HeartbeatAnswer {
        needs: Vec::new(),
        holds: beat.digests.clone(),
        ..HeartbeatAnswer::default()
    };
    hub.beats.push((node, beat));
    Json(answer).into_response()
}

/// Serves the fake hub on `addr` until `stop` is cancelled.
async fn serve(addr: SocketAddr, hub: Shared, stop: CancellationToken) -> SocketAddr {
    let app = axum::Router::new()
        .route(
            paths::NODE_HEARTBEAT.template(),
            axum::routing::post(heartbeat),
        )
        .with_state(hub);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let bound = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .unwrap();
    });
    bound
}

/// Waits until the hub has recorded more than `seen` beats and returns the next one.
async fn next_beat(hub: &Shared, seen: usize) -> Heartbeat {
    for _ in 0..100 {
        if let Some((node, beat)) = hub.lock().unwrap().beats.get(seen) {
            assert_eq!(node, "vps-02");
            return beat.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no heartbeat #{} within 5s", seen + 1);
}

fn options(hub: SocketAddr, vhosts: &Path) -> RunOptions {
    RunOptions {
        hub: format!("http://{hub}"),
        credential: StoredCredential {
            hub: format!("http://{hub}"),
            node: "vps-02".into(),
            key_name: "node-vps-02".into(),
            credential: CREDENTIAL.into(),
        },
        interval: Duration::from_secs(1),
        inventory: InventoryConfig {
            nginx: vec![format!("{}/*.conf", vhosts.display())],
            certificates: Vec::new(),
            docker_socket: None,
            mounts: vec!["/".into()],
        },
        agent_version: "0.0.0-test".into(),
        journal: None,
        work: None,
    }
}

fn start(options: RunOptions) -> (CancellationToken, JoinHandle<Result<(), RunError>>) {
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(steward_agent::run(options, shutdown.clone()));
    (shutdown, running)
}

fn hub_of(mode: Mode) -> Shared {
    Arc::new(Mutex::new(Hub {
        beats: Vec::new(),
        mode,
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_sends_changes_only_and_catches_up_after_an_outage() {
    let vhosts = tempfile::tempdir().unwrap();
    let vhost = vhosts.path().join("app.conf");
    std::fs::write(&vhost, "server { listen 80; server_name a.example.com; }").unwrap();
    let hub = hub_of(Mode::Acknowledge);
    let up = CancellationToken::new();
    let addr = serve("127.0.0.1:0".parse().unwrap(), Arc::clone(&hub), up.clone()).await;
    let (shutdown, running) = start(options(addr, vhosts.path()));

    // Nothing is acknowledged after a start: every kind goes in full.
    let first = next_beat(&hub, 0).await;
    assert_eq!(first.inventory.kinds(), InventoryKind::ALL);
    assert_eq!(first.digests.len(), 4);
    assert_eq!(first.interval_s, 1);
    assert_eq!(first.inventory.containers, Some(None));
    assert_eq!(first.inventory.domains.unwrap()[0].name, "a.example.com");
    // Then an idle node sends digests and usage only.
    let second = next_beat(&hub, 1).await;
    assert!(second.inventory.is_empty(), "{:?}", second.inventory);
    assert_eq!(second.digests, first.digests);
    assert!(!second.usage.disks.is_empty());

    // The hub goes away; the vhost changes meanwhile.
    up.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = hub.lock().unwrap().beats.len();
    std::fs::write(&vhost, "server { listen 80; server_name b.example.com; }").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(hub.lock().unwrap().beats.len(), seen);
    assert!(!running.is_finished(), "the loop must ride out an outage");

    // Back on the same address: the first beat through carries what changed, and only that.
    let back = CancellationToken::new();
    serve(addr, Arc::clone(&hub), back.clone()).await;
    let caught_up = next_beat(&hub, seen).await;
    assert_eq!(caught_up.inventory.kinds(), [InventoryKind::Domains]);
    assert_eq!(
        caught_up.inventory.domains.unwrap()[0].name,
        "b.example.com"
    );
    let after = next_beat(&hub, seen + 1).await;
    assert!(after.inventory.is_empty());

    // Asked to stop, it stops promptly and cleanly.
    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(2), running)
        .await
        .expect("the loop stops when asked");
    stopped.unwrap().unwrap();
    back.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_credential_ends_the_loop() {
    let vhosts = tempfile::tempdir().unwrap();
    let hub = hub_of(Mode::Acknowledge);
    let up = CancellationToken::new();
    let addr = serve("127.0.0.1:0".parse().unwrap(), Arc::clone(&hub), up.clone()).await;
    let (_shutdown, running) = start(options(addr, vhosts.path()));
    next_beat(&hub, 0).await;
    hub.lock().unwrap().mode = Mode::Revoked;
    let ended = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("a refused credential ends the loop")
        .unwrap();
    match ended {
        Err(RunError::Refused { node, message, .. }) => {
            assert_eq!(node, "vps-02");
            assert!(message.contains("the key was revoked"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    up.cancel();
}
