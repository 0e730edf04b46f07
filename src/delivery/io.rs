//! The app IO (PagoPA's public services app) as a channel, over the IO Services API with the
//! service's subscription key (`Ocp-Apim-Subscription-Key`).
//!
//! A message goes in two requests:
//! 1. **Profile check**, `POST {base}/profiles` with `{"fiscal_code": …}`: 200 with
//!    `sender_allowed: true` lets it through; `sender_allowed: false` (the citizen turned this
//!    service off in the app) and 404 (no IO profile) refuse it for good, so the fallback chain
//!    takes the citizen's written route. The answer is kept `profile_cache_s` in memory (a
//!    bounded map), so a burst of notices to one citizen asks once.
//! 2. **Submit**, `POST {base}/messages` with the fiscal code in the body, `content.subject`
//!    (10–120 characters), `content.markdown` (80–10,000), `content.due_date` for a notice with
//!    a reply-by date, `time_to_live` and `feature_level_type`. 201 gives the message id (or a
//!    `Location` naming it): the attempt is *delivered* to IO, and the status pass
//!    ([`check_messages`]) reads it back (`GET {base}/messages/{fiscal_code}/{id}`) until IO
//!    says `PROCESSED` (in the citizen's inbox) or `REJECTED`/`FAILED` (dead: the written route
//!    is owed instead).
//!
//! Submit has no idempotency key and IO cannot be asked "did you get my message?" without the
//! id its answer carried. So an answer lost after the request went out is **uncertain**: the
//! row is held and the office told, never sent twice. Answers are mapped:
//!
//! | answer | outcome |
//! |---|---|
//! | 201 | delivered (the id kept as the provider's id) |
//! | 400 | permanent: IO refused the payload (the gate should have caught it) |
//! | 401 | transient, provider down: our key is refused (every message would be) |
//! | 403 | permanent: this service may not write to this citizen |
//! | 404 (profile) | permanent: the citizen has no IO profile |
//! | 429 | transient, after `Retry-After` (every message waits) |
//! | 500 | uncertain: IO may have stored the message before failing |
//! | 502/503 | transient, provider down (the gateway did not pass it on) |
//! | 504, timeout or lost answer after sending | uncertain |
//! | no connection | transient, provider down |

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::sms::{retry_after, transport_error};
use super::{Breaker, Channel, DoubtPolicy, OutMessage, Outcome, Sending, Sent};
use crate::config::{Config, Io};
use crate::domain::{Address, FiscalCode, Kind};
use crate::redact::mask;
use crate::store::{Receipt, Store, StoreError};
use crate::time::Timestamp;

/// The documented limits of a message's content.
pub const SUBJECT_CHARS: std::ops::RangeInclusive<usize> = 10..=120;
pub const MARKDOWN_CHARS: std::ops::RangeInclusive<usize> = 80..=10_000;
/// The most of an answer read: IO's answers are small JSON documents.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Profile answers kept in memory at most (the map is emptied when full).
const MAX_PROFILES: usize = 100_000;

/// What IO says of a citizen for our service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// In IO, and this service may write.
    Allowed,
    /// In IO, but the citizen turned this service off.
    TurnedOff,
    /// Not in IO.
    Missing,
}

/// Why the channel cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum IoSetupError {
    #[error("io: HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("io.api_key: {0}")]
    Key(String),
}

/// A client of the IO Services API.
pub struct IoClient {
    config: Io,
    client: reqwest::Client,
    profiles: Mutex<HashMap<String, (Profile, Instant)>>,
}

/// A message's state as IO tells it when read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageState {
    /// `ACCEPTED`, `THROTTLED`, `PROCESSED`, `REJECTED`, `FAILED`.
    pub status: Option<String>,
    /// `READ`, `UNREAD`, `UNAVAILABLE` (ADVANCED messages only).
    pub read_status: Option<String>,
}

impl IoClient {
    pub fn new(config: &Io) -> Result<IoClient, IoSetupError> {
        crate::install_crypto();
        reqwest::header::HeaderValue::from_str(&config.api_key)
            .map_err(|_| IoSetupError::Key("is not a valid header value".to_owned()))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(u64::from(config.timeout_s)))
            .connect_timeout(Duration::from_secs(u64::from(config.connect_timeout_s)))
            .pool_max_idle_per_host(config.concurrency as usize)
            .build()?;
        Ok(IoClient {
            config: config.clone(),
            client,
            profiles: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &Io {
        &self.config
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.config.base_url))
            .header("Ocp-Apim-Subscription-Key", &self.config.api_key)
    }

