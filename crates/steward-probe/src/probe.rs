//! The I/O of one probe: an HTTP request, a TCP connect, a TLS handshake, certificate files read
//! from disk, or a declared command. Each yields an [`Observation`] for the conditions; none
//! ever panics or outlives its timeout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use steward_config::file::read_regular;
use steward_core::health::ProbeContext;
use steward_core::health::cert::CertSeen;
use steward_core::health::cert::{CertInfo, parse_der, parse_pem_chain};
use steward_core::health::spec::{
    CheckSpec, CommandProbe, HttpProbe, MAX_BODY_BYTES, MAX_REDIRECTS, Probe, Redirects,
};
use steward_core::redact::Redactor;
use steward_core::text::printable;
use tokio::net::TcpStream;

use steward_exec::RedactorSource;
use steward_exec::process::{Keep, Program};

use crate::tls;

/// Milliseconds since the Unix epoch (0 for a clock set before it).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Why a probe could not be made, as a bounded set (it labels a metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// It did not finish within the check's timeout.
    Timeout,
    /// Nothing listens there (connection refused or reset while connecting).
    Refused,
    /// The name did not resolve.
    Dns,
    /// The TLS handshake or certificate verification failed.
    Tls,
    /// Another network failure (reset mid-response, unreachable network, …).
    Io,
    /// The HTTP exchange failed (malformed response, too many redirects, …).
    Http,
    /// The response body could not be read.
    Body,
    /// The command could not start or exited with a non-zero status.
    Command,
    /// Certificate files could not be found or read.
    File,
    /// A certificate could not be parsed.
    Certificate,
    /// The probe itself broke (a bug); the check fails rather than stalls.
    Internal,
}

impl Cause {
    /// The name used in results, metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Refused => "refused",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::Io => "io",
            Self::Http => "http",
            Self::Body => "body",
            Self::Command => "command",
            Self::File => "file",
            Self::Certificate => "certificate",
            Self::Internal => "internal",
        }
    }
}

/// Why a probe failed before any condition was looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The class.
    pub cause: Cause,
    /// One line, without secrets.
    pub message: String,
}

impl Failure {
    pub(super) fn new(cause: Cause, message: impl Into<String>) -> Self {
        Self {
            cause,
            message: printable(&message.into()),
        }
    }

    fn redacted(mut self, redactor: &Redactor) -> Self {
        self.message = redactor.redact(&self.message).into_owned();
        self
    }
}

/// What one probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// When it started.
    pub started_ms: i64,
    /// How long it took (up to the timeout).
    pub latency_ms: u64,
    /// The values conditions are evaluated against.
    pub context: ProbeContext,
    /// Set when the probe itself failed; such a probe fails whatever its conditions say.
    pub failure: Option<Failure>,
    /// The soonest expiry among the certificates it saw.
    pub cert_not_after_ms: Option<i64>,
    /// Each certificate it saw.
    pub certificates: Vec<CertSeen>,
}

impl Observation {
    /// A probe that broke before it could observe anything (its task panicked): it fails with
    /// [`Cause::Internal`], so its check keeps being probed instead of waiting on it forever.
    pub fn broken(started_ms: i64, message: impl Into<String>) -> Self {
        Self {
            started_ms,
            latency_ms: 0,
            context: ProbeContext::default(),
            failure: Some(Failure::new(Cause::Internal, message)),
            cert_not_after_ms: None,
            certificates: Vec::new(),
        }
    }
}

/// A parsed certificate as results keep it.
fn seen_cert(cert: CertInfo, path: Option<&Path>) -> CertSeen {
    CertSeen {
        path: path.map(|p| printable(&p.display().to_string())),
        subject: printable(&cert.subject),
        issuer: printable(&cert.issuer),
        names: cert.names.iter().map(|n| printable(n)).collect(),
        not_after_ms: cert.not_after_ms,
    }
}

/// How a client treats redirects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Follow {
    /// Not at all.
    Never,
    /// Up to [`MAX_REDIRECTS`], anywhere.
    Anywhere,
    /// Up to [`MAX_REDIRECTS`], only to the same scheme, host and port: a check's headers may
    /// hold secrets, and reqwest forwards custom headers to other hosts.
    SameOrigin,
}

