//! Pipelines: runs of declared multi-step work. Starting, cancelling and retrying go through
//! [`ops`]. The store advances a run inside the transaction that ends one of its steps' tasks;
//! [`announce`] turns what each of this instance's transactions changed into events on the
//! bus and metrics, so each change is announced once, by the instance that made it.

mod announce;
pub mod ops;

pub use announce::spawn as spawn_announcer;
