//! Scheduler stories: leases, fires, overlap policies, pause and resume, missed slots, the
//! dead-man's switch and heartbeats.

use std::sync::Arc;

use steward_core::schedule::{HeartbeatState, MissedSlots, OverlapPolicy, PingStatus};
use steward_core::task::{NewTask, TaskOrigin, TaskStatus};

use super::tasks::{claim, claim_only, complete, completion, get_task, succeeded};
use super::{LONG_LEASE_MS, actor, audited};
use crate::schedules::SCHEDULER_ROLE;
use crate::{
    Fire, FireOutcome, FireTrigger, HeartbeatTransition, Lease, RunQuery, RunStatus, ScheduleRun,
    ScheduleTick, SkipReason, Store, StoreError, TickResult,
};

/// Each schedule's tasks go to a queue of their own, so a claim takes only that schedule's.
fn queue_of(schedule: &str) -> String {
    format!("sched-{schedule}")
}

fn fire(schedule: &str, slot_ms: i64, trigger: FireTrigger) -> Fire {
    let key = match trigger {
        FireTrigger::Manual => format!("schedule:{schedule}:{slot_ms}:manual"),
        _ => format!("schedule:{schedule}:{slot_ms}"),
    };
    Fire {
        slot_ms,
        trigger,
        task: NewTask {
            timeout_ms: None,
            queue: queue_of(schedule),
            kind: "noop".into(),
            payload: "{}".into(),
            priority: 0,
            run_at_ms: crate::now_ms(),
            max_attempts: 3,
            idempotency_key: Some(key),
            origin: TaskOrigin {
                schedule: Some(schedule.into()),
                ..TaskOrigin::default()
            },
            node: None,
        },
    }
}

fn tick(schedule: &str, overlap: OverlapPolicy, slots: &[i64]) -> ScheduleTick {
    ScheduleTick {
        schedule: schedule.into(),
        overlap,
        fires: slots
            .iter()
            .map(|&s| fire(schedule, s, FireTrigger::Slot))
            .collect(),
        missed: None,
        cursor_ms: slots.iter().copied().max().unwrap_or(i64::MIN),
    }
}

async fn lead(store: &Arc<dyn Store>, holder: &str) -> Lease {
    store
        .acquire_lease(SCHEDULER_ROLE, holder, LONG_LEASE_MS)
        .await
        .expect("acquire")
        .unwrap_or_else(|| panic!("{holder} takes the free lease"))
}

async fn fire_ticks(
    store: &Arc<dyn Store>,
    lease: Option<&Lease>,
    ticks: &[ScheduleTick],
) -> Vec<TickResult> {
    let results = store
        .fire_schedules(lease, ticks, &actor())
        .await
        .expect("fire");
    assert_eq!(results.len(), ticks.len(), "one result per tick");
    results
}

fn fired_task(outcome: &FireOutcome) -> i64 {
    match outcome {
        FireOutcome::Fired { task_id, .. } => *task_id,
        other => panic!("expected a fire, got {other:?}"),
    }
}

async fn runs_of(store: &Arc<dyn Store>, schedule: &str) -> Vec<ScheduleRun> {
    store
        .schedule_runs(&RunQuery {
            schedule: Some(schedule.into()),
            before_id: None,
            limit: 100,
        })
        .await
        .expect("runs")
}

/// One holder at a time; renewal keeps the fence, a takeover raises it; an expired lease can
/// be taken; a released one at once.
pub async fn leases_have_one_holder_and_fence_takeovers(store: &Arc<dyn Store>) {
    let a = lead(store, "a").await;
    assert_eq!((a.holder.as_str(), a.fence), ("a", 1));
    assert!(
        store
            .acquire_lease(SCHEDULER_ROLE, "b", LONG_LEASE_MS)
            .await
            .expect("acquire")
            .is_none(),
        "b cannot take a's unexpired lease"
    );
    let renewed = lead(store, "a").await;
    assert_eq!(renewed.fence, 1, "renewal keeps the fence");
    assert!(renewed.expires_at_ms >= a.expires_at_ms);
    store
        .release_lease(SCHEDULER_ROLE, "b")
        .await
        .expect("release by a non-holder");
    assert_eq!(
        store
            .current_lease(SCHEDULER_ROLE)
            .await
            .expect("lease")
            .map(|l| l.holder),
        Some("a".into()),
        "only the holder can release"
    );
    store
        .release_lease(SCHEDULER_ROLE, "a")
        .await
        .expect("release");
    let b = lead(store, "b").await;
    assert_eq!(b.fence, 2, "a takeover raises the fence");
    // A short lease lapses on its own.
    let short = store
        .acquire_lease(SCHEDULER_ROLE, "b", 200)
        .await
        .expect("renew")
        .expect("b renews");
    assert_eq!(short.fence, 2);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let c = lead(store, "c").await;
    assert_eq!(c.fence, 3, "an expired lease is taken over");
}

