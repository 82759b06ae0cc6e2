//! Gathering a node's inventory, one file per kind, and digesting it: a kind's digest is the
//! SHA-256 of its JSON, so the agent and the hub agree on whether it changed without sending it.

pub mod certs;
pub mod docker;
pub mod facts;
pub mod nginx;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The SHA-256 hex digest of `part`'s JSON.
pub fn digest_of<T: Serialize>(part: &T) -> String {
    let bytes = serde_json::to_vec(part).unwrap_or_default();
    let sum = Sha256::digest(&bytes);
    sum.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_parts_have_equal_digests_and_different_ones_differ() {
        let a = vec!["x".to_owned()];
        let b = vec!["y".to_owned()];
        assert_eq!(digest_of(&a), digest_of(&a.clone()));
        assert_ne!(digest_of(&a), digest_of(&b));
        assert_eq!(digest_of(&a).len(), 64);
    }
}
