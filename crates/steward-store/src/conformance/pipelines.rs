//! Stories of pipeline runs: a step's successors become ready in the transaction that records
//! its success; fan-out and fan-in; skips by condition; failure, retry from the failed steps
//! and cancellation; idempotent starts; a lease that expires for good fails its step.

use std::sync::Arc;

use serde_json::{Value as Json, json};
use steward_core::pipeline::run::RunStatus;
use steward_core::pipeline::spec::{PipelineSpec, StepSpec};
use steward_core::pipeline::{FailurePolicy, StepState};
use steward_core::task::{Task, TaskOrigin, TaskStatus, Verdict};

use super::tasks::{claim, complete, completion, get_task};
use super::{LONG_LEASE_MS, actor, audited};
use crate::pipelines::PipelineRunQuery;
use crate::{NewRun, RunStep, Store, StoreError};

fn step(name: &str, queue: &str, needs: &[&str], payload: Json) -> StepSpec {
    StepSpec {
        name: name.into(),
        queue: queue.into(),
        kind: "noop".into(),
        payload,
        needs: needs.iter().map(|n| (*n).to_owned()).collect(),
        condition: None,
        priority: 0,
        max_attempts: Some(1),
        timeout_ms: None,
        node: None,
    }
}

fn pipeline(name: &str, steps: Vec<StepSpec>) -> PipelineSpec {
    PipelineSpec {
        name: name.into(),
        workspace: None,
        description: None,
        on_failure: FailurePolicy::Stop,
        steps,
    }
}

async fn start(store: &Arc<dyn Store>, spec: &PipelineSpec, input: Json) -> i64 {
    let answers = store
        .start_runs(
            &[NewRun {
                spec: spec.clone(),
                input,
                idempotency_key: None,
                origin: TaskOrigin::default(),
            }],
            &actor(),
        )
        .await
        .expect("start a run");
    assert!(answers[0].created, "a run without a key is created");
    answers[0].id
}

async fn steps(store: &Arc<dyn Store>, run: i64) -> Vec<RunStep> {
    store.run_steps(run).await.expect("run steps")
}

async fn states(store: &Arc<dyn Store>, run: i64) -> Vec<(String, StepState)> {
    steps(store, run)
        .await
        .into_iter()
        .map(|s| (s.name, s.state))
        .collect()
}

async fn status(store: &Arc<dyn Store>, run: i64) -> RunStatus {
    store
        .pipeline_run(run)
        .await
        .expect("read a run")
        .expect("the run exists")
        .status
}

/// Claims every due task of `queue` and completes each with `verdict(task)`.
async fn work(
    store: &Arc<dyn Store>,
    queue: &str,
    verdict: impl Fn(&Task) -> Verdict,
) -> Vec<Task> {
    let tasks = claim(store, queue, "w", 100, LONG_LEASE_MS).await;
    for task in &tasks {
        assert!(
            complete(store, completion(task, verdict(task))).await,
            "completion of task {} accepted",
            task.id
        );
    }
    tasks
}

fn ok(result: Json) -> impl Fn(&Task) -> Verdict {
    move |_| Verdict::Succeeded {
        result: Some(result.clone()),
    }
}

