//! Admin console users: creating them, and changing their password, role or state.
//!
//! The rules, enforced here so the API and the CLI cannot differ:
//!
//! - Creating never touches an existing user (enabled or disabled): the name is taken, 409.
//! - Any change of who a user is or what she may do — a new password, another role, disabling
//!   or re-enabling — ends all her console sessions and revokes all her bearer tokens, in the
//!   same transaction as the change and its audit record. A token or a session never outlives
//!   the credentials and rights it was issued under; she signs in again and makes new tokens.
//! - There is always at least one enabled admin: a change that would demote or disable the last
//!   one is refused (409), whoever asks. On PostgreSQL the enabled admins are locked
//!   (`FOR UPDATE`) first, so two admins demoting each other at once cannot both succeed; on
//!   SQLite the single writer serialises changes.

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};

use super::{Admin, Backend};
use crate::time::Timestamp;

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

pub(super) const USER_COLUMNS: &str = "id, username, role, password_hash, disabled, created_at";

pub(super) fn user_from(r: &sqlx::any::AnyRow) -> Result<AdminUser, AdminError> {
    let role: String = r.try_get("role")?;
    Ok(AdminUser {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        role: role.parse().map_err(AdminError::Corrupt)?,
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
) -> Result<(), sqlx::Error> {
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

/// Why an admin-user, token, session or audit operation failed. `Conflict` is the admin's to fix.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Conflict(String),
}

/// What to change of a user; `None` leaves that part as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChange {
    pub role: Option<Role>,
    /// A new argon2 hash (the password itself never reaches the store).
    pub password_hash: Option<String>,
    pub disabled: Option<bool>,
}

/// A change made: the user as she is now, and what the change ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserChanged {
    pub user: AdminUser,
    /// Whether anything changed at all (a change to the same role and state is a no-op).
    pub changed: bool,
    pub sessions_ended: u64,
    pub tokens_revoked: u64,
}

