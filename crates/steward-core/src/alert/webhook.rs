//! The body of a notification as Alertmanager's webhook receiver sends it (version 4), so n8n,
//! OpenClaw or anything written for Alertmanager receives Steward's notifications unchanged.

use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

use super::{AlertState, Fingerprint};
use crate::registry::Labels;
use crate::schedule::Zone;
use crate::schedule::timing::format_instant;

/// Alertmanager's "not set" time, which its webhook sends for an alert without an end.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One alert of a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NotifiedAlert {
    /// Its identity.
    pub fingerprint: Fingerprint,
    /// Firing or resolved.
    pub state: AlertState,
    /// Its labels (shared with the alert they were taken from: a large group's notification
    /// would otherwise copy thousands of label sets).
    pub labels: Arc<Labels>,
    /// Its annotations (shared likewise).
    pub annotations: Arc<Labels>,
    /// When it started.
    pub starts_at_ms: i64,
    /// When it ended, once resolved (left out of the JSON while unset, as it is for most of a
    /// large group's alerts, whose notice is written before it is sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at_ms: Option<i64>,
    /// A link back to its source (left out of the JSON while unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

/// A notified alert with its JSON for the outbox and for webhook bodies, written when the alert
/// changed: a large group's notification then copies its alerts' JSON instead of writing it
/// anew, twice, while its receiver waits.
#[derive(Debug)]
pub struct EncodedAlert {
    alert: NotifiedAlert,
    /// As the outbox stores it (`None`: written when needed).
    stored: Option<Box<RawValue>>,
    /// As a webhook body carries it.
    webhook: Option<Box<RawValue>>,
}

impl EncodedAlert {
    /// Writes `alert`'s JSON.
    pub fn new(alert: NotifiedAlert) -> Self {
        // Labels and strings always serialize; were one not to, it is written when needed.
        let stored = serde_json::value::to_raw_value(&alert).ok();
        let webhook = serde_json::value::to_raw_value(&webhook_alert(&alert, &Zone::utc())).ok();
        Self {
            alert,
            stored,
            webhook,
        }
    }

    /// The alert.
    pub fn alert(&self) -> &NotifiedAlert {
        &self.alert
    }

    /// Its JSON as the outbox stores it.
    pub fn stored(&self) -> Option<&RawValue> {
        self.stored.as_deref()
    }

    /// Its JSON as a webhook body carries it.
    pub fn webhook(&self) -> Option<&RawValue> {
        self.webhook.as_deref()
    }
}

/// An alert in JSON written beforehand, or to be written from its fields (serializes only with
/// `serde_json`, the one serializer its raw form has meaning for).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum AlertJson<'a, A> {
    /// Written beforehand.
    Raw(&'a RawValue),
    /// To be written.
    Fields(A),
}

/// Alertmanager's webhook JSON (version 4).
pub type WebhookBody<'a> = WebhookBodyOf<WebhookAlert<'a>>;

/// Alertmanager's webhook JSON (version 4), each alert written as an `A`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookBodyOf<A> {
    /// Always "4".
    pub version: &'static str,
    /// Identifies the group (route and grouping labels).
    pub group_key: String,
    /// Alerts left out by the receiver's `max_alerts`.
    pub truncated_alerts: usize,
    /// "firing" while any alert of the group fires, else "resolved".
    pub status: &'static str,
    /// The receiver's name.
    pub receiver: String,
    /// The labels the group is keyed by.
    pub group_labels: Labels,
    /// Labels every alert shares.
    pub common_labels: Labels,
    /// Annotations every alert shares.
    pub common_annotations: Labels,
    /// Where Steward answers (its API's URL).
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// The alerts.
    pub alerts: Vec<A>,
}

/// One alert in Alertmanager's webhook JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert<'a> {
    /// "firing" or "resolved".
    pub status: &'static str,
    /// Its labels.
    pub labels: &'a Labels,
    /// Its annotations.
    pub annotations: &'a Labels,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339, or Go's zero time while it fires.
    pub ends_at: String,
    /// A link back to its source ("" when none).
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// 16 hex digits.
    pub fingerprint: String,
}

/// Builds the body for `receiver` from a group's alerts (firing first, as Alertmanager orders
/// them), keeping at most `max_alerts` (0: all).
pub fn webhook_body<'a>(
    receiver: &str,
    group_key: &str,
    group_labels: &Labels,
    alerts: &'a [NotifiedAlert],
    max_alerts: usize,
    external_url: &str,
) -> WebhookBody<'a> {
    let utc = Zone::utc();
    webhook_body_with(
        receiver,
        group_key,
        group_labels,
        alerts,
        max_alerts,
        external_url,
        |_, alert| webhook_alert(alert, &utc),
    )
}

