//! The call flow of the answering backup, decided purely. The edge verifies the request, opens
//! the sealed [`CallState`] (none on the first request of a call), loads the [`Facts`] the step
//! needs ([`needs`] says which), and asks [`decide`]; it renders the prompts of the returned
//! [`Plan`] from the `telefono` templates, applies its [`Effect`]s (idempotent: keyed by the
//! call and the step) and answers with the script.
//!
//! Privacy: the state of a request is told only to a verified caller — the calling number is
//! the ticket's mobile, or the caller typed the ticket's access code. Anyone else hears the
//! general information and how to get the code. A wrong code counts against the ticket; at the
//! lock-out no code opens it (the edge reads the failures from the store).

use super::script::{CallEvent, CallState, Recording, Step};
use crate::domain::Lang;

/// The digit that switches the call to English at the greeting.
pub const ENGLISH_DIGIT: &str = "9";
/// Digits a ticket number or a code may have when typed (longer input is cut by the provider).
pub const MAX_NUMBER_DIGITS: u8 = 20;
/// Seconds the provider waits for the caller's digits.
pub const GATHER_TIMEOUT_S: u8 = 8;
/// Seconds the office's line rings before the call comes back to the menu.
pub const DIAL_TIMEOUT_S: u8 = 25;

/// The words of the flow: each is a `telefono` template of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prompt {
    /// The comune, this service, whether the office is open now; "for English press 9".
    Benvenuto,
    /// How to type the ticket number (the format's example, as keys).
    ChiediNumero,
    /// No request has the number typed.
    NumeroNonTrovato,
    /// Type the access code (why, and where to find it).
    ChiediCodice,
    /// The code is not right.
    CodiceErrato,
    /// Too many wrong codes: no code opens this request for a while.
    CodiceBloccato,
    /// What anyone may hear: how to get the code, the office's hours and contacts.
    InformazioniGenerali,
    /// The state of the request, as the status page shows it.
    Stato,
    /// 1 repeat, 2 message, 3 call back, 0 the office.
    Menu,
    /// The key pressed is not on the menu.
    SceltaNonValida,
    /// Speak after the tone, `#` to end.
    Registra,
    /// The message was recorded; the office will listen to it.
    MessaggioRegistrato,
    /// The office will call back at this number.
    Richiamata,
    /// Putting the caller through.
    Trasferimento,
    /// The office is closed now: its hours, and 2 or 3.
    UfficioChiuso,
    /// The office did not answer: 2 or 3.
    UfficioNonRisponde,
    /// Goodbye.
    Arrivederci,
}

impl Prompt {
    /// Every prompt.
    pub const ALL: [Prompt; 17] = [
        Prompt::Benvenuto,
        Prompt::ChiediNumero,
        Prompt::NumeroNonTrovato,
        Prompt::ChiediCodice,
        Prompt::CodiceErrato,
        Prompt::CodiceBloccato,
        Prompt::InformazioniGenerali,
        Prompt::Stato,
        Prompt::Menu,
        Prompt::SceltaNonValida,
        Prompt::Registra,
        Prompt::MessaggioRegistrato,
        Prompt::Richiamata,
        Prompt::Trasferimento,
        Prompt::UfficioChiuso,
        Prompt::UfficioNonRisponde,
        Prompt::Arrivederci,
    ];

    /// The template's name (`templates/telefono/{it,en}/NAME.toml`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Prompt::Benvenuto => "benvenuto",
            Prompt::ChiediNumero => "chiedi_numero",
            Prompt::NumeroNonTrovato => "numero_non_trovato",
            Prompt::ChiediCodice => "chiedi_codice",
            Prompt::CodiceErrato => "codice_errato",
            Prompt::CodiceBloccato => "codice_bloccato",
            Prompt::InformazioniGenerali => "informazioni_generali",
            Prompt::Stato => "stato",
            Prompt::Menu => "menu",
            Prompt::SceltaNonValida => "scelta_non_valida",
            Prompt::Registra => "registra",
            Prompt::MessaggioRegistrato => "messaggio_registrato",
            Prompt::Richiamata => "richiamata",
            Prompt::Trasferimento => "trasferimento",
            Prompt::UfficioChiuso => "ufficio_chiuso",
            Prompt::UfficioNonRisponde => "ufficio_non_risponde",
            Prompt::Arrivederci => "arrivederci",
        }
    }
}

