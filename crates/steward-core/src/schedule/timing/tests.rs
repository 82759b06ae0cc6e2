use std::collections::{BTreeSet, HashMap};
use std::sync::{LazyLock, Mutex};

use chrono::{NaiveDate, Offset, Timelike};
use proptest::prelude::*;

use super::*;

fn zone(name: &str) -> Zone {
    Zone::parse(name).unwrap()
}

fn cron(expr: &str) -> Timing {
    Timing::Cron(CronExpr::parse(expr).unwrap())
}

fn ms(text: &str) -> i64 {
    parse_instant(text).unwrap()
}

/// The slots in `(after, until]`, formatted in the zone, checked against the backward search:
/// walking back from `until` must meet the same slots.
fn fires(zone_name: &str, expr: &str, after: &str, until: &str) -> Vec<String> {
    let z = zone(zone_name);
    let timing = cron(expr);
    let (after, until) = (ms(after), ms(until));
    let forward: Vec<i64> = timing.slots(&z, after, until).collect();
    let mut backward = Vec::new();
    let mut at = until;
    while let Some(slot) = timing.last_at_or_before(&z, at).filter(|s| *s > after) {
        backward.push(slot);
        at = slot - 1;
    }
    backward.reverse();
    assert_eq!(
        forward, backward,
        "{expr} in {zone_name}: forward and backward searches disagree"
    );
    forward.iter().map(|s| format_instant(*s, &z)).collect()
}

#[track_caller]
fn assert_fires(zone_name: &str, expr: &str, after: &str, until: &str, expected: &[&str]) {
    assert_eq!(
        fires(zone_name, expr, after, until),
        expected,
        "{expr} in {zone_name}, after {after} until {until}"
    );
}

// ------------------------------------------------------------------------------------------
// Daylight saving time, exact instants
// ------------------------------------------------------------------------------------------

#[test]
fn berlin_spring_forward() {
    // 2026-03-29: 02:00+01:00 jumps to 03:00+02:00.
    let z = "Europe/Berlin";
    assert_fires(
        z,
        "30 2 * * *",
        "2026-03-28T00:00:00+01:00",
        "2026-03-30T23:00:00+02:00",
        &[
            "2026-03-28T02:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-30T02:30:00+02:00",
        ],
    );
    assert_fires(
        z,
        "0 30 2 * * *",
        "2026-03-29T00:00:00+01:00",
        "2026-03-29T23:00:00+02:00",
        &["2026-03-29T03:00:00+02:00"],
    );
    assert_fires(
        z,
        "0 * * * *",
        "2026-03-29T00:30:00+01:00",
        "2026-03-29T04:30:00+02:00",
        &[
            "2026-03-29T01:00:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-29T04:00:00+02:00",
        ],
    );
    assert_fires(
        z,
        "*/15 * * * *",
        "2026-03-29T01:40:00+01:00",
        "2026-03-29T03:20:00+02:00",
        &[
            "2026-03-29T01:45:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-29T03:15:00+02:00",
        ],
    );
    // A fixed hour with a minute step: the missing 02:xx times fire once, after the gap.
    assert_fires(
        z,
        "*/15 2 * * *",
        "2026-03-29T00:00:00+01:00",
        "2026-03-29T23:00:00+02:00",
        &["2026-03-29T03:00:00+02:00"],
    );
    // A list of hours: the missing 02:00 collapses into 03:00.
    assert_fires(
        z,
        "0 1,2,3 * * *",
        "2026-03-29T00:00:00+01:00",
        "2026-03-29T23:00:00+02:00",
        &["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"],
    );
}

