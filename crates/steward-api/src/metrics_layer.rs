//! HTTP metrics, labelled by the matched route template (never the raw path) so that label sets
//! stay bounded whatever clients send.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Describes the metric families the HTTP surface records to the installed recorder: requests,
/// connections and refused keys. (`steward_alerts_received_total`, counted here for posted
/// alerts, is described with the alert manager's families by
/// `steward_engine::describe_metrics`.) Call it once, right after installing the recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "steward_http_requests_total",
        metrics::Unit::Count,
        "HTTP requests answered, by method, route template and status."
    );
    metrics::describe_histogram!(
        "steward_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time taken to answer an HTTP request, by method and route template."
    );
    metrics::describe_gauge!(
        "steward_http_connections",
        metrics::Unit::Count,
        "Open HTTP connections."
    );
    metrics::describe_counter!(
        "steward_http_connections_refused_total",
        metrics::Unit::Count,
        "HTTP connections refused, by reason: per_address (its address held its share), fair_share (every place was taken and its address held the most)."
    );
    metrics::describe_counter!(
        "steward_http_connections_evicted_total",
        metrics::Unit::Count,
        "Connections that never showed a valid key, closed to make room for a newcomer from another address."
    );
    metrics::describe_counter!(
        "steward_auth_failures_total",
        metrics::Unit::Count,
        "Requests refused while authenticating, by reason: missing, malformed, unknown, revoked_or_expired (the key), busy (the admin key's verification queue was full)."
    );
}

/// Counts a request and times its answer.
pub(crate) async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // Only standard methods become label values: clients may send any token.
    let method = match request.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m,
        _ => "other",
    }
    .to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "steward_http_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status
    )
    .increment(1);
    metrics::histogram!(
        "steward_http_request_duration_seconds",
        "method" => method,
        "route" => route
    )
    .record(started.elapsed().as_secs_f64());
    response
}
