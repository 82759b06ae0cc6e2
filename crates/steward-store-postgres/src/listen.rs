//! What instances sharing the database tell each other through `NOTIFY`, and the one `LISTEN`
//! connection per store that hears it: task wake-ups (a queue's name on [`TASKS_CHANNEL`]) and
//! alert changes (on [`ALERTS_CHANNEL`], naming the store that made them, so that a store does
//! not announce its own changes back to its instance, whose bus carries them already), and
//! appends to the event log (on [`EVENTS_CHANNEL`]).

use std::sync::Arc;

use sqlx::PgConnection;
use sqlx::postgres::{PgListener, PgNotification, PgPool};
use steward_core::alert::Fingerprint;
use steward_store::tasks::ANY_QUEUE;
use steward_store::{RemoteAlerts, StoreError, Wakeup};
use tokio::sync::broadcast;

use crate::db_err;

/// The channel enqueues notify and workers listen on.
pub(crate) const TASKS_CHANNEL: &str = "steward_tasks";

/// The channel alert changes are announced on.
pub(crate) const ALERTS_CHANNEL: &str = "steward_alerts";

/// The channel event log appends are announced on; migration `0014_audit_announce.sql` names
/// it too, for audit appends.
pub(crate) const EVENTS_CHANNEL: &str = "steward_events";

/// Fingerprints per announcement: a `NOTIFY` payload holds less than 8,000 bytes, and each
/// fingerprint takes 17 (16 hex digits and a comma).
const FINGERPRINTS_PER_PAYLOAD: usize = 400;

/// Where announcements heard go.
#[derive(Clone)]
pub(crate) struct Listeners {
    /// Task wake-ups.
    pub(crate) wakeups: broadcast::Sender<Wakeup>,
    /// Alert changes made through other stores.
    pub(crate) alerts: broadcast::Sender<RemoteAlerts>,
    /// Appends to the event log, through any store.
    pub(crate) appended: broadcast::Sender<()>,
    /// This store's name in its announcements.
    pub(crate) origin: Arc<str>,
}

/// A name for a store that no other store has: its process and the time it started.
pub(crate) fn new_origin() -> Arc<str> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Arc::from(format!("{:x}-{nanos:x}", std::process::id()))
}

/// Announces, inside the caller's transaction (so it is heard at its commit), that these
/// alerts changed.
pub(crate) async fn announce_alerts(
    conn: &mut PgConnection,
    origin: &str,
    fingerprints: &[Fingerprint],
) -> Result<(), StoreError> {
    let payloads: Vec<String> = fingerprints
        .chunks(FINGERPRINTS_PER_PAYLOAD)
        .map(|chunk| alerts_payload(origin, chunk))
        .collect();
    notify(conn, ALERTS_CHANNEL, &payloads).await
}

/// Announces, inside the caller's transaction, that silences changed.
pub(crate) async fn announce_silences(
    conn: &mut PgConnection,
    origin: &str,
) -> Result<(), StoreError> {
    notify(conn, ALERTS_CHANNEL, &[format!("{origin} s")]).await
}

/// Sends each payload on `channel` when the caller's transaction commits.
pub(crate) async fn notify<S: AsRef<str>>(
    conn: &mut PgConnection,
    channel: &str,
    payloads: &[S],
) -> Result<(), StoreError> {
    if payloads.is_empty() {
        return Ok(());
    }
    let payloads: Vec<&str> = payloads.iter().map(AsRef::as_ref).collect();
    sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
        .bind(channel)
        .bind(&payloads)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// `ORIGIN a FP,FP,…`.
fn alerts_payload(origin: &str, fingerprints: &[Fingerprint]) -> String {
    let list: Vec<String> = fingerprints.iter().map(ToString::to_string).collect();
    format!("{origin} a {}", list.join(","))
}

/// What an alerts payload says, unless it came from `own` (or cannot be read: then it is taken
/// as a sign that something changed, to be caught up with).
fn read_alerts_payload(payload: &str, own: &str) -> Option<RemoteAlerts> {
    let Some((origin, rest)) = payload.split_once(' ') else {
        return Some(RemoteAlerts::Missed);
    };
    if origin == own {
        return None;
    }
    match rest.split_once(' ') {
        None if rest == "s" => Some(RemoteAlerts::SilencesChanged),
        Some(("a", list)) => Some(
            list.split(',')
                .map(Fingerprint::parse)
                .collect::<Option<Vec<_>>>()
                .map_or(RemoteAlerts::Missed, |fps| {
                    RemoteAlerts::Changed(fps.into())
                }),
        ),
        _ => Some(RemoteAlerts::Missed),
    }
}

/// Forwards `NOTIFY`s from every instance until the task is aborted. After a lost connection
/// it reconnects and says so ([`ANY_QUEUE`], [`RemoteAlerts::Missed`]), since announcements may
/// have been missed.
pub(crate) async fn listen(pool: PgPool, to: Listeners) {
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener
                .listen_all([TASKS_CHANNEL, ALERTS_CHANNEL, EVENTS_CHANNEL])
                .await
            {
                Ok(()) => {
                    missed(&to);
                    forward(&mut listener, &to).await;
                }
                Err(error) => tracing::warn!(%error, "cannot listen for announcements"),
            },
            Err(error) => tracing::warn!(%error, "cannot connect to listen for announcements"),
        }
        if pool.is_closed() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Tells every reader that announcements may have been missed.
fn missed(to: &Listeners) {
    let _ = to.wakeups.send(Wakeup::from(ANY_QUEUE));
    let _ = to.alerts.send(RemoteAlerts::Missed);
    let _ = to.appended.send(());
}

async fn forward(listener: &mut PgListener, to: &Listeners) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => deliver(&notification, to),
            // The connection was lost; the next receive reconnects.
            Ok(None) => missed(to),
            Err(error) => {
                tracing::warn!(%error, "announcements interrupted");
                return;
            }
        }
    }
}

