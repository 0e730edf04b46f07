//! SMS over HTTP providers: number normalisation, encoding and fragments, and one adapter per
//! provider family (the Italian REST family, Twilio, a generic JSON API).

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use messo_core::domain::phone::{NumberError, normalize_number};
pub use messo_core::sms::fill_template;
use serde_json::{Value, json};

use super::{OutMessage, Outcome};
use crate::config::{ProviderKind, RestItAuth, SmsProvider};
use crate::templates::sms::{Encoding, budget, plain_punctuation};

/// The value of the `encoding` field in a REST-IT request (the providers' own names).
fn rest_it_encoding(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Gsm7 => "gsm",
        Encoding::Ucs2 => "ucs2",
    }
}

/// Cuts `body` so that `body…` followed by `suffix` fits in `max_parts` parts: the longest
/// prefix that fits, without trailing spaces, then `...`. The suffix (where to reply) is kept
/// whole; if even the suffix alone does not fit, the whole text is cut instead.
fn cut_to_parts(body: &str, suffix: &str, max_parts: u32) -> String {
    let max_parts = max_parts.max(1);
    let whole = format!("{body}{suffix}");
    if budget(&whole).parts <= max_parts {
        return whole;
    }
    let (body, suffix) = if budget(&format!("...{suffix}")).parts <= max_parts {
        (body, suffix)
    } else {
        (whole.as_str(), "")
    };
    let chars: Vec<char> = body.chars().collect();
    let candidate = |keep: usize| {
        let prefix: String = chars[..keep].iter().collect();
        format!("{}...{suffix}", prefix.trim_end())
    };
    // Parts never shrink as the prefix grows, so the longest prefix that fits is found by
    // bisection: a cut keeping `lo` characters fits, one keeping `hi` is taken not to.
    let (mut lo, mut hi) = (0usize, chars.len());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if budget(&candidate(mid)).parts <= max_parts {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    candidate(lo)
}

/// Parses `Retry-After` given in seconds (the form providers use); the voice channel's too.
pub(super) fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(3600)))
}

