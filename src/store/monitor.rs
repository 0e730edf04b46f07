//! The monitoring repository: counts and lists for the dashboard, `/metrics` and reports.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use super::Monitor;
use crate::time::Timestamp;

/// Why a monitoring read failed.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

/// A ticket the office should look at (warning, breached or paused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AtRisk {
    pub number: String,
    pub subject: String,
    pub office: String,
    pub priority: String,
    pub state: String,
    pub due_at: Option<Timestamp>,
    pub paused_since: Option<Timestamp>,
}

impl Monitor<'_> {
    /// The highest internal ticket id.
    pub async fn max_ticket_id(&self) -> Result<i64, MonitorError> {
        let m: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM tickets")
            .fetch_one(&self.store.pool)
            .await?;
        Ok(m.unwrap_or(0))
    }

    /// Open tickets by SLA state.
    pub async fn tickets_by_state(&self) -> Result<Vec<(String, i64)>, MonitorError> {
        let rows = sqlx::query(
            "SELECT sla_state, COUNT(*) FROM tickets WHERE closed_at IS NULL GROUP BY sla_state ORDER BY sla_state",
        )
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Breaches so far (one per ticket and deadline).
    pub async fn breaches(&self) -> Result<i64, MonitorError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'violazione' AND recipient = 'office'",
        )
        .fetch_one(&self.store.pool)
        .await?)
    }

    /// Outbox rows by state.
    pub async fn outbox_depth(&self) -> Result<Vec<(String, i64)>, MonitorError> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM outbox GROUP BY state ORDER BY state")
            .fetch_all(&self.store.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Open tickets in warning, breached or paused, soonest deadline first.
    pub async fn tickets_at_risk(&self, limit: i64) -> Result<Vec<AtRisk>, MonitorError> {
        let rows = sqlx::query(
            "SELECT number, subject, office, priority, sla_state, sla_due_at, waiting_since \
             FROM tickets WHERE closed_at IS NULL AND sla_state IN ('warning', 'breached', 'paused') \
             ORDER BY CASE sla_state WHEN 'breached' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, \
             sla_due_at, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AtRisk {
                    number: r.try_get("number")?,
                    subject: r.try_get("subject")?,
                    office: r.try_get("office")?,
                    priority: r.try_get("priority")?,
                    state: r.try_get("sla_state")?,
                    due_at: r.try_get::<Option<i64>, _>("sla_due_at")?.map(Timestamp),
                    paused_since: r.try_get::<Option<i64>, _>("waiting_since")?.map(Timestamp),
                })
            })
            .collect()
    }

    /// (open tickets, tickets with a next SLA instant).
    pub async fn ticket_counts(&self) -> Result<(i64, i64), MonitorError> {
        let open = sqlx::query_scalar("SELECT COUNT(*) FROM tickets WHERE closed_at IS NULL")
            .fetch_one(&self.store.pool)
            .await?;
        let with_instant =
            sqlx::query_scalar("SELECT COUNT(*) FROM tickets WHERE next_check_at IS NOT NULL")
                .fetch_one(&self.store.pool)
                .await?;
        Ok((open, with_instant))
    }

    /// Counts of `crm_inbox` rows by status.
    pub async fn inbox_counts(&self) -> Result<BTreeMap<String, i64>, MonitorError> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM crm_inbox GROUP BY status")
            .fetch_all(&self.store.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
            .collect()
    }
}
