//! The hub's side of the fleet: nodes added and removed, join tokens exchanged for node
//! credentials, heartbeats recorded (group-committed, so thousands of agents cost a few
//! transactions a second), each reported kind reconciled in its own transaction, and node
//! statuses judged from the silence since each node's last heartbeat.
//!
//! `work` is remote work: the tasks pinned to nodes, claimed, renewed and completed by their
//! agents. `ops` is the façade the API calls; `monitor` is the loop every instance runs to judge
//! statuses (a change applies only from the status it was judged from, so instances running it
//! together publish each change once).

pub mod checks;
mod monitor;
pub mod ops;
pub mod work;

pub use checks::ChecksRecorded;
pub use monitor::{MONITOR_EVERY, judge_once, run as run_monitor};
pub use ops::{AuditMerged, Fleet, FleetError, HeartbeatIn, HeartbeatOut, NodeView};
pub use work::{Leased, RemoteEnd, RemoteResult, RemoteWork, WorkError};
