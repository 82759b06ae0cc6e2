//! Starting the real `steward` binary for tests and talking to it over loopback HTTP.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The VizionAI example config.
pub fn vizion_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/vizion/steward.toml")
}

/// A `steward` command with no `STEWARD_…` settings inherited from the caller's environment.
pub fn steward() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_steward"));
    for var in steward_config::settings::ENVIRONMENT {
        cmd.env_remove(var);
    }
    cmd
}

/// A running daemon; killed when dropped.
pub struct Daemon {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The admin key printed on first start (or given with [`Daemon::use_key`]), sent with
    /// every request.
    pub key: Option<String>,
    stderr: PathBuf,
    client: reqwest::blocking::Client,
}

impl Daemon {
    /// Starts `steward up ARGS --listen 127.0.0.1:0` with logs going to `log_dir`, and waits
    /// for it to print the URL it serves.
    pub fn start(log_dir: &Path, args: &[&str]) -> Daemon {
        Self::try_start(log_dir, args)
            .unwrap_or_else(|(status, stderr)| panic!("steward up exited with {status}:\n{stderr}"))
    }

    /// Starts a daemon on `config` with its SQLite data in `dir/data`, plus `extra` flags.
    pub fn start_on_sqlite(dir: &Path, config: &Path, extra: &[&str]) -> Daemon {
        let data = dir.join("data");
        let mut args = vec![
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Daemon::start(dir, &args)
    }

    /// Starts a daemon on `config` with the PostgreSQL test database `db`.
    pub fn start_on_postgres(
        dir: &Path,
        config: &Path,
        db: &steward_store_postgres::testing::TestDatabase,
    ) -> Daemon {
        Daemon::start(
            dir,
            &[
                "--config",
                config.to_str().unwrap(),
                "--database",
                db.url.as_str(),
            ],
        )
    }

    /// Like [`Daemon::start`], returning the exit status and standard error if it stops first.
    pub fn try_start(log_dir: &Path, args: &[&str]) -> Result<Daemon, (ExitStatus, String)> {
        Self::try_start_with_env(log_dir, args, &[])
    }

    /// Like [`Daemon::try_start`], with these environment variables set for the daemon.
    pub fn try_start_with_env(
        log_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Daemon, (ExitStatus, String)> {
        std::fs::create_dir_all(log_dir).unwrap();
        let stderr = log_dir.join(format!("steward-{}.log", unique()));
        let mut child = steward()
            .envs(env.iter().copied())
            .arg("up")
            .args(default_listen(args))
            .args(["--log-level", "info,sqlx=warn"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn steward");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut key = None;
        loop {
            let line = rx.recv_timeout(Duration::from_millis(50)).ok();
            if let Some(k) = line
                .as_deref()
                .and_then(|l| l.strip_prefix("admin key (shown once, store it now): "))
            {
                key = Some(k.trim().to_owned());
            }
            if let Some(url) = line
                .as_deref()
                .and_then(|l| l.strip_prefix("steward listening on "))
            {
                return Ok(Daemon {
                    child,
                    url: url.trim().to_owned(),
                    key,
                    stderr,
                    client: reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .unwrap(),
                });
            }
            if let Some(status) = child.try_wait().unwrap() {
                return Err((status, std::fs::read_to_string(&stderr).unwrap_or_default()));
            }
            assert!(
                Instant::now() < deadline,
                "steward up printed no URL within 30 s"
            );
        }
    }

    /// Sends requests with `key` from now on.
    pub fn use_key(&mut self, key: &str) {
        self.key = Some(key.to_owned());
    }

    fn authorized(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        self.authorized(self.client.get(format!("{}{path}", self.url)))
            .send()
            .unwrap()
    }

    /// A GET without any key.
    pub fn get_anonymous(&self, path: &str) -> reqwest::blocking::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .unwrap()
    }

    /// A request with an explicit method and optional JSON body, with the daemon's key.
    pub fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::blocking::Response {
        let mut request =
            self.authorized(self.client.request(method, format!("{}{path}", self.url)));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().unwrap()
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.get(path);
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().unwrap()
    }

    /// Creates a key (with the admin key in use) and answers its secret.
    pub fn create_key(&self, name: &str, role: &str, workspace: Option<&str>) -> String {
        let mut body = serde_json::json!({ "name": name, "role": role });
        if let Some(workspace) = workspace {
            body["workspace"] = workspace.into();
        }
        let response = self.send(reqwest::Method::POST, "/api/v1/keys", Some(body));
        assert_eq!(response.status(), 201, "creating key `{name}`");
        response.json::<serde_json::Value>().unwrap()["secret"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub fn post(&self, path: &str) -> reqwest::blocking::Response {
        self.authorized(self.client.post(format!("{}{path}", self.url)))
            .send()
            .unwrap()
    }

    /// Everything the daemon logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`HUP`, `TERM`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "steward did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it is true, or panics after `timeout`.
pub fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `--listen 127.0.0.1:0` unless `args` name an address themselves.
fn default_listen(args: &[&str]) -> &'static [&'static str] {
    if args.contains(&"--listen") {
        &[]
    } else {
        &["--listen", "127.0.0.1:0"]
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One integer from `sql` on the test database `db` (a count, a sum).
pub fn db_scalar(db: &steward_store_postgres::testing::TestDatabase, sql: &str) -> i64 {
    let (url, sql) = (db.url.clone(), sql.to_string());
    on_own_runtime(async move {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query_scalar::<_, i64>(&sql)
            .fetch_one(&mut conn)
            .await
            .unwrap()
    })
}

/// Runs `work` to its end on a runtime of its own, on a thread of its own, so blocking tests
/// (and tests already inside a runtime) can call it.
fn on_own_runtime<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work)
    })
    .join()
    .unwrap()
}
pub mod browser;
pub mod chrome;
pub mod receiver;

/// The status, error code and message of an error answer (the documented JSON).
pub fn refusal(response: reqwest::blocking::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().expect("every error is JSON");
    let text = |field: &str| body["error"][field].as_str().unwrap_or_default().to_owned();
    (status, text("code"), text("message"))
}

/// One integer from `sql` on the SQLite database file at `path` (a count, a sum), opened
/// read-only beside whatever else has it open.
pub fn sqlite_scalar(path: &Path, sql: &str) -> i64 {
    let (url, sql) = (
        format!("sqlite://{}?mode=ro", path.display()),
        sql.to_string(),
    );
    on_own_runtime(async move {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_scalar::<_, i64>(&sql)
            .fetch_one(&mut conn)
            .await
            .unwrap()
    })
}
