//! Error answers. Every error the API answers has this shape, whatever refused the request: a
//! stable `code`, a `message` safe to show, and, where a request had several problems, one
//! line of `details` per problem.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An error answer: `{"error":{"code","message","details"?}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, in an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// The stable code (`not_found`, `invalid_query`, `store_unavailable`, …).
    pub code: String,
    /// What happened, for people.
    pub message: String,
    /// One line per problem, when there were several; absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_the_documented_json_and_its_schema_is_named_error() {
        let mut body = ErrorBody {
            error: ErrorDetail {
                code: "not_found".into(),
                message: "no such route".into(),
                details: Vec::new(),
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"error": {"code": "not_found", "message": "no such route"}})
        );
        body.error.details.push("line 1".into());
        let shown = serde_json::to_value(&body).unwrap();
        assert_eq!(shown["error"]["details"][0], "line 1");
        assert_eq!(serde_json::from_value::<ErrorBody>(shown).unwrap(), body);
        assert_eq!(ErrorBody::name(), "Error");
    }
}
