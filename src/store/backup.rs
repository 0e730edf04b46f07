//! `messo backup` and `messo restore`: a consistent copy of the store taken while the daemon
//! runs, checked before it is kept, and put back only when it is sound.
//!
//! - SQLite: `VACUUM INTO` a file beside the target (one read transaction: a consistent state
//!   even with the daemon writing, in WAL mode), then that copy is opened and checked
//!   (`integrity_check`, `foreign_key_check`, its migrations known to this binary), synced and
//!   linked into place (never over an existing file). A restore checks the file the same way,
//!   takes the daemon's own lock (`<db>.lock`, so it is refused while a daemon runs and no
//!   daemon starts during it), keeps the current file as `<db>.before-restore-<UTC time>`, puts
//!   the copy in place and migrates it forward.
//! - PostgreSQL: `pg_dump --format=custom` (the password through `PGPASSWORD`, never on a
//!   command line), of the same snapshot the reported counts were read in; a restore checks the
//!   dump with `pg_restore --list` and its migrations, then runs `pg_restore --clean --if-exists
//!   --no-owner --single-transaction` and migrates forward.
//!
//! Migrations only go forward: a backup holding a migration this binary does not know (taken by
//! a newer Messo) is refused, and an older one is migrated on restore.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::{Connection, Row};

use super::{Backend, OpenError, SQLITE_HEADER, Store};

/// Why a backup or a restore did not happen; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} exists: a backup never overwrites a file; choose a new name or move it away")]
    Exists(PathBuf),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unsupported database URL (expected sqlite: or postgres://); check database.url")]
    Url,
    #[error("there is no SQLite store at {0}; check database.url")]
    NoStore(PathBuf),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(
        "{path} is not a Messo backup: {reason}; nothing was changed (give the file `messo \
         backup` wrote)"
    )]
    NotABackup { path: PathBuf, reason: String },
    #[error(
        "the copy failed its check ({reason}); it was not kept. Run `messo backup` again; if it \
         fails again, the store itself may be damaged: check it with `sqlite3 FILE 'PRAGMA \
         integrity_check'`"
    )]
    Check { reason: String },
    #[error(
        "{path} was taken from a newer Messo (it has migration {version}, which this binary \
         does not know): restore it with that version or a later one"
    )]
    Newer { path: PathBuf, version: i64 },
    #[error("a messo daemon is running on {0}: stop it first (systemctl stop messo), then restore")]
    DaemonRunning(PathBuf),
    #[error(
        "cannot run {tool}: {source} (install the PostgreSQL client tools, e.g. postgresql-client)"
    )]
    ToolMissing {
        tool: &'static str,
        source: std::io::Error,
    },
    #[error("{tool} failed ({status}): {stderr}")]
    Tool {
        tool: &'static str,
        status: String,
        stderr: String,
    },
}

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub backend: Backend,
    /// Tickets and outbox rows in the copy (the state it was taken in).
    pub tickets: i64,
    pub outbox: i64,
    /// The last migration the copy holds.
    pub migration: Option<i64>,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    pub backend: Backend,
    /// Where the store that was replaced was kept (SQLite).
    pub kept: Vec<PathBuf>,
    /// Tickets and outbox rows in the restored store, after its migrations.
    pub tickets: i64,
    pub outbox: i64,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Io { what, path, source }
}

fn backend_of(url: &str) -> Result<Backend, BackupError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(BackupError::Url)
    }
}

/// The file of a `sqlite:` URL, as [`Store::connect`] reads it.
fn sqlite_path(url: &str) -> Result<PathBuf, BackupError> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return Err(BackupError::Url);
    }
    Ok(PathBuf::from(path))
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

