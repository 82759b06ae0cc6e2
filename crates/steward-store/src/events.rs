//! The event log: the stream of state changes every instance sharing the database writes and
//! reads, so that a client of any instance sees what happened on all of them, and one that
//! reconnects gets what it missed. It keeps only a recent window ([`Store::trim_event_log`]).

/// Events kept by [`Store::trim_event_log`] by default: the replay window.
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
