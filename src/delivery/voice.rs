//! Outbound calls that speak a notice (`[voice.outbound]`): the last try of the fallback chain
//! for a breach notice or an integration request, once SMS and e-mail have failed.
//!
//! Two providers:
//! - **Twilio**: `POST {base_url}/2010-04-01/Accounts/{sid}/Calls.json`, form-encoded `To`,
//!   `From`, `Twiml` (the notice as `<Say>`, twice), HTTP basic auth `sid:token`; the answer's
//!   `sid` (`CA…`) is the provider's id.
//! - **Vonage**: `POST {base_url}/v1/calls`, JSON `to`, `from`, `ncco` (`talk` actions),
//!   `Authorization: Bearer <JWT>` signed RS256 with the application's private key (claims
//!   `application_id`, `iat`, `exp`, `jti`); the answer's `uuid` is the provider's id.
//!
//! A call placed is an attempt *delivered* (the provider accepted it); whether anyone answered
//! is not waited for. Errors are classified as for SMS: 401/403, 408, 429, 5xx and refused
//! connections are transient; other 4xx refuse the call for good; a timeout after the request
//! went out is uncertain (the row is held, never called twice).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::jwt::{Rs256Key, jti};
use super::sms::{retry_after, transport_error};
use super::{Breaker, Channel, DoubtPolicy, OutMessage, Outcome, Sending, Sent};
use crate::config::{Outbound, VoiceProvider};
use crate::domain::Lang;
use crate::phone::script::{Script, Verb, speech_language};
use crate::redact::mask;

/// Why the voice channel cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum VoiceSetupError {
    #[error("voice.outbound.private_key: {0}")]
    Key(String),
    #[error("voice.outbound: HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// The RS256 signer of a Vonage application's JWTs.
pub struct JwtSigner {
    application_id: String,
    key: Rs256Key,
}

impl JwtSigner {
    /// The signer of `application_id` with the PEM key `pem`.
    pub fn new(application_id: &str, pem: &str) -> Result<JwtSigner, VoiceSetupError> {
        let key = Rs256Key::from_pem(pem).map_err(|e| VoiceSetupError::Key(e.to_string()))?;
        Ok(JwtSigner {
            application_id: application_id.to_owned(),
            key,
        })
    }

    /// A token valid for five minutes from `now_s`, with a fresh `jti`.
    pub fn token(&self, now_s: i64) -> Result<String, String> {
        let claims = json!({
            "application_id": self.application_id,
            "iat": now_s,
            "exp": now_s + 300,
            "jti": jti().map_err(|e| e.to_string())?,
        });
        self.key
            .sign(&json!({"alg": "RS256", "typ": "JWT"}), &claims)
            .map_err(|e| e.to_string())
    }
}

/// The notice as TwiML: said twice (a citizen picking up late hears it whole), then hang up.
pub fn call_twiml(lang: Lang, text: &str) -> String {
    let mut verbs = vec![Verb::Say(text.to_owned())];
    if let Some(again) = again(lang) {
        verbs.push(Verb::Say(again));
    }
    verbs.push(Verb::Say(text.to_owned()));
    verbs.push(Verb::Hangup);
    let script = Script { lang, verbs };
    crate::phone::twiml::twiml(&script, &|_| String::new())
}

/// The notice as a Vonage NCCO: `talk` actions only (said twice, like the TwiML).
pub fn call_ncco(lang: Lang, text: &str) -> Value {
    let language = speech_language(lang);
    let talk = |t: &str| json!({"action": "talk", "text": t, "language": language});
    let mut actions = vec![talk(text)];
    if let Some(again) = again(lang) {
        actions.push(talk(&again));
    }
    actions.push(talk(text));
    Value::Array(actions)
}

/// The words between the two readings of a notice ("Ripetiamo il messaggio."): the bundled
/// partial `ripeti_messaggio_<lang>`.
fn again(lang: Lang) -> Option<String> {
    crate::templates::partial_line("ripeti_messaggio", lang, &json!({}))
}

/// Sends calls through one provider.
pub struct VoiceChannel {
    outbound: Outbound,
    client: reqwest::Client,
    jwt: Option<JwtSigner>,
    breaker: Mutex<Breaker>,
}

impl VoiceChannel {
    pub fn new(
        outbound: &Outbound,
        delivery: &crate::config::Delivery,
    ) -> Result<VoiceChannel, VoiceSetupError> {
        crate::install_crypto();
        let jwt = match &outbound.provider {
            VoiceProvider::Vonage {
                application_id,
                private_key,
            } => Some(JwtSigner::new(application_id, private_key)?),
            VoiceProvider::Twilio { .. } => None,
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(u64::from(outbound.timeout_s)))
            .connect_timeout(Duration::from_secs(u64::from(outbound.connect_timeout_s)))
            .build()?;
        Ok(VoiceChannel {
            outbound: outbound.clone(),
            client,
            jwt,
            breaker: Mutex::new(Breaker::new(
                delivery.breaker_failures,
                Duration::from_secs(delivery.breaker_cooldown_s),
            )),
        })
    }

