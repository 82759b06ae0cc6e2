//! Why an alert is held back from notifications: a silence, a maintenance window, an
//! inhibition rule, or (automatic inhibition) its service being impacted by a down dependency,
//! so the dependency's alert speaks for it.

use std::collections::{HashMap, HashSet};

use steward_config::Config;
use steward_core::Registry;
use steward_core::alert::mute::MaintenanceWindow;
use steward_core::alert::spec::InhibitRule;
use steward_core::alert::{AlertState, Fingerprint};
use steward_core::registry::Labels;
use steward_store::Store;
use steward_store::alerts::{StoredAlert, StoredSilence};

/// The label naming the service an alert is about, for automatic inhibition.
pub const SERVICE_LABEL: &str = "service";

/// Why an alert is muted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Muted {
    /// By the silence with this id.
    Silenced(i64),
    /// By the maintenance window with this name.
    Maintenance(String),
    /// By an inhibition rule (the index of the rule).
    Inhibited(usize),
    /// Its service depends on these down services.
    Impacted(Vec<String>),
}

/// Everything that mutes one alert at one moment, naming each cause: what Alertmanager's API
/// shows as an alert's status (`silencedBy`, `inhibitedBy`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mutes {
    /// The silences in force whose matchers all match, by id.
    pub silences: Vec<i64>,
    /// The maintenance windows in force whose matchers all match, by name.
    pub windows: Vec<String>,
    /// The firing alerts holding it back, ascending: sources of an inhibition rule that agree
    /// on its `equal` labels, and alerts about a down service its service depends on.
    pub inhibitors: Vec<Fingerprint>,
}

impl Mutes {
    /// Whether nothing mutes the alert.
    pub fn is_empty(&self) -> bool {
        self.silences.is_empty() && self.windows.is_empty() && self.inhibitors.is_empty()
    }
}

/// The firing alerts that can hold others back, by what they hold back, for
/// [`Muting::explain`]: built once per read from the firing alerts (cost: alerts × rules).
#[derive(Debug, Default)]
pub struct Inhibitors {
    /// Per rule: the firing alerts matching its source, by their `equal` label values.
    by_rule: Vec<HashMap<Vec<Option<String>>, Vec<Fingerprint>>>,
    /// Firing alerts by the service they are about (kept only while a service is impacted).
    by_service: HashMap<String, Vec<Fingerprint>>,
}

/// Everything that mutes alerts at one moment.
#[derive(Debug, Default)]
pub struct Muting {
    silences: Vec<StoredSilence>,
    windows: Vec<MaintenanceWindow>,
    rules: Vec<InhibitRule>,
    /// Per rule: the `equal` label values of the firing alerts matching its source, with how
    /// many alerts share them (an alert must not inhibit itself).
    sources: Vec<HashMap<Vec<Option<String>>, usize>>,
    /// Services impacted by a down dependency, with the down services.
    impacted: HashMap<String, Vec<String>>,
    /// The `service` labels of firing alerts: an impacted service's alerts are held only while
    /// a down dependency has an alert of its own to speak for them.
    alerting_services: HashSet<String>,
}

impl Muting {
    /// Muting by `silences`, `windows` and inhibition `rules`, with `impacted` services held.
    pub fn new(
        silences: Vec<StoredSilence>,
        windows: Vec<MaintenanceWindow>,
        rules: Vec<InhibitRule>,
        impacted: HashMap<String, Vec<String>>,
    ) -> Self {
        let sources = vec![HashMap::new(); rules.len()];
        Self {
            silences,
            windows,
            rules,
            sources,
            impacted,
            alerting_services: HashSet::new(),
        }
    }

    /// Replaces the silences.
    pub fn set_silences(&mut self, silences: Vec<StoredSilence>) {
        self.silences = silences;
    }

    /// Replaces the impacted services.
    pub fn set_impacted(&mut self, impacted: HashMap<String, Vec<String>>) {
        self.impacted = impacted;
    }

    /// Replaces the windows and rules (after a config reload).
    pub fn set_config(&mut self, windows: Vec<MaintenanceWindow>, rules: Vec<InhibitRule>) {
        self.windows = windows;
        self.sources = vec![HashMap::new(); rules.len()];
        self.rules = rules;
    }

