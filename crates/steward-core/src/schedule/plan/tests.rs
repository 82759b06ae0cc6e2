use proptest::prelude::*;

use super::*;
use crate::schedule::timing::{CronExpr, parse_instant};

const MINUTE: i64 = 60_000;

fn cron(expr: &str) -> Timing {
    Timing::Cron(CronExpr::parse(expr).unwrap())
}

fn every(interval_ms: u64) -> Timing {
    Timing::Every { interval_ms }
}

fn ms(text: &str) -> i64 {
    parse_instant(text).unwrap()
}

fn plan(timing: &Timing, missed: MissedPolicy, cursor: i64, now: i64, grace: u64) -> DuePlan {
    plan_due(timing, &Zone::utc(), missed, cursor, now, grace)
}

fn missed(count: u64, first_ms: i64, last_ms: i64) -> Option<MissedSlots> {
    Some(MissedSlots {
        count,
        first_ms,
        last_ms,
        count_is_lower_bound: false,
    })
}

#[test]
fn idempotency_keys_name_the_schedule_and_the_slot() {
    assert_eq!(
        idempotency_key("nightly-backup", 1_767_225_600_000),
        "schedule:nightly-backup:1767225600000"
    );
    assert_eq!(idempotency_key("x", -5), "schedule:x:-5");
}

#[test]
fn jitter_is_deterministic_in_range_and_spread() {
    assert_eq!(jitter_offset_ms("a", 0, 0), 0);
    assert_eq!(jitter_offset_ms("a", 0, 1), 0);
    // Pinned: the same on every instance and every release.
    assert_eq!(
        jitter_offset_ms("nightly", 1_767_225_600_000, 60_000),
        15_617
    );
    assert_eq!(jitter_offset_ms("hourly", 1_767_225_600_000, 60_000), 2_144);
    assert_eq!(
        jitter_offset_ms("nightly", 1_767_225_600_000, 60_000),
        jitter_offset_ms("nightly", 1_767_225_600_000, 60_000)
    );
    // Roughly uniform: ten buckets over 10,000 slots, each within 20% of 1,000.
    let mut buckets = [0_u32; 10];
    for slot in 0..10_000_i64 {
        let offset = jitter_offset_ms("spread", slot * 60_000, 10_000);
        assert!(offset < 10_000);
        buckets[usize::try_from(offset / 1_000).unwrap()] += 1;
    }
    for count in buckets {
        assert!((800..1_200).contains(&count), "{buckets:?}");
    }
    // The name matters, not just the slot.
    let differ = (0..100_i64)
        .filter(|slot| {
            jitter_offset_ms("a", *slot, 1 << 40) != jitter_offset_ms("b", *slot, 1 << 40)
        })
        .count();
    assert!(differ > 95);
}

#[test]
fn nothing_due_leaves_the_cursor() {
    let timing = every(60_000);
    let nothing = DuePlan {
        fire: vec![],
        skipped: None,
        cursor_ms: 60_000,
    };
    assert_eq!(
        plan(&timing, MissedPolicy::Once, 60_000, 60_000, 0),
        nothing
    );
    assert_eq!(
        plan(&timing, MissedPolicy::Once, 60_000, 119_999, 0),
        nothing
    );
    assert_eq!(plan(&timing, MissedPolicy::Once, 60_000, 1_000, 0), nothing);
    assert_eq!(
        plan(&cron("0 0 * * *"), MissedPolicy::Once, 60_000, 119_999, 0),
        nothing
    );
    assert_eq!(
        plan(
            &Timing::Once { at_ms: 5 },
            MissedPolicy::Once,
            60_000,
            119_999,
            0
        ),
        nothing
    );
}

#[test]
fn on_time_slots_fire_and_the_grace_boundary_is_inclusive() {
    for timing in [every(60_000), cron("* * * * *")] {
        let on_time = plan(&timing, MissedPolicy::Skip, 0, 60_500, 1_000);
        assert_eq!(on_time.fire, vec![(60_000, false)]);
        assert_eq!(on_time.skipped, None);
        assert_eq!(on_time.cursor_ms, 60_000);

        // Exactly `grace` old: on time.
        let boundary = plan(&timing, MissedPolicy::Skip, 0, 61_000, 1_000);
        assert_eq!(boundary.fire, vec![(60_000, false)]);
        // One millisecond more: missed.
        let late = plan(&timing, MissedPolicy::Skip, 0, 61_001, 1_000);
        assert_eq!(late.fire, vec![]);
        assert_eq!(late.skipped, missed(1, 60_000, 60_000));
        assert_eq!(late.cursor_ms, 60_000);
        let late_once = plan(&timing, MissedPolicy::Once, 0, 61_001, 1_000);
        assert_eq!(late_once.fire, vec![(60_000, true)]);
        assert_eq!(late_once.skipped, None);
    }
}

