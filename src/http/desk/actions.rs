//! Staff actions a CRM would otherwise send: a step with text for the citizen, an integration
//! request, a closure, a note, an on-site appointment (proposed, moved, cancelled, held,
//! missed); through the same event path as the API (same validation, same
//! notices owed), recorded with source `console` and audited in the same transaction.
//!
//! Beside a CRM that also writes events, the order of arrival decides: each event is checked
//! against the history as it then stands, and one that no longer fits is refused with 409, for
//! the console as for any client. `admin.staff_events = false` turns these actions off and
//! leaves the CRM the only writer (`docs/console.md`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::super::admin::json_response;
use super::super::openapi::{
    Conflict, CsrfToken, Forbidden, Internal, Invalid, MalformedJson, NotFound, TicketNumber,
    Unauthorized,
};
use super::super::problem::Problem;
use super::DeskState;
use super::queues::{body, field, staff_events_on, staff_problem};
use crate::redact::mask;
use crate::store::{EventRecord, Role, StaffEvent};
use crate::ticket::NewEvent;
use crate::time::Timestamp;

pub(super) fn routes() -> OpenApiRouter<DeskState> {
    OpenApiRouter::new().routes(routes!(staff_event))
}

/// `Idempotency-Key` on a staff action.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // described, read from the headers
struct StaffKey {
    /// 1–255 visible ASCII characters, one per form the console shows: the same key again
    /// answers the event recorded the first time (200), whatever its instant; the same key for
    /// another kind of event is 409.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        nullable = false
    )]
    key: Option<String>,
}

/// A staff action: one of these kinds, `at` defaulting to now.
#[derive(ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[schema(as = StaffAction)]
#[allow(dead_code)] // described; the body is read as the API's events are
enum StaffBody {
    /// A processing step, with the text the citizen reads.
    #[schema(title = "step_changed")]
    StepChanged {
        /// RFC 3339 with a UTC offset; default now.
        #[schema(format = DateTime)]
        at: Option<String>,
        #[schema(min_length = 1, max_length = 100)]
        step: String,
        #[schema(min_length = 1, max_length = 1000)]
        text: String,
    },
    /// The documents or information the citizen must send: the clock stops. 409 when the
    /// ticket already waits.
    #[schema(title = "integration_requested")]
    IntegrationRequested {
        /// RFC 3339 with a UTC offset; default now.
        #[schema(format = DateTime)]
        at: Option<String>,
        /// One item per missing document (stored as lines `- item`).
        #[schema(min_items = 1)]
        missing: Vec<String>,
    },
    /// Closes the ticket with its outcome.
    #[schema(title = "closed")]
    Closed {
        /// RFC 3339 with a UTC offset; default now.
        #[schema(format = DateTime)]
        at: Option<String>,
        /// The outcome the citizen reads.
        text: Option<String>,
    },
    /// A note for the office; allowed on a closed ticket.
    #[schema(title = "note")]
    Note {
        /// RFC 3339 with a UTC offset; default now.
        #[schema(format = DateTime)]
        at: Option<String>,
        #[schema(min_length = 1, max_length = 4000)]
        text: String,
    },
    /// The office's new expected date of closure, told to the citizen with the reason; the SLA
    /// term does not move. After now and within a year (422); not on a closed ticket (409).
    #[schema(title = "expected_date_set")]
    ExpectedDateSet {
        /// RFC 3339 with a UTC offset; default now.
        #[schema(format = DateTime)]
        at: Option<String>,
        /// RFC 3339 with a UTC offset.
        #[schema(format = DateTime)]
        expected_at: String,
        /// Why, in words the citizen reads.
        #[schema(min_length = 1, max_length = 1000)]
        reason: String,
    },
    /// An on-site appointment for an `in_loco` ticket (the same rules as the API's event).
    #[schema(title = "appointment_proposed")]
    AppointmentProposed {
        /// RFC 3339 with a UTC offset; default now.
        #[schema(format = DateTime)]
        at: Option<String>,
        #[schema(format = DateTime)]
        starts_at: String,
        #[schema(minimum = 5, maximum = 480)]
        minutes: u32,
        #[schema(min_length = 1, max_length = 300)]
        place: String,
        #[schema(min_length = 1, max_length = 100)]
        officer: String,
        /// Required when the visit ends after the on-site term.
        reason: Option<String>,
    },
    /// The booked appointment moves.
    #[schema(title = "appointment_changed")]
    AppointmentChanged {
        /// RFC 3339 with a UTC offset; default now.
        #[schema(format = DateTime)]
        at: Option<String>,
        #[schema(format = DateTime)]
        starts_at: String,
        #[schema(minimum = 5, maximum = 480)]
        minutes: u32,
        #[schema(min_length = 1, max_length = 300)]
        place: String,
        #[schema(min_length = 1, max_length = 100)]
        officer: String,
        #[schema(min_length = 1, max_length = 1000)]
        reason: String,
    },
    /// The booked appointment is cancelled.
    #[schema(title = "appointment_cancelled")]
    AppointmentCancelled {
        /// RFC 3339 with a UTC offset; default now.
        #[schema(format = DateTime)]
        at: Option<String>,
        #[schema(min_length = 1, max_length = 1000)]
        reason: String,
    },
    /// The visit took place: the term is met and the ticket closed.
    #[schema(title = "appointment_held")]
    AppointmentHeld {
        /// RFC 3339 with a UTC offset; default now.
        #[schema(format = DateTime)]
        at: Option<String>,
        text: Option<String>,
    },
    /// The citizen did not come.
    #[schema(title = "appointment_missed")]
    AppointmentMissed {
        /// RFC 3339 with a UTC offset; default now.
        #[schema(format = DateTime)]
        at: Option<String>,
        reason: Option<String>,
    },
}

