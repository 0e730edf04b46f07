//! The pure part of inbound: what a verified webhook or a polled e-mail says ([`Parsed`]),
//! the payload parsers per provider family ([`parse`]), who sent an e-mail reply ([`auth`]),
//! ticket-number formats and matching, opt-out keywords ([`matching`]), satisfaction scores sent
//! by SMS ([`survey`]), the SMS answering's queries ([`answer`]) and the receipt state machine ([`dlr`]). Verification and I/O are the `messo` crate's (`inbound`, `http::webhooks`).

pub mod answer;
pub mod auth;
pub mod dlr;
pub mod matching;
pub mod parse;
pub mod reply;
pub mod survey;

use serde::{Deserialize, Serialize};

pub use dlr::DlrState;

/// Which webhook: `/webhooks/{route}/{provider}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    #[default]
    Sms,
    Voice,
    Dlr,
    /// Inbound e-mail (the `mail` webhook and IMAP polling).
    Mail,
}

impl Route {
    /// The URL segment and stored kind.
    pub const fn as_str(self) -> &'static str {
        match self {
            Route::Sms => "sms",
            Route::Voice => "voice",
            Route::Dlr => "dlr",
            Route::Mail => "mail",
        }
    }

    /// The segment back.
    pub fn parse(s: &str) -> Option<Route> {
        [Route::Sms, Route::Voice, Route::Dlr, Route::Mail]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// What a delivery receipt says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptFacts {
    /// The provider's id of the message (Twilio's `MessageSid`).
    pub provider_id: Option<String>,
    /// Our order id (`messo-<outbox id>`), when the provider echoes it.
    pub order_id: Option<String>,
    pub state: DlrState,
    /// The status as the provider wrote it.
    pub raw_status: String,
    pub code: Option<String>,
    /// Which part of a message sent in several parts, and how many there are.
    pub part: Option<u32>,
    pub parts: Option<u32>,
}

/// An attachment kept with a reply: the file is in the attachments folder under `stored_as`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentMeta {
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    /// The file name in the attachments folder (its hash), or none when it was over the size
    /// limit and not kept.
    pub stored_as: Option<String>,
}

/// What a verified webhook says, ready to store.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Parsed {
    pub route: Route,
    /// The provider's id of this event: with the endpoint and route, what makes a repeat a
    /// duplicate.
    pub external_id: String,
    /// E.164 for phones, a lowercase address for e-mail.
    pub sender: Option<String>,
    pub recipient: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    pub subject: Option<String>,
    pub text: Option<String>,
    /// Digits typed on the phone line's keypad.
    pub digits: Option<String>,
    /// Links to recordings or media, as the provider gave them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    pub occurred_at: Option<i64>,
    pub receipt: Option<ReceiptFacts>,
    /// An auto-reply or a bounce: recorded, never answered.
    #[serde(default)]
    pub automatic: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentMeta>,
    /// E-mail only: whether the sender is who `From` says ([`auth`]), as judged when it came
    /// in. Absent on other routes and on records stored before the check existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<auth::MailAuth>,
}

impl Parsed {
    /// What the personal-data lifecycle keeps of a record: its route, ids, instants, receipt
    /// facts and the size and hash of each attachment; the sender, recipients, subject, text,
    /// digits, media links and attachment names go, and no attachment file is named any more.
    pub fn without_personal_data(&self) -> Parsed {
        Parsed {
            route: self.route,
            external_id: self.external_id.clone(),
            occurred_at: self.occurred_at,
            receipt: self.receipt.clone(),
            automatic: self.automatic,
            attachments: self
                .attachments
                .iter()
                .map(|a| AttachmentMeta {
                    name: "allegato".to_owned(),
                    content_type: a.content_type.clone(),
                    size: a.size,
                    sha256: a.sha256.clone(),
                    stored_as: None,
                })
                .collect(),
            auth: self.auth.clone(),
            ..Parsed::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_without_personal_data_keeps_its_facts_only() {
        let p = Parsed {
            route: Route::Mail,
            external_id: "<m1@example.it>".to_owned(),
            sender: Some("mario.rossi@example.it".to_owned()),
            recipient: Some("urp@comune.it".to_owned()),
            recipients: vec!["urp@comune.it".to_owned()],
            subject: Some("Re: 2026/000001".to_owned()),
            text: Some("Ecco il documento".to_owned()),
            digits: Some("1234".to_owned()),
            references: vec!["https://media.example/rec".to_owned()],
            occurred_at: Some(1_772_000_000),
            automatic: true,
            attachments: vec![AttachmentMeta {
                name: "carta-rossi.pdf".to_owned(),
                content_type: "application/pdf".to_owned(),
                size: 3,
                sha256: "ab".repeat(32),
                stored_as: Some("ab".repeat(32)),
            }],
            ..Parsed::default()
        };
        let kept = p.without_personal_data();
        assert_eq!(
            (
                kept.route,
                kept.external_id.as_str(),
                kept.occurred_at,
                kept.automatic
            ),
            (Route::Mail, "<m1@example.it>", Some(1_772_000_000), true)
        );
        let text = serde_json::to_string(&kept).expect("json");
        for gone in ["rossi", "urp@", "documento", "1234", "media.example"] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert_eq!(kept.attachments[0].size, 3);
        assert_eq!(kept.attachments[0].stored_as, None);
    }
}
