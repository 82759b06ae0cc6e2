//! Alert-manager stories: alerts received and merged into their stored lifecycle (episodes,
//! resolution, acknowledgement), stale resolution, listings, silences, and pruning.

use std::sync::Arc;

use serde_json::json;
use steward_core::alert::mute::Silence;
use steward_core::alert::route::Matcher;
use steward_core::alert::{AlertState, Fingerprint, IncomingAlert, Severity};
use steward_core::audit::{Actor, AuditEvent};
use steward_core::registry::Labels;

use crate::alerts::MAX_ALERT_PAGE;
use crate::audit::verify_audit;
use crate::{
    Ack, AlertChange, AlertQuery, AlertReceipt, AuditQuery, Store, StoreError, StoredAlert,
};

/// The time the stories' clocks start at.
const T0: i64 = 1_700_000_000_000;
/// One second.
const SECOND: i64 = 1_000;

fn actor() -> Actor {
    Actor::system("conformance")
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A firing alert named `name` with extra labels, no times given.
fn incoming(name: &str, extra: &[(&str, &str)]) -> IncomingAlert {
    let mut l = labels(extra);
    l.insert("alertname".into(), name.into());
    IncomingAlert {
        labels: l,
        annotations: labels(&[("summary", &format!("{name} is failing"))]),
        severity: Severity::Warning,
        starts_at_ms: None,
        ends_at_ms: None,
        generator_url: None,
    }
}

fn receipt(alert: IncomingAlert, source: &str, received_ms: i64) -> AlertReceipt {
    AlertReceipt {
        alert,
        source: source.into(),
        received_ms,
    }
}

async fn receive(store: &Arc<dyn Store>, receipts: Vec<AlertReceipt>) -> Vec<AlertChange> {
    store
        .receive_alerts(&receipts, &actor())
        .await
        .expect("receive alerts")
}

async fn get(store: &Arc<dyn Store>, fingerprint: Fingerprint) -> StoredAlert {
    store
        .alert(fingerprint)
        .await
        .expect("read alert")
        .expect("the alert is stored")
}

async fn events(store: &Arc<dyn Store>, action: &str) -> Vec<AuditEvent> {
    store
        .audit_events(&AuditQuery {
            limit: 1_000,
            action: Some(action.into()),
            ..AuditQuery::default()
        })
        .await
        .expect("audit events")
}

async fn list(store: &Arc<dyn Store>, query: AlertQuery) -> Vec<StoredAlert> {
    store.alerts(&query).await.expect("list alerts")
}

fn names(alerts: &[StoredAlert]) -> Vec<&str> {
    alerts
        .iter()
        .map(|a| a.labels.get("alertname").map_or("", String::as_str))
        .collect()
}

/// A new alert fires, is received again unchanged (annotations refreshed), resolves with an
/// end, and fires again as a second episode with its acknowledgement cleared.
pub async fn an_alert_fires_resolves_and_refires(store: &Arc<dyn Store>) {
    let mut alert = incoming("ApiDown", &[("service", "api")]);
    alert.starts_at_ms = Some(T0 - SECOND);
    alert.generator_url = Some("http://prometheus/graph".into());
    let fingerprint = alert.fingerprint();
    assert_eq!(
        receive(store, vec![receipt(alert.clone(), "external", T0)]).await,
        [AlertChange::Fired]
    );
    let fired = get(store, fingerprint).await;
    assert_eq!(
        fired,
        StoredAlert {
            fingerprint,
            labels: alert.labels.clone().into(),
            annotations: alert.annotations.clone().into(),
            severity: Severity::Warning,
            source: "external".into(),
            state: AlertState::Firing,
            starts_at_ms: T0 - SECOND,
            ends_at_ms: None,
            last_received_ms: T0,
            generator_url: Some("http://prometheus/graph".into()),
            episode: 1,
            ack: None,
        }
    );

    // Received again, still firing: annotations, severity and times are refreshed.
    let mut again = alert.clone();
    again.annotations = labels(&[("summary", "still down"), ("runbook_url", "http://rb")]);
    again.severity = Severity::Critical;
    again.starts_at_ms = Some(T0 + 5 * SECOND);
    again.ends_at_ms = Some(T0 + 600 * SECOND);
    again.generator_url = None;
    assert_eq!(
        receive(
            store,
            vec![receipt(again.clone(), "external", T0 + 10 * SECOND)]
        )
        .await,
        [AlertChange::Unchanged]
    );
    let refreshed = get(store, fingerprint).await;
    assert_eq!(refreshed.state, AlertState::Firing);
    assert_eq!(*refreshed.annotations, again.annotations);
    assert_eq!(refreshed.severity, Severity::Critical);
    assert_eq!(
        refreshed.starts_at_ms,
        T0 - SECOND,
        "the episode's start stays"
    );
    assert_eq!(refreshed.ends_at_ms, Some(T0 + 600 * SECOND));
    assert_eq!(refreshed.last_received_ms, T0 + 10 * SECOND);
    assert_eq!(refreshed.generator_url, None);
    assert_eq!(*refreshed.labels, alert.labels);
    assert_eq!(refreshed.episode, 1);

    let ack = Ack {
        by: "oncall".into(),
        at_ms: T0 + 15 * SECOND,
        note: "looking".into(),
    };
    let acked = store
        .ack_alert(fingerprint, &ack, &actor())
        .await
        .expect("ack");
    assert_eq!(acked.ack.as_ref(), Some(&ack));

    // Resolved: an end that has passed.
    let mut resolved = alert.clone();
    resolved.ends_at_ms = Some(T0 + 20 * SECOND);
    assert_eq!(
        receive(store, vec![receipt(resolved, "external", T0 + 30 * SECOND)]).await,
        [AlertChange::Resolved]
    );
    let stored = get(store, fingerprint).await;
    assert_eq!(stored.state, AlertState::Resolved);
    assert_eq!(stored.ends_at_ms, Some(T0 + 20 * SECOND));
    assert_eq!(stored.episode, 1);
    assert_eq!(stored.ack.as_ref(), Some(&ack), "an episode keeps its ack");

    // Firing again: a second episode, starting at the receipt, the ack cleared.
    assert_eq!(
        receive(
            store,
            vec![receipt(alert.clone(), "external", T0 + 60 * SECOND)]
        )
        .await,
        [AlertChange::Refired]
    );
    let refired = get(store, fingerprint).await;
    assert_eq!(refired.state, AlertState::Firing);
    assert_eq!(refired.episode, 2);
    assert_eq!(
        refired.starts_at_ms,
        T0 - SECOND,
        "the receipt gave a start"
    );
    assert_eq!(refired.ends_at_ms, None);
    assert_eq!(refired.ack, None);
    let mut no_start = alert.clone();
    no_start.ends_at_ms = Some(T0 + 61 * SECOND);
    receive(store, vec![receipt(no_start, "external", T0 + 62 * SECOND)]).await;
    assert_eq!(
        receive(
            store,
            vec![receipt(
                incoming("ApiDown", &[("service", "api")]),
                "external",
                T0 + 70 * SECOND
            )]
        )
        .await,
        [AlertChange::Refired]
    );
    let third = get(store, fingerprint).await;
    assert_eq!((third.episode, third.starts_at_ms), (3, T0 + 70 * SECOND));
}

/// An alert first received with an end already past is stored resolved.
pub async fn an_alert_may_arrive_resolved(store: &Arc<dyn Store>) {
    let mut alert = incoming("DiskFull", &[("host", "db1")]);
    alert.starts_at_ms = Some(T0 - 60 * SECOND);
    alert.ends_at_ms = Some(T0 - SECOND);
    assert_eq!(
        receive(store, vec![receipt(alert.clone(), "external", T0)]).await,
        [AlertChange::Resolved]
    );
    let stored = get(store, alert.fingerprint()).await;
    assert_eq!(stored.state, AlertState::Resolved);
    assert_eq!(stored.starts_at_ms, T0 - 60 * SECOND);
    assert_eq!(stored.ends_at_ms, Some(T0 - SECOND));
    assert_eq!(stored.episode, 1);
    // Received resolved again: nothing changes state.
    assert_eq!(
        receive(store, vec![receipt(alert.clone(), "external", T0 + SECOND)]).await,
        [AlertChange::Unchanged]
    );
    // An end still to come is firing.
    let mut later = incoming("CertExpiry", &[]);
    later.ends_at_ms = Some(T0 + 3_600 * SECOND);
    assert_eq!(
        receive(store, vec![receipt(later.clone(), "external", T0)]).await,
        [AlertChange::Fired]
    );
    assert_eq!(
        get(store, later.fingerprint()).await.state,
        AlertState::Firing
    );
}

/// Several receipts of one fingerprint in one call apply in order.
pub async fn receipts_of_one_alert_in_a_call_apply_in_order(store: &Arc<dyn Store>) {
    let alert = incoming("Flapping", &[("service", "web")]);
    let other = incoming("Steady", &[("service", "web")]);
    let mut resolved = alert.clone();
    resolved.ends_at_ms = Some(T0 + SECOND);
    let mut last = alert.clone();
    last.annotations = labels(&[("summary", "the last word")]);
    let changes = receive(
        store,
        vec![
            receipt(alert.clone(), "external", T0),
            receipt(other.clone(), "external", T0),
            receipt(resolved.clone(), "external", T0 + 2 * SECOND),
            receipt(alert.clone(), "external", T0 + 3 * SECOND),
            receipt(last.clone(), "external", T0 + 4 * SECOND),
            receipt(resolved, "external", T0 + 5 * SECOND),
        ],
    )
    .await;
    assert_eq!(
        changes,
        [
            AlertChange::Fired,
            AlertChange::Fired,
            AlertChange::Resolved,
            AlertChange::Refired,
            AlertChange::Unchanged,
            AlertChange::Resolved,
        ]
    );
    let stored = get(store, alert.fingerprint()).await;
    assert_eq!(stored.state, AlertState::Resolved);
    assert_eq!(stored.episode, 2);
    assert_eq!(stored.starts_at_ms, T0 + 3 * SECOND);
    assert_eq!(stored.last_received_ms, T0 + 5 * SECOND);
    assert_eq!(get(store, other.fingerprint()).await.episode, 1);
    // The same again in a new call: the stored state is where merging starts.
    let changes = receive(store, vec![receipt(last, "external", T0 + 6 * SECOND)]).await;
    assert_eq!(changes, [AlertChange::Refired]);
    assert_eq!(get(store, alert.fingerprint()).await.episode, 3);
}

/// Ten thousand receipts in one call (a full post), then the same again.
pub async fn a_batch_of_ten_thousand_alerts_is_one_call(store: &Arc<dyn Store>) {
    const N: usize = 10_000;
    let batch: Vec<AlertReceipt> = (0..N)
        .map(|i| {
            let mut a = incoming("Many", &[("instance", &format!("host-{i:05}"))]);
            a.severity = if i % 2 == 0 {
                Severity::Critical
            } else {
                Severity::Info
            };
            receipt(a, "external", T0)
        })
        .collect();
    let started = std::time::Instant::now();
    let changes = receive(store, batch.clone()).await;
    assert_eq!(changes.len(), N);
    assert!(changes.iter().all(|c| *c == AlertChange::Fired));
    // Again, half of them resolving.
    let again: Vec<AlertReceipt> = batch
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut r = r.clone();
            r.received_ms = T0 + SECOND;
            if i % 2 == 1 {
                r.alert.ends_at_ms = Some(T0);
            }
            r
        })
        .collect();
    let changes = receive(store, again).await;
    let elapsed = started.elapsed();
    assert_eq!(
        changes
            .iter()
            .filter(|c| **c == AlertChange::Resolved)
            .count(),
        N / 2
    );
    assert_eq!(
        changes
            .iter()
            .filter(|c| **c == AlertChange::Unchanged)
            .count(),
        N / 2
    );
    assert!(
        elapsed < std::time::Duration::from_secs(60),
        "two calls of {N} took {elapsed:?}"
    );
    let all = list(
        store,
        AlertQuery {
            limit: MAX_ALERT_PAGE,
            ..AlertQuery::default()
        },
    )
    .await;
    assert_eq!(all.len(), N);
    let firing = list(
        store,
        AlertQuery {
            state: Some(AlertState::Firing),
            limit: MAX_ALERT_PAGE,
            ..AlertQuery::default()
        },
    )
    .await;
    assert_eq!(firing.len(), N / 2);
    assert!(firing.iter().all(|a| a.severity == Severity::Critical));
    assert_eq!(events(store, "alert.receive").await.len(), 2);
}

