//! End-to-end tests of `steward check`: the real binary, real files, exact diagnostics.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

const VIZION: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/vizion/steward.toml"
);

/// What one run of the binary printed, and how it exited.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// The non-empty lines of standard output.
    fn lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    /// The `error:` diagnostics on standard output.
    fn errors(&self) -> Vec<&str> {
        self.lines()
            .into_iter()
            .filter(|l| l.contains(": error: "))
            .collect()
    }

    /// The `warning:` diagnostics on standard output.
    fn warnings(&self) -> Vec<&str> {
        self.lines()
            .into_iter()
            .filter(|l| l.contains(": warning: "))
            .collect()
    }

    fn assert_no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked"),
            "the binary panicked:\n{}",
            self.stderr
        );
    }

    fn context(&self) -> String {
        format!(
            "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A `steward` command with a clean environment (no stray `STEWARD_…` variables), run in `dir`
/// so that diagnostics name files exactly as the test passes them.
fn steward(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_steward"));
    cmd.env_clear().current_dir(dir);
    cmd
}

/// Runs `steward check --config <config>` in `dir`.
fn check_in(dir: &Path, config: &str) -> Run {
    check_in_env(dir, config, &[])
}

/// Runs `steward check --config <config>` in `dir` with `env` set.
fn check_in_env(dir: &Path, config: &str, env: &[(&str, &str)]) -> Run {
    let run = Run::from(
        steward(dir)
            .envs(env.iter().copied())
            .args(["check", "--config", config])
            .output()
            .expect("run steward"),
    );
    run.assert_no_panic();
    run
}

/// Writes `text` to `dir/name` and checks it.
fn check_text(dir: &Path, name: &str, text: &str) -> Run {
    check_text_env(dir, name, text, &[])
}

/// Writes `text` to `dir/name` and checks it with `env` set.
fn check_text_env(dir: &Path, name: &str, text: &str, env: &[(&str, &str)]) -> Run {
    std::fs::write(dir.join(name), text).unwrap();
    check_in_env(dir, name, env)
}

/// Asserts a bad file got exactly one line of explanation and exit code 2.
fn assert_one_line_failure(run: &Run) -> String {
    assert_eq!(run.code, Some(2), "{}", run.context());
    let lines = run.lines();
    assert_eq!(lines.len(), 1, "expected one line: {}", run.context());
    lines[0].to_owned()
}

#[test]
fn the_vizion_example_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let run = check_in(dir.path(), VIZION);
    assert_eq!(run.code, Some(0), "{}", run.context());
    // The example's own programs live on its host; anywhere else each is a located warning.
    let warnings = run.warnings();
    assert!(
        warnings.len() <= 3
            && warnings
                .iter()
                .all(|w| w.contains(": warning: `executors[") && w.ends_with("` does not exist")),
        "{}",
        run.context()
    );
    let plural = if warnings.len() == 1 { "" } else { "s" };
    assert!(
        run.stdout.contains(&format!(
            "ok (8 workspaces, 19 dependencies, 4 services, 4 checks; {} warning{plural})",
            warnings.len()
        )),
        "{}",
        run.context()
    );
    assert!(run.errors().is_empty(), "{}", run.context());
}

#[test]
fn three_mistakes_give_three_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"[[workspaces]]
key = "a"
colour = "red"

[[workspaces]]
key = "b"
owner = 5

[[dependencies]]
from = "a"
to = "ghost"
type = "reads"
"#;
    let run = check_text(dir.path(), "three.toml", text);
    assert_eq!(run.code, Some(2), "{}", run.context());
    let errors = run.errors();
    assert_eq!(errors.len(), 3, "{}", run.context());
    assert!(
        errors[0].starts_with("three.toml:3:1: error: unknown key `workspaces[0].colour`"),
        "{}",
        run.context()
    );
    assert_eq!(
        errors[1],
        "three.toml:7:9: error: `workspaces[1].owner`: expected a string, found integer"
    );
    assert!(
        errors[2]
            .starts_with("three.toml:11:6: error: `dependencies[0].to`: unknown workspace `ghost`"),
        "{}",
        run.context()
    );
    assert!(run.warnings().is_empty(), "{}", run.context());
    assert_eq!(
        run.lines().last().copied(),
        Some("3 errors, 0 warnings"),
        "{}",
        run.context()
    );
}

