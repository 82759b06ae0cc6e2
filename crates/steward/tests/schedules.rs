//! The scheduler through the real binary: fires, pause, resume, trigger and heartbeats on
//! SQLite; missed-run policies across a stopped daemon; and on PostgreSQL, three instances
//! whose leader is killed with SIGKILL while a schedule fires every second.

#![allow(clippy::expect_used, clippy::unwrap_used)] // helpers of tests: a failure is a failed test

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use steward_store_postgres::testing::TestDatabase;
use support::{Daemon, db_scalar, eventually, steward};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("steward.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The runs of `schedule`, newest first (up to 1,000).
fn runs(daemon: &Daemon, schedule: &str) -> Vec<Value> {
    let page = daemon.get_json(&format!("/api/v1/schedules/{schedule}/runs?limit=1000"));
    page["runs"].as_array().cloned().unwrap_or_default()
}

fn fired_slots(runs: &[Value]) -> Vec<i64> {
    let mut slots: Vec<i64> = runs
        .iter()
        .filter(|r| r["status"] == "fired" && r["trigger"] != "manual")
        .map(|r| r["slot_ms"].as_i64().unwrap())
        .collect();
    slots.sort_unstable();
    slots
}

const SQLITE_CONFIG: &str = r#"
[[workspaces]]
key = "ops"

[[queues]]
name = "jobs"
kinds = ["noop"]
concurrency = 8

[scheduler]
grace = "2s"

[[schedules]]
name = "tick"
every = "1s"
queue = "jobs"
kind = "noop"

[[schedules]]
name = "daily-report"
workspace = "ops"
description = "the 08:00 report"
cron = "0 8 * * *"
timezone = "Europe/Berlin"
queue = "jobs"
kind = "noop"
payload = { report = "daily" }

[[heartbeats]]
name = "backup"
period = "2s"
grace = "1s"
"#;

#[test]
fn schedules_fire_pause_resume_and_trigger_and_heartbeats_follow_their_pings() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), SQLITE_CONFIG);
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &[]);

    eventually(Duration::from_secs(10), "three fires of `tick`", || {
        fired_slots(&runs(&daemon, "tick")).len() >= 3
    });
    let slots = fired_slots(&runs(&daemon, "tick"));
    assert!(
        slots.windows(2).all(|w| w[1] - w[0] == 1_000),
        "one fire per second, none skipped or repeated: {slots:?}"
    );
    assert!(
        slots.iter().all(|s| s % 1_000 == 0),
        "slots are whole seconds"
    );
    eventually(Duration::from_secs(10), "fired tasks succeed", || {
        runs(&daemon, "tick")
            .iter()
            .any(|r| r["task_status"] == "succeeded")
    });

    let list = daemon.get_json("/api/v1/schedules");
    let daily = list["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "daily-report")
        .unwrap()
        .clone();
    let next = daily["next_fire"].as_str().unwrap();
    assert!(
        next.ends_with("T08:00:00+01:00") || next.ends_with("T08:00:00+02:00"),
        "08:00 Berlin time with its offset: {next}"
    );
    assert_eq!(daily["timezone"], "Europe/Berlin");
    assert_eq!(daily["task"]["payload"]["report"], "daily");

    // Paused: no slot fires; resumed: firing goes on without catching up.
    assert_eq!(daemon.post("/api/v1/schedules/tick/pause").status(), 200);
    let paused_at = now_ms();
    std::thread::sleep(Duration::from_millis(4_000));
    // Slots are fired up to two seconds ahead, their tasks due at the slot: pausing withdrew
    // those, and nothing later fired.
    let history = runs(&daemon, "tick");
    let ahead: Vec<&Value> = history
        .iter()
        .filter(|r| r["slot_ms"].as_i64().unwrap() > paused_at + 100)
        .collect();
    assert!(
        ahead
            .iter()
            .all(|r| r["slot_ms"].as_i64().unwrap() <= paused_at + 2_100
                && r["task_status"] == "cancelled"),
        "fired while paused: {ahead:?}"
    );
    assert!(daemon.get_json("/api/v1/schedules/tick")["paused"] == true);
    assert_eq!(daemon.post("/api/v1/schedules/tick/resume").status(), 200);
    let resumed_at = now_ms();
    eventually(Duration::from_secs(5), "fires after resume", || {
        fired_slots(&runs(&daemon, "tick"))
            .iter()
            .any(|s| *s > resumed_at)
    });
    let caught_up: Vec<i64> = fired_slots(&runs(&daemon, "tick"))
        .into_iter()
        .filter(|s| *s > paused_at + 2_100 && *s < resumed_at - 1_000)
        .collect();
    assert!(
        caught_up.is_empty(),
        "the paused time was caught up: {caught_up:?}"
    );

    // A manual trigger fires now and is recorded as such.
    let response = daemon.post("/api/v1/schedules/daily-report/trigger");
    assert_eq!(response.status(), 201);
    let answer: Value = response.json().unwrap();
    let task_id = answer["task_id"].as_i64().unwrap();
    let history = runs(&daemon, "daily-report");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["trigger"], "manual");
    assert_eq!(history[0]["task_id"], task_id);
    let task = daemon.get_json(&format!("/api/v1/tasks/{task_id}"));
    assert_eq!(task["task"]["origin"]["schedule"], "daily-report", "{task}");
    assert_eq!(
        daemon.post("/api/v1/schedules/nobody/trigger").status(),
        404
    );
    // Nobody can take a slot's place by enqueueing under its idempotency key.
    let next_slot = (now_ms() / 1_000 + 5) * 1_000;
    let forged = daemon.send(
        reqwest::Method::POST,
        "/api/v1/tasks",
        Some(serde_json::json!({
            "queue": "jobs",
            "kind": "noop",
            "idempotency_key": format!("schedule:tick:{next_slot}"),
        })),
    );
    assert_eq!(forged.status(), 400, "a scheduler key is refused");

    // Heartbeats: up on a ping, late when pings stop, failed on a failure ping.
    let heartbeat = || {
        daemon.get_json("/api/v1/heartbeats")["heartbeats"][0]["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let ping: Value = daemon.post("/api/v1/heartbeats/backup").json().unwrap();
    assert_eq!(ping["state"], "up", "{ping}");
    eventually(Duration::from_secs(8), "the heartbeat late", || {
        heartbeat() == "late"
    });
    let failed: Value = daemon
        .post("/api/v1/heartbeats/backup/fail")
        .json()
        .unwrap();
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["last_status"], "fail");
    assert_eq!(daemon.post("/api/v1/heartbeats/nobody").status(), 404);

    let audit = daemon.get_json("/api/v1/audit?limit=1000");
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "schedule.pause",
        "schedule.resume",
        "schedule.trigger",
        "heartbeat.state",
    ] {
        assert!(actions.contains(&action), "{action} audited: {actions:?}");
    }
}

