//! The agent's HTTP client to the hub: registration (a join token for a credential) and
//! heartbeats (the credential as a bearer token).
//!
//! Errors are sorted by what the caller should do about them: [`HubError::is_retryable`] ones
//! (the hub is unreachable, slow or failing) pass by themselves, while
//! [`HubError::Unauthorized`] means the hub no longer accepts who the agent says it is.

use std::time::Duration;

use reqwest::{RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use steward_wire::error::ErrorBody;
use steward_wire::nodes::{
    AuditBatch, AuditShipped, Heartbeat, HeartbeatAnswer, Registered, Registration,
};
use steward_wire::paths;
use steward_wire::work::{
    ClaimRequest, Claimed, LeaseRenewal, LeaseStatuses, ResultBatch, ResultsTaken,
};

/// How long establishing a connection (TCP and TLS) may take by default.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a whole request may take by default, answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// How long an idle connection is kept for the next request: shorter than the hub's own idle
/// keep-alive (5 s by default), so a connection the hub is about to close is never reused,
/// yet a follow-up beat sent at once rides the same connection.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest answer read: the hub's answers to an agent are a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// How much of an answer that is not an [`ErrorBody`] is quoted in an error.
const QUOTED_BYTES: usize = 200;

/// Why a request to the hub failed.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The HTTP client could not be set up (no TLS backend, say).
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    /// No connection could be made, or it broke before the answer was complete.
    #[error("hub {hub} is unreachable: {message}")]
    Unreachable {
        /// The hub's base URL.
        hub: String,
        /// What went wrong, with its causes.
        message: String,
    },
    /// The hub did not answer in time.
    #[error("hub {hub} did not answer within {}s", .after.as_secs())]
    Timeout {
        /// The hub's base URL.
        hub: String,
        /// The bound that passed.
        after: Duration,
    },
    /// The hub refused who the agent says it is (401 or 403): a join token that is invalid,
    /// used up or expired, or a credential that was revoked or whose node was removed.
    #[error("hub {hub} refused the request ({status}): {message}")]
    Unauthorized {
        /// The hub's base URL.
        hub: String,
        /// 401 or 403.
        status: StatusCode,
        /// The hub's own words.
        message: String,
    },
    /// The hub answered with another error status.
    #[error("hub {hub} answered {status}: {message}")]
    Status {
        /// The hub's base URL.
        hub: String,
        /// The status.
        status: StatusCode,
        /// The error's stable code, when the answer was an [`ErrorBody`].
        code: Option<String>,
        /// The hub's own words, or the start of what it answered.
        message: String,
    },
    /// The hub answered success with something that is not the expected body.
    #[error("hub {hub} answered something that is not {what}: {message}")]
    InvalidAnswer {
        /// The hub's base URL.
        hub: String,
        /// What was expected.
        what: &'static str,
        /// Why it could not be read.
        message: String,
    },
}

impl HubError {
    /// True for failures that pass by themselves: the hub is unreachable, slow, overloaded
    /// (429) or failing (5xx). Trying again later is the answer.
    pub fn is_retryable(&self) -> bool {
        match self {
            HubError::Unreachable { .. } | HubError::Timeout { .. } => true,
            HubError::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
            }
            HubError::Client(_)
            | HubError::Unauthorized { .. }
            | HubError::InvalidAnswer { .. } => false,
        }
    }
}

/// A client to one hub.
#[derive(Debug, Clone)]
pub struct HubClient {
    http: reqwest::Client,
    hub: String,
    request_timeout: Duration,
}

impl HubClient {
    /// A client to the hub at `hub` (a base URL, as [`crate::config::parse_hub_url`] returns
    /// it) with the default timeouts.
    pub fn new(hub: &str) -> Result<Self, HubError> {
        Self::with_timeouts(hub, CONNECT_TIMEOUT, REQUEST_TIMEOUT)
    }

