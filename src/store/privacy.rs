//! The personal-data lifecycle (issue 20, point 7): retention per kind of data, applied in
//! bounded batches on a clock the caller gives; a citizen's data gathered by codice fiscale
//! (`messo privacy export`); and the erasure on request (`messo privacy erase`), audited.
//!
//! What goes and what stays, per kind (docs/security.md, "Personal data lifecycle"):
//!
//! - message bodies: a sent, dead or uncertain message keeps its row (kind, channel, state,
//!   instants: the reports count them, and its unique key stops it being owed twice) and loses
//!   its words (`rendered`), address, payload and the servers' error texts;
//! - closed ticket contacts: the ticket keeps its number, office, category, dates and SLA
//!   figures, and its events replay to the same facts; the citizen's contacts and codice
//!   fiscale go (from the row, the `received` event and contact corrections), with the
//!   citizen's reply texts, the satisfaction comment and the CRM's copy of the payload;
//! - inbound: a processed record keeps its route, instants, status and outcome; the sender,
//!   text, subject, raw payload and attachments go (a file goes once no record names it);
//! - audit: records older than the period are deleted (the floor is in the configuration);
//! - domiciles: a cached INAD answer no longer valid, for a code with no open ticket.

use std::collections::BTreeSet;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use messo_core::inbound::Parsed;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::{AnyConnection, Row};

use super::Privacy;
use crate::config::Retention;
use crate::domain::FiscalCode;
use crate::ticket::{erased_citizen, erased_event_data};
use crate::time::Timestamp;

/// Batches of one kind in one pass at most; what is left waits for the next pass.
pub const MAX_BATCHES_PER_PASS: u32 = 200;

/// Outbox states after which a message is never sent again.
const FINAL_STATES: &str = "('delivered', 'dead', 'uncertain')";

/// Why a retention pass, an export or an erasure failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    #[error("no randomness for the privacy key: {0}")]
    Randomness(String),
}

/// Rows cleared per kind of data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionCounts {
    pub message_bodies: u64,
    pub closed_ticket_contacts: u64,
    pub inbound: u64,
    /// Attachment files removed from the attachments folder.
    pub attachments: u64,
    pub audit: u64,
    pub domiciles: u64,
}

impl RetentionCounts {
    /// Each count under its metric label (`crate::metrics::RETENTION_KINDS`).
    pub fn by_kind(&self) -> [(&'static str, u64); 6] {
        [
            ("message_bodies", self.message_bodies),
            ("closed_ticket_contacts", self.closed_ticket_contacts),
            ("inbound", self.inbound),
            ("attachments", self.attachments),
            ("audit", self.audit),
            ("domiciles", self.domiciles),
        ]
    }

    pub fn total(&self) -> u64 {
        self.by_kind().iter().map(|(_, n)| n).sum()
    }

    fn json(&self) -> Value {
        Value::Object(
            self.by_kind()
                .into_iter()
                .map(|(k, n)| (k.to_owned(), Value::from(n)))
                .collect(),
        )
    }
}

/// What one retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub counts: RetentionCounts,
    /// Statements of `batch_size` rows at most that were run.
    pub batches: u32,
    /// A kind reached [`MAX_BATCHES_PER_PASS`]: more is due, for the next pass.
    pub unfinished: bool,
}

/// The answer to an erasure request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Erasure {
    /// Done: what was removed, and the erasure's record.
    Erased {
        id: i64,
        counts: RetentionCounts,
        tickets: Vec<String>,
    },
    /// Nothing changed: the request is still being handled for these tickets.
    Refused {
        /// Tickets still open.
        open: Vec<String>,
        /// Closed tickets with a message to the citizen still being sent.
        sending: Vec<String>,
    },
}

