//! Pipelines and their runs: `/api/v1/pipelines…` and `/api/v1/pipeline-runs…`. Times are
//! RFC 3339 in UTC, each beside its milliseconds since the Unix epoch.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// One step of a declared pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PipelineStep {
    /// Unique within the pipeline.
    pub name: String,
    /// The queue its task goes to.
    pub queue: String,
    /// The executor that runs it.
    pub kind: String,
    /// Its payload, strings possibly templates over the run.
    pub payload: Value,
    /// The steps it waits for.
    pub needs: Vec<String>,
    /// Its condition, when it has one.
    #[serde(rename = "if", default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Attempts before its task is dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// How long one attempt may run; `null`: the queue's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The node whose agent runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A declared pipeline with its latest run: `GET /api/v1/pipelines/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Pipeline {
    /// Its name.
    pub name: String,
    /// Its workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `stop` or `continue`.
    pub on_failure: String,
    /// Its steps, in declaration order.
    pub steps: Vec<PipelineStep>,
    /// Its latest run, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<PipelineRun>,
}

/// Every declared pipeline the caller may see: `GET /api/v1/pipelines`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PipelineList {
    /// The pipelines, in declaration order.
    pub pipelines: Vec<Pipeline>,
}

/// The body of `POST /api/v1/pipelines/{name}/runs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// The run's input, an object its steps' templates read as `input` (`{}` when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Starting with the same key again answers with the existing run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// A pipeline run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = PipelineRunView)]
pub struct PipelineRun {
    /// Its id.
    pub id: i64,
    /// Its pipeline.
    pub pipeline: String,
    /// Its pipeline's workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// 1, raised by each retry.
    pub attempt: u32,
    /// Its input.
    pub input: Value,
    /// Its idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The schedule that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The alert whose remediation started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// The key (or component) that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// When it started.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The same, in milliseconds.
    pub created_at_ms: i64,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// The same, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    /// From start to end, once ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
}

/// One step of a run's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunStep {
    /// The step.
    pub name: String,
    /// The steps it waits for.
    pub needs: Vec<String>,
    /// `waiting`, `running`, `succeeded`, `failed`, `skipped` or `cancelled`.
    pub state: String,
    /// Its task, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<i64>,
    /// The task's status now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_status: Option<String>,
    /// Attempts its task has started.
    pub attempts: u32,
    /// What its task returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why it failed, was skipped or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When its task was enqueued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    /// The same, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// The same, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    /// From its task's enqueue to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
}

/// A run with its timeline: `GET /api/v1/pipeline-runs/{id}`, and the answer of starting,
/// cancelling or retrying one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunDetail {
    /// The run.
    pub run: PipelineRun,
    /// Its steps, in declaration order.
    pub steps: Vec<RunStep>,
    /// For a start: false when the idempotency key named an existing run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
}

/// The query of `GET /api/v1/pipeline-runs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PipelineRunsQuery {
    /// Only runs of this pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// Only runs in this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Runs before this id (the last page's `next_before`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
    /// Runs per page (default 50, at most 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A page of runs, newest first: `GET /api/v1/pipeline-runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PipelineRunList {
    /// The runs.
    pub runs: Vec<PipelineRun>,
    /// Pass as `before` for the next page; `null` on the last.
    pub next_before: Option<i64>,
}
