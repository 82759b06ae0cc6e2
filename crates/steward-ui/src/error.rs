//! Why a page could not be shown, and what the browser is answered instead.

use axum::http::StatusCode;

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No live session: the browser is sent to sign in, then back to `next`.
    #[error("sign in first")]
    SignIn {
        /// The page to return to, as a path below the base path.
        next: String,
    },
    /// The key may not read or do this.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing by that name.
    #[error("{0}")]
    NotFound(String),
    /// The request itself was wrong (a form field, a query value).
    #[error("{0}")]
    BadRequest(String),
    /// The API refused or failed, with its status and message.
    #[error("{message}")]
    Api {
        /// The API's status.
        status: StatusCode,
        /// The API's message.
        message: String,
    },
    /// Something inside the dashboard failed.
    #[error("{0}")]
    Internal(String),
}

impl PageError {
    /// The status the error page is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            PageError::SignIn { .. } => StatusCode::SEE_OTHER,
            PageError::Forbidden(_) => StatusCode::FORBIDDEN,
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::Api { status, .. } => *status,
            PageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short title for the error page.
    pub fn title(&self) -> &'static str {
        match self {
            PageError::SignIn { .. } => "Sign in",
            PageError::Forbidden(_) => "Not allowed",
            PageError::NotFound(_) => "Not found",
            PageError::BadRequest(_) => "Bad request",
            PageError::Api { .. } => "The API refused",
            PageError::Internal(_) => "Something failed",
        }
    }
}
