//! The `[voice]` section: the telephone and SMS answering backup of the agreement (section 1.2,
//! "servizio telefonico ed SMS di risposta di backup") — the answering flow on the voice
//! webhooks, the access code that lets a caller without the ticket's mobile hear its state, and
//! the SMS answers to `STATO`/`AIUTO`.
//!
//! The voice answering is off by default: an office turns it on once a provider's number points
//! its voice webhook at Messo (`/webhooks/voice/<endpoint>`).

use serde::Deserialize;

use super::Problems;
use crate::domain::PhoneNumber;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVoice {
    enabled: Option<bool>,
    office_number: Option<String>,
    english: Option<bool>,
    max_tries: Option<i64>,
    record_max_s: Option<i64>,
    state_valid_s: Option<i64>,
    #[serde(default)]
    access_code: RawAccessCode,
    #[serde(default)]
    sms_answers: RawSmsAnswers,
    #[serde(default)]
    outbound: RawOutbound,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutbound {
    enabled: Option<bool>,
    provider: Option<String>,
    from: Option<String>,
    base_url: Option<String>,
    timeout_s: Option<i64>,
    connect_timeout_s: Option<i64>,
    concurrency: Option<i64>,
    // twilio
    account_sid: Option<String>,
    auth_token: Option<String>,
    // vonage
    application_id: Option<String>,
    private_key: Option<String>,
}

/// Who places an outbound call, and with which credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum VoiceProvider {
    /// `POST {base_url}/2010-04-01/Accounts/{account_sid}/Calls.json`, basic auth.
    Twilio {
        account_sid: String,
        auth_token: String,
    },
    /// `POST {base_url}/v1/calls`, a JWT (RS256) signed with the application's private key.
    Vonage {
        application_id: String,
        /// The PEM text of the application's private key (PKCS#8 or PKCS#1).
        private_key: String,
    },
}

impl VoiceProvider {
    /// `twilio` or `vonage`.
    pub fn kind(&self) -> &'static str {
        match self {
            VoiceProvider::Twilio { .. } => "twilio",
            VoiceProvider::Vonage { .. } => "vonage",
        }
    }
}

impl std::fmt::Debug for VoiceProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        match self {
            VoiceProvider::Twilio { account_sid, .. } => f
                .debug_struct("Twilio")
                .field("account_sid", account_sid)
                .finish_non_exhaustive(),
            VoiceProvider::Vonage { application_id, .. } => f
                .debug_struct("Vonage")
                .field("application_id", application_id)
                .finish_non_exhaustive(),
        }
    }
}

/// `[voice.outbound]`: the automated call that speaks a breach notice or an integration
/// request when every written channel failed (the `voice` link of `[delivery] fallback`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub provider: VoiceProvider,
    /// The caller id: a number of the office's account with the provider (E.164).
    pub from: PhoneNumber,
    /// The provider's API root (tests point it at a local stub).
    pub base_url: String,
    pub timeout_s: u32,
    pub connect_timeout_s: u32,
    /// Calls placed at once at most.
    pub concurrency: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccessCode {
    max_failures: Option<i64>,
    lockout_hours: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmsAnswers {
    enabled: Option<bool>,
    per_sender_per_day: Option<i64>,
}

/// The lock-out of the access code: after `max_failures` wrong codes for one ticket within
/// `lockout_hours`, no code opens that ticket by phone or SMS until the oldest failure is older
/// than `lockout_hours` (the status page's signed link still works).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessCodePolicy {
    pub max_failures: u32,
    pub lockout_hours: u32,
}

impl AccessCodePolicy {
    /// The lock-out window in seconds.
    pub fn window_s(&self) -> i64 {
        i64::from(self.lockout_hours) * 3600
    }
}

/// The answers to citizens' `STATO`/`INFO`/`PRATICA`/`AIUTO` SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsAnswers {
    pub enabled: bool,
    /// At most this many answers to one number per day (Europe/Rome): no SMS pumping.
    pub per_sender_per_day: u32,
}

/// The `[voice]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voice {
    /// Answer calls on the voice webhooks with the answering flow (off: a call is recorded
    /// and the provider gets an empty answer, as before).
    pub enabled: bool,
    /// Where "0" puts the caller through during office hours (E.164); none: 0 is not offered.
    pub office_number: Option<PhoneNumber>,
    /// Offer English ("press 9").
    pub english: bool,
    /// Tries for a ticket number or an access code before a polite goodbye (1–5).
    pub max_tries: u32,
    /// The longest voice message, in seconds.
    pub record_max_s: u32,
    /// How long the signed state of a call stays valid, in seconds.
    pub state_valid_s: u32,
    pub access_code: AccessCodePolicy,
    pub sms_answers: SmsAnswers,
    /// `[voice.outbound]`, when enabled: calls that speak a notice nobody could read.
    pub outbound: Option<Outbound>,
}

