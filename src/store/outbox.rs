//! The engine cycle's transaction and the outbox: rows owed, leased, delivered.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use sqlx::{AnyConnection, Row};

use super::admin::audit;
use super::tickets::{event_from_row, insert_event};
use super::{Backend, EventRecord, Outbox, TicketRecord};
use crate::domain::{Address, Channel, Kind, Lang, Recipient};
use crate::engine::{Decision, Notice};
use crate::templates::RenderedMessage;
use crate::ticket::{Derived, EventBody, NewEvent, Source};
use crate::time::Timestamp;
use messo_core::delivery::fallback::DeadRow;

/// Why an outbox or engine-cycle operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Ticket(#[from] super::TicketError),
    #[error(transparent)]
    Registry(#[from] super::RegistryError),
    #[error("calendar: {0}")]
    Calendar(#[from] crate::calendar::CalendarError),
    #[error(transparent)]
    OutOfRange(#[from] crate::sla::OutOfRange),
}

/// (ticket id, due_at, state, elapsed_s, next_check_at) for the batched cache update.
type SlaRow = (i64, Option<i64>, &'static str, i64, Option<i64>);

/// A notice a ticket already has: (ticket id, kind, dedupe key, recipient).
type Owed = (i64, String, String, String);

/// What one engine pass loads for its tickets.
#[derive(Default)]
struct CycleBatch {
    tickets: HashMap<i64, TicketRecord>,
    events: HashMap<i64, Vec<EventRecord>>,
    owed: HashSet<Owed>,
}

/// What one engine pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// Tickets looked at.
    pub tickets: u64,
    /// Outbox rows created (owed notices that were not there yet).
    pub owed: u64,
}

/// An outbox row leased for sending, its stored values parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    /// 0 when the message is about no ticket (an answer to a reply that named none, an SMS
    /// opt-out confirmation).
    pub ticket_id: i64,
    pub kind: Kind,
    pub dedupe_key: String,
    pub recipient: Recipient,
    pub channel: Channel,
    /// Of the channel's kind.
    pub address: Address,
    pub language: Lang,
    pub payload: Value,
    pub not_before: Timestamp,
    /// This attempt's number (1 for the first).
    pub attempts: i64,
    pub created_at: Timestamp,
    /// An earlier attempt may have gone through (its result was never recorded, or was
    /// uncertain).
    pub in_doubt: bool,
    /// Identifies this lease: a result is written only while the lease is still ours.
    pub lease_token: i64,
    /// The words it goes out with, once rendered (kept for every later attempt).
    pub rendered: Option<crate::templates::RenderedMessage>,
}

impl OutboxRow {
    /// What the fallback chain needs to know of the row, once it is dead.
    pub fn dead(&self) -> DeadRow {
        DeadRow {
            ticket_id: self.ticket_id,
            kind: self.kind,
            dedupe_key: self.dedupe_key.clone(),
            recipient: self.recipient,
            channel: self.channel,
            language: self.language,
            payload: self.payload.clone(),
        }
    }
}

/// A leased row with a stored value this version cannot read (written by an older one, or by
/// hand). It is never sent: it ends dead with `error`, like a message refused for good.
#[derive(Debug, Clone, PartialEq)]
pub struct UnreadableRow {
    pub id: i64,
    /// 0 when the message is about no ticket.
    pub ticket_id: i64,
    pub lease_token: i64,
    /// This attempt's number.
    pub attempt: i64,
    pub in_doubt: bool,
    /// The channel as stored (the attempt is recorded under it).
    pub channel: String,
    /// What does not parse. It does not quote an address.
    pub error: String,
    /// The rest of the row, when only its address failed: the fallback chain serves the
    /// citizen on the next channel, as for an address a channel refuses.
    pub dead: Option<DeadRow>,
}

/// What one lease took: the rows to send, and those that cannot be read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Leased {
    pub rows: Vec<OutboxRow>,
    pub unreadable: Vec<UnreadableRow>,
}

impl Leased {
    /// How many rows were leased.
    pub fn len(&self) -> usize {
        self.rows.len() + self.unreadable.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A lease not yet free to go out (see `Outbox::begin_lease`). Dropped without `commit`, it is
/// undone on PostgreSQL (the rows stay due); on SQLite it stands and expires.
pub struct Lease<'a> {
    store: &'a super::Store,
    tx: Option<sqlx::Transaction<'static, sqlx::Any>>,
}

impl Lease<'_> {
    /// Keeps the words of the leased rows `rows` (see `Outbox::save_rendered`), inside the
    /// lease's transaction on PostgreSQL.
    pub async fn save_rendered(
        &mut self,
        rows: &[(i64, RenderedMessage)],
    ) -> Result<(), OutboxError> {
        let outbox = Outbox { store: self.store };
        match &mut self.tx {
            Some(tx) => outbox.save_rendered_in(tx, rows).await,
            None => outbox.save_rendered(rows).await,
        }
    }

    /// Ends the lease's transaction: from here its rows may go out.
    pub async fn commit(self) -> Result<(), OutboxError> {
        if let Some(tx) = self.tx {
            tx.commit().await?;
        }
        Ok(())
    }
}

pub use messo_core::delivery::NewOutbox;

/// Records `receipt` once; false when it was recorded before.
async fn insert_receipt(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    receipt: &Receipt<'_>,
    now: Timestamp,
) -> Result<bool, OutboxError> {
    Ok(sqlx::query(
        "INSERT INTO delivery_receipts (outbox_id, source, kind, final, detail, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (outbox_id, source, kind) DO NOTHING",
    )
    .bind(receipt.outbox_id)
    .bind(receipt.source)
    .bind(receipt.kind)
    .bind(receipt.final_state)
    .bind(receipt.detail)
    .bind(now.0)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1)
}

/// An IO message the status pass reads back.
#[derive(Debug, Clone, PartialEq)]
pub struct IoCheckRow {
    pub id: i64,
    /// The codice fiscale it went to.
    pub address: String,
    /// IO's message id.
    pub provider_id: String,
    /// IO already said it is in the citizen's inbox.
    pub processed: bool,
    /// What it was, for a replacement or a copy by the written route.
    pub dead: DeadRow,
}

/// A receipt about a sent message (a PEC receipt, a provider's delivery report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt<'a> {
    pub outbox_id: i64,
    /// Where it came from: `pec`, or a provider's name.
    pub source: &'a str,
    pub kind: &'a str,
    /// `delivered`, `failed` or `pending`.
    pub final_state: &'a str,
    pub detail: &'a str,
}

