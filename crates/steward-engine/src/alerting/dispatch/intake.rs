//! Intake: takes what the dispatcher must consider from the store (firing alerts read in full
//! page by page, alerts other instances received, alerts named as changed, silences and
//! services' states) and routes each alert that changed.

use std::collections::HashSet;

use steward_core::alert::{AlertState, Fingerprint};
use steward_core::registry::Registry;
use steward_store::StoreError;
use steward_store::alerts::{MAX_ALERT_PAGE, StoredAlert};

use super::Dispatcher;
use crate::alerting::muting::impacted_services;

/// How far before the last catch-up the next one reads again, for receipts whose
/// transactions were still committing.
const CATCH_UP_MARGIN_MS: i64 = 2_000;

/// A full read of the firing alerts, page by page.
#[derive(Debug)]
pub(super) struct Scan {
    /// The last fingerprint read.
    after: Option<Fingerprint>,
    /// The fingerprints seen firing.
    seen: HashSet<Fingerprint>,
    /// When it began.
    started_ms: i64,
}

impl Scan {
    /// A read beginning at `started_ms`.
    fn new(started_ms: i64) -> Self {
        Self {
            after: None,
            seen: HashSet::new(),
            started_ms,
        }
    }

    /// Notes a page read.
    fn saw(&mut self, page: &[StoredAlert]) {
        self.after = page.last().map(|a| a.fingerprint);
        self.seen.extend(page.iter().map(|a| a.fingerprint));
    }

    /// Whether `alert`, thought firing, should have been read and was not: it resolved or was
    /// pruned since. One received after the read began may sit before a page already read, so
    /// not seeing it says nothing.
    fn missed(&self, alert: &StoredAlert) -> bool {
        alert.state == AlertState::Firing
            && alert.last_received_ms < self.started_ms
            && !self.seen.contains(&alert.fingerprint)
    }
}

/// Whether a page came back full, so another may follow.
fn is_full(page: &[StoredAlert]) -> bool {
    page.len() >= MAX_ALERT_PAGE as usize
}

impl Dispatcher {
    /// Reads every firing alert again, the silences and the impacted services, at once (the
    /// running dispatcher spreads the same work with [`Self::scan_step`]).
    #[cfg(test)]
    pub(crate) async fn refresh(
        &mut self,
        registry: &Registry,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.refresh_context(registry, now_ms).await?;
        while self.scan_step(now_ms).await? {}
        Ok(())
    }

    /// Reads the silences and the services' states again (cheap: done every few seconds).
    pub(crate) async fn refresh_context(
        &mut self,
        registry: &Registry,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.muting.set_silences(self.store.silences(now_ms).await?);
        self.muting
            .set_impacted(impacted_services(self.store.as_ref(), &self.config, registry).await);
        self.sources_stale = true;
        Ok(())
    }

    /// Takes in the alerts received since the last catch-up (less a margin for transactions
    /// still committing then): what other instances of a shared database received.
    pub(crate) async fn catch_up(&mut self, now_ms: i64) -> Result<(), StoreError> {
        let since = self.caught_up_ms.saturating_sub(CATCH_UP_MARGIN_MS);
        let mut after = None;
        loop {
            let page = self
                .store
                .alerts_received_after(since, after, MAX_ALERT_PAGE)
                .await?;
            let full = is_full(&page);
            after = page.last().map(|a| (a.last_received_ms, a.fingerprint));
            for alert in page {
                self.take(alert, now_ms);
            }
            if !full {
                break;
            }
        }
        self.caught_up_ms = now_ms;
        Ok(())
    }

    /// Whether a full read of the firing alerts is under way.
    pub(crate) fn scanning(&self) -> bool {
        self.scan.is_some()
    }