/// A chain: each step's task exists as soon as its need's completion returns (no other call in
/// between), with the earlier result rendered into its payload; the run succeeds with the last.
pub async fn a_pipeline_step_is_ready_when_its_need_succeeds(store: &Arc<dyn Store>) {
    let spec = pipeline(
        "chain",
        vec![
            step("alba", "pa", &[], json!({"topic": "{{ input.topic }}"})),
            step(
                "albi",
                "pb",
                &["alba"],
                json!({"url": "{{ steps.alba.result.url }}"}),
            ),
            step(
                "jona",
                "pc",
                &["albi"],
                json!({"n": "{{ steps.albi.result.n }}"}),
            ),
        ],
    );
    let run = start(store, &spec, json!({"topic": "rust"})).await;
    let first = work(store, "pa", ok(json!({"url": "https://x/1"}))).await;
    assert_eq!(
        first.len(),
        1,
        "the first step's task was enqueued by the start"
    );
    assert_eq!(first[0].payload, json!({"topic": "rust"}));
    assert_eq!(first[0].origin.pipeline_run, Some(run));
    let second = work(store, "pb", ok(json!({"n": 7}))).await;
    assert_eq!(second.len(), 1, "albi became ready with alba's success");
    assert_eq!(second[0].payload, json!({"url": "https://x/1"}));
    assert!(
        claim(store, "pc", "w", 10, LONG_LEASE_MS).await.len() == 1,
        "jona became ready with albi's success"
    );
    assert_eq!(status(store, run).await, RunStatus::Running);
    let timeline = steps(store, run).await;
    assert_eq!(timeline[0].result, Some(json!({"url": "https://x/1"})));
    assert_eq!(timeline[0].attempts, 1);
    assert_eq!(timeline[2].state, StepState::Running);
    let last = store
        .list_tasks(&crate::TaskQuery {
            queue: Some("pc".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(last[0].payload, json!({"n": "7"}), "templates render text");
    assert!(
        complete(
            store,
            completion(
                &get_task(store, last[0].id).await,
                ok(json!(null))(&last[0])
            )
        )
        .await
    );
    assert_eq!(status(store, run).await, RunStatus::Succeeded);
    let run_row = store
        .pipeline_run(run)
        .await
        .expect("read")
        .expect("exists");
    assert!(
        run_row.finished_at_ms.is_some(),
        "a finished run has its end time"
    );
    assert_eq!(
        audited(store, "pipeline.start").await.len(),
        1,
        "the start is audited once"
    );
}

/// 1 → 10 → 1: every branch starts with the split; the join only with the last branch.
pub async fn a_fan_out_joins_once_every_branch_has_succeeded(store: &Arc<dyn Store>) {
    let mut all = vec![step("split", "fs", &[], json!({}))];
    let names: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
    for name in &names {
        all.push(step(name, "fb", &["split"], json!({"i": "{{ run.id }}"})));
    }
    let needs: Vec<&str> = names.iter().map(String::as_str).collect();
    all.push(step("join", "fj", &needs, json!({})));
    let run = start(store, &pipeline("fan", all), json!({})).await;
    work(store, "fs", ok(json!({}))).await;
    let branches = claim(store, "fb", "w", 100, LONG_LEASE_MS).await;
    assert_eq!(branches.len(), 10, "every branch started with the split");
    for (i, task) in branches.iter().enumerate() {
        assert!(complete(store, completion(task, ok(json!({"i": i}))(task))).await);
        let join = claim(store, "fj", "w", 10, LONG_LEASE_MS).await;
        if i < 9 {
            assert!(
                join.is_empty(),
                "the join waits for every branch ({i} done)"
            );
        } else {
            assert_eq!(join.len(), 1, "the join starts with the last branch, once");
            assert!(complete(store, completion(&join[0], ok(json!({}))(&join[0]))).await);
        }
    }
    assert_eq!(status(store, run).await, RunStatus::Succeeded);
}

/// A false `if` skips its step; the step after a skipped one runs and sees the skip.
pub async fn a_false_condition_skips_a_step(store: &Arc<dyn Store>) {
    let mut submit = step("submit", "cs", &["open"], json!({}));
    submit.condition = Some("steps.open.result.eligible".into());
    let spec = pipeline(
        "apply",
        vec![
            step("open", "co", &[], json!({})),
            submit,
            step(
                "record",
                "cr",
                &["submit"],
                json!({"outcome": "{{ steps.submit.outcome }}"}),
            ),
        ],
    );
    let run = start(store, &spec, json!({})).await;
    work(store, "co", ok(json!({"eligible": false}))).await;
    assert!(
        claim(store, "cs", "w", 10, LONG_LEASE_MS).await.is_empty(),
        "submit was skipped"
    );
    let record = work(store, "cr", ok(json!({}))).await;
    assert_eq!(record[0].payload, json!({"outcome": "skipped"}));
    assert_eq!(
        states(store, run).await,
        [
            ("open".to_owned(), StepState::Succeeded),
            ("submit".to_owned(), StepState::Skipped),
            ("record".to_owned(), StepState::Succeeded),
        ]
    );
    assert_eq!(status(store, run).await, RunStatus::Succeeded);
}

/// A failed step stops the run; a retry starts only the steps that did not succeed, keeping the
/// earlier results, and a retried run can succeed.
pub async fn a_failed_run_retries_from_its_failed_steps(store: &Arc<dyn Store>) {
    let spec = pipeline(
        "retry",
        vec![
            step("a", "ra", &[], json!({})),
            step("b", "rb", &["a"], json!({"from": "{{ steps.a.result.v }}"})),
            step("c", "rc", &["b"], json!({})),
        ],
    );
    let run = start(store, &spec, json!({})).await;
    let a = work(store, "ra", ok(json!({"v": "kept"}))).await;
    work(store, "rb", |_| Verdict::Dead {
        error: "boom".into(),
    })
    .await;
    assert_eq!(status(store, run).await, RunStatus::Failed);
    let timeline = steps(store, run).await;
    assert_eq!(timeline[1].error.as_deref(), Some("boom"));
    assert_eq!(
        timeline[2].state,
        StepState::Cancelled,
        "the rest was cancelled"
    );
    match store
        .retry_task(timeline[1].task_id.expect("b has a task"), &actor())
        .await
    {
        Err(StoreError::State(why)) => assert!(why.contains("retry the run"), "{why}"),
        other => panic!("a step's task is retried through its run: {other:?}"),
    }
    match store.cancel_run(run, &actor()).await {
        Err(StoreError::State(_)) => {}
        other => panic!("a finished run cannot be cancelled: {other:?}"),
    }

    let retried = store.retry_run(run, &actor()).await.expect("retry");
    assert_eq!(retried.status, RunStatus::Running);
    assert_eq!(retried.attempt, 2);
    assert!(
        claim(store, "ra", "w", 10, LONG_LEASE_MS).await.is_empty(),
        "a is not run again"
    );
    let b = work(store, "rb", ok(json!({}))).await;
    assert_eq!(b.len(), 1, "b runs again, with a's kept result");
    assert_eq!(b[0].payload, json!({"from": "kept"}));
    work(store, "rc", ok(json!({}))).await;
    assert_eq!(status(store, run).await, RunStatus::Succeeded);
    assert_eq!(
        steps(store, run).await[0].task_id,
        Some(a[0].id),
        "a kept its task"
    );
    assert_eq!(audited(store, "pipeline.retry").await.len(), 1);
    match store.retry_run(run, &actor()).await {
        Err(StoreError::State(_)) => {}
        other => panic!("a succeeded run cannot be retried: {other:?}"),
    }
}

/// Cancelling asks running steps to stop, cancels queued and waiting ones; the run ends
/// cancelled once the running step's task reports.
pub async fn cancelling_a_run_stops_its_steps(store: &Arc<dyn Store>) {
    let spec = pipeline(
        "cancel",
        vec![
            step("running", "xa", &[], json!({})),
            step("queued", "xb", &[], json!({})),
            step("waiting", "xc", &["running"], json!({})),
        ],
    );
    let run = start(store, &spec, json!({})).await;
    let running = claim(store, "xa", "w", 10, LONG_LEASE_MS).await;
    let cancelled = store.cancel_run(run, &actor()).await.expect("cancel");
    assert_eq!(cancelled.status, RunStatus::Running, "a step still runs");
    let task = get_task(store, running[0].id).await;
    assert!(task.cancel_requested, "the running step is asked to stop");
    let queued = steps(store, run).await[1]
        .task_id
        .expect("queued has a task");
    assert_eq!(get_task(store, queued).await.status, TaskStatus::Cancelled);
    assert!(complete(store, completion(&task, Verdict::Cancelled)).await);
    assert_eq!(
        states(store, run).await,
        [
            ("running".to_owned(), StepState::Cancelled),
            ("queued".to_owned(), StepState::Cancelled),
            ("waiting".to_owned(), StepState::Cancelled),
        ]
    );
    assert_eq!(status(store, run).await, RunStatus::Cancelled);
    assert_eq!(audited(store, "pipeline.cancel").await.len(), 1);
    assert!(matches!(
        store.cancel_run(999_999, &actor()).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Starting with a key twice (in one call or two) creates one run; listings filter and page
/// newest first; retention removes only old finished runs.
pub async fn runs_start_once_per_key_and_list_newest_first(store: &Arc<dyn Store>) {
    let spec = pipeline("keyed", vec![step("only", "kq", &[], json!({}))]);
    let keyed = |key: &str| NewRun {
        spec: spec.clone(),
        input: json!({}),
        idempotency_key: Some(key.into()),
        origin: TaskOrigin::default(),
    };
    let answers = store
        .start_runs(&[keyed("k1"), keyed("k1"), keyed("k2")], &actor())
        .await
        .expect("start");
    assert!(answers[0].created && !answers[1].created && answers[2].created);
    assert_eq!(answers[0].id, answers[1].id);
    let again = store
        .start_runs(&[keyed("k2")], &actor())
        .await
        .expect("start");
    assert_eq!(again[0].id, answers[2].id);
    assert!(!again[0].created);
    assert_eq!(
        claim(store, "kq", "w", 10, LONG_LEASE_MS).await.len(),
        2,
        "two runs, two tasks"
    );

    let listed = store
        .list_runs(&PipelineRunQuery {
            limit: 10,
            pipeline: Some("keyed".into()),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|r| r.id).collect::<Vec<_>>(),
        [answers[2].id, answers[0].id]
    );
    let page = store
        .list_runs(&PipelineRunQuery {
            limit: 10,
            before_id: Some(answers[2].id),
            ..Default::default()
        })
        .await
        .expect("page");
    assert_eq!(page.len(), 1);
    let elsewhere = store
        .list_runs(&PipelineRunQuery {
            limit: 10,
            workspace: Some("another".into()),
            ..Default::default()
        })
        .await
        .expect("list by workspace");
    assert!(
        elsewhere.is_empty(),
        "runs of another workspace are not listed"
    );
    assert_eq!(
        store
            .purge_runs(crate::now_ms() + 1, 100)
            .await
            .expect("purge"),
        0,
        "running runs stay"
    );
    store
        .cancel_run(answers[0].id, &actor())
        .await
        .expect("cancel");
    let task = steps(store, answers[0].id).await[0].task_id.expect("task");
    let task = get_task(store, task).await;
    assert!(complete(store, completion(&task, Verdict::Cancelled)).await);
    let cancelled = store
        .list_runs(&PipelineRunQuery {
            limit: 10,
            pipeline: Some("keyed".into()),
            status: Some(RunStatus::Cancelled),
            ..Default::default()
        })
        .await
        .expect("list by status");
    assert_eq!(
        cancelled.iter().map(|r| r.id).collect::<Vec<_>>(),
        [answers[0].id]
    );
    assert_eq!(
        store
            .purge_runs(crate::now_ms() + 1, 100)
            .await
            .expect("purge"),
        1
    );
    assert!(
        store
            .pipeline_run(answers[0].id)
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .run_steps(answers[0].id)
            .await
            .expect("steps")
            .is_empty(),
        "steps go too"
    );
}

/// A step whose task's lease expires on its last attempt fails, and the run with it.
pub async fn a_step_whose_lease_expires_for_good_fails(store: &Arc<dyn Store>) {
    let spec = pipeline(
        "reaped",
        vec![
            step("a", "la", &[], json!({})),
            step("b", "lb", &["a"], json!({})),
        ],
    );
    let run = start(store, &spec, json!({})).await;
    let claimed = claim(store, "la", "w", 10, 1).await;
    assert_eq!(claimed.len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let reaped = store
        .reap_expired_leases(crate::now_ms(), 100)
        .await
        .expect("reap");
    assert_eq!(reaped[0].status, TaskStatus::Dead);
    assert_eq!(status(store, run).await, RunStatus::Failed);
    assert_eq!(
        states(store, run).await,
        [
            ("a".to_owned(), StepState::Failed),
            ("b".to_owned(), StepState::Cancelled),
        ]
    );
}
