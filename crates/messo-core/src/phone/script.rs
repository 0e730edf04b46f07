//! What the answering flow says and asks on a call, independent of the provider: a [`Script`]
//! of [`Verb`]s. The edge renders it as Twilio's TwiML or Vonage's NCCO; each verb that waits
//! for the caller names the [`CallState`] of the next step, which the edge seals (signed, bound
//! to the call) into the callback URL, so no call lives in one daemon's memory.

use serde::{Deserialize, Serialize};

use crate::domain::Lang;

/// Where a call is in the flow. Sealed into every callback URL by the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The caller chose a language or typed a ticket number at the greeting.
    Greeting,
    /// The caller typed a ticket number.
    Number,
    /// The caller typed an access code.
    Code,
    /// The caller chose from the menu (1 repeat, 2 message, 3 call back, 0 the office).
    Menu,
    /// A voice message was recorded (the provider's recording callback).
    Recorded,
    /// After the recording: thanks and the menu again (Vonage goes on here; Twilio's
    /// recording callback answers directly).
    AfterRecording,
    /// A call put through to the office ended (or was not answered).
    Dialled,
}

/// The state of a call between two requests: small, and signed by the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallState {
    /// The step whose answer the next request brings.
    pub step: Step,
    pub lang: Lang,
    /// Failed tries at this step so far.
    pub tries: u8,
    /// The ticket the caller named (its internal id), once found.
    pub ticket: Option<i64>,
    /// Whether the caller is verified for that ticket (caller id or access code).
    pub verified: bool,
}

/// One thing the call does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// Speak plain text (no markup, no SSML) in the script's language.
    Say(String),
    /// Speak `prompt` (interruptible), then wait for up to `max_digits` keypad digits ended by
    /// `#` (or the timeout); the digits (possibly none) are posted to `next`.
    Gather {
        prompt: Vec<String>,
        max_digits: u8,
        timeout_s: u8,
        next: CallState,
    },
    /// Record a voice message of at most `max_s` seconds, ended by `#` or silence; the
    /// recording is posted to `next`. TwiML stops here (Twilio fetches `next` for what follows);
    /// NCCO goes on with the verbs after it.
    Record { max_s: u32, next: CallState },
    /// Put the caller through to `number` (E.164) for up to `timeout_s` seconds; the outcome
    /// is posted to `next`.
    Dial {
        number: String,
        timeout_s: u8,
        next: CallState,
    },
    /// Fetch the next step from `next` without waiting for the caller.
    Redirect(CallState),
    /// End the call.
    Hangup,
}

/// What one request of a call is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub lang: Lang,
    pub verbs: Vec<Verb>,
}

/// The language tag providers' text-to-speech takes for `lang`.
pub const fn speech_language(lang: Lang) -> &'static str {
    match lang {
        Lang::It => "it-IT",
        Lang::En => "en-GB",
    }
}

/// A voice message the provider recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// The provider's id of the recording (Twilio `RecordingSid`, Vonage `recording_uuid`).
    pub id: String,
    /// Where the provider keeps it (fetched with the account's credentials).
    pub url: String,
    pub duration_s: Option<u32>,
}

/// What one request of a call says, whatever the provider: parsed from Twilio's form fields or
/// Vonage's JSON by the provider's parser, after the request was verified.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CallEvent {
    /// The provider's id of the call (Twilio `CallSid`, Vonage `uuid`): the call state is bound
    /// to it, and with the step it keys what the request causes.
    pub call_id: String,
    /// The calling number as the provider gives it (E.164 when it is a phone; absent or
    /// anything else when withheld).
    pub caller: Option<String>,
    /// Keypad digits typed (without the final `#`); `Some("")` when the caller typed nothing
    /// before the timeout.
    pub digits: Option<String>,
    pub recording: Option<Recording>,
    /// The provider's transcript of the recording, when it gives one.
    pub transcript: Option<String>,
    /// After a `Dial`: whether the office answered.
    pub dial_answered: Option<bool>,
}
