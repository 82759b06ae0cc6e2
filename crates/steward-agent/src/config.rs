//! The agent's settings file, `agent.toml`: which hub to talk to, how often, and where the
//! node's inventory is read from.
//!
//! The file is small and optional (every key has a default), but a typo in it would silently
//! leave a node half-reported, so it is checked as strictly as `steward.toml`: unknown keys are
//! errors (with a "did you mean" when one is close), every value is validated, and every
//! problem is reported at once as `FILE:LINE:COL: error: …`.
//!
//! ```toml
//! hub = "https://steward.example.com"
//! interval = "10s"
//!
//! [inventory]
//! nginx = ["/etc/nginx/sites-enabled/*", "/etc/nginx/conf.d/*.conf"]
//! certificates = ["/etc/ssl/private/*.pem"]
//! docker_socket = "/var/run/docker.sock"   # or `docker = false`
//! mounts = ["/", "/var/lib/docker"]
//!
//! # The tasks the hub pins to this node run only through the executors declared here (and
//! # the built-ins `noop` and `sleep`); without any, the agent claims no tasks.
//! [work]
//! concurrency = 4
//!
//! [[executors]]
//! name = "backup"
//! type = "shell"
//! command = "/usr/local/bin/backup"
//! ```

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use steward_config::file::{FileError, read_regular};
use toml_edit::{Item, TableLike};

/// Where `steward agent` looks for its settings when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/steward/agent.toml";

/// How often the agent heartbeats when `interval` is not set.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// The shortest `interval`: a beat gathers the whole inventory, which must stay a small part
/// of the node's time.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The longest `interval`: a node silent for longer cannot be told from a dead one.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// The vhost files read when `inventory.nginx` is not set: Debian's and Red Hat's layouts.
pub const DEFAULT_NGINX: [&str; 2] = ["/etc/nginx/sites-enabled/*", "/etc/nginx/conf.d/*.conf"];

/// The Docker Engine's socket when `inventory.docker_socket` is not set.
pub const DEFAULT_DOCKER_SOCKET: &str = crate::inventory::docker::DEFAULT_SOCKET;

/// The largest `agent.toml` read: a real one is a few hundred bytes.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

const ROOT_KEYS: &[&str] = &["hub", "interval", "inventory", "work", "executors"];
const WORK_KEYS: &[&str] = &["concurrency"];

/// How many tasks run at once when `work.concurrency` is not set.
pub const DEFAULT_CONCURRENCY: u32 = 4;
/// The most tasks an agent runs at once.
pub const MAX_CONCURRENCY: u32 = 100;
const INVENTORY_KEYS: &[&str] = &["nginx", "certificates", "docker", "docker_socket", "mounts"];

/// The agent's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// The hub's base URL (`http(s)://host[:port][/prefix]`, no trailing `/`), if set.
    pub hub: Option<String>,
    /// How often to heartbeat: whole seconds, from [`MIN_INTERVAL`] to [`MAX_INTERVAL`].
    pub interval: Duration,
    /// Where the inventory is read from.
    pub inventory: InventoryConfig,
    /// The tasks this node runs for the hub.
    pub work: WorkConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            hub: None,
            interval: DEFAULT_INTERVAL,
            inventory: InventoryConfig::default(),
            work: WorkConfig::default(),
        }
    }
}

/// `[work]` and `[[executors]]`: the node's own allowlist of work. The hub names a kind; only a
/// kind declared here (or a built-in) runs, as declared here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkConfig {
    /// Tasks run at once.
    pub concurrency: u32,
    /// The executors declared, each named by the kind tasks give.
    pub executors: Vec<steward_core::queue::ExecutorSpec>,
}

impl Default for WorkConfig {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            executors: Vec::new(),
        }
    }
}

impl WorkConfig {
    /// True when the agent claims tasks at all: some executor is declared.
    pub fn enabled(&self) -> bool {
        !self.executors.is_empty()
    }

    /// The kinds this node runs: the built-ins and the declared executors.
    pub fn kinds(&self) -> Vec<String> {
        steward_core::queue::BUILTIN_KINDS
            .iter()
            .map(|k| (*k).to_owned())
            .chain(self.executors.iter().map(|e| e.name().to_owned()))
            .collect()
    }
}

/// The `[inventory]` table: where each kind of the node's inventory is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryConfig {
    /// Globs of NGINX vhost files.
    pub nginx: Vec<String>,
    /// Certificate files or globs, read besides the `ssl_certificate`s of the vhosts.
    pub certificates: Vec<String>,
    /// The Docker Engine's socket; `None` when `docker = false`.
    pub docker_socket: Option<PathBuf>,
    /// Mount points whose disk use is reported; empty for every real filesystem.
    pub mounts: Vec<String>,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        Self {
            nginx: DEFAULT_NGINX.iter().map(|&g| g.to_owned()).collect(),
            certificates: Vec::new(),
            docker_socket: Some(PathBuf::from(DEFAULT_DOCKER_SOCKET)),
            mounts: Vec::new(),
        }
    }
}