const MISSED_CONFIG: &str = r#"
[[queues]]
name = "jobs"
kinds = ["noop"]

[scheduler]
grace = "1s"

[[schedules]]
name = "skip"
every = "1s"
missed = "skip"
queue = "jobs"
kind = "noop"

[[schedules]]
name = "once"
every = "1s"
missed = "once"
queue = "jobs"
kind = "noop"

[[schedules]]
name = "all"
every = "1s"
missed = "all"
missed_limit = 1000
queue = "jobs"
kind = "noop"
"#;

/// Slots that passed while the daemon was stopped follow each schedule's missed-run policy.
/// (The outage is scaled down from minutes to seconds: the policies count slots, not time.)
/// A daemon killed with SIGKILL leaves its leases recorded; on SQLite its successor holds the
/// data-directory lock, so it takes them at once instead of waiting them out (10 s).
#[test]
fn a_restart_after_sigkill_fires_again_at_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), SQLITE_CONFIG);
    let mut first = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    let key = first.key.clone().unwrap();
    eventually(Duration::from_secs(10), "two fires of `tick`", || {
        fired_slots(&runs(&first, "tick")).len() >= 2
    });
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));
    // The killed leader fired at most two seconds ahead: a later slot was fired after it.
    let killed_at = now_ms();
    let mut second = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    second.use_key(&key);
    let restarted = Instant::now();
    eventually(
        Duration::from_secs(3),
        "a fire by the restarted daemon within 3 s",
        || {
            fired_slots(&runs(&second, "tick"))
                .iter()
                .any(|slot| *slot > killed_at + 2_000)
        },
    );
    eprintln!("fired again {:?} after the restart", restarted.elapsed());
}

