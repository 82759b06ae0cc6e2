//! Grouping: which groups each alert belongs to by its routes and escalations, the groups'
//! state, and when each group or escalation is next due.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};

use steward_config::Config;
use steward_core::alert::group::{GroupClock, Timing};
use steward_core::alert::notice::group_key;
use steward_core::alert::route::Destination;
use steward_core::alert::{AlertState, Fingerprint};
use steward_core::registry::Labels;
use steward_store::alerts::StoredAlert;
use steward_store::notifications::GroupRecord;

use super::ms;
use crate::alerting::known::Known;

/// A group as the dispatcher keeps it.
#[derive(Debug)]
pub(super) struct Group {
    /// What the store keeps of it.
    pub(super) record: GroupRecord,
    /// The timing of the route that last routed an alert to it.
    pub(super) timing: Timing,
    /// Its alerts: firing ones routed here, and resolved ones its receiver was told fired.
    pub(super) members: BTreeSet<Fingerprint>,
    /// When its clock is next looked at (heap entries at other times are stale).
    next_due: i64,
}

/// A group an alert is routed to, as routing finds it.
struct Joining {
    key: String,
    receiver: String,
    path: Vec<usize>,
    labels: Labels,
    timing: Timing,
}

/// The groups, with when each group and each escalation is next due.
#[derive(Debug, Default)]
pub(super) struct Groups {
    /// Every group, by key.
    by_key: HashMap<String, Group>,
    /// When groups are next looked at (entries other than a group's `next_due` are stale).
    due: BinaryHeap<Reverse<(i64, String)>>,
    /// When alerts reach their route's escalation time (stale entries are harmless).
    escalations: BinaryHeap<Reverse<(i64, Fingerprint)>>,
    /// Groups created or re-routed since the last write.
    unsaved: HashSet<String>,
}

impl Groups {
    /// The stored groups, with no members until alerts are routed to them; each is looked at
    /// at `now_ms`.
    pub(super) fn stored(records: Vec<GroupRecord>, now_ms: i64) -> Self {
        let by_key = records
            .into_iter()
            .map(|record| {
                let group = Group {
                    timing: default_timing(),
                    members: BTreeSet::new(),
                    next_due: now_ms,
                    record,
                };
                (group.record.key.clone(), group)
            })
            .collect();
        Self {
            by_key,
            ..Self::default()
        }
    }

    /// The group `key`.
    pub(super) fn get(&self, key: &str) -> Option<&Group> {
        self.by_key.get(key)
    }

    /// How many groups there are.
    pub(super) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// The alerts some group told its receiver were firing: each is owed its resolution.
    pub(super) fn told_firing(&self) -> HashSet<Fingerprint> {
        self.by_key
            .values()
            .flat_map(|g| g.record.clock.notified.firing.iter().copied())
            .collect()
    }

    /// The alerts some group holds or owes a resolution for.
    pub(super) fn owed(&self) -> HashSet<Fingerprint> {
        self.by_key
            .values()
            .flat_map(|g| g.members.iter().chain(&g.record.clock.notified.firing))
            .copied()
            .collect()
    }

    /// When the earliest group or escalation is due, if any.
    pub(super) fn next_due(&self) -> Option<i64> {
        let group = self.due.peek().map(|Reverse((at, _))| *at);
        let escalation = self.escalations.peek().map(|Reverse((at, _))| *at);
        group.into_iter().chain(escalation).min()
    }

    /// Takes the alerts whose escalation is due at `now_ms`, to be routed again.
    pub(super) fn escalations_due(&mut self, now_ms: i64) -> Vec<Fingerprint> {
        let mut due = Vec::new();
        while let Some(Reverse((at, fp))) = self.escalations.peek().copied() {
            if at > now_ms {
                break;
            }
            self.escalations.pop();
            due.push(fp);
        }
        due
    }

    /// Takes the groups due at `now_ms`, earliest first, each once.
    pub(super) fn take_due(&mut self, now_ms: i64) -> Vec<String> {
        let mut looked = HashSet::new();
        let mut due = Vec::new();
        while let Some(Reverse((at, _))) = self.due.peek() {
            if *at > now_ms {
                break;
            }
            let Some(Reverse((at, key))) = self.due.pop() else {
                break;
            };
            let current = self.by_key.get(&key).map(|g| g.next_due);
            if current != Some(at) || !looked.insert(key.clone()) {
                continue; // stale entry, or already looked at in this pass
            }
            due.push(key);
        }
        due
    }

    /// Has `key` looked at `at_ms`.
    pub(super) fn schedule(&mut self, key: &str, at_ms: i64) {
        if let Some(group) = self.by_key.get_mut(key) {
            group.next_due = at_ms;
            self.due.push(Reverse((at_ms, key.to_owned())));
        }
    }

