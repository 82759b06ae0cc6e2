//! `steward up`: the daemon.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use steward_api::{ApiOptions, AppState, MetricsRenderer};
use steward_config::{Config, DaemonSettings};
use steward_core::audit::Actor;
use steward_engine::stream::{self, EventHub, HubOptions};
use steward_engine::{Authenticator, ControlPlane, EventBus, RedactorSource, SystemEnv};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::cli::{LogArgs, UpArgs};
use crate::commands::{load_or_exit, log_warnings, settings_or_exit};
use crate::{logging, store};

/// How long the start-up integrity check of an embedded database may take: large files are
/// checked in part rather than delaying the start.
const INTEGRITY_CHECK_BUDGET: Duration = Duration::from_secs(10);

pub fn run(args: UpArgs, log: &LogArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let loaded = match load_or_exit(&args.config) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let settings = match settings_or_exit(&loaded.config.settings, args.database, args.listen, log)
    {
        Ok(settings) => settings,
        Err(code) => return Ok(code),
    };
    let admin_hash = match admin_key_hash() {
        Ok(hash) => hash,
        Err(code) => return Ok(code),
    };
    logging::init(settings.log_format, &settings.log_level)?;
    log_warnings(&loaded.warnings);
    let metrics = install_metrics()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("steward")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(
        args.config,
        loaded.config,
        settings,
        metrics,
        admin_hash,
        started,
    ))
}

/// The dashboard's options, or `None` when `[ui] enabled = false`.
fn ui_options(ui: &steward_config::UiSettings) -> Option<steward_ui::UiOptions> {
    if ui.enabled == Some(false) {
        return None;
    }
    let defaults = steward_ui::UiOptions::default();
    Some(steward_ui::UiOptions {
        base_path: ui.base_path.clone().unwrap_or_default(),
        secure_cookies: ui.secure_cookies.unwrap_or(defaults.secure_cookies),
        session_idle: ui.session_idle_minutes.map_or(defaults.session_idle, |m| {
            Duration::from_secs(u64::from(m) * 60)
        }),
        session_max: ui.session_max_hours.map_or(defaults.session_max, |h| {
            Duration::from_secs(u64::from(h) * 3600)
        }),
    })
}

/// The `[api]` section over the built-in defaults.
fn api_options(settings: &steward_config::FileSettings) -> ApiOptions {
    let api = &settings.api;
    let defaults = ApiOptions::default();
    let rate = |configured: Option<u32>, default| {
        configured
            .and_then(std::num::NonZeroU32::new)
            .unwrap_or(default)
    };
    let limits = defaults.rate_limits;
    ApiOptions {
        metrics_public: api.metrics_public.unwrap_or(defaults.metrics_public),
        public_badges: settings.ui.public_badges.unwrap_or(defaults.public_badges),
        rate_limits: steward_api::RateLimits {
            viewer: rate(api.viewer_rate, limits.viewer),
            operator: rate(api.operator_rate, limits.operator),
            admin: rate(api.admin_rate, limits.admin),
            agent: rate(api.agent_rate, limits.agent),
            auth_failures_per_minute: rate(
                api.auth_failures_per_minute,
                limits.auth_failures_per_minute,
            ),
        },
        cors_origins: api.cors_origins.clone(),
        max_connections: max_connections(api, &defaults),
        max_connections_per_address: api
            .max_connections_per_address
            .map_or(defaults.max_connections_per_address, |n| n as usize),
        // Streams are proven connections that stay: a quarter of the places is kept for others.
        max_event_streams: api.max_event_streams.map_or_else(
            || (max_connections(api, &defaults) * 3 / 4).max(1),
            |n| n as usize,
        ),
        max_body_bytes: api
            .max_body_bytes
            .map_or(defaults.max_body_bytes, |n| n as usize),
        // A batch route takes at least what any route takes.
        max_batch_body_bytes: api
            .max_batch_body_bytes
            .map_or(defaults.max_batch_body_bytes, |n| n as usize)
            .max(api.max_body_bytes.map_or(0, |n| n as usize)),
        request_timeout: api
            .request_timeout_secs
            .map_or(defaults.request_timeout, |s| {
                Duration::from_secs(u64::from(s))
            }),
        header_timeout: api
            .header_timeout_secs
            .map_or(defaults.header_timeout, |s| {
                Duration::from_secs(u64::from(s))
            }),
        min_body_rate: steward_api::MinRate {
            bytes_per_second: api
                .min_body_bytes_per_second
                .map_or(defaults.min_body_rate.bytes_per_second, u64::from),
            ..defaults.min_body_rate
        },
    }
}

