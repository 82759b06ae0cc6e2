//! `[[queues]]`: where tasks wait, which kinds of task each one takes, how many run at once
//! and how failed ones are retried.

use std::collections::{BTreeSet, HashMap, HashSet};

use steward_core::node::NodeSpec;
use steward_core::queue::{BUILTIN_KINDS, QueueSpec, SYSTEM_QUEUE};
use steward_core::task::{MAX_ATTEMPTS, RetryPolicy};

use crate::nodes::work_node;
use crate::readers::{first_declaration, name_field, unreserved};
use crate::walk::{Cx, Fields, Span, did_you_mean, shown_ms};

const QUEUE_KEYS: &[&str] = &[
    "name",
    "kinds",
    "concurrency",
    "rate_limit",
    "max_attempts",
    "backoff_base",
    "backoff_cap",
    "timeout",
    "lease",
    "max_payload_bytes",
    "retention",
    "node",
];
const MAX_CONCURRENCY: i64 = 10_000;
const MAX_RATE_LIMIT: i64 = 1_000_000;
const MAX_PAYLOAD_BYTES: i64 = 64 << 20;
/// The shortest lease: heartbeats go out every third of it.
const MIN_LEASE_MS: u64 = 1_000;

/// Reads `[[queues]]`; `executors` are the names declared in `[[executors]]`. Also answers the
/// names of the queues some of whose `kinds` were refused (so that schedules naming one of
/// those kinds do not report a second, misleading problem).
///
/// A queue pinned to a node (`node = "vps-02"`) is worked by that node's agent with the
/// executors its own `agent.toml` declares, so its kinds are names the hub cannot check.
pub(crate) fn read_queues(
    cx: &mut Cx<'_>,
    root: &Fields<'_>,
    executors: &BTreeSet<String>,
    nodes: &[NodeSpec],
) -> (Vec<QueueSpec>, HashSet<String>) {
    let known: Vec<&str> = BUILTIN_KINDS
        .into_iter()
        .chain(executors.iter().map(String::as_str))
        .collect();
    let mut seen: HashMap<String, Span> = HashMap::new();
    let mut queues = Vec::new();
    let mut partial_kinds = HashSet::new();
    for (i, (table, span)) in root.tables(cx, "queues").into_iter().enumerate() {
        let t = Fields::open(cx, table, format!("queues[{i}]"), span, QUEUE_KEYS);
        let name = name_field(cx, &t, "name");
        let name = unreserved(cx, &t, name, SYSTEM_QUEUE, "queue");
        let mut queue = QueueSpec::new(name.as_ref().map_or("", |n| n.value.as_str()), &[]);
        queue.node = work_node(cx, &t, "node", nodes);
        let pinned = t.item("node").is_some();
        let (kinds, all_kinds_read) = read_kinds(cx, &t, (!pinned).then_some(known.as_slice()));
        queue.kinds = kinds;
        if let Some(n) = t.positive_integer(cx, "concurrency", MAX_CONCURRENCY) {
            queue.concurrency = n.value;
        }
        queue.rate_limit = t
            .positive_integer(cx, "rate_limit", MAX_RATE_LIMIT)
            .map(|n| n.value);
        queue.retry = read_retry(cx, &t);
        if let Some(timeout) = t.duration_ms(cx, "timeout") {
            queue.timeout_ms = timeout.value;
        }
        if let Some(lease) = t.duration_ms(cx, "lease") {
            if lease.value < MIN_LEASE_MS {
                cx.error(
                    &lease.span,
                    format!(
                        "`{}`: must be at least 1s (the lease is renewed every third of it)",
                        t.field("lease")
                    ),
                );
            } else {
                queue.lease_ms = lease.value;
            }
        }
        if let Some(n) = t.positive_integer(cx, "max_payload_bytes", MAX_PAYLOAD_BYTES) {
            queue.max_payload_bytes = n.value as usize;
        }
        if let Some(retention) = t.duration_ms_or_forever(cx, "retention") {
            queue.retention_ms = retention.value;
        }
        let Some(name) = name else { continue };
        if first_declaration(cx, &mut seen, &t, "queue", name) {
            if !all_kinds_read {
                partial_kinds.insert(queue.name.clone());
            }
            queues.push(queue);
        }
    }
    (queues, partial_kinds)
}

