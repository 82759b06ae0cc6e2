//! `steward`: the control plane for self-hosted AI-agent platforms. This binary only parses
//! arguments and wires the library crates together.

mod agent_args;
mod alert_args;
mod cli;
mod client;
mod commands;
mod demo;
mod follow;
mod logging;
mod node_args;
mod store;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, ImportCommand};

/// Exit code for input that is not valid (a bad config, bad CSV, bad flags).
const EXIT_INVALID: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => commands::up::run(args, &cli.log),
        Command::Agent(command) => commands::agent::run(command, &cli.log),
        Command::Demo(args) => commands::demo::run(args),
        Command::Check(args) => commands::check::run(&args),
        Command::Import(ImportCommand::Csv(args)) => commands::import::run(&args),
        Command::Migrate(args) => commands::migrate::run(args, &cli.log),
        Command::Keys(command) => commands::keys::run(command),
        Command::Nodes(command) => commands::nodes::run(command),
        Command::Audit(command) => commands::audit::run(command),
        Command::Events(args) => commands::events::run(args),
        Command::Tasks(command) => commands::tasks::run(command),
        Command::Schedule(command) => commands::schedule::run(command),
        Command::Pipelines(command) => commands::pipelines::run(command),
        Command::Heartbeats(command) => commands::schedule::run_heartbeats(command),
        Command::Status(args) => commands::health::status(args),
        Command::Checks(command) => commands::health::run(command),
        Command::Alerts(command) => commands::alerts::run(command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