#[test]
fn missed_policies() {
    // Ten slots passed (1 to 10 minutes); only the last is within grace.
    let now = 10 * MINUTE + 10;
    for timing in [every(60_000), cron("* * * * *")] {
        let skip = plan(&timing, MissedPolicy::Skip, 0, now, 1_000);
        assert_eq!(skip.fire, vec![(10 * MINUTE, false)]);
        assert_eq!(skip.skipped, missed(9, MINUTE, 9 * MINUTE));
        assert_eq!(skip.cursor_ms, 10 * MINUTE);

        let once = plan(&timing, MissedPolicy::Once, 0, now, 1_000);
        assert_eq!(once.fire, vec![(9 * MINUTE, true), (10 * MINUTE, false)]);
        assert_eq!(once.skipped, missed(8, MINUTE, 8 * MINUTE));
        assert_eq!(once.cursor_ms, 10 * MINUTE);

        let three = plan(&timing, MissedPolicy::All { limit: 3 }, 0, now, 1_000);
        assert_eq!(
            three.fire,
            vec![
                (7 * MINUTE, true),
                (8 * MINUTE, true),
                (9 * MINUTE, true),
                (10 * MINUTE, false)
            ]
        );
        assert_eq!(three.skipped, missed(6, MINUTE, 6 * MINUTE));

        let all = plan(&timing, MissedPolicy::All { limit: 100 }, 0, now, 1_000);
        assert_eq!(all.fire.len(), 10);
        assert_eq!(all.fire[0], (MINUTE, true));
        assert_eq!(all.fire[9], (10 * MINUTE, false));
        assert_eq!(all.skipped, None);

        let none = plan(&timing, MissedPolicy::All { limit: 0 }, 0, now, 1_000);
        assert_eq!(none, skip);

        // Nothing on time: the latest missed slot is the one caught up.
        let all_missed = plan(&timing, MissedPolicy::Once, 0, 10 * MINUTE + 30_000, 1_000);
        assert_eq!(all_missed.fire, vec![(10 * MINUTE, true)]);
        assert_eq!(all_missed.skipped, missed(9, MINUTE, 9 * MINUTE));
        assert_eq!(all_missed.cursor_ms, 10 * MINUTE);
    }
}

#[test]
fn a_one_off_time_fires_once() {
    let once = Timing::Once { at_ms: 50_000 };
    assert_eq!(
        plan(&once, MissedPolicy::Skip, 0, 50_500, 1_000).fire,
        vec![(50_000, false)]
    );
    assert_eq!(
        plan(&once, MissedPolicy::Once, 0, 90_000, 1_000).fire,
        vec![(50_000, true)]
    );
    let skipped = plan(&once, MissedPolicy::Skip, 0, 90_000, 1_000);
    assert_eq!(skipped.fire, vec![]);
    assert_eq!(skipped.skipped, missed(1, 50_000, 50_000));
    assert_eq!(skipped.cursor_ms, 50_000);
    assert_eq!(
        plan(&once, MissedPolicy::Once, 50_000, 90_000, 1_000).fire,
        vec![]
    );
}

#[test]
fn plans_follow_the_dst_rule() {
    let berlin = Zone::parse("Europe/Berlin").unwrap();
    let hourly = cron("0 * * * *");
    let plan = plan_due(
        &hourly,
        &berlin,
        MissedPolicy::All { limit: 10 },
        ms("2026-10-25T00:30:00+02:00"),
        ms("2026-10-25T03:30:00+01:00"),
        0,
    );
    let fired: Vec<i64> = plan.fire.iter().map(|(slot, _)| *slot).collect();
    assert_eq!(
        fired,
        vec![
            ms("2026-10-25T01:00:00+02:00"),
            ms("2026-10-25T02:00:00+02:00"),
            ms("2026-10-25T02:00:00+01:00"),
            ms("2026-10-25T03:00:00+01:00"),
        ]
    );
    assert_eq!(plan.cursor_ms, ms("2026-10-25T03:00:00+01:00"));
}

