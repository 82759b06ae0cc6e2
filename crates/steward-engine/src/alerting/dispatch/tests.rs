//! The dispatcher against a real SQLite store, with time passed in: grouping and timing,
//! repeats and acknowledgements, resolution, silences, inhibition, escalation, remediation
//! and a restart.

use super::*;
use crate::executors::Executors;
use steward_core::alert::IncomingAlert;
use steward_core::alert::group::Reason;
use steward_core::alert::mute::Silence;
use steward_core::alert::route::Matcher;
use steward_core::audit::Actor;
use steward_core::registry::Labels;
use steward_store::notifications::{NotificationQuery, StoredNotification};
use steward_store::prelude::*;
use steward_store::{Ack, AlertReceipt};
use steward_store_sqlite::SqliteStore;

const T0: i64 = 1_800_000_000_000;

const CONFIG: &str = r#"
[[queues]]
name = "platform"
kinds = ["noop"]

[[alerting.receivers]]
name = "ops"
type = "webhook"
url = "http://127.0.0.1:9/"

[[alerting.receivers]]
name = "pager"
type = "webhook"
url = "http://127.0.0.1:9/"

[alerting.route]
receiver = "ops"
group_by = ["alertname"]
group_wait = "30s"
group_interval = "5m"
repeat_interval = "1h"

[[alerting.route.routes]]
matchers = ["team=db"]
receiver = "ops"
group_by = ["alertname"]
escalate = { after = "10m", receiver = "pager" }
remediate = { queue = "platform", kind = "noop", payload = { restart = "{{ labels.instance }}" } }

[[alerting.maintenance]]
name = "hourly"
matchers = ["env=maint"]
cron = "0 * * * *"
duration = "10m"

[[alerting.inhibit_rules]]
source_matchers = ["severity=critical"]
target_matchers = ["severity=warning"]
equal = ["instance"]
"#;

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    dispatcher: Dispatcher,
}

impl Harness {
    /// The tasks remediation enqueued (on the test config's `platform` queue).
    async fn remediation_tasks(&self) -> Vec<steward_core::task::Task> {
        self.store
            .list_tasks(&steward_store::TaskQuery {
                queue: Some("platform".into()),
                limit: 100,
                ..steward_store::TaskQuery::default()
            })
            .await
            .unwrap()
    }

    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let dispatcher =
            Dispatcher::load(Arc::clone(&store), config(), &Registry::default(), None, T0)
                .await
                .unwrap();
        Self {
            _dir: dir,
            store,
            dispatcher,
        }
    }

    async fn restart(&mut self) {
        self.dispatcher = Dispatcher::load(
            Arc::clone(&self.store),
            config(),
            &Registry::default(),
            None,
            T0,
        )
        .await
        .unwrap();
    }

    /// Posts alerts at `at` and tells the dispatcher, as the API does.
    async fn post(&mut self, at: i64, alerts: &[IncomingAlert]) {
        let receipts: Vec<AlertReceipt> = alerts
            .iter()
            .map(|alert| AlertReceipt {
                alert: alert.clone(),
                source: "external".into(),
                received_ms: at,
            })
            .collect();
        self.store
            .receive_alerts(&receipts, &Actor::system("test"))
            .await
            .unwrap();
        let fps: Vec<Fingerprint> = alerts.iter().map(IncomingAlert::fingerprint).collect();
        self.dispatcher.alerts_changed(&fps, at).await.unwrap();
    }

    /// Posts `alert` at T0, has its group notified after its group_wait, and resolves it
    /// a minute later (its group tells the resolution at its next tick, T0 + 5m30s).
    async fn notified_then_resolved(&mut self, alert: &IncomingAlert) {
        self.post(T0, std::slice::from_ref(alert)).await;
        assert_eq!(self.pass(T0 + 30_000).await.len(), 1);
        self.post(T0 + MIN, &[resolved(alert.clone(), T0 + MIN)])
            .await;
    }

    /// One pass at `at`, written; answers the notifications it queued.
    async fn pass(&mut self, at: i64) -> Vec<StoredNotification> {
        let before = self.all().await.len();
        let plan = self.dispatcher.plan(at);
        let heads = self.dispatcher.commit(plan, at + 1_000).await.unwrap();
        let mut all = self.all().await;
        all.truncate(all.len() - before);
        all.reverse();
        // What the sender is handed is what it would read back.
        for head in &heads {
            assert!(all.contains(head), "{head:?} not stored as handed");
        }
        all
    }

    async fn all(&self) -> Vec<StoredNotification> {
        self.store
            .notifications(&NotificationQuery {
                limit: 1_000,
                ..NotificationQuery::default()
            })
            .await
            .unwrap()
    }
}

