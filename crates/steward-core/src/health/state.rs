//! The state of a check and of a service, from successive probe results.
//!
//! A [`CheckTracker`] turns each probe's [`ProbeVerdict`] into a [`CheckState`] with flap
//! protection: it takes [`Thresholds::failures_before_down`] consecutive failures to go down and
//! [`Thresholds::successes_before_up`] consecutive passes to come back. [`service_states`] then
//! lifts the checks' states to services, marking the services whose workspace (transitively)
//! depends on a workspace with a down service as [`ServiceState::Impacted`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Registry;

#[cfg(test)]
mod tests;

/// The state of one health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    /// Not enough probes yet to say (the state of a new check).
    Unknown,
    /// Passing.
    Up,
    /// Passing, but a latency condition failed on the latest probe.
    Degraded,
    /// Failing.
    Down,
}

impl CheckState {
    /// Every state, in the order they are documented.
    pub const ALL: [CheckState; 4] = [Self::Unknown, Self::Up, Self::Degraded, Self::Down];

    /// The name used in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Up => "up",
            Self::Degraded => "degraded",
            Self::Down => "down",
        }
    }

    /// The state named `s` (as [`CheckState::as_str`] spells it), if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

impl fmt::Display for CheckState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many consecutive results it takes to change a check's state (flap protection).
///
/// Both values are at least 1; a 0 is treated as 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Consecutive failed probes before a check goes [`CheckState::Down`].
    pub failures_before_down: u32,
    /// Consecutive passed probes before a check comes [`CheckState::Up`] (or
    /// [`CheckState::Degraded`]) from down or unknown.
    pub successes_before_up: u32,
}

impl Default for Thresholds {
    /// Gatus's defaults for alerts: 3 failures to go down, 2 successes to come back up.
    fn default() -> Self {
        Self {
            failures_before_down: 3,
            successes_before_up: 2,
        }
    }
}

impl Thresholds {
    /// The failure threshold as applied (at least 1).
    pub fn failures(&self) -> u32 {
        self.failures_before_down.max(1)
    }

    /// The success threshold as applied (at least 1).
    pub fn successes(&self) -> u32 {
        self.successes_before_up.max(1)
    }
}

/// What one probe said, once its conditions were evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeVerdict {
    /// Every condition held.
    Pass,
    /// Up, but a latency condition failed.
    SlowPass,
    /// A (non-latency) condition failed, or the probe could not be made.
    Fail,
}

/// A change of a check's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// The state before.
    pub from: CheckState,
    /// The state after (never equal to `from`).
    pub to: CheckState,
}

/// The state machine of one health check.
///
/// Rules:
/// - a [`ProbeVerdict::Fail`] takes an unknown, up or degraded check down once it is the
///   [`Thresholds::failures_before_down`]-th consecutive failure;
/// - a pass takes an unknown or down check up (or degraded, if that latest pass was a
///   [`ProbeVerdict::SlowPass`]) once it is the [`Thresholds::successes_before_up`]-th
///   consecutive pass (a `Pass` and a `SlowPass` both count);
/// - an up or degraded check switches between up and degraded at once, on the first `SlowPass`
///   or `Pass`: flap protection guards against false downs and false recoveries, latency is
///   reported as it is measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckTracker {
    state: CheckState,
    consecutive_failures: u32,
    consecutive_successes: u32,
}

impl Default for CheckTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl CheckTracker {
    /// A new check: [`CheckState::Unknown`], no results yet.
    pub fn new() -> Self {
        Self::restore(CheckState::Unknown, 0, 0)
    }

    /// A tracker resumed from persisted state and counters (after a restart). At most one of
    /// the counters is non-zero in any state a tracker reaches; should both be, the next
    /// observation resets one of them.
    pub fn restore(state: CheckState, failures: u32, successes: u32) -> Self {
        Self {
            state,
            consecutive_failures: failures,
            consecutive_successes: successes,
        }
    }

    /// The current state.
    pub fn state(&self) -> CheckState {
        self.state
    }

    /// How many failed probes in a row ended the history so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// How many passed probes (slow or not) in a row ended the history so far.
    pub fn consecutive_successes(&self) -> u32 {
        self.consecutive_successes
    }