#[test]
fn a_long_outage_of_a_one_second_schedule_is_bounded() {
    let now = ms("2026-06-08T12:00:00Z");
    let cursor = now - 7 * 86_400_000;
    let grace = 5_000;

    // Intervals are counted exactly.
    let interval = plan(&every(1_000), MissedPolicy::Once, cursor, now, grace);
    let on_time: Vec<(i64, bool)> = (0..=5).rev().map(|k| (now - k * 1_000, false)).collect();
    let mut expected = vec![(now - 6_000, true)];
    expected.extend(on_time.iter().copied());
    assert_eq!(interval.fire, expected);
    assert_eq!(
        interval.skipped,
        missed(7 * 86_400 - 7, cursor + 1_000, now - 7_000)
    );
    assert_eq!(interval.cursor_ms, now);

    // A cron schedule examines the latest slots only, and says the count is a lower bound.
    let every_second = cron("* * * * * *");
    let walked = plan(&every_second, MissedPolicy::Once, cursor, now, grace);
    assert_eq!(walked.fire, expected);
    assert_eq!(
        walked.skipped,
        Some(MissedSlots {
            count: MAX_SLOTS_EXAMINED as u64 - 7 + 1,
            first_ms: cursor + 1_000,
            last_ms: now - 7_000,
            count_is_lower_bound: true,
        })
    );
    assert_eq!(walked.cursor_ms, now);

    // `All` with a huge limit still fires no more than the bound.
    let all = plan(
        &every(1_000),
        MissedPolicy::All { limit: u32::MAX },
        cursor,
        now,
        grace,
    );
    assert_eq!(all.fire.len(), MAX_SLOTS_EXAMINED);
    assert_eq!(all.fire.last(), Some(&(now, false)));
    let skipped = all.skipped.unwrap();
    assert_eq!(skipped.count, 7 * 86_400 - MAX_SLOTS_EXAMINED as u64);
    assert_eq!(skipped.last_ms + 1_000, all.fire[0].0);
}

#[test]
fn more_on_time_slots_than_the_bound_skip_the_oldest() {
    // A grace longer than the bound's worth of slots.
    let plan = plan_due_bounded(
        &every(1_000),
        &Zone::utc(),
        MissedPolicy::Once,
        0,
        100_000,
        1_000_000,
        10,
    );
    assert_eq!(plan.fire.len(), 10);
    assert_eq!(plan.fire[0], (91_000, false));
    assert_eq!(plan.skipped, missed(90, 1_000, 90_000));
    let walked = plan_due_bounded(
        &cron("* * * * * *"),
        &Zone::utc(),
        MissedPolicy::Once,
        0,
        100_000,
        1_000_000,
        10,
    );
    assert_eq!(walked.fire, plan.fire);
    assert_eq!(
        walked.skipped,
        Some(MissedSlots {
            count: 1,
            first_ms: 1_000,
            last_ms: 90_000,
            count_is_lower_bound: true
        })
    );
}

fn any_policy() -> impl Strategy<Value = MissedPolicy> {
    prop_oneof![
        Just(MissedPolicy::Skip),
        Just(MissedPolicy::Once),
        (0_u32..20).prop_map(|limit| MissedPolicy::All { limit }),
    ]
}

fn any_timing() -> impl Strategy<Value = Timing> {
    prop_oneof![
        prop::sample::select(vec![
            "* * * * * *",
            "*/7 * * * * *",
            "* * * * *",
            "*/5 * * * *",
            "0 * * * *",
            "30 2 * * *",
            "0 9-17 * * MON-FRI",
            "*/15 2 * * *",
        ])
        .prop_map(cron),
        (1_u64..3_600_000).prop_map(every),
        (0_i64..4 * 86_400_000).prop_map(|at| Timing::Once {
            at_ms: ms("2026-03-27T00:00:00Z") + at
        }),
    ]
}

