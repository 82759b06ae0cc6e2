//! The fleet agent (`steward agent`): what runs on every node. It gathers the node's inventory
//! (containers, NGINX domains, certificates, facts), registers with the hub once, heartbeats
//! every interval with digests of that inventory, and sends a kind in full only when it changed
//! or the hub asks for it.
//!
//! - [`checks`]: the checks of the services on the node, probed from here;
//! - [`config`]: `agent.toml`, checked with `FILE:LINE:COL` problems;
//! - [`credential`]: the node's credential in the data directory, private to the agent;
//! - [`hub`]: the HTTP client to the hub (registration, heartbeats);
//! - [`gather`]: one beat's inventory, digested;
//! - [`journal`]: the node's own audit journal, kept until the hub acknowledges it;
//! - [`run`]: the heartbeat loop, which also ships the journal;
//! - [`work`]: the tasks the hub pins to the node, run under the node's own allowlist;
//! - [`outbox`]: their results, kept on disk until the hub has answered for them.

pub mod checks;
pub mod config;
pub mod credential;
pub mod gather;
pub mod hub;
pub mod inventory;
pub mod journal;
pub mod outbox;
pub mod run;
pub mod work;

pub use config::AgentConfig;
pub use credential::StoredCredential;
pub use hub::{HubClient, HubError};
pub use journal::{Journal, JournalError};
pub use run::{RunError, RunOptions, WorkOptions, run};

/// A lock's guard, also after a panic elsewhere poisoned it: what the agent guards (attempts in
/// flight, results waiting) stays valid whatever was interrupted, and must still be delivered.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
