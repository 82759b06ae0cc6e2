use proptest::prelude::*;

use super::run::*;
use super::*;
use serde_json::json;

fn steps(spec: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    spec.iter()
        .map(|(name, needs)| {
            (
                (*name).to_owned(),
                needs.iter().map(|n| (*n).to_owned()).collect(),
            )
        })
        .collect()
}

fn spec(
    on_failure: FailurePolicy,
    steps: &[(&str, &[&str], Option<&str>, serde_json::Value)],
) -> spec::PipelineSpec {
    spec::PipelineSpec {
        name: "p".into(),
        workspace: None,
        description: None,
        on_failure,
        steps: steps
            .iter()
            .map(|(name, needs, condition, payload)| spec::StepSpec {
                name: (*name).into(),
                queue: "q".into(),
                kind: "noop".into(),
                payload: payload.clone(),
                needs: needs.iter().map(|n| (*n).to_owned()).collect(),
                condition: condition.map(Into::into),
                priority: 0,
                max_attempts: None,
                timeout_ms: None,
                node: None,
            })
            .collect(),
    }
}

fn record(state: StepState, result: Option<serde_json::Value>) -> StepRecord {
    StepRecord {
        state,
        result,
        error: None,
    }
}

fn started(changes: &[StepChange]) -> Vec<usize> {
    changes
        .iter()
        .filter_map(|c| match c {
            StepChange::Start { step, .. } => Some(*step),
            _ => None,
        })
        .collect()
}

const INPUT: RunRef<'static> = RunRef {
    id: 7,
    input: &serde_json::Value::Null,
};

#[test]
fn a_chain_runs_one_step_after_the_other_with_earlier_results() {
    let p = spec(
        FailurePolicy::Stop,
        &[
            (
                "jona",
                &["albi"],
                None,
                json!({"text": "{{ steps.albi.result.summary }}"}),
            ),
            ("alba", &[], None, json!({"run": "{{ run.id }}"})),
            (
                "albi",
                &["alba"],
                None,
                json!({"url": "{{ steps.alba.result.url }}"}),
            ),
        ],
    );
    let dag = p.dag().unwrap();
    assert_eq!(dag.order(), [1, 2, 0], "alba, albi, jona");
    let mut steps = vec![StepRecord::waiting(); 3];
    let changes = advance(&p, &dag, INPUT, &steps, false);
    assert_eq!(
        changes,
        [StepChange::Start {
            step: 1,
            payload: json!({"run": "7"})
        }]
    );
    steps[1] = record(StepState::Succeeded, Some(json!({"url": "http://x/1"})));
    let changes = advance(&p, &dag, INPUT, &steps, false);
    assert_eq!(
        changes,
        [StepChange::Start {
            step: 2,
            payload: json!({"url": "http://x/1"})
        }]
    );
    steps[2] = record(StepState::Failed, None);
    let changes = advance(&p, &dag, INPUT, &steps, false);
    assert!(
        matches!(&changes[..], [StepChange::Cancel { step: 0, reason }] if reason == "step `albi` failed"),
        "{changes:?}"
    );
    steps[0].state = StepState::Cancelled;
    assert_eq!(RunStatus::of(&states(&steps)), RunStatus::Failed);
}

fn states(steps: &[StepRecord]) -> Vec<StepState> {
    steps.iter().map(|s| s.state).collect()
}

#[test]
fn a_fan_out_joins_only_when_every_branch_ended() {
    let branches: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
    let mut declared: Vec<(&str, &[&str], Option<&str>, serde_json::Value)> =
        vec![("split", &[], None, json!({}))];
    let split: &[&str] = &["split"];
    for branch in &branches {
        declared.push((branch.as_str(), split, None, json!({})));
    }
    let names: Vec<&str> = branches.iter().map(String::as_str).collect();
    declared.push(("join", &names, None, json!({})));
    let p = spec(FailurePolicy::Stop, &declared);
    let dag = p.dag().unwrap();
    let mut steps = vec![StepRecord::waiting(); 12];
    steps[0].state = StepState::Succeeded;
    assert_eq!(
        started(&advance(&p, &dag, INPUT, &steps, false)),
        (1..=10).collect::<Vec<_>>()
    );
    for step in steps.iter_mut().take(10).skip(1) {
        step.state = StepState::Succeeded;
    }
    steps[10].state = StepState::Running;
    assert!(
        advance(&p, &dag, INPUT, &steps, false).is_empty(),
        "one branch still runs"
    );
    steps[10].state = StepState::Succeeded;
    assert_eq!(started(&advance(&p, &dag, INPUT, &steps, false)), [11]);
    steps[11].state = StepState::Succeeded;
    assert_eq!(RunStatus::of(&states(&steps)), RunStatus::Succeeded);
}