    /// Indexes the firing alerts that can inhibit others (cost: alerts × rules), and the
    /// services firing alerts are about; nothing when no rule or impacted service reads them.
    pub fn index_sources<'a>(&mut self, alerts: impl Iterator<Item = &'a StoredAlert>) {
        self.alerting_services.clear();
        if !self.needs_index() {
            return;
        }
        for index in &mut self.sources {
            index.clear();
        }
        for alert in alerts.filter(|a| a.state == AlertState::Firing) {
            if let Some(source) = impact_source(&alert.labels) {
                self.alerting_services.insert(source);
            }
            for (rule, index) in self.rules.iter().zip(self.sources.iter_mut()) {
                if rule.source.iter().all(|m| m.matches(&alert.labels)) {
                    *index.entry(equal_values(rule, &alert.labels)).or_default() += 1;
                }
            }
        }
    }

    /// Whether anything reads the index: inhibition rules, or impacted services.
    pub fn needs_index(&self) -> bool {
        !self.rules.is_empty() || !self.impacted.is_empty()
    }

    /// Why `alert` is muted at `now_ms`, if it is.
    pub fn why(&self, alert: &StoredAlert, now_ms: i64) -> Option<Muted> {
        // Asked for every alert of every group decided: without anything that could mute, the
        // alert's labels are not even looked at.
        if self.mutes_nothing() {
            return None;
        }
        if let Some(silence) = self.silences.iter().find(|s| {
            (s.starts_at_ms..s.ends_at_ms).contains(&now_ms)
                && s.matchers.iter().all(|m| m.matches(&alert.labels))
        }) {
            return Some(Muted::Silenced(silence.id));
        }
        if let Some(window) = self.windows.iter().find(|w| w.mutes(&alert.labels, now_ms)) {
            return Some(Muted::Maintenance(window.name.clone()));
        }
        if let Some(rule) = self.inhibiting_rule(&alert.labels) {
            return Some(Muted::Inhibited(rule));
        }
        alert
            .labels
            .get(SERVICE_LABEL)
            .and_then(|service| self.impacted.get(service))
            .filter(|down| down.iter().any(|d| self.alerting_services.contains(d)))
            .map(|down| Muted::Impacted(down.clone()))
    }

    /// Indexes the firing alerts among `alerts` that can hold others back, naming them (where
    /// [`Self::index_sources`] only counts them, which is all notifications need).
    pub fn inhibitors<'a>(&self, alerts: impl Iterator<Item = &'a StoredAlert>) -> Inhibitors {
        let mut found = Inhibitors {
            by_rule: vec![HashMap::new(); self.rules.len()],
            by_service: HashMap::new(),
        };
        if !self.needs_index() {
            return found;
        }
        for alert in alerts.filter(|a| a.state == AlertState::Firing) {
            if !self.impacted.is_empty()
                && let Some(source) = impact_source(&alert.labels)
            {
                found
                    .by_service
                    .entry(source)
                    .or_default()
                    .push(alert.fingerprint);
            }
            for (rule, index) in self.rules.iter().zip(found.by_rule.iter_mut()) {
                if rule.source.iter().all(|m| m.matches(&alert.labels)) {
                    index
                        .entry(equal_values(rule, &alert.labels))
                        .or_default()
                        .push(alert.fingerprint);
                }
            }
        }
        found
    }

    /// Everything that mutes `alert` at `now_ms`, with `inhibitors` indexed from the firing
    /// alerts. It is empty exactly when [`Self::why`] (with its sources indexed from the same
    /// alerts) finds nothing; `why` stops at the first cause, this names them all.
    pub fn explain(&self, alert: &StoredAlert, now_ms: i64, inhibitors: &Inhibitors) -> Mutes {
        let labels = &alert.labels;
        let silences = self
            .silences
            .iter()
            .filter(|s| {
                (s.starts_at_ms..s.ends_at_ms).contains(&now_ms)
                    && s.matchers.iter().all(|m| m.matches(labels))
            })
            .map(|s| s.id)
            .collect();
        let windows = self
            .windows
            .iter()
            .filter(|w| w.mutes(labels, now_ms))
            .map(|w| w.name.clone())
            .collect();
        let mut by = Vec::new();
        for (rule, index) in self.rules.iter().zip(&inhibitors.by_rule) {
            if !rule.target.iter().all(|m| m.matches(labels)) {
                continue;
            }
            if let Some(sources) = index.get(&equal_values(rule, labels)) {
                // An alert never inhibits itself.
                by.extend(sources.iter().filter(|fp| **fp != alert.fingerprint));
            }
        }
        if let Some(down) = labels
            .get(SERVICE_LABEL)
            .and_then(|service| self.impacted.get(service))
        {
            for service in down {
                by.extend(inhibitors.by_service.get(service).into_iter().flatten());
            }
        }
        by.sort_unstable();
        by.dedup();
        Mutes {
            silences,
            windows,
            inhibitors: by,
        }
    }

    /// No silence, window, inhibition rule or impacted service is known.
    fn mutes_nothing(&self) -> bool {
        self.silences.is_empty() && self.windows.is_empty() && !self.needs_index()
    }

    /// The first rule whose sources inhibit an alert with `labels`.
    fn inhibiting_rule(&self, labels: &Labels) -> Option<usize> {
        self.rules
            .iter()
            .zip(&self.sources)
            .position(|(rule, index)| {
                if !rule.target.iter().all(|m| m.matches(labels)) {
                    return false;
                }
                let sharing = index.get(&equal_values(rule, labels)).copied().unwrap_or(0);
                // The alert itself may be one of the sources; it does not count.
                let itself = usize::from(rule.source.iter().all(|m| m.matches(labels)));
                sharing > itself
            })
    }
}

