//! A run's progress: given where each step stands, what happens next. The store calls
//! [`advance`] inside the transaction that records a step's end, so the next steps are started
//! (or skipped, or failed) in that same commit.
//!
//! **Readiness.** A waiting step is due once every step it needs has ended. A step without an
//! `if` runs when each of those succeeded or was skipped, and is skipped otherwise. A step with
//! an `if` runs when the condition is true and is skipped when it is false, whatever its needs
//! ended as, so a last step can record a failure (with `on_failure = "continue"`).
//!
//! **Templates.** A step's payload strings and its condition are minijinja over the run:
//!
//! | name | what |
//! |---|---|
//! | `input` | the run's input (JSON, `{}` when none was given) |
//! | `run.id`, `run.pipeline` | the run's id and its pipeline's name |
//! | `steps.NAME.outcome` | `waiting`, `running`, `succeeded`, `failed`, `skipped` or `cancelled` |
//! | `steps.NAME.result` | what the step's task returned, once it succeeded |
//! | `steps.NAME.error` | why it failed or was skipped |
//!
//! A payload is strict about printing undefined values, as remediation payloads are: a task
//! started with a blank where a URL belonged could act on the wrong thing. A payload or
//! condition that fails to render fails its step, with the template's message.
//!
//! **Failure.** Under [`FailurePolicy::Stop`], a step that failed or was cancelled stops the
//! run: waiting steps are cancelled and running ones asked to stop. Under
//! [`FailurePolicy::Continue`], only the steps that depend on it are skipped.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value as Json, json};

use super::spec::PipelineSpec;
use super::{Dag, FailurePolicy, StepState};
use crate::alert::template::{eval_condition, render_payload_over};

/// A step of a run, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// Where it stands.
    pub state: StepState,
    /// What its task returned, once it succeeded.
    pub result: Option<Json>,
    /// Why it failed, was skipped or was cancelled.
    pub error: Option<String>,
}

impl StepRecord {
    /// A step not yet started.
    pub fn waiting() -> Self {
        Self {
            state: StepState::Waiting,
            result: None,
            error: None,
        }
    }
}

/// One thing [`advance`] decided for one step (by its index in the pipeline).
#[derive(Debug, Clone, PartialEq)]
pub enum StepChange {
    /// Enqueue its task with this payload; the step is running.
    Start {
        /// The step.
        step: usize,
        /// Its rendered payload.
        payload: Json,
    },
    /// Not run: its condition was false, or a step it needs did not succeed.
    Skip {
        /// The step.
        step: usize,
        /// Why.
        reason: String,
    },
    /// Failed without running: its payload or condition did not render.
    Fail {
        /// The step.
        step: usize,
        /// Why.
        error: String,
    },
    /// A waiting step cancelled: the run was cancelled or stopped.
    Cancel {
        /// The step.
        step: usize,
        /// Why.
        reason: String,
    },
    /// A running step whose task is to be cancelled: the run was cancelled or stopped.
    Stop {
        /// The step.
        step: usize,
    },
}

/// Where a run stands as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Some step is waiting or running.
    Running,
    /// Every step ended, none failed or was cancelled.
    Succeeded,
    /// Every step ended and one failed.
    Failed,
    /// Every step ended and one was cancelled (none failed).
    Cancelled,
}