    /// Routes every known alert again (after a load, a refresh or a reload), and has every
    /// group looked at at `now_ms`.
    pub(super) fn reroute(&mut self, known: &Known, config: &Config, now_ms: i64) {
        // Every group is scheduled again below: older entries would only pile up.
        self.escalations.clear();
        self.due.clear();
        for group in self.by_key.values_mut() {
            group.members.clear();
        }
        for alert in known.values() {
            self.route(alert, config, now_ms);
        }
        // Every group is looked at now; its clock says when it is next due.
        let keys: Vec<String> = self.by_key.keys().cloned().collect();
        for key in keys {
            self.schedule(&key, now_ms);
        }
    }

    /// Puts `alert` in the groups its routes lead to, creating groups for a firing one; and,
    /// past its route's escalation time while unacknowledged, in the escalation's groups.
    pub(super) fn route(&mut self, alert: &StoredAlert, config: &Config, now_ms: i64) {
        let Some(route) = &config.alerting.route else {
            return;
        };
        let fp = alert.fingerprint;
        let firing = alert.state == AlertState::Firing;
        let mut joins = Vec::new();
        for destination in route.destinations(&alert.labels) {
            let labels = destination.group_by.key(&alert.labels);
            let key = group_key(&destination.path, &destination.receiver, &labels);
            let timing = timing_of(config, &destination.receiver, &destination);
            if let Some(escalation) = config.alerting.escalations.get(&destination.path) {
                // Its own groups, apart from the route's (even for the same receiver).
                let escalated_key = format!(
                    "!{}",
                    group_key(&destination.path, &escalation.receiver, &labels)
                );
                // Once escalated, an alert stays in its escalation group, so that receiver
                // hears of its resolution (an acknowledgement ends the repeats there too).
                let escalated = self.by_key.get(&escalated_key).is_some_and(|g| {
                    g.members.contains(&fp) || g.record.clock.notified.firing.contains(&fp)
                });
                let at = alert.starts_at_ms.saturating_add(ms(escalation.after_ms));
                let due = firing && alert.ack.is_none();
                if escalated || (due && now_ms >= at) {
                    let timing = Timing {
                        group_wait_ms: 0,
                        ..timing_of(config, &escalation.receiver, &destination)
                    };
                    joins.push(Joining {
                        key: escalated_key,
                        receiver: escalation.receiver.clone(),
                        path: destination.path.clone(),
                        labels: labels.clone(),
                        timing,
                    });
                } else if due {
                    self.escalations.push(Reverse((at, fp)));
                }
            }
            joins.push(Joining {
                key,
                receiver: destination.receiver,
                path: destination.path,
                labels,
                timing,
            });
        }
        for joining in joins {
            self.join(alert, firing, joining, now_ms);
        }
    }

    /// Puts `alert` in the group `joining` names, creating it when the alert fires.
    fn join(&mut self, alert: &StoredAlert, firing: bool, joining: Joining, now_ms: i64) {
        let fp = alert.fingerprint;
        let Joining {
            key,
            receiver,
            path,
            labels,
            timing,
        } = joining;
        if let Some(group) = self.by_key.get_mut(&key) {
            group.timing = timing;
            if group.record.route_path != path {
                group.record.route_path = path;
                self.unsaved.insert(key.clone());
            }
            if firing || group.record.clock.notified.firing.contains(&fp) {
                group.members.insert(fp);
            }
            return;
        }
        if !firing {
            return;
        }
        let created_ms = group_start(alert.last_received_ms, now_ms, &timing);
        let due = created_ms.saturating_add(ms(timing.group_wait_ms));
        let group = Group {
            record: GroupRecord {
                key: key.clone(),
                receiver,
                route_path: path,
                labels,
                clock: GroupClock::new(created_ms),
            },
            timing,
            members: BTreeSet::from([fp]),
            next_due: due,
        };
        self.unsaved.insert(key.clone());
        self.by_key.insert(key.clone(), group);
        self.due.push(Reverse((due, key)));
    }

    /// The records of groups created or re-routed since the last write, but for those `skip`
    /// names (written by a pass already).
    pub(super) fn unsaved(&mut self, skip: impl Fn(&str) -> bool) -> Vec<GroupRecord> {
        let by_key = &self.by_key;
        self.unsaved.retain(|key| by_key.contains_key(key));
        self.unsaved
            .iter()
            .filter(|key| !skip(key))
            .filter_map(|key| self.by_key.get(key))
            .map(|g| g.record.clone())
            .collect()
    }

