//! What the citizen's status page and the portal feed read: one ticket (by id or by number and
//! fiscal code), a citizen's tickets, the messages sent to the citizen about a ticket; link
//! revocation and the generated link key.

use sqlx::Row;

use super::tickets::event_from_row;
use super::{Portal, TICKET_COLUMNS, TicketRecord, ts};
use crate::portal::SentMessage;
use crate::time::Timestamp;

/// Why a portal read or write failed.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Ticket(#[from] super::TicketError),
}

/// A ticket as the portal shows it, with the instant its links were revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalTicket {
    pub ticket: TicketRecord,
    pub links_revoked_at: Option<Timestamp>,
}

/// Wrong access codes for a ticket since a time: the phone's and the SMS answering's lock-out
/// read the same count.
pub(crate) const COUNT_CODE_FAILURES: &str =
    "SELECT COUNT(*) FROM access_code_failures WHERE ticket_id = $1 AND at >= $2";

impl Portal<'_> {
    fn portal_ticket(&self, r: &sqlx::any::AnyRow) -> Result<PortalTicket, PortalError> {
        Ok(PortalTicket {
            ticket: self.store.tickets().record_from_row(r)?,
            links_revoked_at: ts(r.try_get("links_revoked_at")?),
        })
    }

    /// A ticket by internal id (what a status link names).
    pub async fn portal_ticket_by_id(&self, id: i64) -> Result<Option<PortalTicket>, PortalError> {
        let sql = format!("SELECT {TICKET_COLUMNS}, links_revoked_at FROM tickets WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.store.read_pool())
            .await?;
        row.map(|r| self.portal_ticket(&r)).transpose()
    }

    /// A ticket by number, only if it belongs to the citizen with this (normalised) fiscal code.
    pub async fn portal_ticket_of(
        &self,
        number: &str,
        fiscal_code: &str,
    ) -> Result<Option<PortalTicket>, PortalError> {
        let sql = format!(
            "SELECT {TICKET_COLUMNS}, links_revoked_at FROM tickets WHERE number = $1 AND fiscal_code = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(number)
            .bind(fiscal_code)
            .fetch_optional(self.store.read_pool())
            .await?;
        row.map(|r| self.portal_ticket(&r)).transpose()
    }

    /// A citizen's tickets, newest first, `limit` at a time; `before` is the previous page's
    /// last internal id.
    pub async fn citizen_tickets(
        &self,
        fiscal_code: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<PortalTicket>, PortalError> {
        let sql = format!(
            "SELECT {TICKET_COLUMNS}, links_revoked_at FROM tickets \
             WHERE fiscal_code = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(fiscal_code)
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit.clamp(1, 100))
            .fetch_all(self.store.read_pool())
            .await?;
        rows.iter().map(|r| self.portal_ticket(r)).collect()
    }

    /// The messages to the citizen about a ticket, oldest first.
    pub async fn citizen_messages(&self, ticket_id: i64) -> Result<Vec<SentMessage>, PortalError> {
        let rows = sqlx::query(
            "SELECT kind, channel, created_at, delivered_at, state, dlr_state FROM outbox \
             WHERE ticket_id = $1 AND recipient = 'citizen' ORDER BY created_at, id",
        )
        .bind(ticket_id)
        .fetch_all(self.store.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SentMessage {
                    kind: r.try_get("kind")?,
                    channel: r.try_get("channel")?,
                    created_at: Timestamp(r.try_get("created_at")?),
                    delivered_at: ts(r.try_get("delivered_at")?),
                    state: r.try_get("state")?,
                    dlr_state: r.try_get("dlr_state")?,
                })
            })
            .collect()
    }

    /// A ticket's events (by id) and the messages to its citizen (oldest first), as `events`
    /// and `citizen_messages` give them, read with one statement: a status page or feed answer
    /// then costs two round trips to the database instead of three.
    pub async fn portal_history(
        &self,
        ticket_id: i64,
    ) -> Result<(Vec<crate::store::EventRecord>, Vec<SentMessage>), PortalError> {
        // The messages' `created_at` travels in `occurred_at`; `part` says which table a row
        // is from. Events sort by id, messages by (created_at, id).
        let rows = sqlx::query(
            "SELECT * FROM (SELECT 'e' AS part, id, kind, occurred_at, source, idempotency_key, data, \
             recorded_at, CAST(NULL AS TEXT) AS channel, CAST(NULL AS BIGINT) AS delivered_at, \
             CAST(NULL AS TEXT) AS state, CAST(NULL AS TEXT) AS dlr_state \
             FROM ticket_events WHERE ticket_id = $1 \
             UNION ALL \
             SELECT 'm', id, kind, created_at, CAST(NULL AS TEXT), CAST(NULL AS TEXT), \
             CAST(NULL AS TEXT), CAST(NULL AS BIGINT), channel, delivered_at, state, dlr_state \
             FROM outbox WHERE ticket_id = $1 AND recipient = 'citizen') AS h \
             ORDER BY part, CASE WHEN part = 'e' THEN 0 ELSE occurred_at END, id",
        )
        .bind(ticket_id)
        .fetch_all(self.store.read_pool())
        .await?;
        let (mut events, mut messages) = (Vec::new(), Vec::new());
        for r in &rows {
            let part: String = r.try_get("part")?;
            if part == "e" {
                events.push(event_from_row(r)?);
            } else {
                messages.push(SentMessage {
                    kind: r.try_get("kind")?,
                    channel: r.try_get("channel")?,
                    created_at: Timestamp(r.try_get("occurred_at")?),
                    delivered_at: ts(r.try_get("delivered_at")?),
                    state: r.try_get("state")?,
                    dlr_state: r.try_get("dlr_state")?,
                });
            }
        }
        Ok((events, messages))
    }

    /// Turns off every link to ticket `number` issued until `now`, and records who did it in
    /// the audit log (one transaction); `None` if there is no such ticket. Messages written
    /// afterwards carry new links.
    pub async fn revoke_links(
        &self,
        number: &str,
        now: Timestamp,
        actor: &str,
        reason: &str,
    ) -> Result<Option<Timestamp>, PortalError> {
        let mut tx = self.store.pool().begin().await?;
        let done = sqlx::query("UPDATE tickets SET links_revoked_at = $1 WHERE number = $2")
            .bind(now.0)
            .bind(number)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        super::admin::audit(
            &mut tx,
            now,
            actor,
            "revoke_links",
            &format!("ticket/{number}"),
            &serde_json::json!({"reason": reason}),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(now))
    }

    /// Ticket `number` as the portal shows it (the phone and SMS answering look a ticket up by
    /// its number alone, then verify the caller).
    pub async fn portal_ticket_by_number(
        &self,
        number: &str,
    ) -> Result<Option<PortalTicket>, PortalError> {
        let sql =
            format!("SELECT {TICKET_COLUMNS}, links_revoked_at FROM tickets WHERE number = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(number)
            .fetch_optional(self.store.read_pool())
            .await?;
        row.map(|r| self.portal_ticket(&r)).transpose()
    }

    /// Wrong access codes given for ticket `ticket_id` since `since`.
    pub async fn access_code_failures(
        &self,
        ticket_id: i64,
        since: Timestamp,
    ) -> Result<u32, PortalError> {
        let n: i64 = sqlx::query_scalar(COUNT_CODE_FAILURES)
            .bind(ticket_id)
            .bind(since.0)
            .fetch_one(self.store.pool())
            .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Records a wrong access code for ticket `ticket_id`, made by the request `attempt_key`
    /// (a call's id and step, an inbound record) through `channel` (`phone`, `sms`). A repeat
    /// of the same request counts once: returns whether this one was new.
    pub async fn record_access_code_failure(
        &self,
        ticket_id: i64,
        attempt_key: &str,
        channel: &str,
        at: Timestamp,
    ) -> Result<bool, PortalError> {
        let done = sqlx::query(
            "INSERT INTO access_code_failures (ticket_id, attempt_key, channel, at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (attempt_key) DO NOTHING",
        )
        .bind(ticket_id)
        .bind(attempt_key)
        .bind(channel)
        .bind(at.0)
        .execute(self.store.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The link key kept in the store, made from `fresh` by the first daemon that asks.
    pub async fn portal_key(&self, fresh: &str, now: Timestamp) -> Result<String, PortalError> {
        sqlx::query(
            "INSERT INTO portal_keys (id, secret, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(fresh)
        .bind(now.0)
        .execute(self.store.pool())
        .await?;
        Ok(
            sqlx::query_scalar("SELECT secret FROM portal_keys WHERE id = 1")
                .fetch_one(self.store.pool())
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;
    use crate::ticket::{NewEvent, NewTicket, Source};
    use crate::time::Timestamp;
    use serde_json::json;

    /// One statement reads what `events` and `citizen_messages` read, in the same order.
    #[tokio::test]
    async fn portal_history_reads_what_events_and_citizen_messages_read() {
        let now = Timestamp(1_772_529_300); // 2026-03-03T09:15:00Z
        let store = Store::connect("sqlite::memory:").await.expect("store");
        store.migrate().await.expect("migrations");
        let config =
            crate::config::Config::from_toml(crate::config::BUILTIN_TOML, "built-in", Vec::new())
                .expect("built-in configuration");
        store.register_config(&config, now).await.expect("versions");
        let t = NewTicket::from_json(&json!({
            "number": "2026/000001", "office": "anagrafe", "priority": "alta",
            "subject": "Certificato", "received_at": "2026-03-02T10:15:00+01:00",
            "citizen": {"email": "cittadino@example.it"}
        }))
        .expect("ticket");
        store
            .tickets()
            .create_many(&[t], Source::Crm, now)
            .await
            .expect("created");
        let note = NewEvent::from_json(&json!({
            "kind": "step_changed", "at": "2026-03-02T11:00:00+01:00",
            "step": "istruttoria", "text": "In istruttoria"
        }))
        .expect("event");
        store
            .tickets()
            .append_event("2026/000001", &note, None, Source::Crm, now)
            .await
            .expect("appended");
        let id = store
            .tickets()
            .ticket("2026/000001")
            .await
            .expect("read")
            .expect("ticket")
            .id;
        // Two messages to the citizen, written in the opposite order of their times, and one to
        // the office, which the citizen never sees.
        for (kind, recipient, created_at, delivered_at, dlr) in [
            ("presa_in_carico", "citizen", now.0 + 60, None, Some("sent")),
            ("ricevuta", "citizen", now.0, Some(now.0 + 5), None),
            ("avviso", "office", now.0 + 30, None, None),
        ] {
            sqlx::query(
                "INSERT INTO outbox (ticket_id, kind, dedupe_key, recipient, channel, address, \
                 language, payload, not_before, state, created_at, updated_at, delivered_at, \
                 dlr_state) VALUES ($1, $2, 'k', $3, 'email', 'a@example.it', 'it', '{}', $4, \
                 'delivered', $4, $4, $5, $6)",
            )
            .bind(id)
            .bind(kind)
            .bind(recipient)
            .bind(created_at)
            .bind(delivered_at)
            .bind(dlr)
            .execute(store.pool())
            .await
            .expect("outbox row");
        }
        let (events, messages) = store.portal().portal_history(id).await.expect("history");
        assert_eq!(events, store.tickets().events(id).await.expect("events"));
        assert_eq!(events.len(), 2);
        assert_eq!(
            messages,
            store.portal().citizen_messages(id).await.expect("messages")
        );
        let kinds: Vec<&str> = messages.iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(kinds, ["ricevuta", "presa_in_carico"]);
        assert_eq!(messages[0].delivered_at, Some(Timestamp(now.0 + 5)));
        assert_eq!(messages[1].dlr_state.as_deref(), Some("sent"));
        assert!(
            store
                .portal()
                .portal_history(id + 1)
                .await
                .expect("none")
                .0
                .is_empty()
        );
    }
}
