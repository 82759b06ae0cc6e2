//! What a notification says: the snapshot of a group taken when its clock said to notify
//! ([`super::group`]). It is written to the outbox before anything is sent, and rendered for
//! its receiver's kind only when sent, so a retry sends the same alerts the group held then.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::group::Reason;
use super::webhook::{
    AlertJson, EncodedAlert, NotifiedAlert, WebhookBody, webhook_body, webhook_body_with,
};
use super::{AlertState, Fingerprint};
use crate::registry::Labels;

/// A notification's content.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Notice {
    /// The receiver it goes to.
    pub receiver: String,
    /// The group it is about ([`group_key`]).
    pub group_key: String,
    /// The labels the group is keyed by.
    pub group_labels: Labels,
    /// Why it was sent.
    pub reason: Reason,
    /// The group's alerts then: firing ones, and resolved ones the receiver had been told fired.
    pub alerts: Vec<NotifiedAlert>,
    /// Its alerts' JSON written beforehand, if any ([`Notice::encoded`]).
    #[serde(skip)]
    pub encodings: Encodings,
}

/// The JSON of a notice's alerts written beforehand, alert by alert. A cache: it takes no part
/// in comparisons, and an entry that does not match its alert is not used.
#[derive(Clone, Default)]
pub struct Encodings(Vec<Arc<EncodedAlert>>);

impl PartialEq for Encodings {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Encodings {}

impl std::fmt::Debug for Encodings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encodings({})", self.0.len())
    }
}

impl Notice {
    /// A notice of alerts whose JSON is written already.
    pub fn encoded(
        receiver: String,
        group_key: String,
        group_labels: Labels,
        reason: Reason,
        alerts: Vec<Arc<EncodedAlert>>,
    ) -> Self {
        Self {
            receiver,
            group_key,
            group_labels,
            reason,
            alerts: alerts.iter().map(|a| a.alert().clone()).collect(),
            encodings: Encodings(alerts),
        }
    }

    /// Firing while any of its alerts fires.
    pub fn status(&self) -> AlertState {
        if self.alerts.iter().any(|a| a.state == AlertState::Firing) {
            AlertState::Firing
        } else {
            AlertState::Resolved
        }
    }

    /// The fingerprints of its alerts, in order.
    pub fn fingerprints(&self) -> Vec<Fingerprint> {
        self.alerts.iter().map(|a| a.fingerprint).collect()
    }

    /// Alertmanager's webhook JSON for it, keeping at most `max_alerts` alerts (0: all).
    pub fn webhook_body(&self, max_alerts: usize, external_url: &str) -> WebhookBody<'_> {
        webhook_body(
            &self.receiver,
            &self.group_key,
            &self.group_labels,
            &self.alerts,
            max_alerts,
            external_url,
        )
    }

    /// [`Notice::webhook_body`] as JSON, copying the alerts' JSON written beforehand.
    pub fn webhook_json(
        &self,
        max_alerts: usize,
        external_url: &str,
    ) -> Result<Vec<u8>, serde_json::Error> {
        let utc = crate::schedule::Zone::utc();
        let body = webhook_body_with(
            &self.receiver,
            &self.group_key,
            &self.group_labels,
            &self.alerts,
            max_alerts,
            external_url,
            |index, alert| match self.encoding(index).and_then(EncodedAlert::webhook) {
                Some(raw) => AlertJson::Raw(raw),
                None => AlertJson::Fields(super::webhook::webhook_alert(alert, &utc)),
            },
        );
        serde_json::to_vec(&body)
    }

    /// The encoding of alert `index`, when it was written from that alert.
    fn encoding(&self, index: usize) -> Option<&EncodedAlert> {
        let encoded = self.encodings.0.get(index)?;
        (Some(encoded.alert()) == self.alerts.get(index)).then_some(&**encoded)
    }
}

/// Stored as its fields, the alerts' JSON copied where it was written beforehand.
impl Serialize for Notice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Stored<'a> {
            receiver: &'a str,
            group_key: &'a str,
            group_labels: &'a Labels,
            reason: Reason,
            alerts: Vec<AlertJson<'a, &'a NotifiedAlert>>,
        }
        Stored {
            receiver: &self.receiver,
            group_key: &self.group_key,
            group_labels: &self.group_labels,
            reason: self.reason,
            alerts: self
                .alerts
                .iter()
                .enumerate()
                .map(
                    |(index, alert)| match self.encoding(index).and_then(EncodedAlert::stored) {
                        Some(raw) => AlertJson::Raw(raw),
                        None => AlertJson::Fields(alert),
                    },
                )
                .collect(),
        }
        .serialize(serializer)
    }
}

