//! What a ticket is owed, decided by a pure function: its history, the clock and `now` in, the
//! SLA state, the notices now owed and the next instant to look again out. The store's engine
//! cycle calls it and writes the result in one transaction; the outbox's unique key turns a
//! repeated decision into no new row.
//!
//! Notices are derived from the whole history every time, each with a key naming the event or
//! deadline it is about, so "exactly once" never depends on remembering what was sent.

use serde_json::{Value, json};

use crate::calendar::Calendar;
use crate::calendar::Window;
use crate::domain::{Address, Channel, EmailAddress, Lang};
use crate::sla::Sla;
use crate::ticket::Derived;
use crate::ticket::record::{EventRecord, SlaView, TicketRecord, evaluate};
use crate::time::Timestamp;

/// The `[notify]` section: who receives office alerts and when messages may go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// The From address of every e-mail.
    pub sender_email: String,
    /// The URP's mailbox: warnings, breaches, expired suspensions.
    pub office_email: EmailAddress,
    /// Also told of every breach.
    pub supervisor_email: Option<EmailAddress>,
    /// The phone number citizens are told to call.
    pub office_phone: String,
    /// Citizen SMS go out only inside this local window, Monday to Saturday, not on holidays.
    pub sms_window: Window,
    /// Working days between reminders of an integration request (0: no reminders).
    pub reminder_after_working_days: u32,
    pub max_reminders: u32,
    /// Calendar days the office waits for an integrazione before the suspension is reported
    /// (the agreement's own rule; docs/daemon.md says which law applies to what).
    pub suspension_cap_days: u32,
    /// What happens at the cap: the office is alerted, and with `close` the ticket is also closed
    /// with a notice to the citizen.
    pub close_at_suspension_cap: bool,
    /// With `close_at_suspension_cap`, the citizen's last warning goes out at the opening of the
    /// working day this many working days before the closure (0: no last warning).
    pub last_warning_working_days: u32,
    /// The office's names by code (`[comune.offices]`): what citizens and staff read instead of
    /// a code.
    pub office_names: std::collections::BTreeMap<String, String>,
    /// Staff alerts wait for office hours.
    pub staff_alerts_office_hours_only: bool,
    /// Days after which sent messages and processed inbox rows lose their personal content.
    pub retention_days: u32,
    /// Where citizens' notices go first: IO, the digital domicile (`[io]`, `[domicile]`).
    pub routing: crate::delivery::route::Routing,
}

pub use crate::domain::{Kind, Recipient};

/// One notice owed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: Kind,
    /// What the notice is about (an event id, a deadline): with kind and recipient, its identity.
    pub key: String,
    pub recipient: Recipient,
    pub channel: Channel,
    /// Of the channel's kind.
    pub address: Address,
    pub language: Lang,
    /// Not sent before this instant (SMS window, office hours).
    pub not_before: Timestamp,
    /// What the template needs.
    pub payload: Value,
}

/// The engine's answer for one ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub sla: SlaView,
    pub notices: Vec<Notice>,
    /// When to look at the ticket again without a new event.
    pub next_check_at: Option<Timestamp>,
    /// Close the ticket now (a suspension passed its cap and the outcome is `close`): the
    /// instant, and what the closed event records under `automatic` (the reason as data:
    /// templates say it in the citizen's language).
    pub close: Option<(Timestamp, Value)>,
}

/// What the engine decides with, besides the ticket.
pub struct Context<'a> {
    pub sla: &'a Sla,
    pub notify: &'a Notify,
    /// The SMS window as a calendar (Monday–Saturday, holidays closed).
    pub sms_calendar: &'a Calendar,
}

/// The SMS window calendar for an office calendar and a configured window.
pub fn sms_calendar(
    office: &Calendar,
    notify: &Notify,
) -> Result<Calendar, crate::calendar::CalendarError> {
    let mut spec = office.spec().clone();
    let day = vec![notify.sms_window];
    spec.weekly = [
        day.clone(),
        day.clone(),
        day.clone(),
        day.clone(),
        day.clone(),
        day,
        Vec::new(),
    ];
    Calendar::new(spec)
}

/// Decides what `ticket` is owed at `now`. Pure.
pub fn decide(
    ctx: &Context<'_>,
    ticket: &TicketRecord,
    received_at: Timestamp,
    derived: &Derived,
    events: &[EventRecord],
    now: Timestamp,
) -> Result<Decision, crate::sla::OutOfRange> {
    let view = evaluate(ctx.sla, received_at, derived, now)?;
    let mut owed = Owed::new(ctx, ticket, received_at, derived, &view, now);
    let dates = owed.dates(events);
    for e in events {
        owed.event(e, &dates);
    }
    owed.date_changes(dates.changes);
    owed.deadline(dates.office_date);
    owed.appointment_reminder();
    let Owed {
        notices,
        later,
        close,
        ..
    } = owed;
    let next_check_at = if derived.closed_at.is_some() {
        None
    } else {
        view.next_check_at
            .into_iter()
            .chain(later)
            .filter(|t| *t > now)
            .min()
    };
    Ok(Decision {
        sla: view,
        notices,
        next_check_at,
        close,
    })
}

/// What one decision accumulates: the notices owed, the instants to look again, a closing.
struct Owed<'a> {
    ctx: &'a Context<'a>,
    derived: &'a Derived,
    view: &'a SlaView,
    received_at: Timestamp,
    now: Timestamp,
    /// What every payload carries (number, subject, office, terms, contacts).
    base: Value,
    citizen: &'a crate::ticket::Citizen,
    language: Lang,
    office_not_before: Timestamp,
    notices: Vec<Notice>,
    later: Vec<Timestamp>,
    close: Option<(Timestamp, Value)>,
    /// The appointment as the events read so far leave it: (ordinal, sequence, slot).
    appointment: (u32, u32, Option<Slot>),
}

/// How long after a change of the expected date the engine waits for more changes before it
/// tells the citizen: changes made together (a priority and a category, a reopening and a new
/// priority) make one notice.
pub const DATE_CHANGE_SETTLE_S: i64 = 300;

/// The event kinds that may move the expected closure and owe a date-change notice. (The end of
/// a suspension moves it too: the resumption notice tells the new date.)
const DATE_MOVES: [&str; 5] = [
    "priority_changed",
    "category_changed",
    "reopened",
    "rebaselined",
    "expected_date_set",
];

