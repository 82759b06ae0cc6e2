//! `steward-bench schedules`: the scheduler on a real database — N schedules all due every
//! second for a while (fire lateness: when the scheduler woke for a slot, and when the slot's
//! task was committed), then N schedules not due (the CPU an idle scheduler burns).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use steward_engine::EventBus;
use steward_engine::scheduler::{self, SchedulerOptions};
use steward_store::Store;
use tokio_util::sync::CancellationToken;

/// What to run.
pub struct ScheduleBench {
    /// Schedules in each phase.
    pub schedules: usize,
    /// How long the due phase runs.
    pub due_seconds: u64,
    /// How long the idle phase runs.
    pub idle_seconds: u64,
}

/// The two lateness histograms the scheduler records, captured sample by sample.
#[derive(Default)]
struct Lateness {
    wake: Mutex<Vec<f64>>,
    commit: Mutex<Vec<f64>>,
}

impl Lateness {
    fn clear(&self) {
        for samples in [&self.wake, &self.commit] {
            if let Ok(mut samples) = samples.lock() {
                samples.clear();
            }
        }
    }
}

struct Sink(Arc<Lateness>, bool);

impl metrics::HistogramFn for Sink {
    fn record(&self, value: f64) {
        let samples = if self.1 { &self.0.wake } else { &self.0.commit };
        if let Ok(mut samples) = samples.lock() {
            samples.push(value);
        }
    }
}

/// A metrics recorder that keeps the scheduler's lateness samples and drops the rest.
struct Capture(Arc<Lateness>);

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        match key.name() {
            "steward_schedule_wake_lateness_seconds" => {
                Histogram::from_arc(Arc::new(Sink(Arc::clone(&self.0), true)))
            }
            "steward_schedule_fire_lateness_seconds" => {
                Histogram::from_arc(Arc::new(Sink(Arc::clone(&self.0), false)))
            }
            _ => Histogram::noop(),
        }
    }
}

/// A config with `n` schedules on `timing` (a TOML key and value, e.g. `every = "1s"`).
fn config(n: usize, timing: &str) -> anyhow::Result<steward_config::Config> {
    let mut text = String::from(
        "[[queues]]\nname = \"bench\"\nkinds = [\"noop\"]\n\n[scheduler]\ngrace = \"5s\"\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "\n[[schedules]]\nname = \"s{i}\"\n{timing}\nqueue = \"bench\"\nkind = \"noop\"\n"
        ));
    }
    let loaded = steward_config::parse_str("bench.toml", &text, &|_| None)
        .map_err(|e| anyhow::anyhow!("the generated config is invalid: {e}"))?;
    Ok(loaded.config)
}

/// Runs the scheduler on `config` for `seconds`; returns the CPU share of one core it used.
async fn run_for(
    store: &Arc<dyn Store>,
    config: steward_config::Config,
    seconds: u64,
    lateness: &Lateness,
) -> anyhow::Result<f64> {
    let config = Arc::new(config);
    let source: scheduler::ConfigSource = Arc::new(move || Arc::clone(&config));
    let stop = CancellationToken::new();
    let mut options = SchedulerOptions::new("bench");
    options.grace_ms = 5_000;
    let handle = scheduler::spawn(
        Arc::clone(store),
        EventBus::new(),
        source,
        options,
        stop.clone(),
    );
    // Leadership, the first timetable and the first fires (every schedule's slots within the
    // lookahead at once) take a few seconds; measure the steady state.
    tokio::time::sleep(Duration::from_secs(5)).await;
    lateness.clear();
    let (cpu, wall) = (crate::cpu_time()?, Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let share = (crate::cpu_time()? - cpu).as_secs_f64() / wall.elapsed().as_secs_f64();
    stop.cancel();
    handle.await.context("the scheduler failed")?;
    Ok(share)
}

fn summary(samples: &Mutex<Vec<f64>>) -> String {
    let mut ms: Vec<f64> = samples
        .lock()
        .map(|s| s.iter().map(|v| v * 1000.0).collect())
        .unwrap_or_default();
    if ms.is_empty() {
        return "no samples".into();
    }
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} fires",
        at(0.5),
        at(0.99),
        at(1.0),
        ms.len()
    )
}

/// Runs both phases on `store` and prints their figures.
pub async fn run(store: Arc<dyn Store>, bench: &ScheduleBench) -> anyhow::Result<()> {
    let lateness = Arc::new(Lateness::default());
    metrics::set_global_recorder(Capture(Arc::clone(&lateness)))
        .map_err(|_| anyhow::anyhow!("a metrics recorder is installed already"))?;

    let due = config(bench.schedules, "every = \"1s\"")?;
    let share = run_for(&store, due, bench.due_seconds, &lateness).await?;
    println!(
        "due: {} schedules every second for {} s, scheduler process CPU {:.1} % of a core",
        bench.schedules,
        bench.due_seconds,
        share * 100.0
    );
    println!(
        "  wake lateness (fire time to the scheduler acting on it; after a 5 s warm-up): {}",
        summary(&lateness.wake)
    );
    println!(
        "  commit lateness (slot to its task committed and due; fired up to 2 s ahead): {}",
        summary(&lateness.commit)
    );

    // Yearly at midnight on 1 January: never due while measured.
    let idle = config(bench.schedules, "cron = \"0 0 1 1 *\"")?;
    let share = run_for(&store, idle, bench.idle_seconds, &lateness).await?;
    println!(
        "idle: {} schedules not due for {} s, scheduler process CPU {:.2} % of a core",
        bench.schedules,
        bench.idle_seconds,
        share * 100.0
    );
    Ok(())
}
