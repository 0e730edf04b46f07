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
                let found = self.tokens.iter().position(|t| {
                    PasswordHash::new(&t.hash).is_ok_and(|h| {
                        Argon2::default()
                            .verify_password(secret.as_bytes(), &h)
                            .is_ok()
                    })
                });
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
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    let secret: String = std::iter::once("messo_".to_owned())
        .chain(bytes.iter().map(|b| format!("{b:02x}")))
        .collect();
    let hash = Argon2::default()
        .hash_password(secret.as_bytes())
        .map_err(|e| format!("argon2: {e}"))?
        .to_string();
    Ok((secret, hash))
}
