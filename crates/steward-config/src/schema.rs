//! The `steward.toml` schema: what each section holds and the rules it must follow.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;

use steward_core::alert::spec::AlertingSpec;
use steward_core::health::spec::{CheckSpec, HealthSettings};
use steward_core::queue::{
    BUILTIN_KINDS, ExecutorSpec, HttpSpec, HttpTarget, PRUNE_KIND, QueueSpec, SYSTEM_QUEUE,
    ShellSpec,
};
use steward_core::schedule::{HeartbeatSpec, ScheduleSpec};
use steward_core::task::{MAX_ATTEMPTS, RetryPolicy};
use steward_core::{
    Dependency, DependencyId, Registry, Repo, Secret, Service, Workspace, WorkspaceStatus,
};
use toml_edit::TableLike;

use crate::alerting::read_alerting;
use crate::checks::{ServiceSite, read_checks, read_health};
use crate::readers::{
    first_declaration, literal, name_field, read_command, read_env, read_headers, read_workdir,
    unreserved, warn_unless_runnable,
};
use crate::schedules::{SchedulerSettings, read_heartbeats, read_scheduler, read_schedules};
use crate::walk::{Cx, Fields, Span, Spanned, shown_ms, suggestion, url_problem};

const ROOT_KEYS: &[&str] = &[
    "server",
    "storage",
    "log",
    "api",
    "audit",
    "ui",
    "workspaces",
    "dependencies",
    "services",
    "queues",
    "executors",
    "schedules",
    "heartbeats",
    "scheduler",
    "checks",
    "health",
    "alerting",
];
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
const RATE_LIMIT_KEYS: &[&str] = &["viewer", "operator", "admin", "auth_failures_per_minute"];
const SERVER_KEYS: &[&str] = &["listen"];
const STORAGE_KEYS: &[&str] = &["data_dir", "database", "max_connections"];
const LOG_KEYS: &[&str] = &["format", "level"];
const WORKSPACE_KEYS: &[&str] = &["key", "description", "owner", "status", "labels", "repo"];
const REPO_KEYS: &[&str] = &["name", "path", "remote"];
const DEPENDENCY_KEYS: &[&str] = &["from", "to", "type", "note"];
const SERVICE_KEYS: &[&str] = &["name", "workspace", "url", "node", "labels"];
const QUEUE_KEYS: &[&str] = &[
    "name",
    "kinds",
    "concurrency",
    "rate_limit",
    "max_attempts",
    "backoff_base",
    "backoff_cap",
    "timeout",
    "lease",
    "max_payload_bytes",
    "retention",
];
/// The keys of an `http` executor besides `name` and `type`.
const HTTP_KEYS: &[&str] = &[
    "method",
    "url",
    "service",
    "path",
    "headers",
    "success_status",
    "outcome_field",
    "max_response_bytes",
];
/// The keys of a `shell` executor besides `name` and `type`.
const SHELL_KEYS: &[&str] = &["command", "args", "params", "env", "workdir"];
/// Every key an executor may have, whatever its type.
const EXECUTOR_KEYS: &[&str] = &[
    "name",
    "type",
    "method",
    "url",
    "service",
    "path",
    "headers",
    "success_status",
    "outcome_field",
    "max_response_bytes",
    "command",
    "args",
    "params",
    "env",
    "workdir",
];
const HTTP_METHODS: [(&str, &str); 5] = [
    ("GET", "GET"),
    ("POST", "POST"),
    ("PUT", "PUT"),
    ("PATCH", "PATCH"),
    ("DELETE", "DELETE"),
];
const MAX_CONCURRENCY: i64 = 10_000;
const MAX_RATE_LIMIT: i64 = 1_000_000;
const MAX_PAYLOAD_BYTES: i64 = 64 << 20;
const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;
const MAX_RESPONSE_BYTES: i64 = 16 << 20;
/// The shortest lease: heartbeats go out every third of it.
const MIN_LEASE_MS: u64 = 1_000;

/// The declared workspaces by key, each with where its key is written.
pub(crate) type Workspaces = BTreeMap<String, (Workspace, Span)>;

