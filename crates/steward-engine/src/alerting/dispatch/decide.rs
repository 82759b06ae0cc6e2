//! Deciding: what each due group needs now (a notification, a later look, or its end) from
//! its unmuted alerts, its clock and its route's timing, gathered for a whole pass in a
//! [`Plan`].

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use steward_core::alert::group::{Contents, Decision, GroupClock, Reason, Timing};
use steward_core::alert::notice::Notice;
use steward_core::alert::webhook::EncodedAlert;
use steward_core::alert::{AlertState, Fingerprint};
use steward_core::task::NewTask;
use steward_store::notifications::{GroupRecord, NewNotification};

use super::grouping::Group;
use super::{Dispatcher, ms};
use crate::alerting::known::Known;
use crate::alerting::muting::Muting;

/// What one pass decided, to be written before memory follows it.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Groups whose clocks move, with the members to drop once written.
    pub(super) updates: Vec<(GroupRecord, Vec<Fingerprint>)>,
    /// Groups that are done.
    pub(super) finished: Vec<String>,
    /// Notifications to queue.
    pub(super) notifications: Vec<NewNotification>,
    /// Remediation tasks (idempotent per alert episode and route).
    pub(super) tasks: Vec<NewTask>,
    /// The (alert, route) pairs those tasks are for, with the episode.
    pub(super) remediated: Vec<((Fingerprint, Vec<usize>), i64)>,
    /// When each looked-at group is next due.
    pub(super) next: Vec<(String, i64)>,
    /// When it was decided.
    pub(super) decided_ms: i64,
}

/// A group's alerts as a pass finds them.
#[derive(Default)]
struct Snapshot {
    /// Its unmuted alerts.
    contents: Contents,
    /// How many of its firing alerts are muted.
    muted: usize,
    /// Whether it has unmuted firing alerts, all acknowledged.
    acknowledged: bool,
    /// Its unmuted firing alerts, as notifications carry them.
    firing: Vec<Arc<EncodedAlert>>,
    /// Its resolved alerts its receiver was told fired, as notifications carry them.
    resolved: Vec<Arc<EncodedAlert>>,
}

/// What a group needs now.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// A notification for `reason`; its clock moves to `clock`, and it is looked at again at
    /// `next_ms`.
    Notify {
        reason: Reason,
        clock: GroupClock,
        next_ms: i64,
    },
    /// Nothing to send: its clock moves to `clock` if it is set, and it is looked at again at
    /// `next_ms`.
    Wait {
        clock: Option<GroupClock>,
        next_ms: i64,
    },
    /// Nothing fires, muted or not, and its receiver has been told: it is dropped.
    Finished,
}

impl Dispatcher {
    /// Decides every group due at `now_ms`, except those of passes being written.
    pub(crate) fn plan(&mut self, now_ms: i64) -> Plan {
        // The index is read only when groups are decided: passes that only take in alerts
        // (most of them, under a burst) do not rebuild it.
        if self.sources_stale && self.next_due().is_some_and(|at| at <= now_ms) {
            self.muting.index_sources(self.known.values());
            self.sources_stale = false;
        }
        for fp in self.groups.escalations_due(now_ms) {
            self.route(fp, now_ms);
        }
        let mut plan = Plan {
            decided_ms: now_ms,
            ..Plan::default()
        };
        for key in self.groups.take_due(now_ms) {
            if self.passes.holds(&key) {
                self.passes.defer(key);
                continue;
            }
            self.decide(&key, now_ms, &mut plan);
        }
        // New or re-routed groups are written even when their clocks did not move, so a
        // restart finds them with their creation time (those of passes being written, once
        // those are written).
        let planned: HashSet<&str> = plan
            .updates
            .iter()
            .map(|(r, _)| r.key.as_str())
            .chain(plan.finished.iter().map(String::as_str))
            .collect();
        let passes = &self.passes;
        let unsaved = self
            .groups
            .unsaved(|key| planned.contains(key) || passes.holds(key));
        plan.updates
            .extend(unsaved.into_iter().map(|r| (r, Vec::new())));
        plan
    }

