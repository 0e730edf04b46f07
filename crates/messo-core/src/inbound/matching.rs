//! Finding the ticket a reply is about, and the opt-out keywords: pure functions over text.
//!
//! Citizens quote ticket numbers the way they read them: `urp 2026 123`, `Urp-2026-000123`,
//! `2026/123`. The office's number format is configured as a pattern (`URP-{year}-{seq:6}`);
//! from it Messo builds a tolerant matcher (any case, spaces or other separators between the
//! parts, the letter prefix optional, zero padding restored) and writes each match back in the
//! canonical form the CRM uses.

use regex::Regex;

/// One piece of a ticket-number format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Letters and digits written as they are (`URP`): optional when matching.
    Word(String),
    /// A separator (`-`, `/`, `.`, `_`): any separator or none when matching.
    Sep(char),
    /// `{year}`: four digits.
    Year,
    /// `{seq}` or `{seq:N}`: a run of digits, zero-padded to N in the canonical form.
    Seq(Option<usize>),
}

/// Why a ticket-number format cannot be used; each message quotes the format.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FormatError {
    #[error("{0:?}: `{{seq` is not closed")]
    SeqNotClosed(String),
    #[error("{0:?}: `{{seq:N}}` needs N from 1 to 12")]
    SeqWidth(String),
    #[error("{0:?}: expected {{seq}} or {{seq:N}}")]
    SeqForm(String),
    #[error("{0:?}: {1:?} is not allowed; use letters, digits, - / . _, {{year}} and {{seq}}")]
    Character(String, char),
    #[error("{0:?} must hold {{seq}} exactly once")]
    SeqCount(String),
    /// The matcher built from the format was refused (a format too long, say).
    #[error("{0:?}: {1}")]
    Matcher(String, regex::Error),
}

/// A ticket-number format, such as `URP-{year}-{seq:6}` or `{year}/{seq:6}`.
#[derive(Debug, Clone)]
pub struct TicketFormat {
    text: String,
    pieces: Vec<Piece>,
    regex: Regex,
}

impl PartialEq for TicketFormat {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for TicketFormat {}

impl TicketFormat {
    /// Parses a format. It must hold `{seq}`; letters, digits, `{year}` and the separators
    /// `- / . _` are the other pieces.
    pub fn parse(text: &str) -> Result<TicketFormat, FormatError> {
        let text_of = || text.to_owned();
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("{year}") {
                pieces.push(Piece::Year);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("{seq") {
                let (inside, after) = after
                    .split_once('}')
                    .ok_or_else(|| FormatError::SeqNotClosed(text_of()))?;
                let width = match inside.strip_prefix(':') {
                    None if inside.is_empty() => None,
                    Some(n) => match n.parse::<usize>() {
                        Ok(w) if (1..=12).contains(&w) => Some(w),
                        _ => return Err(FormatError::SeqWidth(text_of())),
                    },
                    None => return Err(FormatError::SeqForm(text_of())),
                };
                pieces.push(Piece::Seq(width));
                rest = after;
            } else if c.is_ascii_alphanumeric() {
                let end = rest
                    .find(|x: char| !x.is_ascii_alphanumeric())
                    .unwrap_or(rest.len());
                pieces.push(Piece::Word(rest[..end].to_ascii_uppercase()));
                rest = &rest[end..];
            } else if matches!(c, '-' | '/' | '.' | '_') {
                pieces.push(Piece::Sep(c));
                rest = &rest[1..];
            } else {
                return Err(FormatError::Character(text_of(), c));
            }
        }
        if pieces.iter().filter(|p| matches!(p, Piece::Seq(_))).count() != 1 {
            return Err(FormatError::SeqCount(text_of()));
        }
        let mut re = String::from(r"(?i)(?:^|[^0-9A-Za-z])");
        for p in &pieces {
            match p {
                Piece::Word(w) => re.push_str(&format!(r"(?:{}[\s\-/._]*)?", regex::escape(w))),
                Piece::Sep(_) => re.push_str(r"[\s\-/._]*"),
                Piece::Year => re.push_str(r"((?:19|20)\d{2})"),
                Piece::Seq(w) => {
                    let max = w.unwrap_or(12);
                    re.push_str(&format!(r"(\d{{1,{max}}})"));
                }
            }
        }
        re.push_str(r"(?:$|[^0-9])");
        let regex = Regex::new(&re).map_err(|e| FormatError::Matcher(text_of(), e))?;
        Ok(TicketFormat {
            text: text.to_owned(),
            pieces,
            regex,
        })
    }

    /// The format as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A number in this format, for messages that explain how to quote one.
    pub fn example(&self) -> String {
        self.canonical("2026", "123")
    }

