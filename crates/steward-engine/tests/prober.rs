//! The prober end to end: `prober::spawn` on a real SQLite store, probing real servers on
//! loopback (HTTP servers switched between behaviours while the test runs, a TLS server with a
//! certificate about to expire, ports nothing listens on), certificate files and commands.
//! States, transitions, results, roll-ups and events are read back from the store and the bus.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: failing loudly is the point

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use steward_store::Database;

use rcgen::{CertificateParams, DnType, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use steward_config::Config;
use steward_core::Event;
use steward_core::audit::Actor;
use steward_core::health::state::{CheckState, ProbeVerdict, ServiceState};
use steward_engine::EventBus;
use steward_engine::prober::{self, ProberHandle, ProberOptions, RunError, ops};
use steward_store::{CheckRecord, ProbeRecord, Store, TransitionQuery, now_ms};
use steward_store_sqlite::SqliteStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Polls `$probe` (an expression yielding `Option<T>`, which may `.await`) every 50 ms until
/// it is `Some`, and yields the value; panics with `$what` after `$secs` seconds.
macro_rules! eventually {
    ($secs:expr, $what:expr, $probe:expr) => {{
        let deadline = tokio::time::Instant::now() + Duration::from_secs($secs);
        loop {
            if let Some(value) = $probe {
                break value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {} s waiting for {}",
                $secs,
                $what
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

// ---------------------------------------------------------------------------------------------
// Servers

/// How the HTTP test server answers, switched at runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// 200 `{"status":"UP"}` at once.
    Healthy = 0,
    /// 200 `{"status":"UP"}` after the server's delay.
    Slow = 1,
    /// 500 `{"status":"DOWN"}`.
    Failing = 2,
    /// 200 with a body that is not JSON.
    BadJson = 3,
    /// Reads the request, then closes the connection without answering.
    Close = 4,
    /// Reads the request and never answers.
    Hang = 5,
}

impl Mode {
    fn from_u8(value: u8) -> Mode {
        [
            Mode::Healthy,
            Mode::Slow,
            Mode::Failing,
            Mode::BadJson,
            Mode::Close,
            Mode::Hang,
        ][usize::from(value)]
    }
}

/// A minimal HTTP/1.1 server on 127.0.0.1 whose behaviour can be switched while it runs.
struct HttpServer {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    delay_ms: Arc<AtomicU64>,
    requests: Arc<AtomicUsize>,
}

impl HttpServer {
    async fn start(mode: Mode) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = HttpServer {
            addr: listener.local_addr().unwrap(),
            mode: Arc::new(AtomicU8::new(mode as u8)),
            delay_ms: Arc::new(AtomicU64::new(300)),
            requests: Arc::new(AtomicUsize::new(0)),
        };
        let (mode, delay, requests) = (
            Arc::clone(&server.mode),
            Arc::clone(&server.delay_ms),
            Arc::clone(&server.requests),
        );
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (mode, delay, requests) =
                    (Arc::clone(&mode), Arc::clone(&delay), Arc::clone(&requests));
                tokio::spawn(async move { answer(stream, &mode, &delay, &requests).await });
            }
        });
        server
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(u64::try_from(delay.as_millis()).unwrap(), Ordering::SeqCst);
    }

    fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }
}