fn deliver(notification: &PgNotification, to: &Listeners) {
    if notification.channel() == ALERTS_CHANNEL {
        if let Some(change) = read_alerts_payload(notification.payload(), &to.origin) {
            let _ = to.alerts.send(change);
        }
    } else if notification.channel() == EVENTS_CHANNEL {
        let _ = to.appended.send(());
    } else {
        let _ = to.wakeups.send(Wakeup::from(notification.payload()));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]
    use steward_store::prelude::*;

    use super::*;

    #[test]
    fn alert_payloads_name_their_origin_and_fit_a_notify() {
        let fps: Vec<Fingerprint> = (0..FINGERPRINTS_PER_PAYLOAD as u64)
            .map(|i| Fingerprint(u64::MAX - i))
            .collect();
        let origin = new_origin();
        let payload = alerts_payload(&origin, &fps);
        assert!(payload.len() < 8_000, "{}", payload.len());
        assert_eq!(
            read_alerts_payload(&payload, "another"),
            Some(RemoteAlerts::Changed(fps.into()))
        );
        assert_eq!(read_alerts_payload(&payload, &origin), None, "its own");
        assert_eq!(
            read_alerts_payload(&format!("{origin} s"), "another"),
            Some(RemoteAlerts::SilencesChanged)
        );
        for garbled in ["", "x", "x a", "x a 12", "x q 0000000000000001"] {
            assert_eq!(
                read_alerts_payload(garbled, "another"),
                Some(RemoteAlerts::Missed),
                "{garbled:?}"
            );
        }
        assert_ne!(new_origin(), new_origin());
    }

    #[cfg(feature = "testing")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn alert_changes_are_heard_by_the_other_stores_of_a_database_only() {
        use std::time::Duration;
        use steward_core::alert::IncomingAlert;
        use steward_core::alert::mute::Silence;
        use steward_core::alert::route::Matcher;
        use steward_core::audit::Actor;
        use steward_store::{Ack, AlertReceipt};

        let Some(db) = crate::testing::TestDatabase::create().await else {
            return;
        };
        let (leader, other) = (db.migrated_store(2).await, db.migrated_store(2).await);
        let mut heard = leader.remote_alerts();
        let mut own = other.remote_alerts();
        let next = |receiver: &mut broadcast::Receiver<RemoteAlerts>| {
            let mut receiver = receiver.resubscribe();
            async move {
                tokio::time::timeout(Duration::from_secs(10), receiver.recv())
                    .await
                    .expect("heard in time")
                    .expect("open")
            }
        };
        // Listening starts by saying something may have been missed before.
        assert_eq!(heard.recv().await.unwrap(), RemoteAlerts::Missed);
        assert_eq!(own.recv().await.unwrap(), RemoteAlerts::Missed);

        let alert = |name: &str| IncomingAlert {
            labels: [("alertname".to_owned(), name.to_owned())]
                .into_iter()
                .collect(),
            annotations: Default::default(),
            severity: steward_core::alert::Severity::Warning,
            starts_at_ms: None,
            ends_at_ms: None,
            generator_url: None,
        };
        let receipt = |name: &str| AlertReceipt {
            alert: alert(name),
            source: "external".into(),
            received_ms: 1_000,
        };
        let receipts: Vec<AlertReceipt> = ["Down", "Slow", "Down"].map(receipt).to_vec();
        let actor = Actor::system("test");
        let waiting = next(&mut heard);
        other.receive_alerts(&receipts, &actor).await.unwrap();
        let down = alert("Down").fingerprint();
        assert_eq!(
            waiting.await,
            RemoteAlerts::Changed(vec![down, alert("Slow").fingerprint()].into()),
            "each changed alert once"
        );
        let waiting = next(&mut heard);
        other
            .ack_alert(
                down,
                &Ack {
                    by: "oncall".into(),
                    at_ms: 2_000,
                    note: String::new(),
                },
                &actor,
            )
            .await
            .unwrap();
        assert_eq!(waiting.await, RemoteAlerts::Changed(vec![down].into()));
        let waiting = next(&mut heard);
        let silence = Silence {
            id: 0,
            matchers: vec![Matcher::parse("alertname=Down").unwrap()],
            starts_at_ms: 0,
            ends_at_ms: i64::MAX / 2,
            created_by: "oncall".into(),
            comment: "maintenance".into(),
        };
        other.create_silence(&silence, 3_000, &actor).await.unwrap();
        assert_eq!(waiting.await, RemoteAlerts::SilencesChanged);
        // Re-sent unchanged: nothing to announce. The leader's own changes are not announced
        // to it either (its bus carries them).
        other.receive_alerts(&receipts[..1], &actor).await.unwrap();
        leader
            .receive_alerts(&[receipt("Own")], &actor)
            .await
            .unwrap();
        let waiting = next(&mut heard);
        other
            .receive_alerts(&[receipt("Last")], &actor)
            .await
            .unwrap();
        assert_eq!(
            waiting.await,
            RemoteAlerts::Changed(vec![alert("Last").fingerprint()].into()),
            "nothing between"
        );
        // The other store heard the leader's change first: none of its own, all committed
        // before it, came through.
        let first = tokio::time::timeout(Duration::from_secs(10), own.recv())
            .await
            .expect("heard in time")
            .expect("open");
        assert_eq!(
            first,
            RemoteAlerts::Changed(vec![alert("Own").fingerprint()].into()),
            "a store does not hear itself"
        );
    }
}
