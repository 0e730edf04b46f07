//! A Vonage Voice API callback (JSON, posted) as a [`CallEvent`], after the edge verified its
//! signed JWT. The callbacks of one call, as Vonage documents them:
//!
//! - the answer webhook: `{from, to, uuid, conversation_uuid, region_url?, custom_data?}`;
//! - the `input` webhook: `{from, to, uuid, conversation_uuid, dtmf: {digits, timed_out},
//!   speech?, timestamp}`;
//! - the `record` event: `{recording_url, recording_uuid, size, start_time, end_time,
//!   conversation_uuid, timestamp}` — **no `uuid`**;
//! - the `connect` and call events: `{status, uuid, conversation_uuid, from, to, …}`;
//! - the `notify` request: the payload Messo wrote (it names the conversation).
//!
//! The call's id is therefore `conversation_uuid`: the one id every callback of the call
//! carries (the record event has no `uuid`, and a connect's events describe the office's leg,
//! whose `uuid` is another). The sealed state is bound to it.
//!
//! Messo asks Vonage for no transcription, and reads none.

use serde_json::Value;

use super::flow::MAX_NUMBER_DIGITS;
use super::script::{CallEvent, Recording};

/// Why a callback could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadCallback(pub String);

/// What a verified Vonage callback is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    /// A request of the call the flow answers: the answer webhook, an input, a recording, the
    /// notify, or the end of a `connect` (`dial_answered` set).
    Call(CallEvent),
    /// A call's progress (`started`, `ringing`, `answered`…) that needs no answer: Vonage goes
    /// on with the NCCO it has.
    Progress { call_id: String, status: String },
}

/// The statuses that end a `connect` (or the call): the office answered and hung up, or was
/// not reached.
fn connect_ended(status: &str) -> Option<bool> {
    match status {
        "completed" => Some(true),
        "unanswered" | "busy" | "timeout" | "failed" | "rejected" | "cancelled" => Some(false),
        _ => None,
    }
}

/// The longest id or text kept from a field.
const MAX_FIELD: usize = 2048;

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(|s| s.chars().take(MAX_FIELD).collect::<String>())
        .filter(|s| !s.is_empty())
}

/// Parses a callback's body.
pub fn parse(body: &[u8]) -> Result<Callback, BadCallback> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| BadCallback(format!("a Vonage callback is JSON: {e}")))?;
    if !v.is_object() {
        return Err(BadCallback("a Vonage callback is a JSON object".to_owned()));
    }
    let call_id = text(&v, "conversation_uuid")
        .filter(|c| c.len() <= 128)
        .ok_or_else(|| {
            BadCallback("a Vonage call callback carries its conversation_uuid".to_owned())
        })?;
    let recording = match (text(&v, "recording_uuid"), text(&v, "recording_url")) {
        (Some(id), Some(url)) => Some(Recording {
            id,
            url,
            duration_s: duration(&v),
        }),
        _ => None,
    };
    let digits = v.get("dtmf").filter(|d| d.is_object()).map(|d| {
        d.get("digits")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .take(usize::from(MAX_NUMBER_DIGITS))
            .collect::<String>()
    });
    // An input that heard speech only (Messo asks for DTMF only) counts as no key typed.
    let digits = digits.or_else(|| v.get("speech").map(|_| String::new()));
    let status = text(&v, "status");
    let dial_answered = status.as_deref().and_then(connect_ended);
    if let Some(status) = status
        && dial_answered.is_none()
        && digits.is_none()
        && recording.is_none()
    {
        return Ok(Callback::Progress { call_id, status });
    }
    Ok(Callback::Call(CallEvent {
        call_id,
        caller: text(&v, "from").map(|f| e164(&f)),
        digits,
        recording,
        transcript: None,
        dial_answered,
    }))
}

/// Vonage writes numbers as E.164 digits without the `+`: a phone number gets it back, so it
/// compares with the ticket's mobile; anything else (a withheld caller, a SIP URI) is kept.
fn e164(from: &str) -> String {
    if (8..=15).contains(&from.len()) && from.bytes().all(|b| b.is_ascii_digit()) {
        format!("+{from}")
    } else {
        from.to_owned()
    }
}

/// The number the caller dialled (`to`), when the callback names it.
pub fn called(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| text(&v, "to"))
}

