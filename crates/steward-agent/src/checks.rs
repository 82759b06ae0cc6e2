//! Local checks: the `[[checks]]` of the services declared on this node, handed over by the
//! hub in heartbeat answers and probed from here, where the services live, with the same probes
//! and conditions as the hub's prober (`steward-probe`). The judged results wait in memory and
//! travel with the next heartbeat; the hub tracks each check's state from them.
//!
//! While the hub is unreachable results keep coming and wait, up to [`MAX_KEPT`]: past that the
//! oldest are dropped first (counted and logged), since a check's latest results say more than
//! its oldest. Task results and audit events are kept on disk and never dropped; check results
//! are only kept here.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steward_core::Secret;
use steward_core::health::Condition;
use steward_core::health::spec::{CheckSpec, HttpProbe, Probe, Redirects};
use steward_core::health::state::{ProbeVerdict, Thresholds};
use steward_probe::{Prober, judge, phase_ms};
use steward_wire::node_checks::{
    ConditionOutcome, NodeCheck, NodeCheckResult, NodeProbe, SeenCertificate,
};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::lock;

/// The most results kept while the hub is away; the oldest go first past it.
pub const MAX_KEPT: usize = 10_000;

/// The most results sent with one heartbeat (the hub takes up to 1,000).
pub const MAX_PER_BEAT: usize = 500;

/// Probes in flight at once.
const MAX_CONCURRENT: usize = 16;

struct Assigned {
    digest: Option<String>,
    checks: Vec<(Arc<CheckSpec>, Arc<Vec<Condition>>)>,
}

/// The node's local checks: what the hub assigned, and the results not yet delivered.
pub struct LocalChecks {
    prober: Prober,
    assigned: Mutex<Assigned>,
    results: Mutex<VecDeque<NodeCheckResult>>,
    dropped: AtomicU64,
    changed: Notify,
}

impl LocalChecks {
    /// No checks yet; the first heartbeat answer assigns them.
    pub fn new() -> Result<Self, reqwest::Error> {
        Ok(Self {
            prober: Prober::new(steward_exec::no_redaction())?,
            assigned: Mutex::new(Assigned {
                digest: None,
                checks: Vec::new(),
            }),
            results: Mutex::new(VecDeque::new()),
            dropped: AtomicU64::new(0),
            changed: Notify::new(),
        })
    }

    /// The digest of the checks held, for the heartbeat (`None` before the first answer).
    pub fn digest(&self) -> Option<String> {
        lock(&self.assigned).digest.clone()
    }

    /// Takes the hub's answer: its digest, and the checks when they changed. A check whose
    /// conditions this agent cannot read is left out, with a warning.
    pub fn assign(&self, digest: String, checks: Option<Vec<NodeCheck>>) {
        let Some(checks) = checks else {
            return;
        };
        let specs: Vec<_> = checks
            .into_iter()
            .filter_map(|check| match spec_of(&check) {
                Ok(spec) => Some(spec),
                Err(error) => {
                    tracing::warn!(check = %check.name, %error, "cannot probe this check; leaving it out");
                    None
                }
            })
            .collect();
        tracing::info!(checks = specs.len(), "local checks assigned by the hub");
        let mut assigned = lock(&self.assigned);
        assigned.digest = Some(digest);
        assigned.checks = specs;
        drop(assigned);
        self.changed.notify_one();
    }

    /// The oldest results waiting, up to [`MAX_PER_BEAT`], for a heartbeat.
    pub fn pending(&self) -> Vec<NodeCheckResult> {
        lock(&self.results)
            .iter()
            .take(MAX_PER_BEAT)
            .cloned()
            .collect()
    }

    /// Drops the oldest `n` results: the hub took them with a heartbeat.
    pub fn delivered(&self, n: usize) {
        let mut results = lock(&self.results);
        let n = n.min(results.len());
        results.drain(..n);
    }

    /// Results dropped so far because too many waited.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn keep(&self, result: NodeCheckResult) {
        let mut results = lock(&self.results);
        results.push_back(result);
        if results.len() > MAX_KEPT {
            results.pop_front();
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped == 1 || dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    kept = MAX_KEPT,
                    "the hub has not taken check results for a while; dropping the oldest"
                );
            }
        }
    }

    /// Probes every assigned check on its interval until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(MAX_CONCURRENT));
        let mut next_due: HashMap<String, tokio::time::Instant> = HashMap::new();
        loop {
            let checks = lock(&self.assigned).checks.clone();
            let now = tokio::time::Instant::now();
            next_due.retain(|name, _| checks.iter().any(|(c, _)| c.name == *name));
            let mut wake = now + Duration::from_secs(60);
            for (spec, conditions) in &checks {
                let interval = Duration::from_millis(spec.interval_ms.max(1_000));
                let due = *next_due.entry(spec.name.clone()).or_insert_with(|| {
                    now + Duration::from_millis(phase_ms(&spec.name, spec.interval_ms))
                });
                if due <= now {
                    next_due.insert(spec.name.clone(), now + interval);
                    wake = wake.min(now + interval);
                    let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                        continue;
                    };
                    let this = Arc::clone(&self);
                    let (spec, conditions) = (Arc::clone(spec), Arc::clone(conditions));
                    tokio::spawn(async move {
                        let seen = this.prober.probe(&spec).await;
                        let judgement = judge(&conditions, &seen);
                        this.keep(result_of(&spec.name, seen, judgement));
                        drop(permit);
                    });
                } else {
                    wake = wake.min(due);
                }
            }
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                () = self.changed.notified() => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

