//! The central scheduler: the instance holding the scheduler lease ([`crate::lease`]) fires every
//! schedule's slots from one timetable ([`timetable`]), batching the schedules due at the same
//! moment into one transaction; it also runs the dead-man's switches and heartbeat deadlines
//! ([`watch`]). What people ask of schedules — list, history, pause, resume, trigger — is in
//! [`ops`].

pub mod ops;
mod timetable;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use steward_config::Config;
use steward_core::Event;
use steward_core::audit::Actor;
use steward_store::{FireOutcome, Lease, ScheduleTick, Store, StoreError, TickResult, now_ms};
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bus::EventBus;
use timetable::Timetable;

/// Gives the config in force (read on every wake-up; a new one rebuilds the timetable).
pub type ConfigSource = Arc<dyn Fn() -> Arc<Config> + Send + Sync>;

/// The most schedules fired in one transaction.
const MAX_TICKS_PER_BATCH: usize = 1_000;

/// How the scheduler runs on this instance.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// This instance's unique name (the lease holder).
    pub instance: String,
    /// How long the lease lasts without renewal.
    pub lease_ms: u64,
    /// A slot fired later than this is missed (and follows its schedule's missed-run policy).
    pub grace_ms: u64,
    /// The longest the scheduler sleeps without looking at its config and deadlines.
    pub max_sleep: Duration,
    /// How long before its slot a schedule with `overlap = "allow"` is fired, its task due at
    /// the slot (so thousands of schedules on one slot are all enqueued when it comes).
    pub lookahead_ms: u64,
}

impl SchedulerOptions {
    /// Defaults (10 s lease, 5 s grace, 2 s lookahead) for `instance`.
    pub fn new(instance: impl Into<String>) -> Self {
        Self {
            instance: instance.into(),
            lease_ms: 10_000,
            grace_ms: 5_000,
            max_sleep: Duration::from_secs(1),
            lookahead_ms: 2_000,
        }
    }
}

/// Starts the scheduler: it seeks the lease and, while it holds it, fires. Returns once
/// `shutdown` is cancelled and the lease is given up.
pub fn spawn(
    store: Arc<dyn Store>,
    bus: EventBus,
    config: ConfigSource,
    options: SchedulerOptions,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let (held, leadership) = signal::channel(None);
    let leader = tokio::spawn(crate::lease::lead(
        crate::lease::SCHEDULER,
        Arc::clone(&store),
        bus.clone(),
        options.instance.clone(),
        options.lease_ms,
        held,
        shutdown.clone(),
    ));
    tokio::spawn(async move {
        let scheduler = Scheduler {
            store,
            bus,
            config,
            options,
            actor: Actor::system("scheduler"),
        };
        scheduler.run(leadership, &shutdown).await;
        if let Err(error) = leader.await {
            tracing::warn!(%error, "the scheduler's lease task failed");
        }
    })
}

struct Scheduler {
    store: Arc<dyn Store>,
    bus: EventBus,
    config: ConfigSource,
    options: SchedulerOptions,
    actor: Actor,
}

