//! Stub, being written.

use axum::extract::State;
use axum::response::Response;

use crate::{PageError, Ui};

/// GET /schedules: schedules and heartbeats.
pub(crate) async fn list(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}

/// GET /schedules/{name}: one schedule with its runs.
pub(crate) async fn detail(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}

/// POST /schedules/{name}/pause.
pub(crate) async fn pause(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}

/// POST /schedules/{name}/resume.
pub(crate) async fn resume(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}

/// POST /schedules/{name}/trigger.
pub(crate) async fn trigger(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}