/// Answers one connection according to the mode in force once its request has arrived.
async fn answer(mut stream: TcpStream, mode: &AtomicU8, delay: &AtomicU64, requests: &AtomicUsize) {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let (status, body) = match Mode::from_u8(mode.load(Ordering::SeqCst)) {
        Mode::Healthy => ("200 OK", r#"{"status":"UP"}"#),
        Mode::Slow => {
            let ms = delay.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ("200 OK", r#"{"status":"UP"}"#)
        }
        Mode::Failing => ("500 Internal Server Error", r#"{"status":"DOWN"}"#),
        Mode::BadJson => ("200 OK", "<html>this is not JSON</html>"),
        Mode::Close => return,
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            return;
        }
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A self-signed certificate (for `localhost` and 127.0.0.1) valid from yesterday until
/// `valid_for` from now, with its key.
fn certificate(valid_for: Duration) -> (rcgen::Certificate, KeyPair) {
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "steward prober test");
    let now =
        rcgen::date_time_ymd(1970, 1, 1) + Duration::from_millis(u64::try_from(now_ms()).unwrap());
    params.not_before = now - Duration::from_secs(86_400);
    params.not_after = now + valid_for;
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert, key)
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// A TLS server on 127.0.0.1 presenting a self-signed certificate valid for `valid_for` more;
/// it completes handshakes and closes.
async fn tls_server(valid_for: Duration) -> SocketAddr {
    let (cert, key) = certificate(valid_for);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

/// A loopback port nothing listens on (bound, then let go).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------------
// The store, the config, the prober

async fn open_store(dir: &Path) -> Arc<dyn Store> {
    let store = SqliteStore::open(&dir.join("data")).await.unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}

fn parse(text: &str) -> Arc<Config> {
    match steward_config::parse_str("steward.toml", text, &|_| None) {
        Ok(loaded) => Arc::new(loaded.config),
        Err(e) => panic!("the test config is invalid:\n{e}\n---\n{text}"),
    }
}

/// A running prober.
struct Running {
    handle: ProberHandle,
    task: JoinHandle<()>,
    shutdown: CancellationToken,
}

impl Running {
    fn start(store: &Arc<dyn Store>, bus: &EventBus, config: &Arc<Config>, instance: &str) -> Self {
        let mut options = ProberOptions::new(instance);
        options.lease_ms = 3_000;
        options.flush_interval = Duration::from_millis(100);
        options.max_sleep = Duration::from_millis(200);
        let shutdown = CancellationToken::new();
        let config = Arc::clone(config);
        let (handle, task) = prober::spawn(
            Arc::clone(store),
            bus.clone(),
            Arc::new(move || Arc::clone(&config)),
            options,
            shutdown.clone(),
        )
        .unwrap();
        Running {
            handle,
            task,
            shutdown,
        }
    }

    /// Starts, and waits until it holds the prober lease.
    async fn leading(
        store: &Arc<dyn Store>,
        bus: &EventBus,
        config: &Arc<Config>,
        instance: &str,
    ) -> Self {
        let running = Self::start(store, bus, config, instance);
        eventually!(10, "the prober to take the lease", {
            running.handle.stats().leading().then_some(())
        });
        running
    }

    /// Stops it; returns once pending results are written and the lease is given up.
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the prober stops within 10 s")
            .unwrap();
    }
}

async fn record(store: &Arc<dyn Store>, check: &str) -> Option<CheckRecord> {
    store
        .check_records()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.check == check)
}

/// Waits until `check`'s stored state is `state`.
async fn state_becomes(store: &Arc<dyn Store>, check: &str, state: CheckState) -> CheckRecord {
    eventually!(20, format!("`{check}` to be {state}"), {
        record(store, check).await.filter(|r| r.state == state)
    })
}

/// `check`'s stored results, oldest first.
async fn results(store: &Arc<dyn Store>, check: &str) -> Vec<ProbeRecord> {
    let mut results = store.probe_results(check, 0, 10_000).await.unwrap();
    results.reverse();
    results
}

/// Waits until `check` has at least `n` stored results; returns them oldest first.
async fn at_least_results(store: &Arc<dyn Store>, check: &str, n: usize) -> Vec<ProbeRecord> {
    eventually!(20, format!("{n} results of `{check}`"), {
        let all = results(store, check).await;
        (all.len() >= n).then_some(all)
    })
}

/// A stored transition in brief: from, to, when, why.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Change {
    id: i64,
    from: CheckState,
    to: CheckState,
    at_ms: i64,
    reason: String,
}

/// `check`'s stored transitions, oldest first.
async fn transitions(store: &Arc<dyn Store>, check: &str) -> Vec<Change> {
    let mut changes: Vec<Change> = store
        .check_transitions(&TransitionQuery {
            check: Some(check.to_owned()),
            limit: 1_000,
            ..TransitionQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|t| Change {
            id: t.id,
            from: t.transition.from,
            to: t.transition.to,
            at_ms: t.transition.at_ms,
            reason: t.transition.reason,
        })
        .collect();
    changes.reverse();
    changes
}

fn pairs(changes: &[Change]) -> Vec<(CheckState, CheckState)> {
    changes.iter().map(|c| (c.from, c.to)).collect()
}

/// The `CheckChanged` events of `check` received so far: (service, from, to, reason).
fn check_events(
    events: &mut broadcast::Receiver<steward_engine::Envelope>,
    check: &str,
) -> Vec<(String, CheckState, CheckState, String)> {
    let mut seen = Vec::new();
    loop {
        match events.try_recv() {
            Ok(envelope) => {
                if let Event::CheckChanged {
                    check: name,
                    service,
                    from,
                    to,
                    reason,
                } = envelope.event
                    && name == check
                {
                    seen.push((service, from, to, reason));
                }
            }
            Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed) => {
                return seen;
            }
            Err(broadcast::error::TryRecvError::Lagged(n)) => panic!("missed {n} events"),
        }
    }
}

/// The index of the result of the probe that started at `at_ms`.
fn index_at(results: &[ProbeRecord], at_ms: i64) -> usize {
    results
        .iter()
        .position(|r| r.at_ms == at_ms)
        .unwrap_or_else(|| panic!("no result at {at_ms}: {results:#?}"))
}

fn verdicts(results: &[ProbeRecord]) -> Vec<ProbeVerdict> {
    results.iter().map(|r| r.verdict).collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

/// unknown → up after two passes; one failure keeps it up, the second takes it down; two
/// passes bring it back. Each transition is recorded in order, caused by the probe it names,
/// and published on the bus with the same reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_decide_when_a_check_goes_down_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let server = HttpServer::start(Mode::Healthy).await;
    let config = parse(&format!(
        r#"
[[services]]
name = "api"

[[checks]]
service = "api"
name = "api-health"
url = "{url}"
interval = "1s"
timeout = "900ms"
failures_before_down = 2
successes_before_up = 2
conditions = ["[STATUS] == 200", "[BODY].status == UP"]
"#,
        url = server.url()
    ));
    let bus = EventBus::new();
    let mut events = bus.subscribe();
    let prober = Running::start(&store, &bus, &config, "solo");

    state_becomes(&store, "api-health", CheckState::Up).await;
    server.set(Mode::Failing);
    let down = state_becomes(&store, "api-health", CheckState::Down).await;
    assert!(down.consecutive_failures >= 2, "{down:?}");
    assert_eq!(down.consecutive_successes, 0);
    server.set(Mode::Healthy);
    eventually!(20, "`api-health` back up after going down", {
        let changes = transitions(&store, "api-health").await;
        (changes.len() >= 3).then_some(())
    });
    prober.stop().await;

    let changes = transitions(&store, "api-health").await;
    assert_eq!(
        pairs(&changes),
        [
            (CheckState::Unknown, CheckState::Up),
            (CheckState::Up, CheckState::Down),
            (CheckState::Down, CheckState::Up),
        ],
        "{changes:#?}"
    );
    assert!(
        changes
            .windows(2)
            .all(|w| w[0].id < w[1].id && w[0].at_ms < w[1].at_ms)
    );
    let all = results(&store, "api-health").await;
    let v = verdicts(&all);
    // Up on the second pass ever.
    assert_eq!(index_at(&all, changes[0].at_ms), 1, "{v:?}");
    assert_eq!(v[..2], [ProbeVerdict::Pass, ProbeVerdict::Pass]);
    // Down on the second failure in a row: after the first, it was still up.
    let i = index_at(&all, changes[1].at_ms);
    assert_eq!(
        v[i - 2..=i],
        [ProbeVerdict::Pass, ProbeVerdict::Fail, ProbeVerdict::Fail],
        "{v:?}"
    );
    // Back up on the second pass in a row.
    let j = index_at(&all, changes[2].at_ms);
    assert_eq!(
        v[j - 2..=j],
        [ProbeVerdict::Fail, ProbeVerdict::Pass, ProbeVerdict::Pass],
        "{v:?}"
    );
    // Nothing else changed state in between: passes before i-1, failures between i and j-1.
    assert!(v[..i - 1].iter().all(|x| *x == ProbeVerdict::Pass), "{v:?}");
    assert!(
        v[i..j - 1].iter().all(|x| *x == ProbeVerdict::Fail),
        "{v:?}"
    );
    assert!(all.windows(2).all(|w| w[0].at_ms < w[1].at_ms));

    // Failed results say why: the status and the resolved conditions, no probe failure.
    let failed = &all[i];
    assert_eq!(failed.status, Some(500));
    assert_eq!(failed.cause, None);
    assert_eq!(
        failed.conditions[0],
        (false, "[STATUS] (500) == 200".to_owned())
    );
    assert!(!failed.conditions[1].0, "{failed:?}");
    assert!(
        failed.conditions[1].1.starts_with("[BODY].status"),
        "{failed:?}"
    );
    assert!(
        changes[1].reason.contains("[STATUS] (500) == 200"),
        "{changes:?}"
    );
    assert_eq!(changes[0].reason, "");
    assert_eq!(changes[2].reason, "");
    let passed = &all[j];
    assert_eq!(passed.status, Some(200));
    assert!(
        passed.conditions.iter().all(|(held, _)| *held),
        "{passed:?}"
    );

    // The same transitions went out on the bus, in the same order and with the same reasons.
    let published = check_events(&mut events, "api-health");
    let expected: Vec<(String, CheckState, CheckState, String)> = changes
        .iter()
        .map(|c| ("api".to_owned(), c.from, c.to, c.reason.clone()))
        .collect();
    assert_eq!(published, expected);

    // The stored state agrees with the last transition.
    let last = record(&store, "api-health").await.unwrap();
    assert_eq!(last.state, CheckState::Up);
    assert_eq!(last.service, "api");
    assert_eq!(last.consecutive_failures, 0);
    assert!(last.consecutive_successes >= 2);
    assert_eq!(last.since_ms, changes[2].at_ms);
    assert_eq!(last.last_probe_ms, all.last().map(|r| r.at_ms));
    assert!(server.requests.load(Ordering::SeqCst) >= all.len());
}

/// A pass that breaks only a latency condition is a slow pass: the check is degraded, its
/// percentiles follow the server's delay, and one fast pass takes it up at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_pass_degrades_and_percentiles_follow_the_delay() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let server = HttpServer::start(Mode::Slow).await;
    server.set_delay(Duration::from_millis(300));
    let config = parse(&format!(
        r#"
[[workspaces]]
key = "edge"

[[services]]
name = "slowpoke"
workspace = "edge"

[[checks]]
service = "slowpoke"
name = "slowpoke-http"
url = "{url}"
interval = "1s"
timeout = "1s"
failures_before_down = 2
successes_before_up = 2
conditions = ["[STATUS] == 200", "[RESPONSE_TIME] < 200"]
labels = {{ team = "web" }}
"#,
        url = server.url()
    ));
    let bus = EventBus::new();
    let prober = Running::start(&store, &bus, &config, "solo");

    state_becomes(&store, "slowpoke-http", CheckState::Degraded).await;
    let slow = at_least_results(&store, "slowpoke-http", 3).await;
    assert!(
        slow.iter().all(|r| r.verdict == ProbeVerdict::SlowPass),
        "{slow:#?}"
    );
    assert!(slow.iter().all(|r| r.latency_ms >= 300), "{slow:#?}");

    let view = ops::check(
        store.as_ref(),
        &config,
        "slowpoke-http",
        3_600_000,
        now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(view.brief.state, CheckState::Degraded);
    assert_eq!(view.brief.kind, "http");
    assert_eq!(view.service, "slowpoke");
    assert_eq!(view.interval_ms, 1_000);
    assert_eq!(view.timeout_ms, 1_000);
    assert_eq!(view.labels.get("team").map(String::as_str), Some("web"));
    assert_eq!(
        view.conditions,
        ["[STATUS] == 200", "[RESPONSE_TIME] < 200"]
    );
    assert_eq!(view.window_ms, 3_600_000);
    let latency = view.latency;
    assert!(latency.count >= 3, "{latency:?}");
    assert_eq!(latency.failures, 0);
    assert_eq!(view.failure_ratio, Some(0.0));
    let (p50, p95, p99) = (
        latency.p50_ms.unwrap(),
        latency.p95_ms.unwrap(),
        latency.p99_ms.unwrap(),
    );
    assert!(p50 >= 300, "a 300 ms delay: p50 {p50}");
    assert!(p50 <= p95 && p95 <= p99, "{latency:?}");
    assert!(
        p99 <= 1_300,
        "within the 1 s timeout (one bucket up): {latency:?}"
    );
    let last = view.last_result.unwrap();
    assert_eq!(last.verdict, "slow");
    assert_eq!(last.status, Some(200));
    assert!(last.conditions[0].success);
    assert!(!last.conditions[1].success);
    assert!(
        last.conditions[1]
            .condition
            .starts_with("[RESPONSE_TIME] ("),
        "{last:?}"
    );
    assert!(view.certificate.is_none());

    // The service is degraded too.
    let services = ops::services(store.as_ref(), &config, &config.registry)
        .await
        .unwrap();
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].state, ServiceState::Degraded);
    assert_eq!(services[0].workspace.as_deref(), Some("edge"));
    assert_eq!(services[0].checks[0].name, "slowpoke-http");

    // One fast pass is enough to be up again: latency is reported as measured.
    server.set(Mode::Healthy);
    state_becomes(&store, "slowpoke-http", CheckState::Up).await;
    prober.stop().await;
    let changes = transitions(&store, "slowpoke-http").await;
    assert_eq!(
        pairs(&changes),
        [
            (CheckState::Unknown, CheckState::Degraded),
            (CheckState::Degraded, CheckState::Up),
        ]
    );
    assert!(
        changes[0].reason.starts_with("[RESPONSE_TIME] ("),
        "{changes:?}"
    );
    let all = results(&store, "slowpoke-http").await;
    assert_eq!(index_at(&all, changes[0].at_ms), 1);
    let up = index_at(&all, changes[1].at_ms);
    assert_eq!(all[up].verdict, ProbeVerdict::Pass);
    assert!(
        all[..up]
            .iter()
            .all(|r| r.verdict == ProbeVerdict::SlowPass),
        "{:?}",
        verdicts(&all)
    );
    let checks = ops::checks_of(store.as_ref(), &config, "slowpoke", 3_600_000, now_ms())
        .await
        .unwrap();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].brief.state, CheckState::Up);
    assert_eq!(checks[0].latency.count, all.len() as u64);
    assert!(matches!(
        ops::checks_of(store.as_ref(), &config, "nope", 3_600_000, now_ms()).await,
        Err(ops::HealthOpsError::UnknownService(_))
    ));
}

