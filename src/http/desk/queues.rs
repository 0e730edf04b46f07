//! The work queues: held (uncertain) messages, citizens unreachable on every channel, unmatched
//! replies, SMS opt-outs; their counts, their lists a page at a time (viewer) and the actions
//! that empty them (editor, CSRF, audited in the action's transaction, idempotent: the same
//! action again answers `already: true` and changes nothing; another action on an item that
//! left its queue is 409 naming where it stands). Definitions: `docs/console.md`.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::super::admin::{json_response, parse_body};
use super::super::openapi::{
    Conflict, CsrfToken, Forbidden, Internal, Invalid, MalformedJson, NotFound, TicketNumber,
    Unauthorized,
};
use super::super::problem::Problem;
use super::DeskState;
use crate::redact::mask;
use crate::store::{
    Acted, Chain, InboundError, QueueError, QueuedMessage, Role, StoreError, TicketError,
    inbound_policy,
};
use crate::ticket::{CONTACT_CHANNELS, FieldError};
use crate::time::Timestamp;

pub(super) fn routes() -> OpenApiRouter<DeskState> {
    OpenApiRouter::new()
        .routes(routes!(counts))
        .routes(routes!(uncertain))
        .routes(routes!(unreachable))
        .routes(routes!(unmatched))
        .routes(routes!(opt_outs))
        .routes(routes!(resend))
        .routes(routes!(mark_delivered))
        .routes(routes!(give_up))
        .routes(routes!(contact_made))
        .routes(routes!(correct_contact))
        .routes(routes!(attach))
        .routes(routes!(dismiss))
        .routes(routes!(lift_opt_out))
}

// ---------------------------------------------------------------------------------------------
// Shared by the desk's actions.

/// A queue or action error as a problem: 404, 409, the ticket's own (422, 404, 409), else 500.
pub(super) fn problem(e: QueueError) -> Problem {
    match e {
        QueueError::NotFound(m) => Problem::not_found(m),
        QueueError::Conflict(m) => conflict(m),
        QueueError::Ticket(t) | QueueError::Inbound(InboundError::Ticket(t)) => {
            StoreError::Ticket(t).into()
        }
        other => StoreError::Queue(other).into(),
    }
}

pub(super) fn conflict(m: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "conflict",
        "The item's state does not allow this",
        m,
    )
}

pub(super) fn field(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// A text of the body, trimmed: at most `max` characters, required or not (empty is absent).
pub(super) fn text(
    errors: &mut Vec<FieldError>,
    name: &str,
    value: Option<&str>,
    required: bool,
    max: usize,
) -> Option<String> {
    let v = value.map(str::trim).filter(|s| !s.is_empty());
    match v {
        None if required => {
            errors.push(field(name, "is required"));
            None
        }
        Some(s) if s.chars().count() > max => {
            errors.push(field(name, format!("must be at most {max} characters")));
            None
        }
        other => other.map(str::to_owned),
    }
}

/// The body as `T`; an empty body is `{}`.
pub(super) fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, Problem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return parse_body(&Bytes::from_static(b"{}"));
    }
    parse_body(bytes)
}

fn rfc(st: &DeskState, t: Timestamp) -> String {
    t.to_chrono().with_timezone(&st.admin.tz()).to_rfc3339()
}

/// An id in a path; anything else is an item that does not exist.
fn id_of(raw: &str, what: &str) -> Result<i64, Problem> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Problem::not_found(format!("{what} {raw} not found")))
}

/// A page's query: `after` (the cursor of the previous page), `limit` (1–100), and for the
/// opt-outs `number`. Anything else is 422 naming it.
struct Page {
    after: Option<String>,
    limit: i64,
    number: Option<String>,
}

fn page(query: Option<&str>, number_allowed: bool) -> Result<Page, Problem> {
    let mut p = Page {
        after: None,
        limit: 50,
        number: None,
    };
    let mut errors = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "after" if !v.is_empty() => p.after = Some(v.into_owned()),
            "after" => {}
            "limit" => match v.parse::<i64>() {
                Ok(n) if (1..=100).contains(&n) => p.limit = n,
                _ => errors.push(field("limit", "must be an integer from 1 to 100")),
            },
            "number" if number_allowed => p.number = Some(v.into_owned()),
            other => errors.push(field(
                other,
                if number_allowed {
                    "unknown parameter; expected after, limit, number"
                } else {
                    "unknown parameter; expected after, limit"
                },
            )),
        }
    }
    if errors.is_empty() {
        Ok(p)
    } else {
        Err(Problem::invalid(errors))
    }
}