impl Default for Voice {
    fn default() -> Voice {
        voice(&mut Problems(Vec::new()), RawVoice::default())
    }
}

/// `[voice.outbound]`: none unless `enabled`; every missing or faulty key is named.
fn outbound(p: &mut Problems, raw: RawOutbound) -> Option<Outbound> {
    if !raw.enabled.unwrap_or(false) {
        return None;
    }
    let k = |s: &str| format!("voice.outbound.{s}");
    let mut required = |key: &str, v: Option<String>| match v.filter(|s| !s.trim().is_empty()) {
        Some(s) => s.trim().to_owned(),
        None => {
            p.add(k(key), "is required when voice.outbound.enabled = true");
            String::new()
        }
    };
    let provider = match raw.provider.as_deref().map(str::trim) {
        Some("twilio") => Some(VoiceProvider::Twilio {
            account_sid: required("account_sid", raw.account_sid),
            auth_token: required("auth_token", raw.auth_token),
        }),
        Some("vonage") => Some(VoiceProvider::Vonage {
            application_id: required("application_id", raw.application_id),
            private_key: required("private_key", raw.private_key),
        }),
        Some(other) => {
            p.add(
                k("provider"),
                format!("unknown provider {other:?}; expected twilio|vonage"),
            );
            None
        }
        None => {
            p.add(k("provider"), "is required: twilio|vonage");
            None
        }
    };
    if let Some(VoiceProvider::Twilio { auth_token, .. }) = &provider
        && !auth_token.is_empty()
        && auth_token.chars().count() < super::MIN_SECRET_CHARS
    {
        p.add(
            k("auth_token"),
            format!(
                "the Twilio auth token must be at least {} characters (the value is not shown)",
                super::MIN_SECRET_CHARS
            ),
        );
    }
    let from = match raw.from.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => match PhoneNumber::parse(s) {
            Ok(n) => Some(n),
            Err(e) => {
                p.add(
                    k("from"),
                    format!("{e} (expected E.164, like \"+390612345678\")"),
                );
                None
            }
        },
        None => {
            p.add(k("from"), "is required: the number the call comes from");
            None
        }
    };
    let default_url = match &provider {
        Some(VoiceProvider::Vonage { .. }) => "https://api.nexmo.com",
        _ => "https://api.twilio.com",
    };
    let base_url = raw
        .base_url
        .unwrap_or_else(|| default_url.to_owned())
        .trim()
        .trim_end_matches('/')
        .to_owned();
    if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
        p.add(k("base_url"), "expected an http:// or https:// URL");
    }
    let timeout_s = p.ranged(&k("timeout_s"), raw.timeout_s, 15, 1, 120) as u32;
    let connect_timeout_s =
        p.ranged(&k("connect_timeout_s"), raw.connect_timeout_s, 5, 1, 60) as u32;
    let concurrency = p.ranged(&k("concurrency"), raw.concurrency, 2, 1, 32) as u32;
    Some(Outbound {
        provider: provider?,
        from: from?,
        base_url,
        timeout_s,
        connect_timeout_s,
        concurrency,
    })
}

pub(super) fn voice(p: &mut Problems, raw: RawVoice) -> Voice {
    let outbound = outbound(p, raw.outbound);
    let office_number = raw
        .office_number
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| match PhoneNumber::parse(s.trim()) {
            Ok(n) => Some(n),
            Err(e) => {
                p.add(
                    "voice.office_number",
                    format!("{e} (expected E.164, like \"+390612345678\")"),
                );
                None
            }
        });
    Voice {
        enabled: raw.enabled.unwrap_or(false),
        office_number,
        english: raw.english.unwrap_or(true),
        max_tries: p.ranged("voice.max_tries", raw.max_tries, 3, 1, 5) as u32,
        record_max_s: p.ranged("voice.record_max_s", raw.record_max_s, 120, 10, 600) as u32,
        state_valid_s: p.ranged("voice.state_valid_s", raw.state_valid_s, 3600, 60, 86_400) as u32,
        access_code: AccessCodePolicy {
            max_failures: p.ranged(
                "voice.access_code.max_failures",
                raw.access_code.max_failures,
                5,
                1,
                20,
            ) as u32,
            lockout_hours: p.ranged(
                "voice.access_code.lockout_hours",
                raw.access_code.lockout_hours,
                24,
                1,
                720,
            ) as u32,
        },
        sms_answers: SmsAnswers {
            enabled: raw.sms_answers.enabled.unwrap_or(true),
            per_sender_per_day: p.ranged(
                "voice.sms_answers.per_sender_per_day",
                raw.sms_answers.per_sender_per_day,
                5,
                1,
                100,
            ) as u32,
        },
        outbound,
    }
}
