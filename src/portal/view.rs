//! What a citizen may see of their request, in plain words (pure): built from the stored ticket,
//! its events, its SLA at `now` and the messages sent to the citizen.
//!
//! Only what concerns the citizen goes in: the steps they were told of, the current step, the
//! expected closure or the suspension (since when, and what is missing), whether the term was
//! exceeded, and each message with its channel, time and delivery state. Office notes, priority
//! and category changes, rebaselines, addresses, and the citizen's own reply texts stay out.

use serde::Serialize;

use crate::calendar::Calendar;
use crate::domain::{Channel, Lang};
use crate::locale;
use crate::sla::policy::ClockKind;
use crate::ticket::record::{EventRecord, SlaView, TicketRecord};
use crate::time::Timestamp;

/// A message sent (or being sent) to the citizen about the ticket, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub kind: String,
    pub channel: String,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    /// The outbox state: `pending`, `retry`, `sending`, `delivered`, `dead`, `uncertain`.
    pub state: String,
    /// The provider's delivery report for an SMS (`queued`, `sent`, `delivered`, `failed`, …).
    pub dlr_state: Option<String>,
}

/// Everything the view is made from.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub ticket: &'a TicketRecord,
    pub events: &'a [EventRecord],
    /// The SLA at `now` (not the cached one).
    pub sla: &'a SlaView,
    pub clock: ClockKind,
    pub messages: &'a [SentMessage],
    pub calendar: &'a Calendar,
    pub working_day_s: i64,
    pub show_office: bool,
}

/// An instant, machine-readable (RFC 3339 in the office's offset) and in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct When {
    pub at: String,
    pub text: String,
}

/// Where the request stands, in one word and one sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// `in_lavorazione`, `sospesa`, `in_ritardo` or `conclusa`.
    pub code: &'static str,
    pub label: String,
    pub detail: String,
}

/// The clock is stopped while the office waits for the citizen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suspension {
    pub since: When,
    /// What the office asked for.
    pub missing: String,
    /// Working time left once the citizen answers (business-clock targets only).
    pub remaining: Option<String>,
}

/// One step of the request the citizen was told of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// `received`, `step_changed`, `integration_requested`, `integration_received`, `closed`,
    /// `reopened`.
    pub kind: &'static str,
    /// The CRM's step code for `step_changed`.
    pub code: Option<String>,
    pub at: When,
    pub title: String,
    pub detail: Option<String>,
}

/// One message sent to the citizen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageView {
    pub kind: String,
    pub title: String,
    pub channel: String,
    pub channel_label: &'static str,
    pub at: When,
    /// `in_invio`, `inviato`, `consegnato`, `non_recapitato` or `in_verifica`.
    pub state: &'static str,
    pub state_label: &'static str,
}

/// The citizen's view of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CitizenView {
    pub number: String,
    pub subject: String,
    pub office: Option<String>,
    pub lang: &'static str,
    pub received_at: When,
    /// When the term started counting, if the request arrived while the office was closed.
    pub counting_from: Option<When>,
    pub status: Status,
    /// When the office expects to be done (open, on time, clock running).
    pub expected_closure: Option<When>,
    /// The term (also once exceeded); absent while suspended.
    pub due_at: Option<When>,
    pub term_exceeded: bool,
    pub suspension: Option<Suspension>,
    pub closed_at: Option<When>,
    pub current_step: Option<Step>,
    pub steps: Vec<Step>,
    pub messages: Vec<MessageView>,
    /// Whether the citizen can answer by e-mail or by SMS (they have such an address on file).
    pub can_reply_email: bool,
    pub can_reply_sms: bool,
}

fn when(lang: Lang, cal: &Calendar, t: Timestamp) -> When {
    When {
        at: cal.format_rfc3339(t),
        text: locale::date_time(lang, cal, t),
    }
}

fn tr(lang: Lang, it: &str, en: &str) -> String {
    match lang {
        Lang::It => it.to_owned(),
        Lang::En => en.to_owned(),
    }
}

/// The citizen's language as stored with the ticket (Italian when unknown).
pub fn ticket_lang(t: &TicketRecord) -> Lang {
    t.citizen.lang()
}

fn channel_label(channel: &str) -> &'static str {
    match channel {
        "email" => "e-mail",
        "pec" => "PEC",
        "sms" => "SMS",
        "phone" => "telefono",
        "voice" => "telefonata",
        _ => "altro",
    }
}

