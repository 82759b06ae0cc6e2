//! Notification outbox stories: the dispatcher's groups, notifications written in one pass,
//! each group's notifications going out in order, attempts and what they lead to, listings,
//! counts and pruning.

use crate::RecordAttempt;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use steward_core::alert::group::{Contents, GroupClock, Reason};
use steward_core::alert::notice::{Notice, group_key};
use steward_core::alert::webhook::NotifiedAlert;
use steward_core::alert::{AlertState, Fingerprint};
use steward_core::registry::Labels;

use crate::notifications::{
    Attempt, AttemptOutcome, DispatchWrite, GroupRecord, MAX_ATTEMPT_ERROR_CHARS,
    MAX_NOTIFICATION_PAGE, NewNotification, NotificationCount, NotificationQuery,
    NotificationState, Queued, StoredNotification,
};
use crate::{Store, StoreError};

/// The time the stories' clocks start at.
const T0: i64 = 1_700_000_000_000;
/// One second.
const SECOND: i64 = 1_000;
/// How long the stories' notifications are retried.
const TTL: i64 = 3_600 * SECOND;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The key of the group of `service` alerts on the root route for `receiver`.
fn key(receiver: &str, service: &str) -> String {
    group_key(&[0], receiver, &labels(&[("service", service)]))
}

/// A notice to `receiver` about `service`'s group carrying alerts with these fingerprints.
fn notice(receiver: &str, service: &str, fingerprints: &[u64]) -> Notice {
    Notice {
        receiver: receiver.into(),
        group_key: key(receiver, service),
        group_labels: labels(&[("service", service)]),
        reason: Reason::First,
        alerts: fingerprints
            .iter()
            .map(|&f| NotifiedAlert {
                fingerprint: Fingerprint(f),
                state: AlertState::Firing,
                labels: labels(&[("alertname", "Down"), ("service", service)]).into(),
                annotations: labels(&[("summary", "ü \"quoted\"\nline")]).into(),
                starts_at_ms: T0 - 60 * SECOND,
                ends_at_ms: None,
                generator_url: Some("http://prometheus/graph?g0.expr=up".into()),
            })
            .collect(),
        encodings: Default::default(),
    }
}

/// A notification decided at `created_ms`.
fn new(notice: Notice, created_ms: i64) -> NewNotification {
    NewNotification {
        notice,
        created_ms,
        expires_ms: created_ms + TTL,
    }
}

/// A group whose clock uses every field.
fn group(receiver: &str, service: &str, firing: &[u64]) -> GroupRecord {
    let firing: BTreeSet<Fingerprint> = firing.iter().map(|&f| Fingerprint(f)).collect();
    GroupRecord {
        key: key(receiver, service),
        receiver: receiver.into(),
        route_path: vec![0, 3],
        labels: labels(&[("service", service)]),
        clock: GroupClock {
            created_ms: T0,
            last_tick_ms: Some(T0 + 30 * SECOND),
            notified_ms: Some(T0 + 31 * SECOND),
            notified: Contents {
                firing: firing.clone(),
                resolved: [Fingerprint(u64::MAX)].into(),
            },
            acknowledged: Some(firing),
        },
    }
}

async fn write(store: &Arc<dyn Store>, write: DispatchWrite) -> Vec<i64> {
    written(store, write).await.iter().map(|q| q.id).collect()
}

/// A pass written and its alerts linked, as the dispatcher does.
async fn written(store: &Arc<dyn Store>, write: DispatchWrite) -> Vec<Queued> {
    let queued = store.write_dispatch(&write).await.expect("write dispatch");
    store
        .link_notifications(i64::MAX)
        .await
        .expect("link notifications");
    queued
}

async fn queue(store: &Arc<dyn Store>, notifications: Vec<NewNotification>) -> Vec<i64> {
    write(
        store,
        DispatchWrite {
            notifications,
            ..DispatchWrite::default()
        },
    )
    .await
}

async fn due(store: &Arc<dyn Store>, now_ms: i64) -> Vec<i64> {
    store
        .due_notifications(now_ms, &[], 100)
        .await
        .expect("due notifications")
        .iter()
        .map(|n| n.id)
        .collect()
}

async fn attempt(
    store: &Arc<dyn Store>,
    id: i64,
    at_ms: i64,
    status: Option<u16>,
    error: Option<&str>,
    outcome: AttemptOutcome,
) -> bool {
    store
        .record_attempt(
            id,
            &Attempt {
                at_ms,
                latency_ms: 120,
                status,
                error: error.map(Into::into),
            },
            outcome,
        )
        .await
        .expect("record attempt")
}

async fn list(store: &Arc<dyn Store>, query: NotificationQuery) -> Vec<StoredNotification> {
    store
        .notifications(&query)
        .await
        .expect("list notifications")
}

