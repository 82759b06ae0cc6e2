#![allow(clippy::expect_used, clippy::unwrap_used)]

use steward_store::Database;
use steward_store::events::NewLoggedEvent;
use steward_store_sqlite::SqliteStore;

use super::*;

async fn store(dir: &std::path::Path) -> Arc<dyn Store> {
    let store = SqliteStore::open(dir).await.unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}

fn row(n: i64) -> NewLoggedEvent {
    NewLoggedEvent {
        at_ms: steward_store::now_ms(),
        kind: "task_changed".into(),
        workspace: Some("alpha".into()),
        body: format!(r#"{{"type":"task_changed","n":{n}}}"#),
    }
}

async fn append(store: &Arc<dyn Store>, n: i64) {
    store.append_events(&[row(n)]).await.unwrap();
}

fn options(window: usize) -> HubOptions {
    HubOptions {
        window_events: window,
        max_subscribers: 2,
        ..HubOptions::default()
    }
}

fn follow(opened: Opened) -> Subscription {
    match opened {
        Opened::Follow(subscription) => subscription,
        Opened::Reset(_, reason) => panic!("reset: {reason}"),
    }
}

#[tokio::test]
async fn a_client_with_a_cursor_gets_what_it_missed_then_live_events_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    append(&store, 1).await;
    let hub = EventHub::open(Arc::clone(&store), options(100))
        .await
        .unwrap();
    let mut first = follow(hub.subscribe(None).await.unwrap());
    assert!(first.replay.is_empty(), "a new client starts from now");
    append(&store, 2).await;
    hub.catch_up().await.unwrap();
    let seen = first.live.recv().await.unwrap();
    assert!(seen.data.contains(r#""n":2"#));
    drop(first);

    append(&store, 3).await;
    append(&store, 4).await;
    hub.catch_up().await.unwrap();
    let mut again = follow(hub.subscribe(Some(seen.cursor)).await.unwrap());
    let replayed: Vec<&str> = again.replay.iter().map(|f| f.data.as_str()).collect();
    assert_eq!(replayed.len(), 2, "{replayed:?}");
    assert!(replayed[0].contains(r#""n":3"#) && replayed[1].contains(r#""n":4"#));
    append(&store, 5).await;
    hub.catch_up().await.unwrap();
    hub.catch_up().await.unwrap();
    let live = again.live.recv().await.unwrap();
    assert!(live.data.contains(r#""n":5"#));
    assert!(again.live.try_recv().is_err(), "each event once");
}

#[tokio::test]
async fn cursors_outside_the_window_or_ahead_of_the_log_get_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let hub = EventHub::open(Arc::clone(&store), options(3))
        .await
        .unwrap();
    for n in 0..6 {
        append(&store, n).await;
    }
    hub.catch_up().await.unwrap();
    let head = hub.lock().head;
    assert!(matches!(
        hub.subscribe(Some(Cursor { log: head.log - 3, audit: head.audit })).await.unwrap(),
        Opened::Follow(s) if s.replay.len() == 3
    ));
    assert!(matches!(
        hub.subscribe(Some(Cursor { log: head.log - 4, audit: head.audit })).await.unwrap(),
        Opened::Reset(_, reason) if reason.contains("no longer kept")
    ));
    assert!(matches!(
        hub.subscribe(Some(Cursor { log: head.log + 1, audit: head.audit })).await.unwrap(),
        Opened::Reset(_, reason) if reason.contains("no position")
    ));
}

#[tokio::test]
async fn a_cursor_another_instance_gave_is_caught_up_with_before_it_is_judged() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let hub = EventHub::open(Arc::clone(&store), options(100))
        .await
        .unwrap();
    append(&store, 1).await;
    append(&store, 2).await;
    // Not yet read by this hub; a client saw the first through another instance.
    let first_id = store.events_after(0, 1).await.unwrap()[0].id;
    let audit = hub.lock().head.audit;
    let opened = hub
        .subscribe(Some(Cursor {
            log: first_id,
            audit,
        }))
        .await
        .unwrap();
    let subscription = follow(opened);
    assert_eq!(subscription.replay.len(), 1);
    assert!(subscription.replay[0].data.contains(r#""n":2"#));
}

#[tokio::test]
async fn subscribers_are_capped_and_their_places_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let hub = EventHub::open(Arc::clone(&store), options(10))
        .await
        .unwrap();
    let a = hub.subscribe(None).await.unwrap();
    let _b = hub.subscribe(None).await.unwrap();
    assert!(hub.subscribe(None).await.is_err(), "the third of two");
    drop(a);
    assert_eq!(hub.subscribers(), 1);
    assert!(hub.subscribe(None).await.is_ok());
}

#[tokio::test]
async fn audit_records_are_streamed_with_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let hub = EventHub::open(Arc::clone(&store), options(10))
        .await
        .unwrap();
    let mut subscription = follow(hub.subscribe(None).await.unwrap());
    let key = steward_store::NewKey {
        name: "ops".into(),
        role: steward_core::Role::Viewer,
        workspace: Some("alpha".into()),
        node: None,
        digest: steward_core::auth::key_digest("secret"),
        hint: "stw_…".into(),
        expires_at_ms: None,
    };
    store
        .create_key(&key, &steward_core::audit::Actor::system("test"))
        .await
        .unwrap();
    hub.catch_up().await.unwrap();
    let frame = subscription.live.recv().await.unwrap();
    assert!(frame.audit);
    assert_eq!(frame.kind, "audit");
    assert_eq!(frame.workspace.as_deref(), Some("alpha"));
    let data: serde_json::Value = serde_json::from_str(&frame.data).unwrap();
    assert_eq!(data["action"], "key.create");
    assert_eq!(data["seq"], frame.cursor.audit);
    assert!(data["at"].as_str().unwrap().ends_with('Z'));
}
