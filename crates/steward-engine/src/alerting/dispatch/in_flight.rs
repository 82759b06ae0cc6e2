//! Passes in flight: each pass's plan written to the store in a task of its own, what is
//! outstanding while it commits, and memory moved to it once it has.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use steward_core::alert::group::GroupClock;
use steward_core::alert::{AlertState, Fingerprint};
use steward_core::audit::Actor;
use steward_core::task::NewTask;
use steward_store::notifications::{DispatchWrite, NotificationQuery, StoredNotification};
use steward_store::{Store, StoreError};
use tokio::task::{Id as TaskId, JoinSet};

use super::decide::Plan;
use super::{COMPONENT, Dispatcher};

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
    /// [`Passes::written_to`] when it began: its notifications' ids are higher.
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

/// A pass whose write ended, and how.
struct Ended {
    /// What it moves in memory.
    unwritten: Unwritten,
    /// What it stored, or why it did not.
    result: Result<Stored, StoreError>,
    /// Its groups found due while it was written.
    deferred: Vec<String>,
}

/// The passes being written, each in a task of its own, and the groups they hold.
pub(super) struct Passes {
    /// The tasks writing them.
    writes: JoinSet<Result<Stored, StoreError>>,
    /// What each of them moves in memory once written, by task.
    unwritten: HashMap<TaskId, Unwritten>,
    /// The groups of those passes: no pass decides them until theirs is written.
    in_flight: HashSet<String>,
    /// Of those, the ones found due meanwhile: looked at again once their pass is written.
    deferred: HashSet<String>,
    /// The highest notification id in the outbox at the start or in a pass written since.
    written_to: i64,
}

impl Passes {
    /// None yet, over an outbox whose highest notification id is `written_to`.
    pub(super) fn new(written_to: i64) -> Self {
        Self {
            writes: JoinSet::new(),
            unwritten: HashMap::new(),
            in_flight: HashSet::new(),
            deferred: HashSet::new(),
            written_to,
        }
    }

    /// Whether the group `key` is in a pass being written.
    pub(super) fn holds(&self, key: &str) -> bool {
        self.in_flight.contains(key)
    }

    /// Has the group `key`, found due while its pass is written, looked at again once it is.
    pub(super) fn defer(&mut self, key: String) {
        self.deferred.insert(key);
    }

    /// Starts writing `write` and `tasks` in a task of its own.
    fn start(
        &mut self,
        store: Arc<dyn Store>,
        tasks: Vec<NewTask>,
        write: DispatchWrite,
        unwritten: Unwritten,
    ) {
        self.in_flight.extend(unwritten.keys().cloned());
        let task = self.writes.spawn(write_pass(store, tasks, write));
        self.unwritten.insert(task.id(), unwritten);
    }

    /// Waits for a pass being written to end (forever while none is); its groups are free
    /// again. Cancel-safe.
    async fn next_ended(&mut self) -> Result<Ended, StoreError> {
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
        if let Ok(stored) = &result {
            self.written_to = self.written_to.max(stored.highest);
        }
        Ok(Ended {
            unwritten,
            result,
            deferred,
        })
    }

    /// Every notification up to this id is in a pass written, or was in the outbox at the
    /// start: passes being written draw theirs above what was written when they began.
    fn announced_to(&self) -> i64 {
        self.unwritten
            .values()
            .map(|u| u.floor)
            .fold(self.written_to, i64::min)
    }
}

impl Dispatcher {
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
            floor: self.passes.written_to,
        };
        let store = Arc::clone(&self.store);
        self.passes.start(store, tasks, write, unwritten);
    }

    /// How many passes are being written.
    pub(crate) fn writing(&self) -> usize {
        self.passes.unwritten.len()
    }

    /// Waits for a pass being written to be written (forever while none is), then moves memory
    /// to it; answers what it queued. Cancel-safe.
    pub(crate) async fn written(&mut self) -> Result<Written, StoreError> {
        let Ended {
            unwritten,
            result,
            deferred,
        } = self.passes.next_ended().await?;
        let (written, look_again_ms) = match result {
            Ok(stored) => {
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
        self.passes.written_to
    }

    /// Every notification up to this id is in a pass written, or was in the outbox at the
    /// start: passes being written draw theirs above what was written when they began.
    pub(crate) fn announced_to(&self) -> i64 {
        self.passes.announced_to()
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
pub(super) async fn highest_notification(store: &dyn Store) -> Result<i64, StoreError> {
    let newest = store
        .notifications(&NotificationQuery {
            limit: 1,
            ..NotificationQuery::default()
        })
        .await?;
    Ok(newest.first().map_or(0, |n| n.id))
}
