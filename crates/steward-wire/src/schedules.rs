//! Schedules and heartbeats: `/api/v1/schedules…` and `/api/v1/heartbeats…`.