/// Makes probes; holds the HTTP clients (one per TLS verification × redirect policy), which
/// are cheap to share, and the source of the secrets masked in what probes see.
#[derive(Clone)]
pub struct Prober {
    clients: HashMap<(bool, Follow), reqwest::Client>,
    redactor: RedactorSource,
}

impl Prober {
    /// Builds the HTTP clients; every observation has the secrets `redactor` gives masked.
    pub fn new(redactor: RedactorSource) -> Result<Self, reqwest::Error> {
        let mut clients = HashMap::new();
        for verify in [true, false] {
            for follow in [Follow::Never, Follow::Anywhere, Follow::SameOrigin] {
                let policy = match follow {
                    Follow::Never => reqwest::redirect::Policy::none(),
                    Follow::Anywhere => reqwest::redirect::Policy::limited(MAX_REDIRECTS),
                    Follow::SameOrigin => reqwest::redirect::Policy::custom(|attempt| {
                        let first = attempt.previous().first();
                        let same =
                            first.is_some_and(|first| first.origin() == attempt.url().origin());
                        if attempt.previous().len() > MAX_REDIRECTS {
                            attempt.error("too many redirects")
                        } else if same {
                            attempt.follow()
                        } else {
                            // The 3xx itself is the answer conditions see.
                            attempt.stop()
                        }
                    }),
                };
                let client = reqwest::Client::builder()
                    .user_agent(concat!("steward-prober/", env!("CARGO_PKG_VERSION")))
                    .redirect(policy)
                    // A URL's query may hold a secret; never pass it on in a Referer.
                    .referer(false)
                    .danger_accept_invalid_certs(!verify)
                    .tls_info(true)
                    // A probe measures a fresh connection each time, as a new client would
                    // see it; idle pooled connections would hide a server that stopped
                    // accepting.
                    .pool_max_idle_per_host(0)
                    .build()?;
                clients.insert((verify, follow), client);
            }
        }
        Ok(Self { clients, redactor })
    }

    /// Probes `spec` once, within its timeout. The secrets Steward knows are masked in what
    /// it observed (a body, an error) before conditions see it, so that neither a result nor
    /// a resolved condition can show one.
    pub async fn probe(&self, spec: &CheckSpec) -> Observation {
        let redactor = (self.redactor)();
        let started_ms = now_ms();
        let clock = Instant::now();
        let timeout = Duration::from_millis(spec.timeout_ms);
        let outcome = tokio::time::timeout(timeout, self.probe_inner(&spec.probe, &redactor)).await;
        let latency_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut seen = match outcome {
            Ok(seen) => seen,
            Err(_) => Seen::failed(Failure::new(
                Cause::Timeout,
                format!("no answer within {} ms", spec.timeout_ms),
            )),
        };
        seen.context.response_time_ms = Some(latency_ms);
        let not_after_ms = seen.certificates.iter().map(|c| c.not_after_ms).min();
        seen.context.certificate_expiration_ms = not_after_ms.map(|at| at - started_ms);
        Observation {
            started_ms,
            latency_ms,
            context: seen.context,
            failure: seen.failure.map(|failure| failure.redacted(&redactor)),
            cert_not_after_ms: not_after_ms,
            certificates: seen.certificates,
        }
    }

    async fn probe_inner(&self, probe: &Probe, redactor: &Redactor) -> Seen {
        match probe {
            Probe::Http(http) => self.http(http, redactor).await,
            Probe::Tcp { address } => tcp(address).await,
            Probe::Tls {
                address,
                server_name,
                verify,
            } => tls_probe(address, server_name, *verify).await,
            Probe::CertFile { paths } => cert_files(paths.clone()).await,
            Probe::Command(command) => run_command(command, redactor).await,
        }
    }

