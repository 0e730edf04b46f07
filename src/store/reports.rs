//! The reports repository: what a compliance report reads (the histories of the tickets a
//! period can count, the notices owed in it, contacts that failed) and the criticalities'
//! lists. Reads only, through the reading connections on SQLite.
//!
//! Which tickets a period `[start, end)` can count: one received before `end` that was open at
//! some instant of the period or had an event in it. Events are appended in time order, so
//! `last_event_at` is the latest event's instant, and a ticket closed before `start` with no
//! later event counts nothing. The two halves of that test are two indexed reads
//! (`tickets_open_received`, `tickets_last_event`: migration 0013).

use futures_util::TryStreamExt;
use sqlx::Row;

use super::Reports;
use super::tickets::event_from_row;
use crate::reports::{Bucket, History, NoticeCount};
use crate::time::Timestamp;

/// Why a report read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportStoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// The period holds more tickets than one report reads.
    #[error("the period holds more than {max} tickets; choose a shorter period or one office")]
    TooMany { max: usize },
}

/// A ticket's history with the calendar and policy versions its clock runs on.
#[derive(Debug, Clone)]
pub struct ReportTicket {
    pub history: History,
    pub calendar_version: i64,
    pub policy_version: i64,
}

/// A criticality the store lists: its kind, the ticket (if any) and what is known of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCriticality {
    pub kind: &'static str,
    pub number: Option<String>,
    pub office: Option<String>,
    pub priority: Option<String>,
    /// The instant the criticality is dated by (due instant, wait start, message, reply).
    pub since: Option<Timestamp>,
    /// A short, non-personal detail (the message kind and channel).
    pub detail: Option<String>,
}

/// The `CASE` expression that gives the index of the bucket `column` falls in (parameters
/// from `first`, one per bucket end but the last), and its parameters.
fn bucket_case(
    store: &super::Store,
    column: &str,
    buckets: &[Bucket],
    first: usize,
) -> (String, Vec<i64>) {
    let ends: Vec<i64> = buckets
        .iter()
        .take(buckets.len().saturating_sub(1))
        .map(|b| b.end.0)
        .collect();
    if ends.is_empty() {
        return ("CAST(0 AS BIGINT)".to_owned(), ends);
    }
    let ph = store.placeholders(first, ends.len());
    let mut sql = String::from("CAST(CASE");
    for (i, p) in ph.iter().enumerate() {
        sql.push_str(&format!(" WHEN {column} < {p} THEN {i}"));
    }
    sql.push_str(&format!(" ELSE {} END AS BIGINT)", ends.len()));
    (sql, ends)
}

