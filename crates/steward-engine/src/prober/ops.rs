//! What people ask of health checks, answered from the store (so every instance answers the
//! same, whichever one probes): services' states with dependency impact, a check's state, last
//! result, latency percentiles and failure ratio over a window, and its history.

use std::collections::HashMap;

use serde::Serialize;
use steward_config::Config;
use steward_core::Registry;
use steward_core::health::cert::{classify, days_left};
use steward_core::health::rollup::{Percentiles, failure_ratio, minute_of, percentiles};
use steward_core::health::spec::CheckSpec;
use steward_core::health::state::{CheckState, ServiceState, service_states};
use steward_store::{
    CheckRecord, CheckTransition, ProbeRecord, Store, StoreError, TransitionQuery,
};

/// The longest window percentiles may be asked over (the roll-ups' default retention).
pub const MAX_WINDOW_MS: i64 = 30 * 24 * 3_600_000;

/// Why a health question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum HealthOpsError {
    /// No check has that name.
    #[error("no check named `{0}`")]
    UnknownCheck(String),
    /// No service has that name.
    #[error("no service named `{0}`")]
    UnknownService(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A check in brief.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckBrief {
    /// Its name.
    pub name: String,
    /// `http`, `tcp`, `tls`, `cert_file` or `command`.
    pub kind: &'static str,
    /// Its state.
    pub state: CheckState,
    /// Since when (absent before its first probe).
    pub since_ms: Option<i64>,
    /// When it was last probed.
    pub last_probe_ms: Option<i64>,
}

/// A service and how it is doing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceView {
    /// Its name.
    pub name: String,
    /// Its workspace.
    pub workspace: Option<String>,
    /// Its state: the worst of its checks', or impacted by a down dependency.
    pub state: ServiceState,
    /// When impacted: the down services it depends on.
    pub impacted_by: Vec<String>,
    /// Its checks.
    pub checks: Vec<CheckBrief>,
}

/// A certificate's standing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertView {
    /// When it expires.
    pub not_after_ms: i64,
    /// Whole days left (negative once expired).
    pub days_left: i64,
    /// valid, warning, critical or expired.
    pub class: &'static str,
}

impl CertView {
    fn at(not_after_ms: i64, now_ms: i64) -> Self {
        Self {
            not_after_ms,
            days_left: days_left(not_after_ms, now_ms),
            class: classify(not_after_ms, now_ms).as_str(),
        }
    }
}

/// A certificate a probe saw, with its standing now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertDetail {
    /// The file it was read from (certificate-file checks).
    pub path: Option<String>,
    /// Its subject.
    pub subject: String,
    /// Its issuer.
    pub issuer: String,
    /// The names it is valid for.
    pub names: Vec<String>,
    /// Expiry, days left and class.
    #[serde(flatten)]
    pub standing: CertView,
}

/// One check in full.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckView {
    /// The brief.
    #[serde(flatten)]
    pub brief: CheckBrief,
    /// The service it watches.
    pub service: String,
    /// Time between probes.
    pub interval_ms: u64,
    /// How long a probe may take.
    pub timeout_ms: u64,
    /// False when paused in the config.
    pub enabled: bool,
    /// Its labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// The conditions results are held to.
    pub conditions: Vec<String>,
    /// Failed probes in a row.
    pub consecutive_failures: u32,
    /// Passed probes in a row.
    pub consecutive_successes: u32,
    /// The latest result.
    pub last_result: Option<ResultView>,
    /// The window the figures below cover.
    pub window_ms: i64,
    /// Probes, failures and latency percentiles over the window.
    pub latency: Percentiles,
    /// Failed probes over all probes in the window.
    pub failure_ratio: Option<f64>,
    /// The certificate the latest result saw (TLS, HTTPS and certificate-file checks); absent
    /// when that probe saw none, e.g. because it could not connect.
    pub certificate: Option<CertView>,
}