/// A validated `steward.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Daemon settings as written in the file (before environment overrides).
    pub settings: FileSettings,
    /// The declared registry, in canonical order.
    pub registry: Registry,
    /// `[[queues]]`, in file order.
    pub queues: Vec<QueueSpec>,
    /// `[[executors]]`, in file order (the built-in kinds are not listed).
    pub executors: Vec<ExecutorSpec>,
    /// `[[schedules]]`, in file order.
    pub schedules: Vec<ScheduleSpec>,
    /// `[[heartbeats]]`, in file order.
    pub heartbeats: Vec<HeartbeatSpec>,
    /// `[[checks]]` in file order, then the default HTTP check of each service with an http(s)
    /// `url` and no check of its own (unless `health.check_service_urls = false`), in service
    /// order.
    pub checks: Vec<CheckSpec>,
    /// `[alerting]`: receivers, the route tree, inhibition rules and settings (the default,
    /// with no route, when the file has no `[alerting]`).
    pub alerting: AlertingSpec,
    /// Every value a `${VAR}` reference was replaced with (see [`Config::secrets`]).
    pub(crate) resolved: Vec<Secret>,
}

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

/// Reads the whole document, reporting every problem into `cx`.
pub(crate) fn read_config(cx: &mut Cx<'_>, root: &dyn TableLike) -> Config {
    let root = Fields::open(cx, root, "", Some(0..0), ROOT_KEYS);
    let mut settings = read_settings(cx, &root);
    let (health, check_service_urls) = read_health(cx, &root);
    settings.health = health;
    let workspaces = read_workspaces(cx, &root);
    let dependencies = read_dependencies(cx, &root, &workspaces);
    let (services, bad_urls, sites) = read_services(cx, &root, &workspaces);
    let (executors, executor_names) = read_executors(cx, &root, &services, &bad_urls);
    let (queues, partial_kinds) = read_queues(cx, &root, &executor_names);
    let schedules = read_schedules(cx, &root, &workspaces, &queues, &partial_kinds);
    let heartbeats = read_heartbeats(cx, &root, &workspaces);
    let checks = read_checks(cx, &root, &sites, check_service_urls);
    let declared = crate::alert_rules::Declared {
        checks: checks.iter().map(|c| c.name.as_str()).collect(),
        schedules: schedules.iter().map(|s| s.name.as_str()).collect(),
        heartbeats: heartbeats.iter().map(|h| h.name.as_str()).collect(),
        queues: queues.iter().map(|q| q.name.as_str()).collect(),
    };
    let alerting = read_alerting(cx, &root, &queues, &partial_kinds, &declared);
    Config {
        settings,
        registry: Registry::new(
            workspaces.into_values().map(|(w, _)| w).collect(),
            dependencies,
            services,
        ),
        queues,
        executors,
        schedules,
        heartbeats,
        checks,
        alerting,
        resolved: cx.take_resolved().into_iter().map(Secret::new).collect(),
    }
}

fn read_settings(cx: &mut Cx<'_>, root: &Fields<'_>) -> FileSettings {
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
            if crate::settings::DatabaseTarget::is_postgres_url(&db.value) {
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
        settings.auth_failures_per_minute = rate(cx, "auth_failures_per_minute");
    }
    settings
}

fn read_workspaces(
    cx: &mut Cx<'_>,
    root: &Fields<'_>,
) -> std::collections::BTreeMap<String, (Workspace, Span)> {
    let mut workspaces = std::collections::BTreeMap::new();
    for (i, (table, span)) in root.tables(cx, "workspaces").into_iter().enumerate() {
        let t = Fields::open(cx, table, format!("workspaces[{i}]"), span, WORKSPACE_KEYS);
        let key = name_field(cx, &t, "key");
        let mut workspace = Workspace::new(key.as_ref().map_or("", |k| k.value.as_str()));
        workspace.description = t.string(cx, "description").map(Spanned::kept);
        workspace.owner = t.string(cx, "owner").map(Spanned::kept);
        workspace.status = t
            .choice(cx, "status", &WorkspaceStatus::ALL.map(|s| (s.as_str(), s)))
            .map_or(WorkspaceStatus::Active, |s| s.value);
        workspace.labels = t.labels(cx, "labels");
        workspace.repo = read_repo(cx, &t);
        let Some(key) = key else { continue };
        if let Some((_, first)) = workspaces.get(&key.value) {
            let first = cx.locate(first);
            cx.error(
                &key.span,
                format!(
                    "`{}`: duplicate workspace `{}` (first declared at {first})",
                    t.field("key"),
                    key.value
                ),
            );
            continue;
        }
        workspaces.insert(key.value, (workspace, key.span));
    }
    workspaces
}