/// `STEWARD_ADMIN_KEY_HASH`, checked to be an Argon2 PHC string.
fn max_connections(api: &steward_config::ApiSettings, defaults: &ApiOptions) -> usize {
    api.max_connections
        .map_or(defaults.max_connections, |n| n as usize)
}

fn admin_key_hash() -> Result<Option<String>, ExitCode> {
    let Some(hash) = std::env::var("STEWARD_ADMIN_KEY_HASH")
        .ok()
        .filter(|h| !h.is_empty())
    else {
        return Ok(None);
    };
    match steward_engine::keys::check_admin_hash(&hash) {
        Ok(()) => Ok(Some(hash)),
        Err(problem) => {
            eprintln!("error: STEWARD_ADMIN_KEY_HASH: {problem}");
            Err(ExitCode::from(crate::EXIT_INVALID))
        }
    }
}

/// On the first start, with no key stored and none given by hash, creates the `admin` key and
/// prints it once on standard output (never into the logs).
async fn bootstrap_admin_key(
    store: &dyn steward_store::Store,
    admin_hash: Option<&String>,
) -> anyhow::Result<()> {
    if admin_hash.is_some() {
        return Ok(());
    }
    if let Some(secret) = steward_engine::keys::create_first_admin_key(store)
        .await
        .context("cannot create the first admin key")?
    {
        tracing::warn!(
            key = "admin",
            "created the first admin key; it was printed once on standard output"
        );
        println!("admin key (shown once, store it now): {secret}");
    }
    Ok(())
}

fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            steward_engine::SECONDS_BUCKETS,
        )
        .context("invalid histogram buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    describe_metrics();
    metrics::gauge!("steward_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(handle)
}

/// Gives every metric family the process records its HELP text: each crate that records
/// metrics describes its own.
fn describe_metrics() {
    steward_store::describe_metrics();
    steward_engine::describe_metrics();
    steward_api::describe_metrics();
    metrics::describe_gauge!(
        "steward_build_info",
        "Always 1; the version label is the running binary's version."
    );
}

async fn serve(
    config_path: PathBuf,
    config: Config,
    settings: DaemonSettings,
    metrics: PrometheusHandle,
    admin_hash: Option<String>,
    started: Instant,
) -> anyhow::Result<ExitCode> {
    let store = store::open(&settings.database).await?;
    let report = store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    for m in &report.applied {
        tracing::info!(version = m.version, description = %m.description, "migration applied");
    }
    // The store logs what the check finds; a damaged file keeps the daemon up, not ready.
    if let Err(error) = store.check_integrity(INTEGRITY_CHECK_BUDGET).await {
        tracing::warn!(%error, "the integrity check could not run; carrying on");
    }
    let env: SystemEnv = Arc::new(store::env);
    let (control, _) = ControlPlane::start(
        Arc::clone(&store),
        EventBus::new(),
        &config_path,
        config,
        env,
    )
    .await
    .context("cannot sync the registry into the database")?;
    let control = Arc::new(control.with_daemon_secrets(settings.database.secrets()));
    // Parsing the config and syncing the registry were a burst; give its memory back.
    steward_engine::memory::release_freed_memory();
    bootstrap_admin_key(store.as_ref(), admin_hash.as_ref()).await?;
    if let Some(path) = control.config().settings.audit_mirror.clone() {
        steward_engine::audit_mirror::spawn(Arc::clone(&store), path)
            .context("cannot start the audit mirror")?;
    }
    let auth = Arc::new(Authenticator::new(Arc::clone(&store), admin_hash));
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;

    spawn_metrics_upkeep(metrics.clone());
    let stop_work = tokio_util::sync::CancellationToken::new();
    let (mut workers, prober) = start_work(&control, addr, &stop_work)?;
    spawn_reload_on_sighup(Arc::clone(&control))?;
    let stop_signals = stop_signals()?;
    let renderer: MetricsRenderer = Arc::new(move || metrics.render());
    let options = api_options(&control.config().settings);
    let events = start_event_stream(&control, &options, &stop_work).await?;
    let state = AppState::new(Arc::clone(&control), auth, options, renderer)
        .with_prober(prober)
        .with_events(events);

    tracing::info!(
        %addr,
        database = %settings.database.describe(),
        startup_ms = started.elapsed().as_millis() as u64,
        "steward is up"
    );
    // Printed after the log line, so whoever reads the URL finds the start-up logged too.
    println!("steward listening on http://{addr}");
    std::io::stdout()
        .flush()
        .context("cannot write to standard output")?;
    let ui = ui_options(&control.config().settings.ui);
    let served = steward_ui::serve(
        listener,
        state,
        Arc::clone(&store),
        ui,
        shutdown_requested(stop_signals),
    )
    .await;
    // Workers finish (or hand back) their attempts before the store closes.
    stop_work.cancel();
    for worker in workers.drain(..) {
        let _ = worker.await;
    }
    served.context("the HTTP server failed")?;
    store.close().await;
    tracing::info!("steward stopped");
    Ok(ExitCode::SUCCESS)
}

/// Starts the event stream: the relay of this instance's events into the event log, and the
/// hub that serves the log (every instance's events) to `GET /api/v1/events`.
async fn start_event_stream(
    control: &Arc<ControlPlane>,
    options: &ApiOptions,
    stop: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<Arc<EventHub>> {
    stream::spawn_relay(
        Arc::clone(control),
        stream::RelayOptions::new(worker_name()),
        stop.clone(),
    );
    let hub = EventHub::open(
        Arc::clone(control.store()),
        HubOptions {
            max_subscribers: options.max_event_streams,
            ..HubOptions::default()
        },
    )
    .await
    .context("cannot read the event log")?;
    tokio::spawn(Arc::clone(&hub).run());
    Ok(hub)
}

/// Starts the announcer of pipeline changes, one worker per declared queue not pinned to a
/// node (a node's agent works those), the queue upkeep (reaper, retention, depth), the
/// scheduler, the prober and the alert manager.
fn start_work(
    control: &Arc<ControlPlane>,
    addr: std::net::SocketAddr,
    stop: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<(
    Vec<tokio::task::JoinHandle<()>>,
    steward_engine::prober::ProberHandle,
)> {
    use steward_engine::queue::{upkeep, worker};
    let store = control.store();
    let queues = control.queues();
    let source = Arc::clone(control);
    let registry: worker::RegistrySource = Arc::new(move || source.registry());
    let instance = worker_name();
    // Started before the workers, so that no change their completions make goes
    // unannounced, and awaited after them, so that it announces their last ones.
    let announcer = steward_engine::pipelines::spawn_announcer(
        Arc::clone(store),
        control.bus().clone(),
        stop.clone(),
    );
    let mut handles: Vec<_> = queues
        .iter()
        .filter(|spec| spec.node.is_none())
        .map(|spec| {
            let mut options = worker::WorkerOptions::new(format!("{instance}/{}", spec.name));
            options.redactor = redactor_source(control);
            worker::spawn(
                Arc::clone(store),
                control.bus().clone(),
                Arc::clone(control.executors()),
                Arc::clone(&registry),
                spec.clone(),
                options,
                stop.clone(),
            )
        })
        .collect();
    handles.push(upkeep::spawn(
        Arc::clone(store),
        control.bus().clone(),
        queues.to_vec(),
        upkeep::UpkeepOptions::default(),
        stop.clone(),
    ));
    handles.push(start_scheduler(control, instance.clone(), stop));
    let (prober, probing) = start_prober(control, instance, stop)?;
    handles.push(probing);
    handles.push(start_alerting(control, addr, worker_name(), stop)?);
    handles.push(start_fleet_monitor(control, stop));
    handles.push(announcer);
    Ok((handles, prober))
}

/// Starts judging node statuses from their heartbeats (every instance does; each change is
/// applied once).
fn start_fleet_monitor(
    control: &Arc<ControlPlane>,
    stop: &tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let source = Arc::clone(control);
    tokio::spawn(steward_engine::fleet::run_monitor(
        Arc::clone(control.store()),
        control.bus().clone(),
        Arc::new(move || source.config()),
        stop.clone(),
    ))
}

/// Starts the alert manager: it dispatches and sends notifications while this instance holds
/// the alerting lease.
fn start_alerting(
    control: &Arc<ControlPlane>,
    addr: std::net::SocketAddr,
    instance: String,
    stop: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use steward_engine::alerting;
    let config = control.config();
    let options = alerting::AlertingOptions {
        instance,
        lease_ms: config.settings.scheduler.lease_ms,
        // `alerting.external_url`, read at each attempt, replaces it (a reload applies).
        default_external_url: format!("http://{addr}"),
    };
    let configs = Arc::clone(control);
    let registries = Arc::clone(control);
    alerting::spawn(
        Arc::clone(control.store()),
        control.bus().clone(),
        Arc::new(move || configs.config()),
        Arc::new(move || registries.registry()),
        Arc::clone(control.executors()),
        options,
        stop.clone(),
    )
    .context("cannot start the alert manager")
}

/// Starts the prober: it probes the checks while this instance holds the prober lease.
fn start_prober(
    control: &Arc<ControlPlane>,
    instance: String,
    stop: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<(
    steward_engine::prober::ProberHandle,
    tokio::task::JoinHandle<()>,
)> {
    use steward_engine::prober;
    let config = control.config();
    let mut options = prober::ProberOptions::new(instance);
    options.lease_ms = config.settings.scheduler.lease_ms;
    options.max_concurrent = config.settings.health.max_concurrent;
    options.redactor = redactor_source(control);
    let source = Arc::clone(control);
    prober::spawn(
        Arc::clone(control.store()),
        control.bus().clone(),
        Arc::new(move || source.config()),
        options,
        stop.clone(),
    )
    .context("cannot start the prober")
}

/// The secrets in force, for what masks them in the output of programs and probes.
fn redactor_source(control: &Arc<ControlPlane>) -> RedactorSource {
    let source = Arc::clone(control);
    Arc::new(move || source.redactor())
}

/// Starts the scheduler: it fires while this instance holds the scheduler lease.
fn start_scheduler(
    control: &Arc<ControlPlane>,
    instance: String,
    stop: &tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    use steward_engine::scheduler;
    let settings = control.config().settings.scheduler;
    let mut options = scheduler::SchedulerOptions::new(instance);
    options.lease_ms = settings.lease_ms;
    options.grace_ms = settings.grace_ms;
    let source = Arc::clone(control);
    scheduler::spawn(
        Arc::clone(control.store()),
        control.bus().clone(),
        Arc::new(move || source.config()),
        options,
        stop.clone(),
    )
}

/// This instance's name as a lease owner: host, pid and a random suffix (a restarted process
/// may reuse a pid, never a name).
fn worker_name() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "steward".into());
    let suffix = getrandom::u32().unwrap_or_default();
    format!("{host}:{}:{suffix:08x}", std::process::id())
}

/// Histograms need periodic upkeep to bound their memory; and once a minute, memory freed
/// since (by probes, requests, batches) goes back to the system.
fn spawn_metrics_upkeep(handle: PrometheusHandle) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        for turn in 0u64.. {
            tick.tick().await;
            handle.run_upkeep();
            if turn % 12 == 11 {
                steward_engine::memory::release_freed_memory();
            }
        }
    });
}

