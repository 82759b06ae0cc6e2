//! `steward agent`: register a node with a hub, and run the heartbeat loop.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use steward_agent::config::{AgentConfig, DEFAULT_CONFIG_PATH};
use steward_agent::credential::{self, DEFAULT_DATA_DIR, StoredCredential};
use steward_agent::journal::{self, Journal};
use steward_agent::{HubClient, RunError, RunOptions, WorkOptions};
use steward_config::LogFormat;
use steward_wire::nodes::Registration;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::EXIT_INVALID;
use crate::agent_args::{AgentCommand, AgentPaths, RegisterArgs, StartArgs};
use crate::cli::LogArgs;
use crate::logging;

/// Exit code when the hub refuses the node's credential: restarting cannot help, so a
/// service manager is told not to (`RestartPreventExitStatus=3`).
const EXIT_REFUSED: u8 = 3;

/// The agent's version, as it reports itself to the hub.
const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long the blocking pool keeps an idle thread: longer than the default interval, so the
/// thread reading files is reused from beat to beat instead of started anew each time.
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(60);

/// Runs `steward agent register` or `steward agent start`.
pub fn run(command: AgentCommand, log: &LogArgs) -> anyhow::Result<ExitCode> {
    init_logging(log)?;
    match command {
        AgentCommand::Register(args) => register(args),
        AgentCommand::Start(args) => start(args),
    }
}

fn register(args: RegisterArgs) -> anyhow::Result<ExitCode> {
    let token = read_token(&args.token)?;
    let config = match load_config(args.paths.config.as_deref()) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let Some(hub) = args.hub.or(config.hub) else {
        bail!("no hub to register with: pass --hub URL or set `hub` in the agent's config");
    };
    let data_dir = data_dir(&args.paths);
    // Checked before the token is spent: a credential that cannot be kept is lost.
    credential::prepare_dir(&data_dir)
        .with_context(|| format!("cannot keep a credential in {}", data_dir.display()))?;
    let registration = Registration {
        token,
        hostname: steward_agent::inventory::facts::gather_facts(AGENT_VERSION).hostname,
        agent_version: AGENT_VERSION.to_owned(),
    };
    let client = HubClient::new(&hub)?;
    let registered = runtime()?
        .block_on(client.register(&registration))
        .context("cannot register")?;
    let replaced = credential::load(&data_dir).ok();
    let stored = StoredCredential {
        hub: hub.clone(),
        node: registered.node,
        key_name: registered.key_name,
        credential: registered.credential,
    };
    let path = credential::save(&data_dir, &stored).with_context(|| {
        format!(
            "registered node {}, but cannot keep its credential; create a new join token and \
             register again",
            stored.node
        )
    })?;
    tracing::debug!(path = %path.display(), "credential saved");
    Journal::new(&data_dir)
        .append(journal::registered(&stored.node, &hub, &stored.key_name))
        .with_context(|| {
            format!(
                "registered node {} and kept its credential, but cannot record it in the audit \
                 journal",
                stored.node
            )
        })?;
    if let Some(old) = replaced {
        eprintln!(
            "replaced the credential of node {} with hub {}",
            old.node, old.hub
        );
    }
    println!(
        "registered node {} with hub {hub}; start the agent with: steward agent start{}",
        stored.node,
        start_flags(&args.paths)
    );
    Ok(ExitCode::SUCCESS)
}

fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    let config = match load_config(args.paths.config.as_deref()) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let data_dir = data_dir(&args.paths);
    let credential = credential::load(&data_dir)?;
    let hub = args
        .hub
        .or(config.hub)
        .unwrap_or_else(|| credential.hub.clone());
    let journal = Journal::new(&data_dir);
    let node = credential.node.clone();
    let settings = settings_file(args.paths.config.as_deref());
    // Refused rather than started unrecorded: the trail must show every run of the agent.
    journal
        .append(journal::started(
            &node,
            AGENT_VERSION,
            config.interval,
            settings.as_ref().map(|(p, c)| (p.as_path(), c.as_slice())),
        ))
        .context("cannot record the start in the audit journal")?;
    let options = RunOptions {
        hub,
        credential,
        interval: config.interval,
        inventory: config.inventory,
        agent_version: AGENT_VERSION.to_owned(),
        journal: Some(journal.clone()),
        work: Some(WorkOptions {
            config: config.work,
            data_dir: data_dir.clone(),
        }),
    };
    let runtime = runtime()?;
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        watch_signals(shutdown.clone())?;
        anyhow::Ok(steward_agent::run(options, shutdown).await)
    })?;
    match result {
        Ok(()) => {
            journal
                .append(journal::stopped(&node))
                .context("cannot record the stop in the audit journal")?;
            Ok(ExitCode::SUCCESS)
        }
        // Already logged, with what to do about it.
        Err(RunError::Refused { .. }) => Ok(ExitCode::from(EXIT_REFUSED)),
        Err(error) => Err(error.into()),
    }
}

