//! The task queue's running side: the checks every enqueue passes ([`enqueue`]), the workers
//! that claim and run tasks ([`worker`]), and the per-instance upkeep — expired leases,
//! retention, depth metrics ([`upkeep`]).

pub mod upkeep;
pub mod worker;

use std::collections::HashMap;

use steward_core::audit::Actor;
use steward_core::queue::QueueSpec;
use steward_core::task::{
    MAX_ENQUEUE_BATCH, NewTask, TaskError, TaskOrigin, attempts_from, priority_from, run_at_from,
};
use steward_core::{Event, Registry};
use steward_store::{Enqueued, Store, StoreError};

use crate::bus::EventBus;
use crate::executors::Executors;

/// One task as a caller asks for it, before defaults and checks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnqueueRequest {
    /// The queue.
    pub queue: String,
    /// The executor.
    pub kind: String,
    /// Input for the executor (`{}` when absent).
    pub payload: Option<serde_json::Value>,
    /// Higher runs first (default 0).
    pub priority: Option<i64>,
    /// Not before this time (ms since the Unix epoch).
    pub run_at_ms: Option<i64>,
    /// Not before this many ms from now.
    pub delay_ms: Option<i64>,
    /// Attempts before dead (default: the queue's).
    pub max_attempts: Option<i64>,
    /// Repeating the key returns the existing task.
    pub idempotency_key: Option<String>,
    /// Where it comes from.
    pub origin: TaskOrigin,
    /// The node whose agent must run it (default: its queue's, if the queue is pinned).
    pub node: Option<String>,
}

