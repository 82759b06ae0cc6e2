//! `steward-bench events`: the live event stream under load, end to end.
//!
//! The release `steward` binary runs as a child process with one no-op queue. Each run works
//! the same batch of tasks twice: once with no stream client, once with `--clients` clients
//! following `GET /api/v1/events` (every type), alternating which goes first (the queue slows
//! as finished tasks pile up, which would favour the half worked first); use an even number
//! of runs. Tasks are enqueued ahead of a common due time,
//! so a run measures the workers alone: tasks per second from the due time to the last
//! success. With clients, each event's delay from its `at_ms` (set when the change committed)
//! to its arrival at a client is recorded, and split in two by the event's first arrival at
//! any client: the server's own path (by event type), then the fan-out to the other clients,
//! which on a small host also measures the bench's own clients competing for the CPU. The
//! daemon's own histogram says how soon its hub handed events out. It also reports the
//! daemon's RSS growth per idle connected client.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use tokio::task::JoinSet;

use crate::daemon::{memory, report_log, steward_binary};

/// What to run.
pub struct EventsBench {
    /// `sqlite` or `postgres`, for the report.
    pub backend: &'static str,
    /// The PostgreSQL database, when on PostgreSQL.
    pub database: Option<String>,
    /// Stream clients.
    pub clients: usize,
    /// Tasks per run.
    pub tasks: usize,
    /// The queue's slots.
    pub concurrency: u32,
    /// Runs (each without, then with clients).
    pub runs: usize,
}

const QUEUE: &str = "bench";

/// Runs the benchmark and prints its figures.
pub async fn run(bench: &EventsBench) -> anyhow::Result<()> {
    let exe = steward_binary()?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let config = dir.path().join("steward.toml");
    let places = bench.clients * 2 + 256;
    std::fs::write(
        &config,
        format!(
            "[api]\nmax_connections = {places}\nmax_connections_per_address = {places}\n\
             max_event_streams = {}\nmax_batch_body_bytes = 268435456\n\n\
             [api.rate_limits]\nadmin = 1000000\noperator = 1000000\nviewer = 1000000\n\n\
             [[queues]]\nname = \"{QUEUE}\"\nkinds = [\"noop\"]\nconcurrency = {}\n",
            bench.clients + 16,
            bench.concurrency
        ),
    )
    .context("writing the config")?;
    let log = dir.path().join("steward.log");
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
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .context("building the HTTP client")?;
    println!(
        "events: {} on {}, {} tasks per run, concurrency {}, {} clients; steward pid {pid}",
        exe.display(),
        bench.backend,
        bench.tasks,
        bench.concurrency,
        bench.clients
    );
    // A small run first: connections, caches and the database warm up.
    work(&http, &url, &key, bench.tasks.min(20_000)).await?;

    let mut without = Vec::new();
    let mut with = Vec::new();
    let mut delays = Delays::default();
    let mut per_client_rss = Vec::new();
    let mut received = 0u64;
    for run in 1..=bench.runs {
        // The queue slows as finished tasks pile up, so the half worked second is at a
        // disadvantage: odd runs work without clients first, even runs with them first.
        let clients_first = run % 2 == 0;
        let rate = if clients_first {
            None
        } else {
            Some(work(&http, &url, &key, bench.tasks).await?)
        };
        let (rss_before, _) = memory(pid)?;
        let clients = Clients::connect(&url, &key, bench.clients).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (rss_after, _) = memory(pid)?;
        let growth = (rss_after as f64 - rss_before as f64) / bench.clients.max(1) as f64;
        per_client_rss.push(growth);
        let hub_before = hub_delays(&http, &url, &key).await?;
        let rate_with = work(&http, &url, &key, bench.tasks).await?;
        // Late events of the run still arrive.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let hub_after = hub_delays(&http, &url, &key).await?;
        let (run_delays, events) = clients.finish().await;
        let rate = match rate {
            Some(rate) => rate,
            None => work(&http, &url, &key, bench.tasks).await?,
        };
        without.push(rate);
        with.push(rate_with);
        received += events;
        println!(
            "  run {run} ({} first): without clients {rate:.0} tasks/s, with {} clients {rate_with:.0} tasks/s ({:+.1} %); \
             {events} events delivered; {}; hub hand-out {}; RSS {:+.1} kB per idle client",
            if clients_first {
                "with clients"
            } else {
                "without"
            },
            bench.clients,
            (rate_with / rate - 1.0) * 100.0,
            run_delays.summary(),
            hub_shares(&hub_before, &hub_after),
            growth / 1e3,
        );
        delays.extend(run_delays);
    }
    // Of an even count, the mean of the middle two.
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => 0.0,
            n if n % 2 == 0 => (v[n / 2 - 1] + v[n / 2]) / 2.0,
            n => v[n / 2],
        }
    };
    // Each run pairs its two halves: the queue slows from run to run as finished tasks pile
    // up, so the change is taken within a run, then its median over the runs.
    let mut changes: Vec<f64> = without
        .iter()
        .zip(&with)
        .map(|(alone, streamed)| (streamed / alone - 1.0) * 100.0)
        .collect();
    let change = median(&mut changes);
    let (without, with) = (median(&mut without), median(&mut with));
    println!(
        "  median: without clients {without:.0} tasks/s, with {} clients {with:.0} tasks/s; change within a run: median {change:+.1} %",
        bench.clients,
    );
    println!(
        "  commit → client over {received} events: {}",
        delays.summary()
    );
    println!(
        "  RSS growth per idle client: median {:.1} kB",
        median(&mut per_client_rss) / 1e3
    );
    steward.stop()?;
    report_log(&log);
    Ok(())
}