/// The values of a rule's `equal` labels in `labels` (a missing label counts as equal to a
/// missing label).
fn equal_values(rule: &InhibitRule, labels: &Labels) -> Vec<Option<String>> {
    rule.equal
        .iter()
        .map(|name| labels.get(name).cloned())
        .collect()
}

/// What a firing alert says is failing, as impact names it: its service, or for an alert about
/// a node alone (`node_down`), `node:ID`, which is how a down node impacts its services.
fn impact_source(labels: &steward_core::registry::Labels) -> Option<String> {
    match (labels.get(SERVICE_LABEL), labels.get("node")) {
        (Some(service), _) => Some(service.clone()),
        (None, Some(node)) => Some(format!("node:{node}")),
        (None, None) => None,
    }
}

/// Services held back by a down dependency, with the down services; empty when the health
/// states cannot be read (nothing is held rather than everything).
pub async fn impacted_services(
    store: &dyn Store,
    config: &Config,
    registry: &Registry,
) -> HashMap<String, Vec<String>> {
    match crate::views::services::impacted(store, config, registry).await {
        Ok(impacted) => impacted,
        Err(error) => {
            tracing::warn!(%error, "service states unreadable; no automatic inhibition");
            HashMap::new()
        }
    }
}

/// Counts alerts by what mutes them, for metrics.
pub fn count_muted<'a>(
    muting: &Muting,
    alerts: impl Iterator<Item = &'a StoredAlert>,
    now_ms: i64,
) -> (usize, usize) {
    let mut firing = 0;
    let mut muted = 0;
    for alert in alerts.filter(|a| a.state == AlertState::Firing) {
        firing += 1;
        if muting.why(alert, now_ms).is_some() {
            muted += 1;
        }
    }
    (firing, muted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_core::alert::route::Matcher;
    use steward_core::alert::{Fingerprint, Severity};

    fn alert(pairs: &[(&str, &str)]) -> StoredAlert {
        let labels: Labels = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        StoredAlert {
            fingerprint: Fingerprint::of(&labels),
            labels: labels.into(),
            annotations: Labels::new().into(),
            severity: Severity::Warning,
            source: "external".into(),
            state: AlertState::Firing,
            starts_at_ms: 0,
            ends_at_ms: None,
            last_received_ms: 0,
            generator_url: None,
            episode: 1,
            ack: None,
        }
    }

    fn rule() -> InhibitRule {
        InhibitRule {
            source: vec![Matcher::parse("severity=critical").unwrap()],
            target: vec![Matcher::parse("severity=~warning|critical").unwrap()],
            equal: vec!["service".into()],
        }
    }

    #[test]
    fn inhibition_needs_another_firing_source_with_equal_labels() {
        let critical = alert(&[("severity", "critical"), ("service", "api")]);
        let warning = alert(&[("severity", "warning"), ("service", "api")]);
        let other = alert(&[("severity", "warning"), ("service", "db")]);
        let mut muting = Muting::new(vec![], vec![], vec![rule()], HashMap::new());
        muting.index_sources([&critical, &warning, &other].into_iter());
        assert_eq!(muting.why(&warning, 0), Some(Muted::Inhibited(0)));
        assert_eq!(muting.why(&other, 0), None, "equal labels differ");
        assert_eq!(muting.why(&critical, 0), None, "never by itself");
        let second = alert(&[("severity", "critical"), ("service", "api"), ("x", "y")]);
        muting.index_sources([&critical, &second].into_iter());
        assert_eq!(muting.why(&critical, 0), Some(Muted::Inhibited(0)));
        let mut resolved = critical.clone();
        resolved.state = AlertState::Resolved;
        muting.index_sources([&resolved].into_iter());
        assert_eq!(
            muting.why(&warning, 0),
            None,
            "resolved sources inhibit nothing"
        );
    }

    #[test]
    fn silences_apply_within_their_time_and_impact_holds_by_service() {
        let api = alert(&[("alertname", "Down"), ("service", "api")]);
        let silence = StoredSilence {
            id: 7,
            matchers: vec![Matcher::parse("service=api").unwrap()],
            starts_at_ms: 100,
            ends_at_ms: 200,
            created_by: "ops".into(),
            created_at_ms: 0,
            comment: String::new(),
        };
        let impacted = HashMap::from([("api".to_owned(), vec!["db".to_owned()])]);
        let mut muting = Muting::new(vec![silence], vec![], vec![], impacted);
        assert_eq!(muting.why(&api, 150), Some(Muted::Silenced(7)));
        muting.index_sources([&api].into_iter());
        assert_eq!(
            muting.why(&api, 200),
            None,
            "db has no alert to speak for api"
        );
        let db = alert(&[("alertname", "Down"), ("service", "db")]);
        muting.index_sources([&api, &db].into_iter());
        assert_eq!(
            muting.why(&api, 200),
            Some(Muted::Impacted(vec!["db".into()]))
        );
        let web = alert(&[("service", "web")]);
        assert_eq!(muting.why(&web, 150), None);
    }

    #[test]
    fn impact_alone_still_mutes_and_an_empty_muting_mutes_nothing() {
        let api = alert(&[("alertname", "Down"), ("service", "api")]);
        let db = alert(&[("alertname", "Down"), ("service", "db")]);
        let impacted = HashMap::from([("api".to_owned(), vec!["db".to_owned()])]);
        let mut muting = Muting::new(vec![], vec![], vec![], impacted);
        assert!(!muting.mutes_nothing());
        muting.index_sources([&api, &db].into_iter());
        assert_eq!(
            muting.why(&api, 0),
            Some(Muted::Impacted(vec!["db".into()]))
        );
        let empty = Muting::new(vec![], vec![], vec![], HashMap::new());
        assert!(empty.mutes_nothing());
        assert_eq!(empty.why(&api, 0), None);
    }

    #[test]
    fn explain_names_every_cause_and_agrees_with_why() {
        let critical = alert(&[("severity", "critical"), ("service", "api")]);
        let second = alert(&[("severity", "critical"), ("service", "api"), ("x", "y")]);
        let warning = alert(&[("severity", "warning"), ("service", "api")]);
        let other = alert(&[("severity", "warning"), ("service", "db")]);
        let web = alert(&[("alertname", "Down"), ("service", "web")]);
        let lone = alert(&[("severity", "critical"), ("service", "lone")]);
        let silence = |id, matcher: &str| StoredSilence {
            id,
            matchers: vec![Matcher::parse(matcher).unwrap()],
            starts_at_ms: 100,
            ends_at_ms: 200,
            created_by: "ops".into(),
            created_at_ms: 0,
            comment: "deploy".into(),
        };
        let impacted = HashMap::from([("web".to_owned(), vec!["api".to_owned()])]);
        let mut muting = Muting::new(
            vec![silence(3, "service=api"), silence(4, "severity=warning")],
            vec![],
            vec![rule()],
            impacted,
        );
        let all = [&critical, &second, &warning, &other, &web, &lone];
        muting.index_sources(all.into_iter());
        let inhibitors = muting.inhibitors(all.into_iter());
        for now in [50, 150] {
            for alert in all {
                let mutes = muting.explain(alert, now, &inhibitors);
                assert_eq!(
                    mutes.is_empty(),
                    muting.why(alert, now).is_none(),
                    "{:?} at {now}: {mutes:?}",
                    alert.labels
                );
            }
        }
        let mutes = muting.explain(&warning, 150, &inhibitors);
        assert_eq!(mutes.silences, vec![3, 4]);
        let mut sources = vec![critical.fingerprint, second.fingerprint];
        sources.sort_unstable();
        assert_eq!(mutes.inhibitors, sources);
        assert_eq!(
            muting.explain(&critical, 50, &inhibitors).inhibitors,
            vec![second.fingerprint],
            "never by itself"
        );
        assert!(muting.explain(&lone, 150, &inhibitors).is_empty());
        let held = muting.explain(&web, 50, &inhibitors);
        assert!(held.silences.is_empty());
        assert_eq!(held.inhibitors.len(), 3, "every firing alert about api");
    }
}