fn read_repo(cx: &mut Cx<'_>, workspace: &Fields<'_>) -> Option<Repo> {
    let item = workspace.item("repo")?;
    let t = Fields::open_item(cx, item, workspace.field("repo"), REPO_KEYS)?;
    let repo = Repo {
        name: t.string(cx, "name").map(Spanned::kept),
        path: t.string(cx, "path").map(Spanned::kept),
        remote: t.string(cx, "remote").map(Spanned::kept),
    };
    (!repo.is_empty()).then_some(repo)
}

/// Checks that a field names a declared workspace, suggesting the closest one if it does not.
pub(crate) fn workspace_ref(
    cx: &mut Cx<'_>,
    table: &Fields<'_>,
    key: &str,
    value: Spanned<String>,
    workspaces: &std::collections::BTreeMap<String, (Workspace, Span)>,
) -> Option<String> {
    let value = literal(cx, table, key, value)?;
    if workspaces.contains_key(&value.value) {
        return Some(value.value);
    }
    let known: Vec<&str> = workspaces.keys().map(String::as_str).collect();
    let hint = suggestion(&value.value, &known)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    cx.error(
        &value.span,
        format!(
            "`{}`: unknown workspace `{}`{hint}",
            table.field(key),
            value.value
        ),
    );
    None
}

fn read_dependencies(
    cx: &mut Cx<'_>,
    root: &Fields<'_>,
    workspaces: &std::collections::BTreeMap<String, (Workspace, Span)>,
) -> Vec<Dependency> {
    let mut seen: HashMap<DependencyId, Span> = HashMap::new();
    let mut dependencies = Vec::new();
    for (i, (table, span)) in root.tables(cx, "dependencies").into_iter().enumerate() {
        let t = Fields::open(
            cx,
            table,
            format!("dependencies[{i}]"),
            span.clone(),
            DEPENDENCY_KEYS,
        );
        let from = t
            .required_string(cx, "from")
            .and_then(|v| workspace_ref(cx, &t, "from", v, workspaces));
        let to = t
            .required_string(cx, "to")
            .and_then(|v| workspace_ref(cx, &t, "to", v, workspaces));
        let kind = name_field(cx, &t, "type");
        let note = t.string(cx, "note").map(Spanned::kept);
        let (Some(from), Some(to), Some(kind)) = (from, to, kind) else {
            continue;
        };
        if from == to {
            cx.error(
                &span,
                format!("`dependencies[{i}]`: workspace `{from}` cannot depend on itself"),
            );
            continue;
        }
        let dependency = Dependency {
            from,
            to,
            kind: kind.value,
            note,
        };
        let id = dependency.id();
        if let Some(first) = seen.get(&id) {
            let first = cx.locate(first);
            cx.warning(
                &span,
                format!("`dependencies[{i}]`: duplicate edge {id} (first declared at {first}); merged into the first"),
            );
            continue;
        }
        seen.insert(id, span);
        dependencies.push(dependency);
    }
    dependencies
}