    async fn http(&self, http: &HttpProbe, redactor: &Redactor) -> Seen {
        let follow = match http.redirects {
            Redirects::None => Follow::Never,
            Redirects::Follow if http.headers.is_empty() => Follow::Anywhere,
            Redirects::Follow => Follow::SameOrigin,
        };
        let Some(client) = self.clients.get(&(http.verify_tls, follow)) else {
            return Seen::failed(Failure::new(Cause::Http, "no HTTP client"));
        };
        let method = match reqwest::Method::from_bytes(http.method.as_bytes()) {
            Ok(method) => method,
            Err(_) => return Seen::failed(Failure::new(Cause::Http, "invalid method")),
        };
        // The probe's own timeout (around this call) bounds the request, so that a timeout
        // always reads the same.
        let mut request = client.request(method, http.url.expose());
        for (name, value) in &http.headers {
            request = request.header(name.as_str(), value.expose());
        }
        if let Some(body) = &http.body {
            request = request.body(body.clone());
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Seen::failed(classify_reqwest(&error)),
        };
        let mut seen = Seen::connected();
        seen.context.status = Some(response.status().as_u16());
        seen.context.ip = response.remote_addr().map(|a| a.ip().to_string());
        seen.certificates = response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate())
            .and_then(|der| parse_der(der).ok())
            .map(|cert| seen_cert(cert, None))
            .into_iter()
            .collect();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_BODY_BYTES.saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() >= MAX_BODY_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    let failure = classify_reqwest(&error);
                    seen.failure = Some(Failure::new(
                        if failure.cause == Cause::Timeout {
                            Cause::Timeout
                        } else {
                            Cause::Body
                        },
                        format!("reading the body: {}", failure.message),
                    ));
                    break;
                }
            }
        }
        let text = String::from_utf8_lossy(&body);
        let masked = if body.len() >= MAX_BODY_BYTES {
            redactor.redact_head(&text)
        } else {
            redactor.redact(&text)
        };
        seen.context.body = Some(masked.into_owned());
        seen
    }
}

/// What a probe gathered before the common fields are filled in.
struct Seen {
    context: ProbeContext,
    failure: Option<Failure>,
    certificates: Vec<CertSeen>,
}

impl Seen {
    fn connected() -> Self {
        Self {
            context: ProbeContext {
                connected: true,
                ..ProbeContext::default()
            },
            failure: None,
            certificates: Vec::new(),
        }
    }

    fn failed(failure: Failure) -> Self {
        Self {
            context: ProbeContext::default(),
            failure: Some(failure),
            certificates: Vec::new(),
        }
    }
}

/// Sorts a reqwest error into a cause, with a message that never shows the URL (it may hold a
/// secret).
fn classify_reqwest(error: &reqwest::Error) -> Failure {
    let chain = error_chain(error);
    let lower = chain.to_ascii_lowercase();
    let cause = if error.is_timeout() {
        Cause::Timeout
    } else if lower.contains("dns error") || lower.contains("failed to lookup") {
        Cause::Dns
    } else if lower.contains("connection refused") {
        Cause::Refused
    } else if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("invalid peer")
    {
        Cause::Tls
    } else if error.is_redirect() || error.is_builder() || error.is_request() && !error.is_connect()
    {
        if lower.contains("connection") || lower.contains("closed") || lower.contains("reset") {
            Cause::Io
        } else {
            Cause::Http
        }
    } else if error.is_body() || error.is_decode() {
        Cause::Body
    } else {
        Cause::Io
    };
    Failure::new(cause, chain)
}

/// The error and its sources in one line, without the URL reqwest prefixes.
fn error_chain(error: &reqwest::Error) -> String {
    let mut top = error.to_string();
    if let Some(url) = error.url() {
        top = top.replace(&format!(" for url ({url})"), "");
    }
    let mut parts = vec![top];
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        let text = inner.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = inner.source();
    }
    parts.join(": ")
}

/// Resolves `address` (`host:port`) to its first socket address.
async fn resolve(address: &str) -> Result<SocketAddr, Failure> {
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Ok(addr);
    }
    match tokio::net::lookup_host(address).await {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| Failure::new(Cause::Dns, format!("{address}: no address"))),
        Err(error) => Err(Failure::new(Cause::Dns, format!("{address}: {error}"))),
    }
}

/// Sorts a connect error into a cause.
fn connect_failure(address: &str, error: &std::io::Error) -> Failure {
    let cause = match error.kind() {
        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset => {
            Cause::Refused
        }
        std::io::ErrorKind::TimedOut => Cause::Timeout,
        _ => Cause::Io,
    };
    Failure::new(cause, format!("connecting to {address}: {error}"))
}