/// The expected closure as the citizen was told it, along the history.
#[derive(Debug, Default)]
struct Dates {
    /// The expected closure right after the receipt.
    at_receipt: Option<Timestamp>,
    /// Per resumption (event id): the date told before the suspension and the new one.
    resumed: std::collections::BTreeMap<i64, (Option<Timestamp>, Option<Timestamp>)>,
    /// The date-change notices owed: the last event of the changes, the old and new dates,
    /// what moved it, the office's reason when it set the date.
    changes: Vec<DateChange>,
    /// The date the office set last (`expected_date_set`), while the ticket is open.
    office_date: Option<Timestamp>,
}

#[derive(Debug)]
struct DateChange {
    last_event: i64,
    old: Timestamp,
    new: Timestamp,
    why: std::collections::BTreeSet<&'static str>,
    office_reason: Option<String>,
}

/// Changes of the expected date not yet told: from the first one's old date to the last one.
struct Burst {
    old: Option<Timestamp>,
    last: usize,
    last_at: Timestamp,
    why: std::collections::BTreeSet<&'static str>,
    office_reason: Option<String>,
}

/// An appointment's date, length, place and officer, as its event states them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    starts_at: Timestamp,
    minutes: u32,
    place: String,
    officer: String,
}

impl Slot {
    /// The slot an `appointment_proposed` or `appointment_changed` event states.
    fn of(e: &EventRecord) -> Option<Slot> {
        Some(Slot {
            starts_at: Timestamp::parse_rfc3339(e.data["starts_at"].as_str()?).ok()?,
            minutes: u32::try_from(e.data["minutes"].as_u64()?).ok()?,
            place: e.data["place"].as_str()?.to_owned(),
            officer: e.data["officer"].as_str()?.to_owned(),
        })
    }

    fn ends_at(&self) -> Timestamp {
        self.starts_at.plus(i64::from(self.minutes) * 60)
    }
}

