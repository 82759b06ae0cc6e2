//! Stub, being written.

use axum::extract::State;
use axum::response::Response;

use crate::{PageError, Ui};

/// GET /queues: every queue's depth and throughput.
pub(crate) async fn queues(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}

/// GET /tasks: a filterable task list.
pub(crate) async fn list(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}

/// GET /tasks/{id}: one task with its runs.
pub(crate) async fn detail(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}

/// POST /tasks/{id}/cancel.
pub(crate) async fn cancel(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}

/// POST /tasks/{id}/retry.
pub(crate) async fn retry(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}
