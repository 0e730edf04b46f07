//! The console's reads: the ticket search (indexed, a page at a time) and everything the ticket
//! page shows. Errors are the tickets repository's ([`TicketError`]): these are reads of
//! tickets and what hangs off them.
//!
//! Reads go through the store's reading connections (SQLite's readers, beside the one writer),
//! so a page being read never holds up the daemon's writes.

use serde_json::Value;
use sqlx::Row;

use super::tickets::event_from_row;
use super::{Desk, EventRecord, TICKET_COLUMNS, TicketError, TicketRecord, ts};
use crate::time::Timestamp;

/// Which tickets by state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchState {
    /// Not closed.
    Open,
    /// Open, in this SLA state (`running`, `warning`, `paused`, `breached`).
    Sla(String),
    Closed,
}

/// Where a page starts: after this ticket. A search with a period goes by receipt (newest
/// first) then id; any other by id alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Id(i64),
    Received(Timestamp, i64),
}

impl Cursor {
    /// The cursor as the client carries it: `123` or `1767225600.123`.
    pub fn encode(&self) -> String {
        match self {
            Cursor::Id(id) => id.to_string(),
            Cursor::Received(at, id) => format!("{}.{id}", at.0),
        }
    }

    /// A cursor this store gave, or `None`.
    pub fn decode(s: &str) -> Option<Cursor> {
        match s.split_once('.') {
            None => s.parse().ok().map(Cursor::Id),
            Some((at, id)) => Some(Cursor::Received(
                Timestamp(at.parse().ok()?),
                id.parse().ok()?,
            )),
        }
    }
}

/// A search: every filter given must hold (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Any of these numbers (the spellings of one number the matcher read; at most a few).
    pub numbers: Vec<String>,
    /// Upper-cased.
    pub fiscal_code: Option<String>,
    /// Lower-cased.
    pub email: Option<String>,
    /// E.164.
    pub mobile: Option<String>,
    pub office: Option<String>,
    pub state: Option<SearchState>,
    /// Instants `[from, to)` of the receipt.
    pub period: Option<(Timestamp, Timestamp)>,
    pub after: Option<Cursor>,
    /// 1–100.
    pub limit: i64,
}

/// One ticket of a search page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRow {
    pub id: i64,
    pub number: String,
    pub subject: String,
    pub office: String,
    pub priority: String,
    pub category: String,
    /// `running`, `warning`, `paused`, `breached` (as of the last refresh) or `closed`.
    pub state: &'static str,
    pub received_at: Timestamp,
    pub due_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub fiscal_code: Option<String>,
}

/// A page of a search and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    pub rows: Vec<SearchRow>,
    pub next: Option<Cursor>,
}

/// The most rows of each list on the ticket page; a longer list is cut and says so.
pub const PAGE_LIST_CAP: usize = 500;

/// One message of a ticket, as the outbox keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    pub id: i64,
    pub kind: String,
    pub recipient: String,
    pub channel: String,
    pub address: String,
    pub language: String,
    pub state: String,
    pub dlr_state: Option<String>,
    pub dlr_parts: Option<i64>,
    pub created_at: Timestamp,
    pub not_before: Timestamp,
    pub delivered_at: Option<Timestamp>,
    pub attempts: i64,
    pub resent: i64,
    pub in_doubt: bool,
    pub provider: Option<String>,
    pub provider_id: Option<String>,
    pub last_error: Option<String>,
    /// How the office handled it from a work queue (`outbox.resolution`: action, by, at,
    /// reason, replacement, event), `None` until then.
    pub resolution: Option<serde_json::Value>,
    /// The stored words (`None` before the first attempt, or unreadable).
    pub rendered: Option<crate::templates::RenderedMessage>,
    pub attempt_log: Vec<AttemptRow>,
    pub receipts: Vec<ReceiptRow>,
    pub parts: Vec<PartRow>,
}

/// One attempt to deliver a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub attempt: i64,
    /// Milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    pub latency_ms: i64,
    pub channel: String,
    pub provider: String,
    pub outcome: String,
    pub code: Option<String>,
    pub provider_id: Option<String>,
    pub error: Option<String>,
}

/// A receipt about a message (PEC, a provider's delivery report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRow {
    pub source: String,
    pub kind: String,
    pub final_state: String,
    pub detail: Option<String>,
    pub received_at: Timestamp,
}

