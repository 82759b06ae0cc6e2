//! Alerts, notifications and silences in Steward's own shape: `/api/v1/alerts…`,
//! `/api/v1/notifications` and `/api/v1/silences…` (Alertmanager's shape is in
//! [`crate::alertmanager`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// One alert of Alertmanager's `postableAlerts` (`postableAlert`), with Steward's optional
/// `severity`. The snake_case spellings of Steward's form ([`NewAlert`]) are read too; any
/// other field is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostableAlert {
    /// What identifies it: label names are letters, digits and `_`, not starting with a digit;
    /// at least one.
    pub labels: BTreeMap<String, String>,
    /// What describes it (`summary`, `description`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// `critical`, `warning` or `info` (any case); without it, the `severity` label when it
    /// names one, else `warning`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// When it started firing (default: when it is received). Go's zero time
    /// (`0001-01-01T00:00:00Z`) and the empty string mean unset.
    #[serde(
        rename = "startsAt",
        alias = "starts_at",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(format = DateTime)]
    pub starts_at: Option<String>,
    /// When it ends: a time past resolves it. Unset like `startsAt`.
    #[serde(
        rename = "endsAt",
        alias = "ends_at",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
    /// A link back to its source.
    #[serde(
        rename = "generatorURL",
        alias = "generator_url",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub generator_url: Option<String>,
}

/// One alert of Steward's form ([`AlertBatch`]): [`PostableAlert`] with snake_case keys, whose
/// camelCase spellings are read too; any other field is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAlert {
    /// What identifies it: label names are letters, digits and `_`, not starting with a digit;
    /// at least one.
    pub labels: BTreeMap<String, String>,
    /// What describes it (`summary`, `description`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// `critical`, `warning` or `info` (any case); without it, the `severity` label when it
    /// names one, else `warning`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// When it started firing (default: when it is received). Go's zero time
    /// (`0001-01-01T00:00:00Z`) and the empty string mean unset.
    #[serde(alias = "startsAt", default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub starts_at: Option<String>,
    /// When it ends: a time past resolves it. Unset like `starts_at`.
    #[serde(alias = "endsAt", default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
    /// A link back to its source.
    #[serde(
        alias = "generatorURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub generator_url: Option<String>,
}

/// Steward's form of posted alerts: `{"alerts": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertBatch {
    /// The alerts: 1 to 10,000, all stored or none.
    pub alerts: Vec<NewAlert>,
}

/// The body of `POST /api/v1/alerts` and `POST /api/v2/alerts`: Alertmanager's
/// `postableAlerts` (an array) or Steward's object form. Every problem is reported with its
/// place (`alerts[3].labels.Foo`), and a call with any is refused whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PostAlerts {
    /// Alertmanager's `postableAlerts`: an array of 1 to 10,000 alerts.
    Postable(Vec<PostableAlert>),
    /// Steward's form, `{"alerts": [...]}` with snake_case keys.
    Batch(AlertBatch),
}

/// A posted alert left alone because a built-in rule raised an alert of its label set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefusedAlert {
    /// Where it was in the call (0-based).
    pub index: usize,
    /// The hash of its label set, 16 hex digits.
    pub fingerprint: String,
    /// Why it was left alone.
    pub reason: String,
}

/// What posting alerts did: `POST /api/v1/alerts` and `POST /api/v2/alerts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertsReceived {
    /// Alerts taken (all but the refused).
    pub accepted: usize,
    /// Alerts that started firing.
    pub fired: usize,
    /// Resolved alerts that fired again (a new episode).
    pub refired: usize,
    /// Alerts that resolved.
    pub resolved: usize,
    /// Alerts already in the state posted.
    pub unchanged: usize,
    /// Alerts left alone: a built-in rule owns their label sets.
    pub refused: Vec<RefusedAlert>,
}

/// Who acknowledged an alert's current episode, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertAck {
    /// The key that acknowledged it, by name.
    pub by: String,
    /// When.
    #[schema(format = DateTime)]
    pub at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Why, or what is being done (empty when none was given).
    pub note: String,
}