async fn tcp(address: &str) -> Seen {
    let addr = match resolve(address).await {
        Ok(addr) => addr,
        Err(failure) => return Seen::failed(failure),
    };
    match TcpStream::connect(addr).await {
        Ok(_) => {
            let mut seen = Seen::connected();
            seen.context.ip = Some(addr.ip().to_string());
            seen
        }
        Err(error) => Seen::failed(connect_failure(address, &error)),
    }
}

async fn tls_probe(address: &str, server_name: &str, verify: bool) -> Seen {
    let addr = match resolve(address).await {
        Ok(addr) => addr,
        Err(failure) => return Seen::failed(failure),
    };
    let stream = match TcpStream::connect(addr).await {
        Ok(stream) => stream,
        Err(error) => return Seen::failed(connect_failure(address, &error)),
    };
    let handshake = tls::handshake(stream, server_name, verify).await;
    let mut seen = Seen::connected();
    seen.context.ip = Some(addr.ip().to_string());
    seen.certificates = handshake
        .peer
        .as_deref()
        .and_then(|der| parse_der(der).ok())
        .map(|cert| seen_cert(cert, None))
        .into_iter()
        .collect();
    if let Some(error) = handshake.error {
        // The certificate was read even if it was refused: conditions can still report how
        // long it has left.
        seen.context.connected = false;
        seen.failure = Some(Failure::new(Cause::Tls, error));
    } else if handshake.peer.is_none() {
        seen.failure = Some(Failure::new(Cause::Tls, "the server sent no certificate"));
    }
    seen
}

/// Reads the files matching `patterns`; the soonest expiry among their leaf certificates counts,
/// and `[BODY]` lists every file's certificate as JSON for conditions and people.
async fn cert_files(patterns: Vec<String>) -> Seen {
    match tokio::task::spawn_blocking(move || read_cert_files(&patterns)).await {
        Ok(seen) => seen,
        Err(error) => Seen::failed(Failure::new(Cause::File, error.to_string())),
    }
}

fn read_cert_files(patterns: &[String]) -> Seen {
    let mut files: Vec<PathBuf> = Vec::new();
    for pattern in patterns {
        match glob::glob(pattern) {
            Ok(paths) => files.extend(paths.filter_map(Result::ok)),
            Err(error) => {
                return Seen::failed(Failure::new(
                    Cause::File,
                    format!("pattern `{pattern}`: {error}"),
                ));
            }
        }
    }
    files.sort();
    files.dedup();
    if files.is_empty() {
        return Seen::failed(Failure::new(
            Cause::File,
            format!("no file matches {}", patterns.join(", ")),
        ));
    }
    let mut listed = Vec::new();
    let mut certificates = Vec::new();
    let now = now_ms();
    for path in &files {
        let leaf = match read_leaf(path) {
            Ok(leaf) => leaf,
            Err(failure) => return Seen::failed(failure),
        };
        listed.push(serde_json::json!({
            "path": path.display().to_string(),
            "subject": leaf.subject,
            "issuer": leaf.issuer,
            "names": leaf.names,
            "not_after_ms": leaf.not_after_ms,
            "days_left": leaf.days_left(now),
            "class": leaf.class(now).as_str(),
        }));
        certificates.push(seen_cert(leaf, Some(path)));
    }
    let mut seen = Seen::connected();
    seen.certificates = certificates;
    seen.context.body = Some(serde_json::Value::Array(listed).to_string());
    seen
}

/// The largest certificate file read: a PEM chain is a few KiB, and a glob that matched a
/// large file by mistake must not be read whole on every probe.
const MAX_CERT_FILE_BYTES: u64 = 1024 * 1024;

/// The first (leaf) certificate of a PEM file.
fn read_leaf(path: &Path) -> Result<CertInfo, Failure> {
    // A FIFO a glob matched would otherwise block the read, and a blocking thread with it.
    let bytes = read_regular(path, MAX_CERT_FILE_BYTES)
        .map_err(|e| Failure::new(Cause::File, e.to_string()))?;
    let chain = parse_pem_chain(&bytes)
        .map_err(|e| Failure::new(Cause::Certificate, format!("{}: {e}", path.display())))?;
    chain.into_iter().next().ok_or_else(|| {
        Failure::new(
            Cause::Certificate,
            format!("{}: no certificate", path.display()),
        )
    })
}

