//! Runs of scheduled reports (`report_schedule`): a run is claimed by inserting its row, which
//! only one daemon can do for a (job, period) — the table's unique key — and the messages it
//! sends are queued in the same transaction. A crash before the commit leaves neither the claim
//! nor the messages; after it, both. From there the outbox delivers them as any other message
//! (retries, breaker, uncertain outcomes held).

use serde_json::Value;
use sqlx::Row;

use super::Schedule;
use crate::domain::{Channel, EmailAddress, Kind, Lang, Recipient};
use crate::templates::RenderedMessage;
use crate::time::Timestamp;

/// Why a schedule operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

/// A run to claim: the job, the period it reports and when it was due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun<'a> {
    /// `monthly_report`.
    pub job: &'a str,
    /// `2026-11`.
    pub period: &'a str,
    pub due_at: Timestamp,
}

/// One e-mail a run sends, its words already written (they are stored with the row: no
/// template is rendered for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportMail {
    pub kind: Kind,
    /// The outbox's dedupe key (`monthly:2026-11`): with kind and recipient, its identity.
    pub key: String,
    pub recipient: Recipient,
    pub address: EmailAddress,
    pub payload: Value,
    pub words: RenderedMessage,
}

/// What a claim did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This call claimed the run and queued its messages (their outbox ids).
    Won { outbox_ids: Vec<i64> },
    /// The run was already claimed (by another daemon, or before a restart): nothing was done.
    Taken,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub job: String,
    pub period: String,
    pub due_at: Timestamp,
    pub claimed_at: Timestamp,
    pub outbox_ids: Vec<i64>,
    /// When every message of the run was delivered.
    pub sent_at: Option<Timestamp>,
}

fn ids_of(text: &str) -> Result<Vec<i64>, ScheduleError> {
    serde_json::from_str(text).map_err(|e| ScheduleError::Corrupt(format!("outbox_ids: {e}")))
}

impl Schedule<'_> {
    /// Whether the run of `job` for `period` was claimed already.
    pub async fn is_claimed(&self, job: &str, period: &str) -> Result<bool, ScheduleError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM report_schedule WHERE job = $1 AND period = $2",
        )
        .bind(job)
        .bind(period)
        .fetch_one(&self.store.pool)
        .await?;
        Ok(n > 0)
    }

    /// Claims `run` and queues `mails`, in one transaction. Only one caller ever wins a (job,
    /// period), however many daemons try at once: on PostgreSQL a second insert of the same key
    /// waits for the first transaction and then does nothing; SQLite has one writer.
    pub async fn claim_and_queue(
        &self,
        run: &NewRun<'_>,
        mails: &[ReportMail],
        now: Timestamp,
    ) -> Result<Claim, ScheduleError> {
        let mut tx = self.store.pool.begin().await?;
        let claimed: Option<i64> = sqlx::query_scalar(
            "INSERT INTO report_schedule (job, period, due_at, claimed_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(run.job)
        .bind(run.period)
        .bind(run.due_at.0)
        .bind(now.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(run_id) = claimed else {
            tx.rollback().await?;
            return Ok(Claim::Taken);
        };
        let mut ids = Vec::with_capacity(mails.len());
        for m in mails {
            let words = serde_json::to_string(&m.words)
                .map_err(|e| ScheduleError::Corrupt(format!("the words of {}: {e}", m.key)))?;
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO outbox (ticket_id, kind, dedupe_key, recipient, channel, address, \
                 language, payload, not_before, state, attempts, created_at, updated_at, rendered) \
                 VALUES (NULL, $1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $8, $8, $9) \
                 ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(m.kind.as_str())
            .bind(&m.key)
            .bind(m.recipient.as_str())
            .bind(Channel::Email.as_str())
            .bind(m.address.as_str())
            .bind(Lang::It.as_str())
            .bind(m.payload.to_string())
            .bind(now.0)
            .bind(words)
            .fetch_optional(&mut *tx)
            .await?;
            let id = match inserted {
                Some(id) => id,
                // Already owed under the same key (a run row removed by hand and claimed again):
                // the message stays the one already queued, never a second.
                None => {
                    sqlx::query_scalar(
                        "SELECT id FROM outbox WHERE ticket_id IS NULL AND kind = $1 \
                     AND dedupe_key = $2 AND recipient = $3",
                    )
                    .bind(m.kind.as_str())
                    .bind(&m.key)
                    .bind(m.recipient.as_str())
                    .fetch_one(&mut *tx)
                    .await?
                }
            };
            ids.push(id);
        }
        let list = serde_json::to_string(&ids)
            .map_err(|e| ScheduleError::Corrupt(format!("outbox_ids: {e}")))?;
        sqlx::query("UPDATE report_schedule SET outbox_ids = $1 WHERE id = $2")
            .bind(list)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Claim::Won { outbox_ids: ids })
    }

    /// The run of `job` for `period`, if claimed.
    pub async fn run(&self, job: &str, period: &str) -> Result<Option<RunRecord>, ScheduleError> {
        let row = sqlx::query(
            "SELECT job, period, due_at, claimed_at, outbox_ids, sent_at FROM report_schedule \
             WHERE job = $1 AND period = $2",
        )
        .bind(job)
        .bind(period)
        .fetch_optional(&self.store.pool)
        .await?;
        row.map(|r| {
            Ok(RunRecord {
                job: r.try_get("job")?,
                period: r.try_get("period")?,
                due_at: Timestamp(r.try_get("due_at")?),
                claimed_at: Timestamp(r.try_get("claimed_at")?),
                outbox_ids: ids_of(&r.try_get::<String, _>("outbox_ids")?)?,
                sent_at: r.try_get::<Option<i64>, _>("sent_at")?.map(Timestamp),
            })
        })
        .transpose()
    }

    /// Every run of `job`, oldest period first.
    pub async fn runs(&self, job: &str) -> Result<Vec<RunRecord>, ScheduleError> {
        let periods: Vec<String> =
            sqlx::query_scalar("SELECT period FROM report_schedule WHERE job = $1 ORDER BY period")
                .bind(job)
                .fetch_all(&self.store.pool)
                .await?;
        let mut out = Vec::with_capacity(periods.len());
        for p in periods {
            if let Some(r) = self.run(job, &p).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Marks `sent_at = now` on the runs whose messages have all been delivered; returns how
    /// many. A run with a message dead or held stays unsent (the outbox says why).
    pub async fn record_sent(&self, now: Timestamp) -> Result<u64, ScheduleError> {
        let rows = sqlx::query(
            "SELECT id, outbox_ids FROM report_schedule WHERE sent_at IS NULL ORDER BY id",
        )
        .fetch_all(&self.store.pool)
        .await?;
        let mut marked = 0;
        for r in rows {
            let id: i64 = r.try_get("id")?;
            let ids = ids_of(&r.try_get::<String, _>("outbox_ids")?)?;
            if ids.is_empty() {
                continue;
            }
            let ph = self.store.placeholders(1, ids.len()).join(", ");
            let sql =
                format!("SELECT COUNT(*) FROM outbox WHERE id IN ({ph}) AND state = 'delivered'");
            let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
            for i in &ids {
                q = q.bind(*i);
            }
            let delivered = q.fetch_one(&self.store.pool).await?;
            if delivered == ids.len() as i64 {
                let n = sqlx::query(
                    "UPDATE report_schedule SET sent_at = $1 WHERE id = $2 AND sent_at IS NULL",
                )
                .bind(now.0)
                .bind(id)
                .execute(&self.store.pool)
                .await?;
                marked += n.rows_affected();
            }
        }
        Ok(marked)
    }
}