/// Each call is one audit event, with counts per change and per source; an empty call
/// records nothing.
pub async fn each_receive_call_is_audited_once(store: &Arc<dyn Store>) {
    assert_eq!(receive(store, Vec::new()).await, []);
    assert!(events(store, "alert.receive").await.is_empty());
    let a = incoming("A", &[]);
    let b = incoming("B", &[]);
    let mut b_resolved = b.clone();
    b_resolved.ends_at_ms = Some(T0);
    receive(
        store,
        vec![
            receipt(a.clone(), "external", T0),
            receipt(b.clone(), "rule:b", T0),
            receipt(b_resolved, "rule:b", T0 + SECOND),
            receipt(a, "external", T0 + SECOND),
        ],
    )
    .await;
    let got = events(store, "alert.receive").await;
    assert_eq!(got.len(), 1);
    let details = &got[0].details;
    assert_eq!(details["count"], json!(4));
    assert_eq!(
        details["counts"],
        json!({ "fired": 2, "refired": 0, "resolved": 1, "unchanged": 1 })
    );
    assert_eq!(
        details["sources"],
        json!({
            "external": { "fired": 1, "refired": 0, "resolved": 0, "unchanged": 1 },
            "rule:b": { "fired": 1, "refired": 0, "resolved": 1, "unchanged": 0 },
        })
    );
    verify_audit(store.as_ref())
        .await
        .expect("the chain verifies");
}

