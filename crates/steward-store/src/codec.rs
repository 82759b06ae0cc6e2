//! How structured fields are stored in text/JSON columns, and how stored values are checked
//! on the way back, shared by every backend so that both write and read the same shapes.

use steward_core::Repo;
use steward_core::health::rollup::Rollup;
use steward_core::health::state::{CheckState, ProbeVerdict};
use steward_core::registry::Labels;

use crate::StoreError;

/// A batch or column as JSON text. Strings, numbers and sequences of them always serialize; the
/// error is kept typed anyway.
pub fn encode_json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Database(Box::new(e)))
}

/// Labels as a JSON object.
pub fn encode_labels(labels: &Labels) -> String {
    // A map of strings always serializes.
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_owned())
}

/// Labels from a JSON object.
pub fn decode_labels(json: &str) -> Result<Labels, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("labels: {e}")))
}

/// Matchers as a JSON array of their texts (as [`Matcher`]'s `Display` writes them).
///
/// [`Matcher`]: steward_core::alert::route::Matcher
pub fn encode_matchers(matchers: &[steward_core::alert::route::Matcher]) -> String {
    let texts: Vec<String> = matchers.iter().map(ToString::to_string).collect();
    // A sequence of strings always serializes.
    serde_json::to_string(&texts).unwrap_or_else(|_| "[]".to_owned())
}

/// Matchers from a JSON array of their texts, each parsed again.
pub fn decode_matchers(json: &str) -> Result<Vec<steward_core::alert::route::Matcher>, StoreError> {
    let texts: Vec<String> =
        serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("matchers: {e}")))?;
    texts
        .iter()
        .map(|text| {
            steward_core::alert::route::Matcher::parse(text)
                .map_err(|e| StoreError::Corrupt(format!("matcher {e}")))
        })
        .collect()
}

/// A fingerprint from its 16 hex digits.
pub fn decode_fingerprint(text: &str) -> Result<steward_core::alert::Fingerprint, StoreError> {
    steward_core::alert::Fingerprint::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("alert fingerprint `{text}`")))
}

/// An alert's state from its name.
pub fn decode_alert_state(text: &str) -> Result<steward_core::alert::AlertState, StoreError> {
    use steward_core::alert::AlertState;
    [AlertState::Firing, AlertState::Resolved]
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| StoreError::Corrupt(format!("alert state `{text}`")))
}

/// A severity from its name.
pub fn decode_severity(text: &str) -> Result<steward_core::alert::Severity, StoreError> {
    steward_core::alert::Severity::ALL
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| StoreError::Corrupt(format!("alert severity `{text}`")))
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

/// A stored count of `check`'s, which must fit its type (never negative).
pub fn decode_count<T: TryFrom<i64>>(n: i64, what: &str, check: &str) -> Result<T, StoreError> {
    T::try_from(n).map_err(|_| StoreError::Corrupt(format!("check `{check}`: {what} {n}")))
}

/// A stored check state.
pub fn decode_check_state(text: &str) -> Result<CheckState, StoreError> {
    CheckState::parse(text).ok_or_else(|| StoreError::Corrupt(format!("check state `{text}`")))
}

/// A stored probe verdict.
pub fn decode_verdict(text: &str) -> Result<ProbeVerdict, StoreError> {
    crate::health::parse_verdict(text)
        .ok_or_else(|| StoreError::Corrupt(format!("probe verdict `{text}`")))
}

/// A result's resolved conditions, stored as a JSON array of `[held, text]` pairs.
pub fn encode_conditions(conditions: &[(bool, String)]) -> String {
    // Booleans and strings always serialize.
    serde_json::to_string(conditions).unwrap_or_else(|_| "[]".to_owned())
}

/// A result's resolved conditions from their stored JSON.
pub fn decode_conditions(check: &str, text: &str) -> Result<Vec<(bool, String)>, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("check `{check}` result conditions: {e}")))
}

/// The certificates a result saw, as a JSON array; `None` (SQL NULL) when it saw none.
pub fn encode_certificates(certificates: &[crate::CertSeen]) -> Option<String> {
    if certificates.is_empty() {
        return None;
    }
    serde_json::to_string(certificates).ok()
}

/// The certificates a result saw, from their stored JSON (NULL: none).
pub fn decode_certificates(
    check: &str,
    text: Option<&str>,
) -> Result<Vec<crate::CertSeen>, StoreError> {
    text.map_or(Ok(Vec::new()), |text| {
        serde_json::from_str(text)
            .map_err(|e| StoreError::Corrupt(format!("check `{check}` result certificates: {e}")))
    })
}

/// A stored roll-up. The histogram may be shorter or longer than the current layout's: merging
/// and percentiles handle any length, as `Rollup::merge` documents.
pub fn decode_rollup(
    check: &str,
    minute_ms: i64,
    count: i64,
    failures: i64,
    buckets: &str,
) -> Result<Rollup, StoreError> {
    Ok(Rollup {
        minute_ms,
        count: decode_count(count, "roll-up count", check)?,
        failures: decode_count(failures, "roll-up failures", check)?,
        buckets: serde_json::from_str(buckets).map_err(|e| {
            StoreError::Corrupt(format!("check `{check}` roll-up {minute_ms} buckets: {e}"))
        })?,
    })
}

/// A notification's content from its stored JSON.
pub fn decode_notice(
    id: i64,
    text: &str,
) -> Result<steward_core::alert::notice::Notice, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("notification {id} notice: {e}")))
}

/// A stored notification state.
pub fn decode_notification_state(
    text: &str,
) -> Result<crate::notifications::NotificationState, StoreError> {
    crate::notifications::NotificationState::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("notification state `{text}`")))
}

/// A notification's stored attempt count, which must fit a `u32`.
pub fn decode_attempt_count(id: i64, n: i64) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("notification {id} attempts {n}")))
}

/// An attempt's stored reply code, which must fit a `u16`.
pub fn decode_attempt_status(id: i64, n: Option<i64>) -> Result<Option<u16>, StoreError> {
    n.map(|n| {
        u16::try_from(n)
            .map_err(|_| StoreError::Corrupt(format!("notification {id} attempt status {n}")))
    })
    .transpose()
}

/// A group's route (child indices from the root) from its stored JSON array.
pub fn decode_route_path(key: &str, text: &str) -> Result<Vec<usize>, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("alert group `{key}` route path: {e}")))
}

/// A group's clock from its stored JSON.
pub fn decode_group_clock(
    key: &str,
    text: &str,
) -> Result<steward_core::alert::group::GroupClock, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("alert group `{key}` clock: {e}")))
}

/// A stored row count, never negative.
pub fn decode_row_count(n: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{what}: count {n}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_round_trip_and_damage_is_corrupt() {
        use steward_core::alert::route::Matcher;
        let matchers: Vec<Matcher> = [r#"a="x \"y\"""#, r#"b=~"web-\\d+|db""#, "c!=", "d!~e"]
            .iter()
            .map(|m| Matcher::parse(m).expect("matcher"))
            .collect();
        assert_eq!(
            decode_matchers(&encode_matchers(&matchers)).ok(),
            Some(matchers)
        );
        for damaged in ["", "{}", "[1]", r#"["no operator"]"#, r#"["a=~\"(\""]"#] {
            assert!(
                matches!(decode_matchers(damaged), Err(StoreError::Corrupt(_))),
                "{damaged}"
            );
        }
        assert!(matches!(
            decode_fingerprint("xyz"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            decode_alert_state("on"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            decode_severity("page"),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(
            decode_severity("critical").ok(),
            Some(steward_core::alert::Severity::Critical)
        );
    }

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
