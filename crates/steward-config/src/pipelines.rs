//! `[[pipelines]]`: multi-step work, each step an ordinary task that waits for the steps it
//! `needs`. Everything a run could trip over later is refused here, at its place in the file:
//! a step's task (queue, kind, payload) as a schedule's is read, needs that name no step or go
//! round in a cycle, templates and conditions that do not parse or read a step the step does
//! not wait for.

use std::collections::{HashMap, HashSet};

use steward_core::node::NodeSpec;
use steward_core::pipeline::spec::{PipelineSpec, StepError, StepSpec, check_step};
use steward_core::pipeline::{DagError, FailurePolicy, MAX_STEPS};
use steward_core::queue::QueueSpec;

use crate::readers::{first_declaration, name_field};
use crate::registry::{Workspaces, workspace_ref};
use crate::schedules::read_task;
use crate::walk::{Cx, Fields, Span, Spanned};

const PIPELINE_KEYS: &[&str] = &["name", "workspace", "description", "on_failure", "steps"];
const STEP_KEYS: &[&str] = &[
    "name",
    "queue",
    "kind",
    "payload",
    "needs",
    "if",
    "priority",
    "max_attempts",
    "timeout",
    "node",
];
const FAILURE_CHOICES: [(&str, FailurePolicy); 2] = [
    ("stop", FailurePolicy::Stop),
    ("continue", FailurePolicy::Continue),
];

/// A step as read, with where its fields were written, for the checks across steps.
struct ReadStep {
    spec: StepSpec,
    path: String,
    span: Span,
    needs: Vec<Spanned<String>>,
    payload_span: Span,
    condition_span: Span,
}

/// Reads `[[pipelines]]`. `queues` are the declared queues; `partial_kinds` names those some of
/// whose kinds were refused (their own problem has been reported).
pub(crate) fn read_pipelines(
    cx: &mut Cx<'_>,
    root: &Fields<'_>,
    workspaces: &Workspaces,
    queues: &[QueueSpec],
    partial_kinds: &HashSet<String>,
    nodes: &[NodeSpec],
) -> Vec<PipelineSpec> {
    let mut seen: HashMap<String, Span> = HashMap::new();
    let mut pipelines = Vec::new();
    for (i, (table, span)) in root.tables(cx, "pipelines").into_iter().enumerate() {
        let t = Fields::open(cx, table, format!("pipelines[{i}]"), span, PIPELINE_KEYS);
        let name = name_field(cx, &t, "name");
        let workspace = t
            .string(cx, "workspace")
            .and_then(|v| workspace_ref(cx, &t, "workspace", v, workspaces));
        let description = t.string(cx, "description").map(Spanned::kept);
        let on_failure = t
            .choice(cx, "on_failure", &FAILURE_CHOICES)
            .map_or_else(FailurePolicy::default, |c| c.value);
        let steps = read_steps(cx, &t, queues, partial_kinds, nodes);
        let Some(name) = name else { continue };
        let name_value = name.value.clone();
        if !first_declaration(cx, &mut seen, &t, "pipeline", name) {
            continue;
        }
        let Some(steps) = steps else { continue };
        pipelines.push(PipelineSpec {
            name: name_value,
            workspace,
            description,
            on_failure,
            steps,
        });
    }
    pipelines
}

/// A pipeline's steps, checked one by one and then together; `None` when any was refused.
fn read_steps(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    queues: &[QueueSpec],
    partial_kinds: &HashSet<String>,
    nodes: &[NodeSpec],
) -> Option<Vec<StepSpec>> {
    let tables = t.tables(cx, "steps");
    if tables.is_empty() {
        if t.item("steps").is_none() {
            cx.error(
                &t.span,
                format!(
                    "`{}`: missing required field (its steps, each a `[[{}]]` with a name and a task)",
                    t.field("steps"),
                    t.field("steps")
                ),
            );
        }
        return None;
    }
    if tables.len() > MAX_STEPS {
        cx.error(
            &t.key_span("steps").flatten(),
            format!(
                "`{}`: {} steps; a pipeline has at most {MAX_STEPS}",
                t.field("steps"),
                tables.len()
            ),
        );
        return None;
    }
    let mut ok = true;
    let mut read = Vec::new();
    let mut seen: HashMap<String, Span> = HashMap::new();
    for (j, (table, span)) in tables.into_iter().enumerate() {
        let path = format!("{}[{j}]", t.field("steps"));
        let s = Fields::open(cx, table, path.clone(), span.clone(), STEP_KEYS);
        match read_step(cx, &s, queues, partial_kinds, nodes) {
            Some(step) => {
                let name = Spanned {
                    value: step.spec.name.clone(),
                    span: s.item("name").and_then(|i| i.span()),
                    template: None,
                };
                if first_declaration(cx, &mut seen, &s, "step", name) {
                    read.push(step);
                } else {
                    ok = false;
                }
            }
            None => ok = false,
        }
    }
    if !ok {
        // The graph of a pipeline with a refused step would name it as missing; its templates
        // are still checked, so every problem is reported at once.
        check_syntax(cx, &read);
        return None;
    }
    check_graph(cx, &read).then(|| read.into_iter().map(|s| s.spec).collect())
}

