//! The alert manager's running side, on the instance holding the `alerting` lease:
//! - [`dispatch`] routes alerts into groups, times them and writes notifications (and
//!   remediation tasks) to the outbox;
//! - [`sender`] attempts the outbox's notifications through [`deliver`], retrying with backoff
//!   until delivered or expired;
//! - [`known`] keeps the alerts the dispatcher knows, with their notification JSON;
//! - [`muting`] says which alerts silences, maintenance windows and inhibition hold back;
//! - `rules` evaluates `[[alerting.rules]]` and posts what they find.
//!
//! The same instance resolves external alerts whose senders stopped re-sending them, after
//! `alerting.resolve_timeout` (as in Alertmanager).

pub mod deliver;
mod dispatch;
mod known;
pub mod muting;
pub mod ops;
mod rules;
mod sender;

use std::sync::Arc;
use std::time::Duration;

use steward_config::Config;
use steward_core::Event;
use steward_core::alert::Fingerprint;
use steward_core::registry::Registry;
use steward_store::alerts::{EXTERNAL_SOURCE, RemoteAlerts};
use steward_store::notifications::StoredNotification;
use steward_store::{Lease, Store, now_ms};
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::bus::EventBus;
use crate::lease;
use sender::Handoff;

/// Gives the config in force.
pub type ConfigSource = Arc<dyn Fn() -> Arc<Config> + Send + Sync>;
/// Gives the registry in force.
pub type RegistrySource = Arc<dyn Fn() -> Arc<Registry> + Send + Sync>;

/// How often stale alerts are looked for.
const RESOLVE_EVERY: Duration = Duration::from_secs(5);
/// How often the dispatcher reads the silences and the service states (and, on a shared
/// database, the alerts other instances received).
const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// How often the dispatcher reads every firing alert again on a database only it writes (a
/// safety net: events announce every change there).
const SCAN_EVERY_EXCLUSIVE: Duration = Duration::from_secs(300);
/// The same on a shared database (acknowledgements through other instances show then).
const SCAN_EVERY_SHARED: Duration = Duration::from_secs(60);
/// How long the dispatcher waits before trying again after the store failed it.
const RETRY_MS: i64 = 1_000;
/// Timeout of one delivery attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Dispatcher passes whose notifications may wait for the sender to take them over.
const HANDOFF_PASSES: usize = 64;
/// Dispatcher passes being written at once, at most: groups falling due while a pass is
/// written go out in the next one without waiting for it, so that a slow write does not make
/// the next pass larger, and that one's write slower still.
const WRITES_AT_ONCE: usize = 3;
/// How long after a pass wrote notifications they are linked to their alerts, and how often at
/// most linking runs.
const LINK_EVERY: Duration = Duration::from_secs(1);

/// How the alert manager runs.
#[derive(Debug, Clone)]
pub struct AlertingOptions {
    /// This instance's name as a lease holder.
    pub instance: String,
    /// The `alerting` lease's length.
    pub lease_ms: u64,
    /// Steward's URL as receivers should link to it when `alerting.external_url` names none.
    pub default_external_url: String,
}

