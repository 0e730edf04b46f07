//! The delivery sections: `[smtp]`, `[pec]`, `[sms]` with its providers, and `[delivery]`
//! (retries, circuit breaker, fallback chain).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::Problems;

// ---------------------------------------------------------------------------------------------
// As written.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmtp {
    host: Option<String>,
    port: Option<i64>,
    security: Option<String>,
    username: Option<String>,
    password: Option<String>,
    ca_bundle: Option<String>,
    hello_name: Option<String>,
    timeout_s: Option<i64>,
    pool_size: Option<i64>,
    idle_timeout_s: Option<i64>,
    rate_per_s: Option<i64>,
    resend_uncertain: Option<bool>,
    /// `[pec]` only: the certified address messages are sent from.
    sender: Option<String>,
    /// `[smtp]` only: DKIM signing of outgoing mail.
    dkim: Option<RawDkim>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDkim {
    domain: Option<String>,
    selector: Option<String>,
    algorithm: Option<String>,
    /// The PEM private key; in practice from `MESSO_SMTP__DKIM__PRIVATE_KEY_FILE`.
    private_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSms {
    sender: Option<String>,
    reply_number: Option<String>,
    max_fragments: Option<i64>,
    resend_uncertain: Option<bool>,
    #[serde(default)]
    providers: Vec<RawProvider>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    name: Option<String>,
    kind: Option<String>,
    base_url: Option<String>,
    timeout_s: Option<i64>,
    rate_per_s: Option<i64>,
    concurrency: Option<i64>,
    // rest-it
    user_key: Option<String>,
    access_token: Option<String>,
    username: Option<String>,
    password: Option<String>,
    message_type: Option<String>,
    // twilio
    account_sid: Option<String>,
    auth_token: Option<String>,
    messaging_service_sid: Option<String>,
    // generic
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    id_pointer: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    max_age_hours: Option<i64>,
    backoff_base_s: Option<i64>,
    backoff_max_s: Option<i64>,
    breaker_failures: Option<i64>,
    breaker_cooldown_s: Option<i64>,
    fallback: Option<Vec<String>>,
    lease_s: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// As used.

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// STARTTLS, refusing to go on without it (usually port 587).
    StartTls,
    /// STARTTLS when offered, plain otherwise (a relay on a trusted network only).
    StartTlsOpportunistic,
    /// No TLS (a local relay).
    Plain,
}

/// An SMTP account: `[smtp]` for ordinary e-mail, `[pec]` for certified e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpAccount {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<String>,
    /// A PEM file of extra trusted roots (a private CA), besides the system's.
    pub ca_bundle: Option<PathBuf>,
    pub hello_name: Option<String>,
    pub timeout_s: u64,
    pub pool_size: u32,
    pub idle_timeout_s: u64,
    /// Messages per second at most (0: no limit).
    pub rate_per_s: u32,
    /// A message whose outcome is unknown (a timeout after DATA, a crash mid-send) is sent
    /// again with the same Message-ID, which lets the recipient's client show it once.
    pub resend_uncertain: bool,
    /// The From address (the PEC mailbox for `[pec]`; `notify.sender_email` for `[smtp]`).
    pub sender: Option<String>,
    /// `[smtp.dkim]`: sign every message sent through this account (never set for `[pec]`,
    /// whose provider signs the certified envelope itself).
    pub dkim: Option<Dkim>,
}

/// The DKIM signing algorithm (RFC 6376, RFC 8463).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimAlgorithm {
    RsaSha256,
    Ed25519Sha256,
}

/// `[smtp.dkim]`: how outgoing mail is signed. The key is checked (parsed, long enough) where
/// the signer is built, so `check-config` and the daemon's start refuse a bad one by key path.
#[derive(Clone, PartialEq, Eq)]
pub struct Dkim {
    /// The signing domain (`d=`), normally the sender address's domain.
    pub domain: String,
    /// The selector (`s=`): the key is published at `<selector>._domainkey.<domain>`.
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// The private key in PEM (PKCS#1 or PKCS#8).
    pub private_key: String,
}

