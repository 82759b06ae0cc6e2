//! Event log + audit trail → subscribers. One task per instance follows both by position,
//! keeps the newest events in a ring for clients that reconnect, and broadcasts each new one.
//! A subscriber's replay and its live feed are taken under one lock, so nothing falls between
//! them and nothing comes twice.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use steward_store::events::{EVENT_LOG_WINDOW, LoggedEvent};
use steward_store::{AuditQuery, Store};
use steward_wire::audit::{Actor, AuditEvent, AuditOrigin};
use steward_wire::events::{AuditRecord, Cursor, EventData, StreamEvent};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Rows read per query while catching up.
const PAGE: u32 = 1_000;

/// The hub's limits.
#[derive(Debug, Clone, Copy)]
pub struct HubOptions {
    /// Events kept for replay.
    pub window_events: usize,
    /// Events older than this are not replayed.
    pub window_age: Duration,
    /// Events a subscriber may fall behind before it is told it lost some.
    pub lag: usize,
    /// How often the hub looks for new events without being woken (wake-ups can be lost).
    pub poll: Duration,
    /// Subscribers at most.
    pub max_subscribers: usize,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            window_events: EVENT_LOG_WINDOW as usize,
            window_age: Duration::from_secs(600),
            lag: 4_096,
            poll: Duration::from_millis(250),
            max_subscribers: 768,
        }
    }
}

/// One event as subscribers get it.
#[derive(Debug)]
pub struct Frame {
    /// The stream position after this event (its SSE id).
    pub cursor: Cursor,
    /// Its type.
    pub kind: String,
    /// The workspace it concerns.
    pub workspace: Option<String>,
    /// When it happened.
    pub at_ms: i64,
    /// Its JSON.
    pub data: String,
    /// From the audit trail (rather than the event log).
    pub audit: bool,
}

/// What a subscriber starts with.
pub enum Opened {
    /// The events it missed (after its cursor, or none when it gave none), then live ones.
    Follow(Subscription),
    /// Its cursor is outside the window: it should reload, then follow from `Subscription`.
    Reset(Subscription, &'static str),
}

/// A subscriber's feed; dropping it frees its place.
pub struct Subscription {
    /// Missed events, oldest first.
    pub replay: Vec<Arc<Frame>>,
    /// Events from now on.
    pub live: broadcast::Receiver<Arc<Frame>>,
    /// Where the stream stands now (for a reset client's first id).
    pub head: Cursor,
    _place: Place,
}

struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        let left = self.0.fetch_sub(1, Ordering::AcqRel).saturating_sub(1);
        metrics::gauge!("steward_event_streams").set(left as f64);
    }
}

/// Too many subscribers already.
#[derive(Debug, thiserror::Error)]
#[error("{0} event streams are open, the most this instance serves")]
pub struct Full(pub usize);

struct Ring {
    frames: VecDeque<Arc<Frame>>,
    /// Read up to here.
    head: Cursor,
    /// Every event after this is in `frames` (older ones fell out).
    floor: Cursor,
}

/// The hub: see the module's documentation.
pub struct EventHub {
    ring: Mutex<Ring>,
    /// Held while reading the store, so the run loop and a subscriber catching up never read
    /// the same events twice.
    reading: tokio::sync::Mutex<()>,
    live: broadcast::Sender<Arc<Frame>>,
    subscribers: Arc<AtomicUsize>,
    /// Set once [`EventHub::run`] follows the store: what is read from then on is new.
    following: AtomicBool,
    options: HubOptions,
    closing: CancellationToken,
    store: Arc<dyn Store>,
}