#[test]
fn missed_runs_after_downtime_follow_each_policy() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), MISSED_CONFIG);
    let mut first = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    let key = first.key.clone().unwrap();
    eventually(Duration::from_secs(10), "every schedule fired", || {
        ["skip", "once", "all"]
            .iter()
            .all(|s| !fired_slots(&runs(&first, s)).is_empty())
    });
    first.signal("TERM");
    first.wait_exit(Duration::from_secs(15));
    let stopped_at = now_ms();
    std::thread::sleep(Duration::from_secs(10));
    let mut second = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    second.use_key(&key);
    let restarted_at = now_ms();
    eventually(Duration::from_secs(10), "fires after the restart", || {
        ["skip", "once", "all"].iter().all(|s| {
            fired_slots(&runs(&second, s))
                .iter()
                .any(|slot| *slot > restarted_at)
        })
    });
    let outage = |slots: &[i64]| -> Vec<i64> {
        slots
            .iter()
            .copied()
            // Fires up to two seconds ahead were written before the stop.
            .filter(|s| *s > stopped_at + 3_000 && *s < restarted_at - 2_000)
            .collect()
    };
    let missed = |runs: &[Value]| runs.iter().filter(|r| r["status"] == "missed").count();

    let all = runs(&second, "all");
    let slots = fired_slots(&all);
    assert!(
        slots.windows(2).all(|w| w[1] - w[0] == 1_000),
        "`all` fires every slot of the outage: {slots:?}"
    );
    assert!(outage(&slots).len() >= 3, "{slots:?}");
    assert_eq!(missed(&all), 0);

    let once = runs(&second, "once");
    let catch_ups = once.iter().filter(|r| r["trigger"] == "catch_up").count();
    assert_eq!(catch_ups, 1, "`once` fires one missed slot: {once:?}");
    assert_eq!(missed(&once), 1, "the rest is recorded as missed");

    let skip = runs(&second, "skip");
    assert!(
        outage(&fired_slots(&skip)).is_empty(),
        "`skip` fires nothing missed: {skip:?}"
    );
    assert_eq!(
        skip.iter().filter(|r| r["trigger"] == "catch_up").count(),
        0
    );
    assert_eq!(missed(&skip), 1, "the skipped slots are recorded once");
}

/// The leader's pid, read from the lease row.
fn leader_pid(db: &TestDatabase) -> i64 {
    db_scalar(
        db,
        "SELECT split_part(holder, ':', 2)::bigint FROM leases WHERE role = 'scheduler'",
    )
}

fn postgres_daemon(dir: &Path, config: &Path, db: &TestDatabase, key: Option<&str>) -> Daemon {
    let mut daemon = Daemon::start_on_postgres(dir, config, db);
    if let Some(key) = key {
        daemon.use_key(key);
    }
    daemon
}

const FAILOVER_CONFIG: &str = r#"
[[queues]]
name = "jobs"
kinds = ["noop"]
concurrency = 16

[scheduler]
lease = "3s"
grace = "1s"

[[schedules]]
name = "tick"
every = "1s"
missed = "all"
missed_limit = 1000
queue = "jobs"
kind = "noop"
"#;

