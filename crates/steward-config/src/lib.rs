//! `steward.toml`: reading, validating and reporting every problem as `FILE:LINE:COL`, `${VAR}`
//! interpolation, the daemon settings (defaults, then file, then `STEWARD_…` environment),
//! the import of registries kept as CSV, and opening the files a config names without blocking
//! on a FIFO.
//!
//! The parser walks the TOML document itself rather than deserializing with serde, so that one
//! pass reports *all* problems (unknown keys, wrong types, duplicates, dangling references), each
//! at the line and column it comes from.

mod alert_rules;
mod alerting;
mod checks;
mod diagnostic;
mod executors;
pub mod file;
mod file_settings;
pub mod import;
mod interpolate;
mod load;
mod nodes;
mod pipelines;
mod program;
mod queues;
mod readers;
mod registry;
mod schedules;
mod schema;
mod secrets;
pub mod settings;
mod source;
#[cfg(test)]
mod test_support;
mod walk;

pub use diagnostic::{Diagnostic, Diagnostics, Severity};
pub use file_settings::{ApiSettings, FileSettings, LogFormat, UiSettings};
pub use load::{Env, LoadError, Loaded, MAX_CONFIG_BYTES, load_file, parse_executors, parse_str};
pub use schedules::SchedulerSettings;
pub use schema::Config;
pub use settings::{DaemonSettings, DatabaseTarget, Overrides, SettingsError};
