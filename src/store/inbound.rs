//! Inbound records: stored before the webhook is answered (several per commit), then acted on
//! by the daemon's pass — a reply matched to its ticket and recorded as an integrazione or a
//! note, an opt-out, a delivery receipt moving its message forward.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use sqlx::{AnyConnection, Row};
use tokio::sync::{Notify, mpsc, oneshot};

use super::outbox::insert_outbox;
use super::{Inbound, NewOutbox, Store};
use crate::domain::{Address, Channel, Kind, Lang, Recipient};
use crate::ticket::Source;
use crate::time::Timestamp;
use messo_core::delivery::fallback::{DeadRow, replacement};
use messo_core::inbound::dlr::{self, DlrState};
use messo_core::inbound::matching::{self, Candidate, Keyword};
use messo_core::inbound::survey::{self, SurveyPlan};
use messo_core::inbound::{Parsed, ReceiptFacts, Route, reply};

mod answer;
pub use answer::SmsAnswering;

/// Why storing or acting on an inbound record failed.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Ticket(#[from] super::TicketError),
    #[error(transparent)]
    Outbox(#[from] super::OutboxError),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Satisfaction(#[from] super::SatisfactionError),
}

/// A verified, parsed webhook (or polled e-mail) to store.
#[derive(Debug, Clone)]
pub struct NewInbound {
    /// The endpoint's name (`imap` for the polled mailbox).
    pub endpoint: String,
    pub parsed: Parsed,
    /// The payload as received, kept for audit until the retention period ends.
    pub raw: String,
    pub received_at: Timestamp,
}

/// What storing a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored for the first time, with this id.
    New(i64),
    /// Seen before (the same endpoint, route and provider id): nothing new was stored.
    Duplicate(i64),
}

pub use messo_core::inbound::reply::InboundPolicy;

/// How the daemon acts on replies, from the validated configuration.
pub fn inbound_policy(c: &crate::config::Config) -> InboundPolicy {
    InboundPolicy {
        ticket_format: c.inbound.ticket_format.clone(),
        reply_address: c.inbound.reply_address.clone(),
        opt_out_keywords: c.inbound.opt_out_keywords.clone(),
        opt_in_keywords: c.inbound.opt_in_keywords.clone(),
        hint_every_hours: c.inbound.hint_every_hours,
        fallback: c.delivery.fallback.clone(),
        office_email: c.notify.office_email.clone(),
        office_phone: c.notify.office_phone.clone(),
        mail_auth: c.inbound.mail_auth,
        survey_window_s: c.survey.window_s(),
    }
}

/// What one processing pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InboundReport {
    pub processed: u64,
    /// Replies that became an integrazione (the clock resumes).
    pub integrations: u64,
    pub notes: u64,
    pub unmatched: u64,
    pub opt_outs: u64,
    pub receipts: u64,
    /// Receipts whose final failure started the fallback chain.
    pub fallbacks: u64,
    /// Receipts for messages not (yet) known: kept and looked at again.
    pub deferred: u64,
    /// SMS replies recorded as a ticket's satisfaction score.
    pub survey_answers: u64,
    /// `STATO`/`AIUTO` SMS answered (the SMS answering).
    pub sms_answers: u64,
    /// `STATO`/`AIUTO` SMS over the sender's daily allowance: not answered.
    pub sms_answers_limited: u64,
}

/// Records acted on per transaction.
const ACT_GROUP: usize = 100;
/// Lanes acting at once on PostgreSQL (each a connection of the pool).
const ACT_LANES: usize = 4;

/// Errors that belong to one record (the ticket refuses the event, the record does not read
/// back), not to the database.
fn settable(e: &InboundError) -> bool {
    matches!(e, InboundError::Ticket(t) if t.is_client_error())
        || matches!(e, InboundError::Corrupt(_))
        || matches!(e, InboundError::Satisfaction(s) if s.is_client_error())
}

/// (quoted numbers, tickets they name, the sender's tickets), each candidate with its number.
type ReplyCandidates = (
    Vec<String>,
    Vec<(Candidate, String)>,
    Vec<(Candidate, String)>,
);

/// How long a receipt for an unknown message is kept trying (its send may not be recorded yet).
const ORPHAN_AFTER_S: i64 = 86_400;

impl InboundReport {
    fn add(&mut self, o: &InboundReport) {
        self.processed += o.processed;
        self.integrations += o.integrations;
        self.notes += o.notes;
        self.unmatched += o.unmatched;
        self.opt_outs += o.opt_outs;
        self.receipts += o.receipts;
        self.fallbacks += o.fallbacks;
        self.deferred += o.deferred;
        self.survey_answers += o.survey_answers;
        self.sms_answers += o.sms_answers;
        self.sms_answers_limited += o.sms_answers_limited;
    }
}