/// One problem in a settings file, at a place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, as the user named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, naming the key.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every problem found in one file, in file order, one per line when shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Why a settings file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, not a regular file, too large).
    #[error(transparent)]
    Read(#[from] FileError),
    /// The file is not UTF-8.
    #[error("{file}:{line}:{column}: error: the file is not valid UTF-8")]
    NotUtf8 {
        /// The file.
        file: String,
        /// Line of the first invalid byte.
        line: usize,
        /// Column of the first invalid byte.
        column: usize,
    },
    /// The file was read but has problems; every one is listed.
    #[error("{0}")]
    Invalid(Problems),
}

impl ConfigError {
    /// True when the file does not exist, which for the default path means "use the defaults".
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ConfigError::Read(FileError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound
        )
    }
}

impl AgentConfig {
    /// Reads and validates the file at `path`. Relative paths in it are resolved against the
    /// file's directory, as `steward.toml`'s are, so the agent finds the same files whatever
    /// directory it is started from.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let bytes = read_regular(path, MAX_CONFIG_BYTES)?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let (line, column) = position_in_bytes(e.as_bytes(), e.utf8_error().valid_up_to());
            ConfigError::NotUtf8 {
                file: name.clone(),
                line,
                column,
            }
        })?;
        let mut config = Self::parse(&name, &text)?;
        let base = base_dir(path);
        config.inventory.resolve_against(&base);
        config.work.resolve_against(&base);
        Ok(config)
    }

    /// Parses and validates settings text, keeping paths as written; `name` is how problems
    /// name the file.
    pub fn parse(name: &str, text: &str) -> Result<Self, ConfigError> {
        let mut walk = Walk::new(name, text);
        let mut config = match toml_edit::ImDocument::parse(text) {
            Ok(document) => read_root(&mut walk, document.as_table()),
            Err(e) => {
                let message = e.message().trim().replace('\n', "; ");
                walk.error(e.span(), format!("invalid TOML: {message}"));
                walk.finish()?;
                return Ok(Self::default());
            }
        };
        let env = |key: &str| std::env::var(key).ok();
        match steward_config::parse_executors(name, text, &env) {
            Ok((executors, _warnings)) => config.work.executors = executors,
            Err(diagnostics) => walk.problems.extend(
                diagnostics
                    .0
                    .into_iter()
                    .filter(|d| d.severity == steward_config::Severity::Error)
                    .map(|d| Problem {
                        file: d.file,
                        line: d.line,
                        column: d.column,
                        message: d.message,
                    }),
            ),
        }
        walk.finish()?;
        Ok(config)
    }
}

impl WorkConfig {
    /// Makes shell executors' relative `workdir`s absolute under `base`.
    fn resolve_against(&mut self, base: &Path) {
        for executor in &mut self.executors {
            if let steward_core::queue::ExecutorSpec::Shell(shell) = executor
                && let Some(workdir) = shell.workdir.as_mut().filter(|w| w.is_relative())
            {
                *workdir = base.join(&*workdir);
            }
        }
    }
}

impl InventoryConfig {
    /// Makes relative paths absolute under `base`. A pattern's base is escaped, so glob
    /// characters in a directory's name match themselves.
    fn resolve_against(&mut self, base: &Path) {
        let base_text = base.to_string_lossy();
        let escaped = PathBuf::from(glob::Pattern::escape(&base_text));
        for pattern in &mut self.nginx {
            if Path::new(pattern.as_str()).is_relative() {
                *pattern = escaped.join(&*pattern).to_string_lossy().into_owned();
            }
        }
        for path in &mut self.certificates {
            if Path::new(path.as_str()).is_relative() {
                // The collector reads a path without glob characters as it is, so a literal
                // path is joined to the literal base unless the base itself reads as a glob.
                let base = if is_glob(path) || is_glob(&base_text) {
                    &escaped
                } else {
                    base
                };
                *path = base.join(&*path).to_string_lossy().into_owned();
            }
        }
        if let Some(socket) = self.docker_socket.as_mut().filter(|s| s.is_relative()) {
            *socket = base.join(&*socket);
        }
    }
}

/// An `http(s)://` URL that is not a hub's base URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidHubUrl(String);

