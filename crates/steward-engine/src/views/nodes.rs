//! What is judged of a node from its record, its reports and the config, shared by the fleet's
//! façade and the alert rules: its status now, the services declared on it, and what it reports
//! of them.

use std::collections::BTreeMap;

use steward_config::Config;
use steward_core::health::spec::{CheckSpec, Probe};
use steward_core::node::{DeclaredService, NodeStatus, Reported, StatusTiming, judge_status};
use steward_store::{NodeItem, NodeRecord};

/// A node's status judged at `now_ms` from its record (the stored one may lag by a monitor
/// pass).
pub fn status_now(node: &NodeRecord, config: &Config, now_ms: i64) -> NodeStatus {
    judge_status(node.last_seen_ms, timing_of(node, config), now_ms)
}

/// How long a node's silence is tolerated, by its interval and `[fleet]`.
pub fn timing_of(node: &NodeRecord, config: &Config) -> StatusTiming {
    config.fleet.timing(node.interval_ms)
}

/// The services `config` declares on node `id`, with their URLs' hosts.
pub fn declared_services(config: &Config, id: &str) -> Vec<DeclaredService> {
    config
        .registry
        .services
        .iter()
        .filter(|s| s.node.as_deref() == Some(id))
        .map(|s| DeclaredService {
            name: s.name.clone(),
            host: s
                .url
                .as_deref()
                .and_then(|u| reqwest::Url::parse(u).ok())
                .and_then(|u| u.host_str().map(str::to_owned)),
        })
        .collect()
}

/// The node whose agent probes `check`: its service's node, unless the check runs a command (a
/// node runs only programs its own config declares). `None`: the hub's prober probes it.
pub fn check_node<'c>(config: &'c Config, check: &CheckSpec) -> Option<&'c str> {
    if matches!(check.probe, Probe::Command(_)) {
        return None;
    }
    config
        .registry
        .services
        .iter()
        .find(|s| s.name == check.service)
        .and_then(|s| s.node.as_deref())
}

/// The enabled checks the agent of `node` probes, in config order.
pub fn node_checks<'c>(config: &'c Config, node: &str) -> Vec<&'c CheckSpec> {
    config
        .checks
        .iter()
        .filter(|c| c.enabled && check_node(config, c) == Some(node))
        .collect()
}

/// The digest of a containers kind reported as JSON `null`: the node has no Docker Engine
/// (which is not the same as one running no containers).
pub const NO_DOCKER_DIGEST: &str =
    "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b";

/// What a node's items say it runs, for drift; `digests` tell whether it has Docker at all.
pub fn reported<'a>(items: &'a [NodeItem], digests: &BTreeMap<String, String>) -> Reported<'a> {
    let has_docker = digests
        .get("containers")
        .is_some_and(|d| d != NO_DOCKER_DIGEST);
    let names_of = |kind: &str| -> Vec<&'a str> {
        items
            .iter()
            .filter(|i| i.kind == kind)
            .map(|i| i.key.as_str())
            .collect()
    };
    Reported {
        containers: has_docker.then(|| names_of("containers")),
        domains: names_of("domains"),
    }
}