/// Starts the alert manager: it dispatches and sends while this instance holds the `alerting`
/// lease, until `shutdown`. Remediation payloads are checked by `executors`, as tasks posted
/// to the API are.
pub fn spawn(
    store: Arc<dyn Store>,
    bus: EventBus,
    config: ConfigSource,
    registry: RegistrySource,
    executors: Arc<crate::executors::Executors>,
    options: AlertingOptions,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>, deliver::DeliverError> {
    let deliverer = Arc::new(deliver::Deliverer::new(
        options.default_external_url.clone(),
        ATTEMPT_TIMEOUT,
    )?);
    let (held, mut leadership) = watch::channel::<Option<Lease>>(None);
    let leading = tokio::spawn(lease::lead(
        lease::ALERTING,
        Arc::clone(&store),
        bus.clone(),
        options.instance.clone(),
        options.lease_ms,
        held,
        shutdown.clone(),
    ));
    Ok(tokio::spawn(async move {
        loop {
            // Wait to lead.
            while leadership.borrow_and_update().is_none() {
                tokio::select! {
                    changed = leadership.changed() => if changed.is_err() { let _ = leading.await; return; },
                    () = shutdown.cancelled() => { let _ = leading.await; return; }
                }
            }
            let lease = leadership.borrow().clone();
            let fence = lease.as_ref().map(|l| l.fence);
            let term = shutdown.child_token();
            let wake = Arc::new(Notify::new());
            let (handoff, handed) = mpsc::channel(HANDOFF_PASSES);
            let dispatching = tokio::spawn(dispatch_loop(
                Arc::clone(&store),
                lease,
                bus.subscribe(),
                Sources {
                    config: Arc::clone(&config),
                    registry: Arc::clone(&registry),
                    executors: Arc::clone(&executors),
                },
                Outbox {
                    wake: Arc::clone(&wake),
                    handoff,
                    announced_to: 0,
                },
                term.clone(),
            ));
            let sending = tokio::spawn(sender::run(
                Arc::clone(&store),
                Arc::clone(&config),
                Arc::clone(&deliverer),
                sender::Inbox { wake, handed },
                term.clone(),
            ));
            let resolving = tokio::spawn(resolve_loop(
                Arc::clone(&store),
                bus.clone(),
                Arc::clone(&config),
                term.clone(),
            ));
            let evaluating = tokio::spawn(rules::run(
                Arc::clone(&store),
                bus.clone(),
                Arc::clone(&config),
                term.clone(),
            ));
            // Lead until the lease is lost, given up, or taken anew (another fence: another
            // leader may have written in between, so the state is read again).
            while leadership.borrow_and_update().as_ref().map(|l| l.fence) == fence {
                tokio::select! {
                    changed = leadership.changed() => if changed.is_err() { break },
                    () = shutdown.cancelled() => break,
                }
            }
            term.cancel();
            let _ = dispatching.await;
            let _ = sending.await;
            let _ = evaluating.await;
            let _ = resolving.await;
            if shutdown.is_cancelled() {
                let _ = leading.await;
                return;
            }
        }
    }))
}

/// How the dispatcher tells the sender of notifications it wrote.
struct Outbox {
    /// Says the outbox holds notifications to read.
    wake: Arc<Notify>,
    /// Hands over notifications heading their groups, as written, so the sender need not
    /// read them back (when it is full, the sender is woken to read them instead).
    handoff: mpsc::Sender<Handoff>,
    /// The last [`Handoff::announced_to`] handed over.
    announced_to: i64,
}

impl Outbox {
    /// Passes a pass's new group heads to the sender, with how far the passes written reach.
    fn hand_over(&mut self, heads: Vec<StoredNotification>, announced_to: i64) {
        if heads.is_empty() && announced_to <= self.announced_to {
            return;
        }
        match self.handoff.try_send(Handoff {
            heads,
            announced_to,
        }) {
            Ok(()) => self.announced_to = announced_to,
            Err(_) => self.wake.notify_one(),
        }
    }
}

/// Runs the dispatcher until `stop`: a pass whenever a group is due, alerts or silences change,
/// the config is reloaded, or (every few seconds) after reading everything again.
/// What the dispatcher reads from the control plane: the config and registry in force, and
/// the executors remediation payloads are checked by.
struct Sources {
    config: ConfigSource,
    registry: RegistrySource,
    executors: Arc<crate::executors::Executors>,
}

async fn dispatch_loop(
    store: Arc<dyn Store>,
    lease: Option<Lease>,
    mut events: broadcast::Receiver<crate::bus::Envelope>,
    sources: Sources,
    mut outbox: Outbox,
    stop: CancellationToken,
) {
    let Sources {
        config,
        registry,
        executors,
    } = sources;
    let mut dispatcher = loop {
        match dispatch::Dispatcher::load(
            Arc::clone(&store),
            config(),
            &registry(),
            lease.clone(),
            now_ms(),
        )
        .await
        {
            Ok(mut dispatcher) => {
                dispatcher.check_payloads_with(Arc::clone(&executors));
                break dispatcher;
            }
            Err(error) => {
                tracing::warn!(%error, "the dispatcher cannot load its state; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(RETRY_MS as u64)) => {}
                    () = stop.cancelled() => return,
                }
            }
        }
    };
    tracing::info!("dispatching alerts");
    // Whatever the outbox holds from before is sent now.
    outbox.hand_over(Vec::new(), dispatcher.announced_to());
    outbox.wake.notify_one();
    let mut refresh = tokio::time::interval(REFRESH_EVERY);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    refresh.reset();
    // Other instances of a shared database post alerts no event here announces: they are
    // caught up with every few seconds. A full read, one page per turn, is a safety net.
    let shared = !store.exclusive();
    let scan_every = if shared {
        SCAN_EVERY_SHARED
    } else {
        SCAN_EVERY_EXCLUSIVE
    };
    let mut scan = tokio::time::interval(scan_every);
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    scan.reset();
    let mut scan_wanted = false;
    // Notifications a crash left unlinked from their alerts are linked at the first turn.
    let mut links = Links::default();
    // What other instances of a shared database announce, as soon as they commit it (the
    // store keeps its sender for as long as it lives, so this never closes).
    let mut remote = store.remote_alerts();
    loop {
        let mut reads = Reads::default();
        let sleep = if dispatcher.scanning() || scan_wanted {
            Duration::ZERO
        } else if dispatcher.writing() >= WRITES_AT_ONCE {
            // The end of a write wakes it.
            links.wait()
        } else {
            dispatcher
                .next_due()
                .map_or(Duration::from_secs(3_600), |at| {
                    Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))
                })
                .min(links.wait())
        };
        tokio::select! {
            () = stop.cancelled() => break,
            written = dispatcher.written() => {
                settle(written, &mut outbox, &mut links);
                continue;
            }
            event = events.recv() => reads.note(event.ok()),
            heard = remote.recv() => reads.note_remote(heard.ok()),
            _ = refresh.tick() => reads.context = true,
            _ = scan.tick() => scan_wanted = true,
            ended = links.finished() => links.settle(ended),
            () = tokio::time::sleep(sleep) => {}
        }
        // Take in everything already announced, so a burst of posts makes one pass.
        loop {
            match events.try_recv() {
                Ok(event) => reads.note(Some(event)),
                Err(broadcast::error::TryRecvError::Lagged(_)) => reads.note(None),
                Err(_) => break,
            }
        }
        loop {
            match remote.try_recv() {
                Ok(heard) => reads.note_remote(Some(heard)),
                Err(broadcast::error::TryRecvError::Lagged(_)) => reads.note_remote(None),
                Err(_) => break,
            }
        }
        let now = now_ms();
        let current = config();
        if !Arc::ptr_eq(&current, dispatcher.config()) {
            dispatcher.set_config(current, now);
        }
        reads.scan |= scan_wanted || dispatcher.scanning();
        reads.catch_up |= reads.context && shared;
        if let Err(error) = read(&mut dispatcher, &registry, &reads, now).await {
            tracing::warn!(%error, "the dispatcher cannot read alerts; it reads everything again shortly");
            scan_wanted = true;
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(RETRY_MS as u64)) => {}
                () = stop.cancelled() => break,
            }
        } else {
            scan_wanted = false;
        }
        if dispatcher.writing() < WRITES_AT_ONCE {
            let now = now_ms();
            let plan = dispatcher.plan(now);
            dispatcher.write(plan, now + RETRY_MS);
        }
        links.start(&store, dispatcher.announced_to(), dispatcher.written_to());
        if reads.context {
            let (firing, muted, groups) = dispatcher.counts(now);
            #[allow(clippy::cast_precision_loss)]
            {
                metrics::gauge!("steward_alerts", "state" => "firing").set(firing as f64);
                metrics::gauge!("steward_alerts", "state" => "muted").set(muted as f64);
                metrics::gauge!("steward_alert_groups").set(groups as f64);
            }
        }
    }
    // Passes under way are written to the end rather than cut short.
    while dispatcher.writing() > 0 {
        let written = dispatcher.written().await;
        settle(written, &mut outbox, &mut links);
    }
}

