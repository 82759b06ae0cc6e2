//! What a health check is, as declared in `[[checks]]` (or implied by a service's `url`): the
//! probe to make, how often, and what its result must satisfy.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::Secret;
use crate::health::condition::Condition;
use crate::health::state::Thresholds;
use crate::registry::Labels;

/// The interval of a check that does not name one.
pub const DEFAULT_INTERVAL_MS: u64 = 30_000;
/// The timeout of a check that does not name one.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// The shortest interval a check may have.
pub const MIN_INTERVAL_MS: u64 = 1_000;
/// The longest interval a check may have.
pub const MAX_INTERVAL_MS: u64 = 24 * 3_600_000;
/// The shortest timeout a check may have.
pub const MIN_TIMEOUT_MS: u64 = 10;
/// The most redirects an HTTP check follows when it follows them.
pub const MAX_REDIRECTS: usize = 10;
/// The most bytes of a response (or of a command's output) kept for conditions on `[BODY]`.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// One health check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    /// Unique among checks; also the name in metrics and the API.
    pub name: String,
    /// The `[[services]]` entry it watches.
    pub service: String,
    /// What to probe.
    pub probe: Probe,
    /// Time between the starts of two probes.
    pub interval_ms: u64,
    /// How long one probe may take before it counts as failed.
    pub timeout_ms: u64,
    /// Flap protection.
    pub thresholds: Thresholds,
    /// Extra labels, carried into events and (later) alerts.
    pub labels: Labels,
    /// What each result must satisfy; empty means the probe's own default (see
    /// [`Probe::default_conditions`]).
    pub conditions: Vec<Condition>,
    /// False pauses the check (its state stays as it was).
    pub enabled: bool,
}

impl CheckSpec {
    /// The conditions each result is held to: the declared ones, or the probe's default.
    pub fn effective_conditions(&self) -> Vec<Condition> {
        if self.conditions.is_empty() {
            self.probe.default_conditions()
        } else {
            self.conditions.clone()
        }
    }
}

/// The kind of probe, as written in `type = "…"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    /// An HTTP request.
    Http,
    /// A TCP connect.
    Tcp,
    /// A TLS handshake that reads the peer certificate.
    Tls,
    /// Certificate files on disk.
    CertFile,
    /// A declared command; exit status 0 passes.
    Command,
}

impl ProbeKind {
    /// Every kind, in the order they are documented.
    pub const ALL: [ProbeKind; 5] = [
        Self::Http,
        Self::Tcp,
        Self::Tls,
        Self::CertFile,
        Self::Command,
    ];

    /// The name used in `steward.toml`, metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::CertFile => "cert_file",
            Self::Command => "command",
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a check probes.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// An HTTP request.
    Http(HttpProbe),
    /// A TCP connect to `host:port`.
    Tcp {
        /// `host:port`.
        address: String,
    },
    /// A TLS handshake with `host:port`, reading the peer certificate.
    Tls {
        /// `host:port`.
        address: String,
        /// The name sent in SNI and verified (default: the host of `address`).
        server_name: String,
        /// Verify the chain and name (default true). With false, an expired or self-signed
        /// certificate still yields its expiry for conditions.
        verify: bool,
    },
    /// PEM certificate files matched by glob patterns; the check fails on the soonest expiry
    /// according to its conditions (default: more than 14 days left).
    CertFile {
        /// Glob patterns, e.g. `/etc/letsencrypt/live/*/fullchain.pem`.
        paths: Vec<String>,
    },
    /// A declared program; exit status 0 passes, its output is `[BODY]`.
    Command(CommandProbe),
}

impl Probe {
    /// Its kind.
    pub fn kind(&self) -> ProbeKind {
        match self {
            Self::Http(_) => ProbeKind::Http,
            Self::Tcp { .. } => ProbeKind::Tcp,
            Self::Tls { .. } => ProbeKind::Tls,
            Self::CertFile { .. } => ProbeKind::CertFile,
            Self::Command(_) => ProbeKind::Command,
        }
    }