/// Three instances on one PostgreSQL, a schedule firing every second, the leader killed with
/// SIGKILL twice in two minutes: every slot of those two minutes has exactly one task.
#[test]
fn three_instances_fire_each_slot_once_while_leaders_are_killed() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), FAILOVER_CONFIG);
    let first = postgres_daemon(dir.path(), &config, &db, None);
    let key = first.key.clone().unwrap();
    let mut daemons = vec![first];
    for _ in 0..2 {
        daemons.push(postgres_daemon(dir.path(), &config, &db, Some(&key)));
    }
    eventually(Duration::from_secs(15), "a leader firing", || {
        db_scalar(
            &db,
            "SELECT count(*) FROM schedule_runs WHERE schedule = 'tick'",
        ) > 0
    });
    let started = Instant::now();
    let window_start = now_ms();
    for kill_at in [Duration::from_secs(30), Duration::from_secs(75)] {
        std::thread::sleep(kill_at.saturating_sub(started.elapsed()));
        let pid = leader_pid(&db);
        let index = daemons
            .iter()
            .position(|d| i64::from(d.pid()) == pid)
            .unwrap_or_else(|| panic!("the leader (pid {pid}) is one of ours"));
        let mut leader = daemons.remove(index);
        leader.signal("KILL");
        leader.wait_exit(Duration::from_secs(5));
        eventually(Duration::from_secs(15), "another instance leading", || {
            let now = leader_pid(&db);
            now != pid && daemons.iter().any(|d| i64::from(d.pid()) == now)
        });
        daemons.push(postgres_daemon(dir.path(), &config, &db, Some(&key)));
    }
    std::thread::sleep(Duration::from_secs(120).saturating_sub(started.elapsed()));
    let window_end = now_ms();
    // Every slot of the window fired, once; let the last ones land first.
    let first_slot = (window_start / 1_000 + 1) * 1_000;
    let last_slot = (window_end / 1_000 - 1) * 1_000;
    eventually(
        Duration::from_secs(20),
        "the window's last slot fired",
        || {
            db_scalar(
                &db,
                &format!(
                    "SELECT count(*) FROM schedule_runs WHERE schedule = 'tick' AND slot_ms = {last_slot}"
                ),
            ) == 1
        },
    );
    let expected = (last_slot - first_slot) / 1_000 + 1;
    let fired = db_scalar(
        &db,
        &format!(
            "SELECT count(*) FROM schedule_runs WHERE schedule = 'tick' AND status = 'fired' \
             AND slot_ms BETWEEN {first_slot} AND {last_slot}"
        ),
    );
    let distinct = db_scalar(
        &db,
        &format!(
            "SELECT count(DISTINCT slot_ms) FROM schedule_runs WHERE schedule = 'tick' \
             AND status = 'fired' AND slot_ms BETWEEN {first_slot} AND {last_slot}"
        ),
    );
    assert_eq!(fired, expected, "each of the {expected} slots fired");
    assert_eq!(distinct, expected, "no slot fired twice");
    let tasks = db_scalar(
        &db,
        &format!(
            "SELECT count(*) FROM tasks WHERE schedule = 'tick' AND idempotency_key IN \
             (SELECT 'schedule:tick:' || s FROM generate_series({first_slot}::bigint, \
             {last_slot}::bigint, 1000) AS s)"
        ),
    );
    assert_eq!(tasks, expected, "one task per slot");
    let missed = db_scalar(
        &db,
        "SELECT count(*) FROM schedule_runs WHERE schedule = 'tick' AND status = 'missed'",
    );
    assert_eq!(missed, 0, "`missed = \"all\"` dropped nothing");
    let leaders = db_scalar(&db, "SELECT fence FROM leases WHERE role = 'scheduler'");
    assert!(
        leaders >= 3,
        "the lease changed hands at least twice (fence {leaders})"
    );
    drop(daemons);
}

