//! API keys: creating them (the plaintext exists only in the answer) and authenticating them.

mod gate;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHash;
use argon2::{Argon2, PasswordVerifier};
use steward_core::audit::Actor;
use steward_core::auth::{check_key_format, digests_match, format_key, key_digest, key_hint};
use steward_core::{Principal, Role};
use steward_store::{ApiKey, NewKey, Store, StoreError, now_ms};

pub use gate::Standing;

/// How long a verified key is trusted without asking the store again. Revocation through this
/// instance takes effect at once; through another instance, within this time.
const CACHE_TTL: Duration = Duration::from_secs(5);
/// How often a key's last-used time is written at most.
const TOUCH_EVERY_MS: i64 = 60_000;
/// The principal name of the key given by `STEWARD_ADMIN_KEY_HASH`.
pub const ENV_ADMIN_NAME: &str = "admin (STEWARD_ADMIN_KEY_HASH)";

/// Why a presented key was refused. Callers answer every variant the same way (401), so that a
/// guesser learns nothing; the variants exist for logs and metrics.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Not a well-formed key (no database lookup was made).
    #[error("malformed key")]
    Malformed,
    /// Well-formed but unknown.
    #[error("unknown key")]
    Unknown,
    /// Revoked or expired.
    #[error("revoked or expired key")]
    Unusable,
    /// Verifying against `STEWARD_ADMIN_KEY_HASH` is busy: callers in better standing held
    /// every place in its queue, or the wait was too long. Not a verdict on the key.
    #[error("key verification is busy")]
    Busy,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AuthError {
    /// A stable name for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Malformed => "malformed",
            AuthError::Unknown => "unknown",
            AuthError::Unusable => "revoked_or_expired",
            AuthError::Busy => "busy",
            AuthError::Store(_) => "store",
        }
    }
}

/// What a key create request asks for.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    /// Unique name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Workspace scope.
    pub workspace: Option<String>,
    /// Expiry (ms since the Unix epoch).
    pub expires_at_ms: Option<i64>,
}

/// A key generated from the operating system's random source: the plaintext, to show once, and
/// what to store.
fn generate(request: &KeyRequest) -> Result<(String, NewKey), StoreError> {
    let plaintext = format_key(&random_32()?);
    let key = NewKey {
        name: request.name.clone(),
        role: request.role,
        workspace: request.workspace.clone(),
        node: None,
        digest: key_digest(&plaintext),
        hint: key_hint(&plaintext),
        expires_at_ms: request.expires_at_ms,
    };
    Ok((plaintext, key))
}