/// The ids `query` lists, in its order.
async fn listed(store: &Arc<dyn Store>, query: NotificationQuery) -> Vec<i64> {
    list(store, query).await.iter().map(|n| n.id).collect()
}

async fn get(store: &Arc<dyn Store>, id: i64) -> StoredNotification {
    list(
        store,
        NotificationQuery {
            limit: MAX_NOTIFICATION_PAGE,
            ..NotificationQuery::default()
        },
    )
    .await
    .into_iter()
    .find(|n| n.id == id)
    .expect("the notification is stored")
}

fn all() -> NotificationQuery {
    NotificationQuery {
        limit: MAX_NOTIFICATION_PAGE,
        ..NotificationQuery::default()
    }
}

/// Groups are inserted, updated and deleted by key, their clocks intact; an empty pass writes
/// nothing.
pub async fn alert_groups_are_upserted_updated_and_deleted(store: &Arc<dyn Store>) {
    assert!(store.alert_groups().await.expect("groups").is_empty());
    assert!(write(store, DispatchWrite::default()).await.is_empty());
    let api = group("ops", "api", &[1, 2]);
    let db = group("ops", "db", &[3]);
    let mut web = group("pager", "web", &[]);
    web.route_path = Vec::new();
    web.clock = GroupClock::new(T0);
    write(
        store,
        DispatchWrite {
            groups: vec![web.clone(), db.clone(), api.clone()],
            ..DispatchWrite::default()
        },
    )
    .await;
    assert_eq!(
        store.alert_groups().await.expect("groups"),
        [api.clone(), db.clone(), web.clone()],
        "by key"
    );

    // Clocks move, one group finishes, another starts: one pass.
    let mut api_later = api.clone();
    api_later.clock.last_tick_ms = Some(T0 + 330 * SECOND);
    api_later.clock.acknowledged = None;
    api_later.clock.notified.firing.insert(Fingerprint(9));
    let cache = group("ops", "cache", &[7]);
    let ids = write(
        store,
        DispatchWrite {
            groups: vec![api_later.clone(), cache.clone()],
            finished: vec![db.key.clone(), "/9:nobody:{}".into()],
            notifications: Vec::new(),
            lease: None,
        },
    )
    .await;
    assert!(ids.is_empty());
    assert_eq!(
        store.alert_groups().await.expect("groups"),
        [api_later, cache, web]
    );
}

/// A pass's notifications are queued pending, due at their creation, with ids ascending in
/// the pass's order (and above every earlier pass's).
pub async fn dispatched_notifications_are_queued_in_order(store: &Arc<dyn Store>) {
    let first = queue(
        store,
        vec![
            new(notice("ops", "api", &[1, 2]), T0),
            new(notice("ops", "db", &[3]), T0 + SECOND),
            new(notice("pager", "api", &[1]), T0 + 2 * SECOND),
        ],
    )
    .await;
    assert_eq!(first.len(), 3);
    assert!(first.windows(2).all(|w| w[0] < w[1]), "{first:?}");
    let second = queue(store, vec![new(notice("ops", "web", &[4]), T0)]).await;
    assert_eq!(second.len(), 1);
    assert!(second[0] > first[2]);

    let stored = get(store, first[0]).await;
    assert_eq!(
        stored,
        StoredNotification {
            id: first[0],
            notice: notice("ops", "api", &[1, 2]),
            state: NotificationState::Pending,
            attempts: 0,
            created_ms: T0,
            next_attempt_ms: T0,
            expires_ms: T0 + TTL,
            finished_ms: None,
            last_error: None,
        }
    );
    assert_eq!(
        stored,
        new(notice("ops", "api", &[1, 2]), T0).queued(first[0]),
        "a writer's own copy of what it queued is what the store holds"
    );
    assert_eq!(
        listed(store, all()).await,
        [second[0], first[2], first[1], first[0]],
        "newest first"
    );
}

/// A pass mixing a notice of a large group (hundreds of kilobytes, written from its alerts'
/// JSON as the dispatcher writes it) with small ones queues them all in order, each read back
/// whole.
pub async fn large_and_small_notices_are_queued_in_order(store: &Arc<dyn Store>) {
    let fingerprints: Vec<u64> = (1..=2_000).collect();
    let large = notice("ops", "api", &fingerprints);
    let encoded = Notice::encoded(
        large.receiver.clone(),
        large.group_key.clone(),
        large.group_labels.clone(),
        large.reason,
        large
            .alerts
            .iter()
            .map(|a| Arc::new(steward_core::alert::webhook::EncodedAlert::new(a.clone())))
            .collect(),
    );
    let ids = queue(
        store,
        vec![
            new(notice("ops", "db", &[3]), T0),
            new(encoded, T0),
            new(notice("ops", "web", &[4]), T0),
        ],
    )
    .await;
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(get(store, ids[0]).await.notice, notice("ops", "db", &[3]));
    assert_eq!(get(store, ids[1]).await.notice, large);
    assert_eq!(get(store, ids[2]).await.notice, notice("ops", "web", &[4]));
    assert_eq!(due(store, T0).await, ids, "each heads its group");
    let carrying = store
        .notifications(&NotificationQuery {
            fingerprint: Some(Fingerprint(1_999)),
            ..all()
        })
        .await
        .expect("by fingerprint");
    assert_eq!(
        carrying.iter().map(|n| n.id).collect::<Vec<_>>(),
        [ids[1]],
        "its alerts are linked"
    );
}

