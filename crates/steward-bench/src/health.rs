//! `steward-bench health`: the prober against N HTTP targets on loopback.
//!
//! The targets are served by a child process (`steward-bench health-targets`), so this
//! process's CPU and memory are the prober's own: the timetable, the probes (a fresh connection
//! each), judging, state tracking, metrics (a Prometheus recorder is installed, as in
//! `steward up`) and the batched writes of results and roll-ups to the store.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use steward_core::health::rollup::percentiles;
use steward_engine::EventBus;
use steward_engine::prober::{self, ProberOptions};
use steward_store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// What to measure.
pub struct HealthBench {
    /// Targets (one check each).
    pub targets: usize,
    /// Seconds between two probes of a check.
    pub interval_s: u64,
    /// Seconds measured, after a warm-up of one interval.
    pub seconds: u64,
    /// Listening sockets the targets are spread over.
    pub ports: usize,
}

/// Runs the prober on `store` against the targets and prints its figures.
pub async fn run(store: Arc<dyn Store>, bench: &HealthBench) -> anyhow::Result<()> {
    // As `steward up` installs it: histograms with fixed buckets for `*_seconds`.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
            steward_engine::SECONDS_BUCKETS,
        )
        .context("invalid histogram buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    let mut targets = TargetProcess::spawn(bench.ports)?;
    let config = Arc::new(config(bench, &targets.ports)?);
    // As `steward up` does after loading its config.
    steward_engine::memory::release_freed_memory();
    let (loaded_rss, _) = memory()?;
    let source: prober::ConfigSource = Arc::new(move || Arc::clone(&config));
    let stop = CancellationToken::new();
    let mut options = ProberOptions::new("bench");
    options.max_concurrent = 1_024;
    let (handle, task) = prober::spawn(
        Arc::clone(&store),
        EventBus::new(),
        source,
        options,
        stop.clone(),
    )?;
    // The daemon's upkeep: histograms every 5 s, freed memory back every minute.
    let upkeep = tokio::spawn(async move {
        for turn in 0u64.. {
            tokio::time::sleep(Duration::from_secs(5)).await;
            recorder.run_upkeep();
            if turn % 12 == 11 {
                steward_engine::memory::release_freed_memory();
            }
        }
    });

    // Leadership, the first probe of every check (spread over one interval) and the first
    // writes; then the steady state is measured.
    let warm_up = Duration::from_secs(bench.interval_s + 3);
    tokio::time::sleep(warm_up).await;
    let stats = Arc::clone(handle.stats());
    stats.reset_lateness();
    let probes_before = stats.probes();
    let skipped_before = stats.skipped();
    let (cpu, wall) = (crate::cpu_time()?, Instant::now());
    tokio::time::sleep(Duration::from_secs(bench.seconds)).await;
    let cpu = crate::cpu_time()? - cpu;
    let elapsed = wall.elapsed();
    let probes = stats.probes() - probes_before;
    let skipped = stats.skipped() - skipped_before;
    let lateness = percentiles(&[stats.lateness()]);
    let (rss, peak) = memory()?;
    let failures = failed_results(store.as_ref(), bench).await?;
    stop.cancel();
    task.await.context("the prober failed")?;
    upkeep.abort();
    targets.stop();

    let share = cpu.as_secs_f64() / elapsed.as_secs_f64();
    let per_thousand = if probes == 0 {
        0.0
    } else {
        cpu.as_secs_f64() * 1_000.0 / probes as f64
    };
    println!(
        "{} targets every {} s, measured {} s after a {} s warm-up",
        bench.targets,
        bench.interval_s,
        bench.seconds,
        warm_up.as_secs()
    );
    println!(
        "  probes: {probes} ({:.0}/s, expected {:.0}/s), failed {failures}, slots skipped {skipped}",
        probes as f64 / elapsed.as_secs_f64(),
        bench.targets as f64 / bench.interval_s as f64
    );
    println!(
        "  CPU: {:.2} % of one core; {:.1} ms of CPU per 1,000 probes",
        share * 100.0,
        per_thousand * 1_000.0
    );
    println!(
        "  memory: RSS {:.1} MB (peak {:.1} MB; {:.1} MB once the config was loaded, before probing)",
        rss as f64 / 1e6,
        peak as f64 / 1e6,
        loaded_rss as f64 / 1e6
    );
    println!(
        "  lateness (slot to probe start): p50 {} ms, p95 {} ms, p99 {} ms over {} probes",
        shown(lateness.p50_ms),
        shown(lateness.p95_ms),
        shown(lateness.p99_ms),
        lateness.count
    );
    Ok(())
}

