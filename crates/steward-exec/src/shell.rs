//! The `shell` executor: runs one declared program with arguments filled from validated payload
//! fields. There is no shell in between, so a payload can never inject a command; the program
//! runs as [`crate::process`] runs every program: in its own process group, killed whole when
//! the attempt is stopped or the program exits.

use std::collections::BTreeMap;

use async_trait::async_trait;
use regex::Regex;
use steward_core::queue::ShellSpec;
use steward_core::task::{MAX_TAIL_BYTES, Task, tail};

use crate::process::{Keep, Program};
use crate::{Executor, Failure, Output, RunContext};

/// Runs a declared command.
pub struct ShellExecutor {
    spec: ShellSpec,
    params: BTreeMap<String, Regex>,
}

impl ShellExecutor {
    /// Builds the executor, compiling each parameter's pattern (anchored at both ends).
    pub fn new(spec: ShellSpec) -> Result<Self, String> {
        let mut params = BTreeMap::new();
        for (name, pattern) in &spec.params {
            let regex = Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|e| format!("`params.{name}`: {e}"))?;
            params.insert(name.clone(), regex);
        }
        for placeholder in spec.placeholders() {
            if !params.contains_key(placeholder) {
                return Err(format!(
                    "argument placeholder `{{{placeholder}}}` is not declared in `params`"
                ));
            }
        }
        Ok(Self { spec, params })
    }

    /// The payload's value for each declared parameter it uses, checked against its pattern.
    fn values(&self, payload: &serde_json::Value) -> Result<BTreeMap<String, String>, String> {
        let mut values = BTreeMap::new();
        for name in self.spec.placeholders() {
            let value = match payload.get(name) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                Some(serde_json::Value::Bool(b)) => b.to_string(),
                Some(_) => {
                    return Err(format!(
                        "`payload.{name}`: expected a string, number or boolean"
                    ));
                }
                None => return Err(format!("`payload.{name}`: missing")),
            };
            let pattern = self
                .params
                .get(name)
                .ok_or_else(|| format!("`payload.{name}`: not a declared parameter"))?;
            if !pattern.is_match(&value) {
                return Err(format!(
                    "`payload.{name}`: does not match `{}`",
                    self.spec.params.get(name).map_or("", String::as_str)
                ));
            }
            values.insert(name.to_string(), value);
        }
        Ok(values)
    }

    fn arguments(&self, values: &BTreeMap<String, String>) -> Vec<String> {
        self.spec
            .fill_args(|name| values.get(name).map(String::as_str))
    }
}

#[async_trait]
impl Executor for ShellExecutor {
    fn validate(&self, payload: &serde_json::Value) -> Result<(), String> {
        self.values(payload).map(|_| ())
    }

