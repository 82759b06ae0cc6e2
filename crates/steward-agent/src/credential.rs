//! The node's credential, kept in the agent's data directory as `credential.json`.
//!
//! The credential is the node's whole identity towards the hub, so the file is only ever
//! readable by the agent's user: it is written with mode 0600 into a directory created 0700,
//! through a temporary file renamed over the old one (a crash mid-write never leaves a torn
//! credential), and a file that others could read is refused rather than used.

use std::fmt;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use steward_config::file::{FileError, read_regular};

/// Where `steward agent` keeps its state when no `--data-dir` is given.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/steward-agent";

/// The credential file's name in the data directory.
pub const CREDENTIAL_FILE: &str = "credential.json";

/// The largest credential file read: a real one is a few hundred bytes.
const MAX_CREDENTIAL_BYTES: u64 = 64 * 1024;

/// Permission bits that let anyone but the owner in.
const GROUP_OR_WORLD: u32 = 0o077;

/// Who the agent is towards which hub, as registration answered.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredCredential {
    /// The hub's base URL it registered with.
    pub hub: String,
    /// The node's id.
    pub node: String,
    /// The name of the node's key on the hub.
    pub key_name: String,
    /// The credential itself (`stw_…`).
    pub credential: String,
}

// The credential must never reach a log line through `{:?}`.
impl fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCredential")
            .field("hub", &self.hub)
            .field("node", &self.node)
            .field("key_name", &self.key_name)
            .field("credential", &"<redacted>")
            .finish()
    }
}

/// Why the credential could not be kept or read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// There is no credential: the node has not registered (with this data directory).
    #[error("{}: no credential; register the node first with `steward agent register`", .path.display())]
    Missing {
        /// The file looked for.
        path: PathBuf,
    },
    /// Others than the owner may read the file, so the credential may have leaked.
    #[error(
        "{}: mode {mode:04o} lets others read the credential; run `chmod 600 {}` if it is \
         still secret, or revoke it and register again",
        .path.display(), .path.display()
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a credential written by the agent.
    #[error("{}: not a credential file: {message}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The file or the directory could not be read or written.
    #[error("{}: {action}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done (`cannot create the directory`, `cannot write`…).
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be read (not a regular file, too large, unreadable).
    #[error(transparent)]
    Read(FileError),
}

/// The credential file's path in `data_dir`.
pub fn credential_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CREDENTIAL_FILE)
}