impl EventHub {
    /// A hub following `store` from its current end, with the newest events of the log already
    /// in its window; it starts following when [`EventHub::run`] is spawned.
    pub async fn open(
        store: Arc<dyn Store>,
        options: HubOptions,
    ) -> Result<Arc<Self>, steward_store::StoreError> {
        let log_head = store.event_log_head().await?;
        let audit_head = store.audit_head().await?.map_or(0, |(seq, _)| seq);
        let floor_log = (log_head - options.window_events as i64).max(0);
        let start = Cursor {
            log: floor_log,
            audit: audit_head,
        };
        let hub = Arc::new(Self {
            ring: Mutex::new(Ring {
                frames: VecDeque::new(),
                head: start,
                floor: start,
            }),
            reading: tokio::sync::Mutex::new(()),
            live: broadcast::channel(options.lag.max(1)).0,
            subscribers: Arc::new(AtomicUsize::new(0)),
            following: AtomicBool::new(false),
            options,
            closing: CancellationToken::new(),
            store,
        });
        hub.catch_up().await?;
        Ok(hub)
    }

    /// Follows the store until [`EventHub::close`]: on every append any instance announces,
    /// and every `poll` besides.
    pub async fn run(self: Arc<Self>) {
        let mut wakeups = self.store.event_log_wakeups();
        self.following.store(true, Ordering::Release);
        let mut poll = tokio::time::interval(self.options.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.closing.cancelled() => return,
                _ = wakeups.recv() => {}
                _ = poll.tick() => {}
            }
            if let Err(error) = self.catch_up().await {
                tracing::warn!(%error, "cannot read new events");
            }
        }
    }

    /// Ends every subscription (at shutdown).
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Cancelled when the hub closes.
    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }

    /// Subscribers now.
    pub fn subscribers(&self) -> usize {
        self.subscribers.load(Ordering::Acquire)
    }

    /// Opens a feed for a client that has seen the stream up to `cursor` (none: a new client,
    /// which gets only what happens from now on).
    pub async fn subscribe(&self, cursor: Option<Cursor>) -> Result<Opened, Full> {
        let place = self.take_place()?;
        if let Some(cursor) = cursor {
            let head = self.lock().head;
            // Another instance may have sent this client events this one has not read yet.
            if (cursor.log > head.log || cursor.audit > head.audit)
                && let Err(error) = self.catch_up().await
            {
                tracing::warn!(%error, "cannot read new events");
            }
        }
        let ring = self.lock();
        let live = self.live.subscribe();
        let head = ring.head;
        let Some(cursor) = cursor else {
            return Ok(Opened::Follow(Subscription {
                replay: Vec::new(),
                live,
                head,
                _place: place,
            }));
        };
        let subscription = |replay| Subscription {
            replay,
            live,
            head,
            _place: place,
        };
        if cursor.log > head.log || cursor.audit > head.audit {
            return Ok(Opened::Reset(
                subscription(Vec::new()),
                "the event id names no position of this database's stream",
            ));
        }
        if cursor.log < ring.floor.log || cursor.audit < ring.floor.audit {
            return Ok(Opened::Reset(
                subscription(Vec::new()),
                "the events missed since that id are no longer kept",
            ));
        }
        let oldest = steward_store::now_ms() - millis(self.options.window_age);
        let replay: Vec<Arc<Frame>> = ring
            .frames
            .iter()
            .filter(|f| {
                if f.audit {
                    f.cursor.audit > cursor.audit
                } else {
                    f.cursor.log > cursor.log
                }
            })
            .cloned()
            .collect();
        if replay.first().is_some_and(|f| f.at_ms < oldest) {
            return Ok(Opened::Reset(
                subscription(Vec::new()),
                "the events missed since that id are older than the replay window",
            ));
        }
        Ok(Opened::Follow(subscription(replay)))
    }

    fn take_place(&self) -> Result<Place, Full> {
        let max = self.options.max_subscribers;
        self.subscribers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| Full(max))?;
        metrics::gauge!("steward_event_streams").set(self.subscribers() as f64);
        Ok(Place(Arc::clone(&self.subscribers)))
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads what was written since the last read, in pages, and hands it out now (the run loop
    /// does this on every wake-up).
    pub async fn catch_up(&self) -> Result<(), steward_store::StoreError> {
        let _reading = self.reading.lock().await;
        loop {
            let head = self.lock().head;
            let audit_query = AuditQuery {
                after_seq: head.audit,
                limit: PAGE,
                ..AuditQuery::default()
            };
            // Both reads at once: a wake-up is one round trip away from the clients, not two.
            let (logged, audited) = tokio::try_join!(
                self.store.events_after(head.log, PAGE),
                self.store.audit_events(&audit_query)
            )?;
            let more = logged.len() == PAGE as usize || audited.len() == PAGE as usize;
            self.take(logged, audited);
            if !more {
                return Ok(());
            }
        }
    }

    /// Puts what one read found in the ring and on the broadcast.
    fn take(&self, logged: Vec<LoggedEvent>, audited: Vec<steward_core::audit::AuditEvent>) {
        let now_ms = steward_store::now_ms();
        let mut ring = self.lock();
        for event in logged {
            ring.head.log = event.id;
            let frame = Arc::new(Frame {
                cursor: ring.head,
                kind: event.kind,
                workspace: event.workspace,
                at_ms: event.at_ms,
                data: event.body,
                audit: false,
            });
            self.push(&mut ring, frame, now_ms);
        }
        for event in audited {
            ring.head.audit = event.seq;
            let frame = Arc::new(audit_frame(ring.head, event));
            self.push(&mut ring, frame, now_ms);
        }
        let oldest = now_ms - millis(self.options.window_age);
        while ring.frames.front().is_some_and(|f| f.at_ms < oldest) {
            drop_oldest(&mut ring);
        }
    }

    /// Keeps `frame` (read at `now_ms`) in the ring and hands it out.
    fn push(&self, ring: &mut Ring, frame: Arc<Frame>, now_ms: i64) {
        // The window read at opening is history, not delay.
        if self.following.load(Ordering::Acquire) {
            let delay_ms = (now_ms - frame.at_ms).max(0);
            metrics::histogram!("steward_event_stream_delay_seconds").record(delay_ms as f64 / 1e3);
        }
        ring.frames.push_back(Arc::clone(&frame));
        while ring.frames.len() > self.options.window_events {
            drop_oldest(ring);
        }
        metrics::counter!("steward_events_streamed_total").increment(1);
        let _ = self.live.send(frame);
    }
}