    fn canonical(&self, year: &str, seq: &str) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Word(w) => out.push_str(w),
                Piece::Sep(c) => out.push(*c),
                Piece::Year => out.push_str(year),
                Piece::Seq(Some(w)) => out.push_str(&format!("{seq:0>w$}")),
                Piece::Seq(None) => out.push_str(seq),
            }
        }
        out
    }

    /// Every ticket number quoted in `text`, in the canonical form, in order of appearance,
    /// without repeats. Candidates only: the store says which exist.
    pub fn find_all(&self, text: &str) -> Vec<String> {
        let has_year = self.pieces.contains(&Piece::Year);
        let mut out: Vec<String> = Vec::new();
        // Matches may share a boundary character, so scan from each match's own digits on.
        let mut at = 0;
        while at < text.len() {
            let Some(c) = self.regex.captures_at(text, at) else {
                break;
            };
            let (year, seq) = if has_year {
                (c.get(1).map_or("", |m| m.as_str()), c.get(2))
            } else {
                ("", c.get(1))
            };
            let Some(seq) = seq else { break };
            let trimmed = seq.as_str().trim_start_matches('0');
            let seq_text = if trimmed.is_empty() { "0" } else { trimmed };
            let n = self.canonical(year, seq_text);
            if !out.contains(&n) {
                out.push(n);
            }
            at = seq.end();
        }
        out
    }
}

/// What an SMS that is only a keyword asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    /// Stop sending SMS to this number.
    OptOut,
    /// Send SMS again.
    OptIn,
}

/// The Italian and English words that stop SMS (matched on the whole message, any case,
/// punctuation and spaces around ignored).
pub const OPT_OUT_DEFAULT: &[&str] = &[
    "STOP",
    "STOPALL",
    "ANNULLA",
    "CANCELLA",
    "BASTA",
    "REVOCA",
    "DISISCRIVI",
    "NO SMS",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
];

/// The words that turn SMS back on.
pub const OPT_IN_DEFAULT: &[&str] = &["START", "ATTIVA", "RIATTIVA", "ISCRIVI", "UNSTOP"];

/// The keyword a message is, if it is only a keyword.
pub fn keyword(text: &str, opt_out: &[String], opt_in: &[String]) -> Option<Keyword> {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                ' '
            }
        })
        .collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    if words.is_empty() || words.len() > 3 {
        return None;
    }
    let msg = words.join(" ");
    let is = |list: &[String]| list.iter().any(|k| k.eq_ignore_ascii_case(&msg));
    if is(opt_out) {
        Some(Keyword::OptOut)
    } else if is(opt_in) {
        Some(Keyword::OptIn)
    } else {
        None
    }
}

/// The ticket named in a plus-address (`urp+2026.000123@comune.it` names `2026.000123`) when
/// the address's base is `reply_address`.
pub fn plus_tag<'a>(address: &'a str, reply_address: &str) -> Option<&'a str> {
    let (local, domain) = address.rsplit_once('@')?;
    let (base_local, base_domain) = reply_address.rsplit_once('@')?;
    let (base, tag) = local.split_once('+')?;
    (base.eq_ignore_ascii_case(base_local) && domain.eq_ignore_ascii_case(base_domain))
        .then_some(tag)
        .filter(|t| !t.is_empty())
}

/// How a reply relates to the tickets it could be about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// The reply names this ticket (or the sender has exactly one waiting), and the sender is
    /// the citizen on file: it counts as their answer.
    Ticket { id: i64, by: MatchedBy },
    /// The reply names a ticket, but comes from an address that is not the citizen's: it is
    /// recorded as a note and the office decides.
    Stranger { id: i64 },
    /// No ticket can be told: kept as unmatched, the office is told.
    Unmatched,
}

/// How the ticket was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    Number,
    Sender,
}

impl MatchedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Number => "number",
            MatchedBy::Sender => "sender",
        }
    }
}

/// A ticket the reply could be about, as the store found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: i64,
    /// The citizen on file has the reply's sender as an address.
    pub from_citizen: bool,
    /// Waiting for the citizen's integrazione.
    pub waiting: bool,
}

