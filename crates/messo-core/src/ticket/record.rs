//! A ticket as stored and what its history says: the records the store reads back
//! ([`TicketRecord`], [`EventRecord`]), the replay of a history ([`derive`]) and the SLA of a
//! history at an instant ([`evaluate`]). Pure: the store only maps rows to these types.

use serde::Serialize;
use serde_json::{Value, json};

use super::{Citizen, Derived, EventBody, EventRejection, FieldError, NewEvent, NewTicket, apply};
use crate::domain::{Category, Priority};
use crate::sla::{OutOfRange, Sla, normalize_suspensions};
use crate::time::Timestamp;

/// Why a stored history cannot be replayed: the data is inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ticket id {ticket_id}: {message}")]
pub struct HistoryError {
    pub ticket_id: i64,
    pub message: String,
}

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The SLA part of a ticket, as computed at `computed_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlaView {
    /// `running`, `warning`, `paused`, `breached` or `closed`.
    pub state: &'static str,
    pub due_at: Option<Timestamp>,
    pub elapsed_s: i64,
    pub target_s: i64,
    pub remaining_s: i64,
    pub next_check_at: Option<Timestamp>,
    /// For a closed ticket: whether it was closed after its due instant.
    pub closed_late: Option<bool>,
    pub computed_at: Timestamp,
}

/// A ticket as stored, with its SLA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRecord {
    pub id: i64,
    pub number: String,
    pub office: String,
    pub category: Category,
    pub priority: Priority,
    pub subject: String,
    pub step: Option<(String, String)>,
    pub citizen: Citizen,
    pub received_at: Timestamp,
    pub closed_at: Option<Timestamp>,
    pub waiting_since: Option<Timestamp>,
    pub policy_version: i64,
    pub calendar_version: i64,
    pub sla: SlaView,
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub id: i64,
    pub kind: String,
    pub occurred_at: Timestamp,
    pub source: String,
    pub idempotency_key: String,
    pub data: Value,
    pub recorded_at: Timestamp,
}

/// What a ticket's stored events say (pure).
pub fn derive(
    ticket_id: i64,
    events: &[EventRecord],
) -> Result<(Timestamp, Derived), HistoryError> {
    let corrupt = |message: String| HistoryError { ticket_id, message };
    let mut state: Option<(Timestamp, Derived)> = None;
    for e in events {
        if e.kind == "received" {
            let t = NewTicket::from_stored_json(e.data.get("ticket").unwrap_or(&Value::Null))
                .map_err(|e| corrupt(list(&e)))?;
            state = Some((t.received_at, Derived::new(&t)));
            continue;
        }
        let Some((received_at, d)) = state.as_mut() else {
            return Err(corrupt("events before the received event".into()));
        };
        let ev = NewEvent::from_stored_json(&e.data).map_err(|e| corrupt(list(&e)))?;
        apply(d, *received_at, &ev, Timestamp(i64::MAX / 2))
            .map_err(|r| corrupt(format!("stored event no longer applies: {r}")))?;
    }
    state.ok_or_else(|| corrupt("no received event".into()))
}

/// The derived state after each event of a stored history (the receipt's first), for the
/// engine to compare the expected closure before and after a change. `None` when the history
/// does not replay (the caller treats it as having nothing to compare).
pub fn states(events: &[EventRecord]) -> Option<Vec<(Timestamp, Derived)>> {
    let mut out: Vec<(Timestamp, Derived)> = Vec::with_capacity(events.len());
    for e in events {
        if e.kind == "received" {
            let t = NewTicket::from_json(e.data.get("ticket").unwrap_or(&Value::Null)).ok()?;
            out.push((t.received_at, Derived::new(&t)));
            continue;
        }
        let (received_at, mut d) = out.last()?.clone();
        let ev = NewEvent::from_stored_json(&e.data).ok()?;
        apply(&mut d, received_at, &ev, Timestamp(i64::MAX / 2)).ok()?;
        out.push((received_at, d));
    }
    Some(out)
}

pub fn state_name(s: &str) -> &'static str {
    match s {
        "running" => "running",
        "warning" => "warning",
        "paused" => "paused",
        "breached" => "breached",
        _ => "closed",
    }
}

/// The SLA of a ticket with this history at `now` (pure).
pub fn evaluate(
    sla: &Sla,
    received_at: Timestamp,
    d: &Derived,
    now: Timestamp,
) -> Result<SlaView, OutOfRange> {
    // A ticket switched to on-site counts its term from the switch (`Derived::clock_start`).
    let start = d.clock_start(received_at);
    let mut susp = d.suspensions.clone();
    normalize_suspensions(start, &mut susp);
    let status = sla.status_normalized(start, d.category, d.priority, &susp, now)?;
    let closed = d.closed_at.is_some();
    let next = if closed {
        None
    } else {
        sla.next_change(start, d.category, d.priority, &susp, now)?
    };
    Ok(SlaView {
        state: if closed {
            "closed"
        } else {
            status.state.as_str()
        },
        due_at: status.due_at,
        elapsed_s: status.elapsed_s,
        target_s: status.target_s,
        remaining_s: status.remaining_s,
        next_check_at: next,
        closed_late: d
            .closed_at
            .map(|c| status.due_at.is_some_and(|due| due <= c)),
        computed_at: now,
    })
}

/// The office's rules for the date of an appointment event, checked when it is recorded (a
/// replay of stored events does not check them again: the calendar may have changed since):
/// not in the past at `now`, starting inside a working window and ending in the same one, and,
/// for a proposal, ending by the on-site term unless a reason is given. `d` is the ticket
/// before the event.
pub fn check_appointment(
    sla: &Sla,
    received_at: Timestamp,
    d: &Derived,
    e: &NewEvent,
    now: Timestamp,
) -> Result<(), EventRejection> {
    let (starts_at, minutes, reason) = match &e.body {
        EventBody::AppointmentProposed {
            starts_at,
            minutes,
            reason,
            ..
        } => (*starts_at, *minutes, reason.is_some()),
        EventBody::AppointmentChanged {
            starts_at, minutes, ..
        } => (*starts_at, *minutes, true),
        _ => return Ok(()),
    };
    let cal = &sla.calendar;
    let local = |t: Timestamp| cal.format_rfc3339(t);
    let invalid = |field: &str, message: String| EventRejection::Invalid {
        field: field.to_owned(),
        message,
    };
    if starts_at <= now {
        return Err(invalid(
            "starts_at",
            format!("the appointment ({}) is in the past", local(starts_at)),
        ));
    }
    let ends_at = starts_at.plus(i64::from(minutes) * 60);
    let close = cal.next_close(starts_at);
    if !cal.is_open(starts_at) {
        let next = cal.next_opening(starts_at).map(local).unwrap_or_default();
        return Err(invalid(
            "starts_at",
            format!(
                "{} is outside office hours; the office next opens at {next}",
                local(starts_at)
            ),
        ));
    }
    if let Some(close) = close.filter(|c| ends_at > *c) {
        return Err(invalid(
            "minutes",
            format!(
                "the appointment would end at {}, after the office closes at {}",
                local(ends_at),
                local(close)
            ),
        ));
    }
    if !reason {
        let view =
            evaluate(sla, received_at, d, now).map_err(|e| invalid("starts_at", e.to_string()))?;
        if let Some(due) = view.due_at.filter(|due| ends_at > *due) {
            return Err(invalid(
                "starts_at",
                format!(
                    "the appointment would end at {}, after the on-site term ({}); give a reason to book it later",
                    local(ends_at),
                    local(due)
                ),
            ));
        }
    }
    Ok(())
}

/// The JSON of a ticket for the API.
pub fn ticket_json(t: &TicketRecord, format: &dyn Fn(Timestamp) -> String) -> Value {
    let f = |o: Option<Timestamp>| o.map(format);
    json!({
        "number": t.number,
        "office": t.office,
        "category": t.category.as_str(),
        "priority": t.priority.as_str(),
        "subject": t.subject,
        "step": t.step.as_ref().map(|(code, text)| json!({"code": code, "text": text})),
        "citizen": t.citizen,
        "received_at": format(t.received_at),
        "closed_at": f(t.closed_at),
        "waiting_since": f(t.waiting_since),
        "versions": {"policy": t.policy_version, "calendar": t.calendar_version},
        "sla": {
            "state": t.sla.state,
            "due_at": f(t.sla.due_at),
            "elapsed_s": t.sla.elapsed_s,
            "target_s": t.sla.target_s,
            "remaining_s": t.sla.remaining_s,
            "next_check_at": f(t.sla.next_check_at),
            "closed_late": t.sla.closed_late,
            "computed_at": format(t.sla.computed_at),
        },
    })
}

/// Which states a list may filter on.
pub const LIST_STATES: &[&str] = &["running", "warning", "paused", "breached"];
