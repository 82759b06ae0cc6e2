//! The container inventory against a real Docker Engine: the one `scripts/docker-test-env.sh`
//! starts, named by `STEWARD_TEST_DOCKER_SOCKET`. Without that variable the tests that need the
//! Engine skip locally and fail under CI, where a skipped test would hide a broken setup.
//!
//! Every container a test makes carries a name prefix unique to that test run and the label
//! `steward-test=agent`, and a guard removes them however the test ends; tests share the Engine
//! and look only at their own containers.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test: failing loudly is the point

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, HealthConfig, HostConfig, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, StartContainerOptions, StopContainerOptions,
};
use steward_agent::inventory::docker::{DockerError, DockerInventory};
use steward_wire::nodes::Container;

const IMAGE: &str = "steward-test/busybox:latest";

/// The Engine's socket, or `None` (after saying why) when this run has none.
fn engine_socket() -> Option<PathBuf> {
    if let Some(socket) = std::env::var_os("STEWARD_TEST_DOCKER_SOCKET") {
        return Some(PathBuf::from(socket));
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "STEWARD_TEST_DOCKER_SOCKET is unset under CI: run \
             `eval \"$(scripts/docker-test-env.sh)\"` before the tests"
        );
    }
    eprintln!(
        "skipping: STEWARD_TEST_DOCKER_SOCKET is unset; run \
         `eval \"$(scripts/docker-test-env.sh)\"` to test against a real Docker Engine"
    );
    None
}

async fn client(socket: &Path) -> Docker {
    let socket = socket.to_string_lossy();
    Docker::connect_with_unix(&socket, 60, bollard::API_DEFAULT_VERSION)
        .expect("a client for the test engine")
        .negotiate_version()
        .await
        .expect("the test engine answers /version")
}

/// A prefix no other test, in this run or another, uses.
fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("steward-test-{}-{nanos:08x}-{test}-", std::process::id())
}

/// Removes the named containers when dropped, even when the test panicked. Drop cannot await,
/// so it removes them from a thread with a runtime of its own.
struct Containers {
    socket: PathBuf,
    names: Vec<String>,
}

impl Drop for Containers {
    fn drop(&mut self) {
        let socket = self.socket.clone();
        let names = std::mem::take(&mut self.names);
        let removal = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the cleanup");
            runtime.block_on(async move {
                let docker = client(&socket).await;
                for name in names {
                    let options = RemoveContainerOptions {
                        force: true,
                        v: true,
                        link: false,
                    };
                    if let Err(error) = docker.remove_container(&name, Some(options)).await {
                        eprintln!("could not remove test container {name}: {error}");
                    }
                }
            });
        });
        let _ = removal.join();
    }
}

impl Containers {
    fn new(socket: &Path) -> Self {
        Self {
            socket: socket.to_path_buf(),
            names: Vec::new(),
        }
    }

    /// Creates (and records for removal) a container on no network.
    async fn create(&mut self, docker: &Docker, name: &str, mut body: ContainerCreateBody) {
        self.names.push(name.to_owned());
        body.image = Some(IMAGE.to_owned());
        body.labels = Some(HashMap::from([(
            "steward-test".to_owned(),
            "agent".to_owned(),
        )]));
        let host_config = body.host_config.get_or_insert_with(HostConfig::default);
        host_config.network_mode = Some("none".to_owned());
        let options = CreateContainerOptions {
            name: Some(name.to_owned()),
            ..Default::default()
        };
        docker
            .create_container(Some(options), body)
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
}

fn command(args: &[&str]) -> Option<Vec<String>> {
    Some(args.iter().map(|a| (*a).to_owned()).collect())
}

async fn start(docker: &Docker, name: &str) {
    docker
        .start_container(name, None::<StartContainerOptions>)
        .await
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
}

/// This test's containers as the collector reports them, checking on the way that the whole
/// list is sorted by name.
async fn ours(inventory: &DockerInventory, prefix: &str) -> Vec<Container> {
    let all = inventory
        .containers()
        .await
        .expect("the collector lists containers")
        .expect("the collector finds the engine");
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "containers are sorted by name");
    all.into_iter()
        .filter(|c| c.name.starts_with(prefix))
        .collect()
}

