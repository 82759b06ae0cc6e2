//! Reading alerts that other systems post: Alertmanager's v2 `postableAlerts` (a JSON array of
//! `{labels, annotations, startsAt, endsAt, generatorURL}`, so Prometheus and any existing
//! sender work unchanged) or Steward's own `{"alerts": [...]}` with snake_case keys and an
//! optional `severity`. Every problem is reported with its place (`alerts[3].labels.Foo: …`),
//! and a call with any problem is refused whole.

use serde_json::{Map, Value};

use super::{
    IncomingAlert, MAX_ALERTS_PER_CALL, MAX_ANNOTATION_VALUE_CHARS, MAX_LABEL_VALUE_CHARS,
    MAX_LABELS, Severity, is_label_name,
};
use crate::registry::Labels;
use crate::schedule::timing::parse_instant;

/// At most this many problems are listed; the rest are counted.
const MAX_LISTED_PROBLEMS: usize = 20;

/// Alertmanager's "not set" time (Go's zero `time.Time`).
const GO_ZERO_TIME_PREFIX: &str = "0001-01-01T00:00:00";

/// Why posted alerts were refused: every problem found, each with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.problems.join("; "))]
pub struct IngestError {
    /// One line per problem, such as `alerts[0].labels: must not be empty`.
    pub problems: Vec<String>,
}

/// Parses a posted body: a JSON array of alerts, or an object whose `alerts` is one.
pub fn parse_alerts(body: &[u8]) -> Result<Vec<IncomingAlert>, IngestError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| IngestError {
        problems: vec![format!("the body is not JSON: {e}")],
    })?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut object) => {
            let unknown: Vec<String> = object
                .keys()
                .filter(|k| k.as_str() != "alerts")
                .map(|k| format!("`{k}`: unknown field (expected `alerts`)"))
                .collect();
            if !unknown.is_empty() {
                return Err(IngestError { problems: unknown });
            }
            match object.remove("alerts") {
                Some(Value::Array(items)) => items,
                Some(_) => return Err(one("`alerts`: must be an array")),
                None => return Err(one("`alerts`: missing")),
            }
        }
        _ => {
            return Err(one(
                "the body must be an array of alerts or an object with `alerts`",
            ));
        }
    };
    if items.is_empty() {
        return Err(one("no alerts"));
    }
    if items.len() > MAX_ALERTS_PER_CALL {
        return Err(one(format!(
            "{} alerts in one call; at most {MAX_ALERTS_PER_CALL}",
            items.len()
        )));
    }
    let mut problems = Problems::default();
    let alerts: Vec<IncomingAlert> = items
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| read_alert(&mut problems, &format!("alerts[{i}]"), item))
        .collect();
    problems.finish()?;
    Ok(alerts)
}

fn one(problem: impl Into<String>) -> IngestError {
    IngestError {
        problems: vec![problem.into()],
    }
}

/// The problems found so far, listed up to a bound.
#[derive(Default)]
struct Problems {
    listed: Vec<String>,
    more: usize,
}

