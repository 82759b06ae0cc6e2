//! `steward demo`: Steward on a throwaway SQLite database with a bundled configuration and
//! services of its own to watch, so the dashboard has something to show at once. It prints the
//! address and a key, opens nothing, and removes everything it made when stopped.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::cli::DemoArgs;
use crate::demo;

/// How long the daemon may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often work arrives on the demo's queue.
const WORK_EVERY: Duration = Duration::from_secs(3);
/// How long the daemon gets to stop before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs the demo until SIGINT or SIGTERM.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(demo(args))
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::Builder::new()
        .prefix("steward-demo-")
        .tempdir()
        .context("cannot make the demo's temporary directory")?;
    let services = demo::serve().await?;
    let cert = dir.path().join("gateway.pem");
    demo::write_certificate(&cert, demo::CERT_DAYS_LEFT)?;
    let config = dir.path().join("steward.toml");
    std::fs::write(&config, demo::config(args.listen, services.port, &cert))
        .with_context(|| format!("cannot write {}", config.display()))?;
    let log = dir.path().join("steward.log");
    let mut daemon = start_daemon(&config, &dir.path().join("data"), args.listen, &log)?;
    let (url, key) = match wait_until_serving(&mut daemon).await {
        Ok(found) => found,
        Err(error) => {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(error.context(format!("the demo's Steward did not start:\n{tail}")));
        }
    };
    println!(
        "\nSteward demo is running.\n\n  Dashboard: {url}/\n  API key:   {key}\n\n\
         Sign in with the key. The demo's services, a schedule firing every minute, a queue \
         with work arriving and alerts sent to a webhook are all served by this process.\n\
         Files (database, config, log): {}\n\
         Stop with Ctrl-C; everything above is removed.\n",
        dir.path().display()
    );
    std::io::stdout()
        .flush()
        .context("cannot write to standard output")?;
    let feeder = tokio::spawn(feed_work(url, key));
    let outcome = tokio::select! {
        status = daemon.wait() => {
            let status = status.context("cannot wait for the demo's Steward")?;
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            anyhow::bail!("the demo's Steward stopped ({status}):\n{tail}")
        }
        signal = stop_requested() => signal,
    };
    feeder.abort();
    stop_daemon(&mut daemon).await;
    drop(dir);
    outcome?;
    println!("Steward demo stopped; its files are removed.");
    Ok(ExitCode::SUCCESS)
}

/// Starts `steward up` on the demo's config and data, with none of the caller's `STEWARD_…`
/// settings: a demo must never touch a real database.
fn start_daemon(
    config: &std::path::Path,
    data: &std::path::Path,
    listen: SocketAddr,
    log: &std::path::Path,
) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let log_file =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut command = Command::new(exe);
    for var in steward_config::settings::ENVIRONMENT {
        command.env_remove(var);
    }
    command
        .arg("up")
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .arg("--listen")
        .arg(listen.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the demo's Steward")
}

/// Reads the daemon's standard output until it says where it serves, keeping the admin key
/// it printed on the way.
async fn wait_until_serving(daemon: &mut Child) -> anyhow::Result<(String, String)> {
    let stdout = daemon
        .stdout
        .take()
        .context("the demo's Steward has no standard output")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut key = None;
    let read = async {
        while let Some(line) = lines.next_line().await? {
            if let Some(k) = line.strip_prefix("admin key (shown once, store it now): ") {
                key = Some(k.trim().to_owned());
            }
            if let Some(url) = line.strip_prefix("steward listening on ") {
                return Ok(Some(url.trim().to_owned()));
            }
        }
        Ok::<_, std::io::Error>(None)
    };
    let url = tokio::time::timeout(START_TIMEOUT, read)
        .await
        .context("it did not start within a minute")?
        .context("cannot read its output")?
        .context("it exited before serving")?;
    let key = key.context("it printed no admin key")?;
    Ok((url, key))
}

/// Enqueues a few tasks on the demo's queue every few seconds, as agents would.
async fn feed_work(url: String, key: String) {
    let client = reqwest::Client::new();
    let mut round: u64 = 0;
    loop {
        round += 1;
        let tasks: Vec<_> = (0..3)
            .map(|i| {
                json!({
                    "queue": "agents",
                    "kind": "sleep",
                    "payload": { "ms": 200 + (round * 7 + i * 131) % 900 },
                })
            })
            .collect();
        let sent = client
            .post(format!("{url}/api/v1/tasks"))
            .bearer_auth(&key)
            .json(&json!({ "tasks": tasks }))
            .send()
            .await;
        if let Err(error) = sent {
            tracing::warn!(%error, "the demo could not enqueue work");
        }
        tokio::time::sleep(WORK_EVERY).await;
    }
}

/// Waits for SIGINT or SIGTERM.
async fn stop_requested() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("cannot watch SIGINT"),
        _ = terminate.recv() => Ok(()),
    }
}

/// Asks the daemon to stop, and kills it if it does not in time.
async fn stop_daemon(daemon: &mut Child) {
    if let Some(pid) = daemon.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(STOP_TIMEOUT, daemon.wait())
        .await
        .is_err()
    {
        let _ = daemon.kill().await;
    }
}
