//! The dashboard's queue, task and schedule pages over HTTP, against the real binary: counts
//! per queue, the task list's filters and pages, a task's payload, cancel and retry through
//! the forms, schedules' next fires in both zones, triggers, pauses and overdue runs, and a
//! viewer who is offered no button and refused a forged one.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::{Value, json};
use support::browser::{Browser, hidden, location};
use support::{Daemon, eventually};

const CONFIG: &str = r#"
[[workspaces]]
key = "ops"

[[workspaces]]
key = "lab"

[[queues]]
name = "jobs"
kinds = ["noop", "sleep"]
concurrency = 2
rate_limit = 50
max_attempts = 4

[[queues]]
name = "bulk"
kinds = ["noop"]

[[queues]]
name = "cron"
kinds = ["noop", "sleep"]

[[schedules]]
name = "daily-report"
description = "the 08:00 report"
cron = "0 8 * * *"
timezone = "Europe/Berlin"
queue = "cron"
kind = "noop"
payload = { report = "daily" }

[[schedules]]
name = "slow-export"
cron = "0 3 1 1 *"
queue = "cron"
kind = "sleep"
payload = { ms = 60000 }
expect_success_within = "1s"

[[heartbeats]]
name = "backup"
description = "the nightly backup"
period = "1s"
grace = "1s"
"#;

