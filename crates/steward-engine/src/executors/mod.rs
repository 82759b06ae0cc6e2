//! The executors this instance's workers run: every kind `steward-exec` offers, plus the system
//! queue's built-ins, which need the store and so live beside the engine: `prune` (retention)
//! and `pipeline` (starting a pipeline's run for a schedule or a remediation).

mod pipeline;
mod prune;

pub use pipeline::StartPipeline;
pub use prune::{Prune, purge_queue};
pub use steward_exec::*;