/// One attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub provider: String,
    pub outcome: &'static str,
    pub code: Option<String>,
    pub provider_id: Option<String>,
    pub error: Option<String>,
    pub started_at_ms: i64,
    pub latency_ms: i64,
}

/// A leased row's result, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub id: i64,
    pub lease_token: i64,
    pub attempt: i64,
    pub channel: String,
    pub attempts: Vec<AttemptRecord>,
    /// pending | retry | delivered | dead | uncertain
    pub state: &'static str,
    pub not_before: Option<Timestamp>,
    pub error: Option<String>,
    pub provider: Option<String>,
    pub provider_id: Option<String>,
    pub in_doubt: bool,
    /// This attempt sent a message that may already have been sent.
    pub resent: bool,
    /// The attempt was not made (no provider available): it does not count.
    pub refund: bool,
    pub delivered_at: Option<Timestamp>,
    pub replacement: Option<NewOutbox>,
}

/// A recorded attempt, read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttemptView {
    pub attempt: i64,
    pub started_at_ms: i64,
    pub latency_ms: i64,
    pub channel: String,
    pub provider: String,
    pub outcome: String,
    pub code: Option<String>,
    pub provider_id: Option<String>,
    pub error: Option<String>,
}

/// An outbox row's delivery state, read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryState {
    pub state: String,
    pub attempts: i64,
    pub resent: i64,
    pub provider: Option<String>,
    pub provider_id: Option<String>,
    pub last_error: Option<String>,
    pub channel: String,
    pub address: String,
    pub kind: String,
}

/// What a row is, parsed from the columns `ticket_id, kind, dedupe_key, recipient, channel,
/// language, payload`; the inner `Err` says what does not parse. A language this version does
/// not know is read as Italian, as it always was.
pub(crate) fn dead_row_from(r: &sqlx::any::AnyRow) -> Result<Result<DeadRow, String>, sqlx::Error> {
    let kind: String = r.try_get("kind")?;
    let recipient: String = r.try_get("recipient")?;
    let channel: String = r.try_get("channel")?;
    let language: String = r.try_get("language")?;
    let payload: String = r.try_get("payload")?;
    let Some(kind) = Kind::parse(&kind) else {
        return Ok(Err(format!("unknown kind {kind:?}")));
    };
    let Some(recipient) = Recipient::parse(&recipient) else {
        return Ok(Err(format!("unknown recipient {recipient:?}")));
    };
    let Some(channel) = Channel::parse(&channel) else {
        return Ok(Err(format!("unknown channel {channel:?}")));
    };
    let payload = match serde_json::from_str(&payload) {
        Ok(p) => p,
        Err(e) => return Ok(Err(format!("the payload is not JSON: {e}"))),
    };
    Ok(Ok(DeadRow {
        ticket_id: r.try_get::<Option<i64>, _>("ticket_id")?.unwrap_or(0),
        kind,
        dedupe_key: r.try_get("dedupe_key")?,
        recipient,
        channel,
        language: language.parse().unwrap_or_default(),
        payload,
    }))
}

/// An outbox row read with the columns `lease_outbox` returns; `token` is the lease it is under.
/// A row with a value that does not parse is an [`UnreadableRow`] (only a column the database
/// cannot give is an error).
fn outbox_row_from(
    r: &sqlx::any::AnyRow,
    token: i64,
) -> Result<Result<OutboxRow, UnreadableRow>, OutboxError> {
    let id: i64 = r.try_get("id")?;
    let attempts: i64 = r.try_get("attempts")?;
    let in_doubt = r.try_get::<i64, _>("in_doubt")? != 0;
    let unreadable = |error: String, dead: Option<DeadRow>| -> Result<_, OutboxError> {
        Ok(Err(UnreadableRow {
            id,
            ticket_id: r.try_get::<Option<i64>, _>("ticket_id")?.unwrap_or(0),
            lease_token: token,
            attempt: attempts,
            in_doubt,
            channel: r.try_get("channel")?,
            error,
            dead,
        }))
    };
    let d = match dead_row_from(r)? {
        Ok(d) => d,
        Err(error) => return unreadable(error, None),
    };
    let address: String = r.try_get("address")?;
    let address = match Address::parse(d.channel, &address) {
        Ok(a) => a,
        Err(e) => {
            let error = format!("the stored address {} {e}", crate::redact::mask(&address));
            return unreadable(error, Some(d));
        }
    };
    Ok(Ok(OutboxRow {
        id,
        ticket_id: d.ticket_id,
        kind: d.kind,
        dedupe_key: d.dedupe_key,
        recipient: d.recipient,
        channel: d.channel,
        address,
        language: d.language,
        payload: d.payload,
        not_before: Timestamp(r.try_get("not_before")?),
        attempts,
        created_at: Timestamp(r.try_get("created_at")?),
        in_doubt,
        lease_token: token,
        rendered: r
            .try_get::<Option<String>, _>("rendered")?
            .and_then(|t| serde_json::from_str(&t).ok()),
    }))
}