/// Takes in a written pass: its new group heads go to the sender, and its notifications are
/// linked to their alerts.
fn settle(
    written: Result<dispatch::Written, steward_store::StoreError>,
    outbox: &mut Outbox,
    links: &mut Links,
) {
    match written {
        // Notifications behind an earlier one of their group are read by the sender once
        // that one is done.
        Ok(written) => {
            outbox.hand_over(written.heads, written.announced_to);
            if written.notifications > 0 {
                links.owe();
            }
        }
        Err(error) => tracing::warn!(%error, "writing notifications failed; retrying"),
    }
}

/// Links notifications to their alerts
/// ([`link_notifications`](steward_store::NotificationStore::link_notifications)) once they
/// are likely sent: [`LINK_EVERY`] after a pass wrote them (parsing a large group's notices takes the
/// store a while, which its receiver would otherwise wait for), and at most that often, so that
/// a burst of passes is linked in a few runs, not one per pass. What an earlier leader left
/// unlinked is linked at once. Linking runs in a task of its own, one at a time, which no pass
/// waits for.
struct Links {
    /// Notifications were written that no linking under way or done covers.
    owed: bool,
    /// When linking last started.
    last: tokio::time::Instant,
    /// The linking under way.
    running: Option<JoinHandle<Result<u64, steward_store::StoreError>>>,
}