/// The services, the names of those whose `url` was written but refused (so that executors
/// naming them do not report a second, misleading problem), and what checks need to know of
/// each (in file order).
fn read_services(
    cx: &mut Cx<'_>,
    root: &Fields<'_>,
    workspaces: &std::collections::BTreeMap<String, (Workspace, Span)>,
) -> (Vec<Service>, HashSet<String>, Vec<ServiceSite>) {
    let mut seen: HashMap<String, Span> = HashMap::new();
    let mut services = Vec::new();
    let mut bad_urls = HashSet::new();
    let mut sites = Vec::new();
    for (i, (table, span)) in root.tables(cx, "services").into_iter().enumerate() {
        let t = Fields::open(cx, table, format!("services[{i}]"), span, SERVICE_KEYS);
        let name = name_field(cx, &t, "name");
        let mut service = Service::new(name.as_ref().map_or("", |n| n.value.as_str()));
        service.workspace = t
            .string(cx, "workspace")
            .and_then(|v| workspace_ref(cx, &t, "workspace", v, workspaces));
        let url = t.string(cx, "url");
        service.url = url.clone().and_then(|u| checked_url(cx, &t, u));
        service.node = t.string(cx, "node").map(Spanned::kept);
        service.labels = t.labels(cx, "labels");
        let Some(name) = name else { continue };
        let url_refused = service.url.is_none() && t.item("url").is_some();
        if url_refused {
            bad_urls.insert(name.value.clone());
        }
        let site = ServiceSite {
            name: name.value.clone(),
            name_span: name.span.clone(),
            name_field: t.field("name"),
            url: url.filter(|_| service.url.is_some()),
            url_refused,
        };
        if first_declaration(cx, &mut seen, &t, "service", name) {
            services.push(service);
            sites.push(site);
        }
    }
    (services, bad_urls, sites)
}

fn checked_url(cx: &mut Cx<'_>, t: &Fields<'_>, raw: Spanned<String>) -> Option<String> {
    match url_problem(&raw.value, raw.shown()) {
        None => Some(raw.kept()),
        Some(problem) => {
            cx.error(&raw.span, format!("`{}`: {problem}", t.field("url")));
            None
        }
    }
}

/// Reads `[[queues]]`; `executors` are the names declared in `[[executors]]`. Also answers the
/// names of the queues some of whose `kinds` were refused (so that schedules naming one of
/// those kinds do not report a second, misleading problem).
fn read_queues(
    cx: &mut Cx<'_>,
    root: &Fields<'_>,
    executors: &BTreeSet<String>,
) -> (Vec<QueueSpec>, HashSet<String>) {
    let known: Vec<&str> = BUILTIN_KINDS
        .into_iter()
        .chain(executors.iter().map(String::as_str))
        .collect();
    let mut seen: HashMap<String, Span> = HashMap::new();
    let mut queues = Vec::new();
    let mut partial_kinds = HashSet::new();
    for (i, (table, span)) in root.tables(cx, "queues").into_iter().enumerate() {
        let t = Fields::open(cx, table, format!("queues[{i}]"), span, QUEUE_KEYS);
        let name = name_field(cx, &t, "name");
        let name = unreserved(cx, &t, name, SYSTEM_QUEUE, "queue");
        let mut queue = QueueSpec::new(name.as_ref().map_or("", |n| n.value.as_str()), &[]);
        let (kinds, all_kinds_read) = read_kinds(cx, &t, &known);
        queue.kinds = kinds;
        if let Some(n) = t.positive_integer(cx, "concurrency", MAX_CONCURRENCY) {
            queue.concurrency = n.value;
        }
        queue.rate_limit = t
            .positive_integer(cx, "rate_limit", MAX_RATE_LIMIT)
            .map(|n| n.value);
        queue.retry = read_retry(cx, &t);
        if let Some(timeout) = t.duration_ms(cx, "timeout") {
            queue.timeout_ms = timeout.value;
        }
        if let Some(lease) = t.duration_ms(cx, "lease") {
            if lease.value < MIN_LEASE_MS {
                cx.error(
                    &lease.span,
                    format!(
                        "`{}`: must be at least 1s (the lease is renewed every third of it)",
                        t.field("lease")
                    ),
                );
            } else {
                queue.lease_ms = lease.value;
            }
        }
        if let Some(n) = t.positive_integer(cx, "max_payload_bytes", MAX_PAYLOAD_BYTES) {
            queue.max_payload_bytes = n.value as usize;
        }
        if let Some(retention) = t.duration_ms_or_forever(cx, "retention") {
            queue.retention_ms = retention.value;
        }
        let Some(name) = name else { continue };
        if first_declaration(cx, &mut seen, &t, "queue", name) {
            if !all_kinds_read {
                partial_kinds.insert(queue.name.clone());
            }
            queues.push(queue);
        }
    }
    (queues, partial_kinds)
}

