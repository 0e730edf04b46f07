//! `/api/v1/tickets`: create, append events, read one, list.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::auth::Principal;
use super::openapi::{
    Conflict, Forbidden, IdempotencyKey, Internal, Invalid, MalformedJson, NotFound,
    PayloadTooLarge, TicketNumber, Unauthorized, UnsupportedMediaType,
};
use super::{AppState, Peer, Problem, schema};
use crate::config::Scope;
use crate::sla::explain::{self, TicketTimes};
use crate::store::{
    EventRecord, LIST_STATES, ListQuery, Outcome, StoreError, StoredResponse, TicketRecord,
    evaluate, ticket_json,
};
use crate::ticket::{FieldError, NewEvent, NewTicket, Source};

fn json_response(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut res = (status, body).into_response();
    let ct = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if replayed {
        res.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    res
}

/// The body, checked for size, type and JSON syntax.
fn read_json(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Bytes, Value), Problem> {
    let body = body.map_err(|rej| {
        let status = rej.status();
        let detail = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("the body is larger than {} bytes", super::MAX_BODY_BYTES)
        } else {
            rej.body_text()
        };
        Problem::new(status, "body", "The request body cannot be read", detail)
    })?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "media-type",
            "Unsupported media type",
            format!("send Content-Type: application/json (got {ct:?})"),
        ));
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "The body is not valid JSON",
            e.to_string(),
        )
    })?;
    Ok((body, value))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        Problem::invalid(vec![FieldError {
            field: "Idempotency-Key".into(),
            message: "must be 1–255 visible ASCII characters".into(),
        }])
    };
    let s = v.to_str().map_err(|_| bad())?;
    if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(s.to_owned()))
}

