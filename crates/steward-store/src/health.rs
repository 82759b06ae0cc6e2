//! The shapes of the prober's calls every backend implements: raw probe results, per-minute
//! roll-ups, each check's current state and its transitions, and their pruning.

use crate::StoreError;
use crate::domain::domain_trait;
use steward_core::audit::AuditEntry;
use steward_core::health::rollup::Rollup;
use steward_core::health::state::{CheckState, ProbeVerdict};

/// The lease the probing instance holds: one instance of a shared database probes.
pub const PROBER_ROLE: &str = "prober";
/// The most raw results or transitions one history call returns.
pub const MAX_HEALTH_PAGE: u32 = 10_000;

/// One probe's result, as kept raw for the recent past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRecord {
    /// The check it belongs to.
    pub check: String,
    /// When the probe started.
    pub at_ms: i64,
    /// Pass, slow pass or fail, once the conditions were evaluated.
    pub verdict: ProbeVerdict,
    /// How long it took.
    pub latency_ms: u64,
    /// The HTTP status, for HTTP probes that got an answer.
    pub status: Option<u16>,
    /// Why the probe itself failed, as a bounded class (`timeout`, `refused`, `dns`, `tls`,
    /// `io`, `http`, `body`, `command`, `file`, `certificate`), when it did.
    pub cause: Option<String>,
    /// A one-line description of that failure (never a secret: URLs are shown without
    /// credentials or query).
    pub error: Option<String>,
    /// Each condition as resolved (`[STATUS] (503) == 200`) with whether it held.
    pub conditions: Vec<(bool, String)>,
    /// The soonest expiry of a certificate the probe saw, for TLS and certificate-file checks.
    pub cert_not_after_ms: Option<i64>,
    /// Each certificate it saw: the peer's (TLS, HTTPS) or one per file (certificate files).
    pub certificates: Vec<CertSeen>,
}

pub use steward_core::health::cert::CertSeen;

/// A check's persisted state, from which its tracker resumes after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRecord {
    /// The check.
    pub check: String,
    /// The service it watches.
    pub service: String,
    /// Its state.
    pub state: CheckState,
    /// Failed probes in a row.
    pub consecutive_failures: u32,
    /// Passed probes in a row.
    pub consecutive_successes: u32,
    /// When it entered its state.
    pub since_ms: i64,
    /// When its latest probe started, if it has been probed.
    pub last_probe_ms: Option<i64>,
}

/// A change of a check's state, to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTransition {
    /// The check.
    pub check: String,
    /// The service it watches.
    pub service: String,
    /// The state before.
    pub from: CheckState,
    /// The state after.
    pub to: CheckState,
    /// When it happened (the start of the probe that caused it).
    pub at_ms: i64,
    /// The probe's failure or failed conditions, in one line.
    pub reason: String,
}

/// A recorded change of a check's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckTransition {
    /// Increasing with each transition recorded.
    pub id: i64,
    /// What changed.
    pub transition: NewTransition,
}

/// What the prober writes at once, in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeBatch {
    /// Raw results.
    pub results: Vec<ProbeRecord>,
    /// Roll-up increments by check: each is added to the stored roll-up of the same check and
    /// minute (created when missing).
    pub rollups: Vec<(String, Rollup)>,
    /// The checks' latest states: each replaces the stored record of its check.
    pub states: Vec<CheckRecord>,
    /// State changes, in the order they happened.
    pub transitions: Vec<NewTransition>,
    /// Audit entries for what people asked of the prober (a check run on request), appended in
    /// the same transaction as the results they produced.
    pub audit: Vec<AuditEntry>,
}

impl ProbeBatch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
            && self.rollups.is_empty()
            && self.states.is_empty()
            && self.transitions.is_empty()
            && self.audit.is_empty()
    }
}

/// Which transitions to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransitionQuery {
    /// Only this check's.
    pub check: Option<String>,
    /// Only those of this service's checks.
    pub service: Option<String>,
    /// Only those with an id below this (the previous page's last id).
    pub before_id: Option<i64>,
    /// At most this many (capped at [`MAX_HEALTH_PAGE`]).
    pub limit: u32,
}