/// A queue's `kinds`: required, not empty, each a built-in or a declared executor. The flag is
/// false when some written kind was refused.
fn read_kinds(cx: &mut Cx<'_>, t: &Fields<'_>, known: &[&str]) -> (Vec<String>, bool) {
    let Some(item) = t.item("kinds") else {
        cx.error(
            &t.span,
            format!(
                "`{}`: missing required field (the executors its tasks may use, e.g. kinds = [\"noop\"])",
                t.field("kinds")
            ),
        );
        return (Vec::new(), false);
    };
    let Some(written) = t.strings(cx, "kinds") else {
        return (Vec::new(), false);
    };
    if item.as_array().is_some_and(|a| a.is_empty()) {
        cx.error(
            &item.span(),
            format!(
                "`{}`: must list at least one kind (e.g. kinds = [\"noop\"])",
                t.field("kinds")
            ),
        );
    }
    let mut kinds: Vec<String> = Vec::new();
    // Elements that are not strings have been reported by `strings`.
    let mut all_read = item.as_array().is_some_and(|a| a.len() == written.len());
    for (j, kind) in written.into_iter().enumerate() {
        let path = format!("{}[{j}]", t.field("kinds"));
        if !known.contains(&kind.value.as_str()) {
            let hint = suggestion(&kind.value, known)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_else(|| format!("; known kinds: {}", known.join(", ")));
            cx.error(
                &kind.span,
                format!(
                    "`{path}`: unknown kind `{}` (neither built in nor declared in `[[executors]]`){hint}",
                    kind.value
                ),
            );
            all_read = false;
        } else if kinds.contains(&kind.value) {
            cx.warning(
                &kind.span,
                format!("`{path}`: kind `{}` is listed twice", kind.value),
            );
        } else {
            kinds.push(kind.value);
        }
    }
    (kinds, all_read)
}

/// A queue's attempts and backoff, from the defaults of [`RetryPolicy`].
fn read_retry(cx: &mut Cx<'_>, t: &Fields<'_>) -> RetryPolicy {
    let mut retry = RetryPolicy::default();
    if let Some(n) = t.positive_integer(cx, "max_attempts", MAX_ATTEMPTS.into()) {
        retry.max_attempts = n.value;
    }
    let base = t.duration_ms(cx, "backoff_base");
    let cap = t.duration_ms(cx, "backoff_cap");
    // Compare only what was read well: a refused value has been reported already.
    let base_ok = base.is_some() || t.item("backoff_base").is_none();
    let cap_ok = cap.is_some() || t.item("backoff_cap").is_none();
    if let Some(base) = &base {
        retry.base_ms = base.value;
    }
    if let Some(cap) = &cap {
        retry.cap_ms = cap.value;
    }
    if base_ok && cap_ok && retry.cap_ms < retry.base_ms {
        match (&base, &cap) {
            (_, Some(cap)) => cx.error(
                &cap.span,
                format!(
                    "`{}`: {} is less than `backoff_base` ({})",
                    t.field("backoff_cap"),
                    shown_ms(retry.cap_ms),
                    shown_ms(retry.base_ms)
                ),
            ),
            (Some(base), None) => cx.error(
                &base.span,
                format!(
                    "`{}`: {} is more than `backoff_cap` ({}, the default); raise `backoff_cap` too",
                    t.field("backoff_base"),
                    shown_ms(retry.base_ms),
                    shown_ms(retry.cap_ms)
                ),
            ),
            (None, None) => {}
        }
    }
    retry
}

/// The two types of declared executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExecutorType {
    Http,
    Shell,
}

impl ExecutorType {
    const CHOICES: [(&'static str, ExecutorType); 2] =
        [("http", ExecutorType::Http), ("shell", ExecutorType::Shell)];

    fn name(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Shell => "shell",
        }
    }

    /// The keys only the other type has.
    fn foreign_keys(self) -> (&'static [&'static str], ExecutorType) {
        match self {
            Self::Http => (SHELL_KEYS, Self::Shell),
            Self::Shell => (HTTP_KEYS, Self::Http),
        }
    }
}

