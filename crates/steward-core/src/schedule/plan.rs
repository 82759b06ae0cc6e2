//! What a schedule should fire now: the slots due since its cursor, sorted into on-time fires,
//! catch-up fires for missed slots (by the [`MissedPolicy`]), and a summary of the slots it
//! skips. Also the idempotency key and the jitter of each fire, both pure functions of the
//! schedule's name and the slot, so every instance agrees on them.

use sha2::{Digest, Sha256};

use super::MissedPolicy;
use super::timing::{Timing, Zone};

/// The most slots one [`plan_due`] call looks at. A cron schedule that has been down long
/// enough to pass more slots than this (a one-second schedule down for a week) has only its
/// latest slots examined; the rest are counted as skipped, with
/// [`MissedSlots::count_is_lower_bound`] set. Interval schedules are counted exactly.
pub const MAX_SLOTS_EXAMINED: usize = 100_000;

/// The idempotency key of a schedule's fire at `slot_ms`: the task queue refuses a second
/// task with the same key, so a slot fires once however many instances try.
pub fn idempotency_key(schedule: &str, slot_ms: i64) -> String {
    format!("schedule:{schedule}:{slot_ms}")
}

/// The delay after `slot_ms` at which the schedule's fire starts, in `[0, jitter_ms)` (0 when
/// `jitter_ms` is 0). It is uniform over the slots and the same on every instance and release:
/// the first 8 bytes (big-endian) of SHA-256 over the schedule's name, a zero byte and the
/// slot as 8 big-endian bytes, scaled to the range by a 128-bit multiplication.
pub fn jitter_offset_ms(schedule: &str, slot_ms: i64, jitter_ms: u64) -> u64 {
    if jitter_ms == 0 {
        return 0;
    }
    let mut hasher = Sha256::new();
    hasher.update(schedule.as_bytes());
    hasher.update([0_u8]);
    hasher.update(slot_ms.to_be_bytes());
    let digest = hasher.finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    let draw = u64::from_be_bytes(first);
    // (draw * jitter) / 2^64 is below jitter_ms, and fits in u64.
    u64::try_from((u128::from(draw) * u128::from(jitter_ms)) >> 64).unwrap_or(0)
}

/// A summary of the slots a plan skips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissedSlots {
    /// How many.
    pub count: u64,
    /// The earliest.
    pub first_ms: i64,
    /// The latest.
    pub last_ms: i64,
    /// Too many slots passed to examine them all: `count` is the number examined (plus one for
    /// the rest), and there were more.
    pub count_is_lower_bound: bool,
}

/// What to do for one schedule now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuePlan {
    /// The slots to fire, increasing, each with whether it is a catch-up for a missed slot.
    pub fire: Vec<(i64, bool)>,
    /// The due slots that are not fired.
    pub skipped: Option<MissedSlots>,
    /// The new cursor: the latest slot handled (fired or skipped), or the old cursor when
    /// nothing was due.
    pub cursor_ms: i64,
}

/// Plans the slots in `(cursor_ms, now_ms]`. A slot at most `grace_ms` old (`now_ms - slot <=
/// grace_ms`) is on time and fires. Older slots were missed, and `missed` decides:
///
/// - `Skip`: none fires; all are summarised in `skipped`.
/// - `Once`: the latest fires as a catch-up; the others are summarised.
/// - `All { limit }`: the latest `limit` fire as catch-ups, oldest first; older ones are
///   summarised.
///
/// At most [`MAX_SLOTS_EXAMINED`] slots are examined, and fired.
pub fn plan_due(
    timing: &Timing,
    zone: &Zone,
    missed: MissedPolicy,
    cursor_ms: i64,
    now_ms: i64,
    grace_ms: u64,
) -> DuePlan {
    plan_due_bounded(
        timing,
        zone,
        missed,
        cursor_ms,
        now_ms,
        grace_ms,
        MAX_SLOTS_EXAMINED,
    )
}

fn plan_due_bounded(
    timing: &Timing,
    zone: &Zone,
    missed: MissedPolicy,
    cursor_ms: i64,
    now_ms: i64,
    grace_ms: u64,
    max_examined: usize,
) -> DuePlan {
    let nothing = DuePlan {
        fire: Vec::new(),
        skipped: None,
        cursor_ms,
    };
    if now_ms <= cursor_ms || max_examined == 0 {
        return nothing;
    }
    // A slot at or after this is on time.
    let on_time_from = now_ms.saturating_sub(i64::try_from(grace_ms).unwrap_or(i64::MAX));
    let catch_up = match missed {
        MissedPolicy::Skip => 0,
        MissedPolicy::Once => 1,
        MissedPolicy::All { limit } => u64::from(limit),
    };
    let bounds = Bounds {
        cursor_ms,
        now_ms,
        on_time_from,
        catch_up,
        max_examined: u64::try_from(max_examined).unwrap_or(u64::MAX),
    };
    let plan = match timing {
        Timing::Every { interval_ms } => match i64::try_from(*interval_ms) {
            Ok(interval) if interval > 0 => plan_interval(interval, &bounds),
            _ => None,
        },
        _ => plan_by_walking(timing, zone, &bounds),
    };
    plan.unwrap_or(nothing)
}