async fn open(dir: &std::path::Path) -> Arc<dyn Store> {
    let store = SqliteStore::open(&dir.join("data")).await.unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}

fn config() -> Arc<Config> {
    match steward_config::parse_str("steward.toml", CONFIG, &|_| None) {
        Ok(loaded) => Arc::new(loaded.config),
        Err(e) => panic!("{e}"),
    }
}

fn alert(pairs: &[(&str, &str)]) -> IncomingAlert {
    let labels: Labels = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    IncomingAlert {
        labels,
        annotations: Labels::new(),
        severity: steward_core::alert::Severity::Warning,
        starts_at_ms: None,
        ends_at_ms: None,
        generator_url: None,
    }
}

fn resolved(mut alert: IncomingAlert, at: i64) -> IncomingAlert {
    alert.ends_at_ms = Some(at);
    alert
}

fn names(n: &StoredNotification) -> Vec<(String, &'static str)> {
    n.notice
        .alerts
        .iter()
        .map(|a| (a.labels["instance"].clone(), a.state.as_str()))
        .collect()
}

const MIN: i64 = 60_000;

#[tokio::test]
async fn groups_wait_then_notify_changes_on_their_interval_and_repeat_hourly() {
    let mut h = Harness::new().await;
    let a = alert(&[("alertname", "Down"), ("instance", "a")]);
    let b = alert(&[("alertname", "Down"), ("instance", "b")]);
    let other = alert(&[("alertname", "Slow"), ("instance", "a")]);
    h.post(T0, &[a.clone(), other.clone()]).await;
    h.post(T0 + 10_000, std::slice::from_ref(&b)).await;
    assert!(h.pass(T0 + 29_999).await.is_empty(), "group_wait holds");
    assert_eq!(h.dispatcher.next_due(), Some(T0 + 30_000));
    let first = h.pass(T0 + 30_000).await;
    assert_eq!(first.len(), 2, "one notification per group");
    let down = first
        .iter()
        .find(|n| n.notice.group_labels["alertname"] == "Down")
        .unwrap();
    assert_eq!(down.notice.reason, Reason::First);
    assert_eq!(
        names(down),
        [("a".into(), "firing"), ("b".into(), "firing")]
    );
    assert_eq!(down.notice.receiver, "ops");
    // A resolution waits for the group's next tick, then is told.
    h.post(T0 + MIN, &[resolved(b.clone(), T0 + MIN)]).await;
    assert!(h.pass(T0 + 5 * MIN).await.is_empty());
    let changed = h.pass(T0 + 30_000 + 5 * MIN).await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].notice.reason, Reason::Changed);
    assert_eq!(
        names(&changed[0]),
        [("a".into(), "firing"), ("b".into(), "resolved")]
    );
    // Unchanged: nothing until the repeat interval has passed since the last notification.
    let last = T0 + 30_000 + 5 * MIN;
    let mut at = last;
    let mut repeats = Vec::new();
    while at < last + 70 * MIN {
        at += 5 * MIN;
        repeats.extend(h.pass(at).await.into_iter().map(|n| (at, n)));
    }
    let down_repeats: Vec<_> = repeats
        .iter()
        .filter(|(_, n)| n.notice.group_labels["alertname"] == "Down")
        .collect();
    assert_eq!(down_repeats.len(), 1, "{repeats:?}");
    assert_eq!(down_repeats[0].0, last + 60 * MIN);
    assert_eq!(down_repeats[0].1.notice.reason, Reason::Repeat);
    assert_eq!(
        names(&down_repeats[0].1),
        [("a".into(), "firing")],
        "resolved ones told once"
    );
}