#[test]
fn berlin_fall_back() {
    // 2026-10-25: 03:00+02:00 falls back to 02:00+01:00.
    let z = "Europe/Berlin";
    assert_fires(
        z,
        "30 2 * * *",
        "2026-10-24T00:00:00+02:00",
        "2026-10-26T23:00:00+01:00",
        &[
            "2026-10-24T02:30:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-26T02:30:00+01:00",
        ],
    );
    assert_fires(
        z,
        "0 * * * *",
        "2026-10-25T00:30:00+02:00",
        "2026-10-25T03:30:00+01:00",
        &[
            "2026-10-25T01:00:00+02:00",
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ],
    );
    assert_fires(
        z,
        "*/15 * * * *",
        "2026-10-25T01:50:00+02:00",
        "2026-10-25T03:05:00+01:00",
        &[
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:15:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:45:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:15:00+01:00",
            "2026-10-25T02:30:00+01:00",
            "2026-10-25T02:45:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ],
    );
    // A fixed hour fires on the first pass only, whatever its minutes.
    assert_fires(
        z,
        "*/15 2 * * *",
        "2026-10-25T00:00:00+02:00",
        "2026-10-25T23:00:00+01:00",
        &[
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:15:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:45:00+02:00",
        ],
    );
    assert_fires(
        z,
        "0 1,2,3 * * *",
        "2026-10-25T00:00:00+02:00",
        "2026-10-25T23:00:00+01:00",
        &[
            "2026-10-25T01:00:00+02:00",
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T03:00:00+01:00",
        ],
    );
}

#[test]
fn berlin_searches_from_inside_the_repeated_hour() {
    let z = zone("Europe/Berlin");
    let daily = cron("30 2 * * *");
    // From the second pass, before and after 02:30: the day's fire is already past.
    for from in ["2026-10-25T02:10:00+01:00", "2026-10-25T02:45:00+01:00"] {
        assert_eq!(
            daily.next_after(&z, ms(from)),
            Some(ms("2026-10-26T02:30:00+01:00")),
            "from {from}"
        );
        assert_eq!(
            daily.last_at_or_before(&z, ms(from)),
            Some(ms("2026-10-25T02:30:00+02:00")),
            "from {from}"
        );
    }
    // From the first pass, before 02:30.
    assert_eq!(
        daily.next_after(&z, ms("2026-10-25T02:10:00+02:00")),
        Some(ms("2026-10-25T02:30:00+02:00"))
    );
    let quarter = cron("*/15 * * * *");
    assert_eq!(
        quarter.next_after(&z, ms("2026-10-25T02:50:00+02:00")),
        Some(ms("2026-10-25T02:00:00+01:00"))
    );
    assert_eq!(
        quarter.next_after(&z, ms("2026-10-25T02:20:00+01:00")),
        Some(ms("2026-10-25T02:30:00+01:00"))
    );
    assert_eq!(
        quarter.last_at_or_before(&z, ms("2026-10-25T02:10:00+01:00")),
        Some(ms("2026-10-25T02:00:00+01:00"))
    );
    assert_eq!(
        quarter.last_at_or_before(&z, ms("2026-10-25T02:59:59+01:00") - 3_600_000),
        Some(ms("2026-10-25T02:45:00+02:00"))
    );
}

#[test]
fn new_york_transitions() {
    // 2026-03-08: 02:00-05:00 jumps to 03:00-04:00; 2026-11-01: 02:00-04:00 falls back to
    // 01:00-05:00.
    let z = "America/New_York";
    assert_fires(
        z,
        "30 2 * * *",
        "2026-03-07T00:00:00-05:00",
        "2026-03-09T23:00:00-04:00",
        &[
            "2026-03-07T02:30:00-05:00",
            "2026-03-08T03:00:00-04:00",
            "2026-03-09T02:30:00-04:00",
        ],
    );
    assert_fires(
        z,
        "30 1 * * *",
        "2026-10-31T00:00:00-04:00",
        "2026-11-02T23:00:00-05:00",
        &[
            "2026-10-31T01:30:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-02T01:30:00-05:00",
        ],
    );
    assert_fires(
        z,
        "0 * * * *",
        "2026-03-08T00:30:00-05:00",
        "2026-03-08T04:30:00-04:00",
        &[
            "2026-03-08T01:00:00-05:00",
            "2026-03-08T03:00:00-04:00",
            "2026-03-08T04:00:00-04:00",
        ],
    );
    assert_fires(
        z,
        "0 * * * *",
        "2026-11-01T00:30:00-04:00",
        "2026-11-01T02:30:00-05:00",
        &[
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T02:00:00-05:00",
        ],
    );
    assert_fires(
        z,
        "*/15 * * * *",
        "2026-03-08T01:40:00-05:00",
        "2026-03-08T03:20:00-04:00",
        &[
            "2026-03-08T01:45:00-05:00",
            "2026-03-08T03:00:00-04:00",
            "2026-03-08T03:15:00-04:00",
        ],
    );
    assert_fires(
        z,
        "*/15 * * * *",
        "2026-11-01T00:50:00-04:00",
        "2026-11-01T02:05:00-05:00",
        &[
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:15:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:45:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:15:00-05:00",
            "2026-11-01T01:30:00-05:00",
            "2026-11-01T01:45:00-05:00",
            "2026-11-01T02:00:00-05:00",
        ],
    );
}

#[test]
fn lord_howe_half_hour_transitions() {
    // 2026-10-04: 02:00+10:30 jumps to 02:30+11:00; 2026-04-05: 02:00+11:00 falls back to
    // 01:30+10:30, so 01:30-01:59 happens twice.
    let z = "Australia/Lord_Howe";
    assert_fires(
        z,
        "15 2 * * *",
        "2026-10-03T00:00:00+10:30",
        "2026-10-05T23:00:00+11:00",
        &[
            "2026-10-03T02:15:00+10:30",
            "2026-10-04T02:30:00+11:00",
            "2026-10-05T02:15:00+11:00",
        ],
    );
    assert_fires(
        z,
        "0 2 * * *",
        "2026-10-04T00:00:00+10:30",
        "2026-10-04T23:00:00+11:00",
        &["2026-10-04T02:30:00+11:00"],
    );
    // 02:45 exists: no shift.
    assert_fires(
        z,
        "45 2 * * *",
        "2026-10-04T00:00:00+10:30",
        "2026-10-04T23:00:00+11:00",
        &["2026-10-04T02:45:00+11:00"],
    );
    assert_fires(
        z,
        "45 1 * * *",
        "2026-04-04T00:00:00+11:00",
        "2026-04-06T23:00:00+10:30",
        &[
            "2026-04-04T01:45:00+11:00",
            "2026-04-05T01:45:00+11:00",
            "2026-04-06T01:45:00+10:30",
        ],
    );
    assert_fires(
        z,
        "*/15 * * * *",
        "2026-10-04T01:40:00+10:30",
        "2026-10-04T03:05:00+11:00",
        &[
            "2026-10-04T01:45:00+10:30",
            "2026-10-04T02:30:00+11:00",
            "2026-10-04T02:45:00+11:00",
            "2026-10-04T03:00:00+11:00",
        ],
    );
    assert_fires(
        z,
        "*/15 * * * *",
        "2026-04-05T01:20:00+11:00",
        "2026-04-05T02:05:00+10:30",
        &[
            "2026-04-05T01:30:00+11:00",
            "2026-04-05T01:45:00+11:00",
            "2026-04-05T01:30:00+10:30",
            "2026-04-05T01:45:00+10:30",
            "2026-04-05T02:00:00+10:30",
        ],
    );
    assert_fires(
        z,
        "0 * * * *",
        "2026-10-04T00:30:00+10:30",
        "2026-10-04T04:30:00+11:00",
        &[
            "2026-10-04T01:00:00+10:30",
            "2026-10-04T03:00:00+11:00",
            "2026-10-04T04:00:00+11:00",
        ],
    );
    assert_fires(
        z,
        "30 * * * *",
        "2026-04-05T00:00:00+11:00",
        "2026-04-05T02:45:00+10:30",
        &[
            "2026-04-05T00:30:00+11:00",
            "2026-04-05T01:30:00+11:00",
            "2026-04-05T01:30:00+10:30",
            "2026-04-05T02:30:00+10:30",
        ],
    );
}

#[test]
fn auckland_southern_hemisphere() {
    // 2026-09-27: 02:00+12:00 jumps to 03:00+13:00; 2026-04-05: 03:00+13:00 falls back to
    // 02:00+12:00.
    let z = "Pacific/Auckland";
    assert_fires(
        z,
        "30 2 * * *",
        "2026-09-26T00:00:00+12:00",
        "2026-09-28T23:00:00+13:00",
        &[
            "2026-09-26T02:30:00+12:00",
            "2026-09-27T03:00:00+13:00",
            "2026-09-28T02:30:00+13:00",
        ],
    );
    assert_fires(
        z,
        "30 2 * * *",
        "2026-04-04T00:00:00+13:00",
        "2026-04-06T23:00:00+12:00",
        &[
            "2026-04-04T02:30:00+13:00",
            "2026-04-05T02:30:00+13:00",
            "2026-04-06T02:30:00+12:00",
        ],
    );
    assert_fires(
        z,
        "0 * * * *",
        "2026-09-27T00:30:00+12:00",
        "2026-09-27T04:30:00+13:00",
        &[
            "2026-09-27T01:00:00+12:00",
            "2026-09-27T03:00:00+13:00",
            "2026-09-27T04:00:00+13:00",
        ],
    );
    assert_fires(
        z,
        "0 * * * *",
        "2026-04-05T00:30:00+13:00",
        "2026-04-05T03:30:00+12:00",
        &[
            "2026-04-05T01:00:00+13:00",
            "2026-04-05T02:00:00+13:00",
            "2026-04-05T02:00:00+12:00",
            "2026-04-05T03:00:00+12:00",
        ],
    );
    assert_fires(
        z,
        "*/15 * * * *",
        "2026-09-27T01:40:00+12:00",
        "2026-09-27T03:20:00+13:00",
        &[
            "2026-09-27T01:45:00+12:00",
            "2026-09-27T03:00:00+13:00",
            "2026-09-27T03:15:00+13:00",
        ],
    );
    assert_fires(
        z,
        "*/15 * * * *",
        "2026-04-05T02:40:00+13:00",
        "2026-04-05T02:20:00+12:00",
        &[
            "2026-04-05T02:45:00+13:00",
            "2026-04-05T02:00:00+12:00",
            "2026-04-05T02:15:00+12:00",
        ],
    );
}

#[test]
fn zone_rules_are_bundled_into_the_future() {
    // Rules come from the bundled database (not the host's), and reach past 2037.
    let z = zone("Europe/Berlin");
    let daily = cron("0 12 * * *");
    assert_eq!(
        format_instant(
            daily.next_after(&z, ms("2040-07-01T00:00:00Z")).unwrap(),
            &z
        ),
        "2040-07-01T12:00:00+02:00"
    );
    assert_eq!(
        format_instant(
            daily.next_after(&z, ms("2040-12-01T00:00:00Z")).unwrap(),
            &z
        ),
        "2040-12-01T12:00:00+01:00"
    );
}

// ------------------------------------------------------------------------------------------
// Parsing
// ------------------------------------------------------------------------------------------

#[test]
fn cron_expressions_that_parse() {
    for expr in [
        "* * * * *",
        "0 8 * * *",
        "*/5 * * * * *",
        "0 0 9-17 * * MON-FRI",
        "0 9 * jan mon-fri",
        "0 9 * JAN-MAR,OCT-DEC *",
        "15,45 */2 1,15 * *",
        "0 0 L * *",
        "0 0 LW * *",
        "0 0 15W * *",
        "0 0 * * 5L",
        "0 0 * * FRIL",
        "0 0 * * 5#3",
        "0 0 * * FRI#3",
        "0 0 ? * MON",
        "0 0 1 * ?",
        "0 0 * * 7",
        "0 0 * * FRI-SUN",
        "0 0 1-7 * +MON",
        "0 8-18/2 * * *",
        "0 0 29 2 *",
        "  0 8 * * *  ",
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
        "@Daily",
    ] {
        let parsed = CronExpr::parse(expr);
        assert!(parsed.is_ok(), "{expr}: {}", parsed.unwrap_err());
    }
    assert_eq!(
        CronExpr::parse("  0 8 * * *  ").unwrap().as_str(),
        "0 8 * * *"
    );
    assert_eq!(
        CronExpr::parse("0 8 * * *").unwrap(),
        CronExpr::parse("0 8 * * *").unwrap()
    );
    assert_ne!(
        CronExpr::parse("0 8 * * *").unwrap(),
        CronExpr::parse("0 0 8 * * *").unwrap()
    );
}

#[test]
fn nicknames_and_names_mean_what_they_say() {
    let z = Zone::utc();
    let from = ms("2026-01-01T00:00:00Z"); // a Thursday
    let first = |expr: &str| format_instant(cron(expr).next_after(&z, from).unwrap(), &z);
    assert_eq!(first("@yearly"), "2027-01-01T00:00:00+00:00");
    assert_eq!(first("@monthly"), "2026-02-01T00:00:00+00:00");
    assert_eq!(first("@weekly"), "2026-01-04T00:00:00+00:00");
    assert_eq!(first("@daily"), "2026-01-02T00:00:00+00:00");
    assert_eq!(first("@midnight"), "2026-01-02T00:00:00+00:00");
    assert_eq!(first("@hourly"), "2026-01-01T01:00:00+00:00");
    assert_eq!(first("0 9 * feb mon"), "2026-02-02T09:00:00+00:00");
    assert_eq!(first("0 0 * * 7"), "2026-01-04T00:00:00+00:00");
    assert_eq!(first("0 0 * * SAT-SUN"), "2026-01-03T00:00:00+00:00");
    assert_eq!(first("0 0 L * *"), "2026-01-31T00:00:00+00:00");
    assert_eq!(first("0 0 LW 1 *"), "2026-01-30T00:00:00+00:00");
    assert_eq!(first("0 0 * * FRI#2"), "2026-01-09T00:00:00+00:00");
    assert_eq!(first("0 0 * * MONL"), "2026-01-26T00:00:00+00:00");
    assert_eq!(first("30 15 10 * * *"), "2026-01-01T10:15:30+00:00");
    // Both day fields restricted: either matches (the 10th, or a Monday).
    assert_eq!(first("0 0 10 * MON"), "2026-01-05T00:00:00+00:00");
    // With `+`, both must (a Monday from the 8th to the 14th).
    assert_eq!(first("0 0 8-14 * +MON"), "2026-01-12T00:00:00+00:00");
}

#[track_caller]
fn assert_cron_error(
    expr: &str,
    field: Option<&str>,
    value: Option<&str>,
    message_contains: &str,
) -> CronError {
    let error = CronExpr::parse(expr).unwrap_err();
    assert_eq!(error.field, field, "{expr}: {error}");
    assert_eq!(error.value.as_deref(), value, "{expr}: {error}");
    assert!(
        error.message.contains(message_contains),
        "{expr}: `{}` does not contain `{message_contains}`",
        error.message
    );
    error
}

#[test]
fn cron_errors_name_the_field() {
    let error = assert_cron_error("0 25 * * *", Some("hour"), Some("25"), "must be 0-23");
    assert_eq!(
        error.to_string(),
        "cron expression \"0 25 * * *\": field hour is `25`: must be 0-23"
    );
    assert_cron_error("61 * * * * *", Some("second"), Some("61"), "must be 0-59");
    assert_cron_error("60 * * * *", Some("minute"), Some("60"), "must be 0-59");
    assert_cron_error("0 0 0 * *", Some("day of month"), Some("0"), "must be 1-31");
    assert_cron_error("0 0 32W * *", Some("day of month"), Some("32W"), "`W`");
    assert_cron_error(
        "0 0 * 13 *",
        Some("month"),
        Some("13"),
        "must be 1-12 or JAN-DEC",
    );
    assert_cron_error(
        "0 0 * FOO *",
        Some("month"),
        Some("FOO"),
        "unknown month `FOO`",
    );
    assert_cron_error(
        "0 0 * * 8",
        Some("day of week"),
        Some("8"),
        "must be 0-7 or SUN-SAT",
    );
    assert_cron_error(
        "0 0 * * MON-FOO",
        Some("day of week"),
        Some("MON-FOO"),
        "unknown weekday `FOO`",
    );
    assert_cron_error(
        "0 0 * * JAN",
        Some("day of week"),
        Some("JAN"),
        "unknown weekday",
    );
    assert_cron_error("0 0 * * 1#6", Some("day of week"), Some("1#6"), "1-5");
    assert_cron_error("0 0 * * L", Some("day of week"), Some("L"), "`L` alone");
    assert_cron_error(
        "0 1,25 * * *",
        Some("hour"),
        Some("1,25"),
        "`25` is out of range",
    );
    assert_cron_error(
        "0 5-2 * * *",
        Some("hour"),
        Some("5-2"),
        "starts after it ends",
    );
    assert_cron_error("5/5 * * * *", Some("minute"), Some("5/5"), "`5-59/5`");
    assert_cron_error("/5 * * * *", Some("minute"), Some("/5"), "`*/5`");
    assert_cron_error(
        "*/0 * * * *",
        Some("minute"),
        Some("*/0"),
        "step `0` must be 1-60",
    );
    assert_cron_error(
        "*/x * * * *",
        Some("minute"),
        Some("*/x"),
        "not a whole number",
    );
    assert_cron_error("0 0 1,,2 * *", Some("day of month"), Some("1,,2"), "empty");
    assert_cron_error("0 ? * * *", Some("hour"), Some("?"), "only allowed in day");
    assert_cron_error("0 1,* * * *", Some("hour"), Some("1,*"), "part of a list");
    assert_cron_error("0 x * * *", Some("hour"), Some("x"), "not a number");
    assert_cron_error("0 +1 * * *", Some("hour"), Some("+1"), "`+`");
}

#[test]
fn cron_errors_about_the_whole_expression() {
    let error = assert_cron_error("* * *", None, None, "found 3");
    assert!(error.message.contains("expected 5 fields"), "{error}");
    assert_cron_error("* * * * * * *", None, None, "found 7");
    assert_cron_error("", None, None, "is empty");
    assert_cron_error("   ", None, None, "is empty");
    assert_cron_error("@every", None, None, "unknown nickname `@every`");
    let never = assert_cron_error("0 0 30 2 *", None, None, "can never fire");
    assert_eq!(
        never.to_string(),
        "cron expression \"0 0 30 2 *\": can never fire: no date matches its day-of-month, month and day-of-week fields"
    );
    assert_cron_error("0 0 31 4,6,9,11 *", None, None, "can never fire");
    assert_cron_error("0 0 30 2 +MON", None, None, "can never fire");
}

#[test]
fn the_hour_field_decides_the_dst_rule() {
    for (expr, floats) in [
        ("0 * * * *", true),
        ("0 */2 * * *", true),
        ("0 8-18/2 * * *", true),
        ("* * * * * *", true),
        ("0 2 * * *", false),
        ("*/15 2 * * *", false),
        ("0 1,13 * * *", false),
        ("0 9-17 * * *", false),
        ("0 0-23/1 * * *", false),
        ("@hourly", true),
        ("@daily", false),
    ] {
        assert_eq!(
            CronExpr::parse(expr).unwrap().wildcard_hours(),
            floats,
            "{expr}"
        );
    }
}

// ------------------------------------------------------------------------------------------
// Zones, instants, intervals, one-off times, descriptions
// ------------------------------------------------------------------------------------------

#[test]
fn zones_parse_by_iana_name() {
    assert_eq!(zone("Europe/Berlin").name(), "Europe/Berlin");
    assert_eq!(zone("UTC"), Zone::utc());
    assert_eq!(Zone::default(), Zone::utc());
    assert_eq!(Zone::utc().name(), "UTC");
    assert_eq!(
        "Asia/Kolkata".parse::<Zone>().unwrap().to_string(),
        "Asia/Kolkata"
    );

    let error = Zone::parse("Europe/Berln").unwrap_err();
    assert_eq!(error.suggestion.as_deref(), Some("Europe/Berlin"));
    assert_eq!(
        error.to_string(),
        "unknown time zone `Europe/Berln` (did you mean `Europe/Berlin`?)"
    );
    let suggest = |name: &str| Zone::parse(name).unwrap_err().suggestion;
    assert_eq!(suggest("europe/berlin").as_deref(), Some("Europe/Berlin"));
    assert_eq!(suggest("Berlin").as_deref(), Some("Europe/Berlin"));
    assert_eq!(suggest("New York").as_deref(), Some("America/New_York"));
    assert_eq!(
        suggest("America/Nwe_York").as_deref(),
        Some("America/New_York")
    );
    assert_eq!(suggest("utc").as_deref(), Some("UTC"));
    assert_eq!(suggest("Mars/Olympus_Mons"), None);
    assert_eq!(suggest(""), None);
    assert_eq!(
        Zone::parse("Mars/Olympus_Mons").unwrap_err().to_string(),
        "unknown time zone `Mars/Olympus_Mons`"
    );
}

#[test]
fn instants_format_and_parse() {
    let berlin = zone("Europe/Berlin");
    let t = ms("2026-03-29T01:00:00Z");
    assert_eq!(format_instant(t, &berlin), "2026-03-29T03:00:00+02:00");
    assert_eq!(format_instant(t, &Zone::utc()), "2026-03-29T01:00:00+00:00");
    assert_eq!(
        format_instant(t + 250, &Zone::utc()),
        "2026-03-29T01:00:00.250+00:00"
    );
    assert_eq!(ms("2026-03-29T03:00:00+02:00"), t);
    assert_eq!(ms("2026-03-29T01:00:00.250Z"), t + 250);
    assert_eq!(parse_instant("1970-01-01T00:00:00Z"), Ok(0));
    assert!(parse_instant("2026-03-29 03:00").is_err());
    assert!(parse_instant("2026-03-29T03:00:00").is_err());
    assert!(parse_instant("yesterday").unwrap_err().contains("RFC 3339"));
}

#[test]
fn intervals_are_multiples_since_the_epoch() {
    let every = Timing::Every {
        interval_ms: 30_000,
    };
    let z = zone("Asia/Kolkata"); // the zone plays no part
    assert_eq!(every.next_after(&z, 0), Some(30_000));
    assert_eq!(every.next_after(&z, 29_999), Some(30_000));
    assert_eq!(every.next_after(&z, 30_000), Some(60_000));
    assert_eq!(every.next_after(&z, -1), Some(0));
    assert_eq!(every.next_after(&z, -30_001), Some(-30_000));
    assert_eq!(every.last_at_or_before(&z, 59_999), Some(30_000));
    assert_eq!(every.last_at_or_before(&z, 60_000), Some(60_000));
    assert_eq!(
        every.slots(&z, 10_000, 100_000).collect::<Vec<_>>(),
        vec![30_000, 60_000, 90_000]
    );
    assert_eq!(every.slots(&z, 100_000, 100_000).count(), 0);
    assert_eq!(every.next_after(&z, i64::MAX - 10), None);
    let zero = Timing::Every { interval_ms: 0 };
    assert_eq!(zero.next_after(&z, 0), None);
    assert_eq!(zero.slots(&z, 0, 1_000_000).count(), 0);
}

#[test]
fn a_one_off_time_has_one_slot() {
    let once = Timing::Once { at_ms: 5_000 };
    let z = Zone::utc();
    assert_eq!(once.next_after(&z, 4_999), Some(5_000));
    assert_eq!(once.next_after(&z, 5_000), None);
    assert_eq!(once.last_at_or_before(&z, 5_000), Some(5_000));
    assert_eq!(once.last_at_or_before(&z, 4_999), None);
    assert_eq!(once.slots(&z, 0, 10_000).collect::<Vec<_>>(), vec![5_000]);
    assert_eq!(once.slots(&z, 0, 4_999).count(), 0);
}

#[test]
fn cron_slots_are_whole_seconds_strictly_after() {
    let z = Zone::utc();
    let every_second = cron("* * * * * *");
    assert_eq!(every_second.next_after(&z, 1_000), Some(2_000));
    assert_eq!(every_second.next_after(&z, 1_001), Some(2_000));
    assert_eq!(every_second.next_after(&z, 999), Some(1_000));
    assert_eq!(every_second.next_after(&z, -1), Some(0));
    assert_eq!(every_second.last_at_or_before(&z, 1_999), Some(1_000));
    assert_eq!(
        every_second.slots(&z, 0, 3_500).collect::<Vec<_>>(),
        vec![1_000, 2_000, 3_000]
    );
    // The far ends of time.
    assert_eq!(cron("0 0 * * *").next_after(&z, i64::MAX), None);
    assert_eq!(cron("0 0 * * *").last_at_or_before(&z, i64::MIN), None);
    assert_eq!(
        cron("0 0 1 1 *").next_after(&z, i64::MIN),
        Some(ms("0001-01-01T00:00:00Z"))
    );
}

#[test]
fn descriptions() {
    let berlin = zone("Europe/Berlin");
    assert_eq!(
        cron("0 8 * * *").describe(&berlin),
        "cron \"0 8 * * *\" in Europe/Berlin"
    );
    let every = |interval_ms| Timing::Every { interval_ms }.describe(&berlin);
    assert_eq!(every(30_000), "every 30s");
    assert_eq!(every(90_000), "every 90s");
    assert_eq!(every(300_000), "every 5m");
    assert_eq!(every(7_200_000), "every 2h");
    assert_eq!(every(86_400_000), "every 1d");
    assert_eq!(every(1_500), "every 1500ms");
    assert_eq!(
        Timing::Once {
            at_ms: ms("2026-12-01T07:00:00Z")
        }
        .describe(&berlin),
        "once at 2026-12-01T08:00:00+01:00"
    );
}

// ------------------------------------------------------------------------------------------
// Properties
// ------------------------------------------------------------------------------------------

const ZONES: [&str; 7] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "Asia/Kolkata",
    "America/St_Johns",
];