/// An alert a built-in rule raised is changed only by rules: a posted resolution (or any
/// other receipt from outside) of its label set is refused and stores nothing, while the rule
/// takes over an alert first posted from outside.
pub async fn alerts_raised_by_rules_are_changed_only_by_rules(store: &Arc<dyn Store>) {
    let owned = incoming("CmdDown", &[("check", "cmd-missing")]);
    let mut posted_resolution = owned.clone();
    posted_resolution.ends_at_ms = Some(T0);
    let changes = receive(
        store,
        vec![
            receipt(owned.clone(), "rule:CmdDown", T0),
            receipt(posted_resolution.clone(), "external", T0 + SECOND),
            receipt(owned.clone(), "external", T0 + 2 * SECOND),
        ],
    )
    .await;
    assert_eq!(
        changes,
        [
            AlertChange::Fired,
            AlertChange::Refused,
            AlertChange::Refused
        ]
    );
    let kept = get(store, owned.fingerprint()).await;
    assert_eq!(
        (kept.state, kept.source.as_str(), kept.last_received_ms),
        (AlertState::Firing, "rule:CmdDown", T0),
        "left exactly as the rule wrote it"
    );
    // In a later call, too.
    let later = receive(
        store,
        vec![receipt(posted_resolution, "external", T0 + 3 * SECOND)],
    )
    .await;
    assert_eq!(later, [AlertChange::Refused]);
    assert_eq!(
        get(store, owned.fingerprint()).await.state,
        AlertState::Firing
    );
    let details = &events(store, "alert.receive").await[1].details;
    assert_eq!(details["counts"]["refused"], json!(1), "{details}");

    // A rule takes over what was posted first.
    let first_posted = incoming("QueueDeep", &[]);
    receive(store, vec![receipt(first_posted.clone(), "external", T0)]).await;
    receive(
        store,
        vec![receipt(first_posted.clone(), "rule:QueueDeep", T0 + SECOND)],
    )
    .await;
    assert_eq!(
        get(store, first_posted.fingerprint()).await.source,
        "rule:QueueDeep"
    );
}

