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
}

impl Default for Voice {
    fn default() -> Voice {
        voice(&mut Problems(Vec::new()), RawVoice::default())
    }
}

pub(super) fn voice(p: &mut Problems, raw: RawVoice) -> Voice {
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
    }
}
