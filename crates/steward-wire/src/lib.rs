//! The wire types of Steward's HTTP API: what requests carry and answers hold, defined once and
//! shared by the server (`steward-api`), the CLI and any other client. Types here are plain
//! data with serde derives; they know nothing of HTTP, the store or the engines. Bodies also
//! derive `utoipa::ToSchema`, so the API's OpenAPI document describes them from their code.
//!
//! Times are RFC 3339 strings in UTC ([`time::rfc3339`]); where scripts want numbers, a
//! millisecond field stays beside them.

pub mod alertmanager;
pub mod alerts;
pub mod audit;
pub mod error;
pub mod events;
pub mod health;
pub mod index;
pub mod keys;
pub mod node_checks;
pub mod nodes;
pub mod paths;
pub mod pipelines;
pub mod registry;
pub mod schedules;
pub mod system;
pub mod tasks;
pub mod time;
pub mod work;