fn start(dir: &Path) -> Daemon {
    let config = dir.join("steward.toml");
    std::fs::write(&config, CONFIG).unwrap();
    Daemon::start_on_sqlite(dir, &config, &[])
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Enqueues one task through the API and answers its id.
fn enqueue(daemon: &Daemon, body: Value) -> i64 {
    let response = daemon.send(Method::POST, "/api/v1/tasks", Some(body));
    assert_eq!(response.status(), 201);
    response.json::<Value>().unwrap()["task"]["id"]
        .as_i64()
        .unwrap()
}

fn task_status(daemon: &Daemon, id: i64) -> String {
    daemon.get_json(&format!("/api/v1/tasks/{id}"))["task"]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The link to task `id` as the pages write it.
fn task_link(id: i64) -> String {
    format!("href=\"/tasks/{id}\"")
}

/// The `href` of the link marked `rel="next"`, unescaped.
fn next_link(html: &str) -> Option<String> {
    let at = html.find("rel=\"next\"")?;
    let start = html[..at].rfind("href=\"")? + "href=\"".len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&"))
}

fn signed_in(daemon: &Daemon, key: &str) -> Browser {
    let mut browser = Browser::new(&daemon.url);
    assert_eq!(browser.sign_in(key).status(), 303);
    browser
}

#[test]
fn queues_list_their_counts_and_tasks_are_filtered_shown_cancelled_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let mut browser = signed_in(&daemon, daemon.key.as_deref().unwrap());

    let done = enqueue(&daemon, json!({"queue": "jobs", "kind": "noop"}));
    let later = enqueue(
        &daemon,
        json!({
            "queue": "jobs",
            "kind": "noop",
            "run_at_ms": now_ms() + 3_600_000,
            "payload": {"marker": "far-future-payload", "n": 7},
        }),
    );
    eventually(Duration::from_secs(10), "the noop task succeeds", || {
        task_status(&daemon, done) == "succeeded"
    });

    let queues = browser.page("/queues");
    assert!(queues.contains("data-queue=\"jobs\""), "{queues}");
    assert!(queues.contains("href=\"/tasks?queue=jobs\""));
    for count in ["1 queued in jobs", "1 succeeded in jobs", "0 dead in jobs"] {
        assert!(
            queues.contains(&format!("aria-label=\"{count}\"")),
            "{count}"
        );
    }
    assert!(queues.contains("50/s per instance"), "the rate limit shows");
    // One task finished within the last five minutes: its throughput shows.
    assert!(queues.contains(">0.2&#x2f;min<"), "{queues}");
    let api = daemon.get_json("/api/v1/queues");
    let jobs = api["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "jobs")
        .unwrap();
    assert_eq!(jobs["finished_recently"], json!({"succeeded": 1}), "{jobs}");
    assert!(
        jobs["oldest_waiting_since_ms"].is_null(),
        "the queued task is not due: {jobs}"
    );

    // The list filters by status through the API's own query.
    let queued = browser.page("/tasks?queue=jobs&status=queued&kind=&outcome=");
    assert!(queued.contains(&task_link(later)), "{queued}");
    assert!(!queued.contains(&task_link(done)), "{queued}");
    assert!(queued.contains("<option selected>queued</option>"));
    let succeeded = browser.page("/tasks?status=succeeded");
    assert!(succeeded.contains(&task_link(done)));
    assert!(!succeeded.contains(&task_link(later)));
    let both = browser.page("/tasks?queue=jobs");
    assert!(both.contains(&task_link(done)) && both.contains(&task_link(later)));
    assert_eq!(
        browser.get("/tasks?status=bogus").status(),
        400,
        "the API's refusal"
    );

    // A task's page shows its payload; the buttons follow its status.
    let page = browser.page(&format!("/tasks/{later}"));
    assert!(
        page.contains("&quot;marker&quot;: &quot;far-future-payload&quot;"),
        "{page}"
    );
    assert!(page.contains("Cancel task") && !page.contains("Retry task"));
    let done_page = browser.page(&format!("/tasks/{done}"));
    assert!(!done_page.contains("Cancel task") && !done_page.contains("Retry task"));
    assert_eq!(browser.get("/tasks/999999").status(), 404);
    assert_eq!(browser.get("/tasks/nope").status(), 404);

    // Cancelling through the form needs the session's token, then lands back on the task.
    let path = format!("/tasks/{later}/cancel");
    assert_eq!(browser.post(&path, &[("csrf", "nope")]).status(), 403);
    assert_eq!(task_status(&daemon, later), "queued");
    let csrf = hidden(&page, "csrf");
    let cancelled = browser.post(&path, &[("csrf", &csrf)]);
    assert_eq!(cancelled.status(), 303);
    assert_eq!(location(&cancelled), format!("/tasks/{later}"));
    assert_eq!(task_status(&daemon, later), "cancelled");
    let page = browser.page(&format!("/tasks/{later}"));
    assert!(page.contains("data-task-status=\"cancelled\""), "{page}");
    assert!(page.contains("Retry task") && !page.contains("Cancel task"));

    // Retrying queues it again.
    let retried = browser.post(&format!("/tasks/{later}/retry"), &[("csrf", &csrf)]);
    assert_eq!(retried.status(), 303);
    assert_ne!(task_status(&daemon, later), "cancelled");

    let audit = daemon.get_json("/api/v1/audit?limit=1000");
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"task.cancel") && actions.contains(&"task.retry"));
}

#[test]
fn the_task_list_pages_on_with_its_filters() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let mut browser = signed_in(&daemon, daemon.key.as_deref().unwrap());
    let later = now_ms() + 3_600_000;
    let tasks: Vec<Value> = (0..60)
        .map(|n| json!({"queue": "bulk", "kind": "noop", "run_at_ms": later, "payload": {"n": n}}))
        .collect();
    let response = daemon.send(
        Method::POST,
        "/api/v1/tasks",
        Some(json!({ "tasks": tasks })),
    );
    assert_eq!(response.status(), 201);
    let ids: Vec<i64> = response.json::<Value>().unwrap()["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();

    let first = browser.page("/tasks?queue=bulk&status=queued");
    assert!(first.contains(&task_link(ids[0])) && first.contains(&task_link(ids[49])));
    assert!(!first.contains(&task_link(ids[50])));
    let next = next_link(&first).expect("a next page");
    assert!(
        next.starts_with("/tasks?queue=bulk&status=queued&after="),
        "{next}"
    );
    let second = browser.page(&next);
    assert!(second.contains(&task_link(ids[50])) && second.contains(&task_link(ids[59])));
    assert!(!second.contains(&task_link(ids[49])));
    assert!(next_link(&second).is_none(), "the last page");
    assert!(
        second.contains("href=\"/tasks?queue=bulk&amp;status=queued\""),
        "first page"
    );
}

