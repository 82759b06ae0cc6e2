//! Extractors whose refusals are the API's JSON errors, and the parsing of what they take (a
//! JSON body, a page size). axum's own answer a bad path, query or body with plain text;
//! handlers take these instead, so every refusal carries a stable code.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::ApiError;
use crate::limits::BodyTooSlow;

/// Path parameters, refused with `400 invalid_path` when they do not parse.
pub(crate) struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if holds_encoded_nul(parts.uri.path()) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                "the path holds a NUL character (%00), which no name can",
            ));
        }
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_refused(&rejection)),
        }
    }
}

/// A query string, refused with `400 invalid_query` when it does not parse.
pub(crate) struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(holds_encoded_nul) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "the query string holds a NUL character (%00), which cannot be stored or matched",
            ));
        }
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_refused(&rejection)),
        }
    }
}

/// The whole request body, up to the route's limit: `413 payload_too_large` past it, `408
/// request_timeout` when the client sends it too slowly, `400 invalid_body` when it breaks off
/// or holds a NUL character in a JSON string (no backend stores one the same way: PostgreSQL
/// refuses it, so it is refused at the door on every backend, naming where it is).
pub(crate) struct ApiBody(pub Bytes);

impl<S> FromRequest<S> for ApiBody
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(request, state).await {
            Ok(bytes) => {
                refuse_nul(&bytes)?;
                Ok(Self(bytes))
            }
            Err(rejection) => Err(body_refused(&rejection)),
        }
    }
}

/// Parses a body [`ApiBody`] took as JSON, strictly, answering `400 invalid_body` with serde's
/// located message.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("invalid JSON body: {e}"),
        )
    })
}

fn path_refused(rejection: &PathRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_path",
        format!("invalid path: {}", strip_prefix(&rejection.body_text())),
    )
}

fn query_refused(rejection: &QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        format!(
            "invalid query string: {}",
            strip_prefix(&rejection.body_text())
        ),
    )
}

fn body_refused(rejection: &BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::payload_too_large();
    }
    if caused_by_slowness(rejection) {
        return ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body arrived too slowly",
        );
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_body",
        "the request body could not be read",
    )
}

/// Whether the body broke off because it came in under the minimum rate.
fn caused_by_slowness(rejection: &BytesRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(error) = source {
        if error.is::<BodyTooSlow>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// Whether URI text holds a percent-encoded NUL (the only way a NUL can be in a URI).
fn holds_encoded_nul(text: &str) -> bool {
    text.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

/// Refuses a JSON body with a NUL character in a string or a key, naming where. A body without
/// the escape `\u0000` is passed at the cost of one scan; one with it is walked to tell a NUL
/// from an escaped backslash followed by `u0000`. A body that is not JSON is left to its
/// parser.
fn refuse_nul(body: &[u8]) -> Result<(), ApiError> {
    if memchr::memmem::find(body, br"\u0000").is_none() {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(());
    };
    match nul_in(&value) {
        Some(place) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("`{place}`: holds a NUL character (\\u0000), which cannot be stored"),
        )),
        None => Ok(()),
    }
}

/// Where in `value` the first NUL is, as `tasks[3].payload.msg` (`(body)` for the root).
fn nul_in(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0').then(|| "(body)".to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_in(item).map(|inner| join(&format!("[{i}]"), &inner))),
        Value::Object(fields) => fields.iter().find_map(|(name, field)| {
            if name.contains('\0') {
                return Some(name.replace('\0', "\\u0000"));
            }
            nul_in(field).map(|inner| join(name, &inner))
        }),
        _ => None,
    }
}

/// `outer` then the place inside it.
fn join(outer: &str, inner: &str) -> String {
    match inner {
        "(body)" => outer.to_owned(),
        _ if inner.starts_with('[') => format!("{outer}{inner}"),
        _ => format!("{outer}.{inner}"),
    }
}

/// axum's texts start with what failed ("Failed to deserialize query string: …"); the code
/// says that already.
fn strip_prefix(text: &str) -> &str {
    text.split_once(": ").map_or(text, |(_, rest)| rest)
}

/// A page size from `?limit=`: `default` when absent, refused unless between 1 and `max` (the
/// same rule on every route, so `limit=0` never means "all" on one and "one" on another).
pub(crate) fn page_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit {
        None => Ok(default.min(max)),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("`limit`: {n} is not between 1 and {max}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_in_a_json_body_is_refused_where_it_is() {
        let refused = |body: &str| {
            refuse_nul(body.as_bytes())
                .err()
                .map(|e| e.message().to_owned())
        };
        assert_eq!(refused(r#"{"msg":"fine"}"#), None);
        assert_eq!(
            refused(r#"{"msg":"a\\u0000b"}"#),
            None,
            "an escaped backslash"
        );
        let message = refused(r#"{"tasks":[{},{"payload":{"msg":"a\u0000"}}]}"#).unwrap();
        assert!(message.starts_with("`tasks[1].payload.msg`"), "{message}");
        let message = refused(r#"[{"labels":{"a\u0000":"x"}}]"#).unwrap();
        assert!(message.starts_with("`[0].labels.a\\u0000`"), "{message}");
        assert!(refused(r#""\u0000""#).unwrap().starts_with("`(body)`"));
        assert_eq!(refused("not json \\u0000"), None, "left to the parser");
    }

    #[test]
    fn an_encoded_nul_in_a_uri_is_seen() {
        assert!(holds_encoded_nul("queue=a%00b"));
        assert!(!holds_encoded_nul("queue=a%20b"));
    }

    #[test]
    fn a_page_size_is_taken_between_one_and_the_maximum_only() {
        assert_eq!(page_limit(None, 100, 1000).unwrap(), 100);
        assert_eq!(page_limit(None, 100, 50).unwrap(), 50);
        assert_eq!(page_limit(Some(1), 100, 1000).unwrap(), 1);
        assert_eq!(page_limit(Some(1000), 100, 1000).unwrap(), 1000);
        for refused in [0, 1001, u32::MAX] {
            assert!(page_limit(Some(refused), 100, 1000).is_err(), "{refused}");
        }
    }
}
