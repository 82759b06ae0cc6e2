//! Bus → event log. Each event is given the workspace it concerns and appended at once when
//! the log was last written a window ago or more; while events keep coming, those of a window
//! are gathered into one transaction. Task events of a queue busy enough to have many in one
//! window are summed instead, one summary per queue and workspace a second while they keep
//! coming: a dashboard learns the pace, and clients are not woken per task.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use steward_core::Event;
use steward_core::alert::Fingerprint;
use steward_store::Store;
use steward_store::events::{EVENT_LOG_WINDOW, NewLoggedEvent};
use steward_wire::events::{AlertChange, EventData, LOST, StreamEvent};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::ControlPlane;
use crate::bus::Envelope;

/// How the relay batches and coalesces.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// This instance's name, carried by every event it writes.
    pub instance: String,
    /// The least time between two appends while events keep coming: an event arriving a
    /// window or more after the last append is written at once, with whatever is already
    /// waiting; later ones are gathered until a window after that append.
    pub window: Duration,
    /// Task events of one queue and workspace in a window beyond which they are written as one
    /// `tasks_changed` (or one summed `tasks_enqueued`).
    pub coalesce_above: usize,
    /// Once a queue's task events are coalesced, one summary of them is written this often
    /// while they keep coming, and a window after they stop.
    pub summary_every: Duration,
    /// How often the log is trimmed to its window.
    pub trim_every: Duration,
}

impl RelayOptions {
    /// The defaults, for `instance`.
    pub fn new(instance: impl Into<String>) -> Self {
        Self {
            instance: instance.into(),
            window: Duration::from_millis(20),
            coalesce_above: 16,
            summary_every: Duration::from_secs(1),
            trim_every: Duration::from_secs(30),
        }
    }
}

/// Starts relaying `control`'s bus into the event log until `stop` is cancelled. It subscribes
/// at once: events published after this call are relayed.
pub fn spawn_relay(
    control: Arc<ControlPlane>,
    options: RelayOptions,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let receiver = control.bus().subscribe();
    tokio::spawn(async move {
        tokio::select! {
            () = stop.cancelled() => {}
            () = relay(control, options, receiver) => {}
        }
    })
}

async fn relay(
    control: Arc<ControlPlane>,
    options: RelayOptions,
    mut receiver: tokio::sync::broadcast::Receiver<Envelope>,
) {
    let store = Arc::clone(control.store());
    let mut lost: u64 = 0;
    let mut summaries = Summaries::default();
    let mut last_write: Option<tokio::time::Instant> = None;
    let mut trim = tokio::time::interval(options.trim_every);
    trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let summary_due = summaries.next_due(options.summary_every, options.window);
        let first = tokio::select! {
            received = receiver.recv() => Some(received),
            () = sleep_until(summary_due) => None,
            _ = trim.tick() => {
                if let Err(error) = store.trim_event_log(EVENT_LOG_WINDOW).await {
                    tracing::warn!(%error, "trimming the event log failed");
                }
                continue;
            }
        };
        let mut batch = Vec::new();
        match first {
            Some(Ok(envelope)) => batch.push(envelope),
            Some(Err(RecvError::Lagged(n))) => lost += n,
            Some(Err(RecvError::Closed)) => return,
            None => {}
        }
        if !batch.is_empty() || lost > 0 {
            // At most one append per window while events keep coming, yet none waits after a
            // quiet one. A deadline already past still takes what is waiting: `timeout_at`
            // polls the receive before the clock.
            let deadline =
                last_write.map_or_else(tokio::time::Instant::now, |at| at + options.window);
            loop {
                match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(Ok(envelope)) => batch.push(envelope),
                    Ok(Err(RecvError::Lagged(n))) => lost += n,
                    Ok(Err(RecvError::Closed)) | Err(_) => break,
                }
            }
        }
        let mut rows = Vec::with_capacity(batch.len() + 1);
        if lost > 0 {
            rows.push(lost_row(&options.instance, lost));
        }
        rows.extend(rows_of(&control, &store, &options, &mut summaries, batch).await);
        rows.extend(summaries.take_due(options.summary_every, options.window, &options.instance));
        if rows.is_empty() {
            continue;
        }
        last_write = Some(tokio::time::Instant::now());
        let count = rows.len() as u64;
        match store.append_events(&rows).await {
            Ok(()) => {
                metrics::counter!("steward_events_logged_total").increment(count);
                lost = 0;
            }
            Err(error) => {
                tracing::warn!(%error, events = count, "cannot write events to the event log");
                // Said next time as one `lost` event; a `lost` row of this batch counted already.
                lost = rows
                    .iter()
                    .filter(|r| r.kind != LOST)
                    .count()
                    .try_into()
                    .map_or(u64::MAX, |n: u64| lost.saturating_add(n));
            }
        }
    }
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Task events being summed per group.
#[derive(Default)]
struct Summaries {
    groups: BTreeMap<GroupKey, Summing>,
}

