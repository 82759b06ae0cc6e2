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
//! [`Event::AlertsChanged`] on this instance's bus.

mod decide;
mod grouping;
mod intake;
mod remediate;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::executors::Executors;
use steward_config::Config;
use steward_core::alert::group::GroupClock;
use steward_core::alert::{AlertState, Fingerprint};
use steward_core::audit::Actor;
use steward_core::registry::Registry;
use steward_core::task::NewTask;
use steward_store::notifications::{DispatchWrite, NotificationQuery, StoredNotification};
use steward_store::{Lease, Store, StoreError};
use tokio::task::{Id as TaskId, JoinSet};

use super::known::Known;
use super::muting::{Muting, impacted_services};
use decide::Plan;
use grouping::Groups;
use intake::Scan;

/// The actor remediation tasks are enqueued as.
const COMPONENT: &str = "alerting";

/// What a pass being written moves in memory once it is written.
#[derive(Debug)]
struct Unwritten {
    /// Groups whose clocks move, with the members to drop.
    updates: Vec<(String, GroupClock, Vec<Fingerprint>)>,
    /// Groups that are done.
    finished: Vec<String>,
    /// When each looked-at group is next due.
    next: Vec<(String, i64)>,
    /// The remediations its tasks stand for.
    remediated: Vec<((Fingerprint, Vec<usize>), i64)>,
    /// The unsaved groups it writes (unsaved again if it fails).
    unsaved: Vec<String>,
    /// Notifications it queues.
    notifications: usize,
    /// When it was decided.
    decided_ms: i64,
    /// When its groups are looked at again if it fails.
    retry_ms: i64,
    /// [`Dispatcher::written_to`] when it began: its notifications' ids are higher.
    floor: i64,
}

impl Unwritten {
    /// Every group it touches.
    fn keys(&self) -> impl Iterator<Item = &String> {
        self.updates
            .iter()
            .map(|(key, _, _)| key)
            .chain(&self.finished)
            .chain(self.next.iter().map(|(key, _)| key))
            .chain(&self.unsaved)
    }
}

/// A pass written.
#[derive(Debug)]
pub(crate) struct Written {
    /// Its new notifications that head their groups, as stored, for the sender to attempt at
    /// once.
    pub(crate) heads: Vec<StoredNotification>,
    /// How many notifications it queued.
    pub(crate) notifications: usize,
    /// Every notification up to this id is in a pass written (or was there before):
    /// those of passes still being written have higher ids.
    pub(crate) announced_to: i64,
}

/// What writing a pass stored.
struct Stored {
    /// Its new notifications that head their groups.
    heads: Vec<StoredNotification>,
    /// Its highest notification id (0 when it queued none).
    highest: i64,
}

/// The dispatcher's state.
pub(crate) struct Dispatcher {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    known: Known,
    /// The groups, and when each group or escalation is next due.
    groups: Groups,
    muting: Muting,
    sources_stale: bool,
    /// A full read of the firing alerts under way.
    scan: Option<Scan>,
    /// Until when alerts received were taken in by [`Self::catch_up`].
    caught_up_ms: i64,
    /// The episode each (alert, route) pair last had a remediation task enqueued for (a
    /// restart forgets it; the tasks' idempotency keys then keep the count at one).
    remediated: HashMap<(Fingerprint, Vec<usize>), i64>,
    /// Passes being written, each in a task of its own.
    writes: JoinSet<Result<Stored, StoreError>>,
    /// What each of them moves in memory once written, by task.
    unwritten: HashMap<TaskId, Unwritten>,
    /// The groups of those passes: no pass decides them until theirs is written.
    in_flight: HashSet<String>,
    /// Of those, the ones found due meanwhile: looked at again once their pass is written.
    deferred: HashSet<String>,
    /// The highest notification id in the outbox at the start or in a pass written since.
    written_to: i64,
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
        let written_to = highest_notification(store.as_ref()).await?;
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
            writes: JoinSet::new(),
            unwritten: HashMap::new(),
            in_flight: HashSet::new(),
            deferred: HashSet::new(),
            written_to,
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

    /// Starts writing a plan in a task of its own ([`Self::written`] moves memory to it once
    /// written); its groups are left out of later plans until then. A plan that writes nothing
    /// only schedules its groups. On failure nothing moves and the groups are looked at again
    /// at `retry_ms`.
    pub(crate) fn write(&mut self, plan: Plan, retry_ms: i64) {
        let Plan {
            updates,
            finished,
            notifications,
            tasks,
            remediated,
            next,
            decided_ms,
        } = plan;
        if updates.is_empty() && finished.is_empty() && notifications.is_empty() {
            self.apply_schedule(next);
            return;
        }
        let write = DispatchWrite {
            groups: updates.iter().map(|(record, _)| record.clone()).collect(),
            finished: finished.clone(),
            notifications,
            lease: self.lease.clone(),
        };
        let unsaved = write
            .groups
            .iter()
            .map(|record| &record.key)
            .chain(&finished)
            .filter(|key| self.groups.saving(key))
            .cloned()
            .collect();
        let unwritten = Unwritten {
            updates: updates
                .into_iter()
                .map(|(record, resolved)| (record.key, record.clock, resolved))
                .collect(),
            finished,
            next,
            remediated,
            unsaved,
            notifications: write.notifications.len(),
            decided_ms,
            retry_ms,
            floor: self.written_to,
        };
        self.in_flight.extend(unwritten.keys().cloned());
        let store = Arc::clone(&self.store);
        let task = self.writes.spawn(write_pass(store, tasks, write));
        self.unwritten.insert(task.id(), unwritten);
    }

