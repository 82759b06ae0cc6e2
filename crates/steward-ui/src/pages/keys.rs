//! Stub, being written.

use axum::extract::State;
use axum::response::Response;

use crate::{PageError, Ui};

/// GET /keys.
pub(crate) async fn list(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}

/// POST /keys.
pub(crate) async fn create(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}

/// POST /keys/{name}/revoke.
pub(crate) async fn revoke(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}