pub(crate) async fn insert_outbox(
    conn: &mut sqlx::AnyConnection,
    n: &NewOutbox,
    now: Timestamp,
) -> Result<u64, OutboxError> {
    Ok(sqlx::query(
        "INSERT INTO outbox (ticket_id, kind, dedupe_key, recipient, channel, address, \
         language, payload, not_before, state, attempts, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 0, $10, $10) \
         ON CONFLICT DO NOTHING",
    )
    // 0 stands for "about no ticket" (stored as NULL; unique by kind, key and recipient).
    .bind((n.ticket_id != 0).then_some(n.ticket_id))
    .bind(n.kind.as_str())
    .bind(&n.dedupe_key)
    .bind(n.recipient.as_str())
    .bind(n.channel.as_str())
    .bind(n.address.as_str())
    .bind(n.language.as_str())
    .bind(n.payload.to_string())
    .bind(n.not_before.0)
    .bind(now.0)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

impl From<super::HistoryError> for OutboxError {
    fn from(e: super::HistoryError) -> Self {
        OutboxError::Ticket(e.into())
    }
}

impl From<crate::ticket::EventRejection> for OutboxError {
    fn from(e: crate::ticket::EventRejection) -> Self {
        OutboxError::Ticket(e.into())
    }
}

/// The input the engine decides on.
pub struct EngineInput<'a> {
    pub ticket: &'a TicketRecord,
    pub received_at: Timestamp,
    pub derived: &'a Derived,
    pub events: &'a [EventRecord],
}

impl Outbox<'_> {
    /// One engine pass over at most `limit` tickets whose `next_check_at` has come: each is
    /// replayed, handed to `decide`, and its SLA cache, next instant and owed notices are
    /// written in the same transaction. On PostgreSQL the tickets are claimed with
    /// `FOR UPDATE SKIP LOCKED`, so several daemons share the work without deciding a ticket
    /// twice at once; the outbox's unique key makes even that harmless.
    pub async fn engine_cycle<F>(
        &self,
        now: Timestamp,
        limit: i64,
        decide: F,
    ) -> Result<CycleReport, OutboxError>
    where
        F: Fn(EngineInput<'_>) -> Result<Decision, OutboxError>,
    {
        let mut tx = self.store.pool.begin().await?;
        let ids = self.claim_due(&mut tx, now, limit).await?;
        let mut report = CycleReport::default();
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(report);
        }
        let mut batch = self.load_batch(&mut tx, &ids, now).await?;
        let mut updates: Vec<SlaRow> = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(record) = batch.tickets.get(&id) else {
                continue;
            };
            let history = batch.events.remove(&id).unwrap_or_default();
            let decision = self
                .decide_ticket(&mut tx, record, history, &decide, now)
                .await?;
            report.owed += self
                .owe(&mut tx, id, &decision.notices, &mut batch.owed, now)
                .await?;
            let v = &decision.sla;
            updates.push((
                id,
                v.due_at.map(|t| t.0),
                v.state,
                v.elapsed_s,
                decision.next_check_at.map(|t| t.0),
            ));
            report.tickets += 1;
        }
        self.write_sla_cache(&mut tx, &updates, now).await?;
        tx.commit().await?;
        Ok(report)
    }

    /// The tickets whose `next_check_at` has come, oldest first; on PostgreSQL locked for this
    /// transaction, skipping those another daemon holds.
    async fn claim_due(
        &self,
        conn: &mut AnyConnection,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<i64>, OutboxError> {
        let lock = match self.store.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "SELECT id FROM tickets WHERE next_check_at IS NOT NULL AND next_check_at <= $1 \
             ORDER BY next_check_at LIMIT $2{lock}"
        );
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(now.0)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?)
    }

    /// Loads a batch in four queries: the tickets, their citizens' digital domiciles (the
    /// cache's answers still valid at `now`), their events, the notices they already have.
    async fn load_batch(
        &self,
        conn: &mut AnyConnection,
        ids: &[i64],
        now: Timestamp,
    ) -> Result<CycleBatch, OutboxError> {
        let list = self.store.placeholders(1, ids.len()).join(", ");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM tickets WHERE id IN ({list})",
            super::TICKET_COLUMNS
        )));
        for id in ids {
            q = q.bind(*id);
        }
        let mut batch = CycleBatch::default();
        for r in q.fetch_all(&mut *conn).await? {
            let t = self.store.tickets().record_from_row(&r)?;
            batch.tickets.insert(t.id, t);
        }
        // The domicile is never taken from the CRM: only from the cache INAD's answers fill.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT t.id, d.pec FROM tickets t \
             JOIN digital_domiciles d ON d.fiscal_code = t.fiscal_code \
             WHERE t.id IN ({list}) AND d.pec IS NOT NULL AND d.valid_until > {}",
            self.store.placeholders(ids.len() + 1, 1).join("")
        )));
        for id in ids {
            q = q.bind(*id);
        }
        for r in q.bind(now.0).fetch_all(&mut *conn).await? {
            let id: i64 = r.try_get(0)?;
            let pec: String = r.try_get(1)?;
            if let Some(t) = batch.tickets.get_mut(&id) {
                t.citizen.domicile = Some(pec);
            }
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, ticket_id, kind, occurred_at, source, idempotency_key, data, recorded_at \
             FROM ticket_events WHERE ticket_id IN ({list}) ORDER BY ticket_id, id"
        )));
        for id in ids {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&mut *conn).await? {
            let ticket_id: i64 = r.try_get("ticket_id")?;
            batch
                .events
                .entry(ticket_id)
                .or_default()
                .push(event_from_row(&r)?);
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT ticket_id, kind, dedupe_key, recipient FROM outbox WHERE ticket_id IN ({list})"
        )));
        for id in ids {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&mut *conn).await? {
            batch
                .owed
                .insert((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?));
        }
        Ok(batch)
    }

    /// The engine's decision for one ticket. When it says an expired suspension closes the
    /// ticket, Messo closes it itself, in this transaction, and decides again so the closure
    /// notice is owed with it; what was owed before the closure (the office's alert) stays owed.
    async fn decide_ticket<F>(
        &self,
        conn: &mut AnyConnection,
        record: &TicketRecord,
        mut history: Vec<EventRecord>,
        decide: &F,
        now: Timestamp,
    ) -> Result<Decision, OutboxError>
    where
        F: Fn(EngineInput<'_>) -> Result<Decision, OutboxError>,
    {
        let id = record.id;
        let (received_at, mut derived) = super::derive(id, &history)?;
        let mut decision = decide(EngineInput {
            ticket: record,
            received_at,
            derived: &derived,
            events: &history,
        })?;
        let Some((at, automatic)) = decision.close.clone() else {
            return Ok(decision);
        };
        let e = NewEvent {
            at: at.max(derived.last_event_at),
            body: EventBody::Closed { text: None },
        };
        crate::ticket::apply(&mut derived, received_at, &e, now)?;
        history.push(self.record_closure(conn, id, &e, automatic, now).await?);
        let mut closed = record.clone();
        closed.closed_at = Some(e.at);
        closed.waiting_since = None;
        let before = std::mem::take(&mut decision.notices);
        let mut decision = decide(EngineInput {
            ticket: &closed,
            received_at,
            derived: &derived,
            events: &history,
        })?;
        decision.notices.splice(0..0, before);
        decision.close = None;
        Ok(decision)
    }

    /// Appends the system's closure of a ticket whose suspension expired and closes the row.
    async fn record_closure(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        e: &NewEvent,
        automatic: Value,
        now: Timestamp,
    ) -> Result<EventRecord, OutboxError> {
        let hash = e.content_hash();
        let data = e.to_stored_json(Some(("automatic", automatic)));
        let event_id = insert_event(
            conn,
            id,
            e,
            Source::System,
            "suspension-cap",
            &hash,
            &data,
            now,
        )
        .await?;
        sqlx::query("UPDATE tickets SET closed_at = $1, waiting_since = NULL, last_event_at = $1 WHERE id = $2")
            .bind(e.at.0)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(EventRecord {
            id: event_id,
            kind: "closed".to_owned(),
            occurred_at: e.at,
            source: Source::System.as_str().to_owned(),
            idempotency_key: "suspension-cap".to_owned(),
            data,
            recorded_at: now,
        })
    }

    /// Writes the notices a decision owes that the ticket does not have yet; returns how many
    /// rows were new.
    async fn owe(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        notices: &[Notice],
        owed: &mut HashSet<Owed>,
        now: Timestamp,
    ) -> Result<u64, OutboxError> {
        let mut inserted = 0;
        for n in notices {
            let identity = (
                id,
                n.kind.as_str().to_owned(),
                n.key.clone(),
                n.recipient.as_str().to_owned(),
            );
            if owed.contains(&identity) {
                continue;
            }
            inserted += insert_outbox(
                conn,
                &NewOutbox {
                    ticket_id: id,
                    kind: n.kind,
                    dedupe_key: n.key.clone(),
                    recipient: n.recipient,
                    channel: n.channel,
                    address: n.address.clone(),
                    language: n.language,
                    payload: n.payload.clone(),
                    not_before: n.not_before,
                },
                now,
            )
            .await?;
            owed.insert(identity);
        }
        Ok(inserted)
    }

    /// Writes the SLA cache of a whole batch in a few statements (smaller chunks on PostgreSQL,
    /// where the cost of binding grows faster than the number of parameters).
    async fn write_sla_cache(
        &self,
        conn: &mut AnyConnection,
        updates: &[SlaRow],
        now: Timestamp,
    ) -> Result<(), OutboxError> {
        let chunk_size = match self.store.backend {
            Backend::Sqlite => 500,
            Backend::Postgres => 50,
        };
        for chunk in updates.chunks(chunk_size) {
            // Positional `?` on SQLite: it looks `$n` names up in a list, once per bound
            // parameter, which is quadratic over a 2,501-parameter statement (9 % of a pass).
            let ph = self.store.placeholders(1, 5 * chunk.len() + 1);
            let rows = ph[..5 * chunk.len()]
                .chunks(5)
                .map(|p| format!("({})", p.join(", ")))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "WITH v (id, due, state, elapsed, next) AS (VALUES {rows}) \
                 UPDATE tickets SET sla_due_at = v.due, sla_state = v.state, \
                 sla_elapsed_s = v.elapsed, next_check_at = v.next, sla_computed_at = {} \
                 FROM v WHERE tickets.id = v.id",
                ph[5 * chunk.len()]
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, due, state, elapsed, next) in chunk {
                q = q
                    .bind(*id)
                    .bind(*due)
                    .bind(*state)
                    .bind(*elapsed)
                    .bind(*next);
            }
            q.bind(now.0).execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// The earliest `next_check_at` of any ticket: when the engine must wake next.
    pub async fn earliest_check(&self) -> Result<Option<Timestamp>, OutboxError> {
        let t: Option<i64> = sqlx::query_scalar(
            "SELECT next_check_at FROM tickets WHERE next_check_at IS NOT NULL \
             ORDER BY next_check_at LIMIT 1",
        )
        .fetch_optional(&self.store.pool)
        .await?;
        Ok(t.map(Timestamp))
    }

    /// Leases up to `limit` outbox rows that may go out at `now` (pending, retry, or a lease
    /// that expired because its holder stopped) for `lease_s` seconds, on the given channels
    /// only (`None`: all), and commits the lease. A row whose lease expired is leased
    /// `in_doubt`: its earlier attempt may have gone through. A row with a stored value that no
    /// longer parses is leased too, among the unreadable ones, for the dispatcher to end.
    pub async fn lease_outbox(
        &self,
        now: Timestamp,
        limit: i64,
        lease_s: i64,
        channels: Option<&[Channel]>,
    ) -> Result<Leased, OutboxError> {
        let (lease, rows) = self.begin_lease(now, limit, lease_s, channels).await?;
        lease.commit().await?;
        Ok(rows)
    }

    /// Leases as `lease_outbox` does, and leaves the lease open for the words of its rows
    /// (`Lease::save_rendered`) until `Lease::commit`. On PostgreSQL the lease and the words
    /// are one transaction: one commit for the batch, and a row is never leased without the
    /// words it goes out with. On SQLite the lease is committed at once and the words are a
    /// statement of their own (the one writer is not held while the rows are rendered).
    pub async fn begin_lease(
        &self,
        now: Timestamp,
        limit: i64,
        lease_s: i64,
        channels: Option<&[Channel]>,
    ) -> Result<(Lease<'_>, Leased), OutboxError> {
        let sql = self.lease_sql(channels.map_or(0, <[Channel]>::len));
        let token = (getrandom::u64().unwrap_or(now.0 as u64) >> 1) as i64;
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now.0 + lease_s)
            .bind(token)
            .bind(now.0)
            .bind(now.0)
            .bind(now.0);
        for c in channels.unwrap_or(&[]) {
            q = q.bind(c.as_str());
        }
        q = q.bind(limit);
        let (tx, rows) = match self.store.backend {
            Backend::Sqlite => (None, q.fetch_all(&self.store.pool).await?),
            Backend::Postgres => {
                let mut tx = self.store.pool.begin().await?;
                let rows = q.fetch_all(&mut *tx).await?;
                (Some(tx), rows)
            }
        };
        // `attempts` is already counted: it is this attempt's number.
        let mut out = Leased::default();
        for r in &rows {
            match outbox_row_from(r, token)? {
                Ok(row) => out.rows.push(row),
                Err(u) => out.unreadable.push(u),
            }
        }
        out.rows.sort_by_key(|r| (r.not_before, r.id));
        let lease = Lease {
            store: self.store,
            tx,
        };
        Ok((lease, out))
    }

    /// The statement that claims and leases (SET expressions read the old row: a row still
    /// `sending` is one whose lease expired, so it comes back in doubt). Parameters are in the
    /// order they appear in the text (SQLite binds `?` by position): lease end, token, now ×3,
    /// the channels, the limit.
    fn lease_sql(&self, n_channels: usize) -> String {
        let lock = match self.store.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let ph = self.store.placeholders(1, 6 + n_channels);
        let filter = if n_channels > 0 {
            format!(" AND channel IN ({})", ph[5..5 + n_channels].join(", "))
        } else {
            String::new()
        };
        format!(
            "UPDATE outbox SET in_doubt = CASE WHEN state = 'sending' THEN 1 ELSE in_doubt END, \
             state = 'sending', lease_until = {}, lease_token = {}, attempts = attempts + 1, \
             updated_at = {} WHERE id IN (SELECT id FROM outbox \
             WHERE state IN ('pending', 'retry', 'sending') AND not_before <= {} \
             AND (state <> 'sending' OR lease_until < {}){filter} ORDER BY not_before, id LIMIT {}{lock}) \
             RETURNING id, ticket_id, kind, dedupe_key, recipient, channel, address, language, \
             payload, not_before, attempts, created_at, in_doubt, rendered",
            ph[0],
            ph[1],
            ph[2],
            ph[3],
            ph[4],
            ph[ph.len() - 1]
        )
    }

    /// Makes every lease expire at once, so the rows are leased again at the next pass, in
    /// doubt. Only for a daemon that knows it is alone (the SQLite lock): a lease left by a
    /// process that died is then known to be dead, and waiting for it to expire would only
    /// delay the citizen's message.
    pub async fn release_leases(&self, now: Timestamp) -> Result<u64, OutboxError> {
        let r = sqlx::query(
            "UPDATE outbox SET lease_until = 0, updated_at = $1 WHERE state = 'sending'",
        )
        .bind(now.0)
        .execute(&self.store.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Records the results of a batch of attempts: every attempt, each row's next state (only
    /// where the lease is still ours: the token is checked in the statement that writes the
    /// state), and the replacements owed by the fallback chain. A row's attempts, its state and
    /// its replacement are committed together; on SQLite the whole batch is one transaction.
    ///
    /// The rows travel as one JSON text per statement (see `json_rows`). On PostgreSQL each
    /// statement stays near `PG_STATEMENT_BYTES` (the attempts are inserted by a data-modifying
    /// `WITH`) and the batch is one transaction: one commit however many statements carry it.
    /// A batch that fits one statement and owes no replacement is that statement alone: one
    /// round trip, no `BEGIN`.
    pub async fn finish(&self, now: Timestamp, done: &[Finished]) -> Result<(), OutboxError> {
        if done.is_empty() {
            return Ok(());
        }
        let encoded: Vec<(String, String)> = done.iter().map(finished_json).collect();
        match self.store.backend {
            Backend::Sqlite => {
                let attempts = join_json(encoded.iter().map(|(a, _)| a.as_str()));
                let states = join_json(encoded.iter().map(|(_, u)| u.as_str()));
                let mut tx = self.store.pool.begin().await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO delivery_attempts ({ATTEMPT_COLUMNS}) SELECT * FROM {}",
                    self.store.json_rows(1, "a", ATTEMPT_TYPES)
                )))
                .bind(attempts)
                .execute(&mut *tx)
                .await?;
                sqlx::query(sqlx::AssertSqlSafe(self.finish_update_sql(1, 2)))
                    .bind(now.0)
                    .bind(states)
                    .execute(&mut *tx)
                    .await?;
                for f in done {
                    if let Some(n) = &f.replacement {
                        insert_outbox(&mut tx, n, now).await?;
                    }
                }
                tx.commit().await?;
            }
            Backend::Postgres => {
                let sizes: Vec<usize> = encoded.iter().map(|(a, u)| a.len() + u.len()).collect();
                let sql = format!(
                    "WITH a AS (INSERT INTO delivery_attempts ({ATTEMPT_COLUMNS}) SELECT * FROM {}) {}",
                    self.store.json_rows(2, "a", ATTEMPT_TYPES),
                    self.finish_update_sql(1, 3)
                );
                let runs = runs_by_bytes(&sizes, PG_STATEMENT_BYTES);
                let statement = |run: std::ops::Range<usize>| {
                    let rows = &encoded[run];
                    sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                        .bind(now.0)
                        .bind(join_json(rows.iter().map(|(a, _)| a.as_str())))
                        .bind(join_json(rows.iter().map(|(_, u)| u.as_str())))
                };
                let owes = done.iter().any(|f| f.replacement.is_some());
                if runs.len() == 1 && !owes {
                    statement(0..done.len()).execute(&self.store.pool).await?;
                } else {
                    // One commit for the batch, however many statements carry it.
                    let mut tx = self.store.pool.begin().await?;
                    for run in runs {
                        statement(run).execute(&mut *tx).await?;
                    }
                    for n in done.iter().filter_map(|f| f.replacement.as_ref()) {
                        insert_outbox(&mut tx, n, now).await?;
                    }
                    tx.commit().await?;
                }
            }
        }
        Ok(())
    }

    /// The statement that writes each row's state from the JSON text in parameter `rows`, where
    /// the lease is still ours; `now` is the parameter of the update time. (On SQLite the
    /// parameters are bound in the order they appear: `now` first.)
    fn finish_update_sql(&self, now: usize, rows: usize) -> String {
        format!(
            "UPDATE outbox SET state = v.state, not_before = COALESCE(v.nb, outbox.not_before), \
             last_error = v.err, provider = COALESCE(v.prov, outbox.provider), \
             provider_id = COALESCE(v.pid, outbox.provider_id), in_doubt = v.doubt, \
             resent = outbox.resent + v.dup, attempts = outbox.attempts - v.refund, \
             delivered_at = COALESCE(v.dlv, outbox.delivered_at), lease_until = NULL, \
             updated_at = {} FROM {} WHERE outbox.id = v.id AND outbox.lease_token = v.token \
             AND outbox.state = 'sending'",
            self.store.placeholders(now, 1).join(""),
            self.store.json_rows(rows, "v", STATE_TYPES)
        )
    }

    /// The citizens (contact JSON) of the given tickets, for the fallback chain.
    pub async fn citizens(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, crate::ticket::Citizen>, OutboxError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(200) {
            let list = self.store.placeholders(1, chunk.len()).join(", ");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT id, citizen FROM tickets WHERE id IN ({list})"
            )));
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.store.pool).await? {
                let id: i64 = r.try_get(0)?;
                let text: String = r.try_get(1)?;
                out.insert(
                    id,
                    serde_json::from_str(&text)
                        .map_err(|e| OutboxError::Corrupt(format!("ticket {id} citizen: {e}")))?,
                );
            }
        }
        Ok(out)
    }

    /// Every recorded attempt of an outbox row, oldest first.
    pub async fn attempts_of(&self, outbox_id: i64) -> Result<Vec<AttemptView>, OutboxError> {
        let rows = sqlx::query(
            "SELECT attempt, started_at_ms, latency_ms, channel, provider, outcome, code, \
             provider_id, error FROM delivery_attempts WHERE outbox_id = $1 ORDER BY id",
        )
        .bind(outbox_id)
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AttemptView {
                    attempt: r.try_get(0)?,
                    started_at_ms: r.try_get(1)?,
                    latency_ms: r.try_get(2)?,
                    channel: r.try_get(3)?,
                    provider: r.try_get(4)?,
                    outcome: r.try_get(5)?,
                    code: r.try_get(6)?,
                    provider_id: r.try_get(7)?,
                    error: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// One outbox row's delivery state: (state, attempts, resent, provider, provider_id,
    /// last_error).
    pub async fn delivery_state(
        &self,
        outbox_id: i64,
    ) -> Result<Option<DeliveryState>, OutboxError> {
        let r = sqlx::query(
            "SELECT state, attempts, resent, provider, provider_id, last_error, channel, address, kind \
             FROM outbox WHERE id = $1",
        )
        .bind(outbox_id)
        .fetch_optional(&self.store.pool)
        .await?;
        let Some(r) = r else { return Ok(None) };
        Ok(Some(DeliveryState {
            state: r.try_get(0)?,
            attempts: r.try_get(1)?,
            resent: r.try_get(2)?,
            provider: r.try_get(3)?,
            provider_id: r.try_get(4)?,
            last_error: r.try_get(5)?,
            channel: r.try_get(6)?,
            address: r.try_get(7)?,
            kind: r.try_get(8)?,
        }))
    }

    /// The earliest instant a queued message may go (for the dispatcher's timer).
    pub async fn earliest_message(&self) -> Result<Option<Timestamp>, OutboxError> {
        let t: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(CASE WHEN state = 'sending' THEN lease_until ELSE not_before END) FROM outbox \
             WHERE state IN ('pending', 'retry', 'sending')",
        )
        .fetch_one(&self.store.pool)
        .await?;
        Ok(t.map(Timestamp))
    }

    /// One outbox row as the dispatcher sees it (not leased), with its state.
    #[allow(clippy::type_complexity)]
    pub async fn outbox_row(
        &self,
        id: i64,
    ) -> Result<Option<(Result<OutboxRow, UnreadableRow>, String)>, OutboxError> {
        let r = sqlx::query(
            "SELECT id, ticket_id, kind, dedupe_key, recipient, channel, address, language, \
             payload, not_before, attempts, created_at, in_doubt, rendered, state FROM outbox WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.store.pool)
        .await?;
        let Some(r) = r else { return Ok(None) };
        Ok(Some((outbox_row_from(&r, 0)?, r.try_get("state")?)))
    }

    /// Records a receipt for a sent message; a failure receipt also turns the row dead and
    /// inserts its replacement, in the same transaction. Returns false for a receipt already
    /// recorded (nothing else happens then).
    pub async fn record_receipt(
        &self,
        receipt: &Receipt<'_>,
        dead: Option<(&str, Option<&NewOutbox>)>,
        now: Timestamp,
    ) -> Result<bool, OutboxError> {
        let outbox_id = receipt.outbox_id;
        let mut tx = self.store.pool.begin().await?;
        let new = insert_receipt(&mut tx, receipt, now).await?;
        if new && let Some((error, replacement)) = dead {
            let changed = sqlx::query(
                "UPDATE outbox SET state = 'dead', last_error = $1, updated_at = $2, lease_until = NULL \
                 WHERE id = $3 AND state <> 'dead'",
            )
            .bind(error)
            .bind(now.0)
            .bind(outbox_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1
                && let Some(r) = replacement
            {
                insert_outbox(&mut tx, r, now).await?;
            }
        }
        tx.commit().await?;
        Ok(new)
    }

    /// Records a receipt that owes a copy on another channel without ending the message (an
    /// IO notice not read in time: the written route gets it too). The copy is inserted with
    /// the receipt, once. Returns false for a receipt already recorded.
    pub async fn record_receipt_with_copy(
        &self,
        receipt: &Receipt<'_>,
        copy: Option<&NewOutbox>,
        now: Timestamp,
    ) -> Result<bool, OutboxError> {
        let mut tx = self.store.pool.begin().await?;
        let new = insert_receipt(&mut tx, receipt, now).await?;
        if new && let Some(c) = copy {
            insert_outbox(&mut tx, c, now).await?;
        }
        tx.commit().await?;
        Ok(new)
    }

    /// The IO messages the status pass reads back at `now`: accepted at least `settle_s` ago
    /// with no `processed`/`rejected`/`failed` receipt yet (within the message's lifetime in
    /// IO, seven days); and, of the kinds in `unread_kinds`, processed ones accepted at least
    /// `unread_after_s` ago with no `read`/`unread` receipt. At most `limit`, oldest first.
    pub async fn io_to_check(
        &self,
        now: Timestamp,
        settle_s: i64,
        unread_after_s: i64,
        unread_kinds: &[Kind],
        limit: i64,
    ) -> Result<Vec<IoCheckRow>, OutboxError> {
        let kinds: Vec<String> = unread_kinds
            .iter()
            .map(|k| format!("'{}'", k.as_str()))
            .collect();
        // The kinds are our own names (letters and underscores), never input.
        let kinds = if kinds.is_empty() {
            "''".to_owned()
        } else {
            kinds.join(", ")
        };
        let sql = format!(
            "SELECT o.id, o.ticket_id, o.kind, o.dedupe_key, o.recipient, o.channel, o.address, \
             o.language, o.payload, o.provider_id, \
             EXISTS (SELECT 1 FROM delivery_receipts r WHERE r.outbox_id = o.id AND r.source = 'io' \
                     AND r.kind = 'processed') AS processed \
             FROM outbox o \
             WHERE o.channel = 'io' AND o.state = 'delivered' AND o.provider_id IS NOT NULL \
               AND o.delivered_at > $1 AND ( \
                 (o.delivered_at <= $2 AND NOT EXISTS (SELECT 1 FROM delivery_receipts r \
                    WHERE r.outbox_id = o.id AND r.source = 'io' \
                      AND r.kind IN ('processed', 'rejected', 'failed'))) \
                 OR (o.kind IN ({kinds}) AND o.delivered_at <= $3 \
                     AND EXISTS (SELECT 1 FROM delivery_receipts r WHERE r.outbox_id = o.id \
                       AND r.source = 'io' AND r.kind = 'processed') \
                     AND NOT EXISTS (SELECT 1 FROM delivery_receipts r WHERE r.outbox_id = o.id \
                       AND r.source = 'io' AND r.kind IN ('read', 'unread')))) \
             ORDER BY o.id LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now.0 - 7 * 86_400)
            .bind(now.0 - settle_s)
            .bind(now.0 - unread_after_s)
            .bind(limit)
            .fetch_all(&self.store.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let text = |i: usize| -> Result<String, OutboxError> { Ok(r.try_get::<String, _>(i)?) };
            let (Some(kind), Some(recipient), Some(channel), Ok(language)) = (
                Kind::parse(&text(2)?),
                Recipient::parse(&text(4)?),
                Channel::parse(&text(5)?),
                text(7)?.parse::<Lang>(),
            ) else {
                continue;
            };
            let payload: Value = serde_json::from_str(&text(8)?).unwrap_or(Value::Null);
            let processed: bool = match r.try_get::<bool, _>(10) {
                Ok(b) => b,
                Err(_) => r.try_get::<i64, _>(10)? != 0,
            };
            out.push(IoCheckRow {
                id: r.try_get(0)?,
                address: text(6)?,
                provider_id: text(9)?,
                processed,
                dead: DeadRow {
                    ticket_id: r.try_get(1)?,
                    kind,
                    dedupe_key: text(3)?,
                    recipient,
                    channel,
                    language,
                    payload,
                },
            });
        }
        Ok(out)
    }

    /// The receipts of a message as (source, kind, final), oldest first.
    pub async fn receipts_of(
        &self,
        outbox_id: i64,
    ) -> Result<Vec<(String, String, String)>, OutboxError> {
        let rows = sqlx::query(
            "SELECT source, kind, final FROM delivery_receipts WHERE outbox_id = $1 ORDER BY id",
        )
        .bind(outbox_id)
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// Inserts one owed message directly (the `send-test` command and tests).
    pub async fn insert_message(
        &self,
        n: &NewOutbox,
        now: Timestamp,
    ) -> Result<Option<i64>, OutboxError> {
        let mut tx = self.store.pool.begin().await?;
        insert_outbox(&mut tx, n, now).await?;
        let id: Option<i64> = sqlx::query_scalar(
            // A message about no ticket is stored with a NULL ticket id (see `insert_outbox`).
            "SELECT id FROM outbox WHERE COALESCE(ticket_id, 0) = $1 AND kind = $2 \
             AND dedupe_key = $3 AND recipient = $4",
        )
        .bind(n.ticket_id)
        .bind(n.kind.as_str())
        .bind(&n.dedupe_key)
        .bind(n.recipient.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Housekeeping at once (no batches; the daemon runs [`Outbox::inbox_housekeeping`] and
    /// the batched `store.privacy().apply_retention`): messages delivered, dead or uncertain
    /// before `before` keep their row (its unique key is what stops a message being owed twice)
    /// but lose their words, address and payload; processed `crm_inbox` rows lose their
    /// payload; idempotency answers older than `keys_before` go. Returns (messages redacted,
    /// inbox rows redacted, keys removed).
    pub async fn housekeeping(
        &self,
        before: Timestamp,
        keys_before: Timestamp,
    ) -> Result<(u64, u64, u64), OutboxError> {
        let mut messages = 0;
        loop {
            let n = self
                .store
                .privacy()
                .message_bodies_batch(before, 500)
                .await
                .map_err(|e| OutboxError::Corrupt(e.to_string()))?;
            messages += n;
            if n < 500 {
                break;
            }
        }
        let (inbox, keys) = self.inbox_housekeeping(before, keys_before).await?;
        Ok((messages, inbox, keys))
    }

    /// Processed `crm_inbox` rows older than `before` lose their payload (the ticket and its
    /// citizen as the CRM wrote them); idempotency answers older than `keys_before` go.
    /// Returns (inbox rows redacted, keys removed).
    pub async fn inbox_housekeeping(
        &self,
        before: Timestamp,
        keys_before: Timestamp,
    ) -> Result<(u64, u64), OutboxError> {
        let inbox = sqlx::query(
            "UPDATE crm_inbox SET payload = '{}' WHERE status <> 'pending' AND processed_at < $1 \
             AND payload <> '{}'",
        )
        .bind(before.0)
        .execute(&self.store.pool)
        .await?
        .rows_affected();
        let keys = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(keys_before.0)
            .execute(&self.store.pool)
            .await?
            .rows_affected();
        Ok((inbox, keys))
    }

    /// Outbox rows of a ticket as (kind, dedupe key, recipient, channel, state), in id order.
    pub async fn outbox_of(
        &self,
        ticket_id: i64,
    ) -> Result<Vec<(String, String, String, String, String)>, OutboxError> {
        let rows = sqlx::query(
            "SELECT kind, dedupe_key, recipient, channel, state FROM outbox WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(ticket_id)
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                ))
            })
            .collect()
    }

    /// Marks `count` open tickets from internal id `from_id` on for a look at `now` (load tests:
    /// "these tickets changed"). Returns how many were marked.
    pub async fn mark_for_check(
        &self,
        from_id: i64,
        count: i64,
        now: Timestamp,
    ) -> Result<u64, OutboxError> {
        let r = sqlx::query(
            "UPDATE tickets SET next_check_at = $1 WHERE id >= $2 AND id < $3 AND closed_at IS NULL",
        )
        .bind(now.0)
        .bind(from_id)
        .bind(from_id + count)
        .execute(&self.store.pool)
        .await?;
        Ok(r.rows_affected())
    }
}

/// Bound data per PostgreSQL statement at most. sqlx 0.9 sets no `TCP_NODELAY` on its sockets: a
/// message that leaves in two writes (over TLS, two records of at most 16 KB) waits for the
/// server's delayed ACK, about 40 ms (see docs/performance.md, issue 6).
pub(crate) const PG_STATEMENT_BYTES: usize = 12 * 1024;

/// Consecutive runs of items whose sizes add up to at most `budget` (an item larger than the
/// budget is a run of its own).
pub(crate) fn runs_by_bytes(sizes: &[usize], budget: usize) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, n) in sizes.iter().enumerate() {
        if i > start && bytes + n > budget {
            runs.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += n;
    }
    if start < sizes.len() {
        runs.push(start..sizes.len());
    }
    runs
}

/// `[a,b,…]` from the JSON texts of the elements (an empty text adds none).
pub(crate) fn join_json<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for item in items.filter(|i| !i.is_empty()) {
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push(']');
    out
}

const ATTEMPT_COLUMNS: &str = "outbox_id, attempt, started_at_ms, latency_ms, channel, provider, \
     outcome, code, provider_id, error";
const ATTEMPT_TYPES: &[(&str, &str)] = &[
    ("outbox_id", "bigint"),
    ("attempt", "integer"),
    ("started_at_ms", "bigint"),
    ("latency_ms", "integer"),
    ("channel", "text"),
    ("provider", "text"),
    ("outcome", "text"),
    ("code", "text"),
    ("provider_id", "text"),
    ("error", "text"),
];
const STATE_TYPES: &[(&str, &str)] = &[
    ("id", "bigint"),
    ("token", "bigint"),
    ("state", "text"),
    ("nb", "bigint"),
    ("err", "text"),
    ("prov", "text"),
    ("pid", "text"),
    ("doubt", "integer"),
    ("dup", "integer"),
    ("refund", "integer"),
    ("dlv", "bigint"),
];

/// A finished row as JSON: its attempts (elements of the attempts' array, without the brackets,
/// empty when it has none) and its state (one element), in the column orders above.
fn finished_json(f: &Finished) -> (String, String) {
    let attempts = f
        .attempts
        .iter()
        .map(|a| {
            serde_json::json!([
                f.id,
                f.attempt,
                a.started_at_ms,
                a.latency_ms,
                f.channel,
                a.provider,
                a.outcome,
                a.code,
                a.provider_id,
                a.error
            ])
            .to_string()
        })
        .collect::<Vec<_>>()
        .join(",");
    let state = serde_json::json!([
        f.id,
        f.lease_token,
        f.state,
        f.not_before.map(|t| t.0),
        f.error,
        f.provider,
        f.provider_id,
        i64::from(f.in_doubt),
        i64::from(f.resent),
        i64::from(f.refund),
        f.delivered_at.map(|t| t.0)
    ])
    .to_string();
    (attempts, state)
}

/// `[id, words]` as JSON text, per row.
fn words_items(rows: &[(i64, RenderedMessage)]) -> Result<Vec<String>, OutboxError> {
    rows.iter()
        .map(|(id, r)| {
            serde_json::to_string(r)
                .map(|t| format!("[{id},{t}]"))
                .map_err(|e| OutboxError::Corrupt(format!("outbox {id}: {e}")))
        })
        .collect()
}

impl Outbox<'_> {
    /// Keeps the words each leased message goes out with, unless it already has them, each
    /// row's words committed when this returns (no row depends on another, so there is no
    /// transaction around them). SQLite takes them all in one statement of JSON; PostgreSQL in
    /// statements of about `PG_STATEMENT_BYTES` on one connection (see `save_rendered_in`). The
    /// dispatcher writes them inside its lease instead: `Lease::save_rendered`.
    pub async fn save_rendered(&self, rows: &[(i64, RenderedMessage)]) -> Result<(), OutboxError> {
        match self.store.backend {
            Backend::Sqlite => {
                let items = words_items(rows)?;
                sqlx::query(sqlx::AssertSqlSafe(self.words_sql()))
                    .bind(join_json(items.iter().map(String::as_str)))
                    .execute(&self.store.pool)
                    .await?;
            }
            Backend::Postgres => {
                let mut conn = self.store.pool.acquire().await?;
                self.save_rendered_in(&mut conn, rows).await?;
            }
        }
        Ok(())
    }

    /// `save_rendered` on one PostgreSQL connection (a transaction under way): the statements
    /// one after the other, committed with it. Each row's words are two plain parameters (its
    /// id, its words as text), not an element of one JSON text: the server then parses no
    /// JSON, which was a tenth of its work while e-mail was sent (the HTML is most of the
    /// words).
    async fn save_rendered_in(
        &self,
        conn: &mut AnyConnection,
        rows: &[(i64, RenderedMessage)],
    ) -> Result<(), OutboxError> {
        let words = rows
            .iter()
            .map(|(id, r)| {
                serde_json::to_string(r)
                    .map(|t| (*id, t))
                    .map_err(|e| OutboxError::Corrupt(format!("outbox {id}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sizes: Vec<usize> = words.iter().map(|(_, t)| t.len() + 24).collect();
        for run in runs_by_bytes(&sizes, PG_STATEMENT_BYTES) {
            let run = &words[run];
            let whens: String = (0..run.len())
                .map(|i| format!(" WHEN ${}::bigint THEN ${}::text", 2 * i + 1, 2 * i + 2))
                .collect();
            let ids = (0..run.len())
                .map(|i| format!("${}::bigint", 2 * i + 1))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "UPDATE outbox SET rendered = CASE id{whens} END \
                 WHERE id IN ({ids}) AND rendered IS NULL"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, text) in run {
                q = q.bind(*id).bind(text.as_str());
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// The statement that writes words from the JSON text in parameter 1 (SQLite).
    fn words_sql(&self) -> String {
        format!(
            "UPDATE outbox SET rendered = w.words FROM {} \
             WHERE outbox.id = w.id AND outbox.rendered IS NULL",
            self.store
                .json_rows(1, "w", &[("id", "bigint"), ("words", "json")])
        )
    }

    /// Queues a test message already rendered (kind `prova`, about no ticket); returns its id.
    pub async fn queue_test_message(
        &self,
        channel: Channel,
        address: &Address,
        rendered: &RenderedMessage,
        actor: &str,
        now: Timestamp,
    ) -> Result<i64, OutboxError> {
        let mut tx = self.store.pool.begin().await?;
        let key = format!("{}-{}", now.0, getrandom::u64().unwrap_or(0));
        let text = serde_json::to_string(rendered)
            .map_err(|e| OutboxError::Corrupt(format!("test message: {e}")))?;
        let id: i64 = sqlx::query(
            "INSERT INTO outbox (ticket_id, kind, dedupe_key, recipient, channel, address, \
             language, payload, not_before, state, attempts, created_at, updated_at, rendered) \
             VALUES (NULL, $1, $2, $3, $4, $5, $6, '{}', $7, 'pending', 0, $7, $7, $8) \
             RETURNING id",
        )
        .bind(Kind::Prova.as_str())
        .bind(&key)
        .bind(Recipient::Tester.as_str())
        .bind(channel.as_str())
        .bind(address.as_str())
        .bind(Lang::It.as_str())
        .bind(now.0)
        .bind(text)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        audit(
            &mut tx,
            now,
            actor,
            "template.test_send",
            &rendered.template,
            &serde_json::json!({"channel": channel.as_str(), "outbox_id": id,
                                "to": crate::redact::mask(address.as_str())}),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }
}
