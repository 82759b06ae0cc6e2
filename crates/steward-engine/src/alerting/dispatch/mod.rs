//! The dispatcher: routes alerts into groups, runs each group's clock
//! ([`steward_core::alert::group`]), and turns what the clocks decide into notifications in the
//! outbox, plus remediation tasks. Each pass's decisions are written in one transaction before
//! memory moves on, so a crash never loses a decided notification and never sends one twice.
//! Passes are written in tasks of their own, several at once: a pass need not wait for the
//! previous one's write, since no group is in two passes being written (a group whose pass is
//! being written is decided again once it is written).
//!
//! What it knows comes from the store: every firing alert (re-read in full every few seconds,
//! which also catches alerts posted to other instances) and, in between, the alerts named by
//! `Event::AlertsChanged` on this instance's bus.
//!
//! This file holds the [`Dispatcher`] and its loading; each step it performs has a file:
//! [`intake`] takes alerts and what mutes them in, [`grouping`] routes alerts into groups and
//! keeps when each is due, [`decide`] (with [`remediate`]) turns due groups into a
//! [`Plan`](decide::Plan), and [`in_flight`] writes plans and moves memory once they are
//! written.

mod decide;
mod grouping;
mod in_flight;
mod intake;
mod remediate;

use std::collections::HashMap;
use std::sync::Arc;

use steward_config::Config;
use steward_core::alert::Fingerprint;
use steward_core::registry::Registry;
use steward_store::{Lease, Store, StoreError};

use super::known::Known;
use super::muting::{Muting, impacted_services};
use crate::executors::Executors;
use grouping::Groups;
use in_flight::{Passes, highest_notification};
use intake::Scan;

pub(crate) use in_flight::Written;

/// The actor remediation tasks are enqueued as.
const COMPONENT: &str = "alerting";

/// The dispatcher's state.
pub(crate) struct Dispatcher {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    /// The alerts taken in: every firing one, and resolved ones a receiver is owed.
    known: Known,
    /// The groups, and when each group or escalation is next due.
    groups: Groups,
    /// What mutes alerts: silences, maintenance windows, inhibition and impact.
    muting: Muting,
    /// Whether alerts were taken in since `muting` last indexed the inhibiting ones.
    sources_stale: bool,
    /// A full read of the firing alerts under way.
    scan: Option<Scan>,
    /// Until when alerts received were taken in by [`Self::catch_up`].
    caught_up_ms: i64,
    /// The episode each (alert, route) pair last had a remediation task enqueued for (a
    /// restart forgets it; the tasks' idempotency keys then keep the count at one).
    remediated: HashMap<(Fingerprint, Vec<usize>), i64>,
    /// The passes being written, and the groups they hold.
    passes: Passes,
    /// The `alerting` lease every pass is written under (none in tests).
    lease: Option<Lease>,
    /// What remediation payloads are checked against before their task is written (the
    /// built-ins until [`Self::check_payloads_with`]).
    executors: Arc<Executors>,
}

impl Dispatcher {
    /// Loads the stored groups, every firing alert and the silences, and routes the alerts;
    /// its passes are written only while `lease` is held.
    pub(crate) async fn load(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        registry: &Registry,
        lease: Option<Lease>,
        now_ms: i64,
    ) -> Result<Self, StoreError> {
        let groups = Groups::stored(store.alert_groups().await?, now_ms);
        let muting = Muting::new(
            store.silences(now_ms).await?,
            config.alerting.maintenance.clone(),
            config.alerting.inhibit_rules.clone(),
            impacted_services(store.as_ref(), &config, registry).await,
        );
        let passes = Passes::new(highest_notification(store.as_ref()).await?);
        let mut dispatcher = Self {
            store,
            config,
            known: Known::default(),
            groups,
            muting,
            sources_stale: true,
            remediated: HashMap::new(),
            scan: None,
            caught_up_ms: now_ms,
            passes,
            lease,
            executors: Arc::new(Executors::builtins()),
        };
        while dispatcher.scan_step(now_ms).await? {}
        // Alerts a group told its receiver were firing and that resolved since: the receiver
        // is still owed the resolution.
        let owed: Vec<Fingerprint> = dispatcher
            .groups
            .told_firing()
            .into_iter()
            .filter(|fp| !dispatcher.known.contains_key(fp))
            .collect();
        dispatcher.read_alerts(&owed).await?;
        dispatcher.reroute(now_ms);
        Ok(dispatcher)
    }

    /// Checks remediation payloads with `executors` (the workers'), so a task that its executor
    /// would refuse is never enqueued to die when it runs.
    pub(crate) fn check_payloads_with(&mut self, executors: Arc<Executors>) {
        self.executors = executors;
    }

    /// Follows a reloaded config: new routes, timings, rules and windows.
    pub(crate) fn set_config(&mut self, config: Arc<Config>, now_ms: i64) {
        self.muting.set_config(
            config.alerting.maintenance.clone(),
            config.alerting.inhibit_rules.clone(),
        );
        self.config = config;
        self.reroute(now_ms);
    }

    /// The config followed.
    pub(crate) fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// When the earliest group or escalation is due, if any.
    pub(crate) fn next_due(&self) -> Option<i64> {
        self.groups.next_due()
    }

    /// Counts for metrics: firing alerts, of which muted, and groups.
    pub(crate) fn counts(&self, now_ms: i64) -> (usize, usize, usize) {
        let (firing, muted) = super::muting::count_muted(&self.muting, self.known.values(), now_ms);
        (firing, muted, self.groups.len())
    }

    /// Routes every known alert again (after a load, a refresh or a reload).
    fn reroute(&mut self, now_ms: i64) {
        self.groups.reroute(&self.known, &self.config, now_ms);
        self.sources_stale = true;
    }

    /// Puts a known alert in the groups its routes lead to (see [`Groups::route`]).
    fn route(&mut self, fp: Fingerprint, now_ms: i64) {
        if let Some(alert) = self.known.get(&fp) {
            self.groups.route(alert, &self.config, now_ms);
        }
    }
}

/// An alert as the store answers it, for unit tests: firing since 0 and received then, in its
/// first episode.
#[cfg(test)]
fn test_alert(labels: steward_core::registry::Labels) -> steward_store::alerts::StoredAlert {
    steward_store::alerts::StoredAlert {
        fingerprint: Fingerprint::of(&labels),
        labels: Arc::new(labels),
        annotations: Arc::default(),
        severity: steward_core::alert::Severity::Warning,
        source: "external".into(),
        state: steward_core::alert::AlertState::Firing,
        starts_at_ms: 0,
        ends_at_ms: None,
        last_received_ms: 0,
        generator_url: None,
        episode: 1,
        ack: None,
    }
}

/// A configured duration as an offset to a time in milliseconds (saturating: a duration
/// past `i64::MAX` never comes).
fn ms(duration_ms: u64) -> i64 {
    i64::try_from(duration_ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