    /// Decides one group.
    fn decide(&self, key: &str, now_ms: i64, plan: &mut Plan) {
        let Some(group) = self.groups.get(key) else {
            return;
        };
        let snapshot = snapshot(group, &self.known, &self.muting, now_ms);
        let verdict = verdict(
            &group.record.clock,
            &group.timing,
            &snapshot.contents,
            snapshot.muted,
            snapshot.acknowledged,
            now_ms,
        );
        match verdict {
            Verdict::Notify {
                reason,
                clock,
                next_ms,
            } => {
                let Snapshot {
                    contents,
                    firing,
                    resolved,
                    ..
                } = snapshot;
                let mut alerts = firing;
                if group.timing.send_resolved {
                    alerts.extend(resolved);
                }
                if !alerts.is_empty() {
                    plan.notifications
                        .push(self.notification(group, reason, alerts, now_ms));
                }
                self.remediate(&group.record.route_path, &contents.firing, now_ms, plan);
                let record = GroupRecord {
                    clock,
                    ..group.record.clone()
                };
                plan.updates
                    .push((record, contents.resolved.iter().copied().collect()));
                plan.next.push((key.to_owned(), next_ms));
            }
            Verdict::Wait { clock, next_ms } => {
                if let Some(clock) = clock {
                    let record = GroupRecord {
                        clock,
                        ..group.record.clone()
                    };
                    plan.updates.push((record, Vec::new()));
                }
                plan.next.push((key.to_owned(), next_ms));
            }
            Verdict::Finished => plan.finished.push(key.to_owned()),
        }
    }

    /// The notification of `group` carrying `alerts`, for `reason`.
    fn notification(
        &self,
        group: &Group,
        reason: Reason,
        alerts: Vec<Arc<EncodedAlert>>,
        now_ms: i64,
    ) -> NewNotification {
        let ttl_ms = ms(self.config.alerting.settings.notification_ttl_ms);
        NewNotification {
            notice: Notice::encoded(
                group.record.receiver.clone(),
                group.record.key.clone(),
                group.record.labels.clone(),
                reason,
                alerts,
            ),
            created_ms: now_ms,
            expires_ms: now_ms.saturating_add(ttl_ms),
        }
    }
}

/// What `group` holds now, muted alerts left out (each member looked up once: a large group's
/// members are many).
fn snapshot(group: &Group, known: &Known, muting: &Muting, now_ms: i64) -> Snapshot {
    let mut snapshot = Snapshot {
        acknowledged: true,
        ..Snapshot::default()
    };
    for fp in &group.members {
        let Some((alert, encoded)) = known.with_encoding(fp) else {
            continue;
        };
        match alert.state {
            AlertState::Firing if muting.why(alert, now_ms).is_some() => {
                snapshot.muted += 1;
            }
            AlertState::Firing => {
                snapshot.firing.push(Arc::clone(encoded));
                snapshot.acknowledged &= alert.ack.is_some();
            }
            AlertState::Resolved => {
                if group.record.clock.notified.firing.contains(fp) {
                    snapshot.resolved.push(Arc::clone(encoded));
                }
            }
        }
    }
    snapshot.acknowledged &= !snapshot.firing.is_empty();
    // In the members' order already: the sets are built in bulk.
    let fingerprints = |alerts: &[Arc<EncodedAlert>]| {
        alerts
            .iter()
            .map(|a| a.alert().fingerprint)
            .collect::<BTreeSet<_>>()
    };
    snapshot.contents = Contents {
        firing: fingerprints(&snapshot.firing),
        resolved: fingerprints(&snapshot.resolved),
    };
    snapshot
}

/// What a group whose clock is `clock` needs at `now_ms`, holding the unmuted `contents`
/// (`acknowledged`: all of whose firing alerts are acknowledged) and `muted` firing alerts
/// more.
fn verdict(
    clock: &GroupClock,
    timing: &Timing,
    contents: &Contents,
    muted: usize,
    acknowledged: bool,
    now_ms: i64,
) -> Verdict {
    let mut clock = clock.clone();
    let moved = follow_acknowledgement(&mut clock, &contents.firing, acknowledged);
    let next_look_ms = now_ms.saturating_add(ms(timing.group_interval_ms.max(1)));
    match clock.decide(now_ms, contents, timing) {
        Decision::Notify(_) if muted > 0 && nothing_to_say(contents, timing) => {
            // Only muting changed the group: nothing is sent, and the clock stays, so the
            // receiver is still owed the resolution of what it was told fired.
            Verdict::Wait {
                clock: None,
                next_ms: next_look_ms,
            }
        }
        Decision::Notify(reason) => {
            clock.notified(now_ms, contents);
            Verdict::Notify {
                reason,
                clock,
                next_ms: next_look_ms,
            }
        }
        Decision::WaitUntil(at) => Verdict::Wait {
            clock: moved.then_some(clock),
            next_ms: at,
        },
        // Its alerts still fire, muted: look again when muting may have ended.
        Decision::Finished if muted > 0 => Verdict::Wait {
            clock: None,
            next_ms: next_look_ms,
        },
        Decision::Finished => Verdict::Finished,
    }
}

