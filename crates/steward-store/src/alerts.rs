//! The shapes of the alert manager's calls every backend implements: alerts as received and
//! their lifecycle (firing episodes, resolution, acknowledgement), and silences.

use steward_core::audit::Actor;

use crate::StoreError;
use crate::domain::domain_trait;
use std::sync::Arc;

use steward_core::alert::route::Matcher;
use steward_core::alert::{AlertState, Fingerprint, IncomingAlert, Severity};
use steward_core::registry::Labels;

/// The most alerts or silences one listing returns.
pub const MAX_ALERT_PAGE: u32 = 10_000;
/// The lease held by the instance that dispatches and sends notifications.
pub const ALERTING_ROLE: &str = "alerting";
/// The source of alerts posted through the API.
pub const EXTERNAL_SOURCE: &str = "external";

/// A change to alerts or silences made through another instance sharing the database, as the
/// store hears of it ([`Database::remote_alerts`](crate::Database::remote_alerts)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteAlerts {
    /// These alerts were received (with a change) or acknowledged.
    Changed(Arc<[Fingerprint]>),
    /// Silences were created or expired.
    SilencesChanged,
    /// Announcements may have been missed (the listening connection was lost and made again):
    /// what was received meanwhile is to be read.
    Missed,
}

/// The alerts a receive call changed (fired, fired again or resolved), each once, in the order
/// received: what is worth announcing.
pub fn changed_fingerprints(
    receipts: &[AlertReceipt],
    changes: &[AlertChange],
) -> Vec<Fingerprint> {
    let mut seen = std::collections::HashSet::new();
    receipts
        .iter()
        .zip(changes)
        .filter(|(_, change)| {
            matches!(
                change,
                AlertChange::Fired | AlertChange::Refired | AlertChange::Resolved
            )
        })
        .map(|(receipt, _)| receipt.alert.fingerprint())
        .filter(|fp| seen.insert(*fp))
        .collect()
}

/// How many remote announcements a slow reader may fall behind by before it is told it missed
/// some.
pub const REMOTE_ALERTS_BUFFER: usize = 1_024;

/// An alert as stored: its latest labels, annotations and timing, and its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAlert {
    /// Its identity (the fingerprint of its labels).
    pub fingerprint: Fingerprint,
    /// Its labels (shared with the notifications that carry it).
    pub labels: Arc<Labels>,
    /// Its annotations, as last received (shared likewise).
    pub annotations: Arc<Labels>,
    /// Its severity, as last received.
    pub severity: Severity,
    /// Where it comes from: `external` (posted) or `rule:NAME` (a built-in rule).
    pub source: String,
    /// Firing or resolved.
    pub state: AlertState,
    /// When its current (or latest) firing episode started.
    pub starts_at_ms: i64,
    /// When it resolved (or will, when the sender said so), if known.
    pub ends_at_ms: Option<i64>,
    /// When it was last received (posted or re-evaluated).
    pub last_received_ms: i64,
    /// A link back to its source.
    pub generator_url: Option<String>,
    /// Its firing episodes so far, counting from 1; a new one starts each time it fires again
    /// after resolving (remediation runs once per episode).
    pub episode: i64,
    /// Who acknowledged the current episode, when, and why; cleared when it fires again.
    pub ack: Option<Ack>,
}

/// An acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Who (a key name).
    pub by: String,
    /// When.
    pub at_ms: i64,
    /// Why, or what is being done.
    pub note: String,
}

/// One alert received, to be merged into the stored one of the same fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertReceipt {
    /// The alert.
    pub alert: IncomingAlert,
    /// `external` or `rule:NAME`.
    pub source: String,
    /// When it was received.
    pub received_ms: i64,
}

/// What a receipt did to the stored alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertChange {
    /// A new alert, firing (a new episode).
    Fired,
    /// A resolved alert fires again (a new episode; any acknowledgement is cleared).
    Refired,
    /// A firing alert resolved.
    Resolved,
    /// Received again with the same state (annotations and times refreshed).
    Unchanged,
    /// Posted from outside for an alert a built-in rule raised: only that rule changes it, so
    /// nothing was stored.
    Refused,
}