/// Stale resolution takes only firing alerts from the source, without an end, received
/// before the cut-off.
pub async fn stale_alerts_resolve_by_source_and_age(store: &Arc<dyn Store>) {
    let old = incoming("Old", &[]);
    let fresh = incoming("Fresh", &[]);
    let mut with_end = incoming("WithEnd", &[]);
    with_end.ends_at_ms = Some(T0 + 3_600 * SECOND);
    let other_source = incoming("OtherSource", &[]);
    let mut already = incoming("Already", &[]);
    already.ends_at_ms = Some(T0 - SECOND);
    receive(
        store,
        vec![
            receipt(old.clone(), "external", T0),
            receipt(fresh.clone(), "external", T0 + 300 * SECOND),
            receipt(with_end.clone(), "external", T0),
            receipt(other_source.clone(), "rule:x", T0),
            receipt(already.clone(), "external", T0),
        ],
    )
    .await;
    let now = T0 + 301 * SECOND;
    let resolved = store
        .resolve_stale_alerts("external", T0 + 300 * SECOND, now)
        .await
        .expect("resolve stale");
    assert_eq!(resolved, [old.fingerprint()]);
    let stored = get(store, old.fingerprint()).await;
    assert_eq!(stored.state, AlertState::Resolved);
    assert_eq!(stored.ends_at_ms, Some(now));
    for alert in [&fresh, &with_end, &other_source] {
        assert_eq!(
            get(store, alert.fingerprint()).await.state,
            AlertState::Firing
        );
    }
    assert_eq!(
        get(store, already.fingerprint()).await.ends_at_ms,
        Some(T0 - SECOND)
    );
    // Nothing is left to resolve.
    assert!(
        store
            .resolve_stale_alerts("external", T0 + 300 * SECOND, now)
            .await
            .expect("resolve stale")
            .is_empty()
    );
    // A rule's own alerts, by its source.
    assert_eq!(
        store
            .resolve_stale_alerts("rule:x", T0 + SECOND, now)
            .await
            .expect("resolve stale"),
        [other_source.fingerprint()]
    );
}