/// 2020-01-01T00:00:00Z and 2036-01-01T00:00:00Z.
const FROM_MS: i64 = 1_577_836_800_000;
const UNTIL_MS: i64 = 2_082_758_400_000;

/// The offset changes of a zone in a year, found hour by hour and then to the second.
fn transitions(tz: Tz, year: i32) -> Vec<i64> {
    type Changes = HashMap<(Tz, i32), Vec<i64>>;
    static CACHE: LazyLock<Mutex<Changes>> = LazyLock::new(|| Mutex::new(HashMap::new()));
    let offset = |secs: i64| zoned(tz, secs).unwrap().offset().fix().local_minus_utc();
    let mut cache = CACHE.lock().unwrap();
    cache
        .entry((tz, year))
        .or_insert_with(|| {
            let start = NaiveDate::from_ymd_opt(year, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp();
            let mut found = Vec::new();
            let mut t = start;
            while t < start + 366 * 86_400 {
                if offset(t) != offset(t + 3600) {
                    let (mut low, mut high) = (t, t + 3600);
                    while high - low > 1 {
                        let mid = (low + high) / 2;
                        if offset(mid) == offset(low) {
                            low = mid;
                        } else {
                            high = mid;
                        }
                    }
                    found.push(high);
                }
                t += 3600;
            }
            found
        })
        .clone()
}

fn any_zone() -> impl Strategy<Value = Zone> {
    prop::sample::select(ZONES.to_vec()).prop_map(zone)
}

/// An instant in 2020-2035, half of the time within three hours of one of the zone's offset
/// changes.
fn instant_in(z: Zone) -> impl Strategy<Value = (Zone, i64)> {
    let anywhere = (FROM_MS..UNTIL_MS).boxed();
    let near_change = (
        2020_i32..2036,
        0_usize..4,
        -3 * 3_600_000_i64..3 * 3_600_000,
    )
        .prop_map({
            let z = z.clone();
            move |(year, which, offset)| {
                let changes = transitions(z.tz(), year);
                match changes.get(which % changes.len().max(1)) {
                    Some(change) => change * 1000 + offset,
                    None => FROM_MS + i64::from(year - 2020) * 365 * 86_400_000 + offset.abs(),
                }
            }
        })
        .boxed();
    prop_oneof![anywhere, near_change].prop_map(move |t| (z.clone(), t))
}

fn zone_and_instant() -> impl Strategy<Value = (Zone, i64)> {
    any_zone().prop_flat_map(instant_in)
}

fn seconds_field() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(None),
        1 => (0_u32..60).prop_map(|s| Some(s.to_string())),
        1 => prop::sample::select(vec!["*/15", "*/20", "0,30", "10-12"]).prop_map(|s| Some(s.to_owned())),
    ]
}