/// Which alerts to list, most recently received first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertQuery {
    /// Only in this state.
    pub state: Option<AlertState>,
    /// Only with this severity.
    pub severity: Option<Severity>,
    /// Only those whose labels include all of these pairs.
    pub labels: Labels,
    /// At most this many (capped at [`MAX_ALERT_PAGE`]).
    pub limit: u32,
}

/// A silence as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSilence {
    /// Its id.
    pub id: i64,
    /// All must match.
    pub matchers: Vec<Matcher>,
    /// From when.
    pub starts_at_ms: i64,
    /// Until when (exclusive); moved to the present when it is expired early.
    pub ends_at_ms: i64,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at_ms: i64,
    /// Why.
    pub comment: String,
}

impl StoredSilence {
    /// `silence` as stored under `id` at `created_at_ms`.
    pub fn stored(
        silence: &steward_core::alert::mute::Silence,
        id: i64,
        created_at_ms: i64,
    ) -> Self {
        Self {
            id,
            matchers: silence.matchers.clone(),
            starts_at_ms: silence.starts_at_ms,
            ends_at_ms: silence.ends_at_ms,
            created_by: silence.created_by.clone(),
            created_at_ms,
            comment: silence.comment.clone(),
        }
    }
}

/// Merges one receipt into the stored alert of its fingerprint (`None` when there is none
/// yet), following the rules of [`AlertStore::receive_alerts`](crate::AlertStore::receive_alerts):
/// answers the alert to store and what the receipt did. Pure, so that every backend applies
/// exactly the same rules; the alert's state is judged at the receipt's time.
pub fn merge_receipt(
    stored: Option<&StoredAlert>,
    receipt: &AlertReceipt,
) -> (StoredAlert, AlertChange) {
    let alert = &receipt.alert;
    let incoming = alert.state_at(receipt.received_ms);
    let Some(stored) = stored else {
        let change = match incoming {
            AlertState::Firing => AlertChange::Fired,
            AlertState::Resolved => AlertChange::Resolved,
        };
        let new = StoredAlert {
            fingerprint: alert.fingerprint(),
            labels: Arc::new(alert.labels.clone()),
            annotations: Arc::new(alert.annotations.clone()),
            severity: alert.severity,
            source: receipt.source.clone(),
            state: incoming,
            starts_at_ms: alert.starts_at_ms.unwrap_or(receipt.received_ms),
            ends_at_ms: alert.ends_at_ms,
            last_received_ms: receipt.received_ms,
            generator_url: alert.generator_url.clone(),
            episode: 1,
            ack: None,
        };
        return (new, change);
    };
    if is_rule_source(&stored.source) && !is_rule_source(&receipt.source) {
        return (stored.clone(), AlertChange::Refused);
    }
    // What every receipt refreshes; the labels (the identity) stay.
    let annotations = if *stored.annotations == alert.annotations {
        Arc::clone(&stored.annotations)
    } else {
        Arc::new(alert.annotations.clone())
    };
    let mut next = StoredAlert {
        annotations,
        severity: alert.severity,
        source: receipt.source.clone(),
        ends_at_ms: alert.ends_at_ms,
        last_received_ms: receipt.received_ms,
        generator_url: alert.generator_url.clone(),
        ..stored.clone()
    };
    let change = match (stored.state, incoming) {
        (AlertState::Firing, AlertState::Resolved) => {
            next.state = AlertState::Resolved;
            AlertChange::Resolved
        }
        (AlertState::Resolved, AlertState::Firing) => {
            next.state = AlertState::Firing;
            next.episode = stored.episode.saturating_add(1);
            next.starts_at_ms = alert.starts_at_ms.unwrap_or(receipt.received_ms);
            next.ack = None;
            AlertChange::Refired
        }
        (AlertState::Firing, AlertState::Firing) | (AlertState::Resolved, AlertState::Resolved) => {
            AlertChange::Unchanged
        }
    };
    (next, change)
}

