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

/// Reads only the `[[executors]]` of another file that declares them as `steward.toml` does
/// (a fleet agent's `agent.toml`), with the same checks and `FILE:LINE:COL` diagnostics. The
/// file's other top-level keys are left to its own reader. Executors cannot name registry
/// services there (no registry is declared), and `${VAR}` reads `env`. Answers the executors
/// with their warnings, or every problem found.
pub fn parse_executors(
    name: &str,
    text: &str,
    env: Env<'_>,
) -> Result<(Vec<ExecutorSpec>, Vec<Diagnostic>), Diagnostics> {
    let source = Source::new(name, text);
    let document = toml_edit::ImDocument::parse(text).map_err(|e| syntax_error(&source, &e))?;
    let mut cx = Cx::new(&source, env);
    let known: Vec<&str> = document.as_table().iter().map(|(key, _)| key).collect();
    let root = crate::walk::Fields::open(&mut cx, document.as_table(), "", Some(0..0), &known);
    let (executors, _) =
        crate::executors::read_executors(&mut cx, &root, &[], &std::collections::HashSet::new());
    let diagnostics = cx.finish();
    if diagnostics.has_errors() {
        return Err(diagnostics);
    }
    Ok((executors, diagnostics.0))
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
mod tests;
