//! Remote work over HTTP: a node's agent claims the tasks pinned to its node (long poll),
//! renews the leases of the attempts it runs, and reports their results. Every route acts as
//! the node in its path, which only that node's agent credential may.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use steward_engine::fleet::{Leased, RemoteEnd, RemoteResult, WorkError};
use steward_wire::work as wire;

use crate::extract::{ApiBody, ApiPath, parse_body};
use crate::{ApiError, AppState};

/// `POST /api/v1/nodes/{id}/tasks/claim`: due tasks pinned to the node, leased to its agent;
/// waits up to `wait_ms` for one and answers empty when none came.
pub(crate) async fn claim(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiBody(body): ApiBody,
) -> Result<Json<wire::Claimed>, ApiError> {
    let request: wire::ClaimRequest = parse_body(&body)?;
    if !(1..=wire::MAX_REMOTE_CLAIM).contains(&request.limit) {
        return Err(invalid(format!(
            "`limit`: {} is out of range (1 to {})",
            request.limit,
            wire::MAX_REMOTE_CLAIM
        )));
    }
    if request.wait_ms > wire::MAX_CLAIM_WAIT_MS {
        return Err(invalid(format!(
            "`wait_ms`: at most {} (the request would outlive the API's timeout)",
            wire::MAX_CLAIM_WAIT_MS
        )));
    }
    let queues = &state.control.queues();
    let leased = state
        .fleet
        .work()
        .claim(
            &id,
            &request.worker,
            request.limit,
            Duration::from_millis(request.wait_ms),
            queues,
        )
        .await
        .map_err(work_error)?;
    Ok(Json(wire::Claimed {
        tasks: leased.into_iter().map(remote_task_of).collect(),
    }))
}

/// `POST /api/v1/nodes/{id}/tasks/leases`: renews the leases the agent's attempts hold.
pub(crate) async fn renew(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiBody(body): ApiBody,
) -> Result<Json<wire::LeaseStatuses>, ApiError> {
    let renewal: wire::LeaseRenewal = parse_body(&body)?;
    check_batch("leases", renewal.leases.len())?;
    let leases: Vec<(i64, i64)> = renewal.leases.iter().map(|l| (l.id, l.fence)).collect();
    let queues = &state.control.queues();
    let states = state
        .fleet
        .work()
        .renew(&id, &renewal.worker, &leases, queues)
        .await
        .map_err(work_error)?;
    Ok(Json(wire::LeaseStatuses {
        leases: states
            .into_iter()
            .map(|s| wire::LeaseStatus {
                id: s.task_id,
                held: s.held,
                cancel_requested: s.cancel_requested,
            })
            .collect(),
    }))
}

/// `POST /api/v1/nodes/{id}/tasks/complete`: the results of the agent's attempts. Each is
/// accepted only while its lease is the agent's with the same fence.
pub(crate) async fn complete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiBody(body): ApiBody,
) -> Result<Json<wire::ResultsTaken>, ApiError> {
    let batch: wire::ResultBatch = parse_body(&body)?;
    check_batch("results", batch.results.len())?;
    let results = batch
        .results
        .into_iter()
        .enumerate()
        .map(|(i, r)| result_of(i, r))
        .collect::<Result<Vec<_>, _>>()?;
    let queues = &state.control.queues();
    let accepted = state
        .fleet
        .work()
        .complete(&id, &batch.worker, &results, queues)
        .await
        .map_err(work_error)?;
    Ok(Json(wire::ResultsTaken { accepted }))
}

fn remote_task_of(leased: Leased) -> wire::RemoteTask {
    let task = leased.task;
    wire::RemoteTask {
        id: task.id,
        ready_at_ms: task.run_at_ms.max(task.created_at_ms),
        queue: task.queue,
        kind: task.kind,
        payload: task.payload,
        attempt: task.attempt,
        max_attempts: task.max_attempts,
        fence: task.fence,
        timeout_ms: leased.timeout_ms,
        lease_ms: leased.lease_ms,
    }
}

fn result_of(index: usize, result: wire::RemoteResult) -> Result<RemoteResult, ApiError> {
    let missing_error = || {
        invalid(format!(
            "`results[{index}].error`: a failed attempt says why"
        ))
    };
    let end = match result.end {
        wire::RemoteEnd::Succeeded => RemoteEnd::Succeeded(result.result),
        wire::RemoteEnd::Failed => RemoteEnd::Failed {
            error: result.error.ok_or_else(missing_error)?,
            retryable: result.retryable,
        },
        wire::RemoteEnd::Cancelled => RemoteEnd::Cancelled,
        wire::RemoteEnd::Interrupted => RemoteEnd::Interrupted,
    };
    if result.ended_at_ms < result.started_at_ms {
        return Err(invalid(format!(
            "`results[{index}].ended_at_ms`: before `started_at_ms`"
        )));
    }
    Ok(RemoteResult {
        task_id: result.id,
        fence: result.fence,
        attempt: result.attempt,
        started_at_ms: result.started_at_ms,
        ended_at_ms: result.ended_at_ms,
        end,
        outcome: result.outcome,
        tail: result.tail,
    })
}

fn check_batch(field: &str, len: usize) -> Result<(), ApiError> {
    if len > wire::MAX_REMOTE_BATCH {
        return Err(invalid(format!(
            "`{field}`: {len} entries; at most {} per call",
            wire::MAX_REMOTE_BATCH
        )));
    }
    Ok(())
}

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
}

fn work_error(error: WorkError) -> ApiError {
    match error {
        WorkError::Worker(_) => invalid(error.to_string()),
        WorkError::Store(e) => crate::error::store_error(e),
    }
}