fn reply_channel(lang: Lang, channel: &str) -> String {
    match (lang, channel) {
        (Lang::It, "email") => "per e-mail".into(),
        (Lang::It, "pec") => "per PEC".into(),
        (Lang::It, "sms") => "per SMS".into(),
        (Lang::It, "phone") => "per telefono".into(),
        (Lang::It, "portal") => "dal portale".into(),
        (Lang::It, "desk") => "allo sportello".into(),
        (Lang::It, "post") => "per posta".into(),
        (Lang::En, "email") => "by e-mail".into(),
        (Lang::En, "pec") => "by certified e-mail (PEC)".into(),
        (Lang::En, "sms") => "by text message".into(),
        (Lang::En, "phone") => "by phone".into(),
        (Lang::En, "portal") => "through the portal".into(),
        (Lang::En, "desk") => "at the front desk".into(),
        (Lang::En, "post") => "by post".into(),
        (Lang::It, _) => "".into(),
        (Lang::En, _) => "".into(),
    }
}

/// The notice's name for the citizen, by kind.
pub fn message_title(lang: Lang, kind: &str) -> String {
    let (it, en) = match kind {
        "ricevuta" => ("Conferma di ricezione", "Confirmation of receipt"),
        "avanzamento" => ("Aggiornamento sulla lavorazione", "Progress update"),
        "richiesta_integrazione" => (
            "Richiesta di documenti o informazioni",
            "Request for documents or information",
        ),
        "sollecito_integrazione" => (
            "Promemoria: documenti o informazioni mancanti",
            "Reminder: documents or information still missing",
        ),
        "ripresa" => (
            "Risposta ricevuta: i tempi ripartono",
            "Reply received: the clock is running again",
        ),
        "violazione" => ("Avviso di ritardo", "Notice of delay"),
        "chiusura" => ("Richiesta conclusa", "Request completed"),
        "cambio_data" => (
            "Nuova data prevista di conclusione",
            "New expected completion date",
        ),
        "ultimo_avviso" => (
            "Ultimo avviso prima della chiusura",
            "Final notice before closure",
        ),
        "revoca_sms" => ("SMS disattivati", "Text messages turned off"),
        "riattivazione_sms" => ("SMS riattivati", "Text messages turned on again"),
        "risposta_stato" => (
            "Stato della richiesta (risposta SMS)",
            "Request status (text reply)",
        ),
        "risposta_info" => ("Informazioni (risposta SMS)", "Information (text reply)"),
        "aiuto_sms" => ("Parole chiave SMS", "Text keywords"),
        "risposta_non_abbinata" => (
            "Come indicare il numero della richiesta",
            "How to quote your request number",
        ),
        "appuntamento" => ("Appuntamento fissato", "Appointment booked"),
        "appuntamento_modificato" => ("Appuntamento spostato", "Appointment moved"),
        "appuntamento_annullato" => ("Appuntamento annullato", "Appointment cancelled"),
        "appuntamento_mancato" => ("Appuntamento non avvenuto", "Missed appointment"),
        "promemoria_appuntamento" => ("Promemoria dell'appuntamento", "Appointment reminder"),
        _ => ("Comunicazione dell'URP", "Message from the help desk"),
    };
    tr(lang, it, en)
}

fn message_state(m: &SentMessage) -> &'static str {
    match (m.state.as_str(), m.dlr_state.as_deref()) {
        (_, Some("failed" | "undelivered" | "expired")) | ("dead", _) => "non_recapitato",
        ("delivered", Some("delivered")) => "consegnato",
        ("delivered", _) => "inviato",
        ("uncertain", _) => "in_verifica",
        _ => "in_invio",
    }
}

fn state_label(lang: Lang, state: &str) -> &'static str {
    match (lang, state) {
        (Lang::It, "consegnato") => "consegnato",
        (Lang::It, "inviato") => "inviato",
        (Lang::It, "non_recapitato") => "non recapitato",
        (Lang::It, "in_verifica") => "in verifica",
        (Lang::It, _) => "in invio",
        (Lang::En, "consegnato") => "delivered",
        (Lang::En, "inviato") => "sent",
        (Lang::En, "non_recapitato") => "not delivered",
        (Lang::En, "in_verifica") => "being checked",
        (Lang::En, _) => "being sent",
    }
}

