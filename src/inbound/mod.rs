//! Inbound: citizens' replies (SMS, e-mail, the phone backup line) and providers' delivery
//! receipts. One pipeline for every provider family: **verify → parse → deduplicate → act →
//! answer**. This module holds the pure parts (verification, parsing, matching, the receipt
//! state machine); the HTTP edge is `http::webhooks`, the durable part `store::inbound`.
//!
//! A webhook is answered only after its record is committed (several per commit, so thousands
//! a second stay durable); acting on it — matching a ticket, resuming a clock, moving a
//! receipt's state — happens on the daemon's next pass, from the stored record, so a crash
//! between the answer and the action loses nothing.

pub mod files;
pub mod imap;
pub mod mail;
pub mod mailbox;
pub mod verify;

use crate::config::{Endpoint, Family};
pub use messo_core::inbound::{
    AttachmentMeta, DlrState, Parsed, ReceiptFacts, Route, auth, dlr, matching, parse,
};
use parse::{BadPayload, Fields};
use verify::Refusal;

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
        // Vonage reads an NCCO from every answer: without the answering there is none to give.
        (Family::Vonage { .. }, Route::Voice) => {
            return Err(Rejection::NotHere(format!(
                "endpoint {:?} (vonage) answers calls only with [voice] enabled",
                endpoint.name
            )));
        }
        _ => return Err(not_here(endpoint, route)),
    };
    Ok(parsed)
}

/// A verified Vonage Voice callback read: a request of the call for the answering, or a
/// progress event that needs no answer. `called` is the number the caller dialled, when the
/// callback names it (the caller id a transfer shows).
pub fn vonage_call(
    req: &Request<'_>,
) -> Result<(messo_core::phone::vonage::Callback, Option<String>), Rejection> {
    if !is_json(req) {
        return Err(Rejection::Malformed(
            "Vonage callbacks are JSON (set the application's answer and event methods to POST)"
                .to_owned(),
        ));
    }
    let callback = messo_core::phone::vonage::parse(req.body)
        .map_err(|e| Rejection::Malformed(e.to_string()))?;
    Ok((callback, messo_core::phone::vonage::called(req.body)))
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
        Family::Vonage { secrets } => {
            let s: Vec<&str> = secrets.iter().map(String::as_str).collect();
            verify::vonage(
                &s,
                (req.header)("authorization").as_deref(),
                req.body,
                now,
                tolerance_s,
            )?;
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
