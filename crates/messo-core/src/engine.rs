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
use crate::domain::Channel;
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
    pub office_email: String,
    /// Also told of every breach.
    pub supervisor_email: Option<String>,
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
}

/// The kinds of notice, each with its own template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Receipt: ticket number, expected closure, how to follow and reply.
    Ricevuta,
    /// A processing step.
    Avanzamento,
    /// What is missing; the term is suspended.
    RichiestaIntegrazione,
    /// Reminder of a pending integration request.
    SollecitoIntegrazione,
    /// To the office: a suspension passed its cap.
    SospensioneScaduta,
    /// The integration arrived; the clock resumed.
    Ripresa,
    /// To the office: the deadline is near.
    PreavvisoScadenza,
    /// The term was violated.
    Violazione,
    /// The ticket was closed.
    Chiusura,
    /// To the office: a citizen notice had no channel to go through.
    CittadinoIrraggiungibile,
}

impl Kind {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Ricevuta => "ricevuta",
            Kind::Avanzamento => "avanzamento",
            Kind::RichiestaIntegrazione => "richiesta_integrazione",
            Kind::SollecitoIntegrazione => "sollecito_integrazione",
            Kind::SospensioneScaduta => "sospensione_scaduta",
            Kind::Ripresa => "ripresa",
            Kind::PreavvisoScadenza => "preavviso_scadenza",
            Kind::Violazione => "violazione",
            Kind::Chiusura => "chiusura",
            Kind::CittadinoIrraggiungibile => "cittadino_irraggiungibile",
        }
    }

    /// Every kind.
    pub const ALL: [Kind; 10] = [
        Kind::Ricevuta,
        Kind::Avanzamento,
        Kind::RichiestaIntegrazione,
        Kind::SollecitoIntegrazione,
        Kind::SospensioneScaduta,
        Kind::Ripresa,
        Kind::PreavvisoScadenza,
        Kind::Violazione,
        Kind::Chiusura,
        Kind::CittadinoIrraggiungibile,
    ];

    /// The kind of a stored name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Who a notice is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Recipient {
    Citizen,
    Office,
    Supervisor,
}

impl Recipient {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Recipient::Citizen => "citizen",
            Recipient::Office => "office",
            Recipient::Supervisor => "supervisor",
        }
    }
}

