//! Citizen satisfaction answered by SMS, decided purely: whether a reply is a score
//! ([`score_of_sms`]) and which closed ticket of the sender it answers ([`decide`]). The store
//! loads the sender's recently closed tickets, this module decides, the store records.
//!
//! What counts as a score is deliberately narrow, so that no reply meant for the office is
//! swallowed: the whole message, once trimmed, must be one digit from 1 to 5, optionally with a
//! closing `.` or `!`, or with the word `voto` / `vote` in front (`voto 4`, `Voto: 4`). Anything
//! else (`5 grazie`, `10`, `3 4`, a ticket number) is an ordinary reply and goes the usual way.

use crate::time::Timestamp;

/// Whether `text`, an SMS's whole body, is a score from 1 to 5.
pub fn score_of_sms(text: &str) -> Option<u8> {
    let t = text.trim().trim_end_matches(['.', '!']).trim();
    let lower = t.to_lowercase();
    let digits = ["voto", "vote"]
        .iter()
        .find_map(|w| lower.strip_prefix(w))
        .map(|rest| rest.trim_start().trim_start_matches(':').trim_start())
        .unwrap_or(&lower);
    let mut chars = digits.chars();
    match (chars.next(), chars.next()) {
        (Some(c @ '1'..='5'), None) => Some(c as u8 - b'0'),
        _ => None,
    }
}

/// A ticket of the sender closed within the answering window, as the store loads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub id: i64,
    pub number: String,
    pub closed_at: Timestamp,
    /// A score is already recorded for it.
    pub answered: bool,
}

/// What a score sent by SMS does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SurveyPlan {
    /// Record `score` as the answer of ticket `ticket_id` (`number`).
    Record {
        ticket_id: i64,
        number: String,
        score: u8,
    },
    /// The ticket it answers was answered already: nothing changes (the first answer stands).
    Repeat { ticket_id: i64 },
    /// Not a survey answer: the reply goes the usual way.
    NotAnswer,
}

/// The facts a score is decided on.
#[derive(Debug, Clone)]
pub struct SurveyFacts<'a> {
    pub score: u8,
    /// When the reply was received.
    pub at: Timestamp,
    /// How long after closure an answer is accepted, in seconds.
    pub window_s: i64,
    /// The sender's tickets closed recently (any order; those outside the window are ignored).
    pub closed: &'a [Closed],
    /// The sender has an open ticket waiting for an integrazione: a bare digit could be meant
    /// for it, so it is not taken as a score.
    pub waiting: bool,
}

/// Decides whether a score is an answer, and for which ticket: the sender's most recently
/// closed ticket within the window (the closure notice they are most likely replying to).
/// Ambiguity goes to the usual reply path: a sender with a ticket waiting for an integrazione,
/// or with no ticket closed within the window.
pub fn decide(f: &SurveyFacts<'_>) -> SurveyPlan {
    if f.waiting || !(1..=5).contains(&f.score) {
        return SurveyPlan::NotAnswer;
    }
    let latest = f
        .closed
        .iter()
        .filter(|c| c.closed_at.0 <= f.at.0 && f.at.0 - c.closed_at.0 <= f.window_s)
        .max_by_key(|c| (c.closed_at.0, c.id));
    match latest {
        None => SurveyPlan::NotAnswer,
        Some(c) if c.answered => SurveyPlan::Repeat { ticket_id: c.id },
        Some(c) => SurveyPlan::Record {
            ticket_id: c.id,
            number: c.number.clone(),
            score: f.score,
        },
    }
}

/// Whether ticket closed at `closed_at` may still be answered at `now`.
pub fn within_window(closed_at: Timestamp, now: Timestamp, window_s: i64) -> bool {
    closed_at.0 <= now.0 && now.0 - closed_at.0 <= window_s
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn only_an_unambiguous_digit_is_a_score() {
        for (text, want) in [
            ("5", Some(5)),
            ("  3 \n", Some(3)),
            ("1.", Some(1)),
            ("4!", Some(4)),
            ("voto 4", Some(4)),
            ("Voto: 2", Some(2)),
            ("VOTE 5", Some(5)),
            ("0", None),
            ("6", None),
            ("10", None),
            ("3 4", None),
            ("5 grazie", None),
            ("grazie", None),
            ("", None),
            ("2026/000004", None),
            ("voto", None),
            ("votone 4", None),
            ("٣", None),
            ("５", None),
        ] {
            assert_eq!(score_of_sms(text), want, "{text:?}");
        }
    }

    fn closed(id: i64, days_ago: i64, answered: bool) -> Closed {
        Closed {
            id,
            number: format!("2026/{id:06}"),
            closed_at: Timestamp(1_800_000_000 - days_ago * DAY),
            answered,
        }
    }

    fn run(closed: &[Closed], waiting: bool) -> SurveyPlan {
        decide(&SurveyFacts {
            score: 4,
            at: Timestamp(1_800_000_000),
            window_s: 30 * DAY,
            closed,
            waiting,
        })
    }

    #[test]
    fn the_latest_closure_within_the_window_gets_the_answer_once() {
        assert_eq!(
            run(&[closed(1, 10, false), closed(2, 3, false)], false),
            SurveyPlan::Record {
                ticket_id: 2,
                number: "2026/000002".into(),
                score: 4
            }
        );
        // The latest one was answered already: the repeat changes nothing, and does not fall
        // through to an older ticket.
        assert_eq!(
            run(&[closed(1, 10, false), closed(2, 3, true)], false),
            SurveyPlan::Repeat { ticket_id: 2 }
        );
        // Exactly at the window's end it is still accepted; a second later it is not.
        assert!(matches!(
            run(&[closed(1, 30, false)], false),
            SurveyPlan::Record { ticket_id: 1, .. }
        ));
        let mut late = closed(1, 30, false);
        late.closed_at.0 -= 1;
        assert_eq!(run(&[late], false), SurveyPlan::NotAnswer);
        assert_eq!(run(&[], false), SurveyPlan::NotAnswer);
    }

    #[test]
    fn a_sender_with_a_ticket_waiting_is_not_surveyed() {
        assert_eq!(run(&[closed(1, 1, false)], true), SurveyPlan::NotAnswer);
    }

    #[test]
    fn the_window_counts_from_closure() {
        assert!(within_window(Timestamp(100), Timestamp(100), 0));
        assert!(within_window(Timestamp(100), Timestamp(130), 30));
        assert!(!within_window(Timestamp(100), Timestamp(131), 30));
        assert!(!within_window(Timestamp(100), Timestamp(99), 30));
    }
}
