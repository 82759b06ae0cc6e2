//! The node's own audit journal, kept in the agent's data directory until the hub has it.
//!
//! `audit.jsonl` holds one [`AuditEvent`] per line, chained with [`AuditEvent::chain`] from
//! sequence number 1, so the hub can check that what it merges is what the node recorded.
//! Each append is written whole and flushed to disk before it returns, under an exclusive
//! lock on the file, so `steward agent register` and a running agent never fork the chain.
//! A crash mid-append can leave a partial last line; the next append cuts it off (that event
//! was never reported as recorded) and chains from the last whole line.
//!
//! `audit.shipped` holds the last sequence number the hub acknowledged, replaced atomically.
//! The journal is never trimmed: an event the hub has not acknowledged is never dropped.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use serde_json::json;
use sha2::{Digest, Sha256};
use steward_core::audit::{Actor, AuditEntry, AuditEvent, GENESIS_HASH};

/// The journal's file name in the data directory.
pub const JOURNAL_FILE: &str = "audit.jsonl";

/// The file holding the last sequence number the hub acknowledged.
pub const SHIPPED_FILE: &str = "audit.shipped";

/// How much of the journal's end is read at first to find its last line; doubled until a
/// whole line is in it.
const TAIL_CHUNK: u64 = 8 * 1024;

/// Why the journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be opened, locked, read or written.
    #[error("{}: {action}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A whole line is not an audit event: the file was edited or damaged.
    #[error("{}: line {line} is not an audit event: {message}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The line's number, from 1 (0 for the shipped marker).
        line: u64,
        /// Why it could not be read.
        message: String,
    },
}

/// The audit journal in one data directory. It holds only paths: every operation opens the
/// files, so it is cheap to clone and always sees what another process appended.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
    shipped: PathBuf,
}