/// A queue's `kinds`: required, not empty, each a built-in or a declared executor (`known`), or
/// for a pinned queue (`known` is `None`) each a valid name. The flag is false when some
/// written kind was refused.
fn read_kinds(cx: &mut Cx<'_>, t: &Fields<'_>, known: Option<&[&str]>) -> (Vec<String>, bool) {
    let Some(item) = t.item("kinds") else {
        cx.error(
            &t.span,
            format!(
                "`{}`: missing required field (the executors its tasks may use, e.g. kinds = [\"noop\"])",
                t.field("kinds")
            ),
        );
        return (Vec::new(), false);
    };
    let Some(written) = t.strings(cx, "kinds") else {
        return (Vec::new(), false);
    };
    if item.as_array().is_some_and(|a| a.is_empty()) {
        cx.error(
            &item.span(),
            format!(
                "`{}`: must list at least one kind (e.g. kinds = [\"noop\"])",
                t.field("kinds")
            ),
        );
    }
    let mut kinds: Vec<String> = Vec::new();
    // Elements that are not strings have been reported by `strings`.
    let mut all_read = item.as_array().is_some_and(|a| a.len() == written.len());
    for (j, kind) in written.into_iter().enumerate() {
        let path = format!("{}[{j}]", t.field("kinds"));
        if known.is_none() && !steward_core::registry::is_valid_name(&kind.value) {
            cx.error(
                &kind.span,
                format!("`{path}`: `{}` is not a valid kind name", kind.value),
            );
            all_read = false;
        } else if let Some(known) = known.filter(|k| !k.contains(&kind.value.as_str())) {
            let hint = did_you_mean(&kind.value, known)
                .unwrap_or_else(|| format!("; known kinds: {}", known.join(", ")));
            cx.error(
                &kind.span,
                format!(
                    "`{path}`: unknown kind `{}` (neither built in nor declared in `[[executors]]`){hint}",
                    kind.value
                ),
            );
            all_read = false;
        } else if kinds.contains(&kind.value) {
            cx.warning(
                &kind.span,
                format!("`{path}`: kind `{}` is listed twice", kind.value),
            );
        } else {
            kinds.push(kind.value);
        }
    }
    (kinds, all_read)
}

/// A queue's attempts and backoff, from the defaults of [`RetryPolicy`].
fn read_retry(cx: &mut Cx<'_>, t: &Fields<'_>) -> RetryPolicy {
    let mut retry = RetryPolicy::default();
    if let Some(n) = t.positive_integer(cx, "max_attempts", MAX_ATTEMPTS.into()) {
        retry.max_attempts = n.value;
    }
    let base = t.duration_ms(cx, "backoff_base");
    let cap = t.duration_ms(cx, "backoff_cap");
    // Compare only what was read well: a refused value has been reported already.
    let base_ok = base.is_some() || t.item("backoff_base").is_none();
    let cap_ok = cap.is_some() || t.item("backoff_cap").is_none();
    if let Some(base) = &base {
        retry.base_ms = base.value;
    }
    if let Some(cap) = &cap {
        retry.cap_ms = cap.value;
    }
    if base_ok && cap_ok && retry.cap_ms < retry.base_ms {
        match (&base, &cap) {
            (_, Some(cap)) => cx.error(
                &cap.span,
                format!(
                    "`{}`: {} is less than `backoff_base` ({})",
                    t.field("backoff_cap"),
                    shown_ms(retry.cap_ms),
                    shown_ms(retry.base_ms)
                ),
            ),
            (Some(base), None) => cx.error(
                &base.span,
                format!(
                    "`{}`: {} is more than `backoff_cap` ({}, the default); raise `backoff_cap` too",
                    t.field("backoff_base"),
                    shown_ms(retry.base_ms),
                    shown_ms(retry.cap_ms)
                ),
            ),
            (None, None) => {}
        }
    }
    retry
}

#[cfg(test)]
mod tests;
