//! What `[alerting]` declares: receivers (webhook, Slack, Telegram, email), the route tree
//! (see [`super::route`]) with optional remediation tasks, inhibition rules, and settings.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::route::{Matcher, Route};
use crate::Secret;

/// How long an external alert that is no longer re-sent stays firing (Alertmanager's default).
pub const DEFAULT_RESOLVE_TIMEOUT_MS: u64 = 5 * 60_000;
/// How long a notification is retried before it expires.
pub const DEFAULT_NOTIFICATION_TTL_MS: u64 = 24 * 3_600_000;
/// How long resolved alerts and delivered notifications are kept.
pub const DEFAULT_ALERT_RETENTION_MS: u64 = 30 * 24 * 3_600_000;
/// The Telegram Bot API a receiver calls unless told otherwise.
pub const DEFAULT_TELEGRAM_API: &str = "https://api.telegram.org";

/// `[alerting]`: everything about turning alerts into notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertingSpec {
    /// Settings.
    pub settings: AlertingSettings,
    /// `external_url`: the address notifications link back to (Alertmanager's
    /// `--web.external-url`); `None`: `http://` and the listen address.
    pub external_url: Option<String>,
    /// `[[alerting.receivers]]`, in file order.
    pub receivers: Vec<ReceiverSpec>,
    /// `[alerting.route]`: the root names a receiver; `None` when alerting is not configured.
    pub route: Option<Route>,
    /// Remediation tasks by route path (child indices from the root, as in
    /// [`super::route::Destination::path`]).
    pub remediations: BTreeMap<Vec<usize>, Remediation>,
    /// Escalations by route path: where a firing alert also goes when nobody acknowledged it
    /// in time.
    pub escalations: BTreeMap<Vec<usize>, Escalation>,
    /// `[[alerting.inhibit_rules]]`, in file order.
    pub inhibit_rules: Vec<InhibitRule>,
    /// `[[alerting.rules]]`: built-in rules, in file order.
    pub rules: Vec<super::rules::RuleSpec>,
    /// How often the rules are evaluated.
    pub rule_interval_ms: u64,
    /// `[[alerting.maintenance]]`: recurring windows that mute matching alerts.
    pub maintenance: Vec<super::mute::MaintenanceWindow>,
}

/// `[alerting]`'s own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertingSettings {
    /// An external alert without an end resolves when not re-sent for this long.
    pub resolve_timeout_ms: u64,
    /// A notification not delivered within this long expires.
    pub notification_ttl_ms: u64,
    /// Resolved alerts and finished notifications older than this are pruned.
    pub retention_ms: u64,
}

impl Default for AlertingSpec {
    fn default() -> Self {
        Self {
            settings: AlertingSettings::default(),
            external_url: None,
            receivers: Vec::new(),
            route: None,
            remediations: BTreeMap::new(),
            escalations: BTreeMap::new(),
            inhibit_rules: Vec::new(),
            rules: Vec::new(),
            rule_interval_ms: super::rules::DEFAULT_RULE_INTERVAL_MS,
            maintenance: Vec::new(),
        }
    }
}

impl Default for AlertingSettings {
    fn default() -> Self {
        Self {
            resolve_timeout_ms: DEFAULT_RESOLVE_TIMEOUT_MS,
            notification_ttl_ms: DEFAULT_NOTIFICATION_TTL_MS,
            retention_ms: DEFAULT_ALERT_RETENTION_MS,
        }
    }
}

/// Where notifications go.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverSpec {
    /// Unique among receivers; routes name it.
    pub name: String,
    /// How it is reached.
    pub kind: ReceiverKind,
    /// Also notify when a group's alerts resolve (default true).
    pub send_resolved: bool,
    /// A message template (minijinja) replacing the kind's default text; webhooks always send
    /// Alertmanager's JSON.
    pub template: Option<String>,
}

/// The kinds of receiver.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverKind {
    /// An HTTP POST of Alertmanager's webhook JSON (n8n, OpenClaw, any Alertmanager receiver).
    Webhook {
        /// Where to POST (may hold a secret).
        url: Secret,
        /// Extra headers (values may hold secrets).
        headers: BTreeMap<String, Secret>,
        /// At most this many alerts per notification (0: all).
        max_alerts: usize,
    },
    /// A Slack incoming webhook.
    Slack {
        /// The incoming-webhook URL (a secret).
        webhook_url: Secret,
        /// Overrides the webhook's channel.
        channel: Option<String>,
    },
    /// Telegram's Bot API `sendMessage`.
    Telegram {
        /// The bot token (a secret).
        bot_token: Secret,
        /// The chat to post to.
        chat_id: String,
        /// The API's base URL ([`DEFAULT_TELEGRAM_API`] unless set, e.g. for a local Bot API
        /// server).
        api_url: String,
    },
    /// Email over SMTP, with STARTTLS required unless turned off.
    Email {
        /// Recipients.
        to: Vec<String>,
        /// The sender address.
        from: String,
        /// `host:port` of the SMTP server.
        smarthost: String,
        /// Login, if the server wants one.
        username: Option<String>,
        /// Its password (a secret).
        password: Option<Secret>,
        /// Require STARTTLS (default true; false only for a local relay).
        starttls: bool,
    },
}