impl Default for Links {
    fn default() -> Self {
        let now = tokio::time::Instant::now();
        Self {
            owed: true,
            // Due at once.
            last: now.checked_sub(LINK_EVERY).unwrap_or(now),
            running: None,
        }
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        // A linking cut short rolls back; the next leader links from the notices.
        if let Some(running) = &self.running {
            running.abort();
        }
    }
}

impl Links {
    /// Notes that a pass wrote notifications: linked [`LINK_EVERY`] later, or with the
    /// notifications owed already.
    fn owe(&mut self) {
        if !self.owed {
            self.owed = true;
            self.last = tokio::time::Instant::now();
        }
    }

    /// How long until linking is due (long while nothing is owed or linking runs: its end
    /// wakes the dispatcher through [`Links::finished`]).
    fn wait(&self) -> Duration {
        if self.owed && self.running.is_none() {
            (self.last + LINK_EVERY).saturating_duration_since(tokio::time::Instant::now())
        } else {
            Duration::from_secs(3_600)
        }
    }

    /// Starts linking what is owed when it is due ([`Links::wait`]) and no linking runs, up to
    /// notification `up_to` (below it, no pass is being written). Notifications written above
    /// it, up to `written_to`, stay owed.
    fn start(&mut self, store: &Arc<dyn Store>, up_to: i64, written_to: i64) {
        if self.running.is_some() || !self.owed || !self.wait().is_zero() {
            return;
        }
        self.last = tokio::time::Instant::now();
        self.owed = up_to < written_to;
        let store = Arc::clone(store);
        self.running = Some(tokio::spawn(async move {
            store.link_notifications(up_to).await
        }));
    }

    /// Waits for the linking under way to end (forever when none runs).
    async fn finished(&mut self) -> Result<Result<u64, steward_store::StoreError>, JoinError> {
        match self.running.as_mut() {
            Some(running) => running.await,
            None => std::future::pending().await,
        }
    }

    /// Takes in how a linking ended; a failed one is owed again, [`LINK_EVERY`] later.
    fn settle(&mut self, ended: Result<Result<u64, steward_store::StoreError>, JoinError>) {
        self.running = None;
        let error = match ended {
            Ok(Ok(_)) => return,
            Ok(Err(error)) => error.to_string(),
            Err(error) => error.to_string(),
        };
        self.owed = true;
        tracing::warn!(%error, "linking notifications to their alerts failed; retrying");
    }
}

/// What one turn of the dispatcher reads, from the events and timers it woke to.
#[derive(Default)]
struct Reads {
    /// Alerts announced as changed.
    changed: Vec<Fingerprint>,
    /// The silences changed.
    silences: bool,
    /// Time to read the silences and the services' states again.
    context: bool,
    /// Time to take in what other instances received.
    catch_up: bool,
    /// A page of the full read is due.
    scan: bool,
}