    fn request(&self, msg: &OutMessage) -> Result<reqwest::RequestBuilder, String> {
        let to = msg.address.as_str();
        let from = self.outbound.from.as_str();
        let base = &self.outbound.base_url;
        match &self.outbound.provider {
            VoiceProvider::Twilio {
                account_sid,
                auth_token,
            } => Ok(self
                .client
                .post(format!(
                    "{base}/2010-04-01/Accounts/{account_sid}/Calls.json"
                ))
                .basic_auth(account_sid, Some(auth_token))
                .form(&[
                    ("To", to),
                    ("From", from),
                    ("Twiml", &call_twiml(msg.language, &msg.text)),
                ])),
            VoiceProvider::Vonage { .. } => {
                let jwt = self
                    .jwt
                    .as_ref()
                    .ok_or("no signer for the Vonage application")?
                    .token(chrono::Utc::now().timestamp())?;
                let number = |n: &str| n.trim_start_matches('+').to_owned();
                Ok(self
                    .client
                    .post(format!("{base}/v1/calls"))
                    .bearer_auth(jwt)
                    .json(&json!({
                        "to": [{"type": "phone", "number": number(to)}],
                        "from": {"type": "phone", "number": number(from)},
                        "ncco": call_ncco(msg.language, &msg.text),
                    })))
            }
        }
    }

    async fn call(&self, msg: &OutMessage) -> Outcome {
        let req = match self.request(msg) {
            Ok(r) => r,
            Err(e) => return Outcome::permanent(e),
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return transport_error(&e),
        };
        let status = resp.status().as_u16();
        let retry = retry_after(&resp);
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        classify(self.outbound.provider.kind(), status, retry, &body)
    }
}

/// What a provider's answer means: `status` and its JSON `body` (Twilio's `sid` or error
/// `code`/`message`; Vonage's `uuid` or error `title`/`detail`).
pub fn classify(provider: &str, status: u16, retry: Option<Duration>, body: &Value) -> Outcome {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    if (200..300).contains(&status) {
        let id = text(&body["sid"]).or_else(|| text(&body["uuid"]));
        return Outcome::Delivered {
            provider_id: id,
            code: Some(status.to_string()),
        };
    }
    let code = text(&body["code"])
        .or_else(|| text(&body["type"]))
        .unwrap_or_else(|| status.to_string());
    let reason = text(&body["message"])
        .or_else(|| text(&body["detail"]))
        .or_else(|| text(&body["title"]))
        .unwrap_or_else(|| format!("HTTP {status}"));
    let reason = format!("{provider}: {reason} ({status})");
    match status {
        429 => Outcome::Transient {
            reason,
            code: Some(code),
            retry_after: Some(retry.unwrap_or(Duration::from_secs(60))),
            provider_down: false,
        },
        401 | 403 | 408 | 500..=599 => Outcome::Transient {
            reason,
            code: Some(code),
            retry_after: retry,
            provider_down: true,
        },
        _ => Outcome::Permanent {
            reason,
            code: Some(code),
        },
    }
}

impl Channel for VoiceChannel {
    fn name(&self) -> &str {
        self.outbound.provider.kind()
    }

    fn concurrency(&self) -> usize {
        self.outbound.concurrency as usize
    }

    fn doubt_policy(&self) -> DoubtPolicy {
        // A call is never placed twice: a doubt is held and the office told.
        DoubtPolicy::Hold
    }

    fn ready(&self, now: Instant) -> bool {
        self.breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ready(now)
    }

    fn send<'a>(&'a self, msg: &'a OutMessage, _in_doubt: bool) -> Sending<'a> {
        Box::pin(async move {
            let started = Instant::now();
            let started_ms = chrono::Utc::now().timestamp_millis();
            let name = self.name();
            let allowed = self
                .breaker
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .acquire(started);
            if !allowed {
                // Not tried: back to the queue without using an attempt.
                return Sent {
                    attempts: Vec::new(),
                    resent: false,
                };
            }
            let outcome = self.call(msg).await;
            self.breaker
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .observe(&outcome, Instant::now());
            tracing::info!(
                outbox_id = msg.outbox_id,
                kind = %msg.kind,
                to = %mask(msg.address.as_str()),
                provider = name,
                outcome = outcome.label(),
                "call"
            );
            Sent::one(name, outcome, started, started_ms)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_reads_the_notice_twice_with_the_words_between_from_the_templates() {
        let ncco = call_ncco(Lang::En, "Your request is late.");
        let texts: Vec<&str> = ncco
            .as_array()
            .expect("actions")
            .iter()
            .filter_map(|a| a["text"].as_str())
            .collect();
        assert_eq!(
            texts,
            [
                "Your request is late.",
                "Here is the message again.",
                "Your request is late."
            ]
        );
        let twiml = call_twiml(Lang::It, "La sua richiesta è in ritardo.");
        assert_eq!(twiml.matches("La sua richiesta è in ritardo.").count(), 2);
        assert!(twiml.contains("Ripetiamo il messaggio."), "{twiml}");
    }
}
