//! `/graph`: the workspace dependency graph as SVG, each workspace coloured by the worst state
//! of its services, each edge labelled with its type. Laid out on a circle, so cycles need no
//! special case and any size stays readable (the page scrolls); a table lists the same edges.

use std::collections::BTreeMap;
use std::f64::consts::TAU;

use axum::extract::{Request, State};
use axum::response::Response;
use serde::Serialize;
use steward_wire::health::ServiceHealthList;
use steward_wire::paths;
use steward_wire::registry::Graph;

use crate::Ui;
use crate::render::Page;

use super::state_rank;

/// Room each node takes along the circle, in pixels.
const NODE_SPACING: f64 = 110.0;
/// The smallest circle drawn.
const MIN_RADIUS: f64 = 170.0;
/// Space around the circle for node boxes and labels.
const MARGIN: f64 = 110.0;
/// How far an edge bows away from the straight line, so two opposite edges stay apart.
const BOW: f64 = 28.0;
/// Where an edge stops short of its target's centre, for the arrowhead to show.
const END_GAP: f64 = 24.0;
/// The least room between two neighbouring boxes.
const BOX_GAP: f64 = 12.0;
/// A node's box height.
const NODE_HEIGHT: f64 = 28.0;
/// Width per character of a node's name.
const CHAR_WIDTH: f64 = 7.4;

/// A workspace placed on the drawing.
#[derive(Debug, Serialize)]
pub(crate) struct DrawnNode {
    key: String,
    /// The worst state of its services (`none` without services).
    state: String,
    services: usize,
    x: f64,
    y: f64,
    /// The box's left edge, top edge, width and height.
    box_x: f64,
    box_y: f64,
    box_width: f64,
    box_height: f64,
}

/// An edge drawn as a quadratic curve with its label at the middle.
#[derive(Debug, Serialize)]
pub(crate) struct DrawnEdge {
    from: String,
    to: String,
    kind: String,
    note: Option<String>,
    /// The SVG path.
    d: String,
    label_x: f64,
    label_y: f64,
}

/// The drawing.
#[derive(Debug, Serialize)]
pub(crate) struct Drawing {
    width: f64,
    height: f64,
    nodes: Vec<DrawnNode>,
    edges: Vec<DrawnEdge>,
}

/// Places `graph`'s workspaces on a circle and routes its edges; `states` gives each
/// workspace's worst service state.
pub(crate) fn layout(graph: &Graph, states: &BTreeMap<String, (String, usize)>) -> Drawing {
    let n = graph.nodes.len().max(1) as f64;
    // Neighbours at the top and bottom of the circle sit side by side: the room each node
    // takes along the circle is at least its widest box, plus a gap.
    let widest = graph
        .nodes
        .iter()
        .map(|node| box_width(&node.key))
        .fold(0.0, f64::max);
    let spacing = NODE_SPACING.max(widest + BOX_GAP);
    let radius = (n * spacing / TAU).max(MIN_RADIUS);
    // Boxes at the left and right of the circle reach out by half their width.
    let centre = radius + MARGIN.max(widest / 2.0 + BOX_GAP);
    let mut at: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    let nodes = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            // From the top, clockwise.
            let angle = TAU * i as f64 / n - TAU / 4.0;
            let (x, y) = (
                round(centre + radius * angle.cos()),
                round(centre + radius * angle.sin()),
            );
            at.insert(node.key.as_str(), (x, y));
            let box_width = box_width(&node.key);
            let (state, services) = states
                .get(&node.key)
                .cloned()
                .unwrap_or_else(|| ("none".to_owned(), 0));
            DrawnNode {
                key: node.key.clone(),
                state,
                services,
                x,
                y,
                box_x: round(x - box_width / 2.0),
                box_y: round(y - NODE_HEIGHT / 2.0),
                box_width,
                box_height: NODE_HEIGHT,
            }
        })
        .collect();
    let edges = graph
        .edges
        .iter()
        .filter_map(|edge| {
            let from = *at.get(edge.from.as_str())?;
            let to = *at.get(edge.to.as_str())?;
            Some(route(edge, from, to))
        })
        .collect();
    Drawing {
        width: 2.0 * centre,
        height: 2.0 * centre,
        nodes,
        edges,
    }
}

/// The width of a node's box for its name.
fn box_width(key: &str) -> f64 {
    round(key.chars().count() as f64 * CHAR_WIDTH + 20.0)
}

