//! What `[[pipelines]]` declares: the steps, each an ordinary task with the steps it needs, an
//! optional condition, and a payload whose strings may be templates over the run. A run keeps
//! its own copy of the pipeline as it was when the run started, so a reload never changes the
//! shape of a run in flight.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{Dag, DagError, FailurePolicy};
use crate::alert::template::{TemplateError, check_condition, check_payload};

/// The names a step's templates and condition may read at the top level.
pub const CONTEXT_NAMES: [&str; 3] = ["input", "run", "steps"];

/// A declared pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineSpec {
    /// Its unique name.
    pub name: String,
    /// The workspace it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What a step failing for good does to the rest of the run.
    #[serde(default)]
    pub on_failure: FailurePolicy,
    /// Its steps, in declaration order.
    pub steps: Vec<StepSpec>,
}

/// One step: the task it enqueues once the steps it needs have ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSpec {
    /// Unique within the pipeline.
    pub name: String,
    /// The queue its task goes to.
    pub queue: String,
    /// The executor that runs it.
    pub kind: String,
    /// The task's payload; its strings may be templates over the run (see [`super::run`]).
    pub payload: Json,
    /// The steps it waits for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// A condition over the run; when false the step is skipped.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The task's priority.
    #[serde(default)]
    pub priority: i32,
    /// Attempts, if not the queue's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// How long one attempt may run, if not the queue's `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The node whose agent runs it (its own, else its queue's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A problem with a step's templates or condition.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepError {
    /// A template or the condition does not parse.
    #[error("{0}")]
    Syntax(TemplateError),
    /// A name other than `input`, `run` and `steps` is read.
    #[error(
        "reads `{0}`, which a run does not have (a step's templates read `input`, `run` and `steps`)"
    )]
    UnknownName(String),
    /// A step's result or outcome is read that is not among those it waits for.
    #[error(
        "reads `steps.{0}`, which it does not wait for; add `{0}` to its `needs` (directly or through a step it needs)"
    )]
    NotNeeded(String),
    /// A step read that the pipeline does not have.
    #[error("reads `steps.{0}`, which is not a step of this pipeline")]
    UnknownStep(String),
}

impl PipelineSpec {
    /// The steps as a DAG.
    pub fn dag(&self) -> Result<Dag, DagError> {
        let steps: Vec<(String, Vec<String>)> = self
            .steps
            .iter()
            .map(|s| (s.name.clone(), s.needs.clone()))
            .collect();
        Dag::new(&steps)
    }
}

/// The steps `step` waits for, directly or not.
pub fn ancestors(dag: &Dag, step: usize) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<usize> = dag.needs(step).to_vec();
    while let Some(i) = todo.pop() {
        if seen.insert(i) {
            todo.extend_from_slice(dag.needs(i));
        }
    }
    seen
}

/// Checks a step's payload templates (`Ok` answers for the payload, then for the condition)
/// and, given the pipeline's `dag`, what they read: only the run's names, and only the steps it
/// waits for, since no other step's outcome is known when it starts. Without a DAG (another
/// step was refused, so the graph is not known) only the syntax is checked.
pub fn check_step(
    dag: Option<&Dag>,
    step: usize,
    spec: &StepSpec,
) -> (Result<(), StepError>, Result<(), StepError>) {
    let names_read = |names: BTreeSet<String>| match dag {
        Some(dag) => check_names(dag, step, &names),
        None => Ok(()),
    };
    let payload = check_payload(&spec.payload)
        .map_err(StepError::Syntax)
        .and_then(names_read);
    let condition = match &spec.condition {
        Some(expr) => check_condition(expr)
            .map_err(StepError::Syntax)
            .and_then(names_read),
        None => Ok(()),
    };
    (payload, condition)
}

fn check_names(dag: &Dag, step: usize, names: &BTreeSet<String>) -> Result<(), StepError> {
    let waits_for = ancestors(dag, step);
    for name in names {
        let mut parts = name.split('.');
        let top = parts.next().unwrap_or_default();
        if !CONTEXT_NAMES.contains(&top) {
            return Err(StepError::UnknownName(top.to_owned()));
        }
        if top != "steps" {
            continue;
        }
        let Some(other) = parts.next() else { continue };
        match dag.names().iter().position(|n| n == other) {
            None => return Err(StepError::UnknownStep(other.to_owned())),
            Some(j) if !waits_for.contains(&j) => {
                return Err(StepError::NotNeeded(other.to_owned()));
            }
            Some(_) => {}
        }
    }
    Ok(())
}