/// One thing the call does, with prompts still to be worded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    Say(Prompt),
    Gather {
        prompts: Vec<Prompt>,
        max_digits: u8,
        next: CallState,
    },
    Record {
        max_s: u32,
        next: CallState,
    },
    Dial {
        next: CallState,
    },
    Redirect(CallState),
    Hangup,
}

/// How a caller was verified for a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifiedBy {
    /// The calling number is the ticket's mobile.
    CallerId,
    /// The caller typed the ticket's access code.
    Code,
    /// Not verified: only the general information.
    None,
}

impl VerifiedBy {
    pub const fn as_str(self) -> &'static str {
        match self {
            VerifiedBy::CallerId => "caller_id",
            VerifiedBy::Code => "code",
            VerifiedBy::None => "none",
        }
    }
}

/// What the edge writes because of a request. Each is keyed by the call and the step, so a
/// provider's repeat of the same request writes nothing twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A lookup of ticket `ticket`, for the audit log (no number, no code).
    Lookup {
        ticket: i64,
        by: VerifiedBy,
        locked: bool,
    },
    /// A wrong access code for `ticket`.
    WrongCode { ticket: i64 },
    /// A voice message for the office about `ticket`, from a `verified` caller or not.
    VoiceMessage {
        ticket: i64,
        verified: bool,
        recording: Recording,
        transcript: Option<String>,
    },
    /// The caller asks to be called back about `ticket`.
    Callback { ticket: i64, verified: bool },
}

/// The decision on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub lang: Lang,
    pub acts: Vec<Act>,
    pub effects: Vec<Effect>,
}

/// How the office's answering is set up, and whether it is open now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    pub english: bool,
    pub max_tries: u8,
    pub record_max_s: u32,
    /// The office is open now and "0" can put the caller through.
    pub can_transfer: bool,
}

/// The ticket a caller named, as the edge found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketFacts {
    pub id: i64,
    /// The calling number is the ticket's mobile.
    pub caller_is_mobile: bool,
    /// Wrong codes within the lock-out window, before this request.
    pub failures: u32,
    /// Wrong codes that lock the ticket.
    pub max_failures: u32,
    /// Whether the digits typed are the ticket's access code (at the code step).
    pub code_matches: bool,
}

impl TicketFacts {
    fn locked(&self) -> bool {
        self.failures >= self.max_failures
    }
}

/// What the edge must look up before [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needs {
    Nothing,
    /// The ticket typed as `digits` (matched with the ticket format by the edge).
    TicketByDigits(String),
    /// The ticket already named in the state, with the code typed (`digits`, maybe empty).
    Ticket {
        id: i64,
        code: String,
    },
}

/// What [`decide`] is given besides the state and the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub setup: Setup,
    /// The ticket the edge found for [`Needs`]; `None` when none was needed or none exists.
    pub ticket: Option<TicketFacts>,
}

/// The lookup the request needs: at the greeting or the number step, the ticket typed; at the
/// code step, the ticket named with the code; later, the ticket named (its state is spoken
/// again on "1").
pub fn needs(state: Option<&CallState>, event: &CallEvent) -> Needs {
    let digits = event.digits.clone().unwrap_or_default();
    match state {
        None => Needs::Nothing,
        Some(s) => match (s.step, s.ticket) {
            (Step::Greeting, _) if digits == ENGLISH_DIGIT => Needs::Nothing,
            (Step::Greeting | Step::Number, _) if !digits.is_empty() => {
                Needs::TicketByDigits(digits)
            }
            (Step::Code, Some(id)) => Needs::Ticket { id, code: digits },
            (_, Some(id)) => Needs::Ticket {
                id,
                code: String::new(),
            },
            _ => Needs::Nothing,
        },
    }
}

fn state(step: Step, lang: Lang, tries: u8, ticket: Option<i64>, verified: bool) -> CallState {
    CallState {
        step,
        lang,
        tries,
        ticket,
        verified,
    }
}

fn ask_number(step: Step, lang: Lang, tries: u8, first: Vec<Prompt>) -> Act {
    let mut prompts = first;
    prompts.push(Prompt::ChiediNumero);
    Act::Gather {
        prompts,
        max_digits: MAX_NUMBER_DIGITS,
        next: state(step, lang, tries, None, false),
    }
}

