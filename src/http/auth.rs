//! Secrets: API tokens (configuration), admin passwords and admin tokens (store), all argon2id.
//!
//! - Every token is `messo_<id>_<secret>`: the id finds the one hash to check, so a token whose
//!   id is unknown is refused with no hashing at all.
//! - A verified token is remembered by the SHA-256 of the whole token (bounded; forgotten when the
//!   token or its user is revoked), so a client pays for argon2 once per process.
//! - argon2 runs on the blocking pool, at most `http.parallel_hashes` at a time in the whole
//!   process, each in a memory buffer kept for reuse: the memory argon2 may hold is that number
//!   × its memory cost (19 MiB), however many requests ask. Requests beyond a short queue are
//!   answered 503 at once instead of waiting.
//! - Checks that miss the cache are limited per token id and client address before any hashing,
//!   and made one at a time per token id: requests arriving together with a valid token not yet
//!   remembered wait for the first check, which remembers it for all of them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::Problem;
use super::limit::KeyedLimit;
use crate::config::{ApiToken, Scope};

/// argon2 hashes that may run at once when the daemon did not say otherwise.
pub const DEFAULT_PARALLEL_HASHES: usize = 2;
/// Requests that may wait for a hash, per hash that may run; more are refused with 503.
const QUEUE_PER_HASH: usize = 8;
/// Verified tokens remembered at most (only valid tokens get in, so this is never reached by
/// guessing; it bounds the map all the same).
const VERIFIED_CAP: usize = 4096;
/// Checks of a known token id that miss the cache, per id and client address per minute.
pub const MISSES_PER_MINUTE: u32 = 10;

// ---------------------------------------------------------------------------------------------
// The hasher: bounded parallelism, reused memory.

/// Why a secret could not be checked or hashed now.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too many checks are already waiting: answer 503 and let the client retry.
    #[error("too many password checks are in progress; retry in a moment")]
    Busy,
    #[error("argon2: {0}")]
    Failed(String),
}

/// Why a secret could not be made or hashed (the randomness source failed; argon2 refused).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("no randomness: {0}")]
    Randomness(getrandom::Error),
    #[error(transparent)]
    Argon2(#[from] argon2::Error),
    #[error(transparent)]
    Params(#[from] argon2::password_hash::Error),
    #[error(transparent)]
    Encoding(#[from] argon2::password_hash::phc::Error),
}

impl From<HashError> for Problem {
    fn from(e: HashError) -> Problem {
        match e {
            HashError::Busy => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "Too many sign-ins in progress",
                "too many credentials are being checked right now; retry in a second",
            ),
            HashError::Failed(m) => {
                tracing::error!(error = %m, "argon2 failed");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "the credentials could not be checked",
                )
            }
        }
    }
}

struct Hasher {
    permits: Arc<Semaphore>,
    parallel: usize,
    waiting: AtomicUsize,
    /// argon2 computations made through the async entry points (verifications and hashes).
    runs: AtomicU64,
    /// Memory buffers of argon2's default cost, kept for the next hash.
    buffers: Mutex<Vec<Vec<Block>>>,
}

static HASHER: OnceLock<Hasher> = OnceLock::new();

impl Hasher {
    fn new(parallel: usize) -> Hasher {
        let parallel = parallel.max(1);
        Hasher {
            permits: Arc::new(Semaphore::new(parallel)),
            parallel,
            waiting: AtomicUsize::new(0),
            runs: AtomicU64::new(0),
            buffers: Mutex::new(Vec::new()),
        }
    }
}

fn hasher() -> &'static Hasher {
    HASHER.get_or_init(|| Hasher::new(DEFAULT_PARALLEL_HASHES))
}

/// Sets how many argon2 hashes may run at once in this process. The daemon calls it once, before
/// serving; it returns false (and changes nothing) when hashing already started.
pub fn set_parallel_hashes(n: usize) -> bool {
    HASHER.set(Hasher::new(n)).is_ok()
}

/// argon2 computations made for requests since the process started (for `/metrics`).
pub fn hash_runs() -> u64 {
    hasher().runs.load(Ordering::Relaxed)
}

struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs `f` on the blocking pool once a hashing permit is free; the permit goes with the work,
/// so a request given up by its client never lets more hashes run than allowed.
async fn on_hasher<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashError> {
    let h = hasher();
    let permit = {
        let queued = h.waiting.fetch_add(1, Ordering::Relaxed);
        let _guard = Waiting(&h.waiting);
        if queued >= h.parallel * QUEUE_PER_HASH {
            return Err(HashError::Busy);
        }
        Arc::clone(&h.permits)
            .acquire_owned()
            .await
            .map_err(|_| HashError::Busy)?
    };
    h.runs.fetch_add(1, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || {
        let out = f();
        drop(permit);
        out
    })
    .await
    .map_err(|e| HashError::Failed(format!("the hashing task failed: {e}")))
}

/// Checks `secret` against the PHC string `hash` on the blocking pool, within the bound.
pub async fn verify(secret: String, hash: String) -> Result<bool, HashError> {
    on_hasher(move || verify_secret(&secret, &hash)).await
}

/// Like [`verify`], but with no hash (an unknown user) it checks against a fixed hash of the same
/// cost, so a wrong name and a wrong password take the same time and the same memory.
pub async fn verify_or_dummy(secret: String, hash: Option<String>) -> Result<bool, HashError> {
    on_hasher(move || match hash {
        Some(h) => verify_secret(&secret, &h),
        None => {
            let _ = verify_secret(&secret, dummy_hash());
            false
        }
    })
    .await
}

/// Hashes `secret` on the blocking pool, within the bound.
pub async fn hash(secret: String) -> Result<String, HashError> {
    on_hasher(move || hash_secret(&secret))
        .await?
        .map_err(|e| HashError::Failed(e.to_string()))
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_secret("messo-no-such-user").unwrap_or_default())
}

/// Runs `f` with a memory buffer of at least `blocks` argon2 blocks: one kept from an earlier hash
/// when it fits, otherwise a new one (kept afterwards only if it has the default size, and only as
/// many as hashes may run at once).
fn with_blocks<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    let h = hasher();
    let default = Params::DEFAULT.block_count();
    let mut buf = if blocks <= default {
        h.buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_else(|| vec![Block::default(); default])
    } else {
        vec![Block::default(); blocks]
    };
    let out = f(&mut buf[..blocks]);
    if buf.len() == default {
        let mut kept = h.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < h.parallel {
            kept.push(buf);
        }
    }
    out
}

/// The most memory one hash in a configured or stored PHC string may ask for (256 MiB).
const MAX_BLOCKS: usize = 256 * 1024;

/// An argon2id hash of `secret` (API tokens, admin passwords and admin tokens), as a PHC string,
/// with argon2's default cost (`m=19456, t=2, p=1`).
pub fn hash_secret(secret: &str) -> Result<String, SecretError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(SecretError::Randomness)?;
    let params = Params::DEFAULT;
    let a = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; 32];
    with_blocks(params.block_count(), |blocks| {
        a.hash_password_into_with_memory(secret.as_bytes(), &salt, &mut out, blocks)
    })?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(Salt::new(&salt)?),
        hash: Some(Output::new(&out)?),
    };
    Ok(phc.to_string())
}

/// Whether `secret` matches the argon2 PHC string `hash` (false for a malformed hash, or one
/// asking for more than 256 MiB).
pub fn verify_secret(secret: &str, hash: &str) -> bool {
    let Ok(phc) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::new(phc.algorithm.as_str()) else {
        return false;
    };
    let version = match phc.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&phc) else {
        return false;
    };
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        return false;
    }
    let a = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let done = with_blocks(blocks, |b| {
        a.hash_password_into_with_memory(secret.as_bytes(), salt, &mut out, b)
    });
    // Same length by construction: `subtle` compares in constant time.
    done.is_ok()
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            out.as_slice(),
            expected.as_bytes(),
        ))
}

// ---------------------------------------------------------------------------------------------
// Tokens.