#[test]
fn schedules_show_their_next_fire_in_both_zones_and_fire_pause_and_resume_through_forms() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let mut browser = signed_in(&daemon, daemon.key.as_deref().unwrap());

    let schedule = daemon.get_json("/api/v1/schedules/daily-report");
    let next = schedule["next_fire"].as_str().unwrap().to_owned();
    assert!(next.contains("T08:00:00+0"), "{next}");
    let list = browser.page("/schedules");
    assert!(
        list.contains(&format!("<time datetime=\"{next}\">")),
        "in the viewer's zone: {list}"
    );
    assert!(list.contains(&format!("<span data-next-fire>{next}</span>")));
    // The zone's name, HTML-escaped as every value is (`/` included).
    assert!(list.contains("Europe&#x2f;Berlin") && list.contains("the 08:00 report"));
    assert!(list.contains("data-heartbeat=\"backup\""));
    eventually(Duration::from_secs(10), "the silent heartbeat late", || {
        let list = browser.page("/schedules");
        list.contains("state-late\"><span aria-hidden=\"true\">◆</span> late")
    });

    // Firing through the form records a manual run linked to its task.
    let page = browser.page("/schedules/daily-report");
    assert!(page.contains("No run recorded yet") && page.contains("Fire now"));
    let csrf = hidden(&page, "csrf");
    let fired = browser.post("/schedules/daily-report/trigger", &[("csrf", &csrf)]);
    assert_eq!(fired.status(), 303);
    assert_eq!(location(&fired), "/schedules/daily-report");
    let runs = daemon.get_json("/api/v1/schedules/daily-report/runs");
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["trigger"], "manual");
    let task = runs[0]["task_id"].as_i64().unwrap();
    let page = browser.page("/schedules/daily-report");
    assert!(page.contains(&task_link(task)), "{page}");
    assert!(page.contains("<td>manual</td>"));
    let list = browser.page("/schedules");
    assert!(list.contains(&task_link(task)), "the last run on the list");

    // Paused, it has no next fire and offers to resume; resumed, the next fire is back.
    let paused = browser.post("/schedules/daily-report/pause", &[("csrf", &csrf)]);
    assert_eq!(paused.status(), 303);
    let page = browser.page("/schedules/daily-report");
    assert!(page.contains("data-paused") && page.contains("none: paused"));
    assert!(page.contains(">Resume</button>") && !page.contains(">Pause</button>"));
    assert!(browser.page("/schedules").contains("</span> paused</span>"));
    let resumed = browser.post("/schedules/daily-report/resume", &[("csrf", &csrf)]);
    assert_eq!(resumed.status(), 303);
    let page = browser.page("/schedules/daily-report");
    assert!(page.contains(&format!("<span data-next-fire>{next}</span>")));
    assert_eq!(browser.get("/schedules/nobody").status(), 404);

    // A fire whose task does not succeed in time is marked overdue.
    let fired = browser.post("/schedules/slow-export/trigger", &[("csrf", &csrf)]);
    assert_eq!(fired.status(), 303);
    eventually(Duration::from_secs(10), "the slow fire overdue", || {
        browser
            .page("/schedules/slow-export")
            .contains("state-overdue\"><span aria-hidden=\"true\">▲</span> overdue")
    });
    // Its running task is offered a cancel, which asks its worker to stop it.
    let slow = daemon.get_json("/api/v1/schedules/slow-export/runs")["runs"][0]["task_id"]
        .as_i64()
        .unwrap();
    eventually(Duration::from_secs(10), "the slow task running", || {
        task_status(&daemon, slow) == "running"
    });
    assert!(
        browser
            .page(&format!("/tasks/{slow}"))
            .contains("Cancel task")
    );
    let cancel = browser.post(&format!("/tasks/{slow}/cancel"), &[("csrf", &csrf)]);
    assert_eq!(cancel.status(), 303);
    let task = daemon.get_json(&format!("/api/v1/tasks/{slow}"))["task"].clone();
    assert!(
        task["cancel_requested"] == true || task["status"] == "cancelled",
        "{task}"
    );
    let page = browser.page(&format!("/tasks/{slow}"));
    assert!(!page.contains("Cancel task"), "asked once only: {page}");
}