/// Names a group: the route that took its alerts (child indices from the root), its receiver
/// and its grouping labels, e.g. `/0/2:ops:{service="api"}`. Stable across restarts for the
/// same config, so a stored group's clock is found again.
pub fn group_key(path: &[usize], receiver: &str, labels: &Labels) -> String {
    let mut key = String::from("/");
    key.push_str(
        &path
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("/"),
    );
    key.push(':');
    key.push_str(receiver);
    key.push_str(":{");
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        key.push_str(name);
        key.push('=');
        // JSON quoting escapes quotes and control characters in the value.
        key.push_str(&serde_json::Value::String(value.clone()).to_string());
    }
    key.push('}');
    key
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

    #[test]
    fn group_keys_name_route_receiver_and_labels() {
        assert_eq!(group_key(&[], "ops", &Labels::new()), "/:ops:{}");
        assert_eq!(
            group_key(
                &[0, 2],
                "ops",
                &labels(&[("service", "api"), ("env", "p\"r")])
            ),
            r#"/0/2:ops:{env="p\"r",service="api"}"#
        );
    }

    #[test]
    fn a_notice_round_trips_through_json() {
        let notice = Notice {
            receiver: "ops".into(),
            group_key: "/:ops:{}".into(),
            group_labels: Labels::new(),
            reason: Reason::Changed,
            alerts: vec![NotifiedAlert {
                fingerprint: Fingerprint(0xabc),
                state: AlertState::Resolved,
                labels: labels(&[("alertname", "Down")]).into(),
                annotations: Labels::new().into(),
                starts_at_ms: 1,
                ends_at_ms: Some(2),
                generator_url: None,
            }],
            encodings: Default::default(),
        };
        let json = serde_json::to_string(&notice).unwrap();
        assert!(
            json.contains(r#""fingerprint":"0000000000000abc""#),
            "{json}"
        );
        assert!(json.contains(r#""reason":"changed""#), "{json}");
        let back: Notice = serde_json::from_str(&json).unwrap();
        assert_eq!(back, notice);
        assert_eq!(back.status(), AlertState::Resolved);
    }

    fn alert(instance: &str, state: AlertState, starts_at_ms: i64) -> NotifiedAlert {
        let l = labels(&[("alertname", "Down"), ("instance", instance)]);
        NotifiedAlert {
            fingerprint: Fingerprint::of(&l),
            state,
            labels: l.into(),
            annotations: labels(&[("summary", "a \"quoted\" é")]).into(),
            starts_at_ms,
            ends_at_ms: (state == AlertState::Resolved).then_some(starts_at_ms + 1_500),
            generator_url: Some("http://prom/graph".into()),
        }
    }

    #[test]
    fn a_notice_of_encoded_alerts_writes_the_same_json_as_one_written_from_its_fields() {
        let encoded: Vec<Arc<EncodedAlert>> = [
            alert("b", AlertState::Firing, 2_000),
            alert("a", AlertState::Resolved, 1_000),
            alert("c", AlertState::Firing, 1_000),
        ]
        .into_iter()
        .map(|a| Arc::new(EncodedAlert::new(a)))
        .collect();
        let notice = Notice::encoded(
            "ops".into(),
            "/:ops:{}".into(),
            labels(&[("alertname", "Down")]),
            Reason::Changed,
            encoded,
        );
        let plain = Notice {
            encodings: Encodings::default(),
            ..notice.clone()
        };
        assert_eq!(
            serde_json::to_string(&notice).unwrap(),
            serde_json::to_string(&plain).unwrap()
        );
        for max_alerts in [0, 2] {
            assert_eq!(
                notice.webhook_json(max_alerts, "http://steward").unwrap(),
                serde_json::to_vec(&plain.webhook_body(max_alerts, "http://steward")).unwrap(),
                "max_alerts {max_alerts}"
            );
        }
        let back: Notice = serde_json::from_str(&serde_json::to_string(&notice).unwrap()).unwrap();
        assert_eq!(back, notice);
    }

    #[test]
    fn an_encoding_that_no_longer_matches_its_alert_is_not_used() {
        let mut notice = Notice::encoded(
            "ops".into(),
            "/:ops:{}".into(),
            Labels::new(),
            Reason::First,
            vec![Arc::new(EncodedAlert::new(alert(
                "a",
                AlertState::Firing,
                1_000,
            )))],
        );
        notice.alerts[0].state = AlertState::Resolved;
        notice.alerts[0].ends_at_ms = Some(3_000);
        let stored: serde_json::Value = serde_json::to_value(&notice).unwrap();
        assert_eq!(stored["alerts"][0]["state"], "resolved");
        let body: serde_json::Value =
            serde_json::from_slice(&notice.webhook_json(0, "").unwrap()).unwrap();
        assert_eq!(body["alerts"][0]["status"], "resolved");
        assert_eq!(body["status"], "resolved");
    }
}