impl std::fmt::Debug for Dkim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dkim")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("private_key", &"<hidden>")
            .finish()
    }
}

/// Which API an SMS provider speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderKind {
    /// The Italian REST family (Skebby, Aruba, Trendoo, Mobyt, smsend): `…/API/v1.0/REST/sms`.
    RestIt {
        auth: RestItAuth,
        message_type: String,
    },
    /// Twilio's Messages API.
    Twilio {
        account_sid: String,
        auth_token: String,
        messaging_service_sid: Option<String>,
    },
    /// Any JSON API: a body template, headers, and where the message id is in the answer.
    Generic {
        headers: BTreeMap<String, String>,
        body: String,
        id_pointer: Option<String>,
    },
}

/// How the REST-IT family authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestItAuth {
    /// `user_key` and `Access_token` headers, issued once in the provider's panel.
    Token {
        user_key: String,
        access_token: String,
    },
    /// A login with username and password that returns `user_key;session_key`.
    Login { username: String, password: String },
}

/// One SMS provider; the first listed is the primary, the others are backups in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsProvider {
    pub name: String,
    pub kind: ProviderKind,
    /// For rest-it and twilio, the API root; for generic, the URL the body is posted to.
    pub base_url: String,
    pub timeout_s: u64,
    pub rate_per_s: u32,
    pub concurrency: u32,
}

/// The `[sms]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    /// The registered alphanumeric sender (one-way) or a number.
    pub sender: String,
    /// Where citizens can answer, when the sender is an alias.
    pub reply_number: Option<String>,
    pub max_fragments: u32,
    /// Resend an SMS whose outcome is unknown and cannot be asked of the provider (otherwise the
    /// office is told and decides).
    pub resend_uncertain: bool,
    pub providers: Vec<SmsProvider>,
}

pub use messo_core::delivery::RetryPolicy;
pub use messo_core::delivery::fallback::Fallback;

/// The `[delivery]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// A message not delivered this long after it was owed goes dead (and falls back).
    pub max_age_s: i64,
    pub backoff_base_s: i64,
    pub backoff_max_s: i64,
    /// Consecutive provider failures that open the circuit.
    pub breaker_failures: u32,
    /// How long an open circuit waits before one probe.
    pub breaker_cooldown_s: u64,
    pub fallback: Vec<Fallback>,
    /// How long a worker holds a message it is sending before another may take it.
    pub lease_s: i64,
}

impl Delivery {
    /// The retry rules the pure `next_step` reads.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_age_s: self.max_age_s,
            backoff_base_s: self.backoff_base_s,
            backoff_max_s: self.backoff_max_s,
        }
    }
}

