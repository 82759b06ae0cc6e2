//! `steward-bench fleet`: the hub under a fleet of simulated agents, then one real agent idle.
//!
//! The release `steward up` runs as a child process. N nodes are added through the API, each
//! is given a join token and registers with it (64 at a time). Each simulated agent is then a
//! task that heartbeats every interval at its own random phase, as `steward agent` does: every
//! kind's digest and the usage on each beat, a kind in full only when its digest differs from
//! what the hub last acknowledged (all four on the first beat, containers as `null`: no Docker
//! Engine), and at once the kinds the hub answers that it needs. After a warm-up (every agent's
//! first, full beat answered) two windows are measured: idle inventory (digests only), then a
//! share of the agents changing one domain's upstream each interval (their beat carries
//! `domains` in full and the hub reconciles it). For each window: the hub's CPU (share of one
//! core, from `/proc`), its RSS and peak, PostgreSQL's CPU (all its processes, when it runs
//! here), the beats per second achieved against N / interval, the round trips as the agents saw
//! them, and the bench's own CPU and how late its loop fired (so a bench that cannot keep up is
//! told apart from a slow hub). Last, the simulated agents stop and one real `steward agent`
//! registers and runs on two vhost files with Docker off: its CPU and RSS over the window.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt};
use steward_agent::inventory::digest_of;
use steward_wire::nodes::{
    Certificate, Container, Disk, Domain, Facts, Heartbeat, HeartbeatAnswer, InventoryKind,
    InventoryParts, JoinToken, Location, NewJoinToken, NewNode, Registered, Registration, Usage,
};
use steward_wire::paths;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::daemon::{memory, report_log, steward_binary};

/// What to run.
pub struct FleetBench {
    /// `sqlite` or `postgres`, for the report.
    pub backend: &'static str,
    /// The PostgreSQL database, when on PostgreSQL.
    pub database: Option<String>,
    /// Simulated agents.
    pub agents: usize,
    /// Seconds each window is measured.
    pub seconds: u64,
    /// Seconds between two beats of an agent.
    pub interval_s: u64,
    /// The share of agents whose inventory changes each interval in the second window.
    pub changing: f64,
    /// HTTP clients the simulated agents share, round-robin.
    pub clients: usize,
    /// A new connection for every beat instead of keep-alive.
    pub fresh_connections: bool,
    /// Keep the hub's log in this file (default: a temporary file, removed).
    pub steward_log: Option<PathBuf>,
    /// Tasks pinned to the real agent's node, enqueued one by one, whose claim-to-start is
    /// measured (0 skips it).
    pub remote_tasks: usize,
    /// How many of them are enqueued per second.
    pub remote_rate: u32,
}

/// Registrations (and the node additions and tokens before them) in flight during setup.
const SETUP_IN_FLIGHT: usize = 64;
/// The node the real agent registers as.
const REAL_AGENT_NODE: &str = "bench-agent";

/// The hub's config: the default `max_connections` (1,024), but every simulated agent comes
/// from 127.0.0.1 where a real fleet comes from as many addresses, so that one address may hold
/// them all; the admin's rate limit is lifted for the setup's 10,000 calls (agents keep their
/// own limit).
const HUB_CONFIG: &str = "[api]\nmax_connections_per_address = 1024\n\n\
                          [api.rate_limits]\nadmin = 1000000\n\n\
                          [[queues]]\nname = \"bench-remote\"\nnode = \"bench-agent\"\n\
                          kinds = [\"noop\"]\n";

/// The real agent's work: one declared executor (so it claims tasks) beside the built-ins.
const AGENT_WORK: &str = "\n[work]\nconcurrency = 4\n\n[[executors]]\nname = \"touch\"\n\
                          type = \"shell\"\ncommand = \"true\"\n";

/// Requests in flight at most on one of the simulated agents' clients. A client opens a new
/// connection for every request it cannot put on an idle one, so while the hub lags (the
/// warm-up's full beats) its connections would grow past the hub's cap, where a real fleet
/// waits in the hub's backlog: beats wait here instead (in their round trip), and 64 clients
/// hold at most 768 connections.
const IN_FLIGHT_PER_CLIENT: usize = 12;

