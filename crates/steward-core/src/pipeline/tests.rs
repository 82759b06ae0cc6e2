use proptest::prelude::*;

use super::*;

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

#[test]
fn a_chain_runs_one_step_after_the_other() {
    let dag = Dag::new(&steps(&[
        ("jona", &["albi"]),
        ("alba", &[]),
        ("albi", &["alba"]),
    ]))
    .unwrap();
    assert_eq!(dag.order(), [1, 2, 0], "alba, albi, jona");
    let mut states = vec![StepState::Waiting; 3];
    assert_eq!(dag.ready(&states), [1]);
    states[1] = StepState::Succeeded;
    assert_eq!(dag.ready(&states), [2]);
    states[2] = StepState::Failed;
    assert!(dag.ready(&states).is_empty());
    assert_eq!(
        dag.blocked(&states),
        [0],
        "jona cannot run once albi failed"
    );
    states[0] = StepState::Skipped;
    assert_eq!(outcome(&states), RunOutcome::Failed);
}

#[test]
fn a_fan_out_joins_only_when_every_branch_succeeded() {
    let mut spec: Vec<(String, Vec<String>)> = vec![("split".into(), vec![])];
    let branches: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
    for branch in &branches {
        spec.push((branch.clone(), vec!["split".into()]));
    }
    spec.push(("join".into(), branches.clone()));
    let dag = Dag::new(&spec).unwrap();
    let mut states = vec![StepState::Waiting; spec.len()];
    states[0] = StepState::Succeeded;
    assert_eq!(dag.ready(&states), (1..=10).collect::<Vec<_>>());
    for state in states.iter_mut().take(10).skip(1) {
        *state = StepState::Succeeded;
    }
    states[10] = StepState::Running;
    assert!(dag.ready(&states).is_empty(), "one branch still runs");
    states[10] = StepState::Succeeded;
    assert_eq!(dag.ready(&states), [11]);
    states[11] = StepState::Succeeded;
    assert_eq!(outcome(&states), RunOutcome::Succeeded);
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
fn outcomes_wait_for_every_step() {
    use StepState::*;
    assert_eq!(outcome(&[Succeeded, Running]), RunOutcome::Going);
    assert_eq!(outcome(&[Succeeded, Skipped]), RunOutcome::Succeeded);
    assert_eq!(outcome(&[Cancelled, Succeeded]), RunOutcome::Cancelled);
    assert_eq!(outcome(&[Cancelled, Failed]), RunOutcome::Failed);
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
    fn ready_steps_have_their_needs_met_and_are_never_blocked(
        edges in graph(),
        picks in proptest::collection::vec(0usize..6, 12),
    ) {
        let Ok(dag) = Dag::new(&named(&edges)) else { return Ok(()) };
        let all = [
            StepState::Waiting,
            StepState::Running,
            StepState::Succeeded,
            StepState::Failed,
            StepState::Skipped,
            StepState::Cancelled,
        ];
        let states: Vec<StepState> = (0..edges.len()).map(|i| all[picks[i]]).collect();
        let ready = dag.ready(&states);
        let blocked = dag.blocked(&states);
        for &i in &ready {
            prop_assert_eq!(states[i], StepState::Waiting);
            prop_assert!(dag.needs(i).iter().all(|&j| states[j] == StepState::Succeeded));
            prop_assert!(!blocked.contains(&i));
        }
        for &i in &blocked {
            prop_assert_eq!(states[i], StepState::Waiting);
        }
    }
}