impl Admin<'_> {
    /// Creates a user; `Conflict` if the name is taken (by an enabled or a disabled user).
    pub async fn create_admin_user(
        &self,
        username: &str,
        role: Role,
        password_hash: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<AdminUser, AdminError> {
        let mut tx = self.store.pool.begin().await?;
        let n = sqlx::query(
            "INSERT INTO admin_users (username, role, password_hash, disabled, created_at) \
             VALUES ($1, $2, $3, 0, $4) ON CONFLICT (username) DO NOTHING",
        )
        .bind(username)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(now.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(AdminError::Conflict(format!(
                "user {username} already exists (it may be disabled): change it with \
                 PATCH /api/v1/admin/users/{username} or `messo admin user`/`messo admin enable`"
            )));
        }
        audit(
            &mut tx,
            now,
            actor,
            "user.create",
            username,
            &json!({"role": role.as_str()}),
        )
        .await?;
        tx.commit().await?;
        self.admin_user(username)
            .await?
            .ok_or_else(|| AdminError::Corrupt(format!("user {username} vanished")))
    }

    /// Changes a user's password, role or state (see the module's rules); `None` if there is no
    /// such user, `Conflict` if it would leave no enabled admin.
    pub async fn change_admin_user(
        &self,
        username: &str,
        change: &UserChange,
        actor: &str,
        now: Timestamp,
    ) -> Result<Option<UserChanged>, AdminError> {
        let mut tx = self.store.pool.begin().await?;
        let lock = match self.store.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        // The enabled admins, locked before anything is read about the user.
        let admins = enabled_admins(&mut tx, lock).await?;
        let Some(before) = user_locked(&mut tx, username, lock).await? else {
            return Ok(None);
        };
        let decided = decide_change(&before, change, &admins)?;
        let (sessions_ended, tokens_revoked) = if decided.changed {
            apply_change(&mut tx, &before, change, &decided, actor, now).await?
        } else {
            (0, 0)
        };
        tx.commit().await?;
        let user = self
            .admin_user(username)
            .await?
            .ok_or_else(|| AdminError::Corrupt(format!("user {username} vanished")))?;
        Ok(Some(UserChanged {
            user,
            changed: decided.changed,
            sessions_ended,
            tokens_revoked,
        }))
    }

    /// Creates a user, or sets the role and password of an existing one (ending her sessions and
    /// revoking her tokens). It never re-enables a disabled user: that takes an explicit
    /// `disabled: false` change.
    pub async fn upsert_admin_user(
        &self,
        username: &str,
        role: Role,
        password_hash: Option<&str>,
        actor: &str,
        now: Timestamp,
    ) -> Result<AdminUser, AdminError> {
        if self.admin_user(username).await?.is_none()
            && let Some(hash) = password_hash
        {
            match self
                .create_admin_user(username, role, hash, actor, now)
                .await
            {
                Err(AdminError::Conflict(_)) => {} // made meanwhile: change it below
                other => return other,
            }
        }
        let change = UserChange {
            role: Some(role),
            password_hash: password_hash.map(str::to_owned),
            disabled: None,
        };
        self.change_admin_user(username, &change, actor, now)
            .await?
            .map(|c| c.user)
            .ok_or_else(|| AdminError::Conflict(format!("no user {username}")))
    }

    /// Disables a user, ending her sessions and revoking her tokens; false if there is no such
    /// user, `Conflict` if she is the last enabled admin.
    pub async fn disable_admin_user(
        &self,
        username: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<bool, AdminError> {
        let change = UserChange {
            disabled: Some(true),
            ..UserChange::default()
        };
        Ok(self
            .change_admin_user(username, &change, actor, now)
            .await?
            .is_some())
    }
}

impl Admin<'_> {
    /// Records an audit event that changes nothing else (a log-in, a test send).
    pub async fn audit(
        &self,
        now: Timestamp,
        actor: &str,
        action: &str,
        object: &str,
        detail: &Value,
    ) -> Result<(), AdminError> {
        let mut conn = self.store.pool.acquire().await?;
        Ok(audit(&mut conn, now, actor, action, object, detail).await?)
    }

    /// The newest `limit` audit records.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRecord>, AdminError> {
        let rows = sqlx::query(
            "SELECT at, actor, action, object, detail FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.store.pool)
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

    pub async fn admin_user(&self, username: &str) -> Result<Option<AdminUser>, AdminError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM admin_users WHERE username = $1"
        )))
        .bind(username)
        .fetch_optional(&self.store.pool)
        .await?
        .as_ref()
        .map(user_from)
        .transpose()
    }

    pub async fn admin_users(&self) -> Result<Vec<AdminUser>, AdminError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM admin_users ORDER BY username"
        )))
        .fetch_all(&self.store.pool)
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
    ) -> Result<i64, AdminError> {
        let mut tx = self.store.pool.begin().await?;
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
    pub async fn admin_token(&self, id: i64) -> Result<Option<(String, AdminUser)>, AdminError> {
        let row = sqlx::query(
            "SELECT t.hash AS hash, u.id AS id, u.username AS username, u.role AS role, \
             u.password_hash AS password_hash, u.disabled AS disabled, u.created_at AS created_at \
             FROM admin_tokens t JOIN admin_users u ON u.id = t.user_id \
             WHERE t.id = $1 AND t.revoked_at IS NULL AND u.disabled = 0",
        )
        .bind(id)
        .fetch_optional(&self.store.pool)
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
    ) -> Result<(), AdminError> {
        let mut tx = self.store.pool.begin().await?;
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
    ) -> Result<Option<(AdminUser, String)>, AdminError> {
        let row = sqlx::query(
            "SELECT s.csrf AS csrf, u.id AS id, u.username AS username, u.role AS role, \
             u.password_hash AS password_hash, u.disabled AS disabled, u.created_at AS created_at \
             FROM admin_sessions s JOIN admin_users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled = 0",
        )
        .bind(token_hash)
        .bind(now.0)
        .fetch_optional(&self.store.pool)
        .await?;
        match row {
            Some(r) => Ok(Some((user_from(&r)?, r.try_get("csrf")?))),
            None => Ok(None),
        }
    }

    pub async fn end_admin_session(&self, token_hash: &str) -> Result<(), AdminError> {
        sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.store.pool)
            .await?;
        Ok(())
    }
}

/// The ids of the enabled admins (`lock`: `FOR UPDATE` on PostgreSQL).
async fn enabled_admins(conn: &mut AnyConnection, lock: &str) -> Result<Vec<i64>, AdminError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM admin_users WHERE role = 'admin' AND disabled = 0 ORDER BY id{lock}"
    )))
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.try_get("id").map_err(AdminError::from))
    .collect()
}

/// User `username` as she is, if she exists (`lock`: `FOR UPDATE` on PostgreSQL).
async fn user_locked(
    conn: &mut AnyConnection,
    username: &str,
    lock: &str,
) -> Result<Option<AdminUser>, AdminError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM admin_users WHERE username = $1{lock}"
    )))
    .bind(username)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(user_from)
    .transpose()
}

/// What a change does to a user, decided before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decided {
    role: Role,
    disabled: bool,
    /// Whether anything changes at all (the same role and state, no password: nothing).
    changed: bool,
    /// Its audit action.
    action: &'static str,
}

