//! Log output: `tracing` to standard error, human-readable or JSON.

use std::io::IsTerminal;

use anyhow::Context;
use steward_config::LogFormat;
use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormatArg};

/// The command-line log flags as settings overrides.
pub fn overrides(args: &LogArgs) -> (Option<LogFormat>, Option<String>) {
    let format = args.log_format.map(|f| match f {
        LogFormatArg::Pretty => LogFormat::Pretty,
        LogFormatArg::Json => LogFormat::Json,
    });
    (format, args.log_level.clone())
}

/// Installs the global subscriber.
pub fn init(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_new(filter).with_context(|| format!("invalid log filter `{filter}`"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