/// A pass of many large notices (a burst of large groups), among small ones, keeps each
/// notice with its notification and their order.
pub async fn many_large_notices_are_queued_in_order(store: &Arc<dyn Store>) {
    // About 100 KiB each: stored as large notices.
    let large = |g: u64| {
        notice(
            "ops",
            &format!("big{g}"),
            &(g * 1_000..g * 1_000 + 500).collect::<Vec<_>>(),
        )
    };
    let mut notices = Vec::new();
    for g in 1..=11 {
        notices.push(large(g));
        if g % 4 == 0 {
            notices.push(notice("ops", &format!("small{g}"), &[g]));
        }
    }
    let ids = queue(store, notices.iter().map(|n| new(n.clone(), T0)).collect()).await;
    assert_eq!(ids.len(), notices.len());
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let stored: HashMap<i64, Notice> = list(store, all())
        .await
        .into_iter()
        .map(|n| (n.id, n.notice))
        .collect();
    for (id, notice) in ids.iter().zip(&notices) {
        assert_eq!(stored.get(id), Some(notice), "notification {id}");
    }
    assert_eq!(due(store, T0).await, ids, "each heads its group");
}

/// A group's notifications go out one at a time, in order: a later one is not due while an
/// earlier one is pending (even waiting for a retry), while other groups' are.
pub async fn each_group_sends_its_notifications_in_order(store: &Arc<dyn Store>) {
    let queued = written(
        store,
        DispatchWrite {
            notifications: vec![
                new(notice("ops", "api", &[1]), T0),
                new(notice("ops", "api", &[1, 2]), T0 + SECOND),
                new(notice("ops", "db", &[3]), T0 + 2 * SECOND),
                // Same labels, another receiver: another group.
                new(notice("pager", "api", &[1]), T0 + 3 * SECOND),
            ],
            ..DispatchWrite::default()
        },
    )
    .await;
    assert_eq!(
        queued.iter().map(|q| q.heads_group).collect::<Vec<_>>(),
        [true, false, true, true],
        "the second of a group in one pass waits behind the first"
    );
    let ids: Vec<i64> = queued.iter().map(|q| q.id).collect();
    let (api1, api2, db, pager) = (ids[0], ids[1], ids[2], ids[3]);
    let now = T0 + 10 * SECOND;
    assert_eq!(due(store, now).await, [api1, db, pager]);
    let limited = store.due_notifications(now, &[], 2).await.expect("due");
    assert_eq!(
        limited.iter().map(|n| n.id).collect::<Vec<_>>(),
        [api1, db],
        "the limit keeps the oldest"
    );
    assert_eq!(limited[0].notice, notice("ops", "api", &[1]));
    // Heads the caller is attempting already are left out; their groups' later ones stay
    // behind them.
    let excluded = store
        .due_notifications(now, &[api1, pager], 10)
        .await
        .expect("due");
    assert_eq!(excluded.iter().map(|n| n.id).collect::<Vec<_>>(), [db]);

    // A failed attempt waiting for its retry still holds its group back.
    assert!(
        attempt(
            store,
            api1,
            now,
            Some(503),
            Some("unavailable"),
            AttemptOutcome::RetryAt(now + 30 * SECOND),
        )
        .await
    );
    assert_eq!(due(store, now).await, [db, pager]);
    assert_eq!(due(store, now + 30 * SECOND).await, [api1, db, pager]);
    // A later pass's notification waits behind its group's pending ones too, as a new group's
    // heads its group at once.
    let later = written(
        store,
        DispatchWrite {
            notifications: vec![
                new(notice("ops", "api", &[2]), now),
                new(notice("ops", "web", &[5]), now),
            ],
            ..DispatchWrite::default()
        },
    )
    .await;
    assert_eq!(
        later.iter().map(|q| q.heads_group).collect::<Vec<_>>(),
        [false, true]
    );
    let (api3, web) = (later[0].id, later[1].id);
    assert!(attempt(store, web, now, Some(200), None, AttemptOutcome::Delivered).await);

    // Delivered: the group's next one is due.
    assert!(
        attempt(
            store,
            api1,
            now + 30 * SECOND,
            Some(200),
            None,
            AttemptOutcome::Delivered
        )
        .await
    );
    assert_eq!(due(store, now + 30 * SECOND).await, [api2, db, pager]);
    // Given up on: the group moves on too.
    assert!(
        attempt(
            store,
            api2,
            now + 31 * SECOND,
            Some(400),
            Some("bad request"),
            AttemptOutcome::GiveUp,
        )
        .await
    );
    assert_eq!(due(store, now + 31 * SECOND).await, [db, pager, api3]);
    assert!(attempt(store, api3, now, Some(200), None, AttemptOutcome::Delivered).await);
    assert!(attempt(store, db, now, Some(200), None, AttemptOutcome::Delivered).await);
    assert!(
        attempt(
            store,
            pager,
            now,
            Some(200),
            None,
            AttemptOutcome::Delivered
        )
        .await
    );
    assert!(due(store, i64::MAX).await.is_empty());
    assert_eq!(store.next_notification_due().await.expect("next due"), None);
}