impl<'a> Owed<'a> {
    fn new(
        ctx: &'a Context<'a>,
        ticket: &'a TicketRecord,
        received_at: Timestamp,
        derived: &'a Derived,
        view: &'a SlaView,
        now: Timestamp,
    ) -> Owed<'a> {
        let cal = &ctx.sla.calendar;
        let fmt = |t: Timestamp| cal.format_rfc3339(t);
        let base = json!({
            "number": ticket.number,
            "subject": ticket.subject,
            "office": ticket.office,
            "office_name": ctx.notify.office_names.get(&ticket.office).unwrap_or(&ticket.office),
            "category": derived.category.as_str(),
            "priority": derived.priority.as_str(),
            "received_at": fmt(received_at),
            "due_at": view.due_at.map(fmt),
            "office_phone": ctx.notify.office_phone,
            "office_email": ctx.notify.office_email.as_str(),
        });
        let office_not_before = if ctx.notify.staff_alerts_office_hours_only {
            cal.next_opening(now).unwrap_or(now)
        } else {
            now
        };
        Owed {
            ctx,
            derived,
            view,
            received_at,
            now,
            base,
            citizen: &ticket.citizen,
            language: ticket.citizen.lang(),
            office_not_before,
            notices: Vec::new(),
            later: Vec::new(),
            close: None,
            appointment: (0, 0, None),
        }
    }

    fn fmt(&self, t: Timestamp) -> String {
        self.ctx.sla.calendar.format_rfc3339(t)
    }

    /// The common payload with `extra`'s fields added.
    fn with(&self, extra: Value) -> Value {
        let mut p = self.base.clone();
        if let (Value::Object(p), Value::Object(e)) = (&mut p, extra) {
            p.extend(e);
        }
        p
    }

    /// A notice to the citizen on their route; with no channel left (no address, or opted out
    /// of every one) the office is told instead, so the notice is not silently lost.
    fn citizen(&mut self, kind: Kind, key: String, payload: Value) {
        if let Some((channel, address)) =
            crate::delivery::route::first(kind, self.citizen, &self.ctx.notify.routing)
        {
            // The app notifies the phone as an SMS does: both keep to the SMS window.
            let not_before = if matches!(channel, Channel::Sms | Channel::Io) {
                self.ctx
                    .sms_calendar
                    .next_opening(self.now)
                    .unwrap_or(self.now)
            } else {
                self.now
            };
            self.notices.push(Notice {
                kind,
                key,
                recipient: Recipient::Citizen,
                channel,
                address,
                language: self.language,
                not_before,
                payload,
            });
        } else {
            let mut payload = payload;
            if let Value::Object(m) = &mut payload {
                m.insert("undelivered_kind".to_owned(), json!(kind.as_str()));
            }
            let office = self.ctx.notify.office_email.clone();
            self.staff(
                Kind::CittadinoIrraggiungibile,
                format!("{}:{key}", kind.as_str()),
                Recipient::Office,
                &office,
                payload,
            );
        }
    }

    /// An e-mail to the office or the supervisor, in office hours when so configured.
    fn staff(
        &mut self,
        kind: Kind,
        key: String,
        to: Recipient,
        address: &EmailAddress,
        payload: Value,
    ) {
        self.notices.push(Notice {
            kind,
            key,
            recipient: to,
            channel: Channel::Email,
            address: Address::Email(address.clone()),
            language: Lang::It,
            not_before: self.office_not_before,
            payload,
        });
    }

    /// What one event of the history owes.
    fn event(&mut self, e: &EventRecord, dates: &Dates) {
        let id = e.id.to_string();
        match e.kind.as_str() {
            "received" => {
                let cal = &self.ctx.sla.calendar;
                let counting_from = cal
                    .next_opening(self.received_at)
                    .unwrap_or(self.received_at);
                // The date the receipt tells is the one of the request as it arrived: a later
                // change has its own notice with the old and the new date.
                let due_at = dates.at_receipt.or(self.view.due_at).map(|t| self.fmt(t));
                // An on-site request counts its term from the request itself, whenever it came:
                // the receipt says by when the visit will be, not when the clock starts.
                let on_site = self.derived.category == crate::domain::Category::InLoco;
                let payload = self.with(json!({
                    "out_of_hours": !on_site && counting_from > self.received_at && self.view.state != "closed",
                    "counting_from": self.fmt(counting_from),
                    "due_at": due_at,
                    "on_site": on_site,
                    "book_by": if on_site { due_at.clone() } else { None },
                }));
                self.citizen(Kind::Ricevuta, "receipt".to_owned(), payload);
            }
            "step_changed" => {
                let payload = self.with(json!({"step": e.data["step"], "text": e.data["text"]}));
                self.citizen(Kind::Avanzamento, id, payload);
            }
            "integration_requested" => {
                let payload = self.with(json!({
                    "missing": e.data["missing"],
                    "reply_by": self.reply_by(e.occurred_at),
                    "reminders": self.reminders_planned(),
                    "closes_if_no_reply": self.ctx.notify.close_at_suspension_cap,
                }));
                self.citizen(Kind::RichiestaIntegrazione, id.clone(), payload);
                // Reminders and the cap belong to the wait still open.
                if self.derived.waiting_since == Some(e.occurred_at)
                    && self.derived.closed_at.is_none()
                {
                    self.reminders(e, &id);
                    self.suspension_cap(e, id);
                }
            }
            "integration_received" => {
                let (before, after) = dates.resumed.get(&e.id).copied().unwrap_or_default();
                let mut payload = self.with(json!({
                    "channel": e.data["channel"],
                    "due_before": before.map(|t| self.fmt(t)),
                }));
                if let (Some(t), Value::Object(m)) = (after, &mut payload) {
                    m.insert("due_at".to_owned(), json!(self.fmt(t)));
                }
                self.citizen(Kind::Ripresa, id, payload);
            }
            "closed" => {
                let payload = self.with(json!({
                    "text": e.data["text"],
                    "closed_late": self.view.closed_late,
                    "automatic": e.data.get("automatic").cloned().unwrap_or(Value::Null),
                }));
                self.citizen(Kind::Chiusura, id, payload);
            }
            "appointment_proposed" | "appointment_changed" => {
                let Some(slot) = Slot::of(e) else { return };
                let changed = e.kind == "appointment_changed";
                let (ordinal, sequence, previous) = &mut self.appointment;
                if changed {
                    *sequence += 1;
                } else {
                    *ordinal += 1;
                    *sequence = 0;
                }
                let previous = previous.replace(slot.clone()).filter(|_| changed);
                let kind = if changed {
                    Kind::AppuntamentoModificato
                } else {
                    Kind::Appuntamento
                };
                let payload = self.appointment_payload(
                    &slot,
                    e,
                    previous.as_ref(),
                    Some(crate::ics::Method::Publish),
                );
                self.citizen(kind, id, payload);
            }
            "appointment_cancelled" | "appointment_missed" => {
                let Some(slot) = self.appointment.2.take() else {
                    return;
                };
                let (kind, method) = if e.kind == "appointment_cancelled" {
                    self.appointment.1 += 1;
                    (
                        Kind::AppuntamentoAnnullato,
                        Some(crate::ics::Method::Cancel),
                    )
                } else {
                    (Kind::AppuntamentoMancato, None)
                };
                let payload = self.appointment_payload(&slot, e, None, method);
                self.citizen(kind, id, payload);
            }
            "appointment_held" => self.appointment.2 = None,
            // Notes and contacts made or corrected from the console owe no notice; changes
            // of the expected date are told by `date_changes`.
            _ => {}
        }
    }

    /// How many reminders an integration request will have.
    fn reminders_planned(&self) -> u32 {
        let n = self.ctx.notify;
        if n.reminder_after_working_days == 0 {
            0
        } else {
            n.max_reminders
        }
    }

    /// The expected closure along the history: after the receipt, before and after each
    /// suspension, and the changes the citizen is owed a notice of. A change is told once the
    /// changes made together settled ([`DATE_CHANGE_SETTLE_S`]); a change that leaves the date
    /// as told, or moves it to an instant already past, owes nothing; nothing is told while the
    /// ticket waits for the citizen or is closed (the resumption and a reopening tell it).
    /// Changes before the last rebaseline were decided under the previous calendar and policy
    /// and are not looked at again.
    fn dates(&mut self, events: &[EventRecord]) -> Dates {
        let mut out = Dates::default();
        // Most histories hold nothing that moves the date: the receipt's date is then the
        // state as received (no wait, no closure, the same priority and category), and the
        // history need not be replayed.
        let moves_date = |e: &EventRecord| {
            DATE_MOVES.contains(&e.kind.as_str()) || e.kind == "integration_received"
        };
        if !events.iter().any(moves_date) {
            let mut received = self.derived.clone();
            received.suspensions.clear();
            received.waiting_since = None;
            received.closed_at = None;
            received.appointment = None;
            received.last_event_at = self.received_at;
            out.at_receipt = evaluate(self.ctx.sla, self.received_at, &received, self.received_at)
                .ok()
                .and_then(|v| v.due_at);
            return out;
        }
        let Some(states) = crate::ticket::record::states(events) else {
            return out;
        };
        if states.len() != events.len() {
            return out;
        }
        let sla = self.ctx.sla;
        let due = |i: usize| -> Option<Timestamp> {
            let (received_at, d) = &states[i];
            if d.closed_at.is_some() || d.waiting_since.is_some() {
                return None;
            }
            evaluate(sla, *received_at, d, d.last_event_at)
                .ok()
                .and_then(|v| v.due_at)
        };
        let last_rebaseline = events.iter().rposition(|e| e.kind == "rebaselined");
        let mut told: Option<Timestamp> = None;
        let mut burst: Option<Burst> = None;
        for (i, e) in events.iter().enumerate() {
            let kind = e.kind.as_str();
            if kind == "received" {
                told = due(i);
                out.at_receipt = told;
                continue;
            }
            let moves = DATE_MOVES.contains(&kind);
            let ends_burst = !moves
                && matches!(
                    kind,
                    "integration_requested"
                        | "integration_received"
                        | "closed"
                        | "appointment_held"
                );
            let settled_gap = burst
                .as_ref()
                .is_some_and(|b| e.occurred_at.0 - b.last_at.0 > DATE_CHANGE_SETTLE_S);
            if (ends_burst || (moves && settled_gap) || kind == "rebaselined")
                && let Some(b) = burst.take()
            {
                self.flush(b, events, &due, last_rebaseline, &mut told, &mut out);
            }
            match kind {
                "integration_received" => {
                    let after = due(i);
                    out.resumed.insert(e.id, (told, after));
                    if after.is_some() {
                        told = after;
                    }
                }
                "closed" | "appointment_held" => out.office_date = None,
                "rebaselined" => {
                    if let Some(t) = e
                        .data
                        .get("due_before")
                        .and_then(Value::as_str)
                        .and_then(|t| Timestamp::parse_rfc3339(t).ok())
                    {
                        told = Some(t);
                    }
                }
                "expected_date_set" => {
                    out.office_date = e
                        .data
                        .get("expected_at")
                        .and_then(Value::as_str)
                        .and_then(|t| Timestamp::parse_rfc3339(t).ok());
                }
                _ => {}
            }
            if moves {
                let b = burst.get_or_insert(Burst {
                    old: told,
                    last: i,
                    last_at: e.occurred_at,
                    why: Default::default(),
                    office_reason: None,
                });
                b.last = i;
                b.last_at = e.occurred_at;
                b.why.insert(match kind {
                    "priority_changed" => "priority",
                    "category_changed" => "category",
                    "reopened" => "reopened",
                    "rebaselined" => "calendar",
                    _ => "office",
                });
                if kind == "expected_date_set" {
                    b.office_reason = e.data["reason"].as_str().map(str::to_owned);
                }
            }
        }
        if let Some(b) = burst {
            let settles = b.last_at.plus(DATE_CHANGE_SETTLE_S);
            if settles > self.now {
                self.later.push(settles);
            } else {
                self.flush(b, events, &due, last_rebaseline, &mut told, &mut out);
            }
        }
        out
    }

    /// The notice a settled burst of changes owes, if the date moved.
    fn flush(
        &self,
        b: Burst,
        events: &[EventRecord],
        due: &dyn Fn(usize) -> Option<Timestamp>,
        last_rebaseline: Option<usize>,
        told: &mut Option<Timestamp>,
        out: &mut Dates,
    ) {
        // An open ticket's date: the office's when it set one, else the term.
        let new = match due(b.last) {
            Some(d) => Some(out.office_date.unwrap_or(d)),
            None => None,
        };
        let Some(new) = new else {
            return;
        };
        let before_rebaseline = last_rebaseline.is_some_and(|r| b.last < r);
        let last = &events[b.last];
        if let Some(old) = b.old
            && old != new
            && new > last.occurred_at
            && !before_rebaseline
        {
            out.changes.push(DateChange {
                last_event: last.id,
                old,
                new,
                why: b.why,
                office_reason: b.office_reason,
            });
        }
        *told = Some(new);
    }

    /// The date-change notices.
    fn date_changes(&mut self, changes: Vec<DateChange>) {
        for c in changes {
            let why: serde_json::Map<String, Value> = c
                .why
                .iter()
                .map(|w| ((*w).to_owned(), json!(true)))
                .collect();
            let payload = self.with(json!({
                "due_before": self.fmt(c.old),
                "due_at": self.fmt(c.new),
                "later": c.new > c.old,
                "why": why,
                "office_reason": c.office_reason,
            }));
            self.citizen(Kind::CambioData, c.last_event.to_string(), payload);
        }
    }

    /// What an appointment's notices carry: the appointment as the citizen reads it, and with
    /// `method` the calendar event the e-mail attaches (`ics`).
    fn appointment_payload(
        &self,
        slot: &Slot,
        e: &EventRecord,
        previous: Option<&Slot>,
        method: Option<crate::ics::Method>,
    ) -> Value {
        let (ordinal, sequence, _) = &self.appointment;
        let number = self.base["number"].as_str().unwrap_or_default();
        let domain = self
            .ctx
            .notify
            .sender_email
            .rsplit_once('@')
            .map_or("messo.invalid", |(_, d)| d);
        let uid_number: String = number
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let calendar = method.map(|m| {
            json!({
                "uid": format!("appuntamento-{ordinal}-{uid_number}@{domain}"),
                "sequence": sequence,
                "method": m.as_str(),
                "stamp": e.occurred_at.to_string(),
                "starts_at": slot.starts_at.to_string(),
                "ends_at": slot.ends_at().to_string(),
                "location": slot.place,
                "organizer": self.ctx.notify.sender_email,
            })
        });
        self.with(json!({
            "appointment": {
                "starts_at": self.fmt(slot.starts_at),
                "ends_at": self.fmt(slot.ends_at()),
                "minutes": slot.minutes,
                "place": slot.place,
                "officer": slot.officer,
                "reason": e.data.get("reason").cloned().unwrap_or(Value::Null),
                "previous_starts_at": previous.map(|p| self.fmt(p.starts_at)),
            },
            "calendar": calendar,
        }))
    }

    /// The reminder of a booked appointment: at the SMS window's opening on the working day
    /// before it; none when the appointment was booked after that instant, or is already past.
    fn appointment_reminder(&mut self) {
        let derived = self.derived;
        let Some(a) = derived.booked_appointment() else {
            return;
        };
        if derived.closed_at.is_some() {
            return;
        }
        let ctx = self.ctx;
        let cal = &ctx.sla.calendar;
        let day = cal.local_day(a.starts_at);
        let Some(before) = (1..=60)
            .map(|k| day - k)
            .find(|d| !cal.day(*d).windows.is_empty())
        else {
            return;
        };
        let Some(at) = ctx.sms_calendar.next_opening(cal.local_midnight(before)) else {
            return;
        };
        if a.booked_at > at || at >= a.starts_at || self.now >= a.starts_at {
            return;
        }
        if at > self.now {
            self.later.push(at);
            return;
        }
        let key = format!("{}:{}", a.ordinal, a.starts_at.0);
        let payload = self.with(json!({"appointment": {
            "starts_at": self.fmt(a.starts_at),
            "ends_at": self.fmt(a.ends_at()),
            "minutes": a.minutes,
            "place": a.place,
            "officer": a.officer,
        }}));
        self.citizen(Kind::PromemoriaAppuntamento, key, payload);
    }

    /// By when an integration requested at `at` should arrive: the suspension cap.
    fn reply_by(&self, at: Timestamp) -> String {
        let days = i64::from(self.ctx.notify.suspension_cap_days);
        self.fmt(at.plus(days * 86_400))
    }

    /// Reminders of the open integration request `e`: those whose instant came, and the next
    /// one to wait for.
    fn reminders(&mut self, e: &EventRecord, id: &str) {
        let n = self.ctx.notify;
        let hours = i64::from(self.ctx.sla.policy.hours_per_working_day()) * 3600;
        let step = i64::from(n.reminder_after_working_days) * hours;
        if step == 0 {
            return;
        }
        for k in 1..=i64::from(n.max_reminders) {
            let Some(at) = self.ctx.sla.calendar.add_business(e.occurred_at, k * step) else {
                break;
            };
            if at > self.now {
                self.later.push(at);
                break;
            }
            let payload = self.with(json!({
                "missing": e.data["missing"],
                "reminder": k,
                "reminders": self.reminders_planned(),
                "requested_at": self.fmt(e.occurred_at),
                "reply_by": self.reply_by(e.occurred_at),
                "closes_if_no_reply": n.close_at_suspension_cap,
            }));
            self.citizen(Kind::SollecitoIntegrazione, format!("{id}:{k}"), payload);
        }
    }

    /// The cap on the open integration request `e` (the agreement's integrazione rule, with the
    /// office's `suspension_cap_days`): the office is told when it passes, and with
    /// `close_at_suspension_cap` the citizen has a last warning first and the ticket is closed.
    fn suspension_cap(&mut self, e: &EventRecord, id: String) {
        let n = self.ctx.notify;
        let cap = e
            .occurred_at
            .plus(i64::from(n.suspension_cap_days) * 86_400);
        if n.close_at_suspension_cap
            && cap > self.now
            && let Some(at) = self.last_warning_at(cap)
            && at > e.occurred_at
        {
            if at > self.now {
                self.later.push(at);
            } else {
                let payload = self.with(json!({
                    "missing": e.data["missing"],
                    "requested_at": self.fmt(e.occurred_at),
                    "reply_by": self.fmt(cap),
                    "closes_at": self.fmt(cap),
                }));
                self.citizen(Kind::UltimoAvviso, id.clone(), payload);
            }
        }
        if cap > self.now {
            self.later.push(cap);
            return;
        }
        if n.close_at_suspension_cap {
            self.close = Some((
                cap,
                json!({
                    "reason": "suspension_cap",
                    "requested_at": self.fmt(e.occurred_at),
                    "cap_days": n.suspension_cap_days,
                }),
            ));
        }
        let payload = self.with(
            json!({"requested_at": self.fmt(e.occurred_at), "cap_days": n.suspension_cap_days}),
        );
        self.staff(
            Kind::SospensioneScaduta,
            id,
            Recipient::Office,
            &n.office_email,
            payload,
        );
    }

    /// When the last warning before an automatic closure at `cap` goes out: the first opening
    /// of the working day `last_warning_working_days` working days before the cap's day.
    fn last_warning_at(&self, cap: Timestamp) -> Option<Timestamp> {
        let n = self.ctx.notify.last_warning_working_days;
        if n == 0 {
            return None;
        }
        let cal = &self.ctx.sla.calendar;
        let mut day = cal.local_day(cap);
        let mut found = 0;
        // A year of days is more than any calendar's run of closed days.
        for _ in 0..400 {
            day -= 1;
            if let Some((opening, _)) = cal.day(day).windows.first() {
                found += 1;
                if found == n {
                    return Some(*opening);
                }
            }
        }
        None
    }

    /// The deadline's notices: a warning to the office while it nears, and a breach (the due
    /// instant came before the ticket was closed, if it was) to citizen, office and supervisor.
    /// The breach notice gives the date the office set, when it set one.
    fn deadline(&mut self, office_date: Option<Timestamp>) {
        let n = self.ctx.notify;
        if self.view.state == "warning"
            && let Some(due) = self.view.due_at
        {
            let payload = self.with(json!({"remaining_s": self.view.remaining_s}));
            self.staff(
                Kind::PreavvisoScadenza,
                format!("due:{}", due.0),
                Recipient::Office,
                &n.office_email,
                payload,
            );
        }
        let Some(due) = self.view.due_at else {
            return;
        };
        if due > self.now || self.derived.closed_at.is_some_and(|c| due > c) {
            return;
        }
        let key = format!("due:{}", due.0);
        let payload = self.with(json!({
            "breached_at": self.fmt(due),
            "new_expected_at": office_date.filter(|t| *t > due).map(|t| self.fmt(t)),
        }));
        self.citizen(Kind::Violazione, key.clone(), payload.clone());
        self.staff(
            Kind::Violazione,
            key.clone(),
            Recipient::Office,
            &n.office_email,
            payload.clone(),
        );
        if let Some(sup) = &n.supervisor_email {
            self.staff(Kind::Violazione, key, Recipient::Supervisor, sup, payload);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Hand-checked decisions on the agreement's calendar (Europe/Rome, Monday–Friday
    //! 09:00–17:00) and targets (Urgente 1 working day, Normale 5). March 2026: Monday 2 to
    //! Friday 6 and Monday 9 are working days, with no holiday.
    use super::*;
    use crate::calendar::CalendarSpec;
    use crate::domain::{Category, Priority};
    use crate::sla::{Policy, Suspension};
    use crate::ticket::Citizen;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).expect("a test instant")
    }

    fn email(s: &str) -> EmailAddress {
        EmailAddress::parse(s).expect("a test address")
    }

    fn notify() -> Notify {
        Notify {
            sender_email: "urp@comune.example.it".into(),
            office_email: email("ufficio@comune.example.it"),
            supervisor_email: Some(email("dirigente@comune.example.it")),
            office_phone: "+39 06 0000".into(),
            sms_window: Window::hm((8, 0), (20, 0)),
            reminder_after_working_days: 2,
            max_reminders: 2,
            suspension_cap_days: 30,
            close_at_suspension_cap: false,
            last_warning_working_days: 3,
            office_names: Default::default(),
            staff_alerts_office_hours_only: true,
            retention_days: 365,
            routing: Default::default(),
        }
    }

    struct Case {
        sla: Sla,
        notify: Notify,
        sms: Calendar,
    }

    impl Case {
        fn new(notify: Notify) -> Case {
            let calendar = Calendar::new(CalendarSpec::roma_capitale()).expect("calendar");
            let sms = sms_calendar(&calendar, &notify).expect("SMS calendar");
            Case {
                sla: Sla::new(calendar, Policy::agreement_default()),
                notify,
                sms,
            }
        }

        fn decide(
            &self,
            citizen: Citizen,
            priority: Priority,
            received: &str,
            derived: impl FnOnce(&mut Derived),
            events: &[EventRecord],
            now: &str,
        ) -> Decision {
            let received_at = ts(received);
            let mut d = Derived {
                priority,
                category: Category::Generale,
                suspensions: Vec::new(),
                waiting_since: None,
                closed_at: None,
                step: None,
                last_event_at: received_at,
                on_site_from: None,
                appointment: None,
            };
            derived(&mut d);
            let ticket = TicketRecord {
                id: 1,
                number: "2026/000001".into(),
                office: "URP".into(),
                category: Category::Generale,
                priority,
                subject: "Certificato di residenza".into(),
                step: None,
                citizen,
                received_at,
                closed_at: d.closed_at,
                waiting_since: d.waiting_since,
                policy_version: 1,
                calendar_version: 1,
                sla: evaluate(&self.sla, received_at, &d, ts(now)).expect("in range"),
            };
            let ctx = Context {
                sla: &self.sla,
                notify: &self.notify,
                sms_calendar: &self.sms,
            };
            let mut all = vec![event(1, "received", received, json!({}))];
            all.extend_from_slice(events);
            decide(&ctx, &ticket, received_at, &d, &all, ts(now)).expect("in range")
        }
    }

    fn event(id: i64, kind: &str, at: &str, data: Value) -> EventRecord {
        EventRecord {
            id,
            kind: kind.into(),
            occurred_at: ts(at),
            source: "api".into(),
            idempotency_key: format!("k{id}"),
            data,
            recorded_at: ts(at),
        }
    }

    fn by_email() -> Citizen {
        Citizen {
            email: Some("mario.rossi@example.it".into()),
            ..Citizen::default()
        }
    }

    fn kinds(d: &Decision) -> Vec<(Kind, Recipient, &str)> {
        d.notices
            .iter()
            .map(|n| (n.kind, n.recipient, n.key.as_str()))
            .collect()
    }

    #[test]
    fn a_request_in_hours_owes_one_receipt_at_once() {
        let c = Case::new(notify());
        let d = c.decide(
            by_email(),
            Priority::Normale,
            "2026-03-02T10:00:00+01:00",
            |_| {},
            &[],
            "2026-03-02T10:01:00+01:00",
        );
        assert_eq!(kinds(&d), [(Kind::Ricevuta, Recipient::Citizen, "receipt")]);
        let n = &d.notices[0];
        assert_eq!(
            (n.channel, n.address.as_str()),
            (Channel::Email, "mario.rossi@example.it")
        );
        assert_eq!(n.not_before, ts("2026-03-02T10:01:00+01:00"));
        assert_eq!(n.payload["out_of_hours"], false);
        // Five working days of eight hours from Monday 10:00: the next Monday at 10:00.
        assert_eq!(n.payload["due_at"], "2026-03-09T10:00:00+01:00");
        assert_eq!(d.sla.state, "running");
        assert!(d.close.is_none());
        assert!(
            d.next_check_at
                .is_some_and(|t| t > ts("2026-03-02T10:01:00+01:00"))
        );
    }

    #[test]
    fn a_request_on_saturday_counts_from_monday_opening() {
        let c = Case::new(notify());
        let d = c.decide(
            by_email(),
            Priority::Normale,
            "2026-03-07T10:00:00+01:00",
            |_| {},
            &[],
            "2026-03-07T10:01:00+01:00",
        );
        let p = &d.notices[0].payload;
        assert_eq!(p["out_of_hours"], true);
        assert_eq!(p["counting_from"], "2026-03-09T09:00:00+01:00");
        assert_eq!(p["due_at"], "2026-03-13T17:00:00+01:00");
    }

    #[test]
    fn an_sms_waits_for_the_sms_window() {
        let c = Case::new(notify());
        let citizen = Citizen {
            mobile: Some("+393471234567".into()),
            email: Some("mario.rossi@example.it".into()),
            preferred_channel: Channel::Sms,
            ..Citizen::default()
        };
        let d = c.decide(
            citizen,
            Priority::Normale,
            "2026-03-08T22:00:00+01:00",
            |_| {},
            &[],
            "2026-03-08T22:00:30+01:00",
        );
        let n = &d.notices[0];
        assert_eq!(
            (n.channel, n.address.as_str()),
            (Channel::Sms, "+393471234567")
        );
        assert_eq!(n.not_before, ts("2026-03-09T08:00:00+01:00"));
    }

    #[test]
    fn a_citizen_out_of_reach_becomes_an_office_alert_in_office_hours() {
        let c = Case::new(notify());
        let citizen = Citizen {
            email: Some("mario.rossi@example.it".into()),
            opt_out: vec![Channel::Email],
            ..Citizen::default()
        };
        let d = c.decide(
            citizen,
            Priority::Normale,
            "2026-03-07T10:00:00+01:00",
            |_| {},
            &[],
            "2026-03-07T10:01:00+01:00",
        );
        assert_eq!(
            kinds(&d),
            [(
                Kind::CittadinoIrraggiungibile,
                Recipient::Office,
                "ricevuta:receipt"
            )]
        );
        let n = &d.notices[0];
        assert_eq!(n.address.as_str(), "ufficio@comune.example.it");
        assert_eq!(n.payload["undelivered_kind"], "ricevuta");
        assert_eq!(n.not_before, ts("2026-03-09T09:00:00+01:00"));
    }

    #[test]
    fn a_breach_is_told_to_citizen_office_and_supervisor_once_each() {
        let c = Case::new(notify());
        let d = c.decide(
            by_email(),
            Priority::Urgente,
            "2026-03-02T10:00:00+01:00",
            |_| {},
            &[],
            "2026-03-04T12:00:00+01:00",
        );
        let due = ts("2026-03-03T10:00:00+01:00").0;
        let key = format!("due:{due}");
        assert_eq!(
            kinds(&d),
            [
                (Kind::Ricevuta, Recipient::Citizen, "receipt"),
                (Kind::Violazione, Recipient::Citizen, key.as_str()),
                (Kind::Violazione, Recipient::Office, key.as_str()),
                (Kind::Violazione, Recipient::Supervisor, key.as_str()),
            ]
        );
        assert_eq!(
            d.notices[1].payload["breached_at"],
            "2026-03-03T10:00:00+01:00"
        );
        assert_eq!(d.sla.state, "breached");
        // The same history at the same instant owes the same notices.
        let again = c.decide(
            by_email(),
            Priority::Urgente,
            "2026-03-02T10:00:00+01:00",
            |_| {},
            &[],
            "2026-03-04T12:00:00+01:00",
        );
        assert_eq!(again, d);
    }

    #[test]
    fn a_closed_ticket_on_time_owes_no_breach_and_no_next_check() {
        let c = Case::new(notify());
        let closed = ts("2026-03-02T16:00:00+01:00");
        let d = c.decide(
            by_email(),
            Priority::Urgente,
            "2026-03-02T10:00:00+01:00",
            |d| d.closed_at = Some(closed),
            &[event(
                2,
                "closed",
                "2026-03-02T16:00:00+01:00",
                json!({"text": "Fatto"}),
            )],
            "2026-03-04T12:00:00+01:00",
        );
        assert_eq!(
            kinds(&d),
            [
                (Kind::Ricevuta, Recipient::Citizen, "receipt"),
                (Kind::Chiusura, Recipient::Citizen, "2"),
            ]
        );
        assert_eq!(d.notices[1].payload["closed_late"], false);
        assert_eq!(d.next_check_at, None);
    }

    #[test]
    fn an_open_integration_request_owes_reminders_as_their_days_come() {
        let c = Case::new(notify());
        let asked = "2026-03-02T11:00:00+01:00";
        let wait = |d: &mut Derived| {
            d.waiting_since = Some(ts(asked));
            d.suspensions = vec![Suspension::new(ts(asked), None).expect("suspension")];
        };
        let events = [event(
            2,
            "integration_requested",
            asked,
            json!({"missing": "documento d'identità"}),
        )];
        // Two working days after Monday 11:00 is Wednesday 11:00: the first reminder is owed;
        // the second (Friday 11:00) is the next instant to look again.
        let d = c.decide(
            by_email(),
            Priority::Normale,
            "2026-03-02T10:00:00+01:00",
            wait,
            &events,
            "2026-03-04T11:30:00+01:00",
        );
        assert_eq!(
            kinds(&d),
            [
                (Kind::Ricevuta, Recipient::Citizen, "receipt"),
                (Kind::RichiestaIntegrazione, Recipient::Citizen, "2"),
                (Kind::SollecitoIntegrazione, Recipient::Citizen, "2:1"),
            ]
        );
        assert_eq!(d.notices[2].payload["reminder"], 1);
        assert_eq!(d.notices[2].payload["missing"], "documento d'identità");
        assert_eq!(d.sla.state, "paused");
        assert_eq!(d.next_check_at, Some(ts("2026-03-06T11:00:00+01:00")));
    }

    #[test]
    fn a_suspension_past_its_cap_alerts_the_office_and_may_close() {
        let mut n = notify();
        n.reminder_after_working_days = 0;
        n.suspension_cap_days = 10;
        n.close_at_suspension_cap = true;
        let c = Case::new(n);
        let asked = "2026-03-02T11:00:00+01:00";
        let d = c.decide(
            by_email(),
            Priority::Normale,
            "2026-03-02T10:00:00+01:00",
            |d| {
                d.waiting_since = Some(ts(asked));
                d.suspensions = vec![Suspension::new(ts(asked), None).expect("suspension")];
            },
            &[event(
                2,
                "integration_requested",
                asked,
                json!({"missing": "x"}),
            )],
            "2026-03-13T12:00:00+01:00",
        );
        assert_eq!(
            kinds(&d),
            [
                (Kind::Ricevuta, Recipient::Citizen, "receipt"),
                (Kind::RichiestaIntegrazione, Recipient::Citizen, "2"),
                (Kind::SospensioneScaduta, Recipient::Office, "2"),
            ]
        );
        let (at, automatic) = d.close.expect("closed at the cap");
        assert_eq!(at, ts("2026-03-12T11:00:00+01:00"));
        assert_eq!(automatic["reason"], "suspension_cap");
        assert_eq!(automatic["cap_days"], 10);
        assert_eq!(automatic["requested_at"], "2026-03-02T11:00:00+01:00");
    }

    /// A stored history from its receipt (`normale`, received Monday 2 March 2026 at 10:15)
    /// and events of `(kind, at, data)`, decided at `now` as the store would: the derived state
    /// replayed from the same events.
    fn history_at(events: &[(&str, &str, Value)], now: &str) -> Decision {
        let c = Case::new(notify());
        let received = "2026-03-02T10:15:00+01:00";
        let t = crate::ticket::NewTicket::from_json(&json!({
            "number": "2026/000001", "office": "URP", "priority": "normale",
            "subject": "Certificato", "received_at": received,
            "citizen": {"email": "mario.rossi@example.it"}
        }))
        .expect("ticket");
        let mut all = vec![event(
            1,
            "received",
            received,
            json!({"ticket": t.to_json()}),
        )];
        for (i, (kind, at, data)) in events.iter().enumerate() {
            let mut data = data.clone();
            data["kind"] = json!(kind);
            data["at"] = json!(at);
            all.push(event(i as i64 + 2, kind, at, data));
        }
        let (received_at, d) = crate::ticket::record::derive(1, &all).expect("replays");
        let ticket = TicketRecord {
            id: 1,
            number: "2026/000001".into(),
            office: "URP".into(),
            category: d.category,
            priority: d.priority,
            subject: "Certificato".into(),
            step: None,
            citizen: by_email(),
            received_at,
            closed_at: d.closed_at,
            waiting_since: d.waiting_since,
            policy_version: 1,
            calendar_version: 1,
            sla: evaluate(&c.sla, received_at, &d, ts(now)).expect("in range"),
        };
        let ctx = Context {
            sla: &c.sla,
            notify: &c.notify,
            sms_calendar: &c.sms,
        };
        decide(&ctx, &ticket, received_at, &d, &all, ts(now)).expect("in range")
    }

    fn date_changes(d: &Decision) -> Vec<(String, Value, Value)> {
        d.notices
            .iter()
            .filter(|n| n.kind == Kind::CambioData)
            .map(|n| {
                (
                    n.key.clone(),
                    n.payload["due_before"].clone(),
                    n.payload["due_at"].clone(),
                )
            })
            .collect()
    }

    #[test]
    fn a_date_change_waits_for_the_changes_to_settle() {
        let change = [(
            "priority_changed",
            "2026-03-02T11:00:00+01:00",
            json!({"priority": "urgente"}),
        )];
        // 4 min 59 s later: not yet, and the engine looks again when it settles.
        let d = history_at(&change, "2026-03-02T11:04:59+01:00");
        assert!(date_changes(&d).is_empty());
        assert_eq!(d.next_check_at, Some(ts("2026-03-02T11:05:00+01:00")));
        let d = history_at(&change, "2026-03-02T11:05:00+01:00");
        assert_eq!(
            date_changes(&d),
            [(
                "2".to_owned(),
                json!("2026-03-09T10:15:00+01:00"),
                json!("2026-03-03T10:15:00+01:00")
            )]
        );
    }

    #[test]
    fn changes_five_minutes_apart_are_one_notice_and_further_apart_two() {
        let together = [
            (
                "priority_changed",
                "2026-03-02T11:00:00+01:00",
                json!({"priority": "urgente"}),
            ),
            (
                "priority_changed",
                "2026-03-02T11:05:00+01:00",
                json!({"priority": "alta"}),
            ),
        ];
        let d = history_at(&together, "2026-03-02T12:00:00+01:00");
        assert_eq!(
            date_changes(&d),
            [(
                "3".to_owned(),
                json!("2026-03-09T10:15:00+01:00"),
                json!("2026-03-05T10:15:00+01:00")
            )]
        );
        let apart = [
            (
                "priority_changed",
                "2026-03-02T11:00:00+01:00",
                json!({"priority": "urgente"}),
            ),
            (
                "priority_changed",
                "2026-03-02T11:05:01+01:00",
                json!({"priority": "alta"}),
            ),
        ];
        let d = history_at(&apart, "2026-03-02T12:00:00+01:00");
        assert_eq!(
            date_changes(&d),
            [
                (
                    "2".to_owned(),
                    json!("2026-03-09T10:15:00+01:00"),
                    json!("2026-03-03T10:15:00+01:00")
                ),
                (
                    "3".to_owned(),
                    json!("2026-03-03T10:15:00+01:00"),
                    json!("2026-03-05T10:15:00+01:00")
                ),
            ]
        );
    }

    #[test]
    fn a_date_already_past_or_unchanged_is_not_told() {
        // Urgente from Wednesday: due Tuesday 3 at 10:15, already past.
        let past = [(
            "priority_changed",
            "2026-03-04T11:00:00+01:00",
            json!({"priority": "urgente"}),
        )];
        let d = history_at(&past, "2026-03-04T12:00:00+01:00");
        assert!(date_changes(&d).is_empty());
        // There and back in one go.
        let back = [
            (
                "priority_changed",
                "2026-03-02T11:00:00+01:00",
                json!({"priority": "bassa"}),
            ),
            (
                "priority_changed",
                "2026-03-02T11:01:00+01:00",
                json!({"priority": "normale"}),
            ),
        ];
        let d = history_at(&back, "2026-03-02T12:00:00+01:00");
        assert!(date_changes(&d).is_empty());
        // While the citizen is asked for documents nothing is told; the resumption tells it.
        let waiting = [
            (
                "integration_requested",
                "2026-03-02T11:00:00+01:00",
                json!({"missing": "x"}),
            ),
            (
                "priority_changed",
                "2026-03-02T11:30:00+01:00",
                json!({"priority": "bassa"}),
            ),
            (
                "integration_received",
                "2026-03-03T09:00:00+01:00",
                json!({"channel": "email"}),
            ),
        ];
        let d = history_at(&waiting, "2026-03-03T12:00:00+01:00");
        assert!(date_changes(&d).is_empty());
        let resumed: Vec<&Notice> = d
            .notices
            .iter()
            .filter(|n| n.kind == Kind::Ripresa)
            .collect();
        assert_eq!(
            resumed[0].payload["due_before"],
            "2026-03-09T10:15:00+01:00"
        );
        // 45 min counted before the wait; Bassa is 7 working days (56 h): 55 h 15 min left from
        // Tuesday 3 at 09:00 (six full days, then 7 h 15 min) is Wednesday 11 at 16:15.
        assert_eq!(resumed[0].payload["due_at"], "2026-03-11T16:15:00+01:00");
    }

    #[test]
    fn the_last_warning_opens_three_working_days_before_the_closure() {
        let mut n = notify();
        n.close_at_suspension_cap = true;
        n.reminder_after_working_days = 0;
        let c = Case::new(n);
        let asked = "2026-03-02T11:00:00+01:00";
        let wait = |d: &mut Derived| {
            d.waiting_since = Some(ts(asked));
            d.suspensions = vec![Suspension::new(ts(asked), None).expect("suspension")];
        };
        let events = [event(
            2,
            "integration_requested",
            asked,
            json!({"missing": "x"}),
        )];
        // Cap: Wednesday 1 April 12:00 (CEST); three working days before: Friday 27 March.
        let d = c.decide(
            by_email(),
            Priority::Normale,
            "2026-03-02T10:00:00+01:00",
            wait,
            &events,
            "2026-03-27T08:59:00+01:00",
        );
        assert!(!d.notices.iter().any(|n| n.kind == Kind::UltimoAvviso));
        assert_eq!(d.next_check_at, Some(ts("2026-03-27T09:00:00+01:00")));
        let d = c.decide(
            by_email(),
            Priority::Normale,
            "2026-03-02T10:00:00+01:00",
            wait,
            &events,
            "2026-03-27T09:00:00+01:00",
        );
        let warning: Vec<&Notice> = d
            .notices
            .iter()
            .filter(|n| n.kind == Kind::UltimoAvviso)
            .collect();
        assert_eq!(warning.len(), 1);
        assert_eq!(warning[0].payload["closes_at"], "2026-04-01T12:00:00+02:00");
        assert_eq!(d.next_check_at, Some(ts("2026-04-01T12:00:00+02:00")));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Whatever the priority changes and their spacing: the notices chain (each starts from
        /// the date the one before told, the first from the receipt's), none repeats a date,
        /// and once the changes settled the last told date is the ticket's due instant.
        #[test]
        fn date_change_notices_chain_to_the_current_due_date(
            steps in proptest::collection::vec((0usize..4, 1i64..900), 1..8)
        ) {
            let names = ["urgente", "alta", "normale", "bassa"];
            let mut at = ts("2026-03-02T10:30:00+01:00");
            let mut current = "normale";
            let mut events: Vec<(&str, String, Value)> = Vec::new();
            for (p, gap) in steps {
                at = at.plus(gap);
                if names[p] == current {
                    continue;
                }
                current = names[p];
                events.push(("priority_changed", at.to_string(), json!({"priority": current})));
            }
            let borrowed: Vec<(&str, &str, Value)> =
                events.iter().map(|(k, a, d)| (*k, a.as_str(), d.clone())).collect();
            let d = history_at(&borrowed, "2026-03-02T18:00:00+01:00");
            let receipt = d
                .notices
                .iter()
                .find(|n| n.kind == Kind::Ricevuta)
                .map(|n| n.payload["due_at"].clone())
                .expect("a receipt");
            let mut told = receipt;
            for (_, before, after) in date_changes(&d) {
                proptest::prop_assert_eq!(&before, &told);
                proptest::prop_assert_ne!(&before, &after);
                told = after;
            }
            let due = d.sla.due_at.map(|t| json!(c_fmt(t)));
            proptest::prop_assert_eq!(Some(told), due);
        }
    }

    fn c_fmt(t: Timestamp) -> String {
        Case::new(notify()).sla.calendar.format_rfc3339(t)
    }
}
