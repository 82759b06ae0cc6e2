//! Local checks: the `[[checks]]` of services on a node, which the hub hands to the node's
//! agent in heartbeat answers, and the judged results the agent sends back with its beats.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The most results one heartbeat may carry.
pub const MAX_CHECK_RESULTS: usize = 1_000;

/// A check the agent probes from its node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeCheck {
    /// The check's name.
    pub name: String,
    /// Time between the starts of two probes, in ms.
    pub interval_ms: u64,
    /// How long one probe may take, in ms.
    pub timeout_ms: u64,
    /// What to probe.
    pub probe: NodeProbe,
    /// The conditions each result is judged by, as written (`[STATUS] == 200`).
    pub conditions: Vec<String>,
}

/// What a node probes. Commands are never handed to a node: the hub cannot make an agent run
/// a program its own config does not declare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeProbe {
    /// An HTTP request.
    Http {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// Request headers.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// A request body.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        /// Statuses that pass when no condition names `[STATUS]`.
        #[serde(default)]
        expect_status: Vec<u16>,
        /// Verify the certificate chain and name.
        verify_tls: bool,
        /// Follow redirects.
        follow_redirects: bool,
    },
    /// A TCP connect.
    Tcp {
        /// `host:port`.
        address: String,
    },
    /// A TLS handshake reading the peer certificate.
    Tls {
        /// `host:port`.
        address: String,
        /// The name sent in SNI and verified.
        server_name: String,
        /// Verify the chain and name.
        verify: bool,
    },
    /// Certificate files on the node.
    CertFile {
        /// Glob patterns.
        paths: Vec<String>,
    },
}

/// One condition as a result resolved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConditionOutcome {
    /// Whether it held.
    pub ok: bool,
    /// The condition with its values filled in (`[STATUS] (503) == 200`).
    pub resolved: String,
}

/// A certificate a probe saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SeenCertificate {
    /// The file it was read from (certificate files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Its subject.
    pub subject: String,
    /// Its issuer.
    pub issuer: String,
    /// The names it is valid for.
    #[serde(default)]
    pub names: Vec<String>,
    /// When it expires (ms since the Unix epoch).
    pub not_after_ms: i64,
}

/// One probe's result, judged on the node by the check's conditions; the hub tracks the
/// check's state from it as from its own probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeCheckResult {
    /// The check.
    pub check: String,
    /// When the probe started (ms since the Unix epoch).
    pub at_ms: i64,
    /// How long it took.
    pub latency_ms: u64,
    /// `pass`, `slow_pass` or `fail`.
    pub verdict: String,
    /// Why it did not pass, in one line, as the judging worded it (empty when it passed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The HTTP status, for HTTP probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why the probe itself failed (`timeout`, `refused`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The failure in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Each condition as resolved.
    #[serde(default)]
    pub conditions: Vec<ConditionOutcome>,
    /// The soonest expiry among the certificates seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_not_after_ms: Option<i64>,
    /// The certificates seen.
    #[serde(default)]
    pub certificates: Vec<SeenCertificate>,
}
