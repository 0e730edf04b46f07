//! What a citizen's reply does, decided purely: the store loads the facts (the tickets the reply
//! names and the sender's own tickets), [`plan`] decides, the store applies the actions in
//! order inside one transaction.

use serde_json::json;

use super::auth::{self, MailAuthMode};
use super::matching::{self, Candidate, Match, TicketFormat};
use super::{Parsed, Route};
use crate::delivery::NewOutbox;
use crate::delivery::fallback::Fallback;
use crate::domain::{Address, Channel, EmailAddress, Kind, Lang, Recipient};
use crate::redact::mask;
use crate::ticket::{EventBody, NewEvent};
use crate::time::Timestamp;

/// How replies are acted on: from the configuration.
#[derive(Debug, Clone)]
pub struct InboundPolicy {
    pub ticket_format: TicketFormat,
    pub reply_address: Option<String>,
    pub opt_out_keywords: Vec<String>,
    pub opt_in_keywords: Vec<String>,
    pub hint_every_hours: u32,
    pub fallback: Vec<Fallback>,
    pub office_email: EmailAddress,
    pub office_phone: String,
    /// Whether an e-mail reply must come from an authenticated sender to resume a clock.
    pub mail_auth: MailAuthMode,
    /// How long after closure a satisfaction score sent by SMS is accepted, in seconds; `None`
    /// when the survey is off (a digit is then an ordinary reply).
    pub survey_window_s: Option<i64>,
}

/// A ticket the reply may be about, with its number.
pub type Found = (Candidate, String);

/// One thing to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Append `event` to ticket `number`; when the ticket refuses it (it stopped waiting in
    /// between), append `if_refused` instead.
    Record {
        number: String,
        event: NewEvent,
        if_refused: Option<NewEvent>,
    },
    /// Tell the office (an outbox row of `kind`, keyed by `key`, carrying the reply).
    OfficeAlert {
        kind: Kind,
        ticket_id: i64,
        key: String,
        number: Option<String>,
    },
    /// Any other message owed (the hint on how to quote a ticket number).
    Owe(NewOutbox),
}

/// How the inbound record ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub status: &'static str,
    /// `integration`, `note`, `unmatched` or `automatic`; a `Record` refused and replaced by
    /// its note turns `integration` into `note`.
    pub outcome: &'static str,
    pub detail: String,
    pub ticket_id: Option<i64>,
}

/// The decision on one reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub verdict: Verdict,
}

/// The channel name a reply's events carry.
fn channel_of(route: Route) -> &'static str {
    match route {
        Route::Sms => "sms",
        Route::Voice => "phone",
        _ => "email",
    }
}

/// The ticket numbers a reply names, in order, without repeats: the plus-address it was sent
/// to, the keypad digits, the subject, the text.
pub fn quoted_numbers(p: &Parsed, policy: &InboundPolicy) -> Vec<String> {
    let mut quoted: Vec<String> = Vec::new();
    let mut add = |list: Vec<String>| {
        for n in list {
            if !quoted.contains(&n) {
                quoted.push(n);
            }
        }
    };
    if let (Some(base), Route::Mail) = (&policy.reply_address, p.route) {
        for r in &p.recipients {
            if let Some(tag) = matching::plus_tag(r, base) {
                add(vec![tag.to_uppercase()]);
                add(policy.ticket_format.find_all(tag));
            }
        }
    }
    if let Some(d) = &p.digits {
        add(policy.ticket_format.find_all(d));
    }
    if let Some(s) = &p.subject {
        add(policy.ticket_format.find_all(s));
    }
    add(policy
        .ticket_format
        .find_all(p.text.as_deref().unwrap_or_default()));
    quoted
}

/// The facts a reply is decided on.
pub struct Facts<'a> {
    pub parsed: &'a Parsed,
    /// The inbound record's id: the key of whatever it causes.
    pub inbound_id: i64,
    pub received_at: Timestamp,
    pub now: Timestamp,
    /// How many ticket numbers the reply quoted ([`quoted_numbers`]).
    pub quoted: usize,
    /// The quoted tickets that exist, in quoting order.
    pub named: &'a [Found],
    /// The sender's own tickets.
    pub senders: &'a [Found],
}

