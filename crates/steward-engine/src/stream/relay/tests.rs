#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use steward_store::Database;

use serde_json::Value;
use steward_core::task::TaskStatus;
use steward_store_sqlite::SqliteStore;

use super::*;
use crate::{EventBus, SystemEnv};

const CONFIG: &str =
    "[[workspaces]]\nkey = \"alpha\"\n\n[[services]]\nname = \"api\"\nworkspace = \"alpha\"\n";

async fn control(dir: &Path) -> Arc<ControlPlane> {
    let path = dir.join("steward.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let store = SqliteStore::open(&dir.join("data")).await.unwrap();
    store.migrate().await.unwrap();
    let env: SystemEnv = Arc::new(|_| None);
    let loaded = steward_config::load_file(&path, &|_| None).unwrap();
    let (control, _) =
        ControlPlane::start(Arc::new(store), EventBus::new(), &path, loaded.config, env)
            .await
            .unwrap();
    Arc::new(control)
}

fn task(id: i64, status: TaskStatus, workspace: Option<&str>) -> Event {
    Event::TaskChanged {
        id,
        queue: "chores".into(),
        kind: "noop".into(),
        status,
        attempt: 1,
        outcome: None,
        workspace: workspace.map(Into::into),
    }
}

fn envelope(seq: u64, event: Event) -> Envelope {
    Envelope {
        seq,
        at_ms: 1_000 + seq,
        event,
    }
}

fn body(row: &NewLoggedEvent) -> Value {
    serde_json::from_str(&row.body).unwrap()
}

#[tokio::test]
async fn few_task_events_go_one_by_one_and_many_are_summed_per_queue_and_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let control = control(dir.path()).await;
    let store = Arc::clone(control.store());
    let options = RelayOptions {
        coalesce_above: 3,
        summary_every: Duration::ZERO,
        ..RelayOptions::new("here")
    };
    let mut summaries = Summaries::default();
    let few = vec![
        envelope(1, task(1, TaskStatus::Running, Some("alpha"))),
        envelope(2, task(1, TaskStatus::Succeeded, Some("alpha"))),
    ];
    let rows = rows_of(&control, &store, &options, &mut summaries, few).await;
    assert!(
        summaries
            .take_due(Duration::ZERO, Duration::ZERO, "here")
            .is_empty()
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].kind, "task_changed");
    assert_eq!(rows[1].workspace.as_deref(), Some("alpha"));
    let detail = body(&rows[1]);
    assert_eq!(detail["status"], "succeeded");
    assert_eq!(detail["instance"], "here");
    assert_eq!(detail["at"], "1970-01-01T00:00:01.002Z");
    assert!(
        detail.get("workspace").is_some_and(|w| w == "alpha"),
        "{detail}"
    );

    let mut many: Vec<Envelope> = (0..10)
        .map(|i| envelope(i, task(i as i64, TaskStatus::Succeeded, Some("alpha"))))
        .collect();
    many.push(envelope(20, task(99, TaskStatus::Dead, Some("alpha"))));
    many.push(envelope(21, task(100, TaskStatus::Running, None)));
    many.push(envelope(22, Event::ConfigRejected { problems: 2 }));
    let mut rows = rows_of(&control, &store, &options, &mut summaries, many).await;
    rows.extend(summaries.take_due(options.summary_every, options.window, "here"));
    let kinds: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|r| (r.kind.as_str(), r.workspace.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("task_changed", None),
            ("config_rejected", None),
            ("tasks_changed", Some("alpha"))
        ],
        "alpha's eleven are one event; the lone task of no workspace stays itself"
    );
    let summed = body(&rows[2]);
    assert_eq!(summed["coalesced"], 11);
    assert_eq!(summed["statuses"]["succeeded"], 10);
    assert_eq!(summed["statuses"]["dead"], 1);
    assert_eq!(summed["queue"], "chores");
    assert_eq!(summed["first_ms"], 1_000);
    assert_eq!(summed["at_ms"], 1_020);
}