#[tokio::test]
async fn a_group_is_decided_again_only_once_its_pass_is_written() {
    let mut h = Harness::new().await;
    h.post(T0, &[alert(&[("alertname", "Down"), ("instance", "a")])])
        .await;
    let at = T0 + 30_000;
    let plan = h.dispatcher.plan(at);
    h.dispatcher.write(plan, at + 1_000);
    assert_eq!(h.dispatcher.writing(), 1);
    // A reload has every group looked at at once: this one waits for its pass.
    h.dispatcher.set_config(config(), at);
    let again = h.dispatcher.plan(at);
    assert!(again.notifications.is_empty() && again.updates.is_empty());
    h.dispatcher.write(again, at + 1_000);
    assert_eq!(h.dispatcher.writing(), 1, "nothing to write");
    let written = h.dispatcher.written().await.unwrap();
    assert_eq!((written.notifications, written.heads.len()), (1, 1));
    assert_eq!(written.announced_to, written.heads[0].id);
    assert_eq!(h.dispatcher.next_due(), Some(at), "looked at again");
    assert!(h.pass(at).await.is_empty(), "and told once");
}

#[tokio::test]
async fn a_new_group_due_while_a_pass_writes_it_is_decided_once_written() {
    let mut h = Harness::new().await;
    h.post(T0, &[alert(&[("alertname", "Down")])]).await;
    h.post(T0 + 1_000, &[alert(&[("alertname", "Slow")])]).await;
    // The first pass notifies `Down` and writes `Slow` as new...
    let at = T0 + 30_000;
    let plan = h.dispatcher.plan(at);
    assert_eq!(plan.notifications.len(), 1);
    h.dispatcher.write(plan, at + 1_000);
    // ...and `Slow` falls due while that is written.
    let meanwhile = h.dispatcher.plan(T0 + 31_000);
    assert!(meanwhile.notifications.is_empty());
    h.dispatcher.write(meanwhile, T0 + 32_000);
    h.dispatcher.written().await.unwrap();
    let slow = h.pass(T0 + 31_000).await;
    assert_eq!(slow.len(), 1, "decided once its pass is written");
    assert_eq!(slow[0].notice.group_labels["alertname"], "Slow");
}

#[tokio::test]
async fn passes_written_at_once_announce_only_what_precedes_them_all() {
    let mut h = Harness::new().await;
    h.post(T0, &[alert(&[("alertname", "Down")])]).await;
    h.post(T0 + 1_000, &[alert(&[("alertname", "Slow")])]).await;
    // Both groups written as new first (a group waits for any pass writing it).
    assert!(h.pass(T0 + 1_000).await.is_empty());
    for at in [T0 + 30_000, T0 + 31_000] {
        let plan = h.dispatcher.plan(at);
        assert_eq!(plan.notifications.len(), 1);
        h.dispatcher.write(plan, at + 1_000);
    }
    assert_eq!(h.dispatcher.writing(), 2);
    let first = h.dispatcher.written().await.unwrap();
    assert_eq!(
        first.announced_to, 0,
        "the other pass may draw lower ids than this one's"
    );
    let second = h.dispatcher.written().await.unwrap();
    let ids = [first.heads[0].id, second.heads[0].id];
    assert_eq!(second.announced_to, *ids.iter().max().unwrap());
    // A new leader starts from what the outbox holds.
    h.restart().await;
    assert_eq!(h.dispatcher.announced_to(), second.announced_to);
}

#[tokio::test]
async fn an_alert_joining_a_group_its_pass_finishes_starts_a_new_group() {
    let mut h = Harness::new().await;
    let a = alert(&[("alertname", "Down"), ("instance", "a")]);
    h.notified_then_resolved(&a).await;
    assert_eq!(h.pass(T0 + 30_000 + 5 * MIN).await.len(), 1, "resolved");
    let at = T0 + 30_000 + 10 * MIN;
    let plan = h.dispatcher.plan(at);
    assert_eq!(plan.finished.len(), 1);
    h.dispatcher.write(plan, at + 1_000);
    // It fires again while the group is being dropped.
    h.post(at, std::slice::from_ref(&a)).await;
    h.dispatcher.written().await.unwrap();
    assert!(
        h.pass(at + 29_999).await.is_empty(),
        "a group_wait of its own"
    );
    let fired = h.pass(at + 30_000).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].notice.reason, Reason::First);
    assert_eq!(names(&fired[0]), [("a".into(), "firing")]);
}