/// Classifies a failure of the HTTP exchange itself. A request that never reached the provider
/// (no connection) is a plain transient failure; one that may have reached it (sent, then a
/// timeout or a dropped answer) is uncertain. The voice channel's calls are classified alike.
pub(super) fn transport_error(e: &reqwest::Error) -> Outcome {
    if e.is_connect() {
        Outcome::transient_down(format!("cannot connect: {}", root_cause(e)), None)
    } else if e.is_builder() || e.is_request() && !e.is_timeout() && !e.is_body() {
        // The request could not be built or written before anything was sent.
        Outcome::transient_down(format!("request failed: {}", root_cause(e)), None)
    } else {
        Outcome::Uncertain {
            reason: format!(
                "{}: {}",
                if e.is_timeout() {
                    "no answer in time"
                } else {
                    "answer lost"
                },
                root_cause(e)
            ),
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn snippet(body: &str) -> String {
    body.chars().take(200).collect()
}

/// Maps a non-success HTTP status shared by the providers.
fn http_failure(status: u16, body: &str, retry: Option<Duration>) -> Outcome {
    match status {
        429 => Outcome::Transient {
            reason: format!("rate limited (429): {}", snippet(body)),
            code: Some("429".to_owned()),
            retry_after: Some(retry.unwrap_or(Duration::from_secs(60))),
            provider_down: false,
        },
        401 | 403 => Outcome::transient_down(
            format!("refused our credentials ({status}): {}", snippet(body)),
            Some(status.to_string()),
        ),
        408 | 500..=599 => {
            let mut o = Outcome::transient_down(
                format!("provider error ({status}): {}", snippet(body)),
                Some(status.to_string()),
            );
            if let Outcome::Transient { retry_after, .. } = &mut o {
                *retry_after = retry;
            }
            o
        }
        _ => Outcome::Permanent {
            reason: format!("refused ({status}): {}", snippet(body)),
            code: Some(status.to_string()),
        },
    }
}

/// Maps a REST-IT recipient status to an outcome (for the status query).
pub fn rest_it_status(status: &str) -> Option<Outcome> {
    match status {
        "DLVRD" | "SENT" | "WAIT4DLVR" | "WAITING" | "SCHEDULED" | "DEMO" => {
            Some(Outcome::Delivered {
                provider_id: None,
                code: Some(status.to_owned()),
            })
        }
        "TOOM4NUM" | "TOOM4USER" => Some(Outcome::Transient {
            reason: format!("provider rate limit ({status})"),
            code: Some(status.to_owned()),
            retry_after: Some(Duration::from_secs(300)),
            provider_down: false,
        }),
        "UNKNRCPT" | "INVALIDDST" | "BLACKLISTED" | "UNKNPFX" | "INVALIDCONTENTS" | "KO" => {
            Some(Outcome::Permanent {
                reason: format!("refused by the provider ({status})"),
                code: Some(status.to_owned()),
            })
        }
        "ERROR" | "TIMEOUT" => Some(Outcome::Transient {
            reason: format!("provider could not deliver ({status})"),
            code: Some(status.to_owned()),
            retry_after: None,
            provider_down: false,
        }),
        _ => None,
    }
}

/// A provider's answer, read whole.
struct Answer {
    status: u16,
    /// Its `Retry-After`, in seconds.
    retry: Option<Duration>,
    text: String,
}

/// Sends `req` and reads the answer; a failure of the exchange is classified by
/// [`transport_error`].
async fn exchange(req: reqwest::RequestBuilder) -> Result<Answer, Outcome> {
    let resp = req.send().await.map_err(|e| transport_error(&e))?;
    let status = resp.status().as_u16();
    let retry = retry_after(&resp);
    let text = resp.text().await.map_err(|e| transport_error(&e))?;
    Ok(Answer {
        status,
        retry,
        text,
    })
}

/// The body of a REST-IT send: the encoding the text needs, and at least as many fragments as
/// it takes.
fn rest_it_request(
    msg: &OutMessage,
    to: &str,
    text: &str,
    sender: &str,
    max_fragments: u32,
    message_type: &str,
) -> Value {
    let cost = budget(text);
    json!({
        "message_type": message_type,
        "message": text,
        "recipient": [to],
        "sender": sender,
        "order_id": msg.order_id(),
        "encoding": rest_it_encoding(cost.encoding),
        "max_fragments": max_fragments.max(cost.parts),
        "returnCredits": true,
    })
}

/// What a REST-IT answer (other than an expired session) means. Its id is the provider's
/// order id, else ours (`order_id`). A 400 may name one of the family's recipient statuses.
fn rest_it_answer(answer: &Answer, order_id: &str) -> Outcome {
    let Answer {
        status,
        retry,
        text,
    } = answer;
    if *status == 200 || *status == 201 {
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        if v["result"].as_str().is_some_and(|r| r != "OK") {
            return Outcome::Permanent {
                reason: format!("provider answered {}", snippet(text)),
                code: Some(status.to_string()),
            };
        }
        let id = v["internal_order_id"]
            .as_str()
            .or(v["order_id"].as_str())
            .unwrap_or(order_id)
            .to_owned();
        return Outcome::Delivered {
            provider_id: Some(id),
            code: Some(status.to_string()),
        };
    }
    if *status == 400 {
        for code in [
            "TOOM4NUM",
            "TOOM4USER",
            "UNKNRCPT",
            "INVALIDDST",
            "BLACKLISTED",
        ] {
            if text.contains(code)
                && let Some(o) = rest_it_status(code)
            {
                return o;
            }
        }
    }
    http_failure(*status, text, *retry)
}

/// What a Twilio answer means: its message `sid` on success; a 400 (a bad or unreachable
/// number) is final, with Twilio's own error code.
fn twilio_answer(answer: &Answer) -> Outcome {
    let v: Value = serde_json::from_str(&answer.text).unwrap_or(Value::Null);
    if (200..300).contains(&answer.status) {
        return Outcome::Delivered {
            provider_id: v["sid"].as_str().map(str::to_owned),
            code: Some(answer.status.to_string()),
        };
    }
    if answer.status == 400 {
        let code = v["code"].as_i64().unwrap_or(0);
        let message = v["message"].as_str().unwrap_or("");
        return Outcome::Permanent {
            reason: format!("refused ({code}): {}", snippet(message)),
            code: Some(code.to_string()),
        };
    }
    http_failure(answer.status, &answer.text, answer.retry)
}

/// What a generic provider's answer means: any 2xx is delivered, its id found at
/// `id_pointer` (a JSON pointer) when one is configured.
fn generic_answer(answer: &Answer, id_pointer: Option<&str>) -> Outcome {
    if (200..300).contains(&answer.status) {
        let id = id_pointer.and_then(|p| {
            let v: Value = serde_json::from_str(&answer.text).ok()?;
            let found = v.pointer(p)?;
            Some(
                found
                    .as_str()
                    .map_or_else(|| found.to_string(), str::to_owned),
            )
        });
        return Outcome::Delivered {
            provider_id: id,
            code: Some(answer.status.to_string()),
        };
    }
    http_failure(answer.status, &answer.text, answer.retry)
}

/// One configured provider, ready to send.
pub struct Provider {
    pub config: SmsProvider,
    client: reqwest::Client,
    /// REST-IT login sessions: (user_key, session_key), renewed on a 401.
    session: Mutex<Option<(String, String, Instant)>>,
    /// Where Twilio posts status callbacks.
    callback_base: String,
}

impl Provider {
    pub fn new(config: SmsProvider, public_base_url: &str) -> Result<Provider, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_s))
            .connect_timeout(Duration::from_secs(config.timeout_s.min(10)))
            .pool_max_idle_per_host(config.concurrency as usize)
            .user_agent(concat!("messo/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Provider {
            callback_base: format!("{public_base_url}/webhooks/dlr/{}", config.name),
            config,
            client,
            session: Mutex::new(None),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Whether a message's fate can be asked of the provider by our order id.
    pub fn can_query(&self) -> bool {
        matches!(self.config.kind, ProviderKind::RestIt { .. })
    }

    async fn rest_it_headers(
        &self,
        force_login: bool,
    ) -> Result<(String, String, &'static str), Outcome> {
        let ProviderKind::RestIt { auth, .. } = &self.config.kind else {
            return Err(Outcome::permanent("not a rest-it provider"));
        };
        match auth {
            RestItAuth::Token {
                user_key,
                access_token,
            } => Ok((user_key.clone(), access_token.clone(), "Access_token")),
            RestItAuth::Login { username, password } => {
                if !force_login
                    && let Some((u, s, _)) = self
                        .session
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .clone()
                {
                    return Ok((u, s, "Session_key"));
                }
                let resp = self
                    .client
                    .get(format!("{}/login", self.config.base_url))
                    .query(&[("username", username), ("password", password)])
                    .send()
                    .await
                    .map_err(|e| {
                        Outcome::transient_down(format!("login: {}", root_cause(&e)), None)
                    })?;
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap_or_default();
                if status != 200 {
                    return Err(Outcome::transient_down(
                        format!("login refused ({status}): {}", snippet(&body)),
                        Some(status.to_string()),
                    ));
                }
                let Some((u, s)) = body.trim().split_once(';') else {
                    return Err(Outcome::transient_down(
                        format!("login answer not understood: {}", snippet(&body)),
                        None,
                    ));
                };
                let (u, s) = (u.to_owned(), s.to_owned());
                *self
                    .session
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((u.clone(), s.clone(), Instant::now()));
                Ok((u, s, "Session_key"))
            }
        }
    }

    /// Sends one SMS. `to` is E.164; `sender` is the alias or number.
    #[tracing::instrument(
        name = "sms_provider",
        level = "debug",
        skip_all,
        fields(provider = %self.name(), outbox_id = msg.outbox_id, to = %crate::redact::mask(to))
    )]
    pub async fn send(
        &self,
        msg: &OutMessage,
        to: &str,
        text: &str,
        sender: &str,
        max_fragments: u32,
    ) -> Outcome {
        match &self.config.kind {
            ProviderKind::RestIt { message_type, .. } => {
                let body = rest_it_request(msg, to, text, sender, max_fragments, message_type);
                self.send_rest_it(msg, &body).await
            }
            ProviderKind::Twilio {
                account_sid,
                auth_token,
                messaging_service_sid,
            } => {
                let service = messaging_service_sid.as_deref();
                let form = self.twilio_form(msg, to, text, sender, service);
                let req = self
                    .client
                    .post(format!(
                        "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
                        self.config.base_url
                    ))
                    .basic_auth(account_sid, Some(auth_token))
                    .form(&form);
                match exchange(req).await {
                    Ok(answer) => twilio_answer(&answer),
                    Err(o) => o,
                }
            }
            ProviderKind::Generic {
                headers,
                body,
                id_pointer,
            } => {
                let filled = fill_template(body, to, text, &msg.order_id(), sender);
                let mut req = self
                    .client
                    .post(&self.config.base_url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(filled);
                for (k, v) in headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                match exchange(req).await {
                    Ok(answer) => generic_answer(&answer, id_pointer.as_deref()),
                    Err(o) => o,
                }
            }
        }
    }

    /// Posts a REST-IT request, logging in again once when the session has expired.
    async fn send_rest_it(&self, msg: &OutMessage, body: &Value) -> Outcome {
        let mut relogged = false;
        loop {
            let (user_key, key, header) = match self.rest_it_headers(relogged).await {
                Ok(h) => h,
                Err(o) => return o,
            };
            let req = self
                .client
                .post(format!("{}/sms", self.config.base_url))
                .header("user_key", user_key)
                .header(header, key)
                .json(body);
            let answer = match exchange(req).await {
                Ok(a) => a,
                Err(o) => return o,
            };
            if answer.status == 401 && header == "Session_key" && !relogged {
                // The session expired: log in again once.
                relogged = true;
                continue;
            }
            return rest_it_answer(&answer, &msg.order_id());
        }
    }

    /// Twilio's form: the message, where to post its status, and who sends it (the messaging
    /// service when one is configured, else `sender`).
    fn twilio_form(
        &self,
        msg: &OutMessage,
        to: &str,
        text: &str,
        sender: &str,
        messaging_service_sid: Option<&str>,
    ) -> Vec<(&'static str, String)> {
        let mut form: Vec<(&str, String)> = vec![
            ("To", to.to_owned()),
            ("Body", text.to_owned()),
            (
                "StatusCallback",
                format!("{}?order_id={}", self.callback_base, msg.order_id()),
            ),
        ];
        match messaging_service_sid {
            Some(s) => form.push(("MessagingServiceSid", s.to_owned())),
            None => form.push(("From", sender.to_owned())),
        }
        form
    }

    /// Asks the provider what became of our order id: `Ok(None)` when it never got it.
    #[tracing::instrument(
        name = "sms_query",
        level = "debug",
        skip_all,
        fields(provider = %self.name(), outbox_id = msg.outbox_id)
    )]
    pub async fn query(&self, msg: &OutMessage) -> Result<Option<Outcome>, Outcome> {
        if !self.can_query() {
            return Err(Outcome::permanent(
                "this provider cannot be asked about a message",
            ));
        }
        let (user_key, key, header) = self.rest_it_headers(false).await?;
        let resp = self
            .client
            .get(format!("{}/sms/{}", self.config.base_url, msg.order_id()))
            .header("user_key", user_key)
            .header(header, key)
            .send()
            .await
            .map_err(|e| {
                Outcome::transient_down(format!("status query: {}", root_cause(&e)), None)
            })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        match status {
            404 => Ok(None),
            200 => {
                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let s = v["recipients"][0]["status"].as_str().unwrap_or("");
                match rest_it_status(s) {
                    Some(Outcome::Delivered { code, .. }) => Ok(Some(Outcome::Delivered {
                        provider_id: Some(msg.order_id()),
                        code,
                    })),
                    Some(o) => Ok(Some(o)),
                    None => Err(Outcome::transient_down(
                        format!("status query answer not understood: {}", snippet(&text)),
                        None,
                    )),
                }
            }
            _ => Err(http_failure(status, &text, None)),
        }
    }
}