#[tokio::test]
async fn events_get_the_workspace_of_what_they_name() {
    let dir = tempfile::tempdir().unwrap();
    let control = control(dir.path()).await;
    let store = Arc::clone(control.store());
    let check = Event::CheckChanged {
        check: "api".into(),
        service: "api".into(),
        from: steward_core::health::state::CheckState::Up,
        to: steward_core::health::state::CheckState::Down,
        reason: "status 500".into(),
    };
    let rows = rows_of(
        &control,
        &store,
        &RelayOptions::new("here"),
        &mut Summaries::default(),
        vec![envelope(1, check)],
    )
    .await;
    assert_eq!(rows[0].kind, "check_changed");
    assert_eq!(rows[0].workspace.as_deref(), Some("alpha"));
    assert_eq!(body(&rows[0])["to"], "down");
}

/// Waits until the log holds `count` events, or 5 s.
async fn logged(store: &Arc<dyn Store>, count: usize) -> Vec<steward_store::events::LoggedEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let rows = store.events_after(0, 100).await.unwrap();
        if rows.len() >= count || tokio::time::Instant::now() >= deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn the_relay_writes_what_the_bus_carries_and_counts_what_it_lost() {
    let dir = tempfile::tempdir().unwrap();
    let control = control(dir.path()).await;
    let store = Arc::clone(control.store());
    let stop = CancellationToken::new();
    let relay = spawn_relay(
        Arc::clone(&control),
        RelayOptions::new("here"),
        stop.clone(),
    );
    control
        .bus()
        .publish(task(7, TaskStatus::Succeeded, Some("alpha")));
    let rows = logged(&store, 1).await;
    assert_eq!(rows.len(), 1, "relayed within 5 s");
    assert_eq!(rows[0].kind, "task_changed");
    stop.cancel();
    relay.await.unwrap();
    let lost = lost_row("here", 5);
    assert_eq!(lost.kind, LOST);
    assert_eq!(body(&lost)["count"], 5);
}

#[tokio::test]
async fn an_event_after_a_quiet_window_is_written_at_once_and_later_ones_wait_for_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let control = control(dir.path()).await;
    let store = Arc::clone(control.store());
    let stop = CancellationToken::new();
    let window = Duration::from_secs(2);
    let relay = spawn_relay(
        Arc::clone(&control),
        RelayOptions {
            window,
            ..RelayOptions::new("here")
        },
        stop.clone(),
    );
    let started = tokio::time::Instant::now();
    control
        .bus()
        .publish(task(1, TaskStatus::Succeeded, Some("alpha")));
    assert_eq!(logged(&store, 1).await.len(), 1);
    assert!(
        started.elapsed() < window / 2,
        "the first event after a quiet window did not wait for it ({:?})",
        started.elapsed()
    );
    // The log was just written: these are gathered into one append, a window after it.
    control
        .bus()
        .publish(task(2, TaskStatus::Succeeded, Some("alpha")));
    control
        .bus()
        .publish(task(3, TaskStatus::Succeeded, Some("alpha")));
    tokio::time::sleep(window / 2).await;
    assert_eq!(
        store.events_after(0, 100).await.unwrap().len(),
        1,
        "events close behind an append wait for the window"
    );
    let rows = logged(&store, 3).await;
    assert_eq!(rows.len(), 3);
    assert!(started.elapsed() >= window);
    stop.cancel();
    relay.await.unwrap();
}

