//! The audit trail's pure half: what an event holds, how the hash chain is computed, and how a
//! chain is verified. Stores write events inside the transaction of the change they describe;
//! this module decides what their hashes are.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash the first event chains from.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who caused a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `key` (an API key), `cli` (a command run on the host) or `system` (a Steward component).
    pub kind: ActorKind,
    /// The key's name, the command, or the component.
    pub name: String,
    /// The caller's address, for API calls.
    pub source_ip: Option<String>,
}

/// The kinds of [`Actor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// An API key.
    Key,
    /// A command run on the host.
    Cli,
    /// A Steward component (config loader, scheduler, rule).
    System,
}

impl ActorKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Key => "key",
            ActorKind::Cli => "cli",
            ActorKind::System => "system",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [ActorKind::Key, ActorKind::Cli, ActorKind::System]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

impl Actor {
    /// A Steward component.
    pub fn system(component: &str) -> Self {
        Self {
            kind: ActorKind::System,
            name: component.to_owned(),
            source_ip: None,
        }
    }

    /// A command run on the host.
    pub fn cli(command: &str) -> Self {
        Self {
            kind: ActorKind::Cli,
            name: command.to_owned(),
            source_ip: None,
        }
    }

    /// An API key, calling from `source_ip`.
    pub fn key(name: &str, source_ip: Option<String>) -> Self {
        Self {
            kind: ActorKind::Key,
            name: name.to_owned(),
            source_ip,
        }
    }
}

/// A change to record, before the store gives it a place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Who.
    pub actor: Actor,
    /// What, as `noun.verb` (`key.create`, `registry.sync`).
    pub action: String,
    /// On what (a key name, a workspace, `registry`).
    pub target: String,
    /// The workspace it concerns, if one.
    pub workspace: Option<String>,
    /// Anything else worth keeping (the registry diff, the key's role).
    pub details: serde_json::Value,
}

/// Where an event merged from another node was first recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The node that recorded it.
    pub node: String,
    /// Its sequence number there.
    pub seq: i64,
    /// Its hash there.
    pub hash: String,
}

/// A recorded event: an entry with its sequence number, time and chain hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// Which workspace.
    pub workspace: Option<String>,
    /// Details.
    pub details: serde_json::Value,
    /// The previous event's hash ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// This event's hash, over all the fields above.
    pub hash: String,
    /// For events merged from another node: where they were first recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

impl AuditEvent {
    /// Places an event recorded on another node into this chain, after `prev_hash` at `seq`,
    /// keeping where it came from.
    pub fn chain_remote(remote: &AuditEvent, node: &str, seq: i64, prev_hash: &str) -> Self {
        let entry = AuditEntry {
            actor: remote.actor.clone(),
            action: remote.action.clone(),
            target: remote.target.clone(),
            workspace: remote.workspace.clone(),
            details: remote.details.clone(),
        };
        let mut event = Self::chain(entry, seq, remote.at_ms, prev_hash);
        event.origin = Some(Origin {
            node: node.to_owned(),
            seq: remote.seq,
            hash: remote.hash.clone(),
        });
        event.hash = event.computed_hash();
        event
    }

    /// Places `entry` after the event with hash `prev_hash` at position `seq`.
    pub fn chain(entry: AuditEntry, seq: i64, at_ms: i64, prev_hash: &str) -> Self {
        let mut event = Self {
            seq,
            at_ms,
            actor: entry.actor,
            action: entry.action,
            target: entry.target,
            workspace: entry.workspace,
            details: entry.details,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
            origin: None,
        };
        event.hash = event.computed_hash();
        event
    }