/// Splits `messo_<id>_<secret>` into its id and secret: the id is 1–32 characters among
/// `a-z 0-9 -`, the secret 16–128 visible characters.
pub fn split_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.strip_prefix("messo_")?.split_once('_')?;
    (valid_token_id(id)
        && (16..=128).contains(&secret.len())
        && secret.bytes().all(|b| b.is_ascii_graphic()))
    .then_some((id, secret))
}

pub use crate::config::valid_token_id;

/// The SHA-256 of a whole token: the key tokens are remembered by once verified.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Tokens already verified, by the SHA-256 of the whole token; bounded.
#[derive(Debug)]
pub struct Verified<V> {
    map: Mutex<HashMap<[u8; 32], V>>,
}

impl<V> Default for Verified<V> {
    fn default() -> Self {
        Verified {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone> Verified<V> {
    pub fn get(&self, digest: &[u8; 32]) -> Option<V> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(digest)
            .cloned()
    }

    pub fn insert(&self, digest: [u8; 32], v: V) {
        let mut m = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if m.len() >= VERIFIED_CAP {
            m.clear();
        }
        m.insert(digest, v);
    }

    /// Forgets every token for which `drop` is true (a revoked token, a disabled user's).
    pub fn forget(&self, drop: impl Fn(&V) -> bool) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, v| !drop(v));
    }
}

/// A 401 answer.
pub fn unauthorized(detail: &str) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Authentication required",
        detail,
    )
}

/// A 429 answer for too many failed checks of one token.
pub fn too_many_misses() -> Problem {
    Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too many attempts",
        "too many wrong secrets for this token from this address; wait a minute",
    )
}

/// A problem as a response, with `Retry-After` on 429 and 503.
pub fn problem_response(p: Problem) -> Response {
    let status = p.status;
    let mut res = p.into_response();
    match status {
        StatusCode::TOO_MANY_REQUESTS => {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    res
}

/// The bearer token of a request (at most 256 characters), or a 401.
pub fn bearer(headers: &HeaderMap, expected: &str) -> Result<String, Problem> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized(&format!("send Authorization: Bearer {expected}")))?
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not text"))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .map(str::to_owned)
        .ok_or_else(|| unauthorized(&format!("expected Authorization: Bearer {expected}")))
}

/// The configured API tokens, by id, and the ones already verified.
#[derive(Debug)]
pub struct TokenBook {
    tokens: HashMap<String, ApiToken>,
    verified: Verified<String>,
    misses: KeyedLimit<(String, IpAddr)>,
    /// One check at a time per token id: requests that come together with a token not yet
    /// verified (a client opening its connections) wait for the first check instead of each
    /// counting as a miss and being refused 429.
    checking: HashMap<String, tokio::sync::Mutex<()>>,
    /// argon2 verifications this book asked for (tests and metrics).
    verifications: AtomicU64,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    /// The token's id (the `<id>` of `messo_<id>_<secret>`).
    pub id: String,
}

impl Default for TokenBook {
    fn default() -> Self {
        TokenBook::new(Vec::new())
    }
}

impl TokenBook {
    /// A book of the configured tokens.
    pub fn new(tokens: Vec<ApiToken>) -> TokenBook {
        TokenBook::with_limit(tokens, super::limit::DEFAULT_MAX_KEYS)
    }

    /// A book whose per-address miss limiter remembers at most `max_keys` clients.
    pub fn with_limit(tokens: Vec<ApiToken>, max_keys: usize) -> TokenBook {
        TokenBook {
            checking: tokens
                .iter()
                .map(|t| (t.id.clone(), tokio::sync::Mutex::new(())))
                .collect(),
            tokens: tokens.into_iter().map(|t| (t.id.clone(), t)).collect(),
            verified: Verified::default(),
            misses: KeyedLimit::per_minute(MISSES_PER_MINUTE, max_keys),
            verifications: AtomicU64::new(0),
        }
    }

    /// argon2 verifications made for this book so far.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Whether a token with this id is configured.
    pub fn knows(&self, id: &str) -> bool {
        self.tokens.contains_key(id)
    }