/// Runs the benchmark and prints its figures.
pub async fn run(bench: &FleetBench) -> anyhow::Result<()> {
    raise_open_files()?;
    let exe = steward_binary()?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let config = dir.path().join("steward.toml");
    std::fs::write(&config, HUB_CONFIG).context("writing the hub's config")?;
    let log = bench
        .steward_log
        .clone()
        .unwrap_or_else(|| dir.path().join("steward.log"));
    let mut steward = crate::daemon::start(
        &exe,
        &config,
        &dir.path().join("data"),
        bench.database.as_deref(),
        &log,
    )
    .await?;
    let pid = steward.pid()?;
    let (url, key) = steward.endpoint()?;
    println!(
        "fleet: {} on {}, {} agents every {} s, windows of {} s, {:.1} % changing in the second; \
         {} HTTP clients{}; steward pid {pid}",
        exe.display(),
        bench.backend,
        bench.agents,
        bench.interval_s,
        bench.seconds,
        bench.changing * 100.0,
        bench.clients,
        if bench.fresh_connections {
            ", a new connection per beat"
        } else {
            " with keep-alive"
        },
    );
    let admin = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")?;
    let (rss_empty, _) = memory(pid)?;
    let setup_started = Instant::now();
    let agents = enroll(&admin, &url, &key, bench.agents).await?;
    let setup = setup_started.elapsed().as_secs_f64();
    println!(
        "  setup: {} nodes added, given a join token and registered in {setup:.1} s ({:.0} per second); \
         hub RSS {:.1} MB before, {:.1} MB after",
        agents.len(),
        agents.len() as f64 / setup,
        rss_empty as f64 / 1e6,
        memory(pid)?.0 as f64 / 1e6,
    );
    let hub = Hub {
        pid,
        http: &admin,
        url: &url,
        key: &key,
        postgres: bench.database.is_some(),
    };
    simulate(bench, &hub, agents).await?;
    let agent = real_agent(bench, &exe, &admin, &url, &key, dir.path()).await;
    steward.stop()?;
    report_log(&log);
    agent
}

/// A registered simulated agent.
struct Enrolled {
    node: String,
    credential: String,
}

/// Adds `count` nodes, makes each a join token and registers it, `SETUP_IN_FLIGHT` at a time.
async fn enroll(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    count: usize,
) -> anyhow::Result<Vec<Enrolled>> {
    futures_util::stream::iter(0..count)
        .map(|i| enroll_one(http, url, key, format!("sim-{i:05}")))
        .buffer_unordered(SETUP_IN_FLIGHT)
        .try_collect()
        .await
}

