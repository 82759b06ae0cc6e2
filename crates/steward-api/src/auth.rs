//! Authentication and authorisation, in one place: every request passes through [`authorize`],
//! which applies the route table's [`Access`] rule before any handler runs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use steward_core::{Principal, Role};
use steward_engine::keys::Standing;

use crate::{ApiError, AppState};

pub use crate::access::Access;
pub use crate::caller::Caller;

/// A request made inside the process on behalf of a dashboard session: it acts as the key
/// with this digest and passes the same [`authorize`] checks as one presenting the key. Only
/// code in this process can attach it; nothing a client sends becomes one.
#[derive(Debug, Clone)]
pub struct Delegated {
    /// The digest of the key the session acts as.
    pub key_digest: String,
}

/// Prepares `request` to be served on behalf of `from`'s caller: it acts as the key with
/// `key_digest` (`None`: as whatever key it presents itself) and keeps `from`'s peer address
/// and connection, so address limits and audit records name the real client.
pub fn delegate(from: &axum::http::Extensions, request: &mut Request, key_digest: Option<&str>) {
    let extensions = request.extensions_mut();
    if let Some(peer) = from.get::<ConnectInfo<crate::listener::PeerAddr>>() {
        extensions.insert(*peer);
    }
    if let Some(connection) = from.get::<crate::listener::Connection>() {
        extensions.insert(connection.clone());
    }
    if let Some(digest) = key_digest {
        extensions.insert(Delegated {
            key_digest: digest.to_owned(),
        });
    }
}

/// Requests per second allowed per key, by role, and failed authentications allowed per source
/// address per minute.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// Per `viewer` key.
    pub viewer: NonZeroU32,
    /// Per `operator` key.
    pub operator: NonZeroU32,
    /// Per `admin` key.
    pub admin: NonZeroU32,
    /// Per `agent` key: a node's heartbeats, audit, and its tasks' claims, renewals and results.
    pub agent: NonZeroU32,
    /// Failed authentications per source address per minute before it is refused.
    pub auth_failures_per_minute: NonZeroU32,
}

impl Default for RateLimits {
    fn default() -> Self {
        let n = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        Self {
            viewer: n(50),
            operator: n(100),
            admin: n(100),
            agent: n(100),
            auth_failures_per_minute: n(10),
        }
    }
}

/// The limiters: one token bucket per key (GCRA), and one per source address for failures.
pub struct Limiters {
    per_role: HashMap<Role, DefaultKeyedRateLimiter<String>>,
    failures: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses refused until a time, after exhausting their failures.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    /// When each address last failed to authenticate.
    last_failure: Mutex<HashMap<IpAddr, Instant>>,
}

/// How long a failure marks its address as failing (its callers wait behind clean ones for
/// the slow environment key).
const FAILING_FOR: Duration = Duration::from_secs(60);

