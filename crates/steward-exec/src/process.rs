//! Starting a declared program, for a `shell` task or a `command` check: one place that decides
//! how Steward runs someone else's code.
//!
//! - The program starts with a clean environment: `PATH` (a default one when the daemon has
//!   none), `HOME` and `LANG` from the daemon, then the variables the config declares for it
//!   and those Steward adds. Nothing else of the daemon's environment reaches it.
//! - The program runs in a process group of its own, and the whole group is killed when the
//!   run is dropped (a timeout, a cancellation, a shutdown), so nothing it started outlives it.
//! - When the program itself exits, whatever it left running in its group is killed too: such
//!   a leftover would otherwise hold its standard output open, and reading it would wait for
//!   the leftover to end (or for the timeout) instead of for the program.
//! - Its output is read as it comes, keeping only a bounded head or tail of each stream, so a
//!   chatty program never blocks on a full pipe nor fills memory; the secrets Steward knows
//!   are masked in what is kept.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use steward_core::Secret;
use steward_core::redact::Redactor;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How long the pipes are still read after the program exited and its group was killed: a
/// process that left the group (`setsid`) may hold them open, and is not waited for.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// `PATH` for a program when the daemon itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The daemon's variables a program gets (when the daemon has them); every other one stays
/// behind, as the daemon's environment holds its own secrets (`STEWARD_DATABASE`, the values
/// behind `${VAR}`).
const INHERITED: [&str; 3] = ["PATH", "HOME", "LANG"];

/// Which part of an output stream is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Its first bytes, up to this many (what a check's conditions read).
    Head(usize),
    /// Its last bytes, up to this many (the end explains a failure).
    Tail(usize),
}

/// A program to run.
#[derive(Debug, Clone, Copy)]
pub struct Program<'a> {
    /// An absolute path, or a name looked up in `PATH`.
    pub command: &'a str,
    /// Its arguments.
    pub args: &'a [String],
    /// Variables the config declares for it.
    pub env: &'a BTreeMap<String, Secret>,
    /// Variables Steward adds (a task's id and attempt).
    pub extra_env: &'a [(&'static str, String)],
    /// The working directory, when declared.
    pub workdir: Option<&'a Path>,
}

/// Why a program could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// It could not be started (not found, not executable, a bad working directory).
    #[error("cannot start `{command}`: {source}")]
    Start {
        /// The program.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// Waiting for it failed.
    #[error("waiting for `{command}`: {source}")]
    Wait {
        /// The program.
        command: String,
        /// Why.
        source: std::io::Error,
    },
}

/// What a finished program left.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// What it wrote to standard output (the part kept).
    pub stdout: Captured,
    /// What it wrote to standard error (the part kept).
    pub stderr: Captured,
}

/// The kept part of one output stream.
#[derive(Debug)]
pub struct Captured {
    keep: Keep,
    bytes: Vec<u8>,
    /// Some of the stream was left out.
    cut: bool,
}

impl Captured {
    fn new(keep: Keep) -> Self {
        Self {
            keep,
            bytes: Vec::new(),
            cut: false,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        match self.keep {
            Keep::Head(max) => {
                let room = max.saturating_sub(self.bytes.len());
                self.cut |= chunk.len() > room;
                self.bytes
                    .extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Keep::Tail(max) => {
                self.bytes.extend_from_slice(chunk);
                // Trimmed in steps rather than on every chunk, so keeping the tail costs
                // amortised constant time per byte.
                if self.bytes.len() > 2 * max {
                    self.bytes.drain(..self.bytes.len() - max);
                    self.cut = true;
                }
            }
        }
    }

    /// The kept part as text (invalid UTF-8 replaced), with every secret `redactor` knows
    /// masked, at most its `Keep` bound in bytes. Secrets are masked before the text is cut
    /// to its bound, and a secret split where the stream itself was cut is masked at that
    /// edge, so nothing of a secret long enough to matter is left.
    pub fn text(&self, redactor: &Redactor) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        let masked = match (self.keep, self.cut) {
            (_, false) => redactor.redact(&text),
            (Keep::Head(_), true) => redactor.redact_head(&text),
            (Keep::Tail(_), true) => redactor.redact_tail(&text),
        };
        match self.keep {
            Keep::Head(max) => steward_core::task::head(&masked, max).to_owned(),
            Keep::Tail(max) => steward_core::task::tail(&masked, max).to_owned(),
        }
    }

    /// Reads `pipe` to its end (or its first error) into this capture.
    async fn read_from(&mut self, pipe: Option<impl AsyncRead + Unpin>) {
        let Some(mut pipe) = pipe else {
            return;
        };
        let mut buffer = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            self.push(&buffer[..n]);
        }
    }
}