#[test]
fn unknown_workspace_in_a_dependency_suggests_the_closest() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"[[workspaces]]
key = "trading"

[[workspaces]]
key = "analytics"

[[dependencies]]
from = "analytics"
to = "tradng"
type = "reads"
"#;
    let run = check_text(dir.path(), "hint.toml", text);
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert_eq!(
        run.errors(),
        [
            "hint.toml:9:6: error: `dependencies[0].to`: unknown workspace `tradng`; did you mean `trading`?"
        ]
    );
}

#[test]
fn a_duplicate_workspace_points_at_both() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"[[workspaces]]
key = "a"

[[workspaces]]
key = "b"

[[workspaces]]
key = "a"
"#;
    let run = check_text(dir.path(), "dup.toml", text);
    assert_eq!(run.code, Some(2), "{}", run.context());
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{}", run.context());
    assert!(errors[0].starts_with("dup.toml:8:7: error: "), "{errors:?}");
    assert!(errors[0].contains("workspaces[2].key"), "{errors:?}");
    assert!(errors[0].contains("duplicate workspace `a`"), "{errors:?}");
    assert!(
        errors[0].contains("first declared at dup.toml:2:7"),
        "{errors:?}"
    );
}

#[test]
fn a_duplicate_service_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"[[workspaces]]
key = "a"

[[services]]
name = "api"
workspace = "a"

[[services]]
name = "api"
"#;
    let run = check_text(dir.path(), "svc.toml", text);
    assert_eq!(run.code, Some(2), "{}", run.context());
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{}", run.context());
    assert!(errors[0].starts_with("svc.toml:9:8: error: "), "{errors:?}");
    assert!(errors[0].contains("duplicate service `api`"), "{errors:?}");
    assert!(
        errors[0].contains("first declared at svc.toml:5:8"),
        "{errors:?}"
    );
}

#[test]
fn a_duplicate_edge_is_only_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"[[workspaces]]
key = "a"

[[workspaces]]
key = "b"

[[dependencies]]
from = "a"
to = "b"
type = "reads"

[[dependencies]]
from = "a"
to = "b"
type = "reads"
note = "again"
"#;
    let run = check_text(dir.path(), "edge.toml", text);
    assert_eq!(run.code, Some(0), "{}", run.context());
    let warnings = run.warnings();
    assert_eq!(warnings.len(), 1, "{}", run.context());
    assert!(
        warnings[0].starts_with("edge.toml:12:1: warning: `dependencies[1]`: duplicate edge"),
        "{warnings:?}"
    );
    assert!(
        warnings[0].contains("first declared at edge.toml:7:1"),
        "{warnings:?}"
    );
    assert!(run.errors().is_empty(), "{}", run.context());
    assert!(
        run.stdout.contains(
            "edge.toml: ok (2 workspaces, 1 dependencies, 0 services, 0 checks; 1 warning)"
        ),
        "{}",
        run.context()
    );
}

#[test]
fn an_unknown_top_level_section_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[monitorz]\nevery = \"1h\"\n\n[[workspaces]]\nkey = \"a\"\n";
    let run = check_text(dir.path(), "top.toml", text);
    assert_eq!(run.code, Some(2), "{}", run.context());
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{}", run.context());
    assert!(
        errors[0].starts_with("top.toml:1:2: error: unknown key `monitorz`"),
        "{errors:?}"
    );
    // Nothing is close to `monitorz`, so the known keys are listed instead.
    assert!(errors[0].contains("expected one of:"), "{errors:?}");
    assert!(errors[0].contains("workspaces"), "{errors:?}");
}