/// One group's sum, with when it started and when it last grew.
struct Summing {
    since: tokio::time::Instant,
    last: tokio::time::Instant,
    sum: Coalesced,
}

impl Summing {
    /// Due a summary period after it started, or a window after its last event (the queue went
    /// quiet: what was summed goes out now rather than at the period's end).
    fn due(&self, every: Duration, window: Duration) -> tokio::time::Instant {
        (self.since + every).min(self.last + window)
    }
}

impl Summaries {
    /// When the next summary is due.
    fn next_due(&self, every: Duration, window: Duration) -> Option<tokio::time::Instant> {
        self.groups.values().map(|g| g.due(every, window)).min()
    }

    fn contains(&self, key: GroupRef<'_>) -> bool {
        self.groups.contains_key(&owned(key))
    }

    /// Adds what a window summed for one group.
    fn add(&mut self, key: GroupRef<'_>, sum: Coalesced) {
        let now = tokio::time::Instant::now();
        match self.groups.get_mut(&owned(key)) {
            Some(group) => {
                group.last = now;
                group.sum.merge(sum);
            }
            None => {
                self.groups.insert(
                    owned(key),
                    Summing {
                        since: now,
                        last: now,
                        sum,
                    },
                );
            }
        }
    }

    /// The summaries due now, as rows.
    fn take_due(
        &mut self,
        every: Duration,
        window: Duration,
        instance: &str,
    ) -> Vec<NewLoggedEvent> {
        let now = tokio::time::Instant::now();
        let due: Vec<GroupKey> = self
            .groups
            .iter()
            .filter(|(_, group)| group.due(every, window) <= now)
            .map(|(key, _)| key.clone())
            .collect();
        due.into_iter()
            .filter_map(|key| {
                let group = self.groups.remove(&key)?;
                let (kind, queue, workspace) = key;
                Some(group.sum.into_row(kind, &queue, workspace, instance))
            })
            .collect()
    }
}

fn lost_row(instance: &str, count: u64) -> NewLoggedEvent {
    metrics::counter!("steward_events_lost_total").increment(count);
    let data = EventData::Lost {
        count,
        reason: None,
    };
    row(&data, steward_store::now_ms(), None, instance)
}

