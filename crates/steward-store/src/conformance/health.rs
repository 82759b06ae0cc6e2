//! Health-check stories: prober batches (raw results, roll-up increments, states,
//! transitions) written in one call and read back, history queries, and pruning.

use std::sync::Arc;

use steward_core::audit::Actor;
use steward_core::health::rollup::{OVERFLOW_MS, Rollup, percentiles};
use steward_core::health::state::{CheckState, ProbeVerdict};

use crate::health::MAX_HEALTH_PAGE;
use crate::{
    CheckRecord, CheckTransition, HealthPruned, NewTransition, ProbeBatch, ProbeRecord, Store,
    TransitionQuery,
};

/// The start of a minute, from which the stories' times count.
const T0: i64 = 1_700_000_040_000;
/// One minute.
const MINUTE: i64 = 60_000;

/// A result with every optional field empty and no conditions.
fn result(check: &str, at_ms: i64, verdict: ProbeVerdict, latency_ms: u64) -> ProbeRecord {
    ProbeRecord {
        check: check.into(),
        at_ms,
        verdict,
        latency_ms,
        status: None,
        cause: None,
        error: None,
        conditions: Vec::new(),
        cert_not_after_ms: None,
        certificates: Vec::new(),
    }
}

/// The roll-up of `samples` (latency, passed) in the minute starting at `minute_ms`.
fn rollup(minute_ms: i64, samples: &[(u64, bool)]) -> Rollup {
    let mut r = Rollup::new(minute_ms);
    for &(latency, ok) in samples {
        r.record(latency, ok);
    }
    r
}

fn state(check: &str, service: &str, state: CheckState, since_ms: i64) -> CheckRecord {
    CheckRecord {
        check: check.into(),
        service: service.into(),
        state,
        consecutive_failures: 0,
        consecutive_successes: 0,
        since_ms,
        last_probe_ms: None,
    }
}

fn transition(
    check: &str,
    service: &str,
    from: CheckState,
    to: CheckState,
    at_ms: i64,
) -> NewTransition {
    NewTransition {
        check: check.into(),
        service: service.into(),
        from,
        to,
        at_ms,
        reason: format!("{check} {from} → {to} at {at_ms}"),
    }
}

async fn record(store: &Arc<dyn Store>, batch: ProbeBatch) {
    store.record_probes(&batch).await.expect("record probes");
}

async fn results_of(store: &Arc<dyn Store>, check: &str) -> Vec<ProbeRecord> {
    store
        .probe_results(check, i64::MIN, MAX_HEALTH_PAGE)
        .await
        .expect("probe results")
}

async fn rollups_of(store: &Arc<dyn Store>, check: &str, from_ms: i64, to_ms: i64) -> Vec<Rollup> {
    store
        .check_rollups(check, from_ms, to_ms)
        .await
        .expect("check roll-ups")
}

async fn transitions(
    store: &Arc<dyn Store>,
    check: Option<&str>,
    service: Option<&str>,
    before_id: Option<i64>,
    limit: u32,
) -> Vec<CheckTransition> {
    store
        .check_transitions(&TransitionQuery {
            check: check.map(Into::into),
            service: service.map(Into::into),
            before_id,
            limit,
        })
        .await
        .expect("check transitions")
}

/// The reasons of `listed`, which name each transition.
fn reasons(listed: &[CheckTransition]) -> Vec<&str> {
    listed
        .iter()
        .map(|t| t.transition.reason.as_str())
        .collect()
}

