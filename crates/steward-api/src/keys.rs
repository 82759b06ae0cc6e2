//! API keys: list, create (the secret answered once) and revoke.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use steward_core::Role;
use steward_core::registry::is_valid_name;
use steward_engine::KeyRequest;
use steward_store::ApiKey;
use steward_wire::keys as wire;
use steward_wire::time::{rfc3339, rfc3339_opt};

use crate::caller::Caller;
use crate::error::store_error;
use crate::extract::{ApiBody, ApiPath, parse_body};
use crate::{ApiError, AppState};

/// `GET /api/v1/keys`: every key, never a digest.
pub(crate) async fn list_keys(
    State(state): State<AppState>,
) -> Result<Json<wire::KeyList>, ApiError> {
    let keys = state
        .control
        .store()
        .list_keys()
        .await
        .map_err(|e| ApiError::store(&e))?;
    Ok(Json(wire::KeyList {
        keys: keys.iter().map(key_of).collect(),
    }))
}

/// `POST /api/v1/keys`: creates a key and answers its secret, this once.
pub(crate) async fn create_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiBody(body): ApiBody,
) -> Result<(StatusCode, Json<wire::CreatedKey>), ApiError> {
    let request: wire::NewKey = parse_body(&body)?;
    let request = key_request(&state, request)?;
    let (key, secret) =
        steward_engine::keys::create_key(state.control.store().as_ref(), &request, &caller.actor())
            .await
            .map_err(store_error)?;
    Ok((
        StatusCode::CREATED,
        Json(wire::CreatedKey {
            key: key_of(&key),
            secret,
        }),
    ))
}

/// A key to create, checked: a valid name, a declared workspace, a positive lifetime.
fn key_request(state: &AppState, request: wire::NewKey) -> Result<KeyRequest, ApiError> {
    let invalid = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message);
    if !is_valid_name(&request.name) {
        return Err(invalid(format!(
            "`name`: `{}` is not a valid name (letters, digits, `_`, `-`, `.`; at most 64)",
            request.name
        )));
    }
    if request.role == wire::Role::Agent {
        return Err(invalid(
            "`role`: `agent` keys are made only by registering a node with a join token \
             (`steward nodes token create`)"
                .into(),
        ));
    }
    if let Some(ws) = request.workspace.as_deref() {
        if !is_valid_name(ws) {
            return Err(invalid(format!(
                "`workspace`: `{ws}` is not a valid workspace key"
            )));
        }
        // A key for a workspace nobody declared sees nothing now, and everything of whatever
        // is declared under that name later.
        if state.control.registry().workspace(ws).is_none() {
            return Err(invalid(format!(
                "`workspace`: no workspace `{ws}` is declared"
            )));
        }
    }
    let expires_at_ms = match request.expires_in_seconds {
        Some(0) => return Err(invalid("`expires_in_seconds`: must be positive".into())),
        Some(s) => Some(
            i64::try_from(s)
                .ok()
                .and_then(|s| s.checked_mul(1000))
                .and_then(|ms| steward_store::now_ms().checked_add(ms))
                .ok_or_else(|| invalid("`expires_in_seconds`: too large".into()))?,
        ),
        None => None,
    };
    Ok(KeyRequest {
        name: request.name,
        role: core_role(request.role),
        workspace: request.workspace,
        expires_at_ms,
    })
}

/// `DELETE /api/v1/keys/{name}`: the key stops working at once, on every instance.
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<wire::KeyChanged>, ApiError> {
    let key = state
        .control
        .store()
        .revoke_key(&name, &caller.actor())
        .await
        .map_err(store_error)?;
    state.auth.forget_all();
    Ok(Json(wire::KeyChanged { key: key_of(&key) }))
}

/// A key as the API shows it: never its digest.
fn key_of(k: &ApiKey) -> wire::Key {
    wire::Key {
        name: k.name.clone(),
        role: role_of(k.role),
        node: k.node.clone(),
        workspace: k.workspace.clone(),
        hint: k.hint.clone(),
        created_at: rfc3339(k.created_at_ms),
        created_at_ms: k.created_at_ms,
        expires_at: rfc3339_opt(k.expires_at_ms),
        expires_at_ms: k.expires_at_ms,
        last_used_at: rfc3339_opt(k.last_used_at_ms),
        last_used_at_ms: k.last_used_at_ms,
        revoked_at: rfc3339_opt(k.revoked_at_ms),
        revoked_at_ms: k.revoked_at_ms,
    }
}

/// A role as the API names it.
pub(crate) fn role_of(role: Role) -> wire::Role {
    match role {
        Role::Agent => wire::Role::Agent,
        Role::Viewer => wire::Role::Viewer,
        Role::Operator => wire::Role::Operator,
        Role::Admin => wire::Role::Admin,
    }
}

fn core_role(role: wire::Role) -> Role {
    match role {
        wire::Role::Agent => Role::Agent,
        wire::Role::Viewer => Role::Viewer,
        wire::Role::Operator => Role::Operator,
        wire::Role::Admin => Role::Admin,
    }
}