/// The rows a window's events become, every event given its workspace. Task events of a
/// queue and workspace with many in the window (or already being summed) go to `summaries`
/// instead, written once per `summary_every`.
async fn rows_of(
    control: &ControlPlane,
    store: &Arc<dyn Store>,
    options: &RelayOptions,
    summaries: &mut Summaries,
    batch: Vec<Envelope>,
) -> Vec<NewLoggedEvent> {
    let mut rows = Vec::with_capacity(batch.len());
    let heavy = heavy_task_groups(&batch, options.coalesce_above);
    // Summed per window under borrowed keys first: no allocation per task event.
    let mut summed: HashMap<GroupRef<'_>, Coalesced> = HashMap::new();
    // Every alert change of the window is read in one query and written as one event per
    // workspace: posted alerts arrive in many small calls, each announcing its own.
    let mut changed_alerts: Vec<Fingerprint> = Vec::new();
    let mut alerts_at_ms = 0;
    for envelope in &batch {
        let at_ms = i64::try_from(envelope.at_ms).unwrap_or(i64::MAX);
        if let Some(key) = task_group(&envelope.event)
            && (heavy.contains(&key) || summed.contains_key(&key) || summaries.contains(key))
        {
            summed
                .entry(key)
                .or_insert_with(|| Coalesced::new(at_ms))
                .add(&envelope.event, at_ms);
            continue;
        }
        match &envelope.event {
            Event::AlertsChanged { fingerprints } => {
                changed_alerts.extend(fingerprints);
                alerts_at_ms = alerts_at_ms.max(at_ms);
            }
            event => {
                let workspace = workspace_of(control, event);
                rows.push(event_row(event, at_ms, workspace, &options.instance));
            }
        }
    }
    for (key, sum) in summed {
        summaries.add(key, sum);
    }
    if !changed_alerts.is_empty() {
        changed_alerts.sort_unstable();
        changed_alerts.dedup();
        rows.extend(alert_rows(store, &changed_alerts, alerts_at_ms, &options.instance).await);
    }
    rows
}

/// What task events are grouped by: their type, queue and workspace.
type GroupKey = (&'static str, String, Option<String>);

/// A group's key borrowed from its events.
type GroupRef<'a> = (&'static str, &'a str, Option<&'a str>);

fn owned((kind, queue, workspace): GroupRef<'_>) -> GroupKey {
    (kind, queue.to_owned(), workspace.map(str::to_owned))
}

fn task_group(event: &Event) -> Option<GroupRef<'_>> {
    match event {
        Event::TaskChanged {
            queue, workspace, ..
        } => Some(("tasks_changed", queue, workspace.as_deref())),
        Event::TasksEnqueued {
            queue, workspace, ..
        } => Some(("tasks_enqueued", queue, workspace.as_deref())),
        _ => None,
    }
}

fn heavy_task_groups(batch: &[Envelope], above: usize) -> HashSet<GroupRef<'_>> {
    let mut counts: HashMap<GroupRef<'_>, usize> = HashMap::new();
    for envelope in batch {
        if let Some(key) = task_group(&envelope.event) {
            *counts.entry(key).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n > above)
        .map(|(key, _)| key)
        .collect()
}

/// Many task events of one group, summed.
struct Coalesced {
    first_ms: i64,
    last_ms: i64,
    events: u64,
    /// `tasks_changed`: tasks per status reached.
    statuses: BTreeMap<&'static str, u64>,
    /// `tasks_enqueued`: tasks in the calls, and new ones.
    count: u64,
    created: u64,
}

impl Coalesced {
    fn new(at_ms: i64) -> Self {
        Self {
            first_ms: at_ms,
            last_ms: at_ms,
            events: 0,
            statuses: BTreeMap::new(),
            count: 0,
            created: 0,
        }
    }

    fn add(&mut self, event: &Event, at_ms: i64) {
        self.events += 1;
        self.first_ms = self.first_ms.min(at_ms);
        self.last_ms = self.last_ms.max(at_ms);
        match event {
            Event::TaskChanged { status, .. } => {
                *self.statuses.entry(status.as_str()).or_default() += 1;
            }
            Event::TasksEnqueued { count, created, .. } => {
                self.count += *count as u64;
                self.created += *created as u64;
            }
            _ => {}
        }
    }

    /// Adds a later sum of the same group.
    fn merge(&mut self, later: Coalesced) {
        self.events += later.events;
        self.first_ms = self.first_ms.min(later.first_ms);
        self.last_ms = self.last_ms.max(later.last_ms);
        for (status, n) in later.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.count += later.count;
        self.created += later.created;
    }

