//! SMS answering (issue 19, point 2): a citizen texts `STATO 2026/000123` and gets one SMS with
//! the state of the request. [`parse`] reads the text; [`decide`] says what to answer from the
//! loaded facts. The store loads the facts, queues the answer and records the wrong codes.
//!
//! Only a text that is a query is answered: a keyword (`STATO`, `INFO`, `PRATICA`) followed by a
//! ticket number and, optionally, the 6-digit access code — and nothing else — or a bare ticket
//! number alone (with or without the code); `AIUTO`/`HELP` alone asks for the keywords.
//! Anything longer ("pratica 2026/000123: allego il documento") is an ordinary reply and goes
//! the usual way, so an integrazione by SMS keeps working as before.

use super::matching::TicketFormat;

/// The keywords that ask for a request's state (any case; a `:` or `.` may follow).
pub const QUERY_KEYWORDS: &[&str] = &["STATO", "INFO", "PRATICA"];
/// The keywords that ask how the SMS answering works.
pub const HELP_KEYWORDS: &[&str] = &["AIUTO", "HELP"];
/// The digits of an access code.
pub const CODE_DIGITS: usize = 6;

/// What an SMS asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// The state of ticket `number` (canonical form), with the access code when given.
    Query {
        number: String,
        code: Option<String>,
        /// The text was the number alone (no keyword).
        bare: bool,
    },
    /// The keywords, and how to ask.
    Help,
    /// Not a question for the answering: the reply goes the usual way.
    None,
}

/// Reads an SMS text. Case, spaces and separators inside the number are tolerated as the
/// matcher tolerates them; a trailing `.`, `!` or `?` is ignored.
pub fn parse(text: &str, format: &TicketFormat) -> Ask {
    let t = text
        .trim()
        .trim_end_matches(['.', '!', '?'])
        .trim()
        .to_uppercase();
    if t.is_empty() || t.chars().count() > 80 {
        return Ask::None;
    }
    if HELP_KEYWORDS.contains(&t.as_str()) {
        return Ask::Help;
    }
    let (rest, bare) = match keyword(&t) {
        Some(rest) => (rest, false),
        None => (t.as_str(), true),
    };
    let rest = rest.trim();
    if rest.is_empty() {
        // A keyword alone: how to ask.
        return if bare { Ask::None } else { Ask::Help };
    }
    // The code, when given, is the last word: six digits after the number.
    let (number_part, code) = match rest.rsplit_once(char::is_whitespace) {
        Some((head, last))
            if last.len() == CODE_DIGITS
                && last.bytes().all(|b| b.is_ascii_digit())
                && only_number(head.trim(), format).is_some() =>
        {
            (head.trim(), Some(last.to_owned()))
        }
        _ => (rest, None),
    };
    match only_number(number_part, format) {
        Some(number) => Ask::Query { number, code, bare },
        None => Ask::None,
    }
}

/// The text after a query keyword (with an optional `:`/`.`/`,` after it), if it starts with one.
fn keyword(t: &str) -> Option<&str> {
    QUERY_KEYWORDS.iter().find_map(|k| {
        let after = t.strip_prefix(k)?;
        // A whole word: "INFORMAZIONI" is not "INFO".
        match after.strip_prefix([':', '.', ',']) {
            Some(rest) => Some(rest),
            None if after.is_empty() || after.starts_with(char::is_whitespace) => Some(after),
            None => None,
        }
    })
}

/// The one ticket number `text` is made of, and nothing else but separators.
fn only_number(text: &str, format: &TicketFormat) -> Option<String> {
    let found = format.find_all(text);
    let [number] = found.as_slice() else {
        return None;
    };
    // Nothing but the number's own letters, digits and separators: every letter or digit of
    // the text must be accounted for by the number (without its zero padding).
    let significant = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_uppercase()
    };
    if text
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || c.is_whitespace() || "-/._".contains(c)))
    {
        return None;
    }
    let want = significant(number);
    let got = significant(text);
    // The citizen may drop the prefix word and the zero padding: compare digits, after
    // removing the zeros both sides may or may not have.
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let letters = |s: &str| {
        s.chars()
            .filter(char::is_ascii_alphabetic)
            .collect::<String>()
    };
    let strip = |s: String| s.replace('0', "");
    (strip(digits(&got)) == strip(digits(&want))
        && (letters(&got).is_empty() || letters(&got) == letters(&want)))
    .then(|| number.clone())
}

/// What the store loaded about the ticket a query names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketFacts {
    pub id: i64,
    /// The sender's number is the ticket's mobile.
    pub sender_is_mobile: bool,
    /// The ticket waits for an integrazione (the clock is stopped).
    pub waiting: bool,
    /// The code in the text is the ticket's access code (false without a code).
    pub code_matches: bool,
    /// Wrong codes for the ticket within the lock-out window.
    pub failures: u32,
    pub max_failures: u32,
}