/// Each step's templates and condition checked for syntax alone.
fn check_syntax(cx: &mut Cx<'_>, steps: &[ReadStep]) {
    for (i, step) in steps.iter().enumerate() {
        report_step(cx, step, check_step(None, i, &step.spec));
    }
}

/// Reports what [`check_step`] found wrong with `step`, where it was written; true when
/// nothing was.
fn report_step(
    cx: &mut Cx<'_>,
    step: &ReadStep,
    (payload, condition): (Result<(), StepError>, Result<(), StepError>),
) -> bool {
    let ok = payload.is_ok() && condition.is_ok();
    if let Err(e) = payload {
        cx.error(&step.payload_span, format!("`{}.payload`: {e}", step.path));
    }
    if let Err(e) = condition {
        cx.error(&step.condition_span, format!("`{}.if`: {e}", step.path));
    }
    ok
}

fn read_step(
    cx: &mut Cx<'_>,
    s: &Fields<'_>,
    queues: &[QueueSpec],
    partial_kinds: &HashSet<String>,
    nodes: &[NodeSpec],
) -> Option<ReadStep> {
    let name = name_field(cx, s, "name");
    let task = read_task(cx, s, queues, partial_kinds, nodes);
    let needs = match s.item("needs") {
        Some(_) => s.strings(cx, "needs")?,
        None => Vec::new(),
    };
    let condition = s.literal_string(cx, "if");
    if s.item("if").is_some() && condition.is_none() {
        return None;
    }
    let timeout_ms = s.duration_at_least(cx, "timeout", 1).map(|d| d.value);
    if s.item("timeout").is_some() && timeout_ms.is_none() {
        return None;
    }
    let (name, task) = (name?, task?);
    // Resolved now, so a run keeps the attempts its steps were declared with.
    let max_attempts = task.max_attempts.or_else(|| {
        queues
            .iter()
            .find(|q| q.name == task.queue)
            .map(|q| q.retry.max_attempts)
    });
    Some(ReadStep {
        spec: StepSpec {
            name: name.value,
            queue: task.queue,
            kind: task.kind,
            payload: task.payload,
            needs: needs.iter().map(|n| n.value.clone()).collect(),
            condition: condition.as_ref().map(|c| c.value.clone()),
            priority: task.priority,
            max_attempts,
            timeout_ms,
            node: task.node,
        },
        path: s.path().to_owned(),
        span: s.span.clone(),
        needs,
        payload_span: s
            .item("payload")
            .and_then(|i| i.span())
            .or_else(|| s.key_span("payload").flatten()),
        condition_span: condition.and_then(|c| c.span),
    })
}

/// The steps as a DAG, and each step's templates over it; every problem reported where it
/// was written. False when any was found.
fn check_graph(cx: &mut Cx<'_>, steps: &[ReadStep]) -> bool {
    let declared: Vec<(String, Vec<String>)> = steps
        .iter()
        .map(|s| (s.spec.name.clone(), s.spec.needs.clone()))
        .collect();
    let dag = match steward_core::pipeline::Dag::new(&declared) {
        Ok(dag) => dag,
        Err(e) => {
            report_dag_error(cx, steps, &e);
            check_syntax(cx, steps);
            return false;
        }
    };
    let mut ok = true;
    for (i, step) in steps.iter().enumerate() {
        ok &= report_step(cx, step, check_step(Some(&dag), i, &step.spec));
    }
    ok
}

/// Points a DAG problem at the `needs` entry at fault (the first step of a cycle's).
fn report_dag_error(cx: &mut Cx<'_>, steps: &[ReadStep], e: &DagError) {
    let step_named = |name: &str| steps.iter().find(|s| s.spec.name == name);
    let need_of = |step: &ReadStep, need: &str| {
        step.needs
            .iter()
            .find(|n| n.value == need)
            .and_then(|n| n.span.clone())
    };
    let (span, path) = match e {
        DagError::UnknownNeed { step, need } => match step_named(step) {
            Some(s) => (need_of(s, need), format!("{}.needs", s.path)),
            None => (None, String::new()),
        },
        DagError::SelfNeed(step) => match step_named(step) {
            Some(s) => (need_of(s, step), format!("{}.needs", s.path)),
            None => (None, String::new()),
        },
        DagError::Cycle(cycle) => match (cycle.first().and_then(|n| step_named(n)), cycle.get(1)) {
            (Some(s), Some(next)) => (need_of(s, next), format!("{}.needs", s.path)),
            (Some(s), None) => (s.span.clone(), s.path.clone()),
            _ => (None, String::new()),
        },
        DagError::Empty | DagError::TooMany(_) | DagError::Duplicate(_) => (None, String::new()),
    };
    cx.error(&span, format!("`{path}`: {e}"));
}

#[cfg(test)]
mod tests;
