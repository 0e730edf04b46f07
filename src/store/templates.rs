//! Template versions, the admin console's users, tokens and sessions, and the audit log.
//!
//! Every change an admin makes is one transaction that also writes its audit record, so the log
//! cannot miss a change nor record one that did not happen.

use serde::Serialize;
use serde_json::Value;
use sqlx::{AnyConnection, Row};

use super::{Store, StoreError};
use crate::domain::{Address, Channel, Kind, Lang, Recipient};
use crate::templates::{Content, Key, Live, RenderedMessage};
use crate::time::Timestamp;

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

/// A role in the admin console, from least to most trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            _ => Err(format!("unknown role {s:?} (expected admin|editor|viewer)")),
        }
    }
}

/// An admin console user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminUser {
    #[serde(skip)]
    pub id: i64,
    pub username: String,
    pub role: Role,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub disabled: bool,
    pub created_at: Timestamp,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub detail: Value,
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

pub(super) const USER_COLUMNS: &str = "id, username, role, password_hash, disabled, created_at";

const VERSION_COLUMNS: &str = "version, state, subject, body_text, body_html, body_sms, note, \
     author, created_at, published_by, published_at, restores";

fn content_from(r: &sqlx::any::AnyRow) -> Result<Content, StoreError> {
    Ok(Content {
        subject: r.try_get("subject")?,
        text: r.try_get("body_text")?,
        html: r.try_get("body_html")?,
        sms: r.try_get("body_sms")?,
    })
}