/// Everything [`decide`] looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    pub ask: &'a Ask,
    /// The sender turned SMS off (the opt-out keywords).
    pub opted_out: bool,
    /// Answers already sent to this sender today, and the most allowed.
    pub answered_today: u32,
    pub per_day: u32,
    /// The ticket the query names, when it exists.
    pub ticket: Option<TicketFacts>,
}

/// How the sender was verified for the ticket (kept in the audit, never the number or code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifiedBy {
    /// The sender's number is the ticket's mobile.
    Sender,
    /// The text carried the ticket's access code.
    Code,
    /// Not verified: general information only.
    None,
}

impl VerifiedBy {
    pub const fn as_str(self) -> &'static str {
        match self {
            VerifiedBy::Sender => "sender",
            VerifiedBy::Code => "code",
            VerifiedBy::None => "none",
        }
    }
}

/// The SMS sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The state of ticket `ticket_id`: only to a verified sender.
    Status { ticket_id: i64 },
    /// General information and how to get the access code: the same words whether the ticket
    /// exists or not.
    General,
    /// The keywords.
    Help,
}

/// What to do about one SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Not a question for the answering: the reply path takes it, unchanged.
    NotQuery,
    /// A query, but nothing is sent: the sender opted out of SMS.
    OptedOut,
    /// A query over the sender's daily allowance: nothing is sent, nothing looked up.
    Limited,
    /// Answer with `reply`; `lookup` is the audit of the ticket looked at; `wrong_code` a
    /// failure to record for that ticket.
    Answer {
        reply: Reply,
        lookup: Option<Lookup>,
        wrong_code: Option<i64>,
    },
}

/// The audit of a lookup: which ticket, how the sender was verified, whether it was locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup {
    pub ticket: i64,
    pub by: VerifiedBy,
    pub locked: bool,
}

/// Whether the store must load the ticket: only for a query that will be answered.
pub fn needs_ticket(f: &Facts<'_>) -> bool {
    matches!(f.ask, Ask::Query { .. }) && !f.opted_out && f.answered_today < f.per_day
}

