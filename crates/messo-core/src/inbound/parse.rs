//! Reading providers' payloads once they are verified: form pairs or JSON in, a [`Parsed`]
//! record out, or a reason the payload cannot be used (answered 400). Pure: no I/O, no clock.
//!
//! Shapes accepted (see `docs/inbound.md` for the full field lists):
//! - Twilio: incoming message (`MessageSid`, `From`, `To`, `Body`, `NumMedia`, `MediaUrlN`),
//!   status callback (`MessageSid`, `MessageStatus`, `ErrorCode`), voice (`CallSid`, `From`,
//!   `Digits`, `RecordingUrl`, `RecordingSid`, `TranscriptionText`);
//! - the Italian REST family: form or JSON with the common field names of those platforms;
//! - the generic provider: our documented JSON.

use std::collections::BTreeMap;

use serde_json::Value;

use super::dlr::{self, DlrState};
use super::{Parsed, ReceiptFacts, Route};

/// Why a verified payload cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadPayload(pub String);

fn bad(m: impl Into<String>) -> BadPayload {
    BadPayload(m.into())
}

/// Longest text kept from a message (an SMS is far shorter; a transcript may be long).
pub const MAX_TEXT: usize = 20_000;

/// Fields by name, first value wins; names compared as given.
#[derive(Debug, Default)]
pub struct Fields(BTreeMap<String, String>);

impl Fields {
    /// From form pairs.
    pub fn from_pairs(pairs: &[(String, String)]) -> Fields {
        let mut m = BTreeMap::new();
        for (k, v) in pairs {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Fields(m)
    }

    /// From a flat JSON object (numbers and booleans written as text; nested values ignored).
    pub fn from_json(body: &[u8]) -> Result<Fields, BadPayload> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON: {e}")))?;
        let Value::Object(map) = v else {
            return Err(bad("the body must be a JSON object"));
        };
        let mut m = BTreeMap::new();
        for (k, v) in map {
            let s = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            m.insert(k, s);
        }
        Ok(Fields(m))
    }

    /// The first non-empty field among `names`.
    pub fn any(&self, names: &[&str]) -> Option<&str> {
        names
            .iter()
            .filter_map(|n| self.0.get(*n))
            .map(|s| s.trim())
            .find(|s| !s.is_empty())
    }

    fn need(&self, names: &[&str]) -> Result<&str, BadPayload> {
        self.any(names).ok_or_else(|| {
            bad(format!(
                "missing field {}",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ))
        })
    }

    fn number(&self, names: &[&str]) -> Result<Option<u32>, BadPayload> {
        match self.any(names) {
            None => Ok(None),
            Some(t) => t.parse::<u32>().map(Some).map_err(|_| {
                bad(format!(
                    "`{}` must be a whole number, found {t:?}",
                    names[0]
                ))
            }),
        }
    }
}

