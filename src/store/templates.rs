//! Template versions, the admin console's users, tokens and sessions, and the audit log.
//!
//! Every change an admin makes is one transaction that also writes its audit record, so the log
//! cannot miss a change nor record one that did not happen.

use serde::Serialize;
use serde_json::Value;
use sqlx::{AnyConnection, Row};

use super::Templates;
use super::admin::audit;
use crate::templates::{Content, Key, Live};
use crate::time::Timestamp;

/// Why a template-version operation failed. `Conflict` is the admin's to fix.
#[derive(Debug, thiserror::Error)]
pub enum TemplateStoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Conflict(String),
}

/// A stored version of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateVersion {
    pub version: i64,
    /// `live`, `proposed`, `retired` or `withdrawn`.
    pub state: String,
    #[serde(flatten)]
    pub content: Content,
    pub note: String,
    pub author: String,
    pub created_at: Timestamp,
    pub published_by: Option<String>,
    pub published_at: Option<Timestamp>,
    /// For a version made by a rollback: the version whose words it restores (the first one
    /// of a chain of rollbacks; 0: the bundled default).
    pub restores: Option<i64>,
}

const VERSION_COLUMNS: &str = "version, state, subject, body_text, body_html, body_sms, \
     body_io_subject, body_io_markdown, note, author, created_at, published_by, published_at, \
     restores";

fn content_from(r: &sqlx::any::AnyRow) -> Result<Content, TemplateStoreError> {
    Ok(Content {
        subject: r.try_get("subject")?,
        text: r.try_get("body_text")?,
        html: r.try_get("body_html")?,
        sms: r.try_get("body_sms")?,
        io_subject: r.try_get("body_io_subject")?,
        io_markdown: r.try_get("body_io_markdown")?,
    })
}

fn version_from(r: &sqlx::any::AnyRow) -> Result<TemplateVersion, TemplateStoreError> {
    Ok(TemplateVersion {
        version: r.try_get("version")?,
        state: r.try_get("state")?,
        content: content_from(r)?,
        note: r.try_get("note")?,
        author: r.try_get("author")?,
        created_at: Timestamp(r.try_get("created_at")?),
        published_by: r.try_get("published_by")?,
        published_at: r.try_get::<Option<i64>, _>("published_at")?.map(Timestamp),
        restores: r.try_get("restores")?,
    })
}

/// The number the next version of `key` takes.
async fn next_version(conn: &mut AnyConnection, key: &Key) -> Result<i64, TemplateStoreError> {
    let (a, k, l) = key_binds(key);
    Ok(sqlx::query(
        "SELECT COALESCE(MAX(version), 0) + 1 AS v FROM template_versions \
         WHERE audience = $1 AND kind = $2 AND lang = $3",
    )
    .bind(a)
    .bind(k)
    .bind(l)
    .fetch_one(&mut *conn)
    .await?
    .try_get("v")?)
}