impl Reports<'_> {
    /// A report kept under `key`, with the instant it was computed, if any.
    pub async fn cached(&self, key: &str) -> Result<Option<(Timestamp, String)>, ReportStoreError> {
        let row = sqlx::query("SELECT computed_at, body FROM report_cache WHERE key = $1")
            .bind(key)
            .fetch_optional(self.store.read_pool())
            .await?;
        row.map(|r| Ok((Timestamp(r.try_get("computed_at")?), r.try_get("body")?)))
            .transpose()
    }

    /// Whether an event dated before `before` has been recorded at or after `since`: what
    /// makes a kept report of a period ending at `before` stale.
    pub async fn recorded_since(
        &self,
        since: Timestamp,
        before: Timestamp,
    ) -> Result<bool, ReportStoreError> {
        let hit: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM ticket_events WHERE recorded_at >= $1 AND occurred_at < $2 LIMIT 1",
        )
        .bind(since.0)
        .bind(before.0)
        .fetch_optional(self.store.read_pool())
        .await?;
        Ok(hit.is_some())
    }

    /// Keeps `body` under `key`, computed at `at` (replacing what was kept).
    pub async fn keep(&self, key: &str, at: Timestamp, body: &str) -> Result<(), ReportStoreError> {
        sqlx::query(
            "INSERT INTO report_cache (key, computed_at, body) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET computed_at = excluded.computed_at, body = excluded.body",
        )
        .bind(key)
        .bind(at.0)
        .bind(body)
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// The histories of the tickets `[start, end)` can count (see the module's doc), of one
    /// office or all, in ticket order; more than `max` tickets is an error, not a partial
    /// report.
    pub async fn histories(
        &self,
        start: Timestamp,
        end: Timestamp,
        office: Option<&str>,
        max: usize,
    ) -> Result<Vec<ReportTicket>, ReportStoreError> {
        let p = self.store.placeholders(1, 4);
        let office_test = if office.is_some() {
            format!(" AND t.office = {}", p[3])
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT t.id AS tid, t.number, t.office, t.calendar_version, t.policy_version, \
             e.id, e.kind, e.occurred_at, e.source, e.idempotency_key, e.data, e.recorded_at \
             FROM tickets t JOIN ticket_events e ON e.ticket_id = t.id \
             WHERE t.id IN (SELECT id FROM tickets WHERE closed_at IS NULL AND received_at < {} \
                            UNION SELECT id FROM tickets WHERE last_event_at >= {} AND received_at < {}) \
             {office_test} ORDER BY t.id, e.id",
            p[0], p[1], p[2]
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(end.0)
            .bind(start.0)
            .bind(end.0);
        if let Some(o) = office {
            q = q.bind(o.to_owned());
        }
        let mut rows = q.fetch(self.store.read_pool());
        let mut out: Vec<ReportTicket> = Vec::new();
        while let Some(row) = rows.try_next().await? {
            let tid: i64 = row.try_get("tid")?;
            if out.last().is_none_or(|t| t.history.ticket_id != tid) {
                if out.len() == max {
                    return Err(ReportStoreError::TooMany { max });
                }
                out.push(ReportTicket {
                    history: History {
                        ticket_id: tid,
                        number: row.try_get("number")?,
                        office: row.try_get("office")?,
                        events: Vec::new(),
                    },
                    calendar_version: row.try_get("calendar_version")?,
                    policy_version: row.try_get("policy_version")?,
                });
            }
            let event =
                event_from_row(&row).map_err(|e| ReportStoreError::Corrupt(e.to_string()))?;
            if let Some(t) = out.last_mut() {
                t.history.events.push(event);
            }
        }
        Ok(out)
    }

    /// Citizen notices made in each of `buckets` (by `created_at`), counted by bucket,
    /// channel, kind, state and whether the fallback chain made them; of one office or all.
    pub async fn notice_counts(
        &self,
        buckets: &[Bucket],
        office: Option<&str>,
    ) -> Result<Vec<NoticeCount>, ReportStoreError> {
        let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
            return Ok(Vec::new());
        };
        let (case, ends) = bucket_case(self.store, "o.created_at", buckets, 1);
        let p = self.store.placeholders(ends.len() + 1, 3);
        let (join, office_test) = match office {
            Some(_) => (
                " JOIN tickets t ON t.id = o.ticket_id",
                format!(" AND t.office = {}", p[2]),
            ),
            None => ("", String::new()),
        };
        let sql = format!(
            "SELECT {case} AS bucket, o.channel, o.kind, o.state, \
             CAST(CASE WHEN o.dedupe_key LIKE '%>%' THEN 1 ELSE 0 END AS BIGINT) AS fallback, \
             COUNT(*) AS n FROM outbox o{join} \
             WHERE o.recipient = 'citizen' AND o.created_at >= {} AND o.created_at < {}{office_test} \
             GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
            p[0], p[1]
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in &ends {
            q = q.bind(*e);
        }
        q = q.bind(first.start.0).bind(last.end.0);
        if let Some(o) = office {
            q = q.bind(o.to_owned());
        }
        let rows = q.fetch_all(self.store.read_pool()).await?;
        rows.iter()
            .map(|r| {
                let bucket: i64 = r.try_get("bucket")?;
                let n: i64 = r.try_get("n")?;
                Ok(NoticeCount {
                    bucket: usize::try_from(bucket).unwrap_or(usize::MAX),
                    channel: r.try_get("channel")?,
                    kind: r.try_get("kind")?,
                    state: r.try_get("state")?,
                    fallback: r.try_get::<i64, _>("fallback")? == 1,
                    count: u64::try_from(n).unwrap_or(0),
                })
            })
            .collect()
    }

    /// Per bucket: office alerts that a citizen is unreachable, unmatched replies received,
    /// SMS opt-outs. Each vector has one count per bucket.
    pub async fn contact_counts(
        &self,
        buckets: &[Bucket],
    ) -> Result<[Vec<u64>; 3], ReportStoreError> {
        let mut out = [
            vec![0; buckets.len()],
            vec![0; buckets.len()],
            vec![0; buckets.len()],
        ];
        let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
            return Ok(out);
        };
        let reads = [
            (
                "created_at",
                "outbox",
                "kind = 'cittadino_irraggiungibile' AND recipient = 'office'",
            ),
            ("received_at", "inbound_messages", "status = 'unmatched'"),
            ("opted_out_at", "sms_opt_out", "1 = 1"),
        ];
        for (slot, (column, table, test)) in out.iter_mut().zip(reads) {
            let (case, ends) = bucket_case(self.store, column, buckets, 1);
            let p = self.store.placeholders(ends.len() + 1, 2);
            let sql = format!(
                "SELECT {case} AS bucket, COUNT(*) AS n FROM {table} \
                 WHERE {test} AND {column} >= {} AND {column} < {} GROUP BY 1",
                p[0], p[1]
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for e in &ends {
                q = q.bind(*e);
            }
            let rows = q
                .bind(first.start.0)
                .bind(last.end.0)
                .fetch_all(self.store.read_pool())
                .await?;
            for r in &rows {
                let b: i64 = r.try_get("bucket")?;
                let n: i64 = r.try_get("n")?;
                if let Some(v) = usize::try_from(b).ok().and_then(|b| slot.get_mut(b)) {
                    *v = u64::try_from(n).unwrap_or(0);
                }
            }
        }
        Ok(out)
    }

    /// The criticalities the store can list by itself, at most `limit` of each kind, oldest
    /// first: open tickets breached or in warning, suspensions older than `cap` (a wait that
    /// began before it), citizen messages held as uncertain, citizens unreachable on every
    /// channel (alerts since `recent`), unmatched replies received before `stale`.
    pub async fn criticalities(
        &self,
        cap: Timestamp,
        recent: Timestamp,
        stale: Timestamp,
        limit: i64,
    ) -> Result<Vec<StoredCriticality>, ReportStoreError> {
        let mut out = Vec::new();
        let ticket_reads: [(&'static str, String, i64); 3] = [
            (
                "breached",
                "closed_at IS NULL AND sla_state = 'breached' ORDER BY sla_due_at, id".into(),
                0,
            ),
            (
                "warning",
                "closed_at IS NULL AND sla_state = 'warning' ORDER BY sla_due_at, id".into(),
                0,
            ),
            (
                "suspension_past_cap",
                "closed_at IS NULL AND waiting_since IS NOT NULL AND waiting_since < $2 \
                 ORDER BY waiting_since, id"
                    .into(),
                cap.0,
            ),
        ];
        for (kind, test, param) in ticket_reads {
            let since = if kind == "suspension_past_cap" {
                "waiting_since"
            } else {
                "sla_due_at"
            };
            let sql = format!(
                "SELECT number, office, priority, {since} AS since FROM tickets WHERE {test} LIMIT $1"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit);
            if kind == "suspension_past_cap" {
                q = q.bind(param);
            }
            for r in q.fetch_all(self.store.read_pool()).await? {
                out.push(StoredCriticality {
                    kind,
                    number: Some(r.try_get("number")?),
                    office: Some(r.try_get("office")?),
                    priority: Some(r.try_get("priority")?),
                    since: r.try_get::<Option<i64>, _>("since")?.map(Timestamp),
                    detail: None,
                });
            }
        }
        let message_reads: [(&'static str, &str, i64); 2] = [
            (
                "message_held",
                "o.recipient = 'citizen' AND o.state = 'uncertain' AND o.created_at >= $2",
                recent.0,
            ),
            (
                "citizen_unreachable",
                "o.recipient = 'office' AND o.kind = 'cittadino_irraggiungibile' AND o.created_at >= $2",
                recent.0,
            ),
        ];
        for (kind, test, param) in message_reads {
            let sql = format!(
                "SELECT t.number, t.office, t.priority, o.created_at, o.kind, o.channel \
                 FROM outbox o JOIN tickets t ON t.id = o.ticket_id WHERE {test} \
                 ORDER BY o.created_at, o.id LIMIT $1"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(limit)
                .bind(param)
                .fetch_all(self.store.read_pool())
                .await?;
            for r in rows {
                let k: String = r.try_get("kind")?;
                let c: String = r.try_get("channel")?;
                out.push(StoredCriticality {
                    kind,
                    number: Some(r.try_get("number")?),
                    office: Some(r.try_get("office")?),
                    priority: Some(r.try_get("priority")?),
                    since: Some(Timestamp(r.try_get("created_at")?)),
                    detail: Some(format!("{k} ({c})")),
                });
            }
        }
        let rows = sqlx::query(
            "SELECT received_at, endpoint FROM inbound_messages WHERE status = 'unmatched' \
             AND received_at < $2 AND received_at >= $3 ORDER BY received_at, id LIMIT $1",
        )
        .bind(limit)
        .bind(stale.0)
        .bind(recent.0)
        .fetch_all(self.store.read_pool())
        .await?;
        for r in rows {
            out.push(StoredCriticality {
                kind: "unmatched_reply",
                number: None,
                office: None,
                priority: None,
                since: Some(Timestamp(r.try_get("received_at")?)),
                detail: Some(r.try_get("endpoint")?),
            });
        }
        Ok(out)
    }
}
