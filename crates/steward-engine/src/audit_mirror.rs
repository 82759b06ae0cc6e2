//! The audit trail's JSON Lines mirror: every event appended to a file, for log shippers. The
//! store stays the source of truth; the mirror follows it, resuming after the last event the
//! file holds, so restarts neither skip nor repeat events.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use steward_config::file::{FileError, open_regular, open_regular_with};
use steward_store::{AuditQuery, Store};

/// How often the store is asked for new events.
const POLL: Duration = Duration::from_secs(1);
/// How far from the end of the file the last complete line is looked for.
const TAIL_BYTES: u64 = 256 * 1024;

/// Why the mirror cannot run.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The file cannot be opened, read or written.
    #[error("audit mirror {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The path names a FIFO, a directory or a device (appending to a FIFO nobody reads
    /// blocks once its buffer is full), or could not be opened.
    #[error("audit mirror {0}")]
    File(#[from] FileError),
}

/// The sequence number of the last event in an existing mirror file (0 when empty or new).
pub fn last_mirrored_seq(path: &Path) -> Result<i64, MirrorError> {
    let io = |source| MirrorError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (mut file, meta) = match open_regular(path) {
        Ok(opened) => opened,
        Err(FileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(0);
        }
        Err(e) => return Err(e.into()),
    };
    let len = meta.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))
        .map_err(io)?;
    let mut tail = String::new();
    file.read_to_string(&mut tail).map_err(io)?;
    // A line cut short by a crash is ignored; the events after the last whole one are rewritten.
    Ok(tail
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|event| event["seq"].as_i64())
        .unwrap_or(0))
}

/// Appends the events after `after` to `path`, returning the last sequence number written.
pub async fn mirror_once(store: &dyn Store, path: &Path, after: i64) -> Result<i64, MirrorError> {
    let io = |source| MirrorError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut last = after;
    loop {
        let query = AuditQuery {
            after_seq: last,
            limit: 1000,
            ..AuditQuery::default()
        };
        let events = match store.audit_events(&query).await {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(error = %e, "audit mirror cannot read the store; will retry");
                return Ok(last);
            }
        };
        let Some(newest) = events.last().map(|e| e.seq) else {
            return Ok(last);
        };
        let mut text = String::new();
        for event in &events {
            text.push_str(&serde_json::to_string(event).unwrap_or_default());
            text.push('\n');
        }
        let (mut file, _) = open_regular_with(
            path,
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .read(true),
        )?;
        if !ends_with_newline(&mut file).map_err(io)? {
            // A line torn by a crash stays a line of its own, so the next event parses.
            file.write_all(b"\n").map_err(io)?;
        }
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_data().map_err(io)?;
        last = newest;
    }
}

/// True when the file is empty or its last byte is a newline.
fn ends_with_newline(file: &mut std::fs::File) -> std::io::Result<bool> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0_u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Follows the store's audit trail into `path` until the process ends.
pub fn spawn(store: Arc<dyn Store>, path: PathBuf) -> Result<(), MirrorError> {
    let mut last = last_mirrored_seq(&path)?;
    tracing::info!(path = %path.display(), after_seq = last, "audit mirror started");
    tokio::spawn(async move {
        loop {
            match mirror_once(store.as_ref(), &path, last).await {
                Ok(seq) => last = seq,
                Err(e) => tracing::error!(error = %e, "audit mirror write failed; will retry"),
            }
            tokio::time::sleep(POLL).await;
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_core::Role;
    use steward_core::audit::Actor;
    use steward_store::NewKey;
    use steward_store::prelude::*;
    use steward_store_sqlite::SqliteStore;

    fn key(name: &str) -> NewKey {
        NewKey {
            name: name.into(),
            role: Role::Viewer,
            workspace: None,
            node: None,
            digest: steward_core::auth::key_digest(name),
            hint: "stw_…".into(),
            expires_at_ms: None,
        }
    }

    #[tokio::test]
    async fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        let reading = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || last_mirrored_seq(&path))
        };
        let Ok(resume) = tokio::time::timeout(Duration::from_secs(5), reading).await else {
            // A writer lets the blocked read end, so that the runtime can shut down.
            drop(std::fs::OpenOptions::new().write(true).open(&path));
            panic!("reading the mirror's tail blocked");
        };
        let resume = resume.unwrap();
        let expected = format!(
            "audit mirror {}: not a regular file (a FIFO)",
            path.display()
        );
        assert_eq!(resume.unwrap_err().to_string(), expected);
        let store = SqliteStore::open(&dir.path().join("data")).await.unwrap();
        store.migrate().await.unwrap();
        store
            .create_key(&key("a"), &Actor::system("t"))
            .await
            .unwrap();
        let err = mirror_once(&store, &path, 0).await.unwrap_err();
        assert_eq!(err.to_string(), expected);
        store.close().await;
    }

    #[tokio::test]
    async fn the_mirror_resumes_without_repeating_and_skips_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("data")).await.unwrap();
        store.migrate().await.unwrap();
        let path = dir.path().join("audit.jsonl");
        for name in ["a", "b"] {
            store
                .create_key(&key(name), &Actor::system("t"))
                .await
                .unwrap();
        }
        assert_eq!(
            mirror_once(&store, &path, last_mirrored_seq(&path).unwrap())
                .await
                .unwrap(),
            2
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"seq\": 3, \"tor")
            .unwrap();
        store
            .create_key(&key("c"), &Actor::system("t"))
            .await
            .unwrap();
        let resume = last_mirrored_seq(&path).unwrap();
        assert_eq!(resume, 2, "the torn line does not count");
        assert_eq!(mirror_once(&store, &path, resume).await.unwrap(), 3);
        let text = std::fs::read_to_string(&path).unwrap();
        let seqs: Vec<i64> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
        store.close().await;
    }
}