/// The check to probe, from what the hub handed over.
fn spec_of(check: &NodeCheck) -> Result<(Arc<CheckSpec>, Arc<Vec<Condition>>), String> {
    let conditions = check
        .conditions
        .iter()
        .map(|text| Condition::parse(text).map_err(|e| format!("condition `{text}`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let probe = match &check.probe {
        NodeProbe::Http {
            method,
            url,
            headers,
            body,
            expect_status,
            verify_tls,
            follow_redirects,
        } => Probe::Http(HttpProbe {
            method: method.clone(),
            url: Secret::new(url.clone()),
            headers: headers
                .iter()
                .map(|(k, v)| (k.clone(), Secret::new(v.clone())))
                .collect(),
            body: body.clone(),
            expect_status: expect_status.clone(),
            verify_tls: *verify_tls,
            redirects: if *follow_redirects {
                Redirects::Follow
            } else {
                Redirects::None
            },
        }),
        NodeProbe::Tcp { address } => Probe::Tcp {
            address: address.clone(),
        },
        NodeProbe::Tls {
            address,
            server_name,
            verify,
        } => Probe::Tls {
            address: address.clone(),
            server_name: server_name.clone(),
            verify: *verify,
        },
        NodeProbe::CertFile { paths } => Probe::CertFile {
            paths: paths.clone(),
        },
    };
    let spec = CheckSpec {
        name: check.name.clone(),
        service: String::new(),
        probe,
        interval_ms: check.interval_ms.max(1_000),
        timeout_ms: check.timeout_ms.max(1),
        thresholds: Thresholds::default(),
        labels: Default::default(),
        conditions: conditions.clone(),
        enabled: true,
    };
    Ok((Arc::new(spec), Arc::new(conditions)))
}

fn result_of(
    check: &str,
    seen: steward_probe::Observation,
    judgement: steward_probe::Judgement,
) -> NodeCheckResult {
    let (cause, error) = match seen.failure {
        Some(failure) => (
            Some(failure.cause.as_str().to_owned()),
            Some(failure.message),
        ),
        None => (None, None),
    };
    NodeCheckResult {
        check: check.to_owned(),
        at_ms: seen.started_ms,
        latency_ms: seen.latency_ms,
        verdict: match judgement.verdict {
            ProbeVerdict::Pass => "pass",
            ProbeVerdict::SlowPass => "slow_pass",
            ProbeVerdict::Fail => "fail",
        }
        .to_owned(),
        reason: judgement.reason,
        status: seen.context.status,
        cause,
        error,
        conditions: judgement
            .conditions
            .into_iter()
            .map(|(ok, resolved)| ConditionOutcome { ok, resolved })
            .collect(),
        cert_not_after_ms: seen.cert_not_after_ms,
        certificates: seen
            .certificates
            .into_iter()
            .map(|c| SeenCertificate {
                path: c.path,
                subject: c.subject,
                issuer: c.issuer,
                names: c.names,
                not_after_ms: c.not_after_ms,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn result(check: &str) -> NodeCheckResult {
        NodeCheckResult {
            check: check.into(),
            at_ms: 1,
            latency_ms: 1,
            verdict: "pass".into(),
            reason: String::new(),
            status: None,
            cause: None,
            error: None,
            conditions: Vec::new(),
            cert_not_after_ms: None,
            certificates: Vec::new(),
        }
    }

    #[tokio::test]
    async fn past_the_bound_the_oldest_results_go_first() {
        let checks = LocalChecks::new().unwrap();
        for i in 0..MAX_KEPT + 3 {
            checks.keep(result(&format!("c{i}")));
        }
        assert_eq!(checks.dropped(), 3);
        let pending = checks.pending();
        assert_eq!(pending.len(), MAX_PER_BEAT);
        assert_eq!(pending[0].check, "c3", "the three oldest were dropped");
        checks.delivered(MAX_PER_BEAT);
        assert_eq!(checks.pending()[0].check, format!("c{}", 3 + MAX_PER_BEAT));
    }

    #[test]
    fn checks_from_the_hub_become_probes_with_their_conditions() {
        let check = NodeCheck {
            name: "proxy".into(),
            interval_ms: 5_000,
            timeout_ms: 2_000,
            probe: NodeProbe::Tcp {
                address: "127.0.0.1:443".into(),
            },
            conditions: vec!["[CONNECTED] == true".into()],
        };
        let (spec, conditions) = spec_of(&check).unwrap();
        assert_eq!(spec.name, "proxy");
        assert_eq!(conditions.len(), 1);
        let mut bad = check;
        bad.conditions = vec!["[NOPE] =".into()];
        assert!(spec_of(&bad).is_err());
    }
}
