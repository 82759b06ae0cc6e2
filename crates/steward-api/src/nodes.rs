//! The fleet: nodes listed, shown, added and removed by people; join tokens made; agents
//! registering and heartbeating as their node.

use std::collections::{BTreeMap, HashSet};

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use steward_core::audit::{Actor, ActorKind, AuditEvent};
use steward_core::node::{NodeSpec, NodeStatus, check_node_id};
use steward_engine::fleet::{FleetError, HeartbeatIn, NodeView};
use steward_store::{KindReport, NodeItem, NodeRecord, Redeemed};
use steward_wire::nodes as wire;
use steward_wire::time::{rfc3339, rfc3339_opt};

use crate::caller::Caller;
use crate::extract::{ApiBody, ApiPath, parse_body};
use crate::{ApiError, AppState};

/// The longest a join token may stay valid: a month.
const MAX_TOKEN_TTL_S: u64 = 30 * 24 * 3_600;
/// How long a join token stays valid unless asked otherwise.
const DEFAULT_TOKEN_TTL_S: u64 = 3_600;
/// The most registrations one token may allow.
const MAX_TOKEN_USES: u32 = 1_000;
/// The fewest seconds an agent may heartbeat at, and the most.
const INTERVAL_RANGE_S: (u64, u64) = (1, 3_600);

/// `GET /api/v1/nodes`: every node the key may see.
pub(crate) async fn list_nodes(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<wire::NodeList>, ApiError> {
    let nodes = state.fleet.list().await.map_err(fleet_error)?;
    let config = state.control.config();
    let now = steward_store::now_ms();
    Ok(Json(wire::NodeList {
        nodes: nodes
            .iter()
            .filter(|n| caller.principal.sees(n.spec.workspace.as_deref()))
            .map(|n| node_of(n, judged(n, &config, now)))
            .collect(),
    }))
}

/// `GET /api/v1/nodes/{id}`: a node with what it reported, its services and their drift.
pub(crate) async fn show_node(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<wire::NodeDetail>, ApiError> {
    let config = state.control.config();
    let view = state
        .fleet
        .show(&id, &config, steward_store::now_ms())
        .await
        .map_err(fleet_error)?;
    if !caller.principal.sees(view.record.spec.workspace.as_deref()) {
        return Err(fleet_error(FleetError::UnknownNode(id)));
    }
    let digests = state
        .fleet
        .store()
        .node_digests(&id)
        .await
        .map_err(|e| ApiError::store(&e))?;
    Ok(Json(detail_of(view, &digests)))
}

/// `POST /api/v1/nodes`: adds a node (it registers later, with a join token).
pub(crate) async fn add_node(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiBody(body): ApiBody,
) -> Result<(StatusCode, Json<wire::NodeChanged>), ApiError> {
    let request: wire::NewNode = parse_body(&body)?;
    let spec = node_spec(&state, request)?;
    let node = state
        .fleet
        .add(&spec, &caller.actor())
        .await
        .map_err(fleet_error)?;
    Ok((
        StatusCode::CREATED,
        Json(wire::NodeChanged {
            node: node_of(&node, node.status),
        }),
    ))
}

/// `DELETE /api/v1/nodes/{id}`: removes a node and everything it reported, and revokes its
/// credentials at once on this instance (others within their key cache's lifetime).
pub(crate) async fn remove_node(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<wire::NodeChanged>, ApiError> {
    let node = state
        .fleet
        .remove(&id, &caller.actor())
        .await
        .map_err(fleet_error)?;
    state.auth.forget_all();
    Ok(Json(wire::NodeChanged {
        node: node_of(&node, node.status),
    }))
}

/// `POST /api/v1/nodes/{id}/tokens`: makes a join token, shown once.
pub(crate) async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiBody(body): ApiBody,
) -> Result<(StatusCode, Json<wire::JoinToken>), ApiError> {
    let request: wire::NewJoinToken = if body.is_empty() {
        wire::NewJoinToken::default()
    } else {
        parse_body(&body)?
    };
    let ttl_s = request.ttl_s.unwrap_or(DEFAULT_TOKEN_TTL_S);
    if ttl_s == 0 || ttl_s > MAX_TOKEN_TTL_S {
        return Err(invalid(format!(
            "`ttl_s`: must be between 1 and {MAX_TOKEN_TTL_S} seconds (30 days)"
        )));
    }
    let uses = request.uses.unwrap_or(1);
    if uses == 0 || uses > MAX_TOKEN_USES {
        return Err(invalid(format!(
            "`uses`: must be between 1 and {MAX_TOKEN_USES}"
        )));
    }
    let ttl_ms = i64::try_from(ttl_s)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000);
    let (token, expires_at_ms) = state
        .fleet
        .create_token(&id, ttl_ms, uses, &caller.actor())
        .await
        .map_err(fleet_error)?;
    Ok((
        StatusCode::CREATED,
        Json(wire::JoinToken {
            node: id,
            token,
            expires_at: rfc3339(expires_at_ms),
            uses,
        }),
    ))
}

/// `POST /api/v1/agent/register`: a join token exchanged for the node's credential. Public: the
/// token is the proof.
pub(crate) async fn register(
    State(state): State<AppState>,
    ApiBody(body): ApiBody,
) -> Result<(StatusCode, Json<wire::Registered>), ApiError> {
    let request: wire::Registration = parse_body(&body)?;
    let hostname: String = request.hostname.chars().take(253).collect();
    let version: String = request.agent_version.chars().take(64).collect();
    let actor = Actor::system("agent.register");
    let (redeemed, credential) = state
        .fleet
        .register(request.token.trim(), &hostname, &version, &actor)
        .await
        .map_err(fleet_error)?;
    let refused = |message: &str| {
        metrics::counter!("steward_auth_failures_total", "reason" => "join_token").increment(1);
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            message,
        ))
    };
    match (redeemed, credential) {
        (Redeemed::Joined { node, key }, Some(credential)) => Ok((
            StatusCode::CREATED,
            Json(wire::Registered {
                node: node.spec.id.clone(),
                credential,
                key_name: key.name,
                interval_s: u64::try_from(node.interval_ms / 1_000).unwrap_or(10),
            }),
        )),
        (Redeemed::Expired, _) => refused("this join token has expired; make a new one"),
        (Redeemed::Spent, _) => refused("this join token was already used; make a new one"),
        _ => refused("unknown join token"),
    }
}

