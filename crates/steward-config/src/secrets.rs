//! The secret values a config and the daemon's settings hold, so that they can be masked in
//! text Steward stores from elsewhere (what programs print, what probed servers answer).

use steward_core::Secret;
use steward_core::alert::spec::ReceiverKind;
use steward_core::health::spec::Probe;

use crate::schema::Config;
use crate::settings::DatabaseTarget;

impl Config {
    /// Every secret value this config holds:
    /// - each value a `${VAR}` reference was replaced with, wherever it is used (values from
    ///   the environment are secrets);
    /// - `storage.database`, and the receivers' Slack webhook URLs, Telegram bot tokens and
    ///   SMTP passwords, even when written out;
    /// - the password of each URL it holds (the database, checks, webhooks), as written and
    ///   percent-decoded.
    pub fn secrets(&self) -> Vec<Secret> {
        let mut secrets = self.resolved.clone();
        let mut urls = Vec::new();
        if let Some(database) = &self.settings.database {
            secrets.extend(url_and_passwords(database));
        }
        for check in &self.checks {
            if let Probe::Http(http) = &check.probe {
                urls.push(&http.url);
            }
        }
        for receiver in &self.alerting.receivers {
            match &receiver.kind {
                ReceiverKind::Webhook { url, .. } => urls.push(url),
                ReceiverKind::Slack { webhook_url, .. } => {
                    secrets.extend(url_and_passwords(webhook_url));
                }
                ReceiverKind::Telegram { bot_token, .. } => secrets.push(bot_token.clone()),
                ReceiverKind::Email { password, .. } => secrets.extend(password.clone()),
            }
        }
        secrets.extend(urls.into_iter().flat_map(url_passwords));
        secrets
    }
}

impl DatabaseTarget {
    /// The PostgreSQL URL and its password (as written and percent-decoded); nothing for
    /// SQLite.
    pub fn secrets(&self) -> Vec<Secret> {
        match self {
            DatabaseTarget::Sqlite { .. } => Vec::new(),
            DatabaseTarget::Postgres { url, .. } => url_and_passwords(url),
        }
    }
}

/// `url` itself, a secret whole, and its password ([`url_passwords`]).
fn url_and_passwords(url: &Secret) -> Vec<Secret> {
    let mut secrets = url_passwords(url);
    secrets.push(url.clone());
    secrets
}

/// The password of `url`, as written and percent-decoded (the two differ when it holds `@`,
/// `:` or `/`); nothing when it has none or does not parse.
fn url_passwords(url: &Secret) -> Vec<Secret> {
    let Some(written) = url::Url::parse(url.expose())
        .ok()
        .and_then(|parsed| parsed.password().map(str::to_owned))
    else {
        return Vec::new();
    };
    let decoded = percent_encoding::percent_decode_str(&written)
        .decode_utf8_lossy()
        .into_owned();
    if decoded == written {
        vec![Secret::new(written)]
    } else {
        vec![Secret::new(written), Secret::new(decoded)]
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::parse_str;

    fn exposed(secrets: &[Secret]) -> Vec<&str> {
        let mut values: Vec<&str> = secrets.iter().map(Secret::expose).collect();
        values.sort_unstable();
        values.dedup();
        values
    }

    #[test]
    fn values_from_the_environment_and_passwords_are_secrets() {
        let env = |name: &str| match name {
            "TOKEN" => Some("t0ken-value".to_owned()),
            "PG" => Some("pg-pass".to_owned()),
            "HOST" => Some("internal.example".to_owned()),
            _ => None,
        };
        let text = r#"
[storage]
database = "postgres://u:p%40ss@db/x"

[[services]]
name = "nn"
url = "http://${HOST}:8000/health"

[[executors]]
name = "backup"
type = "shell"
command = "pg_dump"
env = { PGPASSWORD = "${PG}", MODE = "plain" }

[[executors]]
name = "hook"
type = "http"
url = "https://hooks.example/x"
headers = { Authorization = "Bearer ${TOKEN}", Accept = "text/plain" }

[[queues]]
name = "q"
kinds = ["backup", "hook"]

[[checks]]
service = "nn"
url = "https://user:check-pw@nn.example/health"
"#;
        let loaded = parse_str("f.toml", text, &env).unwrap();
        assert_eq!(
            exposed(&loaded.config.secrets()),
            [
                "check-pw",
                "internal.example",
                "p%40ss",
                "p@ss",
                "pg-pass",
                "postgres://u:p%40ss@db/x",
                "t0ken-value",
            ]
        );
    }

    #[test]
    fn a_postgres_target_hides_its_url_and_password() {
        let target = DatabaseTarget::Postgres {
            url: Secret::new("postgres://steward:hunter2@db/steward"),
            max_connections: 1,
        };
        assert_eq!(
            exposed(&target.secrets()),
            ["hunter2", "postgres://steward:hunter2@db/steward"]
        );
        let sqlite = DatabaseTarget::Sqlite {
            data_dir: PathBuf::from("data"),
        };
        assert!(sqlite.secrets().is_empty());
    }
}