fn any_zone() -> impl Strategy<Value = Zone> {
    prop::sample::select(vec!["UTC", "Europe/Berlin", "Australia/Lord_Howe"])
        .prop_map(|name| Zone::parse(name).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn plans_are_ordered_bounded_and_move_the_cursor(
        timing in any_timing(),
        zone in any_zone(),
        policy in any_policy(),
        cursor_offset in 0_i64..3 * 86_400_000,
        span in prop_oneof![0_i64..10_000, 0_i64..2 * 86_400_000],
        grace in prop_oneof![0_u64..5_000, 0_u64..7_200_000],
        max_examined in 1_usize..400,
    ) {
        let cursor = ms("2026-03-27T00:00:00Z") + cursor_offset;
        let now = cursor + span;
        let plan = plan_due_bounded(&timing, &zone, policy, cursor, now, grace, max_examined);

        for pair in plan.fire.windows(2) {
            prop_assert!(pair[0].0 < pair[1].0, "{:?}", plan.fire);
        }
        let grace_i = i64::try_from(grace).unwrap();
        for (slot, catch_up) in &plan.fire {
            prop_assert!(*slot > cursor && *slot <= now, "{slot} outside ({cursor}, {now}]");
            prop_assert_eq!(*catch_up, now - slot > grace_i, "slot {} now {} grace {}", slot, now, grace);
        }
        let catch_ups = plan.fire.iter().filter(|(_, c)| *c).count() as u64;
        let allowed = match policy {
            MissedPolicy::Skip => 0,
            MissedPolicy::Once => 1,
            MissedPolicy::All { limit } => u64::from(limit),
        };
        prop_assert!(catch_ups <= allowed);
        prop_assert!(plan.fire.len() <= max_examined);

        prop_assert!(plan.cursor_ms >= cursor && plan.cursor_ms <= now);
        if let Some((last, _)) = plan.fire.last() {
            prop_assert_eq!(plan.cursor_ms, *last);
        }
        if let Some(skipped) = &plan.skipped {
            prop_assert!(skipped.count >= 1);
            prop_assert!(skipped.first_ms > cursor && skipped.first_ms <= skipped.last_ms);
            prop_assert!(skipped.last_ms <= plan.cursor_ms);
            if let Some((first_fired, _)) = plan.fire.first() {
                prop_assert!(skipped.last_ms < *first_fired);
            }
        }
        let due: Vec<i64> = timing.slots(&zone, cursor, now).take(max_examined + 1).collect();
        if due.is_empty() {
            prop_assert_eq!(&plan, &DuePlan { fire: vec![], skipped: None, cursor_ms: cursor });
        } else {
            prop_assert_eq!(plan.cursor_ms, timing.last_at_or_before(&zone, now).unwrap());
            prop_assert_eq!(
                plan.skipped.as_ref().map(|s| s.first_ms).or(plan.fire.first().map(|f| f.0)),
                Some(due[0])
            );
        }
        if due.len() <= max_examined {
            // Everything was examined: the fired and skipped slots are exactly the due ones.
            let skipped = plan.skipped.as_ref().map_or(0, |s| s.count);
            prop_assert_eq!(skipped + plan.fire.len() as u64, due.len() as u64);
            prop_assert!(plan.skipped.as_ref().is_none_or(|s| !s.count_is_lower_bound));
        } else if let Timing::Cron(_) = timing {
            prop_assert!(plan.skipped.as_ref().is_some_and(|s| s.count_is_lower_bound));
        }
    }

    /// The arithmetic for intervals and the walk for cron agree where both apply.
    #[test]
    fn interval_and_cron_plans_agree(
        (interval, expr) in prop::sample::select(vec![
            (1_000_u64, "* * * * * *"),
            (5_000, "*/5 * * * * *"),
            (60_000, "* * * * *"),
            (900_000, "*/15 * * * *"),
        ]),
        policy in any_policy(),
        cursor_offset in 0_i64..86_400_000,
        span in 0_i64..3_600_000,
        grace in 0_u64..600_000,
    ) {
        let cursor = ms("2026-03-27T00:00:00Z") + cursor_offset;
        let now = cursor + span;
        let zone = Zone::utc();
        let by_interval = plan_due_bounded(&every(interval), &zone, policy, cursor, now, grace, 5_000);
        let by_walking = plan_due_bounded(&cron(expr), &zone, policy, cursor, now, grace, 5_000);
        prop_assert_eq!(by_interval, by_walking);
    }
}
