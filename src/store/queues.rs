//! The work queues that wait for a person, and the office's actions on them: each action
//! checks the row is still in its queue, changes it and writes its audit record in one
//! transaction.
//!
//! The queues (`docs/console.md`, "Work queues and staff actions"):
//! - uncertain: outbox rows `state = 'uncertain'` (held: the outcome of an attempt is unknown);
//! - unreachable: dead messages to a citizen, about a ticket, not handled from the console,
//!   from which the fallback chain did not go on (no row keyed `<key>><channel>`): the chain
//!   ended at the office (`cittadino_irraggiungibile`) or had no link left;
//! - unmatched: inbound replies `status = 'unmatched'`;
//! - opt-outs: the numbers in `sms_opt_out`.
//!
//! An action repeated on an item that left its queue by that same action changes nothing and
//! says so (`already`); any other action on it is a conflict naming the item's state.

use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};

use super::admin::audit;
use super::outbox::{dead_row_from, insert_outbox};
use super::tickets::event_from_row;
use super::{
    EventRecord, InboundError, InboundPolicy, NewOutbox, OutboxError, Queues, TICKET_COLUMNS,
    TicketError, TicketRecord,
};
use crate::domain::{Channel, Kind, Recipient};
use crate::redact::mask;
use crate::ticket::{Citizen, EventBody, NewEvent, Source};
use crate::time::Timestamp;
use messo_core::delivery::fallback::{self, Fallback};
use messo_core::inbound::matching::Candidate;
use messo_core::inbound::{Parsed, reply};

/// Why a queue read or action failed. `NotFound` and `Conflict` are the caller's; a `Ticket`
/// error may be too (`TicketError::is_client_error`).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Ticket(#[from] TicketError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Inbound(#[from] InboundError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
}

/// How many items wait in each queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct QueueCounts {
    pub uncertain: i64,
    pub unreachable: i64,
    pub unmatched: i64,
    pub opt_outs: i64,
}

/// A message of the uncertain or unreachable queue, as stored (addresses unmasked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: i64,
    /// The ticket's number (none for a message about no ticket).
    pub number: Option<String>,
    pub kind: String,
    pub recipient: String,
    pub channel: String,
    pub address: String,
    pub dedupe_key: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub attempts: i64,
    pub provider: Option<String>,
    pub last_error: Option<String>,
}

impl QueuedMessage {
    /// The channels tried for the citizen's notice, in order: those the fallback chain left in
    /// the key (`receipt>sms`), then this message's own.
    pub fn tried(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .dedupe_key
            .split('>')
            .skip(1)
            .map(str::to_owned)
            .collect();
        out.push(self.channel.clone());
        out
    }
}

/// An unmatched reply, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct UnmatchedReply {
    pub id: i64,
    pub route: String,
    pub received_at: Timestamp,
    pub sender: Option<String>,
    pub parsed: Parsed,
    pub detail: Option<String>,
}

/// A number that opted out of SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOut {
    pub number: String,
    pub keyword: String,
    pub opted_out_at: Timestamp,
}

/// What an action did.
#[derive(Debug, Clone, PartialEq)]
pub struct Acted {
    /// The same action was done before: nothing changed now.
    pub already: bool,
    /// The item's state now (a message's, an inbound record's status).
    pub state: String,
    /// The ticket it is about.
    pub number: Option<String>,
    /// The message owed instead (give-up) or queued again (a contact correction: the first).
    pub replacement: Option<i64>,
    /// The event recorded on the ticket (contact made or corrected).
    pub event_id: Option<i64>,
    /// More the answer tells: the messages handled, the reply's outcome.
    pub detail: Value,
}

impl Acted {
    fn already(state: &str, number: Option<String>, resolution: &Value) -> Acted {
        Acted {
            already: true,
            state: state.to_owned(),
            number,
            replacement: resolution["replacement"].as_i64(),
            event_id: resolution["event_id"].as_i64(),
            detail: resolution.clone(),
        }
    }
}

/// A staff event recorded (or found again under its key) on a ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct StaffEvent {
    /// Found under its key: recorded by an earlier request.
    pub replayed: bool,
    pub event: EventRecord,
    pub ticket: TicketRecord,
}

/// The fallback chain and the office's address (`[delivery] fallback`, `notify.office_email`),
/// and when an SMS owed now may go (the SMS window).
pub struct Chain<'a> {
    pub fallback: &'a [Fallback],
    pub office_email: &'a crate::domain::EmailAddress,
    pub sms_not_before: Timestamp,
}

/// An outbox row locked for an action.
struct Message {
    id: i64,
    ticket_id: Option<i64>,
    number: Option<String>,
    kind: String,
    dedupe_key: String,
    recipient: String,
    channel: String,
    address: String,
    state: String,
    resolved: bool,
    resolution: Value,
    row: sqlx::any::AnyRow,
}

impl Message {
    /// The audit record's object: the ticket's number, or `outbox:<id>`.
    fn object(&self) -> String {
        self.number
            .clone()
            .unwrap_or_else(|| format!("outbox:{}", self.id))
    }

