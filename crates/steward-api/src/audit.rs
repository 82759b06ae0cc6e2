//! The audit trail: paged reads and the verification of its hash chain.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use steward_core::audit::ActorKind;
use steward_engine::stream::audit_event;
use steward_store::AuditQuery;
use steward_store::audit::{VerifyError, verify_audit_to_head};
use steward_wire::audit as wire;

use crate::caller::Caller;
use crate::extract::{ApiQuery, page_limit};
use crate::{ApiError, AppState};

/// `GET /api/v1/audit`: filtered, by sequence number, keyset-paginated with `after`.
pub(crate) async fn list_audit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<wire::AuditQuery>,
) -> Result<Json<wire::AuditPage>, ApiError> {
    // A scoped admin reads only its workspace's trail.
    let workspace = match &caller.principal.workspace {
        Some(scope) => Some(scope.clone()),
        None => params.workspace,
    };
    let limit = page_limit(params.limit, 100, steward_store::MAX_AUDIT_PAGE)?;
    let actor_kind = match params.actor_kind.as_deref() {
        None => None,
        Some(raw) => Some(ActorKind::parse(raw).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "`actor_kind`: expected key, cli or system",
            )
        })?),
    };
    let query = AuditQuery {
        after_seq: params.after,
        limit,
        actor: params.actor,
        action: params.action,
        workspace,
        actor_kind,
        origin_node: params.node,
    };
    let store = state.control.store();
    let events = store
        .audit_events(&query)
        .await
        .map_err(|e| ApiError::store(&e))?;
    let head = store
        .audit_head()
        .await
        .map_err(|e| ApiError::store(&e))?
        .map_or(0, |(seq, _)| seq);
    let next_after = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    Ok(Json(wire::AuditPage {
        events: events.into_iter().map(audit_event).collect(),
        next_after,
        head,
    }))
}

/// `GET /api/v1/audit/verify`: 200 when the chain holds, 409 naming the first broken link.
pub(crate) async fn verify_audit(
    State(state): State<AppState>,
) -> Result<Json<wire::AuditVerified>, ApiError> {
    match verify_audit_to_head(state.control.store().as_ref()).await {
        Ok(verified) => Ok(Json(wire::AuditVerified {
            ok: true,
            events: verified.events,
            head: verified
                .head
                .map(|(seq, hash)| wire::ChainHead { seq, hash }),
        })),
        Err(VerifyError::Broken(brk)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "audit_chain_broken",
            brk.to_string(),
        )),
        Err(VerifyError::Store(e)) => Err(ApiError::store(&e)),
    }
}
