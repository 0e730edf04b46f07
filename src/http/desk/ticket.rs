//! The ticket page: header, SLA with its day-by-day account, events, messages with their stored words and every attempt and receipt, replies and attachments, links, audit.
//!
//! Contacts (the citizen's addresses, a message's address, a reply's sender, and addresses in
//! events, errors and audit details) are masked unless an editor or admin asks for
//! `reveal=contacts`; every such request is audited (`contacts.revealed`, object = the number)
//! before the page is read, so the page lists it too. Attachments of replies are downloaded by
//! editors and up (audited `attachment.downloaded`), from the attachments folder by their
//! SHA-256: the sender's file name is only ever the download's suggested name.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::super::Problem;
use super::super::admin::json_response;
use super::super::openapi::{
    BadRequest, Forbidden, Internal, Invalid, NotFound, TicketNumber, Unauthorized,
};
use super::DeskState;
use crate::domain::Lang;
use crate::sla::explain::{self, TicketTimes};
use crate::store::{
    EventRecord, MessageRecord, ReplyRow, Role, StoreError, TicketPage, derive, evaluate,
};
use crate::ticket::FieldError;
use crate::time::Timestamp;

pub(super) fn routes() -> OpenApiRouter<DeskState> {
    OpenApiRouter::new()
        .routes(routes!(ticket_page))
        .routes(routes!(attachment))
}

/// An instant for people: RFC 3339 in the office's time zone.
pub(super) fn rfc(st: &DeskState, t: Timestamp) -> String {
    t.to_chrono().with_timezone(&st.admin.tz()).to_rfc3339()
}

/// A console answer that holds personal data: never stored by a cache, never sniffed.
pub(super) fn private(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// Keys whose values are a person's address or identity, wherever they sit in stored JSON
/// (an event's data, an audit record's detail).
const PERSONAL_KEYS: &[&str] = &[
    "email",
    "mobile",
    "pec",
    "fiscal_code",
    "address",
    "sender",
    "phone",
    "from",
    "to",
];

/// `v` with every string under a personal key masked.
fn mask_json(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let masked = match x {
                        Value::String(s) if PERSONAL_KEYS.contains(&k.as_str()) => {
                            Value::String(crate::redact::mask(s))
                        }
                        other => mask_json(other),
                    };
                    (k.clone(), masked)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(mask_json).collect()),
        other => other.clone(),
    }
}