/// The event recorded, and the ticket as it stands.
#[derive(Serialize, ToSchema)]
#[schema(as = StaffActionDone)]
struct StaffAnswer {
    /// `id`, `kind`, `at`, `source` (`console`), `data`, `recorded_at`.
    #[schema(value_type = Object)]
    event: Value,
    /// The ticket with its SLA (the citizen's contacts masked).
    #[schema(value_type = Object)]
    ticket: Value,
}

const STAFF_KINDS: &[&str] = &[
    "step_changed",
    "integration_requested",
    "closed",
    "note",
    "expected_date_set",
    "appointment_proposed",
    "appointment_changed",
    "appointment_cancelled",
    "appointment_held",
    "appointment_missed",
];

/// The staff action as the API's event body: the kind checked against [`STAFF_KINDS`], `missing` from
/// a list to lines, `at` kept when given.
fn event_body(value: &Value) -> Result<(Value, bool), Problem> {
    let Some(obj) = value.as_object() else {
        return Err(Problem::invalid(vec![field(
            "(body)",
            "must be a JSON object",
        )]));
    };
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if !STAFF_KINDS.contains(&kind) {
        return Err(Problem::invalid(vec![field(
            "kind",
            format!("expected one of {}", STAFF_KINDS.join("|")),
        )]));
    }
    let mut out = obj.clone();
    if kind == "integration_requested" {
        let items = match obj.get("missing") {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(Problem::invalid(vec![field(
                    "missing",
                    "must be a list of the missing documents",
                )]));
            }
        };
        let mut lines = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.as_str().map(str::trim) {
                Some(s) if !s.is_empty() && !s.contains('\n') => lines.push(format!("- {s}")),
                _ => {
                    return Err(Problem::invalid(vec![field(
                        &format!("missing[{i}]"),
                        "must be a non-empty line of text",
                    )]));
                }
            }
        }
        if lines.is_empty() {
            return Err(Problem::invalid(vec![field(
                "missing",
                "name at least one document",
            )]));
        }
        out.insert("missing".into(), Value::String(lines.join("\n")));
    }
    let given_at = obj.get("at").is_some_and(|a| !a.is_null());
    if !given_at {
        // A placeholder for validation; the store sets the instant.
        out.insert("at".into(), Value::String(Timestamp(0).to_string()));
    }
    Ok((Value::Object(out), given_at))
}

/// The `Idempotency-Key` header, checked: 1–255 visible ASCII characters.
fn key_of(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k.to_owned()))
        }
        _ => Err(Problem::invalid(vec![field(
            "Idempotency-Key",
            "must be 1–255 visible ASCII characters",
        )])),
    }
}

fn event_json(st: &DeskState, e: &EventRecord) -> Value {
    let mut data = e.data.clone();
    if let Value::Object(m) = &mut data {
        m.remove("kind");
        m.remove("at");
    }
    json!({
        "id": e.id,
        "kind": e.kind,
        "at": rfc(st, e.occurred_at),
        "source": e.source,
        "data": data,
        "recorded_at": rfc(st, e.recorded_at),
    })
}

fn rfc(st: &DeskState, t: Timestamp) -> String {
    t.to_chrono().with_timezone(&st.admin.tz()).to_rfc3339()
}

/// The ticket as the API shows it, with the citizen's contacts masked.
fn ticket_json(st: &DeskState, s: &StaffEvent) -> Value {
    let f = |t: Timestamp| rfc(st, t);
    let mut v = crate::store::ticket_json(&s.ticket, &f);
    if let Some(c) = v.get_mut("citizen").and_then(Value::as_object_mut) {
        for k in ["email", "mobile", "pec", "fiscal_code"] {
            if let Some(Value::String(s)) = c.get(k) {
                let masked = mask(s);
                c.insert(k.to_owned(), Value::String(masked));
            }
        }
    }
    v
}

/// Record a staff action on a ticket
///
/// A step with its text for the citizen, an integration request with the list of missing
/// documents, a closure with its outcome, a note, or an on-site appointment (proposed, moved,
/// cancelled, held, missed): validated and applied as the API's events
/// (the same notices owed), recorded with source `console` and audited. With
/// `admin.staff_events = false` the console does not write events (403).
#[utoipa::path(
    post,
    path = "/api/v1/admin/tickets/{number}/events",
    operation_id = "recordStaffAction",
    tag = "desk",
    security(("adminSession" = ["editor"]), ("adminToken" = ["editor"])),
    params(TicketNumber, CsrfToken, StaffKey),
    request_body = StaffBody,
    responses(
        (status = 200, description = "The event recorded earlier under this key.", body = StaffAnswer),
        (status = 201, description = "Recorded.", body = StaffAnswer),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
async fn staff_event(
    State(st): State<DeskState>,
    Path(number): Path<String>,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let user = st.admin.acting(&headers, &method, Role::Editor).await?;
    staff_events_on(&st)?;
    let key = key_of(&headers)?;
    let value: Value = body(&bytes)?;
    let (value, given_at) = event_body(&value)?;
    let e = NewEvent::from_json(&value).map_err(Problem::invalid)?;
    let now = st.admin.now();
    let recorded = st
        .admin
        .store()
        .queues()
        .staff_event(
            &number,
            &e.body,
            given_at.then_some(e.at),
            key.as_deref(),
            &user.username,
            now,
        )
        .await
        .map_err(staff_problem)?;
    let status = if recorded.replayed {
        StatusCode::OK
    } else {
        st.admin.wake();
        StatusCode::CREATED
    };
    Ok(json_response(
        status,
        StaffAnswer {
            event: event_json(&st, &recorded.event),
            ticket: ticket_json(&st, &recorded),
        },
    ))
}
