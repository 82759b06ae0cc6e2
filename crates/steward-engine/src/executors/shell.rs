//! The `shell` executor: runs one declared program with arguments filled from validated payload
//! fields. There is no shell in between, so a payload can never inject a command; the program
//! runs in its own process group, and the whole group is killed when the attempt is stopped.

use std::collections::BTreeMap;
use std::process::Stdio;

use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use regex::Regex;
use steward_core::queue::ShellSpec;
use steward_core::task::{MAX_TAIL_BYTES, Task, tail};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{Executor, Failure, Output, RunContext};

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

/// Kills the process group unless disarmed: an attempt that is dropped (timeout, cancellation,
/// shutdown) takes every process it started with it.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

/// Reads a stream to its end, keeping only its last `MAX_TAIL_BYTES`.
async fn read_tail(mut stream: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buffer = [0u8; 8192];
    while let Ok(n) = stream.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buffer[..n]);
        if kept.len() > 2 * MAX_TAIL_BYTES {
            kept.drain(..kept.len() - MAX_TAIL_BYTES);
        }
    }
    kept
}

#[async_trait]
impl Executor for ShellExecutor {
    fn validate(&self, payload: &serde_json::Value) -> Result<(), String> {
        self.values(payload).map(|_| ())
    }

    async fn run(&self, task: &Task, _cx: &RunContext) -> Result<Output, Failure> {
        let values = self.values(&task.payload).map_err(Failure::permanent)?;
        let mut command = tokio::process::Command::new(&self.spec.command);
        command
            .args(self.arguments(&values))
            .envs(self.spec.env.iter().map(|(k, v)| (k, v.expose())))
            .env("STEWARD_TASK_ID", task.id.to_string())
            .env("STEWARD_TASK_ATTEMPT", task.attempt.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &self.spec.workdir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().map_err(|e| {
            Failure::retryable(format!("cannot start `{}`: {e}", self.spec.command))
        })?;
        let mut guard = GroupGuard {
            pgid: child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .map(Pid::from_raw),
        };
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (status, out, err) = tokio::join!(
            child.wait(),
            async {
                match stdout {
                    Some(s) => read_tail(s).await,
                    None => Vec::new(),
                }
            },
            async {
                match stderr {
                    Some(s) => read_tail(s).await,
                    None => Vec::new(),
                }
            },
        );
        guard.pgid = None;
        let mut output = String::from_utf8_lossy(&out).into_owned();
        if !err.is_empty() {
            output.push_str(&String::from_utf8_lossy(&err));
        }
        let tail = Some(tail(&output, MAX_TAIL_BYTES).to_string());
        let status = status
            .map_err(|e| Failure::retryable(format!("waiting for `{}`: {e}", self.spec.command)))?;
        if status.success() {
            Ok(Output {
                outcome: None,
                result: None,
                tail,
            })
        } else {
            Err(Failure {
                error: format!("`{}` exited with {status}", self.spec.command),
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
    use steward_core::task::{TaskOrigin, TaskStatus};
    use tokio_util::sync::CancellationToken;

    use super::*;

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
        }
    }

    fn cx() -> RunContext {
        RunContext {
            cancel: CancellationToken::new(),
            registry: Arc::new(steward_core::Registry::default()),
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
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            // A killed child of a killed shell is reparented and reaped, or left a zombie.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |stat| stat.split_whitespace().nth(2) == Some("Z"))
        });
        assert!(gone, "the grandchild {pid} survived");
    }
}
