//! `steward schedule`: preview cron expressions offline; list, show, pause, resume and trigger
//! schedules and read their runs through the API. `steward heartbeats`: list heartbeats and
//! ping them.

use std::process::ExitCode;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};
use steward_core::schedule::timing::format_instant;
use steward_core::schedule::{CronExpr, Timing, Zone};

use crate::cli::{HeartbeatsCommand, OutputFormat, ScheduleCommand};
use crate::client::{Client, block_on, cell, print_table};

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
                let answer = Client::new(&client)?
                    .call(Method::GET, "/api/v1/schedules", None)
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    let rows: Vec<Vec<String>> = answer["schedules"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(schedule_row)
                        .collect();
                    print_table(&["NAME", "WORKSPACE", "WHEN", "NEXT", "LAST"], &rows);
                }
            }
            ScheduleCommand::Show { name, client } => {
                let answer = Client::new(&client)?
                    .call(Method::GET, &schedule_path(&name, None)?, None)
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
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
                let path = runs_path(&name, limit, before)?;
                let answer = Client::new(&client)?.call(Method::GET, &path, None).await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    let rows: Vec<Vec<String>> = answer["runs"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(run_row)
                        .collect();
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
                if let Some(next) = answer["next_before"].as_i64() {
                    eprintln!("more: --before {next}");
                }
            }
            ScheduleCommand::Pause { name, client } => {
                let answer = Client::new(&client)?
                    .call(Method::POST, &schedule_path(&name, Some("pause"))?, None)
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    println!("paused schedule `{name}`");
                }
            }
            ScheduleCommand::Resume { name, client } => {
                let answer = Client::new(&client)?
                    .call(Method::POST, &schedule_path(&name, Some("resume"))?, None)
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    println!("resumed schedule `{name}`");
                }
            }
            ScheduleCommand::Trigger { name, client } => {
                // A skip (409) is an error from the client: its message is the server's.
                let answer = Client::new(&client)?
                    .call(Method::POST, &schedule_path(&name, Some("trigger"))?, None)
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
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
                let answer = Client::new(&client)?
                    .call(Method::GET, "/api/v1/heartbeats", None)
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    let rows: Vec<Vec<String>> = answer["heartbeats"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(heartbeat_row)
                        .collect();
                    print_table(&["NAME", "STATE", "LAST PING", "DEADLINE", "PINGS"], &rows);
                }
            }
            HeartbeatsCommand::Ping { name, fail, client } => {
                let path = item_path("/api/v1/heartbeats", &name, fail.then_some("fail"))?;
                let answer = Client::new(&client)?
                    .call(Method::POST, &path, None)
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
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
// Paths
// ---------------------------------------------------------------------------------------------

/// `base/NAME[/action]`, with `NAME` encoded as one path segment.
pub(crate) fn item_path(base: &str, name: &str, action: Option<&str>) -> anyhow::Result<String> {
    if name.is_empty() || name == "." || name == ".." {
        bail!("`{name}` is not a valid name");
    }
    let mut url =
        reqwest::Url::parse(&format!("http://steward{base}")).context("building the URL")?;
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| anyhow::anyhow!("building the URL"))?;
        segments.push(name);
        if let Some(action) = action {
            segments.push(action);
        }
    }
    Ok(url.path().to_owned())
}

fn schedule_path(name: &str, action: Option<&str>) -> anyhow::Result<String> {
    item_path("/api/v1/schedules", name, action)
}

