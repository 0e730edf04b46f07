//! Search: tickets by number (any spelling the matcher accepts), codice fiscale, e-mail, mobile, office, state and period, a page at a time.
//!
//! `q` is what the officer types while the citizen is on the phone: an e-mail (it holds `@`), a
//! codice fiscale (16 letters and digits), a mobile number (`+39…`, `0039…`, or ten digits
//! starting with 3, spaces and dashes allowed), else a ticket number in any spelling the
//! reply matcher reads (`2026 123`, `2026-000123`, `pratica 2026/123`; also the year last,
//! `123/2026`), else a number exactly as typed. Every filter given must hold. Pages are newest
//! first by internal id; with a period, newest received first (the index's order, so a deep
//! page costs what the first does).

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::super::Problem;
use super::super::admin::json_response;
use super::super::openapi::{BadRequest, Internal, Invalid, Unauthorized};
use super::DeskState;
use crate::inbound::matching::TicketFormat;
use crate::store::{Cursor, LIST_STATES, Role, SearchQuery, SearchRow, SearchState};
use crate::ticket::{FieldError, normalize_e164};
use crate::time::Timestamp;

pub(super) fn routes() -> OpenApiRouter<DeskState> {
    OpenApiRouter::new().routes(routes!(search))
}

/// The query of `GET /api/v1/admin/tickets`; read by hand, to refuse unknown parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // described, never built
struct SearchParams {
    /// Free text from the phone call: a ticket number in any spelling the reply matcher reads,
    /// a codice fiscale, an e-mail address or a mobile number (see the module's account).
    #[param(max_length = 200)]
    q: Option<String>,
    /// A ticket number in any spelling the matcher reads, else exactly as stored.
    number: Option<String>,
    /// Any case.
    fiscal_code: Option<String>,
    /// Any case.
    email: Option<String>,
    /// Any usual spelling (`347 123 4567`, `+39 347…`, `0039…`).
    mobile: Option<String>,
    office: Option<String>,
    #[param(inline)]
    state: Option<SearchStateName>,
    /// First local day of receipt (`2026-11-01`), included.
    #[param(format = Date)]
    from: Option<String>,
    /// Last local day of receipt, included.
    #[param(format = Date)]
    to: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
    #[param(minimum = 1, maximum = 100, default = 25)]
    limit: Option<i64>,
}

// The states a search filters on: `open` is every state but closed.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // described, never built
enum SearchStateName {
    Open,
    Running,
    Warning,
    Paused,
    Breached,
    Closed,
}

// How a ticket stands in a search.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // described, never built
enum RowState {
    Running,
    Warning,
    Paused,
    Breached,
    Closed,
}

/// The citizen's contacts in a list: always masked.
#[derive(Serialize, ToSchema)]
#[schema(as = DeskMaskedCitizen)]
struct MaskedCitizen {
    #[schema(required = true, examples("m***@example.it"))]
    email: Option<String>,
    #[schema(required = true, examples("+39***567"))]
    mobile: Option<String>,
    #[schema(required = true, examples("RSS***01U"))]
    fiscal_code: Option<String>,
}

/// One ticket found. Its `state` is as of the last refresh of the ticket's SLA (at most a poll
/// interval old).
#[derive(Serialize, ToSchema)]
#[schema(as = DeskSearchItem)]
struct Item {
    number: String,
    subject: String,
    office: String,
    priority: String,
    category: String,
    #[schema(inline, value_type = RowState)]
    state: &'static str,
    #[schema(format = DateTime)]
    received_at: String,
    #[schema(format = DateTime, required = true)]
    due_at: Option<String>,
    #[schema(format = DateTime, required = true)]
    closed_at: Option<String>,
    citizen: MaskedCitizen,
}

// Which key found the tickets.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // described, never built
enum MatchedBy {
    Number,
    FiscalCode,
    Email,
    Mobile,
    Filters,
}

/// A page of tickets, newest first.
#[derive(Serialize, ToSchema)]
#[schema(as = DeskSearchPage)]
struct Page {
    items: Vec<Item>,
    /// Pass as `after` for the next page; null on the last one.
    #[schema(required = true)]
    next: Option<String>,
    #[schema(inline, value_type = MatchedBy)]
    matched_by: &'static str,
}