    /// The last staff action's name.
    fn last_action(&self) -> &str {
        self.resolution["action"].as_str().unwrap_or("")
    }
}

/// The condition "no row of the fallback chain follows `o`" (the replacement's key is the dead
/// row's with `>channel` added), read through the outbox's unique key.
const NO_SUCCESSOR: &str = "NOT EXISTS (SELECT 1 FROM outbox n WHERE n.ticket_id = o.ticket_id \
     AND n.kind = o.kind AND n.recipient = 'citizen' AND n.dedupe_key = o.dedupe_key || '>' || o.channel)";

/// The unreachable queue's condition on the outbox row `o` (its partial index's, and more).
const UNREACHABLE: &str = "o.state = 'dead' AND o.recipient = 'citizen' AND o.resolved_at IS NULL \
     AND o.ticket_id IS NOT NULL";

const MESSAGE_COLUMNS: &str = "o.id, o.ticket_id, o.kind, o.recipient, o.channel, o.address, \
     o.dedupe_key, o.created_at, o.updated_at, o.attempts, o.provider, o.last_error, t.number";

fn message_from(r: &sqlx::any::AnyRow) -> Result<QueuedMessage, sqlx::Error> {
    Ok(QueuedMessage {
        id: r.try_get("id")?,
        number: r.try_get("number")?,
        kind: r.try_get("kind")?,
        recipient: r.try_get("recipient")?,
        channel: r.try_get("channel")?,
        address: r.try_get("address")?,
        dedupe_key: r.try_get("dedupe_key")?,
        created_at: Timestamp(r.try_get("created_at")?),
        updated_at: Timestamp(r.try_get("updated_at")?),
        attempts: r.try_get("attempts")?,
        provider: r.try_get("provider")?,
        last_error: r.try_get("last_error")?,
    })
}

/// The JSON of a staff action on a message.
fn resolution(action: &str, by: &str, now: Timestamp, extra: Value) -> Value {
    let mut v = json!({"action": action, "by": by, "at": now.to_string()});
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v
}

