//! The answer to `GET /`: what is serving, and where its API is described.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What `GET /` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiIndex {
    /// Always `steward`.
    pub name: String,
    /// The server's version.
    pub version: String,
    /// The path of the OpenAPI document describing every route.
    pub openapi: String,
    /// Where the API is documented for people.
    pub docs: String,
}