/// A phone number as E.164 when it reads as one (Italian national forms included); otherwise
/// the text as sent (a short code, an alias), trimmed.
pub fn phone(s: &str) -> String {
    let t = s.trim();
    // Providers post E.164 already: taken as it is (the full parse costs tens of microseconds
    // a request); national forms go through the numbering plan.
    let digits = t.strip_prefix('+').unwrap_or("");
    if (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
    {
        return t.to_owned();
    }
    crate::domain::phone::normalize_number(t, false).unwrap_or_else(|_| t.to_owned())
}

fn text(s: Option<&str>) -> Option<String> {
    s.map(|t| t.chars().take(MAX_TEXT).collect())
}

fn checked_id(id: &str) -> Result<String, BadPayload> {
    if id.len() > 200 || id.chars().any(char::is_control) {
        return Err(bad(
            "the message id must be at most 200 printable characters",
        ));
    }
    Ok(id.to_owned())
}

/// An instant in RFC 3339, `YYYY-MM-DD HH:MM:SS` (taken as UTC) or Unix seconds.
fn instant(s: Option<&str>) -> Option<i64> {
    let s = s?;
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp());
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

fn reply(
    route: Route,
    id: String,
    sender: &str,
    recipient: Option<&str>,
    body: Option<&str>,
) -> Parsed {
    Parsed {
        route,
        external_id: id,
        sender: Some(phone(sender)),
        recipient: recipient.map(phone),
        text: text(body),
        ..Parsed::default()
    }
}

/// Twilio: an incoming SMS/MMS.
pub fn twilio_sms(f: &Fields) -> Result<Parsed, BadPayload> {
    let id = checked_id(f.need(&["MessageSid", "SmsSid"])?)?;
    let from = f.need(&["From"])?;
    let mut p = reply(
        Route::Sms,
        id,
        from,
        f.any(&["To"]),
        Some(f.any(&["Body"]).unwrap_or("")),
    );
    let media = f.number(&["NumMedia"])?.unwrap_or(0).min(10);
    for n in 0..media {
        if let Some(u) = f.any(&[&format!("MediaUrl{n}")]) {
            p.references.push(u.to_owned());
        }
    }
    Ok(p)
}

/// Twilio: a status callback of a message we sent. `order_id` is ours, from the callback URL.
pub fn twilio_dlr(f: &Fields, order_id: Option<&str>) -> Result<Parsed, BadPayload> {
    let sid = checked_id(f.need(&["MessageSid", "SmsSid"])?)?;
    let status = f.need(&["MessageStatus", "SmsStatus"])?;
    let state =
        dlr::twilio(status).ok_or_else(|| bad(format!("unknown MessageStatus {status:?}")))?;
    Ok(Parsed {
        route: Route::Dlr,
        external_id: format!("{sid}:{}", status.to_ascii_lowercase()),
        receipt: Some(ReceiptFacts {
            provider_id: Some(sid),
            order_id: order_id.map(str::to_owned),
            state,
            raw_status: status.to_owned(),
            code: f.any(&["ErrorCode"]).map(str::to_owned),
            part: None,
            parts: None,
        }),
        ..Parsed::default()
    })
}

/// Twilio: a call to the phone backup line, or its recording or transcription callback.
pub fn twilio_voice(f: &Fields) -> Result<Parsed, BadPayload> {
    let call = checked_id(f.need(&["CallSid"])?)?;
    let from = f.need(&["From", "Caller"])?;
    let step = f
        .any(&["TranscriptionSid", "RecordingSid"])
        .map(str::to_owned)
        .or_else(|| f.any(&["Digits"]).map(|d| format!("digits-{d}")))
        .unwrap_or_else(|| "call".to_owned());
    let mut p = reply(
        Route::Voice,
        format!("{call}:{}", checked_id(&step)?),
        from,
        f.any(&["To", "Called"]),
        f.any(&["TranscriptionText"]),
    );
    p.digits = f.any(&["Digits"]).map(str::to_owned);
    if let Some(u) = f.any(&["RecordingUrl"]) {
        p.references.push(u.to_owned());
    }
    Ok(p)
}

/// The Italian REST family: a received SMS (form or JSON). No message id → a hash of what was
/// sent stands in for it, so a repeated post is still recognised.
pub fn rest_it_sms(f: &Fields) -> Result<Parsed, BadPayload> {
    let from = f.need(&["sender", "from", "msisdn", "mittente"])?;
    let body = f
        .any(&["text", "message", "body", "testo", "sms_text"])
        .unwrap_or("");
    let when = f.any(&["date", "time", "received_at", "sms_date", "data"]);
    let id = match f.any(&["id", "message_id", "sms_id", "id_message"]) {
        Some(id) => checked_id(id)?,
        None => content_id(&[from, body, when.unwrap_or("")]),
    };
    let mut p = reply(
        Route::Sms,
        id,
        from,
        f.any(&["recipient", "receiver", "to", "destinatario"]),
        Some(body),
    );
    p.occurred_at = instant(when);
    Ok(p)
}

/// The Italian REST family: a delivery report for an order id we chose (`messo-<outbox id>`).
pub fn rest_it_dlr(f: &Fields) -> Result<Parsed, BadPayload> {
    let order = checked_id(f.need(&["order_id", "orderId", "id_order"])?)?;
    let status = f.need(&["status", "delivery_status", "stato"])?;
    let state = dlr::rest_it(status).ok_or_else(|| bad(format!("unknown status {status:?}")))?;
    let recipient = f.any(&["recipient", "destination", "to"]).unwrap_or("");
    Ok(Parsed {
        route: Route::Dlr,
        external_id: format!(
            "{order}:{}:{}",
            phone(recipient),
            status.to_ascii_uppercase()
        ),
        receipt: Some(ReceiptFacts {
            provider_id: None,
            order_id: Some(order),
            state,
            raw_status: status.to_owned(),
            code: f.any(&["error", "error_code", "code"]).map(str::to_owned),
            part: None,
            parts: None,
        }),
        occurred_at: instant(f.any(&["delivery_date", "date"])),
        ..Parsed::default()
    })
}

/// The generic provider: `{"id", "from", "to", "text", "received_at"}`.
pub fn generic_sms(f: &Fields) -> Result<Parsed, BadPayload> {
    let id = checked_id(f.need(&["id"])?)?;
    let mut p = reply(
        Route::Sms,
        id,
        f.need(&["from"])?,
        f.any(&["to"]),
        Some(f.any(&["text"]).unwrap_or("")),
    );
    p.occurred_at = instant(f.any(&["received_at"]));
    Ok(p)
}

/// The generic provider: `{"id", "order_id"?, "status", "code"?, "part"?, "parts"?, "at"?}`.
pub fn generic_dlr(f: &Fields) -> Result<Parsed, BadPayload> {
    let id = checked_id(f.need(&["id"])?)?;
    let status = f.need(&["status"])?;
    let state = dlr::generic(status).ok_or_else(|| bad(format!("unknown status {status:?}")))?;
    let part = f.number(&["part"])?;
    let parts = f.number(&["parts"])?;
    if let (Some(p), Some(t)) = (part, parts)
        && (p == 0 || p > t)
    {
        return Err(bad(format!("part {p} of {t} is out of range")));
    }
    Ok(Parsed {
        route: Route::Dlr,
        external_id: format!("{id}:{}:{}", part.unwrap_or(1), status.to_ascii_lowercase()),
        receipt: Some(ReceiptFacts {
            provider_id: Some(id),
            order_id: f.any(&["order_id"]).map(str::to_owned),
            state,
            raw_status: status.to_owned(),
            code: f.any(&["code"]).map(str::to_owned),
            part,
            parts,
        }),
        occurred_at: instant(f.any(&["at"])),
        ..Parsed::default()
    })
}

/// The generic provider: a call, `{"id", "from", "to"?, "digits"?, "recording_url"?,
/// "transcript"?, "at"?}`.
pub fn generic_voice(f: &Fields) -> Result<Parsed, BadPayload> {
    let id = checked_id(f.need(&["id"])?)?;
    let mut p = reply(
        Route::Voice,
        id,
        f.need(&["from"])?,
        f.any(&["to"]),
        f.any(&["transcript"]),
    );
    p.digits = f.any(&["digits"]).map(str::to_owned);
    if let Some(u) = f.any(&["recording_url"]) {
        p.references.push(u.to_owned());
    }
    p.occurred_at = instant(f.any(&["at"]));
    Ok(p)
}

/// An inbound-mail webhook's fields (the shape mail providers post as multipart: `from` or
/// `sender`, `to` or `recipient`, `subject`, `text` or `body-plain`, `Message-Id`).
pub fn mail_fields(f: &Fields) -> Result<Parsed, BadPayload> {
    let from_field = f.need(&["from", "sender", "From"])?;
    let from = bare_address(from_field).ok_or_else(|| {
        bad(format!(
            "`from` holds no e-mail address: {:?}",
            mask_short(from_field)
        ))
    })?;
    let to: Vec<String> = f
        .any(&["to", "recipient", "To"])
        .map(|t| t.split(',').filter_map(bare_address).collect())
        .unwrap_or_default();
    let subject = f.any(&["subject", "Subject"]).unwrap_or("").to_owned();
    let body = f
        .any(&["text", "body-plain", "stripped-text", "TextBody"])
        .unwrap_or("")
        .to_owned();
    let id = match f.any(&["Message-Id", "message-id", "Message-ID", "MessageID"]) {
        Some(id) => checked_id(id.trim_matches(|c| c == '<' || c == '>'))?,
        None => content_id(&[&from, &subject, &body]),
    };
    Ok(Parsed {
        route: Route::Mail,
        external_id: id,
        sender: Some(from),
        recipient: to.first().cloned(),
        recipients: to,
        subject: Some(subject),
        text: text(Some(&body)),
        automatic: f
            .any(&["Auto-Submitted", "auto-submitted"])
            .is_some_and(|a| !a.eq_ignore_ascii_case("no")),
        ..Parsed::default()
    })
}

fn mask_short(s: &str) -> String {
    s.chars().take(3).chain("…".chars()).collect()
}

/// `Mario Rossi <Mario.Rossi@Example.it>` → `mario.rossi@example.it`.
pub fn bare_address(s: &str) -> Option<String> {
    let inner = match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s,
    };
    let a = inner.trim().to_ascii_lowercase();
    crate::domain::EmailAddress::parse(&a).is_ok().then_some(a)
}