    /// What a result must satisfy when the check declares no conditions:
    /// - http: a status in `expect_status` (any 2xx when that is empty);
    /// - tcp, command: connected (for a command: exited with status 0);
    /// - tls, cert_file: connected and more than 14 days (the critical class) left.
    pub fn default_conditions(&self) -> Vec<Condition> {
        let texts: Vec<String> = match self {
            Self::Http(http) if http.expect_status.is_empty() => {
                vec!["[STATUS] >= 200".into(), "[STATUS] < 300".into()]
            }
            Self::Http(http) => {
                let list = http
                    .expect_status
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                vec![format!("[STATUS] == any({list})")]
            }
            Self::Tcp { .. } | Self::Command(_) => vec!["[CONNECTED] == true".into()],
            Self::Tls { .. } | Self::CertFile { .. } => vec![
                "[CONNECTED] == true".into(),
                format!(
                    "[CERTIFICATE_EXPIRATION] > {}h",
                    crate::health::cert::CRITICAL_DAYS * 24
                ),
            ],
        };
        texts
            .iter()
            .filter_map(|t| Condition::parse(t).ok())
            .collect()
    }
}

/// How an HTTP check treats redirects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Redirects {
    /// Follow up to [`MAX_REDIRECTS`]; conditions see the final response.
    #[default]
    Follow,
    /// Do not follow; conditions see the 3xx itself.
    None,
}

/// An HTTP probe.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpProbe {
    /// `GET` by default.
    pub method: String,
    /// The full URL (a `path` is joined to the service's `url` when the config is read).
    pub url: Secret,
    /// Request headers; values may hold secrets.
    pub headers: BTreeMap<String, Secret>,
    /// A request body.
    pub body: Option<String>,
    /// The statuses that pass when no conditions are declared (empty: any 2xx).
    pub expect_status: Vec<u16>,
    /// Verify TLS certificates (default true).
    pub verify_tls: bool,
    /// Follow redirects or not.
    pub redirects: Redirects,
}

/// A command probe: one declared program with fixed arguments, never a shell string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandProbe {
    /// The program (an absolute path or a name looked up in `PATH`).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, Secret>,
    /// The working directory.
    pub workdir: Option<PathBuf>,
}

/// `[health]`: how long probe results are kept and how many probes may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// Raw results older than this are pruned (default 24 h).
    pub keep_results_ms: u64,
    /// Per-minute roll-ups older than this are pruned (default 30 days).
    pub keep_rollups_ms: u64,
    /// Probes in flight at most (default 512).
    pub max_concurrent: u32,
}

impl HealthSettings {
    /// The default raw-result retention.
    pub const DEFAULT_KEEP_RESULTS_MS: u64 = 24 * 3_600_000;
    /// The default roll-up retention.
    pub const DEFAULT_KEEP_ROLLUPS_MS: u64 = 30 * 24 * 3_600_000;
    /// The default cap on probes in flight.
    pub const DEFAULT_MAX_CONCURRENT: u32 = 512;
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            keep_results_ms: Self::DEFAULT_KEEP_RESULTS_MS,
            keep_rollups_ms: Self::DEFAULT_KEEP_ROLLUPS_MS,
            max_concurrent: Self::DEFAULT_MAX_CONCURRENT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::condition::ProbeContext;

    fn http(expect: Vec<u16>) -> Probe {
        Probe::Http(HttpProbe {
            method: "GET".into(),
            url: Secret::new("http://127.0.0.1/"),
            headers: BTreeMap::new(),
            body: None,
            expect_status: expect,
            verify_tls: true,
            redirects: Redirects::Follow,
        })
    }

    fn passes(probe: &Probe, cx: &ProbeContext) -> bool {
        probe
            .default_conditions()
            .iter()
            .all(|c| c.evaluate(cx).success)
    }

    #[test]
    fn default_http_conditions_take_any_2xx_or_the_listed_statuses() {
        let status = |s| ProbeContext {
            status: Some(s),
            connected: true,
            ..ProbeContext::default()
        };
        assert_eq!(http(vec![]).default_conditions().len(), 2);
        assert!(passes(&http(vec![]), &status(204)));
        assert!(!passes(&http(vec![]), &status(301)));
        assert!(!passes(&http(vec![]), &status(500)));
        assert!(passes(&http(vec![200, 401]), &status(401)));
        assert!(!passes(&http(vec![200, 401]), &status(204)));
    }

    #[test]
    fn default_certificate_conditions_fail_inside_the_critical_class() {
        let probe = Probe::CertFile {
            paths: vec!["/x/*.pem".into()],
        };
        let left = |days: i64| ProbeContext {
            connected: true,
            certificate_expiration_ms: Some(days * 86_400_000),
            ..ProbeContext::default()
        };
        assert!(passes(&probe, &left(15)));
        assert!(!passes(&probe, &left(13)));
        assert!(!passes(&probe, &ProbeContext::default()));
    }

    #[test]
    fn every_kind_has_a_distinct_name() {
        let names: std::collections::BTreeSet<_> =
            ProbeKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), ProbeKind::ALL.len());
    }
}
