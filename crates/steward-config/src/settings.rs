//! The daemon's settings, resolved in layers: built-in defaults, then the config file, then
//! `STEWARD_…` environment variables, then command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use steward_core::Secret;

use crate::file_settings::{FileSettings, LogFormat};
use crate::load::Env;

/// The address served when nothing else is configured.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8710";
/// The embedded database's directory when nothing else is configured (relative to the working
/// directory).
pub const DEFAULT_DATA_DIR: &str = "steward-data";
/// The PostgreSQL pool size when nothing else is configured.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// The log filter when nothing else is configured.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// Values given on the command line; each wins over the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database`.
    pub database: Option<Secret>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
    /// `--log-level`.
    pub log_level: Option<String>,
}

/// Which database the daemon uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// The embedded SQLite file in the data directory (the default).
    Sqlite {
        /// The data directory.
        data_dir: PathBuf,
    },
    /// A shared PostgreSQL server; several instances may point at the same one.
    Postgres {
        /// The connection URL (may hold a password).
        url: Secret,
        /// The pool size.
        max_connections: u32,
    },
}

impl DatabaseTarget {
    /// True for the URL schemes that select PostgreSQL.
    pub fn is_postgres_url(url: &str) -> bool {
        crate::file_settings::is_postgres_url(url)
    }

    /// A description safe to log or print: the SQLite path, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            DatabaseTarget::Sqlite { data_dir } => format!("sqlite in {}", data_dir.display()),
            DatabaseTarget::Postgres { url, .. } => match url::Url::parse(url.expose()) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("***"));
                    }
                    parsed.set_query(None);
                    parsed.to_string()
                }
                Err(_) => "postgres (unparseable URL)".to_owned(),
            },
        }
    }
}

/// The daemon's effective settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSettings {
    /// The HTTP address.
    pub listen: SocketAddr,
    /// The database.
    pub database: DatabaseTarget,
    /// How logs are written.
    pub log_format: LogFormat,
    /// The log filter.
    pub log_level: String,
}

/// A setting from the environment or the command line that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct SettingsError {
    /// Where the bad value came from (`STEWARD_LISTEN`, `--database`).
    pub source_name: String,
    /// What is wrong with it.
    pub message: String,
}

impl DaemonSettings {
    /// Resolves defaults, then `file`, then the `STEWARD_…` variables in `env`, then `cli`.
    pub fn resolve(
        file: &FileSettings,
        env: Env<'_>,
        cli: &Overrides,
    ) -> Result<Self, SettingsError> {
        let listen = match (cli.listen, env_var(env, "STEWARD_LISTEN"), file.listen) {
            (Some(addr), _, _) => addr,
            (None, Some(raw), _) => raw.parse().map_err(|_| SettingsError {
                source_name: "STEWARD_LISTEN".into(),
                message: format!("`{raw}` is not a socket address (e.g. 127.0.0.1:8710)"),
            })?,
            (None, None, Some(addr)) => addr,
            (None, None, None) => default_listen(),
        };
        let data_dir = cli
            .data_dir
            .clone()
            .or_else(|| env_var(env, "STEWARD_DATA_DIR").map(PathBuf::from))
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let (database, database_source) = match (&cli.database, env_var(env, "STEWARD_DATABASE")) {
            (Some(url), _) => (Some(url.clone()), "--database"),
            (None, Some(url)) => (Some(Secret::new(url)), "STEWARD_DATABASE"),
            (None, None) => (file.database.clone(), "storage.database"),
        };
        let max_connections = match env_var(env, "STEWARD_MAX_CONNECTIONS") {
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| SettingsError {
                    source_name: "STEWARD_MAX_CONNECTIONS".into(),
                    message: format!("`{raw}` is not a number from 1 to 1000"),
                })?,
            None => file.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
        };
        let database = match database {
            None => DatabaseTarget::Sqlite { data_dir },
            Some(url) if url.expose() == "sqlite" => DatabaseTarget::Sqlite { data_dir },
            Some(url) if DatabaseTarget::is_postgres_url(url.expose()) => {
                DatabaseTarget::Postgres {
                    url,
                    max_connections,
                }
            }
            Some(_) => {
                return Err(SettingsError {
                    source_name: database_source.into(),
                    message: "expected `sqlite` or a postgres:// URL".into(),
                });
            }
        };
        let log_format = match (cli.log_format, env_var(env, "STEWARD_LOG_FORMAT")) {
            (Some(format), _) => format,
            (None, Some(raw)) => LogFormat::CHOICES
                .iter()
                .find(|(name, _)| *name == raw)
                .map(|(_, f)| *f)
                .ok_or_else(|| SettingsError {
                    source_name: "STEWARD_LOG_FORMAT".into(),
                    message: format!("`{raw}` is not one of: pretty, json"),
                })?,
            (None, None) => file.log_format.unwrap_or_default(),
        };
        let log_level = cli
            .log_level
            .clone()
            .or_else(|| env_var(env, "STEWARD_LOG"))
            .or_else(|| file.log_level.clone())
            .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned());
        Ok(Self {
            listen,
            database,
            log_format,
            log_level,
        })
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8710))
}