impl RunStatus {
    /// Every status, in the order a listing shows them.
    pub const ALL: [Self; 4] = [
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// Its stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// True once the run has ended.
    pub fn is_finished(self) -> bool {
        self != Self::Running
    }

    /// The status of a run whose steps are in `states`.
    pub fn of(states: &[StepState]) -> Self {
        if !states.iter().all(|s| s.is_final()) {
            Self::Running
        } else if states.contains(&StepState::Failed) {
            Self::Failed
        } else if states.contains(&StepState::Cancelled) {
            Self::Cancelled
        } else {
            Self::Succeeded
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run or step status name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status `{0}`")]
pub struct UnknownStatus(pub String);

impl FromStr for RunStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

impl StepState {
    /// Every state, in a run's order.
    pub const ALL: [Self; 6] = [
        Self::Waiting,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Skipped,
        Self::Cancelled,
    ];

    /// Its stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for StepState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StepState {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// The run a step belongs to, as its templates see it.
#[derive(Debug, Clone, Copy)]
pub struct RunRef<'a> {
    /// The run's id.
    pub id: i64,
    /// Its input.
    pub input: &'a Json,
}

/// What happens next in a run whose steps stand as `steps` (in the pipeline's order). With
/// `stopping` (the run is being cancelled) nothing starts: waiting steps are cancelled and
/// running ones stopped. Changes come in the order they were decided; one decision can lead to
/// the next (a skipped step lets the step after it be judged), so the answer is complete.
pub fn advance(
    spec: &PipelineSpec,
    dag: &Dag,
    run: RunRef<'_>,
    steps: &[StepRecord],
    stopping: bool,
) -> Vec<StepChange> {
    let mut steps: Vec<StepRecord> = steps.to_vec();
    let mut changes = Vec::new();
    loop {
        let before = changes.len();
        let stop_reason = if stopping {
            Some("the run was cancelled".to_owned())
        } else {
            stopped_by(spec, dag, &steps)
        };
        if let Some(reason) = stop_reason {
            stop(&mut steps, &mut changes, &reason);
            return changes;
        }
        for i in due(dag, &steps) {
            let change = judge(spec, dag, run, &steps, i);
            apply(&mut steps[i], &change);
            changes.push(change);
        }
        if changes.len() == before {
            return changes;
        }
    }
}

/// Under [`FailurePolicy::Stop`], why the run stops: the first step (in order) that failed or
/// was cancelled while others have not ended.
fn stopped_by(spec: &PipelineSpec, dag: &Dag, steps: &[StepRecord]) -> Option<String> {
    if spec.on_failure != FailurePolicy::Stop {
        return None;
    }
    let live = steps
        .iter()
        .any(|s| matches!(s.state, StepState::Waiting | StepState::Running));
    if !live {
        return None;
    }
    dag.order().iter().find_map(|&i| match steps[i].state {
        StepState::Failed => Some(format!("step `{}` failed", dag.names()[i])),
        StepState::Cancelled => Some(format!("step `{}` was cancelled", dag.names()[i])),
        _ => None,
    })
}

/// Cancels every waiting step and stops every running one.
fn stop(steps: &mut [StepRecord], changes: &mut Vec<StepChange>, reason: &str) {
    for (i, step) in steps.iter_mut().enumerate() {
        match step.state {
            StepState::Waiting => {
                step.state = StepState::Cancelled;
                step.error = Some(reason.to_owned());
                changes.push(StepChange::Cancel {
                    step: i,
                    reason: reason.to_owned(),
                });
            }
            StepState::Running => changes.push(StepChange::Stop { step: i }),
            _ => {}
        }
    }
}

/// The waiting steps whose needs have all ended, in the DAG's order.
fn due(dag: &Dag, steps: &[StepRecord]) -> Vec<usize> {
    dag.order()
        .iter()
        .copied()
        .filter(|&i| {
            steps[i].state == StepState::Waiting
                && dag.needs(i).iter().all(|&j| steps[j].state.is_final())
        })
        .collect()
}

/// What a due step does: its condition (or, without one, its needs' outcomes) decides whether
/// it runs, and its payload is rendered.
fn judge(
    spec: &PipelineSpec,
    dag: &Dag,
    run: RunRef<'_>,
    steps: &[StepRecord],
    i: usize,
) -> StepChange {
    let step = &spec.steps[i];
    let context = context(spec, dag, run, steps);
    match &step.condition {
        Some(expr) => match eval_condition(expr, &context) {
            Ok(true) => {}
            Ok(false) => {
                return StepChange::Skip {
                    step: i,
                    reason: format!("its condition `{expr}` is false"),
                };
            }
            Err(e) => {
                return StepChange::Fail {
                    step: i,
                    error: format!("its condition `{expr}` failed: {e}"),
                };
            }
        },
        None => {
            if let Some(&j) = dag
                .needs(i)
                .iter()
                .find(|&&j| !matches!(steps[j].state, StepState::Succeeded | StepState::Skipped))
            {
                return StepChange::Skip {
                    step: i,
                    reason: format!("step `{}` {}", dag.names()[j], steps[j].state),
                };
            }
        }
    }
    match render_payload_over(&step.payload, &context) {
        Ok(payload) => StepChange::Start { step: i, payload },
        Err(e) => StepChange::Fail {
            step: i,
            error: e.to_string(),
        },
    }
}

fn apply(step: &mut StepRecord, change: &StepChange) {
    match change {
        StepChange::Start { .. } => step.state = StepState::Running,
        StepChange::Skip { reason, .. } => {
            step.state = StepState::Skipped;
            step.error = Some(reason.clone());
        }
        StepChange::Fail { error, .. } => {
            step.state = StepState::Failed;
            step.error = Some(error.clone());
        }
        StepChange::Cancel { reason, .. } => {
            step.state = StepState::Cancelled;
            step.error = Some(reason.clone());
        }
        StepChange::Stop { .. } => {}
    }
}

/// The templates' context (see the module's documentation).
pub fn context(spec: &PipelineSpec, dag: &Dag, run: RunRef<'_>, steps: &[StepRecord]) -> Json {
    let mut by_name = Map::with_capacity(steps.len());
    for (name, step) in dag.names().iter().zip(steps) {
        by_name.insert(
            name.clone(),
            json!({
                "outcome": step.state.as_str(),
                "result": step.result,
                "error": step.error,
            }),
        );
    }
    json!({
        "input": run.input,
        "run": { "id": run.id, "pipeline": spec.name },
        "steps": by_name,
    })
}
