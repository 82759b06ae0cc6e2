//! Local checks: the results of the checks a node's agent probes from the node (those of the
//! services declared on it), tracked and written as the hub's prober tracks and writes its own:
//! the same state machine with the check's thresholds, the same roll-ups, states and
//! transitions in one `record_probes` batch, the same `check_changed` events.
//!
//! Each node's results come in its heartbeats, one at a time, and a check belongs to one node,
//! so each check has one writer; its tracker resumes from the stored record every time.

use std::collections::HashMap;

use steward_config::Config;
use steward_core::Event;
use steward_core::health::rollup::{Rollup, minute_of};
use steward_core::health::state::{CheckTracker, ProbeVerdict};
use steward_store::{CheckRecord, NewTransition, ProbeBatch, ProbeRecord, Store, StoreError};

use crate::bus::EventBus;
use crate::views::nodes::node_checks;

/// What recording a node's results did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChecksRecorded {
    /// Results recorded.
    pub recorded: usize,
    /// Results of checks the node does not probe (no longer, or never), left out.
    pub ignored: usize,
}

/// Records `results` of `node`'s checks, oldest first, each with why it did not pass as the node
/// judged it, and announces state changes.
pub async fn record_node_results(
    store: &dyn Store,
    bus: &EventBus,
    config: &Config,
    node: &str,
    results: Vec<(ProbeRecord, String)>,
) -> Result<ChecksRecorded, StoreError> {
    let specs: HashMap<&str, _> = node_checks(config, node)
        .into_iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    let total = results.len();
    let (results, reasons): (Vec<ProbeRecord>, Vec<String>) = results
        .into_iter()
        .filter(|(r, _)| specs.contains_key(r.check.as_str()))
        .unzip();
    let ignored = total - results.len();
    if results.is_empty() {
        return Ok(ChecksRecorded {
            recorded: 0,
            ignored,
        });
    }
    let mut records: HashMap<String, CheckRecord> = store
        .check_records()
        .await?
        .into_iter()
        .filter(|r| specs.contains_key(r.check.as_str()))
        .map(|r| (r.check.clone(), r))
        .collect();
    let mut rollups: HashMap<(String, i64), Rollup> = HashMap::new();
    let mut transitions = Vec::new();
    for (result, reason) in results.iter().zip(reasons) {
        let Some(spec) = specs.get(result.check.as_str()) else {
            continue;
        };
        let record = records
            .entry(result.check.clone())
            .or_insert_with(|| CheckRecord {
                check: spec.name.clone(),
                service: spec.service.clone(),
                state: CheckTracker::new().state(),
                consecutive_failures: 0,
                consecutive_successes: 0,
                since_ms: result.at_ms,
                last_probe_ms: None,
            });
        let mut tracker = CheckTracker::restore(
            record.state,
            record.consecutive_failures,
            record.consecutive_successes,
        );
        if let Some(change) = tracker.observe(result.verdict, &spec.thresholds) {
            record.since_ms = result.at_ms;
            transitions.push(NewTransition {
                check: spec.name.clone(),
                service: spec.service.clone(),
                from: change.from,
                to: change.to,
                at_ms: result.at_ms,
                reason,
            });
        }
        record.state = tracker.state();
        record.consecutive_failures = tracker.consecutive_failures();
        record.consecutive_successes = tracker.consecutive_successes();
        record.last_probe_ms = record.last_probe_ms.max(Some(result.at_ms));
        let minute = minute_of(result.at_ms);
        rollups
            .entry((result.check.clone(), minute))
            .or_insert_with(|| Rollup::new(minute))
            .record(result.latency_ms, result.verdict != ProbeVerdict::Fail);
    }
    let touched: Vec<&str> = results.iter().map(|r| r.check.as_str()).collect();
    let batch = ProbeBatch {
        states: records
            .values()
            .filter(|r| touched.contains(&r.check.as_str()))
            .cloned()
            .collect(),
        rollups: rollups
            .into_iter()
            .map(|((check, _), rollup)| (check, rollup))
            .collect(),
        transitions,
        audit: Vec::new(),
        results,
    };
    store.record_probes(&batch).await?;
    for result in &batch.results {
        metrics::counter!("steward_probes_total", "verdict" => steward_store::health::verdict_name(result.verdict))
            .increment(1);
    }
    for t in batch.transitions {
        bus.publish(Event::CheckChanged {
            check: t.check,
            service: t.service,
            from: t.from,
            to: t.to,
            reason: t.reason,
        });
    }
    Ok(ChecksRecorded {
        recorded: batch.results.len(),
        ignored,
    })
}