    /// Reads one page of a full read of the firing alerts, starting one if none is under way;
    /// true while pages remain. At its end, the alerts thought firing that it did not see (and
    /// that were received before it began) are read again: resolved, or gone.
    pub(crate) async fn scan_step(&mut self, now_ms: i64) -> Result<bool, StoreError> {
        let after = self.scan.get_or_insert_with(|| Scan::new(now_ms)).after;
        let page = self
            .store
            .firing_alerts_after(after, MAX_ALERT_PAGE)
            .await?;
        let full = is_full(&page);
        if let Some(scan) = self.scan.as_mut() {
            scan.saw(&page);
        }
        for alert in page {
            self.take(alert, now_ms);
        }
        if full {
            return Ok(true);
        }
        let Some(scan) = self.scan.take() else {
            return Ok(false);
        };
        let gone: Vec<Fingerprint> = self
            .known
            .values()
            .filter(|a| scan.missed(a))
            .map(|a| a.fingerprint)
            .collect();
        let found: HashSet<Fingerprint> = self.read_alerts(&gone).await?.into_iter().collect();
        for fp in gone {
            if found.contains(&fp) {
                self.route(fp, now_ms);
            } else {
                // Not stored any more (pruned): nothing to tell anyone.
                self.known.remove(&fp);
            }
        }
        self.forget_unowed();
        self.sources_stale = true;
        Ok(false)
    }

    /// Keeps `alert` as read and routes it (routing an alert already in its groups changes
    /// nothing).
    fn take(&mut self, alert: StoredAlert, now_ms: i64) {
        let fp = alert.fingerprint;
        if self.known.insert(alert) {
            self.route(fp, now_ms);
            self.sources_stale = true;
        }
    }

    /// Takes in alerts that changed (read again by fingerprint).
    pub(crate) async fn alerts_changed(
        &mut self,
        fingerprints: &[Fingerprint],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let read = self.read_alerts(fingerprints).await?;
        for fp in read {
            self.route(fp, now_ms);
        }
        self.sources_stale = true;
        Ok(())
    }

    /// Reads the silences again.
    pub(crate) async fn silences_changed(&mut self, now_ms: i64) -> Result<(), StoreError> {
        self.muting.set_silences(self.store.silences(now_ms).await?);
        Ok(())
    }

    /// Reads these alerts; answers those found.
    pub(super) async fn read_alerts(
        &mut self,
        fingerprints: &[Fingerprint],
    ) -> Result<Vec<Fingerprint>, StoreError> {
        let mut found = Vec::with_capacity(fingerprints.len());
        for chunk in fingerprints.chunks(MAX_ALERT_PAGE as usize) {
            for alert in self.store.alerts_by_fingerprint(chunk).await? {
                found.push(alert.fingerprint);
                self.known.insert(alert);
            }
        }
        Ok(found)
    }

    /// Drops resolved alerts no group owes a resolution for.
    fn forget_unowed(&mut self) {
        let owed = self.groups.owed();
        self.known
            .retain(|alert| alert.state == AlertState::Firing || owed.contains(&alert.fingerprint));
        let known = &self.known;
        self.remediated.retain(|(fp, _), _| known.contains_key(fp));
    }
}

#[cfg(test)]
mod tests {
    use steward_core::registry::Labels;

    use super::*;
    use crate::alerting::dispatch::test_alert;

    fn stored(fp: u64, state: AlertState, last_received_ms: i64) -> StoredAlert {
        StoredAlert {
            fingerprint: Fingerprint(fp),
            state,
            last_received_ms,
            ..test_alert(Labels::new())
        }
    }

    #[test]
    fn a_scan_misses_only_firing_alerts_it_did_not_see_that_predate_it() {
        let mut scan = Scan::new(1_000);
        scan.saw(&[stored(1, AlertState::Firing, 500)]);
        assert_eq!(scan.after, Some(Fingerprint(1)));
        assert!(!scan.missed(&stored(1, AlertState::Firing, 500)), "seen");
        assert!(scan.missed(&stored(2, AlertState::Firing, 500)), "not seen");
        assert!(
            !scan.missed(&stored(3, AlertState::Firing, 1_000)),
            "received once the read began: maybe behind its cursor"
        );
        assert!(
            !scan.missed(&stored(4, AlertState::Resolved, 500)),
            "not thought firing"
        );
    }
}
