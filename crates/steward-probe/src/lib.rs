//! Health probes: the I/O of one probe (an HTTP request, a TCP connect, a TLS handshake,
//! certificate files read from disk, or a declared command) and the judging of what it
//! observed against a check's conditions. Shared by the hub's prober and the fleet agent, so a
//! check probed from a node is probed and judged by the same code as one probed from the hub.

mod judge;
mod probe;
mod tls;

pub use judge::{Judgement, judge};
pub use probe::{Cause, Failure, Observation, Prober};