#[test]
fn bad_schedules_are_config_errors_that_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[queues]]\nname = \"jobs\"\nkinds = [\"noop\"]\n\n[[schedules]]\nname = \"bad\"\ncron = \"0 25 * * *\"\nqueue = \"jobs\"\nkind = \"noop\"\n",
    );
    let out = steward()
        .args(["check", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("field hour"), "{text}");
    assert!(text.contains(":7:"), "the error names the line: {text}");
}

#[test]
fn the_clisonix_example_is_valid_and_its_report_follows_berlin_time() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/clisonix/steward.toml");
    let out = steward()
        .args(["check", "--config", config.to_str().unwrap()])
        .env(
            "CLISONIX_SLACK_WEBHOOK",
            "https://hooks.slack.com/services/T0/B0/X",
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Across the spring-forward night the 08:00 report keeps Berlin's wall clock.
    let out = steward()
        .args([
            "schedule",
            "next",
            "0 8 * * *",
            "--tz",
            "Europe/Berlin",
            "--from",
            "2026-03-27T12:00:00Z",
            "--count",
            "3",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .collect::<Vec<_>>(),
        [
            "2026-03-28T08:00:00+01:00",
            "2026-03-29T08:00:00+02:00",
            "2026-03-30T08:00:00+02:00"
        ]
    );
    // A time inside the gap fires once, at the first instant after it.
    let out = steward()
        .args([
            "schedule",
            "next",
            "30 2 * * *",
            "--tz",
            "Europe/Berlin",
            "--from",
            "2026-03-28T12:00:00Z",
            "--count",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "2026-03-29T03:00:00+02:00"
    );
    let out = steward()
        .args(["schedule", "next", "0 8 * * 8"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("day of week"),
        "the error names the field: {out:?}"
    );
}

/// Retention is a built-in scheduled task: `steward-retention` runs the `prune` built-in on
/// Steward's own queue, deleting finished tasks past their queue's retention.
#[test]
fn retention_runs_as_a_built_in_scheduled_task() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[queues]]\nname = \"jobs\"\nkinds = [\"noop\"]\nretention = \"1s\"\n",
    );
    let daemon = Daemon::start_on_sqlite(dir.path(), &config, &[]);
    let created = daemon.send(
        reqwest::Method::POST,
        "/api/v1/tasks",
        Some(serde_json::json!({ "queue": "jobs", "kind": "noop" })),
    );
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().unwrap()["task"]["id"]
        .as_i64()
        .unwrap();
    eventually(Duration::from_secs(10), "the task succeeded", || {
        daemon.get_json(&format!("/api/v1/tasks/{id}"))["task"]["status"] == "succeeded"
    });
    let schedules = daemon.get_json("/api/v1/schedules");
    let retention = schedules["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "steward-retention")
        .expect("the built-in retention schedule is listed")
        .clone();
    assert_eq!(retention["task"]["queue"], "steward");
    assert_eq!(retention["task"]["kind"], "prune");
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(
        daemon
            .post("/api/v1/schedules/steward-retention/trigger")
            .status(),
        201
    );
    eventually(Duration::from_secs(10), "the finished task pruned", || {
        daemon.get(&format!("/api/v1/tasks/{id}")).status() == 404
    });
    eventually(Duration::from_secs(10), "the prune run recorded", || {
        runs(&daemon, "steward-retention")
            .iter()
            .any(|r| r["trigger"] == "manual" && r["task_status"] == "succeeded")
    });
    // The names are Steward's own.
    let reserved = write_config(
        dir.path(),
        "[[queues]]\nname = \"steward\"\nkinds = [\"noop\"]\n\n[[executors]]\nname = \"prune\"\ntype = \"shell\"\ncommand = \"true\"\n",
    );
    let out = steward()
        .args(["check", "--config", reserved.to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("`steward` is Steward's own queue"), "{text}");
    assert!(text.contains("`prune` is a built-in kind"), "{text}");
}
