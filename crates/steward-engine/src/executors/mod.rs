//! The executors this instance's workers run: every kind `steward-exec` offers, plus `prune`,
//! the system queue's housekeeping, which needs the store and so lives beside the engine.

mod prune;

pub use prune::{Prune, purge_queue};
pub use steward_exec::*;