/// Checks a hub's base URL (`http(s)://host[:port][/prefix]`, no credentials, query or
/// fragment) and returns it normalised, without a trailing `/`, so API paths can be appended.
pub fn parse_hub_url(text: &str) -> Result<String, InvalidHubUrl> {
    let url =
        url::Url::parse(text).map_err(|e| InvalidHubUrl(format!("`{text}` is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(InvalidHubUrl(format!(
            "`{text}`: expected an http:// or https:// URL"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(InvalidHubUrl(format!("`{text}` has no host")));
    }
    // A credential in the URL would end up in logs and in `ps`; the node's own is sent apart.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(InvalidHubUrl(format!(
            "`{text}` carries a user name or password; the URL must not hold credentials"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(InvalidHubUrl(format!(
            "`{text}` has a query or a fragment; expected the hub's base URL only"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Reads a heartbeat interval: a duration such as `"10s"` or `"1m"`, whole seconds, from
/// [`MIN_INTERVAL`] to [`MAX_INTERVAL`].
fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text)
        .map_err(|_| format!(r#"`{text}` is not a duration; e.g. "10s", "30s" or "1m""#))?;
    if interval < MIN_INTERVAL {
        return Err(format!("`{text}` is shorter than 1s, the shortest allowed"));
    }
    if interval > MAX_INTERVAL {
        return Err(format!("`{text}` is longer than 1h, the longest allowed"));
    }
    // The hub is told the interval in whole seconds and judges lateness by it.
    if interval.subsec_nanos() != 0 {
        return Err(format!("`{text}` is not a whole number of seconds"));
    }
    Ok(interval)
}

/// The problems of one file being read, and the text to place them in.
struct Walk<'s> {
    name: &'s str,
    text: &'s str,
    problems: Vec<Problem>,
}

impl<'s> Walk<'s> {
    fn new(name: &'s str, text: &'s str) -> Self {
        Self {
            name,
            text,
            problems: Vec::new(),
        }
    }

    fn error(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let (line, column) = position(self.text, span.map_or(0, |s| s.start));
        self.problems.push(Problem {
            file: self.name.to_owned(),
            line,
            column,
            message: message.into(),
        });
    }

    fn finish(mut self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            return Ok(());
        }
        self.problems.sort_by_key(|p| (p.line, p.column));
        Err(ConfigError::Invalid(Problems(self.problems)))
    }
}

fn read_root(walk: &mut Walk<'_>, root: &toml_edit::Table) -> AgentConfig {
    check_keys(walk, root, "", ROOT_KEYS);
    let mut config = AgentConfig::default();
    if let Some(item) = present(root, "hub") {
        config.hub = read_string(walk, item, "hub").and_then(|text| {
            parse_hub_url(text)
                .map_err(|e| walk.error(item.span(), format!("`hub`: {e}")))
                .ok()
        });
    }
    if let Some(item) = present(root, "interval") {
        let interval = read_string(walk, item, "interval").and_then(|text| {
            parse_interval(text)
                .map_err(|e| walk.error(item.span(), format!("`interval`: {e}")))
                .ok()
        });
        config.interval = interval.unwrap_or(DEFAULT_INTERVAL);
    }
    if let Some(item) = present(root, "inventory") {
        config.inventory = read_inventory(walk, item);
    }
    if let Some(item) = present(root, "work") {
        config.work.concurrency = read_concurrency(walk, item);
    }
    config
}

fn read_concurrency(walk: &mut Walk<'_>, item: &Item) -> u32 {
    let Some(table) = item.as_table_like() else {
        walk.error(
            item.span(),
            format!("`work`: expected a table, found {}", item.type_name()),
        );
        return DEFAULT_CONCURRENCY;
    };
    check_keys(walk, table, "work", WORK_KEYS);
    let Some(item) = present(table, "concurrency") else {
        return DEFAULT_CONCURRENCY;
    };
    match item
        .as_integer()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (1..=MAX_CONCURRENCY).contains(n))
    {
        Some(n) => n,
        None => {
            walk.error(
                item.span(),
                format!("`work.concurrency`: expected an integer from 1 to {MAX_CONCURRENCY}"),
            );
            DEFAULT_CONCURRENCY
        }
    }
}

fn read_inventory(walk: &mut Walk<'_>, item: &Item) -> InventoryConfig {
    let mut inventory = InventoryConfig::default();
    let Some(table) = item.as_table_like() else {
        walk.error(
            item.span(),
            format!("`inventory`: expected a table, found {}", item.type_name()),
        );
        return inventory;
    };
    check_keys(walk, table, "inventory", INVENTORY_KEYS);
    if let Some(globs) = read_list(walk, table, "nginx", check_glob) {
        inventory.nginx = globs;
    }
    if let Some(paths) = read_list(walk, table, "certificates", check_path_or_glob) {
        inventory.certificates = paths;
    }
    if let Some(mounts) = read_list(walk, table, "mounts", check_absolute) {
        inventory.mounts = mounts;
    }
    inventory.docker_socket = read_docker(walk, table);
    inventory
}

/// `docker` (whether to ask the Engine at all) and `docker_socket` (where it is) together.
fn read_docker(walk: &mut Walk<'_>, table: &dyn TableLike) -> Option<PathBuf> {
    let enabled = present(table, "docker").and_then(|item| match item.as_bool() {
        Some(enabled) => Some(enabled),
        None => {
            walk.error(
                item.span(),
                format!(
                    "`inventory.docker`: expected true or false, found {}",
                    item.type_name()
                ),
            );
            None
        }
    });
    let socket_item = present(table, "docker_socket");
    let socket = socket_item.and_then(|item| {
        let text = read_string(walk, item, "inventory.docker_socket")?;
        check_text(text)
            .map_err(|e| walk.error(item.span(), format!("`inventory.docker_socket`: {e}")))
            .ok()
            .map(|()| PathBuf::from(text))
    });
    match (enabled, socket) {
        (Some(false), Some(_)) => {
            let span = socket_item.and_then(Item::span);
            walk.error(
                span,
                "`inventory.docker_socket` is set but `inventory.docker` is false: remove one",
            );
            None
        }
        (Some(false), None) => None,
        (_, Some(socket)) => Some(socket),
        (_, None) => Some(PathBuf::from(DEFAULT_DOCKER_SOCKET)),
    }
}

/// The list of strings under `key`, each passing `check`; `None` when absent or when any
/// entry has a problem (each is reported).
fn read_list(
    walk: &mut Walk<'_>,
    table: &dyn TableLike,
    key: &str,
    check: fn(&str) -> Result<(), String>,
) -> Option<Vec<String>> {
    let item = present(table, key)?;
    let field = format!("inventory.{key}");
    let Some(array) = item.as_array() else {
        walk.error(
            item.span(),
            format!(
                "`{field}`: expected a list of strings, found {}",
                item.type_name()
            ),
        );
        return None;
    };
    let mut values = Vec::with_capacity(array.len());
    let mut valid = true;
    for (i, value) in array.iter().enumerate() {
        let checked = match value.as_str() {
            Some(text) => check_text(text).and_then(|()| check(text)).map(|()| text),
            None => Err(format!("expected a string, found {}", value.type_name())),
        };
        match checked {
            Ok(text) => values.push(text.to_owned()),
            Err(why) => {
                walk.error(value.span(), format!("`{field}[{i}]`: {why}"));
                valid = false;
            }
        }
    }
    valid.then_some(values)
}

fn read_string<'d>(walk: &mut Walk<'_>, item: &'d Item, field: &str) -> Option<&'d str> {
    let text = item.as_str();
    if text.is_none() {
        walk.error(
            item.span(),
            format!("`{field}`: expected a string, found {}", item.type_name()),
        );
    }
    text
}

/// Reports every key of `table` not in `known`, suggesting the closest known one.
fn check_keys(walk: &mut Walk<'_>, table: &dyn TableLike, path: &str, known: &[&str]) {
    for (key, _) in table.iter() {
        if known.contains(&key) {
            continue;
        }
        let field = if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        };
        let hint = suggestion(key, known).map_or_else(
            || format!("expected one of: {}", known.join(", ")),
            |s| format!("did you mean `{s}`?"),
        );
        let span = table.key(key).and_then(|k| k.span());
        walk.error(span, format!("unknown key `{field}`: {hint}"));
    }
}

/// The known key `input` is most likely a typo of, if any is close enough.
fn suggestion<'k>(input: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(input, k), *k))
        .filter(|(distance, k)| *distance <= 2.max(k.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

fn present<'d>(table: &'d dyn TableLike, key: &str) -> Option<&'d Item> {
    table.get(key).filter(|item| !item.is_none())
}

fn check_text(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if text.contains('\0') {
        return Err("must not contain a NUL character".to_owned());
    }
    Ok(())
}

fn check_glob(text: &str) -> Result<(), String> {
    glob::Pattern::new(text)
        .map(|_| ())
        .map_err(|e| format!("`{text}` is not a valid pattern: {e}"))
}

fn check_path_or_glob(text: &str) -> Result<(), String> {
    if is_glob(text) {
        check_glob(text)
    } else {
        Ok(())
    }
}

fn check_absolute(text: &str) -> Result<(), String> {
    if Path::new(text).is_absolute() {
        Ok(())
    } else {
        Err(format!("`{text}` is not an absolute path"))
    }
}

/// Whether the certificate collector reads `text` as a pattern rather than a path.
fn is_glob(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

fn base_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// 1-based line and column (in characters) of a byte offset of `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// 1-based line and column of the first invalid byte of a buffer that is not UTF-8.
fn position_in_bytes(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
