//! Citizen satisfaction: the one answer per ticket to the closure notice's question (a score
//! from 1 to 5, an optional comment for the office), and the monthly summary per office that the
//! reports read.
//!
//! One answer per ticket: the table's key is the ticket, and a second answer is ignored (the
//! first one stands, the caller is told which one is kept). A comment is for the office only:
//! nothing here is read by the status page except whether an answer exists and its score.

use chrono::Datelike;
use sqlx::{AnyConnection, Row};

use super::Satisfaction;
use crate::time::Timestamp;

/// The longest comment kept, in characters (the table checks it too).
pub const MAX_COMMENT_CHARS: usize = 1000;

/// Why recording or reading answers failed.
#[derive(Debug, thiserror::Error)]
pub enum SatisfactionError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// The answer itself is not acceptable (a score outside 1–5, a comment too long).
    #[error("{0}")]
    Invalid(String),
}

impl SatisfactionError {
    /// Whether the error is about the answer sent (and would be the same on retry).
    pub fn is_client_error(&self) -> bool {
        matches!(self, SatisfactionError::Invalid(_))
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerChannel {
    /// A reply to the closure SMS.
    Sms,
    /// The buttons of the status page.
    Portal,
}

impl AnswerChannel {
    pub const fn as_str(self) -> &'static str {
        match self {
            AnswerChannel::Sms => "sms",
            AnswerChannel::Portal => "portal",
        }
    }

    fn parse(s: &str) -> Option<AnswerChannel> {
        match s {
            "sms" => Some(AnswerChannel::Sms),
            "portal" => Some(AnswerChannel::Portal),
            _ => None,
        }
    }
}

/// An answer to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAnswer {
    pub ticket_id: i64,
    pub score: u8,
    /// Free text for the office; blank is none.
    pub comment: Option<String>,
    pub channel: AnswerChannel,
    pub answered_at: Timestamp,
    /// The inbound record an SMS answer came from.
    pub inbound_id: Option<i64>,
}

/// A recorded answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub ticket_id: i64,
    pub score: u8,
    pub comment: Option<String>,
    pub channel: AnswerChannel,
    pub answered_at: Timestamp,
}

/// What recording an answer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// This answer is now the ticket's.
    New,
    /// The ticket had an answer already: it stands, unchanged, and this one was ignored.
    Already(Answer),
}

/// One office's answers in one month (Europe/Rome) of the answers' instants.
#[derive(Debug, Clone, PartialEq)]
pub struct SatisfactionRow {
    /// The office handling the ticket (`tickets.office`).
    pub office: String,
    /// `YYYY-MM`, the local month (Europe/Rome) in which the citizen answered.
    pub month: String,
    /// Answers counted.
    pub count: u64,
    /// The mean score, from 1.0 to 5.0.
    pub mean: f64,
    /// How many answers gave each score: `scores[0]` is the count of 1s, `scores[4]` of 5s.
    pub scores: [u64; 5],
}

/// A comment, for the office only (never shown on a public page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SatisfactionComment {
    pub office: String,
    /// `YYYY-MM`, as in [`SatisfactionRow::month`].
    pub month: String,
    /// The ticket's number.
    pub number: String,
    pub score: u8,
    pub comment: String,
    pub answered_at: Timestamp,
}

/// The answers given in a period: counts per office and month, and the comments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SatisfactionSummary {
    /// Ordered by office, then month.
    pub rows: Vec<SatisfactionRow>,
    /// Ordered by office, then instant, then ticket number.
    pub comments: Vec<SatisfactionComment>,
}

/// A checked answer: its score within 1–5 and its comment trimmed, blank made none, bounded.
fn checked(a: &NewAnswer) -> Result<Option<String>, SatisfactionError> {
    if !(1..=5).contains(&a.score) {
        return Err(SatisfactionError::Invalid(format!(
            "a score is from 1 to 5, not {}",
            a.score
        )));
    }
    let comment = a
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
        return Err(SatisfactionError::Invalid(format!(
            "a comment is at most {MAX_COMMENT_CHARS} characters"
        )));
    }
    Ok(comment.map(str::to_owned))
}