/// Every `STEWARD_…` environment variable `steward up` reads: the config file's path (taken by
/// the command line) and the settings [`DaemonSettings::resolve`] takes from the environment.
/// Whoever starts the daemon for a test or a benchmark clears these, so that the caller's
/// environment cannot change what is measured.
pub const ENVIRONMENT: [&str; 7] = [
    "STEWARD_CONFIG",
    "STEWARD_LISTEN",
    "STEWARD_DATA_DIR",
    "STEWARD_DATABASE",
    "STEWARD_MAX_CONNECTIONS",
    "STEWARD_LOG",
    "STEWARD_LOG_FORMAT",
];

fn env_var(env: Env<'_>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn every_variable_the_settings_read_is_listed() {
        let asked = std::cell::RefCell::new(Vec::new());
        let recording = |name: &str| {
            asked.borrow_mut().push(name.to_owned());
            None
        };
        DaemonSettings::resolve(&FileSettings::default(), &recording, &Overrides::default())
            .unwrap();
        let asked = asked.into_inner();
        assert!(!asked.is_empty());
        for name in &asked {
            assert!(ENVIRONMENT.contains(&name.as_str()), "{name} is not listed");
        }
    }

    #[test]
    fn default_listen_matches_its_documented_text() {
        assert_eq!(default_listen().to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn layers_apply_in_order() {
        let file = FileSettings {
            listen: Some("127.0.0.1:1000".parse().unwrap()),
            log_level: Some("debug".into()),
            ..Default::default()
        };
        let none = env_of(&[]);
        let s = DaemonSettings::resolve(&file, &none, &Overrides::default()).unwrap();
        assert_eq!(s.listen.port(), 1000);
        assert_eq!(s.log_level, "debug");
        assert_eq!(
            s.database,
            DatabaseTarget::Sqlite {
                data_dir: DEFAULT_DATA_DIR.into()
            }
        );

        let env = env_of(&[
            ("STEWARD_LISTEN", "127.0.0.1:2000"),
            ("STEWARD_LOG", "warn"),
        ]);
        let s = DaemonSettings::resolve(&file, &env, &Overrides::default()).unwrap();
        assert_eq!(s.listen.port(), 2000);
        assert_eq!(s.log_level, "warn");

        let cli = Overrides {
            listen: Some("127.0.0.1:3000".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(
            DaemonSettings::resolve(&file, &env, &cli)
                .unwrap()
                .listen
                .port(),
            3000
        );
    }

    #[test]
    fn bad_environment_values_name_the_variable() {
        let env = env_of(&[("STEWARD_LISTEN", "nope")]);
        let err = DaemonSettings::resolve(&FileSettings::default(), &env, &Overrides::default())
            .unwrap_err();
        assert_eq!(err.source_name, "STEWARD_LISTEN");
        let env = env_of(&[("STEWARD_DATABASE", "mysql://x")]);
        let err = DaemonSettings::resolve(&FileSettings::default(), &env, &Overrides::default())
            .unwrap_err();
        assert!(err.to_string().starts_with("STEWARD_DATABASE:"));
        assert!(
            !err.to_string().contains("mysql://x"),
            "a URL may hold a password"
        );
    }

    #[test]
    fn postgres_description_hides_the_password() {
        let t = DatabaseTarget::Postgres {
            url: Secret::new("postgres://app:hunter2@db:5432/steward?sslmode=require"),
            max_connections: 5,
        };
        let d = t.describe();
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("db:5432/steward"), "{d}");
    }
}