fn pct(sorted_or_not: &[i64], p: f64) -> i64 {
    let mut v = sorted_or_not.to_vec();
    v.sort_unstable();
    v.get(((v.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(0)
}

/// Enqueues `tasks` no-op tasks due at one time ahead, then answers how many per second the
/// workers finished from that time on.
async fn work(http: &reqwest::Client, url: &str, key: &str, tasks: usize) -> anyhow::Result<f64> {
    let done_before = succeeded(http, url, key).await?;
    // Enqueueing 10,000 tasks takes well under a second; leave room.
    let lead = Duration::from_millis(1_500 + (tasks as u64 / 10));
    let due = steward_store::now_ms() + i64::try_from(lead.as_millis()).unwrap_or(i64::MAX);
    crate::daemon::enqueue_noops(http, url, key, QUEUE, tasks, due).await?;
    let now = steward_store::now_ms();
    anyhow::ensure!(
        now < due,
        "enqueueing took longer than the lead; lower --tasks"
    );
    tokio::time::sleep(Duration::from_millis(u64::try_from(due - now).unwrap_or(0))).await;
    let target = done_before + tasks as u64;
    loop {
        let done = succeeded(http, url, key).await?;
        if done >= target {
            let elapsed = (steward_store::now_ms() - due).max(1) as f64 / 1e3;
            return Ok(tasks as f64 / elapsed);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The daemon's own histogram of the delay from commit to its hub handing an event out:
/// cumulative counts per bucket bound (seconds).
async fn hub_delays(
    http: &reqwest::Client,
    url: &str,
    key: &str,
) -> anyhow::Result<Vec<(f64, f64)>> {
    Ok(metrics_text(http, url, key)
        .await?
        .lines()
        .filter_map(|l| l.strip_prefix("steward_event_stream_delay_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, rest) = l.split_once('"')?;
            let count = rest.rsplit(' ').next()?.parse::<f64>().ok()?;
            Some((le.parse::<f64>().unwrap_or(f64::INFINITY), count))
        })
        .collect())
}

/// The share of events handed out within 25, 50 and 100 ms between two readings of
/// [`hub_delays`].
fn hub_shares(before: &[(f64, f64)], after: &[(f64, f64)]) -> String {
    let count = |v: &[(f64, f64)], le: f64| {
        v.iter()
            .find(|(bound, _)| *bound == le || (*bound - le).abs() < 1e-9)
            .map_or(0.0, |(_, n)| *n)
    };
    let total = count(after, f64::INFINITY) - count(before, f64::INFINITY);
    if total <= 0.0 {
        return "no events handed out".into();
    }
    let share = |le: f64| (count(after, le) - count(before, le)) / total * 100.0;
    format!(
        "{:.1} % ≤ 25 ms, {:.1} % ≤ 50 ms, {:.1} % ≤ 100 ms",
        share(0.025),
        share(0.05),
        share(0.1)
    )
}

/// The daemon's `/metrics`.
async fn metrics_text(http: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<String> {
    http.get(format!("{url}/metrics"))
        .bearer_auth(key)
        .send()
        .await
        .context("reading /metrics")?
        .text()
        .await
        .context("reading /metrics")
}

/// Tasks of the queue that succeeded so far, from `/metrics`.
async fn succeeded(http: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<u64> {
    Ok(metrics_text(http, url, key)
        .await?
        .lines()
        .filter(|l| {
            l.starts_with("steward_tasks_finished_total{")
                && l.contains(&format!("queue=\"{QUEUE}\""))
                && l.contains("status=\"succeeded\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum())
}

/// One event's arrival at one client.
struct Arrival {
    id: String,
    kind: String,
    at_ms: i64,
    arrived_ms: i64,
}

/// A run's delays, in milliseconds.
#[derive(Default)]
struct Delays {
    /// From each event's `at_ms` to its arrival, per event and client.
    all: Vec<i64>,
    /// From each event's first arrival to its arrival at each client: the fan-out.
    spread: Vec<i64>,
    /// From each event's `at_ms` to its first arrival at any client (the server's own path),
    /// by event type.
    first_by_kind: BTreeMap<String, Vec<i64>>,
}

impl Delays {
    fn of(arrivals: &[Arrival]) -> Self {
        // Each event's first arrival, and the arrival that names its type and time.
        let mut first: HashMap<&str, (i64, &Arrival)> = HashMap::new();
        for a in arrivals {
            let earliest = first.entry(&a.id).or_insert((a.arrived_ms, a));
            earliest.0 = earliest.0.min(a.arrived_ms);
        }
        let mut delays = Self::default();
        for a in arrivals {
            let earliest = first.get(a.id.as_str()).map_or(a.arrived_ms, |f| f.0);
            delays.all.push(a.arrived_ms - a.at_ms);
            delays.spread.push(a.arrived_ms - earliest);
        }
        for (earliest, a) in first.into_values() {
            delays
                .first_by_kind
                .entry(a.kind.clone())
                .or_default()
                .push(earliest - a.at_ms);
        }
        delays
    }

    fn extend(&mut self, other: Self) {
        self.all.extend(other.all);
        self.spread.extend(other.spread);
        for (kind, delays) in other.first_by_kind {
            self.first_by_kind.entry(kind).or_default().extend(delays);
        }
    }

    fn summary(&self) -> String {
        let first: Vec<i64> = self.first_by_kind.values().flatten().copied().collect();
        let kinds: Vec<String> = self
            .first_by_kind
            .iter()
            .map(|(kind, d)| {
                format!(
                    "{kind} ×{} p50 {} p99 {}",
                    d.len(),
                    pct(d, 0.5),
                    pct(d, 0.99)
                )
            })
            .collect();
        format!(
            "delay p50 {} p99 {} max {} ms (first arrival p50 {} p99 {} ms [{}]; fan-out p50 {} p99 {} ms)",
            pct(&self.all, 0.50),
            pct(&self.all, 0.99),
            self.all.iter().max().copied().unwrap_or(0),
            pct(&first, 0.50),
            pct(&first, 0.99),
            kinds.join(", "),
            pct(&self.spread, 0.50),
            pct(&self.spread, 0.99),
        )
    }
}

/// Stream clients, each recording every event's arrival.
struct Clients {
    tasks: JoinSet<Vec<Arrival>>,
    stop: tokio_util::sync::CancellationToken,
    events: Arc<AtomicU64>,
}

impl Clients {
    async fn connect(url: &str, key: &str, count: usize) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .context("building the stream client")?;
        let stop = tokio_util::sync::CancellationToken::new();
        let events = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        for _ in 0..count {
            let response = http
                .get(format!("{url}/api/v1/events"))
                .bearer_auth(key)
                .send()
                .await
                .context("opening a stream")?;
            anyhow::ensure!(
                response.status().is_success(),
                "the stream answered {}",
                response.status()
            );
            let (stop, events) = (stop.clone(), Arc::clone(&events));
            tasks.spawn(async move { follow(response, stop, events).await });
        }
        Ok(Self {
            tasks,
            stop,
            events,
        })
    }

    async fn finish(mut self) -> (Delays, u64) {
        self.stop.cancel();
        let mut arrivals = Vec::new();
        while let Some(Ok(mut a)) = self.tasks.join_next().await {
            arrivals.append(&mut a);
        }
        (Delays::of(&arrivals), self.events.load(Ordering::Relaxed))
    }
}

async fn follow(
    response: reqwest::Response,
    stop: tokio_util::sync::CancellationToken,
    events: Arc<AtomicU64>,
) -> Vec<Arrival> {
    let mut arrivals = Vec::new();
    let mut body = response.bytes_stream();
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let chunk = tokio::select! {
            () = stop.cancelled() => return arrivals,
            chunk = body.next() => chunk,
        };
        let Some(Ok(chunk)) = chunk else {
            return arrivals;
        };
        let now = steward_store::now_ms();
        pending.extend_from_slice(&chunk);
        while let Some(end) = find(&pending, b"\n\n") {
            let event = &pending[..end];
            // The SSE id (the stream position) names an event across clients.
            if let (Some(at), Some(id)) = (at_ms(event), field(event, b"id: ")) {
                let kind = field(event, b"event: ").unwrap_or_default();
                arrivals.push(Arrival {
                    id,
                    kind,
                    at_ms: at,
                    arrived_ms: now,
                });
                events.fetch_add(1, Ordering::Relaxed);
            }
            pending.drain(..end + 2);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The value of an SSE event's field `name` (with its `: `).
fn field(event: &[u8], name: &[u8]) -> Option<String> {
    let line = event
        .split(|b| *b == b'\n')
        .find_map(|l| l.strip_prefix(name))?;
    std::str::from_utf8(line).ok().map(str::to_owned)
}

/// The `at_ms` of an event's data, read without parsing the whole JSON.
fn at_ms(event: &[u8]) -> Option<i64> {
    let key = b"\"at_ms\":";
    let start = find(event, key)? + key.len();
    let digits: Vec<u8> = event[start..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}
