//! How structured fields are stored in text/JSON columns, shared by every backend so that both
//! write and read the same shapes.

use steward_core::Repo;
use steward_core::registry::Labels;

use crate::StoreError;

/// Labels as a JSON object.
pub fn encode_labels(labels: &Labels) -> String {
    // A map of strings always serializes.
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_owned())
}

/// Labels from a JSON object.
pub fn decode_labels(json: &str) -> Result<Labels, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("labels: {e}")))
}

/// A repo as a JSON object, `None` stays SQL NULL.
pub fn encode_repo(repo: Option<&Repo>) -> Option<String> {
    repo.and_then(|r| serde_json::to_string(r).ok())
}

/// A repo from a JSON object.
pub fn decode_repo(json: Option<&str>) -> Result<Option<Repo>, StoreError> {
    json.map(|j| serde_json::from_str(j).map_err(|e| StoreError::Corrupt(format!("repo: {e}"))))
        .transpose()
}

/// Audit details from their stored text. Text that is not exactly what was hashed (keys
/// reordered, white space or duplicate keys added) decodes to a value that no longer matches the
/// event's hash, so `verify` reports the event as edited.
pub fn decode_audit_details(text: &str) -> Result<serde_json::Value, StoreError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("audit details: {e}")))?;
    if serde_json::to_string(&value).is_ok_and(|canonical| canonical == text) {
        Ok(value)
    } else {
        Ok(serde_json::json!({ "non_canonical_details": text }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let labels: Labels = [("a".to_string(), "ü\"".to_string())].into();
        assert_eq!(decode_labels(&encode_labels(&labels)).ok(), Some(labels));
        let repo = Repo {
            name: Some("n".into()),
            path: None,
            remote: None,
        };
        assert_eq!(
            decode_repo(encode_repo(Some(&repo)).as_deref()).ok(),
            Some(Some(repo))
        );
        assert!(decode_labels("not json").is_err());
    }
}
