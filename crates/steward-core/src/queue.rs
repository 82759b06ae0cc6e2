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
/// The built-in that starts a run of a declared pipeline (payload `{"pipeline": NAME, "input":
/// {…}}`): what a schedule or an alert route's remediation naming a pipeline enqueues. Only
/// [`SYSTEM_QUEUE`] runs it, and no `[[executors]]` entry may take its name.
pub const PIPELINE_KIND: &str = "pipeline";
/// The kinds only [`SYSTEM_QUEUE`] runs.
pub const SYSTEM_KINDS: [&str; 2] = [PRUNE_KIND, PIPELINE_KIND];

/// [`SYSTEM_QUEUE`]: a few tasks at a time (a long retention sweep must not hold up starting
/// pipelines), its finished tasks kept a week.
pub fn system_queue() -> QueueSpec {
    let mut queue = QueueSpec::new(SYSTEM_QUEUE, &SYSTEM_KINDS);
    queue.concurrency = 4;
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
    /// The node whose agent runs this queue's tasks; no instance's workers claim them.
    pub node: Option<String>,
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
            node: None,
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
        for piece in self.args.iter().flat_map(|arg| arg_pieces(arg)) {
            if let ArgPiece::Field(name) = piece
                && !found.contains(&name)
            {
                found.push(name);
            }
        }
        found
    }

    /// The arguments with each `{field}` replaced by `value_of(field)`, in one left-to-right
    /// pass: text a value brings in is never scanned again, so a value may contain `{…}`
    /// verbatim. A placeholder without a value is kept as written.
    pub fn fill_args<'v>(&self, value_of: impl Fn(&str) -> Option<&'v str>) -> Vec<String> {
        self.args
            .iter()
            .map(|arg| {
                let mut filled = String::with_capacity(arg.len());
                for piece in arg_pieces(arg) {
                    match piece {
                        ArgPiece::Text(text) => filled.push_str(text),
                        ArgPiece::Field(name) => match value_of(name) {
                            Some(value) => filled.push_str(value),
                            None => {
                                filled.push('{');
                                filled.push_str(name);
                                filled.push('}');
                            }
                        },
                    }
                }
                filled
            })
            .collect()
    }
}

/// A piece of a `shell` executor's argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgPiece<'a> {
    /// Literal text.
    Text(&'a str),
    /// A `{field}` placeholder, by its field's name.
    Field(&'a str),
}

/// Splits `arg` into literal text and `{field}` placeholders, left to right: the one place
/// that knows the placeholder syntax. A `{` runs to the next `}`; a `{` with no `}` after it
/// is text.
pub fn arg_pieces(arg: &str) -> Vec<ArgPiece<'_>> {
    let mut pieces = Vec::new();
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        if open > 0 {
            pieces.push(ArgPiece::Text(&rest[..open]));
        }
        pieces.push(ArgPiece::Field(&rest[open + 1..open + close]));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(ArgPiece::Text(rest));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    fn arguments_split_into_text_and_fields() {
        assert_eq!(
            arg_pieces("--db={database}.{x}{"),
            [
                ArgPiece::Text("--db="),
                ArgPiece::Field("database"),
                ArgPiece::Text("."),
                ArgPiece::Field("x"),
                ArgPiece::Text("{"),
            ]
        );
        assert_eq!(arg_pieces(""), []);
        assert_eq!(
            arg_pieces("}{}"),
            [ArgPiece::Text("}"), ArgPiece::Field("")]
        );
    }

    proptest! {
        #[test]
        fn pieces_put_together_give_the_argument_back(arg in "[a-z{}]{0,24}") {
            let joined: String = arg_pieces(&arg)
                .into_iter()
                .map(|piece| match piece {
                    ArgPiece::Text(text) => text.to_string(),
                    ArgPiece::Field(name) => format!("{{{name}}}"),
                })
                .collect();
            prop_assert_eq!(joined, arg);
        }

        #[test]
        fn filled_values_are_never_scanned_again(value in "[a-z{}]{0,16}") {
            let spec = ShellSpec {
                name: "s".into(),
                command: "run".into(),
                args: vec!["<{v}>".into(), "{w}{v}".into()],
                params: BTreeMap::new(),
                env: BTreeMap::new(),
                workdir: None,
            };
            let filled = spec.fill_args(|name| match name {
                "v" => Some(value.as_str()),
                "w" => Some("{v}"),
                _ => None,
            });
            prop_assert_eq!(filled, vec![format!("<{value}>"), format!("{{v}}{value}")]);
        }
    }

    #[test]
    fn queues_allow_only_their_kinds() {
        let q = QueueSpec::new("jobs", &["noop"]);
        assert!(q.allows("noop"));
        assert!(!q.allows("shell"));
    }
}