#[tokio::test]
async fn an_alert_firing_again_while_its_resolution_is_written_stays_in_its_group() {
    let mut h = Harness::new().await;
    let a = alert(&[("alertname", "Down"), ("instance", "a")]);
    h.notified_then_resolved(&a).await;
    let at = T0 + 30_000 + 5 * MIN;
    let plan = h.dispatcher.plan(at);
    assert_eq!(plan.notifications.len(), 1, "the resolution");
    h.dispatcher.write(plan, at + 1_000);
    h.post(at, std::slice::from_ref(&a)).await;
    h.dispatcher.written().await.unwrap();
    let again = h.pass(at + 5 * MIN).await;
    assert_eq!(again.len(), 1);
    assert_eq!(names(&again[0]), [("a".into(), "firing")]);
}

#[tokio::test]
async fn a_deposed_dispatcher_writes_nothing_and_moves_nothing() {
    let mut h = Harness::new().await;
    let lease = h
        .store
        .acquire_lease("alerting", "a", 60_000)
        .await
        .unwrap()
        .unwrap();
    h.dispatcher = Dispatcher::load(
        Arc::clone(&h.store),
        config(),
        &Registry::default(),
        Some(lease),
        T0,
    )
    .await
    .unwrap();
    h.post(T0, &[alert(&[("alertname", "Down")])]).await;
    h.store.release_lease("alerting", "a").await.unwrap();
    h.store
        .acquire_lease("alerting", "b", 60_000)
        .await
        .unwrap()
        .unwrap();
    let at = T0 + 30_000;
    let plan = h.dispatcher.plan(at);
    assert_eq!(plan.notifications.len(), 1);
    h.dispatcher.write(plan, at + 1_000);
    let refused = h.dispatcher.written().await;
    assert!(
        matches!(refused, Err(StoreError::LeaseLost(_))),
        "{refused:?}"
    );
    assert!(h.all().await.is_empty());
    assert_eq!(h.dispatcher.next_due(), Some(at + 1_000), "decided again");
}

#[tokio::test]
async fn an_acknowledgement_stops_repeats_until_the_group_changes() {
    let mut h = Harness::new().await;
    let a = alert(&[("alertname", "Down"), ("instance", "a")]);
    h.post(T0, std::slice::from_ref(&a)).await;
    assert_eq!(h.pass(T0 + 30_000).await.len(), 1);
    let ack = Ack {
        by: "ops".into(),
        at_ms: T0 + MIN,
        note: "on it".into(),
    };
    h.store
        .ack_alert(a.fingerprint(), &ack, &Actor::system("test"))
        .await
        .unwrap();
    h.dispatcher
        .alerts_changed(&[a.fingerprint()], T0 + MIN)
        .await
        .unwrap();
    let mut at = T0 + 30_000;
    for _ in 0..30 {
        at += 5 * MIN;
        assert!(
            h.pass(at).await.is_empty(),
            "acknowledged: no repeat at {at}"
        );
    }
    // A new alert in the group ends the acknowledgement.
    let b = alert(&[("alertname", "Down"), ("instance", "b")]);
    h.post(at, std::slice::from_ref(&b)).await;
    let changed = h.pass(at + 5 * MIN).await;
    assert_eq!(changed.len(), 1);
    assert_eq!(
        names(&changed[0]),
        [("a".into(), "firing"), ("b".into(), "firing")]
    );
}