/// The module's rules for `change` of user `before`, `admins` being the enabled admins: refused
/// (`Conflict`) when it would demote or disable the last of them.
fn decide_change(
    before: &AdminUser,
    change: &UserChange,
    admins: &[i64],
) -> Result<Decided, AdminError> {
    let role = change.role.unwrap_or(before.role);
    let disabled = change.disabled.unwrap_or(before.disabled);
    let was_admin = before.role == Role::Admin && !before.disabled;
    let stays_admin = role == Role::Admin && !disabled;
    if was_admin && !stays_admin && admins.iter().all(|id| *id == before.id) {
        return Err(AdminError::Conflict(format!(
            "{} is the last enabled admin: make another admin first",
            before.username
        )));
    }
    let action = match (before.disabled, disabled) {
        (false, true) => "user.disable",
        (true, false) => "user.enable",
        _ => "user.change",
    };
    Ok(Decided {
        role,
        disabled,
        changed: role != before.role
            || disabled != before.disabled
            || change.password_hash.is_some(),
        action,
    })
}

/// Writes a decided change of user `before`, ends her sessions, revokes her tokens and audits
/// it all; returns how many sessions ended and how many tokens were revoked.
async fn apply_change(
    conn: &mut AnyConnection,
    before: &AdminUser,
    change: &UserChange,
    decided: &Decided,
    actor: &str,
    now: Timestamp,
) -> Result<(u64, u64), AdminError> {
    sqlx::query(
        "UPDATE admin_users SET role = $1, disabled = $2, \
         password_hash = COALESCE($3, password_hash) WHERE id = $4",
    )
    .bind(decided.role.as_str())
    .bind(i64::from(decided.disabled))
    .bind(change.password_hash.as_deref())
    .bind(before.id)
    .execute(&mut *conn)
    .await?;
    let sessions_ended = sqlx::query("DELETE FROM admin_sessions WHERE user_id = $1")
        .bind(before.id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let tokens_revoked = sqlx::query(
        "UPDATE admin_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
    )
    .bind(now.0)
    .bind(before.id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    audit(
        conn,
        now,
        actor,
        decided.action,
        &before.username,
        &json!({
            "role": {"from": before.role.as_str(), "to": decided.role.as_str()},
            "disabled": {"from": before.disabled, "to": decided.disabled},
            "password_changed": change.password_hash.is_some(),
            "sessions_ended": sessions_ended,
            "tokens_revoked": tokens_revoked,
        }),
    )
    .await?;
    Ok((sessions_ended, tokens_revoked))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64, role: Role, disabled: bool) -> AdminUser {
        AdminUser {
            id,
            username: format!("u{id}"),
            role,
            password_hash: None,
            disabled,
            created_at: Timestamp(0),
        }
    }

    fn change(role: Option<Role>, disabled: Option<bool>, password: bool) -> UserChange {
        UserChange {
            role,
            password_hash: password.then(|| "$argon2id$x".to_owned()),
            disabled,
        }
    }

    #[test]
    fn the_last_enabled_admin_cannot_be_demoted_or_disabled() {
        let anna = user(1, Role::Admin, false);
        for c in [
            change(Some(Role::Editor), None, false),
            change(None, Some(true), false),
        ] {
            let refused = decide_change(&anna, &c, &[1]).expect_err("last admin");
            assert!(
                matches!(&refused, AdminError::Conflict(m) if m == "u1 is the last enabled admin: make another admin first"),
                "{refused:?}"
            );
            // With another enabled admin it is allowed.
            assert!(decide_change(&anna, &c, &[1, 2]).is_ok());
        }
        // Her own password may change.
        let d = decide_change(&anna, &change(None, None, true), &[1]).expect("allowed");
        assert!(d.changed);
        assert_eq!(d.action, "user.change");
    }

    #[test]
    fn a_change_names_its_action_and_a_no_op_changes_nothing() {
        let bruno = user(2, Role::Editor, false);
        let same = decide_change(
            &bruno,
            &change(Some(Role::Editor), Some(false), false),
            &[1],
        )
        .expect("allowed");
        assert!(!same.changed);
        let off = decide_change(&bruno, &change(None, Some(true), false), &[1]).expect("allowed");
        assert_eq!((off.changed, off.action), (true, "user.disable"));
        let vito = user(3, Role::Viewer, true);
        let on = decide_change(&vito, &change(Some(Role::Admin), Some(false), false), &[1])
            .expect("allowed");
        assert_eq!(
            (on.role, on.disabled, on.changed, on.action),
            (Role::Admin, false, true, "user.enable")
        );
    }
}