impl Reads {
    /// Notes what another instance announced; `None` when announcements were missed: what was
    /// received meanwhile and the silences are read.
    fn note_remote(&mut self, heard: Option<RemoteAlerts>) {
        match heard {
            Some(RemoteAlerts::Changed(fingerprints)) => self.changed.extend(fingerprints.iter()),
            Some(RemoteAlerts::SilencesChanged) => self.silences = true,
            Some(RemoteAlerts::Missed) | None => {
                self.catch_up = true;
                self.silences = true;
            }
        }
    }

    /// Notes what an event asks for; `None` when events were missed: everything is read.
    fn note(&mut self, event: Option<crate::bus::Envelope>) {
        let Some(envelope) = event else {
            self.scan = true;
            return;
        };
        match envelope.event {
            Event::AlertsChanged { fingerprints } => self.changed.extend(fingerprints),
            Event::SilencesChanged => self.silences = true,
            Event::CheckChanged { .. } | Event::RegistrySynced { .. } => self.context = true,
            _ => {}
        }
    }
}

/// Does one turn's reads.
async fn read(
    dispatcher: &mut dispatch::Dispatcher,
    registry: &RegistrySource,
    reads: &Reads,
    now: i64,
) -> Result<(), steward_store::StoreError> {
    if !reads.changed.is_empty() {
        dispatcher.alerts_changed(&reads.changed, now).await?;
    }
    if reads.context {
        dispatcher.refresh_context(&registry(), now).await?;
    } else if reads.silences {
        dispatcher.silences_changed(now).await?;
    }
    if reads.catch_up {
        dispatcher.catch_up(now).await?;
    }
    if reads.scan {
        dispatcher.scan_step(now).await?;
    }
    Ok(())
}