impl Journal {
    /// The journal of the agent whose data directory is `data_dir` (created by registering).
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(JOURNAL_FILE),
            shipped: data_dir.join(SHIPPED_FILE),
        }
    }

    /// The journal file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records `entry` after the last event, now, and returns it once it is on disk.
    pub fn append(&self, entry: AuditEntry) -> Result<AuditEvent, JournalError> {
        let at_ms = now_ms();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(self.io("cannot open"))?;
        // The umask can only take bits away, but an inherited ACL default could add some.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(self.io("cannot set the mode of"))?;
        let mut file = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| self.io("cannot lock")(std::io::Error::from(errno)))?;
        let (seq, prev_hash) = self.last_of(&mut file)?;
        let event = AuditEvent::chain(entry, seq + 1, at_ms, &prev_hash);
        let mut line = serde_json::to_vec(&event).map_err(|e| JournalError::Corrupt {
            path: self.path.clone(),
            line: 0,
            message: e.to_string(),
        })?;
        line.push(b'\n');
        file.write_all(&line).map_err(self.io("cannot append to"))?;
        file.sync_data().map_err(self.io("cannot flush"))?;
        tracing::debug!(seq = event.seq, action = %event.action, "audit event recorded");
        Ok(event)
    }

    /// The last event's sequence number (0 when the journal is empty or missing).
    pub fn last_seq(&self) -> Result<i64, JournalError> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(self.io("cannot open")(e)),
        };
        let (_, last) = self.tail(&mut file)?;
        Ok(match last {
            Some(line) => self.parse(&line, 0)?.seq,
            None => 0,
        })
    }

    /// Up to `max` events after sequence number `after`, oldest first. A partial last line
    /// (an append under way, or torn by a crash) is not an event yet and is left out.
    pub fn events_after(&self, after: i64, max: usize) -> Result<Vec<AuditEvent>, JournalError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io("cannot open")(e)),
        };
        let mut reader = BufReader::new(file);
        let mut events = Vec::new();
        let mut line = Vec::new();
        let mut number = 0_u64;
        while events.len() < max {
            line.clear();
            let read = reader
                .read_until(b'\n', &mut line)
                .map_err(self.io("cannot read"))?;
            if read == 0 || line.last() != Some(&b'\n') {
                break;
            }
            number += 1;
            let event = self.parse(&line, number)?;
            if event.seq > after {
                events.push(event);
            }
        }
        Ok(events)
    }

    /// The last sequence number the hub acknowledged (0 before the first).
    pub fn shipped(&self) -> Result<i64, JournalError> {
        let text = match std::fs::read_to_string(&self.shipped) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => {
                return Err(JournalError::Io {
                    path: self.shipped.clone(),
                    action: "cannot read",
                    source: e,
                });
            }
        };
        text.trim().parse().map_err(|_| JournalError::Corrupt {
            path: self.shipped.clone(),
            line: 1,
            message: format!("`{}` is not a sequence number", text.trim()),
        })
    }

    /// Records that the hub acknowledged every event up to `seq`: written to a temporary
    /// file and renamed over the marker, so a crash leaves the old value or the new one.
    pub fn mark_shipped(&self, seq: i64) -> Result<(), JournalError> {
        let io = |action: &'static str| {
            let path = self.shipped.clone();
            move |source| JournalError::Io {
                path,
                action,
                source,
            }
        };
        let temporary = self
            .shipped
            .with_file_name(format!(".{SHIPPED_FILE}.{}.tmp", std::process::id()));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(format!("{seq}\n").as_bytes())?;
            file.sync_data()?;
            std::fs::rename(&temporary, &self.shipped)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written.map_err(io("cannot write"))
    }

    /// The last whole event's `(seq, hash)`, `(0, GENESIS_HASH)` for an empty journal, after
    /// cutting off a torn last line.
    fn last_of(&self, file: &mut File) -> Result<(i64, String), JournalError> {
        let (whole, last) = self.tail(file)?;
        let len = file.metadata().map_err(self.io("cannot stat"))?.len();
        if whole < len {
            // An append that never returned: no one was told it was recorded.
            tracing::warn!(
                path = %self.path.display(),
                torn_bytes = len - whole,
                "the audit journal ends with a partial line (a crash mid-write); cutting it off"
            );
            file.set_len(whole)
                .map_err(self.io("cannot cut the torn end of"))?;
            file.sync_data().map_err(self.io("cannot flush"))?;
        }
        Ok(match last {
            Some(line) => {
                let event = self.parse(&line, 0)?;
                (event.seq, event.hash)
            }
            None => (0, GENESIS_HASH.to_owned()),
        })
    }

    /// Where the whole lines end (past the last `\n`) and the last whole line, read from the
    /// end of the file only.
    fn tail(&self, file: &mut File) -> Result<(u64, Option<Vec<u8>>), JournalError> {
        let len = file.metadata().map_err(self.io("cannot stat"))?.len();
        let mut window = TAIL_CHUNK.min(len);
        loop {
            let start = len - window;
            let mut buf = Vec::with_capacity(usize::try_from(window).unwrap_or(0));
            file.seek(SeekFrom::Start(start))
                .map_err(self.io("cannot seek in"))?;
            Read::take(&mut *file, window)
                .read_to_end(&mut buf)
                .map_err(self.io("cannot read"))?;
            let end = buf.iter().rposition(|b| *b == b'\n');
            let begin = end.and_then(|end| buf[..end].iter().rposition(|b| *b == b'\n'));
            match (end, begin) {
                (Some(end), Some(begin)) => {
                    return Ok((start + end as u64 + 1, Some(buf[begin + 1..end].to_vec())));
                }
                (Some(end), None) if start == 0 => {
                    return Ok((end as u64 + 1, Some(buf[..end].to_vec())));
                }
                (None, _) if start == 0 => return Ok((0, None)),
                _ => window = (window * 2).min(len),
            }
        }
    }

    fn parse(&self, line: &[u8], number: u64) -> Result<AuditEvent, JournalError> {
        serde_json::from_slice(line).map_err(|e| JournalError::Corrupt {
            path: self.path.clone(),
            line: number,
            message: e.to_string(),
        })
    }

    fn io(&self, action: &'static str) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
        move |source| JournalError::Io {
            path: self.path.clone(),
            action,
            source,
        }
    }
}