/// Decides the match: the first quoted ticket that exists wins; without one, the sender's own
/// tickets decide only when exactly one of them waits for an integrazione.
pub fn decide(named: &[Candidate], senders: &[Candidate]) -> Match {
    if let Some(c) = named.first() {
        return if c.from_citizen {
            Match::Ticket {
                id: c.id,
                by: MatchedBy::Number,
            }
        } else {
            Match::Stranger { id: c.id }
        };
    }
    let waiting: Vec<&Candidate> = senders.iter().filter(|c| c.waiting).collect();
    match waiting.as_slice() {
        [one] => Match::Ticket {
            id: one.id,
            by: MatchedBy::Sender,
        },
        _ => Match::Unmatched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn formats_are_read_and_refused_with_reasons() {
        assert!(TicketFormat::parse("URP-{year}-{seq:6}").is_ok());
        assert!(TicketFormat::parse("{year}/{seq:6}").is_ok());
        let refused = |text: &str| TicketFormat::parse(text).expect_err(text);
        assert_eq!(
            refused("URP-{year}"),
            FormatError::SeqCount("URP-{year}".to_owned())
        );
        assert_eq!(
            refused("URP-{year}").to_string(),
            "\"URP-{year}\" must hold {seq} exactly once"
        );
        assert_eq!(
            refused("URP {seq}"),
            FormatError::Character("URP {seq}".to_owned(), ' ')
        );
        assert_eq!(
            refused("URP {seq}").to_string(),
            "\"URP {seq}\": ' ' is not allowed; use letters, digits, - / . _, {year} and {seq}"
        );
        assert_eq!(
            refused("{seq:0}").to_string(),
            "\"{seq:0}\": `{seq:N}` needs N from 1 to 12"
        );
        assert_eq!(
            refused("{seq:6").to_string(),
            "\"{seq:6\": `{seq` is not closed"
        );
        assert_eq!(
            refused("{seqx}").to_string(),
            "\"{seqx}\": expected {seq} or {seq:N}"
        );
    }

    #[test]
    fn numbers_are_found_however_citizens_write_them() {
        let f = TicketFormat::parse("URP-{year}-{seq:6}").unwrap();
        let cases = [
            (
                "Buongiorno, invio i documenti per la pratica URP-2026-000123",
                "URP-2026-000123",
            ),
            ("urp 2026 123 allego documento", "URP-2026-000123"),
            ("rif. Urp-2026-123.", "URP-2026-000123"),
            ("2026-000123", "URP-2026-000123"),
            ("pratica 2026/123 grazie", "URP-2026-000123"),
            ("URP2026000123", "URP-2026-000123"),
            ("(URP - 2026 - 000123)", "URP-2026-000123"),
        ];
        for (text, want) in cases {
            assert_eq!(f.find_all(text), vec![want.to_owned()], "{text}");
        }
        assert!(f.find_all("chiamo domani alle 10").is_empty());
        assert!(f.find_all("telefono 3471234567").is_empty());
        assert_eq!(
            f.find_all("URP-2026-1 e anche URP-2026-2, di nuovo URP-2026-000001"),
            vec!["URP-2026-000001".to_owned(), "URP-2026-000002".to_owned()]
        );
        assert_eq!(f.example(), "URP-2026-000123");
    }

    #[test]
    fn a_slash_format_keeps_its_slash() {
        let f = TicketFormat::parse("{year}/{seq:6}").unwrap();
        assert_eq!(
            f.find_all("pratica 2026 123"),
            vec!["2026/000123".to_owned()]
        );
        assert_eq!(f.find_all("2026/000124"), vec!["2026/000124".to_owned()]);
    }

    #[test]
    fn keywords_are_whole_messages_only() {
        let out = words(OPT_OUT_DEFAULT);
        let inn = words(OPT_IN_DEFAULT);
        assert_eq!(keyword("STOP", &out, &inn), Some(Keyword::OptOut));
        assert_eq!(keyword(" basta! ", &out, &inn), Some(Keyword::OptOut));
        assert_eq!(keyword("Annulla.", &out, &inn), Some(Keyword::OptOut));
        assert_eq!(keyword("no sms", &out, &inn), Some(Keyword::OptOut));
        assert_eq!(keyword("start", &out, &inn), Some(Keyword::OptIn));
        assert_eq!(keyword("non STOP la pratica, allego", &out, &inn), None);
        assert_eq!(keyword("", &out, &inn), None);
        assert_eq!(
            keyword("Cancella pure la mia richiesta precedente", &out, &inn),
            None
        );
    }

    #[test]
    fn plus_tags_name_the_ticket() {
        assert_eq!(
            plus_tag("URP+2026.000123@Comune.Example.it", "urp@comune.example.it"),
            Some("2026.000123")
        );
        assert_eq!(
            plus_tag("urp@comune.example.it", "urp@comune.example.it"),
            None
        );
        assert_eq!(
            plus_tag("altro+1@comune.example.it", "urp@comune.example.it"),
            None
        );
        assert_eq!(plus_tag("urp+1@altro.it", "urp@comune.example.it"), None);
    }

    #[test]
    fn the_match_follows_the_rules() {
        let c = |id, from_citizen, waiting| Candidate {
            id,
            from_citizen,
            waiting,
        };
        assert_eq!(
            decide(&[c(1, true, false)], &[c(2, true, true)]),
            Match::Ticket {
                id: 1,
                by: MatchedBy::Number
            }
        );
        assert_eq!(decide(&[c(1, false, true)], &[]), Match::Stranger { id: 1 });
        assert_eq!(
            decide(&[], &[c(2, true, true), c(3, true, false)]),
            Match::Ticket {
                id: 2,
                by: MatchedBy::Sender
            }
        );
        assert_eq!(
            decide(&[], &[c(2, true, true), c(3, true, true)]),
            Match::Unmatched
        );
        assert_eq!(decide(&[], &[c(3, true, false)]), Match::Unmatched);
        assert_eq!(decide(&[], &[]), Match::Unmatched);
    }
}