fn minute_field() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (0_u32..60).prop_map(|m| m.to_string()),
        2 => prop::sample::select(vec!["*/5", "*/15", "*/30", "0,30", "15,45", "10-20", "0-30/10", "*"])
            .prop_map(str::to_owned),
    ]
}

fn hour_field() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (0_u32..24).prop_map(|h| h.to_string()),
        1 => prop::sample::select(vec!["1", "2", "3"]).prop_map(str::to_owned),
        3 => prop::sample::select(vec!["*", "*/2", "*/3", "1-23/2", "0-6/3", "1,2,3", "2,14", "0-3", "9-17"])
            .prop_map(str::to_owned),
    ]
}

fn day_fields() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just("* * *".to_owned()),
        1 => (1_u32..29).prop_map(|d| format!("{d} * *")),
        1 => prop::sample::select(vec![
            "L * *", "1,15 * *", "10-20 * *", "* * MON-FRI", "* * SUN", "* 3,4,9,10,11 *",
            "* MAR-APR *", "* * 0#1", "1 * MON", "* OCT *",
        ])
        .prop_map(str::to_owned),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    (seconds_field(), minute_field(), hour_field(), day_fields()).prop_map(
        |(second, minute, hour, days)| match second {
            Some(second) => format!("{second} {minute} {hour} {days}"),
            None => format!("{minute} {hour} {days}"),
        },
    )
}