/// `POST /api/v1/nodes/{id}/heartbeat`: the node's agent reports in.
pub(crate) async fn heartbeat(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiBody(body): ApiBody,
) -> Result<Json<wire::HeartbeatAnswer>, ApiError> {
    let mut beat: wire::Heartbeat = parse_body(&body)?;
    let results = crate::node_checks::results_of(std::mem::take(&mut beat.check_results))?;
    let held_checks = beat.checks_digest.take();
    let node = id.clone();
    let beat = heartbeat_in(id, beat)?;
    let out = state.fleet.heartbeat(beat).await.map_err(fleet_error)?;
    let config = state.control.config();
    if !results.is_empty() {
        let recorded = state
            .fleet
            .record_checks(&node, &config, results)
            .await
            .map_err(fleet_error)?;
        if recorded.ignored > 0 {
            tracing::debug!(node = %node, ignored = recorded.ignored, "results of checks the node does not probe were left out");
        }
    }
    let (checks, checks_digest) = crate::node_checks::checks_for(&config, &node);
    Ok(Json(wire::HeartbeatAnswer {
        needs: out.needs.iter().filter_map(|k| kind_of(k)).collect(),
        holds: out
            .holds
            .into_iter()
            .filter_map(|(k, d)| kind_of(&k).map(|k| (k, d)))
            .collect(),
        checks: (held_checks.as_deref() != Some(checks_digest.as_str())).then_some(checks),
        checks_digest,
    }))
}

/// `POST /api/v1/nodes/{id}/audit`: the node's agent ships events of its audit journal. The
/// batch must be one chained run; events merged before are skipped, and a batch starting past
/// the event after the last merged one is merged but answered with the gap.
pub(crate) async fn ship_audit(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiBody(body): ApiBody,
) -> Result<Json<wire::AuditShipped>, ApiError> {
    let batch: wire::AuditBatch = parse_body(&body)?;
    let events = audit_batch(batch)?;
    let out = state
        .fleet
        .merge_audit(&id, &events)
        .await
        .map_err(fleet_error)?;
    Ok(Json(wire::AuditShipped {
        merged: out.merged,
        last_seq: out.last_seq,
        gap: out
            .gap
            .map(|(expected, got)| wire::AuditGap { expected, got }),
    }))
}