/// A notification whose attempt lies ahead is not due; the earliest attempt among the groups'
/// heads is what the sender sleeps until.
pub async fn future_attempts_wait_and_the_next_due_is_reported(store: &Arc<dyn Store>) {
    assert_eq!(
        store.next_notification_due().await.expect("next due"),
        None,
        "nothing queued"
    );
    let ids = queue(
        store,
        vec![
            new(notice("ops", "api", &[1]), T0 + 60 * SECOND),
            // Behind the head of its group: its earlier time does not count.
            new(notice("ops", "api", &[1, 2]), T0 + 5 * SECOND),
            new(notice("ops", "db", &[3]), T0 + 90 * SECOND),
        ],
    )
    .await;
    assert!(due(store, T0).await.is_empty());
    assert_eq!(
        store.next_notification_due().await.expect("next due"),
        Some(T0 + 60 * SECOND)
    );
    assert_eq!(due(store, T0 + 60 * SECOND - 1).await, Vec::<i64>::new());
    assert_eq!(
        due(store, T0 + 60 * SECOND).await,
        [ids[0]],
        "due at its time"
    );
    assert_eq!(due(store, T0 + 90 * SECOND).await, [ids[0], ids[2]]);

    // A retry moves the head's time.
    assert!(
        attempt(
            store,
            ids[0],
            T0 + 60 * SECOND,
            None,
            Some("connection refused"),
            AttemptOutcome::RetryAt(T0 + 120 * SECOND),
        )
        .await
    );
    assert_eq!(
        store.next_notification_due().await.expect("next due"),
        Some(T0 + 90 * SECOND)
    );
    assert!(attempt(store, ids[2], T0, None, None, AttemptOutcome::GiveUp).await);
    assert_eq!(
        store.next_notification_due().await.expect("next due"),
        Some(T0 + 120 * SECOND)
    );
    // Once the head is delivered, the one behind it heads the group.
    assert!(
        attempt(
            store,
            ids[0],
            T0,
            Some(200),
            None,
            AttemptOutcome::Delivered
        )
        .await
    );
    assert_eq!(
        store.next_notification_due().await.expect("next due"),
        Some(T0 + 5 * SECOND)
    );
}

