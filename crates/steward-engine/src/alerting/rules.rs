//! Evaluates `[[alerting.rules]]` every `alerting.rule_interval` on the instance leading
//! alerting: gathers the facts each rule needs from the store (check states, probe roll-ups,
//! certificates, schedule runs, heartbeats, queue counts), posts the alerts of subjects that
//! meet a rule (source `rule:NAME`), and resolves those of subjects that no longer do — or of
//! rules no longer declared. Only changes are posted, so the audit trail records each firing
//! and each resolution once, not every evaluation.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use steward_config::Config;
use steward_core::Event;
use steward_core::alert::rules::{
    Condition, Finding, RULE_SOURCE_PREFIX, RuleSpec, check_state_holds, heartbeat_missed,
};
use steward_core::alert::{Fingerprint, IncomingAlert};
use steward_core::audit::Actor;
use steward_core::health::rollup::{minute_of, percentiles};
use steward_core::registry::Labels;
use steward_core::task::TaskStatus;
use steward_store::alerts::{MAX_ALERT_PAGE, StoredAlert};
use steward_store::{AlertChange, AlertReceipt, CheckRecord, RunStatus, Store, StoreError, now_ms};
use tokio_util::sync::CancellationToken;

use super::ConfigSource;
use crate::bus::EventBus;

/// The actor rule alerts are posted as.
const COMPONENT: &str = "alerting.rules";
/// How many of a check's latest results are searched for the certificate it last saw.
const CERT_LOOKBACK: u32 = 20;

