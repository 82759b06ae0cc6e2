//! What `steward.toml` declares about work: queues (`[[queues]]`) and the allowlisted
//! executors (`[[executors]]`) their tasks may name as their kind.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::secret::Secret;
use crate::task::RetryPolicy;

/// The executor every queue may use without declaring it: it does nothing and succeeds.
pub const NOOP_KIND: &str = "noop";
/// A built-in that sleeps for the payload's `ms` (at most an hour), honouring cancellation.
pub const SLEEP_KIND: &str = "sleep";
/// The kinds built into the binary.
pub const BUILTIN_KINDS: [&str; 2] = [NOOP_KIND, SLEEP_KIND];
/// Steward's own queue, for its built-in scheduled work (retention); the name is reserved.
pub const SYSTEM_QUEUE: &str = "steward";
/// The built-in that deletes what is past its retention; only [`SYSTEM_QUEUE`] runs it, and
/// no `[[executors]]` entry may take its name.
pub const PRUNE_KIND: &str = "prune";

/// [`SYSTEM_QUEUE`]: one task at a time, its finished tasks kept a week.
pub fn system_queue() -> QueueSpec {
    let mut queue = QueueSpec::new(SYSTEM_QUEUE, &[PRUNE_KIND]);
    queue.concurrency = 1;
    queue.timeout_ms = 10 * 60 * 1000;
    queue
}

/// A queue and how its tasks are worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// Its name.
    pub name: String,
    /// The executors its tasks may name (built-ins or `[[executors]]`).
    pub kinds: Vec<String>,
    /// Tasks run at once by each instance.
    pub concurrency: u32,
    /// Tasks started per second by each instance, if limited.
    pub rate_limit: Option<u32>,
    /// Attempts and backoff.
    pub retry: RetryPolicy,
    /// Longest an attempt may run before it is killed and counted failed.
    pub timeout_ms: u64,
    /// How long a claim lasts without a heartbeat.
    pub lease_ms: u64,
    /// Largest payload accepted, in bytes of JSON.
    pub max_payload_bytes: usize,
    /// How long finished tasks (and their runs) are kept; `None` keeps them.
    pub retention_ms: Option<u64>,
}

impl QueueSpec {
    /// Default tasks at once per instance.
    pub const DEFAULT_CONCURRENCY: u32 = 10;
    /// Default attempt timeout: one minute.
    pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
    /// Default lease: 30 seconds, extended every third of it.
    pub const DEFAULT_LEASE_MS: u64 = 30_000;
    /// Default payload limit: 1 MiB.
    pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1 << 20;
    /// Default retention of finished tasks: seven days.
    pub const DEFAULT_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;

    /// A queue with the defaults, allowing `kinds`.
    pub fn new(name: impl Into<String>, kinds: &[&str]) -> Self {
        Self {
            name: name.into(),
            kinds: kinds.iter().map(|k| (*k).to_string()).collect(),
            concurrency: Self::DEFAULT_CONCURRENCY,
            rate_limit: None,
            retry: RetryPolicy::default(),
            timeout_ms: Self::DEFAULT_TIMEOUT_MS,
            lease_ms: Self::DEFAULT_LEASE_MS,
            max_payload_bytes: Self::DEFAULT_MAX_PAYLOAD_BYTES,
            retention_ms: Some(Self::DEFAULT_RETENTION_MS),
        }
    }

    /// True when tasks of `kind` may be enqueued here.
    pub fn allows(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == kind)
    }
}

/// An allowlisted executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutorSpec {
    /// Calls a URL.
    Http(HttpSpec),
    /// Runs a declared command.
    Shell(ShellSpec),
}

impl ExecutorSpec {
    /// The kind tasks name it by.
    pub fn name(&self) -> &str {
        match self {
            Self::Http(h) => &h.name,
            Self::Shell(s) => &s.name,
        }
    }
}

/// Where an `http` executor sends its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpTarget {
    /// A fixed URL.
    Url(String),
    /// A service of the registry, by name, plus a path appended to its URL.
    Service {
        /// The service.
        name: String,
        /// Appended to the service's URL.
        path: String,
    },
}

/// An `http` executor: one request per attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSpec {
    /// The kind tasks name it by.
    pub name: String,
    /// The method (`POST` unless declared).
    pub method: String,
    /// Where to send it.
    pub target: HttpTarget,
    /// Extra headers; values may come from the environment, so they are secrets.
    pub headers: BTreeMap<String, Secret>,
    /// Statuses that count as success; empty means any 2xx.
    pub success_status: Vec<u16>,
    /// A top-level field of the JSON response holding the outcome label (`outcome`).
    pub outcome_field: Option<String>,
    /// How much of the response is kept.
    pub max_response_bytes: usize,
}

/// A `shell` executor: one declared command, never a shell string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellSpec {
    /// The kind tasks name it by.
    pub name: String,
    /// The program (an absolute path or a name looked up in `PATH`).
    pub command: String,
    /// Arguments; `{field}` is replaced by the payload's validated field of that name.
    pub args: Vec<String>,
    /// The payload fields arguments may use, each with the pattern its value must match in
    /// full.
    pub params: BTreeMap<String, String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, Secret>,
    /// The working directory.
    pub workdir: Option<PathBuf>,
}

impl ShellSpec {
    /// The `{field}` placeholders its arguments use, in order of first use.
    pub fn placeholders(&self) -> Vec<&str> {
        let mut found = Vec::new();
        for arg in &self.args {
            let mut rest = arg.as_str();
            while let Some(open) = rest.find('{') {
                let Some(close) = rest[open..].find('}') else {
                    break;
                };
                let name = &rest[open + 1..open + close];
                if !found.contains(&name) {
                    found.push(name);
                }
                rest = &rest[open + close + 1..];
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_in_order_of_first_use() {
        let spec = ShellSpec {
            name: "backup".into(),
            command: "/bin/echo".into(),
            args: vec![
                "--db={database}".into(),
                "{mode}".into(),
                "{database}-x".into(),
            ],
            params: BTreeMap::new(),
            env: BTreeMap::new(),
            workdir: None,
        };
        assert_eq!(spec.placeholders(), ["database", "mode"]);
    }

    #[test]
    fn queues_allow_only_their_kinds() {
        let q = QueueSpec::new("jobs", &["noop"]);
        assert!(q.allows("noop"));
        assert!(!q.allows("shell"));
    }
}