/// Reads `[[executors]]`: the valid ones, and every name declared (also by executors with other
/// problems, so that queues naming them do not report a second, misleading problem).
fn read_executors(
    cx: &mut Cx<'_>,
    root: &Fields<'_>,
    services: &[Service],
    bad_urls: &HashSet<String>,
) -> (Vec<ExecutorSpec>, BTreeSet<String>) {
    let mut seen: HashMap<String, Span> = HashMap::new();
    let mut executors = Vec::new();
    for (i, (table, span)) in root.tables(cx, "executors").into_iter().enumerate() {
        let t = Fields::open(cx, table, format!("executors[{i}]"), span, EXECUTOR_KEYS);
        let name = name_field(cx, &t, "name").filter(|name| {
            let builtin = BUILTIN_KINDS.contains(&name.value.as_str()) || name.value == PRUNE_KIND;
            if builtin {
                cx.error(
                    &name.span,
                    format!(
                        "`{}`: `{}` is a built-in kind; choose another name",
                        t.field("name"),
                        name.value
                    ),
                );
            }
            !builtin
        });
        let kind = if t.item("type").is_none() {
            cx.error(
                &t.span,
                format!(
                    "`{}`: missing required field (\"http\" or \"shell\")",
                    t.field("type")
                ),
            );
            None
        } else {
            t.choice(cx, "type", &ExecutorType::CHOICES)
                .map(|k| k.value)
        };
        let spec = kind.and_then(|kind| {
            let (foreign, owner) = kind.foreign_keys();
            for key in foreign {
                if let Some(span) = t.key_span(key) {
                    cx.error(
                        &span,
                        format!(
                            "`{}`: not a key of `{}` executors (it belongs to `type = \"{}\"`)",
                            t.field(key),
                            kind.name(),
                            owner.name()
                        ),
                    );
                }
            }
            let executor_name = name.as_ref().map_or("", |n| n.value.as_str());
            match kind {
                ExecutorType::Http => {
                    read_http(cx, &t, executor_name, services, bad_urls).map(ExecutorSpec::Http)
                }
                ExecutorType::Shell => read_shell(cx, &t, executor_name).map(ExecutorSpec::Shell),
            }
        });
        let Some(name) = name else { continue };
        if first_declaration(cx, &mut seen, &t, "executor", name) {
            executors.extend(spec);
        }
    }
    (executors, seen.into_keys().collect())
}

fn read_http(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    name: &str,
    services: &[Service],
    bad_urls: &HashSet<String>,
) -> Option<HttpSpec> {
    let method = t
        .choice(cx, "method", &HTTP_METHODS)
        .map_or("POST", |m| m.value);
    let target = read_http_target(cx, t, services, bad_urls);
    let headers = read_headers(cx, t);
    let success_status = t
        .integers(cx, "success_status", 100..=599)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| u16::try_from(s.value).ok())
        .collect();
    let outcome_field = t.literal_string(cx, "outcome_field").and_then(|f| {
        if f.value.is_empty() {
            cx.error(
                &f.span,
                format!("`{}`: must not be empty", t.field("outcome_field")),
            );
            return None;
        }
        Some(f.value)
    });
    let max_response_bytes = t
        .positive_integer(cx, "max_response_bytes", MAX_RESPONSE_BYTES)
        .map_or(DEFAULT_MAX_RESPONSE_BYTES, |n| n.value as usize);
    Some(HttpSpec {
        name: name.to_owned(),
        method: method.to_owned(),
        target: target?,
        headers: headers?,
        success_status,
        outcome_field,
        max_response_bytes,
    })
}