    fn into_row(
        self,
        kind: &'static str,
        queue: &str,
        workspace: Option<String>,
        instance: &str,
    ) -> NewLoggedEvent {
        let data = if kind == "tasks_changed" {
            EventData::TasksChanged {
                queue: queue.to_owned(),
                coalesced: self.events,
                first_ms: self.first_ms,
                statuses: self
                    .statuses
                    .into_iter()
                    .map(|(status, n)| (status.to_owned(), n))
                    .collect(),
            }
        } else {
            EventData::TasksEnqueued {
                queue: queue.to_owned(),
                count: self.count,
                created: self.created,
                coalesced: Some(self.events),
                first_ms: Some(self.first_ms),
            }
        };
        row(&data, self.last_ms, workspace, instance)
    }
}

/// The workspace an event concerns, from the event or the declarations it names.
fn workspace_of(control: &ControlPlane, event: &Event) -> Option<String> {
    match event {
        Event::TaskChanged { workspace, .. }
        | Event::TasksEnqueued { workspace, .. }
        | Event::PipelineRunChanged { workspace, .. } => workspace.clone(),
        Event::CheckChanged { service, .. } => control
            .registry()
            .services
            .iter()
            .find(|s| &s.name == service)
            .and_then(|s| s.workspace.clone()),
        Event::ScheduleFired { schedule, .. }
        | Event::ScheduleSkipped { schedule, .. }
        | Event::SlotsMissed { schedule, .. }
        | Event::ScheduleOverdue { schedule, .. } => control
            .config()
            .schedules
            .iter()
            .find(|s| &s.name == schedule)
            .and_then(|s| s.workspace.clone()),
        Event::NodeChanged { workspace, .. }
        | Event::NodeStatusChanged { workspace, .. }
        | Event::NodeInventoryChanged { workspace, .. } => workspace.clone(),
        Event::HeartbeatChanged { name, .. } => control
            .config()
            .heartbeats
            .iter()
            .find(|h| &h.name == name)
            .and_then(|h| h.workspace.clone()),
        _ => None,
    }
}

/// Changed alerts as one event per workspace their `workspace` label names (so a scoped key
/// sees only its own), each listing the alerts' fingerprints, names and states.
async fn alert_rows(
    store: &Arc<dyn Store>,
    fingerprints: &[Fingerprint],
    at_ms: i64,
    instance: &str,
) -> Vec<NewLoggedEvent> {
    let alerts = match store.alerts_by_fingerprint(fingerprints).await {
        Ok(alerts) => alerts,
        Err(error) => {
            tracing::warn!(%error, "cannot read changed alerts for the event stream");
            Vec::new()
        }
    };
    let mut per_workspace: BTreeMap<Option<String>, Vec<AlertChange>> = BTreeMap::new();
    for alert in &alerts {
        let workspace = alert
            .labels
            .get(steward_core::alert::WORKSPACE_LABEL)
            .cloned();
        per_workspace
            .entry(workspace)
            .or_default()
            .push(AlertChange {
                fingerprint: alert.fingerprint.to_string(),
                alertname: alert.labels.get("alertname").cloned().unwrap_or_default(),
                state: alert.state.as_str().to_owned(),
                severity: alert.severity.as_str().to_owned(),
            });
    }
    per_workspace
        .into_iter()
        .map(|(workspace, alerts)| {
            row(
                &EventData::AlertsChanged { alerts },
                at_ms,
                workspace,
                instance,
            )
        })
        .collect()
}

fn event_row(
    event: &Event,
    at_ms: i64,
    workspace: Option<String>,
    instance: &str,
) -> NewLoggedEvent {
    row(&data_of(event), at_ms, workspace, instance)
}

