use super::*;
use crate::load::{LoadError, parse_str};
use proptest::prelude::*;
use serde_json::json;

use crate::test_support::{assert_error, env, errors, parse};

/// A queue (lines 1–3) and a schedule's first lines (4–7) without its timing: a case's own
/// lines start on line 8.
const PREFIX: &str = "[[queues]]\nname = \"jobs\"\nkinds = [\"noop\", \"sleep\"]\n[[schedules]]\nname = \"s\"\nqueue = \"jobs\"\nkind = \"noop\"\n";

fn with(lines: &str) -> String {
    format!("{PREFIX}{lines}\n")
}

const FULL: &str = r#"[scheduler]
lease = "15s"
grace = "2s"

[[workspaces]]
key = "trading"

[[queues]]
name = "maintenance"
kinds = ["noop", "sleep"]
max_payload_bytes = 4096

[[schedules]]
name = "morning-report"
workspace = "trading"
description = "The daily report"
owner = "desk"
cron = "0 8 * * 1-5"
timezone = "Europe/Berlin"
queue = "maintenance"
kind = "noop"
payload = { report = "daily", depth = 2, ratio = 0.5, tags = ["a", "b"], since = 2026-01-01T00:00:00Z, nested = { ok = true } }
priority = -10
max_attempts = 3
overlap = "forbid"
missed = "all"
missed_limit = 24
jitter = "30s"
enabled = false
expect_success_within = "1h"

[[schedules]]
name = "tick"
every = "30s"
timezone = "Asia/Tokyo"
queue = "maintenance"
kind = "sleep"
jitter = "5s"

[schedules.payload]
ms = 10

[[schedules]]
name = "launch"
at = "2026-12-24T18:00:00+01:00"
queue = "maintenance"
kind = "noop"
overlap = "replace"
missed = "skip"

[[heartbeats]]
name = "nightly-backup"
workspace = "trading"
description = "pg_dump on vps-1"
period = "1d"
grace = "2h"

[[heartbeats]]
name = "poller"
period = "10m"
"#;

fn cron(text: &str) -> Timing {
    Timing::Cron(CronExpr::parse(text).unwrap())
}

#[test]
fn a_full_example_parses_into_schedules_heartbeats_and_settings() {
    let config = parse(FULL);
    assert_eq!(
        config.settings.scheduler,
        SchedulerSettings {
            lease_ms: 15_000,
            grace_ms: 2_000
        }
    );
    let report = ScheduleSpec {
        name: "morning-report".into(),
        workspace: Some("trading".into()),
        description: Some("The daily report".into()),
        owner: Some("desk".into()),
        timing: cron("0 8 * * 1-5"),
        zone: Zone::parse("Europe/Berlin").unwrap(),
        task: TaskTemplate {
            queue: "maintenance".into(),
            kind: "noop".into(),
            payload: json!({
                "report": "daily",
                "depth": 2,
                "ratio": 0.5,
                "tags": ["a", "b"],
                "since": "2026-01-01T00:00:00Z",
                "nested": { "ok": true },
            }),
            priority: -10,
            max_attempts: Some(3),
            node: None,
        },
        overlap: OverlapPolicy::Forbid,
        missed: MissedPolicy::All { limit: 24 },
        jitter_ms: 30_000,
        enabled: false,
        expect_success_within_ms: Some(3_600_000),
    };
    let tick = ScheduleSpec {
        name: "tick".into(),
        workspace: None,
        description: None,
        owner: None,
        timing: Timing::Every {
            interval_ms: 30_000,
        },
        zone: Zone::parse("Asia/Tokyo").unwrap(),
        task: TaskTemplate {
            queue: "maintenance".into(),
            kind: "sleep".into(),
            payload: json!({ "ms": 10 }),
            priority: 0,
            max_attempts: None,
            node: None,
        },
        overlap: OverlapPolicy::Allow,
        missed: MissedPolicy::Once,
        jitter_ms: 5_000,
        enabled: true,
        expect_success_within_ms: None,
    };
    let launch = ScheduleSpec {
        name: "launch".into(),
        timing: Timing::Once {
            at_ms: 1_798_131_600_000,
        },
        zone: Zone::utc(),
        task: TaskTemplate {
            kind: "noop".into(),
            payload: json!({}),
            ..tick.task.clone()
        },
        overlap: OverlapPolicy::Replace,
        missed: MissedPolicy::Skip,
        jitter_ms: 0,
        ..tick.clone()
    };
    assert_eq!(config.schedules, vec![report, tick, launch]);
    assert_eq!(
        config.heartbeats,
        vec![
            HeartbeatSpec {
                name: "nightly-backup".into(),
                workspace: Some("trading".into()),
                description: Some("pg_dump on vps-1".into()),
                period_ms: 24 * 3_600_000,
                grace_ms: 2 * 3_600_000,
            },
            HeartbeatSpec {
                name: "poller".into(),
                workspace: None,
                description: None,
                period_ms: 600_000,
                grace_ms: 120_000,
            },
        ]
    );
}

