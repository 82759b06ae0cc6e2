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
}
