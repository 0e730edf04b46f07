//! `messo backup` and `messo restore` on real stores: a SQLite file written to while the binary
//! backs it up, restored elsewhere with every ticket and outbox row committed before the backup
//! began; a restore refused while a daemon holds the store's lock (`messo run` itself, too), or
//! from a file that is not a backup (the store untouched); a PostgreSQL round trip through
//! pg_dump and pg_restore in a database of the test's own.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::process::{messo, run};
use common::{pg, unique};
use messo::config::{BUILTIN_TOML, Config};
use messo::daemon::Engine;
use messo::store::Store;
use messo::store::backup::{self, BackupError};
use messo::ticket::{NewTicket, Source};
use messo::time::Timestamp;
use serde_json::json;

fn now() -> Timestamp {
    common::daemon::now()
}

fn config() -> Config {
    Config::from_toml(BUILTIN_TOML, "built-in", Vec::new()).expect("config")
}

async fn open(url: &str) -> Store {
    let store = Store::connect(url).await.expect("store");
    store.migrate().await.expect("migrate");
    store
        .register_config(&config(), now())
        .await
        .expect("register");
    store
}

fn ticket(number: &str, i: usize) -> NewTicket {
    NewTicket::from_json(&json!({
        "number": number,
        "office": "anagrafe",
        "priority": "normale",
        "subject": "Certificato di residenza",
        "received_at": now().to_string(),
        "citizen": {"email": format!("c{i}@example.it"), "mobile": "+393331112222"}
    }))
    .expect("ticket")
}

/// Tickets `NNNNNN` from `from` to `to`, with the engine run every ten (it owes their receipts:
/// outbox rows), each committed through the store's API.
async fn write_tickets(store: &Store, from: usize, to: usize, done: &AtomicUsize) {
    let engine = Engine::new(store.clone(), config().notify.clone());
    for i in from..to {
        store
            .tickets()
            .create_ticket(&ticket(&format!("B-{i:06}"), i), Source::Api, now())
            .await
            .expect("create");
        if i % 10 == 9 {
            engine.cycle(now()).await.expect("engine");
        }
        done.store(i + 1, Ordering::SeqCst);
    }
    engine.cycle(now()).await.expect("engine");
}

async fn numbers(store: &Store) -> BTreeSet<String> {
    sqlx::query_scalar::<_, String>("SELECT number FROM tickets")
        .fetch_all(store.pool())
        .await
        .expect("numbers")
        .into_iter()
        .collect()
}

async fn outbox(store: &Store) -> BTreeSet<(i64, String, String)> {
    sqlx::query_as::<_, (i64, String, String)>(
        "SELECT o.id, t.number, o.kind FROM outbox o JOIN tickets t ON t.id = o.ticket_id",
    )
    .fetch_all(store.pool())
    .await
    .expect("outbox")
    .into_iter()
    .collect()
}

/// `N tickets, M outbox rows` in a command's report.
fn reported(text: &str) -> (i64, i64) {
    let n = |label: &str| -> i64 {
        let before = text
            .split(label)
            .next()
            .unwrap_or_else(|| panic!("no {label:?} in {text}"));
        before
            .split_whitespace()
            .last()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("no count before {label:?} in {text}"))
    };
    (n(" tickets,"), n(" outbox rows"))
}