    /// How many passes are being written.
    pub(crate) fn writing(&self) -> usize {
        self.unwritten.len()
    }

    /// Waits for a pass being written to be written (forever while none is), then moves memory
    /// to it; answers what it queued. Cancel-safe.
    pub(crate) async fn written(&mut self) -> Result<Written, StoreError> {
        let Some(joined) = self.writes.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (task, result) = match joined {
            Ok((task, result)) => (task, result),
            Err(error) => (
                error.id(),
                Err(StoreError::State(format!(
                    "writing a dispatcher pass ended abnormally: {error}"
                ))),
            ),
        };
        let Some(unwritten) = self.unwritten.remove(&task) else {
            return Err(StoreError::State("a dispatcher pass written twice".into()));
        };
        let mut deferred = Vec::new();
        for key in unwritten.keys() {
            self.in_flight.remove(key);
            if self.deferred.remove(key) {
                deferred.push(key.clone());
            }
        }
        let (written, look_again_ms) = match result {
            Ok(stored) => {
                self.written_to = self.written_to.max(stored.highest);
                let decided_ms = unwritten.decided_ms;
                let notifications = unwritten.notifications;
                self.apply(unwritten);
                let written = Written {
                    heads: stored.heads,
                    notifications,
                    announced_to: self.announced_to(),
                };
                (Ok(written), decided_ms)
            }
            Err(error) => {
                let retry_ms = unwritten.retry_ms;
                self.retry(unwritten);
                (Err(error), retry_ms)
            }
        };
        // Found due while the pass was written: looked at again now that it is (or at the
        // retry, when it was not), whatever the pass planned for them.
        for key in deferred {
            self.groups.schedule(&key, look_again_ms);
        }
        written
    }

    /// The highest notification id in the outbox at the start or in a pass written since.
    pub(crate) fn written_to(&self) -> i64 {
        self.written_to
    }

    /// Every notification up to this id is in a pass written, or was in the outbox at the
    /// start: passes being written draw theirs above what was written when they began.
    pub(crate) fn announced_to(&self) -> i64 {
        self.unwritten
            .values()
            .map(|u| u.floor)
            .fold(self.written_to, i64::min)
    }

    /// Writes a plan and moves memory to it, with every pass being written; answers the new
    /// notifications that head their groups.
    #[cfg(test)]
    pub(crate) async fn commit(
        &mut self,
        plan: Plan,
        retry_ms: i64,
    ) -> Result<Vec<StoredNotification>, StoreError> {
        self.write(plan, retry_ms);
        let mut heads = Vec::new();
        while self.writing() > 0 {
            heads.extend(self.written().await?.heads);
        }
        Ok(heads)
    }

    /// Moves memory to a pass written.
    fn apply(&mut self, unwritten: Unwritten) {
        let Unwritten {
            updates,
            finished,
            next,
            remediated,
            decided_ms,
            ..
        } = unwritten;
        self.remediated.extend(remediated);
        for (key, clock, resolved) in updates {
            self.groups.move_clock(&key, clock, resolved, &self.known);
        }
        let mut rejoining = Vec::new();
        for key in &finished {
            rejoining.extend(self.groups.finish(key));
        }
        self.apply_schedule(next);
        // Alerts that joined a finished group while it was written start a group anew.
        for fp in rejoining {
            if self
                .known
                .get(&fp)
                .is_some_and(|a| a.state == AlertState::Firing)
            {
                self.route(fp, decided_ms);
            }
        }
    }

    /// Has the groups of a pass that was not written looked at again at its retry time, and
    /// marks the unsaved ones it would have written unsaved again.
    fn retry(&mut self, unwritten: Unwritten) {
        let Unwritten {
            finished,
            next,
            unsaved,
            retry_ms,
            ..
        } = unwritten;
        for key in next.into_iter().map(|(key, _)| key).chain(finished) {
            self.groups.schedule(&key, retry_ms);
        }
        self.groups.unsave(unsaved);
    }

    /// Has each group in `next` looked at at its time.
    fn apply_schedule(&mut self, next: Vec<(String, i64)>) {
        for (key, at) in next {
            self.groups.schedule(&key, at);
        }
    }
}

/// Writes a pass: its remediation tasks first (idempotent per alert episode, so a failed write
/// retried cannot lose a task nor make two), then its groups and notifications; answers the new
/// notifications that head their groups, as stored.
async fn write_pass(
    store: Arc<dyn Store>,
    tasks: Vec<NewTask>,
    write: DispatchWrite,
) -> Result<Stored, StoreError> {
    if !tasks.is_empty() {
        store
            .enqueue_tasks(&tasks, &Actor::system(COMPONENT))
            .await?;
        metrics::counter!("steward_remediations_total", "result" => "enqueued")
            .increment(tasks.len() as u64);
    }
    let queued = store.write_dispatch(&write).await?;
    let highest = queued.iter().map(|q| q.id).max().unwrap_or(0);
    let heads = write
        .notifications
        .into_iter()
        .zip(queued)
        .filter(|(_, q)| q.heads_group)
        .map(|(notification, q)| notification.queued(q.id))
        .collect();
    Ok(Stored { heads, highest })
}

/// The highest notification id in the outbox (0 when it is empty).
async fn highest_notification(store: &dyn Store) -> Result<i64, StoreError> {
    let newest = store
        .notifications(&NotificationQuery {
            limit: 1,
            ..NotificationQuery::default()
        })
        .await?;
    Ok(newest.first().map_or(0, |n| n.id))
}

/// A configured duration as an offset to a time in milliseconds (saturating: a duration
/// past `i64::MAX` never comes).
fn ms(duration_ms: u64) -> i64 {
    i64::try_from(duration_ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
