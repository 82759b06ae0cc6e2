use steward_core::pipeline::FailurePolicy;

use crate::test_support::{assert_error, errors, parse};

const QUEUES: &str = "[[queues]]\nname = \"agents\"\nkinds = [\"noop\", \"sleep\"]\n\n";

fn with(pipeline: &str) -> String {
    format!("{QUEUES}{pipeline}")
}

#[test]
fn a_chain_is_read_with_its_steps_in_order() {
    let config = parse(&with(
        r#"[[pipelines]]
name = "brief"
on_failure = "continue"

[[pipelines.steps]]
name = "alba"
queue = "agents"
kind = "noop"
payload = { topic = "{{ input.topic }}" }
timeout = "30s"

[[pipelines.steps]]
name = "albi"
queue = "agents"
kind = "noop"
needs = ["alba"]
if = "steps.alba.result.items | length > 0"
max_attempts = 2
payload = { items = "{{ steps.alba.result.items }}" }
"#,
    ));
    let p = &config.pipelines[0];
    assert_eq!(p.name, "brief");
    assert_eq!(p.on_failure, FailurePolicy::Continue);
    assert_eq!(p.steps.len(), 2);
    assert_eq!(p.steps[0].timeout_ms, Some(30_000));
    assert_eq!(p.steps[1].needs, ["alba"]);
    assert_eq!(p.steps[1].max_attempts, Some(2));
    assert_eq!(
        p.steps[1].condition.as_deref(),
        Some("steps.alba.result.items | length > 0")
    );
}

const STEP: &str = "queue = \"agents\"\nkind = \"noop\"\n";

#[test]
fn a_cycle_is_located_at_the_need_that_closes_it() {
    let text = with(&format!(
        "[[pipelines]]\nname = \"p\"\n\
         [[pipelines.steps]]\nname = \"a\"\n{STEP}needs = [\"c\"]\n\
         [[pipelines.steps]]\nname = \"b\"\n{STEP}needs = [\"a\"]\n\
         [[pipelines.steps]]\nname = \"c\"\n{STEP}needs = [\"b\"]\n"
    ));
    assert_error(
        &text,
        11,
        "`pipelines[0].steps[0].needs`: steps need each other in a cycle: a → c → b → a",
    );
}

#[test]
fn an_unknown_need_is_located_and_named() {
    let text = with(&format!(
        "[[pipelines]]\nname = \"p\"\n\
         [[pipelines.steps]]\nname = \"a\"\n{STEP}\
         [[pipelines.steps]]\nname = \"b\"\n{STEP}needs = [\"a\", \"alpha\"]\n"
    ));
    assert!(
        errors(&text).contains(
            "f.toml:15:15: error: `pipelines[0].steps[1].needs`: step `b` needs `alpha`, which is not a step of this pipeline"
        ),
        "{}",
        errors(&text)
    );
}

#[test]
fn an_unknown_queue_and_a_refused_kind_are_located() {
    let text = with(
        "[[pipelines]]\nname = \"p\"\n[[pipelines.steps]]\nname = \"a\"\nqueue = \"agent\"\nkind = \"noop\"\n",
    );
    assert_error(
        &text,
        9,
        "`pipelines[0].steps[0].queue`: unknown queue `agent` (not declared in `[[queues]]`); did you mean `agents`?",
    );
    let text = with(
        "[[pipelines]]\nname = \"p\"\n[[pipelines.steps]]\nname = \"a\"\nqueue = \"agents\"\nkind = \"shell\"\n",
    );
    assert_error(
        &text,
        10,
        "`pipelines[0].steps[0].kind`: queue `agents` does not run `shell` tasks",
    );
}

#[test]
fn template_and_condition_errors_are_located() {
    let text = with(&format!(
        "[[pipelines]]\nname = \"p\"\n\
         [[pipelines.steps]]\nname = \"a\"\n{STEP}payload = {{ url = \"{{{{ input.url \" }}\n"
    ));
    assert_error(
        &text,
        11,
        "`pipelines[0].steps[0].payload`: payload url: template syntax error",
    );
    let text = with(&format!(
        "[[pipelines]]\nname = \"p\"\n\
         [[pipelines.steps]]\nname = \"a\"\n{STEP}\
         [[pipelines.steps]]\nname = \"b\"\n{STEP}needs = [\"a\"]\nif = \"steps.a.outcome ==\"\n"
    ));
    assert_error(
        &text,
        16,
        "`pipelines[0].steps[1].if`: template syntax error",
    );
    let text = with(&format!(
        "[[pipelines]]\nname = \"p\"\n\
         [[pipelines.steps]]\nname = \"a\"\n{STEP}\
         [[pipelines.steps]]\nname = \"b\"\n{STEP}payload = {{ x = \"{{{{ steps.a.result }}}}\" }}\n"
    ));
    assert_error(
        &text,
        15,
        "`pipelines[0].steps[1].payload`: reads `steps.a`, which it does not wait for; add `a` to its `needs`",
    );
}