async fn enroll_one(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    node: String,
) -> anyhow::Result<Enrolled> {
    let token = add_node_with_token(http, url, key, &node).await?;
    let registered: Registered = answer(
        http.post(format!("{url}{}", paths::AGENT_REGISTER.template()))
            .json(&Registration {
                token,
                hostname: format!("{node}.example.com"),
                agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .send()
            .await,
        "registering",
    )
    .await?;
    Ok(Enrolled {
        node: registered.node,
        credential: registered.credential,
    })
}

/// Adds node `node` through the API and answers a join token for it.
async fn add_node_with_token(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    node: &str,
) -> anyhow::Result<String> {
    let _: serde_json::Value = answer(
        http.post(format!("{url}{}", paths::NODES.template()))
            .bearer_auth(key)
            .json(&NewNode {
                id: node.to_owned(),
                hostname: format!("{node}.example.com"),
                ..NewNode::default()
            })
            .send()
            .await,
        "adding a node",
    )
    .await?;
    let token: JoinToken = answer(
        http.post(format!("{url}{}", paths::NODE_TOKENS.with(&[&node])))
            .bearer_auth(key)
            .json(&NewJoinToken::default())
            .send()
            .await,
        "making a join token",
    )
    .await?;
    Ok(token.token)
}

/// The JSON answer to a request, or an error naming `what` with the status and body.
async fn answer<T: serde::de::DeserializeOwned>(
    sent: reqwest::Result<reqwest::Response>,
    what: &str,
) -> anyhow::Result<T> {
    let response = sent.with_context(|| format!("{what}: no answer"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .with_context(|| format!("{what}: reading the answer"))?;
    anyhow::ensure!(
        status.is_success(),
        "{what}: {status}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).with_context(|| format!("{what}: unexpected answer"))
}

/// What the simulated agents share with the bench.
struct Shared {
    /// The share of agents changing each interval, as `f64` bits.
    changing: AtomicU64,
    /// Agents whose first (full) beat was answered.
    first_answered: AtomicUsize,
    /// The first failed beat, to show why.
    first_error: Mutex<Option<String>>,
}

/// One beat as its agent saw it.
struct Sample {
    /// When the agent's timer fired.
    fired: Instant,
    /// How far past its planned time it fired: the bench's own lateness.
    late: Duration,
    /// Request to parsed answer.
    round_trip: Duration,
    /// It carried a kind in full.
    full: bool,
    /// The hub answered 2xx.
    ok: bool,
}

/// The simulated fleet: warm-up, the idle window, the changing window, then its figures.
async fn simulate(bench: &FleetBench, hub: &Hub<'_>, agents: Vec<Enrolled>) -> anyhow::Result<()> {
    let url = hub.url;
    let interval = Duration::from_secs(bench.interval_s);
    // Real agents each hold their own connection, and one reqwest client would multiplex every
    // beat over the few connections its pool keeps busy. A client per agent would cost the
    // bench 5,000 connection pools (and file descriptors) it does not need on 2 cores; 64
    // clients round-robin make the hub accept, read and answer on many connections at once,
    // which is the cost that matters, while the bench's own share of the CPU stays small.
    // `--fresh-connections` goes the other way: a real agent keeps an idle connection for 3 s
    // and the hub for 5 s, so at a 10 s interval each real beat opens a new connection.
    let clients = (0..bench.clients.max(1))
        .map(|_| {
            // As the agent's own client: an idle connection is dropped before the hub closes it
            // (after 5 s), or a beat could be sent on a connection the hub is closing.
            let builder = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .connect_timeout(Duration::from_secs(10))
                .pool_idle_timeout(Duration::from_secs(3));
            let builder = if bench.fresh_connections {
                builder.pool_max_idle_per_host(0)
            } else {
                builder
            };
            let client = builder.build().context("building an HTTP client")?;
            Ok((client, Arc::new(Semaphore::new(IN_FLIGHT_PER_CLIENT))))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let shared = Arc::new(Shared {
        changing: AtomicU64::new(0.0f64.to_bits()),
        first_answered: AtomicUsize::new(0),
        first_error: Mutex::new(None),
    });
    let stop = CancellationToken::new();
    let count = agents.len();
    let start = Instant::now() + Duration::from_millis(100);
    let mut tasks = JoinSet::new();
    for (index, agent) in agents.into_iter().enumerate() {
        let phase = interval.mul_f64(unit(mix(index as u64 ^ 0x5eed)));
        let (client, in_flight) = clients[index % clients.len()].clone();
        let sim = SimAgent {
            http: client,
            in_flight,
            url: format!("{url}{}", paths::NODE_HEARTBEAT.with(&[&agent.node])),
            credential: agent.credential,
            inventory: SimInventory::new(index),
            acknowledged: BTreeMap::new(),
            checks_digest: None,
            random: mix(index as u64 ^ 0xc4a9),
            interval_s: bench.interval_s,
        };
        let (shared, stop) = (Arc::clone(&shared), stop.clone());
        tasks.spawn(sim.run(start + phase, interval, shared, stop));
    }

    // Warm-up: every agent's first beat carried its whole inventory and was answered.
    let deadline = Instant::now() + interval * 3 + Duration::from_secs(60);
    while shared.first_answered.load(Ordering::Relaxed) < count {
        if Instant::now() > deadline {
            stop.cancel();
            let error = shared
                .first_error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_else(|| "none failed; they were slow".into());
            anyhow::bail!(
                "only {} of {count} agents had their first beat answered in time (first error: {error})",
                shared.first_answered.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let warm_up = start.elapsed().as_secs_f64();
    println!(
        "  warm-up: every agent's first, full beat answered {warm_up:.1} s after the first was due \
         ({:.0} per second over the warm-up; planned {:.0}); hub: {}",
        count as f64 / warm_up,
        count as f64 / bench.interval_s as f64,
        connection_figures(hub).await
    );

    let window = Duration::from_secs(bench.seconds);
    let idle_start = Reading::take(hub).await?;
    tokio::time::sleep(window).await;
    let idle_end = Reading::take(hub).await?;
    shared
        .changing
        .store(bench.changing.to_bits(), Ordering::Relaxed);
    tokio::time::sleep(window).await;
    let changing_end = Reading::take(hub).await?;
    stop.cancel();
    println!("  hub at the end: {}", connection_figures(hub).await);
    let mut samples = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        samples.extend(joined.context("a simulated agent failed")?);
    }
    if let Some(error) = shared.first_error.lock().ok().and_then(|e| e.clone()) {
        println!("  first failed beat: {error}");
    }
    let planned = count as f64 / bench.interval_s as f64;
    let name = format!("fleet {} {count} agents", bench.backend);
    Window::of(&samples, &idle_start, &idle_end).print(&format!("{name} idle"), planned, false);
    Window::of(&samples, &idle_end, &changing_end).print(
        &format!("{name} {:.1} % changing", bench.changing * 100.0),
        planned,
        true,
    );
    Ok(())
}

/// A simulated agent: its credential, its inventory and what the hub last acknowledged.
struct SimAgent {
    http: reqwest::Client,
    /// The places for requests in flight on its client.
    in_flight: Arc<Semaphore>,
    /// Its heartbeat URL.
    url: String,
    credential: String,
    inventory: SimInventory,
    acknowledged: BTreeMap<InventoryKind, String>,
    /// The digest of its local checks the hub last gave (as an agent keeps it).
    checks_digest: Option<String>,
    /// Its random state (whether to change this beat).
    random: u64,
    interval_s: u64,
}

impl SimAgent {
    /// Beats every `interval` from `first` until `stop`; answers every beat's sample.
    async fn run(
        mut self,
        first: Instant,
        interval: Duration,
        shared: Arc<Shared>,
        stop: CancellationToken,
    ) -> Vec<Sample> {
        let mut samples = Vec::new();
        let mut planned = first;
        let mut answered_once = false;
        for beat in 0u64.. {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep_until(planned) => {}
            }
            let fired = Instant::now();
            let changing = f64::from_bits(shared.changing.load(Ordering::Relaxed));
            self.random = mix(self.random);
            if changing > 0.0 && unit(self.random) < changing {
                self.inventory.change(beat);
            }
            let kinds = self.differing();
            let sent = Instant::now();
            let result = self.send(&kinds).await;
            let round_trip = sent.elapsed();
            let ok = match result {
                Ok(answer) => {
                    self.acknowledged = answer.holds;
                    self.checks_digest = Some(answer.checks_digest);
                    // As the agent does: the kinds the hub needs go at once, in full.
                    let needs: Vec<InventoryKind> = answer.needs;
                    if needs.is_empty() {
                        true
                    } else {
                        match self.send(&needs).await {
                            Ok(again) => {
                                self.acknowledged = again.holds;
                                true
                            }
                            Err(error) => {
                                note_error(&shared, error);
                                false
                            }
                        }
                    }
                }
                Err(error) => {
                    note_error(&shared, error);
                    false
                }
            };
            if ok && !answered_once {
                answered_once = true;
                shared.first_answered.fetch_add(1, Ordering::Relaxed);
            }
            samples.push(Sample {
                fired,
                late: fired.saturating_duration_since(planned),
                round_trip,
                full: !kinds.is_empty(),
                ok,
            });
            planned += interval;
            // A bench that fell more than an interval behind skips beats rather than bursting
            // (as the agent's timer does); the beat rate then shows it.
            let now = Instant::now();
            while planned + interval < now {
                planned += interval;
            }
        }
        samples
    }

    /// The kinds whose digest differs from what the hub acknowledged, in reconciliation order.
    fn differing(&self) -> Vec<InventoryKind> {
        InventoryKind::ALL
            .into_iter()
            .filter(|kind| self.acknowledged.get(kind) != self.inventory.digests.get(kind))
            .collect()
    }

    async fn send(&self, kinds: &[InventoryKind]) -> anyhow::Result<HeartbeatAnswer> {
        let beat = Heartbeat {
            digests: self.inventory.digests.clone(),
            inventory: self.inventory.parts(kinds),
            usage: self.inventory.usage(),
            interval_s: self.interval_s,
            checks_digest: self.checks_digest.clone(),
            check_results: Vec::new(),
        };
        let _place = self
            .in_flight
            .acquire()
            .await
            .context("the client's places are closed")?;
        answer(
            self.http
                .post(&self.url)
                .bearer_auth(&self.credential)
                .json(&beat)
                .send()
                .await,
            "a heartbeat",
        )
        .await
    }
}

fn note_error(shared: &Shared, error: anyhow::Error) {
    if let Ok(mut first) = shared.first_error.lock() {
        first.get_or_insert_with(|| format!("{error:#}"));
    }
}

/// A simulated node's inventory: three domains (one with TLS), its certificate, facts, no
/// Docker Engine; the digests as the agent computes them.
struct SimInventory {
    domains: Vec<Domain>,
    certificates: Vec<Certificate>,
    facts: Facts,
    digests: BTreeMap<InventoryKind, String>,
    index: usize,
}

impl SimInventory {
    fn new(index: usize) -> Self {
        let host = format!("sim-{index:05}.example.com");
        let certificate_file = format!("/etc/letsencrypt/live/app.{host}/fullchain.pem");
        let location = |path: &str, port: u16| Location {
            path: path.to_owned(),
            upstream: Some(format!("http://127.0.0.1:{port}")),
        };
        let mut domains = vec![
            Domain {
                name: format!("app.{host}"),
                listen: vec!["443 ssl".into(), "[::]:443 ssl".into()],
                locations: vec![location("/", 3000), location("/api/", 8081)],
                file: "/etc/nginx/sites-enabled/app.conf".into(),
                certificate_file: Some(certificate_file.clone()),
            },
            Domain {
                name: format!("status.{host}"),
                listen: vec!["80".into()],
                locations: vec![location("/", 3001)],
                file: "/etc/nginx/sites-enabled/status.conf".into(),
                certificate_file: None,
            },
            Domain {
                name: format!("www.{host}"),
                listen: vec!["80".into(), "[::]:80".into()],
                locations: vec![location("/", 8080), location("/n8n/", 5678)],
                file: "/etc/nginx/sites-enabled/www.conf".into(),
                certificate_file: None,
            },
        ];
        domains.sort();
        let certificates = vec![Certificate {
            path: certificate_file,
            subject: format!("CN=app.{host}"),
            names: vec![format!("app.{host}")],
            not_after_ms: 1_830_000_000_000 + index as i64 * 1_000,
            error: None,
        }];
        let facts = Facts {
            hostname: host,
            os: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel: "6.1.0-28-amd64".into(),
            cpus: 4,
            memory_bytes: 8 << 30,
            agent_version: env!("CARGO_PKG_VERSION").into(),
        };
        let mut inventory = Self {
            digests: BTreeMap::from([(
                InventoryKind::Containers,
                digest_of(&None::<Vec<Container>>),
            )]),
            domains,
            certificates,
            facts,
            index,
        };
        inventory.digest();
        inventory
    }

    fn digest(&mut self) {
        self.digests
            .insert(InventoryKind::Domains, digest_of(&self.domains));
        self.digests
            .insert(InventoryKind::Certificates, digest_of(&self.certificates));
        self.digests
            .insert(InventoryKind::Facts, digest_of(&self.facts));
    }

    /// One domain's upstream moves to another port (new on every beat that changes).
    fn change(&mut self, beat: u64) {
        if let Some(location) = self
            .domains
            .first_mut()
            .and_then(|d| d.locations.first_mut())
        {
            location.upstream = Some(format!("http://127.0.0.1:{}", 10_000 + beat % 50_000));
        }
        self.digest();
    }

    fn parts(&self, kinds: &[InventoryKind]) -> InventoryParts {
        let mut parts = InventoryParts::default();
        for kind in kinds {
            match kind {
                InventoryKind::Containers => parts.containers = Some(None),
                InventoryKind::Domains => parts.domains = Some(self.domains.clone()),
                InventoryKind::Certificates => {
                    parts.certificates = Some(self.certificates.clone());
                }
                InventoryKind::Facts => parts.facts = Some(self.facts.clone()),
            }
        }
        parts
    }

    /// Usage that moves every beat, as a real node's does.
    fn usage(&self) -> Usage {
        let now = steward_store::now_ms();
        let wobble = (now / 1_000 + self.index as i64) % 100;
        Usage {
            load: [
                0.1 + wobble as f64 / 100.0,
                0.2 + wobble as f64 / 200.0,
                0.3,
            ],
            memory_available_bytes: (3 << 30) + u64::try_from(wobble).unwrap_or(0) * 4_096,
            uptime_s: u64::try_from(now / 1_000).unwrap_or(0) % 10_000_000,
            disks: vec![
                Disk {
                    mount: "/".into(),
                    total_bytes: 80 << 30,
                    used_bytes: (31 << 30) + u64::try_from(wobble).unwrap_or(0) * 1_048_576,
                },
                Disk {
                    mount: "/var/lib/docker".into(),
                    total_bytes: 200 << 30,
                    used_bytes: 57 << 30,
                },
            ],
        }
    }
}

/// CPU times, memory and the hub's store calls at one moment.
struct Reading {
    at: Instant,
    hub_cpu: Duration,
    /// The hub's CPU time by thread name (live threads only).
    hub_threads: BTreeMap<String, Duration>,
    bench_cpu: Duration,
    postgres_cpu: Option<Duration>,
    rss: u64,
    peak: u64,
    /// The hub's store calls so far by operation: seconds spent (waits for a connection
    /// included) and count, from its `/metrics`.
    store: BTreeMap<String, (f64, f64)>,
}

/// Where the hub is and how to read its `/metrics`.
struct Hub<'a> {
    pid: u32,
    http: &'a reqwest::Client,
    url: &'a str,
    key: &'a str,
    postgres: bool,
}

impl Reading {
    async fn take(hub: &Hub<'_>) -> anyhow::Result<Self> {
        let (rss, peak) = memory(hub.pid)?;
        let store = store_calls(hub).await;
        Ok(Self {
            at: Instant::now(),
            hub_cpu: cpu_time(hub.pid)?,
            hub_threads: thread_cpu(hub.pid),
            bench_cpu: crate::cpu_time()?,
            postgres_cpu: if hub.postgres { postgres_cpu() } else { None },
            rss,
            peak,
            store,
        })
    }
}

/// The CPU time of each of `pid`'s threads, summed by thread name (tokio's workers, the
/// SQLite connections' threads, …).
fn thread_cpu(pid: u32) -> BTreeMap<String, Duration> {
    let mut by_name = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let tid = task.file_name().to_string_lossy().into_owned();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        if let Ok(cpu) = crate::cpu_time_of(&format!("{pid}/task/{tid}")) {
            *by_name.entry(comm).or_insert(Duration::ZERO) += cpu;
        }
    }
    by_name
}

/// The hub's `/metrics` (empty when it cannot be read).
async fn metrics_text(hub: &Hub<'_>) -> String {
    match hub
        .http
        .get(format!("{}/metrics", hub.url))
        .bearer_auth(hub.key)
        .send()
        .await
    {
        Ok(response) if response.status().is_success() => response.text().await.unwrap_or_default(),
        _ => String::new(),
    }
}

/// What the hub counted of its connections and heartbeat answers so far: connections open,
/// refused (by reason) and evicted, and heartbeats answered other than 200 (by status).
async fn connection_figures(hub: &Hub<'_>) -> String {
    let text = metrics_text(hub).await;
    let mut figures = Vec::new();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value = value.parse::<f64>().unwrap_or(0.0);
        let shown = series.starts_with("steward_http_connections")
            || series.starts_with("steward_auth_failures_total")
            || (series.starts_with("steward_http_requests_total")
                && series.contains("heartbeat")
                && !series.contains("status=\"200\""));
        // Counters only once they counted something; the open connections always.
        if shown && (value > 0.0 || series == "steward_http_connections") {
            let name = series
                .trim_start_matches("steward_")
                .replace("route=\"/api/v1/nodes/{id}/heartbeat\",", "");
            figures.push(format!("{name} {value}"));
        }
    }
    if figures.is_empty() {
        "nothing counted".into()
    } else {
        figures.join(", ")
    }
}

/// The hub's store calls so far, by operation: seconds and count (empty when `/metrics`
/// cannot be read).
async fn store_calls(hub: &Hub<'_>) -> BTreeMap<String, (f64, f64)> {
    let text = metrics_text(hub).await;
    let mut calls: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("steward_store_operation_duration_seconds_") else {
            continue;
        };
        let is_sum = rest.starts_with("sum{");
        if !is_sum && !rest.starts_with("count{") {
            continue;
        }
        let operation = rest
            .split("operation=\"")
            .nth(1)
            .and_then(|r| r.split('"').next());
        let value = line
            .rsplit_once(' ')
            .and_then(|(_, v)| v.parse::<f64>().ok());
        if let (Some(operation), Some(value)) = (operation, value) {
            let entry = calls.entry(operation.to_owned()).or_default();
            if is_sum {
                entry.0 += value;
            } else {
                entry.1 += value;
            }
        }
    }
    calls
}

/// The CPU time of every process named `postgres` this host runs (the server and its
/// backends; the hub's pooled connections keep theirs for the whole run), `None` when there is
/// none (a server elsewhere).
fn postgres_cpu() -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "postgres"
            && let Ok(cpu) = crate::cpu_time_of(pid)
        {
            total += cpu;
            found = true;
        }
    }
    found.then_some(total)
}

/// One measured window's figures.
struct Window {
    seconds: f64,
    hub_cpu: f64,
    bench_cpu: f64,
    postgres_cpu: Option<f64>,
    rss: u64,
    peak: u64,
    beats: usize,
    failed: usize,
    round_trips_ms: Vec<f64>,
    full_round_trips_ms: Vec<f64>,
    late_ms: Vec<f64>,
    /// The hub's CPU share by thread name, largest first.
    threads: Vec<(String, f64)>,
    /// The hub's store calls by operation: seconds, count; most time first.
    store: Vec<(String, f64, f64)>,
}

impl Window {
    fn of(samples: &[Sample], start: &Reading, end: &Reading) -> Self {
        let seconds = end.at.duration_since(start.at).as_secs_f64();
        let share =
            |a: Duration, b: Duration| (b.saturating_sub(a)).as_secs_f64() / seconds * 100.0;
        let inside: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.fired >= start.at && s.fired < end.at)
            .collect();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        Self {
            seconds,
            hub_cpu: share(start.hub_cpu, end.hub_cpu),
            bench_cpu: share(start.bench_cpu, end.bench_cpu),
            postgres_cpu: start
                .postgres_cpu
                .zip(end.postgres_cpu)
                .map(|(a, b)| share(a, b)),
            rss: end.rss,
            peak: end.peak,
            beats: inside.len(),
            failed: inside.iter().filter(|s| !s.ok).count(),
            round_trips_ms: inside
                .iter()
                .filter(|s| s.ok)
                .map(|s| ms(s.round_trip))
                .collect(),
            full_round_trips_ms: inside
                .iter()
                .filter(|s| s.ok && s.full)
                .map(|s| ms(s.round_trip))
                .collect(),
            late_ms: inside.iter().map(|s| ms(s.late)).collect(),
            threads: {
                let mut threads: Vec<(String, f64)> = end
                    .hub_threads
                    .iter()
                    .map(|(name, cpu)| {
                        let before = start.hub_threads.get(name).copied().unwrap_or_default();
                        (name.clone(), share(before, *cpu))
                    })
                    .filter(|(_, share)| *share >= 0.05)
                    .collect();
                threads.sort_by(|a, b| b.1.total_cmp(&a.1));
                threads
            },
            store: {
                let mut store: Vec<(String, f64, f64)> = end
                    .store
                    .iter()
                    .map(|(operation, (secs, count))| {
                        let (secs_before, count_before) =
                            start.store.get(operation).copied().unwrap_or_default();
                        (operation.clone(), secs - secs_before, count - count_before)
                    })
                    .filter(|(_, _, count)| *count > 0.0)
                    .collect();
                store.sort_by(|a, b| b.1.total_cmp(&a.1));
                store
            },
        }
    }

    fn print(&self, name: &str, planned: f64, with_full: bool) {
        let p = crate::percentile;
        let rate = self.beats as f64 / self.seconds;
        let full = if with_full {
            format!(
                "; {:.1}/s carried domains in full, p50 {:.1} ms p99 {:.1} ms",
                self.full_round_trips_ms.len() as f64 / self.seconds,
                p(&self.full_round_trips_ms, 0.5),
                p(&self.full_round_trips_ms, 0.99),
            )
        } else {
            String::new()
        };
        let postgres = self
            .postgres_cpu
            .map(|cpu| format!("; postgres cpu {cpu:.1} %"))
            .unwrap_or_default();
        println!(
            "{name}: hub cpu {:.1} % of a core, rss {:.0} MB (peak {:.0} MB){postgres}; beats {rate:.1}/s \
             (planned {planned:.1}/s), p50 {:.1} ms p99 {:.1} ms{full}{}",
            self.hub_cpu,
            self.rss as f64 / 1e6,
            self.peak as f64 / 1e6,
            p(&self.round_trips_ms, 0.5),
            p(&self.round_trips_ms, 0.99),
            if self.failed > 0 {
                format!("; {} beats failed", self.failed)
            } else {
                String::new()
            },
        );
        let threads: Vec<String> = self
            .threads
            .iter()
            .take(5)
            .map(|(name, share)| format!("{name} {share:.1} %"))
            .collect();
        // The runtime's threads share one name; others (SQLite's connections) show apart.
        if threads.len() > 1 {
            println!("  hub cpu by thread: {}", threads.join(", "));
        }
        let store: Vec<String> = self
            .store
            .iter()
            .take(6)
            .map(|(operation, secs, count)| {
                format!(
                    "{operation} {:.1}/s {:.2} ms",
                    count / self.seconds,
                    secs * 1e3 / count
                )
            })
            .collect();
        println!(
            "  hub store calls (most time first; per second, mean with waits): {}",
            store.join(", ")
        );
        let late_p99 = p(&self.late_ms, 0.99);
        println!(
            "  bench: cpu {:.1} % of a core, its timers fired late by p50 {:.1} ms p99 {late_p99:.1} ms",
            self.bench_cpu,
            p(&self.late_ms, 0.5),
        );
        // Each agent beats on its own timer, so a bench that keeps up sends the planned rate
        // and fires within milliseconds of each plan.
        if rate < planned * 0.98 || late_p99 > 100.0 {
            println!(
                "  the bench fell behind: {rate:.1} beats/s of {planned:.1} planned, timers late by up to {late_p99:.0} ms (p99); the hub's figures understate the load"
            );
        }
    }
}

/// One real `steward agent`, registered with a token made through the API, run over the
/// window with the vhost files in `root`: its CPU share and memory.
async fn real_agent(
    bench: &FleetBench,
    exe: &Path,
    http: &reqwest::Client,
    url: &str,
    key: &str,
    root: &Path,
) -> anyhow::Result<()> {
    let dir = root.join("agent");
    std::fs::create_dir_all(dir.join("nginx")).context("creating the agent's directory")?;
    std::fs::write(dir.join("nginx/shop.conf"), VHOST_SHOP).context("writing a vhost")?;
    std::fs::write(dir.join("nginx/status.conf"), VHOST_STATUS).context("writing a vhost")?;
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "hub = \"{url}\"\ninterval = \"{}s\"\n\n[inventory]\nnginx = [\"nginx/*.conf\"]\ndocker = false\n{AGENT_WORK}",
            bench.interval_s
        ),
    )
    .context("writing agent.toml")?;
    let data = dir.join("data");
    let token = add_node_with_token(http, url, key, REAL_AGENT_NODE).await?;
    let mut register = agent_command(exe, "register", &data, &config);
    register
        .args(["--token", "-", "--hub", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = register
        .spawn()
        .context("starting steward agent register")?;
    let mut stdin = child.stdin.take().context("the agent's standard input")?;
    stdin
        .write_all(token.as_bytes())
        .await
        .context("passing the join token")?;
    drop(stdin);
    let out = child
        .wait_with_output()
        .await
        .context("waiting for steward agent register")?;
    anyhow::ensure!(
        out.status.success(),
        "steward agent register exited with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let log_path = dir.join("agent.log");
    let log = std::fs::File::create(&log_path).context("creating the agent's log")?;
    let mut start = agent_command(exe, "start", &data, &config);
    start
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("the agent's log")?)
        .stderr(log)
        .kill_on_drop(true);
    let mut agent = start.spawn().context("starting steward agent start")?;
    let pid = agent.id().context("the agent exited at once")?;
    // Its first beat comes at a random point of the first interval; the window starts after it.
    let deadline = Instant::now() + Duration::from_secs(bench.interval_s + 30);
    while last_seen(http, url, key).await?.is_none() {
        if let Some(status) = agent.try_wait().context("waiting for the agent")? {
            let logged = std::fs::read_to_string(&log_path).unwrap_or_default();
            anyhow::bail!("steward agent start exited with {status}:\n{logged}");
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the agent's first beat did not reach the hub (log: {})",
            log_path.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen_before = last_seen(http, url, key).await?;
    let (cpu_before, at) = (cpu_time(pid)?, Instant::now());
    tokio::time::sleep(Duration::from_secs(bench.seconds)).await;
    let cpu = cpu_time(pid)?.saturating_sub(cpu_before);
    let seconds = at.elapsed().as_secs_f64();
    let (rss, peak) = memory(pid)?;
    let seen_after = last_seen(http, url, key).await?;
    let beats = bench.seconds as f64 / bench.interval_s as f64;
    println!(
        "fleet agent (steward agent, {} s interval, 2 vhosts, docker off): cpu {:.3} % of a core \
         ({:.1} ms per beat), rss {:.1} MB (peak {:.1} MB){}",
        bench.interval_s,
        cpu.as_secs_f64() / seconds * 100.0,
        cpu.as_secs_f64() * 1e3 / beats,
        rss as f64 / 1e6,
        peak as f64 / 1e6,
        if seen_after > seen_before {
            ""
        } else {
            "; its beats stopped reaching the hub"
        },
    );
    if bench.remote_tasks > 0 {
        remote_work(http, url, key, bench.remote_tasks, bench.remote_rate).await?;
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    match tokio::time::timeout(Duration::from_secs(20), agent.wait()).await {
        Ok(status) => {
            let status = status.context("waiting for the agent")?;
            if !status.success() {
                println!("  the agent exited with {status}");
            }
        }
        Err(_) => {
            println!("  the agent did not stop within 20 s of SIGTERM; killed");
            let _ = agent.kill().await;
        }
    }
    let logged = std::fs::read_to_string(&log_path).unwrap_or_default();
    let problems = logged
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .count();
    if problems > 0 {
        println!(
            "  the agent logged {problems} warnings or errors, first: {}",
            logged
                .lines()
                .find(|l| l.contains("WARN") || l.contains("ERROR"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Enqueues `count` no-op tasks pinned to the real agent's node, `rate` per second, each on its
/// own (so the agent waits in its long poll for every one), and reports how long each waited
/// from being enqueued to starting on the node: the claim's wake-up, the claim, the answer and
/// the agent's start, as the hub's run record and the task show them.
async fn remote_work(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    count: usize,
    rate: u32,
) -> anyhow::Result<()> {
    let every = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut ticks = tokio::time::interval(every);
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        ticks.tick().await;
        let answer: serde_json::Value = answer(
            http.post(format!("{url}{}", paths::TASKS.with(&[])))
                .bearer_auth(key)
                .json(&serde_json::json!({"queue": "bench-remote", "kind": "noop"}))
                .send()
                .await,
            "enqueueing a pinned task",
        )
        .await?;
        ids.push(
            answer["task"]["id"]
                .as_i64()
                .context("the enqueue answer has no task id")?,
        );
    }
    let mut waits_ms = Vec::with_capacity(count);
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &ids {
        loop {
            let detail: serde_json::Value = answer(
                http.get(format!("{url}{}", paths::TASK.with(&[id])))
                    .bearer_auth(key)
                    .send()
                    .await,
                "reading a pinned task",
            )
            .await?;
            let started = detail["runs"][0]["started_at_ms"].as_i64();
            if let (Some(started), Some(created)) =
                (started, detail["task"]["created_at_ms"].as_i64())
            {
                waits_ms.push((started - created) as f64);
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "pinned task {id} did not run within a minute: {detail}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let p = crate::percentile;
    println!(
        "fleet remote work ({count} no-op tasks pinned to the real agent's node, {rate}/s, each \
         waited for in the agent's long poll): enqueue to start on the node p50 {:.1} ms, \
         p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        p(&waits_ms, 0.5),
        p(&waits_ms, 0.95),
        p(&waits_ms, 0.99),
        p(&waits_ms, 1.0),
    );
    Ok(())
}

/// `steward agent {subcommand}` on `data` and `config`, untouched by the bench's environment.
fn agent_command(
    exe: &Path,
    subcommand: &str,
    data: &Path,
    config: &Path,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(exe);
    for var in steward_config::settings::ENVIRONMENT
        .iter()
        .chain(&["STEWARD_JOIN_TOKEN", "STEWARD_AGENT_DATA_DIR"])
    {
        command.env_remove(var);
    }
    command
        .args(["agent", subcommand, "--data-dir"])
        .arg(data)
        .arg("--config")
        .arg(config);
    command
}

/// The real agent's node's last heartbeat, ms since the epoch.
async fn last_seen(http: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<Option<i64>> {
    let node: serde_json::Value = answer(
        http.get(format!("{url}{}", paths::NODE.with(&[&REAL_AGENT_NODE])))
            .bearer_auth(key)
            .send()
            .await,
        "reading the agent's node",
    )
    .await?;
    Ok(node
        .get("node")
        .and_then(|n| n.get("last_seen_ms"))
        .and_then(serde_json::Value::as_i64))
}

const VHOST_SHOP: &str = "server {\n    listen 443 ssl;\n    listen [::]:443 ssl;\n    \
    server_name shop.example.com www.shop.example.com;\n\n    location / {\n        \
    proxy_pass http://127.0.0.1:3000;\n    }\n\n    location /api/ {\n        \
    proxy_pass http://127.0.0.1:8081/;\n    }\n}\n";

const VHOST_STATUS: &str = "server {\n    listen 80;\n    server_name status.example.com;\n\n    \
    location / {\n        proxy_pass http://127.0.0.1:3001;\n    }\n}\n";

/// The open-file limit raised to its hard limit: the hub (a child, which inherits it) holds a
/// socket per agent connection and the bench one per client connection, past the usual soft
/// limit of 1,024 with thousands of agents.
fn raise_open_files() -> anyhow::Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("reading the open-file limit")?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("raising the open-file limit")?;
    }
    Ok(())
}

/// The CPU time (user + system, all threads, exited ones included) of child process `pid`, to
/// the nanosecond: the real agent spends a few milliseconds a beat, below `/proc`'s 10 ms
/// ticks. Falls back to the ticks where the kernel gives no process clock.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    use nix::time::{clock_getcpuclockid, clock_gettime};
    let clock = i32::try_from(pid)
        .ok()
        .map(nix::unistd::Pid::from_raw)
        .and_then(|pid| clock_getcpuclockid(pid).ok())
        .and_then(|clock| clock_gettime(clock).ok());
    match clock {
        Some(time) => Ok(Duration::from(time)),
        None => crate::daemon::cpu_time(pid),
    }
}

/// SplitMix64: a well-spread 64-bit value from any seed (each agent's phase and its coin for
/// changing), so a run is the same every time without a random-number crate.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A value in [0, 1) from 64 random bits.
fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}
