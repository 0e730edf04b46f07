//! kill -9 the daemon while it sends 1,000 e-mails to a real SMTP server; restart it; every
//! message ends delivered, none is lost, and the duplicates are exactly the ones we allowed and
//! counted (messages in flight at the kill, resent with the same Message-ID).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::daemon::{
    run_in, run_then_kill_9, seeded_store, shipped_config, spawn, sqlite_url, stop,
};
use common::db::count;
use common::process::{eventually, free_port};
use common::{fresh_dir, mail, peers};

const MESSAGES: usize = 1000;

#[test]
fn kill_9_while_sending_loses_nothing_and_counts_every_duplicate() {
    let dir = fresh_dir("messo-crash");
    let peer_dir = dir.join("received");
    std::fs::create_dir_all(&peer_dir).expect("peer dir");
    let peer = peers::SmtpPeer::start(&peer_dir, 0, &[]);
    let config_text = shipped_config(free_port()).replace("email = \"file\"", "email = \"smtp\"")
        + &format!(
            "\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\npool_size = 8\ntimeout_s = 10\n",
            peer.port
        );
    std::fs::write(dir.join("messo.toml"), &config_text).expect("config");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = rt.block_on(seeded_store(
        &sqlite_url(&dir),
        &config_text,
        "CR",
        MESSAGES,
    ));

    let received = || peer.envelopes().len();
    let at_kill = run_then_kill_9(&dir, 50, received);
    assert!(
        at_kill < MESSAGES,
        "the kill came too late to test anything"
    );

    let second = spawn(&mut run_in(&dir), &dir);
    eventually(Duration::from_secs(180), || {
        let depth = rt.block_on(store.monitor().outbox_depth()).expect("depth");
        if depth == vec![("delivered".to_owned(), MESSAGES as i64)] {
            Ok(())
        } else {
            Err(format!("not all delivered: {depth:?}"))
        }
    });
    let (clean, log) = stop(second);
    assert!(clean, "{log}");

    // What the server holds: every message at least once, by Message-ID.
    let total = received();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for n in 1..=total {
        let id = mail::header(&peer.message(n), "Message-ID").expect("Message-ID");
        *by_id.entry(id).or_default() += 1;
    }
    assert_eq!(by_id.len(), MESSAGES, "every message reached the server");
    let duplicates: usize = by_id.values().map(|c| c - 1).sum();
    let counted = rt.block_on(count(&store, "SELECT COALESCE(SUM(resent), 0) FROM outbox"));
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