#[tokio::test]
async fn silences_and_inhibition_hold_alerts_back() {
    let mut h = Harness::new().await;
    let silence = Silence {
        id: 0,
        matchers: vec![Matcher::parse("alertname=Noisy").unwrap()],
        starts_at_ms: T0,
        ends_at_ms: T0 + 10 * MIN,
        created_by: "ops".into(),
        comment: "known".into(),
    };
    h.store
        .create_silence(&silence, T0, &Actor::system("test"))
        .await
        .unwrap();
    h.dispatcher.silences_changed(T0).await.unwrap();
    let noisy = alert(&[("alertname", "Noisy"), ("instance", "a")]);
    let mut critical = alert(&[
        ("alertname", "Down"),
        ("instance", "x"),
        ("severity", "critical"),
    ]);
    critical.severity = steward_core::alert::Severity::Critical;
    let warning = alert(&[
        ("alertname", "Slow"),
        ("instance", "x"),
        ("severity", "warning"),
    ]);
    let elsewhere = alert(&[
        ("alertname", "Slow"),
        ("instance", "y"),
        ("severity", "warning"),
    ]);
    h.post(T0, &[noisy, critical, warning, elsewhere]).await;
    let sent = h.pass(T0 + 30_000).await;
    let mut told: Vec<_> = sent.iter().flat_map(names).collect();
    told.sort();
    assert_eq!(
        told,
        [("x".into(), "firing"), ("y".into(), "firing")],
        "the silenced alert and the inhibited warning on x are held: {sent:?}"
    );
    // Once the silence ends, the held alert is told at its group's next look.
    let after = h.pass(T0 + 30_000 + 10 * MIN).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].notice.group_labels["alertname"], "Noisy");
}

#[tokio::test]
async fn a_maintenance_window_mutes_until_it_ends() {
    let mut h = Harness::new().await;
    // T0 is on the hour: the window runs from T0 for ten minutes.
    let a = alert(&[("alertname", "Down"), ("instance", "a"), ("env", "maint")]);
    h.post(T0, std::slice::from_ref(&a)).await;
    assert!(h.pass(T0 + 30_000).await.is_empty());
    assert!(h.pass(T0 + 30_000 + 5 * MIN).await.is_empty());
    let told = h.pass(T0 + 30_000 + 10 * MIN).await;
    assert_eq!(told.len(), 1, "told once the window ended");
    assert_eq!(names(&told[0]), [("a".into(), "firing")]);
}

#[tokio::test]
async fn an_unacknowledged_alert_escalates_and_remediation_runs_once_per_episode() {
    let mut h = Harness::new().await;
    let db = alert(&[("alertname", "DbDown"), ("instance", "db1"), ("team", "db")]);
    h.post(T0, std::slice::from_ref(&db)).await;
    let first = h.pass(T0 + 30_000).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].notice.receiver, "ops");
    assert!(h.pass(T0 + 30_000 + 5 * MIN).await.is_empty());
    assert_eq!(
        h.dispatcher.next_due(),
        Some(T0 + 10 * MIN),
        "the escalation is due next"
    );
    let escalated = h.pass(T0 + 10 * MIN).await;
    assert_eq!(escalated.len(), 1, "{escalated:?}");
    assert_eq!(escalated[0].notice.receiver, "pager");
    assert!(escalated[0].notice.group_key.starts_with('!'));
    // Remediation: one task for the episode, however often the group is notified.
    h.pass(T0 + 90 * MIN).await;
    let tasks = h.remediation_tasks().await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].payload, serde_json::json!({ "restart": "db1" }));
    assert_eq!(
        tasks[0].origin.alert.as_deref(),
        Some(db.fingerprint().to_string().as_str())
    );
    // Resolved, then firing again: a second episode, a second task.
    h.post(T0 + 100 * MIN, &[resolved(db.clone(), T0 + 100 * MIN)])
        .await;
    h.pass(T0 + 105 * MIN).await;
    h.post(T0 + 110 * MIN, std::slice::from_ref(&db)).await;
    h.pass(T0 + 120 * MIN).await;
    let tasks = h.remediation_tasks().await;
    assert_eq!(tasks.len(), 2);
}