/// Each attempt is recorded in order with its status, error and latency; retries move the next
/// attempt, delivery and giving up finish the notification; a finished (or unknown)
/// notification records nothing more.
pub async fn attempts_are_recorded_and_finish_notifications(store: &Arc<dyn Store>) {
    let ids = queue(
        store,
        vec![
            new(notice("ops", "api", &[1]), T0),
            new(notice("ops", "db", &[2]), T0),
        ],
    )
    .await;
    let (delivered, failed) = (ids[0], ids[1]);
    let long = "é".repeat(MAX_ATTEMPT_ERROR_CHARS + 200);
    let attempts = [
        Attempt {
            at_ms: T0,
            latency_ms: 5_000,
            status: None,
            error: Some("timed out after 5s".into()),
        },
        Attempt {
            at_ms: T0 + 10 * SECOND,
            latency_ms: 40,
            status: Some(502),
            error: Some(long.clone()),
        },
        Attempt {
            at_ms: T0 + 30 * SECOND,
            latency_ms: 35,
            status: Some(200),
            error: None,
        },
    ];
    let outcomes = [
        AttemptOutcome::RetryAt(T0 + 10 * SECOND),
        AttemptOutcome::RetryAt(T0 + 30 * SECOND),
        AttemptOutcome::Delivered,
    ];
    for (a, outcome) in attempts.iter().zip(outcomes) {
        assert!(
            store
                .record_attempt(delivered, a, outcome)
                .await
                .expect("record attempt")
        );
        if let AttemptOutcome::RetryAt(at) = outcome {
            let n = get(store, delivered).await;
            assert_eq!(n.state, NotificationState::Pending);
            assert_eq!(n.next_attempt_ms, at);
            assert_eq!(n.finished_ms, None);
        }
    }
    let cut: String = long.chars().take(MAX_ATTEMPT_ERROR_CHARS).collect();
    let mut expected = attempts.to_vec();
    expected[1].error = Some(cut.clone());
    assert_eq!(
        store
            .notification_attempts(delivered)
            .await
            .expect("attempts"),
        expected,
        "oldest first, the long error cut"
    );
    let n = get(store, delivered).await;
    assert_eq!(n.state, NotificationState::Delivered);
    assert_eq!(n.attempts, 3);
    assert_eq!(n.finished_ms, Some(T0 + 30 * SECOND + 35));
    assert_eq!(n.last_error, None, "delivered: no error kept");

    // A finished notification takes no more attempts, and nothing is written.
    assert!(
        !store
            .record_attempt(delivered, &attempts[0], AttemptOutcome::GiveUp)
            .await
            .expect("record attempt")
    );
    assert!(
        !store
            .record_attempt(delivered, &attempts[0], AttemptOutcome::Delivered)
            .await
            .expect("record attempt")
    );
    assert_eq!(get(store, delivered).await, n);
    assert_eq!(
        store
            .notification_attempts(delivered)
            .await
            .expect("attempts")
            .len(),
        3
    );
    assert!(
        !store
            .record_attempt(failed + 1_000, &attempts[0], AttemptOutcome::Delivered)
            .await
            .expect("record attempt on a missing notification")
    );
    assert!(
        store
            .notification_attempts(failed + 1_000)
            .await
            .expect("attempts")
            .is_empty()
    );

    // Giving up keeps the error that ended it.
    assert!(
        attempt(
            store,
            failed,
            T0 + 5 * SECOND,
            Some(401),
            Some(&long),
            AttemptOutcome::GiveUp
        )
        .await
    );
    let n = get(store, failed).await;
    assert_eq!(n.state, NotificationState::Failed);
    assert_eq!(n.attempts, 1);
    assert_eq!(n.finished_ms, Some(T0 + 5 * SECOND + 120));
    assert_eq!(n.last_error, Some(cut));
    assert_eq!(n.next_attempt_ms, T0, "giving up leaves the due time");
    assert!(!attempt(store, failed, T0, None, None, AttemptOutcome::RetryAt(T0)).await);
}

/// Of many attempts racing to deliver one notification, one is recorded.
pub async fn racing_deliveries_record_one_attempt(store: &Arc<dyn Store>) {
    let id = queue(store, vec![new(notice("ops", "api", &[1]), T0)]).await[0];
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                store
                    .record_attempt(
                        id,
                        &Attempt {
                            at_ms: T0 + i,
                            latency_ms: 1,
                            status: Some(200),
                            error: None,
                        },
                        AttemptOutcome::Delivered,
                    )
                    .await
                    .expect("record attempt")
            })
        })
        .collect();
    let mut recorded = 0;
    for racer in racers {
        if racer.await.expect("join") {
            recorded += 1;
        }
    }
    assert_eq!(recorded, 1);
    assert_eq!(get(store, id).await.attempts, 1);
    assert_eq!(
        store
            .notification_attempts(id)
            .await
            .expect("attempts")
            .len(),
        1
    );
}

/// Attempts recorded in one call each follow their own outcome; one on a finished
/// notification is refused without spoiling the others.
pub async fn attempts_recorded_together_are_each_judged(store: &Arc<dyn Store>) {
    let ids = queue(
        store,
        vec![
            new(notice("ops", "api", &[1]), T0),
            new(notice("ops", "db", &[2]), T0),
            new(notice("pager", "api", &[1]), T0),
        ],
    )
    .await;
    let ok = |at| Attempt {
        at_ms: at,
        latency_ms: 2,
        status: Some(200),
        error: None,
    };
    let failed = Attempt {
        at_ms: T0,
        latency_ms: 3,
        status: Some(503),
        error: Some("503 Service Unavailable".into()),
    };
    let recorded = store
        .record_attempts(&[
            (ids[0], ok(T0), AttemptOutcome::Delivered),
            (ids[1], failed.clone(), AttemptOutcome::RetryAt(T0 + 1_000)),
            (ids[2], failed, AttemptOutcome::GiveUp),
        ])
        .await
        .expect("record attempts");
    assert_eq!(recorded, [true, true, true]);
    assert_eq!(get(store, ids[0]).await.state, NotificationState::Delivered);
    let retried = get(store, ids[1]).await;
    assert_eq!(retried.state, NotificationState::Pending);
    assert_eq!(retried.next_attempt_ms, T0 + 1_000);
    assert_eq!(get(store, ids[2]).await.state, NotificationState::Failed);
    let again = store
        .record_attempts(&[
            (ids[0], ok(T0 + 5), AttemptOutcome::Delivered),
            (ids[1], ok(T0 + 5), AttemptOutcome::Delivered),
        ])
        .await
        .expect("record attempts");
    assert_eq!(
        again,
        [false, true],
        "a delivered notification takes no attempt"
    );
    assert_eq!(get(store, ids[0]).await.attempts, 1);
    assert_eq!(
        store.record_attempts(&[]).await.expect("nothing"),
        Vec::<bool>::new()
    );
}