/// The settings file `start` read and its content: `--config`, else the default path when it
/// exists; `None` when the defaults apply (or it cannot be read again).
fn settings_file(given: Option<&Path>) -> Option<(PathBuf, Vec<u8>)> {
    let path = given.unwrap_or(Path::new(DEFAULT_CONFIG_PATH));
    let content = std::fs::read(path).ok()?;
    Some((
        std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        content,
    ))
}

/// The token as given, or read from standard input for `-`; checked to look like one.
fn read_token(given: &str) -> anyhow::Result<String> {
    let token = if given == "-" {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the join token from standard input")?;
        line
    } else {
        given.to_owned()
    };
    let token = token.trim();
    if !token.starts_with("stj_") || token.len() <= "stj_".len() {
        bail!("the join token must start with `stj_` (make one with `steward nodes token create`)");
    }
    Ok(token.to_owned())
}

/// The settings from `path`, or from the default path when it exists, else the defaults.
/// Problems are printed and become exit code 2.
fn load_config(path: Option<&Path>) -> Result<AgentConfig, ExitCode> {
    let (path, explicit) = match path {
        Some(path) => (path, true),
        None => (Path::new(DEFAULT_CONFIG_PATH), false),
    };
    match AgentConfig::load(path) {
        Ok(config) => Ok(config),
        Err(error) if !explicit && error.is_not_found() => Ok(AgentConfig::default()),
        Err(error) => {
            match error {
                steward_agent::config::ConfigError::Invalid(problems) => eprintln!("{problems}"),
                other => eprintln!("error: {other}"),
            }
            Err(ExitCode::from(EXIT_INVALID))
        }
    }
}

fn data_dir(paths: &AgentPaths) -> PathBuf {
    paths
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

/// The flags `steward agent start` needs to find what `register` was given.
fn start_flags(paths: &AgentPaths) -> String {
    let mut flags = String::new();
    if let Some(dir) = &paths.data_dir {
        flags.push_str(&format!(" --data-dir {}", dir.display()));
    }
    if let Some(config) = &paths.config {
        flags.push_str(&format!(" --config {}", config.display()));
    }
    flags
}

/// A single-threaded runtime: the agent does one thing at a time, and every extra worker
/// thread would cost the node memory for nothing.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("steward-agent")
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .build()
        .context("cannot start the async runtime")
}

/// Cancels `shutdown` on SIGINT or SIGTERM. The handlers are installed before the loop
/// starts, so a stop sent right away still stops it gracefully.
fn watch_signals(shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
            _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
        }
        shutdown.cancel();
    });
    Ok(())
}

/// Logs to standard error: the flags first, then STEWARD_LOG_FORMAT and STEWARD_LOG.
fn init_logging(log: &LogArgs) -> anyhow::Result<()> {
    let (format, level) = logging::overrides(log);
    let format = match format {
        Some(format) => format,
        None => match crate::store::env("STEWARD_LOG_FORMAT").as_deref() {
            None | Some("" | "pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("STEWARD_LOG_FORMAT: `{other}` is not one of: pretty, json"),
        },
    };
    let level = level
        .or_else(|| crate::store::env("STEWARD_LOG").filter(|l| !l.is_empty()))
        .unwrap_or_else(|| "info".to_owned());
    logging::init(format, &level)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_token_must_look_like_a_join_token() {
        assert_eq!(read_token("  stj_abc\n").unwrap(), "stj_abc");
        assert!(read_token("stw_abc").is_err());
        assert!(read_token("stj_").is_err());
    }

    #[test]
    fn the_start_hint_repeats_the_paths_given() {
        let paths = AgentPaths {
            data_dir: Some(PathBuf::from("/srv/agent")),
            config: Some(PathBuf::from("/etc/agent.toml")),
        };
        assert_eq!(
            start_flags(&paths),
            " --data-dir /srv/agent --config /etc/agent.toml"
        );
        let none = AgentPaths {
            data_dir: None,
            config: None,
        };
        assert_eq!(start_flags(&none), "");
    }
}