fn refuse_existing(to: &Path) -> Result<(), BackupError> {
    match std::fs::symlink_metadata(to) {
        Ok(_) => Err(BackupError::Exists(to.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("cannot look at", to)(e)),
    }
}

/// A temporary file beside `to`, created empty and 0600.
fn temp_beside(to: &Path) -> Result<PathBuf, BackupError> {
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".to_owned());
    let tmp = to.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    crate::private_files::create_empty_if_missing(&tmp).map_err(io("cannot create", &tmp))?;
    Ok(tmp)
}

/// Syncs `tmp`, links it to `to` (failing if `to` appeared meanwhile), removes `tmp` and syncs
/// the folder.
fn put_in_place(tmp: &Path, to: &Path) -> Result<u64, BackupError> {
    let f = File::open(tmp).map_err(io("cannot open", tmp))?;
    f.sync_all().map_err(io("cannot sync", tmp))?;
    let bytes = f.metadata().map_err(io("cannot read", tmp))?.len();
    drop(f);
    std::fs::hard_link(tmp, to).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            BackupError::Exists(to.to_owned())
        } else {
            io("cannot write", to)(e)
        }
    })?;
    let _ = std::fs::remove_file(tmp);
    sync_dir(to);
    Ok(bytes)
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Removes `tmp` (and its SQLite companions) when dropped, unless it was put in place.
struct Partial(PathBuf);

impl Drop for Partial {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(with_suffix(&self.0, suffix));
        }
    }
}

/// Backs up the store at `database_url` into the new file `to`.
pub async fn backup(database_url: &str, to: &Path) -> Result<BackupReport, BackupError> {
    refuse_existing(to)?;
    match backend_of(database_url)? {
        Backend::Sqlite => sqlite_backup(&sqlite_path(database_url)?, to).await,
        Backend::Postgres => pg_backup(database_url, to).await,
    }
}

/// Restores the store at `database_url` from `from` (a file `backup` wrote).
pub async fn restore(database_url: &str, from: &Path) -> Result<RestoreReport, BackupError> {
    match backend_of(database_url)? {
        Backend::Sqlite => sqlite_restore(database_url, &sqlite_path(database_url)?, from).await,
        Backend::Postgres => pg_restore(database_url, from).await,
    }
}

// ---------------------------------------------------------------------------------------------
// SQLite.

async fn sqlite_conn(path: &Path, read_only: bool) -> Result<sqlx::SqliteConnection, sqlx::Error> {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .read_only(read_only)
        .busy_timeout(std::time::Duration::from_secs(30));
    sqlx::SqliteConnection::connect_with(&opts).await
}

/// What a checked SQLite copy holds.
struct Checked {
    tickets: i64,
    outbox: i64,
    migration: Option<i64>,
}

/// The binary's migration versions for `backend`.
fn known_versions(backend: Backend) -> Vec<i64> {
    super::migrator(backend).iter().map(|m| m.version).collect()
}

/// The first of `versions` that this binary does not know.
fn unknown_version(backend: Backend, versions: &[i64]) -> Option<i64> {
    let known = known_versions(backend);
    versions.iter().copied().find(|v| !known.contains(v))
}

/// Checks a SQLite copy: integrity, foreign keys, its migrations (all succeeded, none newer than
/// this binary), and counts what it holds. `Err(reason)` says what is wrong.
async fn check_sqlite(
    conn: &mut sqlx::SqliteConnection,
    file: &Path,
) -> Result<Checked, BackupError> {
    let reason = |r: String| BackupError::Check { reason: r };
    let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut *conn)
        .await?;
    if integrity != ["ok"] {
        return Err(reason(format!(
            "integrity_check: {}",
            integrity.join("; ").chars().take(300).collect::<String>()
        )));
    }
    let fk = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut *conn)
        .await?;
    if let Some(row) = fk.first() {
        let table: String = row.try_get(0).unwrap_or_default();
        return Err(reason(format!(
            "foreign_key_check: {} rows point nowhere (first in {table})",
            fk.len()
        )));
    }
    let has_migrations: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('_sqlx_migrations', 'tickets', 'outbox')",
    )
    .fetch_one(&mut *conn)
    .await?;
    if has_migrations != 3 {
        return Err(BackupError::NotABackup {
            path: file.to_owned(),
            reason: "it is a SQLite database without Messo's tables".to_owned(),
        });
    }
    let versions: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await?;
    if let Some((v, _)) = versions.iter().find(|(_, ok)| !ok) {
        return Err(reason(format!("migration {v} did not complete in it")));
    }
    let applied: Vec<i64> = versions.iter().map(|(v, _)| *v).collect();
    if let Some(version) = unknown_version(Backend::Sqlite, &applied) {
        return Err(BackupError::Newer {
            path: file.to_owned(),
            version,
        });
    }
    let tickets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets")
        .fetch_one(&mut *conn)
        .await?;
    let outbox: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(&mut *conn)
        .await?;
    Ok(Checked {
        tickets,
        outbox,
        migration: applied.last().copied(),
    })
}