/// Listings filter by alert, receiver and state, newest first, up to the limit (capped).
pub async fn notification_listings_filter_newest_first(store: &Arc<dyn Store>) {
    let ids = queue(
        store,
        vec![
            new(notice("ops", "api", &[1, 2]), T0),
            new(notice("pager", "api", &[1]), T0),
            new(notice("ops", "db", &[3]), T0),
            new(notice("ops", "api", &[2]), T0),
            // An alert named twice is linked once.
            new(notice("pager", "db", &[3, 3]), T0),
        ],
    )
    .await;
    assert!(
        attempt(
            store,
            ids[0],
            T0,
            Some(200),
            None,
            AttemptOutcome::Delivered
        )
        .await
    );
    assert!(attempt(store, ids[2], T0, None, None, AttemptOutcome::GiveUp).await);
    let query =
        |fingerprint: Option<u64>, receiver: Option<&str>, state, limit| NotificationQuery {
            fingerprint: fingerprint.map(Fingerprint),
            receiver: receiver.map(Into::into),
            state,
            limit,
        };
    let max = MAX_NOTIFICATION_PAGE;
    assert_eq!(
        listed(store, query(None, None, None, max)).await,
        [ids[4], ids[3], ids[2], ids[1], ids[0]]
    );
    assert_eq!(
        listed(store, query(Some(1), None, None, max)).await,
        [ids[1], ids[0]]
    );
    assert_eq!(
        listed(store, query(Some(2), None, None, max)).await,
        [ids[3], ids[0]]
    );
    assert_eq!(
        listed(store, query(Some(3), None, None, max)).await,
        [ids[4], ids[2]]
    );
    assert!(
        listed(store, query(Some(4), None, None, max))
            .await
            .is_empty()
    );
    assert_eq!(
        listed(store, query(None, Some("pager"), None, max)).await,
        [ids[4], ids[1]]
    );
    assert_eq!(
        listed(
            store,
            query(None, None, Some(NotificationState::Pending), max)
        )
        .await,
        [ids[4], ids[3], ids[1]]
    );
    assert_eq!(
        listed(
            store,
            query(None, None, Some(NotificationState::Delivered), max)
        )
        .await,
        [ids[0]]
    );
    assert_eq!(
        listed(
            store,
            query(None, None, Some(NotificationState::Failed), max)
        )
        .await,
        [ids[2]]
    );
    assert_eq!(
        listed(
            store,
            query(Some(2), Some("ops"), Some(NotificationState::Pending), max)
        )
        .await,
        [ids[3]]
    );
    assert!(
        listed(
            store,
            query(Some(1), Some("pager"), Some(NotificationState::Failed), max)
        )
        .await
        .is_empty()
    );
    // The limit applies after filtering; 0 lists nothing, as for alerts.
    assert_eq!(
        listed(store, query(None, Some("ops"), None, 2)).await,
        [ids[3], ids[2]]
    );
    assert!(listed(store, query(None, None, None, 0)).await.is_empty());
    assert_eq!(
        listed(store, query(None, None, None, u32::MAX)).await.len(),
        5
    );
}

/// Counts come per receiver and state.
pub async fn notifications_are_counted_per_receiver_and_state(store: &Arc<dyn Store>) {
    assert!(
        store
            .notification_counts()
            .await
            .expect("counts")
            .is_empty()
    );
    let ids = queue(
        store,
        vec![
            new(notice("ops", "api", &[1]), T0),
            new(notice("ops", "db", &[2]), T0),
            new(notice("ops", "web", &[3]), T0),
            new(notice("pager", "api", &[1]), T0),
        ],
    )
    .await;
    assert!(
        attempt(
            store,
            ids[0],
            T0,
            Some(200),
            None,
            AttemptOutcome::Delivered
        )
        .await
    );
    assert!(
        attempt(
            store,
            ids[1],
            T0,
            Some(200),
            None,
            AttemptOutcome::Delivered
        )
        .await
    );
    assert!(attempt(store, ids[3], T0, None, None, AttemptOutcome::GiveUp).await);
    let count = |receiver: &str, state, count| NotificationCount {
        receiver: receiver.into(),
        state,
        count,
    };
    let mut counts = store.notification_counts().await.expect("counts");
    counts.sort_by(|a, b| (&a.receiver, a.state.as_str()).cmp(&(&b.receiver, b.state.as_str())));
    assert_eq!(
        counts,
        [
            count("ops", NotificationState::Delivered, 2),
            count("ops", NotificationState::Pending, 1),
            count("pager", NotificationState::Failed, 1),
        ]
    );
}