/// Whether alerts from `source` were raised by a built-in rule.
pub fn is_rule_source(source: &str) -> bool {
    source.starts_with(steward_core::alert::rules::RULE_SOURCE_PREFIX)
}

/// Merges receipts, in order, into the stored alerts of their fingerprints (`stored`, which
/// holds those found; it is updated in place). Answers what each receipt did, in order, and
/// the fingerprints whose stored alert changed, each once, in the order first touched.
pub fn merge_receipts(
    stored: &mut std::collections::HashMap<Fingerprint, StoredAlert>,
    receipts: &[AlertReceipt],
) -> (Vec<AlertChange>, Vec<Fingerprint>) {
    let mut changes = Vec::with_capacity(receipts.len());
    let mut touched = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for receipt in receipts {
        let fingerprint = receipt.alert.fingerprint();
        let (next, change) = merge_receipt(stored.get(&fingerprint), receipt);
        changes.push(change);
        if change == AlertChange::Refused {
            continue;
        }
        stored.insert(fingerprint, next);
        if seen.insert(fingerprint) {
            touched.push(fingerprint);
        }
    }
    (changes, touched)
}

/// How many receipts of a call did what, in total and per source, for the `alert.receive`
/// audit event.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReceiptCounts {
    /// New alerts, firing.
    pub fired: u64,
    /// Resolved alerts firing again.
    pub refired: u64,
    /// Alerts resolved (or new ones arriving resolved).
    pub resolved: u64,
    /// Alerts received again in the same state.
    pub unchanged: u64,
    /// Posted alerts refused because a built-in rule raised an alert of their label set.
    #[serde(skip_serializing_if = "is_zero")]
    pub refused: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ReceiptCounts {
    /// Counts one change.
    pub fn add(&mut self, change: AlertChange) {
        let n = match change {
            AlertChange::Fired => &mut self.fired,
            AlertChange::Refired => &mut self.refired,
            AlertChange::Resolved => &mut self.resolved,
            AlertChange::Unchanged => &mut self.unchanged,
            AlertChange::Refused => &mut self.refused,
        };
        *n = n.saturating_add(1);
    }
}

/// Whether `labels` include every pair of `subset`.
pub fn labels_include(labels: &Labels, subset: &Labels) -> bool {
    subset
        .iter()
        .all(|(name, value)| labels.get(name) == Some(value))
}