/// What `q` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Key {
    Numbers(Vec<String>),
    FiscalCode(String),
    Email(String),
    Mobile(String),
}

/// The spellings of a ticket number in `text` that the reply matcher reads, also with the year
/// written last (`123/2026`); canonical, at most ten.
fn number_candidates(format: &TicketFormat, text: &str) -> Vec<String> {
    let mut found = format.find_all(text);
    if found.is_empty() {
        // `000123/2026`, `123-2026`: the year last, as people sometimes read it out.
        let parts: Vec<&str> = text
            .split(|c: char| c.is_whitespace() || "-/._".contains(c))
            .filter(|p| !p.is_empty())
            .collect();
        if let [seq, year] = parts[..]
            && seq.chars().all(|c| c.is_ascii_digit())
            && year.len() == 4
            && (year.starts_with("19") || year.starts_with("20"))
            && year.chars().all(|c| c.is_ascii_digit())
        {
            found = format.find_all(&format!("{year}/{seq}"));
        }
    }
    found.truncate(10);
    found
}

/// Whether `text` is written as a mobile number: only digits and the usual separators, and
/// either an international prefix or an Italian mobile's ten digits starting with 3.
fn looks_like_mobile(text: &str) -> bool {
    let t = text.trim();
    if !t
        .chars()
        .all(|c| c.is_ascii_digit() || " +-./()".contains(c))
    {
        return false;
    }
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    t.starts_with('+')
        || (digits.starts_with("00") && digits.len() >= 10)
        || (digits.starts_with('3') && (9..=10).contains(&digits.len()))
}

/// A codice fiscale as typed (spaces allowed), upper-cased, when `text` has its shape: 16
/// letters and digits, the first six letters. The check letter is not required: a search for
/// a mistyped one finds nothing rather than failing.
fn fiscal_code_of(text: &str) -> Option<String> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    (compact.len() == 16
        && compact.chars().all(|c| c.is_ascii_alphanumeric())
        && compact.chars().take(6).all(|c| c.is_ascii_alphabetic()))
    .then(|| compact.to_ascii_uppercase())
}

/// What the officer typed: an e-mail, a codice fiscale, a mobile number, a ticket number.
pub(super) fn classify(format: &TicketFormat, text: &str) -> Key {
    let t = text.trim();
    if t.contains('@') {
        return Key::Email(t.to_lowercase());
    }
    if let Some(cf) = fiscal_code_of(t) {
        return Key::FiscalCode(cf);
    }
    if looks_like_mobile(t)
        && let Some(m) = normalize_e164(t)
    {
        return Key::Mobile(m);
    }
    let numbers = number_candidates(format, t);
    if !numbers.is_empty() {
        return Key::Numbers(numbers);
    }
    if let Some(m) = normalize_e164(t).filter(|_| t.chars().any(|c| c.is_ascii_digit())) {
        return Key::Mobile(m);
    }
    Key::Numbers(vec![t.to_owned()])
}

fn field(name: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: name.to_owned(),
        message: message.into(),
    }
}

const PARAMS: &str = "q, number, fiscal_code, email, mobile, office, state, from, to, after, limit";