/// A provider with its circuit breaker, rate limit and concurrency bound.
pub struct Guarded {
    pub provider: Provider,
    breaker: Mutex<super::Breaker>,
    limiter: Option<governor::DefaultDirectRateLimiter>,
    slots: tokio::sync::Semaphore,
}

/// The SMS channel: the providers in order (primary first), failing over by health.
pub struct SmsChannel {
    providers: Vec<Guarded>,
    sender: String,
    /// Where replies go, per language (a template partial), when the sender is an alias.
    reply_lines: std::collections::BTreeMap<crate::domain::Lang, String>,
    max_fragments: u32,
    resend_uncertain: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SmsChannel {
    pub fn new(
        sms: &crate::config::Sms,
        policy: &crate::config::Delivery,
        public_base_url: &str,
    ) -> Result<SmsChannel, reqwest::Error> {
        let mut providers = Vec::new();
        for p in &sms.providers {
            providers.push(Guarded {
                breaker: Mutex::new(super::Breaker::new(
                    policy.breaker_failures,
                    Duration::from_secs(policy.breaker_cooldown_s),
                )),
                limiter: std::num::NonZeroU32::new(p.rate_per_s)
                    .map(|r| governor::RateLimiter::direct(governor::Quota::per_second(r))),
                slots: tokio::sync::Semaphore::new(p.concurrency as usize),
                provider: Provider::new(p.clone(), public_base_url)?,
            });
        }
        Ok(SmsChannel {
            providers,
            sender: sms.sender.clone(),
            reply_lines: match &sms.reply_number {
                Some(r) if sms.sender.chars().any(|c| c.is_ascii_alphabetic()) => {
                    crate::templates::sms_reply_lines(r)
                }
                _ => Default::default(),
            },
            max_fragments: sms.max_fragments,
            resend_uncertain: sms.resend_uncertain,
        })
    }

    /// Whether an unknown outcome can be settled: by asking a provider, or by resending.
    pub fn doubt_policy(&self) -> super::DoubtPolicy {
        if self.resend_uncertain || self.providers.iter().any(|g| g.provider.can_query()) {
            super::DoubtPolicy::Resend
        } else {
            super::DoubtPolicy::Hold
        }
    }

    pub fn concurrency(&self) -> usize {
        self.providers
            .iter()
            .map(|g| g.provider.config.concurrency as usize)
            .max()
            .unwrap_or(1)
    }

    /// The text as it goes on the air: plain punctuation (accented letters are kept, so the
    /// meaning is too), with where to reply (in the message's language, from the template
    /// partial) when the sender is an alias, and cut to the configured number of parts. The
    /// reply line is kept whole when the text is cut.
    pub fn text_of(&self, text: &str, lang: crate::domain::Lang) -> String {
        let body = plain_punctuation(text.trim());
        let suffix = self
            .reply_lines
            .get(&lang)
            .map(|l| format!(" {}", plain_punctuation(l)))
            .unwrap_or_default();
        cut_to_parts(&body, &suffix, self.max_fragments)
    }
}

impl super::Channel for SmsChannel {
    fn name(&self) -> &str {
        "sms"
    }

