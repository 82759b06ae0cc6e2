//! Alerts, notifications and silences in Steward's own shape: `/api/v1/alerts…`,
//! `/api/v1/notifications` and `/api/v1/silences…` (Alertmanager's shape is in
//! [`crate::alertmanager`]).