#[test]
fn a_viewer_is_offered_no_button_and_a_forged_form_is_refused_by_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let viewer = daemon.create_key("watcher", "viewer", None);
    let later = enqueue(
        &daemon,
        json!({"queue": "jobs", "kind": "noop", "run_at_ms": now_ms() + 3_600_000}),
    );
    let mut browser = signed_in(&daemon, &viewer);

    assert!(browser.page("/queues").contains("data-queue=\"jobs\""));
    let page = browser.page(&format!("/tasks/{later}"));
    assert!(!page.contains("Cancel task"), "{page}");
    let csrf = hidden(&page, "csrf");
    let forged = browser.post(&format!("/tasks/{later}/cancel"), &[("csrf", &csrf)]);
    assert_eq!(forged.status(), 403);
    assert_eq!(task_status(&daemon, later), "queued");

    let page = browser.page("/schedules/daily-report");
    for button in ["Fire now", ">Pause<", ">Resume<"] {
        assert!(!page.contains(button), "{button} offered to a viewer");
    }
    for action in ["pause", "trigger"] {
        let forged = browser.post(
            &format!("/schedules/daily-report/{action}"),
            &[("csrf", &csrf)],
        );
        assert_eq!(forged.status(), 403, "{action}");
    }
    let schedule = daemon.get_json("/api/v1/schedules/daily-report");
    assert_eq!(schedule["paused"], false);
    assert!(schedule["last_run"].is_null());
}

#[test]
fn a_scoped_key_sees_its_workspace_tasks_only_and_no_queue_totals() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let scoped = daemon.create_key("ops-operator", "operator", Some("ops"));
    let in_the_future = now_ms() + 3_600_000;
    let ours = enqueue(
        &daemon,
        json!({"queue": "jobs", "kind": "noop", "run_at_ms": in_the_future, "workspace": "ops"}),
    );
    let theirs = enqueue(
        &daemon,
        json!({"queue": "jobs", "kind": "noop", "run_at_ms": in_the_future, "workspace": "lab"}),
    );
    let mut browser = signed_in(&daemon, &scoped);

    // Queue totals span workspaces: the API refuses them, and the page says where to look.
    let queues = browser.page("/queues");
    assert!(!queues.contains("data-queue="), "{queues}");
    assert!(queues.contains("href=\"/tasks\""));
    let tasks = browser.page("/tasks?queue=jobs");
    assert!(tasks.contains(&task_link(ours)), "{tasks}");
    assert!(!tasks.contains(&task_link(theirs)), "{tasks}");
    assert!(
        tasks.contains("id=\"f-queue\" name=\"queue\" value=\"jobs\""),
        "a text field"
    );
    assert_eq!(browser.get(&format!("/tasks/{theirs}")).status(), 404);

    // Its own task it may cancel; another workspace's it cannot reach.
    let page = browser.page(&format!("/tasks/{ours}"));
    assert!(page.contains("Cancel task"));
    let csrf = hidden(&page, "csrf");
    let forged = browser.post(&format!("/tasks/{theirs}/cancel"), &[("csrf", &csrf)]);
    assert_eq!(forged.status(), 404);
    assert_eq!(task_status(&daemon, theirs), "queued");
    let cancelled = browser.post(&format!("/tasks/{ours}/cancel"), &[("csrf", &csrf)]);
    assert_eq!(cancelled.status(), 303);
    assert_eq!(task_status(&daemon, ours), "cancelled");
}