/// An alert as Steward keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    /// The hash of its label set, 16 hex digits: its identity.
    pub fingerprint: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations, as last received.
    pub annotations: BTreeMap<String, String>,
    /// `critical`, `warning` or `info`, as last received.
    pub severity: String,
    /// Where it comes from: `external` (posted) or `rule:NAME` (a built-in rule).
    pub source: String,
    /// `firing` or `resolved`.
    pub state: String,
    /// When its current (or latest) firing episode started.
    #[schema(format = DateTime)]
    pub starts_at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub starts_at_ms: i64,
    /// When it resolved (or will, when its sender said so); null when not known.
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    pub ends_at_ms: Option<i64>,
    /// When it was last received (posted or re-evaluated).
    #[schema(format = DateTime)]
    pub last_received: String,
    /// The same, in milliseconds since the Unix epoch.
    pub last_received_ms: i64,
    /// A link back to its source; null when there is none.
    pub generator_url: Option<String>,
    /// Its firing episodes so far, counting from 1; a new one starts each time it fires
    /// again after resolving.
    pub episode: i64,
    /// The acknowledgement of its current episode; null when none (cleared when it fires
    /// again).
    pub ack: Option<AlertAck>,
}

/// A page of alerts: `GET /api/v1/alerts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertList {
    /// The alerts, most recently received first.
    pub alerts: Vec<Alert>,
}

/// The query of `GET /api/v1/alerts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AlertListQuery {
    /// Only `firing` or only `resolved` alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Only alerts of this severity: `critical`, `warning` or `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// `name=value` pairs separated by commas; every one must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// Alerts at most (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The body of `POST /api/v1/alerts/{fingerprint}/ack` (which may also have none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckAlert {
    /// Why, or what is being done about it (at most 4096 characters; default empty).
    #[serde(default)]
    pub note: String,
}

/// A notification in the outbox, written before it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    /// Its id; ascending in the order notifications were decided.
    pub id: i64,
    /// The receiver it goes to.
    pub receiver: String,
    /// The group of alerts it is about, e.g. `/0/2:ops:{service="api"}`.
    pub group_key: String,
    /// Why it was sent: `first`, `changed` or `repeat`.
    pub reason: String,
    /// `firing` while any of its alerts fires, else `resolved`.
    pub status: String,
    /// How many alerts it carries.
    pub alerts: usize,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was decided.
    #[schema(format = DateTime)]
    pub created: String,
    /// The same, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When its next attempt is due (while pending).
    #[schema(format = DateTime)]
    pub next_attempt: String,
    /// The same, in milliseconds since the Unix epoch.
    pub next_attempt_ms: i64,
    /// When it stops being retried.
    #[schema(format = DateTime)]
    pub expires: String,
    /// The same, in milliseconds since the Unix epoch.
    pub expires_ms: i64,
    /// When it was delivered or given up; null until then.
    #[schema(format = DateTime)]
    pub finished: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    pub finished_ms: Option<i64>,
    /// The latest attempt's error; null when it did not fail.
    pub last_error: Option<String>,
}

/// One attempt to send a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotificationAttempt {
    /// When it started.
    #[schema(format = DateTime)]
    pub at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// How long it took, in milliseconds.
    pub latency_ms: i64,
    /// The HTTP status (or SMTP reply code) the receiver answered; null when it did not answer.
    pub status: Option<u16>,
    /// What went wrong; null when nothing did.
    pub error: Option<String>,
}

/// A notification with its attempts, as an alert's detail lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotificationDetail {
    /// The notification.
    #[serde(flatten)]
    pub notification: Notification,
    /// Its attempts, oldest first.
    pub attempt_log: Vec<NotificationAttempt>,
}

/// An alert with its newest notifications: `GET /api/v1/alerts/{fingerprint}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertDetail {
    /// The alert.
    #[serde(flatten)]
    pub alert: Alert,
    /// The newest notifications carrying it (at most 20), newest first; those also carrying
    /// alerts the caller may not see are left out.
    pub notifications: Vec<NotificationDetail>,
}

/// The outbox: `GET /api/v1/notifications`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotificationList {
    /// The notifications, newest first.
    pub notifications: Vec<Notification>,
}

/// The query of `GET /api/v1/notifications`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NotificationListQuery {
    /// Only this receiver's notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    /// Only `pending`, `delivered` or `failed` ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Notifications at most (1 to 1000, default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A silence to create: the body of `POST /api/v1/silences`. Give exactly one of `ends_at_ms`
/// and `duration`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// Label matchers, all of which must match: `name=value`, `name!=value`, `name=~regex`,
    /// `name!~regex`.
    pub matchers: Vec<String>,
    /// When it starts, in milliseconds since the Unix epoch (default: now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at_ms: Option<i64>,
    /// When it ends, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at_ms: Option<i64>,
    /// How long from its start, e.g. `2h` or `90m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Why: shown with the silence.
    pub comment: String,
}