    /// The hash this event's fields give. Each field is length-prefixed, so that no two
    /// different events encode to the same bytes.
    pub fn computed_hash(&self) -> String {
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        field(&self.seq.to_be_bytes());
        field(&self.at_ms.to_be_bytes());
        field(self.actor.kind.as_str().as_bytes());
        field(self.actor.name.as_bytes());
        field(self.actor.source_ip.as_deref().unwrap_or("").as_bytes());
        field(&[u8::from(self.actor.source_ip.is_some())]);
        field(self.action.as_bytes());
        field(self.target.as_bytes());
        field(self.workspace.as_deref().unwrap_or("").as_bytes());
        field(&[u8::from(self.workspace.is_some())]);
        // serde_json writes object keys sorted (no preserve_order), so this is canonical.
        field(self.details.to_string().as_bytes());
        field(self.prev_hash.as_bytes());
        // Only merged events hash their origin, so local events hash as they always did.
        if let Some(origin) = &self.origin {
            field(origin.node.as_bytes());
            field(&origin.seq.to_be_bytes());
            field(origin.hash.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The event's fields no longer give its hash.
    #[error("event {seq} was edited: its content does not match its hash")]
    Edited {
        /// The event.
        seq: i64,
    },
    /// Events are missing between two that remain.
    #[error("events {from} to {to} are missing (deleted)")]
    Missing {
        /// First missing sequence number.
        from: i64,
        /// Last missing sequence number.
        to: i64,
    },
    /// The event does not chain from its predecessor.
    #[error("event {seq} does not follow event {prev}: the chain was reordered or rewritten")]
    Unchained {
        /// The event.
        seq: i64,
        /// Its predecessor.
        prev: i64,
    },
    /// The recorded head is not the last event: events at the end were deleted, or the head
    /// was altered.
    #[error("the chain ends at event {last}, but its recorded head is event {head}")]
    Truncated {
        /// Last event present.
        last: i64,
        /// Sequence number of the recorded head.
        head: i64,
    },
}

/// Checks events (in sequence order, starting after `prev`: `(seq, hash)` of the event before
/// the first, or `(0, GENESIS_HASH)`). Returns the last `(seq, hash)` seen, to continue from.
pub fn verify_segment(
    events: &[AuditEvent],
    prev: (i64, &str),
) -> Result<(i64, String), ChainBreak> {
    let (mut prev_seq, mut prev_hash) = (prev.0, prev.1.to_owned());
    for event in events {
        if event.seq > prev_seq + 1 {
            return Err(ChainBreak::Missing {
                from: prev_seq + 1,
                to: event.seq - 1,
            });
        }
        if event.computed_hash() != event.hash {
            return Err(ChainBreak::Edited { seq: event.seq });
        }
        if event.seq != prev_seq + 1 || event.prev_hash != prev_hash {
            return Err(ChainBreak::Unchained {
                seq: event.seq,
                prev: prev_seq,
            });
        }
        prev_seq = event.seq;
        prev_hash = event.hash.clone();
    }
    Ok((prev_seq, prev_hash))
}

/// Checks the end of a verified chain against its recorded head `(seq, hash)`.
pub fn verify_head(last: (i64, &str), head: Option<(i64, &str)>) -> Result<(), ChainBreak> {
    match head {
        None if last.0 == 0 => Ok(()),
        None => Err(ChainBreak::Truncated {
            last: last.0,
            head: 0,
        }),
        Some((seq, hash)) if seq == last.0 && hash == last.1 => Ok(()),
        Some((seq, _)) => Err(ChainBreak::Truncated {
            last: last.0,
            head: seq,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut events: Vec<AuditEvent> = Vec::new();
        for seq in 1..=n {
            let prev = events
                .last()
                .map_or(GENESIS_HASH.to_owned(), |e| e.hash.clone());
            let entry = AuditEntry {
                actor: Actor::key("ops", Some("127.0.0.1".into())),
                action: "key.create".into(),
                target: format!("k{seq}"),
                workspace: None,
                details: serde_json::json!({ "role": "viewer", "b": [1, 2] }),
            };
            events.push(AuditEvent::chain(entry, seq, 1_000 + seq, &prev));
        }
        events
    }

    fn verify(events: &[AuditEvent]) -> Result<(), ChainBreak> {
        let (seq, hash) = verify_segment(events, (0, GENESIS_HASH))?;
        let head = chain(5).last().map(|e| (e.seq, e.hash.clone())).unwrap();
        verify_head((seq, &hash), Some((head.0, &head.1)))
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(()));
    }

    #[test]
    fn an_edit_is_named() {
        let mut events = chain(5);
        events[2].target = "someone-else".into();
        assert_eq!(verify(&events), Err(ChainBreak::Edited { seq: 3 }));
    }

    #[test]
    fn an_edit_with_a_recomputed_hash_breaks_the_next_link() {
        let mut events = chain(5);
        events[2].details = serde_json::json!({ "role": "admin" });
        events[2].hash = events[2].computed_hash();
        assert_eq!(
            verify(&events),
            Err(ChainBreak::Unchained { seq: 4, prev: 3 })
        );
    }

    #[test]
    fn a_deletion_is_named() {
        let mut events = chain(5);
        events.remove(1);
        assert_eq!(verify(&events), Err(ChainBreak::Missing { from: 2, to: 2 }));
        let mut events = chain(5);
        events.pop();
        assert_eq!(
            verify(&events),
            Err(ChainBreak::Truncated { last: 4, head: 5 })
        );
    }

    #[test]
    fn a_reordering_is_named() {
        let mut events = chain(5);
        events.swap(1, 2);
        let (a, b) = (events[1].seq, events[2].seq);
        events[1].seq = b;
        events[2].seq = a;
        assert!(matches!(
            verify(&events),
            Err(ChainBreak::Edited { seq: 2 })
        ));
    }

    #[test]
    fn a_merged_event_hashes_its_origin() {
        let remote = &chain(1)[0];
        let merged = AuditEvent::chain_remote(remote, "vps-2", 7, GENESIS_HASH);
        assert_eq!(merged.origin.as_ref().map(|o| o.seq), Some(1));
        assert_eq!(merged.computed_hash(), merged.hash);
        let mut forged = merged.clone();
        forged.origin = Some(Origin {
            node: "vps-3".into(),
            ..merged.origin.clone().unwrap()
        });
        assert_ne!(forged.computed_hash(), merged.hash);
    }

    #[test]
    fn fields_cannot_shift_into_each_other() {
        let a = &chain(1)[0];
        let mut b = a.clone();
        b.action = "key.createk1".into();
        b.target = String::new();
        assert_ne!(a.computed_hash(), b.computed_hash());
    }
}
