//! Who may do what: roles, principals, and the API key format.
//!
//! A key is `stw_` + base58 of 32 random bytes + a 6-character base58 CRC-32 of those bytes.
//! The prefix lets secret scanners find leaked keys; the checksum lets them (and Steward)
//! reject mistyped or made-up keys without a database lookup. Keys carry 256 bits of entropy,
//! so they are stored as a SHA-256 digest: a slow password hash adds nothing against guessing a
//! 256-bit value and would make every request pay for it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every Steward API key starts with.
pub const KEY_PREFIX: &str = "stw_";
const CHECKSUM_LEN: usize = 6;
/// Base58 of 32 bytes is at most 44 characters.
const MAX_RANDOM_LEN: usize = 44;
/// The longest well-formed key; anything longer is refused before decoding (base58 decoding
/// costs the square of the input's length).
pub const MAX_KEY_LEN: usize = KEY_PREFIX.len() + MAX_RANDOM_LEN + CHECKSUM_LEN;

/// What a key may do. The people's roles are ordered: each includes the ones before it. `agent`
/// stands apart: it includes none of them, and none of them includes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A node's agent: acts only as its node (heartbeats, inventory, audit, its tasks). Listed
    /// first so that no comparison with a people's role ever grants it more.
    Agent,
    /// Read anything in scope.
    Viewer,
    /// Also act: trigger, enqueue, acknowledge, silence.
    Operator,
    /// Also administer: keys, config reload, nodes.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 4] = [Role::Agent, Role::Viewer, Role::Operator, Role::Admin];

    /// The roles a person's key may have, weakest first.
    pub const PEOPLE: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// The role's name in config, CLI and API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}` (expected viewer, operator, admin or agent)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's name (the actor in audit events).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The one workspace it may see and touch; `None` means all.
    pub workspace: Option<String>,
    /// For an `agent` key, the node it acts as.
    pub node: Option<String>,
}

impl Principal {
    /// True when the principal's role includes `required`. An agent has only its own role, and
    /// no people's role includes an agent's.
    pub fn has_role(&self, required: Role) -> bool {
        if self.role == Role::Agent || required == Role::Agent {
            self.role == required
        } else {
            self.role >= required
        }
    }

    /// True when the principal is the agent of `node`.
    pub fn is_agent_of(&self, node: &str) -> bool {
        self.role == Role::Agent && self.node.as_deref() == Some(node)
    }

    /// True when the principal may see or touch things of `workspace` (`None`: things that
    /// belong to no workspace, visible only to unscoped keys).
    pub fn sees(&self, workspace: Option<&str>) -> bool {
        match &self.workspace {
            None => true,
            Some(scope) => workspace == Some(scope.as_str()),
        }
    }

    /// True for keys not limited to one workspace.
    pub fn is_unscoped(&self) -> bool {
        self.workspace.is_none()
    }
}

/// Why a string is not a well-formed Steward key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// It does not start with `stw_`.
    #[error("not a Steward key (keys start with `stw_`)")]
    Prefix,
    /// The body is not base58 or has the wrong length.
    #[error("malformed key")]
    Malformed,
    /// The checksum does not match: mistyped or made up.
    #[error("key checksum does not match")]
    Checksum,
}

fn checksum(random: &[u8]) -> String {
    let crc = crc32fast::hash(random).to_be_bytes();
    let encoded = bs58::encode(crc).into_string();
    // Left-pad with base58's zero digit to a fixed width.
    format!("{encoded:1>CHECKSUM_LEN$}")
}

/// Builds a key from 32 random bytes (the caller supplies the randomness).
pub fn format_key(random: &[u8; 32]) -> String {
    format!(
        "{KEY_PREFIX}{}{}",
        bs58::encode(random).into_string(),
        checksum(random)
    )
}

