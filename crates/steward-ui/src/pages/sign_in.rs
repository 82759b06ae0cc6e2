//! `/sign-in` and `/sign-out`: an API key pasted once becomes a session.

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use steward_core::audit::Actor;
use steward_store::NewSession;
use steward_wire::registry::WhoAmI;

use crate::session::{
    SESSION_COOKIE, SIGN_IN_COOKIE, cookie, new_token, token_digest, tokens_match,
};
use crate::{PageError, Ui};

/// The sign-in form's token lasts this long.
const SIGN_IN_FORM_SECS: u64 = 30 * 60;

#[derive(Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    key: String,
    /// Absent counts as wrong: the form is refused as forged, not as malformed.
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub(crate) struct SignOutForm {
    /// Absent counts as wrong.
    #[serde(default)]
    csrf: String,
}

/// Where to go after signing in: a path of this site, never another origin.
pub(crate) fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    if local { next } else { "/" }
}

/// `GET /sign-in`: the form (or, for a live session, straight on).
pub(crate) async fn form(
    State(ui): State<Ui>,
    Query(query): Query<Next>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let next = safe_next(query.next.as_deref().unwrap_or("/")).to_owned();
    if ui.signed(&parts).await.is_ok() {
        return Redirect::to(&ui.link(&next)).into_response();
    }
    let result = show_form(&ui, &parts, &next, StatusCode::OK, None);
    ui.respond(result)
}

fn show_form(
    ui: &Ui,
    parts: &Parts,
    next: &str,
    status: StatusCode,
    problem: Option<String>,
) -> Result<Response, PageError> {
    let token = new_token()?;
    let mut response = ui.render_public(
        status,
        "sign_in.html",
        context! { csrf => token.clone(), next => next, problem => problem, title => "Sign in" },
    )?;
    let cookie = ui.cookie(&parts.headers, SIGN_IN_COOKIE, &token, SIGN_IN_FORM_SECS)?;
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

/// `POST /sign-in`: checks the key with the API and starts a session for it.
pub(crate) async fn submit(State(ui): State<Ui>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let form: SignInForm = match super::read_form(&ui, parts.clone(), body).await {
        Ok(form) => form,
        Err(error) => return ui.respond(Err(error)),
    };
    let result = sign_in(&ui, &parts, form).await;
    ui.respond(result)
}

async fn sign_in(ui: &Ui, parts: &Parts, form: SignInForm) -> Result<Response, PageError> {
    let next = safe_next(&form.next).to_owned();
    let expected = cookie(&parts.headers, SIGN_IN_COOKIE).unwrap_or_default();
    if !tokens_match(expected, &form.csrf) {
        return Err(PageError::Forbidden(
            "the sign-in form's token does not match; reload the page and try again".into(),
        ));
    }
    let key = form.key.trim();
    if key.is_empty() {
        return show_form(
            ui,
            parts,
            &next,
            StatusCode::BAD_REQUEST,
            Some("Paste an API key.".into()),
        );
    }
    // The API checks the key, with its limits on failed attempts from this address.
    let mut request = Request::builder()
        .method(Method::GET)
        .uri("/api/v1/whoami")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .body(Body::empty())
        .map_err(|e| PageError::Internal(format!("cannot build the key check: {e}")))?;
    steward_api::delegate(&parts.extensions, &mut request, None);
    let (status, body) = ui.send(request).await?;
    if status == StatusCode::UNAUTHORIZED {
        return show_form(
            ui,
            parts,
            &next,
            StatusCode::UNAUTHORIZED,
            Some("That key is not valid (unknown, revoked or expired).".into()),
        );
    }
    if !status.is_success() {
        let problem = match status {
            StatusCode::TOO_MANY_REQUESTS => {
                "Too many failed attempts from this address; wait a minute and try again."
            }
            _ => "The key could not be checked just now; try again shortly.",
        };
        return show_form(ui, parts, &next, status, Some(problem.into()));
    }
    let who: WhoAmI = serde_json::from_slice(&body)
        .map_err(|e| PageError::Internal(format!("the key check answered oddly: {e}")))?;
    let token = new_token()?;
    let now = steward_store::now_ms();
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let session = NewSession {
        id_digest: token_digest(&token),
        key_digest: steward_core::auth::key_digest(key),
        key_name: who.principal.name.clone(),
        workspace: who.principal.workspace.clone(),
        csrf: new_token()?,
        created_at_ms: now,
        idle_expires_at_ms: now.saturating_add(ms(ui.options.session_idle)),
        expires_at_ms: now.saturating_add(ms(ui.options.session_max)),
    };
    ui.store
        .start_session(&session, &actor(parts, &who.principal.name))
        .await
        .map_err(|e| PageError::Internal(format!("the session could not be kept: {e}")))?;
    let mut response = Redirect::to(&ui.link(&next)).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        ui.cookie(
            &parts.headers,
            SESSION_COOKIE,
            &token,
            ui.options.session_max.as_secs(),
        )?,
    );
    headers.append(
        header::SET_COOKIE,
        ui.cookie(&parts.headers, SIGN_IN_COOKIE, "", 0)?,
    );
    Ok(response)
}

/// The audit actor of a browser: the key's name and the client's address.
fn actor(parts: &Parts, key_name: &str) -> Actor {
    let ip = parts
        .extensions
        .get::<axum::extract::ConnectInfo<steward_api::listener::PeerAddr>>()
        .map(|c| c.0.0.ip().to_string());
    Actor::key(key_name, ip)
}

/// `POST /sign-out`: ends the session.
pub(crate) async fn sign_out(State(ui): State<Ui>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let form: SignOutForm = super::read_form(&ui, parts.clone(), body).await?;
        signed.check_form(&form.csrf)?;
        ui.store
            .end_session(
                &signed.session.id_digest,
                &actor(&parts, &signed.principal.name),
            )
            .await
            .map_err(|e| PageError::Internal(format!("the session could not be ended: {e}")))?;
        let mut response = Redirect::to(&ui.link("/sign-in")).into_response();
        response.headers_mut().append(
            header::SET_COOKIE,
            ui.cookie(&parts.headers, SESSION_COOKIE, "", 0)?,
        );
        Ok(response)
    }
    .await;
    ui.respond(result)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next("/services/api?x=1"), "/services/api?x=1");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "",
            "services",
            "/a\nb",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }
}