fn step_of(lang: Lang, cal: &Calendar, e: &EventRecord) -> Option<Step> {
    let d = &e.data;
    let text = |k: &str| d[k].as_str().map(str::trim).filter(|s| !s.is_empty());
    let (kind, title, detail, code): (&'static str, String, Option<String>, Option<String>) =
        match e.kind.as_str() {
            "received" => (
                "received",
                tr(lang, "Richiesta ricevuta", "Request received"),
                None,
                None,
            ),
            "step_changed" => (
                "step_changed",
                tr(lang, "Aggiornamento sulla lavorazione", "Progress update"),
                text("text").map(str::to_owned),
                text("step").map(str::to_owned),
            ),
            "integration_requested" => (
                "integration_requested",
                tr(
                    lang,
                    "Le abbiamo chiesto documenti o informazioni",
                    "We asked you for documents or information",
                ),
                text("missing").map(str::to_owned),
                None,
            ),
            "integration_received" => {
                let via = d["channel"].as_str().map(|c| reply_channel(lang, c));
                (
                    "integration_received",
                    tr(
                        lang,
                        "Abbiamo ricevuto la sua risposta",
                        "We received your reply",
                    ),
                    via.filter(|v| !v.is_empty()).map(|v| match lang {
                        Lang::It => format!("Risposta arrivata {v}."),
                        Lang::En => format!("Reply received {v}."),
                    }),
                    None,
                )
            }
            "closed" => (
                "closed",
                tr(lang, "Richiesta conclusa", "Request completed"),
                text("text").map(str::to_owned).or_else(|| {
                    (d["automatic"]["reason"] == "suspension_cap").then(|| {
                        tr(
                            lang,
                            "Chiusa perché i documenti o le informazioni richiesti non sono arrivati in tempo.",
                            "Closed because the documents or information we asked for did not arrive in time.",
                        )
                    })
                }),
                None,
            ),
            "expected_date_set" => (
                "expected_date_set",
                match d["expected_at"]
                    .as_str()
                    .and_then(|t| Timestamp::parse_rfc3339(t).ok())
                {
                    Some(t) => match lang {
                        Lang::It => format!("Nuova data prevista: {}", when(lang, cal, t).text),
                        Lang::En => format!("New expected date: {}", when(lang, cal, t).text),
                    },
                    None => tr(lang, "Nuova data prevista", "New expected date"),
                },
                text("reason").map(str::to_owned),
                None,
            ),
            "reopened" => (
                "reopened",
                tr(lang, "Richiesta riaperta", "Request reopened"),
                None,
                None,
            ),
            // Office notes, priority, category and rebaselines are internal.
            _ => return None,
        };
    let at = e.occurred_at;
    Some(Step {
        kind,
        code,
        at: when(lang, cal, at),
        title,
        detail,
    })
}

/// The citizen's view of the request at the SLA's `computed_at`.
pub fn citizen_view(f: &Facts<'_>, lang: Lang) -> CitizenView {
    let t = f.ticket;
    let cal = f.calendar;
    let w = |x: Timestamp| when(lang, cal, x);
    let mut steps: Vec<Step> = f
        .events
        .iter()
        .filter_map(|e| step_of(lang, cal, e))
        .collect();
    let counting_from = cal
        .next_opening(t.received_at)
        .filter(|o| *o > t.received_at)
        .map(w);
    if let (Some(first), Some(c)) = (steps.first_mut(), &counting_from)
        && first.kind == "received"
    {
        first.detail = Some(counting_from_note(lang, c));
    }
    let closed = t.closed_at.is_some() || f.sla.state == "closed";
    let term_exceeded = if closed {
        f.sla.closed_late == Some(true)
    } else {
        f.sla.state == "breached"
    };
    let suspension = match (closed, t.waiting_since) {
        (false, Some(since)) => Some(suspension(f, lang, since)),
        _ => None,
    };
    let due_at = f.sla.due_at.filter(|_| suspension.is_none()).map(w);
    let expected_closure = due_at
        .clone()
        .filter(|_| !closed && !term_exceeded && suspension.is_none());
    let closed_at = t.closed_at.map(w);
    let status = if closed {
        closed_status(lang, closed_at.as_ref(), term_exceeded)
    } else if let Some(s) = &suspension {
        suspended_status(lang, s)
    } else if term_exceeded {
        overdue_status(lang, due_at.as_ref())
    } else {
        in_progress_status(lang, expected_closure.as_ref())
    };
    let messages = f
        .messages
        .iter()
        .map(|m| message_view(lang, cal, m))
        .collect();
    let present = |c: Channel| t.citizen.address(c).is_some_and(|s| !s.is_empty());
    CitizenView {
        number: t.number.clone(),
        subject: t.subject.clone(),
        office: f.show_office.then(|| office_name(&t.office)),
        lang: match lang {
            Lang::It => "it",
            Lang::En => "en",
        },
        received_at: w(t.received_at),
        counting_from,
        status,
        expected_closure,
        due_at,
        term_exceeded,
        suspension,
        closed_at,
        current_step: steps.last().cloned(),
        steps,
        messages,
        can_reply_email: present(Channel::Email) || present(Channel::Pec),
        can_reply_sms: present(Channel::Sms),
    }
}

/// Why the time counts from a later instant than receipt.
fn counting_from_note(lang: Lang, c: &When) -> String {
    match lang {
        Lang::It => format!(
            "Arrivata fuori dall'orario d'ufficio: i tempi decorrono da {}.",
            c.text
        ),
        Lang::En => format!(
            "It arrived while the office was closed: the time counts from {}.",
            c.text
        ),
    }
}

/// The wait for the citizen since `since`: what the office last asked for, and the working
/// time left once they answer (business clock only).
fn suspension(f: &Facts<'_>, lang: Lang, since: Timestamp) -> Suspension {
    let missing = f
        .events
        .iter()
        .rev()
        .find(|e| e.kind == "integration_requested")
        .and_then(|e| e.data["missing"].as_str())
        .unwrap_or_default()
        .to_owned();
    Suspension {
        since: when(lang, f.calendar, since),
        missing,
        remaining: (f.clock == ClockKind::Business && f.sla.remaining_s > 0).then(|| {
            crate::templates::helpers::working_time(
                lang,
                f.sla.remaining_s,
                f.working_day_s.max(60),
            )
        }),
    }
}

fn closed_status(lang: Lang, closed_at: Option<&When>, term_exceeded: bool) -> Status {
    Status {
        code: "conclusa",
        label: tr(lang, "Conclusa", "Completed"),
        detail: match (lang, closed_at, term_exceeded) {
            (Lang::It, Some(c), false) => {
                format!("La richiesta è stata conclusa {}.", on(lang, &c.text))
            }
            (Lang::It, Some(c), true) => format!(
                "La richiesta è stata conclusa {}, oltre il termine previsto. Ci scusiamo per il ritardo.",
                on(lang, &c.text)
            ),
            (Lang::En, Some(c), false) => {
                format!("The request was completed {}.", on(lang, &c.text))
            }
            (Lang::En, Some(c), true) => format!(
                "The request was completed {}, after the expected term. We apologise for the delay.",
                on(lang, &c.text)
            ),
            (Lang::It, None, _) => "La richiesta è stata conclusa.".to_owned(),
            (Lang::En, None, _) => "The request was completed.".to_owned(),
        },
    }
}

fn suspended_status(lang: Lang, s: &Suspension) -> Status {
    Status {
        code: "sospesa",
        label: tr(lang, "Sospesa", "On hold"),
        detail: match lang {
            Lang::It => format!(
                "Sospesa: in attesa della sua integrazione dal {}. I tempi di lavorazione ripartono quando riceviamo la sua risposta.",
                s.since.text
            ),
            Lang::En => format!(
                "On hold: waiting for your reply since {}. The processing time starts again when we receive it.",
                s.since.text
            ),
        },
    }
}

fn overdue_status(lang: Lang, due_at: Option<&When>) -> Status {
    let due = due_at.map(|d| d.text.clone()).unwrap_or_default();
    Status {
        code: "in_ritardo",
        label: tr(lang, "In ritardo", "Overdue"),
        detail: match lang {
            Lang::It => format!(
                "Il termine previsto ({due}) è stato superato. L'ufficio è stato avvisato; ci scusiamo per il ritardo."
            ),
            Lang::En => format!(
                "The expected term ({due}) has passed. The office has been alerted; we apologise for the delay."
            ),
        },
    }
}

fn in_progress_status(lang: Lang, expected_closure: Option<&When>) -> Status {
    Status {
        code: "in_lavorazione",
        label: tr(lang, "In lavorazione", "In progress"),
        detail: match (expected_closure, lang) {
            (Some(d), Lang::It) => format!("Prevediamo di concluderla entro {}.", d.text),
            (Some(d), Lang::En) => format!("We expect to complete it by {}.", d.text),
            (None, Lang::It) => "La richiesta è in lavorazione.".to_owned(),
            (None, Lang::En) => "Your request is being processed.".to_owned(),
        },
    }
}

/// One message sent to the citizen, timed when delivered (else when queued).
fn message_view(lang: Lang, cal: &Calendar, m: &SentMessage) -> MessageView {
    let state = message_state(m);
    MessageView {
        kind: m.kind.clone(),
        title: message_title(lang, &m.kind),
        channel: m.channel.clone(),
        channel_label: channel_label(&m.channel),
        at: when(lang, cal, m.delivered_at.unwrap_or(m.created_at)),
        state,
        state_label: state_label(lang, state),
    }
}

/// The office as people write it: `servizi_sociali` → `Servizi sociali`.
fn office_name(code: &str) -> String {
    let words = code.replace(['_', '-'], " ");
    let mut c = words.trim().chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// "conclusa lunedì 2 marzo 2026 alle 10:15"; English needs "on".
fn on(lang: Lang, text: &str) -> String {
    match lang {
        Lang::It => text.to_owned(),
        Lang::En => format!("on {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(state: &str, dlr: Option<&str>) -> SentMessage {
        SentMessage {
            kind: "ricevuta".into(),
            channel: "sms".into(),
            created_at: Timestamp(0),
            delivered_at: None,
            state: state.into(),
            dlr_state: dlr.map(str::to_owned),
        }
    }

    #[test]
    fn delivery_states_in_the_citizens_words() {
        for (state, dlr, code, it, en) in [
            ("pending", None, "in_invio", "in invio", "being sent"),
            ("retry", None, "in_invio", "in invio", "being sent"),
            ("sending", None, "in_invio", "in invio", "being sent"),
            ("delivered", None, "inviato", "inviato", "sent"),
            ("delivered", Some("queued"), "inviato", "inviato", "sent"),
            ("delivered", Some("sent"), "inviato", "inviato", "sent"),
            (
                "delivered",
                Some("delivered"),
                "consegnato",
                "consegnato",
                "delivered",
            ),
            (
                "delivered",
                Some("failed"),
                "non_recapitato",
                "non recapitato",
                "not delivered",
            ),
            (
                "delivered",
                Some("undelivered"),
                "non_recapitato",
                "non recapitato",
                "not delivered",
            ),
            (
                "delivered",
                Some("expired"),
                "non_recapitato",
                "non recapitato",
                "not delivered",
            ),
            (
                "dead",
                None,
                "non_recapitato",
                "non recapitato",
                "not delivered",
            ),
            (
                "uncertain",
                None,
                "in_verifica",
                "in verifica",
                "being checked",
            ),
        ] {
            let s = message_state(&msg(state, dlr));
            assert_eq!(s, code, "{state} {dlr:?}");
            assert_eq!(state_label(Lang::It, s), it);
            assert_eq!(state_label(Lang::En, s), en);
        }
    }

    #[test]
    fn every_citizen_notice_has_a_name_in_both_languages() {
        let catalog = crate::templates::Catalog::bundled().expect("catalog");
        for key in catalog.defaults.keys() {
            if key.audience != crate::templates::Audience::Cittadino {
                continue;
            }
            for lang in [Lang::It, Lang::En] {
                let t = message_title(lang, &key.kind);
                assert_ne!(
                    t,
                    message_title(lang, "no-such-kind"),
                    "{} has no name",
                    key.kind
                );
            }
        }
    }

    #[test]
    fn office_codes_read_as_names() {
        assert_eq!(office_name("servizi_sociali"), "Servizi sociali");
        assert_eq!(office_name("anagrafe"), "Anagrafe");
        assert_eq!(office_name("Ufficio Tributi"), "Ufficio Tributi");
        assert_eq!(office_name(""), "");
    }

    #[test]
    fn internal_events_are_not_steps() {
        let cal = crate::calendar::Calendar::new(crate::calendar::CalendarSpec::roma_capitale())
            .expect("calendar");
        let ev = |kind: &str, data: serde_json::Value| EventRecord {
            id: 1,
            kind: kind.into(),
            occurred_at: Timestamp(1_772_442_900),
            source: "api".into(),
            idempotency_key: "k".into(),
            data,
            recorded_at: Timestamp(1_772_442_900),
        };
        for kind in [
            "note",
            "priority_changed",
            "category_changed",
            "rebaselined",
        ] {
            assert!(step_of(Lang::It, &cal, &ev(kind, serde_json::json!({"text": "x"}))).is_none());
        }
        let s = step_of(
            Lang::En,
            &cal,
            &ev(
                "integration_received",
                serde_json::json!({"channel": "sms", "text": "il mio IBAN è …"}),
            ),
        )
        .expect("a step");
        assert_eq!(s.title, "We received your reply");
        assert_eq!(s.detail.as_deref(), Some("Reply received by text message."));
        let r = step_of(
            Lang::It,
            &cal,
            &ev(
                "reopened",
                serde_json::json!({"reason": "errore dell'operatore Rossi"}),
            ),
        )
        .expect("a step");
        assert_eq!(r.detail, None, "the reason for reopening stays internal");
    }
}