/// Listings filter by state, severity and a subset of labels, newest first, up to the limit;
/// one alert is found by its fingerprint.
pub async fn alert_listings_filter_and_limit(store: &Arc<dyn Store>) {
    let mut receipts = Vec::new();
    for (i, (name, service, severity, resolved)) in [
        ("A", "api", Severity::Critical, false),
        ("B", "api", Severity::Warning, true),
        ("C", "web", Severity::Critical, false),
        ("D", "api", Severity::Info, false),
        ("E", "web", Severity::Critical, true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut a = incoming(name, &[("service", service), ("team", "core")]);
        a.severity = severity;
        if resolved {
            a.ends_at_ms = Some(T0);
        }
        let at = T0 + i64::try_from(i).expect("small") * SECOND;
        receipts.push(receipt(a, "external", at));
    }
    receive(store, receipts.clone()).await;
    let query = |state, severity, pairs: &[(&str, &str)], limit| AlertQuery {
        state,
        severity,
        labels: labels(pairs),
        limit,
    };
    let all = list(store, query(None, None, &[], 100)).await;
    assert_eq!(names(&all), ["E", "D", "C", "B", "A"]);
    assert_eq!(all[0].fingerprint, receipts[4].alert.fingerprint());
    assert_eq!(
        names(&list(store, query(Some(AlertState::Firing), None, &[], 100)).await),
        ["D", "C", "A"]
    );
    assert_eq!(
        names(&list(store, query(Some(AlertState::Resolved), None, &[], 100)).await),
        ["E", "B"]
    );
    assert_eq!(
        names(&list(store, query(None, Some(Severity::Critical), &[], 100)).await),
        ["E", "C", "A"]
    );
    assert_eq!(
        names(&list(store, query(None, None, &[("service", "api")], 100)).await),
        ["D", "B", "A"]
    );
    assert_eq!(
        names(
            &list(
                store,
                query(None, None, &[("service", "api"), ("alertname", "B")], 100)
            )
            .await
        ),
        ["B"]
    );
    assert!(
        list(store, query(None, None, &[("service", "db")], 100))
            .await
            .is_empty()
    );
    assert!(
        list(store, query(None, None, &[("missing", "x")], 100))
            .await
            .is_empty()
    );
    assert_eq!(
        names(
            &list(
                store,
                query(
                    Some(AlertState::Firing),
                    Some(Severity::Critical),
                    &[("team", "core")],
                    100
                )
            )
            .await
        ),
        ["C", "A"]
    );
    // The limit applies after filtering.
    assert_eq!(
        names(&list(store, query(None, None, &[("service", "api")], 2)).await),
        ["D", "B"]
    );
    assert_eq!(
        names(&list(store, query(Some(AlertState::Firing), None, &[], 1)).await),
        ["D"]
    );
    assert!(list(store, query(None, None, &[], 0)).await.is_empty());
    // Receiving one again moves it to the front.
    receive(
        store,
        vec![receipt(
            receipts[0].alert.clone(),
            "external",
            T0 + 60 * SECOND,
        )],
    )
    .await;
    assert_eq!(
        names(&list(store, query(None, None, &[], 2)).await),
        ["A", "E"]
    );

    let found = get(store, receipts[2].alert.fingerprint()).await;
    assert_eq!(*found.labels, receipts[2].alert.labels);
    assert_eq!(found.severity, Severity::Critical);
    assert_eq!(
        store
            .alert(incoming("Nope", &[]).fingerprint())
            .await
            .expect("read alert"),
        None
    );
}

/// Only a stored, firing alert can be acknowledged; each ack is audited.
pub async fn acks_need_a_firing_alert(store: &Arc<dyn Store>) {
    let ack = Ack {
        by: "oncall".into(),
        at_ms: T0 + SECOND,
        note: "on it".into(),
    };
    let firing = incoming("Firing", &[]);
    let mut resolved = incoming("Resolved", &[]);
    resolved.ends_at_ms = Some(T0);
    receive(
        store,
        vec![
            receipt(firing.clone(), "external", T0),
            receipt(resolved.clone(), "external", T0),
        ],
    )
    .await;
    match store
        .ack_alert(incoming("Nope", &[]).fingerprint(), &ack, &actor())
        .await
    {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("acking an unknown alert: {other:?}"),
    }
    match store
        .ack_alert(resolved.fingerprint(), &ack, &actor())
        .await
    {
        Err(StoreError::State(_)) => {}
        other => panic!("acking a resolved alert: {other:?}"),
    }
    assert_eq!(get(store, resolved.fingerprint()).await.ack, None);
    let acked = store
        .ack_alert(firing.fingerprint(), &ack, &actor())
        .await
        .expect("ack");
    assert_eq!(acked.ack.as_ref(), Some(&ack));
    assert_eq!(get(store, firing.fingerprint()).await, acked);
    // A second ack replaces the first.
    let second = Ack {
        by: "lead".into(),
        at_ms: T0 + 2 * SECOND,
        note: String::new(),
    };
    store
        .ack_alert(firing.fingerprint(), &second, &actor())
        .await
        .expect("ack again");
    assert_eq!(get(store, firing.fingerprint()).await.ack, Some(second));
    let audited = events(store, "alert.ack").await;
    assert_eq!(audited.len(), 2, "only the acks that happened are audited");
    assert_eq!(audited[0].target, format!("alert/{}", firing.fingerprint()));
    assert_eq!(audited[0].details["note"], json!("on it"));
    // Received again still firing, the ack stays.
    receive(
        store,
        vec![receipt(firing.clone(), "external", T0 + 3 * SECOND)],
    )
    .await;
    assert!(get(store, firing.fingerprint()).await.ack.is_some());
}

fn silence(matchers: &[&str], starts_at_ms: i64, ends_at_ms: i64, comment: &str) -> Silence {
    Silence {
        id: 0,
        matchers: matchers
            .iter()
            .map(|m| Matcher::parse(m).expect("matcher"))
            .collect(),
        starts_at_ms,
        ends_at_ms,
        created_by: "oncall".into(),
        comment: comment.into(),
    }
}

/// Silences are stored with their matchers, listed while not ended and expired early.
pub async fn silences_are_created_listed_and_expired(store: &Arc<dyn Store>) {
    let tricky = silence(
        &[
            r#"service="api""#,
            r#"instance=~"web-[0-9]+|db\\d""#,
            r#"env!="prod \"main\"""#,
            "severity!~info",
        ],
        T0,
        T0 + 3_600 * SECOND,
        "deploy",
    );
    let first = store
        .create_silence(&tricky, T0 - SECOND, &actor())
        .await
        .expect("create");
    assert!(first.id > 0);
    assert_eq!(first.matchers, tricky.matchers);
    assert_eq!(
        (first.starts_at_ms, first.ends_at_ms, first.created_at_ms),
        (T0, T0 + 3_600 * SECOND, T0 - SECOND)
    );
    assert_eq!(
        (first.created_by.as_str(), first.comment.as_str()),
        ("oncall", "deploy")
    );
    let future = store
        .create_silence(
            &silence(
                &["team=core"],
                T0 + 7_200 * SECOND,
                T0 + 9_000 * SECOND,
                "later",
            ),
            T0,
            &actor(),
        )
        .await
        .expect("create");
    let short = store
        .create_silence(
            &silence(&["team=web"], T0, T0 + 60 * SECOND, "short"),
            T0,
            &actor(),
        )
        .await
        .expect("create");
    assert!(first.id < future.id && future.id < short.id);

    let listed = store.silences(T0 + 30 * SECOND).await.expect("silences");
    assert_eq!(listed, [first.clone(), future.clone(), short.clone()]);
    // The regular expressions work after the round trip.
    let alert = labels(&[("service", "api"), ("instance", "db7"), ("env", "staging")]);
    assert!(listed[0].matchers.iter().all(|m| m.matches(&alert)));
    // An end is exclusive: a silence ending now has ended.
    let listed = store.silences(T0 + 60 * SECOND).await.expect("silences");
    assert_eq!(listed, [first.clone(), future.clone()]);

    let expired = store
        .expire_silence(first.id, T0 + 100 * SECOND, &actor())
        .await
        .expect("expire");
    assert_eq!(expired.ends_at_ms, T0 + 100 * SECOND);
    assert_eq!(expired.matchers, first.matchers);
    assert_eq!(
        store.silences(T0 + 100 * SECOND).await.expect("silences"),
        std::slice::from_ref(&future)
    );
    // Expiring one that already ended keeps its end.
    let again = store
        .expire_silence(short.id, T0 + 200 * SECOND, &actor())
        .await
        .expect("expire an ended one");
    assert_eq!(again.ends_at_ms, T0 + 60 * SECOND);
    match store.expire_silence(999_999, T0, &actor()).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("expiring an unknown silence: {other:?}"),
    }
    let created = events(store, "silence.create").await;
    assert_eq!(created.len(), 3);
    assert_eq!(created[0].target, format!("silence/{}", first.id));
    assert_eq!(created[0].details["comment"], json!("deploy"));
    assert_eq!(events(store, "silence.expire").await.len(), 2);
    verify_audit(store.as_ref())
        .await
        .expect("the chain verifies");
}