impl Scheduler {
    async fn run(
        &self,
        mut leadership: signal::Receiver<Option<Lease>>,
        shutdown: &CancellationToken,
    ) {
        loop {
            let lease = leadership.borrow_and_update().clone();
            match lease {
                Some(lease) => {
                    self.lead(&lease, &mut leadership, shutdown).await;
                    // Leading stopped (the lease moved on, or the store failed): wait for news
                    // of the lease or a moment before trying again, never spin.
                    self.pause(&mut leadership, shutdown).await;
                }
                None => {
                    tokio::select! {
                        changed = leadership.changed() => if changed.is_err() { return },
                        () = shutdown.cancelled() => return,
                    }
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
        }
    }

    /// Fires while `lease` is held: returns when it changes or on shutdown.
    async fn lead(
        &self,
        lease: &Lease,
        leadership: &mut signal::Receiver<Option<Lease>>,
        shutdown: &CancellationToken,
    ) {
        let mut config = (self.config)();
        let Some(mut table) = self.timetable(&config).await else {
            // The store is unreachable: try again on the next wake-up.
            self.pause(leadership, shutdown).await;
            return;
        };
        // Deadlines are checked beside the fires, never in their way.
        let watching = CancellationToken::new();
        let _stop_watching = watching.clone().drop_guard();
        tokio::spawn(watch::run(
            Arc::clone(&self.store),
            self.bus.clone(),
            Arc::clone(&self.config),
            self.actor.clone(),
            watching,
        ));
        loop {
            let latest = (self.config)();
            if !Arc::ptr_eq(&latest, &config) {
                config = latest;
                match self.timetable(&config).await {
                    Some(rebuilt) => table = rebuilt,
                    None => return,
                }
            }
            if let Err(error) = self.fire_due(lease, &mut table).await {
                if matches!(error, StoreError::LeaseLost(_)) {
                    tracing::warn!(%error, "stopping fires: the lease moved on");
                    return;
                }
                tracing::warn!(%error, "firing schedules failed; retrying");
            }
            let now = now_ms();
            let sleep_ms = table
                .next_fire_ms()
                .map_or(u64::MAX, |at| u64::try_from(at - now).unwrap_or(0));
            let sleep = Duration::from_millis(sleep_ms).min(self.options.max_sleep);
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                changed = leadership.changed() => {
                    let same = changed.is_ok()
                        && leadership.borrow().as_ref().map(|l| l.fence) == Some(lease.fence);
                    if !same {
                        return;
                    }
                }
                () = shutdown.cancelled() => return,
            }
        }
    }

    async fn pause(
        &self,
        leadership: &mut signal::Receiver<Option<Lease>>,
        shutdown: &CancellationToken,
    ) {
        tokio::select! {
            () = tokio::time::sleep(self.options.max_sleep) => {}
            _ = leadership.changed() => {}
            () = shutdown.cancelled() => {}
        }
    }

    /// The timetable of `config`'s schedules from their stored cursors.
    async fn timetable(&self, config: &Config) -> Option<Timetable> {
        let specs = Arc::new(config.schedules.clone());
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        let now = now_ms();
        match self.store.register_schedules(&names, now).await {
            Ok(states) => {
                let states: HashMap<_, _> =
                    states.into_iter().map(|s| (s.name.clone(), s)).collect();
                metrics::gauge!("steward_schedules").set(specs.len() as f64);
                Some(Timetable::new(
                    specs,
                    &config.queues,
                    &states,
                    now,
                    self.options.lookahead_ms,
                ))
            }
            Err(error) => {
                tracing::warn!(%error, "reading schedule states failed");
                None
            }
        }
    }

    /// Fires every schedule due now, in batches; a failed batch is retried a second later.
    async fn fire_due(&self, lease: &Lease, table: &mut Timetable) -> Result<(), StoreError> {
        let now = now_ms();
        let due = table.take_due(now, self.options.grace_ms);
        let wake = metrics::histogram!("steward_schedule_wake_lateness_seconds");
        for (_, _, at) in &due {
            wake.record(now.saturating_sub(*at).max(0) as f64 / 1000.0);
        }
        let mut first_error = None;
        let mut batches = due.chunks(MAX_TICKS_PER_BATCH).peekable();
        while let Some(batch) = batches.next() {
            let ticks: Vec<ScheduleTick> = batch.iter().map(|(_, t, _)| t.clone()).collect();
            match self
                .store
                .fire_schedules(Some(lease), &ticks, &self.actor)
                .await
            {
                Ok(results) => {
                    let committed = now_ms();
                    for ((index, tick, _), result) in batch.iter().zip(&results) {
                        table.advance(*index, tick.cursor_ms);
                        self.report(table, *index, tick, result, committed);
                    }
                }
                Err(error) => {
                    let retry = now_ms().saturating_add(1_000);
                    for (index, _, _) in batch {
                        table.retry_at(*index, retry);
                    }
                    let lost = matches!(error, StoreError::LeaseLost(_));
                    first_error.get_or_insert(error);
                    if lost {
                        for rest in batches.by_ref() {
                            for (index, _, _) in rest {
                                table.retry_at(*index, retry);
                            }
                        }
                    }
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Publishes a tick's fires, skips and missed slots and counts them.
    fn report(
        &self,
        table: &Timetable,
        index: usize,
        tick: &ScheduleTick,
        result: &TickResult,
        committed_ms: i64,
    ) {
        let spec = &table.specs()[index];
        for (fire, outcome) in tick.fires.iter().zip(&result.outcomes) {
            match outcome {
                FireOutcome::Fired { task_id, .. } => {
                    let due = fire
                        .slot_ms
                        .saturating_add(timetable::offset(spec, fire.slot_ms));
                    let lateness = committed_ms.saturating_sub(due).max(0);
                    metrics::histogram!("steward_schedule_fire_lateness_seconds")
                        .record(lateness as f64 / 1000.0);
                    metrics::counter!("steward_schedule_fires_total", "trigger" => fire.trigger.as_str())
                        .increment(1);
                    self.bus.publish(Event::ScheduleFired {
                        schedule: tick.schedule.clone(),
                        slot_ms: fire.slot_ms,
                        trigger: fire.trigger.as_str().into(),
                        task_id: *task_id,
                        lateness_ms: lateness,
                    });
                }
                FireOutcome::Skipped(reason) => {
                    if matches!(
                        reason,
                        steward_store::SkipReason::Overlap { .. }
                            | steward_store::SkipReason::Superseded
                    ) {
                        metrics::counter!("steward_schedule_skips_total").increment(1);
                        self.bus.publish(Event::ScheduleSkipped {
                            schedule: tick.schedule.clone(),
                            slot_ms: fire.slot_ms,
                            reason: reason.describe(),
                        });
                    }
                }
            }
        }
        if let Some(missed) = tick.missed.as_ref().filter(|_| result.missed_recorded) {
            metrics::counter!("steward_schedule_missed_slots_total").increment(missed.count);
            self.bus.publish(Event::SlotsMissed {
                schedule: tick.schedule.clone(),
                count: missed.count,
                first_ms: missed.first_ms,
                last_ms: missed.last_ms,
            });
        }
    }
}