async fn sqlite_backup(db: &Path, to: &Path) -> Result<BackupReport, BackupError> {
    if !db.is_file() {
        return Err(BackupError::NoStore(db.to_owned()));
    }
    let tmp = temp_beside(to)?;
    let partial = Partial(tmp.clone());
    // VACUUM INTO wants a file that is missing or empty; the empty one is ours, 0600.
    let mut src = sqlite_conn(db, false).await?;
    let target = tmp.to_str().ok_or_else(|| BackupError::Io {
        what: "cannot use the path",
        path: tmp.clone(),
        source: std::io::Error::other("not UTF-8"),
    })?;
    sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(&mut src)
        .await?;
    let _ = src.close().await;
    // The copy: a plain rollback-journal file (no -wal beside it), then checked.
    let mut copy = sqlite_conn(&tmp, false).await?;
    let _: Option<String> = sqlx::query_scalar("PRAGMA journal_mode = DELETE")
        .fetch_optional(&mut copy)
        .await?;
    let checked = check_sqlite(&mut copy, to).await;
    let _ = copy.close().await;
    let checked = checked?;
    let bytes = put_in_place(&tmp, to)?;
    drop(partial);
    Ok(BackupReport {
        path: to.to_owned(),
        bytes,
        backend: Backend::Sqlite,
        tickets: checked.tickets,
        outbox: checked.outbox,
        migration: checked.migration,
    })
}

/// Takes the daemon's single-instance lock of `db` (`<db>.lock`, see `daemon::sqlite_lock`).
fn daemon_lock(db: &Path) -> Result<File, BackupError> {
    let lock = with_suffix(db, ".lock");
    if let Some(dir) = lock.parent() {
        crate::private_files::create_dir_all(dir).map_err(io("cannot create", dir))?;
    }
    let f = crate::private_files::create_file(&lock).map_err(io("cannot open", &lock))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(BackupError::DaemonRunning(db.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(io("cannot lock", &lock)(e)),
    }
}

async fn sqlite_restore(url: &str, db: &Path, from: &Path) -> Result<RestoreReport, BackupError> {
    use std::io::Read;
    // The file first: a SQLite database, sound, with Messo's migrations.
    let not_backup = |reason: String| BackupError::NotABackup {
        path: from.to_owned(),
        reason,
    };
    let mut head = [0u8; 16];
    let n = File::open(from)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| not_backup(format!("cannot read it: {e}")))?;
    if n < head.len() || &head != SQLITE_HEADER {
        return Err(not_backup(
            "it is not a SQLite database (its first bytes are not the SQLite header)".to_owned(),
        ));
    }
    let mut conn = sqlite_conn(from, true)
        .await
        .map_err(|e| not_backup(e.to_string()))?;
    let checked = check_sqlite(&mut conn, from).await;
    let _ = conn.close().await;
    checked.map_err(|e| match e {
        BackupError::Check { reason } => not_backup(reason),
        other => other,
    })?;

    // No daemon on the store now, and none starting until the restore is done.
    let _lock = daemon_lock(db)?;

    // The copy goes in beside the store first, synced.
    let tmp = temp_beside(db)?;
    let partial = Partial(tmp.clone());
    std::fs::copy(from, &tmp).map_err(io("cannot copy into", &tmp))?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync", &tmp))?;

    // The store being replaced is kept, with its -wal (committed data not yet checkpointed).
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
    let put_back = |moved: &[(PathBuf, PathBuf)]| {
        for (current, aside) in moved {
            let _ = std::fs::rename(aside, current);
        }
    };
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let current = with_suffix(db, suffix);
        if current.exists() {
            let aside = with_suffix(db, &format!(".before-restore-{stamp}{suffix}"));
            if let Err(e) = std::fs::rename(&current, &aside) {
                put_back(&moved);
                return Err(io("cannot move aside", &current)(e));
            }
            moved.push((current, aside));
        }
    }
    if let Err(e) = std::fs::rename(&tmp, db) {
        put_back(&moved);
        return Err(io("cannot put in place", db)(e));
    }
    drop(partial);
    let kept = moved.into_iter().map(|(_, aside)| aside).collect();
    sync_dir(db);

    // Migrated forward by this binary.
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let (tickets, outbox) = counts(&store).await?;
    store.pool().close().await;
    Ok(RestoreReport {
        backend: Backend::Sqlite,
        kept,
        tickets,
        outbox,
    })
}