/// A probe result for people and scripts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResultView {
    /// When it started.
    pub at_ms: i64,
    /// pass, slow or fail.
    pub verdict: &'static str,
    /// How long it took.
    pub latency_ms: u64,
    /// The HTTP status, if any.
    pub status: Option<u16>,
    /// Why the probe itself failed.
    pub cause: Option<String>,
    /// A description of that failure.
    pub error: Option<String>,
    /// Each condition as resolved, with whether it held.
    pub conditions: Vec<ConditionView>,
    /// The certificates it saw, classed as of now.
    pub certificates: Vec<CertDetail>,
}

/// A condition as resolved against one result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConditionView {
    /// Whether it held.
    pub success: bool,
    /// The condition with its values: `[STATUS] (503) == 200`.
    pub condition: String,
}

impl ResultView {
    /// `r` for people and scripts, its certificates classed as of `now_ms`.
    pub fn of(r: &ProbeRecord, now_ms: i64) -> Self {
        Self {
            at_ms: r.at_ms,
            verdict: steward_store::health::verdict_name(r.verdict),
            latency_ms: r.latency_ms,
            status: r.status,
            cause: r.cause.clone(),
            error: r.error.clone(),
            conditions: r
                .conditions
                .iter()
                .map(|(success, condition)| ConditionView {
                    success: *success,
                    condition: condition.clone(),
                })
                .collect(),
            certificates: r
                .certificates
                .iter()
                .map(|c| CertDetail {
                    path: c.path.clone(),
                    subject: c.subject.clone(),
                    issuer: c.issuer.clone(),
                    names: c.names.clone(),
                    standing: CertView::at(c.not_after_ms, now_ms),
                })
                .collect(),
        }
    }
}

/// A transition for people and scripts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransitionView {
    /// Its id (pages go below it).
    pub id: i64,
    /// The check.
    pub check: String,
    /// The service.
    pub service: String,
    /// The state before.
    pub from: CheckState,
    /// The state after.
    pub to: CheckState,
    /// When.
    pub at_ms: i64,
    /// Why.
    pub reason: String,
}

impl From<CheckTransition> for TransitionView {
    fn from(t: CheckTransition) -> Self {
        let n = t.transition;
        Self {
            id: t.id,
            check: n.check,
            service: n.service,
            from: n.from,
            to: n.to,
            at_ms: n.at_ms,
            reason: n.reason,
        }
    }
}

/// How bad a state is, for taking a service's worst check. Unknown counts least: a service
/// with one check up and a new one not probed yet is up.
fn severity(state: CheckState) -> u8 {
    match state {
        CheckState::Unknown => 0,
        CheckState::Up => 1,
        CheckState::Degraded => 2,
        CheckState::Down => 3,
    }
}

/// Every service of `registry` with its state and checks.
pub async fn services(
    store: &dyn Store,
    config: &Config,
    registry: &Registry,
) -> Result<Vec<ServiceView>, HealthOpsError> {
    let records = records_by_check(store).await?;
    let mut by_service: HashMap<&str, Vec<CheckBrief>> = HashMap::new();
    let mut worst: HashMap<String, CheckState> = HashMap::new();
    for spec in &config.checks {
        let brief = brief(spec, records.get(spec.name.as_str()));
        if spec.enabled {
            let current = worst.entry(spec.service.clone()).or_insert(brief.state);
            if severity(brief.state) > severity(*current) {
                *current = brief.state;
            }
        }
        by_service
            .entry(spec.service.as_str())
            .or_default()
            .push(brief);
    }
    let states = service_states(registry, &worst);
    Ok(registry
        .services
        .iter()
        .map(|service| {
            let status = states.get(&service.name);
            ServiceView {
                name: service.name.clone(),
                workspace: service.workspace.clone(),
                state: status.map_or(ServiceState::Unknown, |s| s.state),
                impacted_by: status.map(|s| s.impacted_by.clone()).unwrap_or_default(),
                checks: by_service.remove(service.name.as_str()).unwrap_or_default(),
            }
        })
        .collect())
}

