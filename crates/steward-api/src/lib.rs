//! Steward's HTTP surface: `/healthz`, `/readyz`, `/metrics` and the REST API under `/api/v1`.
//! This is the only crate that knows HTTP shapes; handlers translate between JSON and the
//! engine, nothing more.

mod error;
mod metrics_layer;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use steward_engine::ControlPlane;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

/// Renders the process's metrics in the Prometheus text format.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The longest a request may take before it is answered with 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The control plane.
    pub control: Arc<ControlPlane>,
    /// The `/metrics` renderer.
    pub metrics: MetricsRenderer,
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    routes::routes()
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::from_fn(metrics_layer::record))
        .layer(TraceLayer::new_for_http())
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
}

/// Serves the application on `listener` until `shutdown` completes, then lets in-flight
/// requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
