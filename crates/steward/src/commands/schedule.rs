//! `steward schedule`: preview cron expressions offline; list, show, pause, resume and trigger
//! schedules and read their runs through the API. `steward heartbeats`: list heartbeats and
//! ping them.

use std::process::ExitCode;

use serde_json::Value;
use steward_core::schedule::timing::format_instant;
use steward_core::schedule::{CronExpr, Timing, Zone};
use steward_wire::paths;
use steward_wire::schedules::{
    Heartbeat, HeartbeatList, Schedule, ScheduleChanged, ScheduleList, ScheduleRun,
    ScheduleRunList, ScheduleRunsQuery, ScheduleTriggered,
};

use crate::cli::{HeartbeatsCommand, OutputFormat, ScheduleCommand};
use crate::client::{Client, block_on, local_time, or_dash, print_json, print_table};

/// Runs a `steward schedule …` command.
pub fn run(command: ScheduleCommand) -> anyhow::Result<ExitCode> {
    if let ScheduleCommand::Next {
        expr,
        tz,
        from,
        count,
        output,
    } = command
    {
        let from_ms = from.unwrap_or_else(steward_store::now_ms);
        let times = next_times(&expr, &tz, from_ms, count);
        print!("{}", render_times(&times, output));
        if times.len() < count as usize {
            eprintln!(
                "only {} fire time{} after {} (times beyond the year 5000 are not computed)",
                times.len(),
                if times.len() == 1 { "" } else { "s" },
                format_instant(from_ms, &tz)
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    block_on(async move {
        match command {
            // Handled above, without a server.
            ScheduleCommand::Next { .. } => {}
            ScheduleCommand::Ls { client } => {
                let answer: ScheduleList = Client::new(&client)?
                    .get(&paths::SCHEDULES.with(&[]))
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    let rows: Vec<Vec<String>> =
                        answer.schedules.iter().map(schedule_row).collect();
                    print_table(&["NAME", "WORKSPACE", "WHEN", "NEXT", "LAST"], &rows);
                }
            }
            ScheduleCommand::Show { name, client } => {
                let answer: Schedule = Client::new(&client)?
                    .get(&paths::SCHEDULE.with(&[&name]))
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    for line in show_lines(&answer) {
                        println!("{line}");
                    }
                }
            }
            ScheduleCommand::Runs {
                name,
                limit,
                before,
                client,
            } => {
                let query = ScheduleRunsQuery {
                    before,
                    limit: Some(limit),
                };
                let path = paths::SCHEDULE_RUNS.with_query(&[&name], &query)?;
                let answer: ScheduleRunList = Client::new(&client)?.get(&path).await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    let rows: Vec<Vec<String>> = answer.runs.iter().map(run_row).collect();
                    print_table(
                        &[
                            "ID",
                            "SLOT",
                            "TRIGGER",
                            "STATUS",
                            "TASK",
                            "TASK STATUS",
                            "OUTCOME",
                            "DURATION",
                        ],
                        &rows,
                    );
                }
                // On standard error, so that JSON output stays one document.
                if let Some(next) = answer.next_before {
                    eprintln!("more: --before {next}");
                }
            }
            ScheduleCommand::Pause { name, client } => {
                let answer: ScheduleChanged = Client::new(&client)?
                    .post_empty(&paths::SCHEDULE_PAUSE.with(&[&name]))
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    println!("paused schedule `{name}`");
                }
            }
            ScheduleCommand::Resume { name, client } => {
                let answer: ScheduleChanged = Client::new(&client)?
                    .post_empty(&paths::SCHEDULE_RESUME.with(&[&name]))
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    println!("resumed schedule `{name}`");
                }
            }
            ScheduleCommand::Trigger { name, client } => {
                // A skip (409) is an error from the client: its message is the server's.
                let answer: ScheduleTriggered = Client::new(&client)?
                    .post_empty(&paths::SCHEDULE_TRIGGER.with(&[&name]))
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    println!("{}", trigger_line(&name, &answer));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs a `steward heartbeats …` command.
pub fn run_heartbeats(command: HeartbeatsCommand) -> anyhow::Result<ExitCode> {
    block_on(async move {
        match command {
            HeartbeatsCommand::Ls { client } => {
                let answer: HeartbeatList = Client::new(&client)?
                    .get(&paths::HEARTBEATS.with(&[]))
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    let rows: Vec<Vec<String>> =
                        answer.heartbeats.iter().map(heartbeat_row).collect();
                    print_table(&["NAME", "STATE", "LAST PING", "DEADLINE", "PINGS"], &rows);
                }
            }
            HeartbeatsCommand::Ping { name, fail, client } => {
                let route = if fail {
                    paths::HEARTBEAT_FAIL
                } else {
                    paths::HEARTBEAT
                };
                let answer: Heartbeat = Client::new(&client)?
                    .post_empty(&route.with(&[&name]))
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    println!("{}", ping_line(&name, fail, &answer));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

// ---------------------------------------------------------------------------------------------
// `next`
// ---------------------------------------------------------------------------------------------

/// Up to `count` fire times of `expr` in `zone` strictly after `from_ms`, as RFC 3339 with the
/// zone's offset. Fewer when the expression stops firing (beyond the year 5000).
fn next_times(expr: &CronExpr, zone: &Zone, from_ms: i64, count: u32) -> Vec<String> {
    let timing = Timing::Cron(expr.clone());
    let mut cursor = from_ms;
    let mut times = Vec::new();
    while times.len() < count as usize {
        let Some(slot) = timing.next_after(zone, cursor) else {
            break;
        };
        times.push(format_instant(slot, zone));
        cursor = slot;
    }
    times
}

/// The times one per line, or as a JSON array of strings.
fn render_times(times: &[String], output: OutputFormat) -> String {
    match output {
        OutputFormat::Table => times.iter().map(|t| format!("{t}\n")).collect(),
        OutputFormat::Json => format!("{}\n", Value::from(times.to_vec())),
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// One `schedule ls` row: NAME, WORKSPACE, WHEN, NEXT, LAST.
fn schedule_row(schedule: &Schedule) -> Vec<String> {
    vec![
        schedule.name.clone(),
        or_dash(schedule.workspace.as_ref()),
        schedule.describe.clone(),
        next_cell(schedule),
        last_run_cell(schedule.last_run.as_ref()),
    ]
}

/// `disabled`, `paused`, the next fire time (in the schedule's zone), or `-` when there is
/// none.
fn next_cell(schedule: &Schedule) -> String {
    if !schedule.enabled {
        "disabled".to_owned()
    } else if schedule.paused {
        "paused".to_owned()
    } else {
        or_dash(schedule.next_fire.as_ref())
    }
}

/// A run in a few words: its status, then its task's status and outcome when known, e.g.
/// `fired succeeded`, `fired failed (timeout)`, `skipped`; `overdue` when the dead-man's
/// switch flagged it; `-` for no run.
fn last_run_cell(run: Option<&ScheduleRun>) -> String {
    let Some(run) = run else {
        return "-".to_owned();
    };
    let mut words = vec![run.status.clone()];
    if let Some(task_status) = &run.task_status {
        words.push(task_status.clone());
    }
    if let Some(outcome) = &run.outcome {
        words.push(format!("({outcome})"));
    }
    if run.overdue {
        words.push("overdue".to_owned());
    }
    words.join(" ")
}

/// One `schedule runs` row: ID, SLOT, TRIGGER, STATUS, TASK, TASK STATUS, OUTCOME, DURATION.
fn run_row(run: &ScheduleRun) -> Vec<String> {
    let mut status = run.status.clone();
    if run.overdue {
        status.push_str(" (overdue)");
    }
    vec![
        run.id.to_string(),
        run.slot.clone(),
        run.trigger.clone(),
        status,
        or_dash(run.task_id),
        or_dash(run.task_status.as_ref()),
        or_dash(run.outcome.as_ref()),
        or_dash(run.duration_ms.map(duration)),
    ]
}

/// A duration for people: `350ms`, `12.3s`, `4m05s`, `2h07m`.
pub(crate) fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{}.{}s", ms / 1000, ms % 1000 / 100)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000)
    }
}

/// A duration in milliseconds as [`duration`]; `u64` values beyond `i64` are shown as its
/// largest.
fn duration_u64(ms: u64) -> String {
    duration(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// `yes` or `no`.
fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

/// `paused:` with who paused it and when (in the schedule's zone), when known.
fn paused_text(schedule: &Schedule, zone: &Zone) -> String {
    let state = &schedule.state;
    match (&state.changed_by, state.changed_at_ms) {
        (Some(by), Some(at)) if schedule.paused => {
            format!("yes (by {by} at {})", format_instant(at, zone))
        }
        _ => yes_no(schedule.paused),
    }
}

/// `last run:` in a few words, with its slot, task and reason.
fn last_run_text(run: &ScheduleRun) -> String {
    let mut line = last_run_cell(Some(run));
    line.push_str(&format!(", slot {}", run.slot));
    if let Some(task) = run.task_id {
        line.push_str(&format!(", task {task}"));
    }
    if let Some(reason) = &run.reason {
        line.push_str(&format!(": {reason}"));
    }
    line
}

/// A task's payload as one line of JSON; absent when it is `null`.
fn payload_text(payload: &Value) -> Option<String> {
    (!payload.is_null()).then(|| payload.to_string())
}

/// `schedule show` as `key: value` lines; absent values are left out.
fn show_lines(schedule: &Schedule) -> Vec<String> {
    let zone = Zone::parse(&schedule.timezone).unwrap_or_default();
    let task = &schedule.task;
    let fields: [(&str, Option<String>); 19] = [
        ("name", Some(schedule.name.clone())),
        ("workspace", schedule.workspace.clone()),
        ("description", schedule.description.clone()),
        ("owner", schedule.owner.clone()),
        ("when", Some(schedule.describe.clone())),
        ("timezone", Some(schedule.timezone.clone())),
        ("enabled", Some(yes_no(schedule.enabled))),
        ("paused", Some(paused_text(schedule, &zone))),
        ("next fire", Some(next_cell(schedule))),
        ("last run", schedule.last_run.as_ref().map(last_run_text)),
        ("queue", Some(task.queue.clone())),
        ("kind", Some(task.kind.clone())),
        ("payload", payload_text(&task.payload)),
        ("priority", Some(task.priority.to_string())),
        ("max attempts", task.max_attempts.map(|n| n.to_string())),
        ("overlap", Some(schedule.overlap.clone())),
        ("missed", Some(schedule.missed.clone())),
        (
            "jitter",
            (schedule.jitter_ms > 0).then(|| duration_u64(schedule.jitter_ms)),
        ),
        (
            "must succeed within",
            schedule.expect_success_within_ms.map(duration_u64),
        ),
    ];
    let width = fields.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 2;
    fields
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| format!("{:<width$}{v}", format!("{key}:"))))
        .collect()
}

/// What `schedule trigger` prints: the task, whether it existed already, and any tasks
/// cancelled to make way for it.
fn trigger_line(name: &str, answer: &ScheduleTriggered) -> String {
    let mut line = format!("triggered schedule `{name}`: task {}", answer.task_id);
    if !answer.created {
        line.push_str(" (it existed already)");
    }
    if !answer.replaced.is_empty() {
        let replaced: Vec<String> = answer.replaced.iter().map(i64::to_string).collect();
        line.push_str(&format!("; cancelled task {}", replaced.join(", ")));
    }
    line
}

/// One `heartbeats ls` row: NAME, STATE, LAST PING, DEADLINE, PINGS; times in this machine's
/// zone.
fn heartbeat_row(heartbeat: &Heartbeat) -> Vec<String> {
    let last_ping = match (heartbeat.last_ping_ms, &heartbeat.last_status) {
        (None, _) => "-".to_owned(),
        (Some(at), Some(status)) => format!("{} ({status})", local_time(at)),
        (Some(at), None) => local_time(at),
    };
    vec![
        heartbeat.name.clone(),
        heartbeat.state.clone(),
        last_ping,
        or_dash(heartbeat.deadline_ms.map(local_time)),
        heartbeat.pings.to_string(),
    ]
}

/// What `heartbeats ping` prints: the ping recorded, the state and the next deadline.
fn ping_line(name: &str, fail: bool, answer: &Heartbeat) -> String {
    format!(
        "heartbeat `{name}`: {} ping recorded; state {}, next deadline {}",
        if fail { "fail" } else { "ok" },
        answer.state,
        or_dash(answer.deadline_ms.map(local_time))
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use steward_core::schedule::timing::parse_instant;
    use steward_wire::schedules::{ScheduleState, ScheduleTask, ScheduleTiming};

    use super::*;

    fn cron(expr: &str) -> CronExpr {
        CronExpr::parse(expr).unwrap()
    }

    #[test]
    fn next_times_start_strictly_after_from_and_carry_the_offset() {
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        let from = parse_instant("2026-03-27T08:30:00+01:00").unwrap();
        let times = next_times(&cron("30 8 * * *"), &berlin, from, 3);
        assert_eq!(
            times,
            [
                "2026-03-28T08:30:00+01:00",
                "2026-03-29T08:30:00+02:00",
                "2026-03-30T08:30:00+02:00",
            ]
        );
    }

    #[test]
    fn next_times_follow_the_dst_gap_rule() {
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        let from = parse_instant("2026-03-28T12:00:00Z").unwrap();
        let times = next_times(&cron("30 2 * * *"), &berlin, from, 2);
        assert_eq!(
            times,
            ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]
        );
    }

    #[test]
    fn next_times_take_nicknames_and_seconds() {
        let utc = Zone::utc();
        let from = parse_instant("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(
            next_times(&cron("@hourly"), &utc, from, 2),
            ["2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00"]
        );
        assert_eq!(
            next_times(&cron("*/20 * * * * *"), &utc, from, 2),
            ["2026-01-01T00:00:20+00:00", "2026-01-01T00:00:40+00:00"]
        );
    }

    #[test]
    fn next_times_stop_when_the_calendar_ends() {
        let utc = Zone::utc();
        let far = parse_instant("9999-12-31T00:00:00Z").unwrap();
        assert!(next_times(&cron("@yearly"), &utc, far, 5).len() < 5);
    }

    #[test]
    fn the_command_line_parses_aliases_and_refuses_bad_input_with_code_2() {
        use clap::{CommandFactory, Parser};

        use crate::cli::{Cli, Command};

        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "steward",
            "schedules",
            "next",
            "0 8 * * *",
            "--tz",
            "Europe/Berlin",
            "--from",
            "2026-12-01T08:00:00+01:00",
        ])
        .unwrap();
        let Command::Schedule(ScheduleCommand::Next {
            expr,
            tz,
            from,
            count,
            output,
        }) = cli.command
        else {
            panic!("not `schedule next`: {cli:?}");
        };
        assert_eq!(expr.as_str(), "0 8 * * *");
        assert_eq!(tz.name(), "Europe/Berlin");
        assert_eq!(from, parse_instant("2026-12-01T07:00:00Z").ok());
        assert_eq!((count, output), (5, OutputFormat::Table));
        assert!(Cli::try_parse_from(["steward", "heartbeat", "ping", "hb", "--fail"]).is_ok());

        for (args, names) in [
            (&["0 25 * * *"][..], "field hour"),
            (&["0 8 * * *", "--tz", "Europe/Berln"], "Europe/Berlin"),
            (&["0 8 * * *", "--from", "tomorrow"], "RFC 3339"),
            (&["0 8 * * *", "--count", "1001"], "1..=1000"),
        ] {
            let argv = ["steward", "schedule", "next"].iter().chain(args);
            let error = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{args:?}");
            assert!(error.to_string().contains(names), "{args:?}: {error}");
        }
    }

    #[test]
    fn times_render_as_lines_or_a_json_array() {
        let times = vec![
            "2026-01-01T01:00:00+00:00".to_owned(),
            "2026-01-01T02:00:00+00:00".to_owned(),
        ];
        assert_eq!(
            render_times(&times, OutputFormat::Table),
            "2026-01-01T01:00:00+00:00\n2026-01-01T02:00:00+00:00\n"
        );
        let json: Value = serde_json::from_str(&render_times(&times, OutputFormat::Json)).unwrap();
        assert_eq!(
            json,
            json!(["2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00"])
        );
        assert_eq!(render_times(&[], OutputFormat::Json), "[]\n");
        assert_eq!(render_times(&[], OutputFormat::Table), "");
    }

    #[test]
    fn names_that_are_not_one_segment_are_refused() {
        assert_eq!(
            paths::SCHEDULE_RUNS
                .with_query(
                    &[&"a/b c"],
                    &ScheduleRunsQuery {
                        before: Some(41),
                        limit: Some(20),
                    }
                )
                .unwrap(),
            "/api/v1/schedules/a%2Fb%20c/runs?before=41&limit=20"
        );
    }

    fn run() -> ScheduleRun {
        ScheduleRun {
            id: 7,
            schedule: "nightly-backup".to_owned(),
            slot: "2026-03-29T03:00:00+02:00".to_owned(),
            slot_ms: 1_774_746_000_000,
            trigger: "slot".to_owned(),
            status: "fired".to_owned(),
            reason: None,
            task_id: Some(42),
            fired_at: "2026-03-29T01:00:00.000Z".to_owned(),
            fired_at_ms: 1_774_746_000_000,
            task_status: Some("succeeded".to_owned()),
            outcome: None,
            started_at: None,
            started_at_ms: None,
            finished_at: None,
            finished_at_ms: None,
            duration_ms: None,
            error: None,
            overdue: false,
        }
    }

    fn schedule() -> Schedule {
        Schedule {
            name: "nightly-backup".to_owned(),
            workspace: Some("ops".to_owned()),
            description: None,
            owner: Some("dba".to_owned()),
            timing: ScheduleTiming::Cron {
                cron: "0 2 * * *".to_owned(),
            },
            describe: "cron \"0 2 * * *\" in Europe/Berlin".to_owned(),
            timezone: "Europe/Berlin".to_owned(),
            task: ScheduleTask {
                queue: "maintenance".to_owned(),
                kind: "backup".to_owned(),
                payload: json!({"db": "main"}),
                priority: 0,
                max_attempts: None,
            },
            overlap: "forbid".to_owned(),
            missed: "once".to_owned(),
            jitter_ms: 0,
            enabled: true,
            expect_success_within_ms: Some(7_200_000),
            state: ScheduleState {
                paused: false,
                cursor: None,
                cursor_ms: Some(1),
                changed_at: None,
                changed_at_ms: Some(1),
                changed_by: Some("cli".to_owned()),
            },
            paused: false,
            next_fire: Some("2026-03-30T02:00:00+02:00".to_owned()),
            next_fire_ms: Some(1_774_828_800_000),
            last_run: Some(run()),
        }
    }

    #[test]
    fn schedule_rows_say_what_comes_next() {
        let mut s = schedule();
        assert_eq!(
            schedule_row(&s),
            [
                "nightly-backup",
                "ops",
                "cron \"0 2 * * *\" in Europe/Berlin",
                "2026-03-30T02:00:00+02:00",
                "fired succeeded",
            ]
        );
        s.paused = true;
        s.next_fire = None;
        assert_eq!(next_cell(&s), "paused");
        s.enabled = false;
        assert_eq!(next_cell(&s), "disabled");
        s.enabled = true;
        s.paused = false;
        assert_eq!(next_cell(&s), "-");
        s.last_run = None;
        assert_eq!(schedule_row(&s)[4], "-");
    }

    #[test]
    fn last_run_cells_name_status_task_status_and_outcome() {
        let failed = ScheduleRun {
            task_status: Some("failed".to_owned()),
            outcome: Some("timeout".to_owned()),
            overdue: true,
            ..run()
        };
        assert_eq!(
            last_run_cell(Some(&failed)),
            "fired failed (timeout) overdue"
        );
        let skipped = ScheduleRun {
            status: "skipped".to_owned(),
            task_id: None,
            task_status: None,
            ..run()
        };
        assert_eq!(last_run_cell(Some(&skipped)), "skipped");
        assert_eq!(last_run_cell(None), "-");
    }

    #[test]
    fn run_rows_fill_every_column() {
        let manual = ScheduleRun {
            id: 9,
            slot: "2026-01-01T00:00:00+00:00".to_owned(),
            trigger: "manual".to_owned(),
            outcome: Some("ok".to_owned()),
            started_at_ms: Some(10),
            finished_at_ms: Some(12_345),
            duration_ms: Some(12_335),
            ..run()
        };
        assert_eq!(
            run_row(&manual),
            [
                "9",
                "2026-01-01T00:00:00+00:00",
                "manual",
                "fired",
                "42",
                "succeeded",
                "ok",
                "12.3s",
            ]
        );
        let skipped = ScheduleRun {
            id: 8,
            slot: "2026-01-01T00:00:00+00:00".to_owned(),
            status: "skipped".to_owned(),
            task_id: None,
            task_status: None,
            overdue: true,
            ..run()
        };
        assert_eq!(
            run_row(&skipped),
            [
                "8",
                "2026-01-01T00:00:00+00:00",
                "slot",
                "skipped (overdue)",
                "-",
                "-",
                "-",
                "-",
            ]
        );
    }

    #[test]
    fn durations_use_the_largest_sensible_unit() {
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(999), "999ms");
        assert_eq!(duration(1000), "1.0s");
        assert_eq!(duration(59_999), "59.9s");
        assert_eq!(duration(245_000), "4m05s");
        assert_eq!(duration(7_620_000), "2h07m");
        assert_eq!(duration(-5), "0ms");
    }

    #[test]
    fn show_lists_present_fields_aligned() {
        let lines = show_lines(&schedule());
        let find = |key: &str| {
            lines
                .iter()
                .find(|l| l.starts_with(&format!("{key}:")))
                .cloned()
                .unwrap_or_default()
        };
        assert!(find("name").ends_with(" nightly-backup"), "{lines:#?}");
        assert!(find("next fire").ends_with(" 2026-03-30T02:00:00+02:00"));
        assert!(
            find("last run").ends_with(" fired succeeded, slot 2026-03-29T03:00:00+02:00, task 42"),
            "{lines:#?}"
        );
        assert!(find("payload").ends_with(r#" {"db":"main"}"#));
        assert!(find("must succeed within").ends_with(" 2h00m"));
        assert!(find("paused").ends_with(" no"));
        // Absent values are left out, and every value starts in the same column.
        assert!(find("description").is_empty());
        assert!(find("max attempts").is_empty());
        assert!(find("jitter").is_empty());
        let column = |line: &String| {
            let colon = line.find(':')?;
            let rest = &line[colon + 1..];
            Some(colon + 1 + rest.len() - rest.trim_start().len())
        };
        let columns: std::collections::BTreeSet<_> = lines.iter().filter_map(column).collect();
        assert_eq!(columns.len(), 1, "{lines:#?}");
    }

    #[test]
    fn show_says_who_paused() {
        let mut s = schedule();
        s.paused = true;
        s.state = ScheduleState {
            paused: true,
            changed_at_ms: Some(1_767_225_600_000),
            changed_by: Some("key:alice".to_owned()),
            ..ScheduleState::default()
        };
        let lines = show_lines(&s);
        assert!(
            lines.iter().any(|l| l.starts_with("paused:")
                && l.ends_with(" yes (by key:alice at 2026-01-01T01:00:00+01:00)")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("next fire:") && l.ends_with(" paused"))
        );
    }

    fn heartbeat() -> Heartbeat {
        Heartbeat {
            name: "hb".to_owned(),
            workspace: None,
            description: None,
            period_ms: 3_600_000,
            grace_ms: 300_000,
            state: "up".to_owned(),
            state_changed_at: None,
            state_changed_at_ms: None,
            last_ping: Some("2026-01-01T00:00:00+00:00".to_owned()),
            last_ping_ms: Some(1_767_225_600_000),
            last_status: Some("ok".to_owned()),
            pings: 3,
            deadline: Some("2026-01-01T01:05:00+00:00".to_owned()),
            deadline_ms: Some(1_767_229_500_000),
        }
    }

    #[test]
    fn trigger_and_ping_lines() {
        let fired = ScheduleTriggered {
            schedule: "s".to_owned(),
            fired: true,
            task_id: 42,
            created: true,
            replaced: vec![],
        };
        assert_eq!(trigger_line("s", &fired), "triggered schedule `s`: task 42");
        let replacing = ScheduleTriggered {
            task_id: 43,
            created: false,
            replaced: vec![40, 41],
            ..fired
        };
        assert_eq!(
            trigger_line("s", &replacing),
            "triggered schedule `s`: task 43 (it existed already); cancelled task 40, 41"
        );
        let failed = Heartbeat {
            state: "failed".to_owned(),
            ..heartbeat()
        };
        assert_eq!(
            ping_line("hb", true, &failed),
            format!(
                "heartbeat `hb`: fail ping recorded; state failed, next deadline {}",
                local_time(1_767_229_500_000)
            )
        );
    }

    #[test]
    fn heartbeat_rows_show_the_last_ping_and_its_status() {
        assert_eq!(
            heartbeat_row(&heartbeat()),
            [
                "hb".to_owned(),
                "up".to_owned(),
                format!("{} (ok)", local_time(1_767_225_600_000)),
                local_time(1_767_229_500_000),
                "3".to_owned(),
            ]
        );
        let new = Heartbeat {
            name: "n".to_owned(),
            state: "new".to_owned(),
            last_ping: None,
            last_ping_ms: None,
            last_status: None,
            pings: 0,
            deadline: None,
            deadline_ms: None,
            ..heartbeat()
        };
        assert_eq!(heartbeat_row(&new), ["n", "new", "-", "-", "0"]);
    }
}
