//! Sessions as the browser holds them: the cookie, its flags, the form token, and finding the
//! signed-in caller of a request.

use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};
use steward_core::auth::digests_match;
use steward_store::Session;
use steward_wire::registry::{Principal, WhoAmI};

use crate::{PageError, Ui};

/// The cookie holding the session token.
pub(crate) const SESSION_COOKIE: &str = "steward_session";
/// The cookie holding the sign-in form's token, before there is a session.
pub(crate) const SIGN_IN_COOKIE: &str = "steward_sign_in";
/// A session's idle expiry is written again only when it would move by more than this, so
/// browsing does not write to the database on every page.
const TOUCH_AFTER_MS: i64 = 60_000;

/// A fresh random token: 32 bytes, hex.
pub(crate) fn new_token() -> Result<String, PageError> {
    let mut random = [0_u8; 32];
    getrandom::fill(&mut random)
        .map_err(|e| PageError::Internal(format!("no randomness for a token: {e}")))?;
    Ok(hex::encode(random))
}

/// The digest a session token is stored under.
pub(crate) fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether a form's token is the one expected, compared in constant time.
pub(crate) fn tokens_match(expected: &str, presented: &str) -> bool {
    !expected.is_empty() && digests_match(expected, presented)
}

/// The value of cookie `name` in the request, if sent.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Whether the browser reached us over HTTPS, as a proxy in front says. A client can claim
/// it falsely, but then only makes its own cookie `Secure`, which harms nobody else.
pub(crate) fn over_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split([';', ','])
                .any(|part| part.trim().eq_ignore_ascii_case("proto=https"))
        });
    forwarded_proto || forwarded
}

impl Ui {
    /// A `Set-Cookie` value for `name`: `HttpOnly`, `SameSite=Strict`, limited to the base
    /// path, `Secure` over HTTPS or when configured; `max_age_secs` of 0 deletes it.
    pub(crate) fn cookie(
        &self,
        headers: &HeaderMap,
        name: &str,
        value: &str,
        max_age_secs: u64,
    ) -> Result<HeaderValue, PageError> {
        let path = if self.options.base_path.is_empty() {
            "/"
        } else {
            self.options.base_path.as_str()
        };
        let secure = if self.options.secure_cookies || over_https(headers) {
            "; Secure"
        } else {
            ""
        };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}"
        ))
        .map_err(|e| PageError::Internal(format!("cannot write a cookie: {e}")))
    }

    /// The signed-in caller of a request, or [`PageError::SignIn`]: a live session whose key
    /// the API still accepts.
    pub(crate) async fn signed(&self, parts: &Parts) -> Result<Signed, PageError> {
        let sign_in = || PageError::SignIn {
            next: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(sign_in());
        };
        let now = steward_store::now_ms();
        let session = self
            .store
            .session(&token_digest(token), now)
            .await
            .map_err(|e| PageError::Internal(format!("reading the session failed: {e}")))?
            .ok_or_else(sign_in)?;
        let mut signed = Signed {
            principal: Principal {
                name: session.key_name.clone(),
                role: steward_wire::keys::Role::Viewer,
                workspace: None,
            },
            session,
            extensions: parts.extensions.clone(),
        };
        // The API decides whether the key still stands (revoked, expired) and what it is.
        signed.principal = match self.get::<WhoAmI>(&signed, "/api/v1/whoami").await {
            Ok(who) => who.principal,
            Err(PageError::SignIn { .. }) => return Err(sign_in()),
            Err(other) => return Err(other),
        };
        self.keep_alive(&signed.session, now).await;
        Ok(signed)
    }

    /// Moves the session's idle expiry forward when it has drifted far enough to matter.
    async fn keep_alive(&self, session: &Session, now: i64) {
        let idle_ms = i64::try_from(self.options.session_idle.as_millis()).unwrap_or(i64::MAX);
        let wanted = now.saturating_add(idle_ms);
        if wanted - session.idle_expires_at_ms < TOUCH_AFTER_MS {
            return;
        }
        if let Err(error) = self.store.touch_session(&session.id_digest, wanted).await {
            tracing::warn!(%error, "cannot extend a dashboard session");
        }
    }
}

/// The signed-in caller of a page.
pub(crate) struct Signed {
    /// The session.
    pub session: Session,
    /// The key it acts as, as the API sees it.
    pub principal: Principal,
    /// The incoming request's extensions (its peer address and connection), handed on to
    /// the API calls made on its behalf.
    pub extensions: Extensions,
}

impl Signed {
    /// Refuses a form whose token is not this session's.
    pub(crate) fn check_form(&self, presented: &str) -> Result<(), PageError> {
        if tokens_match(&self.session.csrf, presented) {
            Ok(())
        } else {
            Err(PageError::Forbidden(
                "the form's token does not match this session; reload the page and try again"
                    .into(),
            ))
        }
    }

    /// Whether the key may change things (operator or admin).
    pub(crate) fn may_operate(&self) -> bool {
        matches!(
            self.principal.role,
            steward_wire::keys::Role::Operator | steward_wire::keys::Role::Admin
        )
    }

    /// Whether the key is an unscoped admin.
    pub(crate) fn is_admin(&self) -> bool {
        self.principal.role == steward_wire::keys::Role::Admin && self.principal.workspace.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; steward_session=abc"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "steward"), None);
    }

    #[test]
    fn https_is_taken_from_either_forwarding_header() {
        let mut headers = HeaderMap::new();
        assert!(!over_https(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("HTTPS"));
        assert!(over_https(&headers));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::FORWARDED,
            HeaderValue::from_static("for=192.0.2.1;proto=https;by=proxy"),
        );
        assert!(over_https(&headers));
    }

    #[test]
    fn tokens_match_only_themselves_and_never_empty() {
        let token = new_token().unwrap();
        assert_eq!(token.len(), 64);
        assert!(tokens_match(&token, &token));
        assert!(!tokens_match(&token, &new_token().unwrap()));
        assert!(!tokens_match("", ""));
        assert_ne!(token_digest(&token), token);
    }
}
