use super::*;
use crate::test_support::{assert_error, parse};
use proptest::prelude::*;

/// A queue, a check and a schedule to refer to (lines 1–13); a case's rule starts on 14.
const BASE: &str = r#"[[queues]]
name = "platform"
kinds = ["noop"]
[[services]]
name = "api"
url = "http://127.0.0.1:1/"
[[schedules]]
name = "nightly"
every = "1h"
queue = "platform"
kind = "noop"
[alerting]
rule_interval = "30s"
"#;

fn with(rule: &str) -> String {
    format!("{BASE}[[alerting.rules]]\n{rule}\n")
}

#[test]
fn every_kind_of_rule_is_read() {
    let text = format!(
        "{BASE}{}",
        [
            "[[alerting.rules]]\nname = \"ApiDown\"\nwhen = \"check_down\"\nchecks = [\"api-http\"]\nfor = \"1m\"\nseverity = \"critical\"\nlabels = { team = \"platform\" }\nannotations = { runbook_url = \"https://wiki/api\" }",
            "[[alerting.rules]]\nname = \"ApiSlow\"\nwhen = \"check_latency\"\npercentile = 99\nwindow = \"10m\"\nlatency_above = \"1s\"",
            "[[alerting.rules]]\nname = \"Errors\"\nwhen = \"check_failure_ratio\"\nratio_above = 0.01",
            "[[alerting.rules]]\nname = \"Cert\"\nwhen = \"cert_expiry\"\ndays_left_below = 14",
            "[[alerting.rules]]\nname = \"Nightly\"\nwhen = \"schedule_failed\"\nschedules = [\"nightly\"]",
            "[[alerting.rules]]\nname = \"Dead\"\nwhen = \"task_dead\"",
            "[[alerting.rules]]\nname = \"Deep\"\nwhen = \"queue_depth\"\nqueues = [\"platform\"]\ndepth_above = 1000",
            "[[alerting.rules]]\nname = \"Old\"\nwhen = \"queue_age\"\nage_above = \"10m\"",
        ]
        .join("\n")
    );
    let config = parse(&text);
    let rules = &config.alerting.rules;
    assert_eq!(config.alerting.rule_interval_ms, 30_000);
    assert_eq!(rules.len(), 8);
    assert_eq!(
        rules[0].condition,
        Condition::CheckState {
            checks: Subjects(vec!["api-http".into()]),
            state: CheckState::Down,
            for_ms: 60_000
        }
    );
    assert_eq!(rules[0].severity, Severity::Critical);
    assert_eq!(rules[0].labels["team"], "platform");
    assert_eq!(
        rules[1].condition,
        Condition::CheckLatency {
            checks: Subjects::default(),
            percentile: Percentile::P99,
            window_ms: 600_000,
            above_ms: 1_000
        }
    );
    assert_eq!(
        rules[2].condition,
        Condition::CheckFailureRatio {
            checks: Subjects::default(),
            window_ms: 300_000,
            above: 0.01
        }
    );
    assert_eq!(rules[2].severity, Severity::Warning, "the default");
    assert_eq!(
        rules[5].condition,
        Condition::TaskDead {
            queues: Subjects::default(),
            above: 0
        }
    );
    assert_eq!(
        rules[7].condition,
        Condition::QueueAge {
            queues: Subjects::default(),
            above_ms: 600_000
        }
    );
}

#[test]
fn mistakes_are_located_and_explained() {
    assert_error(
        &with("name = \"X\"\nwhen = \"check_dwn\""),
        16,
        "`alerting.rules[0].when`: `check_dwn` is not one of: check_down, check_degraded, check_latency, check_failure_ratio, cert_expiry, schedule_failed, pipeline_failed, heartbeat_missed, task_dead, queue_depth, queue_age, node_down, node_late, node_drift; did you mean `check_down`?",
    );
    assert_error(
        &with("name = \"X\"\nwhen = \"check_down\"\nchecks = [\"api-htp\"]"),
        17,
        "`alerting.rules[0].checks`: unknown check `api-htp`; did you mean `api-http`?",
    );
    assert_error(
        &with("name = \"X\"\nwhen = \"check_down\"\ndepth_above = 3"),
        17,
        "`alerting.rules[0].depth_above`: does not apply to `when = \"check_down\"` (its keys: checks, for)",
    );
    assert_error(
        &with("name = \"X\"\nwhen = \"check_latency\""),
        14,
        "`alerting.rules[0].latency_above`: missing required field (e.g. \"1s\")",
    );
    assert_error(
        &with("name = \"X\"\nwhen = \"check_failure_ratio\"\nratio_above = 5"),
        17,
        "`alerting.rules[0].ratio_above`: 5 is not a ratio",
    );
    assert_error(
        &with("name = \"X\"\nwhen = \"check_latency\"\nlatency_above = \"1s\"\npercentile = 90"),
        18,
        "`alerting.rules[0].percentile`: 50, 95 or 99",
    );
    assert_error(
        &with("name = \"X-1\"\nwhen = \"task_dead\""),
        15,
        "`alerting.rules[0].name`: `X-1` is not a valid alertname",
    );
    assert_error(
        &with("name = \"X\"\nwhen = \"task_dead\"\nlabels = { severity = \"x\" }"),
        17,
        "`severity` cannot be an alert label",
    );
    assert_error(
        &with("name = \"X\"\nwhen = \"queue_depth\"\nqueues = [\"nope\"]\ndepth_above = 1"),
        17,
        "`alerting.rules[0].queues`: unknown queue `nope`",
    );
    assert_error(
        &format!(
            "{}[[alerting.rules]]\nname = \"X\"\nwhen = \"task_dead\"\n",
            with("name = \"X\"\nwhen = \"task_dead\"")
        ),
        18,
        "a rule named `X` is declared already",
    );
}

proptest! {
    /// Whatever a rule's `when` and threshold say, reading never panics and a refusal is
    /// located.
    #[test]
    fn arbitrary_rules_never_panic(when in "[a-z_]{0,20}", value in "[0-9a-z.\"]{0,8}") {
        let text = with(&format!("name = \"R\"\nwhen = \"{when}\"\ndepth_above = {value}\n"));
        if let Err(e) = crate::load::parse_str("f.toml", &text, &|_| None) {
            prop_assert!(e.to_string().starts_with("f.toml:"), "{e}");
        }
    }
}

#[test]
fn a_key_of_other_whens_is_reported_once() {
    // `checks` belongs to five other `when`s; the mistake is one, and so is its error.
    let all = crate::test_support::errors(&with(
        "name = \"X\"\nwhen = \"task_dead\"\nchecks = [\"api-http\"]",
    ));
    let reports: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("`alerting.rules[0].checks`: does not apply"))
        .collect();
    assert_eq!(reports.len(), 1, "one report of the key, got:\n{all}");
    assert!(
        reports[0].starts_with("f.toml:17:"),
        "located at the key: {}",
        reports[0]
    );
}
