//! Stub, being written.

use axum::extract::State;
use axum::response::Response;

use crate::{PageError, Ui};

/// GET /audit.
pub(crate) async fn list(State(ui): State<Ui>) -> Response {
    ui.respond(Err(PageError::NotFound("not written yet".into())))
}
