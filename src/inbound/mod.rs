//! Inbound: citizens' replies (SMS, e-mail, the phone backup line) and providers' delivery
//! receipts. One pipeline for every provider family: **verify → parse → deduplicate → act →
//! answer**. This module holds the pure parts (verification, parsing, matching, the receipt
//! state machine); the HTTP edge is `http::webhooks`, the durable part `store::inbound`.
//!
//! A webhook is answered only after its record is committed (several per commit, so thousands
//! a second stay durable); acting on it — matching a ticket, resuming a clock, moving a
//! receipt's state — happens on the daemon's next pass, from the stored record, so a crash
//! between the answer and the action loses nothing.

pub mod auth;
pub mod dlr;
pub mod files;
pub mod imap;
pub mod mail;
pub mod mailbox;
pub mod matching;
pub mod parse;
pub mod verify;

use serde::{Deserialize, Serialize};

use crate::config::{Endpoint, Family};
pub use dlr::DlrState;
use parse::{BadPayload, Fields};
use verify::Refusal;

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

/// Why a webhook was refused, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    NotHere(String),
    /// Our side failed (a file could not be written): the provider should retry.
    #[error("{0}")]
    Unavailable(String),
}

impl Rejection {
    pub fn status(&self) -> u16 {
        match self {
            Rejection::Refused(r) => r.status(),
            Rejection::Malformed(_) => 400,
            Rejection::NotHere(_) => 404,
            Rejection::Unavailable(_) => 503,
        }
    }
}

impl From<BadPayload> for Rejection {
    fn from(b: BadPayload) -> Rejection {
        Rejection::Malformed(b.0)
    }
}

/// A request as the edge received it: just what verification and parsing need.
pub struct Request<'a> {
    /// The path and query as received (`/webhooks/sms/twilio?x=1`).
    pub path_and_query: &'a str,
    /// The token path segment, for endpoints that use one.
    pub token: Option<&'a str>,
    /// A header by lowercase name.
    pub header: &'a (dyn Fn(&str) -> Option<String> + Send + Sync),
    pub body: &'a [u8],
}

fn is_json(req: &Request<'_>) -> bool {
    (req.header)("content-type").is_some_and(|c| c.to_ascii_lowercase().contains("json"))
}

fn query_value(path_and_query: &str, name: &str) -> Option<String> {
    let q = path_and_query.split_once('?')?.1;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Verifies a webhook for `endpoint` and, when it verifies, reads it. `public_base_url` is the
/// address providers call (a TLS proxy changes scheme and host, so it comes from
/// configuration); `now` is Unix seconds. The mail route's multipart body is read by the edge
/// after [`verify_only`].
pub fn accept(
    endpoint: &Endpoint,
    route: Route,
    req: &Request<'_>,
    public_base_url: &str,
    now: i64,
    tolerance_s: i64,
) -> Result<Parsed, Rejection> {
    let pairs = verify_only(endpoint, route, req, public_base_url, now, tolerance_s)?;
    let fields = match pairs {
        Some(p) => Fields::from_pairs(&p),
        None if is_json(req) => Fields::from_json(req.body)?,
        None => Fields::from_pairs(&verify::form_pairs(req.body)),
    };
    let parsed = match (&endpoint.family, route) {
        (Family::Twilio { .. }, Route::Sms) => parse::twilio_sms(&fields)?,
        (Family::Twilio { .. }, Route::Dlr) => parse::twilio_dlr(
            &fields,
            query_value(req.path_and_query, "order_id").as_deref(),
        )?,
        (Family::Twilio { .. }, Route::Voice) => parse::twilio_voice(&fields)?,
        (Family::RestIt { .. }, Route::Sms) => parse::rest_it_sms(&fields)?,
        (Family::RestIt { .. }, Route::Dlr) => parse::rest_it_dlr(&fields)?,
        (Family::Generic { .. }, Route::Sms) => parse::generic_sms(&fields)?,
        (Family::Generic { .. }, Route::Dlr) => parse::generic_dlr(&fields)?,
        (Family::Generic { .. }, Route::Voice) => parse::generic_voice(&fields)?,
        (Family::Generic { .. } | Family::Mail { .. }, Route::Mail) => parse::mail_fields(&fields)?,
        _ => return Err(not_here(endpoint, route)),
    };
    Ok(parsed)
}

fn not_here(endpoint: &Endpoint, route: Route) -> Rejection {
    Rejection::NotHere(format!(
        "endpoint {:?} ({}) takes no {} webhooks",
        endpoint.name,
        endpoint.family.as_str(),
        route.as_str()
    ))
}

/// Step one alone: the request's credentials. Returns the decoded form pairs when verifying
/// needed them (Twilio), so they are not decoded twice.
pub fn verify_only(
    endpoint: &Endpoint,
    route: Route,
    req: &Request<'_>,
    public_base_url: &str,
    now: i64,
    tolerance_s: i64,
) -> Result<Option<Vec<(String, String)>>, Rejection> {
    if !endpoint.family.takes(route) {
        return Err(not_here(endpoint, route));
    }
    match &endpoint.family {
        Family::Twilio { auth_token } => {
            if is_json(req) {
                return Err(Rejection::Malformed(
                    "Twilio webhooks are form-encoded; this one is JSON".to_owned(),
                ));
            }
            let pairs = verify::form_pairs(req.body);
            let url = format!("{public_base_url}{}", req.path_and_query);
            verify::twilio(
                &url,
                &pairs,
                auth_token,
                (req.header)("x-twilio-signature").as_deref(),
            )?;
            Ok(Some(pairs))
        }
        Family::RestIt { token } | Family::Mail { token } => {
            verify::token(req.token, token)?;
            Ok(None)
        }
        Family::Generic { secrets } => {
            let s: Vec<&str> = secrets.iter().map(String::as_str).collect();
            verify::generic(
                &s,
                (req.header)("x-messo-timestamp").as_deref(),
                (req.header)("x-messo-signature").as_deref(),
                req.body,
                now,
                tolerance_s,
            )?;
            Ok(None)
        }
    }
}
