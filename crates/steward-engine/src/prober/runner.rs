//! The probing loop of the instance holding the prober lease: one timetable for every check,
//! probes run concurrently up to a cap, each result judged, tracked and batched into the store
//! about once a second.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use steward_config::Config;
use steward_core::Event;
use steward_core::health::Condition;
use steward_core::health::cert::days_left;
use steward_core::health::rollup::{Rollup, minute_of};
use steward_core::health::spec::CheckSpec;
use steward_core::health::state::{CheckState, CheckTracker, ProbeVerdict};
use steward_store::{CheckRecord, Lease, NewTransition, ProbeBatch, ProbeRecord, Store, now_ms};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::judge::{Judgement, judge};
use super::probe::{Observation, Prober};
use super::{ConfigSource, ProberOptions, RunReport, Stats};
use crate::bus::EventBus;

/// A request to probe a check at once, answered once the result is judged and tracked.
pub(super) struct RunNow {
    pub check: String,
    pub reply: oneshot::Sender<RunReport>,
}

/// One check in the timetable.
struct Entry {
    spec: Arc<CheckSpec>,
    conditions: Arc<Vec<Condition>>,
    tracker: CheckTracker,
    since_ms: i64,
    last_probe_ms: Option<i64>,
    next_due_ms: i64,
    /// Probes of this check running now: a scheduled one, and perhaps one run on request.
    in_flight: u32,
    /// Bumped when the entry is replaced by a reload, so results of the old spec are dropped.
    generation: u64,
    duration: metrics::Histogram,
    up: metrics::Gauge,
}

/// A finished probe, back from its task.
struct Finished {
    name: String,
    generation: u64,
    seen: Observation,
    judgement: Judgement,
    reply: Option<oneshot::Sender<RunReport>>,
}

/// What has been judged since the last write to the store.
#[derive(Default)]
struct Pending {
    results: Vec<ProbeRecord>,
    rollups: HashMap<(String, i64), Rollup>,
    dirty: HashSet<String>,
    transitions: Vec<NewTransition>,
}

/// Above this many unwritten results (the store has been failing for a while), the oldest raw
/// results are dropped; states, transitions and roll-ups are always kept.
const MAX_PENDING_RESULTS: usize = 200_000;
/// A batch is written early once it holds this many results.
const FLUSH_AT_RESULTS: usize = 5_000;

pub(super) struct Runner {
    pub store: Arc<dyn Store>,
    pub bus: EventBus,
    pub config: ConfigSource,
    pub options: ProberOptions,
    pub prober: Prober,
    pub stats: Arc<Stats>,
}

impl Runner {
    /// Probes while the lease is held; idles otherwise. Returns on shutdown.
    pub async fn run(
        self,
        mut leadership: watch::Receiver<Option<Lease>>,
        mut requests: mpsc::Receiver<RunNow>,
        shutdown: CancellationToken,
    ) {
        loop {
            let lease = leadership.borrow_and_update().clone();
            if let Some(lease) = lease {
                self.stats.set_leading(true);
                self.lead(&lease, &mut leadership, &mut requests, &shutdown)
                    .await;
                self.stats.set_leading(false);
            }
            if shutdown.is_cancelled() {
                return;
            }
            tokio::select! {
                changed = leadership.changed() => if changed.is_err() { return },
                Some(request) = requests.recv() => {
                    // Not leading any more: the handle probes by itself.
                    drop(request);
                }
                () = shutdown.cancelled() => return,
            }
        }
    }