    fn concurrency(&self) -> usize {
        SmsChannel::concurrency(self)
    }

    fn doubt_policy(&self) -> super::DoubtPolicy {
        SmsChannel::doubt_policy(self)
    }

    /// The provider is asked by order id what became of a message in doubt.
    fn checks_in_doubt(&self) -> bool {
        true
    }

    fn ready(&self, now: Instant) -> bool {
        self.providers.iter().any(|g| lock(&g.breaker).ready(now))
    }

    fn send<'a>(&'a self, msg: &'a OutMessage, in_doubt: bool) -> super::Sending<'a> {
        let span = tracing::debug_span!(
            "sms",
            outbox_id = msg.outbox_id,
            to = %crate::redact::mask(msg.address.as_str()),
            in_doubt = in_doubt
        );
        Box::pin(tracing::Instrument::instrument(
            async move {
                let started = Instant::now();
                let started_ms = chrono::Utc::now().timestamp_millis();
                let to = match normalize_number(msg.address.as_str(), true) {
                    Ok(n) => n,
                    Err(e) => {
                        return super::Sent::one(
                            "sms",
                            Outcome::Permanent {
                                reason: format!(
                                    "{}: {e}",
                                    crate::redact::mask(msg.address.as_str())
                                ),
                                code: None,
                            },
                            started,
                            started_ms,
                        );
                    }
                };
                if in_doubt && let Some(settled) = self.settle_doubt(msg, started, started_ms).await
                {
                    return settled;
                }
                let text = self.text_of(&msg.text, msg.language);
                super::Sent {
                    attempts: self.send_failing_over(msg, &to, &text).await,
                    resent: in_doubt && !self.any_can_query(),
                }
            },
            span,
        ))
    }
}

impl SmsChannel {
    /// Whether some provider can be asked what became of a message.
    fn any_can_query(&self) -> bool {
        self.providers.iter().any(|g| g.provider.can_query())
    }