#[test]
fn a_false_condition_skips_and_a_skipped_need_lets_the_next_step_run() {
    let p = spec(
        FailurePolicy::Stop,
        &[
            ("open", &[], None, json!({})),
            (
                "submit",
                &["open"],
                Some("steps.open.result.eligible"),
                json!({}),
            ),
            (
                "record",
                &["submit"],
                None,
                json!({"outcome": "{{ steps.submit.outcome }}"}),
            ),
        ],
    );
    let dag = p.dag().unwrap();
    let steps = vec![
        record(StepState::Succeeded, Some(json!({"eligible": false}))),
        StepRecord::waiting(),
        StepRecord::waiting(),
    ];
    let changes = advance(&p, &dag, INPUT, &steps, false);
    assert_eq!(
        changes,
        [
            StepChange::Skip {
                step: 1,
                reason: "its condition `steps.open.result.eligible` is false".into()
            },
            StepChange::Start {
                step: 2,
                payload: json!({"outcome": "skipped"})
            },
        ]
    );
}

#[test]
fn under_continue_a_failure_skips_only_what_depends_on_it_and_a_condition_may_still_run() {
    let p = spec(
        FailurePolicy::Continue,
        &[
            ("a", &[], None, json!({})),
            ("b", &[], None, json!({})),
            ("after_a", &["a"], None, json!({})),
            (
                "record",
                &["a"],
                Some("steps.a.outcome == 'failed'"),
                json!({"error": "{{ steps.a.error }}"}),
            ),
        ],
    );
    let dag = p.dag().unwrap();
    let mut steps = vec![StepRecord::waiting(); 4];
    steps[0] = StepRecord {
        state: StepState::Failed,
        result: None,
        error: Some("boom".into()),
    };
    steps[1].state = StepState::Running;
    let changes = advance(&p, &dag, INPUT, &steps, false);
    assert_eq!(
        changes,
        [
            StepChange::Skip {
                step: 2,
                reason: "step `a` failed".into()
            },
            StepChange::Start {
                step: 3,
                payload: json!({"error": "boom"})
            },
        ]
    );
}

#[test]
fn a_template_error_fails_the_step_with_its_message() {
    let p = spec(
        FailurePolicy::Stop,
        &[
            ("a", &[], None, json!({})),
            (
                "b",
                &["a"],
                None,
                json!({"url": "{{ steps.a.result.url }}"}),
            ),
        ],
    );
    let dag = p.dag().unwrap();
    let steps = vec![
        record(StepState::Succeeded, Some(json!({}))),
        StepRecord::waiting(),
    ];
    let changes = advance(&p, &dag, INPUT, &steps, false);
    let [StepChange::Fail { step: 1, error }] = &changes[..] else {
        panic!("{changes:?}");
    };
    assert!(
        error.contains("payload url") && error.contains("undefined"),
        "{error}"
    );
}

#[test]
fn cancelling_stops_running_steps_and_cancels_waiting_ones() {
    let p = spec(
        FailurePolicy::Continue,
        &[("a", &[], None, json!({})), ("b", &["a"], None, json!({}))],
    );
    let dag = p.dag().unwrap();
    let steps = vec![record(StepState::Running, None), StepRecord::waiting()];
    let changes = advance(&p, &dag, INPUT, &steps, true);
    assert_eq!(
        changes,
        [
            StepChange::Stop { step: 0 },
            StepChange::Cancel {
                step: 1,
                reason: "the run was cancelled".into()
            },
        ]
    );
}

