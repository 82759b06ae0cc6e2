//! One module per subcommand.

pub mod agent;
pub mod alerts;
pub mod audit;
pub mod check;
pub mod demo;
pub mod events;
pub mod health;
pub mod import;
pub mod keys;
pub mod migrate;
pub mod nodes;
pub mod pipelines;
pub mod schedule;
pub mod tasks;
pub mod up;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use steward_config::{DaemonSettings, Diagnostic, LoadError, Loaded, Overrides, load_file};

use crate::EXIT_INVALID;
use crate::cli::{DatabaseArgs, LogArgs};
use crate::logging;

/// Writes a config's problems, one per line, then a count.
pub fn report_load_error(out: &mut dyn Write, error: &LoadError) {
    let _ = writeln!(out, "{error}");
    if let Some(diagnostics) = error.diagnostics() {
        let errors = diagnostics.errors().count();
        let warnings = diagnostics.warnings().count();
        let _ = writeln!(
            out,
            "{} error{}, {} warning{}",
            errors,
            plural(errors),
            warnings,
            plural(warnings)
        );
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Loads the config for a command that is not `check`: problems go to standard error and become
/// exit code 2. Warnings are left to the caller: a daemon logs them ([`log_warnings`]) once its
/// logging is set up, so that JSON logs hold nothing but JSON.
pub fn load_or_exit(path: &Path) -> Result<Loaded, ExitCode> {
    match load_file(path, &crate::store::env) {
        Ok(loaded) => Ok(loaded),
        Err(e) => {
            report_load_error(&mut std::io::stderr(), &e);
            Err(ExitCode::from(EXIT_INVALID))
        }
    }
}

/// Logs a config's warnings, each with its location.
pub fn log_warnings(warnings: &[Diagnostic]) {
    for warning in warnings {
        tracing::warn!(
            file = %warning.file,
            line = warning.line,
            column = warning.column,
            "config warning: {}",
            warning.message
        );
    }
}

/// Resolves the daemon settings from the file's, the environment and the flags; a bad value is
/// reported and becomes exit code 2.
pub fn settings_or_exit(
    file: &steward_config::FileSettings,
    database: DatabaseArgs,
    listen: Option<std::net::SocketAddr>,
    log: &LogArgs,
) -> Result<DaemonSettings, ExitCode> {
    let (log_format, log_level) = logging::overrides(log);
    let overrides = Overrides {
        listen,
        data_dir: database.data_dir,
        database: database.database.map(steward_core::Secret::new),
        log_format,
        log_level,
    };
    DaemonSettings::resolve(file, &crate::store::env, &overrides).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_INVALID)
    })
}