/// Kills the process group unless it was killed already: a run that is dropped takes every
/// process it started with it.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn of(child: &tokio::process::Child) -> Self {
        Self {
            pgid: child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .map(Pid::from_raw),
        }
    }

    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH (nothing left in the group) is the usual answer, and fine.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Program<'_> {
    fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(self.command);
        command.env_clear();
        for name in INHERITED {
            match std::env::var_os(name) {
                Some(value) => {
                    command.env(name, value);
                }
                None if name == "PATH" => {
                    command.env(name, DEFAULT_PATH);
                }
                None => {}
            }
        }
        command
            .args(self.args)
            .envs(self.env.iter().map(|(name, value)| (name, value.expose())))
            .envs(self.extra_env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = self.workdir {
            command.current_dir(dir);
        }
        command
    }

    /// Runs the program to its end, keeping `keep` of each output stream. Dropping the future
    /// kills the program's whole process group.
    pub async fn run(&self, keep: Keep) -> Result<Finished, ProgramError> {
        let mut child = self
            .command()
            .spawn()
            .map_err(|source| ProgramError::Start {
                command: self.command.to_owned(),
                source,
            })?;
        let mut group = GroupGuard::of(&child);
        let (stdout_pipe, stderr_pipe) = (child.stdout.take(), child.stderr.take());
        let mut stdout = Captured::new(keep);
        let mut stderr = Captured::new(keep);
        let status = {
            let reading = async {
                tokio::join!(stdout.read_from(stdout_pipe), stderr.read_from(stderr_pipe));
            };
            tokio::pin!(reading);
            let mut read_all = false;
            let status = loop {
                tokio::select! {
                    status = child.wait() => break status,
                    () = &mut reading, if !read_all => read_all = true,
                }
            };
            group.kill();
            if !read_all {
                let _ = tokio::time::timeout(DRAIN_GRACE, &mut reading).await;
            }
            status
        };
        let status = status.map_err(|source| ProgramError::Wait {
            command: self.command.to_owned(),
            source,
        })?;
        Ok(Finished {
            status,
            stdout,
            stderr,
        })
    }
}

/// For the tests of what starts programs: whether one started has ended.
/// Helpers for tests here and in the crates that start programs through this module.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;
    use std::time::Duration;

    /// Whether the process whose pid `pid_file` holds ends within two seconds: a killed
    /// process closes its files a moment before it is reaped, or left a zombie for its new
    /// parent.
    pub fn ended(pid_file: &Path) -> bool {
        let pid: i32 = std::fs::read_to_string(pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let stat = format!("/proc/{pid}/stat");
        (0..100).any(|_| {
            let state = std::fs::read_to_string(&stat);
            if state.map_or(true, |state| state.split_whitespace().nth(2) == Some("Z")) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
            false
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of the variables `/usr/bin/env` saw.
    fn names_seen(env_output: &str) -> Vec<String> {
        env_output
            .lines()
            .filter_map(|line| line.split_once('=').map(|(name, _)| name.to_owned()))
            .collect()
    }

    #[tokio::test]
    async fn a_program_sees_only_path_home_lang_and_what_it_is_given() {
        let env = BTreeMap::from([("DECLARED".to_owned(), Secret::new("declared-value"))]);
        let extra_env = [("STEWARD_TASK_ID", "7".to_owned())];
        let program = Program {
            command: "/usr/bin/env",
            args: &[],
            env: &env,
            extra_env: &extra_env,
            workdir: None,
        };
        let finished = program.run(Keep::Tail(1 << 16)).await.unwrap();
        let output = finished.stdout.text(&Redactor::default());
        let mut expected = vec!["DECLARED", "PATH", "STEWARD_TASK_ID"];
        for inherited in ["HOME", "LANG"] {
            if std::env::var_os(inherited).is_some() {
                expected.push(inherited);
            }
        }
        expected.sort_unstable();
        let mut seen = names_seen(&output);
        seen.sort_unstable();
        assert_eq!(seen, expected, "{output}");
        assert!(output.contains("DECLARED=declared-value\n"), "{output}");
        let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned());
        assert!(output.contains(&format!("PATH={path}\n")), "{output}");
    }

    #[test]
    fn a_secret_split_by_the_cut_leaves_nothing() {
        let redactor = Redactor::new(["SECRET-VALUE"]);
        let mut tail = Captured::new(Keep::Tail(10));
        tail.push(b"xxxxxxxxxSECRET-VALUE");
        tail.push(b"!!");
        assert_eq!(tail.text(&redactor), "***!!");
        let mut head = Captured::new(Keep::Head(10));
        head.push(b"ok SECRET-VALUE");
        assert_eq!(head.text(&redactor), "ok ***");
        let mut whole = Captured::new(Keep::Tail(100));
        whole.push(b"pw=SECRET-VALUE\n");
        assert_eq!(whole.text(&redactor), "pw=***\n");
    }

    #[test]
    fn a_head_keeps_the_start_and_a_tail_the_end() {
        let mut head = Captured::new(Keep::Head(4));
        let mut tail = Captured::new(Keep::Tail(4));
        for chunk in [b"abc".as_slice(), b"defgh", b"ij"] {
            head.push(chunk);
            tail.push(chunk);
        }
        let none = Redactor::default();
        assert_eq!(head.text(&none), "abcd");
        assert_eq!(tail.text(&none), "ghij");
    }
}