fn request_hash(what: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(what.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

/// Runs `work` once per (principal, key): a repeat with the same request gets the stored answer,
/// a repeat with another request gets 422.
async fn idempotent<F>(
    state: &AppState,
    principal: &Principal,
    key: Option<String>,
    hash: String,
    work: F,
) -> Response
where
    F: std::future::Future<Output = Result<(StatusCode, String), Problem>>,
{
    let Some(key) = key else {
        return match work.await {
            Ok((status, body)) => json_response(status, body, false),
            Err(p) => p.into_response(),
        };
    };
    let reused = || {
        Problem::invalid(vec![FieldError {
            field: "Idempotency-Key".into(),
            message: "already used with a different request".into(),
        }])
        .into_response()
    };
    match state
        .store
        .tickets()
        .idempotent_response(&principal.name, &key)
        .await
    {
        Ok(Some(stored)) if stored.request_hash == hash => {
            let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
            return json_response(status, stored.body, true);
        }
        Ok(Some(_)) => return reused(),
        Ok(None) => {}
        Err(e) => return Problem::from(e).into_response(),
    }
    let (status, body) = match work.await {
        Ok(ok) => ok,
        Err(p) if p.status.is_server_error() => return p.into_response(),
        Err(p) => (p.status, p.body()),
    };
    let now = (state.clock)();
    let answer = StoredResponse {
        request_hash: hash.clone(),
        status: status.as_u16(),
        body,
    };
    match state
        .store
        .tickets()
        .remember_response(&principal.name, &key, &answer, now)
        .await
    {
        Ok(first) if first.request_hash == hash => {
            let status = StatusCode::from_u16(first.status).unwrap_or(status);
            let replayed = first.body != answer.body;
            json_response(status, first.body, replayed)
        }
        Ok(_) => reused(),
        Err(e) => Problem::from(e).into_response(),
    }
}

/// What every write needs before it acts: the caller (with the write scope), the body as bytes
/// and as JSON, and the idempotency key if one was sent.
async fn prepare_write(
    state: &AppState,
    headers: &HeaderMap,
    peer: std::net::IpAddr,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Principal, Bytes, Value, Option<String>), Problem> {
    let principal = state.tokens.authorize(headers, peer, Scope::Write).await?;
    let (raw, value) = read_json(headers, body)?;
    let key = idempotency_key(headers)?;
    Ok((principal, raw, value, key))
}

fn format_for(
    state: &AppState,
    t: &TicketRecord,
) -> Result<impl Fn(crate::time::Timestamp) -> String, StoreError> {
    let sla = state
        .store
        .versions()
        .sla(t.calendar_version, t.policy_version)?;
    Ok(move |x| sla.calendar.format_rfc3339(x))
}

fn ticket_body(state: &AppState, t: &TicketRecord) -> Result<String, Problem> {
    let f = format_for(state, t)?;
    Ok(ticket_json(t, &f).to_string())
}

/// Create a ticket
///
/// Validates the ticket, stores it with its `received` event and computes its SLA. The same
/// ticket sent again is 200 with nothing changed; the same number with other data is 409.
#[utoipa::path(
    post,
    path = "/api/v1/tickets",
    operation_id = "createTicket",
    tag = "tickets",
    security(("apiToken" = ["write"])),
    params(IdempotencyKey),
    request_body = schema::NewTicket,
    responses(
        (status = 200, description = "The same ticket was already there; nothing changed.",
         body = schema::Ticket, headers(("Idempotent-Replayed" = String, description = "`true` when the answer is the one stored under the `Idempotency-Key`."))),
        (status = 201, description = "Created: the ticket with its SLA.",
         body = schema::Ticket, headers(("Idempotent-Replayed" = String, description = "`true` when the answer is the one stored under the `Idempotency-Key`."))),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (principal, raw, value, key) = match prepare_write(&state, &headers, peer, body).await {
        Ok(w) => w,
        Err(p) => return super::auth::problem_response(p),
    };
    let hash = request_hash("POST /api/v1/tickets", &raw);
    let st = state.clone();
    let work = async move {
        let t = NewTicket::from_json(&value).map_err(Problem::invalid)?;
        let now = (st.clock)();
        let outcome = st
            .store
            .tickets()
            .create_ticket(&t, Source::Api, now)
            .await?;
        st.wake.notify_one();
        let status = match outcome {
            Outcome::Created(_) => StatusCode::CREATED,
            Outcome::Unchanged(_) => StatusCode::OK,
        };
        Ok((status, ticket_body(&st, outcome.ticket())?))
    };
    idempotent(&state, &principal, key, hash, work).await
}

/// Append an event to a ticket
///
/// Without an `Idempotency-Key` the event's key is the hash of its content, so the exact same
/// event sent twice is recorded once.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{number}/events",
    operation_id = "appendTicketEvent",
    tag = "tickets",
    security(("apiToken" = ["write"])),
    params(TicketNumber, IdempotencyKey),
    request_body = schema::NewEvent,
    responses(
        (status = 200, description = "The event was already recorded; nothing changed.",
         body = schema::Ticket, headers(("Idempotent-Replayed" = String, description = "`true` when the answer is the one stored under the `Idempotency-Key`."))),
        (status = 201, description = "The ticket after the event.",
         body = schema::Ticket, headers(("Idempotent-Replayed" = String, description = "`true` when the answer is the one stored under the `Idempotency-Key`."))),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
pub async fn append(
    State(state): State<AppState>,
    Path(number): Path<String>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (principal, raw, value, key) = match prepare_write(&state, &headers, peer, body).await {
        Ok(w) => w,
        Err(p) => return super::auth::problem_response(p),
    };
    let hash = request_hash(&format!("POST /api/v1/tickets/{number}/events"), &raw);
    let st = state.clone();
    let event_key = key.clone();
    let work = async move {
        let e = NewEvent::from_json(&value).map_err(Problem::invalid)?;
        let now = (st.clock)();
        let outcome = st
            .store
            .tickets()
            .append_event(&number, &e, event_key.as_deref(), Source::Api, now)
            .await?;
        st.wake.notify_one();
        let status = match outcome {
            Outcome::Created(_) => StatusCode::CREATED,
            Outcome::Unchanged(_) => StatusCode::OK,
        };
        Ok((status, ticket_body(&st, outcome.ticket())?))
    };
    idempotent(&state, &principal, key, hash, work).await
}

fn event_json(e: &EventRecord, f: &dyn Fn(crate::time::Timestamp) -> String) -> Value {
    let mut data = e.data.clone();
    if let Value::Object(m) = &mut data {
        m.remove("kind");
        m.remove("at");
    }
    json!({
        "id": e.id,
        "kind": e.kind,
        "at": f(e.occurred_at),
        "source": e.source,
        "data": data,
        "recorded_at": f(e.recorded_at),
    })
}

/// Read one ticket
///
/// The ticket, its timeline of events, its SLA computed now and the day-by-day explanation of
/// its deadline.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{number}",
    operation_id = "getTicket",
    tag = "tickets",
    security(("apiToken" = ["read"])),
    params(TicketNumber),
    responses(
        (status = 200, description = "The ticket.", body = schema::TicketDetail),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    ),
)]
pub async fn get_one(
    State(state): State<AppState>,
    Path(number): Path<String>,
    Peer(peer): Peer,
    headers: HeaderMap,
) -> Response {
    if let Err(p) = state.tokens.authorize(&headers, peer, Scope::Read).await {
        return super::auth::problem_response(p);
    }
    match one(&state, &number).await {
        Ok(v) => json_response(StatusCode::OK, v.to_string(), false),
        Err(p) => p.into_response(),
    }
}

async fn one(state: &AppState, number: &str) -> Result<Value, Problem> {
    let t = state
        .store
        .tickets()
        .ticket(number)
        .await?
        .ok_or_else(|| Problem::not_found(format!("ticket {number} not found")))?;
    let now = (state.clock)();
    let sla = state
        .store
        .versions()
        .sla(t.calendar_version, t.policy_version)?;
    let f = |x| sla.calendar.format_rfc3339(x);
    let (received_at, derived) = state.store.tickets().history(t.id).await?;
    let fresh = evaluate(&sla, received_at, &derived, now).map_err(StoreError::from)?;
    let mut body = ticket_json(&t, &f);
    let opt = |o: Option<crate::time::Timestamp>| o.map(f);
    body["sla"] = json!({
        "state": fresh.state,
        "due_at": opt(fresh.due_at),
        "elapsed_s": fresh.elapsed_s,
        "target_s": fresh.target_s,
        "remaining_s": fresh.remaining_s,
        "next_check_at": opt(fresh.next_check_at),
        "closed_late": fresh.closed_late,
        "computed_at": f(now),
    });
    let events = state.store.tickets().events(t.id).await?;
    body["events"] = Value::Array(events.iter().map(|e| event_json(e, &f)).collect());
    let times = TicketTimes {
        id: Some(t.number.clone()),
        // A ticket switched to on-site: the account starts at the switch, as its term does.
        received_at: derived.clock_start(received_at),
        category: derived.category,
        priority: derived.priority,
        suspensions: derived.suspensions.clone(),
    };
    let explanation = explain::explain(&sla, times, now).map_err(StoreError::from)?;
    body["explanation"] = explain::render_json(&sla, &explanation);
    Ok(body)
}

/// The query of `GET /api/v1/tickets`; the handler reads it by hand, to refuse unknown parameters.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // described, never built
pub struct ListParams {
    /// SLA state as of the last refresh (at most one poll interval old), or `closed` for
    /// closed tickets.
    #[param(inline)]
    state: Option<ListState>,
    office: Option<String>,
    #[param(inline)]
    priority: Option<schema::Priority>,
    /// First local day (`2026-11-01`) of the closure (with `state=closed`) or of the receipt.
    #[param(format = Date)]
    from: Option<String>,
    /// Last local day, included.
    #[param(format = Date)]
    to: Option<String>,
    /// The `next` value of the previous page.
    after: Option<i64>,
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<i64>,
}

// The states a list filters on ([`LIST_STATES`]).
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // described, never built
pub enum ListState {
    Running,
    Warning,
    Paused,
    Breached,
    Closed,
}

/// List tickets
///
/// Open tickets, or closed ones with `state=closed`, filtered by office, priority and period
/// (local days of the closure for closed tickets, of the receipt for open ones), in pages of
/// `limit` ordered by internal id. Unknown query parameters are 422.
#[utoipa::path(
    get,
    path = "/api/v1/tickets",
    operation_id = "listTickets",
    tag = "tickets",
    security(("apiToken" = ["read"])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of tickets.", body = schema::TicketPage),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    Peer(peer): Peer,
    headers: HeaderMap,
) -> Response {
    if let Err(p) = state.tokens.authorize(&headers, peer, Scope::Read).await {
        return super::auth::problem_response(p);
    }
    let mut errors = Vec::new();
    let mut q = ListQuery {
        limit: 50,
        ..ListQuery::default()
    };
    let (mut from, mut to) = (None, None);
    let day = |field: &str, v: &str, errors: &mut Vec<FieldError>| {
        match chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                errors.push(FieldError {
                    field: field.into(),
                    message: format!("expected a date YYYY-MM-DD, found {v:?}"),
                });
                None
            }
        }
    };
    for (k, v) in &params {
        match k.as_str() {
            "state" if v == "closed" => q.closed = true,
            "state" if LIST_STATES.contains(&v.as_str()) => q.state = Some(v.clone()),
            "state" => errors.push(FieldError {
                field: "state".into(),
                message: format!(
                    "unknown state {v:?}; expected {}|closed",
                    LIST_STATES.join("|")
                ),
            }),
            "office" => q.office = Some(v.clone()),
            "priority" => match v.parse::<crate::domain::Priority>() {
                Ok(p) => q.priority = Some(p.as_str().to_owned()),
                Err(e) => errors.push(FieldError {
                    field: "priority".into(),
                    message: e.to_string(),
                }),
            },
            "from" => from = day("from", v, &mut errors),
            "to" => to = day("to", v, &mut errors),
            "after" => match v.parse::<i64>() {
                Ok(a) => q.after = Some(a),
                Err(_) => errors.push(FieldError {
                    field: "after".into(),
                    message: "must be the `next` value of the previous page".into(),
                }),
            },
            "limit" => match v.parse::<i64>() {
                Ok(l) if (1..=500).contains(&l) => q.limit = l,
                _ => errors.push(FieldError {
                    field: "limit".into(),
                    message: "must be an integer from 1 to 500".into(),
                }),
            },
            other => errors.push(FieldError {
                field: other.to_owned(),
                message:
                    "unknown parameter; expected state, office, priority, from, to, after, limit"
                        .into(),
            }),
        }
    }
    match (from, to) {
        (None, None) => {}
        (Some(f), Some(t)) if f <= t => match local_days(&state, f, t) {
            Ok(p) => q.period = Some(p),
            Err(e) => return Problem::from(e).into_response(),
        },
        (Some(_), Some(_)) => errors.push(FieldError {
            field: "to".into(),
            message: "must not be before from".into(),
        }),
        (Some(_), None) | (None, Some(_)) => errors.push(FieldError {
            field: if from.is_some() { "to" } else { "from" }.into(),
            message: "from and to go together".into(),
        }),
    }
    if !errors.is_empty() {
        return Problem::invalid(errors).into_response();
    }
    let page = match state.store.tickets().list_tickets(&q).await {
        Ok(p) => p,
        Err(e) => return Problem::from(e).into_response(),
    };
    let mut items = Vec::with_capacity(page.len());
    for t in &page {
        match format_for(&state, t) {
            Ok(f) => items.push(ticket_json(t, &f)),
            Err(e) => return Problem::from(e).into_response(),
        }
    }
    let next = (page.len() as i64 == q.limit)
        .then(|| page.last().map(|t| t.id))
        .flatten();
    json_response(
        StatusCode::OK,
        json!({"items": items, "next": next}).to_string(),
        false,
    )
}

/// The instants `[start of from, end of to)` of local days in the office's current calendar.
fn local_days(
    state: &AppState,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> Result<(crate::time::Timestamp, crate::time::Timestamp), StoreError> {
    let (calendar, policy) = state.store.versions().current()?;
    let sla = state.store.versions().sla(calendar, policy)?;
    let day = crate::time::day_number;
    Ok((
        sla.calendar.local_midnight(day(from)),
        sla.calendar.local_midnight(day(to) + 1),
    ))
}