    /// Prunes the miss limiter (called periodically).
    pub fn prune(&self) {
        self.misses.prune();
    }

    /// Checks the `Authorization: Bearer messo_<id>_<secret>` header and the scope: 401 for a
    /// missing, malformed or unknown token (no hashing unless the id is configured), 429 after
    /// too many wrong secrets for the id from `peer`, 503 when hashing is saturated, 403 for a
    /// token without the scope.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        peer: IpAddr,
        scope: Scope,
    ) -> Result<Principal, Problem> {
        let token = bearer(headers, "messo_<id>_<secret>")?;
        let (id, _) = split_token(&token)
            .ok_or_else(|| unauthorized("expected Authorization: Bearer messo_<id>_<secret>"))?;
        let Some(t) = self.tokens.get(id) else {
            return Err(unauthorized("unknown token"));
        };
        let digest = token_digest(&token);
        let known = || self.verified.get(&digest).as_deref() == Some(id);
        if !known() {
            let _one = match self.checking.get(id) {
                Some(m) => Some(m.lock().await),
                None => None,
            };
            // Verified meanwhile by the request this one waited for.
            if !known() {
                if !self.misses.check(&(id.to_owned(), peer)) {
                    return Err(too_many_misses());
                }
                self.verifications.fetch_add(1, Ordering::Relaxed);
                if !verify(token.clone(), t.hash.clone()).await? {
                    return Err(unauthorized("unknown token"));
                }
                self.verified.insert(digest, id.to_owned());
            }
        }
        if !t.scopes.contains(&scope) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Token lacks the scope",
                format!(
                    "token {:?} may not {}",
                    t.name,
                    match scope {
                        Scope::Read => "read",
                        Scope::Write => "write",
                        Scope::Portal => "read the citizen feed",
                        Scope::Reports => "read the reports",
                    }
                ),
            ));
        }
        Ok(Principal {
            name: t.name.clone(),
            id: t.id.clone(),
        })
    }
}

/// A new API token: its id, the whole token `messo_<id>_<secret>` (given to the client once)
/// and the argon2 hash of the whole token (kept in the configuration).
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub token: String,
    pub hash: String,
}

/// A new random API token, for `messo token new`: a 12-character id and a 48-character secret.
pub fn new_token() -> Result<NewToken, SecretError> {
    let id = random_hex(6)?;
    let token = format!("messo_{id}_{}", random_hex(24)?);
    let hash = hash_secret(&token)?;
    Ok(NewToken { id, token, hash })
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> Result<String, SecretError> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(SecretError::Randomness)?;
    Ok(hex::encode(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_secret_only() {
        let h = hash_secret("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_secret("correct horse", &h));
        assert!(!verify_secret("correct horsf", &h));
        assert!(!verify_secret("correct horse", "not a hash"));
        // A hash made by the argon2 crate itself (another cost) verifies too.
        use argon2::password_hash::PasswordHasher;
        let other = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8, 1, 1, None).expect("params"),
        )
        .hash_password(b"abc")
        .expect("hash")
        .to_string();
        assert!(verify_secret("abc", &other));
        assert!(!verify_secret("abd", &other));
    }

    #[test]
    fn tokens_split_into_id_and_secret() {
        let secret = "0123456789abcdef0123";
        assert_eq!(
            split_token(&format!("messo_crm-1_{secret}")),
            Some(("crm-1", secret))
        );
        assert_eq!(
            split_token(&format!("messo_12_{secret}")),
            Some(("12", secret))
        );
        assert_eq!(split_token(&format!("messo_{secret}")), None);
        assert_eq!(split_token(&format!("messo_Crm_{secret}")), None);
        assert_eq!(split_token("messo_crm_short"), None);
        assert_eq!(split_token(&format!("bearer_crm_{secret}")), None);
        let t = new_token().expect("token");
        assert_eq!(split_token(&t.token).map(|(id, _)| id), Some(t.id.as_str()));
        assert!(verify_secret(&t.token, &t.hash));
    }
}