/// A stand-in id from content, for providers that send none.
pub fn content_id(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    format!("sha256:{}", hex::encode(&h.finalize()[..16]))
}

/// A DLR state from its stored name (for tests and the store).
pub fn state(s: &str) -> Option<DlrState> {
    DlrState::parse(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(list: &[(&str, &str)]) -> Fields {
        Fields::from_pairs(
            &list
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn twilio_incoming_message() {
        let p = twilio_sms(&f(&[
            ("MessageSid", "SM1234"),
            ("AccountSid", "AC1"),
            ("From", "+393471234567"),
            ("To", "+390612345678"),
            ("Body", "Invio documenti URP-2026-000123"),
            ("NumMedia", "1"),
            ("MediaUrl0", "https://api.twilio.com/media/ME1"),
            ("SomeNewField", "ignored but signed"),
        ]))
        .unwrap();
        assert_eq!(p.route, Route::Sms);
        assert_eq!(p.external_id, "SM1234");
        assert_eq!(p.sender.as_deref(), Some("+393471234567"));
        assert_eq!(p.text.as_deref(), Some("Invio documenti URP-2026-000123"));
        assert_eq!(
            p.references,
            vec!["https://api.twilio.com/media/ME1".to_owned()]
        );
        assert_eq!(
            twilio_sms(&f(&[("From", "+39347")])).unwrap_err().0,
            "missing field `MessageSid` or `SmsSid`"
        );
        assert!(
            twilio_sms(&f(&[
                ("MessageSid", "SM1"),
                ("From", "x"),
                ("NumMedia", "lots")
            ]))
            .is_err()
        );
    }

    #[test]
    fn twilio_status_callback() {
        let p = twilio_dlr(
            &f(&[
                ("MessageSid", "SM9"),
                ("MessageStatus", "undelivered"),
                ("ErrorCode", "30005"),
            ]),
            Some("messo-42"),
        )
        .unwrap();
        let r = p.receipt.unwrap();
        assert_eq!(r.state, DlrState::Undelivered);
        assert_eq!(r.order_id.as_deref(), Some("messo-42"));
        assert_eq!(r.code.as_deref(), Some("30005"));
        assert_eq!(p.external_id, "SM9:undelivered");
        assert!(
            twilio_dlr(
                &f(&[("MessageSid", "SM9"), ("MessageStatus", "teleported")]),
                None
            )
            .is_err()
        );
    }

    #[test]
    fn rest_it_shapes() {
        let p = rest_it_sms(&f(&[
            ("sender", "3471234567"),
            ("text", "STOP"),
            ("date", "2026-11-27 10:00:00"),
        ]))
        .unwrap();
        assert_eq!(p.sender.as_deref(), Some("+393471234567"));
        assert!(p.external_id.starts_with("sha256:"));
        assert_eq!(p.occurred_at, Some(1_795_773_600));
        let again = rest_it_sms(&f(&[
            ("sender", "3471234567"),
            ("text", "STOP"),
            ("date", "2026-11-27 10:00:00"),
        ]))
        .unwrap();
        assert_eq!(p.external_id, again.external_id);
        let d = rest_it_dlr(&f(&[
            ("order_id", "messo-7"),
            ("status", "DLVRD"),
            ("recipient", "+393471234567"),
        ]))
        .unwrap();
        assert_eq!(d.receipt.unwrap().state, DlrState::Delivered);
        assert!(rest_it_dlr(&f(&[("order_id", "messo-7")])).is_err());
    }

    #[test]
    fn generic_shapes_and_parts() {
        let j =
            Fields::from_json(br#"{"id":"g1","status":"delivered","part":2,"parts":2}"#).unwrap();
        let d = generic_dlr(&j).unwrap();
        let r = d.receipt.unwrap();
        assert_eq!((r.part, r.parts), (Some(2), Some(2)));
        assert_eq!(d.external_id, "g1:2:delivered");
        let j =
            Fields::from_json(br#"{"id":"g1","status":"delivered","part":3,"parts":2}"#).unwrap();
        assert!(generic_dlr(&j).unwrap_err().0.contains("out of range"));
        assert!(Fields::from_json(b"[1,2]").is_err());
        assert!(
            Fields::from_json(b"{not json")
                .unwrap_err()
                .0
                .contains("not JSON")
        );
        let v = generic_voice(&Fields::from_json(br#"{"id":"c1","from":"+393471234567","digits":"2026000123","recording_url":"https://pbx/rec/1"}"#).unwrap()).unwrap();
        assert_eq!(v.digits.as_deref(), Some("2026000123"));
        assert_eq!(v.references.len(), 1);
    }

    #[test]
    fn mail_webhook_fields() {
        let p = mail_fields(&f(&[
            ("from", "Mario Rossi <Mario.Rossi@Example.it>"),
            (
                "to",
                "URP <urp+URP-2026-000123@comune.example.it>, altro@example.it",
            ),
            ("subject", "Re: Richiesta URP-2026-000123"),
            ("text", "Allego il documento."),
            ("Message-Id", "<abc@mail.example.it>"),
        ]))
        .unwrap();
        assert_eq!(p.sender.as_deref(), Some("mario.rossi@example.it"));
        assert_eq!(
            p.recipients,
            vec![
                "urp+urp-2026-000123@comune.example.it".to_owned(),
                "altro@example.it".to_owned()
            ]
        );
        assert_eq!(p.external_id, "abc@mail.example.it");
        assert!(mail_fields(&f(&[("from", "nobody")])).is_err());
    }
}
