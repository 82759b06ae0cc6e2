//! Steward's dashboard: server-rendered pages served beside the API on the same port.
//!
//! A browser signs in with an API key once; the dashboard keeps a session in the database and
//! from then on every page reads and acts through the API itself, called inside the process on
//! the session's behalf ([`steward_api::Delegated`]). So a page shows and allows exactly what
//! the key may read and do through the API: there is no second authorisation path. Templates
//! and assets are compiled into the binary; nothing is fetched from elsewhere.

mod assets;
mod backend;
mod error;
mod live;
mod pages;
mod render;
mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use steward_store::Store;

pub use error::PageError;

/// How the dashboard is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiOptions {
    /// The prefix a reverse proxy serves Steward under and strips before passing requests on
    /// (`/steward`), or empty. Links, redirects and cookies carry it.
    pub base_path: String,
    /// Mark session cookies `Secure` on every answer, not only over HTTPS.
    pub secure_cookies: bool,
    /// How long a session lasts unused.
    pub session_idle: Duration,
    /// How long a session lasts however much it is used.
    pub session_max: Duration,
}

/// A session lasts an hour unused by default.
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(60 * 60);
/// A session lasts twelve hours at most by default.
pub const DEFAULT_SESSION_MAX: Duration = Duration::from_secs(12 * 60 * 60);

impl Default for UiOptions {
    fn default() -> Self {
        Self {
            base_path: String::new(),
            secure_cookies: false,
            session_idle: DEFAULT_SESSION_IDLE,
            session_max: DEFAULT_SESSION_MAX,
        }
    }
}

/// What every dashboard handler can reach.
#[derive(Clone)]
pub(crate) struct Ui {
    /// The API, called in-process on a session's behalf.
    api: Router,
    /// Where sessions are kept.
    store: Arc<dyn Store>,
    /// How the dashboard is served.
    options: Arc<UiOptions>,
    /// The compiled templates.
    pages: Arc<render::Templates>,
}

/// Serves the API for `state` on `listener`, with the dashboard in front of it unless `ui` is
/// `None`, until `shutdown` completes (see [`steward_api::serve_app`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: steward_api::AppState,
    store: Arc<dyn Store>,
    ui: Option<UiOptions>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let api = steward_api::router(state.clone());
    let app = match ui {
        Some(options) => self::app(api, store, options),
        None => api,
    };
    steward_api::serve_app(listener, state, app, shutdown).await
}

/// The largest form body the dashboard accepts.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The whole application: the dashboard's pages, and `api` (the API's router) for every other
/// path. `/` answers browsers (which ask for HTML) with the overview and everyone else with
/// the API's index.
pub fn app(api: Router, store: Arc<dyn Store>, options: UiOptions) -> Router {
    let ui = Ui {
        api: api.clone(),
        store,
        options: Arc::new(options),
        pages: Arc::new(render::Templates::new()),
    };
    Router::new()
        .route("/", get(pages::overview::page))
        .route(
            "/sign-in",
            get(pages::sign_in::form).post(pages::sign_in::submit),
        )
        .route("/sign-out", post(pages::sign_in::sign_out))
        .route("/live", get(live::stream))
        .route("/assets/{file}", get(assets::serve))
        .route("/services", get(pages::services::list))
        .route("/services/{name}", get(pages::services::detail))
        .route("/checks/{name}/run", post(pages::services::run_check))
        .route("/graph", get(pages::graph::page))
        .route("/queues", get(pages::tasks::queues))
        .route("/tasks", get(pages::tasks::list))
        .route("/tasks/{id}", get(pages::tasks::detail))
        .route("/tasks/{id}/cancel", post(pages::tasks::cancel))
        .route("/tasks/{id}/retry", post(pages::tasks::retry))
        .route("/schedules", get(pages::schedules::list))
        .route("/schedules/{name}", get(pages::schedules::detail))
        .route("/schedules/{name}/pause", post(pages::schedules::pause))
        .route("/schedules/{name}/resume", post(pages::schedules::resume))
        .route("/schedules/{name}/trigger", post(pages::schedules::trigger))
        .route("/pipelines", get(pages::pipelines::list))
        .route("/pipelines/{name}", get(pages::pipelines::detail))
        .route("/pipelines/runs/{id}", get(pages::pipelines::run))
        .route(
            "/pipelines/runs/{id}/cancel",
            post(pages::pipelines::cancel),
        )
        .route("/pipelines/runs/{id}/retry", post(pages::pipelines::retry))
        .route("/alerts", get(pages::alerts::list))
        .route("/alerts/{fingerprint}", get(pages::alerts::detail))
        .route("/alerts/{fingerprint}/ack", post(pages::alerts::ack))
        .route(
            "/alerts/{fingerprint}/silence",
            post(pages::alerts::silence),
        )
        .route("/silences/{id}/expire", post(pages::alerts::expire_silence))
        .route("/nodes", get(pages::nodes::list))
        .route("/nodes/{id}", get(pages::nodes::detail))
        .route("/audit", get(pages::audit::list))
        .route("/keys", get(pages::keys::list).post(pages::keys::create))
        .route("/keys/{name}/revoke", post(pages::keys::revoke))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(ui)
        .fallback_service(api)
}