impl Limiters {
    /// Limiters for `limits`.
    pub fn new(limits: RateLimits) -> Self {
        let per_second = |n: NonZeroU32| RateLimiter::keyed(Quota::per_second(n));
        Self {
            per_role: HashMap::from([
                (Role::Viewer, per_second(limits.viewer)),
                (Role::Operator, per_second(limits.operator)),
                (Role::Admin, per_second(limits.admin)),
                (Role::Agent, per_second(limits.agent)),
            ]),
            failures: RateLimiter::keyed(Quota::per_minute(limits.auth_failures_per_minute)),
            blocked: Mutex::new(HashMap::new()),
            last_failure: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(wait)` when `principal` has used up its requests for now.
    fn key_wait(&self, principal: &Principal) -> Option<Duration> {
        let limiter = self.per_role.get(&principal.role)?;
        limiter
            .check_key(&principal.name)
            .err()
            .map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets idle limiter state, so that memory stays bounded whatever addresses and keys
    /// come and go. Run periodically.
    pub fn prune(&self) {
        for limiter in self.per_role.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        self.failures.retain_recent();
        self.failures.shrink_to_fit();
        let now = Instant::now();
        if let Ok(mut blocked) = self.blocked.lock() {
            blocked.retain(|_, until| *until > now);
            blocked.shrink_to_fit();
        }
        if let Ok(mut last_failure) = self.last_failure.lock() {
            last_failure.retain(|_, at| now.duration_since(*at) < FAILING_FOR);
            last_failure.shrink_to_fit();
        }
    }

    /// How `ip` has behaved lately, given whether it is blocked now.
    fn standing(&self, ip: IpAddr, blocked: bool) -> Standing {
        if blocked {
            return Standing::Blocked;
        }
        let ip = crate::listener::address_key(ip);
        let failing = self
            .last_failure
            .lock()
            .ok()
            .and_then(|last| last.get(&ip).copied())
            .is_some_and(|at| at.elapsed() < FAILING_FOR);
        if failing {
            Standing::Failing
        } else {
            Standing::Clean
        }
    }

    /// `Some(wait)` while `ip` is refused for having failed too often.
    fn blocked_wait(&self, ip: IpAddr) -> Option<Duration> {
        let ip = crate::listener::address_key(ip);
        let mut blocked = self.blocked.lock().ok()?;
        let until = *blocked.get(&ip)?;
        let now = Instant::now();
        if until > now {
            Some(until - now)
        } else {
            blocked.remove(&ip);
            None
        }
    }

    /// Counts a failed authentication from `ip`; `Some(wait)` once it must be refused.
    fn record_failure(&self, ip: IpAddr) -> Option<Duration> {
        let ip = crate::listener::address_key(ip);
        if let Ok(mut last_failure) = self.last_failure.lock() {
            last_failure.insert(ip, Instant::now());
        }
        let wait = self
            .failures
            .check_key(&ip)
            .err()
            .map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))?;
        if let Ok(mut blocked) = self.blocked.lock() {
            blocked.insert(ip, Instant::now() + wait);
        }
        Some(wait)
    }
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return bearer_token(value);
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The token of an `Authorization: Bearer …` value. Clients send the scheme in any case
/// (`bearer` is common), and HTTP says schemes ignore case.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once([' ', '\t'])?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn too_many(wait: Duration, message: &str) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).into_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn verification_busy() -> Response {
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "auth_busy",
        "key verification is busy; try again shortly",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn unauthenticated() -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "a valid API key is required (Authorization: Bearer stw_…)",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn forbidden(message: &str) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response()
}

/// The one authorisation check: looks up the matched route's [`Access`] and lets the request
/// through only if the caller satisfies it.
pub(crate) async fn authorize(
    State(state): State<AppState>,
    params: RawPathParams,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let access = route
        .as_deref()
        .and_then(|path| crate::routes::access_of(request.method(), path, &state));
    // Closed by default: a route without an entry in the table is refused to everyone.
    let Some(access) = access else {
        return forbidden("this route has no access rule");
    };
    let Some((role, workspace_param, unscoped)) = access.requirement() else {
        return next.run(request).await;
    };
    let ip = request
        .extensions()
        .get::<ConnectInfo<crate::listener::PeerAddr>>()
        .map(|c| c.0.0.ip());
    // An address that failed too often is refused unless it presents a valid key: guessing a
    // 256-bit key is hopeless anyway, the block exists to cap wasted work, and the owner of a
    // valid key on a shared address must not be locked out by someone else's failures. Its
    // standing only orders it behind cleaner addresses for the slow environment key.
    let blocked = ip.and_then(|ip| state.limiters.blocked_wait(ip));
    let standing = ip.map_or(Standing::Clean, |ip| {
        state.limiters.standing(ip, blocked.is_some())
    });
    let delegated = request
        .extensions()
        .get::<Delegated>()
        .map(|d| d.key_digest.clone());
    let outcome = match (delegated, presented_key(request.headers())) {
        (Some(digest), _) => Some(state.auth.authenticate_digest(&digest).await),
        (None, Some(key)) => Some(state.auth.authenticate_from(key, standing).await),
        (None, None) => None,
    };
    let principal = match (outcome, blocked) {
        (Some(Ok(principal)), _) => principal,
        (Some(Err(steward_engine::AuthError::Store(e))), _) => {
            return ApiError::store(&e).into_response();
        }
        // Not a verdict on the key: the caller is told to come back, and not counted as failing.
        (Some(Err(steward_engine::AuthError::Busy)), _) => {
            metrics::counter!("steward_auth_failures_total", "reason" => "busy").increment(1);
            return verification_busy();
        }
        (_, Some(wait)) => {
            return too_many(wait, "too many failed authentications from this address");
        }
        (None, None) => {
            metrics::counter!("steward_auth_failures_total", "reason" => "missing").increment(1);
            return unauthenticated();
        }
        (Some(Err(e)), None) => {
            metrics::counter!("steward_auth_failures_total", "reason" => e.reason()).increment(1);
            if let Some(wait) = ip.and_then(|ip| state.limiters.record_failure(ip)) {
                return too_many(wait, "too many failed authentications from this address");
            }
            return unauthenticated();
        }
    };
    // A valid key keeps its connection from being evicted for newcomers when the cap is full.
    if let Some(connection) = request.extensions().get::<crate::listener::Connection>() {
        connection.0.prove();
    }
    if !principal.has_role(role) {
        return forbidden(&format!("this needs the `{role}` role"));
    }
    if unscoped && !principal.is_unscoped() {
        return forbidden("this needs a key that is not limited to one workspace");
    }
    if let Some(param) = access.node_param() {
        let node = params
            .iter()
            .find(|(name, _)| *name == param)
            .map(|(_, v)| v);
        if !node.is_some_and(|n| principal.is_agent_of(n)) {
            return forbidden("this key acts as another node");
        }
    }
    if let Some(param) = workspace_param {
        let workspace = params
            .iter()
            .find(|(name, _)| *name == param)
            .map(|(_, v)| v);
        if !principal.sees(workspace) {
            return forbidden("this key is limited to another workspace");
        }
    }
    if let Some(wait) = state.limiters.key_wait(&principal) {
        return too_many(wait, "this key's request rate is exceeded");
    }
    request.extensions_mut().insert(Caller { principal, ip });
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_matches_in_any_case() {
        let presented = |authorization: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(authorization).unwrap(),
            );
            presented_key(&headers).map(str::to_owned)
        };
        for value in [
            "Bearer stw_x",
            "bearer stw_x",
            "BEARER stw_x",
            "bEaReR   stw_x ",
            "Bearer\tstw_x",
        ] {
            assert_eq!(presented(value).as_deref(), Some("stw_x"), "{value:?}");
        }
        for value in ["Basic stw_x", "Bearerstw_x", "Bearer", "stw_x"] {
            assert_eq!(presented(value), None, "{value:?}");
        }
    }
}