/// Checks a presented key's shape and checksum.
pub fn check_key_format(key: &str) -> Result<(), KeyFormatError> {
    let body = key.strip_prefix(KEY_PREFIX).ok_or(KeyFormatError::Prefix)?;
    if body.len() <= CHECKSUM_LEN || key.len() > MAX_KEY_LEN || !body.is_ascii() {
        return Err(KeyFormatError::Malformed);
    }
    let (random, sum) = body.split_at(body.len() - CHECKSUM_LEN);
    let bytes = bs58::decode(random)
        .into_vec()
        .map_err(|_| KeyFormatError::Malformed)?;
    if bytes.len() != 32 {
        return Err(KeyFormatError::Malformed);
    }
    if checksum(&bytes).as_bytes().ct_eq(sum.as_bytes()).into() {
        Ok(())
    } else {
        Err(KeyFormatError::Checksum)
    }
}

/// The digest a key is stored and looked up by (lowercase hex SHA-256).
pub fn key_digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A recognisable, non-secret fragment of a key for listings (`stw_4fQz…`).
pub fn key_hint(key: &str) -> String {
    let shown: String = key.chars().take(KEY_PREFIX.len() + 4).collect();
    format!("{shown}…")
}

/// Compares two digests in constant time.
pub fn digests_match(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn roles_are_ordered() {
        let p = Principal {
            name: "k".into(),
            role: Role::Operator,
            workspace: None,
            node: None,
        };
        assert!(p.has_role(Role::Viewer) && p.has_role(Role::Operator) && !p.has_role(Role::Admin));
        assert!(!p.has_role(Role::Agent));
    }

    #[test]
    fn an_agent_has_no_people_role_and_acts_only_as_its_node() {
        let agent = Principal {
            name: "node:vps-02".into(),
            role: Role::Agent,
            workspace: None,
            node: Some("vps-02".into()),
        };
        assert!(Role::PEOPLE.iter().all(|r| !agent.has_role(*r)));
        assert!(agent.has_role(Role::Agent));
        assert!(agent.is_agent_of("vps-02") && !agent.is_agent_of("vps-03"));
        let admin = Principal {
            role: Role::Admin,
            node: None,
            ..agent
        };
        assert!(!admin.has_role(Role::Agent) && !admin.is_agent_of("vps-02"));
    }

    #[test]
    fn scoped_principals_see_only_their_workspace() {
        let p = Principal {
            name: "k".into(),
            role: Role::Admin,
            workspace: Some("trading".into()),
            node: None,
        };
        assert!(p.sees(Some("trading")));
        assert!(!p.sees(Some("marketing")));
        assert!(!p.sees(None));
        let unscoped = Principal {
            workspace: None,
            ..p
        };
        assert!(unscoped.sees(None) && unscoped.sees(Some("x")));
    }

    #[test]
    fn a_typo_fails_the_checksum() {
        let key = format_key(&[7; 32]);
        assert!(key.starts_with("stw_"));
        assert_eq!(check_key_format(&key), Ok(()));
        let mut chars: Vec<char> = key.chars().collect();
        let i = 10;
        chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert!(check_key_format(&typo).is_err());
        assert_eq!(check_key_format("Bearer xyz"), Err(KeyFormatError::Prefix));
        assert_eq!(check_key_format("stw_"), Err(KeyFormatError::Malformed));
        let long = format!("stw_{}", "z".repeat(400_000));
        let started = std::time::Instant::now();
        assert_eq!(check_key_format(&long), Err(KeyFormatError::Malformed));
        assert!(
            started.elapsed() < std::time::Duration::from_millis(50),
            "refused before decoding"
        );
    }

    #[test]
    fn digests_are_hex_sha256() {
        assert_eq!(
            key_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(digests_match("ab", "ab") && !digests_match("ab", "ac"));
    }

    proptest! {
        #[test]
        fn every_generated_key_validates(random in proptest::array::uniform32(any::<u8>())) {
            let key = format_key(&random);
            prop_assert_eq!(check_key_format(&key), Ok(()));
            prop_assert!(key.len() <= MAX_KEY_LEN);
            prop_assert!(!key_hint(&key).contains(&key[8..]));
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,80}") {
            let _ = check_key_format(&s);
        }
    }
}