/// The receipt state of one part of an SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRow {
    pub part: i64,
    pub state: String,
    pub updated_at: Timestamp,
}

/// An inbound record matched to the ticket (a reply by e-mail, SMS or phone).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyRow {
    pub id: i64,
    pub route: String,
    pub received_at: Timestamp,
    pub sender: Option<String>,
    pub status: String,
    pub outcome: Option<String>,
    pub detail: Option<String>,
    /// What Messo read (`None` when the stored JSON is not readable any more).
    pub parsed: Option<messo_core::inbound::Parsed>,
}

/// Everything the ticket page shows that is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketPage {
    pub ticket: TicketRecord,
    pub links_revoked_at: Option<Timestamp>,
    /// Oldest first.
    pub events: Vec<EventRecord>,
    /// Oldest first, at most [`PAGE_LIST_CAP`].
    pub messages: Vec<MessageRecord>,
    /// Oldest first, at most [`PAGE_LIST_CAP`].
    pub replies: Vec<ReplyRow>,
    /// Newest first, at most [`PAGE_LIST_CAP`].
    pub audit: Vec<super::AuditRecord>,
    /// Which lists were cut at [`PAGE_LIST_CAP`] (`events`, `messages`, `replies`, `audit`,
    /// `attempts`).
    pub truncated: Vec<&'static str>,
}

/// An inbound record's stored facts, for an attachment download.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundAttachments {
    /// The number of the ticket it was matched to.
    pub number: Option<String>,
    pub attachments: Vec<messo_core::inbound::AttachmentMeta>,
}

const SEARCH_COLUMNS: &str = "id, number, subject, office, priority, category, sla_state, \
     received_at, sla_due_at, closed_at, fiscal_code, citizen_email, citizen_mobile";

fn search_row(r: &sqlx::any::AnyRow) -> Result<SearchRow, TicketError> {
    let closed_at = ts(r.try_get("closed_at")?);
    let state: String = r.try_get("sla_state")?;
    Ok(SearchRow {
        id: r.try_get("id")?,
        number: r.try_get("number")?,
        subject: r.try_get("subject")?,
        office: r.try_get("office")?,
        priority: r.try_get("priority")?,
        category: r.try_get("category")?,
        state: if closed_at.is_some() {
            "closed"
        } else {
            super::state_name(&state)
        },
        received_at: Timestamp(r.try_get("received_at")?),
        due_at: ts(r.try_get("sla_due_at")?),
        closed_at,
        email: r.try_get("citizen_email")?,
        mobile: r.try_get("citizen_mobile")?,
        fiscal_code: r.try_get("fiscal_code")?,
    })
}

/// A bound value of a search.
enum Bind {
    Text(String),
    Int(i64),
}

/// Caps a list at [`PAGE_LIST_CAP`] rows (read one more to know), noting it when cut.
fn cap<T>(mut rows: Vec<T>, name: &'static str, truncated: &mut Vec<&'static str>) -> Vec<T> {
    if rows.len() > PAGE_LIST_CAP {
        rows.truncate(PAGE_LIST_CAP);
        truncated.push(name);
    }
    rows
}