impl Queues<'_> {
    /// How many items wait in each queue.
    pub async fn counts(&self) -> Result<QueueCounts, QueueError> {
        let pool = &self.store.pool;
        let uncertain: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = 'uncertain'")
                .fetch_one(pool)
                .await?;
        let unreachable: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM outbox o WHERE {UNREACHABLE} AND {NO_SUCCESSOR}"
        )))
        .fetch_one(pool)
        .await?;
        let unmatched: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM inbound_messages WHERE status = 'unmatched'")
                .fetch_one(pool)
                .await?;
        let opt_outs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sms_opt_out")
            .fetch_one(pool)
            .await?;
        Ok(QueueCounts {
            uncertain,
            unreachable,
            unmatched,
            opt_outs,
        })
    }

    /// Held messages after id `after`, oldest first, at most `limit`.
    pub async fn uncertain(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<QueuedMessage>, QueueError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM outbox o LEFT JOIN tickets t ON t.id = o.ticket_id \
             WHERE o.state = 'uncertain' AND o.id > $1 ORDER BY o.id LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(limit)
            .fetch_all(&self.store.pool)
            .await?;
        Ok(rows.iter().map(message_from).collect::<Result<_, _>>()?)
    }

    /// Citizens' dead messages the fallback chain could not replace, not handled yet, after id
    /// `after`, oldest first, at most `limit`.
    pub async fn unreachable(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<QueuedMessage>, QueueError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM outbox o JOIN tickets t ON t.id = o.ticket_id \
             WHERE {UNREACHABLE} AND {NO_SUCCESSOR} AND o.id > $1 ORDER BY o.id LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(limit)
            .fetch_all(&self.store.pool)
            .await?;
        Ok(rows.iter().map(message_from).collect::<Result<_, _>>()?)
    }

    /// Replies matched to no ticket after id `after`, oldest first, at most `limit`.
    pub async fn unmatched(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<UnmatchedReply>, QueueError> {
        let rows = sqlx::query(
            "SELECT id, route, received_at, sender, parsed, detail FROM inbound_messages \
             WHERE status = 'unmatched' AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.try_get("id")?;
                let parsed: String = r.try_get("parsed")?;
                Ok(UnmatchedReply {
                    id,
                    route: r.try_get("route")?,
                    received_at: Timestamp(r.try_get("received_at")?),
                    sender: r.try_get("sender")?,
                    parsed: serde_json::from_str(&parsed)
                        .map_err(|e| QueueError::Corrupt(format!("inbound {id}: {e}")))?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }

    /// Numbers opted out of SMS, newest first: `limit` from the `offset`th, or only `number`.
    pub async fn opt_outs(
        &self,
        number: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<OptOut>, QueueError> {
        let q = match number {
            Some(n) => sqlx::query(
                "SELECT number, keyword, opted_out_at FROM sms_opt_out WHERE number = $1 \
                 ORDER BY opted_out_at DESC, number LIMIT $2 OFFSET $3",
            )
            .bind(n.to_owned()),
            None => sqlx::query(
                "SELECT number, keyword, opted_out_at FROM sms_opt_out \
                 ORDER BY opted_out_at DESC, number LIMIT $1 OFFSET $2",
            ),
        };
        let rows = q
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.store.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(OptOut {
                    number: r.try_get("number")?,
                    keyword: r.try_get("keyword")?,
                    opted_out_at: Timestamp(r.try_get("opted_out_at")?),
                })
            })
            .collect()
    }

    /// The outbox row `id`, locked until the transaction ends (PostgreSQL), with its ticket's
    /// number and whether the fallback chain went on from it.
    async fn lock_message(
        &self,
        conn: &mut AnyConnection,
        id: i64,
    ) -> Result<(Message, bool), QueueError> {
        let sql = format!(
            "SELECT o.id, o.ticket_id, o.kind, o.dedupe_key, o.recipient, o.channel, o.address, \
             o.language, o.payload, o.state, o.resolved_at, o.resolution FROM outbox o \
             WHERE o.id = $1{}",
            self.store.lock_suffix()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| QueueError::NotFound(format!("message {id} not found")))?;
        let ticket_id: Option<i64> = row.try_get("ticket_id")?;
        let number: Option<String> = match ticket_id {
            Some(t) => {
                sqlx::query_scalar("SELECT number FROM tickets WHERE id = $1")
                    .bind(t)
                    .fetch_optional(&mut *conn)
                    .await?
            }
            None => None,
        };
        let m = Message {
            id,
            ticket_id,
            number,
            kind: row.try_get("kind")?,
            dedupe_key: row.try_get("dedupe_key")?,
            recipient: row.try_get("recipient")?,
            channel: row.try_get("channel")?,
            address: row.try_get("address")?,
            state: row.try_get("state")?,
            resolved: row.try_get::<Option<i64>, _>("resolved_at")?.is_some(),
            resolution: row
                .try_get::<Option<String>, _>("resolution")?
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null),
            row,
        };
        let followed = match m.ticket_id {
            Some(t) => sqlx::query_scalar::<_, i64>(
                "SELECT id FROM outbox WHERE ticket_id = $1 AND kind = $2 AND dedupe_key = $3 \
                 AND recipient = 'citizen'",
            )
            .bind(t)
            .bind(&m.kind)
            .bind(format!("{}>{}", m.dedupe_key, m.channel))
            .fetch_optional(&mut *conn)
            .await?
            .is_some(),
            None => false,
        };
        Ok((m, followed))
    }

    /// Whether `m` may be acted on by `action` in queue `queue` (`in_queue`): yes; no, it was
    /// done already (`Ok(false)`); or a conflict naming where the message stands.
    fn settle(m: &Message, action: &str, queue: &str, in_queue: bool) -> Result<bool, QueueError> {
        if in_queue {
            return Ok(true);
        }
        if m.last_action() == action {
            return Ok(false);
        }
        let handled = match m.last_action() {
            "" => String::new(),
            a => format!(" (last handled from the console: {a})"),
        };
        Err(QueueError::Conflict(format!(
            "message {} is not in the {queue} queue: it is {}{handled}",
            m.id, m.state
        )))
    }

    /// Sends a held message again: the same row back to `pending` now, no longer in doubt (so
    /// the dispatcher sends it rather than holding it again), the resend counted. The same row
    /// goes out with the same e-mail Message-ID and SMS order id.
    pub async fn resend(
        &self,
        id: i64,
        actor: &str,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<Acted, QueueError> {
        let mut tx = self.store.pool.begin().await?;
        let (m, _) = self.lock_message(&mut tx, id).await?;
        if !Self::settle(&m, "resend", "uncertain", m.state == "uncertain")? {
            return Ok(Acted::already(&m.state, m.number.clone(), &m.resolution));
        }
        let r = resolution("resend", actor, now, json!({"reason": reason}));
        sqlx::query(
            "UPDATE outbox SET state = 'pending', not_before = $1, in_doubt = 0, \
             resent = resent + 1, lease_until = NULL, updated_at = $1, resolution = $2 \
             WHERE id = $3 AND state = 'uncertain'",
        )
        .bind(now.0)
        .bind(r.to_string())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        self.audit_message(
            &mut tx,
            &m,
            "message.resend",
            actor,
            now,
            json!({"reason": reason}),
        )
        .await?;
        tx.commit().await?;
        Ok(Acted {
            already: false,
            state: "pending".into(),
            number: m.number,
            replacement: None,
            event_id: None,
            detail: r,
        })
    }

    /// Records a held message as delivered (the office checked it arrived): `reason` says how.
    pub async fn mark_delivered(
        &self,
        id: i64,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Acted, QueueError> {
        let mut tx = self.store.pool.begin().await?;
        let (m, _) = self.lock_message(&mut tx, id).await?;
        if !Self::settle(&m, "mark_delivered", "uncertain", m.state == "uncertain")? {
            return Ok(Acted::already(&m.state, m.number.clone(), &m.resolution));
        }
        let r = resolution("mark_delivered", actor, now, json!({"reason": reason}));
        sqlx::query(
            "UPDATE outbox SET state = 'delivered', delivered_at = $1, in_doubt = 0, \
             lease_until = NULL, updated_at = $1, resolved_at = $1, resolved_by = $2, \
             resolution = $3 WHERE id = $4 AND state = 'uncertain'",
        )
        .bind(now.0)
        .bind(actor)
        .bind(r.to_string())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        self.audit_message(
            &mut tx,
            &m,
            "message.mark_delivered",
            actor,
            now,
            json!({"reason": reason}),
        )
        .await?;
        tx.commit().await?;
        Ok(Acted {
            already: false,
            state: "delivered".into(),
            number: m.number,
            replacement: None,
            event_id: None,
            detail: r,
        })
    }

    /// Gives a held message up: it is dead, and the fallback chain owes the next channel (or
    /// tells the office the citizen could not be reached), as for a message refused for good.
    pub async fn give_up(
        &self,
        id: i64,
        actor: &str,
        reason: Option<&str>,
        chain: &Chain<'_>,
        now: Timestamp,
    ) -> Result<Acted, QueueError> {
        let mut tx = self.store.pool.begin().await?;
        let (m, _) = self.lock_message(&mut tx, id).await?;
        if !Self::settle(&m, "give_up", "uncertain", m.state == "uncertain")? {
            return Ok(Acted::already(&m.state, m.number.clone(), &m.resolution));
        }
        let error = match reason {
            Some(r) => format!("given up from the console by {actor}: {r}"),
            None => format!("given up from the console by {actor}"),
        };
        let mut owed = None;
        if m.recipient == Recipient::Citizen.as_str()
            && let Some(ticket_id) = m.ticket_id
            && let Ok(dead) = dead_row_from(&m.row)?
        {
            let citizen = citizen_of(&mut tx, ticket_id).await?;
            owed = fallback::replacement(
                &dead,
                &error,
                &citizen,
                chain.fallback,
                chain.office_email,
                false,
                now,
            )
            .map(|mut r| {
                if r.channel == Channel::Sms {
                    r.not_before = chain.sms_not_before;
                }
                r
            });
        }
        let replacement = match &owed {
            Some(r) => Some(insert_and_find(&mut tx, r, now).await?),
            None => None,
        };
        let r = resolution(
            "give_up",
            actor,
            now,
            json!({"reason": reason, "replacement": replacement}),
        );
        sqlx::query(
            "UPDATE outbox SET state = 'dead', last_error = $1, lease_until = NULL, \
             updated_at = $2, resolution = $3 WHERE id = $4 AND state = 'uncertain'",
        )
        .bind(&error)
        .bind(now.0)
        .bind(r.to_string())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let detail = json!({
            "reason": reason,
            "replacement": replacement,
            "fallback": owed.as_ref().map(|o| json!({"kind": o.kind.as_str(), "channel": o.channel.as_str(), "recipient": o.recipient.as_str()})),
        });
        self.audit_message(&mut tx, &m, "message.give_up", actor, now, detail.clone())
            .await?;
        tx.commit().await?;
        Ok(Acted {
            already: false,
            state: "dead".into(),
            number: m.number,
            replacement,
            event_id: None,
            detail,
        })
    }

    /// Records a contact made with the citizen by `channel` (phone, desk) after message `id`
    /// could not reach them: a `contact_made` event on the ticket (allowed when closed), and
    /// every unreachable message of the ticket handled by it.
    pub async fn contact_made(
        &self,
        id: i64,
        actor: &str,
        channel: &str,
        text: &str,
        now: Timestamp,
    ) -> Result<Acted, QueueError> {
        let mut tx = self.store.pool.begin().await?;
        let (m, followed) = self.lock_message(&mut tx, id).await?;
        let in_queue = m.state == "dead"
            && m.recipient == "citizen"
            && !m.resolved
            && m.ticket_id.is_some()
            && !followed;
        if !in_queue && m.state == "dead" && followed && m.last_action() != "contact_made" {
            return Err(QueueError::Conflict(format!(
                "message {id} is not in the unreachable queue: the fallback chain went on from it"
            )));
        }
        if !Self::settle(&m, "contact_made", "unreachable", in_queue)? {
            return Ok(Acted::already(&m.state, m.number.clone(), &m.resolution));
        }
        let (Some(ticket_id), Some(number)) = (m.ticket_id, m.number.clone()) else {
            return Err(QueueError::Corrupt(format!("message {id} lost its ticket")));
        };
        let at = event_time(&mut tx, ticket_id, now).await?;
        let event = NewEvent {
            at,
            body: EventBody::ContactMade {
                channel: channel.to_owned(),
                text: text.to_owned(),
            },
        };
        let key = format!("console:contact-made:{id}");
        self.store
            .tickets()
            .append_in(&mut tx, &number, &event, Some(&key), Source::Console, now)
            .await?;
        let event_id = event_id_of(&mut tx, ticket_id, &key).await?;
        let r = resolution(
            "contact_made",
            actor,
            now,
            json!({"channel": channel, "event_id": event_id, "from_message": id}),
        );
        let handled: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET resolved_at = $1, resolved_by = $2, resolution = $3 \
             WHERE id IN (SELECT o.id FROM outbox o WHERE o.ticket_id = $4 AND {UNREACHABLE} \
             AND {NO_SUCCESSOR}) RETURNING id"
        )))
        .bind(now.0)
        .bind(actor)
        .bind(r.to_string())
        .bind(ticket_id)
        .fetch_all(&mut *tx)
        .await?;
        let detail = json!({"channel": channel, "event_id": event_id, "messages": handled});
        self.audit_message(
            &mut tx,
            &m,
            "message.contact_made",
            actor,
            now,
            detail.clone(),
        )
        .await?;
        tx.commit().await?;
        Ok(Acted {
            already: false,
            state: m.state,
            number: Some(number),
            replacement: None,
            event_id: Some(event_id),
            detail,
        })
    }

    /// Corrects the citizen's contacts on ticket `number` with `change` (a `contact_changed`
    /// body, validated): the event, the ticket's citizen and its indexed addresses in one
    /// transaction; every notice that never arrived queued again through a corrected address
    /// (`fallback::redirect`) and its dead messages handled. The same addresses again change
    /// nothing (`already`).
    pub async fn correct_contact(
        &self,
        number: &str,
        actor: &str,
        change: EventBody,
        sms_not_before: Timestamp,
        now: Timestamp,
    ) -> Result<Acted, QueueError> {
        let mut tx = self.store.pool.begin().await?;
        let sql = format!(
            "SELECT id, citizen, waiting_since, closed_at FROM tickets WHERE number = $1{}",
            self.store.lock_suffix()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(number)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| QueueError::NotFound(format!("ticket {number} not found")))?;
        let ticket_id: i64 = row.try_get("id")?;
        let citizen = parse_citizen(ticket_id, &row.try_get::<String, _>("citizen")?)?;
        let waiting = row.try_get::<Option<i64>, _>("waiting_since")?.is_some()
            && row.try_get::<Option<i64>, _>("closed_at")?.is_none();
        let corrected = citizen.corrected(&change);
        let changed = Citizen::changed_channels(&change);
        let masked = masked_contacts(&change);
        if corrected == citizen {
            return Ok(Acted {
                already: true,
                state: "unchanged".into(),
                number: Some(number.to_owned()),
                replacement: None,
                event_id: None,
                detail: json!({"contacts": masked, "requeued": []}),
            });
        }
        let event = NewEvent {
            at: event_time(&mut tx, ticket_id, now).await?,
            body: change,
        };
        let key = event.content_hash();
        self.store
            .tickets()
            .append_in(&mut tx, number, &event, Some(&key), Source::Console, now)
            .await?;
        let event_id = event_id_of(&mut tx, ticket_id, &key).await?;
        let text = serde_json::to_string(&corrected)
            .map_err(|e| QueueError::Corrupt(format!("ticket {number} citizen: {e}")))?;
        sqlx::query(
            // Contacts given again (after the retention pseudonymised the ticket) are personal
            // data again: the retention applies to them after the next closure.
            "UPDATE tickets SET citizen = $1, citizen_mobile = $2, citizen_email = $3, \
             updated_at = $4, personal_data_erased_at = NULL WHERE id = $5",
        )
        .bind(text)
        .bind(corrected.mobile.as_deref())
        .bind(corrected.email.as_deref().map(str::to_ascii_lowercase))
        .bind(now.0)
        .bind(ticket_id)
        .execute(&mut *tx)
        .await?;
        let notices = notices_of(&mut tx, ticket_id).await?;
        let again = fallback::redirect(
            &notices,
            &corrected,
            &changed,
            event_id,
            ticket_id,
            waiting,
            sms_not_before,
            now,
        );
        let mut requeued = Vec::new();
        for r in &again {
            let new_id = insert_and_find(&mut tx, &r.row, now).await?;
            let res = resolution(
                "contact_changed",
                actor,
                now,
                json!({"event_id": event_id, "replacement": new_id}),
            );
            for old in &r.replaces {
                sqlx::query(
                    "UPDATE outbox SET resolved_at = $1, resolved_by = $2, resolution = $3 \
                     WHERE id = $4 AND ticket_id = $5 AND resolved_at IS NULL",
                )
                .bind(now.0)
                .bind(actor)
                .bind(res.to_string())
                .bind(*old)
                .bind(ticket_id)
                .execute(&mut *tx)
                .await?;
            }
            requeued.push(json!({"id": new_id, "kind": r.row.kind.as_str(),
                                 "channel": r.row.channel.as_str(), "replaces": r.replaces}));
        }
        let detail = json!({"event_id": event_id, "contacts": masked, "requeued": requeued});
        audit(
            &mut tx,
            now,
            actor,
            "ticket.contact_changed",
            number,
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(Acted {
            already: false,
            state: "changed".into(),
            number: Some(number.to_owned()),
            replacement: requeued.first().and_then(|r| r["id"].as_i64()),
            event_id: Some(event_id),
            detail,
        })
    }

    /// Attaches the unmatched reply `id` to ticket `number`: recorded exactly as a matched
    /// reply (`reply::attached`, applied through the inbound path), the record done. Attaching
    /// it again to the same ticket changes nothing.
    pub async fn attach(
        &self,
        id: i64,
        number: &str,
        actor: &str,
        note: Option<&str>,
        policy: &InboundPolicy,
        now: Timestamp,
    ) -> Result<Acted, QueueError> {
        let mut tx = self.store.pool.begin().await?;
        let (status, parsed, received_at, outcome, on_ticket) =
            self.lock_inbound(&mut tx, id).await?;
        let sql = format!(
            "SELECT id, number, citizen_mobile, citizen_email, waiting_since, closed_at \
             FROM tickets WHERE number = $1{}",
            self.store.lock_suffix()
        );
        let t = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(number)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| QueueError::NotFound(format!("ticket {number} not found")))?;
        let ticket_id: i64 = t.try_get("id")?;
        if status != "unmatched" {
            if status == "done" && on_ticket == Some(ticket_id) {
                return Ok(Acted {
                    already: true,
                    state: status,
                    number: Some(number.to_owned()),
                    replacement: None,
                    event_id: None,
                    detail: json!({"outcome": outcome}),
                });
            }
            return Err(QueueError::Conflict(format!(
                "reply {id} is not in the unmatched queue: it is {status}{}",
                outcome.map(|o| format!(" ({o})")).unwrap_or_default()
            )));
        }
        let sender = parsed.sender.clone().unwrap_or_default();
        let mobile: Option<String> = t.try_get("citizen_mobile")?;
        let email: Option<String> = t.try_get("citizen_email")?;
        let found = (
            Candidate {
                id: ticket_id,
                from_citizen: !sender.is_empty()
                    && (mobile.as_deref() == Some(sender.as_str())
                        || email.as_deref() == Some(sender.as_str())),
                waiting: t.try_get::<Option<i64>, _>("waiting_since")?.is_some()
                    && t.try_get::<Option<i64>, _>("closed_at")?.is_none(),
            },
            t.try_get::<String, _>("number")?,
        );
        let plan = reply::attached(&parsed, id, received_at, now, &found, actor);
        let mut verdict = plan.verdict;
        let inbound = self.store.inbound();
        for action in plan.actions {
            inbound
                .apply_reply(&mut tx, id, &parsed, action, &mut verdict, policy, now)
                .await?;
        }
        let detail = match note {
            Some(n) => format!("{}: {n}", verdict.detail),
            None => verdict.detail.clone(),
        };
        sqlx::query(
            "UPDATE inbound_messages SET status = $1, outcome = $2, detail = $3, ticket_id = $4, \
             processed_at = $5 WHERE id = $6 AND status = 'unmatched'",
        )
        .bind(verdict.status)
        .bind(verdict.outcome)
        .bind(&detail)
        .bind(ticket_id)
        .bind(now.0)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let event_id = event_id_of(&mut tx, ticket_id, &format!("inbound:{id}")).await?;
        let detail = json!({"inbound_id": id, "outcome": verdict.outcome, "note": note,
                            "event_id": event_id, "sender": mask(&sender)});
        audit(&mut tx, now, actor, "inbound.attached", number, &detail).await?;
        tx.commit().await?;
        Ok(Acted {
            already: false,
            state: verdict.status.to_owned(),
            number: Some(number.to_owned()),
            replacement: None,
            event_id: Some(event_id),
            detail,
        })
    }

    /// Dismisses the unmatched reply `id` as not a reply, with the officer's `note`.
    pub async fn dismiss(
        &self,
        id: i64,
        actor: &str,
        note: &str,
        now: Timestamp,
    ) -> Result<Acted, QueueError> {
        let mut tx = self.store.pool.begin().await?;
        let (status, parsed, _, outcome, _) = self.lock_inbound(&mut tx, id).await?;
        if status == "dismissed" {
            return Ok(Acted {
                already: true,
                state: status,
                number: None,
                replacement: None,
                event_id: None,
                detail: json!({"outcome": outcome}),
            });
        }
        if status != "unmatched" {
            return Err(QueueError::Conflict(format!(
                "reply {id} is not in the unmatched queue: it is {status}{}",
                outcome.map(|o| format!(" ({o})")).unwrap_or_default()
            )));
        }
        sqlx::query(
            "UPDATE inbound_messages SET status = 'dismissed', outcome = 'dismissed', \
             detail = $1, processed_at = $2 WHERE id = $3 AND status = 'unmatched'",
        )
        .bind(format!("dismissed by {actor} from the console: {note}"))
        .bind(now.0)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let sender = mask(parsed.sender.as_deref().unwrap_or_default());
        let detail = json!({"inbound_id": id, "note": note, "sender": sender});
        audit(
            &mut tx,
            now,
            actor,
            "inbound.dismissed",
            &format!("inbound:{id}"),
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(Acted {
            already: false,
            state: "dismissed".into(),
            number: None,
            replacement: None,
            event_id: None,
            detail,
        })
    }

    /// The inbound record `id`, locked: (status, parsed, received_at, outcome, ticket id).
    #[allow(clippy::type_complexity)]
    async fn lock_inbound(
        &self,
        conn: &mut AnyConnection,
        id: i64,
    ) -> Result<(String, Parsed, Timestamp, Option<String>, Option<i64>), QueueError> {
        let sql = format!(
            "SELECT status, parsed, received_at, outcome, ticket_id FROM inbound_messages \
             WHERE id = $1{}",
            self.store.lock_suffix()
        );
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| QueueError::NotFound(format!("reply {id} not found")))?;
        let parsed: String = r.try_get("parsed")?;
        let parsed: Parsed = serde_json::from_str(&parsed)
            .map_err(|e| QueueError::Corrupt(format!("inbound {id}: {e}")))?;
        if parsed.route == messo_core::inbound::Route::Dlr {
            return Err(QueueError::NotFound(format!(
                "reply {id} not found (it is a delivery receipt)"
            )));
        }
        Ok((
            r.try_get("status")?,
            parsed,
            Timestamp(r.try_get("received_at")?),
            r.try_get("outcome")?,
            r.try_get("ticket_id")?,
        ))
    }

    /// Lifts the SMS opt-out of `number` (E.164) at the citizen's request. `NotFound` when the
    /// number is not opted out and was never lifted from the console since its last opt-out.
    pub async fn lift_opt_out(
        &self,
        number: &str,
        actor: &str,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<Acted, QueueError> {
        let mut tx = self.store.pool.begin().await?;
        let removed = sqlx::query("DELETE FROM sms_opt_out WHERE number = $1")
            .bind(number)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let masked = mask(number);
        if removed == 0 {
            let lifted: Option<i64> =
                sqlx::query_scalar("SELECT lifted_at FROM sms_opt_out_lifts WHERE number = $1")
                    .bind(number)
                    .fetch_optional(&mut *tx)
                    .await?;
            tx.commit().await?;
            return match lifted {
                Some(_) => Ok(Acted {
                    already: true,
                    state: "lifted".into(),
                    number: None,
                    replacement: None,
                    event_id: None,
                    detail: json!({"number": masked}),
                }),
                None => Err(QueueError::NotFound(format!(
                    "{masked} has not opted out of SMS"
                ))),
            };
        }
        sqlx::query(
            "INSERT INTO sms_opt_out_lifts (number, lifted_at, lifted_by) VALUES ($1, $2, $3) \
             ON CONFLICT (number) DO UPDATE SET lifted_at = excluded.lifted_at, \
             lifted_by = excluded.lifted_by",
        )
        .bind(number)
        .bind(now.0)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        let detail = json!({"number": masked, "reason": reason});
        audit(&mut tx, now, actor, "opt_out.lifted", &masked, &detail).await?;
        tx.commit().await?;
        Ok(Acted {
            already: false,
            state: "lifted".into(),
            number: None,
            replacement: None,
            event_id: None,
            detail,
        })
    }

    /// Records a staff event on ticket `number` as the office (source `console`), through the
    /// same path as the API, with its audit record. Under `key` (the console's
    /// `Idempotency-Key`, stored as `console:<key>`) a second request finds the event already
    /// recorded and returns it; the same key for another kind is a `KeyReused` error.
    pub async fn staff_event(
        &self,
        number: &str,
        event: &EventBody,
        at: Option<Timestamp>,
        key: Option<&str>,
        actor: &str,
        now: Timestamp,
    ) -> Result<StaffEvent, QueueError> {
        let mut tx = self.store.pool.begin().await?;
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE number = $1{}",
            self.store.lock_suffix()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(number)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| TicketError::NotFound(number.to_owned()))?;
        let record = self.store.tickets().record_from_row(&row)?;
        let key = key.map(|k| format!("console:{k}"));
        if let Some(k) = &key
            && let Some(found) = event_by_key(&mut tx, record.id, k).await?
        {
            tx.commit().await?;
            if found.kind != event.kind() {
                return Err(TicketError::KeyReused(k.clone()).into());
            }
            return Ok(StaffEvent {
                replayed: true,
                event: found,
                ticket: record,
            });
        }
        let e = NewEvent {
            at: match at {
                Some(at) => at,
                None => event_time(&mut tx, record.id, now).await?,
            },
            body: event.clone(),
        };
        let key = key.unwrap_or_else(|| e.content_hash());
        let outcome = self
            .store
            .tickets()
            .append_in(&mut tx, number, &e, Some(&key), Source::Console, now)
            .await?;
        let found = event_by_key(&mut tx, record.id, &key)
            .await?
            .ok_or_else(|| QueueError::Corrupt(format!("event {key} vanished")))?;
        audit(
            &mut tx,
            now,
            actor,
            "ticket.event",
            number,
            &json!({"kind": e.body.kind(), "event_id": found.id, "key": key}),
        )
        .await?;
        tx.commit().await?;
        Ok(StaffEvent {
            replayed: false,
            event: found,
            ticket: outcome.ticket().clone(),
        })
    }

    /// The audit record of an action on message `m`.
    async fn audit_message(
        &self,
        conn: &mut AnyConnection,
        m: &Message,
        action: &str,
        actor: &str,
        now: Timestamp,
        extra: Value,
    ) -> Result<(), QueueError> {
        let mut detail = json!({
            "outbox_id": m.id,
            "kind": m.kind,
            "channel": m.channel,
            "to": mask(&m.address),
            "state_before": m.state,
        });
        if let (Value::Object(d), Value::Object(e)) = (&mut detail, extra) {
            d.extend(e);
        }
        audit(conn, now, actor, action, &m.object(), &detail).await?;
        Ok(())
    }
}

