//! The probing loop of the instance holding the prober lease: one timetable for every check,
//! probes run concurrently up to a cap, each result judged, tracked and batched into the store
//! about once a second.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use steward_config::Config;
use steward_core::Event;
use steward_core::audit::{Actor, AuditEntry};
use steward_core::health::Condition;
use steward_core::health::rollup::{Rollup, minute_of};
use steward_core::health::spec::CheckSpec;
use steward_core::health::state::{CheckState, CheckTracker, ProbeVerdict};
use steward_store::{CheckRecord, Lease, NewTransition, ProbeBatch, ProbeRecord, Store, now_ms};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::{ConfigSource, ProberOptions, RunReport, Stats};
use super::{Judgement, Observation, Prober, judge, probe_record};
use crate::bus::EventBus;

/// A request to probe a check at once, answered once the result is judged and tracked.
pub(super) struct RunNow {
    pub check: String,
    pub asked: Asked,
}

/// Who asked for a probe, and where to answer.
pub(super) struct Asked {
    pub reply: oneshot::Sender<RunReport>,
    /// Recorded in the audit trail with the result.
    pub actor: Actor,
    /// The workspace of the check's service.
    pub workspace: Option<String>,
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
    /// Unique to this entry's spec: bumped when a reload changes the check, so results of the
    /// old spec are dropped.
    generation: u64,
    duration: metrics::Histogram,
    up: metrics::Gauge,
}

/// A finished probe, back from its task.
struct Finished {
    index: usize,
    generation: u64,
    spec: Arc<CheckSpec>,
    seen: Observation,
    judgement: Judgement,
    asked: Option<Asked>,
}

/// What has been judged since the last write to the store (checks by timetable index).
#[derive(Default)]
struct Pending {
    results: Vec<ProbeRecord>,
    rollups: HashMap<(usize, i64), Rollup>,
    dirty: HashSet<usize>,
    transitions: Vec<NewTransition>,
    audit: Vec<AuditEntry>,
    /// Failed writes in a row, and when the next may be tried.
    failures: u32,
    retry_at: Option<tokio::time::Instant>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.results.is_empty()
            && self.transitions.is_empty()
            && self.dirty.is_empty()
            && self.audit.is_empty()
    }
}

/// Above this many unwritten results (the store has been failing for a while), the oldest raw
/// results are dropped; states, transitions and roll-ups are always kept.
const MAX_PENDING_RESULTS: usize = 200_000;
/// A batch is written early once it holds this many results.
const FLUSH_AT_RESULTS: usize = 5_000;
/// The longest wait between two attempts to write while the store fails.
const MAX_WRITE_BACKOFF: Duration = Duration::from_secs(30);

/// Metric handles used on every probe, resolved once.
struct Meters {
    probes: [metrics::Counter; 3],
    checks: [metrics::Gauge; 4],
}

impl Meters {
    fn new() -> Self {
        let verdict = |v| metrics::counter!("steward_probes_total", "verdict" => steward_store::health::verdict_name(v));
        Self {
            probes: [
                verdict(ProbeVerdict::Pass),
                verdict(ProbeVerdict::SlowPass),
                verdict(ProbeVerdict::Fail),
            ],
            checks: CheckState::ALL
                .map(|state| metrics::gauge!("steward_checks", "state" => state.as_str())),
        }
    }

    fn probe(&self, verdict: ProbeVerdict) {
        let i = match verdict {
            ProbeVerdict::Pass => 0,
            ProbeVerdict::SlowPass => 1,
            ProbeVerdict::Fail => 2,
        };
        self.probes[i].increment(1);
    }
}

/// The position of a state in [`CheckState::ALL`].
fn state_index(state: CheckState) -> usize {
    CheckState::ALL
        .iter()
        .position(|s| *s == state)
        .unwrap_or(0)
}