fn answer_from(r: &sqlx::any::AnyRow) -> Result<Answer, SatisfactionError> {
    let score: i64 = r.try_get("score")?;
    let channel: String = r.try_get("channel")?;
    Ok(Answer {
        ticket_id: r.try_get("ticket_id")?,
        score: u8::try_from(score)
            .ok()
            .filter(|s| (1..=5).contains(s))
            .ok_or_else(|| SatisfactionError::Corrupt(format!("score {score}")))?,
        comment: r.try_get("comment")?,
        channel: AnswerChannel::parse(&channel)
            .ok_or_else(|| SatisfactionError::Corrupt(format!("channel {channel:?}")))?,
        answered_at: Timestamp(r.try_get("answered_at")?),
    })
}

const ANSWER_COLUMNS: &str =
    "ticket_id, CAST(score AS BIGINT) AS score, comment, channel, answered_at";

/// Records `a` on `conn` (inside the caller's transaction) unless its ticket has an answer:
/// whether it was recorded.
pub(crate) async fn record_in(
    conn: &mut AnyConnection,
    a: &NewAnswer,
) -> Result<bool, SatisfactionError> {
    let comment = checked(a)?;
    let done = sqlx::query(
        "INSERT INTO satisfaction (ticket_id, score, comment, channel, answered_at, inbound_id) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (ticket_id) DO NOTHING",
    )
    .bind(a.ticket_id)
    .bind(i64::from(a.score))
    .bind(comment)
    .bind(a.channel.as_str())
    .bind(a.answered_at.0)
    .bind(a.inbound_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The answer of ticket `ticket_id`, read on `conn`.
pub(crate) async fn answer_in(
    conn: &mut AnyConnection,
    ticket_id: i64,
) -> Result<Option<Answer>, SatisfactionError> {
    let sql = format!("SELECT {ANSWER_COLUMNS} FROM satisfaction WHERE ticket_id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ticket_id)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(answer_from)
        .transpose()
}

/// `YYYY-MM` of `at` in Europe/Rome.
fn local_month(at: Timestamp) -> String {
    let local = at.to_chrono().with_timezone(&chrono_tz::Europe::Rome);
    format!("{:04}-{:02}", local.year(), local.month())
}

/// One answer as the summary reads it: (office, number, score, comment, answered_at).
type SummaryInput = (String, String, u8, Option<String>, Timestamp);

/// Counts answers per office and local month, and keeps the comments (pure).
fn summarise(answers: Vec<SummaryInput>) -> SatisfactionSummary {
    use std::collections::BTreeMap;
    let mut groups: BTreeMap<(String, String), [u64; 5]> = BTreeMap::new();
    let mut comments = Vec::new();
    for (office, number, score, comment, at) in answers {
        let month = local_month(at);
        let slot = usize::from(score.clamp(1, 5) - 1);
        groups.entry((office.clone(), month.clone())).or_default()[slot] += 1;
        if let Some(comment) = comment {
            comments.push(SatisfactionComment {
                office,
                month,
                number,
                score,
                comment,
                answered_at: at,
            });
        }
    }
    let rows = groups
        .into_iter()
        .map(|((office, month), scores)| {
            let count: u64 = scores.iter().sum();
            let total: u64 = scores.iter().zip(1u64..).map(|(n, s)| n * s).sum();
            SatisfactionRow {
                office,
                month,
                count,
                mean: if count == 0 {
                    0.0
                } else {
                    total as f64 / count as f64
                },
                scores,
            }
        })
        .collect();
    comments.sort_by(|a, b| {
        (&a.office, a.answered_at, &a.number).cmp(&(&b.office, b.answered_at, &b.number))
    });
    SatisfactionSummary { rows, comments }
}

impl Satisfaction<'_> {
    /// Records a citizen's answer, once per ticket: a second answer is ignored and the first
    /// one, which stands, is returned. A score outside 1–5 or a comment over
    /// [`MAX_COMMENT_CHARS`] is refused.
    pub async fn record_answer(&self, a: &NewAnswer) -> Result<Recorded, SatisfactionError> {
        let mut conn = self.store.pool.acquire().await?;
        if record_in(&mut conn, a).await? {
            return Ok(Recorded::New);
        }
        match answer_in(&mut conn, a.ticket_id).await? {
            Some(first) => Ok(Recorded::Already(first)),
            None => Err(SatisfactionError::Corrupt(format!(
                "the answer of ticket {} was neither recorded nor found",
                a.ticket_id
            ))),
        }
    }

    /// The answer of ticket `ticket_id`, if it has one.
    pub async fn answer(&self, ticket_id: i64) -> Result<Option<Answer>, SatisfactionError> {
        let sql = format!("SELECT {ANSWER_COLUMNS} FROM satisfaction WHERE ticket_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ticket_id)
            .fetch_optional(self.store.read_pool())
            .await?
            .as_ref()
            .map(answer_from)
            .transpose()
    }

    /// The answers given from `from` (included) to `to` (excluded): per office of the ticket
    /// and per local month (Europe/Rome) of the answer, the count, the mean score and how many
    /// gave each score; and every comment, for the office only.
    pub async fn satisfaction_summary(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<SatisfactionSummary, SatisfactionError> {
        let rows = sqlx::query(
            "SELECT t.office, t.number, CAST(s.score AS BIGINT) AS score, s.comment, \
             s.answered_at FROM satisfaction s JOIN tickets t ON t.id = s.ticket_id \
             WHERE s.answered_at >= $1 AND s.answered_at < $2",
        )
        .bind(from.0)
        .bind(to.0)
        .fetch_all(self.store.read_pool())
        .await?;
        let mut answers = Vec::with_capacity(rows.len());
        for r in &rows {
            let score: i64 = r.try_get("score")?;
            let score = u8::try_from(score)
                .ok()
                .filter(|s| (1..=5).contains(s))
                .ok_or_else(|| SatisfactionError::Corrupt(format!("score {score}")))?;
            answers.push((
                r.try_get("office")?,
                r.try_get("number")?,
                score,
                r.try_get("comment")?,
                Timestamp(r.try_get("answered_at")?),
            ));
        }
        Ok(summarise(answers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).expect("instant")
    }

    #[test]
    fn months_are_local_and_counts_add_up() {
        let s = summarise(vec![
            // 23:30 UTC on 31 March is 1 April in Rome.
            (
                "anagrafe".into(),
                "2026/1".into(),
                5,
                None,
                at("2026-03-31T23:30:00Z"),
            ),
            (
                "anagrafe".into(),
                "2026/2".into(),
                2,
                Some("lento".into()),
                at("2026-04-02T10:00:00+02:00"),
            ),
            (
                "anagrafe".into(),
                "2026/3".into(),
                4,
                None,
                at("2026-03-31T21:59:59Z"),
            ),
            (
                "tributi".into(),
                "2026/4".into(),
                1,
                Some("mai risposto".into()),
                at("2026-04-03T10:00:00+02:00"),
            ),
        ]);
        let brief: Vec<(&str, &str, u64, f64, [u64; 5])> = s
            .rows
            .iter()
            .map(|r| {
                (
                    r.office.as_str(),
                    r.month.as_str(),
                    r.count,
                    r.mean,
                    r.scores,
                )
            })
            .collect();
        assert_eq!(
            brief,
            [
                ("anagrafe", "2026-03", 1, 4.0, [0, 0, 0, 1, 0]),
                ("anagrafe", "2026-04", 2, 3.5, [0, 1, 0, 0, 1]),
                ("tributi", "2026-04", 1, 1.0, [1, 0, 0, 0, 0]),
            ]
        );
        let numbers: Vec<&str> = s.comments.iter().map(|c| c.number.as_str()).collect();
        assert_eq!(numbers, ["2026/2", "2026/4"]);
        assert_eq!(s.comments[0].month, "2026-04");
    }

    #[test]
    fn answers_are_checked_before_they_are_stored() {
        let mut a = NewAnswer {
            ticket_id: 1,
            score: 0,
            comment: None,
            channel: AnswerChannel::Portal,
            answered_at: Timestamp(0),
            inbound_id: None,
        };
        assert!(checked(&a).is_err_and(|e| e.is_client_error()));
        a.score = 6;
        assert!(checked(&a).is_err());
        a.score = 3;
        a.comment = Some("   ".into());
        assert_eq!(checked(&a).ok(), Some(None));
        a.comment = Some(" bene ".into());
        assert_eq!(checked(&a).ok(), Some(Some("bene".to_owned())));
        a.comment = Some("è".repeat(MAX_COMMENT_CHARS));
        assert!(checked(&a).is_ok());
        a.comment = Some("è".repeat(MAX_COMMENT_CHARS + 1));
        assert!(checked(&a).is_err());
    }
}
