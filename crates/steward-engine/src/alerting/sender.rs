//! The outbox's sender: attempts due notifications (the oldest pending one of each group, so
//! a group's notifications arrive in order), many groups at once, and records every attempt
//! with what follows from it: delivered, retried with backoff, or given up once expired or
//! rejected for good.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use steward_config::Config;
use steward_core::alert::spec::ReceiverSpec;
use steward_store::notifications::{
    Attempt, AttemptOutcome, MAX_ATTEMPT_ERROR_CHARS, StoredNotification,
};
use steward_store::{Store, now_ms};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::ConfigSource;
use super::deliver::{Deliverer, Delivery, Verdict};

/// Attempts in flight at once, across receivers.
const MAX_IN_FLIGHT: usize = 128;
/// Due notifications read at a time.
const BATCH: u32 = 256;
/// The first retry's delay; each further one doubles, up to [`MAX_BACKOFF_MS`].
const FIRST_BACKOFF_MS: i64 = 1_000;
/// The longest delay between attempts, so a receiver back up is caught up with soon.
const MAX_BACKOFF_MS: i64 = 30_000;
/// How often the outbox is looked at while attempts are in flight, or when idle.
const POLL: Duration = Duration::from_secs(1);
const IDLE_POLL_MS: i64 = 5_000;

/// What one attempt came to.
struct Finished {
    id: i64,
    receiver: String,
    created_ms: i64,
    attempt: Attempt,
    outcome: AttemptOutcome,
}

/// Sends notifications until `stop`; `wake` says new ones were written.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    config: ConfigSource,
    deliverer: Arc<Deliverer>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut in_flight: HashSet<i64> = HashSet::new();
    let mut attempts: JoinSet<Finished> = JoinSet::new();
    let mut failures: u32 = 0;
    loop {
        let mut wait_ms = IDLE_POLL_MS;
        if in_flight.len() < MAX_IN_FLIGHT {
            match store.due_notifications(now_ms(), BATCH).await {
                Ok(due) => {
                    failures = 0;
                    let config = config();
                    for notification in due {
                        if in_flight.len() >= MAX_IN_FLIGHT {
                            break;
                        }
                        if in_flight.insert(notification.id) {
                            let receiver = receiver(&config, &notification.notice.receiver);
                            let deliverer = Arc::clone(&deliverer);
                            attempts.spawn(attempt(deliverer, receiver, notification));
                        }
                    }
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, "reading the outbox failed");
                }
            }
            if in_flight.is_empty() {
                wait_ms = match store.next_notification_due().await {
                    Ok(Some(at)) => (at - now_ms()).clamp(0, IDLE_POLL_MS),
                    Ok(None) => IDLE_POLL_MS,
                    Err(_) => IDLE_POLL_MS,
                };
            }
        }
        if failures > 0 {
            wait_ms = wait_ms.max(backoff_ms(failures));
        }
        let sleep = if in_flight.is_empty() {
            Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0))
        } else {
            POLL
        };
        tokio::select! {
            () = stop.cancelled() => {
                // Attempts cut short stay pending and are made again by whoever leads next.
                attempts.abort_all();
                return;
            }
            () = wake.notified() => {}
            Some(done) = attempts.join_next(), if !attempts.is_empty() => {
                let mut finished = vec![done];
                while let Some(more) = attempts.try_join_next() {
                    finished.push(more);
                }
                for done in finished {
                    match done {
                        Ok(done) => {
                            in_flight.remove(&done.id);
                            record(store.as_ref(), done).await;
                        }
                        Err(error) => {
                            // A panicking attempt leaves its notification pending; it is
                            // attempted again after the in-flight set is rebuilt.
                            tracing::error!(%error, "a notification attempt panicked");
                            if attempts.is_empty() {
                                in_flight.clear();
                            }
                        }
                    }
                }
            }
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Makes one attempt (or gives up without one when the notification cannot be sent).
async fn attempt(
    deliverer: Arc<Deliverer>,
    receiver: Option<ReceiverSpec>,
    notification: StoredNotification,
) -> Finished {
    let at_ms = now_ms();
    let give_up = |error: String| Finished {
        id: notification.id,
        receiver: notification.notice.receiver.clone(),
        created_ms: notification.created_ms,
        attempt: Attempt {
            at_ms,
            latency_ms: 0,
            status: None,
            error: Some(error),
        },
        outcome: AttemptOutcome::GiveUp,
    };
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
    } = deliverer.deliver(&receiver, &notification.notice).await;
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let outcome = match verdict {
        Verdict::Delivered => AttemptOutcome::Delivered,
        Verdict::Reject => AttemptOutcome::GiveUp,
        Verdict::Retry => {
            let next = now_ms().saturating_add(backoff_ms(notification.attempts + 1));
            if next >= notification.expires_ms {
                AttemptOutcome::GiveUp
            } else {
                AttemptOutcome::RetryAt(next)
            }
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
            error: error.map(|e| e.chars().take(MAX_ATTEMPT_ERROR_CHARS).collect()),
        },
        outcome,
    }
}

/// Records an attempt and counts it.
async fn record(store: &dyn Store, done: Finished) {
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
    // A failed record leaves the notification pending: it is attempted again, so the receiver
    // may hear it twice, never not at all.
    if let Err(error) = store
        .record_attempt(done.id, &done.attempt, done.outcome)
        .await
    {
        tracing::warn!(%error, notification = done.id, "recording an attempt failed");
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

/// The delay before attempt `attempt + 1` (1 s, doubling, at most 30 s), with up to a fifth
/// of jitter so retries of many groups do not arrive in one burst.
fn backoff_ms(attempt: u32) -> i64 {
    let doublings = attempt.saturating_sub(1).min(16);
    let base = FIRST_BACKOFF_MS
        .saturating_mul(1_i64 << doublings)
        .min(MAX_BACKOFF_MS);
    let jitter = i64::from(getrandom::u32().unwrap_or(0) % 1_000) * base / 5_000;
    base - jitter
}

#[cfg(test)]
mod tests {
    use super::*;

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
