//! Pipelines: multi-step work whose steps wait for the steps they need. This module holds the
//! pure part: a pipeline's steps checked as a DAG (every need known, no step needing itself,
//! no cycle, each problem naming the steps involved), what `[[pipelines]]` declares (`spec`),
//! and for a run what happens next (`run`: which steps start, are skipped, fail or stop, and
//! whether the run is over and how).

pub mod run;
pub mod spec;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The most steps one pipeline may have.
pub const MAX_STEPS: usize = 200;

/// What a pipeline does when a step fails for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Stop the run: steps not started are cancelled (the default).
    #[default]
    Stop,
    /// Go on with the steps that do not depend on the failed one.
    Continue,
}

/// Where one step of a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StepState {
    /// Waiting for the steps it needs.
    Waiting,
    /// Its task is on the queue or running.
    Running,
    /// Its task succeeded.
    Succeeded,
    /// Its task failed for good.
    Failed,
    /// Not run: its condition was false, or a step it needs did not succeed.
    Skipped,
    /// Not run, or stopped: the run was cancelled or stopped by a failure.
    Cancelled,
}

impl StepState {
    /// True once nothing more happens to the step.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Skipped | Self::Cancelled
        )
    }
}

/// Why a pipeline's steps do not form a DAG. Each names the steps involved, so the config
/// reader can point at the `needs` entry at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DagError {
    /// No steps.
    #[error("a pipeline has at least one step")]
    Empty,
    /// More than [`MAX_STEPS`].
    #[error("{0} steps; a pipeline has at most {MAX_STEPS}")]
    TooMany(usize),
    /// Two steps share a name.
    #[error("step `{0}` is declared twice")]
    Duplicate(String),
    /// A step needs one that is not declared.
    #[error("step `{step}` needs `{need}`, which is not a step of this pipeline")]
    UnknownNeed {
        /// The step.
        step: String,
        /// What it names.
        need: String,
    },
    /// A step needs itself.
    #[error("step `{0}` needs itself")]
    SelfNeed(String),
    /// The needs go round: each step of the cycle, in order, back to the first.
    #[error("steps need each other in a cycle: {}", Cycle(.0))]
    Cycle(Vec<String>),
}

/// A cycle shown as `a → b → c → a`.
struct Cycle<'a>(&'a [String]);

impl fmt::Display for Cycle<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in self.0 {
            write!(f, "{step} → ")?;
        }
        match self.0.first() {
            Some(first) => f.write_str(first),
            None => Ok(()),
        }
    }
}

/// A pipeline's steps checked: each step's index, what it needs and what needs it, and an order
/// in which every step comes after the steps it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dag {
    names: Vec<String>,
    needs: Vec<Vec<usize>>,
    needed_by: Vec<Vec<usize>>,
    order: Vec<usize>,
}

impl Dag {
    /// Checks `steps`, each a name with the names it needs, in declaration order.
    pub fn new(steps: &[(String, Vec<String>)]) -> Result<Self, DagError> {
        if steps.is_empty() {
            return Err(DagError::Empty);
        }
        if steps.len() > MAX_STEPS {
            return Err(DagError::TooMany(steps.len()));
        }
        let mut index = BTreeMap::new();
        for (i, (name, _)) in steps.iter().enumerate() {
            if index.insert(name.as_str(), i).is_some() {
                return Err(DagError::Duplicate(name.clone()));
            }
        }
        let mut needs = vec![Vec::new(); steps.len()];
        let mut needed_by = vec![Vec::new(); steps.len()];
        for (i, (name, wanted)) in steps.iter().enumerate() {
            let mut seen = BTreeSet::new();
            for need in wanted {
                if need == name {
                    return Err(DagError::SelfNeed(name.clone()));
                }
                let Some(&j) = index.get(need.as_str()) else {
                    return Err(DagError::UnknownNeed {
                        step: name.clone(),
                        need: need.clone(),
                    });
                };
                // A need written twice is one need.
                if seen.insert(j) {
                    needs[i].push(j);
                    needed_by[j].push(i);
                }
            }
        }
        let names: Vec<String> = steps.iter().map(|(n, _)| n.clone()).collect();
        let order = topological_order(&needs, &needed_by)
            .ok_or_else(|| DagError::Cycle(find_cycle(&needs, &names)))?;
        Ok(Self {
            names,
            needs,
            needed_by,
            order,
        })
    }

    /// The steps' names, in declaration order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The steps step `i` needs.
    pub fn needs(&self, i: usize) -> &[usize] {
        &self.needs[i]
    }

    /// The steps that need step `i`.
    pub fn needed_by(&self, i: usize) -> &[usize] {
        &self.needed_by[i]
    }

    /// Every step, each after the steps it needs (declaration order among equals).
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

/// Kahn's algorithm, taking the lowest index among the steps whose needs are met, so the order
/// is stable and follows the declaration where the needs allow. `None` when there is a cycle.
fn topological_order(needs: &[Vec<usize>], needed_by: &[Vec<usize>]) -> Option<Vec<usize>> {
    let mut left: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut free: BTreeSet<usize> = (0..needs.len()).filter(|&i| left[i] == 0).collect();
    let mut order = Vec::with_capacity(needs.len());
    while let Some(i) = free.pop_first() {
        order.push(i);
        for &k in &needed_by[i] {
            left[k] -= 1;
            if left[k] == 0 {
                free.insert(k);
            }
        }
    }
    (order.len() == needs.len()).then_some(order)
}

/// One cycle among `needs`, as step names in the order each needs the next. Called only when
/// the topological order found that one exists.
fn find_cycle(needs: &[Vec<usize>], names: &[String]) -> Vec<String> {
    // 0: not visited, 1: on the current path, 2: done.
    let mut mark = vec![0u8; needs.len()];
    let mut path: Vec<usize> = Vec::new();
    for start in 0..needs.len() {
        if mark[start] == 0
            && let Some(cycle) = visit(start, needs, &mut mark, &mut path)
        {
            return cycle.into_iter().map(|i| names[i].clone()).collect();
        }
    }
    Vec::new()
}

fn visit(
    i: usize,
    needs: &[Vec<usize>],
    mark: &mut [u8],
    path: &mut Vec<usize>,
) -> Option<Vec<usize>> {
    mark[i] = 1;
    path.push(i);
    for &j in &needs[i] {
        if mark[j] == 1 {
            let from = path.iter().position(|&p| p == j).unwrap_or(0);
            return Some(path[from..].to_vec());
        }
        if mark[j] == 0
            && let Some(cycle) = visit(j, needs, mark, path)
        {
            return Some(cycle);
        }
    }
    path.pop();
    mark[i] = 2;
    None
}

#[cfg(test)]
mod tests;