fn menu(lang: Lang, ticket: i64, verified: bool, tries: u8, first: Vec<Prompt>) -> Act {
    let mut prompts = first;
    prompts.push(Prompt::Menu);
    Act::Gather {
        prompts,
        max_digits: 1,
        next: state(Step::Menu, lang, tries, Some(ticket), verified),
    }
}

/// What the caller hears of the ticket: its state when verified, the general information
/// otherwise.
fn about(verified: bool) -> Prompt {
    if verified {
        Prompt::Stato
    } else {
        Prompt::InformazioniGenerali
    }
}

fn goodbye(lang: Lang, first: Vec<Prompt>, effects: Vec<Effect>) -> Plan {
    let mut acts: Vec<Act> = first.into_iter().map(Act::Say).collect();
    acts.push(Act::Say(Prompt::Arrivederci));
    acts.push(Act::Hangup);
    Plan {
        lang,
        acts,
        effects,
    }
}

/// Decides what the call hears next. `state` is `None` on a call's first request; `lang` is
/// the language of a new call.
pub fn decide(state_in: Option<&CallState>, event: &CallEvent, facts: &Facts, lang: Lang) -> Plan {
    let setup = facts.setup;
    let Some(s) = state_in else {
        return Plan {
            lang,
            acts: vec![ask_number(Step::Greeting, lang, 0, vec![Prompt::Benvenuto])],
            effects: Vec::new(),
        };
    };
    let lang = s.lang;
    let digits = event.digits.as_deref().unwrap_or_default();
    let plan = |acts: Vec<Act>, effects: Vec<Effect>| Plan {
        lang,
        acts,
        effects,
    };
    match s.step {
        Step::Greeting if digits == ENGLISH_DIGIT && setup.english => Plan {
            lang: Lang::En,
            acts: vec![ask_number(Step::Number, Lang::En, 0, Vec::new())],
            effects: Vec::new(),
        },
        Step::Greeting | Step::Number => number_typed(s, facts, digits),
        Step::Code => code_typed(s, facts),
        Step::Menu => chosen(s, facts, digits),
        Step::Recorded => {
            let Some(ticket) = s.ticket else {
                return goodbye(lang, Vec::new(), Vec::new());
            };
            match &event.recording {
                Some(r) => plan(
                    vec![menu(
                        lang,
                        ticket,
                        s.verified,
                        0,
                        vec![Prompt::MessaggioRegistrato],
                    )],
                    vec![Effect::VoiceMessage {
                        ticket,
                        verified: s.verified,
                        recording: r.clone(),
                        transcript: event.transcript.clone(),
                    }],
                ),
                None => plan(
                    vec![menu(lang, ticket, s.verified, 0, Vec::new())],
                    Vec::new(),
                ),
            }
        }
        Step::AfterRecording => match s.ticket {
            Some(ticket) => plan(
                vec![menu(
                    lang,
                    ticket,
                    s.verified,
                    0,
                    vec![Prompt::MessaggioRegistrato],
                )],
                Vec::new(),
            ),
            None => goodbye(lang, Vec::new(), Vec::new()),
        },
        Step::Dialled => match (event.dial_answered, s.ticket) {
            (Some(true), _) => plan(vec![Act::Hangup], Vec::new()),
            (_, Some(ticket)) => plan(
                vec![menu(
                    lang,
                    ticket,
                    s.verified,
                    0,
                    vec![Prompt::UfficioNonRisponde],
                )],
                Vec::new(),
            ),
            (_, None) => goodbye(lang, vec![Prompt::UfficioNonRisponde], Vec::new()),
        },
    }
}

