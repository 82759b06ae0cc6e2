//! `steward check`: validate a config file and print every problem.

use std::io::Write;
use std::process::ExitCode;

use steward_config::{DaemonSettings, Overrides, load_file};

use crate::EXIT_INVALID;
use crate::cli::CheckArgs;
use crate::commands::report_load_error;

pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let loaded = match load_file(&args.config, &crate::store::env) {
        Ok(loaded) => loaded,
        Err(e) => {
            report_load_error(&mut out, &e);
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    for warning in &loaded.warnings {
        writeln!(out, "{warning}")?;
    }
    // The environment can override the file's daemon settings; a bad override would stop
    // `steward up`, so it fails the check too.
    if let Err(e) = DaemonSettings::resolve(
        &loaded.config.settings,
        &crate::store::env,
        &Overrides::default(),
    ) {
        writeln!(out, "error: {e}")?;
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let r = &loaded.config.registry;
    // Checks count the default ones of services with an http(s) url too.
    writeln!(
        out,
        "{}: ok ({} workspaces, {} dependencies, {} services, {} checks{}; {} warning{})",
        args.config.display(),
        r.workspaces.len(),
        r.dependencies.len(),
        r.services.len(),
        loaded.config.checks.len(),
        fleet_summary(&loaded.config),
        loaded.warnings.len(),
        if loaded.warnings.len() == 1 { "" } else { "s" }
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `, 2 nodes (3 checks probed from nodes, 1 queue pinned to a node)` when the config involves
/// nodes, else nothing.
fn fleet_summary(config: &steward_config::Config) -> String {
    let node_checks = steward_engine::views::nodes::checks_on_nodes(config).len();
    let pinned = config.queues.iter().filter(|q| q.node.is_some()).count();
    if config.nodes.is_empty() && node_checks == 0 && pinned == 0 {
        return String::new();
    }
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        ", {} ({} probed from nodes, {} pinned to a node)",
        plural(config.nodes.len(), "node", "nodes"),
        plural(node_checks, "check", "checks"),
        plural(pinned, "queue", "queues"),
    )
}
