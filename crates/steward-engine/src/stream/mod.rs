//! The live event stream: the [`relay`] puts this instance's bus events in the shared event
//! log (coalescing high-rate ones), and the [`hub`] follows that log and the audit trail and
//! hands what it reads to subscribers, with a window of recent events for those that
//! reconnect. With PostgreSQL every instance's hub reads what every instance's relay wrote.

pub mod hub;
pub mod relay;

pub use hub::{EventHub, Frame, HubOptions, Opened, Subscription, audit_event};
pub use relay::{RelayOptions, spawn_relay};