#[tokio::test]
async fn a_remediation_payload_its_executor_refuses_is_never_enqueued() {
    let mut h = Harness::new().await;
    // The route's kind checked as a shell executor would check it: `restart` must be a
    // database host's name.
    let shell = crate::executors::ShellExecutor::new(steward_core::queue::ShellSpec {
        name: "noop".into(),
        command: "true".into(),
        args: vec!["{restart}".into()],
        params: [("restart".to_owned(), "db[0-9]+".to_owned())].into(),
        env: std::collections::BTreeMap::new(),
        workdir: None,
    })
    .unwrap();
    let mut executors = Executors::builtins();
    executors.insert("noop", Arc::new(shell));
    h.dispatcher.check_payloads_with(Arc::new(executors));
    let good = alert(&[("alertname", "DbDown"), ("instance", "db2"), ("team", "db")]);
    let bad = alert(&[
        ("alertname", "DbDown"),
        ("instance", "db1; rm -rf /"),
        ("team", "db"),
    ]);
    h.post(T0, &[good.clone(), bad]).await;
    h.pass(T0 + 30_000).await;
    let tasks = h.remediation_tasks().await;
    let payloads: Vec<_> = tasks.iter().map(|t| t.payload.clone()).collect();
    assert_eq!(payloads, [serde_json::json!({ "restart": "db2" })]);
}

#[tokio::test]
async fn escalation_receivers_and_silenced_alerts_are_still_told_resolutions() {
    let mut h = Harness::new().await;
    let db = alert(&[("alertname", "DbDown"), ("instance", "db1"), ("team", "db")]);
    h.post(T0, std::slice::from_ref(&db)).await;
    h.pass(T0 + 30_000).await;
    let escalated = h.pass(T0 + 10 * MIN).await;
    assert_eq!(escalated[0].notice.receiver, "pager");
    h.post(T0 + 11 * MIN, &[resolved(db.clone(), T0 + 11 * MIN)])
        .await;
    // A full re-read re-routes everything: the pager is still owed the resolution.
    h.dispatcher
        .refresh(&Registry::default(), T0 + 11 * MIN)
        .await
        .unwrap();
    let mut told = Vec::new();
    for minutes in [12, 13, 16, 21] {
        told.extend(h.pass(T0 + minutes * MIN).await);
    }
    let pager: Vec<_> = told
        .iter()
        .filter(|n| n.notice.receiver == "pager")
        .collect();
    assert_eq!(pager.len(), 1, "{told:?}");
    assert_eq!(names(pager[0]), [("db1".into(), "resolved")]);

    // Told firing, then silenced, then resolved under the silence: the resolution is told.
    let a = alert(&[("alertname", "Quiet"), ("instance", "q")]);
    let t = T0 + 30 * MIN;
    h.post(t, std::slice::from_ref(&a)).await;
    assert_eq!(h.pass(t + 30_000).await.len(), 1);
    let silence = Silence {
        id: 0,
        matchers: vec![Matcher::parse("alertname=Quiet").unwrap()],
        starts_at_ms: t + MIN,
        ends_at_ms: t + 60 * MIN,
        created_by: "ops".into(),
        comment: "noisy".into(),
    };
    h.store
        .create_silence(&silence, t + MIN, &Actor::system("test"))
        .await
        .unwrap();
    h.dispatcher.silences_changed(t + MIN).await.unwrap();
    assert!(
        h.pass(t + 30_000 + 5 * MIN).await.is_empty(),
        "muted: nothing to say"
    );
    h.post(t + 6 * MIN, &[resolved(a.clone(), t + 6 * MIN)])
        .await;
    let told = h.pass(t + 30_000 + 10 * MIN).await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(names(&told[0]), [("q".into(), "resolved")]);
}

#[tokio::test]
async fn a_restart_resumes_group_timing_and_owes_resolutions() {
    let mut h = Harness::new().await;
    let a = alert(&[("alertname", "Down"), ("instance", "a")]);
    h.post(T0, std::slice::from_ref(&a)).await;
    h.pass(T0 + 1_000).await; // writes the new group
    h.restart().await;
    assert!(
        h.pass(T0 + 29_000).await.is_empty(),
        "group_wait counts from the first alert"
    );
    assert_eq!(h.pass(T0 + 30_000).await.len(), 1);
    h.post(T0 + MIN, &[resolved(a.clone(), T0 + MIN)]).await;
    h.restart().await;
    let told = h.pass(T0 + 30_000 + 5 * MIN).await;
    assert_eq!(
        told.len(),
        1,
        "the resolution is still owed after a restart"
    );
    assert_eq!(names(&told[0]), [("a".into(), "resolved")]);
    // Then the group is done.
    assert!(h.pass(T0 + 30_000 + 10 * MIN).await.is_empty());
    assert!(h.store.alert_groups().await.unwrap().is_empty());
}