fn shown(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".into(), |ms| ms.to_string())
}

/// A config of `targets` services, each with its URL's default HTTP check.
fn config(bench: &HealthBench, ports: &[u16]) -> anyhow::Result<steward_config::Config> {
    let mut text = String::new();
    for i in 0..bench.targets {
        let port = ports[i % ports.len()];
        text.push_str(&format!(
            "[[services]]\nname = \"t{i}\"\nurl = \"http://127.0.0.1:{port}/health/{i}\"\n\n[[checks]]\nservice = \"t{i}\"\ninterval = \"{}s\"\ntimeout = \"{}s\"\nconditions = [\"[STATUS] == 200\", \"[BODY].status == UP\"]\n\n",
            bench.interval_s,
            bench.interval_s.min(5)
        ));
    }
    let loaded = steward_config::parse_str("bench.toml", &text, &|_| None)
        .map_err(|e| anyhow::anyhow!("the generated config is invalid: {e}"))?;
    Ok(loaded.config)
}

/// Failed results recorded for the first few checks (a sample; all should pass).
async fn failed_results(store: &dyn Store, bench: &HealthBench) -> anyhow::Result<usize> {
    let mut failed = 0;
    for i in 0..bench.targets.min(50) {
        failed += store
            .probe_results(&format!("t{i}-http"), 0, 10_000)
            .await?
            .iter()
            .filter(|r| r.verdict == steward_core::health::state::ProbeVerdict::Fail)
            .count();
    }
    Ok(failed)
}

/// This process's resident memory and its peak, in bytes.
fn memory() -> anyhow::Result<(u64, u64)> {
    crate::memory_of("self")
}

/// The child process serving the targets.
struct TargetProcess {
    child: Child,
    ports: Vec<u16>,
}

impl TargetProcess {
    fn spawn(ports: usize) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating steward-bench")?;
        let mut child = Command::new(exe)
            .args(["health-targets", "--ports", &ports.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the target process")?;
        let stdout = child.stdout.take().context("the target process's output")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the target ports")?;
        let ports = line
            .split_whitespace()
            .map(|p| p.parse::<u16>())
            .collect::<Result<Vec<_>, _>>()
            .context("the target process printed no ports")?;
        anyhow::ensure!(!ports.is_empty(), "the target process printed no ports");
        Ok(Self { child, ports })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TargetProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `steward-bench health-targets`: serves `{"status":"UP"}` on `ports` loopback sockets, prints
/// their ports on one line, and exits when its standard input closes.
pub async fn serve_targets(ports: usize) -> anyhow::Result<()> {
    let mut bound = Vec::new();
    for _ in 0..ports.max(1) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        bound.push(listener.local_addr()?.port());
        tokio::spawn(accept(listener));
    }
    println!(
        "{}",
        bound
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    // Ends when the parent goes away.
    tokio::task::spawn_blocking(|| {
        use std::io::Read;
        let mut buf = [0u8; 64];
        while std::io::stdin().read(&mut buf).unwrap_or(0) > 0 {}
    })
    .await
    .context("waiting for the parent")?;
    Ok(())
}

async fn accept(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(answer(stream));
    }
}

/// Reads one request's head and answers it, then closes.
async fn answer(mut stream: tokio::net::TcpStream) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                head.extend_from_slice(&buf[..n]);
                if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() > 16_384 {
                    break;
                }
            }
        }
    }
    const BODY: &str = "{\"status\":\"UP\"}";
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