domain_trait! {
    /// Alerts and silences: receipts merged by fingerprint, acknowledgements, silences and pruning.
    pub trait AlertStore {
        /// Merges received alerts into the stored ones of the same fingerprint, in one transaction
        /// with one audit event (`alert.receive`, with counts) for the call; answers what each
        /// receipt did, in order:
        /// - a new fingerprint is stored firing ([`AlertChange::Fired`]), or resolved when it
        ///   arrives with an end already past ([`AlertChange::Resolved`]);
        /// - a firing alert received with a past end resolves ([`AlertChange::Resolved`]);
        /// - a resolved alert received firing starts a new episode: episode + 1, its start from the
        ///   receipt (or the receipt time), any acknowledgement cleared ([`AlertChange::Refired`]);
        /// - otherwise labels stay, annotations, severity, end, generator URL and receipt time are
        ///   refreshed ([`AlertChange::Unchanged`]);
        /// - but an alert a built-in rule raised (source `rule:NAME`) is changed only by rules: a
        ///   receipt from another source leaves it as it is ([`AlertChange::Refused`]). A rule's
        ///   receipt takes over an alert posted from outside.
        ///
        /// Several receipts of one fingerprint in a call apply in order.
        async fn receive_alerts(
            &self,
            receipts: &[AlertReceipt],
            actor: &Actor,
        ) -> Result<Vec<AlertChange>, StoreError>;

        /// Resolves, at `now_ms`, the firing alerts from `source` that have no end and were last
        /// received before `received_before_ms` (senders that stopped re-sending them); answers
        /// their fingerprints.
        async fn resolve_stale_alerts(
            &self,
            source: &str,
            received_before_ms: i64,
            now_ms: i64,
        ) -> Result<Vec<steward_core::alert::Fingerprint>, StoreError>;

        /// Alerts, most recently received first.
        async fn alerts(&self, query: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError>;

        /// One alert.
        async fn alert(
            &self,
            fingerprint: steward_core::alert::Fingerprint,
        ) -> Result<Option<StoredAlert>, StoreError>;

        /// The stored alerts among `fingerprints` (at most [`alerts::MAX_ALERT_PAGE`] of them), in
        /// no particular order; those not stored are left out.
        async fn alerts_by_fingerprint(
            &self,
            fingerprints: &[steward_core::alert::Fingerprint],
        ) -> Result<Vec<StoredAlert>, StoreError>;

        /// Up to `limit` (at most [`alerts::MAX_ALERT_PAGE`]) alerts last received at or after
        /// `since_ms`, by receipt time then fingerprint, after the `after` pair: what other
        /// instances received, page by page.
        async fn alerts_received_after(
            &self,
            since_ms: i64,
            after: Option<(i64, steward_core::alert::Fingerprint)>,
            limit: u32,
        ) -> Result<Vec<StoredAlert>, StoreError>;

        /// Up to `limit` (at most [`alerts::MAX_ALERT_PAGE`]) firing alerts whose fingerprints
        /// come after `after`, by fingerprint: reads every firing alert, page by page.
        async fn firing_alerts_after(
            &self,
            after: Option<steward_core::alert::Fingerprint>,
            limit: u32,
        ) -> Result<Vec<StoredAlert>, StoreError>;

        /// Acknowledges a firing alert's current episode, audited (`alert.ack`);
        /// [`StoreError::NotFound`] when there is no such alert, [`StoreError::State`] when it is
        /// resolved.
        async fn ack_alert(
            &self,
            fingerprint: steward_core::alert::Fingerprint,
            ack: &Ack,
            actor: &Actor,
        ) -> Result<StoredAlert, StoreError>;

        /// Stores a silence (already validated), audited (`silence.create`).
        async fn create_silence(
            &self,
            silence: &steward_core::alert::mute::Silence,
            created_at_ms: i64,
            actor: &Actor,
        ) -> Result<StoredSilence, StoreError>;

        /// Ends a silence at `now_ms` (if it ends later), audited (`silence.expire`);
        /// [`StoreError::NotFound`] when there is none with that id.
        async fn expire_silence(
            &self,
            id: i64,
            now_ms: i64,
            actor: &Actor,
        ) -> Result<StoredSilence, StoreError>;

        /// The silences that have not ended at `now_ms` (in force or to come), by id.
        async fn silences(&self, now_ms: i64) -> Result<Vec<StoredSilence>, StoreError>;

        /// Deletes alerts resolved before `before_ms` and silences that ended before it; answers
        /// how many of each.
        async fn prune_alerts(&self, before_ms: i64) -> Result<(u64, u64), StoreError>;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn incoming(name: &str, ends_at_ms: Option<i64>) -> IncomingAlert {
        IncomingAlert {
            labels: [("alertname".to_owned(), name.to_owned())].into(),
            annotations: [("summary".to_owned(), format!("{name} {ends_at_ms:?}"))].into(),
            severity: Severity::Critical,
            starts_at_ms: None,
            ends_at_ms,
            generator_url: None,
        }
    }

    fn receipt(alert: IncomingAlert, received_ms: i64) -> AlertReceipt {
        AlertReceipt {
            alert,
            source: "external".into(),
            received_ms,
        }
    }

    #[test]
    fn only_rules_change_what_a_rule_raised() {
        let rule = AlertReceipt {
            source: "rule:Down".into(),
            ..receipt(incoming("a", None), 100)
        };
        let (raised, _) = merge_receipt(None, &rule);
        let posted = receipt(incoming("a", Some(150)), 200);
        let (kept, change) = merge_receipt(Some(&raised), &posted);
        assert_eq!(change, AlertChange::Refused);
        assert_eq!(kept, raised);
        // A rule takes over what was posted first.
        let (external, _) = merge_receipt(None, &receipt(incoming("a", None), 100));
        let (taken, change) = merge_receipt(Some(&external), &rule);
        assert_eq!(change, AlertChange::Unchanged);
        assert_eq!(taken.source, "rule:Down");
    }

    #[test]
    fn a_new_alert_fires_or_arrives_resolved() {
        let (fired, change) = merge_receipt(None, &receipt(incoming("a", None), 100));
        assert_eq!(change, AlertChange::Fired);
        assert_eq!(fired.state, AlertState::Firing);
        assert_eq!((fired.starts_at_ms, fired.episode), (100, 1));
        let mut late = incoming("b", Some(90));
        late.starts_at_ms = Some(50);
        let (resolved, change) = merge_receipt(None, &receipt(late, 100));
        assert_eq!(change, AlertChange::Resolved);
        assert_eq!(resolved.state, AlertState::Resolved);
        assert_eq!((resolved.starts_at_ms, resolved.ends_at_ms), (50, Some(90)));
    }

    #[test]
    fn an_episode_fires_resolves_and_refires() {
        let (first, _) = merge_receipt(None, &receipt(incoming("a", None), 100));
        let mut again = incoming("a", Some(500));
        again.severity = Severity::Info;
        let (same, change) = merge_receipt(Some(&first), &receipt(again, 200));
        assert_eq!(change, AlertChange::Unchanged);
        assert_eq!(same.state, AlertState::Firing);
        assert_eq!((same.starts_at_ms, same.ends_at_ms), (100, Some(500)));
        assert_eq!(
            (same.severity, same.last_received_ms),
            (Severity::Info, 200)
        );
        let (mut resolved, change) =
            merge_receipt(Some(&same), &receipt(incoming("a", Some(250)), 300));
        assert_eq!(change, AlertChange::Resolved);
        assert_eq!(resolved.ends_at_ms, Some(250));
        resolved.ack = Some(Ack {
            by: "k".into(),
            at_ms: 260,
            note: "n".into(),
        });
        let (still, change) =
            merge_receipt(Some(&resolved), &receipt(incoming("a", Some(250)), 310));
        assert_eq!(change, AlertChange::Unchanged);
        assert_eq!(still.state, AlertState::Resolved);
        let (refired, change) = merge_receipt(Some(&still), &receipt(incoming("a", None), 400));
        assert_eq!(change, AlertChange::Refired);
        assert_eq!(refired.state, AlertState::Firing);
        assert_eq!((refired.episode, refired.starts_at_ms), (2, 400));
        assert_eq!((refired.ends_at_ms, refired.ack), (None, None));
    }

    #[test]
    fn receipts_of_one_fingerprint_apply_in_order() {
        let mut stored = HashMap::new();
        let receipts = [
            receipt(incoming("a", None), 100),
            receipt(incoming("b", None), 100),
            receipt(incoming("a", Some(150)), 200),
            receipt(incoming("a", None), 300),
        ];
        let (changes, touched) = merge_receipts(&mut stored, &receipts);
        assert_eq!(
            changes,
            [
                AlertChange::Fired,
                AlertChange::Fired,
                AlertChange::Resolved,
                AlertChange::Refired
            ]
        );
        assert_eq!(
            touched,
            [
                receipts[0].alert.fingerprint(),
                receipts[1].alert.fingerprint()
            ]
        );
        assert_eq!(stored[&receipts[0].alert.fingerprint()].episode, 2);
    }

    #[test]
    fn label_subsets() {
        let labels: Labels = [("a".to_owned(), "1".to_owned()), ("b".into(), "2".into())].into();
        assert!(labels_include(&labels, &Labels::new()));
        assert!(labels_include(
            &labels,
            &[("a".to_owned(), "1".to_owned())].into()
        ));
        assert!(!labels_include(
            &labels,
            &[("a".to_owned(), "2".to_owned())].into()
        ));
        assert!(!labels_include(
            &labels,
            &[("c".to_owned(), "1".to_owned())].into()
        ));
    }
}