/// A shipped batch as the store takes it, refused unless it is at most
/// [`wire::MAX_AUDIT_BATCH`] events of the node's own, each hashing to its hash and chained
/// to the one before: what is merged must be exactly what the node recorded.
fn audit_batch(batch: wire::AuditBatch) -> Result<Vec<AuditEvent>, ApiError> {
    if batch.events.len() > wire::MAX_AUDIT_BATCH {
        return Err(invalid(format!(
            "`events`: {} events; at most {} per batch",
            batch.events.len(),
            wire::MAX_AUDIT_BATCH
        )));
    }
    let mut events: Vec<AuditEvent> = Vec::with_capacity(batch.events.len());
    for (i, event) in batch.events.into_iter().enumerate() {
        let wrong = |why: &str| invalid(format!("`events[{i}]` (seq {}): {why}", event.seq));
        if event.seq < 1 {
            return Err(wrong("sequence numbers start at 1"));
        }
        if event.origin.is_some() {
            return Err(wrong("a node ships its own events only, without an origin"));
        }
        let Some(kind) = ActorKind::parse(&event.actor.kind) else {
            return Err(wrong("`actor.kind`: expected key, cli or system"));
        };
        if let Some(prev) = events.last() {
            if event.seq != prev.seq + 1 {
                return Err(wrong(&format!("does not follow seq {}", prev.seq)));
            }
            if event.prev_hash != prev.hash {
                return Err(wrong(&format!(
                    "`prev_hash` is not the hash of seq {}",
                    prev.seq
                )));
            }
        }
        let core = AuditEvent {
            seq: event.seq,
            at_ms: event.at_ms,
            actor: Actor {
                kind,
                name: event.actor.name,
                source_ip: event.actor.source_ip,
            },
            action: event.action,
            target: event.target,
            workspace: event.workspace,
            details: event.details,
            prev_hash: event.prev_hash,
            hash: event.hash,
            origin: None,
        };
        if core.computed_hash() != core.hash {
            return Err(invalid(format!(
                "`events[{i}]` (seq {}): its content does not match its hash",
                core.seq
            )));
        }
        events.push(core);
    }
    Ok(events)
}

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
}

fn fleet_error(error: FleetError) -> ApiError {
    match error {
        FleetError::UnknownNode(id) => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no node `{id}`"),
        ),
        FleetError::Store(e) => crate::error::store_error(e),
    }
}

/// A node to add, checked.
fn node_spec(state: &AppState, request: wire::NewNode) -> Result<NodeSpec, ApiError> {
    check_node_id(&request.id).map_err(|e| invalid(format!("`id`: {e}")))?;
    if let Some(ws) = request.workspace.as_deref()
        && state.control.registry().workspace(ws).is_none()
    {
        return Err(invalid(format!(
            "`workspace`: no workspace `{ws}` is declared"
        )));
    }
    if request.hostname.len() > 253 {
        return Err(invalid("`hostname`: at most 253 characters".into()));
    }
    for (name, value) in &request.labels {
        if name.is_empty() || name.len() > 128 || value.len() > 1_024 {
            return Err(invalid(format!(
                "`labels`: `{}` — names are 1 to 128 characters, values at most 1024",
                name.chars().take(40).collect::<String>()
            )));
        }
    }
    Ok(NodeSpec {
        id: request.id,
        hostname: request.hostname,
        address: request.address,
        workspace: request.workspace,
        labels: request.labels,
    })
}

/// A heartbeat as the fleet takes it: each kind sent becomes a report of items keyed by name
/// (or path), its digest the one the agent sent for it.
fn heartbeat_in(node: String, beat: wire::Heartbeat) -> Result<HeartbeatIn, ApiError> {
    let interval_s = if beat.interval_s == 0 {
        10
    } else {
        beat.interval_s
    };
    if !(INTERVAL_RANGE_S.0..=INTERVAL_RANGE_S.1).contains(&interval_s) {
        return Err(invalid(format!(
            "`interval_s`: must be between {} and {}",
            INTERVAL_RANGE_S.0, INTERVAL_RANGE_S.1
        )));
    }
    let at_ms = steward_store::now_ms();
    let digest_of = |kind: wire::InventoryKind| -> Result<String, ApiError> {
        beat.digests.get(&kind).cloned().ok_or_else(|| {
            invalid(format!(
                "`inventory.{kind}` is sent without its digest in `digests`"
            ))
        })
    };
    let mut reports = Vec::new();
    let mut report = |kind: wire::InventoryKind, items: Vec<NodeItem>, whole: bool| {
        digest_of(kind).map(|digest| {
            reports.push(KindReport {
                node: node.clone(),
                kind: kind.as_str().to_owned(),
                digest,
                items,
                replace_whole: whole,
                at_ms,
            });
        })
    };
    let parts = beat.inventory;
    if let Some(containers) = parts.containers {
        let items = keyed("containers", containers.unwrap_or_default().iter(), |c| {
            c.name.clone()
        });
        report(wire::InventoryKind::Containers, items, true)?;
    }
    if let Some(domains) = parts.domains {
        let items = keyed("domains", domains.iter(), |d| d.name.clone());
        report(wire::InventoryKind::Domains, items, false)?;
    }
    if let Some(certificates) = parts.certificates {
        let items = keyed("certificates", certificates.iter(), |c| c.path.clone());
        report(wire::InventoryKind::Certificates, items, false)?;
    }
    if let Some(facts) = parts.facts {
        let items = keyed("facts", std::iter::once(&facts), |_| "facts".to_owned());
        report(wire::InventoryKind::Facts, items, false)?;
    }
    Ok(HeartbeatIn {
        node,
        at_ms,
        interval_ms: i64::try_from(interval_s)
            .unwrap_or(10)
            .saturating_mul(1_000),
        usage: serde_json::to_value(&beat.usage).unwrap_or_default(),
        digests: beat
            .digests
            .into_iter()
            .map(|(k, d)| (k.as_str().to_owned(), d))
            .collect(),
        reports,
    })
}

