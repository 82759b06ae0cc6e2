//! Heartbeats: dead-man's switches that external jobs ping. A heartbeat expects a ping every
//! `period_ms`, allows `grace_ms` more, and is late once that deadline passes in silence.

use serde::{Deserialize, Serialize};

/// A declared heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatSpec {
    /// Its name, unique among heartbeats.
    pub name: String,
    /// The workspace it belongs to, if any.
    pub workspace: Option<String>,
    /// What it watches.
    pub description: Option<String>,
    /// How often a ping is expected.
    pub period_ms: u64,
    /// How much longer than the period a ping may take before the heartbeat is late.
    pub grace_ms: u64,
}

/// What a ping reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PingStatus {
    /// The job ran and succeeded.
    Ok,
    /// The job ran and failed.
    Fail,
}

impl PingStatus {
    /// The name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Fail => "fail",
        }
    }

    /// The status with this name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(Self::Ok),
            "fail" => Some(Self::Fail),
            _ => None,
        }
    }
}

/// A heartbeat's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeartbeatState {
    /// Never pinged, and its first deadline has not passed.
    New,
    /// Its last ping was ok, and the next one is not due yet.
    Up,
    /// Its deadline passed without a ping.
    Late,
    /// Its last ping reported a failure, and the next one is not due yet.
    Failed,
}

impl HeartbeatState {
    /// The name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Up => "up",
            Self::Late => "late",
            Self::Failed => "failed",
        }
    }

    /// The state with this name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "new" => Some(Self::New),
            "up" => Some(Self::Up),
            "late" => Some(Self::Late),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// The instant after which a heartbeat last heard from (or first watched) at `last_ms` is late:
/// `last_ms + period + grace`, saturating.
pub fn deadline_ms(spec: &HeartbeatSpec, last_ms: i64) -> i64 {
    let allowance = spec.period_ms.saturating_add(spec.grace_ms);
    last_ms.saturating_add(i64::try_from(allowance).unwrap_or(i64::MAX))
}

/// A heartbeat's state at `now_ms`, from its last ping (instant and status) and the instant
/// it has been watched since (its declaration, or the control plane's start):
///
/// - never pinged: `New` until `watching_since_ms + period + grace` passes, then `Late`;
/// - last ping ok: `Up` until `ping + period + grace` passes, then `Late`;
/// - last ping failed: `Failed` until that deadline passes, then `Late`.
///
/// The deadline itself is still in time; a state changes only once `now_ms` is past it.
pub fn evaluate(
    spec: &HeartbeatSpec,
    last_ping: Option<(i64, PingStatus)>,
    watching_since_ms: i64,
    now_ms: i64,
) -> HeartbeatState {
    let (since, in_time) = match last_ping {
        None => (watching_since_ms, HeartbeatState::New),
        Some((at, PingStatus::Ok)) => (at, HeartbeatState::Up),
        Some((at, PingStatus::Fail)) => (at, HeartbeatState::Failed),
    };
    if now_ms > deadline_ms(spec, since) {
        HeartbeatState::Late
    } else {
        in_time
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> HeartbeatSpec {
        HeartbeatSpec {
            name: "backup".into(),
            workspace: None,
            description: None,
            period_ms: 60_000,
            grace_ms: 10_000,
        }
    }

    #[test]
    fn names_round_trip() {
        for status in [PingStatus::Ok, PingStatus::Fail] {
            assert_eq!(PingStatus::parse(status.as_str()), Some(status));
        }
        for state in [
            HeartbeatState::New,
            HeartbeatState::Up,
            HeartbeatState::Late,
            HeartbeatState::Failed,
        ] {
            assert_eq!(HeartbeatState::parse(state.as_str()), Some(state));
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::Value::String(state.as_str().into())
            );
        }
        assert_eq!(PingStatus::parse("OK"), None);
        assert_eq!(HeartbeatState::parse("down"), None);
    }

    #[test]
    fn a_heartbeat_never_pinged_is_new_until_its_first_deadline() {
        let s = spec();
        assert_eq!(evaluate(&s, None, 1_000, 1_000), HeartbeatState::New);
        assert_eq!(evaluate(&s, None, 1_000, 71_000), HeartbeatState::New);
        assert_eq!(evaluate(&s, None, 1_000, 71_001), HeartbeatState::Late);
    }

    #[test]
    fn an_ok_ping_is_up_until_its_deadline_passes() {
        let s = spec();
        let ping = Some((100_000, PingStatus::Ok));
        assert_eq!(evaluate(&s, ping, 0, 100_000), HeartbeatState::Up);
        assert_eq!(evaluate(&s, ping, 0, 170_000), HeartbeatState::Up);
        assert_eq!(evaluate(&s, ping, 0, 170_001), HeartbeatState::Late);
        // The ping counts, however old the watch is.
        assert_eq!(evaluate(&s, ping, 0, 150_000), HeartbeatState::Up);
    }

    #[test]
    fn a_failed_ping_is_failed_until_silence_makes_it_late() {
        let s = spec();
        let ping = Some((100_000, PingStatus::Fail));
        assert_eq!(evaluate(&s, ping, 0, 100_001), HeartbeatState::Failed);
        assert_eq!(evaluate(&s, ping, 0, 170_000), HeartbeatState::Failed);
        assert_eq!(evaluate(&s, ping, 0, 170_001), HeartbeatState::Late);
        // The next ok ping brings it back up.
        let ok = Some((120_000, PingStatus::Ok));
        assert_eq!(evaluate(&s, ok, 0, 130_000), HeartbeatState::Up);
    }

    #[test]
    fn deadlines_saturate() {
        let mut s = spec();
        assert_eq!(deadline_ms(&s, 5), 70_005);
        s.period_ms = u64::MAX;
        assert_eq!(deadline_ms(&s, 5), i64::MAX);
        assert_eq!(deadline_ms(&s, i64::MIN), -1);
        s.period_ms = 1;
        s.grace_ms = 0;
        assert_eq!(deadline_ms(&s, i64::MAX), i64::MAX);
        assert_eq!(
            evaluate(&s, Some((i64::MAX, PingStatus::Ok)), 0, i64::MAX),
            HeartbeatState::Up
        );
    }
}