    /// For a message whose earlier attempt may have gone through, before it is sent again: the
    /// answer of the first provider that knows the message (or could not be asked); when no
    /// provider can be asked and resending is not allowed, an uncertain outcome. `None`: send.
    async fn settle_doubt(
        &self,
        msg: &OutMessage,
        started: Instant,
        started_ms: i64,
    ) -> Option<super::Sent> {
        for g in self.providers.iter().filter(|g| g.provider.can_query()) {
            let t0 = Instant::now();
            let t0_ms = chrono::Utc::now().timestamp_millis();
            match g.provider.query(msg).await {
                Ok(None) => continue,
                Ok(Some(o)) | Err(o) => {
                    return Some(super::Sent {
                        attempts: vec![super::Attempt {
                            provider: format!("{}:query", g.provider.name()),
                            outcome: o,
                            started_at_ms: t0_ms,
                            latency_ms: t0.elapsed().as_millis() as i64,
                        }],
                        resent: false,
                    });
                }
            }
        }
        if !self.resend_uncertain && !self.any_can_query() {
            return Some(super::Sent::one(
                "sms",
                Outcome::Uncertain {
                    reason: "an earlier attempt may have been sent and no provider can be asked"
                        .to_owned(),
                },
                started,
                started_ms,
            ));
        }
        None
    }

