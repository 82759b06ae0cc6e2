//! Stories of the event log.

use std::sync::Arc;

use crate::Store;
use crate::events::NewLoggedEvent;

fn event(n: usize, workspace: Option<&str>) -> NewLoggedEvent {
    NewLoggedEvent {
        at_ms: 1_000 + n as i64,
        kind: if n.is_multiple_of(2) {
            "task_changed"
        } else {
            "check_changed"
        }
        .into(),
        workspace: workspace.map(Into::into),
        body: format!(r#"{{"n":{n},"text":"é ✓"}}"#),
    }
}

/// Appended events come back in order with increasing ids, page by page, exactly as written;
/// trimming keeps the newest and never hands an id out again.
pub async fn the_event_log_appends_in_order_pages_and_trims(store: &Arc<dyn Store>) {
    assert_eq!(store.event_log_head().await.unwrap(), 0);
    assert!(store.events_after(0, 10).await.unwrap().is_empty());
    store.append_events(&[]).await.unwrap();
    let written: Vec<NewLoggedEvent> = (0..25)
        .map(|n| event(n, n.is_multiple_of(3).then_some("ops")))
        .collect();
    store.append_events(&written[..5]).await.unwrap();
    store.append_events(&written[5..]).await.unwrap();
    let first = store.events_after(0, 10).await.unwrap();
    let rest = store.events_after(first[9].id, 100).await.unwrap();
    let all: Vec<_> = first.into_iter().chain(rest).collect();
    assert_eq!(all.len(), 25);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "ids increase");
    for (read, wrote) in all.iter().zip(&written) {
        assert_eq!(
            (&read.kind, &read.workspace, &read.body, read.at_ms),
            (&wrote.kind, &wrote.workspace, &wrote.body, wrote.at_ms)
        );
    }
    let head = store.event_log_head().await.unwrap();
    assert_eq!(head, all[24].id);

    assert_eq!(store.trim_event_log(10).await.unwrap(), 15);
    let kept = store.events_after(0, 100).await.unwrap();
    assert_eq!(kept.len(), 10);
    assert_eq!(kept[0].id, all[15].id);
    assert_eq!(store.trim_event_log(10).await.unwrap(), 0);
    store.trim_event_log(0).await.unwrap();
    assert!(store.events_after(0, 100).await.unwrap().is_empty());
    store.append_events(&[event(99, None)]).await.unwrap();
    let after = store.events_after(0, 10).await.unwrap();
    assert!(after[0].id > head, "an id is never handed out twice");
}

/// While several writers append at once, a reader following the log by id never finds an
/// event below one it has already passed: ids follow commit order.
pub async fn a_reader_following_the_log_misses_nothing_of_concurrent_appends(
    store: &Arc<dyn Store>,
) {
    const WRITERS: usize = 4;
    const BATCHES: usize = 40;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                for b in 0..BATCHES {
                    let batch: Vec<_> = (0..3).map(|i| event(w * 1000 + b * 3 + i, None)).collect();
                    store.append_events(&batch).await.unwrap();
                }
            })
        })
        .collect();
    let mut seen = 0;
    let mut after = 0;
    let total = WRITERS * BATCHES * 3;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while seen < total {
        assert!(
            std::time::Instant::now() < deadline,
            "read {seen} of {total}"
        );
        let page = store.events_after(after, 7).await.unwrap();
        if let Some(last) = page.last() {
            after = last.id;
        } else {
            tokio::task::yield_now().await;
        }
        seen += page.len();
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(seen, total);
    assert!(store.events_after(after, 10).await.unwrap().is_empty());
    let all = store.events_after(0, 10_000).await.unwrap();
    assert_eq!(
        all.len(),
        total,
        "a reader that follows by id read every event once"
    );
}

/// An append wakes whoever waits for the log.
pub async fn appends_wake_event_log_readers(store: &Arc<dyn Store>) {
    let mut wakeups = store.event_log_wakeups();
    store.append_events(&[event(1, None)]).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), wakeups.recv())
        .await
        .expect("woken within 5 s")
        .unwrap();
}

/// A change recorded in the audit trail wakes whoever follows the log too: the stream carries
/// the trail, and its readers would otherwise learn of it only when they next look.
pub async fn audited_changes_wake_event_log_readers(store: &Arc<dyn Store>) {
    let mut wakeups = store.event_log_wakeups();
    // A listener that starts says so with a wake-up (it may have missed some): wait for quiet.
    while tokio::time::timeout(std::time::Duration::from_millis(500), wakeups.recv())
        .await
        .is_ok()
    {}
    store
        .create_key(
            &super::new_key("woken", steward_core::auth::Role::Viewer, None),
            &super::actor(),
        )
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), wakeups.recv())
        .await
        .expect("an audited change wakes event-log readers within 5 s")
        .unwrap();
}
