//! `messo run` as an operator starts it: in a folder of its own holding `messo.toml`, its data
//! under `data/`; and the plain HTTP/1.1 the tests speak to it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use messo::store::Store;
use messo::time::Timestamp;

use super::process::{Proc, messo};

/// The shipped configuration listening on 127.0.0.1:`port`, taking direct writes every 100 ms.
pub fn shipped_config(port: u16) -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/messo.toml"))
        .expect("the shipped config/messo.toml")
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace(
            "url = \"sqlite://data/messo.db\"",
            "url = \"sqlite://data/messo.db\"\npoll_interval_ms = 100",
        )
}

/// The SQLite store `messo run` makes in `dir`.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}/data/messo.db", dir.display())
}

/// `messo --config messo.toml run` in `dir`.
pub fn run_in(dir: &Path) -> Command {
    let mut cmd = messo();
    cmd.args(["--config", "messo.toml", "run"]).current_dir(dir);
    cmd
}

/// Starts `cmd` (see `run_in`), its log in `dir/messo.log`, without waiting for anything.
pub fn spawn(cmd: &mut Command, dir: &Path) -> Proc {
    Proc::spawn(cmd, &dir.join("messo.log"))
}

/// Starts `cmd` and waits (30 s at most) until it answers `/healthz` on `port`.
pub fn start(cmd: &mut Command, dir: &Path, port: u16) -> Proc {
    let mut daemon = spawn(cmd, dir);
    daemon.wait_until(Duration::from_secs(30), "answer on /healthz", || {
        get(port, "/healthz", None).is_some()
    });
    daemon
}

/// `messo run` in `dir` until `progress()` reaches `at_least` (within 60 s), then `kill -9`: no
/// chance to tidy up. The progress as the kill left it.
pub fn run_then_kill_9(dir: &Path, at_least: usize, progress: impl Fn() -> usize) -> usize {
    let mut daemon = spawn(&mut run_in(dir), dir);
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress() < at_least {
        assert!(
            Instant::now() < deadline && daemon.exited().is_none(),
            "no delivery started; the daemon's log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    daemon.kill();
    progress()
}

/// SIGTERM, and up to 25 s for a clean exit: whether it exited with success, and its log.
pub fn stop(mut daemon: Proc) -> (bool, String) {
    let status = daemon.terminate(Duration::from_secs(25));
    (status.is_some_and(|s| s.success()), daemon.log())
}

/// (status, body) of one raw HTTP/1.1 request to 127.0.0.1:`port`; None if it could not be made.
pub fn http(port: u16, request: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n")?.1.to_owned()))
}

/// GET `path`, with a bearer token if one is given.
pub fn get(port: u16, path: &str, bearer: Option<&str>) -> Option<(u16, String)> {
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
    )
}

/// Waits until a file whose name ends with `suffix` appears in `dir`; panics after `deadline`.
pub fn wait_for_file(dir: &Path, suffix: &str, deadline: Instant) -> PathBuf {
    loop {
        let found = std::fs::read_dir(dir).ok().and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(suffix))
        });
        match found {
            Some(p) => return p,
            None if Instant::now() > deadline => {
                panic!("no file *{suffix} appeared in {}", dir.display())
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A CRM's direct write of ticket `number`, as docs/ticket-store.md documents it.
pub async fn crm_write(url: &str, number: &str, received_at: Timestamp) {
    let store = Store::connect(url).await.expect("a second connection");
    sqlx::query("INSERT INTO crm_inbox (kind, ticket_number, payload) VALUES ('ticket', $1, $2)")
        .bind(number)
        .bind(
            serde_json::json!({
                "number": number, "office": "anagrafe", "priority": "alta",
                "subject": "Certificato", "received_at": received_at.to_string(),
                "citizen": {"email": "a@example.it"}
            })
            .to_string(),
        )
        .execute(store.pool())
        .await
        .expect("insert into crm_inbox");
}

/// Now, for a ticket that must be running whatever day the test runs on.
pub fn now() -> Timestamp {
    Timestamp::from_chrono(&chrono::Utc::now())
}

/// The store at `url` migrated, with `config_text` registered and `tickets` tickets
/// `PREFIX-0`, `PREFIX-1`, … received now (citizen `cN@example.it`), before any daemon runs.
pub async fn seeded_store(url: &str, config_text: &str, prefix: &str, tickets: usize) -> Store {
    let store = Store::connect(url).await.expect("store");
    store.migrate().await.expect("migrate");
    let config = messo::config::Config::from_toml(config_text, "test", Vec::new()).expect("config");
    let now = now();
    store.register_config(&config, now).await.expect("register");
    let all: Vec<_> = (0..tickets)
        .map(|i| {
            messo::ticket::NewTicket::from_json(&serde_json::json!({
                "number": format!("{prefix}-{i}"),
                "office": "anagrafe",
                "priority": "normale",
                "subject": "Certificato",
                "received_at": now.to_string(),
                "citizen": {"email": format!("c{i}@example.it")}
            }))
            .expect("ticket")
        })
        .collect();
    for chunk in all.chunks(500) {
        store
            .tickets()
            .create_many(chunk, messo::ticket::Source::Crm, now)
            .await
            .expect("seed");
    }
    store
}