    async fn run(&self, task: &Task, cx: &RunContext) -> Result<Output, Failure> {
        let values = self.values(&task.payload).map_err(Failure::permanent)?;
        let args = self.arguments(&values);
        let extra_env = [
            ("STEWARD_TASK_ID", task.id.to_string()),
            ("STEWARD_TASK_ATTEMPT", task.attempt.to_string()),
        ];
        let program = Program {
            command: &self.spec.command,
            args: &args,
            env: &self.spec.env,
            extra_env: &extra_env,
            workdir: self.spec.workdir.as_deref(),
        };
        let finished = program
            .run(Keep::Tail(MAX_TAIL_BYTES))
            .await
            .map_err(|error| Failure::retryable(error.to_string()))?;
        let mut output = finished.stdout.text(&cx.redactor);
        output.push_str(&finished.stderr.text(&cx.redactor));
        let tail = Some(tail(&output, MAX_TAIL_BYTES).to_string());
        if finished.status.success() {
            Ok(Output {
                outcome: None,
                result: None,
                tail,
            })
        } else {
            Err(Failure {
                error: format!("`{}` exited with {}", self.spec.command, finished.status),
                retryable: true,
                tail,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use proptest::prelude::*;
    use serde_json::json;
    use steward_core::redact::Redactor;
    use steward_core::task::{TaskOrigin, TaskStatus};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::process::testing::ended;

    fn spec(args: &[&str], params: &[(&str, &str)]) -> ShellSpec {
        ShellSpec {
            name: "t".into(),
            command: "sh".into(),
            args: args.iter().map(|a| (*a).to_string()).collect(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            env: BTreeMap::new(),
            workdir: None,
        }
    }

    fn task(payload: serde_json::Value) -> Task {
        Task {
            timeout_ms: None,
            id: 1,
            queue: "q".into(),
            kind: "t".into(),
            payload,
            priority: 0,
            status: TaskStatus::Running,
            attempt: 1,
            max_attempts: 1,
            run_at_ms: 0,
            outcome: None,
            result: None,
            error: None,
            lease_owner: None,
            lease_expires_at_ms: None,
            fence: 1,
            cancel_requested: false,
            idempotency_key: None,
            origin: TaskOrigin::default(),
            created_at_ms: 0,
            finished_at_ms: None,
            node: None,
        }
    }

    fn cx() -> RunContext {
        RunContext {
            cancel: CancellationToken::new(),
            registry: Arc::new(steward_core::Registry::default()),
            redactor: Arc::new(Redactor::default()),
        }
    }

    #[test]
    fn payload_fields_must_match_their_patterns() {
        let shell = ShellExecutor::new(spec(&["-c", "echo {db}"], &[("db", "[a-z]+")])).unwrap();
        assert!(shell.validate(&json!({ "db": "main" })).is_ok());
        let err = shell.validate(&json!({ "db": "x; rm -rf /" })).unwrap_err();
        assert!(err.contains("payload.db"), "{err}");
        assert!(shell.validate(&json!({})).unwrap_err().contains("missing"));
        assert!(ShellExecutor::new(spec(&["{undeclared}"], &[])).is_err());
    }

    #[tokio::test]
    async fn output_is_kept_and_failure_reported() {
        let shell = ShellExecutor::new(spec(
            &["-c", "echo hello {who}; exit {code}"],
            &[("who", "[a-z]+"), ("code", "[0-9]")],
        ))
        .unwrap();
        let ok = shell
            .run(&task(json!({ "who": "ada", "code": 0 })), &cx())
            .await
            .unwrap();
        assert_eq!(ok.tail.as_deref(), Some("hello ada\n"));
        let failed = shell
            .run(&task(json!({ "who": "bob", "code": 3 })), &cx())
            .await
            .unwrap_err();
        assert!(failed.error.contains("exit status: 3"), "{}", failed.error);
        assert_eq!(failed.tail.as_deref(), Some("hello bob\n"));
    }

    #[test]
    fn a_value_is_inserted_once_and_never_scanned_again() {
        let shell = ShellExecutor::new(spec(
            &["--msg={msg}", "{other}"],
            &[("msg", ".*"), ("other", ".*")],
        ))
        .unwrap();
        let values = shell
            .values(&json!({ "msg": "{other}", "other": "zzz" }))
            .unwrap();
        assert_eq!(shell.arguments(&values), ["--msg={other}", "zzz"]);
    }

    /// A value made of placeholder-like pieces (`{a}`, `{b}`, stray braces) and plain text.
    fn tricky_value() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("{a}".to_string()),
                Just("{b}".to_string()),
                "[a-z{}]{0,3}"
            ],
            0..6,
        )
        .prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn values_appear_verbatim_in_the_arguments(a in tricky_value(), b in tricky_value()) {
            let shell = ShellExecutor::new(spec(
                &["--a={a}", "{b}-{a}", "{b}", "{", "x}{"],
                &[("a", ".*"), ("b", ".*")],
            ))
            .unwrap();
            let values = BTreeMap::from([("a".to_string(), a.clone()), ("b".to_string(), b.clone())]);
            prop_assert_eq!(
                shell.arguments(&values),
                vec![format!("--a={a}"), format!("{b}-{a}"), b.clone(), "{".to_string(), "x}{".to_string()]
            );
        }
    }

    #[tokio::test]
    async fn an_attempt_ends_with_its_program_and_takes_what_it_left_running() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; echo done", pid_file.display());
        let shell = ShellExecutor::new(spec(&["-c", &script], &[])).unwrap();
        let ran = tokio::time::timeout(Duration::from_secs(5), shell.run(&task(json!({})), &cx()))
            .await
            .expect("the attempt should end when its program does")
            .unwrap();
        assert_eq!(ran.tail.as_deref(), Some("done\n"));
        assert!(ended(&pid_file), "the leftover sleep still runs");
    }

    #[tokio::test]
    async fn a_dropped_attempt_takes_its_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let shell = ShellExecutor::new(spec(&["-c", &script], &[])).unwrap();
        let t = task(json!({}));
        let context = cx();
        let stopped =
            tokio::time::timeout(Duration::from_millis(500), shell.run(&t, &context)).await;
        assert!(stopped.is_err(), "the attempt should still be running");
        assert!(ended(&pid_file), "the grandchild survived");
    }
}