/// Resolves external alerts no longer re-sent, until `stop` (on the leader only, so the
/// dispatcher hears of every resolution through this instance's bus).
async fn resolve_loop(
    store: Arc<dyn Store>,
    bus: EventBus,
    config: ConfigSource,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(RESOLVE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let timeout = config().alerting.settings.resolve_timeout_ms;
        let now = now_ms();
        let cutoff = now.saturating_sub(i64::try_from(timeout).unwrap_or(i64::MAX));
        match store
            .resolve_stale_alerts(EXTERNAL_SOURCE, cutoff, now)
            .await
        {
            Ok(resolved) if !resolved.is_empty() => {
                metrics::counter!("steward_alerts_timed_out_total")
                    .increment(resolved.len() as u64);
                tracing::info!(count = resolved.len(), "alerts no longer re-sent resolved");
                bus.publish(Event::AlertsChanged {
                    fingerprints: resolved,
                });
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "resolving stale alerts failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_core::alert::AlertState;
    use steward_core::alert::group::Reason;
    use steward_core::alert::notice::Notice;
    use steward_core::alert::webhook::NotifiedAlert;
    use steward_store::notifications::{DispatchWrite, NewNotification, NotificationQuery};
    use steward_store::prelude::*;
    use steward_store_sqlite::SqliteStore;

    /// A pass writing one notification about alert `fp`.
    fn pass(fp: u64) -> DispatchWrite {
        DispatchWrite {
            notifications: vec![NewNotification {
                notice: Notice {
                    receiver: "ops".into(),
                    group_key: format!("/:ops:{{fp=\"{fp}\"}}"),
                    group_labels: steward_core::registry::Labels::new(),
                    reason: Reason::Changed,
                    alerts: vec![NotifiedAlert {
                        fingerprint: Fingerprint(fp),
                        state: AlertState::Firing,
                        labels: Arc::default(),
                        annotations: Arc::default(),
                        starts_at_ms: 1,
                        ends_at_ms: None,
                        generator_url: None,
                    }],
                    encodings: Default::default(),
                },
                created_ms: 1,
                expires_ms: i64::MAX,
            }],
            ..DispatchWrite::default()
        }
    }

    /// A migrated store in a temporary directory (removed when the first is dropped).
    async fn sqlite() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(&dir.path().join("data")).await.unwrap();
        sqlite.migrate().await.unwrap();
        (dir, Arc::new(sqlite))
    }

    async fn linked(store: &dyn Store, fp: u64) -> usize {
        store
            .notifications(&NotificationQuery {
                fingerprint: Some(Fingerprint(fp)),
                limit: 10,
                ..NotificationQuery::default()
            })
            .await
            .unwrap()
            .len()
    }

    #[tokio::test]
    async fn links_follow_a_second_after_their_pass_and_what_was_left_at_once() {
        let (_dir, store) = sqlite().await;
        // What an earlier leader wrote and did not link.
        store.write_dispatch(&pass(1)).await.unwrap();
        let mut links = Links::default();
        assert!(links.wait().is_zero());
        links.start(&store, i64::MAX, i64::MAX);
        let ended = links.finished().await;
        links.settle(ended);
        assert_eq!(linked(store.as_ref(), 1).await, 1, "at once");
        assert!(!links.owed);

        store.write_dispatch(&pass(2)).await.unwrap();
        links.owe();
        links.start(&store, i64::MAX, i64::MAX);
        assert!(
            links.running.is_none(),
            "a pass's links wait for its sending"
        );
        assert!(links.wait() > LINK_EVERY / 2, "{:?}", links.wait());
        links.last -= LINK_EVERY;
        links.start(&store, i64::MAX, i64::MAX);
        links.owe();
        assert_eq!(
            links.wait(),
            Duration::from_secs(3_600),
            "its end wakes the dispatcher"
        );
        let ended = links.finished().await;
        links.settle(ended);
        assert_eq!(linked(store.as_ref(), 2).await, 1, "a second later");
        assert!(links.owed, "what was written while it ran is owed still");
        assert!(links.wait() > LINK_EVERY / 2, "and waits its second");
    }

    #[tokio::test]
    async fn what_is_written_above_the_linkable_stays_owed() {
        let (_dir, store) = sqlite().await;
        let first = store.write_dispatch(&pass(1)).await.unwrap()[0].id;
        let second = store.write_dispatch(&pass(2)).await.unwrap()[0].id;
        // The second pass committed while a pass below it was still being written.
        let mut links = Links::default();
        links.start(&store, first, second);
        let ended = links.finished().await;
        links.settle(ended);
        assert_eq!(linked(store.as_ref(), 1).await, 1);
        assert_eq!(linked(store.as_ref(), 2).await, 0, "not yet");
        assert!(links.owed, "owed still");
        links.last -= LINK_EVERY;
        links.start(&store, second, second);
        let ended = links.finished().await;
        links.settle(ended);
        assert_eq!(linked(store.as_ref(), 2).await, 1);
        assert!(!links.owed);
    }

    #[tokio::test]
    async fn hand_overs_carry_the_mark_and_a_full_channel_wakes_the_sender_instead() {
        let (handoff, mut handed) = mpsc::channel(1);
        let wake = Arc::new(Notify::new());
        let mut outbox = Outbox {
            wake: Arc::clone(&wake),
            handoff,
            announced_to: 0,
        };
        outbox.hand_over(Vec::new(), 0);
        assert!(handed.try_recv().is_err(), "nothing new to say");
        outbox.hand_over(Vec::new(), 5);
        assert_eq!(handed.try_recv().unwrap().announced_to, 5, "the mark alone");
        outbox.hand_over(Vec::new(), 5);
        assert!(handed.try_recv().is_err());
        outbox.hand_over(Vec::new(), 7);
        outbox.hand_over(Vec::new(), 9);
        // The channel was full: the sender is woken to read, and the mark goes again.
        let woken = tokio::time::timeout(Duration::ZERO, wake.notified()).await;
        assert!(woken.is_ok(), "woken");
        assert_eq!(handed.try_recv().unwrap().announced_to, 7);
        outbox.hand_over(Vec::new(), 9);
        assert_eq!(handed.try_recv().unwrap().announced_to, 9);
    }

    #[tokio::test]
    async fn a_failed_linking_is_owed_again() {
        let (_dir, store) = sqlite().await;
        let mut links = Links::default();
        links.start(&store, i64::MAX, i64::MAX);
        links.running.as_ref().unwrap().abort();
        let ended = links.finished().await;
        links.settle(ended);
        assert!(links.owed && links.running.is_none());
        links.start(&store, i64::MAX, i64::MAX);
        assert!(links.running.is_none(), "a failure waits a second");
    }
}