/// The query of the ticket page.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // described, never built
struct PageParams {
    /// `contacts`: show the citizen's contacts and the messages' addresses unmasked (editor
    /// and up; audited as `contacts.revealed`). A viewer asking is refused (403).
    #[param(inline)]
    reveal: Option<RevealName>,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // described, never built
enum RevealName {
    Contacts,
}

/// The step the office reached, as the citizen reads it.
#[derive(Serialize, ToSchema)]
#[schema(as = DeskStep)]
struct Step {
    step: String,
    text: String,
}

/// The citizen, masked unless revealed.
#[derive(Serialize, ToSchema)]
#[schema(as = DeskCitizen)]
struct Citizen {
    #[schema(examples("it"))]
    language: String,
    #[schema(examples("email"))]
    preferred_channel: String,
    #[schema(required = true)]
    email: Option<String>,
    #[schema(required = true)]
    mobile: Option<String>,
    #[schema(required = true)]
    pec: Option<String>,
    #[schema(required = true)]
    fiscal_code: Option<String>,
    /// Channels the citizen refused.
    opt_out: Vec<String>,
    /// Whether the contacts above are shown unmasked.
    revealed: bool,
}

/// The ticket's header.
#[derive(Serialize, ToSchema)]
#[schema(as = DeskTicketHeader)]
struct Header {
    number: String,
    subject: String,
    office: String,
    priority: String,
    category: String,
    #[schema(required = true)]
    step: Option<Step>,
    #[schema(format = DateTime)]
    received_at: String,
    #[schema(format = DateTime, required = true)]
    closed_at: Option<String>,
    /// How the request reached the office (`desk`, `phone`, `email`…), when the CRM said.
    #[schema(required = true)]
    received_via: Option<String>,
    policy_version: i64,
    calendar_version: i64,
    /// Status links issued at or before this instant no longer open.
    #[schema(format = DateTime, required = true)]
    links_revoked_at: Option<String>,
    citizen: Citizen,
}

/// The SLA computed now, with the day-by-day account of its deadline.
#[derive(Serialize, ToSchema)]
#[schema(as = DeskSla)]
struct Sla {
    #[schema(examples("running", "warning", "paused", "breached", "closed"))]
    state: &'static str,
    #[schema(format = DateTime, required = true)]
    due_at: Option<String>,
    elapsed_s: i64,
    target_s: i64,
    remaining_s: i64,
    /// When the clock stopped waiting for the citizen (an integration request), if it waits.
    #[schema(format = DateTime, required = true)]
    paused_since: Option<String>,
    #[schema(required = true)]
    closed_late: Option<bool>,
    /// The account in Italian, a line per working day.
    explanation_text: String,
    /// The account for machines (as `GET /api/v1/tickets/{number}` gives it).
    #[schema(value_type = Object)]
    explanation: Value,
}

/// One event of the ticket's history.
#[derive(Serialize, ToSchema)]
#[schema(as = DeskEvent)]
struct Event {
    id: i64,
    kind: String,
    #[schema(format = DateTime)]
    at: String,
    #[schema(format = DateTime)]
    recorded_at: String,
    source: String,
    #[schema(value_type = Object)]
    data: Value,
}

/// The encoding an SMS needs.
#[derive(ToSchema)]
#[allow(dead_code)] // described, never built
enum SmsEncoding {
    #[schema(rename = "GSM-7")]
    Gsm7,
    #[schema(rename = "UCS-2")]
    Ucs2,
}

/// The SMS as it went on the air: its text (plain punctuation) and what it cost.
#[derive(Serialize, ToSchema)]
#[schema(as = DeskSmsWords)]
struct SmsWords {
    text: String,
    parts: u32,
    #[schema(inline, value_type = SmsEncoding)]
    encoding: &'static str,
}

/// The words a message went out with, exactly as stored before its first attempt.
#[derive(Serialize, ToSchema)]
#[schema(as = DeskWords)]
struct Words {
    subject: String,
    text: String,
    /// The e-mail's HTML (shown in a sandboxed frame), null for SMS and text-only messages.
    #[schema(required = true)]
    html: Option<String>,
    #[schema(required = true)]
    sms: Option<SmsWords>,
    #[schema(examples("cittadino/presa_in_carico/it"))]
    template: String,
    /// The template version rendered (0: the bundled default).
    version: i64,
}

/// One attempt to deliver a message and the provider's answer.
#[derive(Serialize, ToSchema)]
#[schema(as = DeskAttempt)]
struct Attempt {
    attempt: i64,
    #[schema(format = DateTime)]
    started_at: String,
    latency_ms: i64,
    channel: String,
    provider: String,
    outcome: String,
    #[schema(required = true)]
    code: Option<String>,
    #[schema(required = true)]
    provider_id: Option<String>,
    #[schema(required = true)]
    error: Option<String>,
}

/// A receipt about a message.
#[derive(Serialize, ToSchema)]
#[schema(as = DeskReceipt)]
struct Receipt {
    source: String,
    kind: String,
    #[serde(rename = "final")]
    #[schema(rename = "final")]
    final_state: String,
    #[schema(required = true)]
    detail: Option<String>,
    #[schema(format = DateTime)]
    received_at: String,
}

/// The receipt state of one part of an SMS.
#[derive(Serialize, ToSchema)]
#[schema(as = DeskPart)]
struct Part {
    part: i64,
    state: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// One message of the ticket, to the citizen or to the office, and its fate.
#[derive(Serialize, ToSchema)]
#[schema(as = DeskMessage)]
struct Message {
    id: i64,
    kind: String,
    #[schema(examples("citizen", "office"))]
    recipient: String,
    channel: String,
    /// The citizen's address masked unless revealed; the office's as it is.
    address: String,
    language: String,
    #[schema(examples("pending", "delivered", "uncertain", "dead"))]
    state: String,
    #[schema(required = true)]
    dlr_state: Option<String>,
    #[schema(required = true)]
    dlr_parts: Option<i64>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    not_before: String,
    #[schema(format = DateTime, required = true)]
    delivered_at: Option<String>,
    attempts: i64,
    resent: i64,
    in_doubt: bool,
    #[schema(required = true)]
    provider: Option<String>,
    #[schema(required = true)]
    provider_id: Option<String>,
    #[schema(required = true)]
    last_error: Option<String>,
    /// How the office handled it from a work queue (null until then).
    #[schema(value_type = Option<Object>, required = true)]
    resolution: Option<Value>,
    /// Null before the message was first rendered.
    #[schema(required = true)]
    words: Option<Words>,
    attempt_log: Vec<Attempt>,
    receipts: Vec<Receipt>,
    parts: Vec<Part>,
}

/// A file that came with a reply.
#[derive(Serialize, ToSchema)]
#[schema(as = DeskAttachment)]
struct Attachment {
    /// Its place in the reply: `/api/v1/admin/inbound/{id}/attachments/{index}`.
    index: usize,
    /// The sender's name, cleaned (no path, no control characters).
    name: String,
    content_type: String,
    size: u64,
    sha256: String,
    /// Whether the file was kept (false over `inbound.max_attachment_bytes`).
    stored: bool,
}

/// A reply of the citizen matched to the ticket.
#[derive(Serialize, ToSchema)]
#[schema(as = DeskReply)]
struct Reply {
    id: i64,
    #[schema(examples("mail", "sms", "voice"))]
    route: String,
    #[schema(format = DateTime)]
    received_at: String,
    #[schema(required = true)]
    sender: Option<String>,
    status: String,
    #[schema(required = true)]
    outcome: Option<String>,
    #[schema(required = true)]
    detail: Option<String>,
    #[schema(required = true)]
    subject: Option<String>,
    #[schema(required = true)]
    text: Option<String>,
    attachments: Vec<Attachment>,
}

/// The status links of the ticket.
#[derive(Serialize, ToSchema)]
#[schema(as = DeskLinks)]
struct Links {
    #[schema(format = DateTime, required = true)]
    revoked_at: Option<String>,
    /// Messages whose stored words carry a status link.
    messages_with_link: usize,
    /// When the last of them was first sent (its words are made then).
    #[schema(format = DateTime, required = true)]
    last_issued_at: Option<String>,
}

/// An audit record about the ticket.
#[derive(Serialize, ToSchema)]
#[schema(as = DeskAudit)]
struct Audit {
    #[schema(format = DateTime)]
    at: String,
    actor: String,
    #[schema(examples("contacts.revealed", "attachment.downloaded", "revoke_links"))]
    action: String,
    detail: Value,
}

/// Everything about one ticket.
#[derive(Serialize, ToSchema)]
#[schema(as = DeskTicketPage)]
struct PageBody {
    ticket: Header,
    sla: Sla,
    /// Oldest first.
    events: Vec<Event>,
    /// Oldest first, at most 500.
    messages: Vec<Message>,
    /// Oldest first, at most 500.
    replies: Vec<Reply>,
    links: Links,
    /// Newest first, at most 500.
    audit: Vec<Audit>,
    /// Whether the caller may act on the ticket from the console (an editor or admin, and
    /// `admin.staff_events` on).
    actions_allowed: bool,
    /// The lists cut at 500 entries (`messages`, `replies`, `audit`, `attempts`); empty when
    /// every list is whole.
    truncated: Vec<&'static str>,
}

fn event(st: &DeskState, e: &EventRecord, reveal: bool) -> Event {
    let mut data = e.data.clone();
    if let Value::Object(m) = &mut data {
        m.remove("kind");
        m.remove("at");
    }
    Event {
        id: e.id,
        kind: e.kind.clone(),
        at: rfc(st, e.occurred_at),
        recorded_at: rfc(st, e.recorded_at),
        source: e.source.clone(),
        data: if reveal { data } else { mask_json(&data) },
    }
}

fn masked_text(v: &Option<String>, reveal: bool) -> Option<String> {
    match reveal {
        true => v.clone(),
        false => v.as_deref().map(crate::redact::mask_text),
    }
}

/// Whether stored words carry a status link (`…/s/<token>`).
fn has_link(m: &MessageRecord) -> bool {
    m.rendered.as_ref().is_some_and(|w| {
        w.text.contains("/s/") || w.html.as_deref().is_some_and(|h| h.contains("/s/"))
    })
}

fn message(st: &DeskState, m: &MessageRecord, reveal: bool) -> Message {
    let words = m.rendered.as_ref().map(|w| Words {
        subject: w.subject.clone(),
        text: w.text.clone(),
        html: w.html.clone(),
        sms: (m.channel == "sms").then(|| {
            // What goes on the air: plain punctuation, as the SMS channel sends it.
            let text = crate::sms::plain_punctuation(w.text.trim());
            let cost = crate::sms::budget(&text);
            SmsWords {
                parts: cost.parts,
                encoding: match cost.encoding {
                    crate::sms::Encoding::Gsm7 => "GSM-7",
                    crate::sms::Encoding::Ucs2 => "UCS-2",
                },
                text,
            }
        }),
        template: w.template.clone(),
        version: w.version,
    });
    let millis = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|d| d.with_timezone(&st.admin.tz()).to_rfc3339())
            .unwrap_or_default()
    };
    Message {
        id: m.id,
        kind: m.kind.clone(),
        recipient: m.recipient.clone(),
        channel: m.channel.clone(),
        address: if reveal || m.recipient != "citizen" {
            m.address.clone()
        } else {
            crate::redact::mask(&m.address)
        },
        language: m.language.clone(),
        state: m.state.clone(),
        dlr_state: m.dlr_state.clone(),
        dlr_parts: m.dlr_parts,
        created_at: rfc(st, m.created_at),
        not_before: rfc(st, m.not_before),
        delivered_at: m.delivered_at.map(|t| rfc(st, t)),
        attempts: m.attempts,
        resent: m.resent,
        in_doubt: m.in_doubt,
        provider: m.provider.clone(),
        provider_id: m.provider_id.clone(),
        last_error: masked_text(&m.last_error, reveal),
        resolution: m.resolution.clone(),
        words,
        attempt_log: m
            .attempt_log
            .iter()
            .map(|a| Attempt {
                attempt: a.attempt,
                started_at: millis(a.started_at_ms),
                latency_ms: a.latency_ms,
                channel: a.channel.clone(),
                provider: a.provider.clone(),
                outcome: a.outcome.clone(),
                code: a.code.clone(),
                provider_id: a.provider_id.clone(),
                error: masked_text(&a.error, reveal),
            })
            .collect(),
        receipts: m
            .receipts
            .iter()
            .map(|r| Receipt {
                source: r.source.clone(),
                kind: r.kind.clone(),
                final_state: r.final_state.clone(),
                detail: masked_text(&r.detail, reveal),
                received_at: rfc(st, r.received_at),
            })
            .collect(),
        parts: m
            .parts
            .iter()
            .map(|p| Part {
                part: p.part,
                state: p.state.clone(),
                updated_at: rfc(st, p.updated_at),
            })
            .collect(),
    }
}

