//! Reading a config file: the checks that make any file safe to parse (size, encoding,
//! emptiness), then the TOML parse and the schema walk.

use std::path::{Path, PathBuf};

use steward_core::health::spec::Probe;
use steward_core::queue::ExecutorSpec;

use crate::checks::escape_glob;
use crate::diagnostic::{Diagnostic, Diagnostics, Severity};
use crate::file::{FileError, read_regular};
use crate::schema::{Config, read_config};
use crate::source::{Source, position_in_bytes};
use crate::walk::Cx;

/// The largest config file accepted. Real registries are a few hundred KiB at most; anything
/// bigger is a mistake (a log file, a binary) and is refused before it is parsed.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Looks up an environment variable (so tests can pass their own environment).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A config that passed validation, with the warnings it still deserves.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated config.
    pub config: Config,
    /// Problems that did not reject it (duplicate edges, …).
    pub warnings: Vec<Diagnostic>,
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be opened or read, or is not a regular file.
    #[error(transparent)]
    File(#[from] FileError),
    /// The file is larger than [`MAX_CONFIG_BYTES`].
    #[error(
        "{path}: file is {size} bytes, more than the {MAX_CONFIG_BYTES}-byte limit for a config file"
    )]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
    },
    /// The file holds nothing but white space.
    #[error(
        "{path}: file is empty; a steward.toml declares at least one `[[workspaces]]` entry or a `[server]` section"
    )]
    Empty {
        /// The file.
        path: String,
    },
    /// The file is not UTF-8.
    #[error("{path}:{line}:{column}: error: file is not valid UTF-8")]
    NotUtf8 {
        /// The file.
        path: String,
        /// Line of the first invalid byte.
        line: usize,
        /// Column of the first invalid byte.
        column: usize,
    },
    /// The file parsed but has problems; every one is listed.
    #[error("{}", .0.to_string().trim_end())]
    Invalid(Diagnostics),
}

impl LoadError {
    /// Every problem as a `FILE:LINE:COL` diagnostic where there are located ones.
    pub fn diagnostics(&self) -> Option<&Diagnostics> {
        match self {
            LoadError::Invalid(d) => Some(d),
            _ => None,
        }
    }
}

/// Reads, parses and validates a config file. Relative paths inside it (`storage.data_dir`,
/// `audit.mirror`, a shell executor's or a command check's `workdir`, a `cert_file` check's
/// `paths`) are resolved against the file's directory.
pub fn load_file(path: &Path, env: Env<'_>) -> Result<Loaded, LoadError> {
    let name = path.display().to_string();
    let text = read_text(path, &name)?;
    let mut loaded = parse_str(&name, &text, env)?;
    let Config {
        settings,
        executors,
        checks,
        ..
    } = &mut loaded.config;
    let workdirs = executors.iter_mut().filter_map(|executor| match executor {
        ExecutorSpec::Shell(shell) => shell.workdir.as_mut(),
        ExecutorSpec::Http(_) => None,
    });
    let mut patterns = Vec::new();
    let mut check_workdirs = Vec::new();
    for check in checks.iter_mut() {
        match &mut check.probe {
            Probe::CertFile { paths } => patterns.extend(paths.iter_mut()),
            Probe::Command(command) => check_workdirs.extend(command.workdir.as_mut()),
            Probe::Http(_) | Probe::Tcp { .. } | Probe::Tls { .. } => {}
        }
    }
    for relative in [settings.data_dir.as_mut(), settings.audit_mirror.as_mut()]
        .into_iter()
        .flatten()
        .chain(workdirs)
        .chain(check_workdirs)
        .filter(|p| p.is_relative())
    {
        *relative = base_dir(path).join(&*relative);
    }
    // A pattern is resolved like a path; the directory is escaped, so that glob characters in
    // its name match themselves.
    let prefix = PathBuf::from(escape_glob(&base_dir(path).to_string_lossy()));
    for pattern in patterns
        .into_iter()
        .filter(|p| Path::new(p.as_str()).is_relative())
    {
        *pattern = prefix.join(&*pattern).to_string_lossy().into_owned();
    }
    Ok(loaded)
}

fn base_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn read_text(path: &Path, name: &str) -> Result<String, LoadError> {
    let bytes = match read_regular(path, MAX_CONFIG_BYTES) {
        Ok(bytes) => bytes,
        Err(FileError::TooLarge { size, .. }) => {
            return Err(LoadError::TooLarge {
                path: name.to_owned(),
                size,
            });
        }
        Err(other) => return Err(other.into()),
    };
    String::from_utf8(bytes).map_err(|e| {
        let (line, column) = position_in_bytes(e.as_bytes(), e.utf8_error().valid_up_to());
        LoadError::NotUtf8 {
            path: name.to_owned(),
            line,
            column,
        }
    })
}