/// 32 bytes from the operating system's random source: a key's or a join token's secret.
pub(crate) fn random_32() -> Result<[u8; 32], StoreError> {
    let mut random = [0_u8; 32];
    getrandom::fill(&mut random).map_err(|e| StoreError::Io {
        path: "getrandom".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(random)
}

/// Creates a key; returns it with its plaintext, which is never stored or shown again.
pub async fn create_key(
    store: &dyn Store,
    request: &KeyRequest,
    actor: &Actor,
) -> Result<(ApiKey, String), StoreError> {
    let (plaintext, key) = generate(request)?;
    let stored = store.create_key(&key, actor).await?;
    Ok((stored, plaintext))
}

/// On a store with no key at all, creates the admin key `admin` and returns its plaintext.
pub async fn create_first_admin_key(store: &dyn Store) -> Result<Option<String>, StoreError> {
    let request = KeyRequest {
        name: "admin".into(),
        role: Role::Admin,
        workspace: None,
        expires_at_ms: None,
    };
    let (plaintext, key) = generate(&request)?;
    let created = store
        .create_first_key(&key, &Actor::system("bootstrap"))
        .await?;
    Ok(created.map(|_| plaintext))
}

/// Checks that `phc` is an Argon2 PHC string (for `STEWARD_ADMIN_KEY_HASH`).
pub fn check_admin_hash(phc: &str) -> Result<(), String> {
    let hash = PasswordHash::new(phc).map_err(|e| format!("not a PHC string: {e}"))?;
    if hash.algorithm.as_str().starts_with("argon2") {
        Ok(())
    } else {
        Err(format!(
            "expected an argon2 hash, found `{}`",
            hash.algorithm
        ))
    }
}

struct Cached {
    principal: Principal,
    checked: Instant,
    expires_at_ms: Option<i64>,
}

/// Authenticates presented keys against the store, with a short cache so that a busy API does
/// not read the key table on every request.
pub struct Authenticator {
    store: Arc<dyn Store>,
    admin_hash: Option<String>,
    cache: Mutex<HashMap<String, Cached>>,
    touched: Mutex<HashMap<String, i64>>,
    /// Bumped by [`Authenticator::forget_all`]: a lookup that started before a revocation must
    /// not cache what it read.
    generation: AtomicU64,
    /// Argon2 takes tens of MiB and milliseconds per run; at most a few run at once, handed
    /// out by the caller's standing.
    argon2: Arc<gate::Gate>,
    /// The digest of the `STEWARD_ADMIN_KEY_HASH` key once it was verified: it cannot be
    /// revoked short of a restart, so it never needs Argon2 (or a slot) again.
    env_admin_digest: OnceLock<String>,
}

/// Concurrent Argon2 verifications at most.
const ARGON2_SLOTS: usize = 2;
/// Callers waiting for an Argon2 slot at most.
const ARGON2_WAITING: usize = 64;
/// The longest a caller waits for an Argon2 slot.
const ARGON2_MAX_WAIT: Duration = Duration::from_secs(10);

impl Authenticator {
    /// An authenticator over `store`; `admin_hash` is `STEWARD_ADMIN_KEY_HASH`, if set.
    pub fn new(store: Arc<dyn Store>, admin_hash: Option<String>) -> Self {
        Self {
            store,
            admin_hash,
            cache: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            argon2: gate::Gate::new(ARGON2_SLOTS, ARGON2_WAITING, ARGON2_MAX_WAIT),
            env_admin_digest: OnceLock::new(),
        }
    }

    /// The principal a presented key stands for.
    pub async fn authenticate(&self, presented: &str) -> Result<Principal, AuthError> {
        self.authenticate_from(presented, Standing::Clean).await
    }

    /// Like [`Authenticator::authenticate`], for a caller whose address has this `standing`:
    /// it decides only how soon the Argon2-hashed environment key is tried, never whether.
    pub async fn authenticate_from(
        &self,
        presented: &str,
        standing: Standing,
    ) -> Result<Principal, AuthError> {
        // The digest (one SHA-256) finds keys verified recently; the format and checksum check
        // (a base58 decode) is only needed before asking the store.
        let digest = key_digest(presented);
        let now = now_ms();
        if let Some(principal) = self.known(&digest, now) {
            return Ok(principal);
        }
        check_key_format(presented).map_err(|_| AuthError::Malformed)?;
        match self.stored(&digest, now).await? {
            Some(principal) => Ok(principal),
            None => self.env_admin(presented, &digest, standing).await,
        }
    }

    /// The principal of the key with this digest, by the same checks as a presented key:
    /// for a dashboard session, which keeps the digest rather than the key. The environment
    /// admin key is known by digest only once it was presented since the process started.
    pub async fn authenticate_digest(&self, digest: &str) -> Result<Principal, AuthError> {
        let now = now_ms();
        if let Some(principal) = self.known(digest, now) {
            return Ok(principal);
        }
        self.stored(digest, now).await?.ok_or(AuthError::Unknown)
    }

    /// A principal known without the store: the verified environment key, or a cached key.
    fn known(&self, digest: &str, now: i64) -> Option<Principal> {
        if self
            .env_admin_digest
            .get()
            .is_some_and(|known| digests_match(known, digest))
        {
            return Some(env_admin_principal());
        }
        self.cached(digest, now)
    }

    /// The stored key with this digest as a principal, `None` when the store has none.
    async fn stored(&self, digest: &str, now: i64) -> Result<Option<Principal>, AuthError> {
        let generation = self.generation.load(Ordering::SeqCst);
        match self.store.key_by_digest(digest).await? {
            // The lookup was by digest; comparing in constant time as well guards against a
            // store whose index matching is looser than byte equality.
            Some(key) if !digests_match(&key.digest, digest) => Err(AuthError::Unknown),
            Some(key) if key.is_usable(now) => {
                let principal = Principal {
                    name: key.name.clone(),
                    role: key.role,
                    workspace: key.workspace.clone(),
                    node: key.node.clone(),
                };
                self.remember(digest, &principal, key.expires_at_ms, generation);
                self.touch(&key.name, key.last_used_at_ms, now);
                Ok(Some(principal))
            }
            Some(_) => Err(AuthError::Unusable),
            None => Ok(None),
        }
    }

    /// Drops cached keys so that a revocation takes effect at once on this instance.
    pub fn forget_all(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            cache.clear();
        }
    }

    fn cached(&self, digest: &str, now: i64) -> Option<Principal> {
        let cache = self.cache.lock().ok()?;
        let entry = cache.get(digest)?;
        let fresh =
            entry.checked.elapsed() < CACHE_TTL && entry.expires_at_ms.is_none_or(|t| now < t);
        fresh.then(|| entry.principal.clone())
    }

    fn remember(
        &self,
        digest: &str,
        principal: &Principal,
        expires_at_ms: Option<i64>,
        generation: u64,
    ) {
        if let Ok(mut cache) = self.cache.lock() {
            // Checked under the lock `forget_all` takes: a revocation since the lookup wins.
            if self.generation.load(Ordering::SeqCst) != generation {
                return;
            }
            cache.insert(
                digest.to_owned(),
                Cached {
                    principal: principal.clone(),
                    checked: Instant::now(),
                    expires_at_ms,
                },
            );
        }
    }

    /// Writes last-used in the background, at most once a minute per key.
    fn touch(&self, name: &str, stored: Option<i64>, now: i64) {
        let Ok(mut touched) = self.touched.lock() else {
            return;
        };
        let last = touched.get(name).copied().or(stored).unwrap_or(0);
        if now - last < TOUCH_EVERY_MS {
            return;
        }
        touched.insert(name.to_owned(), now);
        let store = Arc::clone(&self.store);
        let name = name.to_owned();
        tokio::spawn(async move {
            if let Err(e) = store.touch_key(&name, now).await {
                tracing::warn!(key = %name, error = %e, "cannot record a key's last use");
            }
        });
    }

    /// The key given as an Argon2 hash in `STEWARD_ADMIN_KEY_HASH`. Argon2 is slow on purpose,
    /// so a match is remembered until the process ends.
    async fn env_admin(
        &self,
        presented: &str,
        digest: &str,
        standing: Standing,
    ) -> Result<Principal, AuthError> {
        let Some(phc) = self.admin_hash.clone() else {
            return Err(AuthError::Unknown);
        };
        let _slot = self
            .argon2
            .enter(standing)
            .await
            .map_err(|gate::Busy| AuthError::Busy)?;
        let presented = presented.to_owned();
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&phc).is_ok_and(|hash| {
                Argon2::default()
                    .verify_password(presented.as_bytes(), &hash)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        if !matches {
            return Err(AuthError::Unknown);
        }
        let _ = self.env_admin_digest.set(digest.to_owned());
        Ok(env_admin_principal())
    }
}

/// Who the `STEWARD_ADMIN_KEY_HASH` key stands for.
fn env_admin_principal() -> Principal {
    Principal {
        name: ENV_ADMIN_NAME.into(),
        role: Role::Admin,
        workspace: None,
        node: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordHasher;
    use argon2::password_hash::SaltString;
    use steward_store::prelude::*;
    use steward_store_sqlite::SqliteStore;

    async fn store(dir: &std::path::Path) -> Arc<dyn Store> {
        let store = SqliteStore::open(dir).await.unwrap();
        store.migrate().await.unwrap();
        Arc::new(store)
    }

    fn request(name: &str, role: Role, expires_at_ms: Option<i64>) -> KeyRequest {
        KeyRequest {
            name: name.into(),
            role,
            workspace: Some("trading".into()),
            expires_at_ms,
        }
    }

    #[tokio::test]
    async fn created_keys_authenticate_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let (stored, plaintext) = create_key(
            store.as_ref(),
            &request("ops", Role::Operator, None),
            &Actor::system("t"),
        )
        .await
        .unwrap();
        assert!(plaintext.starts_with("stw_") && !stored.digest.contains(&plaintext));
        let auth = Authenticator::new(Arc::clone(&store), None);
        let principal = auth.authenticate(&plaintext).await.unwrap();
        assert_eq!(
            (principal.name.as_str(), principal.role),
            ("ops", Role::Operator)
        );
        assert_eq!(principal.workspace.as_deref(), Some("trading"));

        store.revoke_key("ops", &Actor::system("t")).await.unwrap();
        assert!(
            auth.authenticate(&plaintext).await.is_ok(),
            "cached for a few seconds"
        );
        auth.forget_all();
        assert!(matches!(
            auth.authenticate(&plaintext).await,
            Err(AuthError::Unusable)
        ));
    }

    #[tokio::test]
    async fn malformed_unknown_and_expired_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let auth = Authenticator::new(Arc::clone(&store), None);
        assert!(matches!(
            auth.authenticate("hunter2").await,
            Err(AuthError::Malformed)
        ));
        assert!(matches!(
            auth.authenticate(&format_key(&[9; 32])).await,
            Err(AuthError::Unknown)
        ));
        let (_, expired) = create_key(
            store.as_ref(),
            &request("old", Role::Viewer, Some(1)),
            &Actor::system("t"),
        )
        .await
        .unwrap();
        assert!(matches!(
            auth.authenticate(&expired).await,
            Err(AuthError::Unusable)
        ));
    }

    /// A key and its Argon2 PHC string, as `STEWARD_ADMIN_KEY_HASH` would hold it.
    fn env_admin_key() -> (String, String) {
        let key = format_key(&[3; 32]);
        let salt = SaltString::encode_b64(b"a fixed test salt").unwrap();
        // Light parameters: the tests are about who gets verified, not about Argon2's cost.
        let params = argon2::Params::new(1024, 1, 1, None).unwrap();
        let phc = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(key.as_bytes(), &salt)
            .unwrap()
            .to_string();
        (key, phc)
    }

    #[tokio::test]
    async fn the_environment_admin_key_is_verified_against_its_argon2_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let (key, phc) = env_admin_key();
        assert_eq!(check_admin_hash(&phc), Ok(()));
        assert!(check_admin_hash("plaintext-token").is_err());
        let auth = Authenticator::new(store, Some(phc));
        let principal = auth.authenticate(&key).await.unwrap();
        assert_eq!(
            (principal.name.as_str(), principal.role, principal.workspace),
            (ENV_ADMIN_NAME, Role::Admin, None)
        );
        assert!(matches!(
            auth.authenticate(&format_key(&[4; 32])).await,
            Err(AuthError::Unknown)
        ));
    }

    #[tokio::test]
    async fn a_blocked_caller_with_the_environment_key_still_gets_in() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let (key, phc) = env_admin_key();
        let auth = Authenticator::new(store, Some(phc));
        let principal = auth
            .authenticate_from(&key, Standing::Blocked)
            .await
            .unwrap();
        assert_eq!(principal.name, ENV_ADMIN_NAME);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_environment_key_gets_through_a_flood_of_guesses_and_never_waits_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let (key, phc) = env_admin_key();
        let auth = Arc::new(Authenticator::new(store, Some(phc)));
        // Forty callers from failing addresses keep every Argon2 slot and the queue busy.
        let stop = tokio_util::sync::CancellationToken::new();
        let flood: Vec<_> = (0..40_u8)
            .map(|i| {
                let auth = Arc::clone(&auth);
                let stop = stop.clone();
                tokio::spawn(async move {
                    while !stop.is_cancelled() {
                        let guess = format_key(&[i.wrapping_add(100); 32]);
                        let _ = auth.authenticate_from(&guess, Standing::Failing).await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let first = auth.authenticate_from(&key, Standing::Clean).await;
        assert_eq!(
            first.unwrap().name,
            ENV_ADMIN_NAME,
            "a clean caller is served"
        );
        // Once verified, no slot is needed, whatever the caller's standing.
        for _ in 0..6 {
            let started = Instant::now();
            let again = auth.authenticate_from(&key, Standing::Blocked).await;
            assert_eq!(again.unwrap().name, ENV_ADMIN_NAME);
            assert!(started.elapsed() < Duration::from_millis(50));
        }
        stop.cancel();
        for task in flood {
            task.await.unwrap();
        }
    }

    #[tokio::test]
    async fn only_the_first_start_creates_an_admin_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let first = create_first_admin_key(store.as_ref())
            .await
            .unwrap()
            .unwrap();
        assert!(
            create_first_admin_key(store.as_ref())
                .await
                .unwrap()
                .is_none()
        );
        let principal = Authenticator::new(store, None)
            .authenticate(&first)
            .await
            .unwrap();
        assert_eq!(principal.role, Role::Admin);
    }
}
