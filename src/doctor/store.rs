//! `store.reachable` and `store.migrated`: the database answers, and its applied migrations are
//! the ones this binary carries (none pending, none unknown, none changed or half-applied).
//!
//! The store is only read: a SQLite file is opened read-only (a missing one is not created), and
//! no migration is run.

use std::path::Path;
use std::time::Duration;

use sqlx::Connection;

use super::{Finding, without_credentials};
use crate::store::{Backend, migrator};

/// One row of `_sqlx_migrations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub version: i64,
    pub success: bool,
    pub checksum: Vec<u8>,
}

impl From<(i64, bool, Vec<u8>)> for Applied {
    fn from((version, success, checksum): (i64, bool, Vec<u8>)) -> Applied {
        Applied {
            version,
            success,
            checksum,
        }
    }
}

/// The store's record of its migrations, the same query on both databases.
const APPLIED: &str = "SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version";

const FIX_URL: &str = "check database.url (MESSO_DATABASE__URL_FILE for a URL with a password)";

/// The store checks for `database_url`.
pub async fn check(database_url: &str, timeout: Duration) -> Vec<Finding> {
    let shown = without_credentials(database_url);
    let read = match tokio::time::timeout(timeout, applied(database_url)).await {
        Ok(r) => r,
        Err(_) => Err(Finding::fail(
            "store.reachable",
            format!("{shown}: no answer in {} s", timeout.as_secs()),
            format!("is the database server running and reachable from here? {FIX_URL}"),
        )),
    };
    let (migrator, applied) = match read {
        Ok(x) => x,
        Err(f) => {
            return vec![
                f,
                Finding::skip("store.migrated", "the store could not be read"),
            ];
        }
    };
    vec![
        Finding::ok("store.reachable", format!("{shown} answers")),
        compare(migrator, applied.as_deref()),
    ]
}

/// The binary's migrations and the store's rows (`None`: no migrations table, an empty store).
async fn applied(
    url: &str,
) -> Result<(&'static sqlx::migrate::Migrator, Option<Vec<Applied>>), Finding> {
    let shown = without_credentials(url);
    let unreachable = |e: &dyn std::fmt::Display| {
        Finding::fail(
            "store.reachable",
            format!("{shown}: {e}"),
            format!("is the database server running and reachable from here? {FIX_URL}"),
        )
    };
    if url.starts_with("sqlite:") {
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() || path == ":memory:" {
            return Err(Finding::fail(
                "store.reachable",
                "database.url is an in-memory SQLite database: everything is lost at each restart",
                "set database.url to a file, like sqlite:///var/lib/messo/messo.db",
            ));
        }
        match std::fs::metadata(Path::new(path)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A fresh install: the daemon makes the file at its first start. A warning,
                // not a failure, but said plainly: a wrong path would start an empty store.
                return Err(Finding::warn(
                    "store.reachable",
                    format!("the SQLite file {path} does not exist yet"),
                    "the daemon creates and migrates it at its first start (`messo migrate` \
                     does it now); if the store already exists elsewhere, correct database.url",
                ));
            }
            Err(e) => return Err(unreachable(&e)),
            Ok(m) if m.is_dir() => {
                return Err(Finding::fail(
                    "store.reachable",
                    format!("{path} is a directory, not a SQLite file"),
                    FIX_URL,
                ));
            }
            Ok(_) => {}
        }
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .read_only(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&opts)
            .await
            .map_err(|e| unreachable(&e))?;
        let has: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_optional(&mut conn)
        .await
        .map_err(|e| unreachable(&e))?;
        let rows = match has {
            None => None,
            Some(_) => Some(
                sqlx::query_as::<_, (i64, bool, Vec<u8>)>(APPLIED)
                    .fetch_all(&mut conn)
                    .await
                    .map_err(|e| unreachable(&e))?
                    .into_iter()
                    .map(Applied::from)
                    .collect(),
            ),
        };
        let _ = conn.close().await;
        Ok((migrator(Backend::Sqlite), rows))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .map_err(|e| unreachable(&e))?;
        let has: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| unreachable(&e))?;
        let rows = if has {
            Some(
                sqlx::query_as::<_, (i64, bool, Vec<u8>)>(APPLIED)
                    .fetch_all(&mut conn)
                    .await
                    .map_err(|e| unreachable(&e))?
                    .into_iter()
                    .map(Applied::from)
                    .collect(),
            )
        } else {
            None
        };
        let _ = conn.close().await;
        Ok((migrator(Backend::Postgres), rows))
    } else {
        Err(Finding::fail(
            "store.reachable",
            "database.url is neither sqlite: nor postgres://",
            FIX_URL,
        ))
    }
}

/// `store.migrated` from the binary's migrations and the store's rows.
pub fn compare(migrator: &sqlx::migrate::Migrator, applied: Option<&[Applied]>) -> Finding {
    let known: Vec<&sqlx::migrate::Migration> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .collect();
    let migrate_fix = "run `messo migrate` (the daemon also migrates when it starts)";
    let Some(applied) = applied else {
        return Finding::warn(
            "store.migrated",
            format!(
                "the store is empty: none of the {} migrations is applied",
                known.len()
            ),
            migrate_fix,
        );
    };
    if let Some(a) = applied.iter().find(|a| !migrator.version_exists(a.version)) {
        return Finding::fail(
            "store.migrated",
            format!(
                "the store was upgraded by a newer Messo (it has migration {}, which this binary \
                 does not know)",
                a.version
            ),
            "run the newer Messo, or restore a backup taken before the upgrade (migrations only \
             go forward)",
        );
    }
    if let Some(a) = applied.iter().find(|a| !a.success) {
        return Finding::fail(
            "store.migrated",
            format!("migration {} was left half-applied", a.version),
            "restore the backup taken before the upgrade and run `messo migrate` again",
        );
    }
    if let Some(a) = applied.iter().find(|a| {
        known
            .iter()
            .any(|m| m.version == a.version && *m.checksum != *a.checksum)
    }) {
        return Finding::fail(
            "store.migrated",
            format!(
                "migration {} in the store differs from this binary's (it was changed after it \
                 was applied)",
                a.version
            ),
            "run the Messo release that applied it; a released migration is never edited",
        );
    }
    let pending: Vec<i64> = known
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .map(|m| m.version)
        .collect();
    match pending.as_slice() {
        [] => Finding::ok(
            "store.migrated",
            format!("{} migrations applied, none pending", applied.len()),
        ),
        [first, ..] => Finding::warn(
            "store.migrated",
            format!(
                "{} of {} migrations pending (the first is {first})",
                pending.len(),
                known.len()
            ),
            migrate_fix,
        ),
    }
}
