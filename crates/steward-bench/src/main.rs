//! `steward-bench`: measures Steward's storage paths on a real database.
//!
//! `steward-bench audit-writes [--backend sqlite|postgres] [--seconds N] [--concurrency C]`
//! runs audited writes (a key creation and its audit event, one transaction each) from C
//! concurrent tasks for N seconds, then verifies the whole chain, and prints both rates.
//! PostgreSQL runs in a throwaway database on `STEWARD_TEST_DATABASE_URL`'s server.
//!
//! `steward-bench queue [--backend sqlite|postgres] [--tasks N] [--batch B] [--enqueuers E]
//! [--workers W] [--concurrency C]` enqueues N tasks in batches of B from E concurrent callers,
//! works them with W workers of C slots each, then measures
//! claim-to-start latency on an unsaturated queue.
//!
//! `steward-bench pipelines [--backend sqlite|postgres] [--shape chain|fanout] [--runs 10000]
//! [--batch 500] [--workers 2] [--concurrency 256] [--latency-runs 200]` starts N runs of a
//! three-step chain or a 1 → 10 → 1 fan-out of no-op steps while W workers of C slots drain
//! them (runs/s, steps/s), then starts runs one at a time every 20 ms on the idle queue and
//! reports each step's hand-over (its last need's executor returned → its own start,
//! p50/p99/max).
//!
//! `steward-bench schedules [--backend sqlite|postgres] [--schedules N] [--due-seconds S]
//! [--idle-seconds I]` runs the scheduler with N schedules due every second for S seconds
//! (wake and commit lateness p50/p99/max, CPU), then N schedules not due for I seconds (CPU).
//!
//! `steward-bench health [--backend sqlite|postgres] [--targets N] [--interval S] [--seconds M]`
//! probes N HTTP targets (served by a child process on loopback) every S seconds and reports the
//! prober's CPU per 1,000 probes, RSS and probe lateness p50/p95/p99 over M seconds.
//!
//! `steward-bench alerts [--backend sqlite|postgres] [--shape few|many]
//! [--rates 2000,5000,10000,20000] [--seconds 5] [--groups 5000] [--batch 100] [--in-flight 16]
//! [--group-wait 2s] [--steward-log FILE]` starts the release `steward` binary (built next to
//! this one) with a webhook receiver served by the bench on loopback and `group_by =
//! ["alertname"]`, then posts Alertmanager v2 alerts to `/api/v2/alerts` in batches at each rate
//! in turn: `few` spreads each step's alerts (rate × seconds) over 10 fresh alertnames, `many`
//! posts `--groups` alerts with an alertname each (one-alert groups). Per step it prints the
//! alerts accepted per second, how late each group's notification arrived past group_wait
//! (p50/p99/max), duplicate notifications, groups (and alerts) never notified, the daemon's RSS,
//! peak RSS and CPU time, and where its store time went (from its `/metrics`). Build both
//! first: `cargo build --release -p steward -p steward-bench`.
//!
//! `steward-bench ui [--backend sqlite|postgres] [--checks 10000] [--tasks 1000000]
//! [--requests 50]` starts the release `steward` with that many services (one HTTP check each)
//! and stored tasks, signs in to the dashboard and reports the overview, services and tasks
//! pages' answer times (p50/p99/max) and weight with the stylesheet and script.
//!
//! `steward-bench fleet [--backend postgres|sqlite] [--agents 5000] [--seconds 60]
//! [--interval 10] [--changing 0.05] [--remote-tasks 500] [--remote-rate 10]` starts the
//! release `steward` as a hub, enrolls N simulated agents through its API and heartbeats them
//! every interval: the hub's CPU and RSS with idle inventory, then with a share changing each
//! interval, the round trips p50/p99 the agents saw; then one real `steward agent`'s idle CPU
//! and RSS, and the claim-to-start of tasks pinned to its node (enqueue to start on the node,
//! p50/p95/p99/max).

mod alerts;
mod daemon;
mod events;
mod fleet;
mod health;
mod history;
mod pipelines;
mod queue;
mod schedules;
mod ui;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use steward_core::Role;
use steward_core::audit::Actor;
use steward_store::{NewKey, Store};

