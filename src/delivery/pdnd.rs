//! The office's client on PDND Interoperabilità: buys the access tokens ("vouchers") that the
//! e-services reached through PDND (INAD, [`super::inad`]) ask for.
//!
//! A voucher is bought with a client assertion: a JWT the office signs RS256 with the private
//! key whose public half it registered on PDND. Its header is `kid`, `alg`, `typ`; its claims
//! are exactly `iss` and `sub` (the client id), `aud`, `purposeId`, `jti`, `iat` and `exp` —
//! PDND refuses claims it does not expect, such as `nbf`. The assertion goes to the token
//! endpoint form-encoded (`client_credentials` grant, `jwt-bearer` assertion type); the answer
//! is `{access_token, token_type: "Bearer", expires_in}`.
//!
//! The voucher is kept until shortly before it expires. One purchase at a time: concurrent
//! callers wait on the lock and take the voucher the first one bought.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::jwt::{JwtError, Rs256Key, jti};
use crate::config::Pdnd;
use crate::time::Timestamp;

/// How long a client assertion is valid, in seconds.
const ASSERTION_VALID_S: i64 = 300;

/// The largest token answer read.
const MAX_TOKEN_BODY: usize = 16 * 1024;

/// Why no voucher could be had.
#[derive(Debug, thiserror::Error)]
pub enum PdndError {
    #[error("domicile.inad.private_key: {0}")]
    Key(JwtError),
    #[error("PDND: the client assertion could not be made: {0}")]
    Assertion(JwtError),
    #[error("PDND: HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("PDND token endpoint: {0}")]
    Transport(String),
    #[error("PDND token endpoint refused the client assertion ({status}): {detail}")]
    Refused { status: u16, detail: String },
    #[error("PDND token endpoint: unreadable answer: {0}")]
    Answer(String),
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: String,
    token_type: String,
    expires_in: i64,
}

/// A voucher and the instant from which it is no longer used.
#[derive(Debug, Clone)]
struct Voucher {
    token: String,
    renew_at: Timestamp,
}

/// Buys and keeps vouchers.
#[derive(Debug)]
pub struct PdndClient {
    config: Pdnd,
    key: Rs256Key,
    http: reqwest::Client,
    voucher: tokio::sync::Mutex<Option<Voucher>>,
    bought: std::sync::atomic::AtomicU64,
}

impl PdndClient {
    /// A client for `config`, each request bounded by `timeout`.
    pub fn new(config: &Pdnd, timeout: Duration) -> Result<PdndClient, PdndError> {
        crate::install_crypto();
        let key = Rs256Key::from_pem(&config.private_key).map_err(PdndError::Key)?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(PdndError::Client)?;
        Ok(PdndClient {
            config: config.clone(),
            key,
            http,
            voucher: tokio::sync::Mutex::new(None),
            bought: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// A signed client assertion issued at `now_s` (Unix seconds), with a fresh `jti`.
    pub fn assertion(&self, now_s: i64) -> Result<String, PdndError> {
        let c = &self.config;
        let header = json!({"kid": c.kid, "alg": "RS256", "typ": "JWT"});
        let claims = json!({
            "iss": c.client_id,
            "sub": c.client_id,
            "aud": c.audience,
            "purposeId": c.purpose_id,
            "jti": jti().map_err(PdndError::Assertion)?,
            "iat": now_s,
            "exp": now_s + ASSERTION_VALID_S,
        });
        self.key
            .sign(&header, &claims)
            .map_err(PdndError::Assertion)
    }

    /// How many vouchers were bought so far.
    pub fn bought(&self) -> u64 {
        self.bought.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A voucher valid at `now`: the one kept, or a new one bought while the others wait.
    pub async fn voucher(&self, now: Timestamp) -> Result<String, PdndError> {
        let mut kept = self.voucher.lock().await;
        if let Some(v) = kept.as_ref().filter(|v| now < v.renew_at) {
            return Ok(v.token.clone());
        }
        *kept = None;
        let v = self.buy(now).await?;
        let token = v.token.clone();
        *kept = Some(v);
        Ok(token)
    }

    /// Forgets `token` (the e-service refused it); a voucher bought since by another caller
    /// is kept.
    pub async fn forget(&self, token: &str) {
        let mut kept = self.voucher.lock().await;
        if kept.as_ref().is_some_and(|v| v.token == token) {
            *kept = None;
        }
    }

    async fn buy(&self, now: Timestamp) -> Result<Voucher, PdndError> {
        // The assertion carries the real time: PDND checks it against its own clock.
        let assertion = self.assertion(chrono::Utc::now().timestamp())?;
        let resp = self
            .http
            .post(&self.config.token_url)
            .form(&[
                ("client_id", self.config.client_id.as_str()),
                ("client_assertion", assertion.as_str()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await
            .map_err(|e| PdndError::Transport(transport(e)))?;
        let status = resp.status().as_u16();
        let body = read_bounded(resp, MAX_TOKEN_BODY)
            .await
            .map_err(PdndError::Transport)?;
        if !(200..300).contains(&status) {
            return Err(PdndError::Refused {
                status,
                detail: problem_detail(&body),
            });
        }
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|e| PdndError::Answer(e.to_string()))?;
        if !answer.token_type.eq_ignore_ascii_case("bearer") {
            return Err(PdndError::Answer(format!(
                "token_type {:?}, expected Bearer",
                answer.token_type
            )));
        }
        if answer.access_token.is_empty() || answer.access_token.chars().any(char::is_control) {
            return Err(PdndError::Answer(
                "an empty or malformed access_token".to_owned(),
            ));
        }
        if answer.expires_in <= 0 {
            return Err(PdndError::Answer(format!(
                "expires_in {}, expected a positive number of seconds",
                answer.expires_in
            )));
        }
        self.bought
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(expires_in = answer.expires_in, "PDND voucher bought");
        // Renewed a little before it expires: a tenth of its life, at most a minute.
        let margin = (answer.expires_in / 10).min(60);
        Ok(Voucher {
            token: answer.access_token,
            renew_at: now.plus(answer.expires_in - margin),
        })
    }
}

/// A transport failure in words (timeouts named as such).
pub(crate) fn transport(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        // Without the URL: it may carry a codice fiscale.
        e.without_url().to_string()
    }
}

/// The body of `resp`, refused beyond `limit` bytes.
pub(crate) async fn read_bounded(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("the answer is larger than {limit} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > limit {
            return Err(format!("the answer is larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What a problem (`application/problem+json`, or an OAuth error) answer says, in one short
/// line: its `detail`, `error_description`, `title` or `error`, else nothing.
pub(crate) fn problem_detail(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = ["detail", "error_description", "title", "error"]
        .iter()
        .find_map(|k| v[*k].as_str())
        .unwrap_or("no detail");
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}
