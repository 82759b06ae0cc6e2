//! `/keys`: every API key with its role, scope and times; creating a key (its secret shown on
//! the answer to the form, that once) and revoking one. The API lets unscoped admin keys only
//! do any of it, and refuses everyone else.

use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use steward_wire::keys::{CreatedKey, Key, KeyList, NewKey, Role};
use steward_wire::paths;
use steward_wire::registry::WorkspaceList;

use crate::render::Page;
use crate::session::Signed;
use crate::{PageError, Ui};

use super::signed_form;

/// The roles a key may be given, least first.
const ROLES: [&str; 3] = ["viewer", "operator", "admin"];

/// The lifetimes offered for a new key: seconds (empty: it does not expire), and a label.
const EXPIRIES: [(&str, &str); 6] = [
    ("", "never"),
    ("86400", "1 day"),
    ("604800", "7 days"),
    ("2592000", "30 days"),
    ("7776000", "90 days"),
    ("31536000", "1 year"),
];

/// A key as a row: the key, where it stands, and whether this session acts as it.
#[derive(Serialize)]
struct KeyRow {
    /// The key.
    key: Key,
    /// `active`, `expired` or `revoked`.
    state: &'static str,
    /// The state's tone for its colour and shape: `up`, `unknown` or `down`.
    tone: &'static str,
    /// This session acts as this key.
    mine: bool,
}

/// The form creating a key.
#[derive(Deserialize, Serialize, Default)]
pub(crate) struct KeyForm {
    /// The session's form token.
    #[serde(skip_serializing)]
    #[serde(default)]
    csrf: String,
    /// The key's name.
    #[serde(default)]
    name: String,
    /// `viewer`, `operator` or `admin`.
    #[serde(default)]
    role: String,
    /// The workspace it is limited to; empty for all.
    #[serde(default)]
    workspace: String,
    /// Its lifetime in seconds; empty when it does not expire.
    #[serde(default)]
    expires: String,
}

/// What a form did, shown on the page it answers.
#[derive(Default)]
struct Outcome {
    /// A key just created, with its secret.
    created: Option<CreatedKey>,
    /// Why the key was not created.
    error: Option<String>,
    /// What was entered, to fill the form in again after a refusal.
    entered: Option<KeyForm>,
}

/// What `/keys` shows.
#[derive(Serialize)]
struct KeysPage {
    /// Every key, by name.
    keys: Vec<KeyRow>,
    /// The workspaces a key may be limited to.
    workspaces: Vec<String>,
    /// The roles offered.
    roles: [&'static str; 3],
    /// The lifetimes offered.
    expiries: [(&'static str, &'static str); 6],
    /// A key just created, with its secret: only on the answer to the form.
    created: Option<CreatedKey>,
    /// Why a key was not created.
    error: Option<String>,
    /// What the form holds.
    entered: KeyForm,
}

/// `GET /keys`: every key (unscoped admins).
pub(crate) async fn list(State(ui): State<Ui>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        keys_page(&ui, &signed, StatusCode::OK, Outcome::default()).await
    }
    .await;
    ui.respond(result)
}

/// The keys page answered with `status`, showing what a form did.
async fn keys_page(
    ui: &Ui,
    signed: &Signed,
    status: StatusCode,
    outcome: Outcome,
) -> Result<Response, PageError> {
    let list: KeyList = ui.get(signed, paths::KEYS.template()).await?;
    let workspaces: Option<WorkspaceList> = ui
        .get_if_allowed(signed, paths::WORKSPACES.template())
        .await?;
    let now = steward_store::now_ms();
    let keys = list
        .keys
        .into_iter()
        .map(|key| key_row(key, now, &signed.principal.name))
        .collect();
    let mut entered = outcome.entered.unwrap_or_default();
    if entered.role.is_empty() {
        entered.role = Role::Viewer.as_str().to_owned();
    }
    let data = KeysPage {
        keys,
        workspaces: workspaces
            .map(|w| w.workspaces.into_iter().map(|w| w.key).collect())
            .unwrap_or_default(),
        roles: ROLES,
        expiries: EXPIRIES,
        created: outcome.created,
        error: outcome.error,
        entered,
    };
    let mut response = ui.render(
        signed,
        Page {
            template: "keys.html",
            title: "API keys".into(),
            nav: "keys",
            live: false,
            data,
        },
    )?;
    *response.status_mut() = status;
    Ok(response)
}

/// A key as a row, its state as of `now_ms`.
fn key_row(key: Key, now_ms: i64, me: &str) -> KeyRow {
    let (state, tone) = if key.revoked_at_ms.is_some() {
        ("revoked", "down")
    } else if key.expires_at_ms.is_some_and(|at| at <= now_ms) {
        ("expired", "unknown")
    } else {
        ("active", "up")
    };
    KeyRow {
        mine: key.name == me,
        key,
        state,
        tone,
    }
}

