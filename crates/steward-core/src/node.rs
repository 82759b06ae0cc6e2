//! The fleet's pure parts: what `[[nodes]]` declares, node ids, judging a node's status from
//! its last heartbeat, join tokens' format, and drift (services declared on a node that the
//! node does not report).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// What `[[nodes]]` declares, or `steward nodes add` adds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSpec {
    /// Its id (`vps-02`): what agents, queues and services name it by.
    pub id: String,
    /// Its host name.
    pub hostname: String,
    /// Its address, if known.
    pub address: Option<String>,
    /// Its workspace, if it belongs to one.
    pub workspace: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// The longest node id.
pub const MAX_NODE_ID_LEN: usize = 64;

/// Why a string is not a node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdError {
    /// Empty.
    #[error("a node id cannot be empty")]
    Empty,
    /// Too long.
    #[error("a node id has at most {MAX_NODE_ID_LEN} characters")]
    TooLong,
    /// A character outside letters, digits, `-`, `_` and `.`, or a leading `.`/`-`.
    #[error(
        "a node id is letters, digits, `-`, `_` and `.`, starting with a letter or digit (found `{0}`)"
    )]
    Character(String),
}

/// Checks a node id: it appears in paths, key names and file names, so it is kept plain.
pub fn check_node_id(id: &str) -> Result<(), NodeIdError> {
    if id.is_empty() {
        return Err(NodeIdError::Empty);
    }
    if id.len() > MAX_NODE_ID_LEN {
        return Err(NodeIdError::TooLong);
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let starts_well = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !starts_well || !id.chars().all(plain) {
        return Err(NodeIdError::Character(id.to_owned()));
    }
    Ok(())
}

/// A node's state as judged from its heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeStatus {
    /// Never heard from.
    Pending,
    /// Heartbeats arrive on time.
    Up,
    /// One interval plus grace passed without a heartbeat.
    Late,
    /// `down_after` passed without a heartbeat.
    Down,
}

impl NodeStatus {
    /// Every status.
    pub const ALL: [NodeStatus; 4] = [
        NodeStatus::Pending,
        NodeStatus::Up,
        NodeStatus::Late,
        NodeStatus::Down,
    ];