/// Runs the declared command as [`crate::process`] runs every program; its standard output
/// (capped) is `[BODY]`, exit status 0 is `[CONNECTED]`. A timeout kills its whole process
/// group.
async fn run_command(spec: &CommandProbe, redactor: &Redactor) -> Seen {
    let program = Program {
        command: &spec.command,
        args: &spec.args,
        env: &spec.env,
        extra_env: &[],
        workdir: spec.workdir.as_deref(),
    };
    let finished = match program.run(Keep::Head(MAX_BODY_BYTES)).await {
        Ok(finished) => finished,
        Err(error) => return Seen::failed(Failure::new(Cause::Command, error.to_string())),
    };
    let mut seen = Seen::connected();
    seen.context.body = Some(finished.stdout.text(redactor));
    if !finished.status.success() {
        seen.context.connected = false;
        let stderr = finished.stderr.text(redactor);
        let first_line: String = stderr
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        seen.failure = Some(Failure::new(
            Cause::Command,
            format!(
                "`{}` exited with {}: {first_line}",
                spec.command, finished.status
            ),
        ));
    }
    seen
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use steward_core::health::spec::CommandProbe;
    use steward_core::health::state::Thresholds;

    use super::*;
    use steward_exec::process::testing::ended;

    fn command_check(script: &str, timeout_ms: u64) -> CheckSpec {
        CheckSpec {
            name: "c".into(),
            service: "s".into(),
            probe: Probe::Command(CommandProbe {
                command: "sh".into(),
                args: vec!["-c".into(), script.into()],
                env: BTreeMap::new(),
                workdir: None,
            }),
            interval_ms: 60_000,
            timeout_ms,
            thresholds: Thresholds::default(),
            labels: BTreeMap::new(),
            conditions: Vec::new(),
            enabled: true,
        }
    }

    #[tokio::test]
    async fn a_timed_out_command_takes_its_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let seen = Prober::new(steward_exec::no_redaction())
            .unwrap()
            .probe(&command_check(&script, 300))
            .await;
        assert_eq!(seen.failure.map(|f| f.cause), Some(Cause::Timeout));
        assert!(ended(&pid_file), "the grandchild survived the probe");
    }

    #[tokio::test]
    async fn a_command_that_exits_is_not_held_open_by_what_it_left_running() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; echo ok", pid_file.display());
        let seen = Prober::new(steward_exec::no_redaction())
            .unwrap()
            .probe(&command_check(&script, 10_000))
            .await;
        assert_eq!(seen.failure, None);
        assert!(seen.latency_ms < 5_000, "took {} ms", seen.latency_ms);
        assert_eq!(seen.context.body.as_deref(), Some("ok\n"));
        assert!(ended(&pid_file), "the leftover sleep still runs");
    }

    #[test]
    fn a_certificate_file_larger_than_a_megabyte_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.pem");
        std::fs::write(&path, vec![b'x'; 1024 * 1024 + 1]).unwrap();
        let failure = read_leaf(&path).unwrap_err();
        assert_eq!(failure.cause, Cause::File);
        assert!(
            failure
                .message
                .contains("more than the 1048576 it may hold"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn every_cause_has_a_distinct_name() {
        let all = [
            Cause::Timeout,
            Cause::Refused,
            Cause::Dns,
            Cause::Tls,
            Cause::Io,
            Cause::Http,
            Cause::Body,
            Cause::Command,
            Cause::File,
            Cause::Certificate,
            Cause::Internal,
        ];
        let names: std::collections::HashSet<_> = all.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), all.len());
    }

    #[tokio::test]
    async fn a_fifo_matched_by_a_pattern_fails_the_probe_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let pipe = dir.path().join("live.pem");
        let made = std::process::Command::new("mkfifo")
            .arg(&pipe)
            .status()
            .unwrap();
        assert!(made.success());
        let pattern = format!("{}/*.pem", dir.path().display());
        let Ok(seen) =
            tokio::time::timeout(Duration::from_secs(5), cert_files(vec![pattern])).await
        else {
            // A writer lets the blocked read end, so that the runtime can shut down.
            drop(std::fs::OpenOptions::new().write(true).open(&pipe));
            panic!("reading the certificate files blocked");
        };
        let failure = seen.failure.expect("the probe fails");
        assert_eq!(failure.cause, Cause::File);
        assert_eq!(
            failure.message,
            format!("{}: not a regular file (a FIFO)", pipe.display())
        );
    }
}