/// Decides the answer. A bare number from the ticket's own mobile while the ticket waits for an
/// integrazione is a reply to it, as before: [`Plan::NotQuery`].
pub fn decide(f: &Facts<'_>) -> Plan {
    let code = match f.ask {
        Ask::None => return Plan::NotQuery,
        Ask::Query { bare, code, .. } => {
            if *bare && code.is_none() && f.ticket.is_some_and(|t| t.sender_is_mobile && t.waiting)
            {
                return Plan::NotQuery;
            }
            code.is_some()
        }
        Ask::Help => false,
    };
    if f.opted_out {
        return Plan::OptedOut;
    }
    if f.answered_today >= f.per_day {
        return Plan::Limited;
    }
    if *f.ask == Ask::Help {
        return Plan::Answer {
            reply: Reply::Help,
            lookup: None,
            wrong_code: None,
        };
    }
    let Some(t) = f.ticket else {
        return Plan::Answer {
            reply: Reply::General,
            lookup: None,
            wrong_code: None,
        };
    };
    let locked = t.failures >= t.max_failures;
    let (reply, by, wrong_code) = if t.sender_is_mobile {
        (Reply::Status { ticket_id: t.id }, VerifiedBy::Sender, None)
    } else if code && !locked && t.code_matches {
        (Reply::Status { ticket_id: t.id }, VerifiedBy::Code, None)
    } else if code && !locked {
        (Reply::General, VerifiedBy::None, Some(t.id))
    } else {
        (Reply::General, VerifiedBy::None, None)
    };
    Plan::Answer {
        reply,
        lookup: Some(Lookup {
            ticket: t.id,
            by,
            locked,
        }),
        wrong_code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt() -> TicketFormat {
        TicketFormat::parse("{year}/{seq:6}").expect("format")
    }

    fn q(number: &str, code: Option<&str>, bare: bool) -> Ask {
        Ask::Query {
            number: number.to_owned(),
            code: code.map(str::to_owned),
            bare,
        }
    }

    #[test]
    fn texts_are_read_as_queries_help_or_nothing() {
        let n = "2026/000123";
        let table: Vec<(&str, Ask)> = vec![
            ("STATO 2026/000123", q(n, None, false)),
            ("stato 2026/000123", q(n, None, false)),
            ("  Stato   2026 / 123  ", q(n, None, false)),
            ("STATO: 2026/000123", q(n, None, false)),
            ("Stato:2026/000123", q(n, None, false)),
            ("INFO 2026/000123", q(n, None, false)),
            ("pratica 2026-123", q(n, None, false)),
            ("PRATICA 2026/000123.", q(n, None, false)),
            ("STATO 2026/000123 482913", q(n, Some("482913"), false)),
            ("stato 2026 123 482913", q(n, Some("482913"), false)),
            ("2026/000123", q(n, None, true)),
            (" 2026/123 ", q(n, None, true)),
            ("2026/000123 482913", q(n, Some("482913"), true)),
            ("AIUTO", Ask::Help),
            ("aiuto!", Ask::Help),
            ("Help", Ask::Help),
            ("help?", Ask::Help),
            ("STATO", Ask::Help),
            ("info", Ask::Help),
            // Ordinary replies: more than the number, another word first, two numbers.
            ("pratica 2026/000123: allego il documento", Ask::None),
            ("2026/000123 grazie", Ask::None),
            ("Ecco il documento", Ask::None),
            ("INFORMAZIONI 2026/000123", Ask::None),
            ("STATO 2026/000123 2026/000124", Ask::None),
            ("STATO 2026/000123 48291", Ask::None),
            ("STATO 2026/000123 4829133", Ask::None),
            ("", Ask::None),
            ("5", Ask::None),
            ("STOP", Ask::None),
            ("aiuto per la pratica", Ask::None),
        ];
        for (text, want) in table {
            assert_eq!(parse(text, &fmt()), want, "{text:?}");
        }
    }

    #[test]
    fn a_prefixed_format_is_read_with_or_without_its_word() {
        let f = TicketFormat::parse("URP-{year}-{seq:6}").expect("format");
        let n = "URP-2026-000123";
        assert_eq!(parse("stato urp 2026 123", &f), q(n, None, false));
        assert_eq!(parse("STATO 2026-000123", &f), q(n, None, false));
        assert_eq!(parse("URP-2026-000123", &f), q(n, None, true));
        assert_eq!(parse("STATO ABC 2026-000123", &f), Ask::None);
    }

    fn ticket() -> TicketFacts {
        TicketFacts {
            id: 7,
            sender_is_mobile: false,
            waiting: false,
            code_matches: false,
            failures: 0,
            max_failures: 5,
        }
    }

    fn facts(ask: &Ask, t: Option<TicketFacts>) -> Facts<'_> {
        Facts {
            ask,
            opted_out: false,
            answered_today: 0,
            per_day: 5,
            ticket: t,
        }
    }

    fn answer(reply: Reply, by: VerifiedBy, locked: bool, wrong: Option<i64>) -> Plan {
        Plan::Answer {
            reply,
            lookup: Some(Lookup {
                ticket: 7,
                by,
                locked,
            }),
            wrong_code: wrong,
        }
    }

    #[test]
    fn the_state_goes_only_to_the_mobile_or_with_the_code() {
        let plain = q("2026/000123", None, false);
        let coded = q("2026/000123", Some("123456"), false);
        let status = Reply::Status { ticket_id: 7 };
        let mobile = TicketFacts {
            sender_is_mobile: true,
            ..ticket()
        };
        assert_eq!(
            decide(&facts(&plain, Some(mobile))),
            answer(status, VerifiedBy::Sender, false, None)
        );
        assert_eq!(
            decide(&facts(&plain, Some(ticket()))),
            answer(Reply::General, VerifiedBy::None, false, None)
        );
        let right = TicketFacts {
            code_matches: true,
            ..ticket()
        };
        assert_eq!(
            decide(&facts(&coded, Some(right))),
            answer(status, VerifiedBy::Code, false, None)
        );
        assert_eq!(
            decide(&facts(&coded, Some(ticket()))),
            answer(Reply::General, VerifiedBy::None, false, Some(7))
        );
        // Locked: even the right code opens nothing, and no failure is counted.
        let locked = TicketFacts {
            code_matches: true,
            failures: 5,
            ..ticket()
        };
        assert_eq!(
            decide(&facts(&coded, Some(locked))),
            answer(Reply::General, VerifiedBy::None, true, None)
        );
        // No such ticket: the same general answer, nothing to audit.
        assert_eq!(
            decide(&facts(&coded, None)),
            Plan::Answer {
                reply: Reply::General,
                lookup: None,
                wrong_code: None
            }
        );
    }

    #[test]
    fn opted_out_and_over_the_allowance_get_nothing_and_replies_go_their_way() {
        let plain = q("2026/000123", None, false);
        let mut f = facts(&plain, Some(ticket()));
        f.opted_out = true;
        assert_eq!(decide(&f), Plan::OptedOut);
        assert!(!needs_ticket(&f));
        let mut f = facts(&Ask::Help, None);
        f.answered_today = 5;
        assert_eq!(decide(&f), Plan::Limited);
        assert_eq!(decide(&facts(&Ask::None, None)), Plan::NotQuery);
        // A bare number from the citizen whose ticket waits is their reply, as before.
        let bare = q("2026/000123", None, true);
        let waiting = TicketFacts {
            sender_is_mobile: true,
            waiting: true,
            ..ticket()
        };
        assert_eq!(decide(&facts(&bare, Some(waiting))), Plan::NotQuery);
        assert_eq!(
            decide(&facts(&plain, Some(waiting))),
            answer(
                Reply::Status { ticket_id: 7 },
                VerifiedBy::Sender,
                false,
                None
            )
        );
    }
}