/// Polls the collector until `done` holds for this test's containers, or fails after `within`.
async fn until(
    inventory: &DockerInventory,
    prefix: &str,
    within: Duration,
    what: &str,
    done: impl Fn(&[Container]) -> bool,
) -> Vec<Container> {
    let deadline = Instant::now() + within;
    loop {
        let seen = ours(inventory, prefix).await;
        if done(&seen) {
            return seen;
        }
        if Instant::now() > deadline {
            panic!("{what}: not within {within:?}; last seen {seen:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn containers_appear_running_then_exited_then_gone() {
    let Some(socket) = engine_socket() else {
        return;
    };
    let docker = client(&socket).await;
    let prefix = unique_prefix("lifecycle");
    let mut guard = Containers::new(&socket);
    let sleeper = format!("{prefix}sleeper");
    let idle = format!("{prefix}idle");
    let sleep = ContainerCreateBody {
        cmd: command(&["sleep", "300"]),
        ..Default::default()
    };
    guard.create(&docker, &sleeper, sleep.clone()).await;
    guard.create(&docker, &idle, sleep).await;
    start(&docker, &sleeper).await;

    let inventory = DockerInventory::connect(&socket);
    let seen = until(
        &inventory,
        &prefix,
        Duration::from_secs(30),
        "running",
        |seen| {
            seen.iter()
                .any(|c| c.name == sleeper && c.state == "running")
        },
    )
    .await;
    assert_eq!(
        seen,
        vec![
            Container {
                name: idle.clone(),
                image: IMAGE.to_owned(),
                state: "created".to_owned(),
                health: None,
                ports: Vec::new(),
                restart_count: 0,
            },
            Container {
                name: sleeper.clone(),
                image: IMAGE.to_owned(),
                state: "running".to_owned(),
                health: None,
                ports: Vec::new(),
                restart_count: 0,
            },
        ]
    );

    let stop = StopContainerOptions {
        t: Some(1),
        signal: None,
    };
    docker
        .stop_container(&sleeper, Some(stop))
        .await
        .expect("stop the sleeper");
    until(
        &inventory,
        &prefix,
        Duration::from_secs(30),
        "exited",
        |seen| {
            seen.iter()
                .any(|c| c.name == sleeper && c.state == "exited")
        },
    )
    .await;

    let remove = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    for name in [&sleeper, &idle] {
        docker
            .remove_container(name, Some(remove.clone()))
            .await
            .expect("remove a container");
    }
    until(
        &inventory,
        &prefix,
        Duration::from_secs(30),
        "gone",
        |seen| seen.is_empty(),
    )
    .await;
}

#[tokio::test]
async fn a_health_check_shows_healthy() {
    let Some(socket) = engine_socket() else {
        return;
    };
    let docker = client(&socket).await;
    let prefix = unique_prefix("health");
    let mut guard = Containers::new(&socket);
    let name = format!("{prefix}checked");
    let millis = |ms: i64| ms * 1_000_000;
    let body = ContainerCreateBody {
        cmd: command(&["sleep", "300"]),
        healthcheck: Some(HealthConfig {
            test: command(&["CMD", "true"]),
            interval: Some(millis(200)),
            timeout: Some(millis(5_000)),
            retries: Some(3),
            ..Default::default()
        }),
        ..Default::default()
    };
    guard.create(&docker, &name, body).await;
    start(&docker, &name).await;

    let inventory = DockerInventory::connect(&socket);
    let seen = until(
        &inventory,
        &prefix,
        Duration::from_secs(30),
        "healthy",
        |seen| seen.iter().any(|c| c.health.as_deref() == Some("healthy")),
    )
    .await;
    assert_eq!(seen[0].state, "running");
}

#[tokio::test]
async fn restarts_by_the_restart_policy_are_counted() {
    let Some(socket) = engine_socket() else {
        return;
    };
    let docker = client(&socket).await;
    let prefix = unique_prefix("restarts");
    let mut guard = Containers::new(&socket);
    let on_failure = |retries: i64| HostConfig {
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::ON_FAILURE),
            maximum_retry_count: Some(retries),
        }),
        ..Default::default()
    };
    // Fails at once, twice restarted, then stays exited.
    let crasher = format!("{prefix}crasher");
    let body = ContainerCreateBody {
        cmd: command(&["sh", "-c", "exit 1"]),
        host_config: Some(on_failure(2)),
        ..Default::default()
    };
    guard.create(&docker, &crasher, body).await;
    // Runs two seconds before failing: a restart happens while it looks `running` both before
    // and after, which only its uptime gives away.
    let slow = format!("{prefix}slow");
    let body = ContainerCreateBody {
        cmd: command(&["sh", "-c", "sleep 2; exit 1"]),
        host_config: Some(on_failure(5)),
        ..Default::default()
    };
    guard.create(&docker, &slow, body).await;
    start(&docker, &slow).await;
    start(&docker, &crasher).await;

    let inventory = DockerInventory::connect(&socket);
    let first = ours(&inventory, &prefix).await;
    let slow_first = first
        .iter()
        .find(|c| c.name == slow)
        .expect("slow is listed");
    assert_eq!(slow_first.restart_count, 0, "{slow_first:?}");

    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let second = ours(&inventory, &prefix).await;
    let slow_second = second
        .iter()
        .find(|c| c.name == slow)
        .expect("slow is listed");
    assert!(slow_second.restart_count >= 1, "{slow_second:?}");

    let seen = until(
        &inventory,
        &prefix,
        Duration::from_secs(30),
        "crasher restarted twice and exited",
        |seen| {
            seen.iter()
                .any(|c| c.name == crasher && c.state == "exited" && c.restart_count == 2)
        },
    )
    .await;
    assert_eq!(seen.len(), 2);
}

#[tokio::test]
async fn a_socket_path_with_nothing_behind_it_yields_none() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let inventory = DockerInventory::connect(&dir.path().join("docker.sock"));
    let found = inventory
        .containers()
        .await
        .expect("no error without an engine");
    assert_eq!(found, None);
}

#[tokio::test]
async fn a_socket_nobody_listens_on_is_an_error() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("docker.sock");
    // The file stays after the listener closes, as after a daemon that died.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind a socket"));
    let inventory = DockerInventory::connect(&path);
    let error = inventory
        .containers()
        .await
        .expect_err("a stale socket is an error");
    assert!(matches!(error, DockerError::Engine { .. }), "{error}");
}

#[tokio::test]
async fn an_engine_that_never_answers_times_out() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("docker.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind a socket");
    // Accepts connections and never answers, like a daemon that hung.
    let hung = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let inventory = DockerInventory::connect(&path)
        .with_timeouts(Duration::from_millis(300), Duration::from_secs(2));
    let started = Instant::now();
    let error = inventory
        .containers()
        .await
        .expect_err("a hung engine is an error");
    assert!(matches!(error, DockerError::Timeout { .. }), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    hung.abort();
}
