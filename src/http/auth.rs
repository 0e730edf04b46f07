//! Bearer tokens: argon2 hashes in configuration, scoped read or write.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};

use super::Problem;
use crate::config::{ApiToken, Scope};

/// The configured tokens and the ones already verified.
#[derive(Debug, Default)]
pub struct TokenBook {
    tokens: Vec<ApiToken>,
    /// SHA-256 of a presented secret → index of the token it matched.
    verified: Mutex<HashMap<[u8; 32], usize>>,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
}

impl TokenBook {
    /// A book of the configured tokens.
    pub fn new(tokens: Vec<ApiToken>) -> TokenBook {
        TokenBook {
            tokens,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Checks the `Authorization: Bearer …` header and the scope; 401 or 403 otherwise.
    pub fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<Principal, Problem> {
        let unauthorized = |detail: &str| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authentication required",
                detail,
            )
        };
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("send Authorization: Bearer <token>"))?
            .to_str()
            .map_err(|_| unauthorized("the Authorization header is not text"))?;
        let secret = value
            .strip_prefix("Bearer ")
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or_else(|| unauthorized("expected Authorization: Bearer <token>"))?;
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let cached = self
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&digest)
            .copied();
        let index = match cached {
            Some(i) => i,
            None => {
                let found = self
                    .tokens
                    .iter()
                    .position(|t| verify_secret(secret, &t.hash));
                let Some(i) = found else {
                    return Err(unauthorized("unknown token"));
                };
                self.verified
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(digest, i);
                i
            }
        };
        let token = &self.tokens[index];
        if !token.scopes.contains(&scope) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Token lacks the scope",
                format!(
                    "token {:?} may not {}",
                    token.name,
                    match scope {
                        Scope::Read => "read",
                        Scope::Write => "write",
                        Scope::Portal => "read the citizen feed",
                    }
                ),
            ));
        }
        Ok(Principal {
            name: token.name.clone(),
        })
    }
}

/// A new random token and its argon2 hash, for `messo token new`.
pub fn new_token() -> Result<(String, String), String> {
    let secret = format!("messo_{}", random_hex(24)?);
    let hash = hash_secret(&secret)?;
    Ok((secret, hash))
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> Result<String, String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(crate::inbound::verify::hex(&bytes))
}

/// An argon2id hash of `secret` (API tokens, admin passwords and admin tokens), as a PHC string.
pub fn hash_secret(secret: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("argon2: {e}"))
}

/// Whether `secret` matches the argon2 PHC string `hash` (false for a malformed hash).
pub fn verify_secret(secret: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &h)
            .is_ok()
    })
}
