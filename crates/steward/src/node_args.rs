//! `steward nodes`: its subcommands and their arguments.

use clap::Subcommand;

use crate::alert_args::{parse_label, parse_silence_duration};
use crate::cli::ClientArgs;

/// `steward nodes …`
#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// List the fleet's nodes with their status (up, late, down, pending) and last heartbeat.
    Ls {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a node: status, facts, usage, containers, domains with their locations,
    /// certificates, the services declared on it and what of them it does not report.
    Show {
        /// The node's id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Add a node (then make a join token for its agent with `steward nodes token create`).
    Add {
        /// Its id: letters, digits, `-`, `_`, `.`.
        id: String,
        /// Its host name.
        #[arg(long, default_value = "")]
        hostname: String,
        /// Its address.
        #[arg(long)]
        address: Option<String>,
        /// The workspace it belongs to.
        #[arg(long)]
        workspace: Option<String>,
        /// A label, `name=value`; repeat for more.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove a node and everything it reported; its agent's credentials stop working at once
    /// (the audit trail keeps what it shipped).
    Rm {
        /// The node's id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Join tokens, which agents exchange for their node's credential.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `steward nodes token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a join token for a node and print it once (only its digest is kept).
    ///
    /// Example: steward nodes token create --node vps-02 --ttl 1h
    Create {
        /// The node the token registers.
        #[arg(long)]
        node: String,
        /// How long it stays valid (e.g. 30m, 1h, 7d; at most 30d).
        #[arg(long, default_value = "1h", value_parser = parse_silence_duration)]
        ttl: u64,
        /// How many registrations it allows.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        uses: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
}
