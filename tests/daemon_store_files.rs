//! `messo run` and the CLI against damaged or unfit stores, and the modes of the files they
//! make: `/readyz` names a table that cannot be read (a damaged SQLite page, a missing
//! PostgreSQL table); a file that is not a database is refused at once, naming it; under
//! umask 000 the database, its `-wal`/`-shm`, the lock, the outbox and the attachments are
//! still 0600 in 0700 folders, and a database file others could read is narrowed.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::{crm_write, get, http, now, shipped_config, wait_for_file};
use common::process::{Proc, free_port, messo_under_umask, run};
use common::{pg, unique};
use messo::store::Store;

const MAIL_TOKEN: &str = "mail-url-token-0123456789";

fn fresh_dir(name: &str) -> PathBuf {
    common::fresh_dir(&format!("messo-{name}"))
}

/// The shipped configuration on `port`, polling every 100 ms, with a mail webhook.
fn config(port: u16) -> String {
    shipped_config(port)
        + &format!(
            "\n[inbound]\n[[inbound.endpoints]]\nname = \"posta\"\nfamily = \"mail\"\ntoken = \"{MAIL_TOKEN}\"\n"
        )
}

/// `messo ARGS` in `dir`, with umask 000 when `open_umask`.
fn messo(dir: &Path, args: &[&str], env: &[(&str, &str)], open_umask: bool) -> Command {
    let mut cmd = if open_umask {
        messo_under_umask("000")
    } else {
        common::process::messo()
    };
    cmd.args(args)
        .current_dir(dir)
        .env("MESSO_LOG", "info")
        .envs(env.iter().copied());
    cmd
}

struct Daemon {
    proc: Proc,
    port: u16,
}

impl Daemon {
    fn start(dir: &Path, env: &[(&str, &str)], open_umask: bool) -> Daemon {
        let port = free_port();
        std::fs::write(dir.join("messo.toml"), config(port)).expect("config");
        let mut cmd = messo(dir, &["--config", "messo.toml", "run"], env, open_umask);
        Daemon {
            proc: common::daemon::start(&mut cmd, dir, port),
            port,
        }
    }