/// What one pruning pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthPruned {
    /// Raw results.
    pub results: u64,
    /// Per-minute roll-ups.
    pub rollups: u64,
    /// Transitions.
    pub transitions: u64,
}

/// The stored name of a verdict.
pub fn verdict_name(verdict: ProbeVerdict) -> &'static str {
    match verdict {
        ProbeVerdict::Pass => "pass",
        ProbeVerdict::SlowPass => "slow",
        ProbeVerdict::Fail => "fail",
    }
}

/// The verdict a stored name denotes.
pub fn parse_verdict(text: &str) -> Option<ProbeVerdict> {
    match text {
        "pass" => Some(ProbeVerdict::Pass),
        "slow" => Some(ProbeVerdict::SlowPass),
        "fail" => Some(ProbeVerdict::Fail),
        _ => None,
    }
}

/// Adds the increments of `batch` that fall on the same check and minute together, so that
/// each stored roll-up is read and written once per batch.
pub fn merge_rollup_increments(rollups: &[(String, Rollup)]) -> Vec<(String, Rollup)> {
    let mut merged: std::collections::BTreeMap<(&str, i64), Rollup> =
        std::collections::BTreeMap::new();
    for (check, rollup) in rollups {
        merged
            .entry((check.as_str(), rollup.minute_ms))
            .and_modify(|m| m.merge(rollup))
            .or_insert_with(|| rollup.clone());
    }
    merged
        .into_iter()
        .map(|((check, _), rollup)| (check.to_owned(), rollup))
        .collect()
}

domain_trait! {
    /// The prober's persistence: raw results, roll-ups, check states and transitions.
    pub trait HealthStore {
        /// Writes a prober batch in one transaction: raw results appended, roll-up increments
        /// added to the stored roll-ups (see [`ProbeBatch::rollups`]), states replaced, transitions
        /// appended in order.
        async fn record_probes(&self, batch: &ProbeBatch) -> Result<(), StoreError>;

        /// Every check's persisted state, by check name.
        async fn check_records(&self) -> Result<Vec<CheckRecord>, StoreError>;

        /// `check`'s raw results that started at or after `since_ms`, newest first, at most `limit`
        /// (capped at [`health::MAX_HEALTH_PAGE`]).
        async fn probe_results(
            &self,
            check: &str,
            since_ms: i64,
            limit: u32,
        ) -> Result<Vec<ProbeRecord>, StoreError>;

        /// `check`'s per-minute roll-ups for the minutes starting in `[from_ms, to_ms)`, oldest
        /// first.
        async fn check_rollups(
            &self,
            check: &str,
            from_ms: i64,
            to_ms: i64,
        ) -> Result<Vec<Rollup>, StoreError>;

        /// Recorded transitions, newest first.
        async fn check_transitions(
            &self,
            query: &TransitionQuery,
        ) -> Result<Vec<CheckTransition>, StoreError>;

        /// Deletes raw results started before `results_before_ms`, and roll-ups and transitions
        /// before `rollups_before_ms`.
        async fn prune_health(
            &self,
            results_before_ms: i64,
            rollups_before_ms: i64,
        ) -> Result<HealthPruned, StoreError>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_names_round_trip() {
        for v in [
            ProbeVerdict::Pass,
            ProbeVerdict::SlowPass,
            ProbeVerdict::Fail,
        ] {
            assert_eq!(parse_verdict(verdict_name(v)), Some(v));
        }
        assert_eq!(parse_verdict("maybe"), None);
    }

    #[test]
    fn increments_on_the_same_minute_are_added() {
        let mut a = Rollup::new(60_000);
        a.record(5, true);
        let mut b = Rollup::new(60_000);
        b.record(7, false);
        let c = Rollup::new(120_000);
        let merged =
            merge_rollup_increments(&[("x".into(), a), ("y".into(), c.clone()), ("x".into(), b)]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].0, "x");
        assert_eq!(merged[0].1.count, 2);
        assert_eq!(merged[0].1.failures, 1);
        assert_eq!(merged[1], ("y".into(), c));
    }
}