/// Exactly one of `url` or `service` (with an optional `path`).
fn read_http_target(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    services: &[Service],
    bad_urls: &HashSet<String>,
) -> Option<HttpTarget> {
    let has_url = t.item("url").is_some();
    let has_service = t.item("service").is_some();
    if has_url && has_service {
        cx.error(
            &t.key_span("service").flatten(),
            format!(
                "`{}`: an http executor takes `url` or `service`, not both",
                t.field("service")
            ),
        );
    } else if !has_url && !has_service {
        cx.error(
            &t.span,
            format!(
                "`{}`: an http executor needs `url` (a fixed URL) or `service` (a `[[services]]` name)",
                t.field("url")
            ),
        );
    }
    let path = t.literal_string(cx, "path").and_then(|path| {
        if !path.value.starts_with('/') {
            cx.error(
                &path.span,
                format!(
                    "`{}`: `{}` must start with `/`",
                    t.field("path"),
                    path.value
                ),
            );
            return None;
        }
        if path.value.chars().any(char::is_whitespace) {
            cx.error(
                &path.span,
                format!("`{}`: must not contain white space", t.field("path")),
            );
            return None;
        }
        Some(path)
    });
    let path_ok = path.is_some() || t.item("path").is_none();
    if has_url && let Some(span) = t.key_span("path") {
        cx.error(
            &span,
            format!(
                "`{}`: only goes with `service`; write the whole URL in `url`",
                t.field("path")
            ),
        );
    }
    let url = t.string(cx, "url").and_then(|raw| executor_url(cx, t, raw));
    let service = t
        .string(cx, "service")
        .and_then(|raw| literal(cx, t, "service", raw))
        .and_then(|raw| service_ref(cx, t, raw, services, bad_urls));
    match (url, service) {
        (Some(url), None) if !has_service => Some(HttpTarget::Url(url)),
        (None, Some(name)) if !has_url && path_ok => Some(HttpTarget::Service {
            name,
            path: path.map(|p| p.value).unwrap_or_default(),
        }),
        _ => None,
    }
}

/// An executor's fixed URL: literal (it appears in task errors), http or https, with a host.
fn executor_url(cx: &mut Cx<'_>, t: &Fields<'_>, raw: Spanned<String>) -> Option<String> {
    let field = t.field("url");
    if raw.template.is_some() {
        cx.error(
            &raw.span,
            format!(
                "`{field}`: an executor's url cannot use `${{VAR}}` (it appears in task errors); pass secrets in `headers`"
            ),
        );
        return None;
    }
    if let Some(problem) = url_problem(&raw.value, raw.shown()) {
        cx.error(&raw.span, format!("`{field}`: {problem}"));
        return None;
    }
    if !(raw.value.starts_with("http://") || raw.value.starts_with("https://")) {
        cx.error(
            &raw.span,
            format!(
                "`{field}`: `{}` is not an http:// or https:// URL",
                raw.value
            ),
        );
        return None;
    }
    Some(raw.value)
}

/// Checks that `service` names a declared service with a literal URL.
fn service_ref(
    cx: &mut Cx<'_>,
    t: &Fields<'_>,
    raw: Spanned<String>,
    services: &[Service],
    bad_urls: &HashSet<String>,
) -> Option<String> {
    let field = t.field("service");
    let Some(service) = services.iter().find(|s| s.name == raw.value) else {
        let known: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        let hint = suggestion(&raw.value, &known)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        cx.error(
            &raw.span,
            format!("`{field}`: unknown service `{}`{hint}", raw.value),
        );
        return None;
    };
    match service.url.as_deref() {
        // Its own problem has been reported where it is written.
        None if bad_urls.contains(&raw.value) => None,
        None => {
            cx.error(
                &raw.span,
                format!(
                    "`{field}`: service `{}` has no `url` to send requests to",
                    raw.value
                ),
            );
            None
        }
        Some(url) if url.contains("${") => {
            cx.error(
                &raw.span,
                format!(
                    "`{field}`: the url of service `{}` uses `${{VAR}}`; an executor needs a literal url (pass secrets in `headers`)",
                    raw.value
                ),
            );
            None
        }
        Some(_) => Some(raw.value),
    }
}

