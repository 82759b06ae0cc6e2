//! The root of the `steward.toml` schema: the validated document ([`Config`]) and the walk
//! that reads it, handing each top-level key to the section that owns it.

use steward_core::alert::spec::AlertingSpec;
use steward_core::health::spec::CheckSpec;
use steward_core::node::{FleetSpec, NodeSpec};
use steward_core::pipeline::spec::PipelineSpec;
use steward_core::queue::{ExecutorSpec, QueueSpec};
use steward_core::schedule::{HeartbeatSpec, ScheduleSpec};
use steward_core::{Registry, Secret};
use toml_edit::TableLike;

use crate::alert_rules::Declared;
use crate::alerting::read_alerting;
use crate::checks::{read_checks, read_health};
use crate::executors::read_executors;
use crate::file_settings::{FileSettings, read_settings};
use crate::nodes::{read_fleet, read_nodes, warn_undeclared_nodes};
use crate::pipelines::read_pipelines;
use crate::queues::read_queues;
use crate::registry::{read_dependencies, read_services, read_workspaces};
use crate::schedules::{read_heartbeats, read_schedules};
use crate::walk::{Cx, Fields};

const ROOT_KEYS: &[&str] = &[
    "server",
    "storage",
    "log",
    "api",
    "audit",
    "ui",
    "workspaces",
    "dependencies",
    "services",
    "nodes",
    "fleet",
    "queues",
    "executors",
    "schedules",
    "pipelines",
    "heartbeats",
    "scheduler",
    "checks",
    "health",
    "alerting",
];

/// A validated `steward.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Daemon settings as written in the file (before environment overrides).
    pub settings: FileSettings,
    /// The declared registry, in canonical order.
    pub registry: Registry,
    /// `[[queues]]`, in file order.
    pub queues: Vec<QueueSpec>,
    /// `[[executors]]`, in file order (the built-in kinds are not listed).
    pub executors: Vec<ExecutorSpec>,
    /// `[[schedules]]`, in file order.
    pub schedules: Vec<ScheduleSpec>,
    /// `[[pipelines]]`, in file order.
    pub pipelines: Vec<PipelineSpec>,
    /// `[[heartbeats]]`, in file order.
    pub heartbeats: Vec<HeartbeatSpec>,
    /// `[[checks]]` in file order, then the default HTTP check of each service with an http(s)
    /// `url` and no check of its own (unless `health.check_service_urls = false`), in service
    /// order.
    pub checks: Vec<CheckSpec>,
    /// `[alerting]`: receivers, the route tree, inhibition rules and settings (the default,
    /// with no route, when the file has no `[alerting]`).
    pub alerting: AlertingSpec,
    /// `[[nodes]]`, in file order.
    pub nodes: Vec<NodeSpec>,
    /// `[fleet]`: how node status is judged (the defaults when the file has no `[fleet]`).
    pub fleet: FleetSpec,
    /// Every value a `${VAR}` reference was replaced with (see [`Config::secrets`]).
    pub(crate) resolved: Vec<Secret>,
}

/// Reads the whole document, reporting every problem into `cx`.
pub(crate) fn read_config(cx: &mut Cx<'_>, root: &dyn TableLike) -> Config {
    let root = Fields::open(cx, root, "", Some(0..0), ROOT_KEYS);
    let mut settings = read_settings(cx, &root);
    let (health, check_service_urls) = read_health(cx, &root);
    settings.health = health;
    let workspaces = read_workspaces(cx, &root);
    let dependencies = read_dependencies(cx, &root, &workspaces);
    let (services, bad_urls, sites) = read_services(cx, &root, &workspaces);
    let nodes = read_nodes(cx, &root, &workspaces);
    warn_undeclared_nodes(cx, &sites, &nodes);
    let fleet = read_fleet(cx, &root);
    let (executors, executor_names) = read_executors(cx, &root, &services, &bad_urls);
    let (queues, partial_kinds) = read_queues(cx, &root, &executor_names, &nodes);
    let pipelines = read_pipelines(cx, &root, &workspaces, &queues, &partial_kinds, &nodes);
    let pipeline_names: Vec<&str> = pipelines.iter().map(|p| p.name.as_str()).collect();
    let schedules = read_schedules(
        cx,
        &root,
        &workspaces,
        &queues,
        &partial_kinds,
        &nodes,
        &pipeline_names,
    );
    let heartbeats = read_heartbeats(cx, &root, &workspaces);
    let checks = read_checks(cx, &root, &sites, check_service_urls);
    let declared = Declared {
        checks: checks.iter().map(|c| c.name.as_str()).collect(),
        schedules: schedules.iter().map(|s| s.name.as_str()).collect(),
        heartbeats: heartbeats.iter().map(|h| h.name.as_str()).collect(),
        queues: queues.iter().map(|q| q.name.as_str()).collect(),
        pipelines: pipeline_names.clone(),
    };
    let alerting = read_alerting(cx, &root, &queues, &partial_kinds, &declared);
    Config {
        settings,
        registry: Registry::new(
            workspaces.into_values().map(|(w, _)| w).collect(),
            dependencies,
            services,
        ),
        queues,
        executors,
        schedules,
        pipelines,
        heartbeats,
        checks,
        alerting,
        nodes,
        fleet,
        resolved: cx.take_resolved().into_iter().map(Secret::new).collect(),
    }
}