impl ReceiverKind {
    /// The name used in `type = "…"` and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Webhook { .. } => "webhook",
            Self::Slack { .. } => "slack",
            Self::Telegram { .. } => "telegram",
            Self::Email { .. } => "email",
        }
    }
}

/// A task a route enqueues once per alert firing (the seeds' `plan_from_alerts` →
/// `dispatch_tasks`).
#[derive(Debug, Clone, PartialEq)]
pub struct Remediation {
    /// A declared queue.
    pub queue: String,
    /// A kind the queue allows.
    pub kind: String,
    /// The payload; string values are minijinja templates over the alert (`{{ labels.service }}`).
    pub payload: Json,
}

/// A route's escalation: a firing alert not acknowledged within `after_ms` of its start is
/// also sent to `receiver` (in groups of its own, notified at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    /// How long an alert may fire unacknowledged.
    pub after_ms: u64,
    /// The next receiver.
    pub receiver: String,
}

/// Mutes target alerts while a source alert fires, where both agree on the `equal` labels
/// (Alertmanager's inhibition).
#[derive(Debug, Clone, PartialEq)]
pub struct InhibitRule {
    /// What the inhibiting alert must match.
    pub source: Vec<Matcher>,
    /// What the inhibited alerts must match.
    pub target: Vec<Matcher>,
    /// Labels whose values must be equal in both (a label missing from both counts as equal).
    pub equal: Vec<String>,
}

impl InhibitRule {
    /// Whether `target` is muted by any of the firing `sources` (each a label set). An alert
    /// never inhibits itself.
    pub fn inhibits<'a>(
        &self,
        target: &crate::registry::Labels,
        mut sources: impl Iterator<Item = &'a crate::registry::Labels>,
    ) -> bool {
        if !self.target.iter().all(|m| m.matches(target)) {
            return false;
        }
        sources.any(|source| {
            source != target
                && self.source.iter().all(|m| m.matches(source))
                && self
                    .equal
                    .iter()
                    .all(|name| source.get(name) == target.get(name))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Labels;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn inhibition_follows_alertmanager() {
        let rule = InhibitRule {
            source: vec![Matcher::parse("severity=critical").unwrap()],
            target: vec![Matcher::parse("severity=warning").unwrap()],
            equal: vec!["service".into()],
        };
        let critical_api = labels(&[("severity", "critical"), ("service", "api")]);
        let warning_api = labels(&[("severity", "warning"), ("service", "api")]);
        let warning_db = labels(&[("severity", "warning"), ("service", "db")]);
        assert!(rule.inhibits(&warning_api, [&critical_api].into_iter()));
        assert!(
            !rule.inhibits(&warning_db, [&critical_api].into_iter()),
            "equal labels differ"
        );
        assert!(
            !rule.inhibits(&critical_api, [&critical_api].into_iter()),
            "never itself"
        );
        assert!(!rule.inhibits(&warning_api, std::iter::empty()));
        // A label missing from both counts as equal.
        let bare_source = labels(&[("severity", "critical")]);
        let bare_target = labels(&[("severity", "warning")]);
        assert!(rule.inhibits(&bare_target, [&bare_source].into_iter()));
    }

    #[test]
    fn receiver_kinds_have_distinct_names() {
        let kinds = [
            ReceiverKind::Webhook {
                url: Secret::new("http://x"),
                headers: BTreeMap::new(),
                max_alerts: 0,
            },
            ReceiverKind::Slack {
                webhook_url: Secret::new("http://x"),
                channel: None,
            },
            ReceiverKind::Telegram {
                bot_token: Secret::new("t"),
                chat_id: "1".into(),
                api_url: DEFAULT_TELEGRAM_API.into(),
            },
            ReceiverKind::Email {
                to: vec!["a@b".into()],
                from: "s@b".into(),
                smarthost: "smtp:587".into(),
                username: None,
                password: None,
                starttls: true,
            },
        ];
        let names: std::collections::BTreeSet<_> = kinds.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), 4);
    }
}
