//! The errors every store backend returns.

use std::path::PathBuf;

/// Any underlying error, boxed so backends keep their source chains.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store call failed. The `Display` text is for operators' logs; the API never shows it
/// to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or opened.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] BoxError),
    /// Another process holds the embedded database's data directory.
    #[error("data directory {} is in use by another steward process{}; stop it or choose another --data-dir", .path.display(), .holder.as_ref().map(|h| format!(" (pid {h})")).unwrap_or_default())]
    Locked {
        /// The data directory.
        path: PathBuf,
        /// The holder's pid, if it wrote one.
        holder: Option<String>,
    },
    /// A file in the data directory could not be created or opened.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Applying migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[source] BoxError),
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[source] BoxError),
    /// The thing to create exists already.
    #[error("{0} already exists")]
    Conflict(String),
    /// The thing to change does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The thing is not in a state that allows the change.
    #[error("{0}")]
    State(String),
    /// A leadership lease the call was made under is no longer held: nothing was written.
    #[error("{0}")]
    LeaseLost(String),
    /// A value cannot be stored as it is (a character the database cannot hold): the input is
    /// at fault, and trying again cannot help.
    #[error("{0}")]
    Unstorable(String),
    /// Stored data could not be decoded.
    #[error("stored data cannot be decoded: {0}")]
    Corrupt(String),
    /// The database reports its file damaged (a page it cannot read). Retrying does not help:
    /// the file must be recovered, as `recovery` says.
    #[error("the database file is damaged: {source}")]
    Damaged {
        /// What the database reported.
        source: BoxError,
        /// How an operator recovers the file.
        recovery: &'static str,
    },
}

impl StoreError {
    /// A short stable name of the error's kind, for metrics and API error codes.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Connect(_) => "connect",
            StoreError::Locked { .. } => "locked",
            StoreError::Io { .. } => "io",
            StoreError::Migrate(_) => "migrate",
            StoreError::Database(_) => "database",
            StoreError::Conflict(_) => "conflict",
            StoreError::NotFound(_) => "not_found",
            StoreError::State(_) => "state",
            StoreError::LeaseLost(_) => "lease_lost",
            StoreError::Unstorable(_) => "unstorable",
            StoreError::Corrupt(_) | StoreError::Damaged { .. } => "corrupt",
        }
    }

    /// The same failure for another caller of a batch that failed as a whole (the error is
    /// not `Clone`): a damaged file stays a damaged file, anything else becomes its text.
    pub fn for_another_caller(&self) -> StoreError {
        match self {
            StoreError::Damaged { source, recovery } => StoreError::Damaged {
                source: source.to_string().into(),
                recovery,
            },
            StoreError::Unstorable(why) => StoreError::Unstorable(why.clone()),
            other => StoreError::Database(other.to_string().into()),
        }
    }
}