    fn cached_profile(&self, cf: &str, now: Instant) -> Option<Profile> {
        let ttl = Duration::from_secs(u64::from(self.config.profile_cache_s));
        let map = self
            .profiles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(cf)
            .filter(|(_, at)| now.duration_since(*at) < ttl)
            .map(|(p, _)| *p)
    }

    fn keep_profile(&self, cf: &str, profile: Profile, now: Instant) {
        if self.config.profile_cache_s == 0 {
            return;
        }
        let mut map = self
            .profiles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_PROFILES {
            map.clear();
        }
        map.insert(cf.to_owned(), (profile, now));
    }

    /// The citizen's profile for our service. A failure is transient (the check sends nothing,
    /// so even a lost answer leaves no doubt).
    pub async fn profile(&self, cf: &FiscalCode) -> Result<Profile, Outcome> {
        let now = Instant::now();
        if let Some(p) = self.cached_profile(cf.as_str(), now) {
            return Ok(p);
        }
        let answer = exchange(
            self.post("/profiles")
                .json(&json!({"fiscal_code": cf.as_str()})),
        )
        .await
        .map_err(|o| match o {
            Outcome::Uncertain { reason } => {
                Outcome::transient_down(format!("io profile: {reason}"), None)
            }
            other => other,
        })?;
        let profile = classify_profile(answer.status, answer.retry, &answer.body)?;
        self.keep_profile(cf.as_str(), profile, now);
        Ok(profile)
    }

    /// Submits one message (after the profile check allowed it).
    pub async fn submit(&self, cf: &FiscalCode, msg: &OutMessage) -> Outcome {
        let body = match message_body(&self.config, cf, msg) {
            Ok(b) => b,
            Err(why) => return Outcome::permanent(why),
        };
        match exchange(self.post("/messages").json(&body)).await {
            Ok(a) => classify_submit(a.status, a.retry, &a.body, a.location.as_deref()),
            Err(o) => o,
        }
    }

    /// Reads a message back.
    pub async fn message(&self, cf: &str, id: &str) -> Result<MessageState, String> {
        let cf = FiscalCode::parse(cf).map_err(|e| e.to_string())?;
        if id.is_empty()
            || id.len() > 64
            || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err("not an IO message id".to_owned());
        }
        let req = self
            .client
            .get(format!(
                "{}/messages/{}/{id}",
                self.config.base_url,
                cf.as_str()
            ))
            .header("Ocp-Apim-Subscription-Key", &self.config.api_key);
        let a = exchange(req).await.map_err(|o| {
            o.reason()
                .map_or_else(|| "no answer".to_owned(), str::to_owned)
        })?;
        if a.status != 200 {
            return Err(format!("io: read back answered {}", a.status));
        }
        let text = |v: &Value| v.as_str().map(str::to_owned);
        Ok(MessageState {
            status: text(&a.body["status"]),
            read_status: text(&a.body["read_status"]),
        })
    }
}

/// An answer read whole (bounded).
struct Answer {
    status: u16,
    retry: Option<Duration>,
    location: Option<String>,
    body: Value,
}

async fn exchange(req: reqwest::RequestBuilder) -> Result<Answer, Outcome> {
    let mut resp = req.send().await.map_err(|e| transport_error(&e))?;
    let status = resp.status().as_u16();
    let retry = retry_after(&resp);
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(&e))? {
        if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        retry,
        location,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    })
}

/// The ProblemJson's words, for a reason (never the citizen's data: IO's `detail` may name
/// the fiscal code, so digits runs are masked).
fn problem(body: &Value, status: u16) -> String {
    let detail = body["detail"]
        .as_str()
        .or_else(|| body["title"].as_str())
        .map(|s| crate::redact::mask_text(&s.chars().take(200).collect::<String>()))
        .unwrap_or_else(|| format!("HTTP {status}"));
    format!("io: {detail} ({status})")
}