/// The id after which a page of an id-ordered queue starts.
fn after_id(p: &Page) -> Result<i64, Problem> {
    match &p.after {
        None => Ok(0),
        Some(a) => {
            a.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                Problem::invalid(vec![field("after", "is not a cursor of this list")])
            })
        }
    }
}

/// The cursor of the next page: the last id when the page is full.
fn next_of(ids: &[i64], limit: i64) -> Option<String> {
    (ids.len() as i64 == limit)
        .then(|| ids.last().map(i64::to_string))
        .flatten()
}

// ---------------------------------------------------------------------------------------------
// Counts and lists.

/// How many items wait in each queue.
#[derive(Serialize, ToSchema)]
#[schema(as = QueueCounts)]
struct CountsBody {
    /// Held messages (`uncertain`).
    uncertain: i64,
    /// Dead citizen messages no channel is left for, not handled.
    unreachable: i64,
    /// Replies matched to no ticket.
    unmatched: i64,
    /// Numbers opted out of SMS.
    opt_outs: i64,
}

/// The work queues' counts
#[utoipa::path(
    get,
    path = "/api/v1/admin/queues",
    operation_id = "queueCounts",
    tag = "desk",
    security(("adminSession" = ["viewer"]), ("adminToken" = ["viewer"])),
    responses(
        (status = 200, description = "The counts.", body = CountsBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
async fn counts(
    State(st): State<DeskState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    st.admin.acting(&headers, &method, Role::Viewer).await?;
    let c = st.admin.store().queues().counts().await.map_err(problem)?;
    Ok(json_response(
        StatusCode::OK,
        CountsBody {
            uncertain: c.uncertain,
            unreachable: c.unreachable,
            unmatched: c.unmatched,
            opt_outs: c.opt_outs,
        },
    ))
}

/// A page of a queue.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // described, read by `page`
struct PageQuery {
    /// The cursor: the previous page's `next`.
    after: Option<String>,
    /// Items per page, 1–100.
    #[param(default = 50, minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// A page of opt-outs.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // described, read by `page`
struct OptOutQuery {
    /// The cursor: the previous page's `next`.
    after: Option<String>,
    /// Items per page, 1–100.
    #[param(default = 50, minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// Only this number, in any usual spelling (normalised like the ticket's mobile).
    number: Option<String>,
}

/// A held message.
#[derive(Serialize, ToSchema)]
struct UncertainItem {
    id: i64,
    /// The ticket's number; null for a message about no ticket.
    number: Option<String>,
    kind: String,
    /// `citizen`, `office`, `supervisor`, `tester`.
    recipient: String,
    channel: String,
    /// Masked.
    address: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    attempts: i64,
    provider: Option<String>,
    last_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct UncertainPage {
    items: Vec<UncertainItem>,
    /// The cursor of the next page (`after`); null on the last.
    next: Option<String>,
}

/// Held messages (outcome unknown)
///
/// Messages whose last attempt may or may not have gone through, held for a person: resend,
/// mark delivered or give up. Oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/queues/uncertain",
    operation_id = "queueUncertain",
    tag = "desk",
    security(("adminSession" = ["viewer"]), ("adminToken" = ["viewer"])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page.", body = UncertainPage),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
async fn uncertain(
    State(st): State<DeskState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    st.admin.acting(&headers, &method, Role::Viewer).await?;
    let p = page(query.as_deref(), false)?;
    let rows = st
        .admin
        .store()
        .queues()
        .uncertain(after_id(&p)?, p.limit)
        .await
        .map_err(problem)?;
    let ids: Vec<i64> = rows.iter().map(|m| m.id).collect();
    let items = rows
        .into_iter()
        .map(|m| UncertainItem {
            address: mask(&m.address),
            created_at: rfc(&st, m.created_at),
            updated_at: rfc(&st, m.updated_at),
            id: m.id,
            number: m.number,
            kind: m.kind,
            recipient: m.recipient,
            channel: m.channel,
            attempts: m.attempts,
            provider: m.provider,
            last_error: m.last_error,
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        UncertainPage {
            items,
            next: next_of(&ids, p.limit),
        },
    ))
}

/// A citizen's message no channel is left for.
#[derive(Serialize, ToSchema)]
struct UnreachableItem {
    id: i64,
    number: String,
    kind: String,
    channel: String,
    /// Masked.
    address: String,
    #[schema(format = DateTime)]
    created_at: String,
    last_error: Option<String>,
    /// The channels tried for this notice, in order.
    tried: Vec<String>,
}

#[derive(Serialize, ToSchema)]
struct UnreachablePage {
    items: Vec<UnreachableItem>,
    /// The cursor of the next page (`after`); null on the last.
    next: Option<String>,
}

fn unreachable_item(st: &DeskState, m: QueuedMessage) -> UnreachableItem {
    UnreachableItem {
        tried: m.tried(),
        address: mask(&m.address),
        created_at: rfc(st, m.created_at),
        id: m.id,
        number: m.number.unwrap_or_default(),
        kind: m.kind,
        channel: m.channel,
        last_error: m.last_error,
    }
}

/// Unreachable citizens
///
/// Dead messages to a citizen about a ticket whose fallback chain ended at the office (the
/// office was told `cittadino_irraggiungibile`) or had no channel left, not yet handled: record
/// a contact made, or correct the contact. Oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/queues/unreachable",
    operation_id = "queueUnreachable",
    tag = "desk",
    security(("adminSession" = ["viewer"]), ("adminToken" = ["viewer"])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page.", body = UnreachablePage),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
async fn unreachable(
    State(st): State<DeskState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    st.admin.acting(&headers, &method, Role::Viewer).await?;
    let p = page(query.as_deref(), false)?;
    let rows = st
        .admin
        .store()
        .queues()
        .unreachable(after_id(&p)?, p.limit)
        .await
        .map_err(problem)?;
    let ids: Vec<i64> = rows.iter().map(|m| m.id).collect();
    let items = rows.into_iter().map(|m| unreachable_item(&st, m)).collect();
    Ok(json_response(
        StatusCode::OK,
        UnreachablePage {
            items,
            next: next_of(&ids, p.limit),
        },
    ))
}

/// An attachment of a reply.
#[derive(Serialize, ToSchema)]
struct AttachmentItem {
    name: String,
    /// Bytes.
    size: u64,
}

/// A reply matched to no ticket.
#[derive(Serialize, ToSchema)]
struct UnmatchedItem {
    id: i64,
    /// `sms`, `mail`, `voice`.
    route: String,
    #[schema(format = DateTime)]
    received_at: String,
    /// Masked.
    sender: Option<String>,
    subject: Option<String>,
    /// The first 500 characters.
    text: Option<String>,
    attachments: Vec<AttachmentItem>,
    /// Why it matched nothing.
    detail: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct UnmatchedPage {
    items: Vec<UnmatchedItem>,
    /// The cursor of the next page (`after`); null on the last.
    next: Option<String>,
}

/// Unmatched replies
///
/// Citizens' replies that named no ticket on file: attach to a ticket, or dismiss. Oldest
/// first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/queues/unmatched",
    operation_id = "queueUnmatched",
    tag = "desk",
    security(("adminSession" = ["viewer"]), ("adminToken" = ["viewer"])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page.", body = UnmatchedPage),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
async fn unmatched(
    State(st): State<DeskState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    st.admin.acting(&headers, &method, Role::Viewer).await?;
    let p = page(query.as_deref(), false)?;
    let rows = st
        .admin
        .store()
        .queues()
        .unmatched(after_id(&p)?, p.limit)
        .await
        .map_err(problem)?;
    let ids: Vec<i64> = rows.iter().map(|m| m.id).collect();
    let items = rows
        .into_iter()
        .map(|r| UnmatchedItem {
            id: r.id,
            route: r.route,
            received_at: rfc(&st, r.received_at),
            sender: r.sender.as_deref().map(mask),
            subject: r.parsed.subject.clone(),
            text: r
                .parsed
                .text
                .as_deref()
                .map(|t| t.chars().take(500).collect()),
            attachments: r
                .parsed
                .attachments
                .iter()
                .map(|a| AttachmentItem {
                    name: a.name.clone(),
                    size: a.size,
                })
                .collect(),
            detail: r.detail,
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        UnmatchedPage {
            items,
            next: next_of(&ids, p.limit),
        },
    ))
}

/// A number opted out of SMS.
#[derive(Serialize, ToSchema)]
struct OptOutItem {
    /// Masked.
    number: String,
    /// The word the citizen sent (`STOP`).
    keyword: String,
    #[schema(format = DateTime)]
    opted_out_at: String,
}

#[derive(Serialize, ToSchema)]
struct OptOutPage {
    items: Vec<OptOutItem>,
    /// The cursor of the next page (`after`); null on the last.
    next: Option<String>,
}

/// A number as the citizen gives it, normalised like the ticket's mobile (E.164).
fn normalised(number: &str) -> Result<String, Problem> {
    crate::ticket::normalize_e164(number).ok_or_else(|| {
        Problem::invalid(vec![field(
            "number",
            "is not a phone number; write it like +393471234567 or 347 123 4567",
        )])
    })
}

/// SMS opt-outs
///
/// Numbers that asked for no more SMS, newest first; with `number`, only that one. Numbers
/// are masked.
#[utoipa::path(
    get,
    path = "/api/v1/admin/queues/opt-outs",
    operation_id = "queueOptOuts",
    tag = "desk",
    security(("adminSession" = ["viewer"]), ("adminToken" = ["viewer"])),
    params(OptOutQuery),
    responses(
        (status = 200, description = "A page.", body = OptOutPage),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
async fn opt_outs(
    State(st): State<DeskState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    st.admin.acting(&headers, &method, Role::Viewer).await?;
    let p = page(query.as_deref(), true)?;
    let number = p.number.as_deref().map(normalised).transpose()?;
    // The list is short and ordered by instant; the cursor is a position in it, so no number
    // travels in a URL.
    let offset = match &p.after {
        None => 0,
        Some(a) => a
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=1_000_000).contains(n))
            .ok_or_else(|| {
                Problem::invalid(vec![field("after", "is not a cursor of this list")])
            })?,
    };
    let rows = st
        .admin
        .store()
        .queues()
        .opt_outs(number.as_deref(), offset, p.limit)
        .await
        .map_err(problem)?;
    let next = (rows.len() as i64 == p.limit).then(|| (offset + p.limit).to_string());
    let items = rows
        .into_iter()
        .map(|o| OptOutItem {
            number: mask(&o.number),
            keyword: o.keyword,
            opted_out_at: rfc(&st, o.opted_out_at),
        })
        .collect();
    Ok(json_response(StatusCode::OK, OptOutPage { items, next }))
}

// ---------------------------------------------------------------------------------------------
// Actions.

/// What an action did.
#[derive(Serialize, ToSchema)]
#[schema(as = QueueActionDone)]
struct ActedBody {
    /// The same action was done before (a double click): nothing changed now.
    already: bool,
    /// The item's state now: a message's (`pending`, `delivered`, `dead`), a reply's
    /// (`done`, `dismissed`), `lifted`, `changed` or `unchanged` for a contact.
    state: String,
    /// The ticket it is about.
    number: Option<String>,
    /// The message owed instead (give-up), or the first queued again (contact correction).
    replacement: Option<i64>,
    /// The event recorded on the ticket.
    event_id: Option<i64>,
    /// For an attached reply: `integration` (the clock resumed) or `note`.
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<String>,
    /// What was done, as audited (addresses masked).
    #[schema(value_type = Object)]
    detail: Value,
}

fn acted(a: Acted) -> Response {
    let outcome = a.detail["outcome"].as_str().map(str::to_owned);
    json_response(
        StatusCode::OK,
        ActedBody {
            already: a.already,
            state: a.state,
            number: a.number,
            replacement: a.replacement,
            event_id: a.event_id,
            outcome,
            detail: a.detail,
        },
    )
}

/// The message's id in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // described, read as text
struct MessageId {
    /// The outbox row's id.
    id: i64,
}

/// The inbound record's id in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // described, read as text
struct InboundId {
    /// The inbound record's id.
    id: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = QueueReason)]
struct ReasonBody {
    /// Why (kept in the audit log); at most 1000 characters. Required to mark delivered.
    reason: Option<String>,
}

/// Send a held message again
///
/// The same outbox row goes back to the queue now, no longer held: the e-mail goes with the
/// same Message-ID, the SMS with the same order id; the resend is counted.
#[utoipa::path(
    post,
    path = "/api/v1/admin/messages/{id}/resend",
    operation_id = "resendMessage",
    tag = "desk",
    security(("adminSession" = ["editor"]), ("adminToken" = ["editor"])),
    params(MessageId, CsrfToken),
    request_body = ReasonBody,
    responses(
        (status = 200, description = "Queued again, or `already` so.", body = ActedBody),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
async fn resend(
    State(st): State<DeskState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let user = st.admin.acting(&headers, &method, Role::Editor).await?;
    let id = id_of(&id, "message")?;
    let b: ReasonBody = body(&bytes)?;
    let mut errors = Vec::new();
    let reason = text(&mut errors, "reason", b.reason.as_deref(), false, 1000);
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let a = st
        .admin
        .store()
        .queues()
        .resend(id, &user.username, reason.as_deref(), st.admin.now())
        .await
        .map_err(problem)?;
    if !a.already {
        st.admin.wake();
    }
    Ok(acted(a))
}

/// Mark a held message delivered
///
/// The office checked that it arrived (the reason says how): it leaves the queue delivered.
#[utoipa::path(
    post,
    path = "/api/v1/admin/messages/{id}/mark-delivered",
    operation_id = "markMessageDelivered",
    tag = "desk",
    security(("adminSession" = ["editor"]), ("adminToken" = ["editor"])),
    params(MessageId, CsrfToken),
    request_body = ReasonBody,
    responses(
        (status = 200, description = "Delivered, or `already` so.", body = ActedBody),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
async fn mark_delivered(
    State(st): State<DeskState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let user = st.admin.acting(&headers, &method, Role::Editor).await?;
    let id = id_of(&id, "message")?;
    let b: ReasonBody = body(&bytes)?;
    let mut errors = Vec::new();
    let reason = text(&mut errors, "reason", b.reason.as_deref(), true, 1000);
    let Some(reason) = reason.filter(|_| errors.is_empty()) else {
        return Err(Problem::invalid(errors));
    };
    let a = st
        .admin
        .store()
        .queues()
        .mark_delivered(id, &user.username, &reason, st.admin.now())
        .await
        .map_err(problem)?;
    Ok(acted(a))
}

/// Give a held message up
///
/// The message is dead and the fallback chain owes the next channel (or tells the office the
/// citizen could not be reached), as for a message refused for good.
#[utoipa::path(
    post,
    path = "/api/v1/admin/messages/{id}/give-up",
    operation_id = "giveUpMessage",
    tag = "desk",
    security(("adminSession" = ["editor"]), ("adminToken" = ["editor"])),
    params(MessageId, CsrfToken),
    request_body = ReasonBody,
    responses(
        (status = 200, description = "Dead, the fallback owed; or `already` so.", body = ActedBody),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
async fn give_up(
    State(st): State<DeskState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let user = st.admin.acting(&headers, &method, Role::Editor).await?;
    let id = id_of(&id, "message")?;
    let b: ReasonBody = body(&bytes)?;
    let mut errors = Vec::new();
    let reason = text(&mut errors, "reason", b.reason.as_deref(), false, 1000);
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let now = st.admin.now();
    let policy = inbound_policy(&st.config);
    let chain = Chain {
        fallback: &policy.fallback,
        office_email: &policy.office_email,
        sms_not_before: sms_opening(&st, now),
    };
    let a = st
        .admin
        .store()
        .queues()
        .give_up(id, &user.username, reason.as_deref(), &chain, now)
        .await
        .map_err(problem)?;
    if !a.already {
        st.admin.wake();
    }
    Ok(acted(a))
}

/// When an SMS owed at `now` may go: the next opening of the SMS window (`now` when the window
/// cannot be computed: the engine's own notices would fail first).
fn sms_opening(st: &DeskState, now: Timestamp) -> Timestamp {
    let sla = match st.config.sla() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "the SMS window is unknown: an SMS owed goes at once");
            return now;
        }
    };
    match crate::engine::sms_calendar(&sla.calendar, &st.config.notify) {
        Ok(c) => c.next_opening(now).unwrap_or(now),
        Err(e) => {
            tracing::warn!(error = %e, "the SMS window is unknown: an SMS owed goes at once");
            now
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ContactMade)]
struct ContactMadeBody {
    /// How the office reached the citizen.
    #[schema(inline)]
    channel: Option<ContactChannel>,
    /// What was said; at most 4000 characters.
    text: Option<String>,
}

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ContactChannel {
    Phone,
    Desk,
}

impl ContactChannel {
    fn as_str(self) -> &'static str {
        match self {
            ContactChannel::Phone => "phone",
            ContactChannel::Desk => "desk",
        }
    }
}

/// Record a contact made with an unreachable citizen
///
/// A `contact_made` event on the ticket (allowed on a closed ticket too), and every message of
/// the ticket in the unreachable queue handled by it. 403 with `admin.staff_events = false`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/messages/{id}/contact-made",
    operation_id = "recordContactMade",
    tag = "desk",
    security(("adminSession" = ["editor"]), ("adminToken" = ["editor"])),
    params(MessageId, CsrfToken),
    request_body = ContactMadeBody,
    responses(
        (status = 200, description = "Recorded, or `already` so.", body = ActedBody),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
async fn contact_made(
    State(st): State<DeskState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let user = st.admin.acting(&headers, &method, Role::Editor).await?;
    staff_events_on(&st)?;
    let id = id_of(&id, "message")?;
    let b: ContactMadeBody = body(&bytes)?;
    let mut errors = Vec::new();
    if b.channel.is_none() {
        errors.push(field(
            "channel",
            format!("is required: {}", CONTACT_CHANNELS.join("|")),
        ));
    }
    let text = text(&mut errors, "text", b.text.as_deref(), true, 4000);
    let (Some(channel), Some(text)) = (b.channel, text) else {
        return Err(Problem::invalid(errors));
    };
    let a = st
        .admin
        .store()
        .queues()
        .contact_made(id, &user.username, channel.as_str(), &text, st.admin.now())
        .await
        .map_err(problem)?;
    Ok(acted(a))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = ContactCorrection)]
#[allow(dead_code)] // described; the body is read by `ticket::contact_change`
struct ContactBody {
    /// The citizen's e-mail address.
    email: Option<String>,
    /// The mobile number, in any usual spelling (stored in E.164).
    mobile: Option<String>,
    /// The citizen's PEC address.
    pec: Option<String>,
    /// Why (how the office learnt it); at most 1000 characters.
    #[schema(min_length = 1, max_length = 1000)]
    reason: String,
}

/// Correct the citizen's contacts
///
/// At least one of `email`, `mobile`, `pec`, validated as the ticket's citizen is: a
/// `contact_changed` event, the ticket's citizen updated, and every notice owed to the citizen
/// that never arrived queued again through a corrected address (those dead messages handled).
/// The same addresses again change nothing (`already`). 403 with `admin.staff_events = false`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/tickets/{number}/contact",
    operation_id = "correctContact",
    tag = "desk",
    security(("adminSession" = ["editor"]), ("adminToken" = ["editor"])),
    params(TicketNumber, CsrfToken),
    request_body = ContactBody,
    responses(
        (status = 200, description = "Corrected, or `already` so.", body = ActedBody),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
async fn correct_contact(
    State(st): State<DeskState>,
    Path(number): Path<String>,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let user = st.admin.acting(&headers, &method, Role::Editor).await?;
    staff_events_on(&st)?;
    let value: Value = body(&bytes)?;
    let change = crate::ticket::contact_change(&value).map_err(Problem::invalid)?;
    let now = st.admin.now();
    let a = st
        .admin
        .store()
        .queues()
        .correct_contact(&number, &user.username, change, sms_opening(&st, now), now)
        .await
        .map_err(problem)?;
    if !a.already {
        st.admin.wake();
    }
    Ok(acted(a))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AttachReply)]
struct AttachBody {
    /// The ticket the reply is about.
    number: Option<String>,
    /// The officer's note (kept with the reply and in the audit log); at most 1000 characters.
    note: Option<String>,
}

/// Attach an unmatched reply to a ticket
///
/// The reply is recorded on the ticket exactly as a matched reply is: a ticket waiting for an
/// integrazione resumes its clock (the citizen is owed `ripresa`); otherwise it is a note.
/// Attaching it again to the same ticket changes nothing (`already`).
#[utoipa::path(
    post,
    path = "/api/v1/admin/inbound/{id}/attach",
    operation_id = "attachReply",
    tag = "desk",
    security(("adminSession" = ["editor"]), ("adminToken" = ["editor"])),
    params(InboundId, CsrfToken),
    request_body = AttachBody,
    responses(
        (status = 200, description = "Attached, or `already` so; `outcome` says how.", body = ActedBody),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
async fn attach(
    State(st): State<DeskState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let user = st.admin.acting(&headers, &method, Role::Editor).await?;
    let id = id_of(&id, "reply")?;
    let b: AttachBody = body(&bytes)?;
    let mut errors = Vec::new();
    let number = text(&mut errors, "number", b.number.as_deref(), true, 64);
    let note = text(&mut errors, "note", b.note.as_deref(), false, 1000);
    let Some(number) = number.filter(|_| errors.is_empty()) else {
        return Err(Problem::invalid(errors));
    };
    let policy = inbound_policy(&st.config);
    let a = st
        .admin
        .store()
        .queues()
        .attach(
            id,
            &number,
            &user.username,
            note.as_deref(),
            &policy,
            st.admin.now(),
        )
        .await
        .map_err(problem)?;
    if !a.already {
        st.admin.wake();
    }
    Ok(acted(a))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DismissReply)]
struct DismissBody {
    /// Why it is not a reply; at most 1000 characters.
    note: Option<String>,
}

/// Dismiss an unmatched reply
///
/// Not a reply to any ticket: it leaves the queue with the officer's note.
#[utoipa::path(
    post,
    path = "/api/v1/admin/inbound/{id}/dismiss",
    operation_id = "dismissReply",
    tag = "desk",
    security(("adminSession" = ["editor"]), ("adminToken" = ["editor"])),
    params(InboundId, CsrfToken),
    request_body = DismissBody,
    responses(
        (status = 200, description = "Dismissed, or `already` so.", body = ActedBody),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
async fn dismiss(
    State(st): State<DeskState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let user = st.admin.acting(&headers, &method, Role::Editor).await?;
    let id = id_of(&id, "reply")?;
    let b: DismissBody = body(&bytes)?;
    let mut errors = Vec::new();
    let note = text(&mut errors, "note", b.note.as_deref(), true, 1000);
    let Some(note) = note.filter(|_| errors.is_empty()) else {
        return Err(Problem::invalid(errors));
    };
    let a = st
        .admin
        .store()
        .queues()
        .dismiss(id, &user.username, &note, st.admin.now())
        .await
        .map_err(problem)?;
    Ok(acted(a))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LiftOptOut)]
struct LiftBody {
    /// The number as the citizen gives it (normalised like the ticket's mobile).
    number: Option<String>,
    /// Why (kept in the audit log); at most 1000 characters.
    reason: Option<String>,
}

/// Lift an SMS opt-out
///
/// At the citizen's request: the number receives SMS again. Audited with the number masked.
/// 404 when the number has not opted out; a second click of the same lift is `already`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/opt-outs/lift",
    operation_id = "liftOptOut",
    tag = "desk",
    security(("adminSession" = ["editor"]), ("adminToken" = ["editor"])),
    params(CsrfToken),
    request_body = LiftBody,
    responses(
        (status = 200, description = "Lifted, or `already` so.", body = ActedBody),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
async fn lift_opt_out(
    State(st): State<DeskState>,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let user = st.admin.acting(&headers, &method, Role::Editor).await?;
    let b: LiftBody = body(&bytes)?;
    let mut errors = Vec::new();
    let number = text(&mut errors, "number", b.number.as_deref(), true, 40);
    let reason = text(&mut errors, "reason", b.reason.as_deref(), false, 1000);
    let Some(number) = number.filter(|_| errors.is_empty()) else {
        return Err(Problem::invalid(errors));
    };
    let number = normalised(&number)?;
    let a = st
        .admin
        .store()
        .queues()
        .lift_opt_out(&number, &user.username, reason.as_deref(), st.admin.now())
        .await
        .map_err(problem)?;
    Ok(acted(a))
}

/// 403 when the console may not write events on tickets (`admin.staff_events = false`: the
/// CRM is the only writer).
pub(super) fn staff_events_on(st: &DeskState) -> Result<(), Problem> {
    if st.config.admin.staff_events {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "Forbidden",
        "staff actions are off: the CRM records events",
    ))
}

/// A ticket error as a problem, with a reused key a conflict (for the staff actions).
pub(super) fn staff_problem(e: QueueError) -> Problem {
    match e {
        QueueError::Ticket(TicketError::KeyReused(k)) => conflict(format!(
            "the Idempotency-Key {k:?} was already used for an event of another kind"
        )),
        other => problem(other),
    }
}
