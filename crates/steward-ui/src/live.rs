//! `GET /live`: the API's event stream for a signed-in browser, which cannot send a key
//! header from `EventSource`. The stream is the API's own, filtered by the session's key.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::{PageError, Ui};

/// Request headers handed on to the API's stream.
const PASSED_ON: &[&str] = &["last-event-id", "accept"];

/// `GET /live`: follows `/api/v1/events` (with this request's query) as the session's key.
pub(crate) async fn stream(State(ui): State<Ui>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let signed = match ui.signed(&parts).await {
        Ok(signed) => signed,
        // `EventSource` cannot follow a redirect to a form; the page's script reloads instead.
        Err(PageError::SignIn { .. }) => {
            return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
        }
        Err(other) => return (other.status(), other.to_string()).into_response(),
    };
    let path = match parts.uri.query() {
        Some(query) => format!("/api/v1/events?{query}"),
        None => "/api/v1/events".to_owned(),
    };
    let mut builder = Request::builder().method(Method::GET).uri(path);
    for name in PASSED_ON {
        if let Some(value) = parts.headers.get(*name) {
            builder = builder.header(*name, value);
        }
    }
    let forwarded = match builder.body(Body::empty()) {
        Ok(request) => ui.forward(&signed, request).await,
        Err(e) => Err(PageError::Internal(format!(
            "cannot build the stream request: {e}"
        ))),
    };
    match forwarded {
        Ok(response) => response,
        Err(error) => (error.status(), error.to_string()).into_response(),
    }
}