impl Default for Delivery {
    fn default() -> Delivery {
        Delivery {
            max_age_s: 48 * 3600,
            backoff_base_s: 30,
            backoff_max_s: 1800,
            breaker_failures: 5,
            breaker_cooldown_s: 30,
            fallback: vec![
                Fallback::Pec,
                Fallback::Sms,
                Fallback::Email,
                Fallback::Office,
            ],
            lease_s: 120,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation.

fn required(p: &mut Problems, key: &str, v: Option<String>) -> String {
    match v {
        Some(s) if !s.trim().is_empty() => s,
        _ => {
            p.add(key, "is required here");
            String::new()
        }
    }
}

fn url(p: &mut Problems, key: &str, v: Option<String>, default: Option<&str>) -> String {
    let v = v.or_else(|| default.map(str::to_owned));
    let v = required(p, key, v);
    if !(v.is_empty() || v.starts_with("https://") || v.starts_with("http://")) {
        // Not repeated: a provider's URL may carry its API key.
        p.add(
            key,
            "expected an http:// or https:// URL (the value is not shown: it may hold a key)",
        );
    }
    v.trim_end_matches('/').to_owned()
}

pub(super) fn smtp(p: &mut Problems, section: &str, raw: RawSmtp) -> SmtpAccount {
    let k = |f: &str| format!("{section}.{f}");
    let security = match raw.security.as_deref().unwrap_or("starttls") {
        "tls" => Security::Tls,
        "starttls" => Security::StartTls,
        "starttls-opportunistic" => Security::StartTlsOpportunistic,
        "plain" => Security::Plain,
        other => {
            p.add(
                k("security"),
                format!(
                    "unknown security {other:?}; expected tls|starttls|starttls-opportunistic|plain"
                ),
            );
            Security::StartTls
        }
    };
    let default_port = match security {
        Security::Tls => 465,
        Security::StartTls | Security::StartTlsOpportunistic => 587,
        Security::Plain => 25,
    };
    let host = required(p, &k("host"), raw.host);
    let port = p.ranged(&k("port"), raw.port, default_port, 1, 65_535) as u16;
    let username = raw.username.filter(|s| !s.is_empty());
    let password = raw.password.filter(|s| !s.is_empty());
    if username.is_some() != password.is_some() {
        p.add(
            k("password"),
            "username and password go together (put the password in MESSO_SMTP__PASSWORD_FILE)",
        );
    }
    let sender = raw.sender.filter(|s| !s.is_empty());
    if let Some(s) = &sender
        && let Some(why) = crate::domain::email::email_problem(s)
    {
        p.add(k("sender"), format!("{s:?} {why}"));
    }
    SmtpAccount {
        host,
        port,
        security,
        username,
        password,
        ca_bundle: raw.ca_bundle.filter(|s| !s.is_empty()).map(PathBuf::from),
        hello_name: raw.hello_name.filter(|s| !s.is_empty()),
        timeout_s: p.ranged(&k("timeout_s"), raw.timeout_s, 30, 1, 600) as u64,
        pool_size: p.ranged(&k("pool_size"), raw.pool_size, 8, 1, 256) as u32,
        idle_timeout_s: p.ranged(&k("idle_timeout_s"), raw.idle_timeout_s, 50, 1, 3600) as u64,
        rate_per_s: p.ranged(&k("rate_per_s"), raw.rate_per_s, 0, 0, 100_000) as u32,
        resend_uncertain: raw.resend_uncertain.unwrap_or(true),
        sender,
        dkim: raw.dkim.and_then(|d| dkim(p, section, d)),
    }
}

/// A DNS label as a selector or a domain's part may be: letters, digits, hyphens, 1–63 long,
/// not starting or ending with a hyphen.
fn dns_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

fn dkim(p: &mut Problems, section: &str, raw: RawDkim) -> Option<Dkim> {
    let k = |f: &str| format!("{section}.dkim.{f}");
    if section != "smtp" {
        p.add(
            k("domain"),
            "DKIM is configured under [smtp.dkim] only: a PEC provider signs certified mail itself",
        );
        return None;
    }
    let domain = required(p, &k("domain"), raw.domain).to_ascii_lowercase();
    if !domain.is_empty()
        && (domain.len() > 253 || !domain.contains('.') || !domain.split('.').all(dns_label))
    {
        p.add(k("domain"), format!("{domain:?} is not a domain name"));
    }
    let selector = required(p, &k("selector"), raw.selector).to_ascii_lowercase();
    if !selector.is_empty() && !selector.split('.').all(dns_label) {
        p.add(
            k("selector"),
            format!("{selector:?} is not a DNS label (letters, digits and hyphens)"),
        );
    }
    let algorithm = match raw.algorithm.as_deref().unwrap_or("rsa-sha256") {
        "rsa-sha256" => DkimAlgorithm::RsaSha256,
        "ed25519-sha256" => DkimAlgorithm::Ed25519Sha256,
        other => {
            p.add(
                k("algorithm"),
                format!("unknown algorithm {other:?}; expected rsa-sha256|ed25519-sha256"),
            );
            DkimAlgorithm::RsaSha256
        }
    };
    let private_key = raw.private_key.filter(|s| !s.trim().is_empty());
    let Some(private_key) = private_key else {
        p.add(
            k("private_key"),
            "is required (put the PEM file's path in MESSO_SMTP__DKIM__PRIVATE_KEY_FILE)",
        );
        return None;
    };
    if !private_key.contains("-----BEGIN ") {
        // Not repeated: it is a secret.
        p.add(
            k("private_key"),
            "expected a PEM private key (-----BEGIN PRIVATE KEY----- …); the value is not shown",
        );
    }
    Some(Dkim {
        domain,
        selector,
        algorithm,
        private_key,
    })
}

pub(super) fn sms(p: &mut Problems, raw: RawSms) -> Sms {
    let sender = raw.sender.unwrap_or_else(|| "URP".to_owned());
    let alpha = sender.chars().any(|c| c.is_ascii_alphabetic());
    if alpha && (sender.len() > 11 || !sender.chars().all(|c| c.is_ascii_alphanumeric())) {
        p.add(
            "sms.sender",
            format!(
                "an alphanumeric sender has at most 11 letters and digits (AGCOM alias), found {sender:?}"
            ),
        );
    }
    let reply_number = raw.reply_number.filter(|s| !s.is_empty());
    if let Some(r) = &reply_number
        && crate::domain::phone::normalize_number(r, false).is_err()
    {
        p.add(
            "sms.reply_number",
            format!("{r:?} is not a phone number (for example +393471234567)"),
        );
    }
    let mut providers: Vec<SmsProvider> = Vec::new();
    for (i, r) in raw.providers.into_iter().enumerate() {
        let provider = provider(p, i, r, &providers);
        providers.push(provider);
    }
    Sms {
        sender,
        reply_number,
        max_fragments: p.ranged("sms.max_fragments", raw.max_fragments, 3, 1, 10) as u32,
        resend_uncertain: raw.resend_uncertain.unwrap_or(false),
        providers,
    }
}

/// `sms.providers[i]`: a name unique among `before`, its kind with its settings, its limits.
fn provider(p: &mut Problems, i: usize, mut r: RawProvider, before: &[SmsProvider]) -> SmsProvider {
    let k = |f: &str| format!("sms.providers[{i}].{f}");
    let name = required(p, &k("name"), r.name.take());
    if before.iter().any(|o| o.name == name) {
        p.add(k("name"), format!("{name:?} is used by another provider"));
    }
    let (timeout_s, rate_per_s, concurrency) = (r.timeout_s, r.rate_per_s, r.concurrency);
    let (kind, base_url) = match r.kind.take().unwrap_or_default().as_str() {
        "rest-it" => rest_it(p, &k, r),
        "twilio" => twilio(p, &k, r),
        "generic" => generic(p, &k, r),
        other => {
            p.add(
                k("kind"),
                format!("unknown provider kind {other:?}; expected rest-it|twilio|generic"),
            );
            (
                ProviderKind::Generic {
                    headers: BTreeMap::new(),
                    body: String::new(),
                    id_pointer: None,
                },
                String::new(),
            )
        }
    };
    SmsProvider {
        name,
        kind,
        base_url,
        timeout_s: p.ranged(&k("timeout_s"), timeout_s, 15, 1, 300) as u64,
        rate_per_s: p.ranged(&k("rate_per_s"), rate_per_s, 0, 0, 100_000) as u32,
        concurrency: p.ranged(&k("concurrency"), concurrency, 32, 1, 1024) as u32,
    }
}

/// A `rest-it` provider: a user key and access token, or a username and password.
fn rest_it(
    p: &mut Problems,
    k: &impl Fn(&str) -> String,
    r: RawProvider,
) -> (ProviderKind, String) {
    let auth = match (r.user_key, r.access_token, r.username, r.password) {
        (Some(user_key), Some(access_token), None, None) => RestItAuth::Token {
            user_key,
            access_token,
        },
        (None, None, Some(username), Some(password)) => RestItAuth::Login { username, password },
        _ => {
            p.add(
                k("access_token"),
                "give either user_key and access_token, or username and password",
            );
            RestItAuth::Login {
                username: String::new(),
                password: String::new(),
            }
        }
    };
    let message_type = r.message_type.unwrap_or_else(|| "GP".to_owned());
    (
        ProviderKind::RestIt { auth, message_type },
        url(p, &k("base_url"), r.base_url, None),
    )
}

/// A `twilio` provider: the account, its auth token (a secret: it also verifies Twilio's
/// callbacks), the optional messaging service.
fn twilio(p: &mut Problems, k: &impl Fn(&str) -> String, r: RawProvider) -> (ProviderKind, String) {
    let account_sid = required(p, &k("account_sid"), r.account_sid);
    let auth_token = required(p, &k("auth_token"), r.auth_token);
    if !auth_token.is_empty() && auth_token.chars().count() < super::MIN_SECRET_CHARS {
        p.add(
            k("auth_token"),
            format!(
                "the Twilio auth token must be at least {} characters (the value is not shown)",
                super::MIN_SECRET_CHARS
            ),
        );
    }
    (
        ProviderKind::Twilio {
            account_sid,
            auth_token,
            messaging_service_sid: r.messaging_service_sid.filter(|s| !s.is_empty()),
        },
        url(
            p,
            &k("base_url"),
            r.base_url,
            Some("https://api.twilio.com"),
        ),
    )
}

/// A `generic` provider: a JSON body with placeholders, headers, where the id is in the answer.
fn generic(
    p: &mut Problems,
    k: &impl Fn(&str) -> String,
    r: RawProvider,
) -> (ProviderKind, String) {
    let body = required(p, &k("body"), r.body);
    if !body.is_empty() {
        let probe = crate::sms::fill_template(&body, "+390000000000", "x", "1", "S");
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&probe) {
            p.add(
                k("body"),
                format!("the body with its {{{{placeholders}}}} filled in is not JSON: {e}"),
            );
        }
    }
    if let Some(ptr) = &r.id_pointer
        && !ptr.starts_with('/')
    {
        p.add(k("id_pointer"), "a JSON pointer starts with /, like /id");
    }
    (
        ProviderKind::Generic {
            headers: r.headers,
            body,
            id_pointer: r.id_pointer,
        },
        url(p, &k("base_url"), r.base_url, None),
    )
}

pub(super) fn delivery(p: &mut Problems, raw: RawDelivery) -> Delivery {
    let d = Delivery::default();
    let mut fallback = Vec::new();
    if let Some(list) = raw.fallback {
        for (i, s) in list.iter().enumerate() {
            let f = match (s.as_str(), crate::domain::Channel::parse(s)) {
                ("office", _) => Fallback::Office,
                (_, Some(channel)) => Fallback::of(channel),
                (other, None) => {
                    p.add(
                        format!("delivery.fallback[{i}]"),
                        format!("unknown link {other:?}; expected sms|email|pec|voice|office"),
                    );
                    continue;
                }
            };
            if fallback.contains(&f) {
                p.add(
                    format!("delivery.fallback[{i}]"),
                    format!("{s:?} is listed twice"),
                );
            }
            fallback.push(f);
        }
    } else {
        fallback = d.fallback.clone();
    }
    let backoff_base_s = p.ranged(
        "delivery.backoff_base_s",
        raw.backoff_base_s,
        d.backoff_base_s,
        1,
        3600,
    );
    let backoff_max_s = p.ranged(
        "delivery.backoff_max_s",
        raw.backoff_max_s,
        d.backoff_max_s,
        1,
        86_400,
    );
    if backoff_max_s < backoff_base_s {
        p.add(
            "delivery.backoff_max_s",
            "must not be below delivery.backoff_base_s",
        );
    }
    Delivery {
        max_age_s: p.ranged("delivery.max_age_hours", raw.max_age_hours, 48, 1, 24 * 30) * 3600,
        backoff_base_s,
        backoff_max_s,
        breaker_failures: p.ranged(
            "delivery.breaker_failures",
            raw.breaker_failures,
            5,
            1,
            1000,
        ) as u32,
        breaker_cooldown_s: p.ranged(
            "delivery.breaker_cooldown_s",
            raw.breaker_cooldown_s,
            30,
            1,
            3600,
        ) as u64,
        fallback,
        lease_s: p.ranged("delivery.lease_s", raw.lease_s, d.lease_s, 10, 3600),
    }
}