/// A ticket number typed (or nothing, at the timeout).
fn number_typed(s: &CallState, facts: &Facts, digits: &str) -> Plan {
    let lang = s.lang;
    match (digits.is_empty(), facts.ticket) {
        (false, Some(t)) if t.caller_is_mobile => Plan {
            lang,
            acts: vec![menu(lang, t.id, true, 0, vec![Prompt::Stato])],
            effects: vec![Effect::Lookup {
                ticket: t.id,
                by: VerifiedBy::CallerId,
                locked: false,
            }],
        },
        (false, Some(t)) if t.locked() => Plan {
            lang,
            acts: vec![menu(
                lang,
                t.id,
                false,
                0,
                vec![Prompt::CodiceBloccato, Prompt::InformazioniGenerali],
            )],
            effects: vec![Effect::Lookup {
                ticket: t.id,
                by: VerifiedBy::None,
                locked: true,
            }],
        },
        (false, Some(t)) => Plan {
            lang,
            acts: vec![Act::Gather {
                prompts: vec![Prompt::ChiediCodice],
                max_digits: MAX_NUMBER_DIGITS,
                next: state(Step::Code, lang, 0, Some(t.id), false),
            }],
            effects: Vec::new(),
        },
        _ => {
            let tries = s.tries.saturating_add(1);
            if tries >= facts.setup.max_tries {
                goodbye(lang, vec![Prompt::NumeroNonTrovato], Vec::new())
            } else {
                Plan {
                    lang,
                    acts: vec![ask_number(
                        Step::Number,
                        lang,
                        tries,
                        vec![Prompt::NumeroNonTrovato],
                    )],
                    effects: Vec::new(),
                }
            }
        }
    }
}

/// An access code typed for the ticket in the state.
fn code_typed(s: &CallState, facts: &Facts) -> Plan {
    let lang = s.lang;
    let Some(t) = facts.ticket.filter(|t| Some(t.id) == s.ticket) else {
        return goodbye(lang, Vec::new(), Vec::new());
    };
    if t.locked() {
        return Plan {
            lang,
            acts: vec![menu(
                lang,
                t.id,
                false,
                0,
                vec![Prompt::CodiceBloccato, Prompt::InformazioniGenerali],
            )],
            effects: vec![Effect::Lookup {
                ticket: t.id,
                by: VerifiedBy::None,
                locked: true,
            }],
        };
    }
    if t.code_matches {
        return Plan {
            lang,
            acts: vec![menu(lang, t.id, true, 0, vec![Prompt::Stato])],
            effects: vec![Effect::Lookup {
                ticket: t.id,
                by: VerifiedBy::Code,
                locked: false,
            }],
        };
    }
    let tries = s.tries.saturating_add(1);
    let now_locked = t.failures.saturating_add(1) >= t.max_failures;
    let mut effects = vec![Effect::WrongCode { ticket: t.id }];
    if now_locked || tries >= facts.setup.max_tries {
        effects.push(Effect::Lookup {
            ticket: t.id,
            by: VerifiedBy::None,
            locked: now_locked,
        });
        let first = if now_locked {
            vec![Prompt::CodiceBloccato, Prompt::InformazioniGenerali]
        } else {
            vec![Prompt::CodiceErrato, Prompt::InformazioniGenerali]
        };
        return Plan {
            lang,
            acts: vec![menu(lang, t.id, false, 0, first)],
            effects,
        };
    }
    Plan {
        lang,
        acts: vec![Act::Gather {
            prompts: vec![Prompt::CodiceErrato, Prompt::ChiediCodice],
            max_digits: MAX_NUMBER_DIGITS,
            next: state(Step::Code, lang, tries, Some(t.id), false),
        }],
        effects,
    }
}

