//! Alertmanager's API v2, the parts Steward serves so that `amtool`, Grafana's Alertmanager
//! data source and other Alertmanager clients work unchanged. Names and shapes follow
//! Alertmanager's OpenAPI definition (`api/v2/openapi.yaml`): camelCase fields, times as
//! RFC 3339 strings, silence ids as strings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Labels or annotations: names to values (`labelSet`).
pub type LabelSet = BTreeMap<String, String>;

/// The query of `GET /api/v2/alerts` and `GET /api/v2/alerts/groups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertsQuery {
    /// Matchers (`name="value"`, `name=~"regex"`, `name!=value`, `name!~regex`) that every
    /// alert shown must satisfy; `filter` may be given many times.
    pub filter: Vec<String>,
    /// Show alerts nothing mutes (default true).
    pub active: bool,
    /// Show silenced alerts (default true).
    pub silenced: bool,
    /// Show inhibited alerts (default true).
    pub inhibited: bool,
    /// Show alerts not processed yet (default true).
    pub unprocessed: bool,
    /// A regular expression (anchored) that one of an alert's receivers must match.
    pub receiver: Option<String>,
}

impl Default for AlertsQuery {
    fn default() -> Self {
        Self {
            filter: Vec::new(),
            active: true,
            silenced: true,
            inhibited: true,
            unprocessed: true,
            receiver: None,
        }
    }
}

/// The query of `GET /api/v2/silences`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SilencesQuery {
    /// Matchers a silence must hold (each one exactly, by name, operator and value).
    pub filter: Vec<String>,
}

/// A receiver, by name (`receiver`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct Receiver {
    /// Its name.
    pub name: String,
}

/// An alert as Alertmanager lists it (`gettableAlert`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GettableAlert {
    /// Its labels.
    #[schema(inline)]
    pub labels: LabelSet,
    /// Its annotations.
    #[schema(inline)]
    pub annotations: LabelSet,
    /// When it started firing.
    #[schema(format = DateTime)]
    pub starts_at: String,
    /// When it ends (or ended); Go's zero time (`0001-01-01T00:00:00Z`) when it has no end.
    #[schema(format = DateTime)]
    pub ends_at: String,
    /// When it was last received.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// A link back to its source; left out when there is none, as Alertmanager does.
    #[serde(
        rename = "generatorURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub generator_url: Option<String>,
    /// The hash of its label set, 16 hex digits.
    pub fingerprint: String,
    /// The receivers its routes lead to.
    pub receivers: Vec<Receiver>,
    /// Whether and by what it is muted.
    pub status: AlertStatus,
}

/// What `state` an alert is in (`alertStatus.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Not processed yet.
    Unprocessed,
    /// Firing, and nothing mutes it.
    Active,
    /// Firing, and muted (silenced or inhibited).
    Suppressed,
}

/// Whether and by what an alert is muted (`alertStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertStatus {
    /// Active or suppressed.
    pub state: AlertState,
    /// The ids of the silences muting it.
    pub silenced_by: Vec<String>,
    /// The fingerprints of the alerts inhibiting it.
    pub inhibited_by: Vec<String>,
}

/// Alerts grouped as they are notified (`alertGroup`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertGroup {
    /// The group's labels (the values of its route's `group_by` labels).
    #[schema(inline)]
    pub labels: LabelSet,
    /// The receiver the group is notified to.
    pub receiver: Receiver,
    /// Its alerts.
    pub alerts: Vec<GettableAlert>,
}

/// One matcher of a silence (`matcher`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    /// The label.
    pub name: String,
    /// The value, or the regular expression.
    pub value: String,
    /// `value` is a regular expression (`=~`, `!~`).
    pub is_regex: bool,
    /// The label must match (`=`, `=~`) rather than not match (`!=`, `!~`); true when absent.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

/// A silence to create, or to put in place of the one it names (`postableSilence`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostableSilence {
    /// The silence it replaces; absent (or empty) for a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// All must match (at least one).
    pub matchers: Vec<Matcher>,
    /// From when, RFC 3339.
    #[schema(format = DateTime)]
    pub starts_at: String,
    /// Until when, RFC 3339.
    #[schema(format = DateTime)]
    pub ends_at: String,
    /// Who creates it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