/// Items of one kind, keyed by `key_of`; a key seen before gets a numbered suffix (the same
/// domain served from two files), so every item is kept.
fn keyed<'a, T: serde::Serialize + 'a>(
    kind: &str,
    values: impl Iterator<Item = &'a T>,
    key_of: impl Fn(&T) -> String,
) -> Vec<NodeItem> {
    let mut seen = HashSet::new();
    values
        .map(|value| {
            let base = key_of(value);
            let mut key = base.clone();
            let mut n = 1;
            while !seen.insert(key.clone()) {
                n += 1;
                key = format!("{base}#{n}");
            }
            NodeItem {
                kind: kind.to_owned(),
                key,
                doc: serde_json::to_string(value).unwrap_or_default(),
            }
        })
        .collect()
}

fn kind_of(name: &str) -> Option<wire::InventoryKind> {
    wire::InventoryKind::ALL
        .into_iter()
        .find(|k| k.as_str() == name)
}

/// A node's status as judged now from its record.
fn judged(node: &NodeRecord, config: &steward_config::Config, now_ms: i64) -> NodeStatus {
    steward_engine::views::nodes::status_now(node, config, now_ms)
}

fn status_of(status: NodeStatus) -> wire::NodeStatus {
    match status {
        NodeStatus::Pending => wire::NodeStatus::Pending,
        NodeStatus::Up => wire::NodeStatus::Up,
        NodeStatus::Late => wire::NodeStatus::Late,
        NodeStatus::Down => wire::NodeStatus::Down,
    }
}

/// A node as the API shows it.
fn node_of(node: &NodeRecord, status: NodeStatus) -> wire::Node {
    wire::Node {
        id: node.spec.id.clone(),
        hostname: node.spec.hostname.clone(),
        address: node.spec.address.clone(),
        workspace: node.spec.workspace.clone(),
        labels: node.spec.labels.clone(),
        source: node.source.as_str().to_owned(),
        status: status_of(status),
        last_seen: rfc3339_opt(node.last_seen_ms),
        last_seen_ms: node.last_seen_ms,
        interval_s: u64::try_from(node.interval_ms / 1_000).unwrap_or(0),
        registered_at: rfc3339_opt(node.registered_at_ms),
        agent_version: node.agent_version.clone(),
    }
}

/// A node with its inventory rebuilt from its items (an item that no longer parses, written by
/// another version, is left out rather than failing the answer).
fn detail_of(view: NodeView, digests: &BTreeMap<String, String>) -> wire::NodeDetail {
    let items = &view.items;
    let has_docker = digests
        .get("containers")
        .is_some_and(|d| d != steward_engine::views::nodes::NO_DOCKER_DIGEST);
    let inventory = wire::Inventory {
        containers: has_docker.then(|| parsed(items, "containers")),
        domains: parsed(items, "domains"),
        certificates: parsed(items, "certificates"),
        facts: parsed(items, "facts").pop().unwrap_or_default(),
    };
    wire::NodeDetail {
        node: node_of(&view.record, view.status_now),
        usage: serde_json::from_value(view.record.usage.clone()).unwrap_or_default(),
        inventory,
        services: view.services,
        drift: view
            .drift
            .into_iter()
            .map(|d| wire::Drift {
                service: d.service,
                reason: d.reason,
            })
            .collect(),
    }
}

/// The items of `kind` read back as `T`.
fn parsed<T: serde::de::DeserializeOwned>(items: &[NodeItem], kind: &str) -> Vec<T> {
    items
        .iter()
        .filter(|i| i.kind == kind)
        .filter_map(|i| serde_json::from_str(&i.doc).ok())
        .collect()
}