fn runs_path(name: &str, limit: u32, before: Option<i64>) -> anyhow::Result<String> {
    let mut path = schedule_path(name, Some("runs"))?;
    path.push_str(&format!("?limit={limit}"));
    if let Some(before) = before {
        path.push_str(&format!("&before={before}"));
    }
    Ok(path)
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// One `schedule ls` row: NAME, WORKSPACE, WHEN, NEXT, LAST.
fn schedule_row(schedule: &Value) -> Vec<String> {
    vec![
        cell(&schedule["name"]),
        cell(&schedule["workspace"]),
        cell(&schedule["describe"]),
        next_cell(schedule),
        last_run_cell(&schedule["last_run"]),
    ]
}

/// `disabled`, `paused`, the next fire time, or `-` when there is none.
fn next_cell(schedule: &Value) -> String {
    if schedule["enabled"] == json!(false) {
        "disabled".to_owned()
    } else if schedule["paused"] == json!(true) {
        "paused".to_owned()
    } else {
        cell(&schedule["next_fire"])
    }
}

/// A run in a few words: its status, then its task's status and outcome when known, e.g.
/// `fired succeeded`, `fired failed (timeout)`, `skipped`; `overdue` when the dead-man's
/// switch flagged it; `-` for no run.
fn last_run_cell(run: &Value) -> String {
    if run.is_null() {
        return "-".to_owned();
    }
    let mut words = vec![cell(&run["status"])];
    if !run["task_status"].is_null() {
        words.push(cell(&run["task_status"]));
    }
    if !run["outcome"].is_null() {
        words.push(format!("({})", cell(&run["outcome"])));
    }
    if run["overdue"] == json!(true) {
        words.push("overdue".to_owned());
    }
    words.join(" ")
}

/// One `schedule runs` row: ID, SLOT, TRIGGER, STATUS, TASK, TASK STATUS, OUTCOME, DURATION.
fn run_row(run: &Value) -> Vec<String> {
    let mut status = cell(&run["status"]);
    if run["overdue"] == json!(true) {
        status.push_str(" (overdue)");
    }
    vec![
        cell(&run["id"]),
        cell(&run["slot"]),
        cell(&run["trigger"]),
        status,
        cell(&run["task_id"]),
        cell(&run["task_status"]),
        cell(&run["outcome"]),
        run["duration_ms"]
            .as_i64()
            .map_or_else(|| "-".to_owned(), duration),
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

/// `schedule show` as `key: value` lines; absent values are left out.
fn show_lines(schedule: &Value) -> Vec<String> {
    let zone = schedule["timezone"]
        .as_str()
        .and_then(|name| Zone::parse(name).ok())
        .unwrap_or_default();
    let when = |ms: &Value| ms.as_i64().map(|ms| format_instant(ms, &zone));
    let text = |value: &Value| (!value.is_null()).then(|| cell(value));
    let yes_no = |value: &Value| {
        value
            .as_bool()
            .map(|b| if b { "yes" } else { "no" }.to_owned())
    };
    let state = &schedule["state"];
    let paused = yes_no(&schedule["paused"]).map(|answer| {
        match (text(&state["changed_by"]), when(&state["changed_at_ms"])) {
            (Some(by), Some(at)) if schedule["paused"] == json!(true) => {
                format!("{answer} (by {by} at {at})")
            }
            _ => answer,
        }
    });
    let last_run = &schedule["last_run"];
    let last = (!last_run.is_null()).then(|| {
        let mut line = last_run_cell(last_run);
        if let Some(slot) = text(&last_run["slot"]) {
            line.push_str(&format!(", slot {slot}"));
        }
        if let Some(task) = text(&last_run["task_id"]) {
            line.push_str(&format!(", task {task}"));
        }
        if let Some(reason) = text(&last_run["reason"]) {
            line.push_str(&format!(": {reason}"));
        }
        line
    });
    let task = &schedule["task"];
    let fields: [(&str, Option<String>); 19] = [
        ("name", text(&schedule["name"])),
        ("workspace", text(&schedule["workspace"])),
        ("description", text(&schedule["description"])),
        ("owner", text(&schedule["owner"])),
        ("when", text(&schedule["describe"])),
        ("timezone", text(&schedule["timezone"])),
        ("enabled", yes_no(&schedule["enabled"])),
        ("paused", paused),
        ("next fire", Some(next_cell(schedule))),
        ("last run", last),
        ("queue", text(&task["queue"])),
        ("kind", text(&task["kind"])),
        ("payload", text(&task["payload"])),
        ("priority", text(&task["priority"])),
        ("max attempts", text(&task["max_attempts"])),
        ("overlap", text(&schedule["overlap"])),
        ("missed", text(&schedule["missed"])),
        (
            "jitter",
            schedule["jitter_ms"]
                .as_i64()
                .filter(|ms| *ms > 0)
                .map(duration),
        ),
        (
            "must succeed within",
            schedule["expect_success_within_ms"].as_i64().map(duration),
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
fn trigger_line(name: &str, answer: &Value) -> String {
    let mut line = format!(
        "triggered schedule `{name}`: task {}",
        cell(&answer["task_id"])
    );
    if answer["created"] == json!(false) {
        line.push_str(" (it existed already)");
    }
    let replaced: Vec<String> = answer["replaced"]
        .as_array()
        .into_iter()
        .flatten()
        .map(cell)
        .collect();
    if !replaced.is_empty() {
        line.push_str(&format!("; cancelled task {}", replaced.join(", ")));
    }
    line
}

/// One `heartbeats ls` row: NAME, STATE, LAST PING, DEADLINE, PINGS.
fn heartbeat_row(heartbeat: &Value) -> Vec<String> {
    let last_ping = match (&heartbeat["last_ping"], heartbeat["last_status"].as_str()) {
        (Value::Null, _) => "-".to_owned(),
        (at, Some(status)) => format!("{} ({status})", cell(at)),
        (at, None) => cell(at),
    };
    vec![
        cell(&heartbeat["name"]),
        cell(&heartbeat["state"]),
        last_ping,
        cell(&heartbeat["deadline"]),
        cell(&heartbeat["pings"]),
    ]
}

/// What `heartbeats ping` prints: the ping recorded, the state and the next deadline.
fn ping_line(name: &str, fail: bool, answer: &Value) -> String {
    format!(
        "heartbeat `{name}`: {} ping recorded; state {}, next deadline {}",
        if fail { "fail" } else { "ok" },
        cell(&answer["state"]),
        cell(&answer["deadline"])
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_core::schedule::timing::parse_instant;

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
    fn paths_encode_the_name_as_one_segment() {
        assert_eq!(
            schedule_path("nightly-backup", Some("pause")).unwrap(),
            "/api/v1/schedules/nightly-backup/pause"
        );
        assert_eq!(
            schedule_path("a/b c", None).unwrap(),
            "/api/v1/schedules/a%2Fb%20c"
        );
        assert_eq!(
            runs_path("s", 20, Some(41)).unwrap(),
            "/api/v1/schedules/s/runs?limit=20&before=41"
        );
        assert_eq!(
            runs_path("s", 50, None).unwrap(),
            "/api/v1/schedules/s/runs?limit=50"
        );
        assert_eq!(
            item_path("/api/v1/heartbeats", "hb", Some("fail")).unwrap(),
            "/api/v1/heartbeats/hb/fail"
        );
        for bad in ["", ".", ".."] {
            assert!(schedule_path(bad, None).is_err(), "{bad:?}");
        }
    }

    fn schedule() -> Value {
        json!({
            "name": "nightly-backup",
            "workspace": "ops",
            "description": null,
            "owner": "dba",
            "timing": {"cron": "0 2 * * *"},
            "describe": "cron \"0 2 * * *\" in Europe/Berlin",
            "timezone": "Europe/Berlin",
            "task": {"queue": "maintenance", "kind": "backup", "payload": {"db": "main"},
                     "priority": 0, "max_attempts": null},
            "overlap": "forbid",
            "missed": "once",
            "jitter_ms": 0,
            "enabled": true,
            "expect_success_within_ms": 7_200_000,
            "state": {"paused": false, "cursor_ms": 1, "changed_at_ms": 1, "changed_by": "cli"},
            "paused": false,
            "next_fire": "2026-03-30T02:00:00+02:00",
            "next_fire_ms": 1_774_828_800_000_i64,
            "last_run": {"id": 7, "schedule": "nightly-backup", "slot": "2026-03-29T03:00:00+02:00",
                         "status": "fired", "task_id": 42, "task_status": "succeeded",
                         "outcome": null, "reason": null, "overdue": false},
        })
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
        s["paused"] = json!(true);
        s["next_fire"] = Value::Null;
        assert_eq!(next_cell(&s), "paused");
        s["enabled"] = json!(false);
        assert_eq!(next_cell(&s), "disabled");
        s["enabled"] = json!(true);
        s["paused"] = json!(false);
        assert_eq!(next_cell(&s), "-");
        s["last_run"] = Value::Null;
        assert_eq!(schedule_row(&s)[4], "-");
    }

    #[test]
    fn last_run_cells_name_status_task_status_and_outcome() {
        assert_eq!(
            last_run_cell(&json!({"status": "fired", "task_status": "failed",
                                  "outcome": "timeout", "overdue": true})),
            "fired failed (timeout) overdue"
        );
        assert_eq!(
            last_run_cell(
                &json!({"status": "skipped", "task_status": null, "outcome": null,
                                  "overdue": false})
            ),
            "skipped"
        );
    }

    #[test]
    fn run_rows_fill_every_column() {
        let run = json!({
            "id": 9, "schedule": "s", "slot": "2026-01-01T00:00:00+00:00",
            "slot_ms": 1_767_225_600_000_i64, "trigger": "manual", "status": "fired",
            "reason": null, "task_id": 42, "fired_at_ms": 1, "task_status": "succeeded",
            "outcome": "ok", "started_at_ms": 10, "finished_at_ms": 12_345,
            "duration_ms": 12_335, "error": null, "overdue": false,
        });
        assert_eq!(
            run_row(&run),
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
        let skipped = json!({
            "id": 8, "slot": "2026-01-01T00:00:00+00:00", "trigger": "slot",
            "status": "skipped", "task_id": null, "task_status": null, "outcome": null,
            "duration_ms": null, "overdue": true,
        });
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
        s["paused"] = json!(true);
        s["state"] = json!({"paused": true, "cursor_ms": 1, "changed_at_ms": 1_767_225_600_000_i64,
                            "changed_by": "key:alice"});
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

    #[test]
    fn trigger_and_ping_lines() {
        assert_eq!(
            trigger_line(
                "s",
                &json!({"schedule": "s", "fired": true, "task_id": 42, "created": true,
                        "replaced": []})
            ),
            "triggered schedule `s`: task 42"
        );
        assert_eq!(
            trigger_line(
                "s",
                &json!({"task_id": 43, "created": false, "replaced": [40, 41]})
            ),
            "triggered schedule `s`: task 43 (it existed already); cancelled task 40, 41"
        );
        assert_eq!(
            ping_line(
                "hb",
                true,
                &json!({"state": "failed", "deadline": "2026-01-01T01:05:00+00:00"})
            ),
            "heartbeat `hb`: fail ping recorded; state failed, next deadline 2026-01-01T01:05:00+00:00"
        );
    }

    #[test]
    fn heartbeat_rows_show_the_last_ping_and_its_status() {
        let hb = json!({
            "name": "hb", "state": "up", "last_ping": "2026-01-01T00:00:00+00:00",
            "last_status": "ok", "pings": 3, "deadline": "2026-01-01T01:05:00+00:00",
        });
        assert_eq!(
            heartbeat_row(&hb),
            [
                "hb",
                "up",
                "2026-01-01T00:00:00+00:00 (ok)",
                "2026-01-01T01:05:00+00:00",
                "3",
            ]
        );
        let new = json!({"name": "n", "state": "new", "last_ping": null, "last_status": null,
                         "pings": 0, "deadline": null});
        assert_eq!(heartbeat_row(&new), ["n", "new", "-", "-", "0"]);
    }
}