/// The answer to `POST /api/v2/silences`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PostedSilence {
    /// The id of the silence created.
    #[serde(rename = "silenceID")]
    pub silence_id: String,
}

/// Where a silence is in its life (`silenceStatus.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// In force.
    Active,
    /// To come.
    Pending,
    /// Over.
    Expired,
}

/// A silence's status (`silenceStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SilenceStatus {
    /// Active, pending or expired.
    pub state: SilenceState,
}

/// A silence as Alertmanager lists it (`gettableSilence`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GettableSilence {
    /// Its id.
    pub id: String,
    /// Active, pending or expired.
    pub status: SilenceStatus,
    /// When it was last changed.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// All must match.
    pub matchers: Vec<Matcher>,
    /// From when.
    #[schema(format = DateTime)]
    pub starts_at: String,
    /// Until when.
    #[schema(format = DateTime)]
    pub ends_at: String,
    /// Who created it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

/// The answer to `GET /api/v2/status` (`alertmanagerStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerStatus {
    /// The cluster this instance belongs to.
    pub cluster: ClusterStatus,
    /// What is running.
    pub version_info: VersionInfo,
    /// The configuration in force, as Alertmanager's YAML.
    pub config: AlertmanagerConfig,
    /// When the process started (RFC 3339).
    #[schema(format = DateTime)]
    pub uptime: String,
}

/// Whether the cluster is formed (`clusterStatus.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClusterState {
    /// Ready.
    Ready,
    /// Still gathering its peers.
    Settling,
    /// Clustering is off.
    Disabled,
}

/// The cluster (`clusterStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClusterStatus {
    /// This instance's name in it.
    pub name: String,
    /// Whether it is ready.
    pub status: ClusterState,
    /// The other members.
    pub peers: Vec<PeerStatus>,
}

/// A member of the cluster (`peerStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PeerStatus {
    /// Its name.
    pub name: String,
    /// Its address.
    pub address: String,
}

/// What is running (`versionInfo`); fields not known are empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// The version.
    pub version: String,
    /// The source revision it was built from.
    pub revision: String,
    /// The branch it was built from.
    pub branch: String,
    /// Who built it.
    pub build_user: String,
    /// When it was built.
    pub build_date: String,
    /// The Go version it was built with (none, for Steward).
    pub go_version: String,
}

/// The configuration in force (`alertmanagerConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertmanagerConfig {
    /// As Alertmanager's YAML; empty, as Steward's configuration is its own file.
    pub original: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silence_from_amtool_reads_and_answers_use_alertmanagers_names() {
        // What `amtool silence add alertname=X -c comment -d 1h` sends.
        let posted: PostableSilence = serde_json::from_str(
            r#"{"comment":"comment","createdBy":"root","endsAt":"2026-12-06T22:53:43.605Z",
                "matchers":[{"isEqual":true,"isRegex":false,"name":"alertname","value":"X"}],
                "startsAt":"2026-12-06T21:53:43.605Z"}"#,
        )
        .unwrap();
        assert_eq!(posted.id, None);
        assert_eq!(posted.matchers[0].name, "alertname");
        let without_is_equal: Matcher =
            serde_json::from_str(r#"{"name":"a","value":"b","isRegex":true}"#).unwrap();
        assert!(without_is_equal.is_equal, "isEqual defaults to true");
        let answer = serde_json::to_value(PostedSilence {
            silence_id: "7".into(),
        })
        .unwrap();
        assert_eq!(answer, serde_json::json!({"silenceID": "7"}));
        let alert = GettableAlert {
            labels: LabelSet::new(),
            annotations: LabelSet::new(),
            starts_at: "s".into(),
            ends_at: "e".into(),
            updated_at: "u".into(),
            generator_url: None,
            fingerprint: "0000000000000001".into(),
            receivers: vec![Receiver { name: "n8n".into() }],
            status: AlertStatus {
                state: AlertState::Suppressed,
                silenced_by: vec!["7".into()],
                inhibited_by: Vec::new(),
            },
        };
        let shown = serde_json::to_value(&alert).unwrap();
        assert_eq!(shown["status"]["state"], "suppressed");
        assert_eq!(shown["status"]["silencedBy"][0], "7");
        assert_eq!(shown["updatedAt"], "u");
        assert!(shown.get("generatorURL").is_none());
    }
}
