//! The event log: the stream of state changes every instance sharing the database writes and
//! reads, so that a client of any instance sees what happened on all of them, and one that
//! reconnects gets what it missed. It keeps only a recent window ([`EventLogStore::trim_event_log`]).

use crate::StoreError;
use crate::domain::domain_trait;
/// Events kept by [`EventLogStore::trim_event_log`] by default: the replay window.
pub const EVENT_LOG_WINDOW: u32 = 10_000;

/// Wake-ups kept for a reader that falls behind (each only says "look again").
pub const EVENT_LOG_WAKEUP_BUFFER: usize = 64;

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLoggedEvent {
    /// When it happened (ms since the Unix epoch).
    pub at_ms: i64,
    /// Its type (`task_changed`, `check_changed`, …).
    pub kind: String,
    /// The workspace it concerns; `None` for events only unscoped keys may see.
    pub workspace: Option<String>,
    /// Its body: a JSON object, as text.
    pub body: String,
}

/// An event in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Its position: ids increase in the order events were committed, across instances.
    pub id: i64,
    /// When it happened.
    pub at_ms: i64,
    /// Its type.
    pub kind: String,
    /// The workspace it concerns.
    pub workspace: Option<String>,
    /// Its body (a JSON object).
    pub body: String,
}

#[cfg(doc)]
use crate::Store;

domain_trait! {
    /// The event log the live stream replays from.
    pub trait EventLogStore {
        /// Appends events to the event log in one transaction. Ids are handed out in commit order
        /// across every instance sharing the database, so a reader that has seen id `n` has seen
        /// every event with a smaller one.
        async fn append_events(&self, events: &[NewLoggedEvent]) -> Result<(), StoreError>;

        /// Up to `limit` events with ids above `after_id`, oldest first.
        async fn events_after(
            &self,
            after_id: i64,
            limit: u32,
        ) -> Result<Vec<LoggedEvent>, StoreError>;

        /// The newest event's id, 0 for an empty log.
        async fn event_log_head(&self) -> Result<i64, StoreError>;

        /// Deletes all but the newest `keep` events; answers how many went.
        async fn trim_event_log(&self, keep: u32) -> Result<u64, StoreError>;
    }
}
