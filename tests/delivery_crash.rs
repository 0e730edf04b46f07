//! kill -9 the daemon while it sends 1,000 e-mails to a real SMTP server; restart it; every
//! message ends delivered, none is lost, and the duplicates are exactly the ones we allowed and
//! counted (messages in flight at the kill, resent with the same Message-ID).

#[path = "common/mail.rs"]
mod mail;
#[path = "common/peers.rs"]
mod peers;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use messo::store::Store;

const MESSAGES: usize = 1000;

#[test]
fn kill_9_while_sending_loses_nothing_and_counts_every_duplicate() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("messo-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let peer_dir = dir.join("received");
    std::fs::create_dir_all(&peer_dir).expect("peer dir");
    let peer = peers::SmtpPeer::start(&peer_dir, 0, &[]);
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/messo.toml"))
            .expect("shipped config");
    let config_text = shipped
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{http_port}"))
        .replace(
            "url = \"sqlite://data/messo.db\"",
            "url = \"sqlite://data/messo.db\"\npoll_interval_ms = 100",
        )
        .replace("email = \"file\"", "email = \"smtp\"")
        + &format!(
            "\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\npool_size = 8\ntimeout_s = 5\n",
            peer.port
        );
    std::fs::write(dir.join("messo.toml"), &config_text).expect("config");
    let url = format!("sqlite://{}/data/messo.db", dir.display());

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = rt.block_on(async {
        let store = Store::connect(&url).await.expect("store");
        store.migrate().await.expect("migrate");
        let config =
            messo::config::Config::from_toml(&config_text, "test", Vec::new()).expect("config");
        let now = messo::time::Timestamp::from_chrono(&chrono::Utc::now());
        store.register_config(&config, now).await.expect("register");
        let tickets: Vec<_> = (0..MESSAGES)
            .map(|i| {
                messo::ticket::NewTicket::from_json(&serde_json::json!({
                    "number": format!("CR-{i}"),
                    "office": "anagrafe",
                    "priority": "normale",
                    "subject": "Certificato",
                    "received_at": now.to_string(),
                    "citizen": {"email": format!("c{i}@example.it")}
                }))
                .expect("ticket")
            })
            .collect();
        for chunk in tickets.chunks(500) {
            store
                .create_many(chunk, messo::ticket::Source::Crm, now)
                .await
                .expect("seed");
        }
        store
    });

    let start = || {
        Command::new(env!("CARGO_BIN_EXE_messo"))
            .args(["--config", "messo.toml", "run"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start")
    };
    let received = || peer.envelopes().len();
    let mut first = start();
    let deadline = Instant::now() + Duration::from_secs(60);
    while received() < 50 {
        assert!(Instant::now() < deadline, "no delivery started");
        std::thread::sleep(Duration::from_millis(2));
    }
    first.kill().expect("kill -9");
    first.wait().expect("reap");
    let at_kill = received();
    assert!(
        at_kill < MESSAGES,
        "the kill came too late to test anything"
    );

    let mut second = start();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let depth = rt.block_on(store.outbox_depth()).expect("depth");
        if depth == vec![("delivered".to_owned(), MESSAGES as i64)] {
            break;
        }
        assert!(Instant::now() < deadline, "not all delivered: {depth:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .expect("term");
    assert!(second.wait().expect("wait").success());

    // What the server holds: every message at least once, by Message-ID.
    let total = received();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for n in 1..=total {
        let id = mail::header(&peer.message(n), "Message-ID").expect("Message-ID");
        *by_id.entry(id).or_default() += 1;
    }
    assert_eq!(by_id.len(), MESSAGES, "every message reached the server");
    let duplicates: usize = by_id.values().map(|c| c - 1).sum();
    let counted: i64 = rt.block_on(async {
        sqlx::query_scalar("SELECT COALESCE(SUM(resent), 0) FROM outbox")
            .fetch_one(store.pool())
            .await
            .expect("resent")
    });
    // Every duplicate the server saw was a resend in doubt, and counted as such.
    assert!(
        duplicates as i64 <= counted,
        "{duplicates} duplicates at the server, {counted} counted"
    );
    println!(
        "kill -9 after {at_kill} of {MESSAGES} e-mails; after restart all {MESSAGES} delivered; \
         {counted} resent in doubt (same Message-ID), {duplicates} of them were real duplicates"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
