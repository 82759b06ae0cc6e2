use proptest::prelude::*;

use super::*;
use crate::{Dependency, Service, Workspace};

use CheckState::{Degraded, Down, Unknown, Up};
use ProbeVerdict::{Fail, Pass, SlowPass};

fn th(failures: u32, successes: u32) -> Thresholds {
    Thresholds {
        failures_before_down: failures,
        successes_before_up: successes,
    }
}

fn t(from: CheckState, to: CheckState) -> Option<Transition> {
    Some(Transition { from, to })
}

/// Feeds `verdicts` and returns every observation's result.
fn run(
    tracker: &mut CheckTracker,
    verdicts: &[ProbeVerdict],
    th: &Thresholds,
) -> Vec<Option<Transition>> {
    verdicts.iter().map(|v| tracker.observe(*v, th)).collect()
}

#[test]
fn check_state_names_round_trip() {
    for state in CheckState::ALL {
        assert_eq!(CheckState::parse(state.as_str()), Some(state));
        assert_eq!(state.to_string(), state.as_str());
        assert_eq!(
            serde_json::to_value(state).unwrap(),
            serde_json::json!(state.as_str())
        );
    }
    assert_eq!(CheckState::parse("Up"), None);
    assert_eq!(CheckState::parse(""), None);
    assert_eq!(
        serde_json::to_value(ServiceState::Impacted).unwrap(),
        serde_json::json!("impacted")
    );
}

#[test]
fn default_thresholds_are_gatus_like() {
    assert_eq!(Thresholds::default(), th(3, 2));
}

#[test]
fn new_tracker_is_unknown() {
    let tracker = CheckTracker::new();
    assert_eq!(tracker.state(), Unknown);
    assert_eq!(tracker.consecutive_failures(), 0);
    assert_eq!(tracker.consecutive_successes(), 0);
    assert_eq!(CheckTracker::default(), tracker);
}

#[test]
fn unknown_goes_down_after_threshold_failures() {
    let mut tracker = CheckTracker::new();
    let got = run(&mut tracker, &[Fail, Fail, Fail, Fail], &th(3, 2));
    assert_eq!(got, vec![None, None, t(Unknown, Down), None]);
    assert_eq!(tracker.consecutive_failures(), 4);
}

#[test]
fn unknown_goes_up_after_threshold_passes() {
    let mut tracker = CheckTracker::new();
    let got = run(&mut tracker, &[Pass, Pass, Pass], &th(3, 2));
    assert_eq!(got, vec![None, t(Unknown, Up), None]);
}

#[test]
fn unknown_goes_degraded_when_the_deciding_pass_is_slow() {
    let mut tracker = CheckTracker::new();
    let got = run(&mut tracker, &[Pass, SlowPass], &th(3, 2));
    assert_eq!(got, vec![None, t(Unknown, Degraded)]);
    // And a slow pass counts towards the success threshold.
    let mut tracker = CheckTracker::new();
    let got = run(&mut tracker, &[SlowPass, Pass], &th(3, 2));
    assert_eq!(got, vec![None, t(Unknown, Up)]);
}

#[test]
fn unknown_stays_unknown_while_results_alternate() {
    let mut tracker = CheckTracker::new();
    let got = run(
        &mut tracker,
        &[Fail, Fail, Pass, Fail, Fail, Pass],
        &th(3, 2),
    );
    assert!(got.iter().all(Option::is_none));
    assert_eq!(tracker.state(), Unknown);
}

#[test]
fn up_goes_down_only_after_threshold_consecutive_failures() {
    let mut tracker = CheckTracker::restore(Up, 0, 5);
    let got = run(
        &mut tracker,
        &[Fail, Fail, Pass, Fail, Fail, Fail],
        &th(3, 2),
    );
    assert_eq!(got, vec![None, None, None, None, None, t(Up, Down)]);
}

#[test]
fn degraded_goes_down_after_threshold_failures() {
    let mut tracker = CheckTracker::restore(Degraded, 0, 1);
    let got = run(&mut tracker, &[Fail, Fail, Fail], &th(3, 2));
    assert_eq!(got, vec![None, None, t(Degraded, Down)]);
}

