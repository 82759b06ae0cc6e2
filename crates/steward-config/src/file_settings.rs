//! The daemon settings a config file may set: `[server]`, `[storage]`, `[log]`, `[api]`,
//! `[audit]` and `[ui]` are read here; `[scheduler]` and `[health]` by the sections whose
//! work they tune.

use std::net::SocketAddr;
use std::path::PathBuf;

use steward_core::Secret;
use steward_core::health::spec::HealthSettings;

use crate::schedules::{SchedulerSettings, read_scheduler};
use crate::walk::{Cx, Fields};

const API_KEYS: &[&str] = &[
    "metrics_public",
    "cors_origins",
    "max_connections",
    "max_connections_per_address",
    "max_event_streams",
    "max_body_bytes",
    "max_batch_body_bytes",
    "request_timeout_secs",
    "header_timeout_secs",
    "min_body_bytes_per_second",
    "rate_limits",
];
const AUDIT_KEYS: &[&str] = &["mirror"];
const UI_KEYS: &[&str] = &[
    "enabled",
    "base_path",
    "public_badges",
    "secure_cookies",
    "session_idle_minutes",
    "session_max_hours",
];
const RATE_LIMIT_KEYS: &[&str] = &[
    "viewer",
    "operator",
    "admin",
    "agent",
    "auth_failures_per_minute",
];
const SERVER_KEYS: &[&str] = &["listen"];
const STORAGE_KEYS: &[&str] = &["data_dir", "database", "max_connections"];
const LOG_KEYS: &[&str] = &["format", "level"];

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable, coloured when the output is a terminal.
    #[default]
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    /// `log.format`'s values as written in the file.
    pub(crate) const CHOICES: [(&'static str, LogFormat); 2] =
        [("pretty", LogFormat::Pretty), ("json", LogFormat::Json)];
}

/// How the HTTP API is exposed (`[api]`); `None` fields take the built-in defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiSettings {
    /// Serve `/metrics` without a key (default false: closed).
    pub metrics_public: Option<bool>,
    /// Origins allowed to call the API from a browser; empty means CORS stays off.
    pub cors_origins: Vec<String>,
    /// Open connections at most; further ones wait to be accepted.
    pub max_connections: Option<u32>,
    /// Open connections from one address at most; further ones from it are closed.
    pub max_connections_per_address: Option<u32>,
    /// Open event streams (`GET /api/v1/events`) at most; further ones are answered 503.
    pub max_event_streams: Option<u32>,
    /// Largest request body, in bytes.
    pub max_body_bytes: Option<u32>,
    /// Largest body of a batch route (`POST /api/v1/tasks`, posted alerts), in bytes.
    pub max_batch_body_bytes: Option<u32>,
    /// Longest a request may take, in seconds.
    pub request_timeout_secs: Option<u32>,
    /// Longest a request's headers may take to arrive, in seconds.
    pub header_timeout_secs: Option<u32>,
    /// The average rate a request body must keep after its first 5 seconds.
    pub min_body_bytes_per_second: Option<u32>,
    /// Requests per second per `viewer` key.
    pub viewer_rate: Option<u32>,
    /// Requests per second per `operator` key.
    pub operator_rate: Option<u32>,
    /// Requests per second per `admin` key.
    pub admin_rate: Option<u32>,
    /// Requests per second per `agent` key (a node's agent).
    pub agent_rate: Option<u32>,
    /// Failed authentications per minute per source address.
    pub auth_failures_per_minute: Option<u32>,
}

/// The dashboard (`[ui]`); `None` fields take the built-in defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UiSettings {
    /// Serve the dashboard at `/` (default true).
    pub enabled: Option<bool>,
    /// The path prefix a reverse proxy serves Steward under (e.g. `/steward`), which the
    /// proxy strips before passing requests on; links and cookies carry it. Empty: none.
    pub base_path: Option<String>,
    /// Serve the status badges under `/badge/` without a key (default false).
    pub public_badges: Option<bool>,
    /// Mark session cookies `Secure` on every answer, not only on those to requests that came
    /// over HTTPS (`X-Forwarded-Proto: https`).
    pub secure_cookies: Option<bool>,
    /// Minutes a session lasts without being used.
    pub session_idle_minutes: Option<u32>,
    /// Hours a session lasts however much it is used.
    pub session_max_hours: Option<u32>,
}