/// Decides what a reply (not an SMS keyword) does.
pub fn plan(f: &Facts<'_>, policy: &InboundPolicy) -> Plan {
    let p = f.parsed;
    if p.automatic {
        return Plan {
            actions: Vec::new(),
            verdict: Verdict {
                status: "ignored",
                outcome: "automatic",
                detail: "an auto-reply or bounce: not answered".to_owned(),
                ticket_id: None,
            },
        };
    }
    let candidates = |list: &[Found]| list.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>();
    match matching::decide(&candidates(f.named), &candidates(f.senders)) {
        Match::Ticket { id, by } => matched(f, policy, id, by),
        Match::Stranger { id } => stranger(f, id),
        Match::Unmatched => unmatched(f, policy),
    }
}

/// The reply's text with its attachments listed, bounded for an event.
fn body_text(p: &Parsed) -> String {
    let attachments = if p.attachments.is_empty() {
        String::new()
    } else {
        format!(
            " Allegati: {}.",
            p.attachments
                .iter()
                .map(|a| format!("{} ({} byte)", a.name, a.size))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!("{}{attachments}", p.text.as_deref().unwrap_or_default())
        .chars()
        .take(3900)
        .collect()
}

fn at(f: &Facts<'_>) -> Timestamp {
    Timestamp(f.parsed.occurred_at.unwrap_or(f.received_at.0).min(f.now.0))
}

fn key(f: &Facts<'_>) -> String {
    format!("inbound:{}", f.inbound_id)
}

fn note(at: Timestamp, text: String) -> NewEvent {
    NewEvent {
        at,
        body: EventBody::Note { text },
    }
}

fn number_of(f: &Facts<'_>, id: i64) -> String {
    f.named
        .iter()
        .chain(f.senders)
        .find(|(c, _)| c.id == id)
        .map(|(_, n)| n.clone())
        .unwrap_or_default()
}

/// A reply matched to ticket `id`: an integrazione when the ticket waits for one (and, for an
/// e-mail, the sender is authenticated), otherwise a note.
fn matched(f: &Facts<'_>, policy: &InboundPolicy, id: i64, by: matching::MatchedBy) -> Plan {
    let waiting = f
        .named
        .iter()
        .chain(f.senders)
        .any(|(c, _)| c.id == id && c.waiting);
    // An e-mail resumes a clock only when its sender is authenticated (`auth`'s decision);
    // otherwise it is a note and the office is told.
    let unauthenticated = match f.parsed.route {
        Route::Mail => auth::may_resume(policy.mail_auth, f.parsed.auth.as_ref()).err(),
        _ => None,
    };
    if waiting && let Some(why) = unauthenticated {
        return unauthenticated_reply(f, id, by, &why);
    }
    // A call never resumes a clock by itself: a recording may or may not hold what the office
    // asked for, so the office listens and confirms (attaching it from the console, or
    // recording the integrazione) when it does.
    let resumes = waiting && f.parsed.route != Route::Voice;
    let (actions, outcome) = recorded_reply(f, id, resumes);
    Plan {
        actions,
        verdict: Verdict {
            status: "done",
            outcome,
            detail: format!("ticket matched by {}", by.as_str()),
            ticket_id: Some(id),
        },
    }
}

/// An e-mail for waiting ticket `id` whose sender is not authenticated (`why`): a note that
/// says so, the clock stays stopped, and the office decides.
fn unauthenticated_reply(
    f: &Facts<'_>,
    id: i64,
    by: matching::MatchedBy,
    why: &auth::NotAuthenticated,
) -> Plan {
    let number = number_of(f, id);
    let text = format!(
        "E-mail dall'indirizzo del cittadino con mittente non verificato ({why}): i tempi \
         non ripartono. {}",
        body_text(f.parsed)
    )
    .chars()
    .take(4000)
    .collect();
    Plan {
        actions: vec![
            Action::Record {
                number: number.clone(),
                event: note(at(f), text),
                if_refused: None,
            },
            Action::OfficeAlert {
                kind: Kind::RispostaNonAutenticata,
                ticket_id: id,
                key: key(f),
                number: Some(number),
            },
        ],
        verdict: Verdict {
            status: "done",
            outcome: "note",
            detail: format!(
                "ticket matched by {}, but the sender is not authenticated ({why}): a note, the office decides",
                by.as_str()
            ),
            ticket_id: Some(id),
        },
    }
}

/// The reply recorded on ticket `id`: an integrazione when it is `waiting` (its note instead if
/// the ticket stopped waiting meanwhile), otherwise a note; a call also tells the office.
/// Returns the actions and the outcome.
fn recorded_reply(f: &Facts<'_>, id: i64, waiting: bool) -> (Vec<Action>, &'static str) {
    let p = f.parsed;
    let (at, number, body) = (at(f), number_of(f, id), body_text(p));
    let channel = channel_of(p.route);
    let as_note = note(at, format!("Messaggio del cittadino ({channel}): {body}"));
    let (event, if_refused, outcome) = if waiting {
        let integration = NewEvent {
            at,
            body: EventBody::IntegrationReceived {
                channel: channel.to_owned(),
                text: Some(body),
            },
        };
        (integration, Some(as_note), "integration")
    } else {
        (as_note, None, "note")
    };
    let mut actions = vec![Action::Record {
        number: number.clone(),
        event,
        if_refused,
    }];
    if p.route == Route::Voice {
        actions.push(Action::OfficeAlert {
            kind: Kind::ChiamataRicevuta,
            ticket_id: id,
            key: key(f),
            number: Some(number),
        });
    }
    (actions, outcome)
}

/// An unmatched reply the office attached to ticket `ticket` by hand (`officer` names who): it
/// is recorded exactly as a matched reply is ([`recorded_reply`]): an integrazione when the
/// ticket waits for one (the clock resumes and the engine owes `ripresa`; its note instead if
/// the ticket stopped waiting meanwhile), otherwise a note. The office made the match, so the
/// sender's authentication does not hold the clock, and no alert goes to the office.
pub fn attached(
    parsed: &Parsed,
    inbound_id: i64,
    received_at: Timestamp,
    now: Timestamp,
    ticket: &Found,
    officer: &str,
) -> Plan {
    let named = std::slice::from_ref(ticket);
    let f = Facts {
        parsed,
        inbound_id,
        received_at,
        now,
        quoted: 0,
        named,
        senders: &[],
    };
    let (actions, outcome) = recorded_reply(&f, ticket.0.id, ticket.0.waiting);
    let actions = actions
        .into_iter()
        .filter(|a| matches!(a, Action::Record { .. }))
        .collect();
    Plan {
        actions,
        verdict: Verdict {
            status: "done",
            outcome,
            detail: format!(
                "attached to ticket {} by {officer} from the console",
                ticket.1
            ),
            ticket_id: Some(ticket.0.id),
        },
    }
}

/// A reply naming ticket `id` from an address not on file: a note, and the office decides.
fn stranger(f: &Facts<'_>, id: i64) -> Plan {
    let p = f.parsed;
    let number = number_of(f, id);
    let text = format!(
        "Messaggio ({}) che cita la pratica da un recapito non in anagrafica ({}): {}",
        channel_of(p.route),
        mask(p.sender.as_deref().unwrap_or_default()),
        body_text(p)
    );
    Plan {
        actions: vec![
            Action::Record {
                number: number.clone(),
                event: note(at(f), text),
                if_refused: None,
            },
            Action::OfficeAlert {
                kind: Kind::RispostaMittenteDiverso,
                ticket_id: id,
                key: key(f),
                number: Some(number),
            },
        ],
        verdict: Verdict {
            status: "done",
            outcome: "note",
            detail: "names a ticket, from an address not on file: a note, the office decides"
                .to_owned(),
            ticket_id: Some(id),
        },
    }
}

/// A reply matched to no ticket: the office is told, and the citizen hears once per period how
/// to quote the ticket number.
fn unmatched(f: &Facts<'_>, policy: &InboundPolicy) -> Plan {
    let p = f.parsed;
    let sender = p.sender.clone().unwrap_or_default();
    let bucket = f.received_at.0 / (i64::from(policy.hint_every_hours.max(1)) * 3600);
    let per_sender = format!("{sender}:{bucket}");
    let mut actions = vec![Action::OfficeAlert {
        kind: Kind::RispostaNonAbbinata,
        ticket_id: 0,
        key: per_sender.clone(),
        number: None,
    }];
    let hint_channel = match p.route {
        Route::Mail => Some(Channel::Email),
        _ if sender.starts_with('+') => Some(Channel::Sms),
        _ => None,
    };
    // A sender that is not an address of its channel gets no hint: it could not be sent.
    if let Some(channel) = hint_channel
        && let Ok(address) = Address::parse(channel, &sender)
    {
        actions.push(Action::Owe(NewOutbox {
            ticket_id: 0,
            kind: Kind::RispostaNonAbbinata,
            dedupe_key: per_sender,
            recipient: Recipient::Citizen,
            channel,
            address,
            language: Lang::It,
            payload: json!({
                "number": "",
                "example": policy.ticket_format.example(),
                "office_phone": policy.office_phone,
            }),
            not_before: f.now,
        }));
    }
    Plan {
        actions,
        verdict: Verdict {
            status: "unmatched",
            outcome: "unmatched",
            detail: if f.quoted == 0 {
                "no ticket number, and the sender has no single ticket waiting".to_owned()
            } else {
                format!("quoted {} ticket number(s), none on file", f.quoted)
            },
            ticket_id: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::auth::{MailAuth, Verdict as AuthVerdict};

    const NOW: Timestamp = Timestamp(1_800_000_000);

    fn policy() -> InboundPolicy {
        InboundPolicy {
            ticket_format: TicketFormat::parse("{year}/{seq:6}").expect("format"),
            reply_address: Some("urp@comune.example.it".into()),
            opt_out_keywords: vec!["STOP".into()],
            opt_in_keywords: vec!["START".into()],
            hint_every_hours: 24,
            fallback: vec![Fallback::Email, Fallback::Office],
            office_email: EmailAddress::parse("ufficio@comune.example.it").expect("an address"),
            office_phone: "+39 06 0000".into(),
            mail_auth: MailAuthMode::Require,
            survey_window_s: None,
        }
    }

    fn sms(text: &str) -> Parsed {
        Parsed {
            route: Route::Sms,
            external_id: "SM1".into(),
            sender: Some("+393471234567".into()),
            text: Some(text.into()),
            occurred_at: Some(NOW.0 - 60),
            ..Parsed::default()
        }
    }

    fn found(id: i64, from_citizen: bool, waiting: bool) -> Found {
        (
            Candidate {
                id,
                from_citizen,
                waiting,
            },
            format!("2026/{id:06}"),
        )
    }

    fn run(p: &Parsed, named: &[Found], senders: &[Found]) -> Plan {
        let quoted = quoted_numbers(p, &policy()).len();
        plan(
            &Facts {
                parsed: p,
                inbound_id: 9,
                received_at: NOW,
                now: NOW,
                quoted,
                named,
                senders,
            },
            &policy(),
        )
    }

    #[test]
    fn an_attached_reply_resumes_a_waiting_ticket_and_is_a_note_otherwise() {
        let mut p = sms("ecco il documento");
        p.route = Route::Voice;
        let waiting = found(7, false, true);
        let plan = attached(&p, 9, NOW, NOW, &waiting, "anna");
        assert_eq!(plan.verdict.outcome, "integration");
        assert_eq!(plan.verdict.ticket_id, Some(7));
        assert!(
            plan.verdict.detail.contains("anna"),
            "{}",
            plan.verdict.detail
        );
        // Only the record: the office made the match, no alert goes to it.
        assert_eq!(plan.actions.len(), 1);
        let Action::Record {
            number,
            event,
            if_refused,
        } = &plan.actions[0]
        else {
            panic!("a record: {:?}", plan.actions);
        };
        assert_eq!(number, "2026/000007");
        assert!(matches!(event.body, EventBody::IntegrationReceived { .. }));
        assert!(if_refused.is_some());
        let idle = found(7, false, false);
        let plan = attached(&sms("grazie"), 9, NOW, NOW, &idle, "anna");
        assert_eq!(plan.verdict.outcome, "note");
        assert!(matches!(
            &plan.actions[0],
            Action::Record {
                event: NewEvent {
                    body: EventBody::Note { .. },
                    ..
                },
                if_refused: None,
                ..
            }
        ));
    }

    #[test]
    fn numbers_are_quoted_once_in_order_from_address_digits_subject_and_text() {
        let p = Parsed {
            route: Route::Mail,
            recipients: vec!["urp+2026.000007@comune.example.it".into()],
            subject: Some("Re: pratica 2026/000008".into()),
            text: Some("vedi 2026/000008 e 2026/000009".into()),
            ..Parsed::default()
        };
        assert_eq!(
            quoted_numbers(&p, &policy()),
            ["2026.000007", "2026/000007", "2026/000008", "2026/000009"]
        );
    }

    #[test]
    fn a_reply_to_a_waiting_ticket_is_its_integrazione_with_a_note_as_fallback() {
        let plan = run(&sms("ecco 2026/000004"), &[found(4, true, true)], &[]);
        assert_eq!(plan.verdict.outcome, "integration");
        assert_eq!(plan.verdict.ticket_id, Some(4));
        assert_eq!(plan.verdict.detail, "ticket matched by number");
        let [
            Action::Record {
                number,
                event,
                if_refused: Some(note),
            },
        ] = plan.actions.as_slice()
        else {
            panic!("{:?}", plan.actions)
        };
        assert_eq!(number, "2026/000004");
        assert_eq!(event.at, Timestamp(NOW.0 - 60));
        assert!(matches!(
            &event.body,
            EventBody::IntegrationReceived { channel, text: Some(t) }
                if channel == "sms" && t == "ecco 2026/000004"
        ));
        assert!(
            matches!(&note.body, EventBody::Note { text } if text.starts_with("Messaggio del cittadino (sms)"))
        );
    }

    #[test]
    fn a_reply_to_a_ticket_not_waiting_is_a_note() {
        let plan = run(
            &sms("grazie"),
            &[],
            &[found(4, true, false), found(5, true, false)],
        );
        // Two tickets of the sender, none waiting: nothing can be told.
        assert_eq!(plan.verdict.outcome, "unmatched");
        let plan = run(&sms("grazie 2026/000004"), &[found(4, true, false)], &[]);
        assert_eq!(plan.verdict.outcome, "note");
        assert!(matches!(
            plan.actions.as_slice(),
            [Action::Record {
                if_refused: None,
                ..
            }]
        ));
    }

    #[test]
    fn an_unauthenticated_e_mail_does_not_resume_the_clock() {
        let mut p = sms("allego il documento");
        p.route = Route::Mail;
        p.sender = Some("mario.rossi@example.it".into());
        p.auth = Some(MailAuth {
            verdict: AuthVerdict::Fail,
            reason: "dmarc=fail".into(),
        });
        let plan = run(&p, &[], &[found(4, true, true)]);
        assert_eq!(plan.verdict.outcome, "note");
        assert!(
            plan.verdict
                .detail
                .contains("not authenticated (dmarc=fail)")
        );
        assert!(matches!(
            plan.actions.as_slice(),
            [
                Action::Record {
                    event: NewEvent {
                        body: EventBody::Note { .. },
                        ..
                    },
                    if_refused: None,
                    ..
                },
                Action::OfficeAlert {
                    kind: Kind::RispostaNonAutenticata,
                    ticket_id: 4,
                    ..
                },
            ]
        ));
        // Authenticated, the same reply is the integrazione.
        p.auth = Some(MailAuth {
            verdict: AuthVerdict::Pass,
            reason: "dmarc=pass".into(),
        });
        assert_eq!(
            run(&p, &[], &[found(4, true, true)]).verdict.outcome,
            "integration"
        );
    }

    #[test]
    fn a_stranger_naming_a_ticket_leaves_a_masked_note_and_tells_the_office() {
        let plan = run(&sms("2026/000004"), &[found(4, false, true)], &[]);
        assert_eq!(plan.verdict.outcome, "note");
        let [
            Action::Record { event, .. },
            Action::OfficeAlert { kind, key, .. },
        ] = plan.actions.as_slice()
        else {
            panic!("{:?}", plan.actions)
        };
        assert_eq!(*kind, Kind::RispostaMittenteDiverso);
        assert_eq!(key, "inbound:9");
        let EventBody::Note { text } = &event.body else {
            panic!("{event:?}")
        };
        assert!(text.contains("+39***567"), "{text}");
        assert!(!text.contains("3471234567"), "{text}");
    }

    #[test]
    fn an_unmatched_reply_alerts_the_office_and_hints_the_citizen_once_per_period() {
        let plan = run(&sms("buongiorno"), &[], &[]);
        assert_eq!(plan.verdict.status, "unmatched");
        assert_eq!(
            plan.verdict.detail,
            "no ticket number, and the sender has no single ticket waiting"
        );
        let bucket = NOW.0 / (24 * 3600);
        let [
            Action::OfficeAlert {
                key, ticket_id: 0, ..
            },
            Action::Owe(hint),
        ] = plan.actions.as_slice()
        else {
            panic!("{:?}", plan.actions)
        };
        assert_eq!(key, &format!("+393471234567:{bucket}"));
        assert_eq!(
            (hint.channel.as_str(), hint.dedupe_key.as_str()),
            ("sms", key.as_str())
        );
        assert_eq!(hint.payload["example"], policy().ticket_format.example());
        // A phone call from a hidden number gets no hint; a quoted number not on file says so.
        let mut call = sms("2026/000099");
        call.route = Route::Voice;
        call.sender = Some("anonymous".into());
        let plan = run(&call, &[], &[]);
        assert_eq!(plan.actions.len(), 1);
        assert_eq!(
            plan.verdict.detail,
            "quoted 1 ticket number(s), none on file"
        );
    }

    #[test]
    fn a_call_about_a_ticket_is_recorded_and_the_office_told() {
        let mut call = sms("");
        call.route = Route::Voice;
        call.digits = Some("2026000004".into());
        let plan = run(&call, &[found(4, true, false)], &[]);
        assert!(matches!(
            plan.actions.as_slice(),
            [
                Action::Record { .. },
                Action::OfficeAlert {
                    kind: Kind::ChiamataRicevuta,
                    ..
                }
            ]
        ));
    }

    #[test]
    fn a_call_to_a_waiting_ticket_is_a_note_and_the_clock_stays_stopped() {
        let mut call = sms("Messaggio vocale per la pratica 2026/000004");
        call.route = Route::Voice;
        call.digits = Some("2026000004".into());
        let plan = run(&call, &[found(4, true, true)], &[]);
        assert_eq!(plan.verdict.outcome, "note");
        let Action::Record {
            event, if_refused, ..
        } = &plan.actions[0]
        else {
            panic!("{:?}", plan.actions);
        };
        assert!(matches!(event.body, EventBody::Note { .. }), "{event:?}");
        assert!(if_refused.is_none());
        assert!(matches!(
            plan.actions[1],
            Action::OfficeAlert {
                kind: Kind::ChiamataRicevuta,
                ..
            }
        ));
        // The same message by SMS resumes the clock.
        call.route = Route::Sms;
        assert_eq!(
            run(&call, &[found(4, true, true)], &[]).verdict.outcome,
            "integration"
        );
    }

    #[test]
    fn an_automatic_reply_does_nothing() {
        let mut p = sms("Risposta automatica: sono in ferie");
        p.automatic = true;
        let plan = run(&p, &[found(4, true, true)], &[]);
        assert!(plan.actions.is_empty());
        assert_eq!(
            (plan.verdict.status, plan.verdict.outcome),
            ("ignored", "automatic")
        );
    }
}