/// The API's request for the key the form describes.
fn new_key(form: &KeyForm) -> Result<NewKey, PageError> {
    let role: Role = form
        .role
        .parse()
        .map_err(|e| PageError::BadRequest(format!("{e}")))?;
    let expires = form.expires.trim();
    let expires_in_seconds = if expires.is_empty() {
        None
    } else {
        Some(expires.parse::<u64>().map_err(|_| {
            PageError::BadRequest(format!("`{expires}` is not a lifetime in seconds"))
        })?)
    };
    let workspace = form.workspace.trim();
    Ok(NewKey {
        name: form.name.trim().to_owned(),
        role,
        workspace: (!workspace.is_empty()).then(|| workspace.to_owned()),
        expires_in_seconds,
    })
}

/// Asks the API to create the key the form describes.
async fn create_key(ui: &Ui, signed: &Signed, form: &KeyForm) -> Result<CreatedKey, PageError> {
    let body = serde_json::to_value(new_key(form)?)
        .map_err(|e| PageError::Internal(format!("cannot write the request: {e}")))?;
    let answer = ui
        .act(signed, Method::POST, paths::KEYS.template(), Some(body))
        .await?;
    serde_json::from_slice(&answer)
        .map_err(|e| PageError::Internal(format!("the API's new key was not understood: {e}")))
}

/// `POST /keys`: creates a key and answers the keys page (201) with its secret, shown this
/// once; a refused key answers the page with why, the form filled in again.
pub(crate) async fn create(State(ui): State<Ui>, request: Request) -> Response {
    let result = async {
        let (signed, form) = signed_form::<KeyForm>(&ui, request).await?;
        signed.check_form(&form.csrf)?;
        let outcome = match create_key(&ui, &signed, &form).await {
            Ok(created) => {
                tracing::info!(
                    key = %created.key.name,
                    by = %signed.principal.name,
                    "key created from the dashboard"
                );
                Outcome {
                    created: Some(created),
                    ..Outcome::default()
                }
            }
            Err(refused) if refused_by_request(&refused) => {
                let status = refused.status();
                let outcome = Outcome {
                    error: Some(refused.to_string()),
                    entered: Some(form),
                    ..Outcome::default()
                };
                return keys_page(&ui, &signed, status, outcome).await;
            }
            Err(other) => return Err(other),
        };
        keys_page(&ui, &signed, StatusCode::CREATED, outcome).await
    }
    .await;
    ui.respond(result)
}

/// Whether an error is a refusal of what was entered (shown beside the form) rather than a
/// failure (shown as an error page).
fn refused_by_request(error: &PageError) -> bool {
    match error {
        PageError::BadRequest(_) => true,
        PageError::Api { status, .. } => status.is_client_error(),
        _ => false,
    }
}

/// The form revoking a key.
#[derive(Deserialize)]
pub(crate) struct RevokeForm {
    /// The session's form token.
    #[serde(default)]
    csrf: String,
}

/// `POST /keys/{name}/revoke`: the key stops working at once; back to the keys.
pub(crate) async fn revoke(
    State(ui): State<Ui>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let (signed, form) = signed_form::<RevokeForm>(&ui, request).await?;
        signed.check_form(&form.csrf)?;
        let path = paths::KEY.with(&[&name]);
        ui.act(&signed, Method::DELETE, &path, None).await?;
        Ok(Redirect::to(&ui.link("/keys")).into_response())
    }
    .await;
    ui.respond(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(role: &str, workspace: &str, expires: &str) -> KeyForm {
        KeyForm {
            csrf: String::new(),
            name: " ci ".into(),
            role: role.into(),
            workspace: workspace.into(),
            expires: expires.into(),
        }
    }

    #[test]
    fn the_form_becomes_the_apis_request() {
        let key = new_key(&form("operator", "", "")).unwrap();
        assert_eq!(key.name, "ci");
        assert_eq!(key.role, Role::Operator);
        assert_eq!(key.workspace, None);
        assert_eq!(key.expires_in_seconds, None);
        let key = new_key(&form("viewer", "ops", "86400")).unwrap();
        assert_eq!(key.workspace.as_deref(), Some("ops"));
        assert_eq!(key.expires_in_seconds, Some(86_400));
        assert!(new_key(&form("root", "", "")).is_err());
        assert!(new_key(&form("viewer", "", "soon")).is_err());
    }

    #[test]
    fn a_key_is_revoked_expired_or_active() {
        let key = Key {
            name: "k".into(),
            role: Role::Viewer,
            workspace: None,
            node: None,
            hint: "abcd".into(),
            created_at: String::new(),
            created_at_ms: 0,
            expires_at: None,
            expires_at_ms: Some(10),
            last_used_at: None,
            last_used_at_ms: None,
            revoked_at: None,
            revoked_at_ms: None,
        };
        assert_eq!(key_row(key.clone(), 5, "k").state, "active");
        assert!(key_row(key.clone(), 5, "k").mine);
        assert_eq!(key_row(key.clone(), 10, "x").state, "expired");
        let revoked = Key {
            revoked_at_ms: Some(1),
            ..key
        };
        assert_eq!(key_row(revoked, 5, "x").state, "revoked");
    }
}