/// Parses and validates config text; `name` is how diagnostics name the file.
pub fn parse_str(name: &str, text: &str, env: Env<'_>) -> Result<Loaded, LoadError> {
    if text.trim().is_empty() {
        return Err(LoadError::Empty {
            path: name.to_owned(),
        });
    }
    let source = Source::new(name, text);
    let document = match toml_edit::ImDocument::parse(text) {
        Ok(document) => document,
        Err(e) => return Err(LoadError::Invalid(syntax_error(&source, &e))),
    };
    let mut cx = Cx::new(&source, env);
    let config = read_config(&mut cx, document.as_table());
    let diagnostics = cx.finish();
    if diagnostics.has_errors() {
        return Err(LoadError::Invalid(diagnostics));
    }
    Ok(Loaded {
        config,
        warnings: diagnostics.0,
    })
}

fn syntax_error(source: &Source, e: &toml_edit::TomlError) -> Diagnostics {
    let (line, column) = source.position(e.span().map_or(0, |s| s.start));
    let message = e.message().trim().replace('\n', "; ");
    Diagnostics(vec![Diagnostic {
        severity: Severity::Error,
        file: source.name.clone(),
        line,
        column,
        message: format!("invalid TOML: {message}"),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn relative_paths_resolve_against_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("steward.toml");
        std::fs::write(
            &path,
            "[storage]\ndata_dir = \"state\"\n[audit]\nmirror = \"log/a.jsonl\"\n",
        )
        .unwrap();
        let loaded = load_file(&path, &no_env).unwrap();
        assert_eq!(
            loaded.config.settings.audit_mirror,
            Some(dir.path().join("log/a.jsonl"))
        );
        assert_eq!(
            loaded.config.settings.data_dir,
            Some(dir.path().join("state"))
        );
    }

    #[test]
    fn relative_shell_workdirs_resolve_against_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("steward.toml");
        std::fs::write(
            &path,
            "[[executors]]\nname = \"a\"\ntype = \"shell\"\ncommand = \"true\"\nworkdir = \"jobs\"\n[[executors]]\nname = \"b\"\ntype = \"shell\"\ncommand = \"true\"\nworkdir = \"/srv\"\n",
        )
        .unwrap();
        let loaded = load_file(&path, &no_env).unwrap();
        let workdirs: Vec<_> = loaded
            .config
            .executors
            .iter()
            .map(|e| match e {
                ExecutorSpec::Shell(s) => s.workdir.clone(),
                ExecutorSpec::Http(_) => None,
            })
            .collect();
        assert_eq!(
            workdirs,
            [Some(dir.path().join("jobs")), Some(PathBuf::from("/srv"))]
        );
    }

    #[test]
    fn values_from_the_environment_stay_templates_in_the_registry() {
        let env = |name: &str| (name == "PW").then(|| "hunter2".to_owned());
        let text = "[storage]\ndatabase = \"postgres://u:${PW}@db/s\"\n[[workspaces]]\nkey = \"a\"\nowner = \"$${literal}\"\nlabels = { token = \"${PW}\" }\n[[services]]\nname = \"s\"\nurl = \"http://u:${PW}@host/\"\n";
        let loaded = parse_str("f.toml", text, &env).unwrap();
        let registry = &loaded.config.registry;
        assert_eq!(
            registry.services[0].url.as_deref(),
            Some("http://u:${PW}@host/")
        );
        assert_eq!(registry.workspaces[0].labels["token"], "${PW}");
        assert_eq!(registry.workspaces[0].owner.as_deref(), Some("${literal}"));
        let database = loaded.config.settings.database.as_ref().unwrap();
        assert_eq!(
            database.expose(),
            "postgres://u:hunter2@db/s",
            "settings get the value"
        );
        let debug = format!("{:?}", loaded.config);
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn errors_about_values_from_the_environment_quote_the_reference_not_the_value() {
        let env = |name: &str| (name == "URL").then(|| "https://user:hunter2@/x".to_owned());
        let text = "[[services]]\nname = \"s\"\nurl = \"${URL}\"\n[[workspaces]]\nkey = \"w\"\nstatus = \"${URL}\"\n";
        let err = parse_str("f.toml", text, &env).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(
            err.contains("`services[0].url`: `${URL}` is not a URL"),
            "{err}"
        );
        assert!(err.contains("`${URL}` is not one of"), "{err}");
    }

    #[test]
    fn names_cannot_come_from_the_environment() {
        let env = |_: &str| Some("a".to_owned());
        let err = parse_str("f.toml", "[[workspaces]]\nkey = \"${X}\"\n", &env).unwrap_err();
        assert!(
            err.to_string()
                .contains("names and references cannot use `${VAR}`"),
            "{err}"
        );
    }

    #[test]
    fn an_unset_variable_in_a_url_is_still_an_error() {
        let err = parse_str(
            "f.toml",
            "[[services]]\nname = \"s\"\nurl = \"${NOPE}\"\n",
            &no_env,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("environment variable `NOPE` is not set"),
            "{err}"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("steward.toml");
        crate::test_support::mkfifo(&path);
        let name = path.display().to_string();
        let err =
            crate::test_support::within_seconds(move || load_file(&path, &no_env)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{name}: not a regular file (a FIFO)")
        );
    }

    #[test]
    fn nul_characters_are_refused_with_their_field() {
        let err = parse_str(
            "f.toml",
            "[[workspaces]]\nkey = \"a\"\nowner = \"x\\u0000y\"\n",
            &no_env,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains(
                "f.toml:3:9: error: `workspaces[0].owner`: must not contain a NUL character"
            ),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_reported_in_file_order() {
        let text = "[[workspaces]]\nkey = \"a b\"\n[[services]]\nname = \"s\"\nworkspace = \"nope\"\nurl = \"::\"\n[bogus]\n";
        let err = parse_str("f.toml", text, &no_env).unwrap_err();
        let lines: Vec<(usize, usize)> = err
            .diagnostics()
            .unwrap()
            .0
            .iter()
            .map(|d| (d.line, d.column))
            .collect();
        assert_eq!(lines, vec![(2, 7), (5, 13), (6, 7), (7, 2)], "{err}");
    }

    /// Keys and values a config is made of, shuffled into arbitrary documents.
    fn config_like_text() -> impl Strategy<Value = String> {
        let token = prop::sample::select(vec![
            "[[workspaces]]\n",
            "[[services]]\n",
            "[[dependencies]]\n",
            "[server]\n",
            "[storage]\n",
            "key = \"a\"\n",
            "key = 1\n",
            "name = \"s\"\n",
            "from = \"a\"\n",
            "to = \"b\"\n",
            "type = \"t\"\n",
            "labels = { x = 1 }\n",
            "labels = \"no\"\n",
            "url = \"http://x\"\n",
            "listen = \"nope\"\n",
            "status = \"paused\"\n",
            "repo = [1]\n",
            "owner = \"${UNSET}\"\n",
            "= \n",
            "[[\n",
            "\"\n",
            "x.y.z = {}\n",
            "[[queues]]\n",
            "[[executors]]\n",
            "kinds = [\"noop\", \"s\"]\n",
            "type = \"shell\"\n",
            "type = \"http\"\n",
            "command = \"run\"\n",
            "args = [\"{a}\", \"{b\"]\n",
            "params = { a = \"[a-z]+\", b = \"(\" }\n",
            "headers = { X-A = \"${UNSET}\", \"a b\" = 1 }\n",
            "service = \"s\"\n",
            "path = \"p\"\n",
            "timeout = \"0s\"\n",
            "lease = \"5m\"\n",
            "backoff_cap = \"1ms\"\n",
            "retention = \"forever\"\n",
            "[[schedules]]\n",
            "[[heartbeats]]\n",
            "[scheduler]\n",
            "cron = \"0 25 * * *\"\n",
            "cron = \"*/5 * * * *\"\n",
            "every = \"1s\"\n",
            "at = 2026-01-01T00:00:00Z\n",
            "timezone = \"Europe/Berln\"\n",
            "queue = \"s\"\n",
            "kind = \"noop\"\n",
            "missed = \"all\"\n",
            "missed_limit = 3\n",
            "jitter = \"2s\"\n",
            "period = \"1m\"\n",
            "grace = \"1s\"\n",
            "payload = { a = nan, b = [1, { c = 2 }] }\n",
            "[schedules.payload]\n",
            "[[checks]]\n",
            "[health]\n",
            "keep_results = \"2h\"\n",
            "keep_rollups = \"1h\"\n",
            "check_service_urls = false\n",
            "service = \"nn\"\n",
            "type = \"tcp\"\n",
            "type = \"cert_file\"\n",
            "address = \"h\"\n",
            "paths = [\"/x/[\", \"\"]\n",
            "conditions = [\"[STATUS] == 200\", \"[STATU]\"]\n",
            "expect_status = [200]\n",
            "interval = \"5s\"\n",
            "[alerting]\n",
            "resolve_timeout = \"1s\"\n",
            "[[alerting.receivers]]\n",
            "type = \"webhook\"\n",
            "type = \"telegram\"\n",
            "chat_id = 1\n",
            "to = [\"a@b\", \"x\"]\n",
            "[alerting.route]\n",
            "[[alerting.route.routes]]\n",
            "receiver = \"s\"\n",
            "matchers = [\"a=b\", \"c=~(\"]\n",
            "group_by = [\"...\", \"a\"]\n",
            "continue = true\n",
            "remediate = { queue = \"s\", kind = \"noop\" }\n",
            "[[alerting.inhibit_rules]]\n",
            "source_matchers = [\"a=b\"]\n",
            "equal = [\"a-b\"]\n",
        ]);
        prop::collection::vec(token, 0..30).prop_map(|tokens| tokens.concat())
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "(?s).{0,300}") {
            let _ = parse_str("f.toml", &text, &no_env);
        }

        #[test]
        fn config_like_documents_are_accepted_or_rejected_with_located_errors(text in config_like_text()) {
            match parse_str("f.toml", &text, &no_env) {
                Ok(_) => {}
                Err(LoadError::Empty { .. }) => prop_assert!(text.trim().is_empty()),
                Err(LoadError::Invalid(d)) => {
                    prop_assert!(d.has_errors());
                    let line_count = text.lines().count().max(1);
                    for diagnostic in d.0 {
                        prop_assert!(diagnostic.line >= 1 && diagnostic.line <= line_count + 1, "{diagnostic}");
                        prop_assert!(diagnostic.column >= 1);
                    }
                }
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }
    }
}
