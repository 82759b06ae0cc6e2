//! Services and how they are doing: each service's state (the worst of its checks', or
//! impacted by a down service it depends on) with its checks in brief. A view over the store
//! and the config in force that the API (through the prober's `ops`) and the alert manager's
//! inhibition both read, so neither engine calls into the other.

use std::collections::HashMap;

use steward_config::Config;
use steward_core::Registry;
use steward_core::health::spec::CheckSpec;
use steward_core::health::state::{CheckState, ServiceState, service_states};
use steward_core::node::NodeStatus;
use steward_store::{CheckRecord, Store, StoreError};

/// A check in brief.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
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
) -> Result<Vec<ServiceView>, StoreError> {
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
    let mut states = service_states(registry, &worst);
    impact_of_down_nodes(store, config, registry, &worst, &mut states).await?;
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

/// Marks the services on a `down` node impacted by it (`node:ID`), unless their own checks say
/// they are down: a node that stopped reporting says nothing of whether what runs on it works.
async fn impact_of_down_nodes(
    store: &dyn Store,
    config: &Config,
    registry: &Registry,
    worst: &HashMap<String, CheckState>,
    states: &mut std::collections::BTreeMap<String, steward_core::health::state::ServiceStatus>,
) -> Result<(), StoreError> {
    if !registry.services.iter().any(|s| s.node.is_some()) {
        return Ok(());
    }
    let now = steward_store::now_ms();
    let down: std::collections::HashSet<String> = store
        .list_nodes()
        .await?
        .iter()
        .filter(|n| crate::views::nodes::status_now(n, config, now) == NodeStatus::Down)
        .map(|n| n.spec.id.clone())
        .collect();
    for service in &registry.services {
        let Some(node) = service.node.as_deref().filter(|n| down.contains(*n)) else {
            continue;
        };
        if worst.get(&service.name) == Some(&CheckState::Down) {
            continue;
        }
        if let Some(status) = states.get_mut(&service.name) {
            status.state = ServiceState::Impacted;
            status.impacted_by.push(format!("node:{node}"));
            status.impacted_by.sort();
            status.impacted_by.dedup();
        }
    }
    Ok(())
}

/// The services impacted by a down dependency, each with the down services it depends on.
pub async fn impacted(
    store: &dyn Store,
    config: &Config,
    registry: &Registry,
) -> Result<HashMap<String, Vec<String>>, StoreError> {
    Ok(services(store, config, registry)
        .await?
        .into_iter()
        .filter(|s| !s.impacted_by.is_empty())
        .map(|s| (s.name, s.impacted_by))
        .collect())
}

/// Every check's stored record, by check name.
pub(crate) async fn records_by_check(
    store: &dyn Store,
) -> Result<HashMap<String, CheckRecord>, StoreError> {
    Ok(store
        .check_records()
        .await?
        .into_iter()
        .map(|r| (r.check.clone(), r))
        .collect())
}

/// A check in brief, from its spec and its record.
pub(crate) fn brief(spec: &CheckSpec, record: Option<&CheckRecord>) -> CheckBrief {
    CheckBrief {
        name: spec.name.clone(),
        kind: spec.probe.kind().as_str(),
        state: record.map_or(CheckState::Unknown, |r| r.state),
        since_ms: record.map(|r| r.since_ms),
        last_probe_ms: record.and_then(|r| r.last_probe_ms),
    }
}