/// What a profile answer means.
pub fn classify_profile(
    status: u16,
    retry: Option<Duration>,
    body: &Value,
) -> Result<Profile, Outcome> {
    match status {
        200 => match body["sender_allowed"].as_bool() {
            Some(true) => Ok(Profile::Allowed),
            Some(false) => Ok(Profile::TurnedOff),
            None => Err(Outcome::transient_down(
                "io profile: the answer has no sender_allowed",
                Some("200".to_owned()),
            )),
        },
        404 => Ok(Profile::Missing),
        429 => Err(Outcome::Transient {
            reason: problem(body, status),
            code: Some("429".to_owned()),
            retry_after: Some(retry.unwrap_or(Duration::from_secs(60))),
            provider_down: false,
        }),
        _ => Err(Outcome::transient_down(
            problem(body, status),
            Some(status.to_string()),
        )),
    }
}

/// What a submit answer means (the table in the module's documentation).
pub fn classify_submit(
    status: u16,
    retry: Option<Duration>,
    body: &Value,
    location: Option<&str>,
) -> Outcome {
    let code = Some(status.to_string());
    match status {
        201 | 200 => {
            let id = body["id"].as_str().map(str::to_owned).or_else(|| {
                location
                    .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            });
            match id {
                Some(id) => Outcome::Delivered {
                    provider_id: Some(id),
                    code,
                },
                // Accepted, but nothing says which message: it cannot be read back, and it is
                // not sent again.
                None => Outcome::Uncertain {
                    reason: "io: accepted without a message id".to_owned(),
                },
            }
        }
        400 | 403 | 404 => Outcome::Permanent {
            reason: problem(body, status),
            code,
        },
        429 => Outcome::Transient {
            reason: problem(body, status),
            code,
            retry_after: Some(retry.unwrap_or(Duration::from_secs(60))),
            provider_down: false,
        },
        401 | 502 | 503 => {
            let mut o = Outcome::transient_down(problem(body, status), code);
            if let Outcome::Transient { retry_after, .. } = &mut o {
                *retry_after = retry;
            }
            o
        }
        500 | 504 => Outcome::Uncertain {
            reason: format!("{}: IO may have stored it", problem(body, status)),
        },
        _ if status >= 500 => Outcome::Uncertain {
            reason: problem(body, status),
        },
        _ => Outcome::Permanent {
            reason: problem(body, status),
            code,
        },
    }
}

/// An instant as IO's timestamps: UTC, milliseconds, `Z`.
pub fn io_timestamp(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp(t.0, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The JSON of a submit, or why the message cannot go (its words outside IO's limits).
pub fn message_body(config: &Io, cf: &FiscalCode, msg: &OutMessage) -> Result<Value, String> {
    let subject = msg.subject.trim();
    let markdown = msg.text.trim();
    let n = subject.chars().count();
    if subject.contains(['\n', '\r']) {
        return Err("io: the subject is on more than one line".to_owned());
    }
    if !SUBJECT_CHARS.contains(&n) {
        return Err(format!(
            "io: the subject has {n} characters; IO takes 10–120"
        ));
    }
    let n = markdown.chars().count();
    if !MARKDOWN_CHARS.contains(&n) {
        return Err(format!(
            "io: the text has {n} characters; IO takes 80–10,000"
        ));
    }
    let mut content = json!({"subject": subject, "markdown": markdown});
    if let Some(due) = msg.due_date {
        content["due_date"] = json!(io_timestamp(due));
    }
    Ok(json!({
        "fiscal_code": cf.as_str(),
        "time_to_live": config.time_to_live_s,
        "feature_level_type": config.feature_level.as_str(),
        "content": content,
    }))
}

/// Sends messages to IO.
pub struct IoChannel {
    client: IoClient,
    breaker: Mutex<Breaker>,
}

impl IoChannel {
    pub fn new(config: &Io, delivery: &crate::config::Delivery) -> Result<IoChannel, IoSetupError> {
        Ok(IoChannel {
            client: IoClient::new(config)?,
            breaker: Mutex::new(Breaker::new(
                delivery.breaker_failures,
                Duration::from_secs(delivery.breaker_cooldown_s),
            )),
        })
    }

    async fn deliver(&self, msg: &OutMessage) -> Vec<(Outcome, &'static str)> {
        let Address::Fiscal(cf) = &msg.address else {
            return vec![(
                Outcome::permanent("io: the address is not a codice fiscale"),
                "io",
            )];
        };
        match self.client.profile(cf).await {
            Ok(Profile::Allowed) => vec![(self.client.submit(cf, msg).await, "io")],
            Ok(Profile::TurnedOff) => vec![(
                Outcome::Permanent {
                    reason: "io: the citizen turned this service off in the app".to_owned(),
                    code: Some("sender_not_allowed".to_owned()),
                },
                "io-profile",
            )],
            Ok(Profile::Missing) => vec![(
                Outcome::Permanent {
                    reason: "io: the citizen has no IO profile".to_owned(),
                    code: Some("profile_not_found".to_owned()),
                },
                "io-profile",
            )],
            Err(o) => vec![(o, "io-profile")],
        }
    }
}

impl Channel for IoChannel {
    fn name(&self) -> &str {
        "io"
    }

    fn concurrency(&self) -> usize {
        self.client.config.concurrency as usize
    }

    fn doubt_policy(&self) -> DoubtPolicy {
        // IO has no idempotency key: a message in doubt is held, never submitted twice.
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
            let allowed = self
                .breaker
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .acquire(started);
            if !allowed {
                return Sent {
                    attempts: Vec::new(),
                    resent: false,
                };
            }
            let results = self.deliver(msg).await;
            let Some((outcome, step)) = results.into_iter().next() else {
                return Sent {
                    attempts: Vec::new(),
                    resent: false,
                };
            };
            self.breaker
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .observe(&outcome, Instant::now());
            tracing::info!(
                outbox_id = msg.outbox_id,
                kind = %msg.kind,
                to = %mask(msg.address.as_str()),
                step,
                outcome = outcome.label(),
                "io message"
            );
            Sent::one(step, outcome, started, started_ms)
        })
    }
}

/// What one status pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IoCheckReport {
    /// Messages read back.
    pub checked: u64,
    /// In the citizen's inbox.
    pub processed: u64,
    /// Refused by IO after acceptance: dead, the written route owed instead.
    pub failed: u64,
    /// Read by the citizen (ADVANCED messages).
    pub read: u64,
    /// Not read in time: the written route owed as well.
    pub unread_copies: u64,
    /// Could not be read back this time.
    pub errors: u64,
}

