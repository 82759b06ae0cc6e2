//! The leader's timetable: each enabled schedule's next fire time in one min-heap, so the
//! scheduler sleeps until exactly the next fire however many schedules there are, and the
//! ticks (what to fire, what was missed) each due schedule hands to the store.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use steward_core::queue::QueueSpec;
use steward_core::schedule::{
    OverlapPolicy, ScheduleSpec, idempotency_key, jitter_offset_ms, plan_due,
};
use steward_core::task::{NewTask, RetryPolicy, TaskOrigin};
use steward_store::{Fire, FireTrigger, ScheduleState, ScheduleTick};

/// The schedules in force and when each fires next.
pub(crate) struct Timetable {
    specs: Arc<Vec<ScheduleSpec>>,
    /// By index into `specs`: the latest slot handled.
    cursors: Vec<i64>,
    /// By index into `specs`: attempts for its tasks (its own or its queue's).
    attempts: Vec<u32>,
    /// `(fire time, index)`: the slot plus its jitter, less the lookahead.
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    /// How long before its slot a fire may be written (see [`Timetable::ahead_ms`]).
    lookahead_ms: i64,
}

impl Timetable {
    /// The timetable of `specs`, resuming each from its stored cursor (schedules never seen
    /// start from `now_ms`).
    pub(crate) fn new(
        specs: Arc<Vec<ScheduleSpec>>,
        queues: &[QueueSpec],
        states: &HashMap<String, ScheduleState>,
        now_ms: i64,
        lookahead_ms: u64,
    ) -> Self {
        let cursors = specs
            .iter()
            .map(|spec| states.get(&spec.name).map_or(now_ms, |s| s.cursor_ms))
            .collect();
        let attempts = specs
            .iter()
            .map(|spec| attempts_for(spec, queues))
            .collect();
        let mut table = Self {
            specs,
            cursors,
            attempts,
            heap: BinaryHeap::new(),
            lookahead_ms: i64::try_from(lookahead_ms).unwrap_or(0),
        };
        for index in 0..table.specs.len() {
            table.schedule_next(index);
        }
        table
    }

    /// The schedules this timetable runs.
    pub(crate) fn specs(&self) -> &Arc<Vec<ScheduleSpec>> {
        &self.specs
    }

    /// When the next fire is due, if any schedule has one.
    pub(crate) fn next_fire_ms(&self) -> Option<i64> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes every schedule due at `now_ms` and returns its tick — the slots to fire under its
    /// missed-run policy (late by at most `grace_ms` plus its jitter counts as on time) — with
    /// the time it was due.
    pub(crate) fn take_due(
        &mut self,
        now_ms: i64,
        grace_ms: u64,
    ) -> Vec<(usize, ScheduleTick, i64)> {
        let mut due = Vec::new();
        while let Some(Reverse((at, index))) = self.heap.peek().copied() {
            if at > now_ms {
                break;
            }
            self.heap.pop();
            let spec = &self.specs[index];
            let ahead = self.ahead_ms(spec);
            let plan = plan_due(
                &spec.timing,
                &spec.zone,
                spec.missed,
                self.cursors[index],
                now_ms.saturating_add(ahead),
                grace_ms
                    .saturating_add(spec.jitter_ms)
                    .saturating_add(ahead.unsigned_abs()),
            );
            // A disabled schedule's slots pass like a paused one's: re-enabling it does not
            // catch up on the time it was off.
            let enabled_fires = if spec.enabled { &plan.fire[..] } else { &[] };
            let fires = enabled_fires
                .iter()
                .map(|&(slot, catch_up)| {
                    let trigger = if catch_up {
                        FireTrigger::CatchUp
                    } else {
                        FireTrigger::Slot
                    };
                    // A fire written ahead of its slot makes its task due at the slot.
                    let due = slot.saturating_add(offset(spec, slot)).max(now_ms);
                    fire_of(spec, self.attempts[index], slot, trigger, due)
                })
                .collect();
            due.push((
                index,
                ScheduleTick {
                    schedule: spec.name.clone(),
                    overlap: spec.overlap,
                    fires,
                    missed: plan.skipped.filter(|_| spec.enabled),
                    cursor_ms: plan.cursor_ms,
                },
                at,
            ));
        }
        due
    }

    /// Records that schedule `index` handled everything up to `cursor_ms` and queues its next
    /// fire.
    pub(crate) fn advance(&mut self, index: usize, cursor_ms: i64) {
        if let Some(cursor) = self.cursors.get_mut(index) {
            *cursor = (*cursor).max(cursor_ms);
            self.schedule_next(index);
        }
    }

    /// Puts schedule `index` back in the heap to retry at `at_ms` (its tick failed).
    pub(crate) fn retry_at(&mut self, index: usize, at_ms: i64) {
        self.heap.push(Reverse((at_ms, index)));
    }

    fn schedule_next(&mut self, index: usize) {
        let spec = &self.specs[index];
        if let Some(slot) = spec.timing.next_after(&spec.zone, self.cursors[index]) {
            let fire_at = slot
                .saturating_add(offset(spec, slot))
                .saturating_sub(self.ahead_ms(spec));
            self.heap.push(Reverse((fire_at, index)));
        }
    }

    /// How long before its slot `spec` fires. A schedule whose runs may overlap is fired
    /// ahead, its task due at the slot: a worker starts it on time however many schedules share
    /// the slot. One with an overlap policy fires at the slot, since the policy must look at
    /// the state of that moment.
    fn ahead_ms(&self, spec: &ScheduleSpec) -> i64 {
        if spec.overlap == OverlapPolicy::Allow && spec.enabled {
            self.lookahead_ms
        } else {
            0
        }
    }
}

/// The jitter of `spec`'s `slot`, as a signed offset.
pub(crate) fn offset(spec: &ScheduleSpec, slot_ms: i64) -> i64 {
    i64::try_from(jitter_offset_ms(&spec.name, slot_ms, spec.jitter_ms)).unwrap_or(0)
}

/// The attempts `spec`'s tasks get: its own, else its queue's.
pub(crate) fn attempts_for(spec: &ScheduleSpec, queues: &[QueueSpec]) -> u32 {
    spec.task.max_attempts.unwrap_or_else(|| {
        queues
            .iter()
            .find(|q| q.name == spec.task.queue)
            .map_or(RetryPolicy::default().max_attempts, |q| {
                q.retry.max_attempts
            })
    })
}

/// The fire of `spec` for `slot_ms`: its task carries the slot's idempotency key, so the slot
/// is enqueued once whichever instance fires it and however often.
pub(crate) fn fire_of(
    spec: &ScheduleSpec,
    max_attempts: u32,
    slot_ms: i64,
    trigger: FireTrigger,
    run_at_ms: i64,
) -> Fire {
    let key = match trigger {
        FireTrigger::Manual => format!("{}:manual", idempotency_key(&spec.name, slot_ms)),
        FireTrigger::Slot | FireTrigger::CatchUp => idempotency_key(&spec.name, slot_ms),
    };
    Fire {
        slot_ms,
        trigger,
        task: NewTask {
            timeout_ms: None,
            queue: spec.task.queue.clone(),
            kind: spec.task.kind.clone(),
            payload: spec.task.payload.to_string(),
            priority: spec.task.priority,
            run_at_ms,
            max_attempts,
            idempotency_key: Some(key),
            origin: TaskOrigin {
                pipeline_run: None,
                workspace: spec.workspace.clone(),
                schedule: Some(spec.name.clone()),
                alert: None,
                caller: Some("scheduler".into()),
            },
            node: spec.task.node.clone(),
        },
    }
}
