//! The allowlisted kinds of work: each task names one executor by its kind, and only executors
//! built in or declared in `[[executors]]` exist. Enqueueing checks the payload against the
//! executor first, so bad input is refused at the door instead of failing later.

mod builtin;
mod http;
pub mod process;
mod shell;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use steward_core::Registry;
use steward_core::queue::ExecutorSpec;
use steward_core::redact::Redactor;
use steward_core::task::Task;
use tokio_util::sync::CancellationToken;

pub use builtin::{Noop, Sleep};
pub use http::HttpExecutor;
pub use shell::ShellExecutor;

/// What a successful attempt produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    /// A label for filtering (`applied`, `skipped`, ...).
    pub outcome: Option<String>,
    /// A JSON result kept on the task.
    pub result: Option<serde_json::Value>,
    /// The end of what the work printed or answered.
    pub tail: Option<String>,
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// What went wrong, for the task's error.
    pub error: String,
    /// False when running it again cannot help (the task goes straight to dead).
    pub retryable: bool,
    /// The end of what the work printed or answered.
    pub tail: Option<String>,
}

impl Output {
    /// This output with every secret `redactor` knows masked.
    pub fn redacted(mut self, redactor: &Redactor) -> Self {
        self.outcome = self.outcome.map(|o| redactor.redact(&o).into_owned());
        if let Some(result) = self.result.as_mut() {
            redactor.redact_json(result);
        }
        self.tail = self.tail.map(|t| redactor.redact(&t).into_owned());
        self
    }
}

impl Failure {
    /// This failure with every secret `redactor` knows masked.
    pub fn redacted(mut self, redactor: &Redactor) -> Self {
        self.error = redactor.redact(&self.error).into_owned();
        self.tail = self.tail.map(|t| redactor.redact(&t).into_owned());
        self
    }

    /// A failure worth retrying.
    pub fn retryable(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            retryable: true,
            tail: None,
        }
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            retryable: false,
            tail: None,
        }
    }
}

/// Gives the secrets to mask now: read at every attempt or probe, so a reload's new secrets
/// are masked from then on.
pub type RedactorSource = Arc<dyn Fn() -> Arc<Redactor> + Send + Sync>;

/// A source that masks nothing, for what runs without a control plane (benchmarks, tests).
pub fn no_redaction() -> RedactorSource {
    let none = Arc::new(Redactor::default());
    Arc::new(move || Arc::clone(&none))
}

/// What an attempt may use besides its task.
#[derive(Clone)]
pub struct RunContext {
    /// Cancelled when the attempt must stop (cancellation asked for, lease lost, shutdown).
    pub cancel: CancellationToken,
    /// The registry, for executors that address services by name.
    pub registry: Arc<Registry>,
    /// The secrets to mask in what the attempt keeps (the worker masks its output and error
    /// again; an executor that cuts text masks it before the cut).
    pub redactor: Arc<Redactor>,
}

/// One kind of work.
#[async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Checks a payload at enqueue time; the error says which field is wrong and why.
    fn validate(&self, _payload: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }

    /// Runs one attempt. Dropping the future must stop the work (timeouts and cancellation
    /// drop it).
    async fn run(&self, task: &Task, cx: &RunContext) -> Result<Output, Failure>;
}

/// The executors of one configuration, by kind.
#[derive(Clone, Default)]
pub struct Executors {
    by_kind: HashMap<String, Arc<dyn Executor>>,
}

/// Why an executor could not be built from its declaration.
#[derive(Debug, thiserror::Error)]
#[error("executor `{kind}`: {reason}")]
pub struct ExecutorError {
    /// The executor.
    pub kind: String,
    /// Why.
    pub reason: String,
}

impl Executors {
    /// The built-ins plus the declared executors.
    pub fn from_specs(specs: &[ExecutorSpec]) -> Result<Self, ExecutorError> {
        let mut executors = Self::builtins();
        for spec in specs {
            let executor: Arc<dyn Executor> = match spec {
                ExecutorSpec::Http(http) => Arc::new(HttpExecutor::new(http.clone()).map_err(
                    |reason| ExecutorError {
                        kind: http.name.clone(),
                        reason,
                    },
                )?),
                ExecutorSpec::Shell(shell) => Arc::new(ShellExecutor::new(shell.clone()).map_err(
                    |reason| ExecutorError {
                        kind: shell.name.clone(),
                        reason,
                    },
                )?),
            };
            executors.insert(spec.name(), executor);
        }
        Ok(executors)
    }

    /// Only the built-ins (`noop`, `sleep`).
    pub fn builtins() -> Self {
        let mut executors = Self::default();
        executors.insert(steward_core::queue::NOOP_KIND, Arc::new(Noop));
        executors.insert(steward_core::queue::SLEEP_KIND, Arc::new(Sleep));
        executors
    }

    /// Adds (or replaces) the executor of `kind`: how embedders and benchmarks add built-ins.
    pub fn insert(&mut self, kind: &str, executor: Arc<dyn Executor>) {
        self.by_kind.insert(kind.to_string(), executor);
    }

    /// The executor of `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Executor>> {
        self.by_kind.get(kind)
    }
}
