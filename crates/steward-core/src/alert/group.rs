//! When a group of alerts is notified, as Alertmanager times it, plus acknowledgements:
//! - a new group waits `group_wait` for more alerts before its first notification;
//! - afterwards it is looked at every `group_interval`: a change (an alert that started firing,
//!   or — when the receiver wants resolutions — one that resolved) is notified at once;
//! - an unchanged group is notified again every `repeat_interval`, unless it was
//!   acknowledged: an acknowledgement holds until the group's alerts change;
//! - a group with nothing firing that has told its receiver so is finished.
//!
//! Ticks fall on a grid from the group's latest notification, `group_interval` apart. Pure:
//! the caller passes the time and the group's current alerts (and may come late: a late look
//! acts as the tick it missed), so the timing is tested with any clock.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::Fingerprint;

/// The timing a group follows (from its route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Before the first notification.
    pub group_wait_ms: u64,
    /// Between looks at the group.
    pub group_interval_ms: u64,
    /// Before repeating an unchanged notification.
    pub repeat_interval_ms: u64,
    /// Whether resolutions are notified.
    pub send_resolved: bool,
}

/// What a group holds now: the fingerprints of its firing and of its resolved alerts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Contents {
    /// Alerts firing.
    pub firing: BTreeSet<Fingerprint>,
    /// Alerts resolved (not yet forgotten).
    pub resolved: BTreeSet<Fingerprint>,
}

/// What a group's clock says to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Notify now (and call [`GroupClock::notified`] once the notification is queued).
    Notify(Reason),
    /// Nothing to do before this time.
    WaitUntil(i64),
    /// Nothing fires and the receiver has been told: the group can be dropped.
    Finished,
}

/// Why a group is notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Its first notification, after `group_wait`.
    First,
    /// Its alerts changed since the last notification.
    Changed,
    /// Unchanged and unacknowledged for `repeat_interval`.
    Repeat,
}

impl Reason {
    /// Its name, as stored and as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::First => "first",
            Self::Changed => "changed",
            Self::Repeat => "repeat",
        }
    }
}

/// The state of one group's timing, kept in the store so a restart resumes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupClock {
    /// When the group got its first alert.
    pub created_ms: i64,
    /// Where its grid of `group_interval` ticks starts: its latest notification.
    pub last_tick_ms: Option<i64>,
    /// When it was last notified.
    pub notified_ms: Option<i64>,
    /// What that notification said.
    pub notified: Contents,
    /// The firing alerts someone acknowledged: repeats stop until these change.
    pub acknowledged: Option<BTreeSet<Fingerprint>>,
}