    /// SIGTERM, then the log.
    fn stop(self) -> String {
        common::daemon::stop(self.proc).1
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Overwrites the first page of table `table` (its root) with bytes no page can start with.
fn damage_table(db: &Path, table: &str) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (root, page_size) = rt.block_on(async {
        let store = Store::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("open");
        let root: i64 = sqlx::query_scalar("SELECT rootpage FROM sqlite_master WHERE name = $1")
            .bind(table)
            .fetch_one(store.pool())
            .await
            .expect("root page");
        let size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(store.pool())
            .await
            .expect("page size");
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(store.pool())
            .await
            .expect("checkpoint");
        store.pool().close().await;
        (root, size)
    });
    let mut bytes = std::fs::read(db).expect("read db");
    let start = ((root - 1) * page_size) as usize;
    for b in &mut bytes[start..start + page_size as usize] {
        *b = 0xEE;
    }
    std::fs::write(db, bytes).expect("write db");
}

#[test]
fn readyz_names_a_damaged_sqlite_table() {
    let dir = fresh_dir("readyz-sqlite");
    let d = Daemon::start(&dir, &[], false);
    assert_eq!(get(d.port, "/readyz", None).map(|r| r.0), Some(200));
    d.stop();
    damage_table(&dir.join("data/messo.db"), "tickets");
    let d = Daemon::start(&dir, &[], false);
    let (status, body) = get(d.port, "/readyz", None).expect("readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("table tickets"), "{body}");
    assert_eq!(get(d.port, "/healthz", None).map(|r| r.0), Some(200));
    d.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn readyz_names_a_missing_postgresql_table() {
    let dir = fresh_dir("readyz-pg");
    let schema = unique("messo_readyz");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = rt.block_on(pg::fresh_schema(&schema));
    let d = Daemon::start(&dir, &[("MESSO_DATABASE__URL", &url)], false);
    assert_eq!(get(d.port, "/readyz", None).map(|r| r.0), Some(200));
    let tables: Vec<String> = rt.block_on(async {
        let store = Store::connect(&url).await.expect("connect");
        let tables = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
        )
        .fetch_all(store.pool())
        .await
        .expect("tables");
        sqlx::query("ALTER TABLE outbox RENAME TO outbox_damaged")
            .execute(store.pool())
            .await
            .expect("rename");
        tables
    });
    // Every table of the schema is among those /readyz reads.
    let mut tables = tables;
    tables.sort();
    let mut checked: Vec<String> = messo::store::STORE_TABLES
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    checked.sort();
    assert_eq!(tables, checked);
    let (status, body) = get(d.port, "/readyz", None).expect("readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("table outbox"), "{body}");
    d.stop();
    rt.block_on(pg::drop_schema(&schema));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_that_is_not_a_database_is_refused_at_once_by_name() {
    let dir = fresh_dir("not-a-db");
    std::fs::create_dir_all(dir.join("data")).expect("data");
    std::fs::write(
        dir.join("data/messo.db"),
        "these are my notes, not a database\n",
    )
    .expect("write");
    std::fs::write(dir.join("messo.toml"), config(free_port())).expect("config");
    for args in [
        &["--config", "messo.toml", "migrate"][..],
        &["--config", "messo.toml", "run"][..],
    ] {
        let out = run(&mut messo(&dir, args, &[], false), None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains(
                "data/messo.db cannot be used as the SQLite database: it is not a SQLite database"
            ),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("data/messo.db")).expect("read"),
        "these are my notes, not a database\n",
        "the file is left as it was"
    );
    // A folder where the file should be.
    std::fs::remove_file(dir.join("data/messo.db")).expect("rm");
    std::fs::create_dir_all(dir.join("data/messo.db")).expect("mkdir");
    let out = run(
        &mut messo(&dir, &["--config", "messo.toml", "migrate"], &[], false),
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("it is a directory"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn files_with_personal_data_are_private_whatever_the_umask() {
    let dir = fresh_dir("umask");
    let data = dir.join("data");
    let d = Daemon::start(&dir, &[], true);
    // A direct write: the receipt goes to the file channel.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(crm_write(
        &format!("sqlite://{}/messo.db", data.display()),
        "U-1",
        now(),
    ));
    // An e-mail reply with a file.
    let boundary = "b0undary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"from\"\r\n\r\na@example.it\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nallegato\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"doc.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n%PDF-1.4 carta\r\n--{boundary}--\r\n"
    );
    let (status, answer) = http(
        d.port,
        &format!(
            "POST /webhooks/mail/posta/{MAIL_TOKEN} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .expect("webhook");
    assert_eq!(status, 200, "{answer}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let outbox = data.join("outbox");
    let receipt = wait_for_file(&outbox, "-ricevuta-citizen.eml", deadline);
    let attachments = data.join("attachments");
    let files: Vec<PathBuf> = std::fs::read_dir(&attachments)
        .expect("attachments")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    for (path, want) in [
        (data.clone(), 0o700),
        (data.join("messo.db"), 0o600),
        (data.join("messo.db-wal"), 0o600),
        (data.join("messo.db-shm"), 0o600),
        (data.join("messo.db.lock"), 0o600),
        (outbox.clone(), 0o700),
        (receipt.clone(), 0o600),
        (attachments.clone(), 0o700),
        (files[0].clone(), 0o600),
    ] {
        assert_eq!(mode(&path), want, "{}", path.display());
    }
    d.stop();

    // A database file others could read (copied in, an old install): narrowed at start.
    for f in ["messo.db", "messo.db.lock"] {
        std::fs::set_permissions(data.join(f), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    let d = Daemon::start(&dir, &[], true);
    assert_eq!(mode(&data.join("messo.db")), 0o600);
    assert_eq!(mode(&data.join("messo.db.lock")), 0o600);
    let log = d.stop();
    assert!(log.contains("narrowed to 0600"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