/// A key pressed at the menu (or none).
fn chosen(s: &CallState, facts: &Facts, digits: &str) -> Plan {
    let lang = s.lang;
    let Some(ticket) = s.ticket else {
        return goodbye(lang, Vec::new(), Vec::new());
    };
    let verified = s.verified;
    let plan = |acts: Vec<Act>, effects: Vec<Effect>| Plan {
        lang,
        acts,
        effects,
    };
    match digits {
        "1" => plan(
            vec![menu(lang, ticket, verified, 0, vec![about(verified)])],
            Vec::new(),
        ),
        "2" => plan(
            vec![
                Act::Say(Prompt::Registra),
                Act::Record {
                    max_s: facts.setup.record_max_s,
                    next: state(Step::Recorded, lang, 0, Some(ticket), verified),
                },
                Act::Redirect(state(Step::AfterRecording, lang, 0, Some(ticket), verified)),
            ],
            Vec::new(),
        ),
        "3" => goodbye(
            lang,
            vec![Prompt::Richiamata],
            vec![Effect::Callback { ticket, verified }],
        ),
        "0" if facts.setup.can_transfer => plan(
            vec![
                Act::Say(Prompt::Trasferimento),
                Act::Dial {
                    next: state(Step::Dialled, lang, 0, Some(ticket), verified),
                },
            ],
            Vec::new(),
        ),
        "0" => plan(
            vec![menu(lang, ticket, verified, 0, vec![Prompt::UfficioChiuso])],
            Vec::new(),
        ),
        "" => {
            let tries = s.tries.saturating_add(1);
            if tries >= facts.setup.max_tries {
                goodbye(lang, Vec::new(), Vec::new())
            } else {
                plan(
                    vec![menu(lang, ticket, verified, tries, Vec::new())],
                    Vec::new(),
                )
            }
        }
        _ => {
            let tries = s.tries.saturating_add(1);
            if tries >= facts.setup.max_tries {
                goodbye(lang, vec![Prompt::SceltaNonValida], Vec::new())
            } else {
                plan(
                    vec![menu(
                        lang,
                        ticket,
                        verified,
                        tries,
                        vec![Prompt::SceltaNonValida],
                    )],
                    Vec::new(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETUP: Setup = Setup {
        english: true,
        max_tries: 3,
        record_max_s: 120,
        can_transfer: true,
    };

    fn ev(digits: &str) -> CallEvent {
        CallEvent {
            call_id: "CA1".to_owned(),
            caller: Some("+393471234567".to_owned()),
            digits: Some(digits.to_owned()),
            ..CallEvent::default()
        }
    }

    fn ticket(caller_is_mobile: bool, failures: u32, code_matches: bool) -> TicketFacts {
        TicketFacts {
            id: 7,
            caller_is_mobile,
            failures,
            max_failures: 5,
            code_matches,
        }
    }

    fn facts(t: Option<TicketFacts>) -> Facts {
        Facts {
            setup: SETUP,
            ticket: t,
        }
    }

    fn st(step: Step, tries: u8, ticket: Option<i64>, verified: bool) -> CallState {
        state(step, Lang::It, tries, ticket, verified)
    }

    /// The prompts a plan speaks, in order, and the state it waits in (if any).
    fn heard(p: &Plan) -> (Vec<Prompt>, Option<CallState>) {
        let mut out = Vec::new();
        let mut next = None;
        for a in &p.acts {
            match a {
                Act::Say(x) => out.push(*x),
                Act::Gather {
                    prompts, next: n, ..
                } => {
                    out.extend(prompts);
                    next = Some(*n);
                }
                Act::Record { next: n, .. } | Act::Dial { next: n } => next = Some(*n),
                Act::Redirect(_) | Act::Hangup => {}
            }
        }
        (out, next)
    }

    #[test]
    fn a_new_call_hears_the_greeting_and_is_asked_for_the_number() {
        let p = decide(None, &ev(""), &facts(None), Lang::It);
        let (words, next) = heard(&p);
        assert_eq!(words, [Prompt::Benvenuto, Prompt::ChiediNumero]);
        assert_eq!(next.map(|n| n.step), Some(Step::Greeting));
        assert!(p.effects.is_empty());
    }

    #[test]
    fn nine_at_the_greeting_switches_to_english_only_when_offered() {
        let s = st(Step::Greeting, 0, None, false);
        let p = decide(Some(&s), &ev("9"), &facts(None), Lang::It);
        assert_eq!(p.lang, Lang::En);
        assert_eq!(heard(&p).1.map(|n| n.lang), Some(Lang::En));
        let off = Facts {
            setup: Setup {
                english: false,
                ..SETUP
            },
            ticket: None,
        };
        let p = decide(Some(&s), &ev("9"), &off, Lang::It);
        assert_eq!(p.lang, Lang::It);
        assert_eq!(
            heard(&p).0,
            [Prompt::NumeroNonTrovato, Prompt::ChiediNumero]
        );
    }

    #[test]
    fn the_tickets_own_mobile_hears_the_state_at_once_and_the_lookup_is_audited() {
        let s = st(Step::Number, 0, None, false);
        let p = decide(
            Some(&s),
            &ev("2026000123"),
            &facts(Some(ticket(true, 0, false))),
            Lang::It,
        );
        let (words, next) = heard(&p);
        assert_eq!(words, [Prompt::Stato, Prompt::Menu]);
        let next = next.expect("waits at the menu");
        assert_eq!(
            (next.step, next.ticket, next.verified),
            (Step::Menu, Some(7), true)
        );
        assert_eq!(
            p.effects,
            [Effect::Lookup {
                ticket: 7,
                by: VerifiedBy::CallerId,
                locked: false
            }]
        );
    }

    #[test]
    fn another_number_is_asked_for_the_code_and_hears_nothing_before_it() {
        let s = st(Step::Number, 0, None, false);
        let p = decide(
            Some(&s),
            &ev("2026000123"),
            &facts(Some(ticket(false, 0, false))),
            Lang::It,
        );
        let (words, next) = heard(&p);
        assert_eq!(words, [Prompt::ChiediCodice]);
        assert!(!words.contains(&Prompt::Stato));
        assert_eq!(
            next.map(|n| (n.step, n.verified)),
            Some((Step::Code, false))
        );
        assert!(p.effects.is_empty());
    }

    #[test]
    fn the_right_code_opens_the_state() {
        let s = st(Step::Code, 0, Some(7), false);
        let p = decide(
            Some(&s),
            &ev("482913"),
            &facts(Some(ticket(false, 2, true))),
            Lang::It,
        );
        assert_eq!(heard(&p).0, [Prompt::Stato, Prompt::Menu]);
        assert_eq!(heard(&p).1.map(|n| n.verified), Some(true));
        assert!(matches!(
            p.effects[0],
            Effect::Lookup {
                by: VerifiedBy::Code,
                ..
            }
        ));
    }

    #[test]
    fn a_wrong_code_is_counted_and_tried_again_until_the_tries_end() {
        let f = facts(Some(ticket(false, 0, false)));
        let s = st(Step::Code, 0, Some(7), false);
        let p = decide(Some(&s), &ev("000000"), &f, Lang::It);
        assert_eq!(heard(&p).0, [Prompt::CodiceErrato, Prompt::ChiediCodice]);
        assert_eq!(p.effects, [Effect::WrongCode { ticket: 7 }]);
        let s = st(Step::Code, 2, Some(7), false);
        let p = decide(Some(&s), &ev("000000"), &f, Lang::It);
        let (words, next) = heard(&p);
        assert_eq!(
            words,
            [
                Prompt::CodiceErrato,
                Prompt::InformazioniGenerali,
                Prompt::Menu
            ]
        );
        assert_eq!(next.map(|n| n.verified), Some(false));
        assert!(!words.contains(&Prompt::Stato));
    }

    #[test]
    fn the_failure_that_reaches_the_limit_locks_and_a_locked_ticket_takes_no_code() {
        let s = st(Step::Code, 0, Some(7), false);
        let p = decide(
            Some(&s),
            &ev("000000"),
            &facts(Some(ticket(false, 4, false))),
            Lang::It,
        );
        assert_eq!(heard(&p).0[0], Prompt::CodiceBloccato);
        assert!(p.effects.contains(&Effect::WrongCode { ticket: 7 }));
        // Locked: even the right code opens nothing, and no failure is added.
        let p = decide(
            Some(&s),
            &ev("482913"),
            &facts(Some(ticket(false, 5, true))),
            Lang::It,
        );
        assert_eq!(heard(&p).0[0], Prompt::CodiceBloccato);
        assert!(!heard(&p).0.contains(&Prompt::Stato));
        assert!(
            !p.effects
                .iter()
                .any(|e| matches!(e, Effect::WrongCode { .. }))
        );
        // Locked before the code is asked: not even asked.
        let n = st(Step::Number, 0, None, false);
        let p = decide(
            Some(&n),
            &ev("2026000123"),
            &facts(Some(ticket(false, 5, false))),
            Lang::It,
        );
        assert!(!heard(&p).0.contains(&Prompt::ChiediCodice));
    }

    #[test]
    fn unknown_numbers_get_three_tries_then_a_polite_goodbye() {
        let f = facts(None);
        let mut s = st(Step::Greeting, 0, None, false);
        for _ in 0..2 {
            let p = decide(Some(&s), &ev("12"), &f, Lang::It);
            let (words, next) = heard(&p);
            assert_eq!(words, [Prompt::NumeroNonTrovato, Prompt::ChiediNumero]);
            s = next.expect("asks again");
        }
        let p = decide(Some(&s), &ev(""), &f, Lang::It);
        assert_eq!(heard(&p).0, [Prompt::NumeroNonTrovato, Prompt::Arrivederci]);
        assert_eq!(p.acts.last(), Some(&Act::Hangup));
    }

    #[test]
    fn the_menu_repeats_records_calls_back_and_puts_through_in_hours_only() {
        let f = facts(None);
        let s = st(Step::Menu, 0, Some(7), true);
        assert_eq!(
            heard(&decide(Some(&s), &ev("1"), &f, Lang::It)).0,
            [Prompt::Stato, Prompt::Menu]
        );
        let unverified = st(Step::Menu, 0, Some(7), false);
        assert_eq!(
            heard(&decide(Some(&unverified), &ev("1"), &f, Lang::It)).0,
            [Prompt::InformazioniGenerali, Prompt::Menu]
        );
        let p = decide(Some(&s), &ev("2"), &f, Lang::It);
        assert!(
            matches!(p.acts[1], Act::Record { max_s: 120, next } if next.step == Step::Recorded)
        );
        assert!(matches!(p.acts[2], Act::Redirect(n) if n.step == Step::AfterRecording));
        let p = decide(Some(&s), &ev("3"), &f, Lang::It);
        assert_eq!(
            p.effects,
            [Effect::Callback {
                ticket: 7,
                verified: true
            }]
        );
        assert_eq!(p.acts.last(), Some(&Act::Hangup));
        let p = decide(Some(&s), &ev("0"), &f, Lang::It);
        assert!(matches!(p.acts[1], Act::Dial { .. }));
        let closed = Facts {
            setup: Setup {
                can_transfer: false,
                ..SETUP
            },
            ticket: None,
        };
        let p = decide(Some(&s), &ev("0"), &closed, Lang::It);
        assert_eq!(heard(&p).0, [Prompt::UfficioChiuso, Prompt::Menu]);
        assert!(!p.acts.iter().any(|a| matches!(a, Act::Dial { .. })));
    }

    #[test]
    fn a_recording_becomes_a_message_for_the_office_once_per_request() {
        let s = st(Step::Recorded, 0, Some(7), false);
        let mut e = ev("");
        e.recording = Some(Recording {
            id: "RE1".to_owned(),
            url: "https://api.example/rec/RE1".to_owned(),
            duration_s: Some(12),
        });
        let p = decide(Some(&s), &e, &facts(None), Lang::It);
        assert!(matches!(
            &p.effects[..],
            [Effect::VoiceMessage {
                ticket: 7,
                verified: false,
                ..
            }]
        ));
        assert_eq!(heard(&p).0, [Prompt::MessaggioRegistrato, Prompt::Menu]);
    }

    #[test]
    fn the_menu_ends_after_the_tries_and_a_call_put_through_ends_when_answered() {
        let s = st(Step::Menu, 2, Some(7), true);
        let p = decide(Some(&s), &ev(""), &facts(None), Lang::It);
        assert_eq!(p.acts.last(), Some(&Act::Hangup));
        let d = st(Step::Dialled, 0, Some(7), true);
        let mut e = ev("");
        e.dial_answered = Some(true);
        assert_eq!(
            decide(Some(&d), &e, &facts(None), Lang::It).acts,
            [Act::Hangup]
        );
        e.dial_answered = Some(false);
        assert_eq!(
            heard(&decide(Some(&d), &e, &facts(None), Lang::It)).0,
            [Prompt::UfficioNonRisponde, Prompt::Menu]
        );
    }

    #[test]
    fn needs_asks_for_the_ticket_only_when_the_step_names_one() {
        assert_eq!(needs(None, &ev("123")), Needs::Nothing);
        let g = st(Step::Greeting, 0, None, false);
        assert_eq!(needs(Some(&g), &ev("9")), Needs::Nothing);
        assert_eq!(
            needs(Some(&g), &ev("2026000123")),
            Needs::TicketByDigits("2026000123".to_owned())
        );
        let c = st(Step::Code, 0, Some(7), false);
        assert_eq!(
            needs(Some(&c), &ev("1")),
            Needs::Ticket {
                id: 7,
                code: "1".to_owned()
            }
        );
    }
}