    /// Counts `key` as saved by a pass being written; true when it was unsaved.
    pub(super) fn saving(&mut self, key: &str) -> bool {
        self.unsaved.remove(key)
    }

    /// Counts these groups as unsaved again (their pass was not written).
    pub(super) fn unsave(&mut self, keys: impl IntoIterator<Item = String>) {
        self.unsaved.extend(keys);
    }

    /// Moves the clock of `key` to `clock`, as written, and drops the `resolved` members its
    /// notification told, unless they fire again (`known` says).
    pub(super) fn move_clock(
        &mut self,
        key: &str,
        clock: GroupClock,
        resolved: Vec<Fingerprint>,
        known: &Known,
    ) {
        let Some(group) = self.by_key.get_mut(key) else {
            return;
        };
        for fp in resolved {
            // Unless it fired again while the pass was written.
            if known.get(&fp).is_none_or(|a| a.state != AlertState::Firing) {
                group.members.remove(&fp);
            }
        }
        group.record.clock = clock;
    }

    /// Drops the group `key`, answering its members.
    pub(super) fn finish(&mut self, key: &str) -> BTreeSet<Fingerprint> {
        self.by_key
            .remove(key)
            .map(|group| group.members)
            .unwrap_or_default()
    }
}

/// When a group whose first alert arrived at `arrived_ms` (as its receiver stamped it) and is
/// taken in at `now_ms` starts its group_wait: at the arrival, so that a store slow to write
/// and announce the alert delays the taking in, not the notification; but never before
/// `now_ms` less the group_wait, so that a group made for an old alert (at a start, or by a
/// new config's routes) still waits its group_wait for company.
fn group_start(arrived_ms: i64, now_ms: i64, timing: &Timing) -> i64 {
    if arrived_ms > now_ms.saturating_sub(ms(timing.group_wait_ms)) {
        arrived_ms
    } else {
        now_ms
    }
}

/// The timing of groups at `destination` notifying `receiver`.
fn timing_of(config: &Config, receiver: &str, destination: &Destination) -> Timing {
    let send_resolved = config
        .alerting
        .receivers
        .iter()
        .find(|r| r.name == receiver)
        .is_none_or(|r| r.send_resolved);
    Timing {
        group_wait_ms: destination.group_wait_ms,
        group_interval_ms: destination.group_interval_ms,
        repeat_interval_ms: destination.repeat_interval_ms,
        send_resolved,
    }
}

/// The timing of a stored group none of whose alerts is routed to it any more.
fn default_timing() -> Timing {
    use steward_core::alert::route::{
        DEFAULT_GROUP_INTERVAL_MS, DEFAULT_GROUP_WAIT_MS, DEFAULT_REPEAT_INTERVAL_MS,
    };
    Timing {
        group_wait_ms: DEFAULT_GROUP_WAIT_MS,
        group_interval_ms: DEFAULT_GROUP_INTERVAL_MS,
        repeat_interval_ms: DEFAULT_REPEAT_INTERVAL_MS,
        send_resolved: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_wait_counts_from_a_recent_arrival_and_whole_for_an_old_one() {
        let timing = Timing {
            group_wait_ms: 30_000,
            group_interval_ms: 300_000,
            repeat_interval_ms: 3_600_000,
            send_resolved: true,
        };
        // Taken in 5 s after it arrived (a slow write under a burst): due 30 s after arrival.
        assert_eq!(group_start(100_000, 105_000, &timing), 100_000);
        // Met long after it arrived (a start, a new route): a whole group_wait from now.
        assert_eq!(group_start(100_000, 200_000, &timing), 200_000);
        assert_eq!(group_start(100_000, 130_000, &timing), 130_000);
        // Stamped by an instance whose clock runs ahead: never before its arrival.
        assert_eq!(group_start(110_000, 105_000, &timing), 110_000);
    }

    fn record(key: &str) -> GroupRecord {
        GroupRecord {
            key: key.to_owned(),
            receiver: "ops".into(),
            route_path: Vec::new(),
            labels: Labels::new(),
            clock: GroupClock::new(0),
        }
    }

    #[test]
    fn a_due_group_is_taken_once_and_at_its_latest_time_only() {
        let mut groups = Groups::stored(vec![record("a"), record("b")], 0);
        // Twice at the same time: looked at once.
        groups.schedule("a", 100);
        groups.schedule("a", 100);
        // Moved later: its earlier entry is stale.
        groups.schedule("b", 100);
        groups.schedule("b", 300);
        assert_eq!(groups.take_due(200), ["a"]);
        assert_eq!(groups.next_due(), Some(300));
        assert_eq!(groups.take_due(300), ["b"]);
        assert_eq!(groups.next_due(), None);
    }
}