/// Retires the live version of `key`, if there is one.
async fn retire_live(conn: &mut AnyConnection, key: &Key) -> Result<(), TemplateStoreError> {
    let (a, k, l) = key_binds(key);
    sqlx::query(
        "UPDATE template_versions SET state = 'retired' \
         WHERE audience = $1 AND kind = $2 AND lang = $3 AND state = 'live'",
    )
    .bind(a)
    .bind(k)
    .bind(l)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes version `v` of `key`.
async fn insert_version(
    conn: &mut AnyConnection,
    key: &Key,
    v: &TemplateVersion,
) -> Result<(), TemplateStoreError> {
    let (a, k, l) = key_binds(key);
    sqlx::query(
        "INSERT INTO template_versions (audience, kind, lang, version, state, subject, \
         body_text, body_html, body_sms, body_io_subject, body_io_markdown, note, author, \
         created_at, published_by, published_at, restores) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(a)
    .bind(k)
    .bind(l)
    .bind(v.version)
    .bind(v.state.as_str())
    .bind(&v.content.subject)
    .bind(&v.content.text)
    .bind(v.content.html.as_deref())
    .bind(v.content.sms.as_deref())
    .bind(v.content.io_subject.as_deref())
    .bind(v.content.io_markdown.as_deref())
    .bind(v.note.as_str())
    .bind(v.author.as_str())
    .bind(v.created_at.0)
    .bind(v.published_by.as_deref())
    .bind(v.published_at.map(|t| t.0))
    .bind(v.restores)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The audit action of a new version: a rollback, a publication or a proposal.
fn version_action(v: &TemplateVersion) -> &'static str {
    if v.restores.is_some() {
        "template.rollback"
    } else if v.state == "live" {
        "template.publish"
    } else {
        "template.propose"
    }
}

fn key_binds(key: &Key) -> (&'static str, String, &'static str) {
    (key.audience.as_str(), key.kind.clone(), key.lang_str())
}

impl Templates<'_> {
    /// Every version of `key`, newest first.
    pub async fn template_versions(
        &self,
        key: &Key,
    ) -> Result<Vec<TemplateVersion>, TemplateStoreError> {
        let (a, k, l) = key_binds(key);
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM template_versions \
             WHERE audience = $1 AND kind = $2 AND lang = $3 ORDER BY version DESC"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(a)
            .bind(k)
            .bind(l)
            .fetch_all(&self.store.pool)
            .await?
            .iter()
            .map(version_from)
            .collect()
    }

    /// One version of `key`.
    pub async fn template_version(
        &self,
        key: &Key,
        version: i64,
    ) -> Result<Option<TemplateVersion>, TemplateStoreError> {
        let (a, k, l) = key_binds(key);
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM template_versions \
             WHERE audience = $1 AND kind = $2 AND lang = $3 AND version = $4"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(a)
            .bind(k)
            .bind(l)
            .bind(version)
            .fetch_optional(&self.store.pool)
            .await?
            .as_ref()
            .map(version_from)
            .transpose()
    }

    /// The live stored version of every template (templates never edited are absent: their
    /// bundled default is live).
    pub async fn live_templates(&self) -> Result<Vec<Live>, TemplateStoreError> {
        let rows = sqlx::query(
            "SELECT audience, kind, lang, version, subject, body_text, body_html, body_sms, \
             body_io_subject, body_io_markdown FROM template_versions WHERE state = 'live'",
        )
        .fetch_all(&self.store.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let audience: String = r.try_get("audience")?;
            let lang: String = r.try_get("lang")?;
            let kind: String = r.try_get("kind")?;
            let (Ok(audience), Ok(lang)) = (audience.parse(), lang.parse()) else {
                return Err(TemplateStoreError::Corrupt(format!(
                    "template_versions: {audience}/{kind}/{lang}"
                )));
            };
            out.push(Live {
                key: Key::new(audience, &kind, lang),
                version: r.try_get("version")?,
                content: content_from(r)?,
            });
        }
        Ok(out)
    }

    /// A cheap stamp of the live set: it changes whenever a version goes live or retires, so a
    /// daemon notices an edit made through another instance.
    pub async fn live_templates_stamp(&self) -> Result<(i64, i64), TemplateStoreError> {
        let r = sqlx::query(
            // SUM of a BIGINT is NUMERIC on PostgreSQL, which the Any driver cannot decode.
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(id), 0) AS BIGINT) AS s FROM template_versions \
             WHERE state = 'live'",
        )
        .fetch_one(&self.store.pool)
        .await?;
        Ok((r.try_get("n")?, r.try_get("s")?))
    }

    /// Stores `content` as the next version of `key`, in state `state` (`proposed`, or `live`
    /// for a rollback, which names in `restores` the version whose words it restores), retiring
    /// the live one when it goes live. Whether the change is allowed (four eyes, what a rollback
    /// may restore) is the caller's decision.
    #[allow(clippy::too_many_arguments)] // one audited change: every argument is recorded
    pub async fn add_template_version(
        &self,
        key: &Key,
        content: &Content,
        note: &str,
        author: &str,
        state: &str,
        restores: Option<i64>,
        now: Timestamp,
        audit_detail: &Value,
    ) -> Result<TemplateVersion, TemplateStoreError> {
        let mut tx = self.store.pool.begin().await?;
        let version = next_version(&mut tx, key).await?;
        let live = state == "live";
        let v = TemplateVersion {
            version,
            state: state.to_owned(),
            content: content.clone(),
            note: note.to_owned(),
            author: author.to_owned(),
            created_at: now,
            published_by: live.then(|| author.to_owned()),
            published_at: live.then_some(now),
            restores,
        };
        if live {
            retire_live(&mut tx, key).await?;
        }
        insert_version(&mut tx, key, &v).await?;
        audit(
            &mut tx,
            now,
            author,
            version_action(&v),
            &format!("{key}@{version}"),
            audit_detail,
        )
        .await?;
        tx.commit().await?;
        Ok(v)
    }

    /// Makes proposed version `version` of `key` live and retires the one before; `None` when
    /// there is no such proposed version.
    pub async fn publish_template_version(
        &self,
        key: &Key,
        version: i64,
        publisher: &str,
        now: Timestamp,
    ) -> Result<Option<TemplateVersion>, TemplateStoreError> {
        let (a, k, l) = key_binds(key);
        let mut tx = self.store.pool.begin().await?;
        let found = sqlx::query(
            "SELECT state FROM template_versions \
             WHERE audience = $1 AND kind = $2 AND lang = $3 AND version = $4",
        )
        .bind(a)
        .bind(k.clone())
        .bind(l)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        match found {
            Some(r) if r.try_get::<String, _>("state")? == "proposed" => {}
            _ => return Ok(None),
        }
        sqlx::query(
            "UPDATE template_versions SET state = 'retired' \
             WHERE audience = $1 AND kind = $2 AND lang = $3 AND state = 'live'",
        )
        .bind(a)
        .bind(k.clone())
        .bind(l)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE template_versions SET state = 'live', published_by = $1, published_at = $2 \
             WHERE audience = $3 AND kind = $4 AND lang = $5 AND version = $6",
        )
        .bind(publisher)
        .bind(now.0)
        .bind(a)
        .bind(k)
        .bind(l)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        audit(
            &mut tx,
            now,
            publisher,
            "template.publish",
            &format!("{key}@{version}"),
            &serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        self.template_version(key, version).await
    }
}

