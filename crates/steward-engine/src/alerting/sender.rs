//! The outbox's sender: attempts due notifications (the oldest pending one of each group, so
//! a group's notifications arrive in order), many groups at once, and records every attempt
//! with what follows from it: delivered, retried with backoff, or given up once expired or
//! rejected for good.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use steward_config::Config;
use steward_core::alert::spec::ReceiverSpec;
use steward_core::task::RetryPolicy;
use steward_store::notifications::{Attempt, AttemptOutcome, StoredNotification};
use steward_store::{Store, now_ms};
use tokio::sync::{Notify, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::ConfigSource;
use super::deliver::{Deliverer, Delivery, Verdict};

/// Attempts in flight at once, across receivers.
const MAX_IN_FLIGHT: usize = 512;
/// Notifications attempted and not yet recorded, at most (those waiting for their recording
/// hold no connection, so they do not count against [`MAX_IN_FLIGHT`]; this bounds the
/// memory they hold while the store cannot record).
const MAX_UNRECORDED: usize = 16_384;
/// Due notifications read at a time.
const BATCH: u32 = 256;
/// Retries' delays: 1 s, doubling, at most 30 s (the task queue's doubling rule; only
/// `ceiling_ms` is used, with jitter of its own).
const BACKOFF: RetryPolicy = RetryPolicy {
    max_attempts: u32::MAX,
    base_ms: 1_000,
    cap_ms: 30_000,
};
/// How often the outbox is looked at while attempts are in flight, or when idle.
const POLL: Duration = Duration::from_secs(1);
const IDLE_POLL_MS: i64 = 5_000;
/// How soon after the last read a recording has the outbox read again: under a burst,
/// recordings end every few milliseconds, and a read after each would cost the store more than
/// the notifications they may let through (those behind one of their group's) are worth.
const REREAD_AFTER_RECORDING: Duration = Duration::from_millis(100);

/// What one attempt came to.
struct Finished {
    id: i64,
    receiver: String,
    created_ms: i64,
    attempt: Attempt,
    outcome: AttemptOutcome,
}

/// The notification an attempt is for: what is recorded when the attempt ends without an
/// answer (given up before sending, or panicked).
struct Running {
    id: i64,
    receiver: String,
    created_ms: i64,
    attempts: u32,
    expires_ms: i64,
}

impl Running {
    /// The attempt on `notification`.
    fn of(notification: &StoredNotification) -> Self {
        Self {
            id: notification.id,
            receiver: notification.notice.receiver.clone(),
            created_ms: notification.created_ms,
            attempts: notification.attempts,
            expires_ms: notification.expires_ms,
        }
    }

    /// The attempt made at `at_ms` that got no answer, for `error`, leading to `outcome`.
    fn unanswered(self, at_ms: i64, error: String, outcome: AttemptOutcome) -> Finished {
        Finished {
            id: self.id,
            receiver: self.receiver,
            created_ms: self.created_ms,
            attempt: Attempt {
                at_ms,
                latency_ms: 0,
                status: None,
                error: Some(error),
            },
            outcome,
        }
    }

    /// The failed attempt a panic at `at_ms` counts as, retried with backoff like any other.
    fn panicked(self, at_ms: i64) -> Finished {
        let outcome = retry_or_give_up(at_ms, self.attempts, self.expires_ms);
        self.unanswered(
            at_ms,
            "internal error: the attempt panicked".into(),
            outcome,
        )
    }
}

/// What the sender keeps between its turns.
#[derive(Default)]
struct Sending {
    /// Attempts running.
    attempts: JoinSet<Finished>,
    /// Which notification each running attempt is for (a panic names only its task).
    tasks: HashMap<tokio::task::Id, Running>,
    /// Notifications attempted and not yet recorded, or waiting their turn: never attempted
    /// again meanwhile.
    in_flight: HashSet<i64>,
    /// Notifications handed over while [`MAX_IN_FLIGHT`] attempts ran, in order: each starts
    /// as soon as one of those ends (reading them back from the outbox would wait for a read).
    waiting: VecDeque<StoredNotification>,
    /// Attempts made, to be recorded (their notifications stay in flight until they are).
    to_record: Vec<Finished>,
    /// After a failed recording, when to try again.
    record_after: Option<tokio::time::Instant>,
    /// Failed recordings in a row, for their backoff.
    failures: u32,
    /// Failed reads of the outbox in a row, for theirs.
    read_failures: u32,
    /// Every notification up to this id that will ever be handed over has been (see
    /// [`Handoff::announced_to`]).
    announced_to: i64,
    /// Notifications above [`Self::announced_to`] started from a read of the outbox: their
    /// hand-over, should it come, comes late. The dispatcher writes several passes at once,
    /// so hand-overs do not come in id order.
    read_ahead: BTreeSet<i64>,
    /// While a read of the outbox runs, the notifications started since it began: its answer,
    /// read before, may still name them (attempted, even recorded, since).
    started_while_reading: Option<HashSet<i64>>,
    /// When the last read of the outbox started.
    last_read: Option<tokio::time::Instant>,
}

/// What becomes of a notification handed over by the dispatcher.
#[derive(Debug, PartialEq, Eq)]
enum Handed {
    /// Attempted at once.
    Start,
    /// Attempted as soon as a running attempt ends.
    Wait,
    /// Read from the outbox and attempted already: its hand-over came late.
    ReadAlready,
    /// No room even to wait: left to the next read of the outbox.
    Leave,
}

/// A read of the outbox under way: the due notifications, and when the next one falls due if
/// asked (while nothing is in flight).
type Reading = JoinHandle<Result<Due, steward_store::StoreError>>;

/// What a read of the outbox found.
struct Due {
    notifications: Vec<StoredNotification>,
    next_ms: Option<i64>,
}

/// How the sender hears of new notifications.
pub(crate) struct Inbox {
    /// The outbox holds notifications to read.
    pub wake: Arc<Notify>,
    /// Notifications heading their groups, handed over by the dispatcher as it wrote them.
    pub handed: mpsc::Receiver<Handoff>,
}

/// What the dispatcher hands over after writing a pass.
#[derive(Debug)]
pub(crate) struct Handoff {
    /// The pass's new notifications that head their groups, as stored.
    pub heads: Vec<StoredNotification>,
    /// No notification up to this id is handed over after this hand-over: those of passes
    /// still being written have higher ids. (A hand-over the channel had no room for is
    /// dropped, its notifications read from the outbox instead; a later one covers it.)
    pub announced_to: i64,
}

/// A recording under way: the attempts it writes, and whether the write succeeded.
type Recording = JoinHandle<(Vec<Finished>, bool)>;

/// Sends notifications until `stop`, as the outbox and `inbox` bring them. Attempts are
/// recorded by a task of their own, so new attempts never wait for the last ones' write.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    config: ConfigSource,
    deliverer: Arc<Deliverer>,
    inbox: Inbox,
    stop: CancellationToken,
) {
    let Inbox { wake, mut handed } = inbox;
    let mut s = Sending::default();
    let mut recording: Option<(Recording, Vec<i64>)> = None;
    // The outbox is read when woken, when a recording may have let a group's next
    // notification through, when a retry falls due, and every POLL while attempts run; not
    // after every hand-over or completed attempt. A read runs in a task of its own, so that
    // hand-overs are attempted while it runs.
    let mut read_at = tokio::time::Instant::now();
    let mut reading: Option<Reading> = None;
    loop {
        if recording.is_none() {
            recording = s.start_recording(&store);
        }
        let room = s.room() > 0;
        if room && reading.is_none() && tokio::time::Instant::now() >= read_at {
            reading = Some(s.start_reading(&store));
            // Whatever asks for a read while this one runs sets an earlier time.
            read_at = tokio::time::Instant::now() + Duration::from_secs(3_600);
        }
        let mut sleep = if room && reading.is_none() {
            read_at.saturating_duration_since(tokio::time::Instant::now())
        } else {
            POLL
        };
        if let Some(at) = s.record_after
            && recording.is_none()
        {
            sleep = sleep.min(at.saturating_duration_since(tokio::time::Instant::now()));
        }
        tokio::select! {
            () = stop.cancelled() => {
                s.drain(store.as_ref(), recording.take()).await;
                return;
            }
            () = wake.notified() => read_at = tokio::time::Instant::now(),
            Some(handoff) = handed.recv() => {
                if !s.take_over(&config(), &deliverer, handoff) {
                    read_at = read_at.min(tokio::time::Instant::now());
                }
            }
            Some(joined) = s.attempts.join_next_with_id(), if !s.attempts.is_empty() => {
                let mut finished = vec![joined];
                while let Some(more) = s.attempts.try_join_next_with_id() {
                    finished.push(more);
                }
                let done = s.settle(finished);
                s.to_record.extend(done);
                s.start_waiting(&config(), &deliverer);
            }
            recorded = join_recording(&mut recording) => {
                let ids = recording.take().map(|(_, ids)| ids).unwrap_or_default();
                s.recorded(recorded, ids);
                read_at = read_at.min(s.reread_after_recording());
            }
            read = join_reading(&mut reading) => {
                reading = None;
                let wait = s.read(read, &config(), &deliverer);
                read_at = read_at.min(tokio::time::Instant::now() + wait);
            }
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Waits for the read of the outbox under way, if any (never, when none is).
async fn join_reading(
    reading: &mut Option<Reading>,
) -> Result<Result<Due, steward_store::StoreError>, tokio::task::JoinError> {
    match reading {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

/// Waits for the recording under way, if any (never, when none is).
async fn join_recording(
    recording: &mut Option<(Recording, Vec<i64>)>,
) -> Result<(Vec<Finished>, bool), tokio::task::JoinError> {
    match recording {
        Some((handle, _)) => handle.await,
        None => std::future::pending().await,
    }
}

impl Sending {
    /// Starts reading the outbox's due notifications, past those in flight (and, when none is
    /// in flight, when the next one falls due).
    fn start_reading(&mut self, store: &Arc<dyn Store>) -> Reading {
        // The heads in flight are not read again.
        let excluding: Vec<i64> = self.in_flight.iter().copied().collect();
        let idle = excluding.is_empty();
        self.started_while_reading = Some(HashSet::new());
        self.last_read = Some(tokio::time::Instant::now());
        let store = Arc::clone(store);
        tokio::spawn(async move {
            let notifications = store.due_notifications(now_ms(), &excluding, BATCH).await?;
            let next_ms = if idle && notifications.is_empty() {
                store.next_notification_due().await?
            } else {
                None
            };
            Ok(Due {
                notifications,
                next_ms,
            })
        })
    }

    /// Attempts what a read of the outbox found, except what was started since it began;
    /// answers how long until the next read.
    fn read(
        &mut self,
        read: Result<Result<Due, steward_store::StoreError>, tokio::task::JoinError>,
        config: &Config,
        deliverer: &Arc<Deliverer>,
    ) -> Duration {
        let due = match read {
            Ok(Ok(due)) => due,
            Ok(Err(error)) => return self.read_failed(&error),
            Err(error) => return self.read_failed(&error),
        };
        self.read_failures = 0;
        for notification in self.unstarted(due.notifications) {
            self.read_before_handed_over(notification.id);
            self.start(config, deliverer, notification);
        }
        if !self.in_flight.is_empty() {
            return POLL;
        }
        let wait_ms = due
            .next_ms
            .map_or(IDLE_POLL_MS, |at| (at - now_ms()).clamp(0, IDLE_POLL_MS));
        Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0))
    }

    /// Ends a read of the outbox: what it found, less what was started since it began, as
    /// much as there is room for.
    fn unstarted(&mut self, due: Vec<StoredNotification>) -> Vec<StoredNotification> {
        let started_meanwhile = self.started_while_reading.take().unwrap_or_default();
        let mut fresh: Vec<StoredNotification> = due
            .into_iter()
            .filter(|n| !started_meanwhile.contains(&n.id) && !self.in_flight.contains(&n.id))
            .collect();
        fresh.truncate(self.room());
        fresh
    }

    /// Notes a failed read of the outbox; answers the backoff before the next.
    fn read_failed(&mut self, error: &dyn std::fmt::Display) -> Duration {
        self.started_while_reading = None;
        self.read_failures = self.read_failures.saturating_add(1);
        tracing::warn!(%error, "reading the outbox failed");
        backoff_duration(self.read_failures)
    }

    /// When the outbox is read after a recording: at once, unless it was read less than
    /// [`REREAD_AFTER_RECORDING`] ago.
    fn reread_after_recording(&self) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        self.last_read
            .map_or(now, |last| (last + REREAD_AFTER_RECORDING).max(now))
    }

    /// Attempts the notifications the dispatcher handed over, or has them wait their turn,
    /// except those attempted already; answers false when some had to be left for want of
    /// room (the next read of the outbox finds them).
    fn take_over(&mut self, config: &Config, deliverer: &Arc<Deliverer>, handoff: Handoff) -> bool {
        let mut all = true;
        for notification in handoff.heads {
            match self.handed(notification.id) {
                Handed::Start => self.start(config, deliverer, notification),
                Handed::Wait => {
                    self.started(notification.id);
                    self.waiting.push_back(notification);
                }
                Handed::ReadAlready => {}
                Handed::Leave => all = false,
            }
        }
        self.announced(handoff.announced_to);
        all
    }

    /// Notes that notification `id` was read from the outbox: above the mark, its hand-over
    /// may still come.
    fn read_before_handed_over(&mut self, id: i64) {
        if id > self.announced_to {
            self.read_ahead.insert(id);
        }
    }

    /// Moves the mark up to `announced_to`: what is at or below it was handed over already, or
    /// never will be.
    fn announced(&mut self, announced_to: i64) {
        if announced_to > self.announced_to {
            self.announced_to = announced_to;
            self.read_ahead = self.read_ahead.split_off(&(announced_to + 1));
        }
    }

    /// What becomes of notification `id`, handed over.
    fn handed(&self, id: i64) -> Handed {
        if self.read_ahead.contains(&id) || self.in_flight.contains(&id) {
            Handed::ReadAlready
        } else if self.in_flight.len() >= MAX_UNRECORDED {
            Handed::Leave
        } else if self.waiting.is_empty() && self.attempts.len() < MAX_IN_FLIGHT {
            Handed::Start
        } else {
            Handed::Wait
        }
    }

    /// Starts waiting notifications while attempts may run.
    fn start_waiting(&mut self, config: &Config, deliverer: &Arc<Deliverer>) {
        while self.attempts.len() < MAX_IN_FLIGHT {
            let Some(notification) = self.waiting.pop_front() else {
                return;
            };
            self.spawn_attempt(config, deliverer, notification);
        }
    }

    /// How many more attempts may start from a read of the outbox: none while handed-over
    /// ones wait; running ones are bounded by [`MAX_IN_FLIGHT`], and those awaiting their
    /// recording as well by [`MAX_UNRECORDED`].
    fn room(&self) -> usize {
        if !self.waiting.is_empty() {
            return 0;
        }
        MAX_IN_FLIGHT
            .saturating_sub(self.attempts.len())
            .min(MAX_UNRECORDED.saturating_sub(self.in_flight.len()))
    }

    /// Notes that notification `id` is being attempted.
    fn started(&mut self, id: i64) {
        self.in_flight.insert(id);
        if let Some(meanwhile) = &mut self.started_while_reading {
            meanwhile.insert(id);
        }
    }

    /// Starts an attempt on `notification`.
    fn start(
        &mut self,
        config: &Config,
        deliverer: &Arc<Deliverer>,
        notification: StoredNotification,
    ) {
        self.started(notification.id);
        self.spawn_attempt(config, deliverer, notification);
    }

    /// Runs an attempt on `notification`, noted as started already.
    fn spawn_attempt(
        &mut self,
        config: &Config,
        deliverer: &Arc<Deliverer>,
        notification: StoredNotification,
    ) {
        let receiver_spec = receiver(config, &notification.notice.receiver);
        let about = Running::of(&notification);
        let handle = self.attempts.spawn(attempt(
            Arc::clone(deliverer),
            receiver_spec,
            config.alerting.external_url.clone(),
            notification,
        ));
        self.tasks.insert(handle.id(), about);
    }

    /// Turns joined attempts into attempts to record; a panicked one counts as a failed
    /// attempt, retried with backoff like any other.
    fn settle(
        &mut self,
        joined: Vec<Result<(tokio::task::Id, Finished), tokio::task::JoinError>>,
    ) -> Vec<Finished> {
        let mut done = Vec::with_capacity(joined.len());
        for result in joined {
            match result {
                Ok((id, finished)) => {
                    self.tasks.remove(&id);
                    count(&finished);
                    done.push(finished);
                }
                Err(error) => {
                    tracing::error!(%error, "a notification attempt panicked");
                    let Some(running) = self.tasks.remove(&error.id()) else {
                        continue;
                    };
                    let finished = running.panicked(now_ms());
                    count(&finished);
                    done.push(finished);
                }
            }
        }
        done
    }

    /// Starts recording what was attempted, unless nothing was or a failed recording's
    /// backoff runs.
    fn start_recording(&mut self, store: &Arc<dyn Store>) -> Option<(Recording, Vec<i64>)> {
        if self.to_record.is_empty()
            || self
                .record_after
                .is_some_and(|at| at > tokio::time::Instant::now())
        {
            return None;
        }
        let batch = std::mem::take(&mut self.to_record);
        let ids = batch.iter().map(|f| f.id).collect();
        let store = Arc::clone(store);
        let handle = tokio::spawn(async move {
            let ok = record(store.as_ref(), &batch).await;
            (batch, ok)
        });
        Some((handle, ids))
    }

    /// Takes in a recording's end: recorded notifications leave the in-flight set; a failed
    /// write is retried after a backoff, before the attempts made since.
    fn recorded(
        &mut self,
        result: Result<(Vec<Finished>, bool), tokio::task::JoinError>,
        ids: Vec<i64>,
    ) {
        match result {
            Ok((_, true)) => {
                self.failures = 0;
                self.record_after = None;
                for id in ids {
                    self.in_flight.remove(&id);
                }
            }
            Ok((mut batch, false)) => {
                self.failures = self.failures.saturating_add(1);
                self.record_after =
                    Some(tokio::time::Instant::now() + backoff_duration(self.failures));
                batch.append(&mut self.to_record);
                self.to_record = batch;
            }
            Err(error) => {
                // The attempts are lost from memory; their notifications are still pending and
                // are attempted again (a receiver may hear them twice).
                tracing::error!(%error, "recording attempts panicked");
                for id in ids {
                    self.in_flight.remove(&id);
                }
            }
        }
    }

    /// On stop: lets the attempts in flight finish (within an attempt's timeout) and records
    /// them, so a hand-over or a shutdown does not send them again.
    async fn drain(&mut self, store: &dyn Store, recording: Option<(Recording, Vec<i64>)>) {
        let deadline = tokio::time::Instant::now() + super::ATTEMPT_TIMEOUT;
        let mut done = Vec::new();
        if let Some((handle, _)) = recording
            && let Ok(Ok((batch, false))) = tokio::time::timeout_at(deadline, handle).await
        {
            done = batch;
        }
        let mut finished = Vec::new();
        while !self.attempts.is_empty() {
            match tokio::time::timeout_at(deadline, self.attempts.join_next_with_id()).await {
                Ok(Some(joined)) => finished.push(joined),
                Ok(None) | Err(_) => break,
            }
        }
        // Cut short: they stay pending and are made again by whoever leads next.
        self.attempts.abort_all();
        done.append(&mut self.to_record);
        done.extend(self.settle(finished));
        if !done.is_empty() && !record(store, &done).await {
            tracing::warn!(
                count = done.len(),
                "attempts made before stopping were not recorded"
            );
        }
    }
}

/// Makes one attempt (or gives up without one when the notification cannot be sent).
async fn attempt(
    deliverer: Arc<Deliverer>,
    receiver: Option<ReceiverSpec>,
    external_url: Option<String>,
    notification: StoredNotification,
) -> Finished {
    let at_ms = now_ms();
    let give_up =
        |error: String| Running::of(&notification).unanswered(at_ms, error, AttemptOutcome::GiveUp);
    if at_ms >= notification.expires_ms {
        return give_up("expired before it could be delivered".into());
    }
    let Some(receiver) = receiver else {
        return give_up(format!(
            "receiver `{}` is no longer configured",
            notification.notice.receiver
        ));
    };
    let started = Instant::now();
    let Delivery {
        status,
        error,
        verdict,
    } = deliverer
        .deliver(&receiver, &notification.notice, external_url.as_deref())
        .await;
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let outcome = match verdict {
        Verdict::Delivered => AttemptOutcome::Delivered,
        Verdict::Reject => AttemptOutcome::GiveUp,
        Verdict::Retry => {
            retry_or_give_up(now_ms(), notification.attempts, notification.expires_ms)
        }
    };
    Finished {
        id: notification.id,
        receiver: receiver.name,
        created_ms: notification.created_ms,
        attempt: Attempt {
            at_ms,
            latency_ms,
            status,
            // The store keeps at most MAX_ATTEMPT_ERROR_CHARS of it.
            error,
        },
        outcome,
    }
}

/// Records a burst of attempts in one write; false when the write failed.
async fn record(store: &dyn Store, done: &[Finished]) -> bool {
    if done.is_empty() {
        return true;
    }
    let batch: Vec<_> = done
        .iter()
        .map(|d| (d.id, d.attempt.clone(), d.outcome))
        .collect();
    match store.record_attempts(&batch).await {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(%error, count = batch.len(), "recording attempts failed; retrying");
            false
        }
    }
}

/// Counts one attempt in the metrics, and logs one that did not deliver.
fn count(done: &Finished) {
    let result = match done.outcome {
        AttemptOutcome::Delivered => "delivered",
        AttemptOutcome::RetryAt(_) => "retried",
        AttemptOutcome::GiveUp => "failed",
    };
    metrics::counter!(
        "steward_notifications_total",
        "receiver" => done.receiver.clone(),
        "result" => result
    )
    .increment(1);
    #[allow(clippy::cast_precision_loss)]
    metrics::histogram!("steward_notification_attempt_seconds", "receiver" => done.receiver.clone())
        .record(done.attempt.latency_ms as f64 / 1_000.0);
    if done.outcome == AttemptOutcome::Delivered {
        let delay = done.attempt.at_ms + done.attempt.latency_ms - done.created_ms;
        #[allow(clippy::cast_precision_loss)]
        metrics::histogram!("steward_notification_delay_seconds")
            .record(delay.max(0) as f64 / 1_000.0);
    } else {
        tracing::warn!(
            notification = done.id,
            receiver = %done.receiver,
            status = ?done.attempt.status,
            error = done.attempt.error.as_deref().unwrap_or(""),
            result,
            "notification not delivered"
        );
    }
}

/// The receiver named `name` in `config`.
fn receiver(config: &Config, name: &str) -> Option<ReceiverSpec> {
    config
        .alerting
        .receivers
        .iter()
        .find(|r| r.name == name)
        .cloned()
}

/// [`backoff_ms`] as a duration.
fn backoff_duration(attempt: u32) -> Duration {
    Duration::from_millis(u64::try_from(backoff_ms(attempt)).unwrap_or(0))
}

/// What follows a failed attempt made at `at_ms` on a notification attempted `attempts` times
/// before: another attempt after the backoff, unless that would be past its expiry.
fn retry_or_give_up(at_ms: i64, attempts: u32, expires_ms: i64) -> AttemptOutcome {
    let next = at_ms.saturating_add(backoff_ms(attempts + 1));
    if next >= expires_ms {
        AttemptOutcome::GiveUp
    } else {
        AttemptOutcome::RetryAt(next)
    }
}

/// The delay before attempt `attempt + 1` (1 s, doubling, at most 30 s), with up to a fifth
/// of jitter so retries of many groups do not arrive in one burst.
fn backoff_ms(attempt: u32) -> i64 {
    let ceiling = BACKOFF.ceiling_ms(attempt);
    let base = i64::try_from(ceiling).unwrap_or(i64::MAX);
    let jitter = i64::from(getrandom::u32().unwrap_or(0) % 1_000) * base / 5_000;
    base - jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicked_attempt_is_a_failed_one_retried_until_its_notification_expires() {
        let running = |expires_ms| Running {
            id: 7,
            receiver: "ops".into(),
            created_ms: 1_000,
            attempts: 0,
            expires_ms,
        };
        let finished = running(3_600_000).panicked(2_000);
        assert_eq!((finished.id, finished.receiver.as_str()), (7, "ops"));
        assert_eq!(finished.attempt.at_ms, 2_000);
        assert_eq!(
            finished.attempt.error.as_deref(),
            Some("internal error: the attempt panicked")
        );
        assert!(
            matches!(finished.outcome, AttemptOutcome::RetryAt(at) if at > 2_000),
            "{:?}",
            finished.outcome
        );
        assert_eq!(
            running(2_500).panicked(2_000).outcome,
            AttemptOutcome::GiveUp
        );
    }

    #[test]
    fn handed_over_notifications_start_wait_or_are_left() {
        let mut s = Sending::default();
        assert_eq!(s.handed(1), Handed::Start);
        // Read from the outbox first: the hand-over of it comes late.
        s.read_before_handed_over(7);
        s.started(7);
        assert_eq!(s.handed(7), Handed::ReadAlready);
        // One of a pass written at the same time, handed over after a later one's.
        assert_eq!(s.handed(3), Handed::Start);
        assert_eq!(s.handed(8), Handed::Start);
        // Done and recorded: still not attempted again.
        s.in_flight.remove(&7);
        assert_eq!(s.handed(7), Handed::ReadAlready);
        // Every attempt slot taken: it waits its turn, and so does whatever comes after it;
        // no read of the outbox starts meanwhile.
        s.waiting.push_back(stored(8));
        s.started(8);
        assert_eq!(s.handed(9), Handed::Wait);
        assert_eq!(s.room(), 0);
        // Attempted and waiting for their recording: bounded by what may be kept unrecorded.
        for id in 100..100 + MAX_UNRECORDED as i64 {
            s.started(id);
        }
        assert_eq!(s.handed(100_000), Handed::Leave, "left to the next read");
    }

    #[test]
    fn notifications_read_ahead_of_their_hand_over_are_remembered_until_the_mark_passes() {
        let mut s = Sending::default();
        s.announced(5);
        // At or below the mark: its hand-over came already, or never will.
        s.read_before_handed_over(4);
        s.read_before_handed_over(7);
        s.read_before_handed_over(9);
        assert_eq!(s.read_ahead.iter().copied().collect::<Vec<_>>(), [7, 9]);
        s.announced(3);
        assert_eq!(s.announced_to, 5, "the mark never moves back");
        s.announced(8);
        assert_eq!(s.read_ahead.iter().copied().collect::<Vec<_>>(), [9]);
        assert_eq!(s.handed(9), Handed::ReadAlready);
        assert_eq!(
            s.handed(7),
            Handed::Start,
            "forgotten: no hand-over of it comes now"
        );
    }

    fn stored(id: i64) -> StoredNotification {
        steward_store::notifications::NewNotification {
            notice: steward_core::alert::notice::Notice::encoded(
                "ops".into(),
                "/:ops:{}".into(),
                Default::default(),
                steward_core::alert::group::Reason::First,
                Vec::new(),
            ),
            created_ms: 0,
            expires_ms: i64::MAX,
        }
        .queued(id)
    }

    #[test]
    fn a_read_of_the_outbox_leaves_what_was_started_while_it_ran() {
        let mut s = Sending::default();
        s.started(1);
        s.in_flight.remove(&1); // attempted and recorded before the read began
        s.started_while_reading = Some(HashSet::new());
        s.started(2); // handed over while it ran...
        s.started(3);
        s.in_flight.remove(&3); // ...and even recorded since
        let ids = |due: Vec<StoredNotification>| due.iter().map(|n| n.id).collect::<Vec<_>>();
        let due = s.unstarted(vec![stored(2), stored(3), stored(4)]);
        assert_eq!(ids(due), vec![4]);
        // The next read's answer was read after those recordings: it is taken as it is.
        s.started_while_reading = Some(HashSet::new());
        assert_eq!(ids(s.unstarted(vec![stored(5)])), vec![5]);
        assert!(s.started_while_reading.is_none());
        // Started while no read runs: nothing to remember.
        s.started(6);
        assert!(s.started_while_reading.is_none());
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling_with_bounded_jitter() {
        for (attempt, base) in [
            (1, 1_000),
            (2, 2_000),
            (3, 4_000),
            (6, 30_000),
            (40, 30_000),
        ] {
            let delay = backoff_ms(attempt);
            assert!(delay <= base && delay >= base * 4 / 5, "{attempt}: {delay}");
        }
    }
}