#[test]
fn defaults_when_left_out() {
    let config = parse(&with(
        "cron = \"*/5 * * * *\"\n[[heartbeats]]\nname = \"h\"\nperiod = \"2s\"",
    ));
    assert_eq!(config.settings.scheduler, SchedulerSettings::default());
    assert_eq!(config.settings.scheduler.lease_ms, 10_000);
    assert_eq!(config.settings.scheduler.grace_ms, 5_000);
    let s = &config.schedules[0];
    assert_eq!(s.zone, Zone::utc());
    assert_eq!(s.task.payload, json!({}));
    assert_eq!(s.task.priority, 0);
    assert_eq!(s.task.max_attempts, None);
    assert_eq!(s.overlap, OverlapPolicy::Allow);
    assert_eq!(s.missed, MissedPolicy::Once);
    assert_eq!(s.jitter_ms, 0);
    assert!(s.enabled);
    assert_eq!(s.expect_success_within_ms, None);
    // A fifth of the period, but at least a second.
    assert_eq!(config.heartbeats[0].grace_ms, 1_000);
    let all = parse(&with("every = \"1m\"\nmissed = \"all\"\njitter = \"0s\""));
    assert_eq!(
        all.schedules[0].missed,
        MissedPolicy::All {
            limit: MissedPolicy::DEFAULT_ALL_LIMIT
        }
    );
    assert_eq!(all.schedules[0].jitter_ms, 0);
    assert!(parse("[server]\n").schedules.is_empty());
}

#[test]
fn at_may_be_a_toml_date_time() {
    let written = parse(&with("at = 2026-12-24T18:00:00+01:00"));
    let quoted = parse(&with("at = \"2026-12-24T18:00:00+01:00\""));
    assert_eq!(written.schedules[0].timing, quoted.schedules[0].timing);
    assert_eq!(
        written.schedules[0].timing,
        Timing::Once {
            at_ms: 1_798_131_600_000
        }
    );
}

#[test]
fn payloads_become_json() {
    let config = parse(&with(
        "every = \"1m\"\n[schedules.payload]\nday = 2026-01-02\nlist = [1, 2.5, \"x\", [true]]\n[[schedules.payload.items]]\nid = 1\n[[schedules.payload.items]]\nid = 2",
    ));
    assert_eq!(
        config.schedules[0].task.payload,
        json!({
            "day": "2026-01-02",
            "list": [1, 2.5, "x", [true]],
            "items": [{ "id": 1 }, { "id": 2 }],
        })
    );
    let scalar = parse(&with("every = \"1m\"\npayload = \"just text\""));
    assert_eq!(scalar.schedules[0].task.payload, json!("just text"));
    // Payloads are stored and shown: `${VAR}` stays as written.
    let kept = parse(&with("every = \"1m\"\npayload = { token = \"${TOKEN}\" }"));
    assert_eq!(
        kept.schedules[0].task.payload,
        json!({ "token": "${TOKEN}" })
    );
}

#[test]
fn payload_errors_name_the_field_and_line() {
    assert_error(
        &with("every = \"1m\"\npayload = { a = [1, nan] }"),
        9,
        "`schedules[0].payload.a[1]`: `NaN` has no JSON form",
    );
    assert_error(
        &with("every = \"1m\"\npayload = { a = \"x\\u0000\" }"),
        9,
        "`schedules[0].payload.a`: must not contain a NUL character",
    );
    assert_error(
        "[[queues]]\nname = \"jobs\"\nkinds = [\"noop\"]\nmax_payload_bytes = 10\n[[schedules]]\nname = \"s\"\nqueue = \"jobs\"\nkind = \"noop\"\nevery = \"1m\"\npayload = { text = \"more than ten bytes\" }\n",
        10,
        "`schedules[0].payload`: 30 bytes of JSON; queue `jobs` accepts at most 10",
    );
}

