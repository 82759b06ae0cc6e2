//! The `steward.toml` schema: what each section holds and the rules it must follow.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use steward_core::{
    Dependency, DependencyId, Registry, Repo, Secret, Service, Workspace, WorkspaceStatus,
};
use toml_edit::TableLike;

use crate::walk::{Cx, Fields, Span, Spanned, is_name, suggestion, url_problem};

const ROOT_KEYS: &[&str] = &[
    "server",
    "storage",
    "log",
    "api",
    "audit",
    "workspaces",
    "dependencies",
    "services",
];
const API_KEYS: &[&str] = &[
    "metrics_public",
    "cors_origins",
    "max_connections",
    "max_body_bytes",
    "request_timeout_secs",
    "rate_limits",
];
const AUDIT_KEYS: &[&str] = &["mirror"];
const RATE_LIMIT_KEYS: &[&str] = &["viewer", "operator", "admin", "auth_failures_per_minute"];
const SERVER_KEYS: &[&str] = &["listen"];
const STORAGE_KEYS: &[&str] = &["data_dir", "database", "max_connections"];
const LOG_KEYS: &[&str] = &["format", "level"];
const WORKSPACE_KEYS: &[&str] = &["key", "description", "owner", "status", "labels", "repo"];
const REPO_KEYS: &[&str] = &["name", "path", "remote"];
const DEPENDENCY_KEYS: &[&str] = &["from", "to", "type", "note"];
const SERVICE_KEYS: &[&str] = &["name", "workspace", "url", "node", "labels"];

/// A validated `steward.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Daemon settings as written in the file (before environment overrides).
    pub settings: FileSettings,
    /// The declared registry, in canonical order.
    pub registry: Registry,
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
    /// Largest request body, in bytes.
    pub max_body_bytes: Option<u32>,
    /// Longest a request may take, in seconds.
    pub request_timeout_secs: Option<u32>,
    /// Requests per second per `viewer` key.
    pub viewer_rate: Option<u32>,
    /// Requests per second per `operator` key.
    pub operator_rate: Option<u32>,
    /// Requests per second per `admin` key.
    pub admin_rate: Option<u32>,
    /// Failed authentications per minute per source address.
    pub auth_failures_per_minute: Option<u32>,
}

/// The daemon settings a config file may set (`[server]`, `[storage]`, `[log]`, `[api]`).
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
    /// `audit.mirror`: a JSON Lines file every audit event is appended to, for log shippers;
    /// relative paths are resolved against the config file's directory.
    pub audit_mirror: Option<PathBuf>,
}

/// Reads the whole document, reporting every problem into `cx`.
pub(crate) fn read_config(cx: &mut Cx<'_>, root: &dyn TableLike) -> Config {
    let root = Fields::open(cx, root, "", Some(0..0), ROOT_KEYS);
    let settings = read_settings(cx, &root);
    let workspaces = read_workspaces(cx, &root);
    let dependencies = read_dependencies(cx, &root, &workspaces);
    let services = read_services(cx, &root, &workspaces);
    Config {
        settings,
        registry: Registry::new(
            workspaces.into_values().map(|(w, _)| w).collect(),
            dependencies,
            services,
        ),
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
    settings
}

fn read_api(cx: &mut Cx<'_>, api: &Fields<'_>) -> ApiSettings {
    let mut settings = ApiSettings {
        metrics_public: api.boolean(cx, "metrics_public"),
        max_connections: api
            .positive_integer(cx, "max_connections", 1_000_000)
            .map(|n| n.value),
        max_body_bytes: api
            .positive_integer(cx, "max_body_bytes", 1 << 30)
            .map(|n| n.value),
        request_timeout_secs: api
            .positive_integer(cx, "request_timeout_secs", 3600)
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

/// A checked name (workspace key, service name, type), or `None` after reporting why not.
fn name_field(cx: &mut Cx<'_>, table: &Fields<'_>, key: &str) -> Option<Spanned<String>> {
    let value = table.required_string(cx, key)?;
    let value = literal(cx, table, key, value)?;
    if is_name(&value.value) {
        Some(value)
    } else {
        cx.error(
            &value.span,
            format!(
                "`{}`: `{}` is not a valid name (letters, digits, `_`, `-`, `.`; starting with a letter or digit; at most 64 characters)",
                table.field(key),
                value.value
            ),
        );
        None
    }
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

/// Refuses `${VAR}` in fields that identify things (names, references): identities are not
/// secrets, and must read the same in the file, the store and the API.
fn literal(
    cx: &mut Cx<'_>,
    table: &Fields<'_>,
    key: &str,
    value: Spanned<String>,
) -> Option<Spanned<String>> {
    if value.template.is_some() {
        cx.error(
            &value.span,
            format!(
                "`{}`: names and references cannot use `${{VAR}}`",
                table.field(key)
            ),
        );
        return None;
    }
    Some(value)
}

/// Checks that a field names a declared workspace, suggesting the closest one if it does not.
fn workspace_ref(
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

fn read_services(
    cx: &mut Cx<'_>,
    root: &Fields<'_>,
    workspaces: &std::collections::BTreeMap<String, (Workspace, Span)>,
) -> Vec<Service> {
    let mut seen: HashMap<String, Span> = HashMap::new();
    let mut services = Vec::new();
    for (i, (table, span)) in root.tables(cx, "services").into_iter().enumerate() {
        let t = Fields::open(cx, table, format!("services[{i}]"), span, SERVICE_KEYS);
        let name = name_field(cx, &t, "name");
        let mut service = Service::new(name.as_ref().map_or("", |n| n.value.as_str()));
        service.workspace = t
            .string(cx, "workspace")
            .and_then(|v| workspace_ref(cx, &t, "workspace", v, workspaces));
        service.url = t.string(cx, "url").and_then(|u| checked_url(cx, &t, u));
        service.node = t.string(cx, "node").map(Spanned::kept);
        service.labels = t.labels(cx, "labels");
        let Some(name) = name else { continue };
        if let Some(first) = seen.get(&name.value) {
            let first = cx.locate(first);
            cx.error(
                &name.span,
                format!(
                    "`{}`: duplicate service `{}` (first declared at {first})",
                    t.field("name"),
                    name.value
                ),
            );
            continue;
        }
        seen.insert(name.value, name.span);
        services.push(service);
    }
    services
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