/// A silence: alerts every matcher matches are not notified while it is in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Silence {
    /// Its id.
    pub id: i64,
    /// Its matchers, all of which must match, written as they are parsed
    /// (`alertname="ApiDown"`).
    pub matchers: Vec<String>,
    /// When it starts.
    #[schema(format = DateTime)]
    pub starts_at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub starts_at_ms: i64,
    /// When it ends (exclusive); moved to the present when it is ended early.
    #[schema(format = DateTime)]
    pub ends_at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub ends_at_ms: i64,
    /// The key that created it, by name.
    pub created_by: String,
    /// When it was created.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Why.
    pub comment: String,
}

/// The silences in force or to come: `GET /api/v1/silences`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SilenceList {
    /// The silences, by id.
    pub silences: Vec<Silence>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_forms_of_posted_alerts_parse_and_round_trip() {
        let array = json!([{
            "labels": {"alertname": "ApiDown"},
            "startsAt": "2026-12-01T08:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
        }]);
        let parsed: PostAlerts = serde_json::from_value(array.clone()).unwrap();
        let PostAlerts::Postable(alerts) = &parsed else {
            panic!("an array is Alertmanager's form: {parsed:?}");
        };
        assert_eq!(
            alerts[0].generator_url.as_deref(),
            Some("http://prometheus:9090/graph")
        );
        assert_eq!(serde_json::to_value(&parsed).unwrap(), array);

        let object = json!({"alerts": [{
            "labels": {"alertname": "QueueDeep"},
            "severity": "info",
            "starts_at": "2026-12-01T08:00:00Z",
        }]});
        let parsed: PostAlerts = serde_json::from_value(object.clone()).unwrap();
        let PostAlerts::Batch(batch) = &parsed else {
            panic!("an object is Steward's form: {parsed:?}");
        };
        assert_eq!(batch.alerts[0].severity.as_deref(), Some("info"));
        assert_eq!(serde_json::to_value(&parsed).unwrap(), object);
    }

    #[test]
    fn either_form_reads_the_other_forms_spelling() {
        let array: PostAlerts = serde_json::from_value(json!([{
            "labels": {"a": "b"}, "starts_at": "2026-12-01T08:00:00Z", "generator_url": "x",
        }]))
        .unwrap();
        let PostAlerts::Postable(alerts) = &array else {
            panic!("{array:?}");
        };
        assert_eq!(alerts[0].starts_at.as_deref(), Some("2026-12-01T08:00:00Z"));
        assert_eq!(alerts[0].generator_url.as_deref(), Some("x"));
        let object: PostAlerts = serde_json::from_value(json!({"alerts": [{
            "labels": {"a": "b"}, "endsAt": "2026-12-01T08:00:00Z", "generatorURL": "x",
        }]}))
        .unwrap();
        let PostAlerts::Batch(batch) = &object else {
            panic!("{object:?}");
        };
        assert_eq!(
            batch.alerts[0].ends_at.as_deref(),
            Some("2026-12-01T08:00:00Z")
        );
        assert_eq!(batch.alerts[0].generator_url.as_deref(), Some("x"));
    }

    #[test]
    fn posted_alerts_with_unknown_fields_are_not_read() {
        for body in [
            json!([{"labels": {"a": "b"}, "colour": "red"}]),
            json!({"alerts": [], "more": true}),
            json!({"alert": []}),
            json!(42),
        ] {
            assert!(
                serde_json::from_value::<PostAlerts>(body.clone()).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn an_alert_detail_is_the_alert_with_its_notifications_beside_its_fields() {
        let alert = Alert {
            fingerprint: "00000000000000ff".to_owned(),
            labels: BTreeMap::from([("alertname".to_owned(), "ApiDown".to_owned())]),
            annotations: BTreeMap::new(),
            severity: "critical".to_owned(),
            source: "external".to_owned(),
            state: "firing".to_owned(),
            starts_at: "1970-01-01T00:00:00.000Z".to_owned(),
            starts_at_ms: 0,
            ends_at: None,
            ends_at_ms: None,
            last_received: "1970-01-01T00:00:01.000Z".to_owned(),
            last_received_ms: 1_000,
            generator_url: None,
            episode: 1,
            ack: None,
        };
        let detail = AlertDetail {
            alert,
            notifications: Vec::new(),
        };
        let value = serde_json::to_value(&detail).unwrap();
        assert_eq!(value["fingerprint"], "00000000000000ff");
        assert_eq!(value["notifications"], json!([]));
        assert!(value["ends_at_ms"].is_null() && value.get("ends_at_ms").is_some());
        assert_eq!(
            serde_json::from_value::<AlertDetail>(value).unwrap(),
            detail
        );
    }
}