/// Each way a probe can fail is recorded with its cause: a refused connection, a timeout, a
/// connection closed without an answer, a failing command, missing certificate files; a 500
/// or a body the conditions reject fail on their conditions with no cause at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_probes_are_classified_by_cause() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let closing = HttpServer::start(Mode::Close).await;
    let hanging = HttpServer::start(Mode::Hang).await;
    let failing = HttpServer::start(Mode::Failing).await;
    let bad_json = HttpServer::start(Mode::BadJson).await;
    let healthy = HttpServer::start(Mode::Healthy).await;
    let refused = free_port();
    let no_certs = dir.path().join("no-such-dir");
    let config = parse(&format!(
        r#"
[[services]]
name = "svc"

[[checks]]
service = "svc"
name = "closed"
url = "{closed}"
interval = "1s"
failures_before_down = 1

[[checks]]
service = "svc"
name = "hangs"
url = "{hangs}"
interval = "1s"
timeout = "300ms"
failures_before_down = 1

[[checks]]
service = "svc"
name = "refused"
url = "http://127.0.0.1:{refused}/health?token=hunter2"
interval = "1s"
failures_before_down = 1

[[checks]]
service = "svc"
name = "tcp-refused"
type = "tcp"
address = "127.0.0.1:{refused}"
interval = "1s"
failures_before_down = 1

[[checks]]
service = "svc"
name = "tcp-open"
type = "tcp"
address = "{healthy_addr}"
interval = "1s"
successes_before_up = 1

[[checks]]
service = "svc"
name = "status-500"
url = "{failing}"
interval = "1s"
failures_before_down = 1

[[checks]]
service = "svc"
name = "bad-json"
url = "{bad_json}"
interval = "1s"
failures_before_down = 1
conditions = ["[STATUS] == 200", "[BODY].status == UP"]

[[checks]]
service = "svc"
name = "cmd-ok"
type = "command"
command = "true"
interval = "1s"
successes_before_up = 1

[[checks]]
service = "svc"
name = "cmd-exit-3"
type = "command"
command = "/bin/sh"
args = ["-c", "echo broken >&2; exit 3"]
interval = "1s"
failures_before_down = 1

[[checks]]
service = "svc"
name = "no-files"
type = "cert_file"
paths = ["{no_certs}/*.pem"]
interval = "1s"
failures_before_down = 1
"#,
        closed = closing.url(),
        hangs = hanging.url(),
        failing = failing.url(),
        bad_json = bad_json.url(),
        healthy_addr = healthy.addr,
        no_certs = no_certs.display(),
    ));
    let bus = EventBus::new();
    let prober = Running::start(&store, &bus, &config, "solo");

    let first = |results: Vec<ProbeRecord>| results.into_iter().next().unwrap();
    let closed = first(at_least_results(&store, "closed", 1).await);
    assert_eq!(closed.verdict, ProbeVerdict::Fail);
    assert_eq!(closed.status, None);
    assert_eq!(
        closed.cause.as_deref(),
        Some("io"),
        "a connection closed without an answer: {closed:?}"
    );
    assert!(closing.requests.load(Ordering::SeqCst) >= 1);

    let hangs = first(at_least_results(&store, "hangs", 1).await);
    assert_eq!(hangs.verdict, ProbeVerdict::Fail);
    assert_eq!(hangs.cause.as_deref(), Some("timeout"), "{hangs:?}");
    assert!(
        (300..1_000).contains(&hangs.latency_ms),
        "stopped at the 300 ms timeout: {hangs:?}"
    );

    let refused_http = first(at_least_results(&store, "refused", 1).await);
    assert_eq!(
        refused_http.cause.as_deref(),
        Some("refused"),
        "{refused_http:?}"
    );
    let error = refused_http.error.clone().unwrap();
    assert!(
        !error.contains("hunter2"),
        "the URL's secret leaked: {error}"
    );

    let refused_tcp = first(at_least_results(&store, "tcp-refused", 1).await);
    assert_eq!(
        refused_tcp.cause.as_deref(),
        Some("refused"),
        "{refused_tcp:?}"
    );
    assert!(
        refused_tcp
            .error
            .as_deref()
            .unwrap()
            .contains(&refused.to_string()),
        "{refused_tcp:?}"
    );

    let open = first(at_least_results(&store, "tcp-open", 1).await);
    assert_eq!(open.verdict, ProbeVerdict::Pass, "{open:?}");
    assert_eq!(
        open.conditions,
        [(true, "[CONNECTED] (true) == true".to_owned())]
    );

    let status = first(at_least_results(&store, "status-500", 1).await);
    assert_eq!(status.verdict, ProbeVerdict::Fail);
    assert_eq!(status.cause, None, "the probe itself worked: {status:?}");
    assert_eq!(status.status, Some(500));
    assert!(
        status
            .conditions
            .iter()
            .any(|(held, c)| !held && c.starts_with("[STATUS] (500)")),
        "the default conditions want a 2xx: {status:?}"
    );

    let body = first(at_least_results(&store, "bad-json", 1).await);
    assert_eq!(body.verdict, ProbeVerdict::Fail);
    assert_eq!(body.cause, None, "{body:?}");
    assert_eq!(body.status, Some(200));
    assert!(body.conditions[0].0, "{body:?}");
    assert!(!body.conditions[1].0, "{body:?}");
    assert!(
        body.conditions[1].1.starts_with("[BODY].status"),
        "{body:?}"
    );

    let ok = first(at_least_results(&store, "cmd-ok", 1).await);
    assert_eq!(ok.verdict, ProbeVerdict::Pass, "{ok:?}");
    assert_eq!(ok.cause, None);

    let exit = first(at_least_results(&store, "cmd-exit-3", 1).await);
    assert_eq!(exit.verdict, ProbeVerdict::Fail);
    assert_eq!(exit.cause.as_deref(), Some("command"), "{exit:?}");
    let error = exit.error.clone().unwrap();
    assert!(error.contains('3') && error.contains("broken"), "{error}");

    let files = first(at_least_results(&store, "no-files", 1).await);
    assert_eq!(files.verdict, ProbeVerdict::Fail);
    assert_eq!(files.cause.as_deref(), Some("file"), "{files:?}");

    // With one failure enough, every failing check is down and the others are up.
    for name in [
        "closed",
        "hangs",
        "refused",
        "tcp-refused",
        "status-500",
        "bad-json",
        "cmd-exit-3",
        "no-files",
    ] {
        state_becomes(&store, name, CheckState::Down).await;
    }
    for name in ["tcp-open", "cmd-ok"] {
        state_becomes(&store, name, CheckState::Up).await;
    }
    let services = ops::services(store.as_ref(), &config, &config.registry)
        .await
        .unwrap();
    assert_eq!(
        services[0].state,
        ServiceState::Down,
        "the worst check counts"
    );
    assert_eq!(services[0].checks.len(), 10);

    // The API's view of a result carries the cause and error too.
    let view = ops::results(store.as_ref(), &config, "hangs", 0, 5)
        .await
        .unwrap();
    assert_eq!(view[0].verdict, "fail");
    assert_eq!(view[0].cause.as_deref(), Some("timeout"));
    // Either the request's own timeout or the probe's fired first; both say so.
    let error = view[0].error.as_deref().unwrap();
    assert!(
        error.contains("timed out") || error.contains("within 300 ms"),
        "{view:?}"
    );
    assert!(matches!(
        ops::results(store.as_ref(), &config, "nope", 0, 5).await,
        Err(ops::HealthOpsError::UnknownCheck(_))
    ));
    prober.stop().await;
}