#[test]
fn a_failure_below_threshold_keeps_degraded_or_up() {
    let mut tracker = CheckTracker::restore(Degraded, 0, 1);
    assert_eq!(tracker.observe(Fail, &th(3, 2)), None);
    assert_eq!(tracker.state(), Degraded);
    // A pass after the failure switches to up at once (no success threshold when not down).
    assert_eq!(tracker.observe(Pass, &th(3, 2)), t(Degraded, Up));
}

#[test]
fn down_comes_back_only_after_threshold_consecutive_passes() {
    let mut tracker = CheckTracker::restore(Down, 3, 0);
    let got = run(&mut tracker, &[Pass, Fail, Pass, Pass, Pass], &th(3, 3));
    assert_eq!(got, vec![None, None, None, None, t(Down, Up)]);
}

#[test]
fn down_comes_back_degraded_when_the_deciding_pass_is_slow() {
    let mut tracker = CheckTracker::restore(Down, 3, 0);
    let got = run(&mut tracker, &[Pass, SlowPass], &th(3, 2));
    assert_eq!(got, vec![None, t(Down, Degraded)]);
}

#[test]
fn down_stays_down_on_more_failures() {
    let mut tracker = CheckTracker::restore(Down, 3, 0);
    let got = run(&mut tracker, &[Fail, Fail], &th(3, 2));
    assert_eq!(got, vec![None, None]);
    assert_eq!(tracker.consecutive_failures(), 5);
}

#[test]
fn up_and_degraded_switch_at_once() {
    let mut tracker = CheckTracker::restore(Up, 0, 2);
    let got = run(
        &mut tracker,
        &[SlowPass, SlowPass, Pass, Pass, SlowPass],
        &th(3, 5),
    );
    assert_eq!(
        got,
        vec![
            t(Up, Degraded),
            None,
            t(Degraded, Up),
            None,
            t(Up, Degraded)
        ]
    );
}

#[test]
fn thresholds_of_one_switch_on_every_change() {
    let one = th(1, 1);
    let mut tracker = CheckTracker::new();
    let got = run(
        &mut tracker,
        &[Fail, Pass, SlowPass, Fail, SlowPass, Fail],
        &one,
    );
    assert_eq!(
        got,
        vec![
            t(Unknown, Down),
            t(Down, Up),
            t(Up, Degraded),
            t(Degraded, Down),
            t(Down, Degraded),
            t(Degraded, Down),
        ]
    );
    let mut tracker = CheckTracker::new();
    assert_eq!(tracker.observe(Pass, &one), t(Unknown, Up));
}

#[test]
fn zero_thresholds_act_as_one() {
    let zero = th(0, 0);
    assert_eq!(zero.failures(), 1);
    assert_eq!(zero.successes(), 1);
    let mut tracker = CheckTracker::new();
    let got = run(&mut tracker, &[Fail, Pass], &zero);
    assert_eq!(got, vec![t(Unknown, Down), t(Down, Up)]);
}

#[test]
fn counters_reset_on_the_other_verdict() {
    let mut tracker = CheckTracker::new();
    run(&mut tracker, &[Fail, Fail], &th(3, 2));
    assert_eq!(
        (
            tracker.consecutive_failures(),
            tracker.consecutive_successes()
        ),
        (2, 0)
    );
    run(&mut tracker, &[SlowPass], &th(3, 2));
    assert_eq!(
        (
            tracker.consecutive_failures(),
            tracker.consecutive_successes()
        ),
        (0, 1)
    );
}

#[test]
fn counters_saturate() {
    let mut tracker = CheckTracker::restore(Down, u32::MAX, 0);
    assert_eq!(tracker.observe(Fail, &th(3, 2)), None);
    assert_eq!(tracker.consecutive_failures(), u32::MAX);
}

