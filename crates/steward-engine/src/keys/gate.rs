//! The slow lane: at most a few Argon2 verifications run at once, and those waiting for one are
//! served by their caller's standing, so a flood of guesses from failing addresses never keeps
//! a caller from a clean address waiting for long, and never refuses it.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

/// How the caller's address has behaved lately; better standings are served first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Standing {
    /// Refused for failing too often (served last).
    Blocked,
    /// Failed to authenticate within the last minute.
    Failing,
    /// No recent failure (served first).
    Clean,
}

/// One caller waiting for a slot.
struct Waiter {
    standing: Standing,
    seq: u64,
    grant: oneshot::Sender<()>,
}

impl Waiter {
    /// Ordering key: greater is served sooner (better standing, then earlier arrival).
    fn priority(&self) -> (Standing, std::cmp::Reverse<u64>) {
        (self.standing, std::cmp::Reverse(self.seq))
    }
}

#[derive(Default)]
struct Lane {
    running: usize,
    waiting: Vec<Waiter>,
    next_seq: u64,
}

/// Slots for slow verifications, handed out by standing.
pub(crate) struct Gate {
    slots: usize,
    max_waiting: usize,
    max_wait: Duration,
    lane: Mutex<Lane>,
}

/// No slot could be had: the queue was full of callers in better standing, or the wait was too
/// long.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Busy;

/// A running verification's slot; handed to the best waiter when dropped.
pub(crate) struct Slot {
    gate: Arc<Gate>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gate.release();
    }
}

impl Gate {
    /// `slots` at once, at most `max_waiting` waiting, none for longer than `max_wait`.
    pub(crate) fn new(slots: usize, max_waiting: usize, max_wait: Duration) -> Arc<Self> {
        Arc::new(Self {
            slots: slots.max(1),
            max_waiting,
            max_wait,
            lane: Mutex::default(),
        })
    }

    fn lane(&self) -> MutexGuard<'_, Lane> {
        self.lane.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a slot. When the queue is full, the waiter in the worst standing (the latest
    /// of them) gives up its place, or this caller is refused if it is that one.
    pub(crate) async fn enter(self: &Arc<Self>, standing: Standing) -> Result<Slot, Busy> {
        let (seq, granted) = {
            let mut lane = self.lane();
            if lane.running < self.slots && lane.waiting.is_empty() {
                lane.running += 1;
                return Ok(Slot {
                    gate: Arc::clone(self),
                });
            }
            lane.waiting.retain(|w| !w.grant.is_closed());
            let seq = lane.next_seq;
            lane.next_seq += 1;
            let (grant, granted) = oneshot::channel();
            let waiter = Waiter {
                standing,
                seq,
                grant,
            };
            if lane.waiting.len() >= self.max_waiting {
                let worst = lane
                    .waiting
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, w)| w.priority())
                    .map(|(i, w)| (i, w.priority()));
                match worst {
                    Some((i, priority)) if priority < waiter.priority() => {
                        // Dropping its sender tells it it is refused.
                        lane.waiting.swap_remove(i);
                    }
                    _ => return Err(Busy),
                }
            }
            lane.waiting.push(waiter);
            (seq, granted)
        };
        match tokio::time::timeout(self.max_wait, granted).await {
            Ok(Ok(())) => Ok(Slot {
                gate: Arc::clone(self),
            }),
            Ok(Err(_)) => Err(Busy),
            Err(_) => self.gave_up(seq),
        }
    }

    /// A waiter stopped waiting: refused if still queued; if a slot was granted meanwhile (the
    /// grant is made under the lock), it is taken.
    fn gave_up(self: &Arc<Self>, seq: u64) -> Result<Slot, Busy> {
        let mut lane = self.lane();
        match lane.waiting.iter().position(|w| w.seq == seq) {
            Some(i) => {
                lane.waiting.swap_remove(i);
                Err(Busy)
            }
            None => Ok(Slot {
                gate: Arc::clone(self),
            }),
        }
    }

    /// Hands a finished slot to the best waiter still waiting, or frees it.
    fn release(&self) {
        let mut lane = self.lane();
        while let Some(best) = lane
            .waiting
            .iter()
            .enumerate()
            .max_by_key(|(_, w)| w.priority())
            .map(|(i, _)| i)
        {
            let waiter = lane.waiting.swap_remove(best);
            if waiter.grant.send(()).is_ok() {
                return;
            }
        }
        lane.running = lane.running.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(slots: usize, max_waiting: usize) -> Arc<Gate> {
        Gate::new(slots, max_waiting, Duration::from_secs(5))
    }

    #[tokio::test]
    async fn free_slots_are_taken_at_once_and_given_back() {
        let gate = gate(2, 4);
        let a = gate.enter(Standing::Blocked).await.unwrap();
        let _b = gate.enter(Standing::Failing).await.unwrap();
        drop(a);
        let _c = gate.enter(Standing::Clean).await.unwrap();
    }

    #[tokio::test]
    async fn waiters_are_served_clean_first_then_in_order_of_arrival() {
        let gate = gate(1, 8);
        let running = gate.enter(Standing::Clean).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for (name, standing) in [
            ("blocked", Standing::Blocked),
            ("failing-1", Standing::Failing),
            ("clean", Standing::Clean),
            ("failing-2", Standing::Failing),
        ] {
            let gate = Arc::clone(&gate);
            let tx = tx.clone();
            tokio::spawn(async move {
                let slot = gate.enter(standing).await.unwrap();
                tx.send(name).unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
                drop(slot);
            });
            // Arrival order is the order of spawning.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(running);
        let mut served = Vec::new();
        for _ in 0..4 {
            served.push(rx.recv().await.unwrap());
        }
        assert_eq!(served, ["clean", "failing-1", "failing-2", "blocked"]);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_the_worst_standing_never_a_better_one() {
        let gate = gate(1, 2);
        let _running = gate.enter(Standing::Clean).await.unwrap();
        let first = {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move { gate.enter(Standing::Blocked).await.map(drop) })
        };
        let second = {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move { gate.enter(Standing::Blocked).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Another blocked caller is the worst: refused.
        assert_eq!(gate.enter(Standing::Blocked).await.err(), Some(Busy));
        // A clean caller takes the latest blocked caller's place.
        let clean = {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move { gate.enter(Standing::Clean).await.map(drop) })
        };
        assert_eq!(second.await.unwrap(), Err(Busy));
        assert!(!first.is_finished() && !clean.is_finished());
    }

    #[tokio::test]
    async fn a_waiter_gives_up_after_the_longest_wait_and_leaks_no_slot() {
        let gate = Gate::new(1, 4, Duration::from_millis(100));
        let running = gate.enter(Standing::Clean).await.unwrap();
        assert_eq!(gate.enter(Standing::Failing).await.err(), Some(Busy));
        drop(running);
        let _again = gate.enter(Standing::Failing).await.unwrap();
        assert_eq!(gate.lane().running, 1);
    }
}