/// A batch's results, roll-ups, states and transitions are all read back as written, every
/// field included (empty optional fields, conditions, text with quotes and non-ASCII).
pub async fn probe_batches_round_trip(store: &Arc<dyn Store>) {
    let full = ProbeRecord {
        check: "api-health".into(),
        at_ms: T0 + 1_000,
        verdict: ProbeVerdict::Fail,
        latency_ms: 1_234,
        status: Some(503),
        cause: Some("http".into()),
        error: Some("GET https://api.example.com/health → 503 « Service Unavailable »".into()),
        conditions: vec![
            (false, "[STATUS] (503) == 200".into()),
            (true, "[RESPONSE_TIME] (1234) < 5000".into()),
            (false, r#"[BODY].status ("down\n") == "UP""#.into()),
        ],
        cert_not_after_ms: Some(T0 + 90 * 86_400_000),
        certificates: vec![
            crate::CertSeen {
                path: None,
                subject: "CN=api.example.com".into(),
                issuer: "CN=R3, O=Let's Encrypt".into(),
                names: vec!["api.example.com".into(), "ü.example".into()],
                not_after_ms: T0 + 90 * 86_400_000,
            },
            crate::CertSeen {
                path: Some("/etc/letsencrypt/live/api/fullchain.pem".into()),
                subject: "CN=api".into(),
                issuer: "CN=R3".into(),
                names: Vec::new(),
                not_after_ms: T0 + 91 * 86_400_000,
            },
        ],
    };
    let bare = result("api-health", T0 + 31_000, ProbeVerdict::Pass, 0);
    let slow = ProbeRecord {
        status: Some(200),
        conditions: vec![(true, "[STATUS] (200) == 200".into())],
        ..result("db", T0 + 2_000, ProbeVerdict::SlowPass, 61_000)
    };
    let api_minute = rollup(T0, &[(1_234, false), (0, true)]);
    let db_minute = rollup(T0, &[(61_000, true)]);
    let states = vec![
        CheckRecord {
            consecutive_failures: 1,
            consecutive_successes: 0,
            last_probe_ms: Some(T0 + 31_000),
            ..state("api-health", "api", CheckState::Up, T0)
        },
        CheckRecord {
            consecutive_successes: 1,
            last_probe_ms: Some(T0 + 2_000),
            ..state("db", "postgres", CheckState::Degraded, T0 + 2_000)
        },
        state("never-probed", "cron", CheckState::Unknown, T0),
    ];
    let changes = vec![
        transition("api-health", "api", CheckState::Unknown, CheckState::Up, T0),
        transition(
            "db",
            "postgres",
            CheckState::Unknown,
            CheckState::Degraded,
            T0 + 2_000,
        ),
    ];
    record(
        store,
        ProbeBatch {
            results: vec![full.clone(), slow.clone(), bare.clone()],
            rollups: vec![
                ("api-health".into(), api_minute.clone()),
                ("db".into(), db_minute.clone()),
            ],
            states: states.clone(),
            transitions: changes.clone(),
            audit: vec![crate::audit::check_run(
                &Actor::key("ops", Some("192.0.2.7".into())),
                "api-health",
                Some("shop".into()),
                &full,
            )],
        },
    )
    .await;
    let audited = store
        .audit_events(&crate::AuditQuery {
            action: Some("check.run".into()),
            limit: 10,
            ..crate::AuditQuery::default()
        })
        .await
        .expect("audit events");
    assert_eq!(audited.len(), 1, "the run is audited with its result");
    assert_eq!(audited[0].target, "api-health");
    assert_eq!(audited[0].workspace.as_deref(), Some("shop"));
    assert_eq!(audited[0].details["verdict"], "fail");

    assert_eq!(
        results_of(store, "api-health").await,
        [bare, full],
        "every field, newest first"
    );
    assert_eq!(results_of(store, "db").await, [slow]);
    assert!(results_of(store, "never-probed").await.is_empty());
    assert_eq!(
        rollups_of(store, "api-health", T0, T0 + MINUTE).await,
        [api_minute]
    );
    assert_eq!(rollups_of(store, "db", T0, T0 + MINUTE).await, [db_minute]);
    assert_eq!(
        store.check_records().await.expect("check records"),
        states,
        "every state, by check name"
    );
    let listed = transitions(store, None, None, None, 10).await;
    assert_eq!(
        listed
            .iter()
            .map(|t| t.transition.clone())
            .collect::<Vec<_>>(),
        changes.into_iter().rev().collect::<Vec<_>>(),
        "every transition, newest first"
    );
    assert!(listed[0].id > listed[1].id, "ids increase: {listed:?}");
}

/// Roll-up increments of the same check and minute add up, whether they come in one batch or
/// in two; other minutes and other checks stay apart; windows are `[from, to)`, oldest first;
/// and percentiles over the stored roll-ups are those of the samples.
pub async fn rollup_increments_add_up(store: &Arc<dyn Store>) {
    let (m0, m1, m2) = (T0, T0 + MINUTE, T0 + 2 * MINUTE);
    record(
        store,
        ProbeBatch {
            rollups: vec![
                ("web".into(), rollup(m0, &[(5, true), (12, true)])),
                ("db".into(), rollup(m0, &[(2, true)])),
                ("web".into(), rollup(m1, &[(30, true)])),
                ("web".into(), rollup(m0, &[(700, false)])),
            ],
            ..ProbeBatch::default()
        },
    )
    .await;
    record(
        store,
        ProbeBatch {
            rollups: vec![("web".into(), rollup(m0, &[(5, true), (70_000, false)]))],
            ..ProbeBatch::default()
        },
    )
    .await;

    let web_samples = [
        (5, true),
        (12, true),
        (700, false),
        (5, true),
        (70_000, false),
    ];
    let web = rollups_of(store, "web", m0, m2).await;
    assert_eq!(
        web,
        [rollup(m0, &web_samples), rollup(m1, &[(30, true)])],
        "the same minute adds up, within a batch and across batches; oldest first"
    );
    assert_eq!(
        rollups_of(store, "db", m0, m2).await,
        [rollup(m0, &[(2, true)])],
        "another check's minute stays apart"
    );
    assert_eq!(
        rollups_of(store, "web", m0, m1).await,
        [rollup(m0, &web_samples)],
        "the window's end is excluded"
    );
    assert_eq!(
        rollups_of(store, "web", m0 + 1, m2).await,
        [rollup(m1, &[(30, true)])],
        "a minute starting before the window is excluded"
    );
    assert!(rollups_of(store, "web", m2, m2 + MINUTE).await.is_empty());
    assert!(rollups_of(store, "nobody", m0, m2).await.is_empty());

    let window = percentiles(&web);
    let mut all = web_samples.to_vec();
    all.push((30, true));
    assert_eq!(window, percentiles(&[rollup(m0, &all)]));
    assert_eq!((window.count, window.failures), (6, 2));
    // 5, 5, 12, 30, 700, 70 000: the median is in the bucket up to 13 ms, the tail over 60 s.
    assert_eq!(window.p50_ms, Some(13));
    assert_eq!(window.p99_ms, Some(OVERFLOW_MS));
}

/// A check's stored state is replaced by each later one (other checks' stay); a check listed
/// twice in one batch ends with the later state.
pub async fn check_states_are_replaced(store: &Arc<dyn Store>) {
    let a0 = state("a", "svc-a", CheckState::Unknown, T0);
    let b0 = CheckRecord {
        consecutive_successes: 2,
        last_probe_ms: Some(T0),
        ..state("b", "svc-b", CheckState::Up, T0)
    };
    record(
        store,
        ProbeBatch {
            states: vec![a0, b0.clone()],
            ..ProbeBatch::default()
        },
    )
    .await;
    let a1 = CheckRecord {
        consecutive_failures: 3,
        last_probe_ms: Some(T0 + 5_000),
        ..state("a", "svc-a2", CheckState::Down, T0 + 5_000)
    };
    record(
        store,
        ProbeBatch {
            states: vec![a1.clone()],
            ..ProbeBatch::default()
        },
    )
    .await;
    assert_eq!(
        store.check_records().await.expect("records"),
        [a1.clone(), b0.clone()],
        "a's state replaced (service included), b's kept"
    );

    let b1 = CheckRecord {
        consecutive_failures: 1,
        consecutive_successes: 0,
        last_probe_ms: Some(T0 + 6_000),
        ..b0
    };
    let b2 = CheckRecord {
        consecutive_failures: 0,
        consecutive_successes: 1,
        last_probe_ms: Some(T0 + 7_000),
        ..state("b", "svc-b", CheckState::Degraded, T0 + 7_000)
    };
    record(
        store,
        ProbeBatch {
            states: vec![b1, b2.clone()],
            ..ProbeBatch::default()
        },
    )
    .await;
    assert_eq!(
        store.check_records().await.expect("records"),
        [a1, b2],
        "the later of two states in one batch wins"
    );
}

/// A check's raw results come newest first, from `since_ms` (inclusive), at most `limit`, and
/// only that check's.
pub async fn probe_results_page_newest_first(store: &Arc<dyn Store>) {
    let at = |i: i64| T0 + i * 1_000;
    let mut results = Vec::new();
    for i in 0..10 {
        results.push(result("web", at(i), ProbeVerdict::Pass, 10));
        results.push(result("other", at(i), ProbeVerdict::Fail, 20));
    }
    record(
        store,
        ProbeBatch {
            results,
            ..ProbeBatch::default()
        },
    )
    .await;
    let times = |found: Vec<ProbeRecord>| {
        assert!(found.iter().all(|r| r.check == "web"), "{found:?}");
        found.iter().map(|r| r.at_ms).collect::<Vec<_>>()
    };
    let page = |since_ms: i64, limit: u32| {
        let store = Arc::clone(store);
        async move {
            store
                .probe_results("web", since_ms, limit)
                .await
                .expect("probe results")
        }
    };
    assert_eq!(
        times(page(i64::MIN, 100).await),
        (0..10).rev().map(at).collect::<Vec<_>>(),
        "newest first"
    );
    assert_eq!(
        times(page(at(4), 100).await),
        (4..10).rev().map(at).collect::<Vec<_>>(),
        "since is inclusive"
    );
    assert_eq!(
        times(page(at(4), 3).await),
        [at(9), at(8), at(7)],
        "at most limit, the newest"
    );
    assert!(
        page(at(4), 0).await.is_empty(),
        "a limit of 0 lists nothing"
    );
    assert!(page(at(10), 100).await.is_empty(), "nothing that recent");
    assert!(
        store
            .probe_results("nobody", i64::MIN, 100)
            .await
            .expect("probe results")
            .is_empty()
    );
}

/// Transitions list newest first, by check, by service or both, in pages below `before_id`.
pub async fn check_transitions_filter_and_page(store: &Arc<dyn Store>) {
    use CheckState::{Down, Unknown, Up};
    let t1 = transition("a1", "svc-a", Unknown, Up, T0);
    let t2 = transition("b1", "svc-b", Unknown, Up, T0);
    let t3 = transition("a2", "svc-a", Unknown, Down, T0 + 1_000);
    let t4 = transition("a1", "svc-a", Up, Down, T0 + 2_000);
    let t5 = transition("a1", "svc-a", Down, Up, T0 + 3_000);
    for batch in [
        vec![t1.clone(), t2.clone(), t3.clone()],
        vec![t4.clone(), t5.clone()],
    ] {
        record(
            store,
            ProbeBatch {
                transitions: batch,
                ..ProbeBatch::default()
            },
        )
        .await;
    }
    let all = transitions(store, None, None, None, 100).await;
    assert_eq!(
        reasons(&all),
        [&t5, &t4, &t3, &t2, &t1].map(|t| t.reason.as_str()),
        "newest first, across batches"
    );
    assert!(
        all.windows(2).all(|w| w[0].id > w[1].id),
        "ids increase in recording order: {all:?}"
    );
    let id = |t: &NewTransition| {
        all.iter()
            .find(|c| c.transition == *t)
            .map(|c| c.id)
            .expect("listed")
    };

    assert_eq!(
        reasons(&transitions(store, Some("a1"), None, None, 100).await),
        [&t5, &t4, &t1].map(|t| t.reason.as_str()),
        "by check"
    );
    assert_eq!(
        reasons(&transitions(store, None, Some("svc-a"), None, 100).await),
        [&t5, &t4, &t3, &t1].map(|t| t.reason.as_str()),
        "by service"
    );
    assert_eq!(
        reasons(&transitions(store, None, Some("svc-b"), None, 100).await),
        [t2.reason.as_str()]
    );
    assert_eq!(
        reasons(&transitions(store, Some("a2"), Some("svc-a"), None, 100).await),
        [t3.reason.as_str()],
        "by check and service"
    );
    assert!(
        transitions(store, Some("a1"), Some("svc-b"), None, 100)
            .await
            .is_empty()
    );
    assert!(transitions(store, None, None, None, 0).await.is_empty());

    let first = transitions(store, None, None, None, 2).await;
    assert_eq!(reasons(&first), [&t5, &t4].map(|t| t.reason.as_str()));
    let second = transitions(store, None, None, Some(id(&t4)), 2).await;
    assert_eq!(reasons(&second), [&t3, &t2].map(|t| t.reason.as_str()));
    let third = transitions(store, None, None, Some(id(&t2)), 2).await;
    assert_eq!(reasons(&third), [t1.reason.as_str()]);
    assert!(
        transitions(store, None, None, Some(id(&t1)), 2)
            .await
            .is_empty()
    );
    assert_eq!(
        reasons(&transitions(store, Some("a1"), None, Some(id(&t4)), 100).await),
        [t1.reason.as_str()],
        "pages by check"
    );
}

/// Pruning removes raw results started before its first cut-off and roll-ups and transitions
/// before its second, nothing at or after them and no state, and says how many it removed.
pub async fn prune_removes_only_older_health_rows(store: &Arc<dyn Store>) {
    use CheckState::{Down, Up};
    let (m0, m1, m2) = (T0, T0 + MINUTE, T0 + 2 * MINUTE);
    let at = |i: i64| T0 + i * 1_000;
    let states = vec![state("web", "svc", Up, T0)];
    record(
        store,
        ProbeBatch {
            results: (0..3)
                .map(|i| result("web", at(i), ProbeVerdict::Pass, 1))
                .collect(),
            rollups: vec![
                ("web".into(), rollup(m0, &[(1, true)])),
                ("web".into(), rollup(m1, &[(1, true)])),
                ("web".into(), rollup(m2, &[(1, true)])),
                ("db".into(), rollup(m0, &[(1, true)])),
            ],
            states: states.clone(),
            transitions: vec![
                transition("web", "svc", Up, Down, m0),
                transition("web", "svc", Down, Up, m1),
                transition("web", "svc", Up, Down, m2),
            ],
            audit: Vec::new(),
        },
    )
    .await;

    let pruned = store.prune_health(at(1), m1).await.expect("prune health");
    assert_eq!(
        pruned,
        HealthPruned {
            results: 1,
            rollups: 2,
            transitions: 1,
        }
    );
    assert_eq!(
        results_of(store, "web")
            .await
            .iter()
            .map(|r| r.at_ms)
            .collect::<Vec<_>>(),
        [at(2), at(1)],
        "a result at the cut-off stays"
    );
    assert_eq!(
        rollups_of(store, "web", i64::MIN, i64::MAX)
            .await
            .iter()
            .map(|r| r.minute_ms)
            .collect::<Vec<_>>(),
        [m1, m2],
        "a roll-up at the cut-off stays"
    );
    assert!(rollups_of(store, "db", i64::MIN, i64::MAX).await.is_empty());
    assert_eq!(
        transitions(store, None, None, None, 100)
            .await
            .iter()
            .map(|t| t.transition.at_ms)
            .collect::<Vec<_>>(),
        [m2, m1],
        "a transition at the cut-off stays"
    );
    assert_eq!(
        store.check_records().await.expect("records"),
        states,
        "states are never pruned"
    );
    assert_eq!(
        store
            .prune_health(at(1), m1)
            .await
            .expect("prune health again"),
        HealthPruned::default(),
        "a second pass finds nothing"
    );
}

/// An empty batch succeeds and writes nothing; a batch with only some parts writes those.
pub async fn an_empty_probe_batch_is_a_no_op(store: &Arc<dyn Store>) {
    record(store, ProbeBatch::default()).await;
    assert!(store.check_records().await.expect("records").is_empty());
    assert!(transitions(store, None, None, None, 100).await.is_empty());
    let only_state = state("web", "svc", CheckState::Unknown, T0);
    record(
        store,
        ProbeBatch {
            states: vec![only_state.clone()],
            ..ProbeBatch::default()
        },
    )
    .await;
    record(store, ProbeBatch::default()).await;
    assert_eq!(store.check_records().await.expect("records"), [only_state]);
    assert!(results_of(store, "web").await.is_empty());
    assert!(
        rollups_of(store, "web", i64::MIN, i64::MAX)
            .await
            .is_empty()
    );
    assert!(transitions(store, None, None, None, 100).await.is_empty());
}

/// A prober's second (5,000 results over 50 checks, with their roll-ups, states and
/// transitions) is written in one call; history pages are capped at [`MAX_HEALTH_PAGE`]; a
/// pass prunes more rows than one chunk of any backend.
pub async fn a_batch_of_five_thousand_results_is_one_call(store: &Arc<dyn Store>) {
    const CHECKS: usize = 50;
    const PER_CHECK: i64 = 100;
    let check = |i: usize| format!("bulk-{i:02}");
    let mut batch = ProbeBatch::default();
    for probe in 0..PER_CHECK {
        for i in 0..CHECKS {
            let at_ms = T0 + probe * 600;
            let passed = probe % 10 != 0;
            let verdict = if passed {
                ProbeVerdict::Pass
            } else {
                ProbeVerdict::Fail
            };
            let latency = u64::try_from(probe).expect("positive") * 3;
            batch
                .results
                .push(result(&check(i), at_ms, verdict, latency));
            batch
                .rollups
                .push((check(i), rollup(at_ms, &[(latency, passed)])));
        }
    }
    for i in 0..CHECKS {
        batch
            .states
            .push(state(&check(i), "bulk", CheckState::Up, T0));
        batch.transitions.push(transition(
            &check(i),
            "bulk",
            CheckState::Unknown,
            CheckState::Up,
            T0,
        ));
    }
    assert_eq!(batch.results.len(), 5_000);
    record(store, batch).await;

    let mut results = 0;
    let mut counted = 0;
    let mut failures = 0;
    for i in 0..CHECKS {
        let found = results_of(store, &check(i)).await;
        assert_eq!(found.len(), 100, "{}", check(i));
        results += found.len();
        let minutes = rollups_of(store, &check(i), T0, T0 + 60 * MINUTE).await;
        assert_eq!(
            minutes.len(),
            1,
            "100 probes 0.6 s apart fall in one minute"
        );
        counted += minutes.iter().map(|r| r.count).sum::<u64>();
        failures += minutes.iter().map(|r| r.failures).sum::<u64>();
    }
    assert_eq!(results, 5_000, "every result of the batch");
    assert_eq!((counted, failures), (5_000, 500), "every increment added");
    assert_eq!(store.check_records().await.expect("records").len(), CHECKS);
    assert_eq!(
        transitions(store, None, Some("bulk"), None, 100)
            .await
            .len(),
        CHECKS
    );

    // More than a page of one check's history: the newest page, and no more, is returned.
    let over = i64::from(MAX_HEALTH_PAGE) + 1;
    record(
        store,
        ProbeBatch {
            results: (0..over)
                .map(|i| result("busy", T0 + i, ProbeVerdict::Pass, 1))
                .collect(),
            transitions: (0..over)
                .map(|i| transition("busy", "busy", CheckState::Up, CheckState::Down, T0 + i))
                .collect(),
            ..ProbeBatch::default()
        },
    )
    .await;
    let page = store
        .probe_results("busy", i64::MIN, u32::MAX)
        .await
        .expect("probe results");
    assert_eq!(page.len(), MAX_HEALTH_PAGE as usize, "results are capped");
    assert_eq!(
        (page[0].at_ms, page[page.len() - 1].at_ms),
        (T0 + over - 1, T0 + 1),
        "the newest page"
    );
    assert_eq!(
        transitions(store, Some("busy"), None, None, u32::MAX)
            .await
            .len(),
        MAX_HEALTH_PAGE as usize,
        "transitions are capped"
    );

    let pruned = store
        .prune_health(i64::MAX, i64::MAX)
        .await
        .expect("prune everything");
    let total_results = 5_000 + u64::try_from(over).expect("positive");
    assert_eq!(
        pruned,
        HealthPruned {
            results: total_results,
            rollups: CHECKS as u64,
            transitions: CHECKS as u64 + u64::try_from(over).expect("positive"),
        }
    );
    assert!(results_of(store, "busy").await.is_empty());
}
