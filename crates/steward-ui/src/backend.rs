//! The API, called inside the process on a session's behalf: every read and every action of
//! a page goes through the same route table, checks and handlers as a client's request.

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use crate::session::Signed;
use crate::{PageError, Ui};

/// The largest answer a page reads from the API.
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

impl Ui {
    /// Sends a request to the API as `signed`'s key and answers its raw response (for
    /// streams).
    pub(crate) async fn forward(
        &self,
        signed: &Signed,
        request: Request<Body>,
    ) -> Result<Response, PageError> {
        self.api
            .clone()
            .oneshot(as_session(signed, request))
            .await
            .map_err(|never| match never {})
    }

    /// Calls the API as `signed`'s key and answers its status and body.
    pub(crate) async fn call(
        &self,
        signed: &Signed,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, Bytes), PageError> {
        let mut builder = Request::builder().method(method).uri(path);
        let body = match body {
            Some(json) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let request = builder
            .body(body)
            .map_err(|e| PageError::Internal(format!("cannot build a request to {path}: {e}")))?;
        self.send(as_session(signed, request)).await
    }

    /// Sends a request, already carrying its credentials, to the API and reads the whole
    /// answer (up to [`MAX_ANSWER_BYTES`]).
    pub(crate) async fn send(
        &self,
        request: Request<Body>,
    ) -> Result<(StatusCode, Bytes), PageError> {
        let path = request.uri().path().to_owned();
        let response = self
            .api
            .clone()
            .oneshot(request)
            .await
            .map_err(|never| match never {})?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| PageError::Internal(format!("reading {path} failed: {e}")))?
            .to_bytes();
        Ok((status, body))
    }

    /// Reads `path` from the API as `signed`'s key, refusals turned into page errors.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        signed: &Signed,
        path: &str,
    ) -> Result<T, PageError> {
        let (status, body) = self.call(signed, Method::GET, path, None).await?;
        let body = answered(status, body)?;
        serde_json::from_slice(&body)
            .map_err(|e| PageError::Internal(format!("{path} answered what no page expects: {e}")))
    }

    /// Like [`Ui::get`], but a part of a page the key may not read is `None` rather than a
    /// refusal of the whole page.
    pub(crate) async fn get_if_allowed<T: DeserializeOwned>(
        &self,
        signed: &Signed,
        path: &str,
    ) -> Result<Option<T>, PageError> {
        match self.get(signed, path).await {
            Ok(value) => Ok(Some(value)),
            Err(PageError::Forbidden(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Asks the API to change something as `signed`'s key; refusals become page errors.
    pub(crate) async fn act(
        &self,
        signed: &Signed,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Bytes, PageError> {
        let (status, body) = self.call(signed, method, path, body).await?;
        answered(status, body)
    }
}

/// `request` as made by `signed`'s session: its key, its client's address and connection.
fn as_session(signed: &Signed, mut request: Request<Body>) -> Request<Body> {
    steward_api::delegate(
        &signed.extensions,
        &mut request,
        Some(&signed.session.key_digest),
    );
    request
}

/// The body of a successful answer, or the API's refusal as a page error.
fn answered(status: StatusCode, body: Bytes) -> Result<Bytes, PageError> {
    if status.is_success() {
        return Ok(body);
    }
    let message = serde_json::from_slice::<steward_wire::error::ErrorBody>(&body)
        .map(|e| e.error.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
    Err(match status {
        StatusCode::UNAUTHORIZED => PageError::SignIn { next: "/".into() },
        StatusCode::FORBIDDEN => PageError::Forbidden(message),
        StatusCode::NOT_FOUND => PageError::NotFound(message),
        status => PageError::Api { status, message },
    })
}