/// Writes `credential` to `data_dir/credential.json` (mode 0600), replacing any earlier one
/// atomically; `data_dir` is created with mode 0700 if missing. Returns the file's path.
pub fn save(data_dir: &Path, credential: &StoredCredential) -> Result<PathBuf, CredentialError> {
    create_private_dir(data_dir)?;
    let path = credential_path(data_dir);
    let temporary = data_dir.join(format!(".{CREDENTIAL_FILE}.{}.tmp", std::process::id()));
    let mut json = serde_json::to_vec_pretty(credential).map_err(|e| CredentialError::Invalid {
        path: path.clone(),
        message: e.to_string(),
    })?;
    json.push(b'\n');
    let written = write_private(&temporary, &json).and_then(|()| {
        std::fs::rename(&temporary, &path).map_err(|source| CredentialError::Io {
            path: path.clone(),
            action: "cannot replace",
            source,
        })
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written?;
    // The rename is durable only once the directory entry is; a failure here leaves a
    // complete file in place, so it is not worth failing the registration over.
    if let Err(error) = File::open(data_dir).and_then(|dir| dir.sync_all()) {
        tracing::debug!(dir = %data_dir.display(), %error, "cannot sync the data directory");
    }
    Ok(path)
}

/// Makes sure a credential can be saved in `data_dir` (creating it 0700 if missing) before a
/// join token is spent on registering: a registration whose credential cannot be kept would
/// use the token up for nothing.
pub fn prepare_dir(data_dir: &Path) -> Result<(), CredentialError> {
    create_private_dir(data_dir)?;
    let probe = data_dir.join(format!(".{CREDENTIAL_FILE}.{}.probe", std::process::id()));
    let written = write_private(&probe, b"");
    let _ = std::fs::remove_file(&probe);
    written
}

/// Reads the credential from `data_dir/credential.json`, refusing a file that group or others
/// may read.
pub fn load(data_dir: &Path) -> Result<StoredCredential, CredentialError> {
    let path = credential_path(data_dir);
    let bytes = match read_regular(&path, MAX_CREDENTIAL_BYTES) {
        Ok(bytes) => bytes,
        Err(FileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(CredentialError::Missing { path });
        }
        Err(other) => return Err(CredentialError::Read(other)),
    };
    check_private(&path)?;
    let credential: StoredCredential =
        serde_json::from_slice(&bytes).map_err(|e| CredentialError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
    if credential.node.is_empty() || credential.credential.is_empty() {
        return Err(CredentialError::Invalid {
            path,
            message: "the node or the credential is empty".to_owned(),
        });
    }
    Ok(credential)
}

/// Refuses a credential file whose mode lets group or others read it.
fn check_private(path: &Path) -> Result<(), CredentialError> {
    let meta = std::fs::metadata(path).map_err(|source| CredentialError::Io {
        path: path.to_path_buf(),
        action: "cannot read the metadata of",
        source,
    })?;
    let mode = meta.mode() & 0o7777;
    if mode & GROUP_OR_WORLD != 0 {
        return Err(CredentialError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Creates `dir` (and its missing parents) with mode 0700; an existing one is left as it is.
fn create_private_dir(dir: &Path) -> Result<(), CredentialError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CredentialError::Io {
            path: dir.to_path_buf(),
            action: "cannot create the directory",
            source,
        })
}

/// Writes `bytes` to a new file at `path` created with mode 0600 and flushed to disk.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CredentialError> {
    let io = |action: &'static str| {
        move |source: std::io::Error| CredentialError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    // A temporary left by a crash would make `create_new` fail for ever.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(io("cannot remove the stale")(source)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("cannot create"))?;
    // The umask can only take bits away, but an inherited ACL default could add some.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io("cannot set the mode of"))?;
    file.write_all(bytes).map_err(io("cannot write"))?;
    file.sync_all().map_err(io("cannot flush"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn sample() -> StoredCredential {
        StoredCredential {
            hub: "http://127.0.0.1:8710".into(),
            node: "vps-02".into(),
            key_name: "node-vps-02".into(),
            credential: "stw_0123456789abcdef".into(),
        }
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_saved_credential_is_private_and_reads_back() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("var/lib/steward-agent");
        let path = save(&data, &sample()).unwrap();
        assert_eq!(path, data.join("credential.json"));
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(&data), 0o700);
        assert_eq!(load(&data).unwrap(), sample());
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["node"], "vps-02");
        assert_eq!(json["credential"], "stw_0123456789abcdef");
    }

    #[test]
    fn saving_again_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &sample()).unwrap();
        let mut other = sample();
        other.credential = "stw_fedcba".into();
        save(dir.path(), &other).unwrap();
        assert_eq!(load(dir.path()).unwrap(), other);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["credential.json"]);
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = save(dir.path(), &sample()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let error = load(dir.path()).unwrap_err();
        assert!(matches!(
            error,
            CredentialError::Exposed { mode: 0o640, .. }
        ));
        let message = error.to_string();
        assert!(message.contains("mode 0640 lets others read"), "{message}");
        assert!(message.contains("chmod 600"), "{message}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(CredentialError::Exposed { .. })
        ));
    }

    #[test]
    fn a_missing_or_foreign_file_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let missing = load(dir.path()).unwrap_err();
        assert!(matches!(missing, CredentialError::Missing { .. }));
        assert!(missing.to_string().contains("steward agent register"));

        let path = credential_path(dir.path());
        std::fs::write(&path, "{\"node\":\"x\"}").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(CredentialError::Invalid { .. })
        ));
    }

    #[test]
    fn a_directory_that_cannot_hold_the_credential_is_found_before_registering() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        prepare_dir(&data).unwrap();
        assert_eq!(mode_of(&data), 0o700);
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
        let file = root.path().join("file");
        std::fs::write(&file, "").unwrap();
        let error = prepare_dir(&file.join("data")).unwrap_err();
        assert!(matches!(error, CredentialError::Io { .. }), "{error:?}");
    }

    #[test]
    fn an_existing_data_directory_is_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o750)).unwrap();
        save(dir.path(), &sample()).unwrap();
        assert_eq!(mode_of(dir.path()), 0o750);
    }

    #[test]
    fn debug_output_hides_the_credential() {
        let shown = format!("{:?}", sample());
        assert!(shown.contains("vps-02"));
        assert!(!shown.contains("stw_"), "{shown}");
    }
}