#[test]
fn templates_may_read_only_the_steps_they_wait_for() {
    let p = spec(
        FailurePolicy::Stop,
        &[
            ("a", &[], None, json!({})),
            (
                "b",
                &["a"],
                None,
                json!({"x": "{{ steps.a.result }} {{ input.topic }}"}),
            ),
            (
                "c",
                &["b"],
                Some("steps.a.outcome == 'succeeded'"),
                json!({"x": "{{ steps.d.result }}"}),
            ),
            ("d", &[], None, json!({"x": "{{ secrets.token }}"})),
        ],
    );
    let dag = p.dag().unwrap();
    let checked: Vec<_> = (0..4)
        .map(|i| spec::check_step(Some(&dag), i, &p.steps[i]))
        .collect();
    assert_eq!(checked[1], (Ok(()), Ok(())));
    assert_eq!(checked[2].0, Err(spec::StepError::NotNeeded("d".into())));
    assert_eq!(checked[2].1, Ok(()), "a is needed through b");
    assert_eq!(
        checked[3].0,
        Err(spec::StepError::UnknownName("secrets".into()))
    );
    let mut bad = p.steps[1].clone();
    bad.payload = json!({"x": "{{ steps.a.result "});
    bad.condition = Some("steps.a.outcome ==".into());
    let (payload, condition) = spec::check_step(Some(&dag), 1, &bad);
    assert!(
        matches!(payload, Err(spec::StepError::Syntax(_))),
        "{payload:?}"
    );
    assert!(
        matches!(condition, Err(spec::StepError::Syntax(_))),
        "{condition:?}"
    );
}

#[test]
fn bad_needs_name_the_steps_at_fault() {
    let error = |spec: &[(&str, &[&str])]| Dag::new(&steps(spec)).unwrap_err().to_string();
    assert_eq!(
        error(&[("a", &["b"])]),
        "step `a` needs `b`, which is not a step of this pipeline"
    );
    assert_eq!(error(&[("a", &["a"])]), "step `a` needs itself");
    assert_eq!(
        error(&[("a", &[]), ("a", &[])]),
        "step `a` is declared twice"
    );
    assert_eq!(
        error(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"]), ("d", &[])]),
        "steps need each other in a cycle: a → c → b → a"
    );
    assert_eq!(error(&[]), "a pipeline has at least one step");
}

#[test]
fn a_need_written_twice_counts_once() {
    let dag = Dag::new(&steps(&[("a", &[]), ("b", &["a", "a"])])).unwrap();
    assert_eq!(dag.needs(1), [0]);
    assert_eq!(dag.needed_by(0), [1]);
}

#[test]
fn a_run_is_over_only_when_every_step_ended() {
    use StepState::*;
    assert_eq!(RunStatus::of(&[Succeeded, Running]), RunStatus::Running);
    assert_eq!(RunStatus::of(&[Succeeded, Skipped]), RunStatus::Succeeded);
    assert_eq!(RunStatus::of(&[Cancelled, Failed]), RunStatus::Failed);
    assert_eq!(RunStatus::of(&[Cancelled, Succeeded]), RunStatus::Cancelled);
    for state in StepState::ALL {
        assert_eq!(state.as_str().parse::<StepState>(), Ok(state));
    }
}

/// Whether step `from` needs step `to`, directly or not.
fn reaches(edges: &[Vec<usize>], from: usize, to: usize) -> bool {
    let mut seen = vec![false; edges.len()];
    let mut stack = vec![from];
    while let Some(i) = stack.pop() {
        for &j in &edges[i] {
            if j == to {
                return true;
            }
            if !seen[j] {
                seen[j] = true;
                stack.push(j);
            }
        }
    }
    false
}

fn graph() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1usize..12).prop_flat_map(|n| {
        proptest::collection::vec(proptest::collection::vec(0..n, 0..4), n).prop_map(
            move |mut edges| {
                for (i, needs) in edges.iter_mut().enumerate() {
                    needs.retain(|&j| j != i);
                }
                edges
            },
        )
    })
}