/// Who the agent's own events are by.
fn agent_actor() -> Actor {
    Actor::system("agent")
}

/// `agent.register`: the node registered with a hub and keeps the credential of `key_name`.
pub fn registered(node: &str, hub: &str, key_name: &str) -> AuditEntry {
    AuditEntry {
        actor: agent_actor(),
        action: "agent.register".into(),
        target: node.to_owned(),
        workspace: None,
        details: json!({ "node": node, "hub": hub, "key_name": key_name }),
    }
}

/// `agent.start`: the agent started with these settings; `config` is the settings file read
/// and its content, whose SHA-256 is kept (`None` when the defaults apply), so a changed file
/// shows up in the trail.
pub fn started(
    node: &str,
    version: &str,
    interval: Duration,
    config: Option<(&Path, &[u8])>,
) -> AuditEntry {
    let (path, digest) = match config {
        Some((path, content)) => {
            let sum = Sha256::digest(content);
            let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
            (Some(path.display().to_string()), Some(hex))
        }
        None => (None, None),
    };
    AuditEntry {
        actor: agent_actor(),
        action: "agent.start".into(),
        target: node.to_owned(),
        workspace: None,
        details: json!({
            "version": version,
            "interval_s": interval.as_secs(),
            "config": path,
            "config_sha256": digest,
        }),
    }
}

/// `task.run`: the agent ran an attempt at a task the hub pinned to the node, and how it
/// ended (`failed` with `allowed: false` when the node does not declare the kind).
pub fn task_ran(
    node: &str,
    task: &steward_wire::work::RemoteTask,
    result: &steward_wire::work::RemoteResult,
) -> AuditEntry {
    AuditEntry {
        actor: agent_actor(),
        action: "task.run".into(),
        target: format!("task:{}", task.id),
        workspace: None,
        details: json!({
            "node": node,
            "queue": task.queue,
            "kind": task.kind,
            "attempt": task.attempt,
            "end": result.end,
            "duration_ms": result.ended_at_ms - result.started_at_ms,
            "error": result.error,
        }),
    }
}

/// `agent.stop`: the agent stopped when asked to.
pub fn stopped(node: &str) -> AuditEntry {
    AuditEntry {
        actor: agent_actor(),
        action: "agent.stop".into(),
        target: node.to_owned(),
        workspace: None,
        details: json!({}),
    }
}