    /// Its name in the store, the API and events.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Pending => "pending",
            NodeStatus::Up => "up",
            NodeStatus::Late => "late",
            NodeStatus::Down => "down",
        }
    }
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of [`NodeStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown node status `{0}`")]
pub struct UnknownNodeStatus(pub String);

impl FromStr for NodeStatus {
    type Err = UnknownNodeStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownNodeStatus(s.to_owned()))
    }
}

/// How long silence is tolerated: a node is `late` once `interval + grace` passed since its
/// last heartbeat and `down` once `down_after` passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusTiming {
    /// The interval the node heartbeats at, in ms.
    pub interval_ms: i64,
    /// Extra silence tolerated before `late`, in ms: one heartbeat delayed by the network or a
    /// busy hub must not make a node late.
    pub grace_ms: i64,
    /// Silence after which the node is `down`, in ms.
    pub down_after_ms: i64,
}

impl StatusTiming {
    /// The default timing for a node heartbeating every `interval_ms`: grace of half an
    /// interval (at least 2 s), `down` after 3 intervals.
    pub fn for_interval(interval_ms: i64, down_after_intervals: u32) -> Self {
        let interval_ms = interval_ms.max(1);
        Self {
            interval_ms,
            grace_ms: (interval_ms / 2).max(2_000),
            down_after_ms: interval_ms.saturating_mul(i64::from(down_after_intervals.max(1))),
        }
    }
}

/// The status of a node last heard at `last_seen_ms` (`None`: never), judged at `now_ms`.
///
/// The judgement depends only on the silence, so one heartbeat is enough to bring a node back
/// `up`, and one that arrives within the grace never makes it `late`: it cannot flap on a single
/// delayed packet.
pub fn judge_status(last_seen_ms: Option<i64>, timing: StatusTiming, now_ms: i64) -> NodeStatus {
    let Some(last) = last_seen_ms else {
        return NodeStatus::Pending;
    };
    let silence = now_ms.saturating_sub(last);
    let late_after = timing.interval_ms.saturating_add(timing.grace_ms);
    let down_after = timing.down_after_ms.max(late_after);
    if silence > down_after {
        NodeStatus::Down
    } else if silence > late_after {
        NodeStatus::Late
    } else {
        NodeStatus::Up
    }
}

/// What a join token starts with.
pub const JOIN_TOKEN_PREFIX: &str = "stj_";

/// Builds a join token from 32 random bytes (the caller supplies the randomness).
pub fn format_join_token(random: &[u8; 32]) -> String {
    let key = crate::auth::format_key(random);
    format!(
        "{JOIN_TOKEN_PREFIX}{}",
        key.trim_start_matches(crate::auth::KEY_PREFIX)
    )
}

/// Checks a presented join token's shape and checksum (the same as a key's, under `stj_`).
pub fn check_join_token_format(token: &str) -> Result<(), crate::auth::KeyFormatError> {
    let body = token
        .strip_prefix(JOIN_TOKEN_PREFIX)
        .ok_or(crate::auth::KeyFormatError::Prefix)?;
    crate::auth::check_key_format(&format!("{}{body}", crate::auth::KEY_PREFIX))
}

/// The name of the key a node's agent registers with: one per registration, so a node can be
/// re-registered without reusing a name.
pub fn agent_key_name(node: &str, at_ms: i64) -> String {
    format!("node:{node}:{at_ms}")
}

/// A service declared on a node, as drift sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredService {
    /// The service's name.
    pub name: String,
    /// The host of its URL, if it has one.
    pub host: Option<String>,
}

/// What a node reports that drift is judged against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reported<'a> {
    /// Its containers' names; `None` when it has no Docker Engine.
    pub containers: Option<Vec<&'a str>>,
    /// Its domains' names.
    pub domains: Vec<&'a str>,
}

/// A declared service the node does not report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftFinding {
    /// The service.
    pub service: String,
    /// What is missing, in words.
    pub reason: String,
}

/// The services declared on a node that it reports neither as a container (named like the
/// service) nor as a domain (its URL's host). A node that has not reported yet has no drift:
/// silence is judged by its status, not here.
pub fn drift(services: &[DeclaredService], reported: &Reported<'_>) -> Vec<DriftFinding> {
    services
        .iter()
        .filter(|s| !is_reported(s, reported))
        .map(|s| DriftFinding {
            service: s.name.clone(),
            reason: missing_reason(s, reported),
        })
        .collect()
}

fn is_reported(service: &DeclaredService, reported: &Reported<'_>) -> bool {
    let container = reported
        .containers
        .as_ref()
        .is_some_and(|names| names.iter().any(|n| container_matches(n, &service.name)));
    let domain = service.host.as_deref().is_some_and(|host| {
        reported
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(host) || wildcard_covers(d, host))
    });
    container || domain
}

/// Compose names containers `project-service-1` or `project_service_1`; a container counts as
/// the service's when its name is the service's or one of those forms.
fn container_matches(container: &str, service: &str) -> bool {
    if container.eq_ignore_ascii_case(service) {
        return true;
    }
    container
        .split(['-', '_'])
        .any(|part| part.eq_ignore_ascii_case(service))
        || container
            .split(['_'])
            .any(|p| p.eq_ignore_ascii_case(service))
}

/// `*.example.com` covers `api.example.com` (one label, as NGINX and TLS read it).
fn wildcard_covers(pattern: &str, host: &str) -> bool {
    let Some(suffix) = pattern.strip_prefix("*.") else {
        return false;
    };
    host.split_once('.')
        .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix))
}

fn missing_reason(service: &DeclaredService, reported: &Reported<'_>) -> String {
    let container = if reported.containers.is_some() {
        format!("no container named `{}`", service.name)
    } else {
        "no Docker Engine reported".to_owned()
    };
    match &service.host {
        Some(host) => format!("{container} and no vhost for `{host}`"),
        None => container,
    }
}

/// What `[fleet]` declares: how the hub judges every node's status from its heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetSpec {
    /// `down_after`: the heartbeat intervals a node may miss before it is `down`.
    pub down_after_intervals: u32,
    /// `grace`: extra silence tolerated before a node is `late`, in ms; `None` leaves it to
    /// [`StatusTiming::for_interval`] (half the node's interval, at least 2 s), so nodes
    /// heartbeating at different intervals each get a grace in proportion.
    pub grace_ms: Option<i64>,
}

impl FleetSpec {
    /// `down_after` when not given.
    pub const DEFAULT_DOWN_AFTER_INTERVALS: u32 = 3;
    /// The smallest `down_after`: with one, a node would be `down` as soon as it is `late`,
    /// and `late` would never show.
    pub const MIN_DOWN_AFTER_INTERVALS: u32 = 2;
    /// The largest `down_after`.
    pub const MAX_DOWN_AFTER_INTERVALS: u32 = 100;

    /// The timing of a node heartbeating every `interval_ms`, under these settings.
    pub fn timing(&self, interval_ms: i64) -> StatusTiming {
        let mut timing = StatusTiming::for_interval(interval_ms, self.down_after_intervals);
        if let Some(grace_ms) = self.grace_ms {
            timing.grace_ms = grace_ms.max(0);
        }
        timing
    }
}

impl Default for FleetSpec {
    fn default() -> Self {
        Self {
            down_after_intervals: Self::DEFAULT_DOWN_AFTER_INTERVALS,
            grace_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn node_ids_are_plain() {
        assert_eq!(check_node_id("vps-02"), Ok(()));
        assert_eq!(check_node_id("edge_1.eu"), Ok(()));
        assert_eq!(check_node_id(""), Err(NodeIdError::Empty));
        assert!(check_node_id("-x").is_err());
        assert!(check_node_id("a/b").is_err());
        assert!(check_node_id("a b").is_err());
        assert!(check_node_id(&"a".repeat(65)).is_err());
    }

    #[test]
    fn silence_decides_the_status() {
        let t = StatusTiming::for_interval(10_000, 3);
        assert_eq!(t.grace_ms, 5_000);
        assert_eq!(judge_status(None, t, 0), NodeStatus::Pending);
        assert_eq!(judge_status(Some(0), t, 10_000), NodeStatus::Up);
        // One heartbeat delayed by less than the grace: still up.
        assert_eq!(judge_status(Some(0), t, 14_999), NodeStatus::Up);
        assert_eq!(judge_status(Some(0), t, 15_001), NodeStatus::Late);
        assert_eq!(judge_status(Some(0), t, 30_000), NodeStatus::Late);
        assert_eq!(judge_status(Some(0), t, 30_001), NodeStatus::Down);
        // A clock that went backwards is not silence.
        assert_eq!(judge_status(Some(50_000), t, 0), NodeStatus::Up);
    }

    #[test]
    fn down_never_comes_before_late() {
        let t = StatusTiming {
            interval_ms: 10_000,
            grace_ms: 5_000,
            down_after_ms: 1_000,
        };
        assert_eq!(judge_status(Some(0), t, 12_000), NodeStatus::Up);
        assert_eq!(judge_status(Some(0), t, 16_000), NodeStatus::Down);
    }

    #[test]
    fn join_tokens_have_their_own_prefix_and_a_checksum() {
        let token = format_join_token(&[9; 32]);
        assert!(token.starts_with("stj_"));
        assert_eq!(check_join_token_format(&token), Ok(()));
        assert!(
            check_join_token_format(&format_join_token(&[9; 32]).replace("stj_", "stw_")).is_err()
        );
        let mut chars: Vec<char> = token.chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert!(check_join_token_format(&typo).is_err());
    }

    #[test]
    fn a_service_is_reported_by_its_container_or_its_domain() {
        let services = vec![
            DeclaredService {
                name: "api".into(),
                host: Some("api.example.com".into()),
            },
            DeclaredService {
                name: "worker".into(),
                host: None,
            },
            DeclaredService {
                name: "web".into(),
                host: Some("www.example.com".into()),
            },
            DeclaredService {
                name: "gone".into(),
                host: Some("gone.example.com".into()),
            },
        ];
        let reported = Reported {
            containers: Some(vec!["shop-worker-1"]),
            domains: vec!["API.example.com", "*.example.org"],
        };
        let found = drift(&services, &reported);
        let names: Vec<&str> = found.iter().map(|f| f.service.as_str()).collect();
        assert_eq!(names, ["web", "gone"]);
        assert_eq!(
            found[1].reason,
            "no container named `gone` and no vhost for `gone.example.com`"
        );
        let wildcard = Reported {
            containers: None,
            domains: vec!["*.example.com"],
        };
        let found = drift(&services, &wildcard);
        let names: Vec<&str> = found.iter().map(|f| f.service.as_str()).collect();
        assert_eq!(names, ["worker"]);
        assert_eq!(found[0].reason, "no Docker Engine reported");
    }

    #[test]
    fn fleet_settings_shape_the_timing() {
        let default = FleetSpec::default().timing(10_000);
        assert_eq!(default, StatusTiming::for_interval(10_000, 3));
        let fleet = FleetSpec {
            down_after_intervals: 5,
            grace_ms: Some(1_000),
        };
        let t = fleet.timing(10_000);
        assert_eq!((t.grace_ms, t.down_after_ms), (1_000, 50_000));
        assert_eq!(judge_status(Some(0), t, 11_001), NodeStatus::Late);
        assert_eq!(judge_status(Some(0), t, 50_001), NodeStatus::Down);
    }

    proptest! {
        #[test]
        fn status_only_worsens_as_silence_grows(interval in 1_000i64..120_000, a in 0i64..1_000_000, b in 0i64..1_000_000) {
            let t = StatusTiming::for_interval(interval, 3);
            let (short, long) = if a < b { (a, b) } else { (b, a) };
            prop_assert!(judge_status(Some(0), t, short) <= judge_status(Some(0), t, long));
        }
    }
}
