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

use serde_json::json;
use sqlx::{AnyConnection, Row};

use super::templates::{USER_COLUMNS, audit, user_from};
use super::{AdminUser, Backend, Role, Store, StoreError};
use crate::time::Timestamp;

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

impl Store {
    /// Creates a user; `Conflict` if the name is taken (by an enabled or a disabled user).
    pub async fn create_admin_user(
        &self,
        username: &str,
        role: Role,
        password_hash: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<AdminUser, StoreError> {
        let mut tx = self.pool.begin().await?;
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
            return Err(StoreError::Conflict(format!(
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
            .ok_or_else(|| StoreError::Corrupt(format!("user {username} vanished")))
    }

    /// Changes a user's password, role or state (see the module's rules); `None` if there is no
    /// such user, `Conflict` if it would leave no enabled admin.
    pub async fn change_admin_user(
        &self,
        username: &str,
        change: &UserChange,
        actor: &str,
        now: Timestamp,
    ) -> Result<Option<UserChanged>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let lock = match self.backend {
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
            .ok_or_else(|| StoreError::Corrupt(format!("user {username} vanished")))?;
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
    ) -> Result<AdminUser, StoreError> {
        if self.admin_user(username).await?.is_none()
            && let Some(hash) = password_hash
        {
            match self
                .create_admin_user(username, role, hash, actor, now)
                .await
            {
                Err(StoreError::Conflict(_)) => {} // made meanwhile: change it below
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
            .ok_or_else(|| StoreError::Conflict(format!("no user {username}")))
    }

    /// Disables a user, ending her sessions and revoking her tokens; false if there is no such
    /// user, `Conflict` if she is the last enabled admin.
    pub async fn disable_admin_user(
        &self,
        username: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
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

/// The ids of the enabled admins (`lock`: `FOR UPDATE` on PostgreSQL).
async fn enabled_admins(conn: &mut AnyConnection, lock: &str) -> Result<Vec<i64>, StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM admin_users WHERE role = 'admin' AND disabled = 0 ORDER BY id{lock}"
    )))
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.try_get("id").map_err(StoreError::from))
    .collect()
}

/// User `username` as she is, if she exists (`lock`: `FOR UPDATE` on PostgreSQL).
async fn user_locked(
    conn: &mut AnyConnection,
    username: &str,
    lock: &str,
) -> Result<Option<AdminUser>, StoreError> {
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
) -> Result<Decided, StoreError> {
    let role = change.role.unwrap_or(before.role);
    let disabled = change.disabled.unwrap_or(before.disabled);
    let was_admin = before.role == Role::Admin && !before.disabled;
    let stays_admin = role == Role::Admin && !disabled;
    if was_admin && !stays_admin && admins.iter().all(|id| *id == before.id) {
        return Err(StoreError::Conflict(format!(
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
) -> Result<(u64, u64), StoreError> {
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
                matches!(&refused, StoreError::Conflict(m) if m == "u1 is the last enabled admin: make another admin first"),
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