impl GroupClock {
    /// A group whose first alert arrived at `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        Self {
            created_ms: now_ms,
            last_tick_ms: None,
            notified_ms: None,
            notified: Contents::default(),
            acknowledged: None,
        }
    }

    /// What to do at `now_ms` with the group holding `current`.
    pub fn decide(&self, now_ms: i64, current: &Contents, timing: &Timing) -> Decision {
        let Some(last_tick) = self.last_tick_ms else {
            let due = self.created_ms.saturating_add(ms(timing.group_wait_ms));
            return if now_ms < due {
                Decision::WaitUntil(due)
            } else if current.firing.is_empty() && !timing.send_resolved {
                // Resolved before anyone was told it fired: nothing to say.
                Decision::Finished
            } else if current.firing.is_empty() && current.resolved.is_empty() {
                Decision::Finished
            } else {
                Decision::Notify(Reason::First)
            };
        };
        let interval = ms(timing.group_interval_ms.max(1));
        let next_tick = last_tick.saturating_add(interval);
        if now_ms < next_tick {
            return Decision::WaitUntil(next_tick);
        }
        // At (or past) a tick of the group's grid.
        if self.changed(current, timing) {
            return Decision::Notify(Reason::Changed);
        }
        if current.firing.is_empty() {
            return Decision::Finished;
        }
        let following = last_tick.saturating_add(((now_ms - last_tick) / interval + 1) * interval);
        if self.acknowledged.as_ref() == Some(&current.firing) {
            return Decision::WaitUntil(following);
        }
        let repeat_due = self
            .notified_ms
            .unwrap_or(self.created_ms)
            .saturating_add(ms(timing.repeat_interval_ms));
        if now_ms >= repeat_due {
            Decision::Notify(Reason::Repeat)
        } else {
            Decision::WaitUntil(following)
        }
    }

    /// Whether `current` differs from what was last notified in a way the receiver hears of.
    fn changed(&self, current: &Contents, timing: &Timing) -> bool {
        current.firing != self.notified.firing
            || (timing.send_resolved
                && !current
                    .resolved
                    .iter()
                    .all(|fp| self.notified.resolved.contains(fp)))
    }

    /// Records a notification of `current` at `now_ms`. A change of the firing alerts ends an
    /// acknowledgement.
    pub fn notified(&mut self, now_ms: i64, current: &Contents) {
        self.last_tick_ms = Some(now_ms);
        self.notified_ms = Some(now_ms);
        if self
            .acknowledged
            .as_ref()
            .is_some_and(|acked| acked != &current.firing)
        {
            self.acknowledged = None;
        }
        self.notified = current.clone();
    }

    /// Acknowledges the group's `firing` alerts: no repeats until they change.
    pub fn acknowledge(&mut self, firing: &BTreeSet<Fingerprint>) {
        self.acknowledged = Some(firing.clone());
    }
}