#[tokio::test]
async fn a_busy_queue_is_summed_once_a_second_while_it_stays_busy() {
    let dir = tempfile::tempdir().unwrap();
    let control = control(dir.path()).await;
    let store = Arc::clone(control.store());
    let options = RelayOptions {
        coalesce_above: 2,
        summary_every: Duration::from_millis(400),
        window: Duration::from_millis(300),
        ..RelayOptions::new("here")
    };
    let mut summaries = Summaries::default();
    let burst = |from: u64| -> Vec<Envelope> {
        (from..from + 5)
            .map(|i| envelope(i, task(i as i64, TaskStatus::Succeeded, Some("alpha"))))
            .collect()
    };
    let rows = rows_of(&control, &store, &options, &mut summaries, burst(0)).await;
    assert!(rows.is_empty(), "summed, not written one by one");
    assert!(
        summaries
            .next_due(options.summary_every, options.window)
            .is_some()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Below the threshold now, but the queue is being summed: it joins the summary.
    let rows = rows_of(
        &control,
        &store,
        &options,
        &mut summaries,
        burst(5)[..1].to_vec(),
    )
    .await;
    assert!(rows.is_empty());
    assert!(
        summaries
            .take_due(options.summary_every, options.window, "here")
            .is_empty(),
        "not due yet"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let due = summaries.take_due(options.summary_every, options.window, "here");
    assert_eq!(due.len(), 1);
    assert_eq!(body(&due[0])["coalesced"], 6);
    assert_eq!(
        summaries.next_due(options.summary_every, options.window),
        None
    );

    // A queue that goes quiet is summed a window after its last event, not a period after.
    let quiet = RelayOptions {
        summary_every: Duration::from_secs(60),
        window: Duration::from_millis(100),
        ..options
    };
    rows_of(&control, &store, &quiet, &mut summaries, burst(10)).await;
    assert!(
        summaries
            .take_due(quiet.summary_every, quiet.window, "here")
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        summaries
            .take_due(quiet.summary_every, quiet.window, "here")
            .len(),
        1
    );
}

#[tokio::test]
async fn alert_changes_of_a_window_are_one_event_per_workspace() {
    use steward_core::alert::{IncomingAlert, Severity};
    use steward_store::alerts::AlertReceipt;

    let dir = tempfile::tempdir().unwrap();
    let control = control(dir.path()).await;
    let store = Arc::clone(control.store());
    let alert = |name: &str, workspace: Option<&str>| {
        let mut labels = steward_core::registry::Labels::new();
        labels.insert("alertname".into(), name.into());
        if let Some(workspace) = workspace {
            labels.insert("workspace".into(), workspace.into());
        }
        AlertReceipt {
            alert: IncomingAlert {
                labels,
                annotations: Default::default(),
                severity: Severity::Critical,
                starts_at_ms: None,
                ends_at_ms: None,
                generator_url: None,
            },
            source: "external".into(),
            received_ms: steward_store::now_ms(),
        }
    };
    let receipts = vec![
        alert("A", Some("alpha")),
        alert("B", Some("alpha")),
        alert("C", None),
    ];
    store
        .receive_alerts(&receipts, &steward_core::audit::Actor::system("test"))
        .await
        .unwrap();
    let fingerprint = |i: usize| receipts[i].alert.fingerprint();
    let batch = vec![
        envelope(
            1,
            Event::AlertsChanged {
                fingerprints: vec![fingerprint(0), fingerprint(2)],
            },
        ),
        envelope(
            2,
            Event::AlertsChanged {
                fingerprints: vec![fingerprint(1), fingerprint(0)],
            },
        ),
    ];
    let rows = rows_of(
        &control,
        &store,
        &RelayOptions::new("here"),
        &mut Summaries::default(),
        batch,
    )
    .await;
    let workspaces: Vec<Option<&str>> = rows.iter().map(|r| r.workspace.as_deref()).collect();
    assert_eq!(
        workspaces,
        [None, Some("alpha")],
        "one event per workspace, none for unscoped"
    );
    let alpha = body(&rows[1]);
    let mut names: Vec<&str> = alpha["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alertname"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["A", "B"], "each alert once: {alpha}");
    assert_eq!(alpha["alerts"][0]["state"], "firing");
    assert_eq!(alpha["at_ms"], 1_002);
}