#[derive(Parser)]
#[command(
    name = "steward-bench",
    about = "Benchmarks of Steward's storage paths"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Audited writes per second, then chain verification per second.
    AuditWrites {
        /// Which store.
        #[arg(long, value_enum, default_value = "sqlite")]
        backend: Backend,
        /// How long to write.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Concurrent writers.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// The task queue end to end: enqueue rate, work rate, claim-to-start latency.
    Queue {
        /// Which store.
        #[arg(long, value_enum, default_value = "sqlite")]
        backend: Backend,
        /// Tasks to enqueue and work.
        #[arg(long, default_value_t = 100_000)]
        tasks: usize,
        /// Tasks per enqueue call (at most 10,000).
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// Concurrent enqueue callers (as separate API clients would be).
        #[arg(long, default_value_t = 2)]
        enqueuers: usize,
        /// Worker instances.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Slots per worker.
        #[arg(long, default_value_t = 500)]
        concurrency: u32,
        /// Tasks enqueued one by one for the latency figure.
        #[arg(long, default_value_t = 500)]
        latency_tasks: usize,
    },
    /// Pipelines: runs/s and steps/s for N runs, then step hand-over latency on an idle queue.
    Pipelines {
        /// Which store.
        #[arg(long, value_enum, default_value = "sqlite")]
        backend: Backend,
        /// The pipeline: a three-step chain, or split → ten branches → join.
        #[arg(long, value_enum, default_value = "chain")]
        shape: pipelines::Shape,
        /// Runs in the throughput phase.
        #[arg(long, default_value_t = 10_000)]
        runs: usize,
        /// Runs per start call.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Worker instances.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Slots per worker.
        #[arg(long, default_value_t = 256)]
        concurrency: u32,
        /// Runs started one by one for the hand-over figure.
        #[arg(long, default_value_t = 200)]
        latency_runs: usize,
    },
    /// The scheduler: fire lateness with N schedules due every second, then the CPU of N
    /// schedules not due.
    Schedules {
        /// Which store.
        #[arg(long, value_enum, default_value = "sqlite")]
        backend: Backend,
        /// Schedules in each phase.
        #[arg(long, default_value_t = 10_000)]
        schedules: usize,
        /// Seconds of the due phase.
        #[arg(long, default_value_t = 60)]
        due_seconds: u64,
        /// Seconds of the idle phase.
        #[arg(long, default_value_t = 30)]
        idle_seconds: u64,
    },
    /// The prober: CPU per 1,000 probes, RSS and lateness with N HTTP targets on loopback.
    Health {
        /// Which store.
        #[arg(long, value_enum, default_value = "sqlite")]
        backend: Backend,
        /// Targets, one check each.
        #[arg(long, default_value_t = 1_000)]
        targets: usize,
        /// Seconds between two probes of a target.
        #[arg(long, default_value_t = 30)]
        interval: u64,
        /// Seconds measured after the warm-up (default: three intervals, at least 30).
        #[arg(long)]
        seconds: Option<u64>,
        /// Loopback sockets the targets are spread over.
        #[arg(long, default_value_t = 16)]
        ports: usize,
    },
    /// External alerts into a real `steward up`: accepted alerts/s, notification latency past
    /// group_wait, duplicates, losses, RSS and CPU, at increasing rates.
    Alerts {
        /// Which store the daemon uses.
        #[arg(long, value_enum, default_value = "sqlite")]
        backend: Backend,
        /// `few`: 10 groups per step; `many`: one-alert groups.
        #[arg(long, value_enum, default_value = "few")]
        shape: alerts::Shape,
        /// Target rates in alerts per second, one step each (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "2000,5000,10000,20000")]
        rates: Vec<u64>,
        /// Seconds each step posts for (`few`).
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// One-alert groups per step (`many`).
        #[arg(long, default_value_t = 5_000)]
        groups: usize,
        /// Alerts per request (at most 10,000).
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Requests in flight at most.
        #[arg(long, default_value_t = 16)]
        in_flight: usize,
        /// The route's group_wait (`2s`, `500ms`, …).
        #[arg(long, default_value = "2s", value_parser = alerts::parse_duration)]
        group_wait: Duration,
        /// Keep the daemon's log in this file (default: a temporary file, removed).
        #[arg(long)]
        steward_log: Option<std::path::PathBuf>,
    },
    /// The live event stream under load: the queue's throughput with and without stream
    /// clients, each event's delay from commit to client, RSS per idle client.
    Events {
        /// Which store the daemon uses.
        #[arg(long, value_enum, default_value = "postgres")]
        backend: Backend,
        /// Stream clients.
        #[arg(long, default_value_t = 1_000)]
        clients: usize,
        /// Tasks per run.
        #[arg(long, default_value_t = 100_000)]
        tasks: usize,
        /// The queue's slots.
        #[arg(long, default_value_t = 256)]
        concurrency: u32,
        /// Runs, each without and with clients, alternating which goes first (use an even
        /// number).
        #[arg(long, default_value_t = 4)]
        runs: usize,
    },
    /// The dashboard's pages under a large platform: answer times (p50/p99) of the overview,
    /// services and tasks pages, and their weight.
    Ui {
        /// Which store the daemon uses.
        #[arg(long, value_enum, default_value = "sqlite")]
        backend: Backend,
        /// Services, one HTTP check each.
        #[arg(long, default_value_t = 10_000)]
        checks: usize,
        /// Tasks stored before measuring.
        #[arg(long, default_value_t = 1_000_000)]
        tasks: usize,
        /// Requests per page.
        #[arg(long, default_value_t = 50)]
        requests: usize,
    },
    /// The reads every instance makes on a timer (task counts for the depth gauges, each
    /// schedule's latest run) with a long history stored: per-call median, p90 and max.
    History {
        /// Which store.
        #[arg(long, value_enum, default_value = "sqlite")]
        backend: Backend,
        /// Finished tasks stored before measuring.
        #[arg(long, default_value_t = 10_000_000)]
        tasks: u64,
        /// Schedule runs stored before measuring (over 100 schedules).
        #[arg(long, default_value_t = 1_000_000)]
        runs: u64,
        /// Calls of each read measured.
        #[arg(long, default_value_t = 20)]
        calls: usize,
    },
    /// The fleet's hub under N simulated agents heartbeating every interval: its CPU and RSS
    /// with idle inventory, then with a share of agents changing each interval, and the round
    /// trips the agents saw; then one real `steward agent`'s idle CPU and RSS.
    Fleet {
        /// Which store the hub uses.
        #[arg(long, value_enum, default_value = "postgres")]
        backend: Backend,
        /// Simulated agents.
        #[arg(long, default_value_t = 5_000)]
        agents: usize,
        /// Seconds each window is measured (idle, changing, the real agent).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Seconds between two heartbeats of an agent.
        #[arg(long, default_value_t = 10)]
        interval: u64,
        /// The share of agents whose inventory changes each interval in the second window.
        #[arg(long, default_value_t = 0.05)]
        changing: f64,
        /// HTTP clients the simulated agents share, round-robin.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// A new connection for every beat, as real agents at a 10 s interval make (the hub
        /// closes idle connections after 5 s), instead of keep-alive.
        #[arg(long)]
        fresh_connections: bool,
        /// Keep the hub's log in this file (default: a temporary file, removed).
        #[arg(long)]
        steward_log: Option<std::path::PathBuf>,
        /// No-op tasks pinned to the real agent's node whose claim-to-start is measured
        /// (0 skips it).
        #[arg(long, default_value_t = 500)]
        remote_tasks: usize,
        /// Pinned tasks enqueued per second.
        #[arg(long, default_value_t = 10)]
        remote_rate: u32,
    },
    /// Serves the health benchmark's targets (started by `health`; not for direct use).
    #[command(hide = true)]
    HealthTargets {
        /// Listening sockets.
        #[arg(long, default_value_t = 16)]
        ports: usize,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A throwaway PostgreSQL database for a daemon the bench starts (its settings printed), or
/// none for SQLite (the daemon keeps its own file).
async fn daemon_database(
    backend: Backend,
) -> anyhow::Result<Option<steward_store_postgres::testing::TestDatabase>> {
    match backend {
        Backend::Sqlite => Ok(None),
        Backend::Postgres => {
            let db = steward_store_postgres::testing::TestDatabase::create()
                .await
                .context("PostgreSQL is unreachable (set STEWARD_TEST_DATABASE_URL)")?;
            print_postgres_settings(&db.url).await?;
            Ok(Some(db))
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::AuditWrites {
            backend,
            seconds,
            concurrency,
        } => audit_writes(backend, seconds, concurrency).await,
        Command::Queue {
            backend,
            tasks,
            batch,
            enqueuers,
            workers,
            concurrency,
            latency_tasks,
        } => {
            let bench = queue::QueueBench {
                tasks,
                batch: batch.clamp(1, steward_core::task::MAX_ENQUEUE_BATCH),
                enqueuers: enqueuers.max(1),
                workers: workers.max(1),
                concurrency: concurrency.max(1),
                latency_tasks,
            };
            let dir = tempfile::tempdir()?;
            let (store, _db) = open_for_workers(backend, dir.path(), workers).await?;
            let result = queue::run(Arc::clone(&store), &bench).await;
            store.close().await;
            result
        }
        Command::Pipelines {
            backend,
            shape,
            runs,
            batch,
            workers,
            concurrency,
            latency_runs,
        } => {
            let bench = pipelines::PipelineBench {
                shape,
                runs,
                batch: batch.max(1),
                workers: workers.max(1),
                concurrency: concurrency.max(1),
                latency_runs,
            };
            let dir = tempfile::tempdir()?;
            let (store, _db) = open_for_workers(backend, dir.path(), workers).await?;
            let result = pipelines::run(Arc::clone(&store), &bench).await;
            store.close().await;
            result
        }
        Command::Schedules {
            backend,
            schedules,
            due_seconds,
            idle_seconds,
        } => {
            let dir = tempfile::tempdir()?;
            let (store, db) = open(backend, dir.path(), 10).await?;
            if let Some(db) = &db {
                print_postgres_settings(&db.url).await?;
            }
            let bench = schedules::ScheduleBench {
                schedules: schedules.max(1),
                due_seconds: due_seconds.max(1),
                idle_seconds: idle_seconds.max(1),
            };
            let result = schedules::run(Arc::clone(&store), &bench).await;
            store.close().await;
            result
        }
        Command::Health {
            backend,
            targets,
            interval,
            seconds,
            ports,
        } => {
            let dir = tempfile::tempdir()?;
            let (store, db) = open(backend, dir.path(), 10).await?;
            if let Some(db) = &db {
                print_postgres_settings(&db.url).await?;
            }
            let interval = interval.max(1);
            let bench = health::HealthBench {
                targets: targets.max(1),
                interval_s: interval,
                seconds: seconds.unwrap_or((interval * 3).max(30)).max(1),
                ports: ports.max(1),
            };
            let result = health::run(Arc::clone(&store), &bench).await;
            store.close().await;
            result
        }
        Command::Ui {
            backend,
            checks,
            tasks,
            requests,
        } => {
            let db = daemon_database(backend).await?;
            let bench = ui::UiBench {
                backend: backend.name(),
                database: db.as_ref().map(|db| db.url.clone()),
                checks,
                tasks,
                requests: requests.max(1),
            };
            let result = ui::run(&bench).await;
            drop(db);
            result
        }
        Command::Events {
            backend,
            clients,
            tasks,
            concurrency,
            runs,
        } => {
            let db = daemon_database(backend).await?;
            let bench = events::EventsBench {
                backend: backend.name(),
                database: db.as_ref().map(|db| db.url.clone()),
                clients: clients.max(1),
                tasks: tasks.max(1),
                concurrency: concurrency.max(1),
                runs: runs.max(1),
            };
            let result = events::run(&bench).await;
            drop(db);
            result
        }
        Command::Alerts {
            backend,
            shape,
            rates,
            seconds,
            groups,
            batch,
            in_flight,
            group_wait,
            steward_log,
        } => {
            anyhow::ensure!(
                !rates.is_empty() && rates.iter().all(|&r| r > 0),
                "--rates: give positive rates, e.g. 2000,5000,10000"
            );
            let db = daemon_database(backend).await?;
            let bench = alerts::AlertsBench {
                backend: backend.name(),
                database: db.as_ref().map(|db| db.url.clone()),
                shape,
                rates,
                seconds: seconds.max(1),
                groups: groups.max(1),
                batch: batch.clamp(1, 10_000),
                in_flight: in_flight.max(1),
                group_wait,
                steward_log,
            };
            // The daemon is stopped before the database is dropped.
            let result = alerts::run(&bench).await;
            drop(db);
            result
        }
        Command::History {
            backend,
            tasks,
            runs,
            calls,
        } => {
            let bench = history::HistoryBench { tasks, runs, calls };
            let dir = tempfile::tempdir()?;
            let (store, db) = open(backend, dir.path(), 4).await?;
            let store = match &db {
                Some(db) => {
                    print_postgres_settings(&db.url).await?;
                    history::Seed::Postgres(&db.url)
                        .tasks_and_runs(bench.tasks, bench.runs)
                        .await?;
                    store
                }
                None => {
                    // The store holds the data directory's lock: write the history while it
                    // is closed, then open it again.
                    store.close().await;
                    drop(store);
                    let file = dir.path().join(steward_store_sqlite::DATABASE_FILE);
                    history::Seed::Sqlite(&file)
                        .tasks_and_runs(bench.tasks, bench.runs)
                        .await?;
                    let reopened: Arc<dyn Store> =
                        Arc::new(steward_store_sqlite::SqliteStore::open(dir.path()).await?);
                    reopened
                }
            };
            let result = history::run(Arc::clone(&store), &bench).await;
            store.close().await;
            result
        }
        Command::Fleet {
            backend,
            agents,
            seconds,
            interval,
            changing,
            clients,
            fresh_connections,
            steward_log,
            remote_tasks,
            remote_rate,
        } => {
            anyhow::ensure!(
                (0.0..=1.0).contains(&changing),
                "--changing: a share between 0 and 1, e.g. 0.05"
            );
            anyhow::ensure!(
                (1..=3_600).contains(&interval),
                "--interval: 1 to 3600 seconds, as the hub takes"
            );
            let db = daemon_database(backend).await?;
            let bench = fleet::FleetBench {
                backend: backend.name(),
                database: db.as_ref().map(|db| db.url.clone()),
                agents: agents.max(1),
                seconds: seconds.max(1),
                interval_s: interval,
                changing,
                clients: clients.max(1),
                fresh_connections,
                steward_log,
                remote_tasks,
                remote_rate: remote_rate.clamp(1, 1_000),
            };
            // The hub is stopped before the database is dropped.
            let result = fleet::run(&bench).await;
            drop(db);
            result
        }
        Command::HealthTargets { ports } => health::serve_targets(ports).await,
    }
}

/// A migrated store on a fresh SQLite directory or a throwaway PostgreSQL database (kept alive
/// by the returned guard).
/// A store for a bench with `workers` workers (a pool sized for them), its settings printed;
/// the second part keeps a PostgreSQL database alive until it is dropped.
async fn open_for_workers(
    backend: Backend,
    dir: &std::path::Path,
    workers: usize,
) -> anyhow::Result<(
    Arc<dyn Store>,
    Option<steward_store_postgres::testing::TestDatabase>,
)> {
    let pool = u32::try_from(workers * 4 + 4).unwrap_or(64);
    let (store, db) = open(backend, dir, pool).await?;
    if let Some(db) = &db {
        print_postgres_settings(&db.url).await?;
    } else {
        println!("sqlite: WAL, synchronous=FULL, file in {}", dir.display());
    }
    Ok((store, db))
}

async fn open(
    backend: Backend,
    dir: &std::path::Path,
    pool: u32,
) -> anyhow::Result<(
    Arc<dyn Store>,
    Option<steward_store_postgres::testing::TestDatabase>,
)> {
    let (store, db): (Arc<dyn Store>, _) = match backend {
        Backend::Sqlite => (
            Arc::new(steward_store_sqlite::SqliteStore::open(dir).await?),
            None,
        ),
        Backend::Postgres => {
            let db = steward_store_postgres::testing::TestDatabase::create()
                .await
                .context("PostgreSQL is unreachable (set STEWARD_TEST_DATABASE_URL)")?;
            let url = steward_core::Secret::new(db.url.clone());
            let store = steward_store_postgres::PostgresStore::connect(&url, pool).await?;
            (Arc::new(store), Some(db))
        }
    };
    store.migrate().await?;
    Ok((store, db))
}

/// The server settings that decide durability and speed, so results can be compared.
async fn print_postgres_settings(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let mut line = Vec::new();
    for setting in [
        "server_version",
        "synchronous_commit",
        "fsync",
        "wal_sync_method",
        "shared_buffers",
        "max_connections",
    ] {
        let value: String = sqlx::query_scalar(&format!("SHOW {setting}"))
            .fetch_one(&mut conn)
            .await?;
        line.push(format!("{setting}={value}"));
    }
    println!("postgres: {}", line.join(" "));
    Ok(())
}

async fn audit_writes(backend: Backend, seconds: u64, concurrency: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut _db = None;
    let store: Arc<dyn Store> = match backend {
        Backend::Sqlite => Arc::new(steward_store_sqlite::SqliteStore::open(dir.path()).await?),
        Backend::Postgres => {
            let db = steward_store_postgres::testing::TestDatabase::create()
                .await
                .context("PostgreSQL is unreachable (set STEWARD_TEST_DATABASE_URL)")?;
            let url = steward_core::Secret::new(db.url.clone());
            let pool = u32::try_from(concurrency + 2).unwrap_or(u32::MAX);
            let store = steward_store_postgres::PostgresStore::connect(&url, pool).await?;
            _db = Some(db);
            Arc::new(store)
        }
    };
    store.migrate().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let writers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (store, stop, written) =
                (Arc::clone(&store), Arc::clone(&stop), Arc::clone(&written));
            tokio::spawn(async move {
                let actor = Actor::system("bench");
                let mut i = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("w{w}-{i}");
                    let key = NewKey {
                        digest: steward_core::auth::key_digest(&name),
                        name,
                        role: Role::Viewer,
                        workspace: None,
                        node: None,
                        hint: "stw_…".into(),
                        expires_at_ms: None,
                    };
                    store.create_key(&key, &actor).await?;
                    written.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let count = written.load(Ordering::Relaxed);
    let verify_started = Instant::now();
    let verified = steward_store::audit::verify_audit(store.as_ref()).await?;
    let verify_secs = verify_started.elapsed().as_secs_f64();
    store.close().await;
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    println!(
        "{name}: {count} audited writes in {elapsed:.1} s with {concurrency} writers = {:.0} writes/s; verified {verified} events in {verify_secs:.2} s = {:.0} events/s",
        count as f64 / elapsed,
        verified as f64 / verify_secs
    );
    anyhow::ensure!(
        verified == count,
        "verified {verified} events, wrote {count}"
    );
    Ok(())
}

/// This process's CPU time (user + system) so far.
pub(crate) fn cpu_time() -> anyhow::Result<Duration> {
    cpu_time_of("self")
}

/// The CPU time (user + system, all threads) so far of the process `/proc/{process}`
/// describes (`self` or a pid).
pub(crate) fn cpu_time_of(process: &str) -> anyhow::Result<Duration> {
    let path = format!("/proc/{process}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name (which may hold spaces) start at its closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("unexpected {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .with_context(|| format!("unexpected {path}"))?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    // Linux reports in USER_HZ, 100 per second on every mainstream build.
    Ok(Duration::from_millis(ticks * 10))
}

/// The resident memory and its peak (VmRSS, VmHWM), in bytes, of the process
/// `/proc/{process}` describes (`self` or a pid).
pub(crate) fn memory_of(process: &str) -> anyhow::Result<(u64, u64)> {
    let path = format!("/proc/{process}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// The `p` quantile (0 to 1) of `times` by nearest rank, 0 for none.
pub(crate) fn percentile(times: &[f64], p: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
        .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(0.0)
}
