//! Steward's HTTP surface: `/healthz`, `/readyz`, `/metrics`, the REST API under `/api/v1` (with
//! its OpenAPI document, generated from the route table), and Alertmanager's API v2 under
//! `/api/v2`.
//! This is the only crate that knows HTTP shapes; handlers translate between JSON and the
//! engine, nothing more.

mod access;
mod alertmanager;
mod alerts;
mod audit;
pub mod auth;
mod badges;
mod caller;
mod describe;
mod error;
mod events;
mod extract;
mod health;
mod keys;
pub mod limits;
pub mod listener;
mod metrics_layer;
mod node_checks;
mod nodes;
pub mod openapi;
mod pipelines;
mod registry;
pub mod routes;
mod schedules;
mod serve;
mod system;
mod tasks;
mod work;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use steward_engine::{Authenticator, ControlPlane};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use auth::{Access, Delegated, Limiters, RateLimits, delegate};
pub use error::ApiError;
pub use limits::MinRate;
pub use metrics_layer::describe_metrics;

/// Renders the process's metrics in the Prometheus text format.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// The largest request body accepted by default.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The largest body of a batch enqueue, by default (10,000 tasks of a few KiB).
pub const MAX_BATCH_BODY_BYTES: usize = 64 * 1024 * 1024;
/// The longest a request may take by default before it is answered with 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a request's headers may take to arrive by default (also how long an idle
/// keep-alive connection is kept).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The pace a request body must keep by default: 8 KiB per second on average after 5 s.
pub const MIN_BODY_RATE: MinRate = MinRate {
    grace: Duration::from_secs(5),
    bytes_per_second: 8 * 1024,
};
/// Open connections at most, by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Open connections from one address unless configured: a quarter of the default cap.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 256;

/// How the API is exposed.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Serve `/metrics` without a key.
    pub metrics_public: bool,
    /// Serve the status badges under `/badge/` without a key.
    pub public_badges: bool,
    /// Request rates per key and failed-authentication limits per address.
    pub rate_limits: RateLimits,
    /// Browser origins allowed by CORS; empty keeps CORS off.
    pub cors_origins: Vec<String>,
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections from one address at most.
    pub max_connections_per_address: usize,
    /// Open event streams at most.
    pub max_event_streams: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Largest body of the batch routes (`POST /api/v1/tasks`).
    pub max_batch_body_bytes: usize,
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// Longest a request's headers may take to arrive.
    pub header_timeout: Duration,
    /// The pace a request body must keep.
    pub min_body_rate: MinRate,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            metrics_public: false,
            public_badges: false,
            rate_limits: RateLimits::default(),
            cors_origins: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            max_event_streams: DEFAULT_MAX_CONNECTIONS * 3 / 4,
            max_body_bytes: MAX_BODY_BYTES,
            max_batch_body_bytes: MAX_BATCH_BODY_BYTES,
            request_timeout: REQUEST_TIMEOUT,
            header_timeout: HEADER_TIMEOUT,
            min_body_rate: MIN_BODY_RATE,
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The control plane.
    pub control: Arc<ControlPlane>,
    /// Checks presented API keys.
    pub auth: Arc<Authenticator>,
    /// Rate limiters.
    pub limiters: Arc<Limiters>,
    /// Exposure options.
    pub options: ApiOptions,
    /// The `/metrics` renderer.
    pub metrics: MetricsRenderer,
    /// The prober, for "run this check now" (absent where the instance does not probe).
    pub prober: Option<steward_engine::prober::ProberHandle>,
    /// The live event stream's hub (absent: `/api/v1/events` answers 503).
    pub events: Option<Arc<steward_engine::stream::EventHub>>,
    /// The fleet: nodes, registrations and heartbeats.
    pub fleet: Arc<steward_engine::fleet::Fleet>,
    /// When the state was made, as the process started (ms since the Unix epoch).
    pub started_ms: i64,
}

impl AppState {
    /// State for `control`, authenticating with `auth`.
    pub fn new(
        control: Arc<ControlPlane>,
        auth: Arc<Authenticator>,
        options: ApiOptions,
        metrics: MetricsRenderer,
    ) -> Self {
        let fleet = Arc::new(steward_engine::fleet::Fleet::new(
            Arc::clone(control.store()),
            control.bus().clone(),
        ));
        Self {
            control,
            auth,
            fleet,
            limiters: Arc::new(Limiters::new(options.rate_limits)),
            options,
            metrics,
            prober: None,
            events: None,
            started_ms: steward_store::now_ms(),
        }
    }

    /// The same state, serving the event stream from `hub`.
    pub fn with_events(mut self, hub: Arc<steward_engine::stream::EventHub>) -> Self {
        self.events = Some(hub);
        self
    }

    /// The same state, able to run checks on request through `prober`.
    pub fn with_prober(mut self, prober: steward_engine::prober::ProberHandle) -> Self {
        self.prober = Some(prober);
        self
    }
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let options = state.options.clone();
    // Written beside start-up rather than in its way (it takes ~15 ms on a small host) or in
    // the first caller's; a caller arriving before it is done waits for the same one. Once per
    // process: a router built again finds it written.
    if openapi::written().is_none() {
        let writer = std::thread::Builder::new()
            .name("openapi".into())
            .spawn(|| {
                if let Err(e) = openapi::json() {
                    tracing::error!(error = %e, "the OpenAPI document could not be written");
                }
            });
        if let Err(error) = writer {
            tracing::warn!(%error, "cannot start writing the OpenAPI document; it is written for its first caller");
        }
    }
    let router = routes::routes(&options)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::from_fn(metrics_layer::record))
        .layer(TraceLayer::new_for_http())
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            options.request_timeout,
        ))
        // Outermost but for CORS: whatever answered an error, it leaves as the documented JSON.
        .layer(axum::middleware::map_response(error::json_errors));
    match cors(&options.cors_origins) {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

/// CORS for the configured origins; none configured means no CORS headers at all.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
            ]),
    )
}

/// Serves the API on `listener` until `shutdown` completes, then lets in-flight requests
/// finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    serve_app(listener, state, app, shutdown).await
}

/// Serves `app` (the API's [`router`] for `state`, with whatever the process serves beside
/// it, such as the dashboard) under the API's connection limits and timeouts until
/// `shutdown` completes, then lets in-flight requests finish.
pub async fn serve_app(
    listener: tokio::net::TcpListener,
    state: AppState,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let options = state.options.clone();
    let limiters = Arc::clone(&state.limiters);
    let hub = state.events.clone();
    // Event streams never end by themselves: they are ended, so the requests in flight finish.
    let shutdown = async move {
        shutdown.await;
        if let Some(hub) = hub {
            hub.close();
        }
    };
    tokio::spawn(async move {
        let mut every_minute = tokio::time::interval(Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            limiters.prune();
        }
    });
    let admission =
        listener::Admission::new(options.max_connections, options.max_connections_per_address);
    let session = serve::Session {
        header_timeout: options.header_timeout,
        // Idle longer than a request may take (plus a margin) means nobody is coming back.
        idle: options.request_timeout + Duration::from_secs(30),
        body_rate: options.min_body_rate,
    };
    serve::run(listener, admission, app, session, shutdown).await;
    Ok(())
}
