//! Stories of dashboard sessions.

use std::sync::Arc;

use steward_core::audit::Actor;

use crate::sessions::NewSession;
use crate::{AuditQuery, Store};

fn session(id: &str, created_at_ms: i64, idle_ms: i64, max_ms: i64) -> NewSession {
    NewSession {
        id_digest: id.into(),
        key_digest: format!("digest-of-{id}"),
        key_name: "ops-viewer".into(),
        workspace: Some("ops".into()),
        csrf: format!("csrf-{id}"),
        created_at_ms,
        idle_expires_at_ms: created_at_ms + idle_ms,
        expires_at_ms: created_at_ms + max_ms,
    }
}

/// A session is found while live and not after either expiry; touching moves its idle expiry
/// forward but never past its absolute one; ending it is audited once; starting one deletes
/// those already expired.
pub async fn sessions_start_expire_and_end_audited(store: &Arc<dyn Store>) {
    let actor = Actor::key("ops-viewer", Some("192.0.2.7".into()));
    let a = session("a", 1_000, 1_000, 5_000);
    store.start_session(&a, &actor).await.unwrap();
    let found = store.session("a", 1_500).await.unwrap().expect("live");
    assert_eq!(
        (
            found.key_digest.as_str(),
            found.key_name.as_str(),
            found.csrf.as_str(),
            found.created_at_ms,
            found.idle_expires_at_ms,
            found.expires_at_ms,
        ),
        ("digest-of-a", "ops-viewer", "csrf-a", 1_000, 2_000, 6_000)
    );
    assert!(
        store.session("b", 1_500).await.unwrap().is_none(),
        "unknown"
    );
    assert!(store.session("a", 2_000).await.unwrap().is_none(), "idle");

    store.touch_session("a", 4_000).await.unwrap();
    store.touch_session("a", 3_000).await.unwrap();
    let touched = store.session("a", 3_500).await.unwrap().expect("touched");
    assert_eq!(touched.idle_expires_at_ms, 4_000, "never moved back");
    store.touch_session("a", 60_000).await.unwrap();
    assert_eq!(
        store
            .session("a", 5_000)
            .await
            .unwrap()
            .expect("live")
            .idle_expires_at_ms,
        6_000,
        "never past the absolute expiry"
    );
    assert!(
        store.session("a", 6_000).await.unwrap().is_none(),
        "absolute"
    );

    // Starting a session removes those expired by then: `a` is gone even when asked about
    // a time it was live.
    let b = session("b", 7_000, 1_000, 5_000);
    store.start_session(&b, &actor).await.unwrap();
    assert!(store.session("a", 1_500).await.unwrap().is_none(), "purged");
    assert!(store.session("b", 7_500).await.unwrap().is_some());

    assert!(store.end_session("b", &actor).await.unwrap());
    assert!(!store.end_session("b", &actor).await.unwrap());
    assert!(store.session("b", 7_500).await.unwrap().is_none(), "ended");

    let trail = store
        .audit_events(&AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let actions: Vec<(&str, &str, Option<&str>)> = trail
        .iter()
        .filter(|e| e.action.starts_with("session."))
        .map(|e| (e.action.as_str(), e.target.as_str(), e.workspace.as_deref()))
        .collect();
    assert_eq!(
        actions,
        [
            ("session.start", "ops-viewer", Some("ops")),
            ("session.start", "ops-viewer", Some("ops")),
            ("session.end", "ops-viewer", None),
        ]
    );
    let text = serde_json::to_string(&trail).unwrap();
    assert!(
        !text.contains("csrf-") && !text.contains("digest-of-"),
        "no secrets in the trail: {text}"
    );
}
