//! Views: read-only answers computed from the store and the config in force, shared by more than
//! one engine (and the API), so that engines never call into each other for them.

pub mod nodes;
pub mod services;