/// A TLS check reads the peer certificate: 10 days left is critical, so the default
/// conditions (more than 14 days) fail and the check goes down; with verification on, the
/// self-signed certificate is refused (cause `tls`) but its expiry is still reported. A
/// `cert_file` check takes the soonest expiry among the files its glob matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_report_days_left_and_class() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let tls = tls_server(days(10)).await;
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("long.pem"), certificate(days(90)).0.pem()).unwrap();
    std::fs::write(certs.join("soon.pem"), certificate(days(20)).0.pem()).unwrap();
    std::fs::write(certs.join("ignored.txt"), "not a certificate").unwrap();
    let config = parse(&format!(
        r#"
[[services]]
name = "gateway"

[[checks]]
service = "gateway"
name = "gateway-tls"
type = "tls"
address = "{tls}"
verify_tls = false
interval = "1s"
failures_before_down = 1

[[checks]]
service = "gateway"
name = "gateway-tls-verified"
type = "tls"
address = "{tls}"
server_name = "localhost"
interval = "1s"
failures_before_down = 1

[[checks]]
service = "gateway"
name = "gateway-certs"
type = "cert_file"
paths = ["{certs}/*.pem"]
interval = "1s"
successes_before_up = 1
"#,
        certs = certs.display()
    ));
    let bus = EventBus::new();
    let prober = Running::start(&store, &bus, &config, "solo");

    state_becomes(&store, "gateway-tls", CheckState::Down).await;
    let view = ops::check(store.as_ref(), &config, "gateway-tls", 3_600_000, now_ms())
        .await
        .unwrap();
    assert_eq!(view.brief.kind, "tls");
    let cert = view
        .certificate
        .clone()
        .expect("the certificate is reported");
    assert_eq!(cert.class, "critical", "{cert:?}");
    assert!((9..=10).contains(&cert.days_left), "{cert:?}");
    let last = view.last_result.clone().unwrap();
    assert_eq!(last.verdict, "fail");
    // The peer certificate's subject, issuer and names are kept with the result.
    assert_eq!(last.certificates.len(), 1, "{last:?}");
    let peer = &last.certificates[0];
    assert!(peer.subject.contains("steward prober test"), "{peer:?}");
    assert_eq!(peer.issuer, peer.subject, "self-signed: {peer:?}");
    assert!(peer.names.iter().any(|n| n == "localhost"), "{peer:?}");
    assert_eq!(peer.standing.class, "critical");
    assert_eq!(peer.path, None);
    assert_eq!(last.cause, None, "the handshake worked: {last:?}");
    assert_eq!(
        view.conditions,
        ["[CONNECTED] == true", "[CERTIFICATE_EXPIRATION] > 336h"]
    );
    assert!(last.conditions[0].success, "{last:?}");
    assert!(!last.conditions[1].success, "{last:?}");
    assert!(
        last.conditions[1]
            .condition
            .starts_with("[CERTIFICATE_EXPIRATION]"),
        "{last:?}"
    );
    let changes = transitions(&store, "gateway-tls").await;
    assert_eq!(pairs(&changes), [(CheckState::Unknown, CheckState::Down)]);
    assert!(
        changes[0].reason.contains("[CERTIFICATE_EXPIRATION]"),
        "{changes:?}"
    );

    state_becomes(&store, "gateway-tls-verified", CheckState::Down).await;
    let verified = ops::check(
        store.as_ref(),
        &config,
        "gateway-tls-verified",
        3_600_000,
        now_ms(),
    )
    .await
    .unwrap();
    let last = verified.last_result.clone().unwrap();
    assert_eq!(last.cause.as_deref(), Some("tls"), "self-signed: {last:?}");
    let cert = verified
        .certificate
        .expect("a refused certificate's expiry is still reported");
    assert_eq!(cert.class, "critical");
    assert!((9..=10).contains(&cert.days_left), "{cert:?}");

    state_becomes(&store, "gateway-certs", CheckState::Up).await;
    let files = ops::check(
        store.as_ref(),
        &config,
        "gateway-certs",
        3_600_000,
        now_ms(),
    )
    .await
    .unwrap();
    let cert = files.certificate.expect("the soonest expiry is reported");
    assert_eq!(cert.class, "warning", "the 20-day file counts: {cert:?}");
    assert!((19..=20).contains(&cert.days_left), "{cert:?}");
    let last = files.last_result.unwrap();
    assert_eq!(last.verdict, "pass", "20 days is more than 14: {last:?}");
    // One certificate per file, each classed on its own.
    let mut classes: Vec<(String, &str)> = last
        .certificates
        .iter()
        .map(|c| {
            let file = c.path.as_deref().unwrap_or_default();
            let name = std::path::Path::new(file).file_name().unwrap();
            (name.to_string_lossy().into_owned(), c.standing.class)
        })
        .collect();
    classes.sort();
    assert_eq!(
        classes,
        [("long.pem".into(), "valid"), ("soon.pem".into(), "warning")]
    );
    prober.stop().await;
}