#[test]
fn misspelt_keys_get_a_did_you_mean_hint() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        "[servr]\nlisten = \"127.0.0.1:8710\"\n\n[[workspaces]]\nkey = \"a\"\nownr = \"ops\"\n";
    let run = check_text(dir.path(), "typo.toml", text);
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert_eq!(
        run.errors(),
        [
            "typo.toml:1:2: error: unknown key `servr`: did you mean `server`?",
            "typo.toml:6:1: error: unknown key `workspaces[0].ownr`: did you mean `owner`?",
        ],
        "{}",
        run.context()
    );
    assert_eq!(run.lines().last().copied(), Some("2 errors, 0 warnings"));
}

#[test]
fn an_unset_variable_is_an_error_and_a_set_one_passes() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[[workspaces]]\nkey = \"a\"\nowner = \"${STEWARD_TEST_UNSET_VAR_XYZ}\"\n";
    let run = check_text(dir.path(), "env.toml", text);
    assert_eq!(run.code, Some(2), "{}", run.context());
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{}", run.context());
    assert!(errors[0].starts_with("env.toml:3:9: error: "), "{errors:?}");
    assert!(errors[0].contains("workspaces[0].owner"), "{errors:?}");
    assert!(
        errors[0].contains("STEWARD_TEST_UNSET_VAR_XYZ"),
        "{errors:?}"
    );

    let run = Run::from(
        steward(dir.path())
            .args(["check", "--config", "env.toml"])
            .env("STEWARD_TEST_UNSET_VAR_XYZ", "ops-team")
            .output()
            .unwrap(),
    );
    run.assert_no_panic();
    assert_eq!(run.code, Some(0), "{}", run.context());
    assert!(
        run.stdout.contains(
            "env.toml: ok (1 workspaces, 0 dependencies, 0 services, 0 checks; 0 warnings)"
        ),
        "{}",
        run.context()
    );
}

#[test]
fn a_literal_dollar_brace_is_not_interpolated() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[[workspaces]]\nkey = \"a\"\ndescription = \"costs $5; template $${NAME}\"\n";
    let run = check_text(dir.path(), "lit.toml", text);
    assert_eq!(run.code, Some(0), "{}", run.context());
}

#[test]
fn a_missing_file_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = check_in(dir.path(), "nope.toml");
    let line = assert_one_line_failure(&run);
    assert!(line.starts_with("nope.toml: cannot read"), "{line}");
}

#[test]
fn a_directory_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    let run = check_in(dir.path(), "conf.d");
    let line = assert_one_line_failure(&run);
    assert_eq!(line, "conf.d: not a regular file (a directory)");
}

#[test]
fn a_fifo_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let made = Command::new("mkfifo")
        .arg(dir.path().join("pipe.toml"))
        .status()
        .unwrap();
    assert!(made.success());
    let mut child = steward(dir.path())
        .args(["check", "--config", "pipe.toml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Opening a FIFO for reading blocks until a writer comes: a hang fails the test.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("steward check still blocked on a FIFO after 10 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let run = Run::from(child.wait_with_output().unwrap());
    run.assert_no_panic();
    let line = assert_one_line_failure(&run);
    assert_eq!(line, "pipe.toml: not a regular file (a FIFO)");
}

#[test]
fn an_empty_file_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("empty.toml", ""), ("blank.toml", "  \n\t\n\r\n\n")] {
        let run = check_text(dir.path(), name, text);
        let line = assert_one_line_failure(&run);
        assert!(
            line.starts_with(&format!("{name}: file is empty")),
            "{line}"
        );
    }
}

#[test]
fn a_non_utf8_file_is_one_located_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("latin.toml"),
        b"[[workspaces]]\nkey = \"a\xff\xfe\"\n",
    )
    .unwrap();
    let run = check_in(dir.path(), "latin.toml");
    let line = assert_one_line_failure(&run);
    assert!(line.contains(":2:"), "{line}");
    assert!(line.contains("UTF-8"), "{line}");
    assert_eq!(line, "latin.toml:2:9: error: file is not valid UTF-8");
}