/// Evaluates the rules until `stop`. The firing alerts rules raised are read once; after
/// that only the evaluator changes them, so it keeps them itself instead of reading every
/// firing alert again at each evaluation.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    bus: EventBus,
    config: ConfigSource,
    stop: CancellationToken,
) {
    let mut firing = loop {
        match firing_rule_alerts(store.as_ref()).await {
            Ok(firing) => break firing,
            Err(error) => {
                tracing::warn!(%error, "reading the alerts rules raised failed; retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    loop {
        let current = config();
        let wait = Duration::from_millis(current.alerting.rule_interval_ms);
        match evaluate_and_post(store.as_ref(), &current, &mut firing, now_ms()).await {
            Ok(changed) if !changed.is_empty() => {
                bus.publish(Event::AlertsChanged {
                    fingerprints: changed,
                });
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "evaluating alert rules failed"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One evaluation at `now_ms`: posts what started or stopped holding, and keeps `firing` (the
/// receipts of the rules' firing alerts, by fingerprint) in step once posted; answers the
/// alerts that changed.
pub(crate) async fn evaluate_and_post(
    store: &dyn Store,
    config: &Config,
    firing: &mut HashMap<Fingerprint, AlertReceipt>,
    now_ms: i64,
) -> Result<Vec<Fingerprint>, StoreError> {
    let mut seen: HashSet<Fingerprint> = HashSet::new();
    let mut receipts = Vec::new();
    let facts = Facts::gather(store, config).await?;
    for rule in &config.alerting.rules {
        let source = rule.source();
        let findings = match facts.findings(store, config, rule, now_ms).await {
            Ok(findings) => findings,
            Err(error) => {
                // This rule's alerts stay as they are; the other rules go on.
                tracing::warn!(%error, rule = %rule.name, "a rule could not be evaluated");
                seen.extend(
                    firing
                        .iter()
                        .filter(|(_, r)| r.source == source)
                        .map(|(fp, _)| *fp),
                );
                continue;
            }
        };
        for finding in findings {
            let alert = rule.alert(finding);
            let fp = alert.fingerprint();
            seen.insert(fp);
            if !firing.contains_key(&fp) {
                receipts.push(AlertReceipt {
                    alert,
                    source: source.clone(),
                    received_ms: now_ms,
                });
            }
        }
    }
    for (fp, fired) in firing.iter() {
        if !seen.contains(fp) {
            let mut alert = fired.alert.clone();
            alert.ends_at_ms = Some(now_ms);
            receipts.push(AlertReceipt {
                alert,
                source: fired.source.clone(),
                received_ms: now_ms,
            });
        }
    }
    if receipts.is_empty() {
        return Ok(Vec::new());
    }
    let changes = store
        .receive_alerts(&receipts, &Actor::system(COMPONENT))
        .await?;
    metrics::counter!("steward_alerts_received_total", "source" => "rule")
        .increment(receipts.len() as u64);
    let mut changed = Vec::new();
    for (receipt, change) in receipts.into_iter().zip(changes) {
        let fp = receipt.alert.fingerprint();
        if change != AlertChange::Unchanged {
            changed.push(fp);
        }
        if receipt.alert.ends_at_ms.is_some() {
            firing.remove(&fp);
        } else {
            firing.insert(fp, receipt);
        }
    }
    Ok(changed)
}

/// The firing alerts rules raised, by fingerprint, as the receipts that made them fire.
async fn firing_rule_alerts(
    store: &dyn Store,
) -> Result<HashMap<Fingerprint, AlertReceipt>, StoreError> {
    let mut found = HashMap::new();
    let mut after = None;
    loop {
        let page = store.firing_alerts_after(after, MAX_ALERT_PAGE).await?;
        let full = page.len() >= MAX_ALERT_PAGE as usize;
        after = page.last().map(|a| a.fingerprint);
        for stored in page {
            if stored.source.starts_with(RULE_SOURCE_PREFIX) {
                found.insert(stored.fingerprint, fired_receipt(stored));
            }
        }
        if !full {
            return Ok(found);
        }
    }
}

/// A stored firing alert as the receipt that would post it again.
fn fired_receipt(stored: StoredAlert) -> AlertReceipt {
    AlertReceipt {
        alert: IncomingAlert {
            labels: Arc::unwrap_or_clone(stored.labels),
            annotations: Arc::unwrap_or_clone(stored.annotations),
            severity: stored.severity,
            starts_at_ms: Some(stored.starts_at_ms),
            ends_at_ms: None,
            generator_url: stored.generator_url,
        },
        source: stored.source,
        received_ms: stored.last_received_ms,
    }
}

/// What every evaluation reads once, whatever the number of rules needing it.
struct Facts {
    checks: HashMap<String, CheckRecord>,
    tasks: Vec<steward_store::TaskCount>,
    nodes: Vec<steward_store::NodeRecord>,
}

impl Facts {
    async fn gather(store: &dyn Store, config: &Config) -> Result<Self, StoreError> {
        let wants_checks = config.alerting.rules.iter().any(|r| {
            matches!(
                r.condition,
                Condition::CheckState { .. }
                    | Condition::CheckLatency { .. }
                    | Condition::CheckFailureRatio { .. }
                    | Condition::CertExpiry { .. }
            )
        });
        let checks = if wants_checks {
            store
                .check_records()
                .await?
                .into_iter()
                .map(|r| (r.check.clone(), r))
                .collect()
        } else {
            HashMap::new()
        };
        let wants_tasks = config.alerting.rules.iter().any(|r| {
            matches!(
                r.condition,
                Condition::TaskDead { .. }
                    | Condition::QueueDepth { .. }
                    | Condition::QueueAge { .. }
            )
        });
        let tasks = if wants_tasks {
            store.task_counts().await?
        } else {
            Vec::new()
        };
        let wants_nodes = config.alerting.rules.iter().any(|r| {
            matches!(
                r.condition,
                Condition::NodeDown { .. }
                    | Condition::NodeLate { .. }
                    | Condition::NodeDrift { .. }
            )
        });
        let nodes = if wants_nodes {
            store.list_nodes().await?
        } else {
            Vec::new()
        };
        Ok(Self {
            checks,
            tasks,
            nodes,
        })
    }

    /// The subjects meeting `rule` at `now_ms`.
    async fn findings(
        &self,
        store: &dyn Store,
        config: &Config,
        rule: &RuleSpec,
        now_ms: i64,
    ) -> Result<Vec<Finding>, StoreError> {
        let mut found = Vec::new();
        match &rule.condition {
            Condition::CheckState {
                checks,
                state,
                for_ms,
            } => {
                for check in covered(config, checks) {
                    let Some(record) = self.checks.get(&check.name) else {
                        continue;
                    };
                    if check_state_holds(record.state, record.since_ms, *state, *for_ms, now_ms) {
                        found.push(Finding {
                            labels: check_labels(config, &check.name, &check.service),
                            since_ms: Some(record.since_ms),
                            summary: format!(
                                "check {} of {} is {} since {}",
                                check.name,
                                check.service,
                                record.state.as_str(),
                                ago(now_ms - record.since_ms)
                            ),
                            value: record.state.as_str().to_owned(),
                        });
                    }
                }
            }
            Condition::CheckLatency {
                checks,
                percentile,
                window_ms,
                above_ms,
            } => {
                for check in covered(config, checks) {
                    let stats = window_stats(store, &check.name, *window_ms, now_ms).await?;
                    let value = match percentile {
                        steward_core::alert::rules::Percentile::P50 => stats.p50_ms,
                        steward_core::alert::rules::Percentile::P95 => stats.p95_ms,
                        steward_core::alert::rules::Percentile::P99 => stats.p99_ms,
                    };
                    if let Some(value) = value.filter(|v| v > above_ms) {
                        found.push(Finding {
                            labels: check_labels(config, &check.name, &check.service),
                            since_ms: None,
                            summary: format!(
                                "{} latency of check {} is {value} ms over the last {} (above {above_ms} ms)",
                                percentile.as_str(),
                                check.name,
                                ago(i64::try_from(*window_ms).unwrap_or(i64::MAX))
                            ),
                            value: format!("{value}ms"),
                        });
                    }
                }
            }
            Condition::CheckFailureRatio {
                checks,
                window_ms,
                above,
            } => {
                for check in covered(config, checks) {
                    let stats = window_stats(store, &check.name, *window_ms, now_ms).await?;
                    if stats.count == 0 {
                        continue;
                    }
                    #[allow(clippy::cast_precision_loss)]
                    let ratio = stats.failures as f64 / stats.count as f64;
                    if ratio > *above {
                        found.push(Finding {
                            labels: check_labels(config, &check.name, &check.service),
                            since_ms: None,
                            summary: format!(
                                "{} of {} probes of check {} failed over the last {} ({:.2} % > {:.2} %)",
                                stats.failures,
                                stats.count,
                                check.name,
                                ago(i64::try_from(*window_ms).unwrap_or(i64::MAX)),
                                ratio * 100.0,
                                above * 100.0
                            ),
                            value: format!("{ratio:.4}"),
                        });
                    }
                }
            }
            Condition::CertExpiry {
                checks,
                days_left_below,
            } => {
                for check in covered(config, checks) {
                    // The latest result that saw a certificate: a probe that could not connect
                    // says nothing about it (and must not resolve the alert).
                    let Some(not_after) = store
                        .probe_results(&check.name, 0, CERT_LOOKBACK)
                        .await?
                        .iter()
                        .find_map(|r| r.cert_not_after_ms)
                    else {
                        continue;
                    };
                    let days_left = (not_after - now_ms).div_euclid(86_400_000);
                    if days_left < *days_left_below {
                        found.push(Finding {
                            labels: check_labels(config, &check.name, &check.service),
                            since_ms: None,
                            summary: format!(
                                "the certificate check {} sees expires in {days_left} days (fewer than {days_left_below})",
                                check.name
                            ),
                            value: days_left.to_string(),
                        });
                    }
                }
            }
            Condition::PipelineFailed { pipelines } => {
                for spec in config
                    .pipelines
                    .iter()
                    .filter(|p| pipelines.covers(&p.name))
                {
                    if let Some(finding) = pipeline_failure(store, &spec.name).await? {
                        found.push(finding);
                    }
                }
            }
            Condition::ScheduleFailed { schedules } => {
                for run in store.last_schedule_runs().await? {
                    if !schedules.covers(&run.schedule)
                        || !config.schedules.iter().any(|s| s.name == run.schedule)
                    {
                        continue;
                    }
                    let why = if run.status == RunStatus::Missed {
                        Some("missed its slot".to_owned())
                    } else if run.task_status == Some(TaskStatus::Dead) {
                        Some(format!(
                            "its task failed: {}",
                            run.error.as_deref().unwrap_or("no error given")
                        ))
                    } else if run.overdue {
                        Some("its task did not succeed in time (dead-man's switch)".to_owned())
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        found.push(Finding {
                            labels: Labels::from([("schedule".into(), run.schedule.clone())]),
                            since_ms: Some(run.slot_ms),
                            summary: format!(
                                "schedule {}: the run of its latest slot {why}",
                                run.schedule
                            ),
                            value: run.status.as_str().to_owned(),
                        });
                    }
                }
            }
            Condition::HeartbeatMissed { heartbeats } => {
                for record in store.heartbeat_records().await? {
                    if heartbeats.covers(&record.name)
                        && config.heartbeats.iter().any(|h| h.name == record.name)
                        && heartbeat_missed(record.state)
                    {
                        found.push(Finding {
                            labels: Labels::from([("heartbeat".into(), record.name.clone())]),
                            since_ms: Some(record.state_changed_at_ms),
                            summary: format!(
                                "heartbeat {} is {} since {}",
                                record.name,
                                record.state.as_str(),
                                ago(now_ms - record.state_changed_at_ms)
                            ),
                            value: record.state.as_str().to_owned(),
                        });
                    }
                }
            }
            Condition::TaskDead { queues, above } => {
                for count in &self.tasks {
                    let dead = count.count.unsigned_abs();
                    if count.status == TaskStatus::Dead
                        && queues.covers(&count.queue)
                        && dead > *above
                    {
                        found.push(Finding {
                            labels: Labels::from([("queue".into(), count.queue.clone())]),
                            since_ms: None,
                            summary: format!("queue {} holds {dead} dead tasks", count.queue),
                            value: dead.to_string(),
                        });
                    }
                }
            }
            Condition::QueueDepth { queues, above } => {
                let mut waiting: HashMap<String, u64> = HashMap::new();
                for count in &self.tasks {
                    if matches!(count.status, TaskStatus::Queued | TaskStatus::Failed) {
                        *waiting.entry(count.queue.clone()).or_default() +=
                            count.count.unsigned_abs();
                    }
                }
                for (queue, depth) in waiting {
                    if queues.covers(&queue) && depth > *above {
                        found.push(Finding {
                            summary: format!(
                                "queue {queue} has {depth} tasks waiting (more than {above})"
                            ),
                            labels: Labels::from([("queue".into(), queue)]),
                            since_ms: None,
                            value: depth.to_string(),
                        });
                    }
                }
            }
            Condition::QueueAge { queues, above_ms } => {
                for count in &self.tasks {
                    let Some(oldest) = count.oldest_due_at_ms else {
                        continue;
                    };
                    let age = now_ms.saturating_sub(oldest);
                    if queues.covers(&count.queue)
                        && age > i64::try_from(*above_ms).unwrap_or(i64::MAX)
                    {
                        found.push(Finding {
                            summary: format!(
                                "the oldest task due in queue {} has waited {}",
                                count.queue,
                                ago(age)
                            ),
                            labels: Labels::from([("queue".into(), count.queue.clone())]),
                            since_ms: Some(oldest),
                            value: format!("{}s", age / 1_000),
                        });
                    }
                }
            }
            Condition::NodeDown { nodes, for_ms } => {
                for node in self.nodes.iter().filter(|n| nodes.covers(&n.spec.id)) {
                    if let Some(finding) = node_silence(node, config, now_ms, true, *for_ms) {
                        found.push(finding);
                    }
                }
            }
            Condition::NodeLate { nodes } => {
                for node in self.nodes.iter().filter(|n| nodes.covers(&n.spec.id)) {
                    if let Some(finding) = node_silence(node, config, now_ms, false, 0) {
                        found.push(finding);
                    }
                }
            }
            Condition::NodeDrift { nodes } => {
                for node in self.nodes.iter().filter(|n| nodes.covers(&n.spec.id)) {
                    found.extend(node_drift(store, config, node).await?);
                }
            }
        }
        Ok(found)
    }
}

/// The finding of a node silent past its interval and grace (`down`: past `down_after`, for at
/// least `for_ms`), dated from the moment its silence crossed the line.
fn node_silence(
    node: &steward_store::NodeRecord,
    config: &Config,
    now_ms: i64,
    down: bool,
    for_ms: u64,
) -> Option<Finding> {
    use steward_core::node::NodeStatus;
    let last = node.last_seen_ms?;
    let status = crate::views::nodes::status_now(node, config, now_ms);
    let timing = crate::views::nodes::timing_of(node, config);
    let since = if down {
        (status == NodeStatus::Down).then(|| last.saturating_add(timing.down_after_ms))?
    } else {
        matches!(status, NodeStatus::Late | NodeStatus::Down)
            .then(|| last.saturating_add(timing.interval_ms + timing.grace_ms))?
    };
    if now_ms.saturating_sub(since) < i64::try_from(for_ms).unwrap_or(i64::MAX) {
        return None;
    }
    Some(Finding {
        labels: Labels::from([("node".into(), node.spec.id.clone())]),
        since_ms: Some(since),
        summary: format!(
            "node {} is {}: no heartbeat for {}",
            node.spec.id,
            status.as_str(),
            ago(now_ms - last)
        ),
        value: status.as_str().to_owned(),
    })
}

/// A finding when `pipeline`'s latest run failed, naming the first step that failed and why.
/// One indexed read of the latest run per pipeline covered, and its steps only when it failed.
async fn pipeline_failure(
    store: &dyn Store,
    pipeline: &str,
) -> Result<Option<Finding>, StoreError> {
    let latest = store
        .list_runs(&steward_store::PipelineRunQuery {
            limit: 1,
            pipeline: Some(pipeline.to_owned()),
            ..steward_store::PipelineRunQuery::default()
        })
        .await?;
    let Some(run) = latest
        .into_iter()
        .next()
        .filter(|r| r.status == steward_core::pipeline::run::RunStatus::Failed)
    else {
        return Ok(None);
    };
    let steps = store.run_steps(run.id).await?;
    let failed = steps
        .iter()
        .find(|s| s.state == steward_core::pipeline::StepState::Failed);
    let why = match failed {
        Some(step) => format!(
            "step {} failed: {}",
            step.name,
            step.error.as_deref().unwrap_or("no error given")
        ),
        None => "it failed".to_owned(),
    };
    Ok(Some(Finding {
        labels: Labels::from([("pipeline".into(), pipeline.to_owned())]),
        since_ms: run.finished_at_ms,
        summary: format!("pipeline {pipeline}: run {} {why}", run.id),
        value: run.status.as_str().to_owned(),
    }))
}

/// One finding per service declared on `node` that it does not report.
async fn node_drift(
    store: &dyn Store,
    config: &Config,
    node: &steward_store::NodeRecord,
) -> Result<Vec<Finding>, StoreError> {
    let declared = crate::views::nodes::declared_services(config, &node.spec.id);
    if declared.is_empty() {
        return Ok(Vec::new());
    }
    let digests = store.node_digests(&node.spec.id).await?;
    if digests.is_empty() {
        return Ok(Vec::new());
    }
    let items = store.node_items(&node.spec.id).await?;
    let reported = crate::views::nodes::reported(&items, &digests);
    Ok(steward_core::node::drift(&declared, &reported)
        .into_iter()
        .map(|d| Finding {
            labels: Labels::from([
                ("node".into(), node.spec.id.clone()),
                ("service".into(), d.service.clone()),
            ]),
            since_ms: None,
            summary: format!(
                "service {} on node {}: {}",
                d.service, node.spec.id, d.reason
            ),
            value: "drift".to_owned(),
        })
        .collect())
}

/// The enabled checks a rule covers.
fn covered<'a>(
    config: &'a Config,
    checks: &'a steward_core::alert::rules::Subjects,
) -> impl Iterator<Item = &'a steward_core::health::spec::CheckSpec> {
    config
        .checks
        .iter()
        .filter(move |c| c.enabled && checks.covers(&c.name))
}

/// A check's subject labels: the check, its service and the service's workspace.
fn check_labels(config: &Config, check: &str, service: &str) -> Labels {
    let mut labels = Labels::from([
        ("check".into(), check.to_owned()),
        ("service".into(), service.to_owned()),
    ]);
    if let Some(workspace) = config
        .registry
        .services
        .iter()
        .find(|s| s.name == service)
        .and_then(|s| s.workspace.clone())
    {
        labels.insert("workspace".into(), workspace);
    }
    labels
}

/// Probe counts and latency percentiles of `check` over the `window_ms` before `now_ms`.
async fn window_stats(
    store: &dyn Store,
    check: &str,
    window_ms: u64,
    now_ms: i64,
) -> Result<steward_core::health::rollup::Percentiles, StoreError> {
    let window = i64::try_from(window_ms).unwrap_or(i64::MAX);
    // Whole minutes, the current one included so the latest probes count.
    let from = minute_of(now_ms.saturating_sub(window)) + 60_000;
    let rollups = store
        .check_rollups(check, from, minute_of(now_ms) + 60_000)
        .await?;
    Ok(percentiles(&rollups))
}

/// A duration as people say it: `45s`, `12m`, `3h`, `2d`.
fn ago(ms: i64) -> String {
    let s = ms.max(0) / 1_000;
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m", s / 60),
        3_600..86_400 => format!("{}h", s / 3_600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_core::task::{NewTask, TaskOrigin};
    use steward_store::prelude::*;
    use steward_store_sqlite::SqliteStore;

    fn config(rules: &str) -> Config {
        let text = format!("[[queues]]\nname = \"platform\"\nkinds = [\"noop\"]\n{rules}");
        match steward_config::parse_str("steward.toml", &text, &|_| None) {
            Ok(loaded) => loaded.config,
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn rule_alerts_fire_once_and_resolve_when_the_rule_no_longer_holds_or_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("data")).await.unwrap();
        store.migrate().await.unwrap();
        let deep = config(
            "[[alerting.rules]]\nname = \"Deep\"\nwhen = \"queue_depth\"\ndepth_above = 2\nseverity = \"critical\"",
        );
        let now = now_ms();
        let mut firing = firing_rule_alerts(&store).await.unwrap();
        assert!(
            evaluate_and_post(&store, &deep, &mut firing, now)
                .await
                .unwrap()
                .is_empty()
        );
        let tasks: Vec<NewTask> = (0..3)
            .map(|i| NewTask {
                timeout_ms: None,
                queue: "platform".into(),
                kind: "noop".into(),
                payload: "{}".into(),
                priority: 0,
                run_at_ms: now + 3_600_000 + i,
                max_attempts: 1,
                idempotency_key: None,
                origin: TaskOrigin::default(),
                node: None,
            })
            .collect();
        store
            .enqueue_tasks(&tasks, &Actor::system("test"))
            .await
            .unwrap();
        let fired = evaluate_and_post(&store, &deep, &mut firing, now + 1)
            .await
            .unwrap();
        assert_eq!(fired.len(), 1);
        let alert = store.alert(fired[0]).await.unwrap().unwrap();
        assert_eq!(alert.labels["alertname"], "Deep");
        assert_eq!(alert.labels["queue"], "platform");
        assert_eq!(alert.source, "rule:Deep");
        // What the evaluator keeps is what a fresh start reads back.
        let read_back = firing_rule_alerts(&store).await.unwrap();
        assert_eq!(
            read_back.keys().collect::<Vec<_>>(),
            firing.keys().collect::<Vec<_>>()
        );
        assert_eq!(
            alert.annotations["summary"],
            "queue platform has 3 tasks waiting (more than 2)"
        );
        assert!(
            evaluate_and_post(&store, &deep, &mut firing, now + 2)
                .await
                .unwrap()
                .is_empty(),
            "still holding: nothing posted again"
        );
        // The rule is removed from the config: its alert resolves.
        let gone = config("");
        let resolved = evaluate_and_post(&store, &gone, &mut firing, now + 3)
            .await
            .unwrap();
        assert_eq!(resolved, fired);
        let alert = store.alert(fired[0]).await.unwrap().unwrap();
        assert_eq!(alert.state, steward_core::alert::AlertState::Resolved);
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(ago(-5), "0s");
        assert_eq!(ago(45_000), "45s");
        assert_eq!(ago(12 * 60_000), "12m");
        assert_eq!(ago(3 * 3_600_000), "3h");
        assert_eq!(ago(2 * 86_400_000), "2d");
    }
}