/// [`webhook_body`], each kept alert written by `write` (given its index in `alerts`).
pub fn webhook_body_with<'a, A>(
    receiver: &str,
    group_key: &str,
    group_labels: &Labels,
    alerts: &'a [NotifiedAlert],
    max_alerts: usize,
    external_url: &str,
    mut write: impl FnMut(usize, &'a NotifiedAlert) -> A,
) -> WebhookBodyOf<A> {
    let mut ordered: Vec<(usize, &NotifiedAlert)> = alerts.iter().enumerate().collect();
    ordered.sort_by_key(|(_, a)| (a.state != AlertState::Firing, a.starts_at_ms, a.fingerprint));
    let kept = if max_alerts == 0 {
        ordered.len()
    } else {
        max_alerts.min(ordered.len())
    };
    let firing = alerts.iter().any(|a| a.state == AlertState::Firing);
    WebhookBodyOf {
        version: "4",
        group_key: group_key.to_owned(),
        truncated_alerts: ordered.len() - kept,
        status: if firing { "firing" } else { "resolved" },
        receiver: receiver.to_owned(),
        group_labels: group_labels.clone(),
        common_labels: common(alerts.iter().map(|a| &*a.labels)),
        common_annotations: common(alerts.iter().map(|a| &*a.annotations)),
        external_url: external_url.to_owned(),
        alerts: ordered
            .into_iter()
            .take(kept)
            .map(|(index, alert)| write(index, alert))
            .collect(),
    }
}

/// One alert as the webhook body carries it.
pub(crate) fn webhook_alert<'a>(alert: &'a NotifiedAlert, utc: &Zone) -> WebhookAlert<'a> {
    WebhookAlert {
        status: alert.state.as_str(),
        labels: &alert.labels,
        annotations: &alert.annotations,
        starts_at: format_instant(alert.starts_at_ms, utc),
        ends_at: alert
            .ends_at_ms
            .filter(|_| alert.state == AlertState::Resolved)
            .map_or_else(|| GO_ZERO_TIME.to_owned(), |ms| format_instant(ms, utc)),
        generator_url: alert.generator_url.clone().unwrap_or_default(),
        fingerprint: alert.fingerprint.to_string(),
    }
}

/// The pairs every one of `sets` has (empty when there are none).
fn common<'a>(mut sets: impl Iterator<Item = &'a Labels>) -> Labels {
    let Some(first) = sets.next() else {
        return Labels::new();
    };
    let mut shared = first.clone();
    for set in sets {
        shared.retain(|k, v| set.get(k) == Some(v));
    }
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn alert(service: &str, state: AlertState, starts_at_ms: i64) -> NotifiedAlert {
        let l = labels(&[("alertname", "ApiDown"), ("service", service)]);
        NotifiedAlert {
            fingerprint: Fingerprint::of(&l),
            state,
            labels: l.into(),
            annotations: labels(&[("summary", "down"), ("host", service)]).into(),
            starts_at_ms,
            ends_at_ms: (state == AlertState::Resolved).then_some(starts_at_ms + 60_000),
            generator_url: None,
        }
    }

    #[test]
    fn the_body_is_alertmanagers_webhook_json() {
        let alerts = [
            alert("web", AlertState::Resolved, 0),
            alert("api", AlertState::Firing, 1_000),
        ];
        let body = webhook_body(
            "n8n",
            "{}:{alertname=\"ApiDown\"}",
            &labels(&[("alertname", "ApiDown")]),
            &alerts,
            0,
            "http://steward:8710",
        );
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["version"], "4");
        assert_eq!(json["status"], "firing");
        assert_eq!(json["receiver"], "n8n");
        assert_eq!(json["externalURL"], "http://steward:8710");
        assert_eq!(json["truncatedAlerts"], 0);
        assert_eq!(
            json["commonLabels"],
            serde_json::json!({"alertname": "ApiDown"})
        );
        assert_eq!(
            json["commonAnnotations"],
            serde_json::json!({"summary": "down"})
        );
        assert_eq!(
            json["alerts"][0]["labels"]["service"], "api",
            "firing first"
        );
        assert_eq!(json["alerts"][0]["endsAt"], GO_ZERO_TIME);
        assert_eq!(json["alerts"][0]["generatorURL"], "");
        assert_eq!(json["alerts"][1]["status"], "resolved");
        assert_eq!(json["alerts"][1]["endsAt"], "1970-01-01T00:01:00+00:00");
        assert_eq!(
            json["alerts"][0]["fingerprint"],
            alerts[1].fingerprint.to_string()
        );
    }

    #[test]
    fn max_alerts_truncates_and_says_how_many() {
        let alerts: Vec<NotifiedAlert> = (0..5)
            .map(|i| alert(&format!("s{i}"), AlertState::Firing, i))
            .collect();
        let body = webhook_body("r", "k", &Labels::new(), &alerts, 2, "");
        assert_eq!(body.alerts.len(), 2);
        assert_eq!(body.truncated_alerts, 3);
        let resolved = [alert("a", AlertState::Resolved, 0)];
        assert_eq!(
            webhook_body("r", "k", &Labels::new(), &resolved, 0, "").status,
            "resolved"
        );
    }
}