async fn counts(store: &Store) -> Result<(i64, i64), sqlx::Error> {
    let tickets: i64 = sqlx::query("SELECT COUNT(*) FROM tickets")
        .fetch_one(store.pool())
        .await?
        .try_get(0)?;
    let outbox: i64 = sqlx::query("SELECT COUNT(*) FROM outbox")
        .fetch_one(store.pool())
        .await?
        .try_get(0)?;
    Ok((tickets, outbox))
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL.

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URL without its password, and the password (for `PGPASSWORD`).
fn split_password(url: &str) -> (String, Option<String>) {
    let Some(scheme_end) = url.find("://") else {
        return (url.to_owned(), None);
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return (url.to_owned(), None);
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return (url.to_owned(), None);
    };
    let password = percent_decode(&userinfo[colon + 1..]);
    let stripped = format!(
        "{}{}{}",
        &url[..scheme_end + 3],
        &userinfo[..colon],
        &rest[at..]
    );
    (stripped, Some(password))
}

/// `tool` with the connection's password in its environment (never in its arguments).
fn pg_tool(tool: &'static str, url: &str) -> (Command, String) {
    let (url, password) = split_password(url);
    let mut cmd = Command::new(tool);
    cmd.env_remove("PGPASSWORD");
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    (cmd, url)
}

fn run_tool(tool: &'static str, cmd: &mut Command) -> Result<Vec<u8>, BackupError> {
    let out = cmd
        .output()
        .map_err(|source| BackupError::ToolMissing { tool, source })?;
    if !out.status.success() {
        return Err(BackupError::Tool {
            tool,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr)
                .trim()
                .chars()
                .take(2000)
                .collect(),
        });
    }
    Ok(out.stdout)
}

async fn pg_backup(url: &str, to: &Path) -> Result<BackupReport, BackupError> {
    let tmp = temp_beside(to)?;
    let partial = Partial(tmp.clone());
    // One snapshot for the counts and the dump: they describe the same state.
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut conn)
        .await?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut conn)
        .await?;
    let tickets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets")
        .fetch_one(&mut conn)
        .await?;
    let outbox: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(&mut conn)
        .await?;
    let migration: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await?;
    let (mut cmd, plain) = pg_tool("pg_dump", url);
    cmd.arg("--format=custom")
        .arg(format!("--snapshot={snapshot}"))
        .arg("--file")
        .arg(&tmp)
        .arg(format!("--dbname={plain}"));
    let dumped = tokio::task::spawn_blocking(move || run_tool("pg_dump", &mut cmd))
        .await
        .map_err(|e| BackupError::Check {
            reason: format!("pg_dump's task: {e}"),
        })?;
    let _ = sqlx::query("COMMIT").execute(&mut conn).await;
    let _ = conn.close().await;
    dumped?;
    crate::private_files::narrow_file(&tmp).map_err(io("cannot narrow", &tmp))?;
    // The dump reads back.
    let mut list = Command::new("pg_restore");
    list.arg("--list").arg(&tmp);
    run_tool("pg_restore", &mut list).map_err(|e| BackupError::Check {
        reason: e.to_string(),
    })?;
    let bytes = put_in_place(&tmp, to)?;
    drop(partial);
    Ok(BackupReport {
        path: to.to_owned(),
        bytes,
        backend: Backend::Postgres,
        tickets,
        outbox,
        migration,
    })
}

