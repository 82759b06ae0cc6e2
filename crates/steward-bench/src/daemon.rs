//! The real `steward up` as a child process of a benchmark: started on a config, a data
//! directory or a PostgreSQL database, stopped gracefully, and measured (RSS, CPU time).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;

/// The `steward` binary built next to this one.
pub(crate) fn steward_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()
        .context("locating steward-bench")?
        .with_file_name("steward");
    anyhow::ensure!(
        exe.is_file(),
        "{} is missing: build both with `cargo build --release -p steward -p steward-bench`",
        exe.display()
    );
    Ok(exe)
}

/// Prints how many warnings and errors the daemon logged (its log is in the pretty format),
/// with the first few.
pub(crate) fn report_log(log: &Path) {
    let Ok(text) = std::fs::read_to_string(log) else {
        return;
    };
    let problems: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        // Expected on a fresh data directory.
        .filter(|l| !l.contains("created the first admin key"))
        .collect();
    if problems.is_empty() {
        println!("  steward logged no warnings or errors");
        return;
    }
    println!(
        "  steward logged {} warnings or errors, first:",
        problems.len()
    );
    for line in problems.iter().take(3) {
        println!("    {}", line.chars().take(300).collect::<String>());
    }
}

/// A running `steward up`.
pub(crate) struct Steward {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// The admin key it printed.
    pub(crate) key: String,
}

impl Steward {
    /// Starts `steward up` and waits for its admin key and URL on standard output.
    pub(crate) fn start(
        exe: &Path,
        config: &Path,
        data: &Path,
        database: Option<&str>,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(exe);
        for var in steward_config::settings::ENVIRONMENT {
            command.env_remove(var);
        }
        command.arg("up").arg("--config").arg(config).args([
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "info,sqlx=warn",
        ]);
        match database {
            Some(url) => command.args(["--database", url]),
            None => command.arg("--data-dir").arg(data),
        };
        let stderr =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let stdout = child.stdout.take().context("steward's standard output")?;
        let (lines, read) = mpsc::channel();
        // Reads (and keeps draining) its standard output.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut key = None;
        loop {
            if let Ok(line) = read.recv_timeout(Duration::from_millis(50)) {
                if let Some(k) = line.strip_prefix("admin key (shown once, store it now): ") {
                    key = Some(k.trim().to_owned());
                }
                if let Some(url) = line.strip_prefix("steward listening on ") {
                    let key = key.context("steward printed no admin key (a used data dir?)")?;
                    return Ok(Self {
                        child,
                        url: url.trim().to_owned(),
                        key,
                    });
                }
            }
            if let Some(status) = child.try_wait().context("waiting for steward")? {
                let logged = std::fs::read_to_string(log).unwrap_or_default();
                anyhow::bail!("steward up exited with {status}:\n{logged}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!(
                    "steward up printed no URL within 60 s (log: {})",
                    log.display()
                );
            }
        }
    }
}

/// Starts `steward up` on a blocking thread (it waits for the daemon's first lines) and guards
/// it.
pub(crate) async fn start(
    exe: &Path,
    config: &Path,
    data: &Path,
    database: Option<&str>,
    log: &Path,
) -> anyhow::Result<StewardGuard> {
    let (exe, config, data, log) = (
        exe.to_path_buf(),
        config.to_path_buf(),
        data.to_path_buf(),
        log.to_path_buf(),
    );
    let database = database.map(str::to_owned);
    let steward = tokio::task::spawn_blocking(move || {
        Steward::start(&exe, &config, &data, database.as_deref(), &log)
    })
    .await
    .context("starting steward")??;
    Ok(StewardGuard(Some(steward)))
}

/// Stops the daemon when dropped (on an early error); [`StewardGuard::stop`] does it
/// gracefully.
pub(crate) struct StewardGuard(pub(crate) Option<Steward>);

impl StewardGuard {
    /// Its process id.
    pub(crate) fn pid(&self) -> anyhow::Result<u32> {
        Ok(self.0.as_ref().context("steward has stopped")?.child.id())
    }

    /// Its URL and admin key.
    pub(crate) fn endpoint(&self) -> anyhow::Result<(String, String)> {
        let steward = self.0.as_ref().context("steward has stopped")?;
        Ok((steward.url.clone(), steward.key.clone()))
    }

    /// SIGTERM, then up to 30 s for it to exit (SIGKILL after that).
    pub(crate) fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut steward) = self.0.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &steward.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = steward.child.try_wait().context("waiting for steward")? {
                if !status.success() {
                    println!("  steward exited with {status}");
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                println!("  steward did not stop within 30 s of SIGTERM; killed");
                let _ = steward.child.kill();
                let _ = steward.child.wait();
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for StewardGuard {
    fn drop(&mut self) {
        if let Some(mut steward) = self.0.take() {
            let _ = steward.child.kill();
            let _ = steward.child.wait();
        }
    }
}

/// A process's resident memory and its peak, in bytes.
pub(crate) fn memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    crate::memory_of(&pid.to_string())
}

/// A process's CPU time (user + system) so far.
pub(crate) fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    crate::cpu_time_of(&pid.to_string())
}

/// Enqueues `tasks` no-op tasks on `queue`, all due at `run_at_ms`, through the API in batches
/// of 10,000 (the most one call takes).
pub(crate) async fn enqueue_noops(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    queue: &str,
    tasks: usize,
    run_at_ms: i64,
) -> anyhow::Result<()> {
    const BATCH: usize = 10_000;
    for start in (0..tasks).step_by(BATCH) {
        let body: Vec<_> = (start..(start + BATCH).min(tasks))
            .map(|i| {
                serde_json::json!({ "queue": queue, "kind": "noop", "run_at_ms": run_at_ms, "payload": { "i": i } })
            })
            .collect();
        let response = http
            .post(format!("{url}/api/v1/tasks"))
            .bearer_auth(key)
            .json(&serde_json::json!({ "tasks": body }))
            .send()
            .await
            .context("enqueueing")?;
        anyhow::ensure!(
            response.status().is_success(),
            "enqueue answered {}",
            response.status()
        );
    }
    Ok(())
}