/// Has `clock` follow whether the group's `firing` alerts are all `acknowledged`; true when
/// that moved it.
fn follow_acknowledgement(
    clock: &mut GroupClock,
    firing: &BTreeSet<Fingerprint>,
    acknowledged: bool,
) -> bool {
    if acknowledged && clock.acknowledged.as_ref() != Some(firing) {
        clock.acknowledge(firing);
        true
    } else if !acknowledged && clock.acknowledged.is_some() {
        // An alert fired again (a new episode clears its acknowledgement) or a new one
        // joined: repeats resume.
        clock.acknowledged = None;
        true
    } else {
        false
    }
}

/// Whether a notification of `contents` would carry nothing.
fn nothing_to_say(contents: &Contents, timing: &Timing) -> bool {
    contents.firing.is_empty() && (contents.resolved.is_empty() || !timing.send_resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: Timing = Timing {
        group_wait_ms: 30_000,
        group_interval_ms: 300_000,
        repeat_interval_ms: 3_600_000,
        send_resolved: true,
    };

    fn firing(fps: &[u64]) -> Contents {
        Contents {
            firing: fps.iter().copied().map(Fingerprint).collect(),
            resolved: BTreeSet::new(),
        }
    }

    /// A group created at 0 and told `told` at 30 s.
    fn told(told: &Contents) -> GroupClock {
        let mut clock = GroupClock::new(0);
        clock.notified(30_000, told);
        clock
    }

    #[test]
    fn a_notification_moves_the_clock_and_looks_again_an_interval_later() {
        let a = firing(&[1]);
        let verdict = verdict(&GroupClock::new(0), &TIMING, &a, 0, false, 30_000);
        assert_eq!(
            verdict,
            Verdict::Notify {
                reason: Reason::First,
                clock: told(&a),
                next_ms: 330_000,
            }
        );
    }

    #[test]
    fn a_group_changed_only_by_muting_sends_nothing_and_keeps_its_clock() {
        // Told `1` fired; `1` is muted now.
        let clock = told(&firing(&[1]));
        let verdict = verdict(&clock, &TIMING, &firing(&[]), 1, false, 330_000);
        assert_eq!(
            verdict,
            Verdict::Wait {
                clock: None,
                next_ms: 630_000,
            }
        );
    }

    #[test]
    fn an_acknowledgement_moves_the_clock_between_ticks_and_ends_with_a_newcomer() {
        let a = firing(&[1]);
        let acked = verdict(&told(&a), &TIMING, &a, 0, true, 60_000);
        let mut clock = told(&a);
        clock.acknowledge(&a.firing);
        assert_eq!(
            acked,
            Verdict::Wait {
                clock: Some(clock.clone()),
                next_ms: 330_000,
            }
        );
        let joined = verdict(&clock, &TIMING, &firing(&[1, 2]), 0, false, 60_000);
        assert_eq!(
            joined,
            Verdict::Wait {
                clock: Some(told(&a)),
                next_ms: 330_000,
            },
            "repeats resume"
        );
    }

    #[test]
    fn a_group_whose_alerts_are_all_muted_is_looked_at_again_not_dropped() {
        let empty = firing(&[]);
        let muted = verdict(&GroupClock::new(0), &TIMING, &empty, 1, false, 30_000);
        assert_eq!(
            muted,
            Verdict::Wait {
                clock: None,
                next_ms: 330_000,
            }
        );
        let done = verdict(&GroupClock::new(0), &TIMING, &empty, 0, false, 30_000);
        assert_eq!(done, Verdict::Finished);
    }

    #[test]
    fn only_resolutions_a_receiver_hears_of_are_something_to_say() {
        let resolved = Contents {
            firing: BTreeSet::new(),
            resolved: BTreeSet::from([Fingerprint(1)]),
        };
        assert!(!nothing_to_say(&resolved, &TIMING));
        let quiet = Timing {
            send_resolved: false,
            ..TIMING
        };
        assert!(nothing_to_say(&resolved, &quiet));
        assert!(!nothing_to_say(&firing(&[1]), &quiet));
    }
}