fn spawn_reload_on_sighup(control: Arc<ControlPlane>) -> anyhow::Result<()> {
    let mut hangups = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the config");
            match control.reload(&Actor::system("sighup")).await {
                Ok(outcome) => {
                    let counts = outcome.diff.counts();
                    tracing::info!(
                        added = counts.added,
                        updated = counts.updated,
                        removed = counts.removed,
                        "config reloaded"
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, "config reload failed; the running config stays")
                }
            }
        }
    });
    Ok(())
}

/// The signals that stop the daemon, registered before it announces itself: a SIGTERM that
/// arrives as soon as the URL is printed must stop it gracefully, not kill it.
fn stop_signals() -> anyhow::Result<(Signal, Signal)> {
    let interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok((interrupt, terminate))
}

async fn shutdown_requested((mut interrupt, mut terminate): (Signal, Signal)) {
    tokio::select! {
        _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Mutex;

    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    /// A recorder that only keeps what is described: each family's HELP text, every time.
    #[derive(Default)]
    struct Descriptions(Mutex<BTreeMap<String, Vec<String>>>);

    impl Descriptions {
        fn add(&self, key: &KeyName, help: &SharedString) {
            self.0
                .lock()
                .unwrap()
                .entry(key.as_str().to_owned())
                .or_default()
                .push(help.to_string());
        }
    }

    impl Recorder for Descriptions {
        fn describe_counter(&self, key: KeyName, _: Option<Unit>, help: SharedString) {
            self.add(&key, &help);
        }
        fn describe_gauge(&self, key: KeyName, _: Option<Unit>, help: SharedString) {
            self.add(&key, &help);
        }
        fn describe_histogram(&self, key: KeyName, _: Option<Unit>, help: SharedString) {
            self.add(&key, &help);
        }
        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::noop()
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    /// The family each `counter!`, `gauge!` and `histogram!` call in `text` names, or an error
    /// naming a call whose name is not a string literal (it could not be checked).
    fn recorded_in(text: &str, file: &Path, families: &mut BTreeMap<String, String>) {
        for kind in ["counter!(", "gauge!(", "histogram!("] {
            for (at, _) in text.match_indices(kind) {
                if text[..at].ends_with("describe_") {
                    continue;
                }
                let rest = text[at + kind.len()..].trim_start();
                let name = rest
                    .strip_prefix('"')
                    .and_then(|r| r.split_once('"'))
                    .map(|(name, _)| name)
                    .unwrap_or_else(|| {
                        panic!(
                            "{}: a metric named by something else than a literal: {}",
                            file.display(),
                            &text[at..(at + 60).min(text.len())]
                        )
                    });
                families.insert(name.to_owned(), file.display().to_string());
            }
        }
    }

    fn rust_files(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }

    /// Every family recorded in the workspace's library and binary code has exactly one HELP
    /// text, and nothing is described that is no longer recorded.
    #[test]
    fn every_recorded_metric_family_is_described_once() {
        let described = Descriptions::default();
        metrics::with_local_recorder(&described, super::describe_metrics);
        let described = described.0.into_inner().unwrap();

        let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&crates).unwrap() {
            let src = entry.unwrap().path().join("src");
            if src.is_dir() {
                rust_files(&src, &mut files);
            }
        }
        let mut recorded = BTreeMap::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            // Unit tests (at the end of their file) record nothing the daemon shows.
            let code = text
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or_default();
            recorded_in(code, file.strip_prefix(&crates).unwrap(), &mut recorded);
        }
        assert!(
            recorded.len() > 40,
            "the scan found too few families: {recorded:?}"
        );

        for (family, file) in &recorded {
            assert!(
                family.starts_with("steward_"),
                "{file}: `{family}` lacks the steward_ prefix"
            );
            let help = described
                .get(family)
                .unwrap_or_else(|| panic!("{file}: `{family}` is recorded but not described"));
            assert_eq!(
                help.len(),
                1,
                "`{family}` is described {} times",
                help.len()
            );
            assert!(
                !help[0].trim().is_empty() && !help[0].contains('\n'),
                "`{family}` needs a one-line HELP text: {help:?}"
            );
        }
        for family in described.keys() {
            assert!(
                recorded.contains_key(family),
                "`{family}` is described but recorded nowhere"
            );
        }
    }
}