    async fn lead(
        &self,
        lease: &Lease,
        leadership: &mut watch::Receiver<Option<Lease>>,
        requests: &mut mpsc::Receiver<RunNow>,
        shutdown: &CancellationToken,
    ) {
        let records = loop {
            match self.store.check_records().await {
                Ok(records) => break records,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the checks' states; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = shutdown.cancelled() => return,
                    }
                }
            }
        };
        let mut config = (self.config)();
        let mut table = Table::new(&config, &records, now_ms());
        tracing::info!(checks = table.entries.len(), "probing");
        let permits = Arc::new(Semaphore::new(self.options.max_concurrent.max(1) as usize));
        let (done_tx, mut done_rx) = mpsc::channel::<Finished>(4096);
        let mut pending = Pending::default();
        let mut flush = tokio::time::interval(self.options.flush_interval);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let latest = (self.config)();
            if !Arc::ptr_eq(&latest, &config) {
                config = latest;
                table.reload(&config, now_ms());
                tracing::info!(checks = table.entries.len(), "checks reloaded");
            }
            self.start_due(&mut table, &permits, &done_tx);
            let sleep = table.sleep_until_next(now_ms(), self.options.max_sleep);
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                Some(finished) = done_rx.recv() => {
                    self.absorb(&mut table, &mut pending, finished);
                    // Take whatever else finished meanwhile before sleeping again.
                    while let Ok(finished) = done_rx.try_recv() {
                        self.absorb(&mut table, &mut pending, finished);
                    }
                    if pending.results.len() >= FLUSH_AT_RESULTS {
                        self.write(&table, &mut pending).await;
                    }
                }
                Some(request) = requests.recv() => {
                    self.start_now(&mut table, &permits, &done_tx, request);
                }
                _ = flush.tick() => self.write(&table, &mut pending).await,
                changed = leadership.changed() => {
                    let same = changed.is_ok()
                        && leadership.borrow().as_ref().map(|l| l.fence) == Some(lease.fence);
                    if !same {
                        break;
                    }
                }
                () = shutdown.cancelled() => break,
            }
        }
        // Results already judged are written even as leadership ends.
        while let Ok(finished) = done_rx.try_recv() {
            self.absorb(&mut table, &mut pending, finished);
        }
        self.write(&table, &mut pending).await;
    }

    /// Starts the probes that are due, each in its own task (bounded by `permits`).
    fn start_due(
        &self,
        table: &mut Table,
        permits: &Arc<Semaphore>,
        done: &mpsc::Sender<Finished>,
    ) {
        let now = now_ms();
        while let Some(&Reverse((due, ref name_gen))) = table.heap.peek() {
            if due > now {
                break;
            }
            let (name, generation) = name_gen.clone();
            table.heap.pop();
            let Some(entry) = table.entries.get_mut(&name) else {
                continue;
            };
            if entry.generation != generation || entry.next_due_ms != due {
                continue;
            }
            entry.next_due_ms = next_slot(due, entry.spec.interval_ms, now);
            table
                .heap
                .push(Reverse((entry.next_due_ms, (name.clone(), generation))));
            if entry.in_flight > 0 {
                // The previous probe has not finished within an interval: skip this slot.
                self.stats.count_skipped();
                continue;
            }
            entry.in_flight += 1;
            self.spawn_probe(entry, name, permits, done, Some(due), None);
        }
    }

    fn start_now(
        &self,
        table: &mut Table,
        permits: &Arc<Semaphore>,
        done: &mpsc::Sender<Finished>,
        request: RunNow,
    ) {
        match table.entries.get_mut(&request.check) {
            Some(entry) => {
                entry.in_flight += 1;
                let name = request.check.clone();
                self.spawn_probe(entry, name, permits, done, None, Some(request.reply));
            }
            // Dropping the reply tells the handle to probe by itself (e.g. a disabled check).
            None => drop(request),
        }
    }

    fn spawn_probe(
        &self,
        entry: &Entry,
        name: String,
        permits: &Arc<Semaphore>,
        done: &mpsc::Sender<Finished>,
        due_ms: Option<i64>,
        reply: Option<oneshot::Sender<RunReport>>,
    ) {
        let spec = Arc::clone(&entry.spec);
        let conditions = Arc::clone(&entry.conditions);
        let generation = entry.generation;
        let permits = Arc::clone(permits);
        let done = done.clone();
        let prober = self.prober.clone();
        let stats = Arc::clone(&self.stats);
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            if let Some(due) = due_ms {
                stats.record_lateness(now_ms().saturating_sub(due));
            }
            let seen = prober.probe(&spec).await;
            let judgement = judge(&conditions, &seen);
            let _ = done
                .send(Finished {
                    name,
                    generation,
                    seen,
                    judgement,
                    reply,
                })
                .await;
        });
    }

    /// Tracks one finished probe: state, transition, metrics, and what to write.
    fn absorb(&self, table: &mut Table, pending: &mut Pending, finished: Finished) {
        let Finished {
            name,
            generation,
            seen,
            judgement,
            reply,
        } = finished;
        let Some(entry) = table.entries.get_mut(&name) else {
            return;
        };
        if entry.generation != generation {
            return;
        }
        entry.in_flight = entry.in_flight.saturating_sub(1);
        // A probe run on request may finish before a scheduled one that started earlier.
        entry.last_probe_ms = entry.last_probe_ms.max(Some(seen.started_ms));
        self.stats.count_probe();
        let spec = &entry.spec;
        let transition = entry.tracker.observe(judgement.verdict, &spec.thresholds);
        if let Some(change) = transition {
            entry.since_ms = seen.started_ms;
            tracing::info!(
                check = %name,
                service = %spec.service,
                from = %change.from,
                to = %change.to,
                reason = %judgement.reason,
                "check changed state"
            );
            self.bus.publish(Event::CheckChanged {
                check: name.clone(),
                service: spec.service.clone(),
                from: change.from,
                to: change.to,
                reason: judgement.reason.clone(),
            });
            pending.transitions.push(NewTransition {
                check: name.clone(),
                service: spec.service.clone(),
                from: change.from,
                to: change.to,
                at_ms: seen.started_ms,
                reason: judgement.reason.clone(),
            });
        }
        record_metrics(entry, &name, &seen, &judgement);
        let failed = judgement.verdict == ProbeVerdict::Fail;
        pending
            .rollups
            .entry((name.clone(), minute_of(seen.started_ms)))
            .or_insert_with(|| Rollup::new(minute_of(seen.started_ms)))
            .record(seen.latency_ms, !failed);
        pending.dirty.insert(name.clone());
        let record = ProbeRecord {
            check: name.clone(),
            at_ms: seen.started_ms,
            verdict: judgement.verdict,
            latency_ms: seen.latency_ms,
            status: seen.context.status,
            cause: seen.failure.as_ref().map(|f| f.cause.as_str().to_owned()),
            error: seen.failure.as_ref().map(|f| f.message.clone()),
            conditions: judgement.conditions.clone(),
            cert_not_after_ms: seen.cert_not_after_ms,
        };
        if let Some(reply) = reply {
            let _ = reply.send(RunReport {
                record: record.clone(),
                reason: judgement.reason.clone(),
                state: entry.tracker.state(),
                recorded: true,
            });
        }
        pending.results.push(record);
        if pending.results.len() > MAX_PENDING_RESULTS {
            let excess = pending.results.len() - MAX_PENDING_RESULTS;
            pending.results.drain(..excess);
            tracing::warn!(
                dropped = excess,
                "the store is behind: oldest raw results dropped"
            );
        }
    }

    /// Writes what is pending; on failure keeps it for the next attempt.
    async fn write(&self, table: &Table, pending: &mut Pending) {
        if pending.results.is_empty() && pending.transitions.is_empty() && pending.dirty.is_empty()
        {
            return;
        }
        let batch = ProbeBatch {
            results: pending.results.clone(),
            rollups: pending
                .rollups
                .iter()
                .map(|((name, _), rollup)| (name.clone(), rollup.clone()))
                .collect(),
            states: pending
                .dirty
                .iter()
                .filter_map(|name| table.entries.get(name).map(|e| record_of(name, e)))
                .collect(),
            transitions: pending.transitions.clone(),
        };
        match self.store.record_probes(&batch).await {
            Ok(()) => {
                *pending = Pending::default();
                table.publish_counts();
            }
            Err(error) => {
                tracing::warn!(%error, results = batch.results.len(), "writing probe results failed; keeping them for the next attempt");
            }
        }
    }
}

