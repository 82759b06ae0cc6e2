//! The audit entries each store mutation records, built once for every backend.

use steward_core::audit::AuditEvent;

use crate::StoreError;
use crate::domain::domain_trait;
use serde_json::json;
use steward_core::RegistryDiff;
use steward_core::audit::{Actor, AuditEntry};

use crate::ApiKey;

/// `registry.sync`: the registry was reconciled with the config; details hold the diff.
pub fn registry_sync(actor: &Actor, diff: &RegistryDiff) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action: "registry.sync".into(),
        target: "registry".into(),
        workspace: None,
        details: json!({ "counts": diff.counts(), "changes": diff }),
    }
}

/// `key.create` or `key.bootstrap`: what the key may do, never its secret or digest.
pub fn key_created(action: &str, actor: &Actor, key: &ApiKey) -> AuditEntry {
    let mut details = json!({
        "role": key.role,
        "hint": key.hint,
        "expires_at_ms": key.expires_at_ms,
    });
    if let (Some(node), Some(map)) = (&key.node, details.as_object_mut()) {
        map.insert("node".into(), json!(node));
    }
    AuditEntry {
        actor: actor.clone(),
        action: action.into(),
        target: key.name.clone(),
        workspace: key.workspace.clone(),
        details,
    }
}

/// `check.run`: someone probed a check at once; details hold the judged result.
pub fn check_run(
    actor: &Actor,
    check: &str,
    workspace: Option<String>,
    result: &crate::ProbeRecord,
) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action: "check.run".into(),
        target: check.to_owned(),
        workspace,
        details: json!({
            "verdict": crate::health::verdict_name(result.verdict),
            "at_ms": result.at_ms,
            "latency_ms": result.latency_ms,
            "status": result.status,
            "cause": result.cause,
        }),
    }
}

/// `key.revoke`.
pub fn key_revoked(actor: &Actor, key: &ApiKey) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action: "key.revoke".into(),
        target: key.name.clone(),
        workspace: key.workspace.clone(),
        details: json!({ "role": key.role, "hint": key.hint }),
    }
}

/// `task.enqueue`: one event per enqueue call, however many tasks it carried.
pub fn tasks_enqueued(
    actor: &Actor,
    tasks: &[steward_core::task::NewTask],
    answers: &[crate::tasks::Enqueued],
) -> AuditEntry {
    let mut queues: Vec<&str> = tasks.iter().map(|t| t.queue.as_str()).collect();
    queues.sort_unstable();
    queues.dedup();
    let created = answers.iter().filter(|a| a.created).count();
    let first = answers.iter().map(|a| a.id).min();
    let last = answers.iter().map(|a| a.id).max();
    let workspace = tasks
        .first()
        .and_then(|t| t.origin.workspace.clone())
        .filter(|w| tasks.iter().all(|t| t.origin.workspace.as_ref() == Some(w)));
    AuditEntry {
        actor: actor.clone(),
        action: "task.enqueue".into(),
        target: match (first, last) {
            (Some(a), Some(b)) if a == b => format!("task/{a}"),
            (Some(a), Some(b)) => format!("task/{a}..{b}"),
            _ => "task".into(),
        },
        workspace,
        details: json!({
            "count": tasks.len(),
            "created": created,
            "queues": queues,
        }),
    }
}

/// `task.cancel` or `task.retry`, with the status the task had before and has now.
pub fn task_changed(
    action: &str,
    actor: &Actor,
    task: &steward_core::task::Task,
    before: steward_core::task::TaskStatus,
) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action: action.into(),
        target: format!("task/{}", task.id),
        workspace: task.origin.workspace.clone(),
        details: json!({
            "queue": task.queue,
            "kind": task.kind,
            "from": before,
            "to": task.status,
            "cancel_requested": task.cancel_requested,
        }),
    }
}

/// `schedule.pause` or `schedule.resume`.
pub fn schedule_paused(
    actor: &Actor,
    name: &str,
    workspace: Option<&str>,
    paused: bool,
) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action: if paused {
            "schedule.pause"
        } else {
            "schedule.resume"
        }
        .into(),
        target: format!("schedule/{name}"),
        workspace: workspace.map(str::to_owned),
        details: json!({ "paused": paused }),
    }
}

/// `schedule.trigger`: a run asked for by hand, and what came of it.
pub fn schedule_triggered(
    actor: &Actor,
    name: &str,
    workspace: Option<String>,
    outcome: &crate::schedules::FireOutcome,
) -> AuditEntry {
    use crate::schedules::FireOutcome;
    let details = match outcome {
        FireOutcome::Fired {
            task_id,
            created,
            replaced,
        } => json!({ "fired": true, "task": task_id, "created": created, "replaced": replaced }),
        FireOutcome::Skipped(reason) => json!({ "fired": false, "reason": reason.describe() }),
    };
    AuditEntry {
        actor: actor.clone(),
        action: "schedule.trigger".into(),
        target: format!("schedule/{name}"),
        workspace,
        details,
    }
}

/// `heartbeat.state`: a heartbeat moved from one state to another.
pub fn heartbeat_state(
    actor: &Actor,
    change: &crate::schedules::HeartbeatTransition,
) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action: "heartbeat.state".into(),
        target: format!("heartbeat/{}", change.name),
        workspace: change.workspace.clone(),
        details: json!({ "from": change.from.as_str(), "to": change.to.as_str() }),
    }
}