/// A slot fires once: its task is enqueued with the slot's key and the schedule as origin, a
/// repeat of the tick (by this or another leader) changes nothing, and a deposed leader's
/// batch is refused whole.
pub async fn slots_fire_once_and_deposed_leaders_cannot_fire(store: &Arc<dyn Store>) {
    let now = crate::now_ms();
    let states = store
        .register_schedules(&["nightly".into()], now - 10_000)
        .await
        .expect("register");
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].cursor_ms, now - 10_000);
    assert!(!states[0].paused);
    let again = store
        .register_schedules(&["nightly".into()], now)
        .await
        .expect("register again");
    assert_eq!(
        again[0].cursor_ms,
        now - 10_000,
        "registering keeps the cursor"
    );

    let a = lead(store, "a").await;
    let slot = now - 5_000;
    let results = fire_ticks(
        store,
        Some(&a),
        &[tick("nightly", OverlapPolicy::Allow, &[slot])],
    )
    .await;
    let task_id = fired_task(&results[0].outcomes[0]);
    let task = get_task(store, task_id).await;
    assert_eq!(task.status, TaskStatus::Queued);
    assert_eq!(task.origin.schedule.as_deref(), Some("nightly"));
    assert_eq!(
        task.idempotency_key.as_deref(),
        Some(format!("schedule:nightly:{slot}").as_str())
    );
    let repeat = fire_ticks(
        store,
        Some(&a),
        &[tick("nightly", OverlapPolicy::Allow, &[slot])],
    )
    .await;
    assert_eq!(
        repeat[0].outcomes,
        [FireOutcome::Skipped(SkipReason::AlreadyHandled)],
        "a handled slot does not fire again"
    );
    let states = store.schedule_states().await.expect("states");
    assert_eq!(states[0].cursor_ms, slot, "the cursor moved to the slot");

    let runs = runs_of(store, "nightly").await;
    assert_eq!(runs.len(), 1, "one run per slot: {runs:?}");
    assert_eq!(runs[0].status, RunStatus::Fired);
    assert_eq!(runs[0].trigger, FireTrigger::Slot);
    assert_eq!(runs[0].task_id, Some(task_id));
    assert_eq!(runs[0].task_status, Some(TaskStatus::Queued));

    store
        .release_lease(SCHEDULER_ROLE, "a")
        .await
        .expect("release");
    let b = lead(store, "b").await;
    let stale = store
        .fire_schedules(
            Some(&a),
            &[tick("nightly", OverlapPolicy::Allow, &[slot + 1_000])],
            &actor(),
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::LeaseLost(_))),
        "a deposed leader's batch is refused: {stale:?}"
    );
    assert_eq!(
        runs_of(store, "nightly").await.len(),
        1,
        "nothing was written"
    );
    let fresh = fire_ticks(
        store,
        Some(&b),
        &[tick("nightly", OverlapPolicy::Allow, &[slot + 1_000])],
    )
    .await;
    fired_task(&fresh[0].outcomes[0]);
}