pub(super) struct Runner {
    pub store: Arc<dyn Store>,
    /// The runtime the store's connections belong to: every store call runs there, so that
    /// connections opened for the prober outlive its own runtime.
    pub store_runtime: tokio::runtime::Handle,
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
        let meters = Meters::new();
        loop {
            let lease = leadership.borrow_and_update().clone();
            if let Some(lease) = lease {
                self.lead(&lease, &meters, &mut leadership, &mut requests, &shutdown)
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

    async fn check_records(&self) -> Result<Vec<CheckRecord>, String> {
        let store = Arc::clone(&self.store);
        self.store_runtime
            .spawn(async move { store.check_records().await })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    async fn lead(
        &self,
        lease: &Lease,
        meters: &Meters,
        leadership: &mut watch::Receiver<Option<Lease>>,
        requests: &mut mpsc::Receiver<RunNow>,
        shutdown: &CancellationToken,
    ) {
        let records = loop {
            match self.check_records().await {
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
        // Only now can requests to run a check be served here.
        self.stats.set_leading(true);
        let permits = Arc::new(Semaphore::new(self.options.max_concurrent.max(1) as usize));
        let (done_tx, mut done_rx) = mpsc::channel::<Finished>(4096);
        let mut pending = Pending::default();
        let mut flush = tokio::time::interval(self.options.flush_interval);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let latest = (self.config)();
            if !Arc::ptr_eq(&latest, &config) {
                // Pending work names checks by their place in the old timetable.
                self.write(&table, meters, &mut pending, true).await;
                if !pending.rollups.is_empty() || !pending.dirty.is_empty() {
                    // The store is failing: results and transitions (which carry names) stay
                    // pending; roll-up increments are dropped, and states are written again
                    // with the next probe of each check.
                    tracing::warn!(
                        rollups = pending.rollups.len(),
                        "the store is failing across a reload: unwritten roll-up increments dropped"
                    );
                    pending.rollups.clear();
                    pending.dirty.clear();
                }
                config = latest;
                table.reload(&config, now_ms());
                tracing::info!(checks = table.entries.len(), "checks reloaded");
            }
            self.start_due(&mut table, &permits, &done_tx);
            let sleep = table.sleep_until_next(now_ms(), self.options.max_sleep);
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                Some(finished) = done_rx.recv() => {
                    self.absorb(&mut table, meters, &mut pending, finished);
                    // Take whatever else finished meanwhile before sleeping again.
                    while let Ok(finished) = done_rx.try_recv() {
                        self.absorb(&mut table, meters, &mut pending, finished);
                    }
                    // A transition is written (and announced) at once; results wait for the
                    // next flush unless many have piled up.
                    if pending.results.len() >= FLUSH_AT_RESULTS || !pending.transitions.is_empty() {
                        self.write(&table, meters, &mut pending, false).await;
                    }
                }
                Some(request) = requests.recv() => {
                    self.start_now(&mut table, &permits, &done_tx, request);
                }
                _ = flush.tick() => self.write(&table, meters, &mut pending, false).await,
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
            self.absorb(&mut table, meters, &mut pending, finished);
        }
        self.write(&table, meters, &mut pending, true).await;
    }

    /// Starts the probes that are due, each in its own task (bounded by `permits`).
    fn start_due(
        &self,
        table: &mut Table,
        permits: &Arc<Semaphore>,
        done: &mpsc::Sender<Finished>,
    ) {
        let now = now_ms();
        while let Some(&Reverse((due, index, generation))) = table.heap.peek() {
            if due > now {
                break;
            }
            table.heap.pop();
            let Some(entry) = table.entries.get_mut(index) else {
                continue;
            };
            if entry.generation != generation || entry.next_due_ms != due {
                continue;
            }
            entry.next_due_ms = next_slot(due, entry.spec.interval_ms, now);
            table
                .heap
                .push(Reverse((entry.next_due_ms, index, generation)));
            if entry.in_flight > 0 {
                // The previous probe has not finished within an interval: skip this slot.
                self.stats.count_skipped();
                continue;
            }
            entry.in_flight += 1;
            self.spawn_probe(entry, index, permits, done, Some(due), None);
        }
    }

    fn start_now(
        &self,
        table: &mut Table,
        permits: &Arc<Semaphore>,
        done: &mpsc::Sender<Finished>,
        request: RunNow,
    ) {
        let Some(&index) = table.by_name.get(&request.check) else {
            // Dropping the reply tells the handle to probe by itself (e.g. a disabled check).
            return;
        };
        if let Some(entry) = table.entries.get_mut(index) {
            entry.in_flight += 1;
            self.spawn_probe(entry, index, permits, done, None, Some(request.asked));
        }
    }

    fn spawn_probe(
        &self,
        entry: &Entry,
        index: usize,
        permits: &Arc<Semaphore>,
        done: &mpsc::Sender<Finished>,
        due_ms: Option<i64>,
        asked: Option<Asked>,
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
            let started = now_ms();
            if let Some(due) = due_ms {
                stats.record_lateness(started.saturating_sub(due));
            }
            // Probed in a task of its own, so that a panic in it is a failed probe, not a
            // check whose probe never comes back.
            let probe_spec = Arc::clone(&spec);
            let probed = tokio::spawn(async move {
                let seen = prober.probe(&probe_spec).await;
                let judgement = judge(&conditions, &seen);
                (seen, judgement)
            })
            .await;
            let (seen, judgement) = probed.unwrap_or_else(|error| {
                tracing::error!(check = %spec.name, %error, "a probe broke");
                let seen = Observation::broken(started, format!("the probe broke: {error}"));
                let judgement = judge(&[], &seen);
                (seen, judgement)
            });
            let _ = done
                .send(Finished {
                    index,
                    generation,
                    spec,
                    seen,
                    judgement,
                    asked,
                })
                .await;
        });
    }

    /// Tracks one finished probe: state, transition, metrics, and what to write.
    fn absorb(
        &self,
        table: &mut Table,
        meters: &Meters,
        pending: &mut Pending,
        finished: Finished,
    ) {
        let Finished {
            index,
            generation,
            spec,
            seen,
            judgement,
            asked,
        } = finished;
        let Some(index) = table.locate(index, generation, &spec.name) else {
            return;
        };
        let entry = &mut table.entries[index];
        entry.in_flight = entry.in_flight.saturating_sub(1);
        // A probe run on request may finish before a scheduled one that started earlier.
        entry.last_probe_ms = entry.last_probe_ms.max(Some(seen.started_ms));
        self.stats.count_probe();
        meters.probe(judgement.verdict);
        let transition = entry.tracker.observe(judgement.verdict, &spec.thresholds);
        if let Some(change) = transition {
            entry.since_ms = seen.started_ms;
            table.counts[state_index(change.from)] =
                table.counts[state_index(change.from)].saturating_sub(1);
            table.counts[state_index(change.to)] += 1;
            tracing::info!(
                check = %spec.name,
                service = %spec.service,
                from = %change.from,
                to = %change.to,
                reason = %judgement.reason,
                "check changed state"
            );
            // Announced once written (see `write`): whoever reacts to the event reads the
            // new state, not the old one.
            pending.transitions.push(NewTransition {
                check: spec.name.clone(),
                service: spec.service.clone(),
                from: change.from,
                to: change.to,
                at_ms: seen.started_ms,
                reason: judgement.reason.clone(),
            });
        }
        let entry = &table.entries[index];
        record_metrics(entry, &seen);
        let failed = judgement.verdict == ProbeVerdict::Fail;
        let minute = minute_of(seen.started_ms);
        pending
            .rollups
            .entry((index, minute))
            .or_insert_with(|| Rollup::new(minute))
            .record(seen.latency_ms, !failed);
        pending.dirty.insert(index);
        let cause = seen.failure.as_ref().map(|f| f.cause.as_str());
        if let Some(cause) = cause {
            metrics::counter!(
                "steward_probe_errors_total",
                "check" => spec.name.clone(),
                "cause" => cause
            )
            .increment(1);
        }
        let (record, reason) = probe_record(judgement, &spec.name, seen);
        if let Some(asked) = asked {
            pending.audit.push(steward_store::audit::check_run(
                &asked.actor,
                &spec.name,
                asked.workspace,
                &record,
            ));
            let _ = asked.reply.send(RunReport {
                record: record.clone(),
                reason,
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

    /// Writes what is pending; on failure keeps it and backs off (1 s, doubling to 30 s), so a
    /// failing store neither stalls probing nor is hammered. `force` ignores the back-off (the
    /// last write before leadership ends).
    async fn write(&self, table: &Table, meters: &Meters, pending: &mut Pending, force: bool) {
        if pending.is_empty() {
            return;
        }
        if !force
            && pending
                .retry_at
                .is_some_and(|at| tokio::time::Instant::now() < at)
        {
            return;
        }
        let name = |index: usize| table.entries.get(index).map(|e| e.spec.name.clone());
        let batch = ProbeBatch {
            results: std::mem::take(&mut pending.results),
            rollups: pending
                .rollups
                .iter()
                .filter_map(|((index, _), rollup)| Some((name(*index)?, rollup.clone())))
                .collect(),
            states: pending
                .dirty
                .iter()
                .filter_map(|&index| table.entries.get(index).map(record_of))
                .collect(),
            transitions: std::mem::take(&mut pending.transitions),
            audit: std::mem::take(&mut pending.audit),
        };
        let count = batch.results.len();
        let store = Arc::clone(&self.store);
        let written = self
            .store_runtime
            .spawn(async move {
                let result = store.record_probes(&batch).await;
                (batch, result)
            })
            .await;
        let error = match written {
            Ok((batch, Ok(()))) => {
                *pending = Pending::default();
                self.announce(batch.transitions);
                for (gauge, count) in meters.checks.iter().zip(table.counts) {
                    gauge.set(count as f64);
                }
                return;
            }
            Ok((batch, Err(error))) => {
                // Put back what was taken, ahead of what came in meanwhile.
                let ProbeBatch {
                    mut results,
                    mut transitions,
                    mut audit,
                    ..
                } = batch;
                results.append(&mut pending.results);
                transitions.append(&mut pending.transitions);
                audit.append(&mut pending.audit);
                pending.results = results;
                pending.transitions = transitions;
                pending.audit = audit;
                error.to_string()
            }
            // The write task itself failed: its batch is gone with it; keep what remains.
            Err(error) => error.to_string(),
        };
        pending.failures = pending.failures.saturating_add(1);
        let backoff = Duration::from_secs(1 << pending.failures.min(5)).min(MAX_WRITE_BACKOFF);
        pending.retry_at = Some(tokio::time::Instant::now() + backoff);
        tracing::warn!(
            %error,
            results = count,
            retry_in_s = backoff.as_secs(),
            "writing probe results failed; keeping them for the next attempt"
        );
    }
    /// Publishes written transitions, in the order they happened.
    fn announce(&self, transitions: Vec<NewTransition>) {
        for t in transitions {
            self.bus.publish(Event::CheckChanged {
                check: t.check,
                service: t.service,
                from: t.from,
                to: t.to,
                reason: t.reason,
            });
        }
    }
}

fn record_of(entry: &Entry) -> CheckRecord {
    CheckRecord {
        check: entry.spec.name.clone(),
        service: entry.spec.service.clone(),
        state: entry.tracker.state(),
        consecutive_failures: entry.tracker.consecutive_failures(),
        consecutive_successes: entry.tracker.consecutive_successes(),
        since_ms: entry.since_ms,
        last_probe_ms: entry.last_probe_ms,
    }
}

fn record_metrics(entry: &Entry, seen: &Observation) {
    entry.duration.record(seen.latency_ms as f64 / 1_000.0);
    match entry.tracker.state() {
        CheckState::Up | CheckState::Degraded => entry.up.set(1.0),
        CheckState::Down => entry.up.set(0.0),
        CheckState::Unknown => {}
    }
    if let Some(not_after) = seen.cert_not_after_ms {
        // When it expires, not how long it has left: the value stays right between probes, and
        // `… - time()` gives the time left in a query.
        metrics::gauge!("steward_check_certificate_expiry_timestamp_seconds", "check" => entry.spec.name.clone())
            .set(not_after as f64 / 1_000.0);
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

/// The enabled checks this prober probes: not those a node's agent probes from the node.
fn hub_checks(config: &Config) -> impl Iterator<Item = &CheckSpec> {
    let on_nodes = crate::views::nodes::checks_on_nodes(config);
    config
        .checks
        .iter()
        .filter(move |s| s.enabled && !on_nodes.contains(s.name.as_str()))
}

/// Where in its interval a check's first probe falls (see [`steward_probe::phase_ms`]).
fn phase(name: &str, interval_ms: u64) -> i64 {
    i64::try_from(steward_probe::phase_ms(name, interval_ms)).unwrap_or(0)
}

/// The timetable: every enabled check, and a min-heap of when each is next due.
struct Table {
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    /// (due, index in `entries`, generation).
    heap: BinaryHeap<Reverse<(i64, usize, u64)>>,
    /// Checks per state, in the order of [`CheckState::ALL`].
    counts: [u64; 4],
    next_generation: u64,
}

impl Table {
    fn new(config: &Config, records: &[CheckRecord], now: i64) -> Self {
        let mut table = Self::empty();
        let restored: HashMap<&str, &CheckRecord> =
            records.iter().map(|r| (r.check.as_str(), r)).collect();
        for spec in hub_checks(config) {
            let tracker = restored.get(spec.name.as_str()).map(|r| {
                (
                    CheckTracker::restore(r.state, r.consecutive_failures, r.consecutive_successes),
                    r.since_ms,
                    r.last_probe_ms,
                )
            });
            table.insert(spec, tracker, now);
        }
        table.count_states();
        table
    }

    fn empty() -> Self {
        Self {
            entries: Vec::new(),
            by_name: HashMap::new(),
            heap: BinaryHeap::new(),
            counts: [0; 4],
            next_generation: 0,
        }
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
        self.push(entry);
    }

    fn push(&mut self, entry: Entry) {
        let index = self.entries.len();
        self.heap
            .push(Reverse((entry.next_due_ms, index, entry.generation)));
        self.by_name.insert(entry.spec.name.clone(), index);
        self.entries.push(entry);
    }

    /// Where the entry a probe was started for is now: its old place, or (after a reload
    /// moved it) its place by name; `None` when the check was removed or changed since.
    fn locate(&self, index: usize, generation: u64, name: &str) -> Option<usize> {
        if self.entries.get(index).map(|e| e.generation) == Some(generation) {
            return Some(index);
        }
        let moved = *self.by_name.get(name)?;
        (self.entries.get(moved).map(|e| e.generation) == Some(generation)).then_some(moved)
    }

    /// Applies a new config: unchanged checks keep their state and slot, changed ones keep
    /// their state and start afresh, removed ones go.
    fn reload(&mut self, config: &Config, now: i64) {
        let old = std::mem::replace(self, Self::empty());
        self.next_generation = old.next_generation;
        let mut old_entries: HashMap<String, Entry> = old
            .entries
            .into_iter()
            .map(|e| (e.spec.name.clone(), e))
            .collect();
        for spec in hub_checks(config) {
            match old_entries.remove(&spec.name) {
                Some(entry) if *entry.spec == *spec => self.push(entry),
                Some(entry) => self.insert(
                    spec,
                    Some((entry.tracker, entry.since_ms, entry.last_probe_ms)),
                    now,
                ),
                None => self.insert(spec, None, now),
            }
        }
        self.count_states();
    }

    fn count_states(&mut self) {
        self.counts = [0; 4];
        for entry in &self.entries {
            self.counts[state_index(entry.tracker.state())] += 1;
        }
    }

    fn sleep_until_next(&self, now: i64, max: Duration) -> Duration {
        let wait = self.heap.peek().map_or(u64::MAX, |Reverse((due, _, _))| {
            u64::try_from(due - now).unwrap_or(0)
        });
        Duration::from_millis(wait).min(max)
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
}
