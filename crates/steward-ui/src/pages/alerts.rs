//! Stub, being written.

use axum::extract::State;
use axum::response::Response;

use crate::{PageError, Ui};

/// GET /alerts.
pub(crate) async fn list(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}

/// GET /alerts/{fingerprint}: one alert with its notifications.
pub(crate) async fn detail(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}

/// POST /alerts/{fingerprint}/ack.
pub(crate) async fn ack(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}

/// POST /alerts/{fingerprint}/silence.
pub(crate) async fn silence(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}

/// POST /silences/{id}/expire.
pub(crate) async fn expire_silence(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}
