//! What the citizen's status page and the portal feed read: one ticket (by id or by number and
//! fiscal code), a citizen's tickets, the messages sent to the citizen about a ticket; link
//! revocation and the generated link key.

use sqlx::Row;

use super::{Store, StoreError, TICKET_COLUMNS, TicketRecord, ts};
use crate::portal::SentMessage;
use crate::time::Timestamp;

/// A ticket as the portal shows it, with the instant its links were revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalTicket {
    pub ticket: TicketRecord,
    pub links_revoked_at: Option<Timestamp>,
}

impl Store {
    fn portal_ticket(&self, r: &sqlx::any::AnyRow) -> Result<PortalTicket, StoreError> {
        Ok(PortalTicket {
            ticket: self.record_from_row(r)?,
            links_revoked_at: ts(r.try_get("links_revoked_at")?),
        })
    }

    /// A ticket by internal id (what a status link names).
    pub async fn portal_ticket_by_id(&self, id: i64) -> Result<Option<PortalTicket>, StoreError> {
        let sql = format!("SELECT {TICKET_COLUMNS}, links_revoked_at FROM tickets WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| self.portal_ticket(&r)).transpose()
    }

    /// A ticket by number, only if it belongs to the citizen with this (normalised) fiscal code.
    pub async fn portal_ticket_of(
        &self,
        number: &str,
        fiscal_code: &str,
    ) -> Result<Option<PortalTicket>, StoreError> {
        let sql = format!(
            "SELECT {TICKET_COLUMNS}, links_revoked_at FROM tickets WHERE number = $1 AND fiscal_code = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(number)
            .bind(fiscal_code)
            .fetch_optional(self.pool())
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
    ) -> Result<Vec<PortalTicket>, StoreError> {
        let sql = format!(
            "SELECT {TICKET_COLUMNS}, links_revoked_at FROM tickets \
             WHERE fiscal_code = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(fiscal_code)
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit.clamp(1, 100))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| self.portal_ticket(r)).collect()
    }

    /// The messages to the citizen about a ticket, oldest first.
    pub async fn citizen_messages(&self, ticket_id: i64) -> Result<Vec<SentMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, channel, created_at, delivered_at, state, dlr_state FROM outbox \
             WHERE ticket_id = $1 AND recipient = 'citizen' ORDER BY created_at, id",
        )
        .bind(ticket_id)
        .fetch_all(self.pool())
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

    /// Turns off every link to ticket `number` issued until `now`, and records who did it in
    /// the audit log (one transaction); `None` if there is no such ticket. Messages written
    /// afterwards carry new links.
    pub async fn revoke_links(
        &self,
        number: &str,
        now: Timestamp,
        actor: &str,
        reason: &str,
    ) -> Result<Option<Timestamp>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query("UPDATE tickets SET links_revoked_at = $1 WHERE number = $2")
            .bind(now.0)
            .bind(number)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        super::templates::audit(
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

    /// The link key kept in the store, made from `fresh` by the first daemon that asks.
    pub async fn portal_key(&self, fresh: &str, now: Timestamp) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO portal_keys (id, secret, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(fresh)
        .bind(now.0)
        .execute(self.pool())
        .await?;
        Ok(
            sqlx::query_scalar("SELECT secret FROM portal_keys WHERE id = 1")
                .fetch_one(self.pool())
                .await?,
        )
    }
}
