//! A small client for the commands that talk to a running Steward over its API.

use anyhow::{Context, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use steward_wire::error::ErrorBody;

use crate::cli::ClientArgs;

/// The environment variable holding the key client commands use.
pub const KEY_VAR: &str = "STEWARD_API_KEY";

/// An authenticated connection to a Steward API.
pub struct Client {
    base: String,
    key: String,
    http: reqwest::Client,
    streams: reqwest::Client,
}

impl Client {
    /// A client for `args.url`, with the key from `STEWARD_API_KEY`.
    pub fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        let key = std::env::var(KEY_VAR)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .with_context(|| format!("set {KEY_VAR} to an API key (keys are never taken as arguments, which other users can see)"))?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .context("cannot build the HTTP client")?;
        // Streams last: no overall timeout, but one between reads (the server sends a
        // keep-alive every 15 s).
        let streams = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .read_timeout(std::time::Duration::from_secs(45))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            base: args.url.trim_end_matches('/').to_owned(),
            key: key.trim().to_owned(),
            http,
            streams,
        })
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A GET of `path` on the client for long-lived streams.
    pub fn get_stream(&self, path: &str) -> reqwest::RequestBuilder {
        self.streams.get(self.url(path)).bearer_auth(&self.key)
    }

    /// GETs `path` and decodes its answer as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(reqwest::Method::GET, path, None::<&()>).await
    }

    /// POSTs `body` (as JSON) to `path` and decodes the answer as `T`.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// POSTs to `path` without a body and decodes the answer as `T`.
    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(reqwest::Method::POST, path, None::<&()>).await
    }

    /// DELETEs `path` and decodes the answer as `T`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(reqwest::Method::DELETE, path, None::<&()>).await
    }

    /// Sends a request and decodes its answer as `T`; a refusal becomes an error carrying the
    /// API's status, code and message, and an answer of another shape one naming the path.
    async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<T> {
        refuse_dot_segments(path)?;
        let url = self.url(path);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("{method} {path}: the answer broke off"))?;
        if !status.is_success() {
            bail!("{method} {path}: {}", refusal(status, &bytes));
        }
        serde_json::from_slice(&bytes).with_context(|| {
            format!("{method} {path}: the answer is not what this client understands (is the server a different version?)")
        })
    }
}

/// Refuses a path with an empty, `.` or `..` segment: URLs resolve those away (encoded or not),
/// so the request would reach another route than the name given meant.
fn refuse_dot_segments(path: &str) -> anyhow::Result<()> {
    let route = path.split('?').next().unwrap_or_default();
    let segments = route.strip_prefix('/').unwrap_or(route);
    for segment in segments.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            bail!("`{segment}` cannot be a name here: give one that is not empty, `.` or `..`");
        }
    }
    Ok(())
}

/// A refused request's status with the API's error code and message, or the start of its body
/// when it is not the API's error shape (a proxy's page).
pub fn refusal(status: reqwest::StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => format!("{} {}: {}", status.as_u16(), e.error.code, e.error.message),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.trim().chars().take(200).collect();
            format!("{} {text}", status.as_u16())
        }
    }
}

/// Prints an answer as one line of JSON (`--output json`).
pub fn print_json<T: Serialize>(answer: &T) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string(answer).context("cannot write the answer as JSON")?
    );
    Ok(())
}

/// An optional value as a table cell (`-` when absent).
pub fn or_dash<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Prints rows as aligned columns under a header.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths.get(i).copied().unwrap_or(0)))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// `ms` (since the Unix epoch) as RFC 3339 in this machine's zone (`TZ`), with its offset
/// (`2026-12-06T22:48:32+01:00`): people read their own time, and the offset says which.
pub fn local_time(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::Local.timestamp_millis_opt(ms).single().map_or_else(
        || format!("{ms}ms"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
    )
}

/// Runs an async client command on a small runtime.
pub fn block_on<T>(
    future: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_urls_would_resolve_away_are_refused_before_sending() {
        use steward_wire::paths::{KEY, SCHEDULE_RUNS, TASKS};
        assert!(refuse_dot_segments(&TASKS.with(&[])).is_ok());
        assert!(refuse_dot_segments(&KEY.with(&[&"a.b"])).is_ok());
        assert!(refuse_dot_segments("/api/v1/tasks?after=..").is_ok());
        for bad in ["", ".", ".."] {
            assert!(refuse_dot_segments(&KEY.with(&[&bad])).is_err(), "{bad:?}");
            assert!(
                refuse_dot_segments(&SCHEDULE_RUNS.with(&[&bad])).is_err(),
                "{bad:?}"
            );
        }
    }
}