/// The parameters read into a search, or every field at fault.
fn read_query(
    st: &DeskState,
    params: &HashMap<String, String>,
) -> Result<(SearchQuery, &'static str), Problem> {
    let mut errors = Vec::new();
    let mut q = SearchQuery {
        limit: 25,
        ..SearchQuery::default()
    };
    let format = &st.config.inbound.ticket_format;
    let (mut from, mut to, mut after) = (None, None, None);
    let day = |name: &str, v: &str, errors: &mut Vec<FieldError>| {
        match chrono::NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                errors.push(field(
                    name,
                    format!("expected a date YYYY-MM-DD, found {v:?}"),
                ));
                None
            }
        }
    };
    let mut keys: Vec<(&'static str, Key)> = Vec::new();
    for (k, v) in params {
        let text = v.trim();
        if text.chars().count() > 200 {
            errors.push(field(k, "at most 200 characters"));
            continue;
        }
        match k.as_str() {
            "q" if text.is_empty() => {}
            "q" => keys.push(("q", classify(format, text))),
            "number" | "fiscal_code" | "email" | "mobile" if text.is_empty() => {
                errors.push(field(k, "must not be empty"));
            }
            "number" => {
                let mut n = number_candidates(format, text);
                if n.is_empty() {
                    n.push(text.to_owned());
                }
                keys.push(("number", Key::Numbers(n)));
            }
            "fiscal_code" => keys.push((
                "fiscal_code",
                Key::FiscalCode(
                    text.chars()
                        .filter(|c| !c.is_whitespace())
                        .collect::<String>()
                        .to_ascii_uppercase(),
                ),
            )),
            "email" => keys.push(("email", Key::Email(text.to_lowercase()))),
            "mobile" => match normalize_e164(text) {
                Some(m) => keys.push(("mobile", Key::Mobile(m))),
                None => errors.push(field(
                    "mobile",
                    "is not a phone number; write it like 347 123 4567 or +393471234567",
                )),
            },
            "office" if text.is_empty() => errors.push(field("office", "must not be empty")),
            "office" => q.office = Some(text.to_owned()),
            "state" => match text {
                "open" => q.state = Some(SearchState::Open),
                "closed" => q.state = Some(SearchState::Closed),
                s if LIST_STATES.contains(&s) => q.state = Some(SearchState::Sla(s.to_owned())),
                other => errors.push(field(
                    "state",
                    format!(
                        "unknown state {other:?}; expected open|{}|closed",
                        LIST_STATES.join("|")
                    ),
                )),
            },
            "from" => from = day("from", text, &mut errors),
            "to" => to = day("to", text, &mut errors),
            "after" => match Cursor::decode(text) {
                Some(c) => after = Some(c),
                None => errors.push(field("after", "must be the `next` of the previous page")),
            },
            "limit" => match text.parse::<i64>() {
                Ok(l) if (1..=100).contains(&l) => q.limit = l,
                _ => errors.push(field("limit", "must be an integer from 1 to 100")),
            },
            other => errors.push(field(
                other,
                format!("unknown parameter; expected {PARAMS}"),
            )),
        }
    }
    // One value per key: `q` and an explicit key naming the same kind of thing is ambiguous.
    let mut matched_by = "filters";
    keys.sort_by_key(|(origin, _)| *origin == "q");
    for (origin, key) in keys {
        let (name, clash) = match key {
            Key::Numbers(n) => ("number", !std::mem::replace(&mut q.numbers, n).is_empty()),
            Key::FiscalCode(v) => ("fiscal_code", q.fiscal_code.replace(v).is_some()),
            Key::Email(v) => ("email", q.email.replace(v).is_some()),
            Key::Mobile(v) => ("mobile", q.mobile.replace(v).is_some()),
        };
        if clash {
            errors.push(field(
                origin,
                format!("q and {name} both give a {name}; give it once"),
            ));
        }
    }
    for (name, given) in [
        ("number", !q.numbers.is_empty()),
        ("fiscal_code", q.fiscal_code.is_some()),
        ("email", q.email.is_some()),
        ("mobile", q.mobile.is_some()),
    ] {
        if given {
            matched_by = name;
            break;
        }
    }
    match (from, to) {
        (Some(f), Some(t)) if t < f => errors.push(field("to", "must not be before from")),
        (None, None) => {}
        (f, t) => match local_days(st, f, t) {
            Ok(p) => q.period = Some(p),
            Err(p) => return Err(p),
        },
    }
    match (after, q.period.is_some()) {
        (Some(c @ Cursor::Id(_)), false) | (Some(c @ Cursor::Received(..)), true) => {
            q.after = Some(c);
        }
        (None, _) => {}
        (Some(_), _) => errors.push(field(
            "after",
            "is the `next` of a search with other filters; start again from the first page",
        )),
    }
    if errors.is_empty() {
        Ok((q, matched_by))
    } else {
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        Err(Problem::invalid(errors))
    }
}

