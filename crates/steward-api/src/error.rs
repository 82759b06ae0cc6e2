//! Errors as JSON: `{"error": {"code": "...", "message": "..."}}` (the wire type
//! [`ErrorBody`]), with stable codes, and the status each store error answers. Store error text
//! is logged, never sent.

use std::sync::atomic::{AtomicI64, Ordering};

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use steward_engine::EngineError;
use steward_store::{StoreError, now_ms};
use steward_wire::error::{ErrorBody, ErrorDetail};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<String>,
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
    /// hold is the caller's to fix (400 `invalid_input`); damaged or undecodable data is 500
    /// `store_corrupt` (trying again does not help); anything else is 503 `store_unavailable`.
    pub fn store(e: &StoreError) -> Self {
        if let StoreError::Unstorable(why) = e {
            return Self::new(StatusCode::BAD_REQUEST, "invalid_input", why.clone());
        }
        tracing::error!(error = %e, kind = e.kind(), "store error while serving a request");
        match e {
            StoreError::Damaged { recovery, .. } => {
                log_recovery(recovery);
                Self::damaged_store(StatusCode::INTERNAL_SERVER_ERROR)
            }
            StoreError::Corrupt(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store_corrupt",
                "stored data cannot be decoded; see the server log",
            ),
            _ => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the database is unavailable; try again shortly",
            ),
        }
    }

    /// The database file is damaged (`store_corrupt`), answered with `status`.
    pub fn damaged_store(status: StatusCode) -> Self {
        Self::new(
            status,
            "store_corrupt",
            "the database file is damaged; see the server log for how to recover it",
        )
    }
}

/// A store refusal as an answer: conflicts and invalid states 409, unknown things 404, damaged
/// data `store_corrupt`, anything else `store_unavailable`. Handlers map with this rather than
/// [`ApiError::store`], which answers every refusal as a failure of the store.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::State(message) => ApiError::new(StatusCode::CONFLICT, "invalid_state", message),
        StoreError::Conflict(what) => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("{what} already exists"),
        ),
        StoreError::NotFound(what) => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        ),
        other => ApiError::store(&other),
    }
}

/// When the recovery steps were last logged (ms since the Unix epoch).
static RECOVERY_LOGGED_MS: AtomicI64 = AtomicI64::new(i64::MIN);

/// Logs how to recover a damaged file, at most once a minute: every read of a damaged row
/// fails the same way, and the steps need saying once, not per request.
fn log_recovery(recovery: &str) {
    let now = now_ms();
    let last = RECOVERY_LOGGED_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) < 60_000 {
        return;
    }
    if RECOVERY_LOGGED_MS
        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
    {
        tracing::error!(
            recovery = %recovery,
            "the database file is damaged; reads of the damaged rows fail until it is recovered"
        );
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
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                details: self.details,
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
pub(crate) async fn json_errors(response: Response) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_and_undecodable_data_are_store_corrupt_and_the_rest_unavailable() {
        let damaged = StoreError::Damaged {
            source: "database disk image is malformed".into(),
            recovery: "recover it",
        };
        let cases = [
            (damaged, 500, "store_corrupt"),
            (StoreError::Corrupt("labels".into()), 500, "store_corrupt"),
            (
                StoreError::Database("timeout".into()),
                503,
                "store_unavailable",
            ),
        ];
        for (error, status, code) in cases {
            let answer = ApiError::store(&error);
            assert_eq!(
                (answer.status.as_u16(), answer.code),
                (status, code),
                "{error}"
            );
        }
    }
}