#[test]
fn restore_resumes_where_it_left_off() {
    let thresholds = th(3, 2);
    let mut original = CheckTracker::new();
    run(&mut original, &[Pass, Pass, Fail, Fail], &thresholds);
    let mut resumed = CheckTracker::restore(
        original.state(),
        original.consecutive_failures(),
        original.consecutive_successes(),
    );
    assert_eq!(resumed, original);
    // One more failure takes both down.
    assert_eq!(resumed.observe(Fail, &thresholds), t(Up, Down));
    assert_eq!(original.observe(Fail, &thresholds), t(Up, Down));
}

#[test]
fn restore_mid_recovery() {
    let mut tracker = CheckTracker::restore(Down, 0, 1);
    assert_eq!(tracker.observe(Pass, &th(3, 2)), t(Down, Up));
}

// --- service_states ---

fn registry(edges: &[(&str, &str)], services: &[(&str, Option<&str>)]) -> Registry {
    let mut keys: BTreeSet<&str> = BTreeSet::new();
    for (from, to) in edges {
        keys.insert(from);
        keys.insert(to);
    }
    for (_, ws) in services {
        keys.extend(ws.iter().copied());
    }
    Registry::new(
        keys.into_iter().map(Workspace::new).collect(),
        edges
            .iter()
            .map(|(from, to)| Dependency {
                from: (*from).to_owned(),
                to: (*to).to_owned(),
                kind: "read".to_owned(),
                note: None,
            })
            .collect(),
        services
            .iter()
            .map(|(name, ws)| {
                let mut service = Service::new(*name);
                service.workspace = ws.map(str::to_owned);
                service
            })
            .collect(),
    )
}

fn checks(states: &[(&str, CheckState)]) -> HashMap<String, CheckState> {
    states.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect()
}

fn plain(state: ServiceState) -> ServiceStatus {
    ServiceStatus {
        state,
        impacted_by: Vec::new(),
    }
}