/// The migration versions inside a custom-format dump (its `_sqlx_migrations` data).
fn dump_versions(from: &Path) -> Result<Vec<i64>, BackupError> {
    let mut cmd = Command::new("pg_restore");
    cmd.args(["--data-only", "--table=_sqlx_migrations", "--file=-"])
        .arg(from);
    let sql = run_tool("pg_restore", &mut cmd)?;
    let sql = String::from_utf8_lossy(&sql);
    let mut versions = Vec::new();
    let mut in_copy = false;
    for line in sql.lines() {
        if line.starts_with("COPY ") && line.contains("_sqlx_migrations") {
            in_copy = true;
        } else if line == "\\." {
            in_copy = false;
        } else if in_copy && let Some(Ok(v)) = line.split('\t').next().map(str::parse::<i64>) {
            versions.push(v);
        }
    }
    Ok(versions)
}

async fn pg_restore(url: &str, from: &Path) -> Result<RestoreReport, BackupError> {
    let not_backup = |reason: String| BackupError::NotABackup {
        path: from.to_owned(),
        reason,
    };
    if !from.is_file() {
        return Err(not_backup("there is no such file".to_owned()));
    }
    let mut list = Command::new("pg_restore");
    list.arg("--list").arg(from);
    let toc = run_tool("pg_restore", &mut list).map_err(|e| match e {
        BackupError::Tool { stderr, .. } => {
            not_backup(format!("pg_restore cannot read it as a dump: {stderr}"))
        }
        other => other,
    })?;
    if !String::from_utf8_lossy(&toc).contains("_sqlx_migrations") {
        return Err(not_backup(
            "it is a PostgreSQL dump without Messo's migrations table".to_owned(),
        ));
    }
    let versions = dump_versions(from)?;
    if let Some(version) = unknown_version(Backend::Postgres, &versions) {
        return Err(BackupError::Newer {
            path: from.to_owned(),
            version,
        });
    }
    let (mut cmd, plain) = pg_tool("pg_restore", url);
    cmd.args([
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
    ])
    .arg(format!("--dbname={plain}"))
    .arg(from);
    tokio::task::spawn_blocking(move || run_tool("pg_restore", &mut cmd))
        .await
        .map_err(|e| BackupError::Check {
            reason: format!("pg_restore's task: {e}"),
        })??;
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let (tickets, outbox) = counts(&store).await?;
    store.pool().close().await;
    Ok(RestoreReport {
        backend: Backend::Postgres,
        kept: Vec::new(),
        tickets,
        outbox,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url() {
        assert_eq!(
            split_password("postgres://messo:s%40cret@db.example.it:5432/messo?sslmode=require"),
            (
                "postgres://messo@db.example.it:5432/messo?sslmode=require".to_owned(),
                Some("s@cret".to_owned())
            )
        );
        assert_eq!(
            split_password("postgres://postgres@127.0.0.1/test"),
            ("postgres://postgres@127.0.0.1/test".to_owned(), None)
        );
        assert_eq!(
            split_password("postgresql://localhost/messo"),
            ("postgresql://localhost/messo".to_owned(), None)
        );
    }

    #[test]
    fn sqlite_paths_and_suffixes() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/messo/messo.db?mode=rwc").unwrap(),
            PathBuf::from("/var/lib/messo/messo.db")
        );
        assert_eq!(
            with_suffix(Path::new("/x/m.db"), "-wal"),
            PathBuf::from("/x/m.db-wal")
        );
        assert!(sqlite_path("sqlite::memory:").is_err());
    }
}