/// `forbid` skips (and records) a slot while the previous fire's task is unfinished;
/// `replace` cancels it and fires.
pub async fn overlap_policies_act_on_unfinished_tasks(store: &Arc<dyn Store>) {
    let now = crate::now_ms();
    store
        .register_schedules(&["f".into(), "r".into()], now - 60_000)
        .await
        .expect("register");
    let lease = lead(store, "a").await;
    let first = fire_ticks(
        store,
        Some(&lease),
        &[
            tick("f", OverlapPolicy::Forbid, &[now - 50_000]),
            tick("r", OverlapPolicy::Replace, &[now - 50_000]),
        ],
    )
    .await;
    let f1 = fired_task(&first[0].outcomes[0]);
    let r1 = fired_task(&first[1].outcomes[0]);

    let second = fire_ticks(
        store,
        Some(&lease),
        &[
            tick("f", OverlapPolicy::Forbid, &[now - 40_000]),
            tick("r", OverlapPolicy::Replace, &[now - 40_000]),
        ],
    )
    .await;
    assert_eq!(
        second[0].outcomes,
        [FireOutcome::Skipped(SkipReason::Overlap { task_id: f1 })],
        "forbid skips while task {f1} is queued"
    );
    match &second[1].outcomes[0] {
        FireOutcome::Fired { replaced, .. } => {
            assert_eq!(replaced, &[r1], "replace names what it cancelled")
        }
        other => panic!("replace fires: {other:?}"),
    }
    assert_eq!(get_task(store, r1).await.status, TaskStatus::Cancelled);
    let f_runs = runs_of(store, "f").await;
    assert_eq!(f_runs[0].status, RunStatus::Skipped, "the skip is recorded");
    assert!(
        f_runs[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains(&f1.to_string())
    );

    // Once f1 finishes, the next slot fires.
    let attempt = claim_only(store, &queue_of("f"), "w", LONG_LEASE_MS, f1).await;
    assert!(complete(store, completion(&attempt, succeeded())).await);
    let third = fire_ticks(
        store,
        Some(&lease),
        &[tick("f", OverlapPolicy::Forbid, &[now - 30_000])],
    )
    .await;
    let f3 = fired_task(&third[0].outcomes[0]);
    assert_ne!(f3, f1);
    let runs = runs_of(store, "f").await;
    assert_eq!(runs.len(), 3);
    assert_eq!(
        runs[2].task_status,
        Some(TaskStatus::Succeeded),
        "runs show their task's end"
    );

    // Within one catch-up, forbid fires the first slot and replace the last.
    let catch_up = fire_ticks(
        store,
        Some(&lease),
        &[
            tick("f", OverlapPolicy::Forbid, &[now - 20_000, now - 10_000]),
            tick("r", OverlapPolicy::Replace, &[now - 20_000, now - 10_000]),
        ],
    )
    .await;
    assert!(
        matches!(
            catch_up[0].outcomes[..],
            [
                FireOutcome::Skipped(SkipReason::Overlap { .. }),
                FireOutcome::Skipped(SkipReason::Overlap { .. })
            ]
        ),
        "f3 is still queued: {:?}",
        catch_up[0].outcomes
    );
    assert!(
        matches!(
            catch_up[1].outcomes[..],
            [
                FireOutcome::Skipped(SkipReason::Superseded),
                FireOutcome::Fired { .. }
            ]
        ),
        "{:?}",
        catch_up[1].outcomes
    );
}

/// Paused schedules let their slots pass unrecorded; manual triggers fire anyway and are
/// audited; resuming does not catch up on the paused time.
pub async fn pause_resume_and_manual_triggers(store: &Arc<dyn Store>) {
    let now = crate::now_ms();
    store
        .register_schedules(&["p".into()], now - 60_000)
        .await
        .expect("register");
    let lease = lead(store, "a").await;
    let paused = store
        .set_schedule_paused("p", Some("ops"), true, now - 55_000, &actor())
        .await
        .expect("pause");
    assert!(paused.paused);
    assert_eq!(paused.changed_by.as_deref(), Some("conformance"));
    let skipped = fire_ticks(
        store,
        Some(&lease),
        &[tick("p", OverlapPolicy::Allow, &[now - 50_000])],
    )
    .await;
    assert_eq!(
        skipped[0].outcomes,
        [FireOutcome::Skipped(SkipReason::Paused)]
    );
    assert!(
        runs_of(store, "p").await.is_empty(),
        "paused slots leave no rows"
    );

    let manual = ScheduleTick {
        schedule: "p".into(),
        overlap: OverlapPolicy::Allow,
        fires: vec![fire("p", now - 45_000, FireTrigger::Manual)],
        missed: None,
        cursor_ms: i64::MIN,
    };
    let triggered = fire_ticks(store, None, &[manual]).await;
    fired_task(&triggered[0].outcomes[0]);
    let runs = runs_of(store, "p").await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].trigger, FireTrigger::Manual);
    assert_eq!(audited(store, "schedule.trigger").await.len(), 1);
    assert_eq!(audited(store, "schedule.pause").await.len(), 1);

    let resumed = store
        .set_schedule_paused("p", Some("ops"), false, now, &actor())
        .await
        .expect("resume");
    assert!(!resumed.paused);
    assert_eq!(resumed.cursor_ms, now, "resuming skips the paused time");
    assert_eq!(audited(store, "schedule.resume").await.len(), 1);
    crate::audit::verify_audit(store.as_ref())
        .await
        .expect("the audit chain verifies");
}