fn read_shell(cx: &mut Cx<'_>, t: &Fields<'_>, name: &str) -> Option<ShellSpec> {
    let command = read_command(cx, t);
    let args = t.strings(cx, "args").unwrap_or_default();
    let mut ok = true;
    let mut placeholders: Vec<(String, Spanned<String>, usize)> = Vec::new();
    for (j, arg) in args.iter().enumerate() {
        match arg_placeholders(&arg.value) {
            Ok(names) => {
                placeholders.extend(names.into_iter().map(|n| (n, arg.clone(), j)));
            }
            Err(problem) => {
                cx.error(&arg.span, format!("`{}[{j}]`: {problem}", t.field("args")));
                ok = false;
            }
        }
    }
    let (params, declared) = read_params(cx, t);
    for (placeholder, arg, j) in &placeholders {
        if !declared.iter().any(|(d, _)| d == placeholder) {
            let known: Vec<&str> = declared.iter().map(|(d, _)| d.as_str()).collect();
            let hint = suggestion(placeholder, &known)
                .map(|s| format!("; did you mean `{{{s}}}`?"))
                .unwrap_or_default();
            cx.error(
                &arg.span,
                format!(
                    "`{}[{j}]`: placeholder `{{{placeholder}}}` is not declared in `params` (add `{placeholder} = \"<pattern>\"`){hint}",
                    t.field("args")
                ),
            );
            ok = false;
        }
    }
    // With a malformed argument, which parameters it meant to use is not known.
    let args_ok = ok;
    for (param, span) in declared.iter().filter(|_| args_ok) {
        if !placeholders.iter().any(|(p, _, _)| p == param) {
            cx.warning(
                span,
                format!(
                    "`{}.{param}`: no argument uses `{{{param}}}`",
                    t.field("params")
                ),
            );
        }
    }
    let env = read_env(cx, t);
    let workdir = read_workdir(cx, t);
    if let (Some(command), Some(env)) = (&command, &env) {
        warn_unless_runnable(cx, t, command, env);
    }
    let spec = ShellSpec {
        name: name.to_owned(),
        command: command?.value,
        args: args.into_iter().map(|a| a.value).collect(),
        params: params?,
        env: env?,
        workdir: workdir?,
    };
    ok.then_some(spec)
}

/// The `{field}` placeholders of one argument (see [`ShellSpec::placeholders`]), or why the
/// argument is malformed.
fn arg_placeholders(arg: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let name = match after.find('}') {
            Some(close) => &after[..close],
            None => return Err(format!("unclosed `{{` in `{arg}`")),
        };
        if name.contains('{') {
            return Err(format!("unclosed `{{` in `{arg}`"));
        }
        if name.is_empty() {
            return Err(format!("empty placeholder `{{}}` in `{arg}`"));
        }
        names.push(name.to_owned());
        rest = &after[name.len() + 1..];
    }
    Ok(names)
}

/// Names declared in a table, each with where it is written.
type Declared = Vec<(String, Span)>;

/// `params`: field name → pattern. Returns the patterns (`None` when any is refused) and every
/// usable name declared, with where it is written.
fn read_params(cx: &mut Cx<'_>, t: &Fields<'_>) -> (Option<BTreeMap<String, String>>, Declared) {
    let field = t.field("params");
    let mut params = Some(BTreeMap::new());
    let mut declared = Vec::new();
    for (name, pattern) in t.string_table(cx, "params", false) {
        if name.value.is_empty() || name.value.contains(['{', '}']) {
            cx.error(
                &name.span,
                format!(
                    "`{field}`: `{}` cannot be a parameter name (it must be non-empty, without `{{` or `}}`)",
                    name.value
                ),
            );
            params = None;
            continue;
        }
        declared.push((name.value.clone(), name.span.clone()));
        let problem = if pattern.value.is_empty() {
            Some(
                "must not be empty (write a pattern the value must match, e.g. \"[a-z0-9_]+\")"
                    .to_owned(),
            )
        } else {
            // The pattern must stand alone, so that anchoring it cannot be escaped (`a)|(.*`).
            regex::Regex::new(&pattern.value)
                .and_then(|_| regex::Regex::new(&format!("^(?:{})$", pattern.value)))
                .err()
                .map(|e| format!("invalid pattern: {}", regex_problem(&e)))
        };
        match problem {
            Some(problem) => {
                cx.error(
                    &pattern.span,
                    format!("`{field}.{}`: {problem}", name.value),
                );
                params = None;
            }
            None => {
                if let Some(params) = params.as_mut() {
                    params.insert(name.value, pattern.value);
                }
            }
        }
    }
    (params, declared)
}

/// A regex error on one line (the library draws a multi-line picture).
fn regex_problem(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map_or_else(
            || text.split_whitespace().collect::<Vec<_>>().join(" "),
            str::to_owned,
        )
}

#[cfg(test)]
mod tests;