/// `run_now` probes at once and answers the judged result, which counts toward the state on
/// the instance that probes; another instance only looks; a disabled check is probed and not
/// recorded; an unknown one is an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_answers_a_judged_result() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let server = HttpServer::start(Mode::Failing).await;
    let config = parse(&format!(
        r#"
[[services]]
name = "api"

[[checks]]
service = "api"
name = "api-now"
url = "{url}"
# Its first scheduled probe falls about 34 minutes in (the phase its name gives it
# within the interval): during the test only `run_now` probes it.
interval = "1h"
failures_before_down = 1
successes_before_up = 1

[[checks]]
service = "api"
name = "api-paused"
url = "{url}"
enabled = false
"#,
        url = server.url()
    ));
    let bus = EventBus::new();
    let mut events = bus.subscribe();
    let leader = Running::leading(&store, &bus, &config, "leader").await;

    let failed = leader
        .handle
        .run_now("api-now", &Actor::system("test"))
        .await
        .unwrap();
    assert!(failed.recorded);
    assert_eq!(failed.record.check, "api-now");
    assert_eq!(failed.record.verdict, ProbeVerdict::Fail);
    assert_eq!(failed.record.status, Some(500));
    assert_eq!(failed.record.cause, None);
    assert!(
        failed.reason.contains("[STATUS] (500)"),
        "{}",
        failed.reason
    );
    assert_eq!(failed.state, CheckState::Down);

    server.set(Mode::Healthy);
    let passed = leader
        .handle
        .run_now("api-now", &Actor::system("test"))
        .await
        .unwrap();
    assert!(passed.recorded);
    assert_eq!(passed.record.verdict, ProbeVerdict::Pass);
    assert_eq!(passed.record.status, Some(200));
    assert_eq!(passed.reason, "");
    assert_eq!(passed.state, CheckState::Up);
    assert!(passed.record.at_ms >= failed.record.at_ms);

    // Both results were recorded like scheduled ones, and the state followed.
    let stored = eventually!(10, "both run-now results stored", {
        let all = results(&store, "api-now").await;
        let ats: Vec<i64> = all.iter().map(|r| r.at_ms).collect();
        (ats.contains(&failed.record.at_ms) && ats.contains(&passed.record.at_ms)).then_some(all)
    });
    assert!(stored.contains(&failed.record) && stored.contains(&passed.record));
    // Each run on request is audited with its result, in the same write.
    let audited = store
        .audit_events(&steward_store::AuditQuery {
            action: Some("check.run".into()),
            limit: 100,
            ..steward_store::AuditQuery::default()
        })
        .await
        .unwrap();
    let verdicts: Vec<&str> = audited
        .iter()
        .filter(|e| e.target == "api-now")
        .map(|e| e.details["verdict"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(verdicts, ["fail", "pass"], "{audited:?}");
    state_becomes(&store, "api-now", CheckState::Up).await;
    let published = check_events(&mut events, "api-now");
    assert!(
        published
            .iter()
            .any(|(_, from, to, _)| (*from, *to) == (CheckState::Down, CheckState::Up)),
        "{published:?}"
    );

    // A disabled check is probed and judged, not recorded.
    let paused = leader
        .handle
        .run_now("api-paused", &Actor::system("test"))
        .await
        .unwrap();
    assert!(!paused.recorded);
    assert_eq!(paused.record.verdict, ProbeVerdict::Pass);
    assert_eq!(paused.state, CheckState::Unknown);
    assert!(results(&store, "api-paused").await.is_empty());

    // Another instance, which does not hold the lease, probes and judges without recording.
    let other = Running::start(&store, &bus, &config, "follower");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!other.handle.stats().leading());
    server.set(Mode::Failing);
    let looked = other
        .handle
        .run_now("api-now", &Actor::system("test"))
        .await
        .unwrap();
    assert!(!looked.recorded);
    assert_eq!(looked.record.verdict, ProbeVerdict::Fail);
    assert_eq!(looked.record.status, Some(500));
    assert_eq!(looked.state, CheckState::Unknown);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !results(&store, "api-now")
            .await
            .iter()
            .any(|r| r.at_ms == looked.record.at_ms && r.verdict == ProbeVerdict::Fail),
        "the follower's result was not recorded"
    );
    assert_eq!(
        record(&store, "api-now").await.unwrap().state,
        CheckState::Up
    );

    assert!(matches!(
        leader.handle.run_now("nope", &Actor::system("test")).await,
        Err(RunError::UnknownCheck(name)) if name == "nope"
    ));
    other.stop().await;
    leader.stop().await;
}

