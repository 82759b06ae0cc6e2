//! The API in process for tests: a real store, a control plane started on a config, one key
//! per role and scope, and limits high enough never to get in the way.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use steward_store::Database;

use steward_api::{ApiOptions, AppState, MetricsRenderer, RateLimits};
use steward_core::Role;
use steward_core::audit::Actor;
use steward_engine::keys::create_key;
use steward_engine::{Authenticator, ControlPlane, EventBus, KeyRequest, SystemEnv};
use steward_store::Store;
use steward_store_sqlite::SqliteStore;

/// The router, the store under it, and a key for each role, unscoped and scoped to `trading`.
pub struct Fixture {
    /// The whole HTTP application.
    pub app: axum::Router,
    /// The store it serves.
    pub store: Arc<dyn Store>,
    /// `((role, scoped), secret)` for every role, unscoped and scoped.
    pub keys: Vec<((Role, bool), String)>,
    /// The event stream's hub; it follows the store only once its `run` is spawned.
    pub events: Arc<steward_engine::stream::EventHub>,
    _dir: tempfile::TempDir,
}

/// The API over a fresh SQLite store, on `config` (which must declare `trading`).
pub async fn on_sqlite(config: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("data")).await.unwrap();
    store.migrate().await.unwrap();
    on_store(Arc::new(store), config, dir).await
}

/// The API over `store`, on `config`, with its config file written in `dir`.
pub async fn on_store(store: Arc<dyn Store>, config: &str, dir: tempfile::TempDir) -> Fixture {
    let config_path = dir.path().join("steward.toml");
    std::fs::write(&config_path, config).unwrap();
    let loaded = steward_config::load_file(&config_path, &|_| None).unwrap();
    let env: SystemEnv = Arc::new(|_| None);
    let (control, _) = ControlPlane::start(
        Arc::clone(&store),
        EventBus::new(),
        &config_path,
        loaded.config,
        env,
    )
    .await
    .unwrap();
    let mut keys = Vec::new();
    store
        .add_node(&agent_node(), &Actor::system("test"))
        .await
        .unwrap();
    for role in Role::ALL {
        for scoped in [false, true] {
            if role == Role::Agent {
                keys.push(((role, scoped), agent_key(store.as_ref(), scoped).await));
                continue;
            }
            let request = KeyRequest {
                name: format!("{role}-{}", if scoped { "trading" } else { "all" }),
                role,
                workspace: scoped.then(|| "trading".to_owned()),
                expires_at_ms: None,
            };
            let (_, secret) = create_key(store.as_ref(), &request, &Actor::system("test"))
                .await
                .unwrap();
            keys.push(((role, scoped), secret));
        }
    }
    let big = std::num::NonZeroU32::new(1_000_000).unwrap();
    let options = ApiOptions {
        metrics_public: false,
        rate_limits: RateLimits {
            viewer: big,
            operator: big,
            admin: big,
            agent: big,
            auth_failures_per_minute: big,
        },
        ..ApiOptions::default()
    };
    let metrics: MetricsRenderer = Arc::new(String::new);
    let hub = steward_engine::stream::EventHub::open(Arc::clone(&store), Default::default())
        .await
        .unwrap();
    let state = AppState::new(
        Arc::new(control),
        Arc::new(Authenticator::new(Arc::clone(&store), None)),
        options,
        metrics,
    )
    .with_events(Arc::clone(&hub));
    Fixture {
        app: steward_api::router(state),
        store,
        keys,
        events: hub,
        _dir: dir,
    }
}

/// The node the fixture's agent keys act as.
pub const AGENT_NODE: &str = "1";

fn agent_node() -> steward_core::node::NodeSpec {
    steward_core::node::NodeSpec {
        id: AGENT_NODE.into(),
        ..Default::default()
    }
}

/// An `agent` key of [`AGENT_NODE`] (as registration makes them), its secret answered.
async fn agent_key(store: &dyn Store, scoped: bool) -> String {
    let secret = steward_core::auth::format_key(&[u8::from(scoped) + 7; 32]);
    let key = steward_store::NewKey {
        name: format!("agent-{}", if scoped { "trading" } else { "all" }),
        role: Role::Agent,
        workspace: scoped.then(|| "trading".to_owned()),
        node: Some(AGENT_NODE.into()),
        digest: steward_core::auth::key_digest(&secret),
        hint: steward_core::auth::key_hint(&secret),
        expires_at_ms: None,
    };
    store
        .create_key(&key, &Actor::system("test"))
        .await
        .unwrap();
    secret
}
