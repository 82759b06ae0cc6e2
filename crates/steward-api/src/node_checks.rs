//! Local checks over the heartbeat: the checks a node's agent probes, as the wire hands them
//! over (with their digest, so an agent holding them gets only the digest), and the results it
//! sends back, checked before the fleet records them.

use steward_config::Config;
use steward_core::health::cert::CertSeen;
use steward_core::health::spec::{CheckSpec, Probe, Redirects};
use steward_core::text::printable;
use steward_store::ProbeRecord;
use steward_wire::node_checks as wire;

use crate::ApiError;

/// The longest text kept from a result (an error, a resolved condition).
const MAX_TEXT: usize = 1_024;

/// The checks `node`'s agent probes, for the wire, and their digest.
pub(crate) fn checks_for(config: &Config, node: &str) -> (Vec<wire::NodeCheck>, String) {
    let checks: Vec<wire::NodeCheck> = steward_engine::views::nodes::node_checks(config, node)
        .into_iter()
        .filter_map(node_check_of)
        .collect();
    let text = serde_json::to_string(&checks).unwrap_or_default();
    (checks, steward_core::auth::key_digest(&text))
}

fn node_check_of(spec: &CheckSpec) -> Option<wire::NodeCheck> {
    let probe = match &spec.probe {
        Probe::Http(http) => wire::NodeProbe::Http {
            method: http.method.clone(),
            url: http.url.expose().to_owned(),
            headers: http
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_owned()))
                .collect(),
            body: http.body.clone(),
            expect_status: http.expect_status.clone(),
            verify_tls: http.verify_tls,
            follow_redirects: http.redirects == Redirects::Follow,
        },
        Probe::Tcp { address } => wire::NodeProbe::Tcp {
            address: address.clone(),
        },
        Probe::Tls {
            address,
            server_name,
            verify,
        } => wire::NodeProbe::Tls {
            address: address.clone(),
            server_name: server_name.clone(),
            verify: *verify,
        },
        Probe::CertFile { paths } => wire::NodeProbe::CertFile {
            paths: paths.clone(),
        },
        Probe::Command(_) => return None,
    };
    Some(wire::NodeCheck {
        name: spec.name.clone(),
        interval_ms: spec.interval_ms,
        timeout_ms: spec.timeout_ms,
        probe,
        conditions: spec
            .effective_conditions()
            .iter()
            .map(ToString::to_string)
            .collect(),
    })
}

/// The results of a heartbeat as the store keeps them, each with why it did not pass; refused
/// whole when one is malformed.
pub(crate) fn results_of(
    results: Vec<wire::NodeCheckResult>,
) -> Result<Vec<(ProbeRecord, String)>, ApiError> {
    if results.len() > wire::MAX_CHECK_RESULTS {
        return Err(invalid(format!(
            "`check_results`: {} results; at most {} per heartbeat",
            results.len(),
            wire::MAX_CHECK_RESULTS
        )));
    }
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let verdict = steward_store::health::parse_verdict(&r.verdict).ok_or_else(|| {
                invalid(format!(
                    "`check_results[{i}].verdict`: expected pass, slow_pass or fail"
                ))
            })?;
            let reason = cut(&r.reason);
            let record = ProbeRecord {
                check: r.check,
                at_ms: r.at_ms,
                verdict,
                latency_ms: r.latency_ms,
                status: r.status,
                cause: r.cause.map(|c| cut(&c)),
                error: r.error.map(|e| cut(&e)),
                conditions: r
                    .conditions
                    .into_iter()
                    .map(|c| (c.ok, cut(&c.resolved)))
                    .collect(),
                cert_not_after_ms: r.cert_not_after_ms,
                certificates: r
                    .certificates
                    .into_iter()
                    .map(|c| CertSeen {
                        path: c.path.map(|p| cut(&p)),
                        subject: cut(&c.subject),
                        issuer: cut(&c.issuer),
                        names: c.names.iter().map(|n| cut(n)).collect(),
                        not_after_ms: c.not_after_ms,
                    })
                    .collect(),
            };
            Ok((record, reason))
        })
        .collect()
}

fn invalid(message: String) -> ApiError {
    ApiError::new(axum::http::StatusCode::BAD_REQUEST, "invalid_body", message)
}

/// A text from a node, printable and at most [`MAX_TEXT`] bytes.
fn cut(text: &str) -> String {
    let shown = printable(text);
    if shown.len() <= MAX_TEXT {
        return shown;
    }
    let mut end = MAX_TEXT;
    while !shown.is_char_boundary(end) {
        end -= 1;
    }
    shown[..end].to_owned()
}