/// One edge as a curve bowed to its left, ending short of its target.
fn route(
    edge: &steward_wire::registry::Dependency,
    (x0, y0): (f64, f64),
    (x2, y2): (f64, f64),
) -> DrawnEdge {
    let (dx, dy) = (x2 - x0, y2 - y0);
    let length = (dx * dx + dy * dy).sqrt().max(1.0);
    // The normal to the left of the direction of travel: an edge back bows the other way.
    let (nx, ny) = (-dy / length, dx / length);
    let (cx, cy) = ((x0 + x2) / 2.0 + nx * BOW, (y0 + y2) / 2.0 + ny * BOW);
    // The end is pulled back along the curve's last tangent (control point → target).
    let (tx, ty) = (x2 - cx, y2 - cy);
    let t_len = (tx * tx + ty * ty).sqrt().max(1.0);
    let (ex, ey) = (x2 - tx / t_len * END_GAP, y2 - ty / t_len * END_GAP);
    DrawnEdge {
        from: edge.from.clone(),
        to: edge.to.clone(),
        kind: edge.kind.clone(),
        note: edge.note.clone(),
        d: format!(
            "M{} {} Q{} {} {} {}",
            round(x0),
            round(y0),
            round(cx),
            round(cy),
            round(ex),
            round(ey)
        ),
        // The curve's middle: a quarter of each end and half the control point.
        label_x: round(0.25 * x0 + 0.5 * cx + 0.25 * x2),
        label_y: round(0.25 * y0 + 0.5 * cy + 0.25 * y2),
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Each workspace's worst service state and its number of services.
fn worst_states(services: &ServiceHealthList) -> BTreeMap<String, (String, usize)> {
    let mut states: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for service in &services.services {
        let Some(workspace) = &service.workspace else {
            continue;
        };
        let entry = states
            .entry(workspace.clone())
            .or_insert_with(|| (service.state.clone(), 0));
        entry.1 += 1;
        if state_rank(&service.state) < state_rank(&entry.0) {
            entry.0 = service.state.clone();
        }
    }
    states
}

/// `GET /graph`.
pub(crate) async fn page(State(ui): State<Ui>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let graph: Graph = ui.get(&signed, paths::GRAPH.template()).await?;
        let services: ServiceHealthList = ui.get(&signed, paths::SERVICES.template()).await?;
        let drawing = layout(&graph, &worst_states(&services));
        ui.render(
            &signed,
            Page {
                template: "graph.html",
                title: "Dependency graph".into(),
                nav: "graph",
                live: true,
                data: drawing,
            },
        )
    }
    .await;
    ui.respond(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_wire::registry::{Dependency, GraphNode};

    fn graph(n: usize, edges: &[(usize, usize)]) -> Graph {
        Graph {
            nodes: (0..n)
                .map(|i| GraphNode {
                    key: format!("ws{i}"),
                    status: "active".into(),
                    description: None,
                    services: vec![],
                })
                .collect(),
            edges: edges
                .iter()
                .map(|(a, b)| Dependency {
                    from: format!("ws{a}"),
                    to: format!("ws{b}"),
                    kind: "reads".into(),
                    note: None,
                })
                .collect(),
        }
    }

    #[test]
    fn every_node_is_placed_apart_inside_the_drawing() {
        for n in [1, 2, 8, 200] {
            let mut g = graph(n, &[]);
            // Long names make wide boxes.
            for node in &mut g.nodes {
                node.key = format!("a-rather-long-workspace-name-{}", node.key);
            }
            let drawing = layout(&g, &BTreeMap::new());
            assert_eq!(drawing.nodes.len(), n);
            for node in &drawing.nodes {
                assert!(node.box_x >= 0.0 && node.box_x + node.box_width <= drawing.width);
                assert!(node.box_y >= 0.0 && node.box_y + node.box_height <= drawing.height);
            }
            for (i, a) in drawing.nodes.iter().enumerate() {
                for b in &drawing.nodes[i + 1..] {
                    let overlap = a.box_x < b.box_x + b.box_width
                        && b.box_x < a.box_x + a.box_width
                        && a.box_y < b.box_y + b.box_height
                        && b.box_y < a.box_y + a.box_height;
                    assert!(!overlap, "{n} nodes: {} and {} overlap", a.key, b.key);
                }
            }
        }
    }

    #[test]
    fn opposite_edges_bow_apart_and_unknown_ends_are_left_out() {
        let mut g = graph(3, &[(0, 1), (1, 0)]);
        g.edges.push(Dependency {
            from: "ws0".into(),
            to: "elsewhere".into(),
            kind: "reads".into(),
            note: None,
        });
        let drawing = layout(&g, &BTreeMap::new());
        assert_eq!(drawing.edges.len(), 2);
        let (a, b) = (&drawing.edges[0], &drawing.edges[1]);
        let apart = ((a.label_x - b.label_x).powi(2) + (a.label_y - b.label_y).powi(2)).sqrt();
        assert!(apart >= BOW * 0.99, "labels {apart} apart");
    }

    #[test]
    fn a_workspace_takes_its_worst_service_state() {
        let service = |name: &str, ws: &str, state: &str| steward_wire::health::ServiceHealth {
            name: name.into(),
            workspace: Some(ws.into()),
            url: None,
            node: None,
            labels: BTreeMap::new(),
            state: state.into(),
            impacted_by: vec![],
            checks: vec![],
        };
        let states = worst_states(&ServiceHealthList {
            services: vec![
                service("a", "ops", "up"),
                service("b", "ops", "down"),
                service("c", "ops", "impacted"),
                service("d", "lab", "up"),
            ],
        });
        assert_eq!(states["ops"], ("down".to_owned(), 3));
        assert_eq!(states["lab"], ("up".to_owned(), 1));
    }
}
