//! Services and checks: `/api/v1/services…` and `/api/v1/checks…`.
