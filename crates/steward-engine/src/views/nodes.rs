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

/// The names of every enabled check some node's agent probes (see [`node_checks`]); the hub's
/// prober probes the others.
pub fn checks_on_nodes(config: &Config) -> std::collections::HashSet<&str> {
    let declared: std::collections::HashSet<&str> =
        config.nodes.iter().map(|n| n.id.as_str()).collect();
    probed_from(config, |node| declared.contains(node))
        .into_iter()
        .map(|c| c.name.as_str())
        .collect()
}

/// The enabled checks the agent of `node` probes, in config order: those of the services declared
/// on it when `[[nodes]]` declares it (a `node` that only names a host, with no agent there,
/// leaves them with the hub). The hub's prober leaves them out. Asked at every heartbeat.
pub fn node_checks<'c>(config: &'c Config, node: &str) -> Vec<&'c CheckSpec> {
    if !config.nodes.iter().any(|n| n.id == node) {
        return Vec::new();
    }
    probed_from(config, |n| n == node)
}

/// The enabled checks of the services whose node passes `on`, except commands (a node runs only
/// programs its own config declares): one pass over the services and one over the checks.
fn probed_from(config: &Config, on: impl Fn(&str) -> bool) -> Vec<&CheckSpec> {
    let services: std::collections::HashSet<&str> = config
        .registry
        .services
        .iter()
        .filter(|s| s.node.as_deref().is_some_and(&on))
        .map(|s| s.name.as_str())
        .collect();
    if services.is_empty() {
        return Vec::new();
    }
    config
        .checks
        .iter()
        .filter(|c| {
            c.enabled
                && !matches!(c.probe, Probe::Command(_))
                && services.contains(c.service.as_str())
        })
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_node_probes_its_services_checks_but_never_a_command() {
        let text = r#"
[[workspaces]]
key = "edge"

[[nodes]]
id = "vps-01"

[[services]]
name = "proxy"
workspace = "edge"
url = "https://proxy.example.com/"
node = "vps-01"

[[services]]
name = "api"
workspace = "edge"
url = "https://api.example.com/"

[[checks]]
service = "proxy"

[[checks]]
service = "proxy"
name = "proxy-script"
type = "command"
command = "true"

[[checks]]
service = "api"

[[checks]]
service = "proxy"
name = "proxy-off"
enabled = false
"#;
        let config = steward_config::parse_str("t.toml", text, &|_| None)
            .unwrap()
            .config;
        let names: Vec<&str> = node_checks(&config, "vps-01")
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["proxy-http"]);
        assert!(node_checks(&config, "vps-02").is_empty());
        assert_eq!(
            checks_on_nodes(&config),
            std::collections::HashSet::from(["proxy-http"])
        );
        let undeclared = text.replace("[[nodes]]\nid = \"vps-01\"\n", "");
        let config = steward_config::parse_str("t.toml", &undeclared, &|_| None)
            .unwrap()
            .config;
        assert!(
            checks_on_nodes(&config).is_empty(),
            "a node no [[nodes]] declares keeps its checks on the hub"
        );
    }
}