/// The instants `[start of from, end of to)` of local days in the office's current calendar;
/// an open end reaches as far as any ticket.
fn local_days(
    st: &DeskState,
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
) -> Result<(Timestamp, Timestamp), Problem> {
    let store = st.admin.store();
    let (calendar, policy) = store
        .versions()
        .current()
        .map_err(crate::store::StoreError::from)?;
    let sla = store
        .versions()
        .sla(calendar, policy)
        .map_err(crate::store::StoreError::from)?;
    let day = crate::time::day_number;
    Ok((
        from.map_or(Timestamp(i64::MIN / 4), |f| {
            sla.calendar.local_midnight(day(f))
        }),
        to.map_or(Timestamp(i64::MAX / 4), |t| {
            sla.calendar.local_midnight(day(t) + 1)
        }),
    ))
}

fn item(st: &DeskState, r: &SearchRow) -> Item {
    let mask = |v: &Option<String>| v.as_deref().map(crate::redact::mask);
    Item {
        number: r.number.clone(),
        subject: r.subject.clone(),
        office: r.office.clone(),
        priority: r.priority.clone(),
        category: r.category.clone(),
        state: r.state,
        received_at: super::ticket::rfc(st, r.received_at),
        due_at: r.due_at.map(|t| super::ticket::rfc(st, t)),
        closed_at: r.closed_at.map(|t| super::ticket::rfc(st, t)),
        citizen: MaskedCitizen {
            email: mask(&r.email),
            mobile: mask(&r.mobile),
            fiscal_code: mask(&r.fiscal_code),
        },
    }
}

/// Find tickets
///
/// By what the citizen says on the phone (`q`: a ticket number in any spelling the reply
/// matcher reads, a codice fiscale, an e-mail, a mobile number) or by explicit keys, office,
/// state and local days of receipt; every filter given must hold. Newest first by internal
/// id; with a period, newest received first. Contacts are always masked. Unknown parameters
/// are 422.
#[utoipa::path(
    get,
    path = "/api/v1/admin/tickets",
    operation_id = "deskSearchTickets",
    tag = "desk",
    security(("adminSession" = ["viewer"]), ("adminToken" = ["viewer"])),
    params(SearchParams),
    responses(
        (status = 200, description = "A page of tickets.", body = Page),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = super::super::openapi::Forbidden),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
async fn search(
    State(st): State<DeskState>,
    method: Method,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, Problem> {
    st.admin.acting(&headers, &method, Role::Viewer).await?;
    let Query(params) = query.map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Unreadable request",
            e.body_text(),
        )
    })?;
    let (q, matched_by) = read_query(&st, &params)?;
    let page = st.admin.store().desk().search(&q).await?;
    let body = Page {
        items: page.rows.iter().map(|r| item(&st, r)).collect(),
        next: page.next.map(|c| c.encode()),
        matched_by,
    };
    Ok(super::ticket::private(json_response(StatusCode::OK, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format() -> TicketFormat {
        TicketFormat::parse("{year}/{seq:6}").expect("format")
    }

    #[test]
    fn what_the_officer_types_is_read_as_the_right_key() {
        let f = format();
        let one = || Key::Numbers(vec!["2026/000123".to_owned()]);
        for typed in [
            "2026/000123",
            "2026 123",
            "2026-000123",
            "pratica 2026/123",
            "000123/2026",
            "123-2026",
        ] {
            assert_eq!(classify(&f, typed), one(), "{typed}");
        }
        assert_eq!(
            classify(&f, "347 123 4567"),
            Key::Mobile("+393471234567".into())
        );
        assert_eq!(
            classify(&f, "+39 320 2012 345"),
            Key::Mobile("+393202012345".into())
        );
        assert_eq!(
            classify(&f, "0039 347 1234567"),
            Key::Mobile("+393471234567".into())
        );
        assert_eq!(
            classify(&f, " Mario.Rossi@Example.IT "),
            Key::Email("mario.rossi@example.it".into())
        );
        assert_eq!(
            classify(&f, "rssmra80a01h501u"),
            Key::FiscalCode("RSSMRA80A01H501U".into())
        );
        assert_eq!(
            classify(&f, "H-00000001"),
            Key::Numbers(vec!["H-00000001".into()])
        );
    }
}
