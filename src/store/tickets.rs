//! The tickets repository: tickets, their events, the CRM inbox and idempotent answers.

use serde_json::Value;
use sqlx::{AnyConnection, Row};

use super::{
    Backend, EventRecord, HistoryError, InboxReport, ListQuery, Outcome, SlaView, StoredResponse,
    TICKET_COLUMNS, TicketRecord, Tickets, derive, evaluate, state_name, ts,
};
use crate::domain::{Category, Priority};
use crate::sla::OutOfRange;
use crate::ticket::record::check_appointment;
use crate::ticket::{
    Derived, EventBody, EventRejection, FieldError, NewEvent, NewTicket, Source, apply,
};
use crate::time::Timestamp;
use crate::versions::VersionError;

/// Why a ticket operation failed. `Invalid`, `NotFound`, `Conflict`, `KeyReused` and
/// `OutOfRange` are the client's to fix; the others are ours.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error(transparent)]
    Registry(#[from] super::RegistryError),
    #[error("invalid: {}", list(.0))]
    Invalid(Vec<FieldError>),
    #[error("ticket {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("idempotency key {0:?} was already used for a different event")]
    KeyReused(String),
    #[error(transparent)]
    OutOfRange(#[from] OutOfRange),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<EventRejection> for TicketError {
    fn from(r: EventRejection) -> Self {
        match r {
            EventRejection::Conflict(m) => TicketError::Conflict(m),
            EventRejection::Invalid { field, message } => {
                TicketError::Invalid(vec![FieldError { field, message }])
            }
        }
    }
}

impl TicketError {
    /// Whether the error is about the request (and would be the same on retry), not about us.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            TicketError::Invalid(_)
                | TicketError::NotFound(_)
                | TicketError::Conflict(_)
                | TicketError::KeyReused(_)
                | TicketError::OutOfRange(_)
        )
    }
}