fn record_of(name: &str, entry: &Entry) -> CheckRecord {
    CheckRecord {
        check: name.to_owned(),
        service: entry.spec.service.clone(),
        state: entry.tracker.state(),
        consecutive_failures: entry.tracker.consecutive_failures(),
        consecutive_successes: entry.tracker.consecutive_successes(),
        since_ms: entry.since_ms,
        last_probe_ms: entry.last_probe_ms,
    }
}

fn record_metrics(entry: &Entry, name: &str, seen: &Observation, judgement: &Judgement) {
    entry.duration.record(seen.latency_ms as f64 / 1_000.0);
    match entry.tracker.state() {
        CheckState::Up | CheckState::Degraded => entry.up.set(1.0),
        CheckState::Down => entry.up.set(0.0),
        CheckState::Unknown => {}
    }
    metrics::counter!("steward_probes_total", "verdict" => steward_store::health::verdict_name(judgement.verdict))
        .increment(1);
    if let Some(failure) = &seen.failure {
        metrics::counter!(
            "steward_probe_errors_total",
            "check" => name.to_owned(),
            "cause" => failure.cause.as_str()
        )
        .increment(1);
    }
    if let Some(not_after) = seen.cert_not_after_ms {
        metrics::gauge!("steward_check_certificate_days_left", "check" => name.to_owned())
            .set(days_left(not_after, seen.started_ms) as f64);
    }
}

/// The next slot after `due` that is not already past: slots stay on the check's grid, and
/// slots missed while the process was busy are skipped rather than fired in a burst.
fn next_slot(due: i64, interval_ms: u64, now: i64) -> i64 {
    let interval = i64::try_from(interval_ms.max(1)).unwrap_or(i64::MAX);
    let next = due.saturating_add(interval);
    if next > now {
        return next;
    }
    let behind = now - next;
    next.saturating_add((behind / interval + 1) * interval)
}

/// Where in its interval a check's first probe falls: spread by name, so that thousands of
/// checks with the same interval do not all start in the same millisecond.
fn phase(name: &str, interval_ms: u64) -> i64 {
    // FNV-1a: stable across runs and instances.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::try_from(hash % interval_ms.max(1)).unwrap_or(0)
}