#[test]
fn a_bad_cron_field_is_named_at_its_value() {
    let all = errors(&with("cron = \"0 25 * * *\""));
    assert!(
        all.starts_with(
            "f.toml:8:8: error: `schedules[0].cron`: cron expression \"0 25 * * *\": field hour is `25`: must be 0-23"
        ),
        "{all}"
    );
    assert_eq!(all.lines().count(), 1, "{all}");
    assert_error(
        &with("cron = \"* * *\""),
        8,
        "`schedules[0].cron`: cron expression \"* * *\"",
    );
    assert_error(
        &with("cron = 5"),
        8,
        "`schedules[0].cron`: expected a string, found integer",
    );
}

#[test]
fn an_unknown_zone_suggests_a_close_one() {
    let all = errors(&with("cron = \"0 8 * * *\"\ntimezone = \"Europe/Berln\""));
    assert!(
        all.starts_with("f.toml:9:12: error: `schedules[0].timezone`: "),
        "{all}"
    );
    assert!(
        all.contains("unknown time zone `Europe/Berln` (did you mean `Europe/Berlin`?)"),
        "{all}"
    );
}

#[test]
fn exactly_one_timing_is_given() {
    assert_error(
        &with("cron = \"0 8 * * *\"\nevery = \"1h\""),
        9,
        "`schedules[0].every`: a schedule takes exactly one of `cron`, `every` or `at`, and this one gives `cron` and `every`",
    );
    let all = errors(&with(
        "cron = \"0 8 * * *\"\nevery = \"1h\"\nat = \"2026-12-24T18:00:00Z\"",
    ));
    assert_eq!(all.lines().count(), 2, "{all}");
    assert!(
        all.contains("gives `cron`, `every` and `at`; keep one"),
        "{all}"
    );
    assert_error(
        &with(""),
        4,
        "`schedules[0]`: says nothing about when it fires: give one of `cron`",
    );
}

#[test]
fn the_queue_must_be_declared_and_allow_the_kind() {
    assert_error(
        &with("every = \"1m\"").replace("queue = \"jobs\"", "queue = \"job\""),
        6,
        "`schedules[0].queue`: unknown queue `job` (not declared in `[[queues]]`); did you mean `jobs`?",
    );
    assert_error(
        "[[schedules]]\nname = \"s\"\nqueue = \"jobs\"\nkind = \"noop\"\nevery = \"1m\"\n",
        3,
        "`schedules[0].queue`: unknown queue `jobs` (not declared in `[[queues]]`); no `[[queues]]` are declared",
    );
    assert_error(
        &with("every = \"1m\"").replace("kind = \"noop\"", "kind = \"sleeep\""),
        7,
        "`schedules[0].kind`: queue `jobs` does not run `sleeep` tasks (allowed: noop, sleep); did you mean `sleep`?",
    );
    assert_error(
        "[[queues]]\nname = \"q\"\nkinds = [\"noop\"]\n[[schedules]]\nname = \"s\"\nqueue = \"q\"\nevery = \"1m\"\n",
        4,
        "`schedules[0].kind`: missing required field",
    );
    // A queue whose kinds were refused: one error, where the kind is listed.
    let all = errors(
        "[[queues]]\nname = \"q\"\nkinds = [\"noop\", \"bakup\"]\n[[schedules]]\nname = \"s\"\nqueue = \"q\"\nkind = \"bakup\"\nevery = \"1m\"\n",
    );
    assert_eq!(all.lines().count(), 1, "{all}");
    assert!(all.starts_with("f.toml:3:"), "{all}");
}