/// Milliseconds since the Unix epoch (0 for a clock set before it).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::os::unix::fs::MetadataExt;

    use steward_core::audit::verify_segment;

    use super::*;

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            actor: Actor::system("agent"),
            action: action.into(),
            target: "vps-02".into(),
            workspace: None,
            details: serde_json::json!({ "n": action.len() }),
        }
    }

    #[test]
    fn appends_chain_from_one_and_read_back_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path());
        assert_eq!(journal.last_seq().unwrap(), 0);
        assert!(journal.events_after(0, 10).unwrap().is_empty());
        let first = journal.append(entry("agent.register")).unwrap();
        assert_eq!((first.seq, first.prev_hash.as_str()), (1, GENESIS_HASH));
        journal.append(entry("agent.start")).unwrap();
        // Another process (or a restart) sees the same chain and continues it.
        let reopened = Journal::new(dir.path());
        reopened.append(entry("agent.stop")).unwrap();
        assert_eq!(reopened.last_seq().unwrap(), 3);
        let events = reopened.events_after(0, 10).unwrap();
        assert_eq!(
            events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["agent.register", "agent.start", "agent.stop"]
        );
        assert_eq!(verify_segment(&events, (0, GENESIS_HASH)).unwrap().0, 3);
        let later = reopened.events_after(1, 1).unwrap();
        assert_eq!(later.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn a_torn_last_line_is_cut_off_and_the_chain_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path());
        journal.append(entry("agent.register")).unwrap();
        let second = journal.append(entry("agent.start")).unwrap();
        let whole = std::fs::read(journal.path()).unwrap();
        let mut file = OpenOptions::new()
            .append(true)
            .open(journal.path())
            .unwrap();
        file.write_all(br#"{"seq":3,"at_ms":17,"act"#).unwrap();
        drop(file);
        // A reader does not take the partial line for an event.
        assert_eq!(journal.events_after(0, 10).unwrap().len(), 2);
        let third = journal.append(entry("agent.stop")).unwrap();
        assert_eq!(
            (third.seq, third.prev_hash.as_str()),
            (3, second.hash.as_str())
        );
        let after = std::fs::read(journal.path()).unwrap();
        assert!(after.starts_with(&whole));
        let events = journal.events_after(0, 10).unwrap();
        assert_eq!(verify_segment(&events, (0, GENESIS_HASH)).unwrap().0, 3);
    }

    #[test]
    fn a_journal_with_only_a_torn_line_starts_over_at_one() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path());
        std::fs::write(journal.path(), b"{\"seq\":1,").unwrap();
        let first = journal.append(entry("agent.start")).unwrap();
        assert_eq!(first.seq, 1);
        assert_eq!(journal.events_after(0, 10).unwrap(), vec![first]);
    }

    #[test]
    fn long_lines_are_found_past_the_first_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path());
        let mut big = entry("agent.start");
        big.details = serde_json::json!({ "pad": "x".repeat(3 * TAIL_CHUNK as usize) });
        journal.append(big.clone()).unwrap();
        journal.append(big).unwrap();
        assert_eq!(journal.append(entry("agent.stop")).unwrap().seq, 3);
        assert_eq!(journal.last_seq().unwrap(), 3);
    }

    #[test]
    fn a_line_that_is_not_an_event_is_refused_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path());
        std::fs::write(journal.path(), b"not json\n").unwrap();
        assert!(matches!(
            journal.append(entry("agent.start")),
            Err(JournalError::Corrupt { .. })
        ));
        assert!(matches!(
            journal.events_after(0, 10),
            Err(JournalError::Corrupt { line: 1, .. })
        ));
    }

    #[test]
    fn a_start_keeps_the_settings_file_and_its_digest() {
        let with = started(
            "vps-02",
            "1.2.3",
            Duration::from_secs(10),
            Some((
                Path::new("/etc/steward/agent.toml"),
                b"interval = \"10s\"\n",
            )),
        );
        assert_eq!(with.details["config"], "/etc/steward/agent.toml");
        assert_eq!(with.details["config_sha256"].as_str().unwrap().len(), 64);
        assert_eq!(with.details["interval_s"], 10);
        let without = started("vps-02", "1.2.3", Duration::from_secs(10), None);
        assert!(without.details["config_sha256"].is_null());
        assert_eq!(
            registered("vps-02", "http://hub", "k").action,
            "agent.register"
        );
        assert_eq!(stopped("vps-02").target, "vps-02");
    }

    #[test]
    fn the_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path());
        journal.append(entry("agent.start")).unwrap();
        journal.mark_shipped(1).unwrap();
        for name in [JOURNAL_FILE, SHIPPED_FILE] {
            let mode = std::fs::metadata(dir.path().join(name)).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
    }

    #[test]
    fn the_shipped_marker_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path());
        assert_eq!(journal.shipped().unwrap(), 0);
        journal.mark_shipped(3).unwrap();
        journal.mark_shipped(12).unwrap();
        assert_eq!(journal.shipped().unwrap(), 12);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(SHIPPED_FILE)).unwrap(),
            "12\n"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        std::fs::write(dir.path().join(SHIPPED_FILE), "twelve\n").unwrap();
        assert!(matches!(
            journal.shipped(),
            Err(JournalError::Corrupt { .. })
        ));
    }
}