/// Slots dropped by a missed-run policy are recorded as one `missed` run.
pub async fn missed_slots_are_recorded(store: &Arc<dyn Store>) {
    let now = crate::now_ms();
    store
        .register_schedules(&["m".into()], now - 600_000)
        .await
        .expect("register");
    let lease = lead(store, "a").await;
    let mut t = tick("m", OverlapPolicy::Allow, &[now - 1_000]);
    t.missed = Some(MissedSlots {
        count: 299,
        first_ms: now - 300_000,
        last_ms: now - 2_000,
        count_is_lower_bound: false,
    });
    let first = fire_ticks(store, Some(&lease), std::slice::from_ref(&t)).await;
    assert!(first[0].missed_recorded);
    let retried = fire_ticks(store, Some(&lease), &[t]).await;
    assert!(
        !retried[0].missed_recorded,
        "a retried tick does not record its missed slots again"
    );
    let runs = runs_of(store, "m").await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    let missed = runs
        .iter()
        .find(|r| r.status == RunStatus::Missed)
        .expect("a missed run");
    assert_eq!(missed.slot_ms, now - 2_000);
    assert!(missed.reason.as_deref().unwrap_or("").contains("299"));
    assert_eq!(missed.task_id, None);
}

/// The dead-man's switch flags a fire whose task has not succeeded in time, once.
pub async fn overdue_fires_are_flagged_once(store: &Arc<dyn Store>) {
    let now = crate::now_ms();
    store
        .register_schedules(&["d".into()], now - 600_000)
        .await
        .expect("register");
    let lease = lead(store, "a").await;
    let fired = fire_ticks(
        store,
        Some(&lease),
        &[tick(
            "d",
            OverlapPolicy::Allow,
            &[now - 20_000, now - 10_000, now - 100],
        )],
    )
    .await;
    let ids: Vec<i64> = fired[0].outcomes.iter().map(fired_task).collect();
    // Each must succeed within 30 s of its slot. Looking 25 s from now: the first succeeded
    // in time, the second never finished, the third's 30 s are not over.
    let claimed = claim(store, &queue_of("d"), "w", 10, LONG_LEASE_MS).await;
    let first = claimed
        .iter()
        .find(|t| t.id == ids[0])
        .expect("the first fire's task is claimed");
    assert!(complete(store, completion(first, succeeded())).await);
    let later = crate::now_ms() + 25_000;
    let flagged = store
        .flag_overdue_runs("d", 30_000, later)
        .await
        .expect("flag");
    assert_eq!(
        flagged.iter().map(|r| r.task_id).collect::<Vec<_>>(),
        [Some(ids[1])],
        "only the fire that did not succeed within 30 s"
    );
    assert!(flagged[0].overdue);
    assert_eq!(flagged[0].task_status, Some(TaskStatus::Running));
    assert!(
        store
            .flag_overdue_runs("d", 30_000, later)
            .await
            .expect("flag again")
            .is_empty(),
        "a run is flagged once"
    );
    // The fire that succeeded in time stays settled once its task is purged; the third is
    // overdue once its own deadline passes.
    store
        .purge_tasks(&queue_of("d"), crate::now_ms() + 1, 100)
        .await
        .expect("purge");
    let much_later = later + 60_000;
    let flagged = store
        .flag_overdue_runs("d", 30_000, much_later)
        .await
        .expect("flag later");
    assert_eq!(
        flagged.iter().map(|r| r.task_id).collect::<Vec<_>>(),
        [Some(ids[2])],
        "a purged task's run that succeeded in time is not overdue"
    );
    assert!(
        store
            .flag_overdue_runs("d", u64::MAX, much_later)
            .await
            .expect("an absurd period is no error")
            .is_empty()
    );
}