struct Bounds {
    cursor_ms: i64,
    now_ms: i64,
    on_time_from: i64,
    catch_up: u64,
    max_examined: u64,
}

/// Interval slots are `k * interval`, so they are counted, not visited.
fn plan_interval(interval: i64, b: &Bounds) -> Option<DuePlan> {
    let first = i128::from(b.cursor_ms.div_euclid(interval)) + 1;
    let last = i128::from(b.now_ms.div_euclid(interval));
    if first > last {
        return None;
    }
    let interval_wide = i128::from(interval);
    let slot = |k: i128| i64::try_from(k * interval_wide).ok();
    // The first on-time k: ceil(on_time_from / interval), but not before `first`.
    let on_time_first = i128::from(b.on_time_from.div_euclid(interval))
        + i128::from(b.on_time_from.rem_euclid(interval) != 0);
    let on_time_first = on_time_first.max(first);
    let max_fired = i128::from(b.max_examined);

    let on_time_count = (last - on_time_first + 1).max(0);
    let on_time_fired = on_time_count.min(max_fired);
    let on_time_fired_first = last - on_time_fired + 1;
    // Missed: [first, on_time_first - 1]; on-time slots beyond the bound join the skipped.
    let missed_last = on_time_first - 1;
    let missed_count = (missed_last - first + 1).max(0);
    let caught_up = missed_count
        .min(i128::from(b.catch_up))
        .min(max_fired - on_time_fired);

    let mut fire = Vec::new();
    for k in (missed_last - caught_up + 1)..=missed_last {
        fire.push((slot(k)?, true));
    }
    for k in on_time_fired_first..=last {
        fire.push((slot(k)?, false));
    }
    // Everything from `first` up to the first fired slot is skipped.
    let first_fired = if caught_up > 0 {
        missed_last - caught_up + 1
    } else {
        on_time_fired_first
    };
    let skipped_count = first_fired - first;
    let skipped = if skipped_count > 0 {
        Some(MissedSlots {
            count: u64::try_from(skipped_count).unwrap_or(u64::MAX),
            first_ms: slot(first)?,
            last_ms: slot(first_fired - 1)?,
            count_is_lower_bound: false,
        })
    } else {
        None
    };
    Some(DuePlan {
        fire,
        skipped,
        cursor_ms: slot(last)?,
    })
}

/// Cron and one-off slots are visited newest first, so that the slots that fire are found
/// before the examination bound cuts in.
fn plan_by_walking(timing: &Timing, zone: &Zone, b: &Bounds) -> Option<DuePlan> {
    let mut examined = 0_u64;
    let mut on_time = Vec::new(); // newest first
    let mut caught_up = Vec::new(); // newest first
    let mut skipped: Option<MissedSlots> = None;
    let mut newest = None;
    let mut next = timing.last_at_or_before(zone, b.now_ms);
    while let Some(slot) = next.filter(|slot| *slot > b.cursor_ms) {
        if examined == b.max_examined {
            // More slots remain than may be examined: count one for them, and ask for the
            // earliest directly.
            let first = timing
                .next_after(zone, b.cursor_ms)
                .unwrap_or(slot)
                .min(slot);
            let summary = skipped.get_or_insert(MissedSlots {
                count: 0,
                first_ms: first,
                last_ms: slot,
                count_is_lower_bound: true,
            });
            summary.count += 1;
            summary.first_ms = first;
            summary.count_is_lower_bound = true;
            break;
        }
        examined += 1;
        newest.get_or_insert(slot);
        if slot >= b.on_time_from {
            on_time.push(slot);
        } else if (caught_up.len() as u64) < b.catch_up {
            caught_up.push(slot);
        } else {
            let summary = skipped.get_or_insert(MissedSlots {
                count: 0,
                first_ms: slot,
                last_ms: slot,
                count_is_lower_bound: false,
            });
            summary.count += 1;
            summary.first_ms = slot;
        }
        next = slot
            .checked_sub(1)
            .and_then(|before| timing.last_at_or_before(zone, before));
    }
    let cursor_ms = newest?;
    let fire = caught_up
        .into_iter()
        .rev()
        .map(|slot| (slot, true))
        .chain(on_time.into_iter().rev().map(|slot| (slot, false)))
        .collect();
    Some(DuePlan {
        fire,
        skipped,
        cursor_ms,
    })
}

#[cfg(test)]
mod tests;