/// What an erasure keeps, and why (printed by the command, stored with the record).
pub const KEPT: &[(&str, &str)] = &[
    (
        "ticket numbers, offices, categories, priorities, dates and SLA figures",
        "the office's record of the request and the compliance reports (aggregates) need them",
    ),
    (
        "the office's own words in the ticket history (steps, notes, closures)",
        "they are the administrative record of how the request was handled",
    ),
    (
        "messages' kind, channel, state and instants, without address or words",
        "the notices owed and sent are counted by the reports; the row stops a notice being owed twice",
    ),
    (
        "SMS opt-outs",
        "an objection must keep being honoured; it names a number, not the codice fiscale",
    ),
    (
        "the audit trail and this erasure's record (the codice fiscale only as a keyed hash)",
        "accountability: who did what with personal data, and when",
    ),
];

/// `ids` as a SQL list of integers (our own ids: nothing from outside is written inline).
fn id_list(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn ts(v: Option<i64>) -> Value {
    v.map_or(Value::Null, |s| Value::from(Timestamp(s).to_string()))
}

/// Stored JSON text as JSON (text that is not JSON as a string).
fn json_text(text: Option<String>) -> Value {
    match text {
        None => Value::Null,
        Some(t) => serde_json::from_str(&t).unwrap_or(Value::String(t)),
    }
}

impl Privacy<'_> {
    /// Applies `r` as it stands at `now`: each kind in batches of `r.batch_size` rows, each
    /// batch its own transaction, the task yielding between batches, until a kind has nothing
    /// left or ran `max_batches` batches. Attachment files no record names any more are removed
    /// from `attachments_dir`.
    pub async fn apply_retention(
        &self,
        r: &Retention,
        attachments_dir: &Path,
        now: Timestamp,
        max_batches: u32,
    ) -> Result<RetentionReport, PrivacyError> {
        let limit = i64::from(r.batch_size);
        let age = |days: u32| now.plus(-Retention::seconds(days));
        let mut report = RetentionReport::default();
        macro_rules! kind {
            ($field:ident, $batch:expr) => {{
                let mut runs = 0;
                loop {
                    let n: u64 = $batch;
                    report.counts.$field += n;
                    report.batches += 1;
                    runs += 1;
                    tokio::task::yield_now().await;
                    if n < limit as u64 {
                        break;
                    }
                    if runs >= max_batches {
                        report.unfinished = true;
                        break;
                    }
                }
            }};
        }
        let bodies = age(r.message_bodies_days);
        kind!(
            message_bodies,
            self.message_bodies_batch(bodies, limit).await?
        );
        let contacts = age(r.closed_ticket_contacts_days);
        kind!(
            closed_ticket_contacts,
            self.closed_ticket_batch(contacts, limit, now).await?
        );
        let inbound = age(r.inbound_days);
        kind!(inbound, {
            let (n, files) = self.inbound_batch(inbound, limit, now).await?;
            report.counts.attachments += self.remove_unnamed(attachments_dir, files).await?;
            n
        });
        let audit = age(r.audit_days);
        kind!(audit, self.audit_batch(audit, limit).await?);
        kind!(domiciles, self.domicile_batch(now, limit).await?);
        Ok(report)
    }

    /// Clears up to `limit` final messages last changed before `before`.
    pub async fn message_bodies_batch(
        &self,
        before: Timestamp,
        limit: i64,
    ) -> Result<u64, PrivacyError> {
        let mut tx = self.store.pool.begin().await?;
        let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM outbox WHERE state IN {FINAL_STATES} AND updated_at < $1 \
             AND (rendered IS NOT NULL OR address <> '') ORDER BY updated_at, id LIMIT $2"
        )))
        .bind(before.0)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let n = scrub_messages(&mut tx, &ids).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Pseudonymises up to `limit` tickets closed before `before` that still hold contacts.
    pub async fn closed_ticket_batch(
        &self,
        before: Timestamp,
        limit: i64,
        now: Timestamp,
    ) -> Result<u64, PrivacyError> {
        let mut tx = self.store.pool.begin().await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM tickets WHERE closed_at IS NOT NULL AND closed_at < $1 \
             AND personal_data_erased_at IS NULL ORDER BY closed_at, id LIMIT $2",
        )
        .bind(before.0)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let n = scrub_tickets(&mut tx, &ids, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Clears up to `limit` processed inbound records received before `before`; the attachment
    /// files they named.
    pub async fn inbound_batch(
        &self,
        before: Timestamp,
        limit: i64,
        now: Timestamp,
    ) -> Result<(u64, BTreeSet<String>), PrivacyError> {
        let mut tx = self.store.pool.begin().await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM inbound_messages WHERE status <> 'pending' AND received_at < $1 \
             AND personal_data_erased_at IS NULL ORDER BY received_at, id LIMIT $2",
        )
        .bind(before.0)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let out = scrub_inbound(&mut tx, &ids, now).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Deletes up to `limit` audit records (and erasure records) from before `before`.
    pub async fn audit_batch(&self, before: Timestamp, limit: i64) -> Result<u64, PrivacyError> {
        let mut n = 0;
        for table in ["audit_log", "privacy_erasures"] {
            n += sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE id IN \
                 (SELECT id FROM {table} WHERE at < $1 ORDER BY id LIMIT $2)"
            )))
            .bind(before.0)
            .bind(limit)
            .execute(&self.store.pool)
            .await?
            .rows_affected();
        }
        Ok(n)
    }

    /// Deletes up to `limit` cached domicile answers no longer valid at `now` whose code has no
    /// open ticket (an expired answer is never used: the look-up asks INAD again).
    pub async fn domicile_batch(&self, now: Timestamp, limit: i64) -> Result<u64, PrivacyError> {
        Ok(sqlx::query(
            "DELETE FROM digital_domiciles WHERE fiscal_code IN \
             (SELECT d.fiscal_code FROM digital_domiciles d WHERE d.valid_until <= $1 \
              AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.fiscal_code = d.fiscal_code \
              AND t.closed_at IS NULL) ORDER BY d.valid_until LIMIT $2)",
        )
        .bind(now.0)
        .bind(limit)
        .execute(&self.store.pool)
        .await?
        .rows_affected())
    }

    /// Removes from `dir` each file of `names` that no inbound record names any more; how many
    /// were removed. A file already gone is not an error.
    async fn remove_unnamed(
        &self,
        dir: &Path,
        names: BTreeSet<String>,
    ) -> Result<u64, PrivacyError> {
        let mut removed = 0;
        for name in names {
            // Stored names are SHA-256 hex: nothing else is ever joined to the folder.
            if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let named: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM inbound_messages WHERE personal_data_erased_at IS NULL \
                 AND parsed LIKE $1",
            )
            .bind(format!("%\"stored_as\":\"{name}\"%"))
            .fetch_one(&self.store.pool)
            .await?;
            if named > 0 {
                continue;
            }
            let path = dir.join(&name);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(error = %e, "an attachment could not be removed"),
            }
        }
        Ok(removed)
    }

    /// Everything the store holds about the citizen with `cf`, as JSON: their tickets (with
    /// events, messages with their words, inbound records, satisfaction answer), the cached
    /// digital domicile, the SMS opt-outs of their numbers (and the office's lifts of them), and
    /// the erasures recorded for them.
    pub async fn export(&self, cf: &FiscalCode, now: Timestamp) -> Result<Value, PrivacyError> {
        let pool = self.store.read_pool();
        let rows = sqlx::query(
            "SELECT id, number, office, category, priority, subject, step, step_text, citizen, \
             fiscal_code, received_at, closed_at, sla_state, sla_due_at, sla_elapsed_s \
             FROM tickets WHERE fiscal_code = $1 ORDER BY id",
        )
        .bind(cf.as_str())
        .fetch_all(pool)
        .await?;
        let mut tickets = Vec::new();
        let mut mobiles = BTreeSet::new();
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let citizen = json_text(Some(r.try_get("citizen")?));
            if let Some(m) = citizen.get("mobile").and_then(Value::as_str) {
                mobiles.insert(m.to_owned());
            }
            tickets.push(json!({
                "number": r.try_get::<String, _>("number")?,
                "office": r.try_get::<String, _>("office")?,
                "category": r.try_get::<String, _>("category")?,
                "priority": r.try_get::<String, _>("priority")?,
                "subject": r.try_get::<String, _>("subject")?,
                "step": r.try_get::<Option<String>, _>("step")?,
                "step_text": r.try_get::<Option<String>, _>("step_text")?,
                "citizen": citizen,
                "fiscal_code": r.try_get::<Option<String>, _>("fiscal_code")?,
                "received_at": ts(r.try_get("received_at")?),
                "closed_at": ts(r.try_get("closed_at")?),
                "sla_state": r.try_get::<String, _>("sla_state")?,
                "sla_due_at": ts(r.try_get("sla_due_at")?),
                "sla_elapsed_s": r.try_get::<i64, _>("sla_elapsed_s")?,
                "events": self.export_events(id).await?,
                "messages": self.export_messages(id).await?,
                "inbound": self.export_inbound(id).await?,
                "satisfaction": self.export_satisfaction(id).await?,
            }));
        }
        let domicile = sqlx::query(
            "SELECT pec, source, checked_at, valid_until FROM digital_domiciles \
             WHERE fiscal_code = $1",
        )
        .bind(cf.as_str())
        .fetch_optional(pool)
        .await?
        .map(|r| -> Result<Value, sqlx::Error> {
            Ok(json!({
                "pec": r.try_get::<Option<String>, _>("pec")?,
                "source": r.try_get::<String, _>("source")?,
                "checked_at": ts(r.try_get("checked_at")?),
                "valid_until": ts(r.try_get("valid_until")?),
            }))
        })
        .transpose()?;
        let mut opt_outs = Vec::new();
        for m in &mobiles {
            for r in sqlx::query(
                "SELECT number, keyword, opted_out_at FROM sms_opt_out WHERE number = $1",
            )
            .bind(m)
            .fetch_all(pool)
            .await?
            {
                opt_outs.push(json!({
                    "number": r.try_get::<String, _>("number")?,
                    "keyword": r.try_get::<String, _>("keyword")?,
                    "opted_out_at": ts(r.try_get("opted_out_at")?),
                }));
            }
            for r in sqlx::query(
                "SELECT number, lifted_at, lifted_by FROM sms_opt_out_lifts WHERE number = $1",
            )
            .bind(m)
            .fetch_all(pool)
            .await?
            {
                opt_outs.push(json!({
                    "number": r.try_get::<String, _>("number")?,
                    "lifted_at": ts(r.try_get("lifted_at")?),
                    "lifted_by": r.try_get::<String, _>("lifted_by")?,
                }));
            }
        }
        let mut erasures = Vec::new();
        if let Some(key) = self.key(&self.store.pool).await? {
            for r in sqlx::query(
                "SELECT at, operator, reason, counts FROM privacy_erasures WHERE cf_hash = $1 \
                 ORDER BY id",
            )
            .bind(keyed_hash(&key, cf))
            .fetch_all(pool)
            .await?
            {
                erasures.push(json!({
                    "at": ts(r.try_get("at")?),
                    "operator": r.try_get::<String, _>("operator")?,
                    "reason": r.try_get::<String, _>("reason")?,
                    "counts": json_text(Some(r.try_get("counts")?)),
                }));
            }
        }
        Ok(json!({
            "fiscal_code": cf.as_str(),
            "generated_at": now.to_string(),
            "tickets": tickets,
            "digital_domicile": domicile,
            "sms_opt_outs": opt_outs,
            "erasures": erasures,
        }))
    }

    async fn export_events(&self, ticket_id: i64) -> Result<Vec<Value>, PrivacyError> {
        let rows = sqlx::query(
            "SELECT kind, occurred_at, source, data FROM ticket_events WHERE ticket_id = $1 \
             ORDER BY id",
        )
        .bind(ticket_id)
        .fetch_all(self.store.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(json!({
                    "kind": r.try_get::<String, _>("kind")?,
                    "at": ts(r.try_get("occurred_at")?),
                    "source": r.try_get::<String, _>("source")?,
                    "data": json_text(Some(r.try_get("data")?)),
                }))
            })
            .collect()
    }

    async fn export_messages(&self, ticket_id: i64) -> Result<Vec<Value>, PrivacyError> {
        let rows = sqlx::query(
            "SELECT kind, recipient, channel, address, language, state, created_at, \
             delivered_at, rendered FROM outbox WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(ticket_id)
        .fetch_all(self.store.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(json!({
                    "kind": r.try_get::<String, _>("kind")?,
                    "recipient": r.try_get::<String, _>("recipient")?,
                    "channel": r.try_get::<String, _>("channel")?,
                    "address": r.try_get::<String, _>("address")?,
                    "language": r.try_get::<String, _>("language")?,
                    "state": r.try_get::<String, _>("state")?,
                    "created_at": ts(r.try_get("created_at")?),
                    "delivered_at": ts(r.try_get("delivered_at")?),
                    "content": json_text(r.try_get("rendered")?),
                }))
            })
            .collect()
    }

    async fn export_inbound(&self, ticket_id: i64) -> Result<Vec<Value>, PrivacyError> {
        let rows = sqlx::query(
            "SELECT route, received_at, sender, status, outcome, parsed FROM inbound_messages \
             WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(ticket_id)
        .fetch_all(self.store.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(json!({
                    "route": r.try_get::<String, _>("route")?,
                    "received_at": ts(r.try_get("received_at")?),
                    "sender": r.try_get::<Option<String>, _>("sender")?,
                    "status": r.try_get::<String, _>("status")?,
                    "outcome": r.try_get::<Option<String>, _>("outcome")?,
                    "content": json_text(Some(r.try_get("parsed")?)),
                }))
            })
            .collect()
    }

    async fn export_satisfaction(&self, ticket_id: i64) -> Result<Value, PrivacyError> {
        let row = sqlx::query(
            "SELECT score, comment, channel, answered_at FROM satisfaction WHERE ticket_id = $1",
        )
        .bind(ticket_id)
        .fetch_optional(self.store.read_pool())
        .await?;
        Ok(match row {
            None => Value::Null,
            Some(r) => json!({
                "score": r.try_get::<i64, _>("score")?,
                "comment": r.try_get::<Option<String>, _>("comment")?,
                "channel": r.try_get::<String, _>("channel")?,
                "answered_at": ts(r.try_get("answered_at")?),
            }),
        })
    }

    /// Erases what the law lets go of the citizen with `cf`, at `now`, in one transaction,
    /// recorded (who, why, counts; the code as a keyed hash) in `privacy_erasures` and the
    /// audit log. Refused, with nothing changed, while one of their tickets is open or a
    /// message about a closed one is still being sent. Attachment files no record names any
    /// more are removed from `attachments_dir` after the commit.
    pub async fn erase(
        &self,
        cf: &FiscalCode,
        operator: &str,
        reason: &str,
        attachments_dir: &Path,
        now: Timestamp,
    ) -> Result<Erasure, PrivacyError> {
        let mut tx = self.store.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT id, number, closed_at FROM tickets WHERE fiscal_code = $1 ORDER BY id",
        )
        .bind(cf.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let mut ids = Vec::new();
        let mut numbers = Vec::new();
        let mut open = Vec::new();
        for r in &rows {
            let number: String = r.try_get("number")?;
            if r.try_get::<Option<i64>, _>("closed_at")?.is_none() {
                open.push(number.clone());
            }
            ids.push(r.try_get::<i64, _>("id")?);
            numbers.push(number);
        }
        let sending: Vec<String> = if ids.is_empty() {
            Vec::new()
        } else {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT DISTINCT t.number FROM outbox o JOIN tickets t ON t.id = o.ticket_id \
                 WHERE o.ticket_id IN ({}) AND o.state IN ('pending', 'retry', 'sending') \
                 AND t.closed_at IS NOT NULL ORDER BY t.number",
                id_list(&ids)
            )))
            .fetch_all(&mut *tx)
            .await?
        };
        if !open.is_empty() || !sending.is_empty() {
            tx.rollback().await?;
            return Ok(Erasure::Refused { open, sending });
        }
        let mut counts = RetentionCounts {
            closed_ticket_contacts: scrub_tickets(&mut tx, &ids, now).await?,
            ..RetentionCounts::default()
        };
        let mut files = BTreeSet::new();
        if !ids.is_empty() {
            let list = id_list(&ids);
            let messages: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM outbox WHERE ticket_id IN ({list}) \
                 AND state NOT IN ('pending', 'retry', 'sending') \
                 AND (rendered IS NOT NULL OR address <> '') ORDER BY id"
            )))
            .fetch_all(&mut *tx)
            .await?;
            counts.message_bodies = scrub_messages(&mut tx, &messages).await?;
            let inbound: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM inbound_messages WHERE ticket_id IN ({list}) \
                 AND personal_data_erased_at IS NULL ORDER BY id"
            )))
            .fetch_all(&mut *tx)
            .await?;
            let (n, named) = scrub_inbound(&mut tx, &inbound, now).await?;
            counts.inbound = n;
            files = named;
        }
        counts.domiciles = sqlx::query("DELETE FROM digital_domiciles WHERE fiscal_code = $1")
            .bind(cf.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let key = self.key_in(&mut tx, now).await?;
        let kept: Vec<Value> = KEPT
            .iter()
            .map(|(what, why)| json!({"what": what, "why": why}))
            .collect();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO privacy_erasures (at, operator, reason, cf_hash, counts, kept) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(now.0)
        .bind(operator)
        .bind(reason)
        .bind(keyed_hash(&key, cf))
        .bind(counts.json().to_string())
        .bind(Value::Array(kept).to_string())
        .fetch_one(&mut *tx)
        .await?;
        super::admin::audit(
            &mut tx,
            now,
            operator,
            "privacy.erase",
            &format!("privacy_erasures/{id}"),
            &json!({"reason": reason, "counts": counts.json(), "tickets": numbers}),
        )
        .await?;
        tx.commit().await?;
        counts.attachments = self.remove_unnamed(attachments_dir, files).await?;
        Ok(Erasure::Erased {
            id,
            counts,
            tickets: numbers,
        })
    }

    /// The erasure records of `cf` as (id, at, operator, reason), oldest first.
    pub async fn erasures_of(
        &self,
        cf: &FiscalCode,
    ) -> Result<Vec<(i64, Timestamp, String, String)>, PrivacyError> {
        let Some(key) = self.key(&self.store.pool).await? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT id, at, operator, reason FROM privacy_erasures WHERE cf_hash = $1 ORDER BY id",
        )
        .bind(keyed_hash(&key, cf))
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    Timestamp(r.try_get(1)?),
                    r.try_get(2)?,
                    r.try_get(3)?,
                ))
            })
            .collect()
    }

    async fn key(&self, pool: &sqlx::AnyPool) -> Result<Option<String>, PrivacyError> {
        Ok(
            sqlx::query_scalar("SELECT secret FROM privacy_keys WHERE id = 1")
                .fetch_optional(pool)
                .await?,
        )
    }

    /// The key of the codes' hashes, made on first use.
    async fn key_in(
        &self,
        conn: &mut AnyConnection,
        now: Timestamp,
    ) -> Result<String, PrivacyError> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| PrivacyError::Randomness(e.to_string()))?;
        sqlx::query(
            "INSERT INTO privacy_keys (id, secret, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(hex::encode(fresh))
        .bind(now.0)
        .execute(&mut *conn)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT secret FROM privacy_keys WHERE id = 1")
                .fetch_one(&mut *conn)
                .await?,
        )
    }
}