/// Pruning deletes delivered and failed notifications that finished before the cut-off, with
/// their attempts and alert links; pending ones and later ones stay.
pub async fn prune_removes_only_old_finished_notifications(store: &Arc<dyn Store>) {
    let ids = queue(
        store,
        vec![
            new(notice("ops", "api", &[1]), T0),
            new(notice("ops", "db", &[1, 2]), T0),
            new(notice("ops", "web", &[1]), T0),
            new(notice("ops", "cache", &[1]), T0),
        ],
    )
    .await;
    let (old_delivered, old_failed, recent, pending) = (ids[0], ids[1], ids[2], ids[3]);
    assert!(
        attempt(
            store,
            old_delivered,
            T0,
            Some(500),
            Some("oops"),
            AttemptOutcome::RetryAt(T0 + SECOND)
        )
        .await
    );
    assert!(
        attempt(
            store,
            old_delivered,
            T0 + SECOND,
            Some(200),
            None,
            AttemptOutcome::Delivered
        )
        .await
    );
    assert!(
        attempt(
            store,
            old_failed,
            T0 + 2 * SECOND,
            None,
            Some("refused"),
            AttemptOutcome::GiveUp
        )
        .await
    );
    assert!(
        attempt(
            store,
            recent,
            T0 + 60 * SECOND,
            Some(200),
            None,
            AttemptOutcome::Delivered
        )
        .await
    );
    assert!(
        attempt(
            store,
            pending,
            T0,
            Some(503),
            None,
            AttemptOutcome::RetryAt(T0 + 600 * SECOND)
        )
        .await
    );

    assert_eq!(
        store
            .prune_notifications(T0 + 30 * SECOND)
            .await
            .expect("prune"),
        2
    );
    assert_eq!(listed(store, all()).await, [pending, recent]);
    for gone in [old_delivered, old_failed] {
        assert!(
            store
                .notification_attempts(gone)
                .await
                .expect("attempts")
                .is_empty(),
            "attempts go with their notification"
        );
    }
    assert_eq!(
        store
            .notification_attempts(pending)
            .await
            .expect("attempts")
            .len(),
        1
    );
    let by_alert = |f| NotificationQuery {
        fingerprint: Some(Fingerprint(f)),
        ..all()
    };
    assert_eq!(listed(store, by_alert(1)).await, [pending, recent]);
    assert!(listed(store, by_alert(2)).await.is_empty());
    assert_eq!(
        store
            .prune_notifications(T0 + 30 * SECOND)
            .await
            .expect("prune"),
        0,
        "nothing left to prune"
    );
    // A pending notification stays whatever the cut-off.
    assert_eq!(store.prune_notifications(i64::MAX).await.expect("prune"), 1);
    assert_eq!(listed(store, all()).await, [pending]);
}

/// Which alerts a notification carries is recorded apart from its pass, for every notification
/// written since the last time, and only once.
pub async fn notifications_are_linked_to_their_alerts_apart(store: &Arc<dyn Store>) {
    let by_alert = |f| NotificationQuery {
        fingerprint: Some(Fingerprint(f)),
        ..all()
    };
    let pass = |notifications| DispatchWrite {
        notifications,
        ..DispatchWrite::default()
    };
    let first = store
        .write_dispatch(&pass(vec![
            new(notice("ops", "api", &[1, 2]), T0),
            new(notice("ops", "db", &[2]), T0),
        ]))
        .await
        .expect("write");
    assert!(
        listed(store, by_alert(2)).await.is_empty(),
        "not linked yet"
    );
    // Up to the id named only.
    assert_eq!(
        store.link_notifications(first[0].id).await.expect("link"),
        2
    );
    assert_eq!(listed(store, by_alert(2)).await, [first[0].id]);
    assert_eq!(store.link_notifications(i64::MAX).await.expect("link"), 1);
    assert_eq!(listed(store, by_alert(2)).await, [first[1].id, first[0].id]);
    assert_eq!(listed(store, by_alert(1)).await, [first[0].id]);
    assert_eq!(
        store.link_notifications(i64::MAX).await.expect("link"),
        0,
        "once"
    );

    // Two passes left unlinked (as by a crash between a pass and its links) are linked by
    // the next call.
    let second = store
        .write_dispatch(&pass(vec![new(notice("ops", "api", &[1]), T0)]))
        .await
        .expect("write");
    let third = store
        .write_dispatch(&pass(vec![new(notice("pager", "web", &[3, 1]), T0)]))
        .await
        .expect("write");
    assert_eq!(store.link_notifications(i64::MAX).await.expect("link"), 3);
    assert_eq!(
        listed(store, by_alert(1)).await,
        [third[0].id, second[0].id, first[0].id]
    );
    assert_eq!(listed(store, by_alert(3)).await, [third[0].id]);
}

