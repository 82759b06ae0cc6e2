//! Alerts: what an alert is (a label set with annotations, a severity and a time span), how it
//! is identified (the fingerprint of its labels, computed as Prometheus and Alertmanager do, so
//! the same alert has the same fingerprint in both), reading alerts that other systems post
//! ([`ingest`]), routing them to receivers through a tree of label matchers ([`route`]), when
//! a group of them is notified ([`group`]), what mutes them ([`mute`]: silences and
//! maintenance windows), what `[alerting]` declares ([`spec`]) and the body webhook receivers
//! get, in Alertmanager's format ([`webhook`]).

pub mod group;
pub mod ingest;
pub mod mute;
pub mod notice;
pub mod route;
pub mod rules;
pub mod spec;
pub mod template;
pub mod webhook;

use std::fmt;

use serde::Serialize;

use crate::registry::Labels;

/// The label naming the workspace an alert concerns: scoped keys see only their workspace's
/// alerts.
pub const WORKSPACE_LABEL: &str = "workspace";

/// The most labels (or annotations) one alert may carry.
pub const MAX_LABELS: usize = 64;
/// The longest label value, in characters.
pub const MAX_LABEL_VALUE_CHARS: usize = 1_024;
/// The longest annotation value, in characters (descriptions, runbooks).
pub const MAX_ANNOTATION_VALUE_CHARS: usize = 16_384;
/// The most alerts one call may post.
pub const MAX_ALERTS_PER_CALL: usize = 10_000;

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Someone must act now.
    Critical,
    /// Someone should look soon.
    #[default]
    Warning,
    /// For the record.
    Info,
}

impl Severity {
    /// Every severity, most urgent first.
    pub const ALL: [Severity; 3] = [Self::Critical, Self::Warning, Self::Info];

    /// The name used in labels, the API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }

    /// The severity a name denotes, ignoring case.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an alert is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// Its condition holds.
    Firing,
    /// Its condition no longer holds (or its sender stopped re-sending it).
    Resolved,
}

impl AlertState {
    /// The name used in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// An alert's identity: a hash of its sorted label set, the same value Prometheus and
/// Alertmanager compute (FNV-1a over each name and value, each followed by a 0xff byte), shown
/// as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

impl Fingerprint {
    /// The fingerprint of `labels` (a `BTreeMap`, so already sorted by name).
    pub fn of(labels: &Labels) -> Self {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0100_0000_01b3;
        const SEPARATOR: u8 = 0xff;
        let mut hash = OFFSET;
        let mut add = |bytes: &[u8]| {
            for &b in bytes {
                hash ^= u64::from(b);
                hash = hash.wrapping_mul(PRIME);
            }
        };
        for (name, value) in labels {
            add(name.as_bytes());
            add(&[SEPARATOR]);
            add(value.as_bytes());
            add(&[SEPARATOR]);
        }
        Self(hash)
    }

    /// Parses 16 hex digits (as [`fmt::Display`] writes them).
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 16 {
            return None;
        }
        u64::from_str_radix(text, 16).ok().map(Self)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom("a fingerprint is 16 hex digits"))
    }
}

/// An alert as a sender posted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncomingAlert {
    /// What identifies it (`alertname`, `service`, `instance`, …); never empty.
    pub labels: Labels,
    /// What describes it (`summary`, `description`, `runbook_url`, …).
    pub annotations: Labels,
    /// Given explicitly, or by a `severity` label, else [`Severity::Warning`].
    pub severity: Severity,
    /// When it started firing, if the sender said.
    pub starts_at_ms: Option<i64>,
    /// When it ends (or ended), if the sender said; an alert without one resolves when its
    /// sender stops re-sending it for the resolve timeout.
    pub ends_at_ms: Option<i64>,
    /// A link back to the sender.
    pub generator_url: Option<String>,
}

impl IncomingAlert {
    /// Its identity.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.labels)
    }

    /// Its state at `now_ms`: resolved once its end has passed.
    pub fn state_at(&self, now_ms: i64) -> AlertState {
        match self.ends_at_ms {
            Some(end) if end <= now_ms => AlertState::Resolved,
            _ => AlertState::Firing,
        }
    }
}

/// True for a Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn fingerprints_match_alertmanager() {
        // Values computed with Prometheus's algorithm (model.LabelSet.Fingerprint).
        let fp = Fingerprint::of(&labels(&[("alertname", "ApiDown"), ("service", "api")]));
        assert_eq!(fp.to_string(), "a91422bb047fc3f7");
        assert_eq!(
            Fingerprint::of(&Labels::new()).to_string(),
            "cbf29ce484222325"
        );
        assert_eq!(
            Fingerprint::of(&labels(&[("a", "ü")])).to_string(),
            "ffd1cb2f240bec9b"
        );
        assert_eq!(Fingerprint::parse("a91422bb047fc3f7"), Some(fp));
        assert_eq!(Fingerprint::parse("a91422bb047fc3f"), None);
        assert_eq!(Fingerprint::parse("zz1422bb047fc3f7"), None);
    }

    #[test]
    fn label_names_follow_prometheus() {
        for good in ["a", "_x", "alertname", "A_1"] {
            assert!(is_label_name(good), "{good}");
        }
        for bad in ["", "1a", "a-b", "a.b", "é"] {
            assert!(!is_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn severities_parse_ignoring_case() {
        assert_eq!(Severity::parse("CRITICAL"), Some(Severity::Critical));
        assert_eq!(Severity::parse(" info "), Some(Severity::Info));
        assert_eq!(Severity::parse("page"), None);
        assert_eq!(Severity::default(), Severity::Warning);
    }

    #[test]
    fn an_alert_resolves_once_its_end_has_passed() {
        let alert = IncomingAlert {
            labels: labels(&[("alertname", "x")]),
            annotations: Labels::new(),
            severity: Severity::Info,
            starts_at_ms: Some(0),
            ends_at_ms: Some(100),
            generator_url: None,
        };
        assert_eq!(alert.state_at(99), AlertState::Firing);
        assert_eq!(alert.state_at(100), AlertState::Resolved);
    }

    #[test]
    fn the_separator_keeps_names_and_values_apart() {
        assert_ne!(
            Fingerprint::of(&labels(&[("a", "bc")])),
            Fingerprint::of(&labels(&[("ab", "c")]))
        );
    }

    proptest! {
        #[test]
        fn fingerprints_are_shown_and_read_back(
            pairs in proptest::collection::btree_map("[a-z_]{1,8}", ".{0,8}", 0..8)
        ) {
            let fp = Fingerprint::of(&pairs);
            prop_assert_eq!(Fingerprint::parse(&fp.to_string()), Some(fp));
        }
    }
}