#[test]
fn missed_limit_only_goes_with_missed_all() {
    assert_error(
        &with("every = \"1m\"\nmissed_limit = 5"),
        9,
        "`schedules[0].missed_limit`: only goes with `missed = \"all\"` (this schedule's policy is `once`, the default)",
    );
    assert_error(
        &with("every = \"1m\"\nmissed = \"skip\"\nmissed_limit = 5"),
        10,
        "(this schedule's policy is `skip`)",
    );
    assert_error(
        &with("every = \"1m\"\nmissed = \"all\"\nmissed_limit = 10001"),
        10,
        "`schedules[0].missed_limit`: 10001 is out of range (1 to 10000)",
    );
    assert_error(
        &with("every = \"1m\"\nmissed = \"some\""),
        9,
        "`schedules[0].missed`: `some` is not one of: skip, once, all",
    );
    assert_error(
        &with("every = \"1m\"\noverlap = \"queue\""),
        9,
        "`schedules[0].overlap`: `queue` is not one of: allow, forbid, replace",
    );
}

#[test]
fn jitter_must_be_less_than_the_interval() {
    assert_error(
        &with("every = \"30s\"\njitter = \"30s\""),
        9,
        "`schedules[0].jitter`: 30s is not less than the interval (`every` is 30s)",
    );
    assert_error(
        &with("every = \"30s\"\njitter = \"soon\""),
        9,
        "`schedules[0].jitter`: `soon` is not a duration",
    );
    // Other timings take any jitter.
    assert_eq!(
        parse(&with("cron = \"0 * * * *\"\njitter = \"2h\"")).schedules[0].jitter_ms,
        7_200_000
    );
}

#[test]
fn duplicate_names_point_at_the_first() {
    let schedule =
        "[[schedules]]\nname = \"s\"\nqueue = \"jobs\"\nkind = \"noop\"\nevery = \"1m\"\n";
    assert_error(
        &format!("{}{schedule}", with("every = \"1m\"")),
        10,
        "`schedules[1].name`: duplicate schedule `s` (first declared at f.toml:5:8)",
    );
    assert_error(
        "[[heartbeats]]\nname = \"h\"\nperiod = \"1h\"\n[[heartbeats]]\nname = \"h\"\nperiod = \"1h\"\n",
        5,
        "`heartbeats[1].name`: duplicate heartbeat `h` (first declared at f.toml:2:8)",
    );
}

#[test]
fn names_and_workspaces_are_checked() {
    assert_error(
        &with("every = \"1m\"").replace("name = \"s\"", "name = \"a b\""),
        5,
        "`schedules[0].name`: `a b` is not a valid name",
    );
    assert_error(
        &with("every = \"1m\"\nworkspace = \"nope\""),
        9,
        "`schedules[0].workspace`: unknown workspace `nope`",
    );
    assert_error(
        "[[workspaces]]\nkey = \"ops\"\n[[heartbeats]]\nname = \"h\"\nperiod = \"1h\"\nworkspace = \"opz\"\n",
        6,
        "`heartbeats[0].workspace`: unknown workspace `opz`; did you mean `ops`?",
    );
    assert_error(
        "[[heartbeats]]\nperiod = \"1h\"\n",
        1,
        "`heartbeats[0].name`: missing required field",
    );
}

#[test]
fn unknown_keys_are_errors() {
    assert_error(
        &with("every = \"1m\"\ntimezon = \"UTC\""),
        9,
        "unknown key `schedules[0].timezon`: did you mean `timezone`?",
    );
    assert_error(
        "[[heartbeats]]\nname = \"h\"\nperiod = \"1h\"\ngrace_period = \"1m\"\n",
        4,
        "unknown key `heartbeats[0].grace_period`",
    );
    assert_error(
        "[scheduler]\nleas = \"10s\"\n",
        2,
        "unknown key `scheduler.leas`: did you mean `lease`?",
    );
    assert_error(
        "[[schedule]]\nname = \"s\"\n",
        1,
        "unknown key `schedule`: did you mean `schedules`?",
    );
}

#[test]
fn task_fields_are_checked() {
    assert_error(
        &with("every = \"1m\"\npriority = 1001"),
        9,
        "`schedules[0].priority`: 1001 is out of range (-1000 to 1000)",
    );
    assert_error(
        &with("every = \"1m\"\npriority = \"high\""),
        9,
        "`schedules[0].priority`: expected an integer, found string",
    );
    assert_error(
        &with("every = \"1m\"\nmax_attempts = 0"),
        9,
        "`schedules[0].max_attempts`: 0 is out of range (1 to 1000)",
    );
    assert_error(
        &with("every = \"1m\"\nenabled = \"yes\""),
        9,
        "`schedules[0].enabled`: expected true or false",
    );
    assert_error(
        &with("at = \"tomorrow\""),
        8,
        "`schedules[0].at`: `tomorrow` is not an RFC 3339 time",
    );
}