/// A pass written under a lease that lapsed, or that another instance took over, writes
/// nothing: a deposed dispatcher cannot queue what its successor decides too.
pub async fn a_deposed_dispatchers_pass_writes_nothing(store: &Arc<dyn Store>) {
    let lease = store
        .acquire_lease("alerting", "a", 60_000)
        .await
        .expect("acquire")
        .expect("free");
    let pass = |service: &str| DispatchWrite {
        groups: vec![group("ops", service, &[1])],
        notifications: vec![new(notice("ops", service, &[1]), T0)],
        lease: Some(lease.clone()),
        ..DispatchWrite::default()
    };
    let held = write(store, pass("api")).await;
    assert_eq!(held.len(), 1, "written while the lease is held");
    store.release_lease("alerting", "a").await.expect("release");
    let lapsed = store.write_dispatch(&pass("db")).await;
    assert!(
        matches!(lapsed, Err(StoreError::LeaseLost(_))),
        "{lapsed:?}"
    );
    store
        .acquire_lease("alerting", "b", 60_000)
        .await
        .expect("acquire")
        .expect("taken over");
    let deposed = store.write_dispatch(&pass("db")).await;
    assert!(
        matches!(deposed, Err(StoreError::LeaseLost(_))),
        "{deposed:?}"
    );
    assert_eq!(listed(store, all()).await, held, "nothing else queued");
    let groups = store.alert_groups().await.expect("groups");
    assert_eq!(
        groups.iter().map(|g| g.key.as_str()).collect::<Vec<_>>(),
        [key("ops", "api").as_str()],
        "nor any group written"
    );
}

/// A pass of five thousand groups and five thousand notifications is one call, and the sender
/// finds each group's head among them.
pub async fn a_dispatch_of_five_thousand_is_one_call(store: &Arc<dyn Store>) {
    const GROUPS: u64 = 5_000;
    let service = |i: u64| format!("svc-{i:04}");
    let pass = DispatchWrite {
        groups: (0..GROUPS)
            .map(|i| group("ops", &service(i), &[i, i + GROUPS]))
            .collect(),
        finished: Vec::new(),
        notifications: (0..GROUPS)
            .map(|i| new(notice("ops", &service(i), &[i, i + GROUPS]), T0))
            .collect(),
        lease: None,
    };
    let ids = write(store, pass.clone()).await;
    assert_eq!(ids.len(), 5_000);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let groups = store.alert_groups().await.expect("groups");
    assert_eq!(groups.len(), 5_000);
    assert_eq!(groups[17], pass.groups[17]);

    let page = store.due_notifications(T0, &[], 500).await.expect("due");
    assert_eq!(page.len(), 500);
    assert_eq!(page[0].id, ids[0]);
    assert_eq!(page[499].notice, pass.notifications[499].notice);
    assert_eq!(
        store.next_notification_due().await.expect("next due"),
        Some(T0)
    );
    assert_eq!(
        store.notification_counts().await.expect("counts"),
        [NotificationCount {
            receiver: "ops".into(),
            state: NotificationState::Pending,
            count: 5_000,
        }]
    );
    assert_eq!(
        list(store, all()).await.len(),
        usize::try_from(MAX_NOTIFICATION_PAGE).expect("fits"),
        "a listing is capped"
    );
    let by_alert = NotificationQuery {
        fingerprint: Some(Fingerprint(GROUPS + 42)),
        ..all()
    };
    assert_eq!(listed(store, by_alert).await, [ids[42]]);

    // A second pass: every group moves on, finishes, or is followed up.
    let finished: Vec<String> = pass.groups.iter().map(|g| g.key.clone()).collect();
    let more = written(
        store,
        DispatchWrite {
            groups: Vec::new(),
            finished,
            notifications: pass.notifications.clone(),
            lease: None,
        },
    )
    .await;
    assert!(
        more.iter().all(|q| !q.heads_group),
        "each waits behind its group's first"
    );
    let more: Vec<i64> = more.iter().map(|q| q.id).collect();
    assert!(more[0] > ids[4_999]);
    assert!(store.alert_groups().await.expect("groups").is_empty());
    // Each group's follow-up waits behind its first notification.
    let due_now = store.due_notifications(T0, &[], 10_000).await.expect("due");
    assert_eq!(due_now.len(), 5_000);
    assert_eq!(due_now.last().map(|n| n.id), Some(ids[4_999]));
}