/// Pings are recorded; a state transition is written (and audited) once however many
/// evaluators race.
pub async fn heartbeats_record_pings_and_transitions_once(store: &Arc<dyn Store>) {
    let now = crate::now_ms();
    let records = store
        .register_heartbeats(&["backup".into()], now)
        .await
        .expect("register");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, HeartbeatState::New);
    assert_eq!(records[0].last_ping, None);
    let pinged = store
        .record_ping("backup", PingStatus::Ok, now + 1)
        .await
        .expect("ping");
    assert_eq!(pinged.last_ping, Some((now + 1, PingStatus::Ok)));
    assert_eq!(pinged.pings, 1);
    let change = |from, to, seen_ping_ms| HeartbeatTransition {
        name: "backup".into(),
        workspace: Some("ops".into()),
        from,
        to,
        seen_ping_ms,
        at_ms: now + 1,
    };
    let up = change(HeartbeatState::New, HeartbeatState::Up, Some(now + 1));
    assert!(
        store
            .set_heartbeat_state(&up, &actor())
            .await
            .expect("transition")
    );
    assert!(
        !store
            .set_heartbeat_state(&up, &actor())
            .await
            .expect("repeat"),
        "a transition from a state it left is refused"
    );
    let failed = store
        .record_ping("backup", PingStatus::Fail, now + 2)
        .await
        .expect("fail ping");
    assert_eq!(failed.pings, 2);
    assert_eq!(
        failed.state,
        HeartbeatState::Up,
        "pings do not move the state by themselves"
    );
    // Decided from the first ping, a move to `late` loses to the ping that landed since.
    let stale = change(HeartbeatState::Up, HeartbeatState::Late, Some(now + 1));
    assert!(
        !store
            .set_heartbeat_state(&stale, &actor())
            .await
            .expect("stale transition"),
        "a transition decided before the latest ping is refused"
    );
    let audits = audited(store, "heartbeat.state").await;
    assert_eq!(audits.len(), 1);
    assert_eq!(audits[0].workspace.as_deref(), Some("ops"));
    let unknown = store
        .set_heartbeat_state(
            &HeartbeatTransition {
                name: "nobody".into(),
                ..up.clone()
            },
            &actor(),
        )
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
    let all = store.heartbeat_records().await.expect("records");
    assert_eq!(all.len(), 1);
}

/// Retention of schedule runs: a run goes once its task is purged; a task-less run (a skip,
/// missed slots) once it is older than the cut-off.
pub async fn schedule_runs_go_with_their_tasks(store: &Arc<dyn Store>) {
    let now = crate::now_ms();
    store
        .register_schedules(&["g".into()], now - 60_000)
        .await
        .expect("register");
    let lease = lead(store, "a").await;
    let mut t = tick("g", OverlapPolicy::Forbid, &[now - 50_000, now - 40_000]);
    t.missed = Some(MissedSlots {
        count: 1,
        first_ms: now - 55_000,
        last_ms: now - 55_000,
        count_is_lower_bound: false,
    });
    let fired = fire_ticks(store, Some(&lease), &[t]).await;
    let task = fired_task(&fired[0].outcomes[0]);
    assert_eq!(
        runs_of(store, "g").await.len(),
        3,
        "a fire, a skip, a missed run"
    );
    assert_eq!(
        store
            .purge_schedule_runs(now - 120_000, 100)
            .await
            .expect("purge"),
        0,
        "nothing is old enough and the task still exists"
    );
    let attempt = claim_only(store, &queue_of("g"), "w", LONG_LEASE_MS, task).await;
    assert!(complete(store, completion(&attempt, succeeded())).await);
    store
        .purge_tasks(&queue_of("g"), crate::now_ms() + 1, 100)
        .await
        .expect("purge tasks");
    assert_eq!(
        store
            .purge_schedule_runs(now - 120_000, 100)
            .await
            .expect("purge"),
        1,
        "the run of the purged task goes"
    );
    assert_eq!(
        store
            .purge_schedule_runs(crate::now_ms() + 1, 100)
            .await
            .expect("purge"),
        2,
        "task-less runs go once past the cut-off"
    );
    assert!(runs_of(store, "g").await.is_empty());
}

/// The latest run of each schedule is its newest, for every schedule with runs, by name;
/// schedules never run are left out.
pub async fn the_latest_run_of_each_schedule_is_found(store: &Arc<dyn Store>) {
    let now = crate::now_ms();
    let names: Vec<String> = ["latest-b", "latest-a", "latest-c"]
        .iter()
        .map(|n| (*n).to_owned())
        .collect();
    store
        .register_schedules(&names, now - 60_000)
        .await
        .expect("register");
    let lease = lead(store, "latest").await;
    for slot in [now - 50_000, now - 40_000, now - 30_000] {
        fire_ticks(
            store,
            Some(&lease),
            &[
                tick("latest-a", OverlapPolicy::Allow, &[slot]),
                tick("latest-b", OverlapPolicy::Allow, &[slot - 1]),
            ],
        )
        .await;
    }
    let latest: Vec<(String, i64)> = store
        .last_schedule_runs()
        .await
        .expect("latest runs")
        .into_iter()
        .filter(|r| r.schedule.starts_with("latest-"))
        .map(|r| (r.schedule, r.slot_ms))
        .collect();
    assert_eq!(
        latest,
        [
            ("latest-a".to_owned(), now - 30_000),
            ("latest-b".to_owned(), now - 30_001)
        ],
        "each schedule's newest run, by name; `latest-c` never ran"
    );
}
