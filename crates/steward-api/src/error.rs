//! Errors as JSON: `{"error": {"code": "...", "message": "..."}}`, with stable codes. Store
//! error text is logged, never sent.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use steward_engine::EngineError;
use steward_store::StoreError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    details: &'a [String],
}

impl ApiError {
    /// An error with a status, a stable code and a message safe to show.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message shown to the caller.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Adds one line of detail per problem.
    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }

    /// The body is larger than the route takes.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than this route takes",
        )
    }

    /// The store failed: logged in full, answered without its text. A value the store cannot
    /// hold is the caller's to fix (400 `invalid_input`), not an outage.
    pub fn store(e: &StoreError) -> Self {
        if let StoreError::Unstorable(why) = e {
            return Self::new(StatusCode::BAD_REQUEST, "invalid_input", why.clone());
        }
        tracing::error!(error = %e, kind = e.kind(), "store error while serving a request");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the database is unavailable; try again shortly",
        )
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(e) => Self::store(&e),
            EngineError::Executor(e) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_config",
                e.to_string(),
            ),
            EngineError::Config(e) => {
                let details = match e.diagnostics() {
                    Some(d) => d.0.iter().map(ToString::to_string).collect(),
                    None => vec![e.to_string()],
                };
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_config",
                    "the config file was rejected; the running config stays in force",
                )
                .with_details(details)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                details: &self.details,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

/// The stable code and message of an error answer that did not come from a handler (a layer's
/// timeout or limit, a protocol refusal), by status.
fn fallback(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::BAD_REQUEST => ("invalid_request", "the request could not be understood"),
        StatusCode::UNAUTHORIZED => ("unauthenticated", "a valid API key is required"),
        StatusCode::FORBIDDEN => ("forbidden", "this key may not do that"),
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not accept that method",
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "request_timeout",
            "the request took longer than the server allows",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "the request body is larger than this route takes",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "the request body's type is not accepted",
        ),
        StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "too many requests"),
        StatusCode::SERVICE_UNAVAILABLE => (
            "unavailable",
            "the server cannot answer now; try again shortly",
        ),
        s if s.is_server_error() => ("internal", "the server failed to answer"),
        _ => ("invalid_request", "the request was refused"),
    }
}

/// Whether an answer is JSON already.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Turns every error answer that is not JSON (a timeout's empty 408, a limit's text) into the
/// documented JSON with a stable code, keeping its other headers (`Retry-After`, `Allow`).
pub(crate) async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let (code, message) = fallback(status);
    let mut json = ApiError::new(status, code, message).into_response();
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().insert(name.clone(), value.clone());
        }
    }
    json
}