#[test]
fn a_huge_file_is_refused_with_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("[[workspaces]]\nkey = \"a\"\n");
    while text.len() < 10 * 1024 * 1024 {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    let run = check_text(dir.path(), "huge.toml", &text);
    let line = assert_one_line_failure(&run);
    assert!(line.starts_with("huge.toml: file is "), "{line}");
    assert!(line.contains("4194304-byte limit"), "{line}");
}

#[test]
fn deep_nesting_does_not_crash() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("arrays.toml", format!("a = {}", "[".repeat(10_000))),
        (
            "closed.toml",
            format!("a = {}{}\n", "[".repeat(10_000), "]".repeat(10_000)),
        ),
        ("inline.toml", format!("a = {}", "{b = ".repeat(10_000))),
        ("dotted.toml", format!("a{} = 1\n", ".a".repeat(10_000))),
        ("header.toml", format!("[a{}]\n", ".a".repeat(10_000))),
    ];
    for (name, text) in cases {
        let run = check_text(dir.path(), name, &text);
        assert_eq!(run.code, Some(2), "{name}: {}", run.context());
        let errors = run.errors();
        assert_eq!(errors.len(), 1, "{name}: {}", run.context());
        assert!(
            errors[0].starts_with(&format!("{name}:1:")),
            "{name}: {errors:?}"
        );
        assert!(errors[0].contains("invalid TOML"), "{name}: {errors:?}");
        assert_eq!(
            run.lines(),
            [errors[0], "1 error, 0 warnings"],
            "{name}: {}",
            run.context()
        );
    }
}

#[test]
fn a_syntax_error_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let run = check_text(
        dir.path(),
        "syntax.toml",
        "[[workspaces]]\nkey = \"a\"\nowner = \n",
    );
    assert_eq!(run.code, Some(2), "{}", run.context());
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{}", run.context());
    assert!(
        errors[0].starts_with("syntax.toml:3:9: error: invalid TOML: "),
        "{errors:?}"
    );
    assert_eq!(run.lines(), [errors[0], "1 error, 0 warnings"]);
}

#[test]
fn an_unterminated_string_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let run = check_text(
        dir.path(),
        "open.toml",
        "[[workspaces]]\nkey = \"a\"\ndescription = \"never closed\n",
    );
    assert_eq!(run.code, Some(2), "{}", run.context());
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{}", run.context());
    assert!(
        errors[0].starts_with("open.toml:3:") && errors[0].contains("invalid TOML"),
        "{errors:?}"
    );
}

#[test]
fn a_bad_steward_listen_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let run = Run::from(
        steward(dir.path())
            .args(["check", "--config", VIZION])
            .env("STEWARD_LISTEN", "garbage")
            .output()
            .unwrap(),
    );
    run.assert_no_panic();
    assert_eq!(run.code, Some(2), "{}", run.context());
    // Warnings about the example's programs may come first; the failure is one line.
    let failures: Vec<&str> = run
        .lines()
        .into_iter()
        .filter(|l| !l.contains(": warning: "))
        .collect();
    assert_eq!(failures.len(), 1, "{}", run.context());
    let line = failures[0];
    assert!(line.contains("STEWARD_LISTEN"), "{line}");
    assert!(line.contains("garbage"), "{line}");
    assert!(!run.stdout.contains(": ok ("), "{}", run.context());
}

#[test]
fn a_good_steward_listen_passes_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let run = Run::from(
        steward(dir.path())
            .args(["check", "--config", VIZION])
            .env("STEWARD_LISTEN", "127.0.0.1:9999")
            .output()
            .unwrap(),
    );
    run.assert_no_panic();
    assert_eq!(run.code, Some(0), "{}", run.context());
}

#[test]
fn the_config_can_come_from_steward_config() {
    let dir = tempfile::tempdir().unwrap();
    let run = Run::from(
        steward(dir.path())
            .arg("check")
            .env("STEWARD_CONFIG", VIZION)
            .output()
            .unwrap(),
    );
    run.assert_no_panic();
    assert_eq!(run.code, Some(0), "{}", run.context());
    assert!(run.stdout.contains("8 workspaces"), "{}", run.context());
}