fn drop_oldest(ring: &mut Ring) {
    if let Some(gone) = ring.frames.pop_front() {
        if gone.audit {
            ring.floor.audit = gone.cursor.audit;
        } else {
            ring.floor.log = gone.cursor.log;
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A recorded audit event as the API shows it, in `GET /api/v1/audit` and (without its time
/// and workspace, which are the stream event's) in `audit` events.
pub fn audit_event(e: steward_core::audit::AuditEvent) -> AuditEvent {
    AuditEvent {
        seq: e.seq,
        at: steward_wire::time::rfc3339(e.at_ms),
        at_ms: e.at_ms,
        actor: Actor {
            kind: e.actor.kind.as_str().to_owned(),
            name: e.actor.name,
            source_ip: e.actor.source_ip,
        },
        action: e.action,
        target: e.target,
        workspace: e.workspace,
        details: e.details,
        prev_hash: e.prev_hash,
        hash: e.hash,
        origin: e.origin.map(|o| AuditOrigin {
            node: o.node,
            seq: o.seq,
            hash: o.hash,
        }),
    }
}

/// An audit record as a stream event: its fields as `GET /api/v1/audit` lists them.
fn audit_frame(cursor: Cursor, event: steward_core::audit::AuditEvent) -> Frame {
    let event = audit_event(event);
    let (at_ms, workspace) = (event.at_ms, event.workspace.clone());
    let record = AuditRecord::from(event);
    let data = StreamEvent::new(at_ms, workspace.clone(), None, &EventData::Audit(record));
    Frame {
        cursor,
        kind: "audit".into(),
        workspace,
        at_ms,
        data: serde_json::to_string(&data).unwrap_or_else(|_| "{}".into()),
        audit: true,
    }
}

#[cfg(test)]
mod tests;