/// The timetable: every enabled check, and a min-heap of when each is next due.
struct Table {
    entries: BTreeMap<String, Entry>,
    heap: BinaryHeap<Reverse<(i64, (String, u64))>>,
    next_generation: u64,
}

impl Table {
    fn new(config: &Config, records: &[CheckRecord], now: i64) -> Self {
        let mut table = Self {
            entries: BTreeMap::new(),
            heap: BinaryHeap::new(),
            next_generation: 0,
        };
        let restored: HashMap<&str, &CheckRecord> =
            records.iter().map(|r| (r.check.as_str(), r)).collect();
        for spec in config.checks.iter().filter(|s| s.enabled) {
            let tracker = restored.get(spec.name.as_str()).map(|r| {
                (
                    CheckTracker::restore(r.state, r.consecutive_failures, r.consecutive_successes),
                    r.since_ms,
                    r.last_probe_ms,
                )
            });
            table.insert(spec, tracker, now);
        }
        table
    }

    fn insert(
        &mut self,
        spec: &CheckSpec,
        restored: Option<(CheckTracker, i64, Option<i64>)>,
        now: i64,
    ) {
        let (tracker, since_ms, last_probe_ms) =
            restored.unwrap_or((CheckTracker::new(), now, None));
        let interval = i64::try_from(spec.interval_ms).unwrap_or(i64::MAX);
        // A check probed recently continues on its grid; a new one starts within its interval.
        let first = match last_probe_ms {
            Some(last) if last + interval > now => last + interval,
            _ => now + phase(&spec.name, spec.interval_ms).min(interval),
        };
        self.next_generation += 1;
        let generation = self.next_generation;
        let name = spec.name.clone();
        let entry = Entry {
            spec: Arc::new(spec.clone()),
            conditions: Arc::new(spec.effective_conditions()),
            tracker,
            since_ms,
            last_probe_ms,
            next_due_ms: first,
            in_flight: 0,
            generation,
            duration: metrics::histogram!("steward_check_duration_seconds", "check" => name.clone()),
            up: metrics::gauge!("steward_check_up", "check" => name.clone(), "service" => spec.service.clone()),
        };
        self.heap.push(Reverse((first, (name.clone(), generation))));
        self.entries.insert(name, entry);
    }

    /// Applies a new config: unchanged checks keep their state and slot, changed ones keep
    /// their state and start afresh, removed ones go.
    fn reload(&mut self, config: &Config, now: i64) {
        let mut old = std::mem::take(&mut self.entries);
        self.heap.clear();
        for spec in config.checks.iter().filter(|s| s.enabled) {
            match old.remove(&spec.name) {
                Some(entry) if *entry.spec == *spec => {
                    self.heap.push(Reverse((
                        entry.next_due_ms,
                        (spec.name.clone(), entry.generation),
                    )));
                    self.entries.insert(spec.name.clone(), entry);
                }
                Some(entry) => self.insert(
                    spec,
                    Some((entry.tracker, entry.since_ms, entry.last_probe_ms)),
                    now,
                ),
                None => self.insert(spec, None, now),
            }
        }
    }

    fn sleep_until_next(&self, now: i64, max: Duration) -> Duration {
        let wait = self.heap.peek().map_or(u64::MAX, |Reverse((due, _))| {
            u64::try_from(due - now).unwrap_or(0)
        });
        Duration::from_millis(wait).min(max)
    }

    fn publish_counts(&self) {
        let mut counts: HashMap<CheckState, u64> = HashMap::new();
        for entry in self.entries.values() {
            *counts.entry(entry.tracker.state()).or_default() += 1;
        }
        for state in CheckState::ALL {
            metrics::gauge!("steward_checks", "state" => state.as_str())
                .set(counts.get(&state).copied().unwrap_or(0) as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_stay_on_the_grid_and_skip_what_is_past() {
        assert_eq!(next_slot(1_000, 500, 1_200), 1_500);
        assert_eq!(next_slot(1_000, 500, 1_499), 1_500);
        assert_eq!(next_slot(1_000, 500, 1_500), 2_000);
        assert_eq!(next_slot(1_000, 500, 3_700), 4_000);
    }

    #[test]
    fn phases_spread_within_the_interval() {
        let phases: HashSet<i64> = (0..1_000)
            .map(|i| phase(&format!("check-{i}"), 30_000))
            .collect();
        assert!(phases.iter().all(|p| (0..30_000).contains(p)));
        assert!(phases.len() > 900, "{} distinct phases", phases.len());
        assert_eq!(phase("x", 1_000), phase("x", 1_000));
    }
}
