//! Events: every state change the control plane makes is published as one of these.

use serde::Serialize;

/// A state change, as published on the event bus (and later streamed over SSE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The registry in the store was reconciled with the config.
    RegistrySynced {
        /// Entities created.
        added: usize,
        /// Entities whose fields changed.
        updated: usize,
        /// Entities deleted.
        removed: usize,
    },
    /// A reload was refused; the running config stays.
    ConfigRejected {
        /// How many problems the new config had.
        problems: usize,
    },
    /// Tasks were enqueued by one call.
    TasksEnqueued {
        /// The queue (the first one, for a call spanning several).
        queue: String,
        /// Tasks in the call.
        count: usize,
        /// Of those, new ones (the rest repeated an idempotency key).
        created: usize,
    },
    /// A task moved to another status.
    TaskChanged {
        /// The task.
        id: i64,
        /// Its queue.
        queue: String,
        /// Its kind.
        kind: String,
        /// The status it moved to.
        status: crate::task::TaskStatus,
        /// The attempt concerned.
        attempt: u32,
        /// The executor's outcome label, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        outcome: Option<String>,
    },
}