/// A prober started again on the same store resumes each check's state and counters from the
/// store: an up check whose server now fails goes from up to down (not from unknown), after
/// the second failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_prober_resumes_states_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let server = HttpServer::start(Mode::Healthy).await;
    let config = parse(&format!(
        r#"
[[services]]
name = "api"

[[checks]]
service = "api"
name = "api-resume"
url = "{url}"
interval = "1s"
failures_before_down = 2
successes_before_up = 2
"#,
        url = server.url()
    ));

    let first_bus = EventBus::new();
    let first = Running::start(&store, &first_bus, &config, "first");
    state_becomes(&store, "api-resume", CheckState::Up).await;
    first.stop().await;
    let stopped = record(&store, "api-resume").await.unwrap();
    assert_eq!(stopped.state, CheckState::Up);
    assert!(stopped.consecutive_successes >= 2, "{stopped:?}");
    let before = results(&store, "api-resume").await.len();

    server.set(Mode::Failing);
    let second_bus = EventBus::new();
    let mut events = second_bus.subscribe();
    let second = Running::start(&store, &second_bus, &config, "second");
    state_becomes(&store, "api-resume", CheckState::Down).await;
    second.stop().await;

    let changes = transitions(&store, "api-resume").await;
    assert_eq!(
        pairs(&changes),
        [
            (CheckState::Unknown, CheckState::Up),
            (CheckState::Up, CheckState::Down),
        ],
        "the second prober started from the stored state: {changes:?}"
    );
    let published = check_events(&mut events, "api-resume");
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(
        (published[0].1, published[0].2),
        (CheckState::Up, CheckState::Down)
    );
    // Down at the second failure after the restart: the first left it up.
    let all = results(&store, "api-resume").await;
    let after: Vec<ProbeVerdict> = verdicts(&all[before..]);
    assert_eq!(index_at(&all, changes[1].at_ms), before + 1, "{after:?}");
    assert_eq!(after[..2], [ProbeVerdict::Fail, ProbeVerdict::Fail]);
}
