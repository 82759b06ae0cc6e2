//! Health probing: the instance holding the prober lease probes every declared check on one
//! timetable ([`runner`]), judges each result against the check's conditions ([`judge`]),
//! tracks states with flap protection and writes results, roll-ups, states and transitions to
//! the store. The probes themselves ([`probe`]) are HTTP, TCP, TLS, certificate files and
//! commands. What people ask of checks — services' states, a check's percentiles and history,
//! run now — is in [`ops`].

pub mod ops;
mod runner;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use steward_config::Config;
use steward_core::audit::Actor;
use steward_core::health::rollup::Rollup;
use steward_core::health::state::CheckState;
use steward_store::{ProbeRecord, Store};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bus::EventBus;
use crate::control::RedactorSource;
pub use steward_probe::{Cause, Failure, Judgement, Observation, Prober, judge};

/// The result of `seen` for `check` as it is kept and reported, judged by `judgement`; and why
/// it did not pass (empty when it passed).
pub fn probe_record(judgement: Judgement, check: &str, seen: Observation) -> (ProbeRecord, String) {
    let (cause, error) = match seen.failure {
        Some(failure) => (
            Some(failure.cause.as_str().to_owned()),
            Some(failure.message),
        ),
        None => (None, None),
    };
    let record = ProbeRecord {
        check: check.to_owned(),
        at_ms: seen.started_ms,
        verdict: judgement.verdict,
        latency_ms: seen.latency_ms,
        status: seen.context.status,
        cause,
        error,
        conditions: judgement.conditions,
        cert_not_after_ms: seen.cert_not_after_ms,
        certificates: seen.certificates,
    };
    (record, judgement.reason)
}

/// Gives the config in force (read on every wake-up; a new one reloads the timetable).
pub type ConfigSource = Arc<dyn Fn() -> Arc<Config> + Send + Sync>;

/// How the prober runs on this instance.
#[derive(Clone)]
pub struct ProberOptions {
    /// This instance's unique name (the lease holder).
    pub instance: String,
    /// How long the lease lasts without renewal.
    pub lease_ms: u64,
    /// Probes in flight at most.
    pub max_concurrent: u32,
    /// How often judged results are written to the store.
    pub flush_interval: Duration,
    /// The longest the loop sleeps without looking at its config.
    pub max_sleep: Duration,
    /// The secrets to mask in what probes observe (read at every probe).
    pub redactor: RedactorSource,
}

impl ProberOptions {
    /// Defaults (10 s lease, 512 probes in flight, writes every second, no secrets to mask)
    /// for `instance`.
    pub fn new(instance: impl Into<String>) -> Self {
        Self {
            instance: instance.into(),
            lease_ms: 10_000,
            max_concurrent: steward_core::health::spec::HealthSettings::DEFAULT_MAX_CONCURRENT,
            flush_interval: Duration::from_secs(1),
            max_sleep: Duration::from_secs(1),
            redactor: crate::no_redaction(),
        }
    }
}

/// The answer to "run this check now".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// The result, as recorded (or as it would have been).
    pub record: ProbeRecord,
    /// Why it did not pass (empty when it passed).
    pub reason: String,
    /// The check's state afterwards (unchanged when not recorded).
    pub state: CheckState,
    /// True when the result counted toward the check's state (this instance probes); false
    /// when another instance holds the prober lease and this one only looked.
    pub recorded: bool,
}

/// Counters of the probing loop, for the benchmark and the logs.
pub struct Stats {
    leading: AtomicBool,
    probes: AtomicU64,
    skipped: AtomicU64,
    lateness: Mutex<Rollup>,
    lateness_seconds: metrics::Histogram,
}

impl Stats {
    fn new() -> Self {
        Self {
            leading: AtomicBool::new(false),
            probes: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            lateness: Mutex::new(Rollup::new(0)),
            lateness_seconds: metrics::histogram!("steward_probe_lateness_seconds"),
        }
    }

    /// Whether this instance probes now.
    pub fn leading(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }

    /// Probes judged since start.
    pub fn probes(&self) -> u64 {
        self.probes.load(Ordering::Relaxed)
    }

    /// Slots skipped because the previous probe of the check was still running.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// How late scheduled probes started (milliseconds past their slot), as a histogram; see
    /// [`steward_core::health::rollup::percentiles`].
    pub fn lateness(&self) -> Rollup {
        self.lateness
            .lock()
            .map(|l| l.clone())
            .unwrap_or_else(|_| Rollup::new(0))
    }

    /// Forgets the lateness seen so far (the benchmark measures after a warm-up).
    pub fn reset_lateness(&self) {
        if let Ok(mut lateness) = self.lateness.lock() {
            *lateness = Rollup::new(0);
        }
    }

    fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Relaxed);
    }

    fn count_probe(&self) {
        self.probes.fetch_add(1, Ordering::Relaxed);
    }

    fn count_skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("steward_probe_slots_skipped_total").increment(1);
    }

    fn record_lateness(&self, late_ms: i64) {
        let late = u64::try_from(late_ms).unwrap_or(0);
        self.lateness_seconds.record(late as f64 / 1_000.0);
        if let Ok(mut lateness) = self.lateness.lock() {
            lateness.record(late, true);
        }
    }
}

/// Asks the prober for things; cheap to clone.
#[derive(Clone)]
pub struct ProberHandle {
    requests: mpsc::Sender<runner::RunNow>,
    config: ConfigSource,
    prober: Prober,
    stats: Arc<Stats>,
}

/// Why a check could not be run now.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No check has that name.
    #[error("no check named `{0}`")]
    UnknownCheck(String),
}

impl ProberHandle {
    /// The loop's counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Probes `check` at once for `actor`. On the instance that probes, the result counts
    /// toward the check's state like any other and is audited with it; elsewhere (or for a
    /// disabled check) the probe is made and judged here and nothing is recorded.
    pub async fn run_now(&self, check: &str, actor: &Actor) -> Result<RunReport, RunError> {
        let config = (self.config)();
        let spec = config
            .checks
            .iter()
            .find(|c| c.name == check)
            .ok_or_else(|| RunError::UnknownCheck(check.to_owned()))?;
        if self.stats.leading() && spec.enabled {
            let (reply, answer) = oneshot::channel();
            let workspace = config
                .registry
                .services
                .iter()
                .find(|s| s.name == spec.service)
                .and_then(|s| s.workspace.clone());
            let request = runner::RunNow {
                check: check.to_owned(),
                asked: runner::Asked {
                    reply,
                    actor: actor.clone(),
                    workspace,
                },
            };
            // Bounded: if the loop cannot answer (a store outage at the start of leading), the
            // probe is made here instead.
            let patience = Duration::from_millis(spec.timeout_ms.saturating_add(5_000));
            if self.requests.send(request).await.is_ok()
                && let Ok(Ok(report)) = tokio::time::timeout(patience, answer).await
            {
                return Ok(report);
            }
        }
        let seen = self.prober.probe(spec).await;
        let judgement = judge(&spec.effective_conditions(), &seen);
        let (record, reason) = probe_record(judgement, check, seen);
        Ok(RunReport {
            record,
            reason,
            state: CheckState::Unknown,
            recorded: false,
        })
    }
}

/// Why the prober could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for probes: {0}")]
    Client(#[from] reqwest::Error),
    /// Its thread or runtime could not be started.
    #[error("cannot start the prober's thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Starts the prober: it seeks the prober lease and, while it holds it, probes. The task ends
/// once `shutdown` is cancelled, pending results are written and the lease is given up.
///
/// Probing runs on a thread of its own with a single-threaded runtime: thousands of short
/// probes spread over the time cost a quarter less CPU there than on the shared multi-threaded
/// runtime, where each one wakes parked workers. Store calls go back to the calling runtime,
/// which owns the store's connections. Must be called within a Tokio runtime.
pub fn spawn(
    store: Arc<dyn Store>,
    bus: EventBus,
    config: ConfigSource,
    options: ProberOptions,
    shutdown: CancellationToken,
) -> Result<(ProberHandle, JoinHandle<()>), StartError> {
    let prober = Prober::new(Arc::clone(&options.redactor))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stats = Arc::new(Stats::new());
    let (held, leadership) = watch::channel(None);
    let (requests, inbox) = mpsc::channel(64);
    let handle = ProberHandle {
        requests,
        config: Arc::clone(&config),
        prober: prober.clone(),
        stats: Arc::clone(&stats),
    };
    let instance = options.instance.clone();
    let lease_ms = options.lease_ms;
    let runner = runner::Runner {
        store: Arc::clone(&store),
        store_runtime: tokio::runtime::Handle::current(),
        bus: bus.clone(),
        config,
        options,
        prober,
        stats: Arc::clone(&stats),
    };
    let (finished, ended) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("steward-prober".into())
        .spawn(move || {
            runtime.block_on(runner.run(leadership, inbox, shutdown));
            let _ = finished.send(());
        })?;
    // The lease is sought only once the loop runs, and given up only after it has written
    // what it holds.
    let stop_leading = CancellationToken::new();
    let leader = tokio::spawn(crate::lease::lead(
        crate::lease::PROBER,
        store,
        bus,
        instance,
        lease_ms,
        held,
        stop_leading.clone(),
    ));
    let task = tokio::spawn(async move {
        // Ends when the prober's thread does, or dies (its panic is the reason the sender was
        // dropped without a word).
        if ended.await.is_err() {
            tracing::error!("the prober's thread died; this instance no longer probes");
        }
        stats.set_leading(false);
        stop_leading.cancel();
        if let Err(error) = leader.await {
            tracing::warn!(%error, "the prober's lease task failed");
        }
    });
    Ok((handle, task))
}