/// `alert.receive`: one event per call of
/// [`AlertStore::receive_alerts`](crate::AlertStore::receive_alerts), however many receipts it carried;
/// details hold what they did, in total and per source.
pub fn alerts_received(
    actor: &Actor,
    receipts: &[crate::AlertReceipt],
    changes: &[crate::AlertChange],
) -> AuditEntry {
    use std::collections::BTreeMap;

    use crate::alerts::ReceiptCounts;
    let mut total = ReceiptCounts::default();
    let mut sources: BTreeMap<&str, ReceiptCounts> = BTreeMap::new();
    for (receipt, &change) in receipts.iter().zip(changes) {
        total.add(change);
        sources
            .entry(receipt.source.as_str())
            .or_default()
            .add(change);
    }
    AuditEntry {
        actor: actor.clone(),
        action: "alert.receive".into(),
        target: "alerts".into(),
        workspace: None,
        details: json!({
            "count": receipts.len(),
            "counts": total,
            "sources": sources,
        }),
    }
}

/// `alert.ack`: someone acknowledged a firing alert's current episode.
pub fn alert_acked(actor: &Actor, alert: &crate::StoredAlert, ack: &crate::Ack) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action: "alert.ack".into(),
        target: format!("alert/{}", alert.fingerprint),
        workspace: None,
        details: json!({
            "episode": alert.episode,
            "by": ack.by,
            "at_ms": ack.at_ms,
            "note": ack.note,
        }),
    }
}

/// `silence.create`: its matchers (as written), span, author and comment.
pub fn silence_created(actor: &Actor, silence: &crate::StoredSilence) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action: "silence.create".into(),
        target: format!("silence/{}", silence.id),
        workspace: None,
        details: json!({
            "matchers": silence.matchers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "starts_at_ms": silence.starts_at_ms,
            "ends_at_ms": silence.ends_at_ms,
            "created_by": silence.created_by,
            "comment": silence.comment,
        }),
    }
}

/// `silence.expire`: a silence ended early; details hold the end it had and has now.
pub fn silence_expired(
    actor: &Actor,
    silence: &crate::StoredSilence,
    previous_ends_at_ms: i64,
) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action: "silence.expire".into(),
        target: format!("silence/{}", silence.id),
        workspace: None,
        details: json!({
            "from_ends_at_ms": previous_ends_at_ms,
            "ends_at_ms": silence.ends_at_ms,
        }),
    }
}

/// How verifying the audit chain failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The chain is broken; says where and how.
    #[error(transparent)]
    Broken(#[from] steward_core::audit::ChainBreak),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Events checked.
    pub events: u64,
    /// The head they end at, `(seq, hash)`; record it elsewhere to detect a later rewrite.
    pub head: Option<(i64, String)>,
}

/// Reads the whole audit chain page by page and checks every link and the recorded head.
/// Returns how many events were verified.
pub async fn verify_audit(store: &dyn crate::Store) -> Result<u64, VerifyError> {
    verify_audit_to_head(store).await.map(|v| v.events)
}

/// Like [`verify_audit`], returning the head verified too.
pub async fn verify_audit_to_head(store: &dyn crate::Store) -> Result<Verified, VerifyError> {
    use steward_core::audit::{GENESIS_HASH, verify_head, verify_segment};
    // Events written after the head was read are newer than what is checked here.
    let head = store.audit_head().await?;
    let head_seq = head.as_ref().map_or(0, |(seq, _)| *seq);
    let mut last = (0_i64, GENESIS_HASH.to_owned());
    let mut verified = 0_u64;
    loop {
        let page = store
            .audit_events(&crate::AuditQuery {
                after_seq: last.0,
                limit: crate::MAX_AUDIT_PAGE,
                ..crate::AuditQuery::default()
            })
            .await?;
        let page: Vec<_> = page.into_iter().take_while(|e| e.seq <= head_seq).collect();
        if page.is_empty() {
            break;
        }
        verified += page.len() as u64;
        last = verify_segment(&page, (last.0, &last.1))?;
    }
    verify_head(
        (last.0, &last.1),
        head.as_ref().map(|(s, h)| (*s, h.as_str())),
    )?;
    Ok(Verified {
        events: verified,
        head,
    })
}

/// Which audit events to read: those after `after_seq`, oldest first, filtered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events with a greater sequence number (keyset pagination).
    pub after_seq: i64,
    /// At most this many (the store caps it at 10,000).
    pub limit: u32,
    /// Only this actor name.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this workspace.
    pub workspace: Option<String>,
    /// Only this kind of actor (keys, the CLI, Steward's own components).
    pub actor_kind: Option<steward_core::audit::ActorKind>,
    /// Only events merged from this node (see [`AuditStore::merge_remote_audit`]).
    pub origin_node: Option<String>,
}

/// The most events one audit query returns.
pub const MAX_AUDIT_PAGE: u32 = 10_000;

domain_trait! {
    /// The audit chain's reads and the merge of other nodes' events (appends happen inside each audited change).
    pub trait AuditStore {
        /// Audit events matching `query`, oldest first.
        async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError>;

        /// Merges events recorded on another node into this chain, in one transaction: each new
        /// `(node, seq)` is appended once (keeping its origin), ones already merged are skipped.
        /// Returns how many were added.
        async fn merge_remote_audit(
            &self,
            node: &str,
            events: &[AuditEvent],
        ) -> Result<usize, StoreError>;

        /// The highest origin sequence number merged from `node`, `None` when none was: where the
        /// next batch that node ships should start.
        async fn last_merged_audit_seq(&self, node: &str) -> Result<Option<i64>, StoreError>;

        /// The recorded head of the audit chain: the last event's `(seq, hash)`, `None` when empty.
        async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError>;
    }
}