impl Inbound<'_> {
    /// Stores a batch: multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING` statements (see
    /// `inbound_chunks`), in a transaction only when there are several. Each record is new or a
    /// duplicate of one stored before (also within the batch: the first copy is new, the others
    /// duplicates).
    pub async fn accept_inbound(
        &self,
        batch: &[NewInbound],
    ) -> Result<Vec<Accepted>, InboundError> {
        let chunks = self.inbound_chunks(batch);
        let mut inserted: HashMap<(String, String, String), i64> = HashMap::new();
        if let [only] = chunks.as_slice() {
            let rows = self
                .insert_inbound(&mut *self.store.pool.acquire().await?, only)
                .await?;
            inserted.extend(rows);
        } else {
            let mut tx = self.store.pool.begin().await?;
            for chunk in &chunks {
                let rows = self.insert_inbound(&mut tx, chunk).await?;
                inserted.extend(rows);
            }
            tx.commit().await?;
        }
        let key = |n: &NewInbound| {
            (
                n.endpoint.clone(),
                n.parsed.route.as_str().to_owned(),
                n.parsed.external_id.clone(),
            )
        };
        // Records stored before this batch: their ids, in one query.
        let missing: Vec<&NewInbound> = batch
            .iter()
            .filter(|n| !inserted.contains_key(&key(n)))
            .collect();
        let mut earlier: HashMap<(String, String, String), i64> = HashMap::new();
        for part in missing.chunks(500) {
            let list = self.store.placeholders(1, part.len()).join(", ");
            let sql = format!(
                "SELECT id, endpoint, route, external_id FROM inbound_messages \
                 WHERE external_id IN ({list})"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for n in part {
                q = q.bind(n.parsed.external_id.clone());
            }
            for r in q.fetch_all(&self.store.pool).await? {
                earlier.insert((r.try_get(1)?, r.try_get(2)?, r.try_get(3)?), r.try_get(0)?);
            }
        }
        let mut out = Vec::with_capacity(batch.len());
        for n in batch {
            let k = key(n);
            out.push(match inserted.remove(&k) {
                // The first copy in the batch is the new one; later copies find it below.
                Some(id) => {
                    earlier.insert(k, id);
                    Accepted::New(id)
                }
                None => match earlier.get(&k) {
                    Some(id) => Accepted::Duplicate(*id),
                    None => {
                        return Err(InboundError::Corrupt(format!(
                            "inbound record {:?} neither stored nor found",
                            n.parsed.external_id
                        )));
                    }
                },
            });
        }
        Ok(out)
    }

    /// How a batch is cut into statements. SQLite: up to 128 rows each. PostgreSQL: also at most
    /// about 12 KB each, because sqlx does not set TCP_NODELAY: a message larger than the
    /// socket's first send buffer goes out in two writes, the second waits for an ACK the server
    /// delays, and every such statement stalls about 40 ms (measured: 663 webhooks/s over TCP
    /// against 6,200/s over the Unix socket, before this cut).
    fn inbound_chunks<'b>(&self, batch: &'b [NewInbound]) -> Vec<&'b [NewInbound]> {
        const MAX_ROWS: usize = 128;
        const MAX_BYTES: usize = 12_000;
        let mut out = Vec::new();
        let mut start = 0;
        let mut bytes = 0;
        for (i, n) in batch.iter().enumerate() {
            let size = n.raw.len()
                + n.parsed.text.as_deref().map_or(0, str::len) * 2
                + n.parsed.subject.as_deref().map_or(0, str::len) * 2
                + n.parsed.external_id.len() * 2
                + 300;
            let full = i > start
                && (i - start >= MAX_ROWS
                    || (self.store.backend == super::Backend::Postgres
                        && bytes + size > MAX_BYTES));
            if full {
                out.push(&batch[start..i]);
                start = i;
                bytes = 0;
            }
            bytes += size;
        }
        if start < batch.len() {
            out.push(&batch[start..]);
        }
        out
    }

    /// One multi-row INSERT of at most 128 records; the (endpoint, route, external id)
    /// and id of each row it stored.
    async fn insert_inbound(
        &self,
        conn: &mut AnyConnection,
        chunk: &[NewInbound],
    ) -> Result<Vec<((String, String, String), i64)>, InboundError> {
        let Some(last) = chunk.last() else {
            return Ok(Vec::new());
        };
        // SQLite: padded to 1, 8, 32 or 128 rows, the last record repeated (a repeat conflicts
        // and does nothing), so four statement texts serve every batch. PostgreSQL: exactly the
        // chunk (its chunks are cut by size and stay small).
        let size = match self.store.backend {
            super::Backend::Sqlite => [1, 8, 32, 128]
                .into_iter()
                .find(|s| *s >= chunk.len())
                .unwrap_or(128),
            super::Backend::Postgres => chunk.len(),
        };
        let mut rows = Vec::with_capacity(size);
        for i in 0..size {
            let p = self.store.placeholders(i * 7 + 1, 7);
            rows.push(format!(
                "({}, {}, {}, {}, {}, {}, {}, 'pending', {})",
                p[0],
                p[1],
                p[2],
                p[3],
                p[4],
                p[5],
                p[6],
                // next_try_at = received_at: bound again on SQLite, whose `?` are positional.
                match self.store.backend {
                    super::Backend::Sqlite => "?".to_owned(),
                    super::Backend::Postgres => p[3].clone(),
                }
            ));
        }
        let sql = format!(
            "INSERT INTO inbound_messages (endpoint, route, external_id, received_at, sender, \
             parsed, raw, status, next_try_at) VALUES {} \
             ON CONFLICT (endpoint, route, external_id) DO NOTHING \
             RETURNING id, endpoint, route, external_id",
            rows.join(", ")
        );
        let texts: Vec<String> = chunk
            .iter()
            .map(|n| serde_json::to_string(&n.parsed).unwrap_or_else(|_| "{}".to_owned()))
            .collect();
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for i in 0..size {
            let n = chunk.get(i).unwrap_or(last);
            let parsed = texts.get(i).or(texts.last()).cloned().unwrap_or_default();
            q = q
                .bind(n.endpoint.clone())
                .bind(n.parsed.route.as_str())
                .bind(n.parsed.external_id.clone())
                .bind(n.received_at.0)
                .bind(n.parsed.sender.clone())
                .bind(parsed)
                .bind(n.raw.clone());
            if self.store.backend == super::Backend::Sqlite {
                q = q.bind(n.received_at.0);
            }
        }
        q.fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| Ok(((r.try_get(1)?, r.try_get(2)?, r.try_get(3)?), r.try_get(0)?)))
            .collect()
    }

    /// Records stored and their state, for tests and the operator: (id, route, status,
    /// outcome, ticket id).
    pub async fn inbound_rows(&self) -> Result<Vec<InboundRow>, InboundError> {
        let rows = sqlx::query(
            "SELECT id, endpoint, route, status, outcome, detail, ticket_id, sender, raw \
             FROM inbound_messages ORDER BY id",
        )
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(InboundRow {
                    id: r.try_get("id")?,
                    endpoint: r.try_get("endpoint")?,
                    route: r.try_get("route")?,
                    status: r.try_get("status")?,
                    outcome: r.try_get("outcome")?,
                    detail: r.try_get("detail")?,
                    ticket_id: r.try_get("ticket_id")?,
                    sender: r.try_get("sender")?,
                    has_raw: r.try_get::<Option<String>, _>("raw")?.is_some(),
                })
            })
            .collect()
    }

    /// Whether each number asked for no more SMS.
    pub async fn opted_out(&self, numbers: &[&str]) -> Result<Vec<String>, InboundError> {
        let mut out = Vec::new();
        for chunk in numbers.chunks(200) {
            let list = self.store.placeholders(1, chunk.len()).join(", ");
            let sql = format!("SELECT number FROM sms_opt_out WHERE number IN ({list})");
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
            for n in chunk {
                q = q.bind(*n);
            }
            out.extend(q.fetch_all(&self.store.pool).await?);
        }
        Ok(out)
    }

    /// A message's receipt state and the states of its parts.
    pub async fn dlr_state(
        &self,
        outbox_id: i64,
    ) -> Result<(Option<String>, Vec<(i64, String)>), InboundError> {
        let state: Option<String> =
            sqlx::query_scalar("SELECT dlr_state FROM outbox WHERE id = $1")
                .bind(outbox_id)
                .fetch_optional(&self.store.pool)
                .await?
                .flatten();
        let parts =
            sqlx::query("SELECT part, state FROM dlr_parts WHERE outbox_id = $1 ORDER BY part")
                .bind(outbox_id)
                .fetch_all(&self.store.pool)
                .await?
                .iter()
                .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?)))
                .collect::<Result<Vec<_>, InboundError>>()?;
        Ok((state, parts))
    }

    /// Erases raw payloads received before `before` (the parsed record stays).
    pub async fn inbound_housekeeping(&self, before: Timestamp) -> Result<u64, InboundError> {
        Ok(sqlx::query(
            "UPDATE inbound_messages SET raw = NULL WHERE received_at < $1 AND raw IS NOT NULL",
        )
        .bind(before.0)
        .execute(&self.store.pool)
        .await?
        .rows_affected())
    }

    /// Acts on at most `limit` stored records whose turn has come, [`ACT_GROUP`] per
    /// transaction (one commit for many records). When a record cannot be acted on, its group is
    /// rolled back and done again one record per transaction, so that record alone is set aside
    /// with its reason.
    pub async fn process_inbound(
        &self,
        policy: &InboundPolicy,
        now: Timestamp,
        limit: i64,
    ) -> Result<InboundReport, InboundError> {
        self.process_inbound_answering(policy, None, now, limit)
            .await
    }

    /// [`Inbound::process_inbound`], answering `STATO`/`AIUTO` SMS when `answering` is given
    /// (`voice.sms_answers.enabled`); without it they go the reply path like any text.
    pub async fn process_inbound_answering(
        &self,
        policy: &InboundPolicy,
        answering: Option<&SmsAnswering>,
        now: Timestamp,
        limit: i64,
    ) -> Result<InboundReport, InboundError> {
        let rows = sqlx::query(
            "SELECT id, sender FROM inbound_messages WHERE status = 'pending' AND next_try_at <= $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(now.0)
        .bind(limit)
        .fetch_all(&self.store.pool)
        .await?;
        // PostgreSQL: several lanes at once, each on its own connection. A sender's records stay
        // in one lane, in order (a STOP and then a START must not swap), and every receipt is in
        // lane 0 (the parts of a message must see each other). SQLite has one connection: one lane.
        // A small pass (the daemon's pace while webhooks pour in) keeps to one lane, leaving the
        // CPU to the webhooks.
        let lanes = match self.store.backend {
            super::Backend::Postgres if rows.len() > ACT_GROUP => ACT_LANES,
            _ => 1,
        };
        let mut split: Vec<Vec<i64>> = vec![Vec::new(); lanes];
        for r in &rows {
            let id: i64 = r.try_get(0)?;
            let lane = match r.try_get::<Option<String>, _>(1)? {
                Some(sender) if lanes > 1 => {
                    use std::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    sender.hash(&mut h);
                    (h.finish() % lanes as u64) as usize
                }
                _ => 0,
            };
            split[lane].push(id);
        }
        let results = futures_util::future::join_all(
            split
                .iter()
                .filter(|ids| !ids.is_empty())
                .map(|ids| self.process_lane(ids, policy, answering, now)),
        )
        .await;
        let mut report = InboundReport::default();
        for r in results {
            report.add(&r?);
        }
        Ok(report)
    }

    /// One lane: its records in id order, [`ACT_GROUP`] per transaction.
    async fn process_lane(
        &self,
        ids: &[i64],
        policy: &InboundPolicy,
        answering: Option<&SmsAnswering>,
        now: Timestamp,
    ) -> Result<InboundReport, InboundError> {
        let mut report = InboundReport::default();
        for group in ids.chunks(ACT_GROUP) {
            let mut tx = self.store.pool.begin().await?;
            let mut r = InboundReport::default();
            let failed = self
                .act_group(&mut tx, group, policy, answering, now, &mut r)
                .await
                .err();
            match failed {
                None => {
                    tx.commit().await?;
                    report.add(&r);
                }
                Some(e) if settable(&e) => {
                    drop(tx);
                    for &id in group {
                        let mut tx = self.store.pool.begin().await?;
                        let mut r = InboundReport::default();
                        match self
                            .act_group(&mut tx, &[id], policy, answering, now, &mut r)
                            .await
                        {
                            Ok(()) => {
                                tx.commit().await?;
                                report.add(&r);
                            }
                            Err(e) if settable(&e) => {
                                drop(tx);
                                tracing::warn!(inbound = id, error = %e, "inbound record set aside");
                                let mut tx = self.store.pool.begin().await?;
                                set_done(
                                    &mut tx,
                                    id,
                                    Done {
                                        status: "failed",
                                        outcome: "failed",
                                        detail: e.to_string().chars().take(500).collect(),
                                        ticket_id: None,
                                    },
                                    now,
                                )
                                .await?;
                                tx.commit().await?;
                                report.processed += 1;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                Some(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// Claims a group of records in one statement (a second daemon's same UPDATE waits for this
    /// transaction and then finds them no longer pending), acts on each in id order, and records
    /// what was done in one statement: the statements per record are only those of the acting.
    async fn act_group(
        &self,
        conn: &mut AnyConnection,
        ids: &[i64],
        policy: &InboundPolicy,
        answering: Option<&SmsAnswering>,
        now: Timestamp,
        report: &mut InboundReport,
    ) -> Result<(), InboundError> {
        let list = self.store.placeholders(1, ids.len()).join(", ");
        let sql = format!(
            "UPDATE inbound_messages SET tries = tries + 1 WHERE id IN ({list}) \
             AND status = 'pending' RETURNING id, endpoint, parsed, received_at, tries"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            q = q.bind(*id);
        }
        let mut claimed = Vec::with_capacity(ids.len());
        for row in q.fetch_all(&mut *conn).await? {
            claimed.push((
                row.try_get::<i64, _>("id")?,
                row.try_get::<String, _>("endpoint")?,
                row.try_get::<String, _>("parsed")?,
                Timestamp(row.try_get("received_at")?),
                row.try_get::<i64, _>("tries")?,
            ));
        }
        claimed.sort_by_key(|c| c.0);
        let mut dones = Vec::with_capacity(claimed.len());
        for (id, endpoint, parsed_text, received_at, tries) in claimed {
            let done = self
                .act_stored(
                    conn,
                    id,
                    &endpoint,
                    &parsed_text,
                    received_at,
                    tries,
                    policy,
                    answering,
                    now,
                    report,
                )
                .await?;
            dones.push((id, done));
            report.processed += 1;
        }
        // Small statements on PostgreSQL (see `inbound_chunks`: no statement over ~12 KB).
        let per = match self.store.backend {
            super::Backend::Sqlite => 100,
            super::Backend::Postgres => 40,
        };
        for chunk in dones.chunks(per) {
            let n = chunk.len() * 5;
            let rows = (0..chunk.len())
                .map(|i| format!("({})", self.store.placeholders(5 * i + 1, 5).join(", ")))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "WITH v (id, status, outcome, detail, tid) AS (VALUES {rows}) \
                 UPDATE inbound_messages SET status = v.status, outcome = v.outcome, \
                 detail = v.detail, ticket_id = v.tid, processed_at = {} \
                 FROM v WHERE inbound_messages.id = v.id",
                self.store.placeholders(n + 1, 1).join("")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, d) in chunk {
                q = q
                    .bind(*id)
                    .bind(d.status)
                    .bind(d.outcome)
                    .bind(d.detail.clone())
                    .bind(d.ticket_id);
            }
            q.bind(now.0).execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Acts on one claimed record as stored: a receipt or a reply.
    #[allow(clippy::too_many_arguments)]
    async fn act_stored(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        endpoint: &str,
        parsed_text: &str,
        received_at: Timestamp,
        tries: i64,
        policy: &InboundPolicy,
        answering: Option<&SmsAnswering>,
        now: Timestamp,
        report: &mut InboundReport,
    ) -> Result<Done, InboundError> {
        let parsed: Parsed = serde_json::from_str(parsed_text)
            .map_err(|e| InboundError::Corrupt(format!("inbound {id}: {e}")))?;
        if parsed.route == Route::Dlr {
            self.act_receipt(
                conn,
                id,
                endpoint,
                &parsed,
                received_at,
                tries,
                policy,
                now,
                report,
            )
            .await
        } else {
            if let Some(a) = answering
                && let Some(done) = self
                    .act_sms_answer(conn, id, &parsed, a, received_at, now, report)
                    .await?
            {
                return Ok(done);
            }
            self.act_reply(conn, id, &parsed, received_at, policy, now, report)
                .await
        }
    }

    #[allow(clippy::too_many_arguments)]
    /// A citizen's reply: an SMS keyword is acted on at once; anything else is decided by
    /// the core (`inbound::reply::plan`) on the facts loaded here, then applied in order.
    async fn act_reply(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        p: &Parsed,
        received_at: Timestamp,
        policy: &InboundPolicy,
        now: Timestamp,
        report: &mut InboundReport,
    ) -> Result<Done, InboundError> {
        let sender = p.sender.clone().unwrap_or_default();
        let text = p.text.clone().unwrap_or_default();
        // Opt-out and opt-in keywords (SMS only).
        if !p.automatic
            && p.route == Route::Sms
            && let Some(k) =
                matching::keyword(&text, &policy.opt_out_keywords, &policy.opt_in_keywords)
        {
            report.opt_outs += u64::from(k == Keyword::OptOut);
            return self
                .act_keyword(conn, id, &sender, &text, k, policy, now)
                .await;
        }
        // A bare score from 1 to 5 answers the satisfaction question of a recent closure.
        if let Some(window_s) = policy.survey_window_s
            && !p.automatic
            && p.route == Route::Sms
            && !sender.is_empty()
            && let Some(score) = survey::score_of_sms(&text)
            && let Some(done) = self
                .act_survey(conn, id, &sender, score, window_s, received_at, report)
                .await?
        {
            return Ok(done);
        }
        let (quoted, named, senders) = self.reply_candidates(conn, p, &sender, policy).await?;
        let plan = reply::plan(
            &reply::Facts {
                parsed: p,
                inbound_id: id,
                received_at,
                now,
                quoted: quoted.len(),
                named: &named,
                senders: &senders,
            },
            policy,
        );
        let mut verdict = plan.verdict;
        for action in plan.actions {
            self.apply_reply(conn, id, p, action, &mut verdict, policy, now)
                .await?;
        }
        match verdict.outcome {
            "integration" => report.integrations += 1,
            "note" => report.notes += 1,
            "unmatched" => report.unmatched += 1,
            _ => {}
        }
        Ok(Done {
            status: verdict.status,
            outcome: verdict.outcome,
            detail: verdict.detail,
            ticket_id: verdict.ticket_id,
        })
    }

    /// A score sent by SMS: decided by the core (`inbound::survey::decide`) on the sender's
    /// recently closed tickets, then recorded once. `None` when it is not a survey answer and
    /// the reply goes the usual way.
    #[allow(clippy::too_many_arguments)]
    async fn act_survey(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        sender: &str,
        score: u8,
        window_s: i64,
        received_at: Timestamp,
        report: &mut InboundReport,
    ) -> Result<Option<Done>, InboundError> {
        let rows = sqlx::query(
            "SELECT t.id, t.number, t.closed_at, s.ticket_id AS answered FROM tickets t \
             LEFT JOIN satisfaction s ON s.ticket_id = t.id \
             WHERE t.citizen_mobile = $1 AND t.closed_at IS NOT NULL AND t.closed_at >= $2 \
             ORDER BY t.closed_at DESC, t.id DESC LIMIT 20",
        )
        .bind(sender)
        .bind(received_at.0 - window_s)
        .fetch_all(&mut *conn)
        .await?;
        let closed = rows
            .iter()
            .map(|r| {
                Ok(survey::Closed {
                    id: r.try_get("id")?,
                    number: r.try_get("number")?,
                    closed_at: Timestamp(r.try_get("closed_at")?),
                    answered: r.try_get::<Option<i64>, _>("answered")?.is_some(),
                })
            })
            .collect::<Result<Vec<_>, InboundError>>()?;
        if closed.is_empty() {
            return Ok(None);
        }
        let waiting = self
            .sender_candidates(conn, sender)
            .await?
            .iter()
            .any(|(c, _)| c.waiting);
        let plan = survey::decide(&survey::SurveyFacts {
            score,
            at: received_at,
            window_s,
            closed: &closed,
            waiting,
        });
        let repeat = |ticket_id| Done {
            status: "done",
            outcome: "survey_repeat",
            detail: "the ticket's satisfaction score was given already: the first one stands"
                .to_owned(),
            ticket_id: Some(ticket_id),
        };
        Ok(match plan {
            SurveyPlan::NotAnswer => None,
            SurveyPlan::Repeat { ticket_id } => Some(repeat(ticket_id)),
            SurveyPlan::Record {
                ticket_id,
                number,
                score,
            } => {
                let answer = super::NewAnswer {
                    ticket_id,
                    score,
                    comment: None,
                    channel: super::AnswerChannel::Sms,
                    answered_at: received_at,
                    inbound_id: Some(id),
                };
                if super::satisfaction::record_in(conn, &answer).await? {
                    report.survey_answers += 1;
                    Some(Done {
                        status: "done",
                        outcome: "survey",
                        detail: format!("satisfaction score {score} recorded for ticket {number}"),
                        ticket_id: Some(ticket_id),
                    })
                } else {
                    Some(repeat(ticket_id))
                }
            }
        })
    }

    /// The facts a reply is matched on: the ticket numbers it quotes, the tickets they name
    /// (of this sender) and the sender's open tickets. An automatic reply is matched on none.
    async fn reply_candidates(
        &self,
        conn: &mut AnyConnection,
        p: &Parsed,
        sender: &str,
        policy: &InboundPolicy,
    ) -> Result<ReplyCandidates, InboundError> {
        if p.automatic {
            return Ok((Vec::new(), Vec::new(), Vec::new()));
        }
        let quoted = reply::quoted_numbers(p, policy);
        let named = self.named_candidates(conn, &quoted, sender).await?;
        let senders = if sender.is_empty() {
            Vec::new()
        } else {
            self.sender_candidates(conn, sender).await?
        };
        Ok((quoted, named, senders))
    }

    /// Applies one action of a reply's plan; a reply the ticket refuses as an integrazione
    /// (it stopped waiting in between) is kept as a note when the plan says so.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn apply_reply(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        p: &Parsed,
        action: reply::Action,
        verdict: &mut reply::Verdict,
        policy: &InboundPolicy,
        now: Timestamp,
    ) -> Result<(), InboundError> {
        match action {
            reply::Action::Record {
                number,
                event,
                if_refused,
            } => {
                let key = format!("inbound:{id}");
                let appended = self
                    .store
                    .tickets()
                    .append_in(conn, &number, &event, Some(&key), Source::Webhook, now)
                    .await;
                match (appended, if_refused) {
                    (Ok(_), _) => {}
                    // The ticket stopped waiting in between: the reply is kept as a note.
                    (Err(super::TicketError::Conflict(_)), Some(note)) => {
                        self.store
                            .tickets()
                            .append_in(conn, &number, &note, Some(&key), Source::Webhook, now)
                            .await?;
                        verdict.outcome = "note";
                    }
                    (Err(e), _) => return Err(e.into()),
                }
            }
            reply::Action::OfficeAlert {
                kind,
                ticket_id,
                key,
                number,
            } => {
                self.office_alert(
                    conn,
                    kind,
                    ticket_id,
                    &key,
                    p,
                    number.as_deref(),
                    policy,
                    now,
                )
                .await?;
            }
            reply::Action::Owe(row) => {
                insert_outbox_conn(conn, &row, now).await?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn act_keyword(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        sender: &str,
        text: &str,
        k: Keyword,
        policy: &InboundPolicy,
        now: Timestamp,
    ) -> Result<Done, InboundError> {
        let (changed, kind) = match k {
            Keyword::OptOut => (
                sqlx::query(
                    "INSERT INTO sms_opt_out (number, keyword, opted_out_at, inbound_id) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (number) DO NOTHING",
                )
                .bind(sender)
                .bind(
                    text.trim()
                        .to_uppercase()
                        .chars()
                        .take(40)
                        .collect::<String>(),
                )
                .bind(now.0)
                .bind(id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
                    == 1,
                Kind::RevocaSms,
            ),
            Keyword::OptIn => (
                sqlx::query("DELETE FROM sms_opt_out WHERE number = $1")
                    .bind(sender)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected()
                    == 1,
                Kind::RiattivazioneSms,
            ),
        };
        // Said once: a second STOP finds the number already out and owes nothing.
        if changed
            && sender.starts_with('+')
            && let Ok(address) = Address::parse(Channel::Sms, sender)
        {
            insert_outbox_conn(
                conn,
                &NewOutbox {
                    ticket_id: 0,
                    kind,
                    dedupe_key: format!("{sender}:{id}"),
                    recipient: Recipient::Citizen,
                    channel: Channel::Sms,
                    address,
                    language: Lang::It,
                    payload: json!({"number": "", "office_phone": policy.office_phone}),
                    not_before: now,
                },
                now,
            )
            .await?;
        }
        let outcome = match k {
            Keyword::OptOut => "opt_out",
            Keyword::OptIn => "opt_in",
        };
        Ok(Done {
            status: "done",
            outcome,
            detail: if changed {
                format!("{outcome} recorded")
            } else {
                format!("{outcome}: nothing to change")
            },
            ticket_id: None,
        })
    }

    /// Tickets named by `numbers`, in that order, with whether `sender` is their citizen.
    async fn named_candidates(
        &self,
        conn: &mut AnyConnection,
        numbers: &[String],
        sender: &str,
    ) -> Result<Vec<(Candidate, String)>, InboundError> {
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        let list = self.store.placeholders(1, numbers.len()).join(", ");
        let sql = format!(
            "SELECT id, number, citizen_mobile, citizen_email, waiting_since, closed_at \
             FROM tickets WHERE number IN ({list})"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for n in numbers {
            q = q.bind(n);
        }
        let rows = q.fetch_all(&mut *conn).await?;
        let mut found: HashMap<String, (Candidate, String)> = HashMap::new();
        for r in &rows {
            let number: String = r.try_get("number")?;
            let mobile: Option<String> = r.try_get("citizen_mobile")?;
            let email: Option<String> = r.try_get("citizen_email")?;
            let from_citizen = !sender.is_empty()
                && (mobile.as_deref() == Some(sender) || email.as_deref() == Some(sender));
            found.insert(
                number.clone(),
                (
                    Candidate {
                        id: r.try_get("id")?,
                        from_citizen,
                        waiting: r.try_get::<Option<i64>, _>("waiting_since")?.is_some()
                            && r.try_get::<Option<i64>, _>("closed_at")?.is_none(),
                    },
                    number,
                ),
            );
        }
        Ok(numbers.iter().filter_map(|n| found.remove(n)).collect())
    }

    /// The sender's open tickets.
    async fn sender_candidates(
        &self,
        conn: &mut AnyConnection,
        sender: &str,
    ) -> Result<Vec<(Candidate, String)>, InboundError> {
        let column = if sender.contains('@') {
            "citizen_email"
        } else {
            "citizen_mobile"
        };
        let sql = format!(
            "SELECT id, number, waiting_since FROM tickets WHERE {column} = $1 \
             AND closed_at IS NULL ORDER BY id LIMIT 50"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(sender)
            .fetch_all(&mut *conn)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    Candidate {
                        id: r.try_get("id")?,
                        from_citizen: true,
                        waiting: r.try_get::<Option<i64>, _>("waiting_since")?.is_some(),
                    },
                    r.try_get("number")?,
                ))
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    async fn office_alert(
        &self,
        conn: &mut AnyConnection,
        kind: Kind,
        ticket_id: i64,
        key: &str,
        p: &Parsed,
        number: Option<&str>,
        policy: &InboundPolicy,
        now: Timestamp,
    ) -> Result<(), InboundError> {
        insert_outbox_conn(
            conn,
            &NewOutbox {
                ticket_id,
                kind,
                dedupe_key: key.to_owned(),
                recipient: Recipient::Office,
                channel: Channel::Email,
                address: Address::Email(policy.office_email.clone()),
                language: Lang::It,
                payload: json!({
                    "number": number.unwrap_or(""),
                    "route": p.route.as_str(),
                    "sender": p.sender,
                    "subject": p.subject,
                    "text": p.text.as_deref().map(|t| t.chars().take(1000).collect::<String>()),
                    "digits": p.digits,
                    "references": p.references,
                    "auth": p.auth.as_ref().map(|a| a.reason.clone()),
                    "attachments": p.attachments.iter().map(|a| json!({"name": a.name, "size": a.size, "sha256": a.sha256})).collect::<Vec<_>>(),
                }),
                not_before: now,
            },
            now,
        )
        .await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn act_receipt(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        endpoint: &str,
        p: &Parsed,
        received_at: Timestamp,
        tries: i64,
        policy: &InboundPolicy,
        now: Timestamp,
        report: &mut InboundReport,
    ) -> Result<Done, InboundError> {
        let Some(r) = &p.receipt else {
            return Ok(Done::status(
                "failed",
                "invalid",
                "a receipt without its facts",
            ));
        };
        let Some(msg) = self.receipt_target(conn, endpoint, r).await? else {
            if now.0 - received_at.0 < ORPHAN_AFTER_S {
                // The send may not be recorded yet: look again later.
                let wait = (30 * tries).clamp(30, 600);
                sqlx::query("UPDATE inbound_messages SET next_try_at = $1 WHERE id = $2")
                    .bind(now.0 + wait)
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                report.deferred += 1;
                return Ok(Done::status(
                    "pending",
                    "deferred",
                    "no message of ours with this id yet",
                ));
            }
            return Ok(Done::status(
                "orphan",
                "orphan",
                "no message of ours with this id after a day",
            ));
        };
        report.receipts += 1;
        let stored = dlr::StoredReceipts {
            parts: self.dlr_parts(conn, msg.id).await?,
            message: msg.dlr_state.as_deref().and_then(DlrState::parse),
            parts_total: msg.parts,
        };
        let w = match dlr::plan(r, &stored) {
            dlr::ReceiptPlan::Stale { receipt, stored } => {
                return Ok(Done {
                    status: "done",
                    outcome: "stale",
                    detail: format!(
                        "{} after {}: older news, kept",
                        receipt.as_str(),
                        stored.map_or("-", DlrState::as_str)
                    ),
                    ticket_id: msg.ticket_id,
                });
            }
            dlr::ReceiptPlan::Apply(w) => w,
        };
        self.write_receipt(conn, msg.id, endpoint, &w, now).await?;
        if let Some(error) = &w.failure {
            self.fail_delivered(conn, &msg, error, policy, now, report)
                .await?;
        }
        Ok(Done {
            status: "done",
            outcome: "receipt",
            detail: format!(
                "part {}: {}; message: {}",
                w.part,
                w.part_state.as_str(),
                w.message.map_or("-", DlrState::as_str)
            ),
            ticket_id: msg.ticket_id,
        })
    }

    /// The states recorded for each part of a message.
    async fn dlr_parts(
        &self,
        conn: &mut AnyConnection,
        outbox_id: i64,
    ) -> Result<Vec<(u32, DlrState)>, InboundError> {
        Ok(
            sqlx::query("SELECT part, state FROM dlr_parts WHERE outbox_id = $1")
                .bind(outbox_id)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .filter_map(|row| {
                    let p: i64 = row.try_get(0).ok()?;
                    let s: String = row.try_get(1).ok()?;
                    Some((u32::try_from(p).ok()?, DlrState::parse(&s)?))
                })
                .collect(),
        )
    }

    /// Writes what a receipt that moves its part forward changes: the part, the message's
    /// state and part count, and the receipt itself (once per source and kind).
    async fn write_receipt(
        &self,
        conn: &mut AnyConnection,
        outbox_id: i64,
        endpoint: &str,
        w: &dlr::ReceiptWrite,
        now: Timestamp,
    ) -> Result<(), InboundError> {
        let part_sql = if w.first {
            "INSERT INTO dlr_parts (state, updated_at, outbox_id, part) VALUES ($1, $2, $3, $4)"
        } else {
            "UPDATE dlr_parts SET state = $1, updated_at = $2 WHERE outbox_id = $3 AND part = $4"
        };
        sqlx::query(part_sql)
            .bind(w.part_state.as_str())
            .bind(now.0)
            .bind(outbox_id)
            .bind(i64::from(w.part))
            .execute(&mut *conn)
            .await?;
        sqlx::query("UPDATE outbox SET dlr_state = $1, dlr_parts = $2 WHERE id = $3")
            .bind(w.message.map(DlrState::as_str))
            .bind(w.parts_total)
            .bind(outbox_id)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "INSERT INTO delivery_receipts (outbox_id, source, kind, final, detail, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (outbox_id, source, kind) DO NOTHING",
        )
        .bind(outbox_id)
        .bind(endpoint)
        .bind(&w.receipt_kind)
        .bind(w.receipt_final)
        .bind(&w.receipt_detail)
        .bind(now.0)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// A final failure of a message the provider had accepted: the message goes dead and, for
    /// a citizen's message, the fallback chain takes over.
    async fn fail_delivered(
        &self,
        conn: &mut AnyConnection,
        msg: &ReceiptTarget,
        error: &str,
        policy: &InboundPolicy,
        now: Timestamp,
        report: &mut InboundReport,
    ) -> Result<(), InboundError> {
        let changed = sqlx::query(
            "UPDATE outbox SET state = 'dead', last_error = $1, updated_at = $2, lease_until = NULL \
             WHERE id = $3 AND state = 'delivered'",
        )
        .bind(error)
        .bind(now.0)
        .bind(msg.id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        let (1, Some(dead), Some(tid)) = (changed, &msg.dead, msg.ticket_id) else {
            return Ok(());
        };
        if dead.recipient != Recipient::Citizen {
            return Ok(());
        }
        // Read on this transaction's connection (SQLite's pool has one).
        let citizen: Option<String> =
            sqlx::query_scalar("SELECT citizen FROM tickets WHERE id = $1")
                .bind(tid)
                .fetch_optional(&mut *conn)
                .await?;
        let citizen: Option<crate::ticket::Citizen> =
            citizen.and_then(|c| serde_json::from_str(&c).ok());
        if let Some(c) = citizen.as_ref()
            && let Some(repl) = replacement(
                dead,
                error,
                c,
                &policy.fallback,
                &policy.office_email,
                false,
                now,
            )
        {
            insert_outbox_conn(conn, &repl, now).await?;
            report.fallbacks += 1;
        }
        Ok(())
    }

    /// The message a receipt is about: by our order id (`messo-<id>`), else by the provider's
    /// id. A message sent through another provider is not this receipt's.
    async fn receipt_target(
        &self,
        conn: &mut AnyConnection,
        endpoint: &str,
        r: &ReceiptFacts,
    ) -> Result<Option<ReceiptTarget>, InboundError> {
        const COLS: &str = "id, ticket_id, kind, dedupe_key, recipient, channel, language, payload, \
                            provider, dlr_state, dlr_parts";
        let by_order = r
            .order_id
            .as_deref()
            .and_then(|o| o.strip_prefix("messo-"))
            .and_then(|n| n.parse::<i64>().ok());
        let row = if let Some(oid) = by_order {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLS} FROM outbox WHERE id = $1"
            )))
            .bind(oid)
            .fetch_optional(&mut *conn)
            .await?
        } else if let Some(pid) = &r.provider_id {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLS} FROM outbox WHERE provider_id = $1 AND provider = $2"
            )))
            .bind(pid)
            .bind(endpoint)
            .fetch_optional(&mut *conn)
            .await?
        } else {
            None
        };
        let Some(row) = row else { return Ok(None) };
        let provider: Option<String> = row.try_get("provider")?;
        if provider.as_deref().is_some_and(|p| p != endpoint) {
            return Ok(None);
        }
        // Not sent yet (no provider recorded): the receipt came before the send was recorded.
        if provider.is_none() {
            return Ok(None);
        }
        Ok(Some(ReceiptTarget {
            id: row.try_get("id")?,
            ticket_id: row.try_get("ticket_id")?,
            // A row this version cannot read gets no replacement when it fails.
            dead: super::outbox::dead_row_from(&row)?.ok(),
            dlr_state: row.try_get("dlr_state")?,
            parts: row.try_get::<Option<i64>, _>("dlr_parts")?,
        }))
    }
}

struct ReceiptTarget {
    id: i64,
    ticket_id: Option<i64>,
    dead: Option<DeadRow>,
    dlr_state: Option<String>,
    parts: Option<i64>,
}

/// One stored record, as `inbound_rows` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRow {
    pub id: i64,
    pub endpoint: String,
    pub route: String,
    pub status: String,
    pub outcome: Option<String>,
    pub detail: Option<String>,
    pub ticket_id: Option<i64>,
    pub sender: Option<String>,
    /// The raw payload is still kept (not yet past retention).
    pub has_raw: bool,
}

struct Done {
    status: &'static str,
    outcome: &'static str,
    detail: String,
    ticket_id: Option<i64>,
}

impl Done {
    fn status(status: &'static str, outcome: &'static str, detail: &str) -> Done {
        Done {
            status,
            outcome,
            detail: detail.to_owned(),
            ticket_id: None,
        }
    }
}

async fn set_done(
    conn: &mut AnyConnection,
    id: i64,
    d: Done,
    now: Timestamp,
) -> Result<(), InboundError> {
    sqlx::query(
        "UPDATE inbound_messages SET status = $1, outcome = $2, detail = $3, ticket_id = $4, \
         processed_at = $5 WHERE id = $6",
    )
    .bind(d.status)
    .bind(d.outcome)
    .bind(d.detail)
    .bind(d.ticket_id)
    .bind(now.0)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_outbox_conn(
    conn: &mut AnyConnection,
    n: &NewOutbox,
    now: Timestamp,
) -> Result<u64, InboundError> {
    Ok(insert_outbox(conn, n, now).await?)
}

// ---------------------------------------------------------------------------------------------
// Group commit.

type Job = (NewInbound, oneshot::Sender<Result<Accepted, WriteError>>);

/// Why the inbound writer did not store a record; the webhook is answered with an error, so
/// the provider sends it again.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("the inbound writer has stopped")]
    Stopped,
    #[error("storing panicked (see the panic message above)")]
    Panicked,
    /// The group's commit failed (every record of the group gets the same error).
    #[error("{0}")]
    Store(Arc<InboundError>),
}

/// Stores webhooks several per transaction: each request waits for the commit that holds its
/// record, so an answer of 200 always means "durably stored", at thousands per second.
#[derive(Clone)]
pub struct InboundWriter {
    tx: mpsc::Sender<Job>,
    /// When the last commit that stored something new ended (Unix milliseconds).
    last_commit_ms: Arc<std::sync::atomic::AtomicI64>,
}

/// The most records in one commit.
const GROUP_MAX: usize = 512;

impl InboundWriter {
    /// Starts the writer task. `wake` is notified after each commit that stored something new.
    pub fn spawn(store: Store, wake: Arc<Notify>) -> InboundWriter {
        let (tx, mut rx) = mpsc::channel::<Job>(GROUP_MAX * 8);
        let last_commit_ms = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let last = Arc::clone(&last_commit_ms);
        tokio::spawn(async move {
            let mut batch: Vec<Job> = Vec::with_capacity(GROUP_MAX);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while batch.len() < GROUP_MAX {
                    match rx.try_recv() {
                        Ok(j) => batch.push(j),
                        Err(_) => break,
                    }
                }
                let records: Vec<NewInbound> = batch.iter().map(|(n, _)| n.clone()).collect();
                let started = std::time::Instant::now();
                // A panic while storing fails this batch (its webhooks are answered with an
                // error, so providers retry) and the writer goes on with the next one.
                let result = match futures_util::FutureExt::catch_unwind(
                    std::panic::AssertUnwindSafe(store.inbound().accept_inbound(&records)),
                )
                .await
                {
                    Ok(r) => r.map_err(|e| WriteError::Store(Arc::new(e))),
                    Err(_) => Err(WriteError::Panicked),
                };
                tracing::debug!(
                    records = records.len(),
                    ms = started.elapsed().as_secs_f64() * 1000.0,
                    "inbound group commit"
                );
                match result {
                    Ok(results) => {
                        let any_new = results.iter().any(|r| matches!(r, Accepted::New(_)));
                        for ((_, reply), r) in batch.drain(..).zip(results) {
                            let _ = reply.send(Ok(r));
                        }
                        if any_new {
                            last.store(
                                chrono::Utc::now().timestamp_millis(),
                                std::sync::atomic::Ordering::Relaxed,
                            );
                            wake.notify_one();
                        }
                    }
                    Err(m) => {
                        tracing::error!(error = %m, records = batch.len(), "storing inbound records failed");
                        for (_, reply) in batch.drain(..) {
                            let _ = reply.send(Err(m.clone()));
                        }
                    }
                }
            }
        });
        InboundWriter { tx, last_commit_ms }
    }

    /// Whether webhooks are arriving now (something new was stored in the last 200 ms): the
    /// daemon then acts on stored records at a modest pace and leaves the store to the writer,
    /// so providers are answered first and the records are acted on when the burst is over.
    pub fn busy(&self) -> bool {
        let last = self
            .last_commit_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        chrono::Utc::now().timestamp_millis() - last < 200
    }

    /// Stores one record; returns once it is committed.
    pub async fn submit(&self, n: NewInbound) -> Result<Accepted, WriteError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((n, tx))
            .await
            .map_err(|_| WriteError::Stopped)?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }
}
