//! Results of attempts not yet delivered to the hub, kept in the data directory so that
//! neither a partition nor a restart loses one.
//!
//! `results.jsonl` holds one result per line, in the order the attempts ended. A result is
//! appended and flushed to disk before its delivery is tried, and leaves the file only once the
//! hub has answered for it (accepted, or refused because its lease moved on: either way the
//! hub has decided). Results are never dropped to bound the file: a task's completion is what
//! keeps the task from running again. A partial last line left by a crash is cut off when the
//! file is read (that attempt is lost; its lease runs out and the task runs again).

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use steward_wire::work::RemoteResult;

/// The file's name in the data directory.
pub const OUTBOX_FILE: &str = "results.jsonl";

/// Why the outbox could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {action}: {source}", .path.display())]
pub struct OutboxError {
    path: PathBuf,
    action: &'static str,
    #[source]
    source: std::io::Error,
}

/// The undelivered results, in memory and on disk.
#[derive(Debug)]
pub struct Outbox {
    path: PathBuf,
    pending: Mutex<VecDeque<RemoteResult>>,
}

impl Outbox {
    /// The outbox of the data directory `data_dir`, with what an earlier run left in it.
    pub fn open(data_dir: &Path) -> Result<Self, OutboxError> {
        let path = data_dir.join(OUTBOX_FILE);
        let pending = read_whole_lines(&path)?;
        if !pending.is_empty() {
            tracing::info!(
                results = pending.len(),
                "results of earlier attempts are waiting for the hub"
            );
        }
        Ok(Self {
            path,
            pending: Mutex::new(pending),
        })
    }

    /// Keeps `result` on disk, then queues it for delivery.
    pub fn push(&self, result: RemoteResult) -> Result<(), OutboxError> {
        let mut pending = self.lock();
        let mut line = serde_json::to_string(&result).unwrap_or_default();
        line.push('\n');
        let appended = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .and_then(|mut file| {
                file.write_all(line.as_bytes())?;
                file.sync_data()
            });
        appended.map_err(|source| self.error("cannot append", source))?;
        pending.push_back(result);
        Ok(())
    }

    /// The oldest `max` results waiting, in order.
    pub fn peek(&self, max: usize) -> Vec<RemoteResult> {
        self.lock().iter().take(max).cloned().collect()
    }

    /// How many results are waiting.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the oldest `n` results, which the hub has answered for, from memory and disk.
    pub fn delivered(&self, n: usize) -> Result<(), OutboxError> {
        let mut pending = self.lock();
        let n = n.min(pending.len());
        if n == 0 {
            return Ok(());
        }
        let rest: Vec<&RemoteResult> = pending.iter().skip(n).collect();
        let mut text = String::new();
        for result in rest {
            text.push_str(&serde_json::to_string(result).unwrap_or_default());
            text.push('\n');
        }
        // Replaced whole, so a crash leaves the old file (results sent twice, which the hub
        // refuses the second time) or the new one, never a mix.
        let temporary = self
            .path
            .with_file_name(format!(".{OUTBOX_FILE}.{}.tmp", std::process::id()));
        let written = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .and_then(|mut file| {
                file.write_all(text.as_bytes())?;
                file.sync_data()
            })
            .and_then(|()| std::fs::rename(&temporary, &self.path));
        if let Err(source) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(self.error("cannot rewrite", source));
        }
        pending.drain(..n);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<RemoteResult>> {
        crate::lock(&self.pending)
    }

    fn error(&self, action: &'static str, source: std::io::Error) -> OutboxError {
        OutboxError {
            path: self.path.clone(),
            action,
            source,
        }
    }
}

/// The whole lines of the file that read as results; a line that does not (a torn last line,
/// an edit) is skipped with a warning rather than blocking every later result.
fn read_whole_lines(path: &Path) -> Result<VecDeque<RemoteResult>, OutboxError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(VecDeque::new()),
        Err(source) => {
            return Err(OutboxError {
                path: path.to_owned(),
                action: "cannot read",
                source,
            });
        }
    };
    let whole = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    if whole.len() < text.len() {
        // Cut the torn line off, or the next append would be glued to it.
        let cut = OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|file| file.set_len(whole.len() as u64));
        if let Err(source) = cut {
            return Err(OutboxError {
                path: path.to_owned(),
                action: "cannot cut a torn last line off",
                source,
            });
        }
    }
    let mut pending = VecDeque::new();
    for (i, line) in whole.lines().enumerate() {
        match serde_json::from_str::<RemoteResult>(line) {
            Ok(result) => pending.push_back(result),
            Err(error) => {
                tracing::warn!(file = %path.display(), line = i + 1, %error, "skipping a result that cannot be read");
            }
        }
    }
    Ok(pending)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use steward_wire::work::RemoteEnd;

    use super::*;

    fn result(id: i64) -> RemoteResult {
        RemoteResult {
            id,
            fence: 1,
            attempt: 1,
            started_at_ms: 10,
            ended_at_ms: 20,
            end: RemoteEnd::Succeeded,
            error: None,
            retryable: false,
            result: None,
            outcome: None,
            tail: None,
        }
    }

    #[test]
    fn results_survive_a_restart_until_delivered_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        for id in 1..=3 {
            outbox.push(result(id)).unwrap();
        }
        let reopened = Outbox::open(dir.path()).unwrap();
        let ids = |o: &Outbox| o.peek(10).iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(&reopened), [1, 2, 3]);
        reopened.delivered(2).unwrap();
        assert_eq!(ids(&Outbox::open(dir.path()).unwrap()), [3]);
        reopened.delivered(5).unwrap();
        assert!(Outbox::open(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn a_torn_last_line_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        outbox.push(result(1)).unwrap();
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(OUTBOX_FILE))
            .unwrap();
        file.write_all(b"{\"id\": 2, \"fen").unwrap();
        let reopened = Outbox::open(dir.path()).unwrap();
        assert_eq!(reopened.len(), 1);
        reopened.push(result(3)).unwrap();
        let ids: Vec<i64> = Outbox::open(dir.path())
            .unwrap()
            .peek(10)
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, [1, 3], "what follows the cut is read whole");
    }
}