impl Desk<'_> {
    /// A page of tickets matching every filter of `q`, newest first: by id, or with a period
    /// by receipt then id. The statement is built from fixed fragments; every value is bound.
    pub async fn search(&self, q: &SearchQuery) -> Result<SearchPage, TicketError> {
        let limit = q.limit.clamp(1, 100);
        let mut sql = format!("SELECT {SEARCH_COLUMNS} FROM tickets WHERE 1 = 1");
        let mut binds: Vec<Bind> = Vec::new();
        let mut n = 0usize;
        let mut next = |binds: &mut Vec<Bind>, b: Bind| {
            binds.push(b);
            n += 1;
            format!("${n}")
        };
        if !q.numbers.is_empty() {
            let ps: Vec<String> = q
                .numbers
                .iter()
                .map(|x| next(&mut binds, Bind::Text(x.clone())))
                .collect();
            sql.push_str(&format!(" AND number IN ({})", ps.join(", ")));
        }
        for (col, v) in [
            ("fiscal_code", &q.fiscal_code),
            ("citizen_email", &q.email),
            ("citizen_mobile", &q.mobile),
            ("office", &q.office),
        ] {
            if let Some(v) = v {
                let p = next(&mut binds, Bind::Text(v.clone()));
                sql.push_str(&format!(" AND {col} = {p}"));
            }
        }
        match &q.state {
            None => {}
            Some(SearchState::Open) => sql.push_str(" AND closed_at IS NULL"),
            Some(SearchState::Closed) => sql.push_str(" AND closed_at IS NOT NULL"),
            Some(SearchState::Sla(s)) => {
                let p = next(&mut binds, Bind::Text(s.clone()));
                sql.push_str(&format!(" AND closed_at IS NULL AND sla_state = {p}"));
            }
        }
        let by_receipt = q.period.is_some();
        if let Some((from, to)) = q.period {
            // After a cursor, the period ends at the cursor's instant: one bound, which SQLite
            // takes as the end of the index range; the row comparison below orders the ties.
            let to = match q.after {
                Some(Cursor::Received(at, _)) => to.min(Timestamp(at.0.saturating_add(1))),
                _ => to,
            };
            let a = next(&mut binds, Bind::Int(from.0));
            let b = next(&mut binds, Bind::Int(to.0));
            sql.push_str(&format!(" AND received_at >= {a} AND received_at < {b}"));
        }
        match (q.after, by_receipt) {
            (None, _) => {}
            (Some(Cursor::Id(id)), false) => {
                let p = next(&mut binds, Bind::Int(id));
                sql.push_str(&format!(" AND id < {p}"));
            }
            (Some(Cursor::Received(at, id)), true) => {
                let a = next(&mut binds, Bind::Int(at.0));
                let b = next(&mut binds, Bind::Int(id));
                sql.push_str(&format!(" AND (received_at, id) < ({a}, {b})"));
            }
            // A cursor of another order: the caller checks; here it reads as the start.
            (Some(_), _) => {}
        }
        if by_receipt {
            sql.push_str(" ORDER BY received_at DESC, id DESC");
        } else {
            sql.push_str(" ORDER BY id DESC");
        }
        sql.push_str(&format!(" LIMIT {}", limit + 1));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            query = match b {
                Bind::Text(s) => query.bind(s),
                Bind::Int(i) => query.bind(i),
            };
        }
        let rows = query.fetch_all(self.store.read_pool()).await?;
        let mut rows = rows.iter().map(search_row).collect::<Result<Vec<_>, _>>()?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = more
            .then(|| rows.last())
            .flatten()
            .map(|r| match by_receipt {
                true => Cursor::Received(r.received_at, r.id),
                false => Cursor::Id(r.id),
            });
        Ok(SearchPage { rows, next })
    }

    /// Everything the ticket page shows of ticket `number`, or `None` when there is no such
    /// ticket. A handful of indexed reads, each list bounded.
    pub async fn ticket_page(&self, number: &str) -> Result<Option<TicketPage>, TicketError> {
        let pool = self.store.read_pool();
        let sql =
            format!("SELECT {TICKET_COLUMNS}, links_revoked_at FROM tickets WHERE number = $1");
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(number)
            .fetch_optional(pool)
            .await?
        else {
            return Ok(None);
        };
        let ticket = self.store.tickets().record_from_row(&row)?;
        let links_revoked_at = ts(row.try_get("links_revoked_at")?);
        let id = ticket.id;
        let cap_n = PAGE_LIST_CAP as i64 + 1;
        let events = async {
            // Every event: the SLA and its account replay them all.
            let rows = sqlx::query(
                "SELECT id, kind, occurred_at, source, idempotency_key, data, recorded_at \
                 FROM ticket_events WHERE ticket_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(event_from_row)
                .collect::<Result<Vec<_>, _>>()
        };
        let messages = async {
            let rows = sqlx::query(
                "SELECT id, kind, recipient, channel, address, language, state, dlr_state, \
                 dlr_parts, created_at, not_before, delivered_at, attempts, resent, in_doubt, \
                 provider, provider_id, last_error, resolution, rendered \
                 FROM outbox WHERE ticket_id = $1 ORDER BY id LIMIT $2",
            )
            .bind(id)
            .bind(cap_n)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(message_row)
                .collect::<Result<Vec<_>, TicketError>>()
        };
        let attempts = async {
            let rows = sqlx::query(
                "SELECT a.outbox_id, a.attempt, a.started_at_ms, a.latency_ms, a.channel, \
                 a.provider, a.outcome, a.code, a.provider_id, a.error \
                 FROM delivery_attempts a JOIN outbox o ON o.id = a.outbox_id \
                 WHERE o.ticket_id = $1 ORDER BY a.outbox_id, a.attempt LIMIT $2",
            )
            .bind(id)
            .bind(cap_n * 4)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get::<i64, _>("outbox_id")?,
                        AttemptRow {
                            attempt: r.try_get("attempt")?,
                            started_at_ms: r.try_get("started_at_ms")?,
                            latency_ms: r.try_get("latency_ms")?,
                            channel: r.try_get("channel")?,
                            provider: r.try_get("provider")?,
                            outcome: r.try_get("outcome")?,
                            code: r.try_get("code")?,
                            provider_id: r.try_get("provider_id")?,
                            error: r.try_get("error")?,
                        },
                    ))
                })
                .collect::<Result<Vec<_>, TicketError>>()
        };
        let receipts = async {
            let rows = sqlx::query(
                "SELECT r.outbox_id, r.source, r.kind, r.final, r.detail, r.received_at \
                 FROM delivery_receipts r JOIN outbox o ON o.id = r.outbox_id \
                 WHERE o.ticket_id = $1 ORDER BY r.outbox_id, r.id LIMIT $2",
            )
            .bind(id)
            .bind(cap_n * 4)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get::<i64, _>("outbox_id")?,
                        ReceiptRow {
                            source: r.try_get("source")?,
                            kind: r.try_get("kind")?,
                            final_state: r.try_get("final")?,
                            detail: r.try_get("detail")?,
                            received_at: Timestamp(r.try_get("received_at")?),
                        },
                    ))
                })
                .collect::<Result<Vec<_>, TicketError>>()
        };
        let parts = async {
            let rows = sqlx::query(
                "SELECT p.outbox_id, p.part, p.state, p.updated_at \
                 FROM dlr_parts p JOIN outbox o ON o.id = p.outbox_id \
                 WHERE o.ticket_id = $1 ORDER BY p.outbox_id, p.part LIMIT $2",
            )
            .bind(id)
            .bind(cap_n * 4)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get::<i64, _>("outbox_id")?,
                        PartRow {
                            part: r.try_get("part")?,
                            state: r.try_get("state")?,
                            updated_at: Timestamp(r.try_get("updated_at")?),
                        },
                    ))
                })
                .collect::<Result<Vec<_>, TicketError>>()
        };
        let replies = async {
            let rows = sqlx::query(
                "SELECT id, route, received_at, sender, status, outcome, detail, parsed \
                 FROM inbound_messages WHERE ticket_id = $1 ORDER BY id LIMIT $2",
            )
            .bind(id)
            .bind(cap_n)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let parsed: String = r.try_get("parsed")?;
                    Ok(ReplyRow {
                        id: r.try_get("id")?,
                        route: r.try_get("route")?,
                        received_at: Timestamp(r.try_get("received_at")?),
                        sender: r.try_get("sender")?,
                        status: r.try_get("status")?,
                        outcome: r.try_get("outcome")?,
                        detail: r.try_get("detail")?,
                        parsed: serde_json::from_str(&parsed).ok(),
                    })
                })
                .collect::<Result<Vec<_>, TicketError>>()
        };
        let audit = async {
            // Records about the ticket: by its number, and the older `ticket/<number>` form.
            let rows = sqlx::query(
                "SELECT at, actor, action, object, detail FROM audit_log \
                 WHERE object IN ($1, $2) ORDER BY id DESC LIMIT $3",
            )
            .bind(number)
            .bind(format!("ticket/{number}"))
            .bind(cap_n)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let detail: String = r.try_get("detail")?;
                    Ok(super::AuditRecord {
                        at: Timestamp(r.try_get("at")?),
                        actor: r.try_get("actor")?,
                        action: r.try_get("action")?,
                        object: r.try_get("object")?,
                        detail: serde_json::from_str(&detail).unwrap_or(Value::String(detail)),
                    })
                })
                .collect::<Result<Vec<_>, TicketError>>()
        };
        let (events, messages, attempts, receipts, parts, replies, audit) =
            tokio::try_join!(events, messages, attempts, receipts, parts, replies, audit)?;
        let mut truncated = Vec::new();
        let mut messages = cap(messages, "messages", &mut truncated);
        if attempts.len() as i64 == cap_n * 4 {
            truncated.push("attempts");
        }
        let index: std::collections::HashMap<i64, usize> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id, i))
            .collect();
        for (outbox_id, a) in attempts {
            if let Some(&i) = index.get(&outbox_id) {
                messages[i].attempt_log.push(a);
            }
        }
        for (outbox_id, r) in receipts {
            if let Some(&i) = index.get(&outbox_id) {
                messages[i].receipts.push(r);
            }
        }
        for (outbox_id, p) in parts {
            if let Some(&i) = index.get(&outbox_id) {
                messages[i].parts.push(p);
            }
        }
        let replies = cap(replies, "replies", &mut truncated);
        let audit = cap(audit, "audit", &mut truncated);
        Ok(Some(TicketPage {
            ticket,
            links_revoked_at,
            events,
            messages,
            replies,
            audit,
            truncated,
        }))
    }

    /// Records that `actor` was shown the citizen's contacts on ticket `number`.
    pub async fn contacts_revealed(
        &self,
        number: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<(), TicketError> {
        let mut conn = self.store.pool.acquire().await?;
        super::admin::audit(
            &mut conn,
            now,
            actor,
            "contacts.revealed",
            number,
            &serde_json::json!({}),
        )
        .await?;
        Ok(())
    }

    /// The attachments recorded with inbound record `id` and the ticket it was matched to, or
    /// `None` when there is no such record.
    pub async fn inbound_attachments(
        &self,
        id: i64,
    ) -> Result<Option<InboundAttachments>, TicketError> {
        let row = sqlx::query(
            "SELECT i.parsed, t.number FROM inbound_messages i \
             LEFT JOIN tickets t ON t.id = i.ticket_id WHERE i.id = $1",
        )
        .bind(id)
        .fetch_optional(self.store.read_pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let parsed: String = row.try_get("parsed")?;
        let parsed: messo_core::inbound::Parsed = serde_json::from_str(&parsed)
            .map_err(|e| TicketError::Corrupt(format!("inbound record {id}: {e}")))?;
        Ok(Some(InboundAttachments {
            number: row.try_get("number")?,
            attachments: parsed.attachments,
        }))
    }

    /// Records that `actor` downloaded an attachment (`object`: the ticket's number, or
    /// `inbound/<id>` for a record matched to none).
    pub async fn attachment_downloaded(
        &self,
        object: &str,
        actor: &str,
        detail: &Value,
        now: Timestamp,
    ) -> Result<(), TicketError> {
        let mut conn = self.store.pool.acquire().await?;
        super::admin::audit(
            &mut conn,
            now,
            actor,
            "attachment.downloaded",
            object,
            detail,
        )
        .await?;
        Ok(())
    }
}

fn message_row(r: &sqlx::any::AnyRow) -> Result<MessageRecord, TicketError> {
    Ok(MessageRecord {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        recipient: r.try_get("recipient")?,
        channel: r.try_get("channel")?,
        address: r.try_get("address")?,
        language: r.try_get("language")?,
        state: r.try_get("state")?,
        dlr_state: r.try_get("dlr_state")?,
        dlr_parts: r.try_get::<Option<i64>, _>("dlr_parts")?,
        created_at: Timestamp(r.try_get("created_at")?),
        not_before: Timestamp(r.try_get("not_before")?),
        delivered_at: ts(r.try_get("delivered_at")?),
        attempts: r.try_get("attempts")?,
        resent: r.try_get("resent")?,
        in_doubt: r.try_get::<i64, _>("in_doubt")? != 0,
        provider: r.try_get("provider")?,
        provider_id: r.try_get("provider_id")?,
        last_error: r.try_get("last_error")?,
        resolution: r
            .try_get::<Option<String>, _>("resolution")?
            .and_then(|t| serde_json::from_str(&t).ok()),
        rendered: r
            .try_get::<Option<String>, _>("rendered")?
            .and_then(|t| serde_json::from_str(&t).ok()),
        attempt_log: Vec::new(),
        receipts: Vec::new(),
        parts: Vec::new(),
    })
}
