//! Stories of the task queue: enqueue, claims, fenced completions, retries, reaping,
//! cancellation, counts, purge, due times and wake-ups.

use std::sync::Arc;

use serde_json::json;
use steward_core::task::{Completion, NewTask, Task, TaskOrigin, TaskRun, TaskStatus, Verdict};

use super::{CLOCK_SLACK_MS, LONG_LEASE_MS, actor, audited, new_task};
use crate::audit::verify_audit;
use crate::tasks::{MAX_TASK_PAGE, TaskCount};
use crate::{Claim, Enqueued, LeaseState, Reaped, Store, StoreError, TaskQuery};

/// Enqueues `tasks` in one call, expecting each to be created; returns their ids.
async fn enqueue(store: &Arc<dyn Store>, tasks: &[NewTask]) -> Vec<i64> {
    let answers = store.enqueue_tasks(tasks, &actor()).await.expect("enqueue");
    assert_eq!(
        answers.len(),
        tasks.len(),
        "one answer per task: {answers:?}"
    );
    assert!(
        answers.iter().all(|a| a.created),
        "every task without a repeated key is created: {answers:?}"
    );
    answers.iter().map(|a| a.id).collect()
}

async fn enqueue_one(store: &Arc<dyn Store>, task: NewTask) -> i64 {
    enqueue(store, &[task]).await[0]
}

pub(super) async fn claim(
    store: &Arc<dyn Store>,
    queue: &str,
    worker: &str,
    limit: u32,
    lease_ms: u64,
) -> Vec<Task> {
    store
        .claim_tasks(&Claim {
            queue: queue.into(),
            worker: worker.into(),
            limit,
            lease_ms,
            node: None,
        })
        .await
        .expect("claim")
}

/// Claims task `id`, expected to be the only one due in `queue`.
pub(super) async fn claim_only(
    store: &Arc<dyn Store>,
    queue: &str,
    worker: &str,
    lease_ms: u64,
    id: i64,
) -> Task {
    let mut claimed = claim(store, queue, worker, 10, lease_ms).await;
    assert_eq!(
        task_ids(&claimed),
        [id],
        "a claim on `{queue}` takes task {id} and nothing else"
    );
    claimed.remove(0)
}

pub(super) async fn get_task(store: &Arc<dyn Store>, id: i64) -> Task {
    store
        .task(id)
        .await
        .expect("task")
        .unwrap_or_else(|| panic!("task {id} exists"))
}

fn task_ids(tasks: &[Task]) -> Vec<i64> {
    tasks.iter().map(|t| t.id).collect()
}

/// The report of an attempt at the claimed `task`, as its lease holder makes it.
pub(super) fn completion(task: &Task, verdict: Verdict) -> Completion {
    let now = crate::now_ms();
    Completion {
        task_id: task.id,
        fence: task.fence,
        worker: task
            .lease_owner
            .clone()
            .expect("a claimed task has a lease owner"),
        attempt: task.attempt,
        started_at_ms: now - 5,
        ended_at_ms: now,
        verdict,
        outcome: None,
        output_tail: None,
    }
}

pub(super) fn succeeded() -> Verdict {
    Verdict::Succeeded { result: None }
}

/// While a worker's lease extensions and its completion batches touch the same tasks at once,
/// in opposite orders, both always succeed: rows are locked in one order, so neither deadlocks
/// the other.
pub async fn lease_extensions_and_completions_of_the_same_tasks_never_deadlock(
    store: &Arc<dyn Store>,
) {
    for round in 0..15 {
        let tasks: Vec<NewTask> = (0..120).map(|_| new_task("race", "noop")).collect();
        enqueue(store, &tasks).await;
        let claimed = claim(store, "race", "w", 120, LONG_LEASE_MS).await;
        assert_eq!(claimed.len(), 120, "round {round}");
        let mut leases: Vec<(i64, i64)> = claimed.iter().map(|t| (t.id, t.fence)).collect();
        leases.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
        let completions: Vec<Completion> =
            claimed.iter().map(|t| completion(t, succeeded())).collect();
        let extending = {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                for _ in 0..3 {
                    store.extend_leases("w", &leases, LONG_LEASE_MS).await?;
                }
                Ok::<_, StoreError>(())
            })
        };
        let completing = {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.complete_tasks(&completions).await })
        };
        extending
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("round {round}: extending failed: {e}"));
        let answers = completing
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("round {round}: completing failed: {e}"));
        assert!(
            answers.iter().all(|a| *a),
            "round {round}: every completion taken"
        );
    }
}

/// Completes one attempt; returns whether the store accepted it.
pub(super) async fn complete(store: &Arc<dyn Store>, completion: Completion) -> bool {
    let answers = store.complete_tasks(&[completion]).await.expect("complete");
    assert_eq!(answers.len(), 1, "one answer per completion: {answers:?}");
    answers[0]
}

async fn run_statuses(store: &Arc<dyn Store>, id: i64) -> Vec<String> {
    store
        .task_runs(id)
        .await
        .expect("task runs")
        .into_iter()
        .map(|r| r.status)
        .collect()
}

/// The ids of the tasks a query (with the largest page, unless `f` sets one) lists.
async fn listed(store: &Arc<dyn Store>, f: impl FnOnce(&mut TaskQuery)) -> Vec<i64> {
    let mut query = TaskQuery {
        limit: MAX_TASK_PAGE,
        ..TaskQuery::default()
    };
    f(&mut query);
    task_ids(&store.list_tasks(&query).await.expect("list tasks"))
}

fn lease(states: &[LeaseState], id: i64) -> LeaseState {
    assert_eq!(states.len(), 1, "one lease state per lease: {states:?}");
    assert_eq!(states[0].task_id, id, "the state names the task");
    states[0]
}