/// The daemon settings a config file may set (`[server]`, `[storage]`, `[log]`, `[api]`,
/// `[audit]`, `[ui]`, `[scheduler]`, `[health]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSettings {
    /// `server.listen`: the HTTP address.
    pub listen: Option<SocketAddr>,
    /// `storage.data_dir`: where the embedded database lives; relative paths are resolved
    /// against the config file's directory.
    pub data_dir: Option<PathBuf>,
    /// `storage.database`: a `postgres://` URL; absent means the embedded SQLite.
    pub database: Option<Secret>,
    /// `storage.max_connections`: the PostgreSQL pool size.
    pub max_connections: Option<u32>,
    /// `log.format`.
    pub log_format: Option<LogFormat>,
    /// `log.level`: a filter such as `info` or `steward=debug,sqlx=warn`.
    pub log_level: Option<String>,
    /// `[api]`.
    pub api: ApiSettings,
    /// `[ui]`.
    pub ui: UiSettings,
    /// `audit.mirror`: a JSON Lines file every audit event is appended to, for log shippers;
    /// relative paths are resolved against the config file's directory.
    pub audit_mirror: Option<PathBuf>,
    /// `[scheduler]`, with the defaults filled in for what the file leaves out.
    pub scheduler: SchedulerSettings,
    /// `[health]` (its retention and concurrency), with the defaults filled in for what the file
    /// leaves out.
    pub health: HealthSettings,
}

/// Reads the daemon settings of `root`, `[scheduler]` included; `[health]` is filled in by
/// the caller, which also needs what it says about services.
pub(crate) fn read_settings(cx: &mut Cx<'_>, root: &Fields<'_>) -> FileSettings {
    let mut settings = FileSettings::default();
    let server = root
        .item("server")
        .and_then(|item| Fields::open_item(cx, item, "server", SERVER_KEYS));
    if let Some(listen) = server.and_then(|server| server.string(cx, "listen")) {
        match listen.value.parse() {
            Ok(addr) => settings.listen = Some(addr),
            Err(_) => cx.error(
                &listen.span,
                format!(
                    "`server.listen`: `{}` is not a socket address (e.g. 127.0.0.1:8710)",
                    listen.shown()
                ),
            ),
        }
    }
    if let Some(storage) = root
        .item("storage")
        .and_then(|item| Fields::open_item(cx, item, "storage", STORAGE_KEYS))
    {
        settings.data_dir = storage
            .string(cx, "data_dir")
            .map(|s| PathBuf::from(s.value));
        if let Some(db) = storage.string(cx, "database") {
            if is_postgres_url(&db.value) {
                settings.database = Some(Secret::new(db.value));
            } else {
                cx.error(
                    &db.span,
                    "`storage.database`: expected a postgres:// or postgresql:// URL (leave it out for the embedded SQLite)",
                );
            }
        }
        settings.max_connections = storage
            .positive_integer(cx, "max_connections", 1000)
            .map(|n| n.value);
    }
    if let Some(log) = root
        .item("log")
        .and_then(|item| Fields::open_item(cx, item, "log", LOG_KEYS))
    {
        settings.log_format = log
            .choice(cx, "format", &LogFormat::CHOICES)
            .map(|f| f.value);
        settings.log_level = log.string(cx, "level").map(|s| s.value);
    }
    if let Some(api) = root
        .item("api")
        .and_then(|item| Fields::open_item(cx, item, "api", API_KEYS))
    {
        settings.api = read_api(cx, &api);
    }
    if let Some(audit) = root
        .item("audit")
        .and_then(|item| Fields::open_item(cx, item, "audit", AUDIT_KEYS))
    {
        settings.audit_mirror = audit.string(cx, "mirror").map(|s| PathBuf::from(s.value));
    }
    if let Some(ui) = root
        .item("ui")
        .and_then(|item| Fields::open_item(cx, item, "ui", UI_KEYS))
    {
        settings.ui = read_ui(cx, &ui);
    }
    settings.scheduler = read_scheduler(cx, root);
    settings
}

/// `[ui]`: what is left out keeps the built-in default.
fn read_ui(cx: &mut Cx<'_>, ui: &Fields<'_>) -> UiSettings {
    let base_path = ui.string(cx, "base_path").and_then(|path| {
        if path.value.is_empty() || is_base_path(&path.value) {
            Some(path.value)
        } else {
            cx.error(
                &path.span,
                format!(
                    "`ui.base_path`: `{}` is not a path prefix: it starts with `/`, does not end \
                     with one, and holds only letters, digits, `-`, `_`, `.` and `/` \
                     (e.g. /steward)",
                    path.shown()
                ),
            );
            None
        }
    });
    UiSettings {
        enabled: ui.boolean(cx, "enabled"),
        base_path,
        public_badges: ui.boolean(cx, "public_badges"),
        secure_cookies: ui.boolean(cx, "secure_cookies"),
        session_idle_minutes: ui
            .positive_integer(cx, "session_idle_minutes", 7 * 24 * 60)
            .map(|n| n.value),
        session_max_hours: ui
            .positive_integer(cx, "session_max_hours", 90 * 24)
            .map(|n| n.value),
    }
}