/// Pruning deletes alerts resolved before the cut-off and silences ended before it, nothing
/// else.
pub async fn prune_removes_only_old_resolved_alerts_and_ended_silences(store: &Arc<dyn Store>) {
    let mut old = incoming("OldResolved", &[]);
    old.ends_at_ms = Some(T0 - 100 * SECOND);
    let mut recent = incoming("RecentResolved", &[]);
    recent.ends_at_ms = Some(T0 + 10 * SECOND);
    let firing = incoming("LongFiring", &[]);
    receive(
        store,
        vec![
            receipt(old.clone(), "external", T0 - 50 * SECOND),
            receipt(firing.clone(), "external", T0 - 200 * SECOND),
            receipt(recent.clone(), "external", T0 + 20 * SECOND),
        ],
    )
    .await;
    // Stale-resolved long ago.
    let stale = incoming("Stale", &[]);
    receive(
        store,
        vec![receipt(stale.clone(), "rule:s", T0 - 300 * SECOND)],
    )
    .await;
    store
        .resolve_stale_alerts("rule:s", T0 - 250 * SECOND, T0 - 250 * SECOND)
        .await
        .expect("resolve stale");
    let ended = store
        .create_silence(
            &silence(&["a=b"], T0 - 500 * SECOND, T0 - SECOND, "ended"),
            T0,
            &actor(),
        )
        .await
        .expect("create");
    let running = store
        .create_silence(
            &silence(&["a=c"], T0 - 500 * SECOND, T0 + 500 * SECOND, "on"),
            T0,
            &actor(),
        )
        .await
        .expect("create");
    let exactly = store
        .create_silence(
            &silence(&["a=d"], T0 - 500 * SECOND, T0, "edge"),
            T0,
            &actor(),
        )
        .await
        .expect("create");
    assert_eq!(store.prune_alerts(T0).await.expect("prune"), (2, 1));
    assert_eq!(store.alert(old.fingerprint()).await.expect("read"), None);
    assert_eq!(store.alert(stale.fingerprint()).await.expect("read"), None);
    assert_eq!(
        get(store, recent.fingerprint()).await.state,
        AlertState::Resolved
    );
    assert_eq!(
        get(store, firing.fingerprint()).await.state,
        AlertState::Firing
    );
    let left: Vec<i64> = store
        .silences(i64::MIN)
        .await
        .expect("silences")
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, [running.id, exactly.id]);
    assert!(!left.contains(&ended.id));
    assert_eq!(store.prune_alerts(T0).await.expect("prune again"), (0, 0));
}