/// The citizen of ticket `id`, read on `conn`.
async fn citizen_of(conn: &mut AnyConnection, id: i64) -> Result<Citizen, QueueError> {
    let text: String = sqlx::query_scalar("SELECT citizen FROM tickets WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    parse_citizen(id, &text)
}

fn parse_citizen(id: i64, text: &str) -> Result<Citizen, QueueError> {
    serde_json::from_str(text).map_err(|e| QueueError::Corrupt(format!("ticket {id} citizen: {e}")))
}

/// When an event the console records now happens: now, or the ticket's last event when that
/// is later (a client's event stamped a little in the future), so events stay in order.
async fn event_time(
    conn: &mut AnyConnection,
    ticket_id: i64,
    now: Timestamp,
) -> Result<Timestamp, QueueError> {
    let last: Option<i64> = sqlx::query_scalar("SELECT last_event_at FROM tickets WHERE id = $1")
        .bind(ticket_id)
        .fetch_optional(&mut *conn)
        .await?
        .flatten();
    Ok(Timestamp(last.map_or(now.0, |l| l.max(now.0))))
}

/// The event of ticket `ticket_id` recorded under `key`.
async fn event_by_key(
    conn: &mut AnyConnection,
    ticket_id: i64,
    key: &str,
) -> Result<Option<EventRecord>, QueueError> {
    let row = sqlx::query(
        "SELECT id, kind, occurred_at, source, idempotency_key, data, recorded_at \
         FROM ticket_events WHERE ticket_id = $1 AND idempotency_key = $2",
    )
    .bind(ticket_id)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| event_from_row(&r)).transpose()?)
}