/// Whether `secs` is the first instant after a gap (its offset is larger than a second
/// before).
fn ends_a_gap(tz: Tz, secs: i64) -> bool {
    let offset = |s: i64| zoned(tz, s).unwrap().offset().fix().local_minus_utc();
    offset(secs) > offset(secs - 1)
}

/// The slots in `(after, until]` found by brute force: every instant (in whole minutes plus
/// the second values the expression takes) checked against the rule in the module
/// documentation.
fn brute_force_slots(expr: &CronExpr, tz: Tz, after: i64, until: i64) -> BTreeSet<i64> {
    let seconds: Vec<i64> = expr
        .cron
        .pattern
        .seconds
        .values()
        .into_iter()
        .map(i64::from)
        .collect();
    let matches = |wall: &NaiveDateTime| expr.cron.is_time_matching(wall).unwrap();
    let mut found = BTreeSet::new();
    if expr.wildcard_hours() {
        // Every real instant whose wall clock matches.
        let mut minute = after.div_euclid(60) * 60;
        while minute <= until {
            for s in &seconds {
                let t = minute + s;
                if t > after && t <= until && matches(&zoned(tz, t).unwrap().naive_local()) {
                    found.insert(t);
                }
            }
            minute += 60;
        }
    } else {
        // Every matching wall-clock time, at its only or first instant, or after its gap.
        let wall_after = zoned(tz, after).unwrap().naive_local() - TimeDelta::hours(4);
        let wall_until = zoned(tz, until).unwrap().naive_local() + TimeDelta::hours(4);
        let mut minute = wall_after.with_second(0).unwrap();
        while minute <= wall_until {
            for s in &seconds {
                let wall = minute + TimeDelta::seconds(*s);
                if !matches(&wall) {
                    continue;
                }
                let mut resolved = wall;
                let instant = loop {
                    match tz.from_local_datetime(&resolved) {
                        LocalResult::Single(dt) | LocalResult::Ambiguous(dt, _) => {
                            break dt.timestamp();
                        }
                        LocalResult::None => {
                            resolved = resolved.with_second(0).unwrap() + TimeDelta::minutes(1);
                        }
                    }
                };
                if instant > after && instant <= until {
                    found.insert(instant);
                }
            }
            minute += TimeDelta::minutes(1);
        }
    }
    found
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_expressions_parse(expr in expression()) {
        prop_assert!(CronExpr::parse(&expr).is_ok(), "{expr}: {:?}", CronExpr::parse(&expr));
    }

    /// (1) and (2): iterating `next_after` strictly increases, and every slot is a real,
    /// whole-second instant whose wall clock matches (or that ends a gap, for a fixed hour),
    /// never the second pass of a repeated time for a fixed hour.
    #[test]
    fn next_after_increases_and_lands_on_real_matching_instants(
        expr in expression(),
        (z, start) in zone_and_instant(),
    ) {
        let parsed = CronExpr::parse(&expr).unwrap();
        let timing = Timing::Cron(parsed.clone());
        let tz = z.tz();
        let mut previous = start;
        for _ in 0..24 {
            let Some(slot) = timing.next_after(&z, previous) else { break };
            prop_assert!(slot > previous, "{expr} in {z}: {slot} after {previous}");
            prop_assert_eq!(slot % 1000, 0);
            let secs = slot / 1000;
            let local = zoned(tz, secs).unwrap();
            let wall = local.naive_local();
            match tz.from_local_datetime(&wall) {
                LocalResult::Single(dt) => prop_assert_eq!(dt.timestamp(), secs),
                LocalResult::Ambiguous(earlier, later) => {
                    prop_assert!(earlier.timestamp() == secs || later.timestamp() == secs);
                    if !parsed.wildcard_hours() {
                        prop_assert_eq!(
                            earlier.timestamp(), secs,
                            "{} in {}: fired on the second pass at {}", expr, z, format_instant(slot, &z)
                        );
                    }
                }
                LocalResult::None => prop_assert!(false, "{expr} in {z}: {slot} is in a gap"),
            }
            let matching = parsed.cron.is_time_matching(&wall).unwrap();
            prop_assert!(
                matching || (!parsed.wildcard_hours() && ends_a_gap(tz, secs)),
                "{} in {}: {} does not match", expr, z, format_instant(slot, &z)
            );
            previous = slot;
        }
    }

    /// (3): every instant between a point and its next slot has that same next slot, and the
    /// backward search agrees.
    #[test]
    fn next_after_is_the_same_from_anywhere_before_the_slot(
        expr in expression(),
        (z, start) in zone_and_instant(),
        fractions in prop::collection::vec(0.0_f64..1.0, 4),
    ) {
        let timing = cron(&expr);
        let mut previous = start;
        let mut previous_is_slot = false;
        for _ in 0..6 {
            let Some(next) = timing.next_after(&z, previous) else { break };
            let gap = next - previous;
            let mut samples = vec![previous + 1, next - 1];
            samples.extend(fractions.iter().map(|f| previous + 1 + ((gap - 2).max(0) as f64 * f) as i64));
            for t in samples.into_iter().filter(|t| *t > previous && *t < next) {
                prop_assert_eq!(
                    timing.next_after(&z, t), Some(next),
                    "{} in {}: from {} ({})", expr, z, t, format_instant(t, &z)
                );
                let last = timing.last_at_or_before(&z, t);
                prop_assert!(
                    last.is_none_or(|l| l <= previous),
                    "{} in {}: a slot {:?} between {} and {}", expr, z, last, previous, next
                );
                if previous_is_slot {
                    prop_assert_eq!(last, Some(previous), "{} in {}: from {}", expr, z, t);
                }
            }
            prop_assert_eq!(timing.last_at_or_before(&z, next), Some(next));
            previous = next;
            previous_is_slot = true;
        }
    }

    /// The slots match a brute-force reading of the rule, across offset changes.
    #[test]
    fn slots_match_brute_force(
        expr in expression(),
        (z, start) in zone_and_instant(),
    ) {
        let parsed = CronExpr::parse(&expr).unwrap();
        let timing = Timing::Cron(parsed.clone());
        let after = start.div_euclid(1000);
        let until = after + 6 * 3600;
        let expected = brute_force_slots(&parsed, z.tz(), after, until);
        let found: BTreeSet<i64> = timing
            .slots(&z, after * 1000, until * 1000)
            .map(|slot| slot / 1000)
            .collect();
        let show = |set: &BTreeSet<i64>| set.iter().map(|s| format_instant(s * 1000, &z)).collect::<Vec<_>>();
        prop_assert_eq!(show(&found), show(&expected), "{} in {}", expr, z);
    }

    /// (4): interval slots are exact multiples, one interval apart.
    #[test]
    fn interval_slots_are_exact_multiples(
        interval_ms in prop_oneof![1_u64..5_000, 1_000_u64..86_400_000],
        (z, start) in zone_and_instant(),
    ) {
        let timing = Timing::Every { interval_ms };
        let interval = interval_ms as i64;
        let slots: Vec<i64> = timing.slots(&z, start, start + 40 * interval).collect();
        prop_assert_eq!(slots.len(), 40);
        prop_assert!(slots[0] > start && slots[0] - start <= interval);
        for pair in slots.windows(2) {
            prop_assert_eq!(pair[1] - pair[0], interval);
        }
        for slot in &slots {
            prop_assert_eq!(slot.rem_euclid(interval), 0);
        }
        prop_assert_eq!(timing.last_at_or_before(&z, slots[0]), Some(slots[0]));
        prop_assert_eq!(timing.last_at_or_before(&z, slots[0] - 1), Some(slots[0] - interval));
    }
}

#[test]
fn transitions_helper_finds_the_known_changes() {
    let berlin = transitions(zone("Europe/Berlin").tz(), 2026);
    assert_eq!(
        berlin,
        vec![
            ms("2026-03-29T01:00:00Z") / 1000,
            ms("2026-10-25T01:00:00Z") / 1000
        ]
    );
    assert!(transitions(Zone::utc().tz(), 2026).is_empty());
}