/// Whether `path` is a usable prefix: `/a/b`, no empty segment, no dot segment, nothing a
/// link or cookie path would need to escape.
fn is_base_path(path: &str) -> bool {
    path.strip_prefix('/').is_some_and(|rest| {
        !rest.is_empty()
            && rest.split('/').all(|segment| {
                !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && segment
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            })
    })
}

/// `[api]` and its `rate_limits`: what is left out keeps the built-in default.
fn read_api(cx: &mut Cx<'_>, api: &Fields<'_>) -> ApiSettings {
    let mut settings = ApiSettings {
        metrics_public: api.boolean(cx, "metrics_public"),
        max_connections: api
            .positive_integer(cx, "max_connections", 1_000_000)
            .map(|n| n.value),
        max_connections_per_address: api
            .positive_integer(cx, "max_connections_per_address", 1_000_000)
            .map(|n| n.value),
        max_event_streams: api
            .positive_integer(cx, "max_event_streams", 1_000_000)
            .map(|n| n.value),
        max_body_bytes: api
            .positive_integer(cx, "max_body_bytes", 1 << 30)
            .map(|n| n.value),
        max_batch_body_bytes: api
            .positive_integer(cx, "max_batch_body_bytes", 1 << 30)
            .map(|n| n.value),
        request_timeout_secs: api
            .positive_integer(cx, "request_timeout_secs", 3600)
            .map(|n| n.value),
        header_timeout_secs: api
            .positive_integer(cx, "header_timeout_secs", 300)
            .map(|n| n.value),
        min_body_bytes_per_second: api
            .positive_integer(cx, "min_body_bytes_per_second", 1 << 30)
            .map(|n| n.value),
        ..ApiSettings::default()
    };
    for origin in api.strings(cx, "cors_origins").unwrap_or_default() {
        match url::Url::parse(&origin.value) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.path() == "/"
                    && !origin.value.ends_with('/') =>
            {
                settings.cors_origins.push(origin.value);
            }
            _ => cx.error(
                &origin.span,
                format!(
                    "`api.cors_origins`: `{}` is not an origin (e.g. https://dash.example.com)",
                    origin.value
                ),
            ),
        }
    }
    if let Some(limits) = api
        .item("rate_limits")
        .and_then(|item| Fields::open_item(cx, item, "api.rate_limits", RATE_LIMIT_KEYS))
    {
        let rate =
            |cx: &mut Cx<'_>, key| limits.positive_integer(cx, key, 1_000_000).map(|n| n.value);
        settings.viewer_rate = rate(cx, "viewer");
        settings.operator_rate = rate(cx, "operator");
        settings.admin_rate = rate(cx, "admin");
        settings.agent_rate = rate(cx, "agent");
        settings.auth_failures_per_minute = rate(cx, "auth_failures_per_minute");
    }
    settings
}

/// True for the URL schemes that select PostgreSQL (`storage.database` and `--database`).
pub(crate) fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_error, parse};

    #[test]
    fn ui_settings_are_read_and_checked() {
        let config = parse(
            "[ui]\nenabled = false\nbase_path = \"/ops/steward\"\npublic_badges = true\n\
             secure_cookies = true\nsession_idle_minutes = 45\nsession_max_hours = 8\n",
        );
        assert_eq!(
            config.settings.ui,
            UiSettings {
                enabled: Some(false),
                base_path: Some("/ops/steward".into()),
                public_badges: Some(true),
                secure_cookies: Some(true),
                session_idle_minutes: Some(45),
                session_max_hours: Some(8),
            }
        );
        assert_eq!(parse("[server]\n").settings.ui, UiSettings::default());
        for bad in [
            "steward",
            "/steward/",
            "/",
            "/a//b",
            "/a/../b",
            "/a b",
            "/a?x=1",
        ] {
            assert_error(
                &format!("[ui]\nbase_path = \"{bad}\"\n"),
                2,
                "`ui.base_path`",
            );
        }
        assert_error(
            "[ui]\nsession_idle_minutes = 0\n",
            2,
            "session_idle_minutes",
        );
        assert_error("[ui]\ntheme = \"dark\"\n", 2, "theme");
    }
}