/// Calls racing to receive the same alerts (new and stored ones) lose no update: each new
/// alert fires once, and every receipt is counted exactly once.
pub async fn concurrent_receipts_lose_no_update(store: &Arc<dyn Store>) {
    const CALLS: usize = 8;
    let shared: Vec<IncomingAlert> = (0..20)
        .map(|i| incoming("Shared", &[("n", &i.to_string())]))
        .collect();
    let mut handles = Vec::new();
    for call in 0..CALLS {
        let store = Arc::clone(store);
        let mut alerts = shared.clone();
        // Each call in its own order, with alerts of its own.
        alerts.rotate_left((call * 3) % shared.len());
        if call % 2 == 1 {
            alerts.reverse();
        }
        alerts.push(incoming("Own", &[("call", &call.to_string())]));
        let at = T0 + i64::try_from(call).expect("small");
        handles.push(tokio::spawn(async move {
            let receipts: Vec<AlertReceipt> = alerts
                .into_iter()
                .map(|a| receipt(a, "external", at))
                .collect();
            store
                .receive_alerts(&receipts, &actor())
                .await
                .expect("receive alerts")
        }));
    }
    let mut fired = 0;
    let mut unchanged = 0;
    for handle in handles {
        for change in handle.await.expect("join") {
            match change {
                AlertChange::Fired => fired += 1,
                AlertChange::Unchanged => unchanged += 1,
                other => panic!("nothing resolves or refires here: {other:?}"),
            }
        }
    }
    assert_eq!(fired, shared.len() + CALLS, "each new alert fires once");
    assert_eq!(unchanged, shared.len() * (CALLS - 1));
    let all = list(
        store,
        AlertQuery {
            limit: MAX_ALERT_PAGE,
            ..AlertQuery::default()
        },
    )
    .await;
    assert_eq!(all.len(), shared.len() + CALLS);
    assert!(
        all.iter()
            .all(|a| a.episode == 1 && a.state == AlertState::Firing)
    );
    assert_eq!(events(store, "alert.receive").await.len(), CALLS);
    verify_audit(store.as_ref())
        .await
        .expect("the chain verifies");
}

