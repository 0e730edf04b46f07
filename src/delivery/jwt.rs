//! RS256 JSON Web Tokens signed with an RSA private key read from PEM text: the Vonage
//! application's tokens ([`super::voice`]) and the PDND client assertions ([`super::pdnd`]).
//! One place reads the key and signs; each caller chooses its own header and claims.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::Value;

/// Why a key cannot be used, or a token not signed. The messages never carry key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("{0}")]
    Key(String),
    #[error("the JWT could not be signed: {0}")]
    Sign(String),
}

/// The DER bytes of the first PEM block of `text`, and whether it is PKCS#8.
pub fn pem_der(text: &str) -> Result<(Vec<u8>, bool), String> {
    let mut label = None;
    let mut body = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(l) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            label = Some(l.to_owned());
            continue;
        }
        if line.starts_with("-----END ") {
            break;
        }
        if label.is_some() {
            body.push_str(line);
        }
    }
    let label = label.ok_or("not a PEM key (no -----BEGIN line)")?;
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|e| format!("the PEM body is not base64: {e}"))?;
    match label.as_str() {
        "PRIVATE KEY" => Ok((der, true)),
        "RSA PRIVATE KEY" => Ok((der, false)),
        other => Err(format!(
            "a {other:?} block; expected an RSA \"PRIVATE KEY\" (PKCS#8) or \"RSA PRIVATE KEY\""
        )),
    }
}

/// An RSA private key that signs RS256 tokens.
pub struct Rs256Key {
    key: RsaKeyPair,
}

impl std::fmt::Debug for Rs256Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rs256Key").finish_non_exhaustive()
    }
}

impl Rs256Key {
    /// The key in the PEM text `pem` (PKCS#8 or PKCS#1).
    pub fn from_pem(pem: &str) -> Result<Rs256Key, JwtError> {
        let (der, pkcs8) = pem_der(pem).map_err(JwtError::Key)?;
        let key = if pkcs8 {
            RsaKeyPair::from_pkcs8(&der)
        } else {
            RsaKeyPair::from_der(&der)
        }
        .map_err(|e| JwtError::Key(format!("not an RSA key ring can sign with: {e}")))?;
        Ok(Rs256Key { key })
    }

    /// The compact token of `header` and `claims`, in the order their JSON is written.
    pub fn sign(&self, header: &Value, claims: &Value) -> Result<String, JwtError> {
        let header = URL_SAFE_NO_PAD.encode(header.to_string().as_bytes());
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes());
        let input = format!("{header}.{claims}");
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| JwtError::Sign("ring refused the key".to_owned()))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// A random token id (`jti`): 128 bits, in hex.
pub fn jti() -> Result<String, JwtError> {
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti).map_err(|e| JwtError::Sign(format!("no randomness: {e}")))?;
    Ok(hex::encode(jti))
}