/// The recording's length from its `start_time` and `end_time` (RFC 3339), when both parse.
fn duration(v: &Value) -> Option<u32> {
    let at = |k: &str| text(v, k).and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok());
    let (start, end) = (at("start_time")?, at("end_time")?);
    u32::try_from((end - start).num_seconds()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CON: &str = "CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab";

    fn call(body: &str) -> CallEvent {
        match parse(body.as_bytes()) {
            Ok(Callback::Call(e)) => e,
            other => panic!("{other:?}"),
        }
    }

    // The documented answer webhook (POST): the caller, no digits.
    #[test]
    fn answer_webhook() {
        let e = call(
            r#"{"to":"447700900000","from":"447700900001","uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
                "conversation_uuid":"CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
                "region_url":"https://api-eu-1.nexmo.com","custom_data":{}}"#,
        );
        assert_eq!(e.call_id, CON);
        assert_eq!(e.caller.as_deref(), Some("+447700900001"));
        assert_eq!(e.digits, None);
        assert_eq!(e.recording, None);
        assert_eq!(e.dial_answered, None);
        assert_eq!(
            called(br#"{"to":"447700900000","conversation_uuid":"CON-1"}"#).as_deref(),
            Some("447700900000")
        );
    }

    #[test]
    fn input_webhook_digits_and_timeout() {
        let e = call(
            r#"{"speech":{"results":[]},"dtmf":{"digits":"2026000123","timed_out":false},
                "from":"447700900001","to":"447700900000","uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
                "conversation_uuid":"CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
                "timestamp":"2026-12-04T21:00:00.000Z"}"#,
        );
        assert_eq!(e.digits.as_deref(), Some("2026000123"));
        // The caller typed nothing before the timeout: the flow hears an empty answer.
        let t = call(
            r#"{"dtmf":{"digits":"","timed_out":true},"conversation_uuid":"CON-1","uuid":"u"}"#,
        );
        assert_eq!(t.digits.as_deref(), Some(""));
        let t = call(r#"{"dtmf":{"timed_out":true},"conversation_uuid":"CON-1"}"#);
        assert_eq!(t.digits.as_deref(), Some(""));
        // Anything but digits is dropped, and at most 20 are kept.
        let x = call(r#"{"dtmf":{"digits":"12*34#5678901234567890123"},"conversation_uuid":"C"}"#);
        assert_eq!(x.digits.as_deref(), Some("12345678901234567890"));
    }

    #[test]
    fn record_event_has_no_uuid_and_is_keyed_by_the_conversation() {
        let e = call(
            r#"{"start_time":"2026-12-04T21:00:00Z",
                "recording_url":"https://api.nexmo.com/v1/files/bbbbbbbb-cccc-dddd-eeee-0123456789ab",
                "size":12222,"recording_uuid":"bbbbbbbb-cccc-dddd-eeee-0123456789ab",
                "end_time":"2026-12-04T21:00:14Z",
                "conversation_uuid":"CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
                "timestamp":"2026-12-04T21:00:15.000Z"}"#,
        );
        assert_eq!(e.call_id, CON);
        assert_eq!(
            e.recording,
            Some(Recording {
                id: "bbbbbbbb-cccc-dddd-eeee-0123456789ab".to_owned(),
                url: "https://api.nexmo.com/v1/files/bbbbbbbb-cccc-dddd-eeee-0123456789ab"
                    .to_owned(),
                duration_s: Some(14),
            })
        );
        assert_eq!(e.transcript, None);
    }

    #[test]
    fn connect_events_end_or_progress() {
        let body = |s: &str| {
            format!(
                r#"{{"status":"{s}","uuid":"office-leg","conversation_uuid":"{CON}",
                    "from":"390611111111","to":"390612345678","direction":"outbound"}}"#
            )
        };
        for (s, answered) in [
            ("completed", true),
            ("unanswered", false),
            ("busy", false),
            ("timeout", false),
            ("failed", false),
            ("rejected", false),
            ("cancelled", false),
        ] {
            let e = call(&body(s));
            assert_eq!(e.dial_answered, Some(answered), "{s}");
            assert_eq!(e.call_id, CON);
        }
        for s in ["started", "ringing", "answered"] {
            assert_eq!(
                parse(body(s).as_bytes()),
                Ok(Callback::Progress {
                    call_id: CON.to_owned(),
                    status: s.to_owned()
                })
            );
        }
    }

    #[test]
    fn notify_payload_names_the_conversation() {
        let e = call(r#"{"conversation_uuid":"CON-1"}"#);
        assert_eq!(e.call_id, "CON-1");
        assert_eq!(e.digits, None);
        assert_eq!(e.caller, None);
        let withheld = call(r#"{"conversation_uuid":"CON-1","from":"Unknown"}"#);
        assert_eq!(withheld.caller.as_deref(), Some("Unknown"));
    }

    #[test]
    fn refusals() {
        assert!(parse(b"not json").is_err());
        assert!(parse(b"[1]").is_err());
        assert!(parse(br#"{"uuid":"u","from":"1"}"#).is_err());
        assert!(parse(br#"{"conversation_uuid":""}"#).is_err());
        let long = format!(r#"{{"conversation_uuid":"{}"}}"#, "x".repeat(200));
        assert!(parse(long.as_bytes()).is_err());
    }
}