/// One notice owed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: Kind,
    /// What the notice is about (an event id, a deadline): with kind and recipient, its identity.
    pub key: String,
    pub recipient: Recipient,
    pub channel: Channel,
    pub address: String,
    pub language: String,
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
    let sla = ctx.sla;
    let view = evaluate(sla, received_at, derived, now)?;
    let cal = &sla.calendar;
    let fmt = |t: Timestamp| cal.format_rfc3339(t);
    let language = ticket.citizen.language.clone();
    let base = json!({
        "number": ticket.number,
        "subject": ticket.subject,
        "office": ticket.office,
        "category": derived.category.as_str(),
        "priority": derived.priority.as_str(),
        "received_at": fmt(received_at),
        "due_at": view.due_at.map(fmt),
        "office_phone": ctx.notify.office_phone,
        "office_email": ctx.notify.office_email,
    });
    let with = |extra: Value| {
        let mut p = base.clone();
        if let (Value::Object(p), Value::Object(e)) = (&mut p, extra) {
            p.extend(e);
        }
        p
    };
    let office_not_before = if ctx.notify.staff_alerts_office_hours_only {
        cal.next_opening(now).unwrap_or(now)
    } else {
        now
    };
    let route = ticket.citizen.route();
    let mut notices = Vec::new();
    let mut later: Vec<Timestamp> = Vec::new();
    let mut close = None;
    let citizen = |notices: &mut Vec<Notice>, kind: Kind, key: String, payload: Value| {
        if let Some((channel, address)) = &route {
            let not_before = if *channel == Channel::Sms {
                ctx.sms_calendar.next_opening(now).unwrap_or(now)
            } else {
                now
            };
            notices.push(Notice {
                kind,
                key,
                recipient: Recipient::Citizen,
                channel: *channel,
                address: (*address).to_owned(),
                language: language.clone(),
                not_before,
                payload,
            });
        } else {
            // No channel left (no address, or opted out of every one): the office is told
            // instead, so the notice is not silently lost.
            let mut payload = payload;
            if let Value::Object(m) = &mut payload {
                m.insert("undelivered_kind".to_owned(), json!(kind.as_str()));
            }
            notices.push(Notice {
                kind: Kind::CittadinoIrraggiungibile,
                key: format!("{}:{key}", kind.as_str()),
                recipient: Recipient::Office,
                channel: Channel::Email,
                address: ctx.notify.office_email.clone(),
                language: "it".to_owned(),
                not_before: office_not_before,
                payload,
            });
        }
    };
    let staff = |notices: &mut Vec<Notice>,
                 kind: Kind,
                 key: String,
                 to: Recipient,
                 address: &str,
                 payload: Value| {
        notices.push(Notice {
            kind,
            key,
            recipient: to,
            channel: Channel::Email,
            address: address.to_owned(),
            language: "it".to_owned(),
            not_before: office_not_before,
            payload,
        });
    };

    let n = ctx.notify;
    for e in events {
        let id = e.id.to_string();
        match e.kind.as_str() {
            "received" => {
                let counting_from = cal.next_opening(received_at).unwrap_or(received_at);
                citizen(
                    &mut notices,
                    Kind::Ricevuta,
                    "receipt".to_owned(),
                    with(json!({
                        "out_of_hours": counting_from > received_at && view.state != "closed",
                        "counting_from": fmt(counting_from),
                    })),
                );
            }
            "step_changed" => citizen(
                &mut notices,
                Kind::Avanzamento,
                id,
                with(json!({"step": e.data["step"], "text": e.data["text"]})),
            ),
            "integration_requested" => {
                citizen(
                    &mut notices,
                    Kind::RichiestaIntegrazione,
                    id.clone(),
                    with(json!({"missing": e.data["missing"]})),
                );
                // Reminders and the cap belong to the wait still open.
                if derived.waiting_since == Some(e.occurred_at) && derived.closed_at.is_none() {
                    let hours = i64::from(sla.policy.hours_per_working_day()) * 3600;
                    let step = i64::from(n.reminder_after_working_days) * hours;
                    for k in 1..=i64::from(n.max_reminders) {
                        if step == 0 {
                            break;
                        }
                        let Some(at) = cal.add_business(e.occurred_at, k * step) else {
                            break;
                        };
                        if at <= now {
                            citizen(
                                &mut notices,
                                Kind::SollecitoIntegrazione,
                                format!("{id}:{k}"),
                                with(
                                    json!({"missing": e.data["missing"], "reminder": k, "requested_at": fmt(e.occurred_at)}),
                                ),
                            );
                        } else {
                            later.push(at);
                            break;
                        }
                    }
                    let cap = e
                        .occurred_at
                        .plus(i64::from(n.suspension_cap_days) * 86_400);
                    if cap <= now && n.close_at_suspension_cap {
                        close = Some((
                            cap,
                            format!(
                                "La richiesta è chiusa perché l'integrazione richiesta {} non è arrivata entro {} giorni. Può presentare una nuova richiesta in qualsiasi momento.",
                                crate::locale::when(crate::domain::Lang::It, &fmt(e.occurred_at)),
                                n.suspension_cap_days
                            ),
                        ));
                    }
                    if cap <= now {
                        staff(
                            &mut notices,
                            Kind::SospensioneScaduta,
                            id,
                            Recipient::Office,
                            &n.office_email,
                            with(
                                json!({"requested_at": fmt(e.occurred_at), "cap_days": n.suspension_cap_days}),
                            ),
                        );
                    } else {
                        later.push(cap);
                    }
                }
            }
            "integration_received" => citizen(
                &mut notices,
                Kind::Ripresa,
                id,
                with(json!({"channel": e.data["channel"]})),
            ),
            "closed" => citizen(
                &mut notices,
                Kind::Chiusura,
                id,
                with(json!({"text": e.data["text"], "closed_late": view.closed_late})),
            ),
            _ => {}
        }
    }

    if view.state == "warning"
        && let Some(due) = view.due_at
    {
        staff(
            &mut notices,
            Kind::PreavvisoScadenza,
            format!("due:{}", due.0),
            Recipient::Office,
            &n.office_email,
            with(json!({"remaining_s": view.remaining_s})),
        );
    }
    // A breach: the due instant came before the ticket was closed (if it was).
    if let Some(due) = view.due_at
        && due <= now
        && derived.closed_at.is_none_or(|c| due <= c)
    {
        let key = format!("due:{}", due.0);
        let payload = with(json!({"breached_at": fmt(due)}));
        citizen(&mut notices, Kind::Violazione, key.clone(), payload.clone());
        staff(
            &mut notices,
            Kind::Violazione,
            key.clone(),
            Recipient::Office,
            &n.office_email,
            payload.clone(),
        );
        if let Some(sup) = &n.supervisor_email {
            staff(
                &mut notices,
                Kind::Violazione,
                key,
                Recipient::Supervisor,
                sup,
                payload,
            );
        }
    }

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
