//! What people ask of health checks, answered from the store (so every instance answers the
//! same, whichever one probes): services' states with dependency impact, a check's state, last
//! result, latency percentiles and failure ratio over a window, and its history.

use steward_config::Config;
use steward_core::Registry;
use steward_core::health::cert::{classify, days_left};
use steward_core::health::rollup::{Percentiles, failure_ratio, minute_of, percentiles};
use steward_core::health::spec::CheckSpec;
use steward_core::health::state::CheckState;
use steward_store::{
    CheckRecord, CheckTransition, ProbeRecord, Store, StoreError, TransitionQuery,
};

/// The longest window percentiles may be asked over (the roll-ups' default retention).
pub const MAX_WINDOW_MS: i64 = 30 * 24 * 3_600_000;

pub use crate::views::services::{CheckBrief, ServiceView};
use crate::views::services::{brief, records_by_check};

/// Every service of `registry` with its state and checks (the shared view, for the API).
pub async fn services(
    store: &dyn Store,
    config: &Config,
    registry: &Registry,
) -> Result<Vec<ServiceView>, HealthOpsError> {
    Ok(crate::views::services::services(store, config, registry).await?)
}

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

/// A certificate's standing.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub standing: CertView,
}

/// One check in full.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckView {
    /// The brief.
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