/// The id of the event of ticket `ticket_id` recorded under `key`.
async fn event_id_of(
    conn: &mut AnyConnection,
    ticket_id: i64,
    key: &str,
) -> Result<i64, QueueError> {
    event_by_key(conn, ticket_id, key)
        .await?
        .map(|e| e.id)
        .ok_or_else(|| QueueError::Corrupt(format!("event {key} of ticket {ticket_id} vanished")))
}

/// Inserts `n` (once: its unique key) and returns its id.
async fn insert_and_find(
    conn: &mut AnyConnection,
    n: &NewOutbox,
    now: Timestamp,
) -> Result<i64, QueueError> {
    insert_outbox(conn, n, now).await?;
    let id: i64 = sqlx::query_scalar(
        "SELECT id FROM outbox WHERE COALESCE(ticket_id, 0) = $1 AND kind = $2 \
         AND dedupe_key = $3 AND recipient = $4",
    )
    .bind(n.ticket_id)
    .bind(n.kind.as_str())
    .bind(&n.dedupe_key)
    .bind(n.recipient.as_str())
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// The citizen's messages of ticket `ticket_id`, for a contact correction.
async fn notices_of(
    conn: &mut AnyConnection,
    ticket_id: i64,
) -> Result<Vec<fallback::Notice>, QueueError> {
    let rows = sqlx::query(
        "SELECT id, kind, dedupe_key, state, resolved_at, language, payload FROM outbox \
         WHERE ticket_id = $1 AND recipient = 'citizen' ORDER BY id",
    )
    .bind(ticket_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let kind: String = r.try_get("kind")?;
        // A kind this version does not know is left alone.
        let Some(kind) = Kind::parse(&kind) else {
            continue;
        };
        let language: String = r.try_get("language")?;
        let payload: String = r.try_get("payload")?;
        out.push(fallback::Notice {
            id: r.try_get("id")?,
            kind,
            dedupe_key: r.try_get("dedupe_key")?,
            state: r.try_get("state")?,
            resolved: r.try_get::<Option<i64>, _>("resolved_at")?.is_some(),
            language: language.parse().unwrap_or_default(),
            payload: serde_json::from_str(&payload).unwrap_or_else(|_| json!({})),
        });
    }
    Ok(out)
}

/// The addresses of a `contact_changed` body, masked (for the audit and the answer).
fn masked_contacts(change: &EventBody) -> Value {
    match change {
        EventBody::ContactChanged {
            email, mobile, pec, ..
        } => json!({
            "email": email.as_deref().map(mask),
            "mobile": mobile.as_deref().map(mask),
            "pec": pec.as_deref().map(mask),
        }),
        _ => Value::Null,
    }
}