#[test]
fn bad_durations_name_the_field_and_line() {
    assert_error(
        &with("every = \"500ms\""),
        8,
        "`schedules[0].every`: 500ms is less than 1s, the shortest allowed",
    );
    assert_error(
        &with("every = \"soon\""),
        8,
        "`schedules[0].every`: `soon` is not a duration",
    );
    assert_error(
        &with("every = 30"),
        8,
        "`schedules[0].every`: expected a duration as a string",
    );
    assert_error(
        &with("every = \"1m\"\nexpect_success_within = \"0s\""),
        9,
        "`schedules[0].expect_success_within`: must be more than zero",
    );
    assert_error(
        "[[heartbeats]]\nname = \"h\"\n",
        1,
        "`heartbeats[0].period`: missing required field",
    );
    assert_error(
        "[[heartbeats]]\nname = \"h\"\nperiod = \"10ms\"\n",
        3,
        "`heartbeats[0].period`: 10ms is less than 1s",
    );
    assert_error(
        "[[heartbeats]]\nname = \"h\"\nperiod = \"1h\"\ngrace = \"500ms\"\n",
        4,
        "`heartbeats[0].grace`: 500ms is less than 1s",
    );
    assert_error(
        "[scheduler]\nlease = \"1s\"\n",
        2,
        "`scheduler.lease`: 1s is out of range (2s to 5m)",
    );
    assert_error(
        "[scheduler]\nlease = \"6m\"\n",
        2,
        "`scheduler.lease`: 6m is out of range (2s to 5m)",
    );
    assert_error(
        "[scheduler]\ngrace = \"100ms\"\n",
        2,
        "`scheduler.grace`: 100ms is less than 1s",
    );
    assert_error(
        "[scheduler]\ngrace = 5\n",
        2,
        "`scheduler.grace`: expected a duration as a string",
    );
    assert_error(
        "scheduler = 1\n",
        1,
        "`scheduler`: expected a table, found integer",
    );
}

/// Text that looks like a cron expression, often malformed.
fn cron_like() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "*",
        "*/",
        "/",
        ",",
        "-",
        " ",
        "  ",
        "0",
        "5",
        "7",
        "12",
        "23",
        "24",
        "25",
        "31",
        "32",
        "59",
        "60",
        "99999999999999999999",
        "JAN",
        "mon",
        "SUN",
        "L",
        "W",
        "#",
        "?",
        "@daily",
        "@hourly",
        "@reboot",
        "\t",
        "é",
        "-1",
        "0-",
        "-0",
        "1-0",
        "*/0",
        "0/0",
    ]);
    prop::collection::vec(token, 0..16).prop_map(|tokens| tokens.concat())
}

proptest! {
    #[test]
    fn cron_like_text_never_panics_and_errors_are_located(
        cron in cron_like(),
        zone in "[A-Za-z/_+0-9-]{0,20}",
        every in "[0-9]{0,4}(ms|s|m|h|d|x)?",
    ) {
        for line in [
            format!("cron = {}", Value::from(cron.as_str())),
            format!("cron = {}\ntimezone = {}", Value::from(cron.as_str()), Value::from(zone.as_str())),
            format!("every = {}\njitter = {}", Value::from(every.as_str()), Value::from(every.as_str())),
        ] {
            let text = with(&line);
            match parse_str("f.toml", &text, &env) {
                Ok(loaded) => prop_assert_eq!(loaded.config.schedules.len(), 1),
                Err(LoadError::Invalid(d)) => {
                    for diagnostic in d.0 {
                        prop_assert!(diagnostic.line >= 8, "{}", diagnostic);
                        prop_assert!(diagnostic.line <= text.lines().count(), "{}", diagnostic);
                    }
                }
                Err(other) => prop_assert!(false, "unexpected {}", other),
            }
        }
    }
}