/// An enqueue stores each task as given, answers in input order with increasing ids and is
/// audited once; the tasks read back field for field and list by queue, status, kind and
/// workspace, page by page.
pub async fn enqueue_get_and_list_tasks(store: &Arc<dyn Store>) {
    let sync = NewTask {
        payload: r#"{"repo":"trading","depth":2,"tags":["a","b"],"ratio":0.5,"ok":true}"#.into(),
        priority: 5,
        origin: TaskOrigin {
            pipeline_run: None,
            workspace: Some("trading".into()),
            schedule: Some("nightly".into()),
            alert: None,
            caller: Some("ops".into()),
        },
        ..new_task("alpha", "sync")
    };
    let report = NewTask {
        payload: r#"{"nested":{"x":null,"s":"ünï \"q\" ✓ '; --"},"list":[1,2,3]}"#.into(),
        priority: -3,
        origin: TaskOrigin {
            workspace: Some("analytics".into()),
            alert: Some("disk-full".into()),
            ..TaskOrigin::default()
        },
        ..new_task("beta", "report")
    };
    let later = NewTask {
        run_at_ms: crate::now_ms() + 60_000,
        max_attempts: 7,
        idempotency_key: Some("later-report".into()),
        ..new_task("alpha", "report")
    };
    let inputs = [sync, report, later];
    let before = crate::now_ms();
    let answers = store
        .enqueue_tasks(&inputs, &actor())
        .await
        .expect("enqueue");
    let after = crate::now_ms();
    assert_eq!(answers.len(), 3, "one answer per task: {answers:?}");
    assert!(
        answers.iter().all(|a| a.created),
        "three new tasks: {answers:?}"
    );
    let (a, b, c) = (answers[0].id, answers[1].id, answers[2].id);
    assert!(a < b && b < c, "ids increase in input order: {answers:?}");

    for (id, input) in [a, b, c].into_iter().zip(&inputs) {
        let task = get_task(store, id).await;
        let payload: serde_json::Value =
            serde_json::from_str(&input.payload).expect("the payload is JSON");
        assert_eq!(
            (
                task.id,
                task.queue.as_str(),
                task.kind.as_str(),
                &task.payload,
                task.priority,
                task.run_at_ms,
                task.max_attempts,
                task.idempotency_key.as_deref(),
                &task.origin,
            ),
            (
                id,
                input.queue.as_str(),
                input.kind.as_str(),
                &payload,
                input.priority,
                input.run_at_ms,
                input.max_attempts,
                input.idempotency_key.as_deref(),
                &input.origin,
            ),
            "task {id} reads back as it was enqueued"
        );
        assert_eq!(
            (task.status, task.attempt, task.fence, task.cancel_requested),
            (TaskStatus::Queued, 0, 0, false),
            "a new task is queued, with no attempt, fence 0 and no cancellation"
        );
        assert_eq!(
            (
                task.lease_owner,
                task.lease_expires_at_ms,
                task.outcome,
                task.result,
                task.error,
                task.finished_at_ms,
            ),
            (None, None, None, None, None, None),
            "a new task has no lease, outcome, result, error or finish time"
        );
        assert!(
            (before - CLOCK_SLACK_MS..=after + CLOCK_SLACK_MS).contains(&task.created_at_ms),
            "created_at_ms {} is the enqueue time ({before}..={after})",
            task.created_at_ms
        );
        assert!(
            store.task_runs(id).await.expect("runs").is_empty(),
            "a new task has no runs"
        );
    }
    assert!(
        store.task(c + 1_000).await.expect("task").is_none(),
        "an unknown id is None"
    );

    assert_eq!(listed(store, |_| {}).await, [a, b, c], "every task, by id");
    assert_eq!(
        listed(store, |q| q.queue = Some("alpha".into())).await,
        [a, c],
        "the queue filter"
    );
    assert!(
        listed(store, |q| q.queue = Some("gamma".into()))
            .await
            .is_empty(),
        "no tasks in an unknown queue"
    );
    assert_eq!(
        listed(store, |q| q.status = Some(TaskStatus::Queued)).await,
        [a, b, c],
        "the status filter"
    );
    assert!(
        listed(store, |q| q.status = Some(TaskStatus::Running))
            .await
            .is_empty(),
        "nothing is running"
    );
    assert_eq!(
        listed(store, |q| q.kind = Some("report".into())).await,
        [b, c],
        "the kind filter"
    );
    assert_eq!(
        listed(store, |q| q.workspace = Some("trading".into())).await,
        [a],
        "the workspace filter"
    );
    assert_eq!(
        listed(store, |q| {
            q.queue = Some("alpha".into());
            q.kind = Some("report".into());
        })
        .await,
        [c],
        "filters combine"
    );
    assert_eq!(
        listed(store, |q| q.limit = 2).await,
        [a, b],
        "the first page"
    );
    assert_eq!(
        listed(store, |q| {
            q.after_id = b;
            q.limit = 2;
        })
        .await,
        [c],
        "the next page starts after `after_id`"
    );
    assert!(
        listed(store, |q| q.after_id = c).await.is_empty(),
        "no page after the last task"
    );

    let events = audited(store, "task.enqueue").await;
    assert_eq!(
        events.len(),
        1,
        "one task.enqueue event per call: {events:?}"
    );
    assert_eq!(events[0].actor, actor(), "audited as the caller");
    assert_eq!(events[0].details["count"], 3, "{:?}", events[0].details);
    assert_eq!(events[0].details["created"], 3, "{:?}", events[0].details);
    assert_eq!(verify_audit(store.as_ref()).await.expect("verifies"), 1);
}

