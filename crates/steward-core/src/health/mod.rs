//! Health checks: what a probe's result must satisfy for a service to count as up.
//!
//! So far this is the condition language, [`condition`]: Gatus-compatible conditions such as
//! `[STATUS] == 200` or `[BODY].status == UP`, parsed once and evaluated against each probe's
//! [`ProbeContext`]. Probing itself (the I/O) lives elsewhere; everything here is pure.

pub mod condition;

pub use condition::{Condition, ConditionError, Outcome, ProbeContext, evaluate_all};
