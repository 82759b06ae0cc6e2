//! `[[nodes]]` (the hosts whose agents report to the hub), `[fleet]` (how the hub judges their
//! status from their heartbeats), and the nodes services name.

use std::collections::{HashMap, HashSet};

use steward_core::node::{FleetSpec, NodeSpec, check_node_id};

use crate::checks::ServiceSite;
use crate::readers::first_declaration_of;
use crate::registry::{Workspaces, workspace_ref};
use crate::walk::{Cx, Fields, Span, Spanned, did_you_mean};

const NODE_KEYS: &[&str] = &["id", "hostname", "address", "workspace", "labels"];
const FLEET_KEYS: &[&str] = &["down_after", "grace"];
/// Why a node's `hostname` and `address` are taken as written.
const SHOWN: &str = "cannot use `${VAR}`: it is shown in the API and the dashboard";

/// Reads `[[nodes]]`; an id declared twice keeps its first declaration.
pub(crate) fn read_nodes(
    cx: &mut Cx<'_>,
    root: &Fields<'_>,
    workspaces: &Workspaces,
) -> Vec<NodeSpec> {
    let mut seen: HashMap<String, Span> = HashMap::new();
    let mut nodes = Vec::new();
    for (i, (table, span)) in root.tables(cx, "nodes").into_iter().enumerate() {
        let t = Fields::open(cx, table, format!("nodes[{i}]"), span, NODE_KEYS);
        let id = read_id(cx, &t);
        let node = NodeSpec {
            id: id.as_ref().map_or_else(String::new, |id| id.value.clone()),
            hostname: shown_as_written(cx, &t, "hostname").unwrap_or_default(),
            address: shown_as_written(cx, &t, "address"),
            workspace: t
                .string(cx, "workspace")
                .and_then(|v| workspace_ref(cx, &t, "workspace", v, workspaces)),
            labels: t.labels(cx, "labels"),
        };
        let Some(id) = id else { continue };
        if first_declaration_of(cx, &mut seen, &t, "id", "node", id) {
            nodes.push(node);
        }
    }
    nodes
}

/// A node's `id`: required, and a node id as agents, the API and the store take it. Taken as
/// written: `${VAR}` could only yield characters an id may not hold.
fn read_id(cx: &mut Cx<'_>, t: &Fields<'_>) -> Option<Spanned<String>> {
    if t.item("id").is_none() {
        cx.error(
            &t.span,
            format!(
                "`{}`: missing required field (e.g. id = \"vps-01\")",
                t.field("id")
            ),
        );
        return None;
    }
    let id = t.literal_string(cx, "id")?;
    match check_node_id(&id.value) {
        Ok(()) => Some(id),
        Err(e) => {
            cx.error(&id.span, format!("`{}`: {e}", t.field("id")));
            None
        }
    }
}

/// An optional string shown in the clear, so refused when it uses `${VAR}`.
fn shown_as_written(cx: &mut Cx<'_>, t: &Fields<'_>, key: &str) -> Option<String> {
    let value = t.string(cx, key)?;
    t.without_template(cx, key, value, SHOWN).map(|v| v.value)
}

/// Reads `[fleet]`; what it leaves out takes [`FleetSpec`]'s defaults.
pub(crate) fn read_fleet(cx: &mut Cx<'_>, root: &Fields<'_>) -> FleetSpec {
    let mut fleet = FleetSpec::default();
    let Some(t) = root
        .item("fleet")
        .and_then(|item| Fields::open_item(cx, item, "fleet", FLEET_KEYS))
    else {
        return fleet;
    };
    let range = i64::from(FleetSpec::MIN_DOWN_AFTER_INTERVALS)
        ..=i64::from(FleetSpec::MAX_DOWN_AFTER_INTERVALS);
    if let Some(n) = t
        .integer(cx, "down_after", range)
        .and_then(|n| u32::try_from(n.value).ok())
    {
        fleet.down_after_intervals = n;
    }
    if let Some(grace) = t.duration_ms(cx, "grace") {
        // At most ten years: always fits.
        fleet.grace_ms = i64::try_from(grace.value).ok();
    }
    fleet
}

/// Reads `key` as the node whose agent runs some work: a literal, valid node id, warned about
/// when `[[nodes]]` declares others but not it (it may be added through the API). `None` when
/// absent or refused (refusals are reported).
pub(crate) fn work_node(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    key: &str,
    nodes: &[NodeSpec],
) -> Option<String> {
    let id = t.literal_string(cx, key)?;
    if let Err(e) = check_node_id(&id.value) {
        cx.error(&id.span, format!("`{}`: {e}", t.field(key)));
        return None;
    }
    if !nodes.is_empty() && !nodes.iter().any(|n| n.id == id.value) {
        let known: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
        let hint = did_you_mean(&id.value, &known).unwrap_or_default();
        cx.warning(
            &id.span,
            format!(
                "`{}`: node `{}` is not declared in `[[nodes]]` (unless it is added with `steward nodes add`, no agent runs this work){hint}",
                t.field(key),
                id.value
            ),
        );
    }
    Some(id.value)
}

/// Warns at each service's `node` that names no declared node, once `[[nodes]]` declares
/// any. Only a warning: nodes may also be added at run time, through the API.
pub(crate) fn warn_undeclared_nodes(cx: &mut Cx<'_>, services: &[ServiceSite], nodes: &[NodeSpec]) {
    if nodes.is_empty() {
        return;
    }
    let declared: HashSet<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    let known: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    for service in services {
        let Some(node) = &service.node else { continue };
        // What the registry keeps: a `${VAR}` template is kept as written, and is compared so.
        let named = node.shown();
        if declared.contains(named) {
            continue;
        }
        let hint = did_you_mean(named, &known).unwrap_or_default();
        cx.warning(
            &node.span,
            format!(
                "`{}`: node `{named}` is not declared in `[[nodes]]` (unless it is added with `steward nodes add`, no agent reports for it){hint}",
                service.node_field
            ),
        );
    }
}

#[cfg(test)]
mod tests;
