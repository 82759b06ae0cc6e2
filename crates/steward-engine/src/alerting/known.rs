//! The alerts the dispatcher knows, each with its notification JSON written when it was taken
//! in: a group of thousands is then notified by copying its alerts' JSON, not by writing it
//! while the receiver waits.

use std::collections::HashMap;
use std::sync::Arc;

use steward_core::alert::Fingerprint;
use steward_core::alert::webhook::{EncodedAlert, NotifiedAlert};
use steward_store::alerts::StoredAlert;

/// Alerts by fingerprint, with their encodings.
#[derive(Default)]
pub(crate) struct Known {
    alerts: HashMap<Fingerprint, (StoredAlert, Arc<EncodedAlert>)>,
}

impl Known {
    /// The alert with this fingerprint.
    pub(crate) fn get(&self, fp: &Fingerprint) -> Option<&StoredAlert> {
        self.with_encoding(fp).map(|(alert, _)| alert)
    }

    /// The alert both as stored and as a notification carries it.
    pub(crate) fn with_encoding(
        &self,
        fp: &Fingerprint,
    ) -> Option<(&StoredAlert, &Arc<EncodedAlert>)> {
        self.alerts.get(fp).map(|(alert, encoded)| (alert, encoded))
    }

    /// Whether the alert is known.
    pub(crate) fn contains_key(&self, fp: &Fingerprint) -> bool {
        self.alerts.contains_key(fp)
    }

    /// Takes `alert` in; true when it changed. Its JSON is written again only when what a
    /// notification carries of it changed: an alert re-sent as it was (a new receipt time, the
    /// steady state of Alertmanager-style senders) keeps the JSON it has.
    pub(crate) fn insert(&mut self, alert: StoredAlert) -> bool {
        let known = self.alerts.get(&alert.fingerprint);
        if known.is_some_and(|(stored, _)| stored == &alert) {
            return false;
        }
        let carried = notified(&alert);
        let encoded = match known {
            Some((_, encoded)) if encoded.alert() == &carried => Arc::clone(encoded),
            _ => Arc::new(EncodedAlert::new(carried)),
        };
        self.alerts.insert(alert.fingerprint, (alert, encoded));
        true
    }

    /// Forgets an alert.
    pub(crate) fn remove(&mut self, fp: &Fingerprint) {
        self.alerts.remove(fp);
    }

    /// Keeps the alerts `keep` says to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&StoredAlert) -> bool) {
        self.alerts.retain(|_, (alert, _)| keep(alert));
    }

    /// Every alert.
    pub(crate) fn values(&self) -> impl Iterator<Item = &StoredAlert> {
        self.alerts.values().map(|(alert, _)| alert)
    }
}

/// An alert as a notification carries it.
fn notified(alert: &StoredAlert) -> NotifiedAlert {
    NotifiedAlert {
        fingerprint: alert.fingerprint,
        state: alert.state,
        labels: alert.labels.clone(),
        annotations: alert.annotations.clone(),
        starts_at_ms: alert.starts_at_ms,
        ends_at_ms: alert.ends_at_ms,
        generator_url: alert.generator_url.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_core::alert::{AlertState, Severity};

    fn alert(state: AlertState) -> StoredAlert {
        let labels: steward_core::registry::Labels = [("alertname", "Down"), ("instance", "a")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        StoredAlert {
            fingerprint: Fingerprint::of(&labels),
            labels: Arc::new(labels),
            annotations: Arc::default(),
            severity: Severity::Warning,
            source: "external".into(),
            state,
            starts_at_ms: 1_000,
            ends_at_ms: (state == AlertState::Resolved).then_some(2_000),
            last_received_ms: 1_000,
            generator_url: None,
            episode: 1,
            ack: None,
        }
    }

    #[test]
    fn an_alert_is_encoded_when_what_notifications_carry_of_it_changes() {
        let mut known = Known::default();
        let firing = alert(AlertState::Firing);
        let fp = firing.fingerprint;
        assert!(known.insert(firing.clone()));
        let first = Arc::clone(known.with_encoding(&fp).unwrap().1);
        assert_eq!(first.alert(), &notified(&firing));
        let json: serde_json::Value = serde_json::from_str(first.webhook().unwrap().get()).unwrap();
        assert_eq!(json["status"], "firing");

        assert!(!known.insert(firing.clone()), "unchanged");
        assert!(Arc::ptr_eq(&first, known.with_encoding(&fp).unwrap().1));
        let resent = StoredAlert {
            last_received_ms: 5_000,
            ..firing
        };
        assert!(known.insert(resent.clone()), "a new receipt is a change");
        assert_eq!(known.get(&fp), Some(&resent));
        assert!(
            Arc::ptr_eq(&first, known.with_encoding(&fp).unwrap().1),
            "but not of what a notification carries"
        );

        assert!(known.insert(alert(AlertState::Resolved)));
        let json: serde_json::Value =
            serde_json::from_str(known.with_encoding(&fp).unwrap().1.stored().unwrap().get())
                .unwrap();
        assert_eq!(json["state"], "resolved");
        assert_eq!(json["ends_at_ms"], 2_000);

        known.retain(|a| a.state == AlertState::Firing);
        assert!(!known.contains_key(&fp));
    }
}