    /// Records one probe's verdict; returns the state change it caused, if any.
    pub fn observe(
        &mut self,
        verdict: ProbeVerdict,
        thresholds: &Thresholds,
    ) -> Option<Transition> {
        let from = self.state;
        let to = match verdict {
            ProbeVerdict::Fail => {
                self.consecutive_successes = 0;
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                if self.consecutive_failures >= thresholds.failures() {
                    CheckState::Down
                } else {
                    from
                }
            }
            ProbeVerdict::Pass | ProbeVerdict::SlowPass => {
                self.consecutive_failures = 0;
                self.consecutive_successes = self.consecutive_successes.saturating_add(1);
                let passing = if verdict == ProbeVerdict::SlowPass {
                    CheckState::Degraded
                } else {
                    CheckState::Up
                };
                match from {
                    CheckState::Up | CheckState::Degraded => passing,
                    CheckState::Unknown | CheckState::Down => {
                        if self.consecutive_successes >= thresholds.successes() {
                            passing
                        } else {
                            from
                        }
                    }
                }
            }
        };
        self.state = to;
        (from != to).then_some(Transition { from, to })
    }
}

/// The state of a service: its check's, or impacted by a down dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// No check, or its check's state is not known yet.
    Unknown,
    /// Its check is up.
    Up,
    /// Its check is degraded (slow).
    Degraded,
    /// Its check is down.
    Down,
    /// Not down itself, but its workspace (transitively) depends on a workspace with a down
    /// service.
    Impacted,
}

impl ServiceState {
    /// The name used in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Up => "up",
            Self::Degraded => "degraded",
            Self::Down => "down",
            Self::Impacted => "impacted",
        }
    }
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<CheckState> for ServiceState {
    fn from(state: CheckState) -> Self {
        match state {
            CheckState::Unknown => Self::Unknown,
            CheckState::Up => Self::Up,
            CheckState::Degraded => Self::Degraded,
            CheckState::Down => Self::Down,
        }
    }
}

/// A service's state, and why it is impacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    /// The state.
    pub state: ServiceState,
    /// When [`ServiceState::Impacted`]: the down services it depends on, transitively through
    /// workspace dependencies (sorted, without duplicates); empty otherwise.
    pub impacted_by: Vec<String>,
}

/// The state of every service of `registry`, given its checks' states (by service name).
///
/// A service with no entry in `checks` is [`ServiceState::Unknown`]. A service that is not down
/// itself becomes [`ServiceState::Impacted`] when its workspace depends, along one or more
/// dependency edges (`from` depends on `to`), on a workspace with a down service; a down service
/// stays down. So a down service does not impact its siblings in its own workspace, unless that
/// workspace depends on itself through a cycle. Services in no workspace are never impacted and
/// impact nothing. Entries of `checks` naming no service of `registry` are ignored.
///
/// Cost: one breadth-first search over reverse edges per workspace holding a down service, so
/// O(D·(W+E)) for D such workspaces, plus the output (an exact `impacted_by` list per service
/// cannot be had in O(W+E) in general); cycles are guarded by a visited set.
pub fn service_states(
    registry: &Registry,
    checks: &HashMap<String, CheckState>,
) -> BTreeMap<String, ServiceStatus> {
    let check = |name: &str| checks.get(name).copied().unwrap_or(CheckState::Unknown);

    // Who depends on each workspace: the reverse edges.
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for dep in &registry.dependencies {
        dependents
            .entry(dep.to.as_str())
            .or_default()
            .push(dep.from.as_str());
    }

    // The down services of each workspace.
    let mut down_by_workspace: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for service in &registry.services {
        if let Some(ws) = &service.workspace
            && check(&service.name) == CheckState::Down
        {
            down_by_workspace
                .entry(ws.as_str())
                .or_default()
                .push(service.name.as_str());
        }
    }

    // For each impacted workspace, the down services it reaches.
    let mut impacted: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut queue: VecDeque<&str> = VecDeque::new();
    for (&source, downs) in &down_by_workspace {
        seen.clear();
        queue.clear();
        // Paths of one edge or more: the source itself only if a cycle leads back to it.
        queue.push_back(source);
        let mut first = true;
        while let Some(ws) = queue.pop_front() {
            if !first {
                impacted
                    .entry(ws)
                    .or_default()
                    .extend(downs.iter().copied());
            }
            first = false;
            for &dependent in dependents.get(ws).into_iter().flatten() {
                if seen.insert(dependent) {
                    queue.push_back(dependent);
                }
            }
        }
    }

    registry
        .services
        .iter()
        .map(|service| {
            let own = check(&service.name);
            let by = service
                .workspace
                .as_deref()
                .and_then(|ws| impacted.get(ws))
                .filter(|_| own != CheckState::Down);
            let status = match by {
                Some(by) => ServiceStatus {
                    state: ServiceState::Impacted,
                    impacted_by: by.iter().map(|s| (*s).to_owned()).collect(),
                },
                None => ServiceStatus {
                    state: own.into(),
                    impacted_by: Vec::new(),
                },
            };
            (service.name.clone(), status)
        })
        .collect()
}