/// The checks of `service`, in full, over a window of `window_ms` ending at `now_ms`.
pub async fn checks_of(
    store: &dyn Store,
    config: &Config,
    service: &str,
    window_ms: i64,
    now_ms: i64,
) -> Result<Vec<CheckView>, HealthOpsError> {
    if !config.registry.services.iter().any(|s| s.name == service) {
        return Err(HealthOpsError::UnknownService(service.to_owned()));
    }
    let records = records_by_check(store).await?;
    let mut views = Vec::new();
    for spec in config.checks.iter().filter(|c| c.service == service) {
        views.push(
            view(
                store,
                spec,
                records.get(spec.name.as_str()),
                window_ms,
                now_ms,
            )
            .await?,
        );
    }
    Ok(views)
}

/// One check in full, over a window of `window_ms` ending at `now_ms`.
pub async fn check(
    store: &dyn Store,
    config: &Config,
    name: &str,
    window_ms: i64,
    now_ms: i64,
) -> Result<CheckView, HealthOpsError> {
    let spec = find(config, name)?;
    let records = records_by_check(store).await?;
    view(store, spec, records.get(name), window_ms, now_ms).await
}

/// The declared check named `name`.
pub fn find<'a>(config: &'a Config, name: &str) -> Result<&'a CheckSpec, HealthOpsError> {
    config
        .checks
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| HealthOpsError::UnknownCheck(name.to_owned()))
}

/// Transitions, newest first.
pub async fn transitions(
    store: &dyn Store,
    query: &TransitionQuery,
) -> Result<Vec<TransitionView>, HealthOpsError> {
    Ok(store
        .check_transitions(query)
        .await?
        .into_iter()
        .map(TransitionView::from)
        .collect())
}

/// `check`'s raw results since `since_ms`, newest first.
pub async fn results(
    store: &dyn Store,
    config: &Config,
    check: &str,
    since_ms: i64,
    limit: u32,
) -> Result<Vec<ResultView>, HealthOpsError> {
    find(config, check)?;
    Ok(store
        .probe_results(check, since_ms, limit)
        .await?
        .iter()
        .map(|r| ResultView::of(r, steward_store::now_ms()))
        .collect())
}

async fn records_by_check(
    store: &dyn Store,
) -> Result<HashMap<String, CheckRecord>, HealthOpsError> {
    Ok(store
        .check_records()
        .await?
        .into_iter()
        .map(|r| (r.check.clone(), r))
        .collect())
}

fn brief(spec: &CheckSpec, record: Option<&CheckRecord>) -> CheckBrief {
    CheckBrief {
        name: spec.name.clone(),
        kind: spec.probe.kind().as_str(),
        state: record.map_or(CheckState::Unknown, |r| r.state),
        since_ms: record.map(|r| r.since_ms),
        last_probe_ms: record.and_then(|r| r.last_probe_ms),
    }
}

async fn view(
    store: &dyn Store,
    spec: &CheckSpec,
    record: Option<&CheckRecord>,
    window_ms: i64,
    now_ms: i64,
) -> Result<CheckView, HealthOpsError> {
    let window_ms = window_ms.clamp(60_000, MAX_WINDOW_MS);
    // Whole minutes: the one holding `now` is included, so the latest results count.
    let from = minute_of(now_ms - window_ms) + 60_000;
    let rollups = store
        .check_rollups(&spec.name, from, minute_of(now_ms) + 60_000)
        .await?;
    let last = store.probe_results(&spec.name, 0, 1).await?;
    let last_result = last.first();
    let certificate = last_result
        .and_then(|r| r.cert_not_after_ms)
        .map(|not_after| CertView::at(not_after, now_ms));
    Ok(CheckView {
        brief: brief(spec, record),
        service: spec.service.clone(),
        interval_ms: spec.interval_ms,
        timeout_ms: spec.timeout_ms,
        enabled: spec.enabled,
        labels: spec.labels.clone(),
        conditions: spec
            .effective_conditions()
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
        consecutive_failures: record.map_or(0, |r| r.consecutive_failures),
        consecutive_successes: record.map_or(0, |r| r.consecutive_successes),
        last_result: last_result.map(|r| ResultView::of(r, now_ms)),
        window_ms,
        latency: percentiles(&rollups),
        failure_ratio: failure_ratio(&rollups),
        certificate,
    })
}