impl Problems {
    fn add(&mut self, place: &str, problem: impl std::fmt::Display) {
        if self.listed.len() < MAX_LISTED_PROBLEMS {
            self.listed.push(format!("`{place}`: {problem}"));
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self) -> Result<(), IngestError> {
        if self.listed.is_empty() {
            return Ok(());
        }
        if self.more > 0 {
            self.listed.push(format!("and {} more problems", self.more));
        }
        Err(IngestError {
            problems: self.listed,
        })
    }
}

/// The keys an alert may carry: Alertmanager's camelCase and Steward's snake_case.
const ALERT_KEYS: [&str; 9] = [
    "labels",
    "annotations",
    "severity",
    "startsAt",
    "starts_at",
    "endsAt",
    "ends_at",
    "generatorURL",
    "generator_url",
];

fn read_alert(problems: &mut Problems, place: &str, item: Value) -> Option<IncomingAlert> {
    let Value::Object(mut fields) = item else {
        problems.add(place, "must be an object");
        return None;
    };
    let before = problems.listed.len() + problems.more;
    for key in fields.keys() {
        if !ALERT_KEYS.contains(&key.as_str()) {
            problems.add(
                &format!("{place}.{key}"),
                "unknown field (expected labels, annotations, severity, startsAt, endsAt, generatorURL)",
            );
        }
    }
    let labels = read_pairs(
        problems,
        &format!("{place}.labels"),
        fields.remove("labels"),
        MAX_LABEL_VALUE_CHARS,
        true,
    );
    let annotations = read_pairs(
        problems,
        &format!("{place}.annotations"),
        fields.remove("annotations"),
        MAX_ANNOTATION_VALUE_CHARS,
        false,
    );
    let severity = read_severity(problems, place, fields.remove("severity"), &labels);
    let starts_at_ms = read_time(problems, place, &mut fields, "startsAt", "starts_at");
    let ends_at_ms = read_time(problems, place, &mut fields, "endsAt", "ends_at");
    if let (Some(start), Some(end)) = (starts_at_ms, ends_at_ms)
        && end < start
    {
        problems.add(place, "ends before it starts");
    }
    let generator_url = match take_either(&mut fields, "generatorURL", "generator_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) if url.len() <= MAX_LABEL_VALUE_CHARS => Some(url),
        Some(Value::String(_)) => {
            problems.add(
                &format!("{place}.generatorURL"),
                format!("longer than {MAX_LABEL_VALUE_CHARS} characters"),
            );
            None
        }
        Some(_) => {
            problems.add(&format!("{place}.generatorURL"), "must be a string");
            None
        }
    };
    if problems.listed.len() + problems.more > before {
        return None;
    }
    Some(IncomingAlert {
        labels,
        annotations,
        severity: severity?,
        starts_at_ms,
        ends_at_ms,
        generator_url,
    })
}

/// Removes `camel` or `snake` from `fields` (either spelling; the first present).
fn take_either(fields: &mut Map<String, Value>, camel: &str, snake: &str) -> Option<Value> {
    fields.remove(camel).or_else(|| fields.remove(snake))
}

/// A string-to-string object: labels (`required`, names as Prometheus allows) or annotations.
fn read_pairs(
    problems: &mut Problems,
    place: &str,
    value: Option<Value>,
    max_chars: usize,
    required: bool,
) -> Labels {
    let mut pairs = Labels::new();
    let object = match value {
        None | Some(Value::Null) if required => {
            problems.add(place, "missing (an alert is identified by its labels)");
            return pairs;
        }
        None | Some(Value::Null) => return pairs,
        Some(Value::Object(object)) => object,
        Some(_) => {
            problems.add(place, "must be an object of strings");
            return pairs;
        }
    };
    if required && object.is_empty() {
        problems.add(
            place,
            "must not be empty (an alert is identified by its labels)",
        );
    }
    if object.len() > MAX_LABELS {
        problems.add(
            place,
            format!("{} entries; at most {MAX_LABELS}", object.len()),
        );
        return pairs;
    }
    for (name, value) in object {
        let here = format!("{place}.{name}");
        if required && !is_label_name(&name) {
            problems.add(
                &here,
                "not a label name (letters, digits and `_`, not starting with a digit)",
            );
            continue;
        }
        match value {
            Value::String(text) if text.chars().count() <= max_chars => {
                pairs.insert(name, text);
            }
            Value::String(_) => problems.add(&here, format!("longer than {max_chars} characters")),
            _ => problems.add(&here, "must be a string"),
        }
    }
    pairs
}

/// `severity`, else the `severity` label when it names one, else warning.
fn read_severity(
    problems: &mut Problems,
    place: &str,
    value: Option<Value>,
    labels: &Labels,
) -> Option<Severity> {
    match value {
        None | Some(Value::Null) => Some(
            labels
                .get("severity")
                .and_then(|s| Severity::parse(s))
                .unwrap_or_default(),
        ),
        Some(Value::String(text)) => Severity::parse(&text).or_else(|| {
            problems.add(
                &format!("{place}.severity"),
                format!("`{text}` is not critical, warning or info"),
            );
            None
        }),
        Some(_) => {
            problems.add(&format!("{place}.severity"), "must be a string");
            None
        }
    }
}

/// An RFC 3339 time; Go's zero time (how Alertmanager clients write "unset") is no time.
fn read_time(
    problems: &mut Problems,
    place: &str,
    fields: &mut Map<String, Value>,
    camel: &str,
    snake: &str,
) -> Option<i64> {
    match take_either(fields, camel, snake) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.starts_with(GO_ZERO_TIME_PREFIX) || text.is_empty() => {
            None
        }
        Some(Value::String(text)) => match parse_instant(&text) {
            Ok(ms) => Some(ms),
            Err(problem) => {
                problems.add(&format!("{place}.{camel}"), problem);
                None
            }
        },
        Some(_) => {
            problems.add(
                &format!("{place}.{camel}"),
                "must be an RFC 3339 time string",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<Vec<IncomingAlert>, IngestError> {
        parse_alerts(text.as_bytes())
    }

    #[test]
    fn alertmanager_postable_alerts_are_read_unchanged() {
        let alerts = parse(
            r#"[
              {"labels": {"alertname": "ApiDown", "service": "api", "severity": "critical"},
               "annotations": {"summary": "API down > 1 min"},
               "startsAt": "2026-12-01T08:00:00Z",
               "endsAt": "0001-01-01T00:00:00Z",
               "generatorURL": "http://prometheus:9090/graph?g0.expr=up"},
              {"labels": {"alertname": "DiskFull"}, "endsAt": "2026-12-01T09:00:00+01:00"}
            ]"#,
        )
        .unwrap();
        assert_eq!(alerts.len(), 2);
        let api = &alerts[0];
        assert_eq!(api.severity, Severity::Critical, "from the severity label");
        assert_eq!(api.starts_at_ms, Some(1_796_112_000_000));
        assert_eq!(api.ends_at_ms, None, "Go's zero time means unset");
        assert_eq!(api.annotations["summary"], "API down > 1 min");
        assert_eq!(api.fingerprint().to_string().len(), 16);
        let disk = &alerts[1];
        assert_eq!(disk.severity, Severity::Warning, "the default");
        assert_eq!(disk.ends_at_ms, Some(1_796_112_000_000));
        assert!(disk.annotations.is_empty());
    }

    #[test]
    fn stewards_own_shape_takes_snake_case_and_a_severity() {
        let alerts = parse(
            r#"{"alerts": [{"labels": {"alertname": "QueueDeep", "workspace": "trading"},
                            "severity": "INFO", "starts_at": "2026-12-01T08:00:00+00:00"}]}"#,
        )
        .unwrap();
        assert_eq!(alerts[0].severity, Severity::Info);
        assert_eq!(alerts[0].starts_at_ms, Some(1_796_112_000_000));
    }

    #[test]
    fn every_problem_is_listed_with_its_place() {
        let err = parse(
            r#"[
              {"labels": {}},
              {"labels": {"1bad": "x", "ok": 3}, "severity": "page", "colour": "red"},
              {"labels": {"a": "b"}, "startsAt": "yesterday"},
              {"labels": {"a": "b"}, "startsAt": "2026-12-01T09:00:00Z", "endsAt": "2026-12-01T08:00:00Z"},
              "not an alert"
            ]"#,
        )
        .unwrap_err();
        let text = err.to_string();
        for expected in [
            "`alerts[0].labels`: must not be empty",
            "`alerts[1].colour`: unknown field",
            "`alerts[1].labels.1bad`: not a label name",
            "`alerts[1].labels.ok`: must be a string",
            "`alerts[1].severity`: `page` is not critical, warning or info",
            "`alerts[2].startsAt`: `yesterday` is not an RFC 3339 time",
            "`alerts[3]`: ends before it starts",
            "`alerts[4]`: must be an object",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in {text}");
        }
    }

    #[test]
    fn bodies_that_are_not_alerts_are_refused() {
        for (body, expected) in [
            ("{", "not JSON"),
            ("[]", "no alerts"),
            ("42", "must be an array"),
            (r#"{"alert": []}"#, "`alert`: unknown field"),
            (r#"{"alerts": {}}"#, "`alerts`: must be an array"),
        ] {
            let err = parse(body).unwrap_err().to_string();
            assert!(err.contains(expected), "{body}: {err}");
        }
        let many = format!("[{}]", vec![r#"{"labels":{"a":"b"}}"#; 10_001].join(","));
        assert!(
            parse(&many)
                .unwrap_err()
                .to_string()
                .contains("at most 10000")
        );
    }

    #[test]
    fn problems_are_listed_up_to_a_bound() {
        let body = format!("[{}]", vec![r#"{"labels":{}}"#; 50].join(","));
        let err = parse(&body).unwrap_err();
        assert_eq!(err.problems.len(), MAX_LISTED_PROBLEMS + 1);
        assert_eq!(err.problems.last().unwrap(), "and 30 more problems");
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_alerts(&body);
        }

        #[test]
        fn alert_like_json_never_panics_and_accepted_alerts_have_labels(
            name in "[a-zA-Z_0-9.-]{0,6}",
            value in proptest::option::of(".{0,6}"),
            severity in proptest::option::of("[a-zA-Z]{0,9}"),
            starts in proptest::option::of("[0-9T:Z+-]{0,25}"),
        ) {
            let mut labels = serde_json::Map::new();
            labels.insert(name, value.map_or(Value::Null, Value::from));
            let mut alert = serde_json::json!({ "labels": labels });
            if let Some(s) = severity { alert["severity"] = s.into(); }
            if let Some(s) = starts { alert["startsAt"] = s.into(); }
            let body = serde_json::to_vec(&serde_json::json!([alert])).unwrap();
            if let Ok(alerts) = parse_alerts(&body) {
                prop_assert_eq!(alerts.len(), 1);
                prop_assert!(!alerts[0].labels.is_empty());
                prop_assert!(alerts[0].labels.keys().all(|k| is_label_name(k)));
            }
        }
    }
}