#[test]
fn check_help_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let run = Run::from(
        steward(dir.path())
            .args(["check", "--help"])
            .output()
            .unwrap(),
    );
    run.assert_no_panic();
    assert_eq!(run.code, Some(0), "{}", run.context());
    assert!(run.stdout.contains("--config"), "{}", run.context());
}

#[test]
fn queues_and_executors_pass_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"[[executors]]
name = "backup"
type = "shell"
command = "/usr/bin/pg_dump"
args = ["--dbname={database}"]
params = { database = "[a-z_]+" }

[[queues]]
name = "maintenance"
kinds = ["backup", "noop"]
timeout = "2h"
retention = "forever"
"#;
    let run = check_text(dir.path(), "work.toml", text);
    assert_eq!(run.code, Some(0), "{}", run.context());
    assert!(run.errors().is_empty(), "{}", run.context());
}

#[test]
fn queue_and_executor_mistakes_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"[[executors]]
name = "backup"
type = "shell"
command = "pg_dump --all"
url = "http://x"

[[queues]]
name = "maintenance"
kinds = ["bakup"]
lease = "10ms"
"#;
    let run = check_text(dir.path(), "work.toml", text);
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert_eq!(
        run.errors(),
        [
            "work.toml:4:11: error: `executors[0].command`: `pg_dump --all` contains white space; no shell runs it: write the program alone and its arguments in `args`",
            "work.toml:5:1: error: `executors[0].url`: not a key of `shell` executors (it belongs to `type = \"http\"`)",
            "work.toml:9:10: error: `queues[0].kinds[0]`: unknown kind `bakup` (neither built in nor declared in `[[executors]]`); did you mean `backup`?",
            "work.toml:10:9: error: `queues[0].lease`: must be at least 1s (the lease is renewed every third of it)",
        ],
        "{}",
        run.context()
    );
}

#[test]
fn commands_that_use_variables_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"[[services]]
name = "db"

[[executors]]
name = "backup"
type = "shell"
command = "${UNSET}"

[[checks]]
service = "db"
type = "command"
command = "${PG_ISREADY}"
"#;
    // A set variable is refused as an unset one is.
    let run = check_text_env(
        dir.path(),
        "vars.toml",
        text,
        &[("PG_ISREADY", "/usr/bin/pg_isready")],
    );
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert_eq!(
        run.errors(),
        [
            "vars.toml:7:11: error: `executors[0].command`: cannot use `${VAR}`: the program is taken as written (write `$${` for a literal `${`)",
            "vars.toml:12:11: error: `checks[0].command`: cannot use `${VAR}`: the program is taken as written (write `$${` for a literal `${`)",
        ],
        "{}",
        run.context()
    );
}

#[test]
fn programs_missing_here_are_located_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"[[services]]
name = "db"

[[executors]]
name = "backup"
type = "shell"
command = "no-such-program-here"

[[queues]]
name = "maintenance"
kinds = ["backup"]

[[checks]]
service = "db"
type = "command"
command = "/nonexistent/pg_isready"

[[checks]]
service = "db"
name = "found"
type = "command"
command = "sh"
"#;
    let run = check_text_env(
        dir.path(),
        "programs.toml",
        text,
        &[("PATH", "/usr/bin:/bin")],
    );
    assert_eq!(run.code, Some(0), "{}", run.context());
    assert_eq!(
        run.warnings(),
        [
            "programs.toml:7:11: warning: `executors[0].command`: `no-such-program-here` is not found in PATH (the daemon's PATH may differ)",
            "programs.toml:16:11: warning: `checks[0].command`: `/nonexistent/pg_isready` does not exist",
        ],
        "{}",
        run.context()
    );
    assert!(
        run.stdout.contains(
            "programs.toml: ok (0 workspaces, 0 dependencies, 1 services, 2 checks; 2 warnings)"
        ),
        "{}",
        run.context()
    );
}