/// A repeated idempotency key (in a later call, or earlier in the same call) stores nothing and
/// answers with the task already holding it, unchanged.
pub async fn idempotency_keys_return_the_existing_task(store: &Arc<dyn Store>) {
    let keyed = |key: &str, payload: &str| NewTask {
        payload: payload.into(),
        idempotency_key: Some(key.into()),
        ..new_task("idem", "noop")
    };
    let k1 = enqueue_one(store, keyed("k1", r#"{"v":1}"#)).await;
    let again = store
        .enqueue_tasks(&[keyed("k1", r#"{"v":2}"#)], &actor())
        .await
        .expect("enqueue k1 again");
    assert_eq!(
        again,
        [Enqueued {
            id: k1,
            created: false
        }],
        "a repeated key answers with the existing task, not created"
    );
    assert_eq!(
        get_task(store, k1).await.payload,
        json!({ "v": 1 }),
        "the existing task keeps its payload"
    );

    let pair = store
        .enqueue_tasks(
            &[keyed("k2", r#"{"n":1}"#), keyed("k2", r#"{"n":2}"#)],
            &actor(),
        )
        .await
        .expect("enqueue k2 twice in one call");
    assert_eq!(pair.len(), 2, "one answer per task: {pair:?}");
    assert!(
        pair[0].created && pair[0].id > k1,
        "the first use of a key in a call creates the task: {pair:?}"
    );
    let k2 = pair[0].id;
    assert_eq!(
        pair[1],
        Enqueued {
            id: k2,
            created: false
        },
        "the second use of a key in the same call names the first's task"
    );
    assert_eq!(
        get_task(store, k2).await.payload,
        json!({ "n": 1 }),
        "the first of the call's tasks with a key is the one stored"
    );

    let mixed = store
        .enqueue_tasks(
            &[
                new_task("idem", "noop"),
                keyed("k1", "{}"),
                keyed("k3", "{}"),
                keyed("k2", "{}"),
                keyed("k3", "{}"),
            ],
            &actor(),
        )
        .await
        .expect("enqueue a mixed batch");
    assert_eq!(mixed.len(), 5, "one answer per task: {mixed:?}");
    let (fresh, k3) = (mixed[0].id, mixed[2].id);
    assert_eq!(
        mixed,
        [
            Enqueued {
                id: fresh,
                created: true
            },
            Enqueued {
                id: k1,
                created: false
            },
            Enqueued {
                id: k3,
                created: true
            },
            Enqueued {
                id: k2,
                created: false
            },
            Enqueued {
                id: k3,
                created: false
            },
        ],
        "answers in input order: new, existing k1, new k3, existing k2, k3 from this call"
    );
    assert!(
        k2 < fresh && fresh < k3,
        "new ids increase in input order: {mixed:?}"
    );

    let all = store
        .list_tasks(&TaskQuery {
            limit: MAX_TASK_PAGE,
            ..TaskQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(task_ids(&all), [k1, k2, fresh, k3], "one row per key");
    for key in ["k1", "k2", "k3"] {
        assert_eq!(
            all.iter()
                .filter(|t| t.idempotency_key.as_deref() == Some(key))
                .count(),
            1,
            "exactly one task holds key {key}"
        );
    }
    assert_eq!(
        audited(store, "task.enqueue").await.len(),
        4,
        "one task.enqueue event per call, whether or not it created anything"
    );
    assert_eq!(verify_audit(store.as_ref()).await.expect("verifies"), 4);
}

/// The largest batch an enqueue may carry is stored by one call (and, repeated with the same
/// keys, stores nothing more).
pub async fn a_batch_of_ten_thousand_is_one_call(store: &Arc<dyn Store>) {
    let n = steward_core::task::MAX_ENQUEUE_BATCH;
    assert_eq!(n, 10_000, "the story enqueues the largest batch");
    let tasks: Vec<NewTask> = (0..n)
        .map(|i| NewTask {
            payload: format!(r#"{{"i":{i}}}"#),
            idempotency_key: Some(format!("bulk-{i}")),
            ..new_task("big", "noop")
        })
        .collect();
    let answers = store
        .enqueue_tasks(&tasks, &actor())
        .await
        .expect("enqueue 10,000 tasks");
    assert_eq!(answers.len(), n, "one answer per task");
    assert!(
        answers.iter().all(|a| a.created),
        "every task of the batch is created"
    );
    assert!(
        answers.windows(2).all(|w| w[0].id < w[1].id),
        "10,000 distinct ids, increasing in input order"
    );
    let big_counts = |counts: Vec<TaskCount>| -> Vec<(TaskStatus, i64)> {
        counts
            .into_iter()
            .filter(|c| c.queue == "big")
            .map(|c| (c.status, c.count))
            .collect()
    };
    let counts = store.task_counts().await.expect("counts");
    assert!(
        counts
            .iter()
            .any(|c| c.queue == "big" && c.oldest_due_at_ms.is_some()),
        "the queued tasks are due, so the oldest due time is known: {counts:?}"
    );
    assert_eq!(
        big_counts(counts),
        [(TaskStatus::Queued, 10_000)],
        "10,000 tasks queued in `big`"
    );

    let again = store
        .enqueue_tasks(&tasks, &actor())
        .await
        .expect("enqueue the batch again");
    let existing: Vec<Enqueued> = answers
        .iter()
        .map(|a| Enqueued {
            id: a.id,
            created: false,
        })
        .collect();
    assert!(
        again == existing,
        "the repeated batch names the existing tasks, in order"
    );
    assert_eq!(
        big_counts(store.task_counts().await.expect("counts")),
        [(TaskStatus::Queued, 10_000)],
        "still 10,000 tasks"
    );
    assert_eq!(
        audited(store, "task.enqueue").await.len(),
        2,
        "one event per call"
    );
    assert_eq!(verify_audit(store.as_ref()).await.expect("verifies"), 2);
}

/// A claim leases the due tasks of its queue, highest priority first and then oldest run-at,
/// leaving future ones; claimers racing over one queue take each task exactly once.
pub async fn claims_take_due_tasks_by_priority_and_never_twice(store: &Arc<dyn Store>) {
    let now = crate::now_ms();
    let at = |priority: i32, run_at_ms: i64| NewTask {
        priority,
        run_at_ms,
        ..new_task("prio", "noop")
    };
    // Enqueued so that id order differs from claim order: `d` ties `c` on priority but runs later.
    let [a, b, d, c, future] = enqueue(
        store,
        &[
            at(0, now - 3_000),
            at(10, now - 1_000),
            at(5, now - 1_000),
            at(5, now - 2_000),
            at(100, now + 60_000),
        ],
    )
    .await[..] else {
        panic!("five ids")
    };
    enqueue_one(
        store,
        NewTask {
            priority: 1_000,
            ..new_task("elsewhere", "noop")
        },
    )
    .await;

    let before = crate::now_ms();
    let first = claim(store, "prio", "w1", 2, LONG_LEASE_MS).await;
    let after = crate::now_ms();
    assert_eq!(
        task_ids(&first),
        [b, c],
        "the highest priority first, then the oldest run-at"
    );
    let lease = i64::try_from(LONG_LEASE_MS).expect("lease fits");
    for task in &first {
        assert_eq!(
            (
                task.status,
                task.attempt,
                task.fence,
                task.lease_owner.as_deref()
            ),
            (TaskStatus::Running, 1, 1, Some("w1")),
            "a claimed task is running its first attempt, fence 0 + 1, leased to the claimer"
        );
        let expires = task
            .lease_expires_at_ms
            .expect("a claimed task has a lease expiry");
        assert!(
            (before + lease - CLOCK_SLACK_MS..=after + lease + CLOCK_SLACK_MS).contains(&expires),
            "the lease expires lease_ms after the claim: {expires} vs {before}..={after} + {lease}"
        );
        assert_eq!(
            &get_task(store, task.id).await,
            task,
            "the claim answers the stored task"
        );
    }
    assert_eq!(
        task_ids(&claim(store, "prio", "w2", 10, LONG_LEASE_MS).await),
        [d, a],
        "the rest of the due tasks, by priority; not the future one, nor another queue's"
    );
    assert!(
        claim(store, "prio", "w3", 10, LONG_LEASE_MS)
            .await
            .is_empty(),
        "nothing left that is due"
    );
    let waiting = get_task(store, future).await;
    assert_eq!(
        (waiting.status, waiting.attempt, waiting.fence),
        (TaskStatus::Queued, 0, 0),
        "a task not yet due stays queued"
    );

    let herd: Vec<NewTask> = (0..500).map(|_| new_task("herd", "noop")).collect();
    let mut expected = enqueue(store, &herd).await;
    let claimers: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                let worker = format!("herd-{i}");
                let mut taken = Vec::new();
                loop {
                    let batch = claim(&store, "herd", &worker, 7, LONG_LEASE_MS).await;
                    if batch.is_empty() {
                        return taken;
                    }
                    assert!(batch.len() <= 7, "a claim takes at most its limit");
                    taken.extend(batch.into_iter().map(|t| (t.id, worker.clone())));
                }
            })
        })
        .collect();
    let mut taken: Vec<(i64, String)> = Vec::new();
    for claimer in claimers {
        taken.extend(claimer.await.expect("join"));
    }
    let mut got: Vec<i64> = taken.iter().map(|(id, _)| *id).collect();
    got.sort_unstable();
    expected.sort_unstable();
    assert_eq!(
        got.len(),
        500,
        "500 claims in all, so no task was taken twice"
    );
    assert_eq!(got, expected, "every task was taken exactly once");
    let owners: std::collections::HashMap<i64, String> = store
        .list_tasks(&TaskQuery {
            limit: MAX_TASK_PAGE,
            queue: Some("herd".into()),
            ..TaskQuery::default()
        })
        .await
        .expect("list")
        .into_iter()
        .map(|t| {
            assert_eq!(t.status, TaskStatus::Running, "task {} is running", t.id);
            (t.id, t.lease_owner.unwrap_or_default())
        })
        .collect();
    for (id, worker) in &taken {
        assert_eq!(
            owners.get(id),
            Some(worker),
            "task {id} is leased to the worker that claimed it"
        );
    }
}

/// What a program printed or an agent answered may hold NUL bytes, which PostgreSQL refuses in
/// text and `jsonb`: the completion is stored with each one made visible (U+FFFD), on every
/// backend alike, rather than refused (and retried for ever).
pub async fn completions_holding_nul_are_stored_with_it_made_visible(store: &Arc<dyn Store>) {
    let succeeded_id = enqueue_one(store, new_task("nul", "noop")).await;
    let claimed = claim_only(store, "nul", "w1", LONG_LEASE_MS, succeeded_id).await;
    let done = Completion {
        outcome: Some("ok\0".into()),
        output_tail: Some("a\0b\n".into()),
        ..completion(
            &claimed,
            Verdict::Succeeded {
                result: Some(json!({ "k\u{0}": ["v\u{0}"] })),
            },
        )
    };
    assert!(complete(store, done).await, "the completion is taken");
    let task = get_task(store, succeeded_id).await;
    assert_eq!(task.outcome.as_deref(), Some("ok\u{fffd}"));
    assert_eq!(task.result, Some(json!({ "k\u{fffd}": ["v\u{fffd}"] })));
    let runs = store.task_runs(succeeded_id).await.expect("runs");
    assert_eq!(runs[0].output_tail.as_deref(), Some("a\u{fffd}b\n"));

    let failed_id = enqueue_one(store, new_task("nul", "noop")).await;
    let claimed = claim_only(store, "nul", "w1", LONG_LEASE_MS, failed_id).await;
    let failed = completion(
        &claimed,
        Verdict::Dead {
            error: "bad\0news".into(),
        },
    );
    assert!(complete(store, failed).await, "the failure is taken");
    assert_eq!(
        get_task(store, failed_id).await.error.as_deref(),
        Some("bad\u{fffd}news")
    );
}

/// Only a completion carrying the task's current fence is applied; it records the verdict on
/// the task and one run row. Answers follow the batch's order, and a task reported twice in a
/// batch is completed once.
pub async fn completions_are_fenced(store: &Arc<dyn Store>) {
    let id = enqueue_one(store, new_task("fenced", "noop")).await;
    let claimed = claim_only(store, "fenced", "w1", LONG_LEASE_MS, id).await;
    let stale = Completion {
        fence: claimed.fence + 1,
        ..completion(&claimed, succeeded())
    };
    assert!(
        !complete(store, stale).await,
        "a completion with a wrong fence is refused"
    );
    assert_eq!(
        get_task(store, id).await,
        claimed,
        "a refused completion changes nothing"
    );
    assert!(
        store.task_runs(id).await.expect("runs").is_empty(),
        "a refused completion records no run"
    );

    let done = Completion {
        outcome: Some("applied".into()),
        output_tail: Some("3 rows\ndone\n".into()),
        ..completion(
            &claimed,
            Verdict::Succeeded {
                result: Some(json!({ "rows": 3, "ids": [1, 2, 3] })),
            },
        )
    };
    assert!(
        complete(store, done.clone()).await,
        "a completion with the current fence is accepted"
    );
    let task = get_task(store, id).await;
    assert_eq!(task.status, TaskStatus::Succeeded, "the task succeeded");
    assert_eq!(
        task.outcome.as_deref(),
        Some("applied"),
        "the outcome is kept"
    );
    assert_eq!(
        task.result,
        Some(json!({ "rows": 3, "ids": [1, 2, 3] })),
        "the result is kept"
    );
    assert!(
        task.finished_at_ms.is_some(),
        "a succeeded task is finished"
    );
    assert_eq!(task.lease_owner, None, "a finished task has no lease");
    assert_eq!(
        store.task_runs(id).await.expect("runs"),
        [TaskRun {
            task_id: id,
            attempt: 1,
            worker: "w1".into(),
            started_at_ms: done.started_at_ms,
            ended_at_ms: done.ended_at_ms,
            status: "succeeded".into(),
            outcome: Some("applied".into()),
            error: None,
            output_tail: Some("3 rows\ndone\n".into()),
        }],
        "one run row, as the worker reported it"
    );
    assert!(
        !complete(store, done).await,
        "completing a finished task again is refused"
    );
    assert_eq!(
        get_task(store, id).await,
        task,
        "a repeated completion changes nothing"
    );
    assert_eq!(
        run_statuses(store, id).await,
        ["succeeded"],
        "still one run row"
    );

    let [x, y] = enqueue(
        store,
        &[new_task("fenced", "noop"), new_task("fenced", "noop")],
    )
    .await[..] else {
        panic!("two ids")
    };
    let claimed = claim(store, "fenced", "w2", 10, LONG_LEASE_MS).await;
    assert_eq!(task_ids(&claimed), [x, y], "both due tasks are claimed");
    let answers = store
        .complete_tasks(&[
            Completion {
                fence: claimed[0].fence - 1,
                ..completion(&claimed[0], succeeded())
            },
            completion(&claimed[1], succeeded()),
            completion(
                &claimed[1],
                Verdict::Dead {
                    error: "late".into(),
                },
            ),
        ])
        .await
        .expect("complete a batch");
    assert_eq!(
        answers,
        [false, true, false],
        "answers in batch order: stale, accepted, the same task again"
    );
    assert_eq!(get_task(store, x).await.status, TaskStatus::Running);
    assert_eq!(
        get_task(store, y).await.status,
        TaskStatus::Succeeded,
        "the first report of a task in a batch wins"
    );
    assert_eq!(run_statuses(store, y).await, ["succeeded"]);
    assert!(
        complete(store, completion(&claimed[0], succeeded())).await,
        "the current fence still completes the task the stale report named"
    );
}

/// A retryable failure runs again from its retry time with the next attempt and fence; a dead
/// one stays dead until retried by hand, which queues it with fresh attempts.
pub async fn failed_attempts_retry_then_die(store: &Arc<dyn Store>) {
    let id = enqueue_one(store, new_task("flaky", "noop")).await;
    let first = claim_only(store, "flaky", "w1", LONG_LEASE_MS, id).await;
    let retry_at_ms = crate::now_ms() - 1;
    assert!(
        complete(
            store,
            completion(
                &first,
                Verdict::Retry {
                    error: "boom".into(),
                    retry_at_ms,
                },
            ),
        )
        .await,
        "a retryable failure is accepted"
    );
    let failed = get_task(store, id).await;
    assert_eq!(
        (failed.status, failed.error.as_deref(), failed.run_at_ms),
        (TaskStatus::Failed, Some("boom"), retry_at_ms),
        "a retryable failure keeps the error and runs again at the retry time"
    );
    assert_eq!(
        (failed.lease_owner, failed.finished_at_ms),
        (None, None),
        "a failed task is neither leased nor finished"
    );
    let runs = store.task_runs(id).await.expect("runs");
    assert_eq!(
        runs.iter()
            .map(|r| (r.attempt, r.status.as_str(), r.error.as_deref()))
            .collect::<Vec<_>>(),
        [(1, "failed", Some("boom"))],
        "the failed attempt is a run row"
    );

    let second = claim_only(store, "flaky", "w2", LONG_LEASE_MS, id).await;
    assert_eq!(
        (second.status, second.attempt, second.fence),
        (TaskStatus::Running, 2, first.fence + 1),
        "a failed task is claimed again with the next attempt and fence"
    );
    assert!(
        complete(
            store,
            completion(
                &second,
                Verdict::Dead {
                    error: "fatal".into()
                }
            )
        )
        .await,
        "a final failure is accepted"
    );
    let dead = get_task(store, id).await;
    assert_eq!(
        (dead.status, dead.error.as_deref()),
        (TaskStatus::Dead, Some("fatal")),
        "a final failure makes the task dead"
    );
    assert!(dead.finished_at_ms.is_some(), "a dead task is finished");
    assert_eq!(run_statuses(store, id).await, ["failed", "dead"]);
    assert!(
        claim(store, "flaky", "w3", 10, LONG_LEASE_MS)
            .await
            .is_empty(),
        "a dead task is not claimed"
    );

    let retried = store.retry_task(id, &actor()).await.expect("retry");
    assert_eq!(
        (
            retried.status,
            retried.attempt,
            retried.finished_at_ms,
            retried.cancel_requested
        ),
        (TaskStatus::Queued, 0, None, false),
        "a retried task is queued with fresh attempts"
    );
    assert!(
        retried.fence >= second.fence,
        "fences never go back: {} after {}",
        retried.fence,
        second.fence
    );
    assert_eq!(
        get_task(store, id).await,
        retried,
        "retry answers the stored task"
    );
    match store.retry_task(id, &actor()).await {
        Err(StoreError::State(_)) => {}
        other => panic!("retrying a queued task is a state error, got {other:?}"),
    }
    let third = claim_only(store, "flaky", "w4", LONG_LEASE_MS, id).await;
    assert_eq!(third.attempt, 1, "the attempts started again");
    assert!(third.fence > second.fence, "a new claim has a new fence");
    match store.retry_task(id, &actor()).await {
        Err(StoreError::State(_)) => {}
        other => panic!("retrying a running task is a state error, got {other:?}"),
    }
    assert!(
        !complete(store, completion(&second, succeeded())).await,
        "the dead attempt's fence no longer completes the task"
    );
    assert!(
        complete(store, completion(&third, succeeded())).await,
        "the new attempt completes it"
    );

    let events = audited(store, "task.retry").await;
    assert_eq!(events.len(), 1, "one task.retry event: {events:?}");
    assert_eq!(events[0].target, format!("task/{id}"));
    assert_eq!(events[0].actor, actor());
    verify_audit(store.as_ref()).await.expect("verifies");

    let later = enqueue_one(store, new_task("later", "noop")).await;
    let attempt = claim_only(store, "later", "w1", LONG_LEASE_MS, later).await;
    assert!(
        complete(
            store,
            completion(
                &attempt,
                Verdict::Retry {
                    error: "not yet".into(),
                    retry_at_ms: crate::now_ms() + 60_000,
                },
            ),
        )
        .await
    );
    assert!(
        claim(store, "later", "w2", 10, LONG_LEASE_MS)
            .await
            .is_empty(),
        "a failed task is not claimed before its retry time"
    );
}

/// The reaper takes back leases that ran out: the task is queued again (dead when out of
/// attempts, cancelled when cancellation was asked for), the lost attempt is a `lease_expired`
/// run, and the old lease holder can neither extend nor complete it any more.
pub async fn expired_leases_are_reaped(store: &Arc<dyn Store>) {
    let id = enqueue_one(store, new_task("reap", "noop")).await;
    let lost = claim_only(store, "reap", "w1", 1, id).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let reaped = store
        .reap_expired_leases(crate::now_ms(), 100)
        .await
        .expect("reap");
    assert_eq!(
        reaped,
        [Reaped {
            task_id: id,
            queue: "reap".into(),
            kind: "noop".into(),
            attempt: 1,
            worker: "w1".into(),
            status: TaskStatus::Queued,
        }],
        "the expired lease is taken back and the task queued again"
    );
    let requeued = get_task(store, id).await;
    assert_eq!(
        (requeued.status, requeued.lease_owner.as_deref()),
        (TaskStatus::Queued, None),
        "a reaped task is queued without a lease"
    );
    let runs = store.task_runs(id).await.expect("runs");
    assert_eq!(
        runs.iter()
            .map(|r| (r.attempt, r.status.as_str(), r.worker.as_str()))
            .collect::<Vec<_>>(),
        [(1, "lease_expired", "w1")],
        "the lost attempt is a lease_expired run"
    );
    assert!(
        store
            .reap_expired_leases(crate::now_ms(), 100)
            .await
            .expect("reap again")
            .is_empty(),
        "a lease is reaped once"
    );
    let state = store
        .extend_leases("w1", &[(id, lost.fence)], LONG_LEASE_MS)
        .await
        .expect("extend");
    assert!(
        !lease(&state, id).held,
        "a reaped lease is no longer held: {state:?}"
    );

    let retaken = claim_only(store, "reap", "w2", LONG_LEASE_MS, id).await;
    assert_eq!(
        (retaken.attempt, retaken.fence),
        (2, lost.fence + 1),
        "the re-claim is the next attempt with the next fence"
    );
    let state = store
        .extend_leases("w2", &[(id, retaken.fence)], 2 * LONG_LEASE_MS)
        .await
        .expect("extend");
    assert_eq!(
        lease(&state, id),
        LeaseState {
            task_id: id,
            held: true,
            cancel_requested: false,
        },
        "the current holder's lease is extended"
    );
    let extended = get_task(store, id)
        .await
        .lease_expires_at_ms
        .expect("a running task has a lease expiry");
    let claimed_until = retaken.lease_expires_at_ms.expect("lease expiry");
    assert!(
        extended > claimed_until + 30_000,
        "extending by twice the lease pushes the expiry forward: {extended} after {claimed_until}"
    );
    let state = store
        .extend_leases("w1", &[(id, retaken.fence)], LONG_LEASE_MS)
        .await
        .expect("extend");
    assert!(
        !lease(&state, id).held,
        "another worker does not hold the lease: {state:?}"
    );
    assert!(
        !complete(store, completion(&lost, succeeded())).await,
        "the expired lease's fence is refused"
    );
    assert!(
        complete(store, completion(&retaken, succeeded())).await,
        "the current fence is accepted"
    );
    assert_eq!(
        run_statuses(store, id).await,
        ["lease_expired", "succeeded"],
        "exactly one succeeded run"
    );

    let once = enqueue_one(
        store,
        NewTask {
            max_attempts: 1,
            ..new_task("reap-once", "noop")
        },
    )
    .await;
    claim_only(store, "reap-once", "w3", 1, once).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let reaped = store
        .reap_expired_leases(crate::now_ms(), 100)
        .await
        .expect("reap");
    assert_eq!(
        reaped,
        [Reaped {
            task_id: once,
            queue: "reap-once".into(),
            kind: "noop".into(),
            attempt: 1,
            worker: "w3".into(),
            status: TaskStatus::Dead,
        }],
        "a task out of attempts whose lease expires is dead"
    );
    let dead = get_task(store, once).await;
    assert_eq!(dead.status, TaskStatus::Dead);
    assert!(dead.finished_at_ms.is_some(), "a dead task is finished");
    assert_eq!(run_statuses(store, once).await, ["lease_expired"]);
    assert!(
        claim(store, "reap-once", "w4", 10, LONG_LEASE_MS)
            .await
            .is_empty(),
        "a dead task is not claimed"
    );
}

/// Cancelling ends a waiting task at once and asks a running one's worker to stop; finished
/// tasks cannot be cancelled, unknown ones are not found.
pub async fn cancellation(store: &Arc<dyn Store>) {
    let waiting = enqueue_one(store, new_task("c-queued", "noop")).await;
    let cancelled = store.cancel_task(waiting, &actor()).await.expect("cancel");
    assert_eq!(
        cancelled.status,
        TaskStatus::Cancelled,
        "a queued task is cancelled at once"
    );
    assert!(
        cancelled.finished_at_ms.is_some(),
        "a cancelled task is finished"
    );
    assert_eq!(
        get_task(store, waiting).await,
        cancelled,
        "cancel answers the stored task"
    );
    assert!(
        claim(store, "c-queued", "w", 10, LONG_LEASE_MS)
            .await
            .is_empty(),
        "a cancelled task is not claimed"
    );

    let running = enqueue_one(store, new_task("c-running", "noop")).await;
    let claimed = claim_only(store, "c-running", "w1", LONG_LEASE_MS, running).await;
    let requested = store.cancel_task(running, &actor()).await.expect("cancel");
    assert_eq!(
        (requested.status, requested.cancel_requested),
        (TaskStatus::Running, true),
        "a running task keeps running with cancellation requested"
    );
    assert_eq!(get_task(store, running).await, requested);
    let state = store
        .extend_leases("w1", &[(running, claimed.fence)], LONG_LEASE_MS)
        .await
        .expect("extend");
    assert_eq!(
        lease(&state, running),
        LeaseState {
            task_id: running,
            held: true,
            cancel_requested: true,
        },
        "the heartbeat tells the worker to stop"
    );
    assert!(
        complete(store, completion(&claimed, Verdict::Cancelled)).await,
        "the worker reports the attempt cancelled"
    );
    let stopped = get_task(store, running).await;
    assert_eq!(stopped.status, TaskStatus::Cancelled);
    assert!(
        stopped.finished_at_ms.is_some(),
        "a cancelled task is finished"
    );
    assert_eq!(run_statuses(store, running).await, ["cancelled"]);

    let failing = enqueue_one(store, new_task("c-failed", "noop")).await;
    let attempt = claim_only(store, "c-failed", "w2", LONG_LEASE_MS, failing).await;
    assert!(
        complete(
            store,
            completion(
                &attempt,
                Verdict::Retry {
                    error: "boom".into(),
                    retry_at_ms: crate::now_ms() + 60_000,
                },
            ),
        )
        .await
    );
    assert_eq!(
        store
            .cancel_task(failing, &actor())
            .await
            .expect("cancel")
            .status,
        TaskStatus::Cancelled,
        "a failed task is cancelled at once"
    );

    let abandoned = enqueue_one(store, new_task("c-expired", "noop")).await;
    claim_only(store, "c-expired", "w3", 1, abandoned).await;
    store
        .cancel_task(abandoned, &actor())
        .await
        .expect("cancel");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let reaped = store
        .reap_expired_leases(crate::now_ms(), 100)
        .await
        .expect("reap");
    assert_eq!(
        reaped,
        [Reaped {
            task_id: abandoned,
            queue: "c-expired".into(),
            kind: "noop".into(),
            attempt: 1,
            worker: "w3".into(),
            status: TaskStatus::Cancelled,
        }],
        "an expired lease of a task being cancelled ends it cancelled"
    );

    for finished in [waiting, running] {
        match store.cancel_task(finished, &actor()).await {
            Err(StoreError::State(_)) => {}
            other => panic!("cancelling finished task {finished} is a state error, got {other:?}"),
        }
    }
    let succeeded_id = enqueue_one(store, new_task("c-done", "noop")).await;
    let attempt = claim_only(store, "c-done", "w4", LONG_LEASE_MS, succeeded_id).await;
    assert!(complete(store, completion(&attempt, succeeded())).await);
    match store.cancel_task(succeeded_id, &actor()).await {
        Err(StoreError::State(_)) => {}
        other => panic!("cancelling a succeeded task is a state error, got {other:?}"),
    }
    match store.cancel_task(succeeded_id + 1_000, &actor()).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("cancelling an unknown task is not found, got {other:?}"),
    }

    let targets: Vec<String> = audited(store, "task.cancel")
        .await
        .into_iter()
        .map(|e| e.target)
        .collect();
    assert_eq!(
        targets,
        [waiting, running, failing, abandoned].map(|id| format!("task/{id}")),
        "each successful cancel is audited once, refused ones not at all"
    );
    verify_audit(store.as_ref()).await.expect("verifies");
}

/// The counts follow every change of a task's status: enqueue, claim, each verdict,
/// cancellation, retry, a lease taken back and purge; after each, they equal the tasks
/// counted one by one.
pub async fn task_counts_follow_every_change(store: &Arc<dyn Store>) {
    async fn agree(store: &Arc<dyn Store>, step: &str) {
        let mut listed = std::collections::BTreeMap::new();
        for queue in ["tally-a", "tally-b"] {
            let tasks = store
                .list_tasks(&TaskQuery {
                    limit: 1_000,
                    queue: Some(queue.into()),
                    ..TaskQuery::default()
                })
                .await
                .expect("list");
            for task in tasks {
                *listed.entry((task.queue, task.status)).or_insert(0_i64) += 1;
            }
        }
        let counted: std::collections::BTreeMap<_, _> = store
            .task_counts()
            .await
            .expect("counts")
            .into_iter()
            .filter(|c| c.queue.starts_with("tally-"))
            .map(|c| ((c.queue, c.status), c.count))
            .collect();
        assert_eq!(counted, listed, "the counts after {step}");
    }
    let mut later = new_task("tally-b", "noop");
    later.run_at_ms += 3_600_000;
    let mut tasks: Vec<NewTask> = (0..6).map(|_| new_task("tally-a", "noop")).collect();
    tasks.extend([new_task("tally-b", "noop"), later]);
    let ids = enqueue(store, &tasks).await;
    agree(store, "enqueue").await;

    let claimed = claim(store, "tally-a", "w", 4, LONG_LEASE_MS).await;
    assert_eq!(claimed.len(), 4, "four of six claimed");
    agree(store, "a claim").await;

    let verdicts = [
        succeeded(),
        Verdict::Retry {
            error: "boom".into(),
            retry_at_ms: crate::now_ms() + 3_600_000,
        },
        Verdict::Dead {
            error: "fatal".into(),
        },
    ];
    let completions: Vec<Completion> = claimed
        .iter()
        .zip(verdicts)
        .map(|(task, verdict)| completion(task, verdict))
        .collect();
    let accepted = store.complete_tasks(&completions).await.expect("complete");
    assert_eq!(accepted, [true, true, true], "each completion accepted");
    agree(store, "completions").await;

    let queued = ids[4];
    store.cancel_task(queued, &actor()).await.expect("cancel");
    store
        .cancel_task(claimed[3].id, &actor())
        .await
        .expect("cancel a running task");
    agree(store, "cancellations").await;

    store
        .retry_task(claimed[2].id, &actor())
        .await
        .expect("retry");
    agree(store, "a retry").await;

    let short = claim(store, "tally-b", "w2", 1, 1).await;
    assert_eq!(short.len(), 1, "the due task of tally-b claimed");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let reaped = store
        .reap_expired_leases(crate::now_ms(), 100)
        .await
        .expect("reap");
    assert!(
        reaped.iter().any(|r| r.task_id == short[0].id),
        "the expired lease is taken back: {reaped:?}"
    );
    agree(store, "a lease taken back").await;

    let purged = store
        .purge_tasks("tally-a", crate::now_ms() + 1, 100)
        .await
        .expect("purge");
    assert!(purged >= 2, "the finished tasks purged: {purged}");
    agree(store, "a purge").await;
}

/// Purging deletes a queue's tasks that finished before the cutoff, with their runs, up to the
/// limit; unfinished tasks and other queues' tasks stay. Before the purge, what finished since
/// the story started is counted per queue and status.
pub async fn purge_removes_only_old_finished_tasks(store: &Arc<dyn Store>) {
    let start = crate::now_ms();
    let urgent = || NewTask {
        priority: 1,
        ..new_task("pq", "noop")
    };
    let [s1, s2, d, r, cancelled, q1, q2] = enqueue(
        store,
        &[
            urgent(),
            urgent(),
            urgent(),
            urgent(),
            new_task("pq", "noop"),
            new_task("pq", "noop"),
            new_task("pq", "noop"),
        ],
    )
    .await[..] else {
        panic!("seven ids")
    };
    store
        .cancel_task(cancelled, &actor())
        .await
        .expect("cancel");
    let claimed = claim(store, "pq", "w", 4, LONG_LEASE_MS).await;
    let mut got = task_ids(&claimed);
    got.sort_unstable();
    assert_eq!(got, [s1, s2, d, r], "the four urgent tasks are claimed");
    let by_id = |id: i64| {
        claimed
            .iter()
            .find(|t| t.id == id)
            .expect("claimed")
            .clone()
    };
    let answers = store
        .complete_tasks(&[
            completion(&by_id(s1), succeeded()),
            completion(&by_id(s2), succeeded()),
            completion(&by_id(d), Verdict::Dead { error: "no".into() }),
        ])
        .await
        .expect("complete");
    assert_eq!(answers, [true, true, true]);
    let other = enqueue_one(store, new_task("other", "noop")).await;
    let attempt = claim_only(store, "other", "w", LONG_LEASE_MS, other).await;
    assert!(complete(store, completion(&attempt, succeeded())).await);

    // Recent throughput: what finished since a time, per asked queue and status.
    let queues = ["pq".to_owned(), "other".to_owned(), "none".to_owned()];
    let finished: Vec<(String, TaskStatus, i64)> = store
        .tasks_finished_since(&queues, start - CLOCK_SLACK_MS)
        .await
        .expect("finished since")
        .into_iter()
        .map(|c| (c.queue, c.status, c.count))
        .collect();
    assert_eq!(
        finished,
        [
            ("other".to_owned(), TaskStatus::Succeeded, 1),
            ("pq".to_owned(), TaskStatus::Cancelled, 1),
            ("pq".to_owned(), TaskStatus::Dead, 1),
            ("pq".to_owned(), TaskStatus::Succeeded, 2),
        ],
        "by queue, then status"
    );
    assert!(
        store
            .tasks_finished_since(&queues, crate::now_ms() + 86_400_000)
            .await
            .expect("finished since")
            .is_empty()
    );

    assert_eq!(
        store
            .purge_tasks("pq", start - CLOCK_SLACK_MS, 1_000)
            .await
            .expect("purge"),
        0,
        "nothing finished before the story started"
    );
    let now = crate::now_ms();
    assert_eq!(
        store.purge_tasks("pq", now + 1, 1).await.expect("purge"),
        1,
        "a purge deletes at most its limit"
    );
    assert_eq!(
        store
            .purge_tasks("pq", now + 1, 1_000)
            .await
            .expect("purge"),
        3,
        "the rest of the finished tasks"
    );
    assert_eq!(
        store
            .purge_tasks("pq", now + 1, 1_000)
            .await
            .expect("purge"),
        0,
        "nothing left to purge"
    );
    for gone in [s1, s2, d, cancelled] {
        assert!(
            store.task(gone).await.expect("task").is_none(),
            "finished task {gone} is purged"
        );
        assert!(
            store.task_runs(gone).await.expect("runs").is_empty(),
            "purged task {gone} has no runs left"
        );
    }
    assert_eq!(
        listed(store, |q| q.queue = Some("pq".into())).await,
        [r, q1, q2],
        "unfinished tasks stay"
    );
    assert_eq!(get_task(store, r).await.status, TaskStatus::Running);
    assert_eq!(
        get_task(store, other).await.status,
        TaskStatus::Succeeded,
        "another queue's finished task stays"
    );
    assert_eq!(run_statuses(store, other).await, ["succeeded"]);
}

/// An idle worker learns when the next waiting task of its queue is due.
pub async fn next_due_names_the_earliest_waiting_task(store: &Arc<dyn Store>) {
    assert_eq!(store.next_due_ms("nd").await.expect("next due"), None);
    let now = crate::now_ms();
    let at = |run_at_ms| NewTask {
        run_at_ms,
        ..new_task("nd", "noop")
    };
    enqueue(store, &[at(now + 60_000), at(now + 5_000), at(now + 9_000)]).await;
    enqueue(
        store,
        &[NewTask {
            run_at_ms: now + 1_000,
            ..new_task("other", "noop")
        }],
    )
    .await;
    assert_eq!(
        store.next_due_ms("nd").await.expect("next due"),
        Some(now + 5_000),
        "the earliest of this queue's waiting tasks"
    );
}

/// A listener subscribed before an enqueue hears the queue's name.
pub async fn wakeups_announce_enqueues(store: &Arc<dyn Store>) {
    use tokio::sync::broadcast::error::RecvError;
    let mut wakeups = store.task_wakeups();
    enqueue_one(store, new_task("wq", "noop")).await;
    let heard = async {
        loop {
            match wakeups.recv().await {
                Ok(queue) if &*queue == "wq" => return,
                // "Check every queue": the backend may have started listening after the
                // enqueue; one enqueued now must be announced by name.
                Ok(queue) if &*queue == crate::tasks::ANY_QUEUE => {
                    enqueue_one(store, new_task("wq", "noop")).await;
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => panic!("the wake-up channel closed"),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), heard)
        .await
        .expect("a wake-up naming `wq` within 5 s of an enqueue there");
}