/// How long after acceptance a message is first read back.
const SETTLE_S: i64 = 30;
/// Messages read back per pass at most.
const PER_PASS: i64 = 500;

/// Reads back the IO messages that need it: accepted ones not yet processed (their end:
/// processed, or refused and replaced by the written route), and notices that matter
/// (`also_written_when_unread`) that are still unread after `unread_after_h` (the written
/// route is owed as well: IO does not replace it). Every finding is a delivery receipt
/// (source `io`), recorded once.
pub async fn check_messages(
    store: &Store,
    client: &IoClient,
    config: &Config,
    now: Timestamp,
) -> Result<IoCheckReport, StoreError> {
    let io = client.config();
    let mut report = IoCheckReport::default();
    let rows = store
        .outbox()
        .io_to_check(
            now,
            SETTLE_S,
            i64::from(io.unread_after_h) * 3600,
            &io.also_written_when_unread,
            PER_PASS,
        )
        .await?;
    if rows.is_empty() {
        return Ok(report);
    }
    let tickets: Vec<i64> = rows.iter().map(|r| r.dead.ticket_id).collect();
    let citizens = store.outbox().citizens(&tickets).await?;
    // What the fallback chain owes for `row` instead of (or beside) the IO message.
    let written = |row: &crate::store::IoCheckRow, error: &str| {
        citizens.get(&row.dead.ticket_id).and_then(|c| {
            messo_core::delivery::fallback::replacement(
                &row.dead,
                error,
                c,
                &config.delivery.fallback,
                &config.notify.office_email,
                false,
                now,
            )
        })
    };
    for row in rows {
        let state = match client.message(&row.address, &row.provider_id).await {
            Ok(s) => s,
            Err(e) => {
                report.errors += 1;
                tracing::warn!(outbox_id = row.id, error = %crate::redact::mask_text(&e), "io: cannot read a message back");
                continue;
            }
        };
        report.checked += 1;
        let status = state.status.as_deref().unwrap_or("");
        let receipt =
            |kind: &'static str, final_state: &'static str, detail: &'static str| Receipt {
                outbox_id: row.id,
                source: "io",
                kind,
                final_state,
                detail,
            };
        if !row.processed {
            match status {
                "PROCESSED" => {
                    store
                        .outbox()
                        .record_receipt(
                            &receipt("processed", "delivered", "in the citizen's IO inbox"),
                            None,
                            now,
                        )
                        .await?;
                    report.processed += 1;
                }
                "REJECTED" | "FAILED" => {
                    let error = format!("io: the message was {}", status.to_lowercase());
                    let replacement = written(&row, &error);
                    let kind = if status == "REJECTED" {
                        "rejected"
                    } else {
                        "failed"
                    };
                    store
                        .outbox()
                        .record_receipt(
                            &receipt(kind, "failed", "refused by IO after acceptance"),
                            Some((&error, replacement.as_ref())),
                            now,
                        )
                        .await?;
                    report.failed += 1;
                }
                // ACCEPTED, THROTTLED: IO is still on it.
                _ => {}
            }
            continue;
        }
        // Processed, a notice that matters, and its time to be read has passed.
        if state.read_status.as_deref() == Some("READ") {
            store
                .outbox()
                .record_receipt(&receipt("read", "delivered", "read in IO"), None, now)
                .await?;
            report.read += 1;
            continue;
        }
        let error = format!("io: not read within {} hours", io.unread_after_h);
        let copy = written(&row, &error);
        // The copy goes by the written route only (never the office's "unreachable" alert:
        // the citizen was reached, in IO).
        let copy = copy.filter(|c| c.recipient == crate::domain::Recipient::Citizen);
        let new = store
            .outbox()
            .record_receipt_with_copy(
                &receipt("unread", "delivered", "not read in IO in time"),
                copy.as_ref(),
                now,
            )
            .await?;
        if new && copy.is_some() {
            report.unread_copies += 1;
        }
    }
    Ok(report)
}