/// Alerts are read back by fingerprint (unknown ones left out), and every firing alert can be
/// read page by page in fingerprint order, resolved ones skipped.
pub async fn alerts_are_read_by_fingerprint_and_firing_ones_page_by_page(store: &Arc<dyn Store>) {
    let t0 = 1_700_000_000_000;
    let alerts: Vec<IncomingAlert> = (0..25)
        .map(|i| incoming("Paged", &[("n", &i.to_string())]))
        .collect();
    receive(
        store,
        alerts
            .iter()
            .map(|a| receipt(a.clone(), "external", t0))
            .collect(),
    )
    .await;
    // Every fifth resolves.
    let mut ended = Vec::new();
    for alert in alerts.iter().step_by(5) {
        let mut alert = alert.clone();
        alert.ends_at_ms = Some(t0);
        ended.push(receipt(alert, "external", t0 + 1));
    }
    receive(store, ended).await;

    let wanted = [
        alerts[0].fingerprint(),
        alerts[1].fingerprint(),
        Fingerprint(7),
    ];
    let mut found: Vec<Fingerprint> = store
        .alerts_by_fingerprint(&wanted)
        .await
        .expect("by fingerprint")
        .iter()
        .map(|a| a.fingerprint)
        .collect();
    found.sort();
    let mut expected = vec![alerts[0].fingerprint(), alerts[1].fingerprint()];
    expected.sort();
    assert_eq!(found, expected);
    assert!(
        store
            .alerts_by_fingerprint(&[])
            .await
            .expect("none")
            .is_empty()
    );

    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .firing_alerts_after(after, 7)
            .await
            .expect("firing page");
        assert!(page.len() <= 7);
        assert!(page.iter().all(|a| a.state == AlertState::Firing));
        after = page.last().map(|a| a.fingerprint);
        let done = page.len() < 7;
        paged.extend(page.into_iter().map(|a| a.fingerprint));
        if done {
            break;
        }
    }
    let mut firing: Vec<Fingerprint> = alerts
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 5 != 0)
        .map(|(_, a)| a.fingerprint())
        .collect();
    firing.sort();
    assert_eq!(
        paged, firing,
        "every firing alert once, in fingerprint order"
    );
}

/// Alerts received since a time are read page by page, by receipt time then fingerprint.
pub async fn alerts_received_since_a_time_page_by_receipt(store: &Arc<dyn Store>) {
    let t0 = 1_700_000_000_000;
    for (i, at) in [t0, t0 + 10, t0 + 10, t0 + 10, t0 + 20]
        .into_iter()
        .enumerate()
    {
        receive(
            store,
            vec![receipt(
                incoming("Recent", &[("n", &i.to_string())]),
                "external",
                at,
            )],
        )
        .await;
    }
    let mut read = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .alerts_received_after(t0 + 10, after, 2)
            .await
            .expect("received after");
        after = page.last().map(|a| (a.last_received_ms, a.fingerprint));
        let done = page.len() < 2;
        read.extend(
            page.into_iter()
                .map(|a| (a.last_received_ms, a.fingerprint)),
        );
        if done {
            break;
        }
    }
    assert_eq!(
        read.len(),
        4,
        "the four received at or after t0 + 10: {read:?}"
    );
    let mut sorted = read.clone();
    sorted.sort();
    assert_eq!(read, sorted, "by receipt time, then fingerprint");
    assert_eq!(read.last().map(|r| r.0), Some(t0 + 20));
}
