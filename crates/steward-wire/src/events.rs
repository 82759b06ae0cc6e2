//! The live event stream, `GET /api/v1/events` (Server-Sent Events): what each event carries,
//! the types a client may ask for, and the cursor a reconnecting client sends back as
//! `Last-Event-ID`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The types of events the stream carries, as `types=` names them.
pub const EVENT_TYPES: &[&str] = &[
    "registry_synced",
    "config_rejected",
    "tasks_enqueued",
    "task_changed",
    "tasks_changed",
    "leadership_changed",
    "schedule_fired",
    "schedule_skipped",
    "slots_missed",
    "schedule_overdue",
    "heartbeat_changed",
    "alerts_changed",
    "silences_changed",
    "check_changed",
    "audit",
    LOST,
];

/// Sent first, alone, to a client whose `Last-Event-ID` fell out of the replay window (or
/// names no position of this database): it should reload what it shows, then follow on.
pub const RESET: &str = "reset";

/// Events an instance could not put in the stream (its relay fell behind or the database was
/// unreachable), or a client did not read fast enough to get: `count` of them are missing.
pub const LOST: &str = "lost";

/// One event of the stream (the JSON of its `data:` line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamEvent {
    /// Its type, one of [`EVENT_TYPES`] or [`RESET`].
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened, RFC 3339.
    #[schema(format = DateTime)]
    pub at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The workspace it concerns; events of none are shown only to unscoped keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// The instance it happened on (absent for audit events, which the database records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// What else the type carries (a task's id and status, a check's states, …).
    #[serde(flatten)]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

/// Where a client is in the stream: the last event log entry and audit record it has seen.
/// Sent as each event's `id` and read back from `Last-Event-ID`, written `LOG-AUDIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    /// The last event log id seen.
    pub log: i64,
    /// The last audit sequence number seen.
    pub audit: i64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.log, self.audit)
    }
}

/// A `Last-Event-ID` that is not a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadCursor(pub String);

impl fmt::Display for BadCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.0.chars().take(40).collect();
        write!(
            f,
            "`{}` is not an event id (two non-negative numbers joined by `-`, as the stream sent them)",
            shown.escape_debug()
        )
    }
}

impl std::error::Error for BadCursor {}

impl FromStr for Cursor {
    type Err = BadCursor;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadCursor(text.to_string());
        let (log, audit) = text.trim().split_once('-').ok_or_else(bad)?;
        let number = |part: &str| {
            part.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse::<i64>().ok())
                .flatten()
                .ok_or_else(bad)
        };
        Ok(Self {
            log: number(log)?,
            audit: number(audit)?,
        })
    }
}

/// The data of a [`RESET`] event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reset {
    /// Always [`RESET`].
    #[serde(rename = "type")]
    pub kind: String,
    /// Why the missed events cannot be replayed.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let cursor = Cursor { log: 42, audit: 7 };
        assert_eq!(cursor.to_string().parse::<Cursor>(), Ok(cursor));
        for bad in [
            "",
            "1",
            "-1-2",
            "1--2",
            "a-b",
            "1-2-3",
            "1-+2",
            "99999999999999999999-1",
            "1 -2",
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_text_is_a_cursor_or_a_clear_refusal(text in ".{0,64}") {
            match text.parse::<Cursor>() {
                Ok(cursor) => prop_assert_eq!(cursor.to_string().parse::<Cursor>(), Ok(cursor)),
                Err(error) => prop_assert!(error.to_string().contains("is not an event id")),
            }
        }
    }
}