/// The kinds IO carries, for the console.
pub fn carries(kind: Kind, config: &Io) -> bool {
    config.kinds.contains(&kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submit_answers_map_as_documented() {
        let id = |o: Outcome| match o {
            Outcome::Delivered { provider_id, .. } => provider_id,
            _ => None,
        };
        let ok = classify_submit(
            201,
            None,
            &json!({"id": "01BX9NSMKVXXS5PSP2FATZMYYY"}),
            None,
        );
        assert_eq!(id(ok).as_deref(), Some("01BX9NSMKVXXS5PSP2FATZMYYY"));
        let by_location = classify_submit(
            201,
            None,
            &Value::Null,
            Some("https://api.io.pagopa.it/api/v1/messages/RSSMRA85T10A562S/01ABC"),
        );
        assert_eq!(id(by_location).as_deref(), Some("01ABC"));
        assert!(matches!(
            classify_submit(201, None, &Value::Null, None),
            Outcome::Uncertain { .. }
        ));
        for s in [400, 403] {
            assert!(matches!(
                classify_submit(s, None, &json!({"detail": "x"}), None),
                Outcome::Permanent { .. }
            ));
        }
        assert!(matches!(
            classify_submit(401, None, &Value::Null, None),
            Outcome::Transient {
                provider_down: true,
                ..
            }
        ));
        assert!(matches!(
            classify_submit(429, Some(Duration::from_secs(7)), &Value::Null, None),
            Outcome::Transient { retry_after: Some(d), provider_down: false, .. } if d == Duration::from_secs(7)
        ));
        for s in [500, 504] {
            assert!(matches!(
                classify_submit(s, None, &Value::Null, None),
                Outcome::Uncertain { .. }
            ));
        }
        for s in [502, 503] {
            assert!(matches!(
                classify_submit(s, None, &Value::Null, None),
                Outcome::Transient {
                    provider_down: true,
                    ..
                }
            ));
        }
    }

    #[test]
    fn profile_answers_map_as_documented() {
        assert_eq!(
            classify_profile(200, None, &json!({"sender_allowed": true})),
            Ok(Profile::Allowed)
        );
        assert_eq!(
            classify_profile(200, None, &json!({"sender_allowed": false})),
            Ok(Profile::TurnedOff)
        );
        assert_eq!(
            classify_profile(404, None, &Value::Null),
            Ok(Profile::Missing)
        );
        assert!(classify_profile(429, None, &Value::Null).is_err());
        assert!(classify_profile(200, None, &json!({})).is_err());
    }

    #[test]
    fn problem_details_are_masked() {
        let p = problem(
            &json!({"detail": "no profile for RSSMRA85T10A562S, mobile 3471234567"}),
            404,
        );
        assert!(!p.contains("3471234567"), "{p}");
        assert!(p.contains("(404)"));
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        assert_eq!(
            io_timestamp(Timestamp(1_790_000_000)),
            "2026-09-21T14:13:20.000Z"
        );
    }
}