fn version_from(r: &sqlx::any::AnyRow) -> Result<TemplateVersion, StoreError> {
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

pub(super) fn user_from(r: &sqlx::any::AnyRow) -> Result<AdminUser, StoreError> {
    let role: String = r.try_get("role")?;
    Ok(AdminUser {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        role: role.parse().map_err(StoreError::Corrupt)?,
        password_hash: r.try_get("password_hash")?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        created_at: Timestamp(r.try_get("created_at")?),
    })
}

/// Writes one audit record on `conn` (inside the change's transaction).
pub(crate) async fn audit(
    conn: &mut AnyConnection,
    now: Timestamp,
    actor: &str,
    action: &str,
    object: &str,
    detail: &Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, object, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(now.0)
    .bind(actor)
    .bind(action)
    .bind(object)
    .bind(detail.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn key_binds(key: &Key) -> (&'static str, String, &'static str) {
    (key.audience.as_str(), key.kind.clone(), key.lang_str())
}

impl Store {
    /// Every version of `key`, newest first.
    pub async fn template_versions(&self, key: &Key) -> Result<Vec<TemplateVersion>, StoreError> {
        let (a, k, l) = key_binds(key);
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM template_versions \
             WHERE audience = $1 AND kind = $2 AND lang = $3 ORDER BY version DESC"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(a)
            .bind(k)
            .bind(l)
            .fetch_all(&self.pool)
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
    ) -> Result<Option<TemplateVersion>, StoreError> {
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
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(version_from)
            .transpose()
    }

    /// The live stored version of every template (templates never edited are absent: their
    /// bundled default is live).
    pub async fn live_templates(&self) -> Result<Vec<Live>, StoreError> {
        let rows = sqlx::query(
            "SELECT audience, kind, lang, version, subject, body_text, body_html, body_sms \
             FROM template_versions WHERE state = 'live'",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let audience: String = r.try_get("audience")?;
            let lang: String = r.try_get("lang")?;
            let kind: String = r.try_get("kind")?;
            let (Ok(audience), Ok(lang)) = (audience.parse(), lang.parse()) else {
                return Err(StoreError::Corrupt(format!(
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
    pub async fn live_templates_stamp(&self) -> Result<(i64, i64), StoreError> {
        let r = sqlx::query(
            // SUM of a BIGINT is NUMERIC on PostgreSQL, which the Any driver cannot decode.
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(id), 0) AS BIGINT) AS s FROM template_versions \
             WHERE state = 'live'",
        )
        .fetch_one(&self.pool)
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
    ) -> Result<TemplateVersion, StoreError> {
        let (a, k, l) = key_binds(key);
        let mut tx = self.pool.begin().await?;
        let next: i64 = sqlx::query(
            "SELECT COALESCE(MAX(version), 0) + 1 AS v FROM template_versions \
             WHERE audience = $1 AND kind = $2 AND lang = $3",
        )
        .bind(a)
        .bind(k.clone())
        .bind(l)
        .fetch_one(&mut *tx)
        .await?
        .try_get("v")?;
        let live = state == "live";
        if live {
            sqlx::query(
                "UPDATE template_versions SET state = 'retired' \
                 WHERE audience = $1 AND kind = $2 AND lang = $3 AND state = 'live'",
            )
            .bind(a)
            .bind(k.clone())
            .bind(l)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO template_versions (audience, kind, lang, version, state, subject, \
             body_text, body_html, body_sms, note, author, created_at, published_by, published_at, \
             restores) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(a)
        .bind(k)
        .bind(l)
        .bind(next)
        .bind(state)
        .bind(&content.subject)
        .bind(&content.text)
        .bind(content.html.as_deref())
        .bind(content.sms.as_deref())
        .bind(note)
        .bind(author)
        .bind(now.0)
        .bind(live.then_some(author))
        .bind(live.then_some(now.0))
        .bind(restores)
        .execute(&mut *tx)
        .await?;
        let action = if restores.is_some() {
            "template.rollback"
        } else if live {
            "template.publish"
        } else {
            "template.propose"
        };
        audit(
            &mut tx,
            now,
            author,
            action,
            &format!("{key}@{next}"),
            audit_detail,
        )
        .await?;
        tx.commit().await?;
        Ok(TemplateVersion {
            version: next,
            state: state.to_owned(),
            content: content.clone(),
            note: note.to_owned(),
            author: author.to_owned(),
            created_at: now,
            published_by: live.then(|| author.to_owned()),
            published_at: live.then_some(now),
            restores,
        })
    }

    /// Makes proposed version `version` of `key` live and retires the one before; `None` when
    /// there is no such proposed version.
    pub async fn publish_template_version(
        &self,
        key: &Key,
        version: i64,
        publisher: &str,
        now: Timestamp,
    ) -> Result<Option<TemplateVersion>, StoreError> {
        let (a, k, l) = key_binds(key);
        let mut tx = self.pool.begin().await?;
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

    /// Records an audit event that changes nothing else (a log-in, a test send).
    pub async fn audit(
        &self,
        now: Timestamp,
        actor: &str,
        action: &str,
        object: &str,
        detail: &Value,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        audit(&mut conn, now, actor, action, object, detail).await
    }

    /// The newest `limit` audit records.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, actor, action, object, detail FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok(AuditRecord {
                    at: Timestamp(r.try_get("at")?),
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    object: r.try_get("object")?,
                    detail: serde_json::from_str(&detail).unwrap_or(Value::String(detail)),
                })
            })
            .collect()
    }

    pub async fn admin_user(&self, username: &str) -> Result<Option<AdminUser>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM admin_users WHERE username = $1"
        )))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(user_from)
        .transpose()
    }

    pub async fn admin_users(&self) -> Result<Vec<AdminUser>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM admin_users ORDER BY username"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(user_from)
        .collect()
    }

    /// Stores a bearer token's argon2 hash; returns its id (the token's public part).
    pub async fn add_admin_token(
        &self,
        user: &AdminUser,
        label: &str,
        hash: &str,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO admin_tokens (user_id, label, hash, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id",
        )
        .bind(user.id)
        .bind(label)
        .bind(hash)
        .bind(now.0)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        audit(
            &mut tx,
            now,
            &user.username,
            "token.create",
            &format!("token {id}"),
            &serde_json::json!({"label": label}),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A token's hash and its user, unless revoked or the user is disabled.
    pub async fn admin_token(&self, id: i64) -> Result<Option<(String, AdminUser)>, StoreError> {
        let row = sqlx::query(
            "SELECT t.hash AS hash, u.id AS id, u.username AS username, u.role AS role, \
             u.password_hash AS password_hash, u.disabled AS disabled, u.created_at AS created_at \
             FROM admin_tokens t JOIN admin_users u ON u.id = t.user_id \
             WHERE t.id = $1 AND t.revoked_at IS NULL AND u.disabled = 0",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some((r.try_get("hash")?, user_from(&r)?))),
            None => Ok(None),
        }
    }

    /// Opens a console session.
    pub async fn add_admin_session(
        &self,
        token_hash: &str,
        user: &AdminUser,
        csrf: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM admin_sessions WHERE expires_at < $1")
            .bind(now.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO admin_sessions (token_hash, user_id, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user.id)
        .bind(csrf)
        .bind(now.0)
        .bind(expires_at.0)
        .execute(&mut *tx)
        .await?;
        audit(
            &mut tx,
            now,
            &user.username,
            "login",
            &user.username,
            &Value::Null,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user and CSRF token of a live session.
    pub async fn admin_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<(AdminUser, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT s.csrf AS csrf, u.id AS id, u.username AS username, u.role AS role, \
             u.password_hash AS password_hash, u.disabled AS disabled, u.created_at AS created_at \
             FROM admin_sessions s JOIN admin_users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled = 0",
        )
        .bind(token_hash)
        .bind(now.0)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some((user_from(&r)?, r.try_get("csrf")?))),
            None => Ok(None),
        }
    }

    pub async fn end_admin_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Open tickets in warning, breached or paused, soonest deadline first.
    pub async fn tickets_at_risk(&self, limit: i64) -> Result<Vec<AtRisk>, StoreError> {
        let rows = sqlx::query(
            "SELECT number, subject, office, priority, sla_state, sla_due_at, waiting_since \
             FROM tickets WHERE closed_at IS NULL AND sla_state IN ('warning', 'breached', 'paused') \
             ORDER BY CASE sla_state WHEN 'breached' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, \
             sla_due_at, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
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

    /// Keeps the words each leased message goes out with, unless it already has them. The rows
    /// travel as one JSON text per statement (`[[id, words], …]`). Each row's words are written
    /// by one statement, committed when this returns; no row depends on another, so there is no
    /// transaction around them. SQLite takes them all in one statement; PostgreSQL in
    /// statements of about `PG_STATEMENT_BYTES` (an e-mail's words are ~2.6 KB), a few at once
    /// on separate connections.
    pub async fn save_rendered(&self, rows: &[(i64, RenderedMessage)]) -> Result<(), StoreError> {
        /// PostgreSQL statements in flight at once.
        const LANES: usize = 4;
        let items = rows
            .iter()
            .map(|(id, r)| {
                serde_json::to_string(r)
                    .map(|t| format!("[{id},{t}]"))
                    .map_err(|e| StoreError::Corrupt(format!("outbox {id}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sql = format!(
            "UPDATE outbox SET rendered = w.words FROM {} \
             WHERE outbox.id = w.id AND outbox.rendered IS NULL",
            self.json_rows(1, "w", &[("id", "bigint"), ("words", "json")])
        );
        let statement = |items: &[String]| {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(super::outbox::join_json(items.iter().map(String::as_str)))
                .execute(&self.pool)
        };
        match self.backend {
            super::Backend::Sqlite => {
                statement(&items).await?;
            }
            super::Backend::Postgres => {
                let sizes: Vec<usize> = items.iter().map(String::len).collect();
                let runs = super::outbox::runs_by_bytes(&sizes, super::outbox::PG_STATEMENT_BYTES);
                for lanes in runs.chunks(LANES) {
                    futures_util::future::try_join_all(
                        lanes.iter().map(|run| statement(&items[run.clone()])),
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Queues a test message already rendered (kind `prova`, about no ticket); returns its id.
    pub async fn queue_test_message(
        &self,
        channel: Channel,
        address: &Address,
        rendered: &RenderedMessage,
        actor: &str,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let key = format!("{}-{}", now.0, getrandom::u64().unwrap_or(0));
        let text = serde_json::to_string(rendered)
            .map_err(|e| StoreError::Corrupt(format!("test message: {e}")))?;
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

impl Store {
    /// What a preview with a real ticket renders: the payload of the ticket's latest notice of
    /// kind `kind`, or else `base` (a sample) with the ticket's own fields written over it.
    pub async fn preview_payload(
        &self,
        number: &str,
        kind: &str,
        base: Value,
        tz: chrono_tz::Tz,
    ) -> Result<Option<Value>, StoreError> {
        let row = sqlx::query(
            "SELECT o.payload AS payload FROM outbox o JOIN tickets t ON t.id = o.ticket_id \
             WHERE t.number = $1 AND o.kind = $2 ORDER BY o.id DESC LIMIT 1",
        )
        .bind(number)
        .bind(kind)
        .fetch_optional(&self.pool)
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
        .fetch_optional(&self.pool)
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
