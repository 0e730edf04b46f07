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
    /// Calendar days after which a suspension is reported to the office (L. 241/1990 art. 2 c. 7).
    pub suspension_cap_days: u32,
    /// What happens at the cap: the office is alerted, and with `close` the ticket is also closed
    /// with a notice to the citizen.
    pub close_at_suspension_cap: bool,
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
    /// instant and the reason the citizen reads.
    pub close: Option<(Timestamp, String)>,
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
    for e in events {
        owed.event(e);
    }
    owed.deadline();
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
    close: Option<(Timestamp, String)>,
    /// The appointment as the events read so far leave it: (ordinal, sequence, slot).
    appointment: (u32, u32, Option<Slot>),
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
    fn event(&mut self, e: &EventRecord) {
        let id = e.id.to_string();
        match e.kind.as_str() {
            "received" => {
                let cal = &self.ctx.sla.calendar;
                let counting_from = cal
                    .next_opening(self.received_at)
                    .unwrap_or(self.received_at);
                // An on-site request counts its term from the request itself, whenever it came:
                // the receipt says by when the visit will be, not when the clock starts.
                let on_site = self.derived.category == crate::domain::Category::InLoco;
                let payload = self.with(json!({
                    "out_of_hours": !on_site && counting_from > self.received_at && self.view.state != "closed",
                    "counting_from": self.fmt(counting_from),
                    "on_site": on_site,
                    "book_by": if on_site { self.view.due_at.map(|t| self.fmt(t)) } else { None },
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
                let payload = self.with(json!({"channel": e.data["channel"]}));
                self.citizen(Kind::Ripresa, id, payload);
            }
            "closed" => {
                let payload = self
                    .with(json!({"text": e.data["text"], "closed_late": self.view.closed_late}));
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
            // Notes, contacts made or corrected from the console, priority and category
            // changes, rebaselines and reopenings owe no notice.
            _ => {}
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
        let subject = self.base["subject"].as_str().unwrap_or_default();
        let phone = &self.ctx.notify.office_phone;
        let (summary, description) = match self.language {
            Lang::It => (
                format!("Appuntamento con l'ufficio, richiesta {number}"),
                format!(
                    "Assistenza in loco per la richiesta {number} «{subject}». Operatore: {}. \
                     Per spostare o annullare l'appuntamento chiami il {phone}.",
                    slot.officer
                ),
            ),
            Lang::En => (
                format!("Appointment with the office, request {number}"),
                format!(
                    "On-site assistance for request {number} “{subject}”. Officer: {}. \
                     To move or cancel the appointment call {phone}.",
                    slot.officer
                ),
            ),
        };
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
                "summary": summary,
                "location": slot.place,
                "description": description,
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
                "requested_at": self.fmt(e.occurred_at),
                "reply_by": self.reply_by(e.occurred_at),
            }));
            self.citizen(Kind::SollecitoIntegrazione, format!("{id}:{k}"), payload);
        }
    }

    /// The cap on the open integration request `e` (L. 241/1990 art. 2 c. 7): the office is
    /// told when it passes, and with `close_at_suspension_cap` the ticket is closed.
    fn suspension_cap(&mut self, e: &EventRecord, id: String) {
        let n = self.ctx.notify;
        let cap = e
            .occurred_at
            .plus(i64::from(n.suspension_cap_days) * 86_400);
        if cap > self.now {
            self.later.push(cap);
            return;
        }
        if n.close_at_suspension_cap {
            self.close = Some((
                cap,
                format!(
                    "La richiesta è chiusa perché l'integrazione richiesta {} non è arrivata entro {} giorni. Può presentare una nuova richiesta in qualsiasi momento.",
                    crate::locale::when(crate::domain::Lang::It, &self.fmt(e.occurred_at)),
                    n.suspension_cap_days
                ),
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

    /// The deadline's notices: a warning to the office while it nears, and a breach (the due
    /// instant came before the ticket was closed, if it was) to citizen, office and supervisor.
    fn deadline(&mut self) {
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
        let payload = self.with(json!({"breached_at": self.fmt(due)}));
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
        let (at, text) = d.close.expect("closed at the cap");
        assert_eq!(at, ts("2026-03-12T11:00:00+01:00"));
        assert!(text.contains("entro 10 giorni"), "{text}");
    }
}
