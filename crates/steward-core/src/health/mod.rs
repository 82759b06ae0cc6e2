//! Health checks: what a probe's result must satisfy for a service to count as up.
//!
//! The pure parts of health checking; probing itself (the I/O) lives in the engine:
//! - [`condition`]: Gatus-compatible conditions such as `[STATUS] == 200` or
//!   `[BODY].status == UP`, parsed once and evaluated against each probe's [`ProbeContext`];
//! - [`state`]: a check's up / degraded / down state with flap protection, and services marked
//!   impacted when a workspace they depend on has a down service;
//! - [`cert`]: certificates parsed from PEM or DER and classed valid / warning / critical /
//!   expired by days left;
//! - [`spec`]: what a check is: its probe (http, tcp, tls, cert_file, command), interval,
//!   timeout, thresholds, labels and conditions;
//! - [`rollup`]: per-minute roll-ups with a fixed latency histogram, from which percentiles over
//!   any window are computed.

pub mod cert;
pub mod condition;
pub mod rollup;
pub mod spec;
pub mod state;

pub use condition::{Condition, ConditionError, Outcome, ProbeContext, evaluate_all};
