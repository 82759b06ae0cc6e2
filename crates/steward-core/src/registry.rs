//! The registry: what a platform runs (workspaces, the typed edges between them, services),
//! and the reconciliation diff that turns one registry into another.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Free-form `key = "value"` labels; ordered so that equal label sets compare and print equal.
pub type Labels = BTreeMap<String, String>;

/// True for a valid name of a workspace, service, dependency type or key: letters, digits,
/// `_`, `-`, `.`, starting with a letter or digit, at most 64 characters.
pub fn is_valid_name(s: &str) -> bool {
    s.len() <= 64
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The lifecycle state a workspace is declared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceStatus {
    /// In service (the default).
    Active,
    /// Declared but deliberately not running (maintenance, seasonal work).
    Paused,
    /// Kept for history; nothing should run for it.
    Retired,
}

impl WorkspaceStatus {
    /// Every status, in the order they are documented.
    pub const ALL: [WorkspaceStatus; 3] = [Self::Active, Self::Paused, Self::Retired];

    /// The name used in config files, the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Retired => "retired",
        }
    }
}

impl fmt::Display for WorkspaceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a status name that is not one of [`WorkspaceStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown workspace status `{0}` (expected active, paused or retired)")]
pub struct UnknownStatus(pub String);

impl FromStr for WorkspaceStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// Where a workspace's code lives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repo {
    /// Repository name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Checkout path on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Git remote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

impl Repo {
    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.path.is_none() && self.remote.is_none()
    }
}

/// A unit of work a platform runs: an agent, a pipeline, a team's slice of the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    /// Unique key (`trading`, `alert_reporting`).
    pub key: String,
    /// What it does.
    pub description: Option<String>,
    /// Who answers for it.
    pub owner: Option<String>,
    /// Lifecycle state.
    pub status: WorkspaceStatus,
    /// Free-form labels, used later for routing alerts and scoping keys.
    pub labels: Labels,
    /// Where its code lives, if declared.
    pub repo: Option<Repo>,
}

impl Workspace {
    /// A workspace with only a key: active, no labels.
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            description: None,
            owner: None,
            status: WorkspaceStatus::Active,
            labels: Labels::new(),
            repo: None,
        }
    }
}

/// A typed, directed data-flow edge between two workspaces. Cycles are legal: data flows both
/// ways between workspaces all the time (trading writes metrics to analytics, analytics reads
/// trades).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// The workspace that depends.
    pub from: String,
    /// The workspace depended on.
    pub to: String,
    /// What kind of dependency (`read_signals`, `provision_agent`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Why it exists.
    pub note: Option<String>,
}

/// What identifies a dependency edge: its ends and its type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DependencyId {
    /// The workspace that depends.
    pub from: String,
    /// The workspace depended on.
    pub to: String,
    /// The edge's type.
    pub kind: String,
}

impl Dependency {
    /// The edge's identity (two edges with equal ids are duplicates).
    pub fn id(&self) -> DependencyId {
        DependencyId {
            from: self.from.clone(),
            to: self.to.clone(),
            kind: self.kind.clone(),
        }
    }
}

impl fmt::Display for DependencyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -[{}]-> {}", self.from, self.kind, self.to)
    }
}

/// Something that answers on the network: an API, an agent, a tool like n8n.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Unique name.
    pub name: String,
    /// The workspace it belongs to, if any (shared tools may belong to none).
    pub workspace: Option<String>,
    /// Where it answers.
    pub url: Option<String>,
    /// The node (host) it runs on.
    pub node: Option<String>,
    /// Free-form labels.
    pub labels: Labels,
}

impl Service {
    /// A service with only a name.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            workspace: None,
            url: None,
            node: None,
            labels: Labels::new(),
        }
    }
}

/// The whole declared registry, kept in canonical order (by key, name and edge id) so that
/// two registries with the same content compare equal whatever order they were declared in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    /// Workspaces, by key.
    pub workspaces: Vec<Workspace>,
    /// Dependency edges, by id.
    pub dependencies: Vec<Dependency>,
    /// Services, by name.
    pub services: Vec<Service>,
}

impl Registry {
    /// Builds a registry in canonical order.
    pub fn new(
        mut workspaces: Vec<Workspace>,
        mut dependencies: Vec<Dependency>,
        mut services: Vec<Service>,
    ) -> Self {
        workspaces.sort_by(|a, b| a.key.cmp(&b.key));
        dependencies.sort_by_key(Dependency::id);
        services.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            workspaces,
            dependencies,
            services,
        }
    }

    /// Puts the registry back in canonical order.
    pub fn canonicalize(self) -> Self {
        Self::new(self.workspaces, self.dependencies, self.services)
    }

    /// The workspace with this key.
    pub fn workspace(&self, key: &str) -> Option<&Workspace> {
        self.workspaces.iter().find(|w| w.key == key)
    }

    /// The part of the registry `principal` may see: unscoped principals see everything; a
    /// scoped one sees its workspace, the edges that touch it and its services.
    pub fn visible_to(&self, principal: &crate::Principal) -> Registry {
        if principal.is_unscoped() {
            return self.clone();
        }
        let sees = |ws: &str| principal.sees(Some(ws));
        Registry {
            workspaces: self
                .workspaces
                .iter()
                .filter(|w| sees(&w.key))
                .cloned()
                .collect(),
            dependencies: self
                .dependencies
                .iter()
                .filter(|d| sees(&d.from) || sees(&d.to))
                .cloned()
                .collect(),
            services: self
                .services
                .iter()
                .filter(|s| principal.sees(s.workspace.as_deref()))
                .cloned()
                .collect(),
        }
    }

    /// The services that belong to the workspace `key`.
    pub fn services_of<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Service> + 'a {
        self.services
            .iter()
            .filter(move |s| s.workspace.as_deref() == Some(key))
    }

    /// The changes that turn `self` (what is stored) into `desired` (what is declared).
    pub fn diff(&self, desired: &Registry) -> RegistryDiff {
        RegistryDiff {
            workspaces: diff_by(&self.workspaces, &desired.workspaces, |w| w.key.clone()),
            dependencies: diff_by(&self.dependencies, &desired.dependencies, Dependency::id),
            services: diff_by(&self.services, &desired.services, |s| s.name.clone()),
        }
    }

    /// Applies a diff (as a store does), returning the resulting registry in canonical order.
    pub fn apply(&self, diff: &RegistryDiff) -> Registry {
        Registry::new(
            apply_by(&self.workspaces, &diff.workspaces, |w| w.key.clone()),
            apply_by(&self.dependencies, &diff.dependencies, Dependency::id),
            apply_by(&self.services, &diff.services, |s| s.name.clone()),
        )
    }
}

/// One entity's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change<T> {
    /// Declared now, not stored before.
    Added {
        /// The new entity.
        after: T,
    },
    /// Stored and declared, with different fields.
    Updated {
        /// As stored.
        before: T,
        /// As declared.
        after: T,
    },
    /// Stored, no longer declared.
    Removed {
        /// The entity as it was stored.
        before: T,
    },
}

impl<T> Change<T> {
    /// The entity as it will be after the change, if it still exists.
    pub fn after(&self) -> Option<&T> {
        match self {
            Change::Added { after } | Change::Updated { after, .. } => Some(after),
            Change::Removed { .. } => None,
        }
    }
}

/// The result of reconciling a stored registry with a declared one: what was (or must be)
/// added, updated and removed. Stores return it from a sync so that it can be audited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RegistryDiff {
    /// Workspace changes.
    pub workspaces: Vec<Change<Workspace>>,
    /// Dependency edge changes.
    pub dependencies: Vec<Change<Dependency>>,
    /// Service changes.
    pub services: Vec<Change<Service>>,
}

/// Counts of a diff's changes by kind of change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DiffCounts {
    /// Entities added.
    pub added: usize,
    /// Entities updated.
    pub updated: usize,
    /// Entities removed.
    pub removed: usize,
}

impl RegistryDiff {
    /// True when the stored registry already matches the declared one.
    pub fn is_empty(&self) -> bool {
        self.workspaces.is_empty() && self.dependencies.is_empty() && self.services.is_empty()
    }

    /// How many entities were added, updated and removed.
    pub fn counts(&self) -> DiffCounts {
        let mut counts = DiffCounts::default();
        let ops = self
            .workspaces
            .iter()
            .map(op_of)
            .chain(self.dependencies.iter().map(op_of))
            .chain(self.services.iter().map(op_of));
        for op in ops {
            match op {
                Op::Added => counts.added += 1,
                Op::Updated => counts.updated += 1,
                Op::Removed => counts.removed += 1,
            }
        }
        counts
    }

    /// One human-readable line per change (`+ workspace platform`, `~ service nn`), for logs
    /// and CLI output.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for c in &self.workspaces {
            lines.push(line(c, "workspace", |w| w.key.clone()));
        }
        for c in &self.dependencies {
            lines.push(line(c, "dependency", |d| d.id().to_string()));
        }
        for c in &self.services {
            lines.push(line(c, "service", |s| s.name.clone()));
        }
        lines
    }
}

enum Op {
    Added,
    Updated,
    Removed,
}

fn op_of<T>(change: &Change<T>) -> Op {
    match change {
        Change::Added { .. } => Op::Added,
        Change::Updated { .. } => Op::Updated,
        Change::Removed { .. } => Op::Removed,
    }
}

fn line<T>(change: &Change<T>, kind: &str, name: impl Fn(&T) -> String) -> String {
    match change {
        Change::Added { after } => format!("+ {kind} {}", name(after)),
        Change::Updated { after, .. } => format!("~ {kind} {}", name(after)),
        Change::Removed { before } => format!("- {kind} {}", name(before)),
    }
}

fn diff_by<T, K>(current: &[T], desired: &[T], key: impl Fn(&T) -> K) -> Vec<Change<T>>
where
    T: Clone + PartialEq,
    K: Ord,
{
    let current: BTreeMap<K, &T> = current.iter().map(|t| (key(t), t)).collect();
    let desired: BTreeMap<K, &T> = desired.iter().map(|t| (key(t), t)).collect();
    let mut changes = Vec::new();
    for (k, before) in &current {
        if !desired.contains_key(k) {
            changes.push(Change::Removed {
                before: (*before).clone(),
            });
        }
    }
    for (k, after) in &desired {
        match current.get(k) {
            None => changes.push(Change::Added {
                after: (*after).clone(),
            }),
            Some(before) if before != after => changes.push(Change::Updated {
                before: (*before).clone(),
                after: (*after).clone(),
            }),
            Some(_) => {}
        }
    }
    changes
}

fn apply_by<T, K>(current: &[T], changes: &[Change<T>], key: impl Fn(&T) -> K) -> Vec<T>
where
    T: Clone,
    K: Ord,
{
    let mut map: BTreeMap<K, T> = current.iter().map(|t| (key(t), t.clone())).collect();
    for change in changes {
        match change {
            Change::Added { after } | Change::Updated { after, .. } => {
                map.insert(key(after), after.clone());
            }
            Change::Removed { before } => {
                map.remove(&key(before));
            }
        }
    }
    map.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ws(key: &str) -> Workspace {
        Workspace::new(key)
    }

    fn dep(from: &str, to: &str, kind: &str) -> Dependency {
        Dependency {
            from: from.into(),
            to: to.into(),
            kind: kind.into(),
            note: None,
        }
    }

    #[test]
    fn diff_of_equal_registries_is_empty() {
        let r = Registry::new(vec![ws("a"), ws("b")], vec![dep("a", "b", "reads")], vec![]);
        assert!(r.diff(&r.clone()).is_empty());
    }

    #[test]
    fn diff_reports_added_updated_removed() {
        let before = Registry::new(vec![ws("a"), ws("b")], vec![dep("a", "b", "reads")], vec![]);
        let mut b2 = ws("b");
        b2.owner = Some("ops".into());
        let after = Registry::new(vec![b2, ws("c")], vec![], vec![Service::new("nn")]);
        let diff = before.diff(&after);
        assert_eq!(
            diff.counts(),
            DiffCounts {
                added: 2,
                updated: 1,
                removed: 2
            }
        );
        assert_eq!(
            diff.summary_lines(),
            vec![
                "- workspace a",
                "~ workspace b",
                "+ workspace c",
                "- dependency a -[reads]-> b",
                "+ service nn"
            ]
        );
    }

    #[test]
    fn edges_differing_only_in_type_are_distinct() {
        let r = Registry::new(
            vec![ws("a"), ws("b")],
            vec![dep("a", "b", "reads"), dep("a", "b", "writes")],
            vec![],
        );
        assert_eq!(Registry::default().diff(&r).dependencies.len(), 2);
    }

    #[test]
    fn status_round_trips_through_its_name() {
        for s in WorkspaceStatus::ALL {
            assert_eq!(s.as_str().parse::<WorkspaceStatus>(), Ok(s));
        }
        assert!("running".parse::<WorkspaceStatus>().is_err());
    }

    fn arb_registry() -> impl Strategy<Value = Registry> {
        let keys = prop::sample::subsequence(vec!["a", "b", "c", "d", "e"], 0..=5);
        let owners = prop::option::of(prop::sample::select(vec!["x", "y"]));
        (
            keys,
            owners,
            prop::collection::vec((0usize..5, 0usize..5, 0usize..2), 0..8),
        )
            .prop_map(|(keys, owner, edges)| {
                let workspaces: Vec<Workspace> = keys
                    .iter()
                    .map(|k| {
                        let mut w = ws(k);
                        w.owner = owner.map(String::from);
                        w
                    })
                    .collect();
                let mut deps: Vec<Dependency> = Vec::new();
                if !keys.is_empty() {
                    for (f, t, kind) in edges {
                        let d = dep(keys[f % keys.len()], keys[t % keys.len()], ["r", "w"][kind]);
                        if !deps.iter().any(|e| e.id() == d.id()) {
                            deps.push(d);
                        }
                    }
                }
                let services = keys.iter().take(2).map(|k| Service::new(*k)).collect();
                Registry::new(workspaces, deps, services)
            })
    }

    proptest! {
        #[test]
        fn applying_the_diff_yields_the_desired_registry(a in arb_registry(), b in arb_registry()) {
            let diff = a.diff(&b);
            prop_assert_eq!(a.apply(&diff), b.clone());
            prop_assert!(b.diff(&b).is_empty());
        }
    }
}

/// One write a store performs to apply a [`RegistryDiff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// Insert or update a workspace.
    UpsertWorkspace(&'a Workspace),
    /// Insert or update a service.
    UpsertService(&'a Service),
    /// Insert or update a dependency edge.
    UpsertDependency(&'a Dependency),
    /// Delete a dependency edge.
    DeleteDependency(&'a Dependency),
    /// Delete a service.
    DeleteService(&'a Service),
    /// Delete a workspace.
    DeleteWorkspace(&'a Workspace),
}

impl RegistryDiff {
    /// The writes that apply this diff, ordered so that no foreign key is ever dangling:
    /// workspaces are written before the services and edges that point at them, and deleted
    /// after them.
    pub fn steps(&self) -> Vec<Step<'_>> {
        let mut steps: Vec<Step<'_>> = Vec::new();
        steps.extend(
            self.workspaces
                .iter()
                .filter_map(Change::written)
                .map(Step::UpsertWorkspace),
        );
        steps.extend(
            self.services
                .iter()
                .filter_map(Change::written)
                .map(Step::UpsertService),
        );
        steps.extend(
            self.dependencies
                .iter()
                .filter_map(Change::written)
                .map(Step::UpsertDependency),
        );
        steps.extend(
            self.dependencies
                .iter()
                .filter_map(Change::deleted)
                .map(Step::DeleteDependency),
        );
        steps.extend(
            self.services
                .iter()
                .filter_map(Change::deleted)
                .map(Step::DeleteService),
        );
        steps.extend(
            self.workspaces
                .iter()
                .filter_map(Change::deleted)
                .map(Step::DeleteWorkspace),
        );
        steps
    }
}

impl<T> Change<T> {
    /// The entity to write, for additions and updates.
    fn written(&self) -> Option<&T> {
        self.after()
    }

    /// The entity to delete, for removals.
    fn deleted(&self) -> Option<&T> {
        match self {
            Change::Removed { before } => Some(before),
            _ => None,
        }
    }
}