/// HMAC-SHA256 of the code under `key`, hex: matches a later request to an erasure without
/// the store keeping the code (an unkeyed hash of a codice fiscale is found by trying them).
fn keyed_hash(key: &str, cf: &FiscalCode) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()) else {
        // HMAC takes a key of any length.
        return String::new();
    };
    mac.update(cf.as_str().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Clears the words, address, payload and error texts of the messages `ids`; how many.
async fn scrub_messages(conn: &mut AnyConnection, ids: &[i64]) -> Result<u64, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let list = id_list(ids);
    // Servers' error texts may quote the address: they go with it.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE delivery_attempts SET error = NULL WHERE outbox_id IN ({list}) \
         AND error IS NOT NULL"
    )))
    .execute(&mut *conn)
    .await?;
    Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE outbox SET rendered = NULL, address = '', payload = '{{}}', last_error = NULL \
         WHERE id IN ({list})"
    )))
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// Removes the citizen's contacts and codice fiscale from the tickets `ids` (row, events,
/// satisfaction comment, the CRM's payloads, the SMS answers' senders); how many tickets.
async fn scrub_tickets(
    conn: &mut AnyConnection,
    ids: &[i64],
    now: Timestamp,
) -> Result<u64, PrivacyError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let list = id_list(ids);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, number, citizen FROM tickets WHERE id IN ({list})"
    )))
    .fetch_all(&mut *conn)
    .await?;
    let mut numbers = Vec::new();
    for r in &rows {
        let id: i64 = r.try_get("id")?;
        numbers.push(r.try_get::<String, _>("number")?);
        let citizen = json_text(Some(r.try_get("citizen")?));
        sqlx::query(
            "UPDATE tickets SET citizen = $1, fiscal_code = NULL, citizen_mobile = NULL, \
             citizen_email = NULL, personal_data_erased_at = $2 WHERE id = $3",
        )
        .bind(erased_citizen(&citizen).to_string())
        .bind(now.0)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    }
    let events = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, kind, data FROM ticket_events WHERE ticket_id IN ({list}) \
         AND kind IN ('received', 'contact_changed', 'integration_received')"
    )))
    .fetch_all(&mut *conn)
    .await?;
    for r in &events {
        let id: i64 = r.try_get("id")?;
        let kind: String = r.try_get("kind")?;
        let data: Value = serde_json::from_str(&r.try_get::<String, _>("data")?)
            .map_err(|e| PrivacyError::Corrupt(format!("event {id}: {e}")))?;
        if let Some(erased) = erased_event_data(&kind, &data) {
            sqlx::query("UPDATE ticket_events SET data = $1 WHERE id = $2")
                .bind(erased.to_string())
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
    }
    for sql in [
        format!("UPDATE satisfaction SET comment = NULL WHERE ticket_id IN ({list})"),
        format!("UPDATE sms_answers SET sender = '' WHERE ticket_id IN ({list})"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await?;
    }
    for number in &numbers {
        sqlx::query(
            "UPDATE crm_inbox SET payload = '{}' WHERE ticket_number = $1 \
             AND status <> 'pending' AND payload <> '{}'",
        )
        .bind(number)
        .execute(&mut *conn)
        .await?;
    }
    Ok(rows.len() as u64)
}

/// Clears the sender, content and raw payload of the inbound records `ids`; how many, and the
/// attachment files they named.
async fn scrub_inbound(
    conn: &mut AnyConnection,
    ids: &[i64],
    now: Timestamp,
) -> Result<(u64, BTreeSet<String>), PrivacyError> {
    let mut files = BTreeSet::new();
    if ids.is_empty() {
        return Ok((0, files));
    }
    let list = id_list(ids);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, parsed FROM inbound_messages WHERE id IN ({list})"
    )))
    .fetch_all(&mut *conn)
    .await?;
    for r in &rows {
        let id: i64 = r.try_get("id")?;
        let text: String = r.try_get("parsed")?;
        // A record that no longer reads is emptied all the same.
        let kept = serde_json::from_str::<Parsed>(&text)
            .map(|p| {
                files.extend(p.attachments.iter().filter_map(|a| a.stored_as.clone()));
                p.without_personal_data()
            })
            .unwrap_or_default();
        let kept =
            serde_json::to_string(&kept).map_err(|e| PrivacyError::Corrupt(e.to_string()))?;
        sqlx::query(
            "UPDATE inbound_messages SET parsed = $1, sender = NULL, raw = NULL, \
             personal_data_erased_at = $2 WHERE id = $3",
        )
        .bind(kept)
        .bind(now.0)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE sms_answers SET sender = '' WHERE inbound_id IN ({list})"
    )))
    .execute(&mut *conn)
    .await?;
    Ok((rows.len() as u64, files))
}