fn ms(duration_ms: u64) -> i64 {
    i64::try_from(duration_ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TIMING: Timing = Timing {
        group_wait_ms: 30_000,
        group_interval_ms: 300_000,
        repeat_interval_ms: 3_600_000,
        send_resolved: true,
    };

    #[test]
    fn reasons_are_named_as_they_are_stored() {
        for reason in [Reason::First, Reason::Changed, Reason::Repeat] {
            assert_eq!(
                serde_json::to_value(reason).unwrap(),
                serde_json::json!(reason.as_str())
            );
        }
    }

    fn contents(firing: &[u64], resolved: &[u64]) -> Contents {
        Contents {
            firing: firing.iter().map(|&f| Fingerprint(f)).collect(),
            resolved: resolved.iter().map(|&f| Fingerprint(f)).collect(),
        }
    }

    /// Runs the clock from `from` to `to` a second at a time, applying each decision, and
    /// returns when (and why) it notified.
    fn run(
        clock: &mut GroupClock,
        from: i64,
        to: i64,
        current: impl Fn(i64) -> Contents,
        timing: &Timing,
    ) -> Vec<(i64, Reason)> {
        let mut sent = Vec::new();
        let mut t = from;
        while t <= to {
            let now = current(t);
            match clock.decide(t, &now, timing) {
                Decision::Notify(reason) => {
                    clock.notified(t, &now);
                    sent.push((t, reason));
                }
                Decision::WaitUntil(_) => {}
                Decision::Finished => break,
            }
            t += 1_000;
        }
        sent
    }

    #[test]
    fn the_first_notification_waits_for_group_wait() {
        let clock = GroupClock::new(0);
        let one = contents(&[1], &[]);
        assert_eq!(clock.decide(0, &one, &TIMING), Decision::WaitUntil(30_000));
        assert_eq!(
            clock.decide(29_999, &one, &TIMING),
            Decision::WaitUntil(30_000)
        );
        assert_eq!(
            clock.decide(30_000, &one, &TIMING),
            Decision::Notify(Reason::First)
        );
    }

    #[test]
    fn changes_wait_for_the_next_tick_and_repeats_for_repeat_interval() {
        let mut clock = GroupClock::new(0);
        // Alert 1 from the start; alert 2 joins at 100 s; nothing changes after.
        let sent = run(
            &mut clock,
            0,
            4 * 3_600_000,
            |t| {
                if t < 100_000 {
                    contents(&[1], &[])
                } else {
                    contents(&[1, 2], &[])
                }
            },
            &TIMING,
        );
        assert_eq!(sent[0], (30_000, Reason::First));
        assert_eq!(
            sent[1],
            (330_000, Reason::Changed),
            "the change waits for the group_interval tick"
        );
        assert_eq!(sent[2].1, Reason::Repeat);
        assert!(
            sent[2].0 >= 330_000 + 3_600_000,
            "repeats come after repeat_interval: {sent:?}"
        );
        assert!(sent.windows(2).all(|w| w[1].0 - w[0].0 >= 300_000));
    }

    #[test]
    fn an_acknowledgement_stops_repeats_until_the_alerts_change() {
        let mut clock = GroupClock::new(0);
        let one = contents(&[1], &[]);
        clock.notified(30_000, &one);
        clock.acknowledge(&one.firing);
        let later = 30_000 + 3_600_000 + 300_000;
        assert!(matches!(
            clock.decide(later, &one, &TIMING),
            Decision::WaitUntil(_)
        ));
        let two = contents(&[1, 2], &[]);
        assert_eq!(
            clock.decide(later, &two, &TIMING),
            Decision::Notify(Reason::Changed)
        );
        clock.notified(later, &two);
        assert_eq!(
            clock.acknowledged, None,
            "a change ends the acknowledgement"
        );
    }

    #[test]
    fn resolutions_are_notified_once_then_the_group_finishes() {
        let mut clock = GroupClock::new(0);
        clock.notified(30_000, &contents(&[1], &[]));
        let gone = contents(&[], &[1]);
        assert_eq!(
            clock.decide(330_000, &gone, &TIMING),
            Decision::Notify(Reason::Changed)
        );
        clock.notified(330_000, &gone);
        assert_eq!(clock.decide(630_000, &gone, &TIMING), Decision::Finished);
        // Without send_resolved, the resolution is not a change worth a notification.
        let quiet = Timing {
            send_resolved: false,
            ..TIMING
        };
        let mut clock = GroupClock::new(0);
        clock.notified(30_000, &contents(&[1], &[]));
        assert_eq!(
            clock.decide(330_000, &gone, &quiet),
            Decision::Notify(Reason::Changed),
            "the firing set changed (to empty)"
        );
        // An alert resolved before group_wait is never notified without send_resolved.
        let early = GroupClock::new(0);
        assert_eq!(early.decide(30_000, &gone, &quiet), Decision::Finished);
    }

    proptest! {
        #[test]
        fn notifications_respect_group_wait_and_interval(
            joins in proptest::collection::vec(0i64..3_600, 1..6),
            wait in 0u64..120,
            interval in 1u64..900,
        ) {
            let timing = Timing {
                group_wait_ms: wait * 1_000,
                group_interval_ms: interval * 1_000,
                repeat_interval_ms: 3_600_000,
                send_resolved: true,
            };
            let mut clock = GroupClock::new(0);
            // The group is created by its first alert.
            let joins_ms: Vec<i64> = std::iter::once(0).chain(joins.iter().map(|s| s * 1_000)).collect();
            let sent = run(&mut clock, 0, 7_200_000, |t| Contents {
                firing: joins_ms.iter().enumerate()
                    .filter(|(_, at)| **at <= t)
                    .map(|(i, _)| Fingerprint(i as u64))
                    .collect(),
                resolved: BTreeSet::new(),
            }, &timing);
            prop_assert!(!sent.is_empty());
            prop_assert!(sent[0].0 >= i64::try_from(timing.group_wait_ms).unwrap());
            for pair in sent.windows(2) {
                prop_assert!(pair[1].0 - pair[0].0 >= i64::try_from(timing.group_interval_ms).unwrap());
            }
        }
    }
}