    /// A client with other bounds for connecting and for a whole request.
    pub fn with_timeouts(
        hub: &str,
        connect: Duration,
        request: Duration,
    ) -> Result<Self, HubError> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect)
            .timeout(request)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(1)
            .user_agent(concat!("steward-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HubError::Client(error_chain(&e)))?;
        Ok(Self {
            http,
            hub: hub.trim_end_matches('/').to_owned(),
            request_timeout: request,
        })
    }

    /// The hub's base URL.
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// Exchanges a join token for the node's credential.
    pub async fn register(&self, registration: &Registration) -> Result<Registered, HubError> {
        let url = self.url(paths::AGENT_REGISTER.template());
        self.send(self.http.post(url).json(registration), "a registration")
            .await
    }

    /// Sends one heartbeat of `node`, authenticated by its `credential`.
    pub async fn heartbeat(
        &self,
        node: &str,
        credential: &str,
        beat: &Heartbeat,
    ) -> Result<HeartbeatAnswer, HubError> {
        let url = self.url(&paths::NODE_HEARTBEAT.with(&[&node]));
        let request = self.http.post(url).bearer_auth(credential).json(beat);
        self.send(request, "a heartbeat answer").await
    }

    /// Ships a batch of `node`'s audit journal, authenticated by its `credential`.
    pub async fn ship_audit(
        &self,
        node: &str,
        credential: &str,
        batch: &AuditBatch,
    ) -> Result<AuditShipped, HubError> {
        let url = self.url(&paths::NODE_AUDIT.with(&[&node]));
        let request = self.http.post(url).bearer_auth(credential).json(batch);
        self.send(request, "an audit answer").await
    }

    /// Claims tasks pinned to `node`, waiting on the hub up to the request's `wait_ms`.
    pub async fn claim(
        &self,
        node: &str,
        credential: &str,
        request: &ClaimRequest,
    ) -> Result<Claimed, HubError> {
        let url = self.url(&paths::NODE_TASKS_CLAIM.with(&[&node]));
        // The hub holds the request while it waits for work: allow for that on top.
        let timeout = self.request_timeout + Duration::from_millis(request.wait_ms);
        let request = self
            .http
            .post(url)
            .bearer_auth(credential)
            .timeout(timeout)
            .json(request);
        self.send(request, "claimed tasks").await
    }

    /// Renews the leases of `node`'s running attempts.
    pub async fn renew(
        &self,
        node: &str,
        credential: &str,
        renewal: &LeaseRenewal,
    ) -> Result<LeaseStatuses, HubError> {
        let url = self.url(&paths::NODE_TASKS_LEASES.with(&[&node]));
        let request = self.http.post(url).bearer_auth(credential).json(renewal);
        self.send(request, "lease statuses").await
    }

    /// Reports results of `node`'s attempts.
    pub async fn complete(
        &self,
        node: &str,
        credential: &str,
        batch: &ResultBatch,
    ) -> Result<ResultsTaken, HubError> {
        let url = self.url(&paths::NODE_TASKS_COMPLETE.with(&[&node]));
        let request = self.http.post(url).bearer_auth(credential).json(batch);
        self.send(request, "taken results").await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.hub)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        what: &'static str,
    ) -> Result<T, HubError> {
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        let body = read_capped(response)
            .await
            .map_err(|e| self.transport(&e))?;
        if !status.is_success() {
            return Err(self.status_error(status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| HubError::InvalidAnswer {
            hub: self.hub.clone(),
            what,
            message: e.to_string(),
        })
    }

    fn transport(&self, error: &reqwest::Error) -> HubError {
        if error.is_timeout() {
            HubError::Timeout {
                hub: self.hub.clone(),
                after: self.request_timeout,
            }
        } else {
            HubError::Unreachable {
                hub: self.hub.clone(),
                message: error_chain(error),
            }
        }
    }

    fn status_error(&self, status: StatusCode, body: &[u8]) -> HubError {
        let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody { error }) => (Some(error.code.clone()), message_of(error)),
            Err(_) => (None, quoted(status, body)),
        };
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return HubError::Unauthorized {
                hub: self.hub.clone(),
                status,
                message,
            };
        }
        HubError::Status {
            hub: self.hub.clone(),
            status,
            code,
            message,
        }
    }
}

/// The answer's body, refused past [`MAX_ANSWER_BYTES`] so a wrong URL serving a large file
/// cannot make the agent hold it.
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let expected = response.content_length().unwrap_or(0);
    let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0).min(MAX_ANSWER_BYTES));
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room < chunk.len() {
            break;
        }
    }
    Ok(body)
}

fn message_of(detail: steward_wire::error::ErrorDetail) -> String {
    if detail.details.is_empty() {
        detail.message
    } else {
        format!("{} ({})", detail.message, detail.details.join("; "))
    }
}

/// The start of an answer that is not an [`ErrorBody`], or the status's reason when empty.
fn quoted(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(QUOTED_BYTES)]);
    let text = text.trim();
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_owned()
    } else {
        text.to_owned()
    }
}

/// An error and its causes on one line: reqwest's own message only says which request failed,
/// the cause says why ("connection refused", "certificate expired").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests;