/// What a bus event carries, as the stream shows it.
fn data_of(event: &Event) -> EventData {
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    match event.clone() {
        Event::RegistrySynced {
            added,
            updated,
            removed,
        } => EventData::RegistrySynced {
            added: count(added),
            updated: count(updated),
            removed: count(removed),
        },
        Event::ConfigRejected { problems } => EventData::ConfigRejected {
            problems: count(problems),
        },
        Event::TasksEnqueued {
            queue,
            count: n,
            created,
            ..
        } => EventData::TasksEnqueued {
            queue,
            count: count(n),
            created: count(created),
            coalesced: None,
            first_ms: None,
        },
        Event::PipelineRunChanged {
            run_id,
            pipeline,
            status,
            started,
            finished,
            steps,
            ..
        } => EventData::PipelineRunChanged {
            run_id,
            pipeline,
            status: status.as_str().to_owned(),
            started,
            finished,
            steps: steps
                .into_iter()
                .map(|(name, state, task_id)| steward_wire::events::StepChange {
                    name,
                    state: state.as_str().to_owned(),
                    task_id,
                })
                .collect(),
        },
        Event::TaskChanged {
            id,
            queue,
            kind,
            status,
            attempt,
            outcome,
            ..
        } => EventData::TaskChanged {
            id,
            queue,
            kind,
            status: status.as_str().to_owned(),
            attempt,
            outcome,
        },
        Event::LeadershipChanged {
            role,
            holder,
            fence,
            leading,
        } => EventData::LeadershipChanged {
            role,
            holder,
            fence,
            leading,
        },
        Event::ScheduleFired {
            schedule,
            slot_ms,
            trigger,
            task_id,
            lateness_ms,
        } => EventData::ScheduleFired {
            schedule,
            slot_ms,
            trigger,
            task_id,
            lateness_ms,
        },
        Event::ScheduleSkipped {
            schedule,
            slot_ms,
            reason,
        } => EventData::ScheduleSkipped {
            schedule,
            slot_ms,
            reason,
        },
        Event::SlotsMissed {
            schedule,
            count,
            first_ms,
            last_ms,
        } => EventData::SlotsMissed {
            schedule,
            count,
            first_ms,
            last_ms,
        },
        Event::ScheduleOverdue {
            schedule,
            slot_ms,
            task_id,
            task_status,
        } => EventData::ScheduleOverdue {
            schedule,
            slot_ms,
            task_id,
            task_status: task_status.map(|s| s.as_str().to_owned()),
        },
        Event::NodeChanged { node, change, .. } => EventData::NodeChanged { node, change },
        Event::NodeStatusChanged { node, from, to, .. } => EventData::NodeStatusChanged {
            node,
            from: node_status_of(from),
            to: node_status_of(to),
        },
        Event::NodeInventoryChanged {
            node,
            kind,
            added,
            changed,
            removed,
            ..
        } => EventData::NodeInventoryChanged {
            node,
            kind,
            added,
            changed,
            removed,
        },
        Event::HeartbeatChanged { name, from, to } => EventData::HeartbeatChanged {
            name,
            from: from.as_str().to_owned(),
            to: to.as_str().to_owned(),
        },
        // Changed alerts are read back from the store and written by `alert_rows`, with what
        // they are now; the bare fingerprints never reach here.
        Event::AlertsChanged { .. } => EventData::AlertsChanged { alerts: Vec::new() },
        Event::SilencesChanged => EventData::SilencesChanged,
        Event::CheckChanged {
            check,
            service,
            from,
            to,
            reason,
        } => EventData::CheckChanged {
            check,
            service,
            from: from.as_str().to_owned(),
            to: to.as_str().to_owned(),
            reason,
        },
    }
}

fn row(data: &EventData, at_ms: i64, workspace: Option<String>, instance: &str) -> NewLoggedEvent {
    let event = StreamEvent::new(at_ms, workspace.clone(), Some(instance.to_owned()), data);
    NewLoggedEvent {
        at_ms,
        kind: data.kind().to_owned(),
        workspace,
        body: serde_json::to_string(&event).unwrap_or_else(|_| "{}".to_owned()),
    }
}

#[cfg(test)]
mod tests;

/// A node status as the wire names it.
fn node_status_of(status: steward_core::node::NodeStatus) -> steward_wire::nodes::NodeStatus {
    use steward_core::node::NodeStatus as Core;
    use steward_wire::nodes::NodeStatus as Wire;
    match status {
        Core::Pending => Wire::Pending,
        Core::Up => Wire::Up,
        Core::Late => Wire::Late,
        Core::Down => Wire::Down,
    }
}