/// Why an enqueue was refused; nothing of the call was stored.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// No tasks in the call.
    #[error("no tasks to enqueue")]
    Empty,
    /// More than [`MAX_ENQUEUE_BATCH`] tasks in the call.
    #[error("{0} tasks in one call; at most {MAX_ENQUEUE_BATCH}")]
    TooMany(usize),
    /// The queue is not declared.
    #[error("task {index}: unknown queue `{queue}`")]
    UnknownQueue {
        /// Position in the call.
        index: usize,
        /// The queue named.
        queue: String,
    },
    /// The queue does not allow the kind.
    #[error("task {index}: queue `{queue}` does not run `{kind}` tasks (allowed: {allowed})")]
    KindNotAllowed {
        /// Position in the call.
        index: usize,
        /// The queue.
        queue: String,
        /// The kind named.
        kind: String,
        /// The kinds it allows.
        allowed: String,
    },
    /// The payload is larger than the queue accepts.
    #[error("task {index}: payload is {size} bytes; queue `{queue}` accepts at most {limit}")]
    PayloadTooLarge {
        /// Position in the call.
        index: usize,
        /// The queue.
        queue: String,
        /// The payload's size.
        size: usize,
        /// The queue's limit.
        limit: usize,
    },
    /// A field is out of range or malformed.
    #[error("task {index}: {reason}")]
    Invalid {
        /// Position in the call.
        index: usize,
        /// What and why.
        reason: String,
    },
    /// The task names a node the hub does not know.
    #[error("task {index}: `node`: no node `{node}` (add it with `steward nodes add`)")]
    UnknownNode {
        /// Position in the call.
        index: usize,
        /// The node named.
        node: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Idempotency keys the scheduler gives its fires (`schedule:NAME:SLOT`) and the alert
/// manager its remediation tasks (`alert:FINGERPRINT:EPISODE:ROUTE`); a caller may not use
/// them, or it could take their place and the schedule or the remediation would never run.
pub const RESERVED_KEY_PREFIXES: [&str; 2] = ["schedule:", "alert:"];

/// Checks `requests` against the queues, executors and workspaces in force and stores them in
/// one transaction; any refused task refuses the whole call.
pub async fn enqueue(
    store: &dyn Store,
    bus: &EventBus,
    queues: &[QueueSpec],
    executors: &Executors,
    registry: &Registry,
    requests: Vec<EnqueueRequest>,
    actor: &Actor,
) -> Result<Vec<Enqueued>, EnqueueError> {
    if requests.is_empty() {
        return Err(EnqueueError::Empty);
    }
    if requests.len() > MAX_ENQUEUE_BATCH {
        return Err(EnqueueError::TooMany(requests.len()));
    }
    let by_name: HashMap<&str, &QueueSpec> = queues.iter().map(|q| (q.name.as_str(), q)).collect();
    let now = steward_store::now_ms();
    let tasks = requests
        .into_iter()
        .enumerate()
        .map(|(index, request)| checked(index, request, &by_name, executors, registry, now, actor))
        .collect::<Result<Vec<_>, _>>()?;
    check_nodes_known(store, &tasks).await?;
    let answers = store.enqueue_tasks(&tasks, actor).await?;
    record_enqueue(bus, &tasks, &answers);
    Ok(answers)
}

/// Refuses a call naming a node the store does not hold: nothing else could ever run its task.
async fn check_nodes_known(store: &dyn Store, tasks: &[NewTask]) -> Result<(), EnqueueError> {
    let mut checked: Vec<&str> = Vec::new();
    for (index, task) in tasks.iter().enumerate() {
        let Some(node) = task.node.as_deref() else {
            continue;
        };
        if checked.contains(&node) {
            continue;
        }
        if store.node(node).await?.is_none() {
            return Err(EnqueueError::UnknownNode {
                index,
                node: node.to_string(),
            });
        }
        checked.push(node);
    }
    Ok(())
}

/// The node a request's task runs on: its own, else its queue's; never another than a pinned
/// queue's.
fn node_of(request_node: Option<String>, queue: &QueueSpec) -> Result<Option<String>, String> {
    match (request_node, &queue.node) {
        (Some(own), Some(pinned)) if own != *pinned => Err(format!(
            "`node`: queue `{}` is pinned to node `{pinned}`; its tasks cannot run on `{own}`",
            queue.name
        )),
        (own, pinned) => Ok(own.or_else(|| pinned.clone())),
    }
}

fn checked(
    index: usize,
    request: EnqueueRequest,
    queues: &HashMap<&str, &QueueSpec>,
    executors: &Executors,
    registry: &Registry,
    now: i64,
    actor: &Actor,
) -> Result<NewTask, EnqueueError> {
    let invalid = |reason: String| EnqueueError::Invalid { index, reason };
    if let Some(workspace) = request
        .origin
        .workspace
        .as_deref()
        .filter(|w| registry.workspace(w).is_none())
    {
        return Err(invalid(format!(
            "`workspace`: no workspace `{workspace}` is declared"
        )));
    }
    let queue = queues
        .get(request.queue.as_str())
        .ok_or_else(|| EnqueueError::UnknownQueue {
            index,
            queue: request.queue.clone(),
        })?;
    let node = node_of(request.node, queue).map_err(invalid)?;
    // A node's agent runs the task with the executor its own config declares under that kind,
    // and checks the payload itself; the hub checks only that the queue takes the kind.
    let executor = match node {
        Some(_) => None,
        None => executors.get(&request.kind),
    };
    if !queue.allows(&request.kind) || (node.is_none() && executor.is_none()) {
        return Err(EnqueueError::KindNotAllowed {
            index,
            queue: queue.name.clone(),
            kind: request.kind.clone(),
            allowed: queue.kinds.join(", "),
        });
    }
    let payload = request
        .payload
        .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
    let text = payload.to_string();
    if text.len() > queue.max_payload_bytes {
        return Err(EnqueueError::PayloadTooLarge {
            index,
            queue: queue.name.clone(),
            size: text.len(),
            limit: queue.max_payload_bytes,
        });
    }
    if let Some(executor) = executor {
        executor.validate(&payload).map_err(invalid)?;
    }
    let refused = |error: TaskError| invalid(error.to_string());
    let run_at_ms = run_at_from(request.run_at_ms, request.delay_ms, now).map_err(refused)?;
    let priority = priority_from(request.priority.unwrap_or(0)).map_err(refused)?;
    let max_attempts = match request.max_attempts {
        Some(n) => attempts_from(n).map_err(refused)?,
        None => queue.retry.max_attempts,
    };
    let mut origin = request.origin;
    origin.caller.get_or_insert_with(|| actor.name.clone());
    let task = NewTask {
        timeout_ms: None,
        queue: queue.name.clone(),
        kind: request.kind,
        payload: text,
        priority,
        run_at_ms,
        max_attempts,
        idempotency_key: request.idempotency_key,
        origin,
        node,
    };
    task.validate(now).map_err(|e| invalid(e.to_string()))?;
    if let Some(prefix) = task.idempotency_key.as_deref().and_then(|key| {
        RESERVED_KEY_PREFIXES
            .into_iter()
            .find(|prefix| key.starts_with(prefix))
    }) {
        return Err(invalid(format!(
            "`idempotency_key`: keys starting with `{prefix}` are Steward's own (schedules' fires and alerts' remediation)"
        )));
    }
    Ok(task)
}

fn record_enqueue(bus: &EventBus, tasks: &[NewTask], answers: &[Enqueued]) {
    let created = answers.iter().filter(|a| a.created).count();
    let mut per_queue: HashMap<&str, u64> = HashMap::new();
    for (task, answer) in tasks.iter().zip(answers) {
        if answer.created {
            *per_queue.entry(task.queue.as_str()).or_default() += 1;
        }
    }
    for (queue, count) in per_queue {
        metrics::counter!("steward_tasks_enqueued_total", "queue" => queue.to_string())
            .increment(count);
    }
    if let Some(first) = tasks.first() {
        let workspace = first.origin.workspace.clone().filter(|w| {
            tasks
                .iter()
                .all(|t| t.origin.workspace.as_deref() == Some(w.as_str()))
        });
        bus.publish(Event::TasksEnqueued {
            queue: first.queue.clone(),
            count: tasks.len(),
            created,
            workspace,
        });
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use steward_core::task::{MAX_ATTEMPTS, MAX_DELAY_MS, MAX_PRIORITY};

    use super::*;

    /// Integers at and around the edges of the ranges a task's numbers are checked against.
    fn edge() -> impl Strategy<Value = Option<i64>> {
        let limits = [
            i64::MIN,
            i64::from(i32::MIN),
            -i64::from(MAX_PRIORITY),
            0,
            i64::from(MAX_PRIORITY),
            i64::from(MAX_ATTEMPTS),
            MAX_DELAY_MS,
            i64::from(i32::MAX),
            i64::from(u32::MAX),
            i64::MAX,
        ];
        let near: Vec<i64> = limits
            .iter()
            .flat_map(|&n| [n.saturating_sub(1), n, n.saturating_add(1)])
            .collect();
        proptest::option::of(prop_oneof![proptest::sample::select(near), any::<i64>()])
    }

    fn request(
        priority: Option<i64>,
        run_at_ms: Option<i64>,
        delay_ms: Option<i64>,
        max_attempts: Option<i64>,
    ) -> EnqueueRequest {
        EnqueueRequest {
            queue: "q".into(),
            kind: "noop".into(),
            payload: None,
            priority,
            run_at_ms,
            delay_ms,
            max_attempts,
            idempotency_key: None,
            origin: TaskOrigin::default(),
            node: None,
        }
    }

    proptest! {
        #[test]
        fn numbers_from_outside_are_checked_without_overflow(
            priority in edge(),
            run_at_ms in edge(),
            delay_ms in edge(),
            max_attempts in edge(),
        ) {
            let queue = QueueSpec::new("q", &["noop"]);
            let queues = HashMap::from([("q", &queue)]);
            let now = 1_800_000_000_000;
            let checked = checked(
                0,
                request(priority, run_at_ms, delay_ms, max_attempts),
                &queues,
                &Executors::builtins(),
                &Registry::default(),
                now,
                &Actor::system("test"),
            );
            let in_range = |value: Option<i64>, default: i64, low: i64, high: i64| {
                (low..=high).contains(&value.unwrap_or(default))
            };
            let max = i64::from(MAX_PRIORITY);
            let when_ok = match (run_at_ms, delay_ms) {
                (Some(_), Some(_)) => false,
                (Some(at), None) => at <= now + MAX_DELAY_MS,
                (None, Some(delay)) => (0..=MAX_DELAY_MS).contains(&delay),
                (None, None) => true,
            };
            let ok = in_range(priority, 0, -max, max)
                && in_range(max_attempts, 5, 1, i64::from(MAX_ATTEMPTS))
                && when_ok;
            prop_assert_eq!(checked.is_ok(), ok, "{:?}", checked.err());
            if let Ok(task) = checked {
                prop_assert_eq!(i64::from(task.priority), priority.unwrap_or(0));
                prop_assert_eq!(i64::from(task.max_attempts), max_attempts.unwrap_or(5));
            }
        }
    }
}
