//! The pipeline operations the API calls: start a run of a declared pipeline, read runs and
//! their timelines, cancel and retry. Writes are announced by [`super::announce`] once the
//! store has committed them.

use serde_json::Value as Json;
use steward_config::Config;
use steward_core::audit::Actor;
use steward_core::pipeline::spec::PipelineSpec;
use steward_core::task::TaskOrigin;
use steward_store::{
    NewRun, PipelineRun, PipelineRunQuery, RunStarted, RunStep, Store, StoreError,
};

/// The largest input a run may be started with, as JSON text.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;

/// Idempotency keys Steward gives the runs it starts itself (`task:ID`, the starter task of a
/// schedule or a remediation); a caller may not use them, or it could take their place.
pub const RESERVED_KEY_PREFIXES: [&str; 1] = ["task:"];

/// Why a pipeline operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// No pipeline of that name is declared.
    #[error("no pipeline `{0}` is declared")]
    UnknownPipeline(String),
    /// No run of that id exists.
    #[error("no pipeline run {0}")]
    UnknownRun(i64),
    /// The request is not acceptable; the text says what and where.
    #[error("{0}")]
    Invalid(String),
    /// The run is not in a state that allows it (cancelling a finished run).
    #[error("{0}")]
    State(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for OpsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::State(why) => Self::State(why),
            other => Self::Store(other),
        }
    }
}

/// The pipeline `name` as declared now.
pub fn find<'c>(config: &'c Config, name: &str) -> Result<&'c PipelineSpec, OpsError> {
    config
        .pipelines
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| OpsError::UnknownPipeline(name.to_owned()))
}

/// A run of `name` to start with `input` (an object; `null` counts as `{}`), checked.
pub fn new_run(
    config: &Config,
    name: &str,
    input: Json,
    idempotency_key: Option<String>,
    origin: TaskOrigin,
) -> Result<NewRun, OpsError> {
    let spec = find(config, name)?;
    let input = match input {
        Json::Null => Json::Object(serde_json::Map::new()),
        object @ Json::Object(_) => object,
        other => {
            return Err(OpsError::Invalid(format!(
                "`input`: expected a JSON object, found {}",
                json_type(&other)
            )));
        }
    };
    let size = input.to_string().len();
    if size > MAX_INPUT_BYTES {
        return Err(OpsError::Invalid(format!(
            "`input`: {size} bytes of JSON; a run takes at most {MAX_INPUT_BYTES}"
        )));
    }
    if let Some(key) = &idempotency_key {
        check_key(key)?;
    }
    Ok(NewRun {
        spec: spec.clone(),
        input,
        idempotency_key,
        origin: TaskOrigin {
            workspace: spec.workspace.clone(),
            ..origin
        },
    })
}

/// The most characters an idempotency key may have.
const MAX_KEY_CHARS: usize = 200;

fn check_key(key: &str) -> Result<(), OpsError> {
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS || key.chars().any(char::is_control) {
        return Err(OpsError::Invalid(format!(
            "`idempotency_key`: 1 to {MAX_KEY_CHARS} characters, none a control character"
        )));
    }
    if let Some(prefix) = RESERVED_KEY_PREFIXES.iter().find(|p| key.starts_with(**p)) {
        return Err(OpsError::Invalid(format!(
            "`idempotency_key`: keys starting with `{prefix}` are Steward's own"
        )));
    }
    Ok(())
}

fn json_type(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Starts a run of `name` with `input`, audited as `pipeline.start` by `actor`. A repeated
/// idempotency key answers with the existing run (`created: false`).
pub async fn start(
    store: &dyn Store,
    config: &Config,
    name: &str,
    input: Json,
    idempotency_key: Option<String>,
    actor: &Actor,
) -> Result<RunStarted, OpsError> {
    let origin = TaskOrigin {
        caller: Some(actor.name.clone()),
        ..TaskOrigin::default()
    };
    let run = new_run(config, name, input, idempotency_key, origin)?;
    let mut answers = store.start_runs(&[run], actor).await?;
    answers
        .pop()
        .ok_or_else(|| OpsError::Store(StoreError::Corrupt("no answer to a start".into())))
}

/// A run, without its steps.
pub async fn find_run(store: &dyn Store, id: i64) -> Result<PipelineRun, OpsError> {
    store
        .pipeline_run(id)
        .await?
        .ok_or(OpsError::UnknownRun(id))
}

/// A run's steps' timeline.
pub async fn steps(store: &dyn Store, id: i64) -> Result<Vec<RunStep>, OpsError> {
    Ok(store.run_steps(id).await?)
}

/// A run with its steps' timeline.
pub async fn run(store: &dyn Store, id: i64) -> Result<(PipelineRun, Vec<RunStep>), OpsError> {
    let run = find_run(store, id).await?;
    Ok((run, steps(store, id).await?))
}

/// Runs matching `query`, newest first.
pub async fn runs(
    store: &dyn Store,
    query: &PipelineRunQuery,
) -> Result<Vec<PipelineRun>, OpsError> {
    Ok(store.list_runs(query).await?)
}

/// Cancels run `id`, audited as `pipeline.cancel`.
pub async fn cancel(store: &dyn Store, id: i64, actor: &Actor) -> Result<PipelineRun, OpsError> {
    store.cancel_run(id, actor).await.map_err(not_found(id))
}

/// Retries run `id` from its steps that did not succeed, audited as `pipeline.retry`.
pub async fn retry(store: &dyn Store, id: i64, actor: &Actor) -> Result<PipelineRun, OpsError> {
    store.retry_run(id, actor).await.map_err(not_found(id))
}

fn not_found(id: i64) -> impl Fn(StoreError) -> OpsError {
    move |e| match e {
        StoreError::NotFound(_) => OpsError::UnknownRun(id),
        other => other.into(),
    }
}