fn reply(st: &DeskState, r: &ReplyRow, reveal: bool) -> Reply {
    let parsed = r.parsed.as_ref();
    Reply {
        id: r.id,
        route: r.route.clone(),
        received_at: rfc(st, r.received_at),
        sender: match reveal {
            true => r.sender.clone(),
            false => r.sender.as_deref().map(crate::redact::mask),
        },
        status: r.status.clone(),
        outcome: r.outcome.clone(),
        detail: masked_text(&r.detail, reveal),
        subject: parsed.and_then(|p| p.subject.clone()),
        text: parsed.and_then(|p| p.text.clone()),
        attachments: parsed
            .map(|p| {
                p.attachments
                    .iter()
                    .enumerate()
                    .map(|(index, a)| Attachment {
                        index,
                        name: a.name.clone(),
                        content_type: a.content_type.clone(),
                        size: a.size,
                        sha256: a.sha256.clone(),
                        stored: a.stored_as.is_some(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn citizen(t: &crate::store::TicketRecord, reveal: bool) -> Citizen {
    let c = &t.citizen;
    let name = |v: Value| v.as_str().unwrap_or_default().to_owned();
    let show = |v: &Option<String>| match reveal {
        true => v.clone(),
        false => v.as_deref().map(crate::redact::mask),
    };
    Citizen {
        language: c.language.clone(),
        preferred_channel: name(serde_json::to_value(c.preferred_channel).unwrap_or_default()),
        email: show(&c.email),
        mobile: show(&c.mobile),
        pec: show(&c.pec),
        fiscal_code: show(&c.fiscal_code),
        opt_out: c
            .opt_out
            .iter()
            .map(|ch| name(serde_json::to_value(ch).unwrap_or_default()))
            .collect(),
        revealed: reveal,
    }
}

/// The page's body from what the store read, the SLA computed at `now`.
fn page_body(
    st: &DeskState,
    p: &TicketPage,
    reveal: bool,
    actions_allowed: bool,
    now: Timestamp,
) -> Result<PageBody, Problem> {
    let t = &p.ticket;
    let sla = st
        .admin
        .store()
        .versions()
        .sla(t.calendar_version, t.policy_version)
        .map_err(StoreError::from)?;
    let (received_at, derived) = derive(t.id, &p.events).map_err(StoreError::from)?;
    let fresh = evaluate(&sla, received_at, &derived, now).map_err(StoreError::from)?;
    let times = TicketTimes {
        id: Some(t.number.clone()),
        // A ticket switched to on-site: the account starts at the switch, as its term does.
        received_at: derived.clock_start(received_at),
        category: derived.category,
        priority: derived.priority,
        suspensions: derived.suspensions.clone(),
    };
    let explanation = explain::explain(&sla, times, now).map_err(StoreError::from)?;
    let received_via = p
        .events
        .iter()
        .find(|e| e.kind == "received")
        .and_then(|e| e.data["ticket"]["received_via"].as_str())
        .map(str::to_owned);
    let with_link: Vec<&MessageRecord> = p.messages.iter().filter(|m| has_link(m)).collect();
    let last_issued_at = with_link
        .iter()
        .map(|m| {
            m.attempt_log.first().map_or(m.created_at, |a| {
                Timestamp(a.started_at_ms.div_euclid(1000))
            })
        })
        .max();
    Ok(PageBody {
        ticket: Header {
            number: t.number.clone(),
            subject: t.subject.clone(),
            office: t.office.clone(),
            priority: t.priority.as_str().to_owned(),
            category: t.category.as_str().to_owned(),
            step: t.step.as_ref().map(|(step, text)| Step {
                step: step.clone(),
                text: text.clone(),
            }),
            received_at: rfc(st, t.received_at),
            closed_at: t.closed_at.map(|c| rfc(st, c)),
            received_via,
            policy_version: t.policy_version,
            calendar_version: t.calendar_version,
            links_revoked_at: p.links_revoked_at.map(|x| rfc(st, x)),
            citizen: citizen(t, reveal),
        },
        sla: Sla {
            state: fresh.state,
            due_at: fresh.due_at.map(|x| rfc(st, x)),
            elapsed_s: fresh.elapsed_s,
            target_s: fresh.target_s,
            remaining_s: fresh.remaining_s,
            paused_since: derived
                .waiting_since
                .filter(|_| fresh.state == "paused")
                .map(|x| rfc(st, x)),
            closed_late: fresh.closed_late,
            explanation_text: explain::render_text(&sla, &explanation, Lang::It),
            explanation: explain::render_json(&sla, &explanation),
        },
        events: p.events.iter().map(|e| event(st, e, reveal)).collect(),
        messages: p.messages.iter().map(|m| message(st, m, reveal)).collect(),
        replies: p.replies.iter().map(|r| reply(st, r, reveal)).collect(),
        links: Links {
            revoked_at: p.links_revoked_at.map(|x| rfc(st, x)),
            messages_with_link: with_link.len(),
            last_issued_at: last_issued_at.map(|x| rfc(st, x)),
        },
        audit: p
            .audit
            .iter()
            .map(|a| Audit {
                at: rfc(st, a.at),
                actor: a.actor.clone(),
                action: a.action.clone(),
                detail: if reveal {
                    a.detail.clone()
                } else {
                    mask_json(&a.detail)
                },
            })
            .collect(),
        actions_allowed,
        truncated: p.truncated.clone(),
    })
}

fn unreadable_query(e: QueryRejection) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "bad-request",
        "Unreadable request",
        e.body_text(),
    )
}

/// Read a ticket: everything about it
///
/// Header, the SLA computed now with its day-by-day account in Italian, the events, every
/// message (to the citizen and to the office) with the exact words stored before its first
/// attempt, each attempt with the provider's answer, receipts and SMS parts, the citizen's
/// replies with their attachments, the status links and the audit records about the ticket.
/// Contacts are masked unless `reveal=contacts` (editor and up; audited).
#[utoipa::path(
    get,
    path = "/api/v1/admin/tickets/{number}",
    operation_id = "deskTicketPage",
    tag = "desk",
    security(("adminSession" = ["viewer"]), ("adminToken" = ["viewer"])),
    params(TicketNumber, PageParams),
    responses(
        (status = 200, description = "The ticket.", body = PageBody),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
async fn ticket_page(
    State(st): State<DeskState>,
    Path(number): Path<String>,
    method: Method,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, Problem> {
    let user = st.admin.acting(&headers, &method, Role::Viewer).await?;
    let Query(params) = query.map_err(unreadable_query)?;
    let mut reveal = false;
    let mut errors = Vec::new();
    for (k, v) in &params {
        match (k.as_str(), v.as_str()) {
            ("reveal", "contacts") => reveal = true,
            ("reveal", other) => errors.push(FieldError {
                field: "reveal".into(),
                message: format!("unknown value {other:?}; expected contacts"),
            }),
            (other, _) => errors.push(FieldError {
                field: other.to_owned(),
                message: "unknown parameter; expected reveal".into(),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    if reveal && user.role < Role::Editor {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Not allowed",
            format!(
                "showing the citizen's contacts needs the editor role; {} has {}",
                user.username,
                user.role.as_str()
            ),
        ));
    }
    let desk = st.admin.store().desk();
    let not_found = || Problem::not_found(format!("ticket {number} not found"));
    if reveal {
        // Recorded before the page is read, and only for a ticket that exists.
        if st.admin.store().tickets().ticket(&number).await?.is_none() {
            return Err(not_found());
        }
        desk.contacts_revealed(&number, &user.username, st.admin.now())
            .await?;
        tracing::info!(actor = %user.username, ticket = %number, "contacts revealed");
    }
    let page = desk.ticket_page(&number).await?.ok_or_else(not_found)?;
    let allowed = user.role >= Role::Editor && st.config.admin.staff_events;
    let body = page_body(&st, &page, reveal, allowed, st.admin.now())?;
    Ok(private(json_response(StatusCode::OK, body)))
}

/// The path of an attachment download.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // described, never read
struct AttachmentPath {
    /// The inbound record (a reply's `id`).
    id: i64,
    /// The attachment's `index` in the reply.
    index: usize,
}

/// `name` for `Content-Disposition`: `filename*=UTF-8''…` (RFC 5987), every byte but the
/// unreserved ones percent-encoded.
fn disposition(name: &str) -> String {
    let mut out = String::from("attachment; filename*=UTF-8''");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Download an attachment of a reply
///
/// The file as kept (by its SHA-256) in the attachments folder, as `application/octet-stream`
/// with the sender's cleaned name as the suggested file name; never rendered by the browser.
/// Editors and up; audited (`attachment.downloaded`, object = the ticket's number, or
/// `inbound/<id>` for a reply matched to none). 404 for an unknown reply or index, and for a
/// file that was not kept (over `inbound.max_attachment_bytes`).
#[utoipa::path(
    get,
    path = "/api/v1/admin/inbound/{id}/attachments/{index}",
    operation_id = "deskDownloadAttachment",
    tag = "desk",
    security(("adminSession" = ["editor"]), ("adminToken" = ["editor"])),
    params(AttachmentPath),
    responses(
        (status = 200, description = "The file.", body = Vec<u8>,
         content_type = "application/octet-stream",
         headers(
            ("Content-Disposition" = String, description = "`attachment; filename*=UTF-8''<the cleaned name, percent-encoded>`."),
            ("Content-Security-Policy" = String, description = "`sandbox; default-src 'none'`."),
            ("X-Content-Type-Options" = String, description = "`nosniff`."),
         )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    ),
)]
async fn attachment(
    State(st): State<DeskState>,
    Path(path): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let user = st.admin.acting(&headers, &method, Role::Editor).await?;
    let (id, index) = path;
    let bad = |what: &str| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Unreadable request",
            format!("{what} must be a whole number"),
        )
    };
    let id: i64 = id.parse().map_err(|_| bad("id"))?;
    let index: usize = index.parse().map_err(|_| bad("index"))?;
    let gone = || Problem::not_found(format!("reply {id} has no kept attachment {index}"));
    let found = st
        .admin
        .store()
        .desk()
        .inbound_attachments(id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("reply {id} not found")))?;
    let meta = found.attachments.get(index).ok_or_else(gone)?;
    // The stored name is the file's hash, written by us; still, only a hash is ever a path.
    let stored = meta
        .stored_as
        .as_deref()
        .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(gone)?;
    let file = st.config.inbound.attachments_dir.join(stored);
    let bytes = match tokio::fs::read(&file).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(gone()),
        Err(e) => {
            tracing::error!(reply = id, index, error = %e, "an attachment cannot be read");
            return Err(Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "the attachment cannot be read",
            ));
        }
    };
    let object = found
        .number
        .clone()
        .unwrap_or_else(|| format!("inbound/{id}"));
    st.admin
        .store()
        .desk()
        .attachment_downloaded(
            &object,
            &user.username,
            &json!({"inbound": id, "index": index, "name": meta.name, "sha256": meta.sha256}),
            st.admin.now(),
        )
        .await?;
    let mut res = (StatusCode::OK, Body::from(bytes)).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition(&meta.name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    Ok(private(res))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_name_is_encoded_for_content_disposition() {
        assert_eq!(
            disposition("ricevuta pagamento è.pdf"),
            "attachment; filename*=UTF-8''ricevuta%20pagamento%20%C3%A8.pdf"
        );
        assert_eq!(
            disposition("a\"b;c.pdf"),
            "attachment; filename*=UTF-8''a%22b%3Bc.pdf"
        );
    }

    #[test]
    fn personal_keys_are_masked_anywhere_in_stored_json() {
        let v = json!({"ticket": {"number": "2026/000001", "citizen":
            {"email": "mario.rossi@example.it", "mobile": "+393471234567"}}, "text": "ok"});
        let m = mask_json(&v);
        assert_eq!(m["ticket"]["citizen"]["email"], "m***@example.it");
        assert_eq!(m["ticket"]["citizen"]["mobile"], "+39***567");
        assert_eq!(m["ticket"]["number"], "2026/000001");
        assert_eq!(m["text"], "ok");
    }
}