impl Templates<'_> {
    /// What a preview with a real ticket renders: the payload of the ticket's latest notice of
    /// kind `kind`, or else `base` (a sample) with the ticket's own fields written over it.
    pub async fn preview_payload(
        &self,
        number: &str,
        kind: &str,
        base: Value,
        tz: chrono_tz::Tz,
    ) -> Result<Option<Value>, TemplateStoreError> {
        let row = sqlx::query(
            "SELECT o.payload AS payload FROM outbox o JOIN tickets t ON t.id = o.ticket_id \
             WHERE t.number = $1 AND o.kind = $2 ORDER BY o.id DESC LIMIT 1",
        )
        .bind(number)
        .bind(kind)
        .fetch_optional(&self.store.pool)
        .await?;
        if let Some(r) = row {
            let text: String = r.try_get("payload")?;
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                return Ok(Some(v));
            }
        }
        let Some(t) = sqlx::query(
            "SELECT number, subject, office, category, priority, received_at, sla_due_at \
             FROM tickets WHERE number = $1",
        )
        .bind(number)
        .fetch_optional(&self.store.pool)
        .await?
        else {
            return Ok(None);
        };
        let rfc = |s: i64| Timestamp(s).to_chrono().with_timezone(&tz).to_rfc3339();
        let mut p = match base {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        for col in ["number", "subject", "office", "category", "priority"] {
            p.insert(col.to_owned(), Value::String(t.try_get(col)?));
        }
        p.insert(
            "received_at".to_owned(),
            Value::String(rfc(t.try_get("received_at")?)),
        );
        if p.contains_key("due_at") {
            p.insert(
                "due_at".to_owned(),
                t.try_get::<Option<i64>, _>("sla_due_at")?
                    .map_or(Value::Null, |d| Value::String(rfc(d))),
            );
        }
        Ok(Some(Value::Object(p)))
    }
}