fn impacted(by: &[&str]) -> ServiceStatus {
    ServiceStatus {
        state: ServiceState::Impacted,
        impacted_by: by.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[test]
fn no_down_services_means_check_states() {
    let reg = registry(
        &[("a", "b")],
        &[("api", Some("a")), ("db", Some("b")), ("new", Some("b"))],
    );
    let got = service_states(&reg, &checks(&[("api", Degraded), ("db", Up)]));
    assert_eq!(got["api"], plain(ServiceState::Degraded));
    assert_eq!(got["db"], plain(ServiceState::Up));
    assert_eq!(got["new"], plain(ServiceState::Unknown));
    assert_eq!(got.len(), 3);
}

#[test]
fn direct_dependency_on_a_down_service_impacts() {
    let reg = registry(
        &[("a", "b")],
        &[("api", Some("a")), ("db", Some("b")), ("cache", Some("b"))],
    );
    let got = service_states(&reg, &checks(&[("api", Up), ("db", Down), ("cache", Up)]));
    assert_eq!(got["api"], impacted(&["db"]));
    assert_eq!(got["db"], plain(ServiceState::Down));
    // A sibling of the down service is not impacted: its workspace does not depend on itself.
    assert_eq!(got["cache"], plain(ServiceState::Up));
}

#[test]
fn the_dependency_direction_matters() {
    let reg = registry(&[("a", "b")], &[("api", Some("a")), ("db", Some("b"))]);
    let got = service_states(&reg, &checks(&[("api", Down), ("db", Up)]));
    assert_eq!(got["db"], plain(ServiceState::Up));
    assert_eq!(got["api"], plain(ServiceState::Down));
}

#[test]
fn transitive_chain_impacts_every_dependent() {
    let reg = registry(
        &[("a", "b"), ("b", "c")],
        &[
            ("sa", Some("a")),
            ("sb", Some("b")),
            ("sc", Some("c")),
            ("sc2", Some("c")),
        ],
    );
    let got = service_states(
        &reg,
        &checks(&[("sa", Up), ("sb", Degraded), ("sc", Down), ("sc2", Down)]),
    );
    assert_eq!(got["sa"], impacted(&["sc", "sc2"]));
    assert_eq!(got["sb"], impacted(&["sc", "sc2"]));
    assert_eq!(got["sc"], plain(ServiceState::Down));
}

#[test]
fn impacted_by_collects_every_down_service_sorted_and_deduplicated() {
    // a depends on b and c, both of which depend on d: diamond.
    let reg = registry(
        &[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
        &[("sa", Some("a")), ("zb", Some("b")), ("sd", Some("d"))],
    );
    let got = service_states(&reg, &checks(&[("zb", Down), ("sd", Down)]));
    assert_eq!(got["sa"], impacted(&["sd", "zb"]));
    // zb is down itself: down, not impacted by sd.
    assert_eq!(got["zb"], plain(ServiceState::Down));
}

#[test]
fn unknown_services_in_impacted_workspaces_are_impacted() {
    let reg = registry(&[("a", "b")], &[("api", Some("a")), ("db", Some("b"))]);
    let got = service_states(&reg, &checks(&[("db", Down)]));
    assert_eq!(got["api"], impacted(&["db"]));
}

#[test]
fn cycles_terminate_and_impact_the_down_workspace_itself() {
    let reg = registry(
        &[("a", "b"), ("b", "c"), ("c", "a")],
        &[
            ("sa", Some("a")),
            ("sa2", Some("a")),
            ("sb", Some("b")),
            ("sc", Some("c")),
        ],
    );
    let got = service_states(&reg, &checks(&[("sa", Down), ("sb", Up), ("sc", Up)]));
    assert_eq!(got["sa"], plain(ServiceState::Down));
    // a depends (via b, c) on a, which has a down service.
    assert_eq!(got["sa2"], impacted(&["sa"]));
    assert_eq!(got["sb"], impacted(&["sa"]));
    assert_eq!(got["sc"], impacted(&["sa"]));
}

#[test]
fn self_loop_impacts_siblings() {
    let reg = registry(&[("a", "a")], &[("s1", Some("a")), ("s2", Some("a"))]);
    let got = service_states(&reg, &checks(&[("s1", Down), ("s2", Up)]));
    assert_eq!(got["s2"], impacted(&["s1"]));
    assert_eq!(got["s1"], plain(ServiceState::Down));
}

#[test]
fn services_in_no_workspace_are_neither_impacted_nor_impacting() {
    let reg = registry(
        &[("a", "b")],
        &[
            ("api", Some("a")),
            ("db", Some("b")),
            ("n8n", None),
            ("tool", None),
        ],
    );
    let got = service_states(&reg, &checks(&[("db", Down), ("n8n", Down), ("tool", Up)]));
    assert_eq!(got["tool"], plain(ServiceState::Up));
    assert_eq!(got["n8n"], plain(ServiceState::Down));
    assert_eq!(got["api"], impacted(&["db"]));
}

#[test]
fn checks_for_unregistered_services_are_ignored() {
    let reg = registry(&[("a", "b")], &[("api", Some("a"))]);
    let got = service_states(&reg, &checks(&[("ghost", Down), ("api", Up)]));
    assert_eq!(got.len(), 1);
    assert_eq!(got["api"], plain(ServiceState::Up));
}

// --- properties ---

fn verdict() -> impl Strategy<Value = ProbeVerdict> {
    prop_oneof![Just(Pass), Just(SlowPass), Just(Fail)]
}

fn check_state() -> impl Strategy<Value = CheckState> {
    prop_oneof![Just(Unknown), Just(Up), Just(Degraded), Just(Down)]
}

proptest! {
    #[test]
    fn flap_protection_holds(
        failures in 0u32..5,
        successes in 0u32..5,
        verdicts in proptest::collection::vec(verdict(), 0..80),
    ) {
        let thresholds = th(failures, successes);
        let (f, s) = (thresholds.failures() as usize, thresholds.successes() as usize);
        let mut tracker = CheckTracker::new();
        for (i, v) in verdicts.iter().enumerate() {
            let before = tracker.state();
            let change = tracker.observe(*v, &thresholds);
            let after = tracker.state();
            let seen = &verdicts[..=i];
            prop_assert_eq!(change, (before != after).then_some(Transition { from: before, to: after }));
            if after == Down && before != Down {
                prop_assert!(seen.len() >= f && seen[seen.len() - f..].iter().all(|v| *v == Fail));
            }
            if matches!(before, Down | Unknown) && matches!(after, Up | Degraded) {
                prop_assert!(seen.len() >= s && seen[seen.len() - s..].iter().all(|v| *v != Fail));
            }
            if matches!(after, Up | Degraded) && matches!(before, Up | Degraded) {
                prop_assert_eq!(after == Degraded, *v == SlowPass || (*v == Fail && before == Degraded));
            }
            prop_assert!(after != Unknown || before == Unknown);
            // The counters are the trailing runs, so they can be persisted and restored.
            let trailing = |pass: bool| seen.iter().rev().take_while(|v| (**v != Fail) == pass).count() as u32;
            prop_assert_eq!(tracker.consecutive_failures(), trailing(false));
            prop_assert_eq!(tracker.consecutive_successes(), trailing(true));
        }
    }

    #[test]
    fn restore_is_indistinguishable(
        prefix in proptest::collection::vec(verdict(), 0..30),
        suffix in proptest::collection::vec(verdict(), 0..30),
    ) {
        let thresholds = th(3, 2);
        let mut original = CheckTracker::new();
        run(&mut original, &prefix, &thresholds);
        let mut resumed = CheckTracker::restore(
            original.state(),
            original.consecutive_failures(),
            original.consecutive_successes(),
        );
        prop_assert_eq!(run(&mut original, &suffix, &thresholds), run(&mut resumed, &suffix, &thresholds));
    }

    #[test]
    fn impacted_only_when_a_down_service_is_reachable(
        edges in proptest::collection::vec((0usize..5, 0usize..5), 0..10),
        services in proptest::collection::vec((proptest::option::of(0usize..5), proptest::option::of(check_state())), 0..8),
    ) {
        let ws = |i: usize| format!("w{i}");
        let reg = Registry::new(
            (0..5).map(|i| Workspace::new(ws(i))).collect(),
            edges.iter().map(|(f, t)| Dependency { from: ws(*f), to: ws(*t), kind: "k".into(), note: None }).collect(),
            services.iter().enumerate().map(|(i, (w, _))| {
                let mut s = Service::new(format!("s{i}"));
                s.workspace = w.map(ws);
                s
            }).collect(),
        );
        let checks: HashMap<String, CheckState> = services.iter().enumerate()
            .filter_map(|(i, (_, c))| c.map(|c| (format!("s{i}"), c)))
            .collect();
        // Reference: reach[i][j] if a path of one edge or more leads from workspace i to j.
        let mut reach = [[false; 5]; 5];
        for (f, t) in &edges {
            reach[*f][*t] = true;
        }
        for k in 0..5 {
            for i in 0..5 {
                for j in 0..5 {
                    if reach[i][k] && reach[k][j] {
                        reach[i][j] = true;
                    }
                }
            }
        }
        let got = service_states(&reg, &checks);
        prop_assert_eq!(got.len(), services.len());
        for (i, (w, c)) in services.iter().enumerate() {
            let own = c.unwrap_or(Unknown);
            let mut expected: Vec<String> = match w {
                Some(w) if own != Down => services.iter().enumerate()
                    .filter(|(_, (dw, dc))| *dc == Some(Down) && dw.is_some_and(|dw| reach[*w][dw]))
                    .map(|(j, _)| format!("s{j}"))
                    .collect(),
                _ => Vec::new(),
            };
            expected.sort();
            let status = &got[&format!("s{i}")];
            if expected.is_empty() {
                prop_assert_eq!(status, &plain(own.into()));
            } else {
                prop_assert_eq!(status.state, ServiceState::Impacted);
                prop_assert_eq!(&status.impacted_by, &expected);
            }
        }
    }
}