impl Tickets<'_> {
    /// Creates a ticket. The same number with the same content again is `Unchanged`; with other
    /// content it is a `Conflict` naming the fields that differ.
    pub async fn create_ticket(
        &self,
        t: &NewTicket,
        source: Source,
        now: Timestamp,
    ) -> Result<Outcome, TicketError> {
        let mut tx = self.store.pool.begin().await?;
        let out = self.create_in(&mut tx, t, source, now).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Creates a ticket on `conn` (inside the caller's transaction).
    // Long because its INSERT binds 22 columns one per line: split from the statement, the binds
    // would no longer read against the placeholders they fill.
    async fn create_in(
        &self,
        conn: &mut AnyConnection,
        t: &NewTicket,
        source: Source,
        now: Timestamp,
    ) -> Result<Outcome, TicketError> {
        let hash = t.content_hash();
        let (cal_v, pol_v) = self.store.versions.current()?;
        let sla = self.store.versions.sla(cal_v, pol_v)?;
        let derived = Derived::new(t);
        let view = evaluate(&sla, t.received_at, &derived, now)?;
        let citizen = serde_json::to_value(&t.citizen).unwrap_or(Value::Null);
        let (step, step_text) = match &t.step {
            Some((s, x)) => (Some(s.as_str()), Some(x.as_str())),
            None => (None, None),
        };
        // Insert first; a number already taken is then looked at (fewer round trips for the
        // common case of a new ticket).
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO tickets (number, office, category, priority, subject, step, step_text, \
             citizen, fiscal_code, received_at, closed_at, waiting_since, policy_version, \
             calendar_version, create_hash, sla_due_at, sla_state, sla_elapsed_s, \
             sla_computed_at, next_check_at, last_event_at, created_at, updated_at, \
             citizen_mobile, citizen_email) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, NULL, $11, $12, $13, $14, \
             $15, $16, $17, $18, $19, $20, $20, $21, $22) \
             ON CONFLICT (number) DO NOTHING RETURNING id",
        )
        .bind(t.number.as_str())
        .bind(&t.office)
        .bind(t.category.as_str())
        .bind(t.priority.as_str())
        .bind(&t.subject)
        .bind(step)
        .bind(step_text)
        .bind(citizen.to_string())
        .bind(t.citizen.fiscal_code.as_deref())
        .bind(t.received_at.0)
        .bind(pol_v)
        .bind(cal_v)
        .bind(&hash)
        .bind(view.due_at.map(|d| d.0))
        .bind(view.state)
        .bind(view.elapsed_s)
        .bind(now.0)
        // The engine looks at a ticket at once after every write, then at its next instant.
        .bind(now.0)
        .bind(t.received_at.0)
        .bind(now.0)
        .bind(t.citizen.mobile.as_deref())
        .bind(t.citizen.email.as_deref().map(str::to_ascii_lowercase))
        .fetch_optional(&mut *conn)
        .await?;
        let Some(id) = inserted else {
            let existing = self
                .lock_ticket(conn, t.number.as_str())
                .await?
                .ok_or_else(|| TicketError::Corrupt("ticket vanished after a conflict".into()))?;
            return self.same_ticket(conn, existing, t, &hash).await;
        };
        let received = NewEvent {
            at: t.received_at,
            body: EventBody::Received,
        };
        let data = received.to_stored_json(Some(("ticket", t.to_json())));
        insert_event(conn, id, &received, source, "received", &hash, &data, now).await?;
        Ok(Outcome::Created(TicketRecord {
            id,
            number: t.number.as_str().to_owned(),
            office: t.office.clone(),
            category: t.category,
            priority: t.priority,
            subject: t.subject.clone(),
            step: t.step.clone(),
            citizen: t.citizen.clone(),
            received_at: t.received_at,
            closed_at: None,
            waiting_since: None,
            policy_version: pol_v,
            calendar_version: cal_v,
            sla: view,
        }))
    }

    /// Creates many tickets in one transaction (seeding and bulk loads); returns how many were new.
    pub async fn create_many(
        &self,
        tickets: &[NewTicket],
        source: Source,
        now: Timestamp,
    ) -> Result<u64, TicketError> {
        let mut tx = self.store.pool.begin().await?;
        let mut created = 0;
        for t in tickets {
            if matches!(
                self.create_in(&mut tx, t, source, now).await?,
                Outcome::Created(_)
            ) {
                created += 1;
            }
        }
        tx.commit().await?;
        Ok(created)
    }

    /// Inserts rows into `crm_inbox` as a CRM would (kind, ticket number, JSON payload), many
    /// per statement.
    pub async fn insert_inbox_rows(
        &self,
        rows: &[(&str, String, String)],
    ) -> Result<(), TicketError> {
        let mut tx = self.store.pool.begin().await?;
        for chunk in rows.chunks(500) {
            let values = self
                .store
                .placeholders(1, 3 * chunk.len())
                .chunks(3)
                .map(|p| format!("({})", p.join(", ")))
                .collect::<Vec<_>>()
                .join(", ");
            let sql =
                format!("INSERT INTO crm_inbox (kind, ticket_number, payload) VALUES {values}");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (kind, number, payload) in chunk {
                q = q.bind(*kind).bind(number.as_str()).bind(payload.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn same_ticket(
        &self,
        conn: &mut AnyConnection,
        (record, stored_hash): (TicketRecord, String),
        t: &NewTicket,
        hash: &str,
    ) -> Result<Outcome, TicketError> {
        let id = record.id;
        if stored_hash == hash {
            return Ok(Outcome::Unchanged(record));
        }
        // Name the fields that differ from the ticket as it first arrived.
        let first: Option<String> = sqlx::query_scalar(
            "SELECT data FROM ticket_events WHERE ticket_id = $1 AND kind = 'received'",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        let before = first
            .and_then(|d| serde_json::from_str::<Value>(&d).ok())
            .and_then(|v| v.get("ticket").cloned())
            .unwrap_or(Value::Null);
        let after = t.to_json();
        let mut fields: Vec<String> = Vec::new();
        if let (Value::Object(a), Value::Object(b)) = (&before, &after) {
            for (k, v) in b {
                if a.get(k) != Some(v) {
                    fields.push(k.clone());
                }
            }
        }
        Err(TicketError::Conflict(format!(
            "ticket {} already exists with different data (differs in: {})",
            t.number,
            if fields.is_empty() {
                "content".to_owned()
            } else {
                fields.join(", ")
            }
        )))
    }

    /// The ticket row, locked until the transaction ends (PostgreSQL), with its creation hash.
    async fn lock_ticket(
        &self,
        conn: &mut AnyConnection,
        number: &str,
    ) -> Result<Option<(TicketRecord, String)>, TicketError> {
        let sql = format!(
            "SELECT {TICKET_COLUMNS}, create_hash FROM tickets WHERE number = $1{}",
            self.store.lock_suffix()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(number)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|r| Ok((self.record_from_row(&r)?, r.try_get("create_hash")?)))
            .transpose()
    }

    /// Like [`Store::lock_ticket`], by internal id.
    async fn lock_ticket_id(
        &self,
        conn: &mut AnyConnection,
        id: i64,
    ) -> Result<Option<TicketRecord>, TicketError> {
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1{}",
            self.store.lock_suffix()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|r| self.record_from_row(&r)).transpose()
    }

    /// Appends an event to ticket `number`. The idempotency key defaults to the event's content
    /// hash, so the same event sent twice is recorded once.
    pub async fn append_event(
        &self,
        number: &str,
        e: &NewEvent,
        idempotency_key: Option<&str>,
        source: Source,
        now: Timestamp,
    ) -> Result<Outcome, TicketError> {
        let mut tx = self.store.pool.begin().await?;
        let out = self
            .append_in(&mut tx, number, e, idempotency_key, source, now)
            .await?;
        tx.commit().await?;
        Ok(out)
    }

    pub(super) async fn append_in(
        &self,
        conn: &mut AnyConnection,
        number: &str,
        e: &NewEvent,
        idempotency_key: Option<&str>,
        source: Source,
        now: Timestamp,
    ) -> Result<Outcome, TicketError> {
        let Some((record, _)) = self.lock_ticket(conn, number).await? else {
            return Err(TicketError::NotFound(number.to_owned()));
        };
        let hash = e.content_hash();
        let key = idempotency_key.unwrap_or(&hash);
        let (received_at, mut derived, keys) = self.replay(conn, record.id).await?;
        if let Some((_, seen)) = keys.iter().find(|(k, _)| k == key) {
            if *seen != hash {
                return Err(TicketError::KeyReused(key.to_owned()));
            }
            return Ok(Outcome::Unchanged(record));
        }
        let before = derived.clone();
        apply(&mut derived, received_at, e, now)?;
        // An appointment's date against the office hours and the term, at the ticket's versions.
        if matches!(
            e.body,
            EventBody::AppointmentProposed { .. } | EventBody::AppointmentChanged { .. }
        ) {
            let sla = self
                .store
                .versions
                .sla(record.calendar_version, record.policy_version)?;
            check_appointment(&sla, received_at, &before, e, now)?;
        }
        let data = e.to_stored_json(None);
        insert_event(conn, record.id, e, source, key, &hash, &data, now).await?;
        let updated = self
            .save_derived(conn, record, received_at, &derived, None, true, now)
            .await?;
        Ok(Outcome::Created(updated))
    }

    /// Rebuilds what a ticket's events say, from its first event on, with every event's
    /// (idempotency key, content hash).
    async fn replay(
        &self,
        conn: &mut AnyConnection,
        id: i64,
    ) -> Result<(Timestamp, Derived, Vec<(String, String)>), TicketError> {
        let rows = sqlx::query(
            "SELECT id, kind, occurred_at, source, idempotency_key, data, recorded_at, \
             content_hash FROM ticket_events WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        let mut events = Vec::with_capacity(rows.len());
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            keys.push((
                row.try_get("idempotency_key")?,
                row.try_get("content_hash")?,
            ));
            events.push(event_from_row(row)?);
        }
        let (received_at, d) = derive(id, &events)?;
        Ok((received_at, d, keys))
    }

    /// Writes the derived state and its SLA cache (moving the ticket to `versions` when given)
    /// and returns the ticket as it now stands.
    #[allow(clippy::too_many_arguments)]
    async fn save_derived(
        &self,
        conn: &mut AnyConnection,
        mut record: TicketRecord,
        received_at: Timestamp,
        d: &Derived,
        versions: Option<(i64, i64)>,
        mark_for_engine: bool,
        now: Timestamp,
    ) -> Result<TicketRecord, TicketError> {
        let (cal_v, pol_v) = versions.unwrap_or((record.calendar_version, record.policy_version));
        let sla = self.store.versions.sla(cal_v, pol_v)?;
        let view = evaluate(&sla, received_at, d, now)?;
        let (step, step_text) = match &d.step {
            Some((s, x)) => (Some(s.as_str()), Some(x.as_str())),
            None => (None, None),
        };
        sqlx::query(
            "UPDATE tickets SET category = $1, priority = $2, step = $3, step_text = $4, \
             closed_at = $5, waiting_since = $6, policy_version = $7, calendar_version = $8, \
             sla_due_at = $9, sla_state = $10, sla_elapsed_s = $11, sla_computed_at = $12, \
             next_check_at = $13, last_event_at = $14, updated_at = $12 WHERE id = $15",
        )
        .bind(d.category.as_str())
        .bind(d.priority.as_str())
        .bind(step)
        .bind(step_text)
        .bind(d.closed_at.map(|t| t.0))
        .bind(d.waiting_since.map(|t| t.0))
        .bind(pol_v)
        .bind(cal_v)
        .bind(view.due_at.map(|t| t.0))
        .bind(view.state)
        .bind(view.elapsed_s)
        .bind(now.0)
        .bind(if mark_for_engine {
            Some(now.0)
        } else {
            view.next_check_at.map(|t| t.0)
        })
        .bind(d.last_event_at.0)
        .bind(record.id)
        .execute(&mut *conn)
        .await?;
        record.category = d.category;
        record.priority = d.priority;
        record.step = d.step.clone();
        record.closed_at = d.closed_at;
        record.waiting_since = d.waiting_since;
        record.policy_version = pol_v;
        record.calendar_version = cal_v;
        record.sla = view;
        Ok(record)
    }

    pub(super) fn record_from_row(
        &self,
        r: &sqlx::any::AnyRow,
    ) -> Result<TicketRecord, TicketError> {
        let corrupt = |m: String| TicketError::Corrupt(m);
        let category: String = r.try_get("category")?;
        let priority: String = r.try_get("priority")?;
        let citizen: String = r.try_get("citizen")?;
        let step: Option<String> = r.try_get("step")?;
        let step_text: Option<String> = r.try_get("step_text")?;
        let state: String = r.try_get("sla_state")?;
        let category: Category = category.parse().map_err(|e| corrupt(format!("{e}")))?;
        let priority: Priority = priority.parse().map_err(|e| corrupt(format!("{e}")))?;
        let policy_version: i64 = r.try_get("policy_version")?;
        let calendar_version: i64 = r.try_get("calendar_version")?;
        let received_at = Timestamp(r.try_get("received_at")?);
        let mut target_s =
            self.store
                .versions
                .target_seconds(policy_version, category, priority)?;
        if category == Category::InLoco {
            // The on-site term's office time depends on when it starts: from the receipt here
            // (a ticket switched to on-site has it from the switch in every fresh evaluation:
            // the API's and the console's ticket, the engine; docs/sla.md).
            let sla = self.store.versions.sla(calendar_version, policy_version)?;
            target_s = sla.target_seconds(category, priority, received_at)?;
        }
        let elapsed_s: i64 = r.try_get("sla_elapsed_s")?;
        let closed_at = ts(r.try_get("closed_at")?);
        let due_at = ts(r.try_get("sla_due_at")?);
        Ok(TicketRecord {
            id: r.try_get("id")?,
            number: r.try_get("number")?,
            office: r.try_get("office")?,
            category,
            priority,
            subject: r.try_get("subject")?,
            step: step.zip(step_text),
            citizen: serde_json::from_str(&citizen).map_err(|e| corrupt(e.to_string()))?,
            received_at,
            closed_at,
            waiting_since: ts(r.try_get("waiting_since")?),
            policy_version,
            calendar_version,
            sla: SlaView {
                state: state_name(&state),
                due_at,
                elapsed_s,
                target_s,
                remaining_s: (target_s - elapsed_s).max(0),
                next_check_at: ts(r.try_get("next_check_at")?),
                closed_late: closed_at.map(|c| due_at.is_some_and(|d| d <= c)),
                computed_at: Timestamp(r.try_get("sla_computed_at")?),
            },
        })
    }

    /// A ticket by number, with its SLA as cached at the last write.
    pub async fn ticket(&self, number: &str) -> Result<Option<TicketRecord>, TicketError> {
        let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE number = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(number)
            .fetch_optional(&self.store.pool)
            .await?;
        row.map(|r| self.record_from_row(&r)).transpose()
    }

    /// A ticket's events, oldest first.
    pub async fn events(&self, ticket_id: i64) -> Result<Vec<EventRecord>, TicketError> {
        let rows = sqlx::query(
            "SELECT id, kind, occurred_at, source, idempotency_key, data, recorded_at \
             FROM ticket_events WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(ticket_id)
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// The facts of a ticket for the clock (for `explain` and fresh status at any instant).
    pub async fn history(&self, ticket_id: i64) -> Result<(Timestamp, Derived), TicketError> {
        let mut conn = self.store.pool.acquire().await?;
        let (received_at, d, _) = self.replay(&mut conn, ticket_id).await?;
        Ok((received_at, d))
    }

    /// Open tickets (filtered by SLA state) or closed ones, by office, priority and period
    /// (of the closure, or of the receipt for open tickets), in pages by internal id.
    pub async fn list_tickets(&self, q: &ListQuery) -> Result<Vec<TicketRecord>, TicketError> {
        // Built from fixed fragments only; every value is bound.
        let (open, at) = if q.closed {
            ("closed_at IS NOT NULL", "closed_at")
        } else {
            ("closed_at IS NULL", "received_at")
        };
        let mut sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE {open}");
        let mut n = 0;
        let mut next = |sql: &mut String, frag: &str| {
            n += 1;
            sql.push_str(&format!(" AND {frag} ${n}"));
        };
        if q.state.is_some() {
            next(&mut sql, "sla_state =");
        }
        if q.office.is_some() {
            next(&mut sql, "office =");
        }
        if q.priority.is_some() {
            next(&mut sql, "priority =");
        }
        if q.period.is_some() {
            next(&mut sql, &format!("{at} >="));
            next(&mut sql, &format!("{at} <"));
        }
        if q.after.is_some() {
            next(&mut sql, "id >");
        }
        sql.push_str(&format!(" ORDER BY id LIMIT {}", q.limit.clamp(1, 500)));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(s) = &q.state {
            query = query.bind(s.clone());
        }
        if let Some(o) = &q.office {
            query = query.bind(o.clone());
        }
        if let Some(p) = &q.priority {
            query = query.bind(p.clone());
        }
        if let Some((from, to)) = q.period {
            query = query.bind(from.0).bind(to.0);
        }
        if let Some(a) = q.after {
            query = query.bind(a);
        }
        let rows = query.fetch_all(&self.store.pool).await?;
        rows.iter().map(|r| self.record_from_row(r)).collect()
    }

    /// Ids of tickets whose next SLA instant has come, earliest first (uses the
    /// `next_check_at` index).
    pub async fn due_for_check(&self, now: Timestamp, limit: i64) -> Result<Vec<i64>, TicketError> {
        let ids = sqlx::query_scalar(
            "SELECT id FROM tickets WHERE next_check_at IS NOT NULL AND next_check_at <= $1 \
             ORDER BY next_check_at LIMIT $2",
        )
        .bind(now.0)
        .bind(limit)
        .fetch_all(&self.store.pool)
        .await?;
        Ok(ids)
    }

    /// The database's plan for the `due_for_check` query (to show it uses the index).
    pub async fn explain_due_query(&self) -> Result<String, TicketError> {
        let sql = match self.store.backend {
            Backend::Sqlite => {
                "EXPLAIN QUERY PLAN SELECT id FROM tickets WHERE next_check_at IS NOT NULL \
                 AND next_check_at <= $1 ORDER BY next_check_at LIMIT $2"
            }
            Backend::Postgres => {
                "EXPLAIN SELECT id FROM tickets WHERE next_check_at IS NOT NULL \
                 AND next_check_at <= $1 ORDER BY next_check_at LIMIT $2"
            }
        };
        let rows = sqlx::query(sql)
            .bind(i64::MAX / 2)
            .bind(500i64)
            .fetch_all(&self.store.pool)
            .await?;
        let col = match self.store.backend {
            Backend::Sqlite => 3,
            Backend::Postgres => 0,
        };
        rows.iter()
            .map(|r| r.try_get::<String, _>(col).map_err(TicketError::from))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join("\n"))
    }

    /// Recomputes the SLA cache of tickets whose next instant has come. Returns how many.
    pub async fn refresh_due(&self, now: Timestamp, limit: i64) -> Result<u64, TicketError> {
        let ids = self.due_for_check(now, limit).await?;
        let mut done = 0;
        for id in ids {
            let mut tx = self.store.pool.begin().await?;
            if let Some(record) = self.lock_ticket_id(&mut tx, id).await? {
                let (received_at, d, _) = self.replay(&mut tx, id).await?;
                self.save_derived(&mut tx, record, received_at, &d, None, false, now)
                    .await?;
                done += 1;
            }
            tx.commit().await?;
        }
        Ok(done)
    }

    /// Moves ticket `number` (or every open ticket when `None`) to the current calendar and
    /// policy versions, recording a `rebaselined` event. Returns how many tickets moved.
    pub async fn rebaseline(
        &self,
        number: Option<&str>,
        reason: &str,
        now: Timestamp,
    ) -> Result<u64, TicketError> {
        let (cal_v, pol_v) = self.store.versions.current()?;
        let ids: Vec<i64> = match number {
            Some(n) => match self.ticket(n).await? {
                Some(t) => vec![t.id],
                None => return Err(TicketError::NotFound(n.to_owned())),
            },
            None => {
                sqlx::query_scalar(
                    "SELECT id FROM tickets WHERE closed_at IS NULL \
                     AND (policy_version <> $1 OR calendar_version <> $2) ORDER BY id",
                )
                .bind(pol_v)
                .bind(cal_v)
                .fetch_all(&self.store.pool)
                .await?
            }
        };
        let mut moved = 0;
        for id in ids {
            let mut tx = self.store.pool.begin().await?;
            let Some(record) = self.lock_ticket_id(&mut tx, id).await? else {
                continue;
            };
            if (record.calendar_version, record.policy_version) == (cal_v, pol_v) {
                continue;
            }
            let (received_at, mut d, _) = self.replay(&mut tx, id).await?;
            let e = NewEvent {
                at: now.max(d.last_event_at),
                body: EventBody::Rebaselined {
                    policy_version: pol_v,
                    calendar_version: cal_v,
                    reason: reason.to_owned(),
                },
            };
            apply(&mut d, received_at, &e, now)?;
            let hash = e.content_hash();
            let key = format!("rebaseline:{pol_v}:{cal_v}:{}", now.0);
            // The date the ticket had under the versions it leaves: what the citizen was told,
            // for the engine to say how the new versions moved it.
            let due_before = record.sla.due_at.map(|t| t.to_string());
            insert_event(
                &mut tx,
                id,
                &e,
                Source::System,
                &key,
                &hash,
                &e.to_stored_json(Some(("due_before", serde_json::json!(due_before)))),
                now,
            )
            .await?;
            self.save_derived(
                &mut tx,
                record,
                received_at,
                &d,
                Some((cal_v, pol_v)),
                true,
                now,
            )
            .await?;
            tx.commit().await?;
            moved += 1;
        }
        Ok(moved)
    }

    /// Validates and applies pending `crm_inbox` rows (at most `limit`), marking each accepted
    /// or rejected with its reason. Rows are claimed by status, not by an id cursor, so a row
    /// whose transaction commits late is simply found on a later pass; on PostgreSQL,
    /// `FOR UPDATE SKIP LOCKED` lets several instances share the work.
    pub async fn process_inbox(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> Result<InboxReport, TicketError> {
        let mut tx = self.store.pool.begin().await?;
        let lock = match self.store.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "SELECT id, kind, ticket_number, payload, idempotency_key FROM crm_inbox \
             WHERE status = 'pending' ORDER BY id LIMIT $1{lock}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        let mut report = InboxReport::default();
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let kind: String = row.try_get("kind")?;
            let number: String = row.try_get("ticket_number")?;
            let payload: String = row.try_get("payload")?;
            let key: Option<String> = row.try_get("idempotency_key")?;
            let result = self
                .inbox_row(&mut tx, &kind, &number, &payload, key.as_deref(), now)
                .await;
            let (status, reason) = match result {
                Ok(Outcome::Created(_)) => {
                    report.accepted += 1;
                    ("accepted", None)
                }
                Ok(Outcome::Unchanged(_)) => {
                    report.unchanged += 1;
                    ("accepted", Some("duplicate: already recorded".to_owned()))
                }
                Err(e) if e.is_client_error() => {
                    report.rejected += 1;
                    tracing::warn!(inbox_id = id, reason = %e, "crm_inbox row rejected");
                    ("rejected", Some(e.to_string()))
                }
                Err(e) => return Err(e),
            };
            sqlx::query(
                "UPDATE crm_inbox SET status = $1, reason = $2, processed_at = $3 WHERE id = $4",
            )
            .bind(status)
            .bind(reason)
            .bind(now.0)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(report)
    }

    async fn inbox_row(
        &self,
        conn: &mut AnyConnection,
        kind: &str,
        number: &str,
        payload: &str,
        key: Option<&str>,
        now: Timestamp,
    ) -> Result<Outcome, TicketError> {
        let value: Value = serde_json::from_str(payload).map_err(|e| {
            TicketError::Invalid(vec![FieldError {
                field: "payload".into(),
                message: format!("not valid JSON: {e}"),
            }])
        })?;
        match kind {
            "ticket" => {
                let t = NewTicket::from_json(&value).map_err(TicketError::Invalid)?;
                if t.number.as_str() != number {
                    return Err(TicketError::Invalid(vec![FieldError {
                        field: "ticket_number".into(),
                        message: format!(
                            "the row says {number:?} but the payload's number is {:?}",
                            t.number.as_str()
                        ),
                    }]));
                }
                self.create_in(conn, &t, Source::Crm, now).await
            }
            "event" => {
                let e = NewEvent::from_json(&value).map_err(TicketError::Invalid)?;
                self.append_in(conn, number, &e, key, Source::Crm, now)
                    .await
            }
            other => Err(TicketError::Invalid(vec![FieldError {
                field: "kind".into(),
                message: format!("unknown row kind {other:?}; expected ticket|event"),
            }])),
        }
    }

    /// The answer stored under an idempotency key.
    pub async fn idempotent_response(
        &self,
        principal: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>, TicketError> {
        let row = sqlx::query(
            "SELECT request_hash, status, body FROM idempotency_keys WHERE principal = $1 AND key = $2",
        )
        .bind(principal)
        .bind(key)
        .fetch_optional(&self.store.pool)
        .await?;
        row.map(|r| {
            Ok(StoredResponse {
                request_hash: r.try_get(0)?,
                status: u16::try_from(r.try_get::<i64, _>(1)?).unwrap_or(500),
                body: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Stores an answer under an idempotency key; the first one stored wins and is returned.
    pub async fn remember_response(
        &self,
        principal: &str,
        key: &str,
        response: &StoredResponse,
        now: Timestamp,
    ) -> Result<StoredResponse, TicketError> {
        sqlx::query(
            "INSERT INTO idempotency_keys (principal, key, request_hash, status, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (principal, key) DO NOTHING",
        )
        .bind(principal)
        .bind(key)
        .bind(&response.request_hash)
        .bind(i64::from(response.status))
        .bind(&response.body)
        .bind(now.0)
        .execute(&self.store.pool)
        .await?;
        Ok(self
            .idempotent_response(principal, key)
            .await?
            .unwrap_or_else(|| response.clone()))
    }
}

/// A ticket as it stands after its events, written in bulk by `messo dev seed-history` for
/// load tests: its events are kept as given, its SLA cache is left as at receipt.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkTicket {
    pub id: i64,
    pub number: String,
    pub office: String,
    pub category: &'static str,
    pub priority: &'static str,
    pub citizen: Value,
    pub received_at: Timestamp,
    pub closed_at: Option<Timestamp>,
    pub waiting_since: Option<Timestamp>,
    pub last_event_at: Timestamp,
    /// In order, the receipt first.
    pub events: Vec<BulkEvent>,
    /// Citizen messages, as the outbox would hold them: (kind, channel, made at, state).
    pub notices: Vec<(&'static str, &'static str, Timestamp, &'static str)>,
}

/// One event of a [`BulkTicket`], its stored data as `NewEvent::to_stored_json` makes it.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkEvent {
    pub kind: &'static str,
    pub at: Timestamp,
    pub source: &'static str,
    pub data: Value,
}

impl Tickets<'_> {
    /// Writes `batch` in one transaction, two statements (tickets, events), under the current
    /// versions; ids as given. For load tests only: nothing is validated or replayed. On
    /// PostgreSQL the ticket id sequence is moved past the highest id.
    pub async fn load_bulk(&self, batch: &[BulkTicket]) -> Result<(), TicketError> {
        let (cal_v, pol_v) = self.store.versions.current()?;
        let tickets: Vec<Value> = batch
            .iter()
            .map(|t| {
                let state = if t.closed_at.is_some() {
                    "closed"
                } else if t.waiting_since.is_some() {
                    "paused"
                } else {
                    "running"
                };
                serde_json::json!([
                    t.id,
                    t.number,
                    t.office,
                    t.category,
                    t.priority,
                    t.citizen.to_string(),
                    t.received_at.0,
                    t.closed_at.map(|c| c.0),
                    t.waiting_since.map(|w| w.0),
                    state,
                    t.last_event_at.0,
                    t.citizen["fiscal_code"].as_str(),
                    t.citizen["mobile"].as_str(),
                    t.citizen["email"].as_str().map(str::to_lowercase)
                ])
            })
            .collect();
        let events: Vec<Value> = batch
            .iter()
            .flat_map(|t| {
                t.events.iter().enumerate().map(move |(i, e)| {
                    serde_json::json!([
                        t.id,
                        e.kind,
                        e.at.0,
                        e.source,
                        format!("seed-{i}"),
                        e.data.to_string()
                    ])
                })
            })
            .collect();
        let trows = self.store.json_rows(
            1,
            "r",
            &[
                ("id", "bigint"),
                ("number", "text"),
                ("office", "text"),
                ("category", "text"),
                ("priority", "text"),
                ("citizen", "text"),
                ("received_at", "bigint"),
                ("closed_at", "bigint"),
                ("waiting_since", "bigint"),
                ("sla_state", "text"),
                ("last_event_at", "bigint"),
                ("fiscal_code", "text"),
                ("citizen_mobile", "text"),
                ("citizen_email", "text"),
            ],
        );
        let erows = self.store.json_rows(
            1,
            "e",
            &[
                ("ticket_id", "bigint"),
                ("kind", "text"),
                ("occurred_at", "bigint"),
                ("source", "text"),
                ("k", "text"),
                ("data", "text"),
            ],
        );
        let p = self.store.placeholders(2, 2);
        let mut tx = self.store.pool.begin().await?;
        let tickets = Value::Array(tickets).to_string();
        let q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO tickets (id, number, office, category, priority, subject, citizen, \
             received_at, closed_at, waiting_since, policy_version, calendar_version, \
             create_hash, sla_state, sla_elapsed_s, sla_computed_at, last_event_at, created_at, \
             updated_at, fiscal_code, citizen_mobile, citizen_email) SELECT id, number, office, \
             category, priority, 'Richiesta', citizen, received_at, closed_at, waiting_since, {}, \
             {}, 'seed', sla_state, 0, received_at, last_event_at, received_at, received_at, \
             fiscal_code, citizen_mobile, citizen_email FROM {trows}",
            p[0], p[1]
        )));
        // SQLite's plain `?` placeholders are bound in the order they appear in the text.
        let q = match self.store.backend {
            super::Backend::Sqlite => q.bind(pol_v).bind(cal_v).bind(tickets),
            super::Backend::Postgres => q.bind(tickets).bind(pol_v).bind(cal_v),
        };
        q.execute(&mut *tx).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO ticket_events (ticket_id, kind, occurred_at, source, idempotency_key, \
             content_hash, data, recorded_at) SELECT ticket_id, kind, occurred_at, source, k, \
             'seed', data, occurred_at FROM {erows}"
        )))
        .bind(Value::Array(events).to_string())
        .execute(&mut *tx)
        .await?;
        let notices: Vec<Value> = batch
            .iter()
            .flat_map(|t| {
                t.notices
                    .iter()
                    .enumerate()
                    .map(move |(i, (kind, channel, at, state))| {
                        serde_json::json!([t.id, kind, format!("seed-{i}"), channel, at.0, state])
                    })
            })
            .collect();
        let orows = self.store.json_rows(
            1,
            "o",
            &[
                ("ticket_id", "bigint"),
                ("kind", "text"),
                ("k", "text"),
                ("channel", "text"),
                ("at", "bigint"),
                ("state", "text"),
            ],
        );
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO outbox (ticket_id, kind, dedupe_key, recipient, channel, address, \
             language, payload, not_before, state, created_at, updated_at) SELECT ticket_id, \
             kind, k, 'citizen', channel, '', 'it', '{{}}', at, state, at, at FROM {orows}"
        )))
        .bind(Value::Array(notices).to_string())
        .execute(&mut *tx)
        .await?;
        if self.store.backend == super::Backend::Postgres {
            sqlx::query(
                "SELECT setval(pg_get_serial_sequence('tickets', 'id'), (SELECT MAX(id) FROM tickets))",
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

pub(super) fn event_from_row(r: &sqlx::any::AnyRow) -> Result<EventRecord, TicketError> {
    let data: String = r.try_get("data")?;
    Ok(EventRecord {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        occurred_at: Timestamp(r.try_get("occurred_at")?),
        source: r.try_get("source")?,
        idempotency_key: r.try_get("idempotency_key")?,
        data: serde_json::from_str(&data).map_err(|e| TicketError::Corrupt(e.to_string()))?,
        recorded_at: Timestamp(r.try_get("recorded_at")?),
    })
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn insert_event(
    conn: &mut AnyConnection,
    ticket_id: i64,
    e: &NewEvent,
    source: Source,
    key: &str,
    hash: &str,
    data: &Value,
    now: Timestamp,
) -> Result<i64, TicketError> {
    let id = sqlx::query_scalar(
        "INSERT INTO ticket_events (ticket_id, kind, occurred_at, source, idempotency_key, \
         content_hash, data, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(ticket_id)
    .bind(e.body.kind())
    .bind(e.at.0)
    .bind(source.as_str())
    .bind(key)
    .bind(hash)
    .bind(data.to_string())
    .bind(now.0)
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

impl From<HistoryError> for TicketError {
    fn from(e: HistoryError) -> Self {
        TicketError::Corrupt(e.to_string())
    }
}