fn messo_on(url: &str, args: &[&str]) -> std::process::Output {
    run(messo().args(args).env("MESSO_DATABASE__URL", url), None)
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// The binary backs up a SQLite store while a writer commits tickets and outbox rows through
/// the store's API (400 tickets, the backup starting after 150); restored into a fresh path, the
/// store has every ticket and outbox row committed before the backup started, and exactly the
/// counts the backup reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_sqlite_store_restores_every_row_committed_before_the_backup() {
    let dir = common::fresh_dir("backup_busy");
    let url = format!("sqlite://{}/live/messo.db", dir.display());
    let store = open(&url).await;
    let done = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (store, done) = (store.clone(), Arc::clone(&done));
        tokio::spawn(async move { write_tickets(&store, 0, 400, &done).await })
    };
    while done.load(Ordering::SeqCst) < 150 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Committed before the backup starts: what it must hold at least.
    let tickets_before = numbers(&store).await;
    let outbox_before = outbox(&store).await;
    assert!(tickets_before.len() >= 150 && !outbox_before.is_empty());

    let file = dir.join("backups/messo-backup.db");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let out = {
        let (url, file) = (url.clone(), file.clone());
        tokio::task::spawn_blocking(move || {
            messo_on(&url, &["backup", "--to", file.to_str().unwrap()])
        })
        .await
        .unwrap()
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("backup written: {}", file.display())),
        "{text}"
    );
    let (tickets, rows) = reported(&text);
    eprintln!(
        "committed before the backup: {} tickets, {} outbox rows; in the backup: {tickets}, {rows}",
        tickets_before.len(),
        outbox_before.len()
    );
    writer.await.expect("writer");
    assert_eq!(numbers(&store).await.len(), 400);
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600);
    // No partial file left beside it.
    let names: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("messo-backup.db")]);

    // A second backup to the same file is refused; the first is intact.
    let again = messo_on(&url, &["backup", "--to", file.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));

    // Restored into a fresh path by the binary.
    let fresh = format!("sqlite://{}/restored/messo.db", dir.display());
    let out = messo_on(&fresh, &["restore", "--from", file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(reported(&text), (tickets, rows));
    let restored = Store::connect(&fresh).await.expect("restored store");
    let got_tickets = numbers(&restored).await;
    let got_outbox = outbox(&restored).await;
    assert!(
        tickets_before.is_subset(&got_tickets),
        "missing tickets: {:?}",
        tickets_before
            .difference(&got_tickets)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(
        outbox_before.is_subset(&got_outbox),
        "missing outbox rows: {:?}",
        outbox_before
            .difference(&got_outbox)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert_eq!(got_tickets.len() as i64, tickets);
    assert_eq!(got_outbox.len() as i64, rows);
    // A consistent state: what the restored store holds is what the live one holds for those
    // tickets (nothing half-written), and the engine owes nothing new for them.
    let live_outbox = outbox(&store).await;
    for row in &got_outbox {
        assert!(
            live_outbox.contains(row),
            "{row:?} is not in the live store"
        );
    }
    restored.pool().close().await;
    store.pool().close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A restore is refused while a daemon holds the store's lock, and a file that is not a backup
/// (text, another program's SQLite database, a backup from a newer Messo) is refused with what
/// it is: the store is left as it was and nothing is moved aside. Then the restore goes through,
/// keeping the replaced store as `<db>.before-restore-<time>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_running_daemon_and_files_that_are_not_backups() {
    let dir = common::fresh_dir("backup_refuse");
    let db = dir.join("messo.db");
    let url = format!("sqlite://{}", db.display());
    let store = open(&url).await;
    let done = AtomicUsize::new(0);
    write_tickets(&store, 0, 20, &done).await;
    let file = dir.join("nightly.db");
    let r = backup::backup(&url, &file).await.expect("backup");
    assert_eq!((r.tickets, r.path.clone()), (20, file.clone()));
    write_tickets(&store, 20, 25, &done).await;
    store.pool().close().await;

    // A daemon's lock (as `messo run` takes it) is held.
    let lock = std::fs::File::create(dir.join("messo.db.lock")).unwrap();
    lock.try_lock().expect("the lock is free");
    let e = backup::restore(&url, &file).await.unwrap_err();
    assert!(matches!(e, BackupError::DaemonRunning(_)), "{e}");
    assert!(e.to_string().contains("stop it first"), "{e}");
    // The binary says the same and exits non-zero.
    let out = messo_on(&url, &["restore", "--from", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a messo daemon is running"));
    drop(lock);

    let text_file = dir.join("notes.txt");
    std::fs::write(&text_file, "not a database\n").unwrap();
    let e = backup::restore(&url, &text_file).await.unwrap_err();
    assert!(matches!(e, BackupError::NotABackup { .. }), "{e}");
    assert!(e.to_string().contains("not a SQLite database"), "{e}");
    assert!(e.to_string().contains("nothing was changed"), "{e}");

    let other = dir.join("other.db");
    {
        let other_url = format!("sqlite://{}", other.display());
        let s = Store::connect(&other_url).await.unwrap();
        sqlx::query("CREATE TABLE things (x INTEGER)")
            .execute(s.pool())
            .await
            .unwrap();
        s.pool().close().await;
    }
    let e = backup::restore(&url, &other).await.unwrap_err();
    assert!(e.to_string().contains("without Messo's tables"), "{e}");

    // A backup from a newer Messo: a migration this binary does not know.
    let newer = dir.join("newer.db");
    std::fs::copy(&file, &newer).unwrap();
    {
        let s = Store::connect(&format!("sqlite://{}", newer.display()))
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990101000000, 'from the future', 1, x'00', 0)",
        )
        .execute(s.pool())
        .await
        .unwrap();
        s.pool().close().await;
    }
    let e = backup::restore(&url, &newer).await.unwrap_err();
    assert!(
        matches!(
            e,
            BackupError::Newer {
                version: 99990101000000,
                ..
            }
        ),
        "{e}"
    );

    // Untouched: all 25 tickets, nothing moved aside.
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(numbers(&store).await.len(), 25);
    store.pool().close().await;
    let aside = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("before-restore"))
            .collect::<Vec<_>>()
    };
    assert!(aside(&dir).is_empty(), "{:?}", aside(&dir));

    // Now it goes through: the 20 tickets of the backup, the store replaced kept aside.
    let r = backup::restore(&url, &file).await.expect("restore");
    assert_eq!(r.tickets, 20);
    assert!(!r.kept.is_empty());
    let kept = &r.kept[0];
    assert!(
        kept.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("messo.db.before-restore-"),
        "{kept:?}"
    );
    let old = Store::connect(&format!("sqlite://{}", kept.display()))
        .await
        .unwrap();
    assert_eq!(numbers(&old).await.len(), 25);
    old.pool().close().await;
    let store = Store::connect(&url).await.unwrap();
    let got = numbers(&store).await;
    assert_eq!(got.len(), 20);
    assert!(!got.contains("B-000024"));
    store.pool().close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// PostgreSQL: pg_dump of a database of the test's own, 0600, with the counts of the dump's own
/// snapshot; rows written afterwards are gone after pg_restore; a file that is not a dump is
/// refused with the database untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_round_trip_through_pg_dump_and_pg_restore() {
    let name = unique("messo_backup");
    let base = pg::base();
    let admin = Store::connect(&base)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (see tests/common/pg.rs)");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(admin.pool())
        .await
        .expect("create database");
    let (server, query) = match base.split_once('?') {
        Some((s, q)) => (s.to_owned(), format!("?{q}")),
        None => (base.clone(), String::new()),
    };
    let url = format!(
        "{}/{name}{query}",
        server.rsplit_once('/').map_or(server.as_str(), |(s, _)| s)
    );

    let dir = common::fresh_dir("backup_pg");
    let store = open(&url).await;
    let done = AtomicUsize::new(0);
    write_tickets(&store, 0, 30, &done).await;
    let before = outbox(&store).await;
    let file = dir.join("messo.dump");
    let r = backup::backup(&url, &file).await.expect("pg backup");
    assert_eq!(r.tickets, 30);
    assert_eq!(r.outbox as usize, before.len());
    assert!(r.bytes > 0);
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600);
    write_tickets(&store, 30, 35, &done).await;
    assert_eq!(numbers(&store).await.len(), 35);

    let junk = dir.join("junk.dump");
    std::fs::write(&junk, "hello").unwrap();
    let e = backup::restore(&url, &junk).await.unwrap_err();
    assert!(matches!(e, BackupError::NotABackup { .. }), "{e}");
    assert_eq!(numbers(&store).await.len(), 35);
    store.pool().close().await;

    let r = backup::restore(&url, &file).await.expect("pg restore");
    assert_eq!((r.tickets, r.outbox as usize), (30, before.len()));
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(numbers(&store).await.len(), 30);
    assert_eq!(outbox(&store).await, before);
    store.pool().close().await;

    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(admin.pool())
    .await
    .expect("drop database");
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `messo run` up on its SQLite store, `messo backup` takes a sound copy and `messo
/// restore` is refused (the daemon's own lock); once the daemon has stopped, the restore goes
/// through and keeps the replaced store.
#[test]
fn a_running_daemon_is_backed_up_and_blocks_a_restore_until_it_stops() {
    use common::daemon;
    let dir = common::fresh_dir("backup_daemon");
    let port = common::process::free_port();
    std::fs::write(dir.join("messo.toml"), daemon::shipped_config(port)).unwrap();
    let running = daemon::start(&mut daemon::run_in(&dir), &dir, port);
    let in_dir = |args: &[&str]| {
        let mut cmd = messo();
        cmd.args(["--config", "messo.toml"])
            .args(args)
            .current_dir(&dir);
        run(&mut cmd, None)
    };

    let out = in_dir(&["backup", "--to", "nightly.db"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("backup written: nightly.db"), "{text}");

    let out = in_dir(&["restore", "--from", "nightly.db"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(err.contains("a messo daemon is running"), "{err}");
    assert!(err.contains("stop it first"), "{err}");

    let (clean, log) = daemon::stop(running);
    assert!(clean, "{log}");
    let out = in_dir(&["restore", "--from", "nightly.db"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("the replaced store was kept as "), "{text}");
    assert!(text.contains("migrated forward"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