#[test]
fn names_policies_and_steps_are_checked() {
    assert_error(
        &with("[[pipelines]]\nname = \"p\"\n"),
        5,
        "`pipelines[0].steps`: missing required field",
    );
    assert_error(
        &with(&format!(
            "[[pipelines]]\nname = \"p\"\non_failure = \"retry\"\n[[pipelines.steps]]\nname = \"a\"\n{STEP}"
        )),
        7,
        "`pipelines[0].on_failure`",
    );
    assert_error(
        &with(&format!(
            "[[pipelines]]\nname = \"p\"\n[[pipelines.steps]]\nname = \"a\"\n{STEP}[[pipelines.steps]]\nname = \"a\"\n{STEP}"
        )),
        12,
        "`pipelines[0].steps[1].name`: duplicate step `a` (first declared at f.toml:8:8)",
    );
    assert_error(
        &with(&format!(
            "[[pipelines]]\nname = \"p\"\n[[pipelines.steps]]\nname = \"a\"\n{STEP}[[pipelines]]\nname = \"p\"\n[[pipelines.steps]]\nname = \"a\"\n{STEP}"
        )),
        12,
        "`pipelines[1].name`: duplicate pipeline `p`",
    );
}

const PIPELINE: &str = "[[pipelines]]\nname = \"brief\"\n[[pipelines.steps]]\nname = \"a\"\nqueue = \"agents\"\nkind = \"noop\"\n\n";

#[test]
fn a_schedule_and_a_remediation_start_runs_through_stewards_own_task() {
    let config = parse(&with(&format!(
        "{PIPELINE}[[schedules]]\nname = \"every-30m\"\nevery = \"30m\"\npipeline = \"brief\"\ninput = {{ topic = \"news\" }}\n\
         [alerting]\n[[alerting.receivers]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n\
         [alerting.route]\nreceiver = \"ops\"\nremediate = {{ pipeline = \"brief\", input = {{ service = \"{{{{ labels.service }}}}\" }} }}\n"
    )));
    let task = &config.schedules[0].task;
    assert_eq!(task.queue, "steward");
    assert_eq!(task.kind, "pipeline");
    assert_eq!(
        task.payload,
        serde_json::json!({"pipeline": "brief", "input": {"topic": "news"}})
    );
    assert_eq!(
        config.pipelines[0].steps[0].max_attempts,
        Some(5),
        "the queue's attempts"
    );
    let remediation = config
        .alerting
        .remediations
        .values()
        .next()
        .expect("a remediation");
    assert_eq!(remediation.kind, "pipeline");
    assert_eq!(
        remediation.payload["input"]["service"], "{{ labels.service }}",
        "rendered per alert"
    );
}

#[test]
fn a_schedule_naming_an_unknown_pipeline_or_mixing_a_task_is_refused() {
    assert_error(
        &with(&format!(
            "{PIPELINE}[[schedules]]\nname = \"s\"\nevery = \"30m\"\npipeline = \"brif\"\n"
        )),
        15,
        "`schedules[0].pipeline`: unknown pipeline `brif` (not declared in `[[pipelines]]`); did you mean `brief`?",
    );
    assert_error(
        &with(&format!(
            "{PIPELINE}[[schedules]]\nname = \"s\"\nevery = \"30m\"\npipeline = \"brief\"\nqueue = \"agents\"\n"
        )),
        16,
        "`schedules[0].queue`: not with `pipeline`",
    );
    assert_error(
        &with(&format!(
            "{PIPELINE}[[schedules]]\nname = \"s\"\nevery = \"30m\"\nqueue = \"agents\"\nkind = \"noop\"\ninput = {{}}\n"
        )),
        17,
        "`schedules[0].input`: only with `pipeline`",
    );
}
