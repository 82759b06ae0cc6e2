//! `/nodes` and `/nodes/ID`: the fleet's nodes with their status and last heartbeat, and one
//! node's inventory (containers, domains, certificates, facts), usage, declared services and
//! drift. Read-only: nodes are added and removed with the CLI or the API.

use axum::extract::{Path, Request, State};
use axum::response::Response;
use serde::Serialize;
use steward_wire::nodes::{Node, NodeDetail, NodeList, NodeStatus};
use steward_wire::paths;

use crate::Ui;
use crate::render::Page;

/// A node's status as the colour and shape tone the stylesheet knows.
fn tone(status: NodeStatus) -> &'static str {
    match status {
        NodeStatus::Up => "up",
        NodeStatus::Late => "degraded",
        NodeStatus::Down => "down",
        NodeStatus::Pending => "unknown",
    }
}

/// How a status ranks, worst first.
fn rank(status: NodeStatus) -> u8 {
    match status {
        NodeStatus::Down => 0,
        NodeStatus::Late => 1,
        NodeStatus::Pending => 2,
        NodeStatus::Up => 3,
    }
}

/// A node as a row.
#[derive(Serialize)]
struct NodeRow {
    /// The node.
    node: Node,
    /// Its status's tone.
    tone: &'static str,
}

/// What `/nodes` shows.
#[derive(Serialize)]
struct NodesPage {
    /// Every node in scope, worst status first, then by id.
    nodes: Vec<NodeRow>,
    /// How many nodes have each status, in the order shown.
    counts: Vec<(&'static str, &'static str, usize)>,
}

/// `GET /nodes`.
pub(crate) async fn list(State(ui): State<Ui>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let list: NodeList = ui.get(&signed, paths::NODES.template()).await?;
        ui.render(
            &signed,
            Page {
                template: "nodes.html",
                title: "Nodes".into(),
                nav: "nodes",
                live: true,
                data: nodes_page(list),
            },
        )
    }
    .await;
    ui.respond(result)
}

fn nodes_page(list: NodeList) -> NodesPage {
    let mut rows: Vec<NodeRow> = list
        .nodes
        .into_iter()
        .map(|node| NodeRow {
            tone: tone(node.status),
            node,
        })
        .collect();
    rows.sort_by(|a, b| {
        rank(a.node.status)
            .cmp(&rank(b.node.status))
            .then_with(|| a.node.id.cmp(&b.node.id))
    });
    let counts = [
        NodeStatus::Down,
        NodeStatus::Late,
        NodeStatus::Pending,
        NodeStatus::Up,
    ]
    .into_iter()
    .map(|status| {
        let n = rows.iter().filter(|r| r.node.status == status).count();
        (status.as_str(), tone(status), n)
    })
    .collect();
    NodesPage {
        nodes: rows,
        counts,
    }
}

/// What `/nodes/ID` shows.
#[derive(Serialize)]
struct NodePage {
    /// The node, what it reports and its drift.
    detail: NodeDetail,
    /// Its status's tone.
    tone: &'static str,
    /// Memory in use, as a share of the total (0 when unknown).
    memory_used_percent: u64,
    /// When each reported certificate expires (RFC 3339), in the order reported.
    certificate_expiries: Vec<String>,
}

/// `GET /nodes/{id}`.
pub(crate) async fn detail(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let path = paths::NODE.with(&[&id]);
        let detail: NodeDetail = ui.get(&signed, &path).await?;
        ui.render(
            &signed,
            Page {
                template: "node.html",
                title: format!("Node {id}"),
                nav: "nodes",
                live: true,
                data: node_page(detail),
            },
        )
    }
    .await;
    ui.respond(result)
}

fn node_page(detail: NodeDetail) -> NodePage {
    let facts = &detail.inventory.facts;
    let memory_used_percent = facts
        .memory_bytes
        .saturating_sub(detail.usage.memory_available_bytes)
        .saturating_mul(100)
        .checked_div(facts.memory_bytes)
        .unwrap_or(0);
    let certificate_expiries = detail
        .inventory
        .certificates
        .iter()
        .map(|c| steward_wire::time::rfc3339(c.not_after_ms))
        .collect();
    NodePage {
        tone: tone(detail.node.status),
        detail,
        memory_used_percent,
        certificate_expiries,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn node(id: &str, status: NodeStatus) -> Node {
        Node {
            id: id.into(),
            hostname: String::new(),
            address: None,
            workspace: None,
            labels: BTreeMap::new(),
            source: "config".into(),
            status,
            last_seen: None,
            last_seen_ms: None,
            interval_s: 10,
            registered_at: None,
            agent_version: String::new(),
        }
    }

    #[test]
    fn nodes_needing_attention_come_first() {
        let page = nodes_page(NodeList {
            nodes: vec![
                node("a", NodeStatus::Up),
                node("b", NodeStatus::Down),
                node("c", NodeStatus::Late),
                node("d", NodeStatus::Pending),
            ],
        });
        let order: Vec<&str> = page.nodes.iter().map(|r| r.node.id.as_str()).collect();
        assert_eq!(order, ["b", "c", "d", "a"]);
        assert_eq!(page.counts[0], ("down", "down", 1));
        assert_eq!(page.nodes[1].tone, "degraded");
    }
}