fn named(edges: &[Vec<usize>]) -> Vec<(String, Vec<String>)> {
    edges
        .iter()
        .enumerate()
        .map(|(i, needs)| {
            (
                format!("s{i}"),
                needs.iter().map(|j| format!("s{j}")).collect(),
            )
        })
        .collect()
}

proptest! {
    #[test]
    fn a_graph_is_ordered_exactly_when_it_has_no_cycle(edges in graph()) {
        let cyclic = (0..edges.len()).any(|i| reaches(&edges, i, i));
        match Dag::new(&named(&edges)) {
            Ok(dag) => {
                prop_assert!(!cyclic);
                let position: Vec<usize> = {
                    let mut p = vec![0; edges.len()];
                    for (at, &i) in dag.order().iter().enumerate() {
                        p[i] = at;
                    }
                    p
                };
                prop_assert_eq!(dag.order().len(), edges.len());
                for (i, needs) in edges.iter().enumerate() {
                    for &j in needs {
                        prop_assert!(position[j] < position[i], "s{} runs before s{}", j, i);
                    }
                }
            }
            Err(DagError::Cycle(cycle)) => {
                prop_assert!(cyclic);
                let index = |name: &String| name[1..].parse::<usize>().unwrap();
                for (k, name) in cycle.iter().enumerate() {
                    let next = &cycle[(k + 1) % cycle.len()];
                    prop_assert!(edges[index(name)].contains(&index(next)), "{} needs {}", name, next);
                }
            }
            Err(other) => prop_assert!(false, "unexpected {}", other),
        }
    }

    #[test]
    fn a_started_step_has_every_need_ended_and_a_stopped_run_starts_nothing(
        edges in graph(),
        picks in proptest::collection::vec(0usize..6, 12),
        policy in prop_oneof![Just(FailurePolicy::Stop), Just(FailurePolicy::Continue)],
    ) {
        let named = named(&edges);
        let declared: Vec<(&str, &[String])> = named.iter().map(|(n, needs)| (n.as_str(), needs.as_slice())).collect();
        let p = spec::PipelineSpec {
            name: "p".into(),
            workspace: None,
            description: None,
            on_failure: policy,
            steps: declared.iter().map(|(name, needs)| spec::StepSpec {
                name: (*name).into(),
                queue: "q".into(),
                kind: "noop".into(),
                payload: json!({}),
                needs: needs.to_vec(),
                condition: None,
                priority: 0,
                max_attempts: None,
                timeout_ms: None,
                node: None,
            }).collect(),
        };
        let Ok(dag) = p.dag() else { return Ok(()) };
        let steps: Vec<StepRecord> = (0..edges.len()).map(|i| record(StepState::ALL[picks[i]], None)).collect();
        let failed = steps.iter().any(|s| matches!(s.state, StepState::Failed | StepState::Cancelled));
        let changes = advance(&p, &dag, INPUT, &steps, false);
        let mut after = steps.clone();
        for change in &changes {
            match change {
                StepChange::Start { step, .. } => {
                    prop_assert_eq!(steps[*step].state, StepState::Waiting);
                    prop_assert!(!(failed && policy == FailurePolicy::Stop), "a stopped run starts nothing");
                    prop_assert!(dag.needs(*step).iter().all(|&j| matches!(after[j].state, StepState::Succeeded | StepState::Skipped)));
                    after[*step].state = StepState::Running;
                }
                StepChange::Skip { step, .. } => after[*step].state = StepState::Skipped,
                StepChange::Fail { step, .. } => after[*step].state = StepState::Failed,
                StepChange::Cancel { step, .. } => after[*step].state = StepState::Cancelled,
                StepChange::Stop { step } => prop_assert_eq!(steps[*step].state, StepState::Running),
            }
        }
        // Nothing is left that could be decided now.
        let again = advance(&p, &dag, INPUT, &after, false);
        prop_assert!(again.iter().all(|c| matches!(c, StepChange::Stop { .. })), "{:?}", again);
    }
}