    /// Sends through the providers in order: a provider whose breaker is open is skipped, and a
    /// transient failure fails over to the next one (the last one's stands).
    async fn send_failing_over(
        &self,
        msg: &OutMessage,
        to: &str,
        text: &str,
    ) -> Vec<super::Attempt> {
        let mut attempts = Vec::new();
        let last = self.providers.len().saturating_sub(1);
        for (i, g) in self.providers.iter().enumerate() {
            let Some(attempt) = self.attempt(g, msg, to, text).await else {
                continue;
            };
            let fail_over = i < last && matches!(attempt.outcome, Outcome::Transient { .. });
            attempts.push(attempt);
            if !fail_over {
                break;
            }
        }
        attempts
    }

    /// One attempt through `g`, within its breaker, concurrency bound and rate; `None` when it
    /// cannot take the message now.
    async fn attempt(
        &self,
        g: &Guarded,
        msg: &OutMessage,
        to: &str,
        text: &str,
    ) -> Option<super::Attempt> {
        if !lock(&g.breaker).acquire(Instant::now()) {
            return None;
        }
        let Ok(_slot) = g.slots.acquire().await else {
            lock(&g.breaker).release();
            return None;
        };
        if let Some(l) = &g.limiter {
            l.until_ready().await;
        }
        let t0 = Instant::now();
        let t0_ms = chrono::Utc::now().timestamp_millis();
        let outcome = g
            .provider
            .send(msg, to, text, &self.sender, self.max_fragments)
            .await;
        record(&g.breaker, &outcome);
        Some(super::Attempt {
            provider: g.provider.name().to_owned(),
            outcome,
            started_at_ms: t0_ms,
            latency_ms: t0.elapsed().as_millis() as i64,
        })
    }
}

/// Tells a provider's breaker how an attempt went; a rate limit with a `Retry-After` pauses it
/// for that long.
fn record(breaker: &Mutex<super::Breaker>, outcome: &Outcome) {
    lock(breaker).observe(outcome, Instant::now());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn italian_numbers_normalise_and_landlines_are_refused() {
        for (input, want) in [
            ("347 123 4567", "+393471234567"),
            ("+39 347 1234567", "+393471234567"),
            ("0039 347-123-4567", "+393471234567"),
            ("(347) 123.4567", "+393471234567"),
            ("+33 6 12 34 56 78", "+33612345678"),
        ] {
            assert_eq!(
                normalize_number(input, true).as_deref(),
                Ok(want),
                "{input}"
            );
        }
        assert!(normalize_number("347 12", true).is_err());
        assert_eq!(
            normalize_number("06 67101234", true),
            Err(NumberError::Landline)
        );
        assert_eq!(
            normalize_number("06 67101234", false).as_deref(),
            Ok("+390667101234")
        );
        assert_eq!(normalize_number("ciao", true), Err(NumberError::Unparsable));
    }

    #[test]
    fn rest_it_gets_the_providers_encoding_names() {
        let gsm = budget("Richiesta 2026/123 ricevuta: è già in carico.");
        assert_eq!((gsm.encoding, gsm.parts), (Encoding::Gsm7, 1));
        assert_eq!(rest_it_encoding(gsm.encoding), "gsm");
        let ucs2 = budget("«ciao»");
        assert_eq!((ucs2.encoding, ucs2.parts), (Encoding::Ucs2, 1));
        assert_eq!(rest_it_encoding(ucs2.encoding), "ucs2");
    }

    #[test]
    fn punctuation_is_made_plain_but_accented_capitals_are_kept() {
        let plain = plain_punctuation("«Richiesta» — è tutto…");
        assert_eq!(plain, "\"Richiesta\" - è tutto...");
        assert_eq!(budget(&plain).encoding, Encoding::Gsm7);
        // "È" (is) must not become "E" (and): the text stays in UCS-2 instead.
        assert_eq!(plain_punctuation("«x» — È…"), "\"x\" - È...");
        assert_eq!(budget("\"x\" - È...").encoding, Encoding::Ucs2);
    }

    #[test]
    fn long_texts_are_cut_to_fit_and_keep_the_reply_line() {
        let reply = " Risposte al +393470000000";
        assert_eq!(reply.chars().count(), 26);
        assert_eq!(cut_to_parts("Breve.", reply, 1), format!("Breve.{reply}"));
        // One GSM part: 160 - 26 - 3 septets are left for the text.
        let a = "a".repeat(400);
        assert_eq!(
            cut_to_parts(&a, reply, 1),
            format!("{}...{reply}", "a".repeat(131))
        );
        // Two GSM parts hold 306 septets.
        assert_eq!(
            cut_to_parts(&a, reply, 2),
            format!("{}...{reply}", "a".repeat(277))
        );
        // No sensible limit below one part.
        assert_eq!(cut_to_parts(&a, "", 0), format!("{}...", "a".repeat(157)));
        // A capital È keeps the text in UCS-2: 70 - 26 - 3 units are left.
        let e = format!("È{}", "a".repeat(100));
        assert_eq!(
            cut_to_parts(&e, reply, 1),
            format!("È{}...{reply}", "a".repeat(40))
        );
        // A cut never leaves a space before the dots.
        let spaced = format!("{} {}", "x".repeat(156), "y".repeat(50));
        assert_eq!(
            cut_to_parts(&spaced, "", 1),
            format!("{}...", "x".repeat(156))
        );
        // A reply line too long for the limit is cut with the rest.
        let long_reply = format!(" {}", "r".repeat(200));
        let cut = cut_to_parts("testo", &long_reply, 1);
        assert_eq!(budget(&cut).parts, 1);
        assert!(cut.starts_with("testo r") && cut.ends_with("..."), "{cut}");
    }

    #[test]
    fn templates_escape_values() {
        let t = r#"{"to":"{{to}}","text":"{{text}}","ref":"{{order_id}}","from":"{{sender}}"}"#;
        let filled = fill_template(t, "+39347", "a \"quoted\"\nline", "42", "URP");
        let v: Value = serde_json::from_str(&filled).expect("valid JSON");
        assert_eq!(v["text"], "a \"quoted\"\nline");
        assert_eq!(v["ref"], "42");
    }

    fn answer(status: u16, text: &str) -> Answer {
        Answer {
            status,
            retry: None,
            text: text.to_owned(),
        }
    }

    #[test]
    fn answers_map_to_outcomes_per_family() {
        // REST-IT: the provider's id, else ours; a result other than OK is final; a 400 naming
        // a recipient status takes that status's outcome.
        assert_eq!(
            rest_it_answer(
                &answer(201, r#"{"result":"OK","order_id":"p-1"}"#),
                "messo-7"
            ),
            Outcome::Delivered {
                provider_id: Some("p-1".to_owned()),
                code: Some("201".to_owned())
            }
        );
        assert!(matches!(
            rest_it_answer(&answer(200, "not json"), "messo-7"),
            Outcome::Delivered { provider_id: Some(id), .. } if id == "messo-7"
        ));
        assert!(matches!(
            rest_it_answer(&answer(200, r#"{"result":"KO"}"#), "messo-7"),
            Outcome::Permanent { .. }
        ));
        assert_eq!(
            rest_it_answer(&answer(400, "error: BLACKLISTED"), "messo-7"),
            rest_it_status("BLACKLISTED").expect("known status")
        );
        // Twilio: its sid; a 400 is final with Twilio's own code.
        assert!(matches!(
            twilio_answer(&answer(201, r#"{"sid":"SM1"}"#)),
            Outcome::Delivered { provider_id: Some(id), .. } if id == "SM1"
        ));
        assert_eq!(
            twilio_answer(&answer(400, r#"{"code":21211,"message":"bad To"}"#)),
            Outcome::Permanent {
                reason: "refused (21211): bad To".to_owned(),
                code: Some("21211".to_owned())
            }
        );
        // Generic: the id where the pointer says, as text even when it is a number.
        assert!(matches!(
            generic_answer(&answer(200, r#"{"data":{"id":42}}"#), Some("/data/id")),
            Outcome::Delivered { provider_id: Some(id), .. } if id == "42"
        ));
        assert!(matches!(
            generic_answer(&answer(200, "{}"), None),
            Outcome::Delivered {
                provider_id: None,
                ..
            }
        ));
        // Every family: a rate limit waits at least a minute without a Retry-After.
        for o in [
            rest_it_answer(&answer(429, ""), "messo-7"),
            twilio_answer(&answer(429, "")),
            generic_answer(&answer(429, ""), None),
        ] {
            assert!(matches!(
                o,
                Outcome::Transient {
                    retry_after: Some(d),
                    provider_down: false,
                    ..
                } if d == Duration::from_secs(60)
            ));
        }
    }

    #[test]
    fn rest_it_statuses_map_to_outcomes() {
        assert!(matches!(
            rest_it_status("DLVRD"),
            Some(Outcome::Delivered { .. })
        ));
        assert!(matches!(
            rest_it_status("TOOM4NUM"),
            Some(Outcome::Transient {
                retry_after: Some(_),
                ..
            })
        ));
        assert!(matches!(
            rest_it_status("BLACKLISTED"),
            Some(Outcome::Permanent { .. })
        ));
        assert!(matches!(
            rest_it_status("INVALIDDST"),
            Some(Outcome::Permanent { .. })
        ));
        assert_eq!(rest_it_status("SOMETHING"), None);
    }
}
