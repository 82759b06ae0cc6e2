//! `steward agent …`: the fleet agent's arguments.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `steward agent …`
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Register this node with a hub: exchange a join token (made with `steward nodes token
    /// create`) for the node's credential, kept in the data directory (mode 0600).
    ///
    /// The token is secret and arguments are visible to other users of the machine (`ps`),
    /// so prefer passing it in STEWARD_JOIN_TOKEN or on standard input with `--token -`.
    ///
    /// Example: steward agent register --hub https://steward.example.com --token - < token
    Register(RegisterArgs),
    /// Run the agent: heartbeat the node's inventory (containers, NGINX domains,
    /// certificates, facts) to the hub every interval, sending a kind in full only when it
    /// changed. Stops gracefully on SIGINT/SIGTERM; exits with code 3 when the hub refuses
    /// the credential (the node was removed or its credential revoked).
    ///
    /// Example: steward agent start --config /etc/steward/agent.toml
    Start(StartArgs),
}

/// `steward agent register`
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The hub's URL [default: `hub` in the config].
    #[arg(long, value_name = "URL", value_parser = parse_hub)]
    pub hub: Option<String>,
    /// The join token (`stj_…`); `-` reads it from standard input.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "STEWARD_JOIN_TOKEN",
        hide_env_values = true
    )]
    pub token: String,
    #[command(flatten)]
    pub paths: AgentPaths,
}

/// `steward agent start`
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The hub's URL [default: `hub` in the config, else the hub the node registered with].
    #[arg(long, value_name = "URL", value_parser = parse_hub)]
    pub hub: Option<String>,
    #[command(flatten)]
    pub paths: AgentPaths,
}

/// Where the agent keeps its state and reads its settings.
#[derive(Debug, Args)]
pub struct AgentPaths {
    /// Where the agent keeps its credential [default: /var/lib/steward-agent].
    #[arg(long, value_name = "DIR", env = "STEWARD_AGENT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The agent's settings file [default: /etc/steward/agent.toml if it exists, else the
    /// built-in defaults].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

fn parse_hub(text: &str) -> Result<String, steward_agent::config::InvalidHubUrl> {
    steward_agent::config::parse_hub_url(text)
}
