//! E-mail delivery against a real SMTP server (aiosmtpd on loopback): envelope, headers, both
//! MIME parts, STARTTLS with AUTH, implicit TLS, and every failure class (4xx, 5xx, a server
//! that answers after the timeout, a server that is down, a pooled connection gone stale).

mod common;

use std::sync::Arc;

use common::peers::{self, SmtpPeer, smtp_sink};
use common::process::{messo, run};
use common::{Backend, TestDb, fixed_clock, mail, ts as at};
use messo::config::{BUILTIN_TOML, Config};
use messo::daemon::Engine;
use messo::delivery::dispatch::Dispatcher;
use messo::metrics::Metrics;
use messo::store::Store;
use messo::ticket::{NewTicket, Source};
use serde_json::json;

fn tmp(prefix: &str) -> std::path::PathBuf {
    common::fresh_dir(prefix)
}

const RECEIVED: &str = "2026-03-02T10:15:00+01:00";

/// The shipped configuration with e-mail over SMTP to 127.0.0.1:`port`, plus `extra` variables
/// (which replace these).
fn config(port: u16, extra: &[(&str, &str)]) -> Config {
    let mut env = vec![
        ("MESSO_CHANNELS__EMAIL".to_owned(), "smtp".to_owned()),
        ("MESSO_SMTP__HOST".to_owned(), "127.0.0.1".to_owned()),
        ("MESSO_SMTP__PORT".to_owned(), port.to_string()),
        ("MESSO_SMTP__SECURITY".to_owned(), "plain".to_owned()),
        // Generous: only the test of a late answer waits for it on purpose.
        ("MESSO_SMTP__TIMEOUT_S".to_owned(), "10".to_owned()),
        (
            "MESSO_DELIVERY__BREAKER_FAILURES".to_owned(),
            "2".to_owned(),
        ),
    ];
    env.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Config::from_toml(BUILTIN_TOML, "built-in", env).expect("config")
}

struct World {
    store: Store,
    dispatcher: Arc<Dispatcher>,
    engine: Engine,
}

async fn world(config: &Config) -> World {
    let store = TestDb::with_config(Backend::Sqlite, config).await.store;
    let dispatcher = Arc::new(
        Dispatcher::from_config(store.clone(), config, Arc::new(Metrics::default()))
            .expect("dispatcher"),
    );
    World {
        engine: Engine::new(store.clone(), config.notify.clone()),
        store,
        dispatcher,
    }
}

/// Creates a ticket for `email` (and a mobile) and runs the engine: its receipt is owed.
async fn owe_receipt(w: &World, number: &str, email: &str) -> i64 {
    let t = NewTicket::from_json(&json!({
        "number": number,
        "office": "anagrafe",
        "priority": "normale",
        "subject": "Cambio di residenza",
        "received_at": RECEIVED,
        "citizen": {"email": email, "mobile": "+393331112222"}
    }))
    .expect("ticket");
    let id = w
        .store
        .tickets()
        .create_ticket(&t, Source::Api, at(RECEIVED))
        .await
        .expect("create")
        .ticket()
        .id;
    w.engine.cycle(at(RECEIVED)).await.expect("engine");
    id
}

async fn outbox_id(w: &World, ticket: i64, kind: &str, channel: &str) -> i64 {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT id FROM outbox WHERE ticket_id = $1 AND kind = $2 AND channel = $3 ORDER BY id",
    )
    .bind(ticket)
    .bind(kind)
    .bind(channel)
    .fetch_all(w.store.pool())
    .await
    .expect("outbox id");
    rows.first().map(|r| r.0).expect("an outbox row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_reaches_a_real_smtp_server_with_both_parts_and_stable_headers() {
    let peer = SmtpPeer::start(&tmp("peer"), 0, &[]);
    let cfg = config(peer.port, &[]);
    let w = world(&cfg).await;
    let ticket = owe_receipt(&w, "2026/000123", "anna.bianchi@example.it").await;
    let report = w
        .dispatcher
        .drain(&fixed_clock(at(RECEIVED)), u64::MAX)
        .await
        .expect("drain");
    assert_eq!(report.delivered, 1, "{report:?}");

    let env = peer.envelopes();
    assert_eq!(env.len(), 1);
    assert_eq!(env[0]["mail_from"], "urp@comune.roma.it");
    assert_eq!(env[0]["rcpt_tos"], json!(["anna.bianchi@example.it"]));
    assert_eq!(env[0]["tls"], false);
    let eml = peer.message(1);
    let id = outbox_id(&w, ticket, "ricevuta", "email").await;
    assert_eq!(
        mail::header(&eml, "Message-ID"),
        Some(format!("<messo.{id}.{ticket}@comune.roma.it>"))
    );
    assert_eq!(
        mail::header(&eml, "X-Messo-Ticket").as_deref(),
        Some("2026/000123")
    );
    assert_eq!(
        mail::header(&eml, "X-Messo-Kind").as_deref(),
        Some("ricevuta")
    );
    assert_eq!(
        mail::header(&eml, "Reply-To").as_deref(),
        Some("urp@comune.roma.it")
    );
    assert_eq!(
        mail::header(&eml, "Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert!(
        mail::header(&eml, "From").is_some_and(|f| f.contains("<urp@comune.roma.it>")),
        "{eml}"
    );
    let text = mail::part(&eml, "text/plain").expect("text/plain part");
    assert!(
        text.contains("le abbiamo assegnato il numero 2026/000123"),
        "{text}"
    );
    assert!(
        text.contains("Gentile cittadina, gentile cittadino,"),
        "{text}"
    );
    let html = mail::part(&eml, "text/html").expect("text/html part");
    assert!(html.contains("numero 2026/000123"), "{html}");
    assert!(html.contains("<p>"), "{html}");

    // The attempt is recorded with the server's answer; nothing is sent twice.
    let state = w
        .store
        .outbox()
        .delivery_state(id)
        .await
        .expect("state")
        .expect("row");
    assert_eq!(
        (state.state.as_str(), state.attempts, state.resent),
        ("delivered", 1, 0)
    );
    assert_eq!(state.provider.as_deref(), Some("smtp"));
    let attempts = w.store.outbox().attempts_of(id).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (attempts[0].outcome.as_str(), attempts[0].code.as_deref()),
        ("delivered", Some("250"))
    );
    let again = w
        .dispatcher
        .drain(&fixed_clock(at(RECEIVED).plus(60)), u64::MAX)
        .await
        .expect("drain");
    assert_eq!(again.delivered, 0);
    assert_eq!(peer.envelopes().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_auth_and_implicit_tls_are_verified_against_our_ca() {
    let certs = tmp("certs");
    let (ca, leaf, key) = peers::certs(&certs);
    let (ca, leaf, key) = (
        ca.display().to_string(),
        leaf.display().to_string(),
        key.display().to_string(),
    );
    // STARTTLS required, AUTH required (only over TLS).
    let peer = SmtpPeer::start(
        &tmp("peer"),
        0,
        &[
            "--tls-cert",
            &leaf,
            "--tls-key",
            &key,
            "--require-starttls",
            "--auth",
            "urp:segreto",
        ],
    );
    let cfg = config(
        peer.port,
        &[
            ("MESSO_SMTP__SECURITY", "starttls"),
            ("MESSO_SMTP__HOST", "localhost"),
            ("MESSO_SMTP__CA_BUNDLE", &ca),
            ("MESSO_SMTP__USERNAME", "urp"),
            ("MESSO_SMTP__PASSWORD", "segreto"),
        ],
    );
    let w = world(&cfg).await;
    owe_receipt(&w, "TLS-1", "mario@example.it").await;
    let r = w
        .dispatcher
        .drain(&fixed_clock(at(RECEIVED)), u64::MAX)
        .await
        .expect("drain");
    assert_eq!(r.delivered, 1, "{r:?}");
    let env = peer.envelopes();
    assert_eq!(
        (env[0]["tls"].as_bool(), env[0]["auth_user"].as_str()),
        (Some(true), Some("urp"))
    );

    // Implicit TLS (SMTPS).
    let smtps = SmtpPeer::start(
        &tmp("peer"),
        0,
        &["--tls-cert", &leaf, "--tls-key", &key, "--implicit-tls"],
    );
    let cfg = config(
        smtps.port,
        &[
            ("MESSO_SMTP__SECURITY", "tls"),
            ("MESSO_SMTP__HOST", "localhost"),
            ("MESSO_SMTP__CA_BUNDLE", &ca),
        ],
    );
    let w = world(&cfg).await;
    owe_receipt(&w, "TLS-2", "mario@example.it").await;
    let r = w
        .dispatcher
        .drain(&fixed_clock(at(RECEIVED)), u64::MAX)
        .await
        .expect("drain");
    assert_eq!(r.delivered, 1, "{r:?}");
    assert_eq!(smtps.envelopes()[0]["tls"], true);

    // Without our CA the server's certificate is not trusted: nothing is sent, the row waits.
    let cfg = config(
        smtps.port,
        &[
            ("MESSO_SMTP__SECURITY", "tls"),
            ("MESSO_SMTP__HOST", "localhost"),
        ],
    );
    let w = world(&cfg).await;
    let t = owe_receipt(&w, "TLS-3", "mario@example.it").await;
    let r = w
        .dispatcher
        .drain(&fixed_clock(at(RECEIVED)), u64::MAX)
        .await
        .expect("drain");
    assert_eq!((r.delivered, r.failed), (0, 1), "{r:?}");
    let id = outbox_id(&w, t, "ricevuta", "email").await;
    let s = w
        .store
        .outbox()
        .delivery_state(id)
        .await
        .expect("state")
        .expect("row");
    assert_eq!(s.state, "retry");
    assert_eq!(
        smtps.envelopes().len(),
        1,
        "the untrusted session sent nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_4xx_retries_5xx_falls_back_to_sms_and_a_late_answer_is_resent_with_the_same_message_id()
 {
    let peer = SmtpPeer::start(
        &tmp("peer"),
        0,
        &[
            "--fail-rcpt",
            "busy@example.it:450",
            "--fail-rcpt",
            "nobody@example.it:550",
        ],
    );
    let cfg = config(peer.port, &[]);
    let w = world(&cfg).await;
    let busy = owe_receipt(&w, "F-450", "busy@example.it").await;
    let nobody = owe_receipt(&w, "F-550", "nobody@example.it").await;
    let r = w
        .dispatcher
        .drain(&fixed_clock(at(RECEIVED)), u64::MAX)
        .await
        .expect("drain");
    // The office's alert about the dead one goes out in the same drain.
    assert_eq!((r.delivered, r.dead, r.fallbacks), (1, 1, 1), "{r:?}");

    let id = outbox_id(&w, busy, "ricevuta", "email").await;
    let s = w
        .store
        .outbox()
        .delivery_state(id)
        .await
        .expect("state")
        .expect("row");
    assert_eq!(s.state, "retry");
    assert!(
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("RCPT TO")),
        "{s:?}"
    );
    let a = w.store.outbox().attempts_of(id).await.expect("attempts");
    assert_eq!(
        (a[0].outcome.as_str(), a[0].code.as_deref()),
        ("transient", Some("450"))
    );

    // 550: dead with the reason; the default chain (sms → email → office) tells the office.
    let id = outbox_id(&w, nobody, "ricevuta", "email").await;
    let s = w
        .store
        .outbox()
        .delivery_state(id)
        .await
        .expect("state")
        .expect("row");
    assert_eq!(s.state, "dead");
    assert!(
        s.last_error.as_deref().is_some_and(|e| e.contains("550")),
        "{s:?}"
    );
    let alert = outbox_id(&w, nobody, "cittadino_irraggiungibile", "email").await;
    let s = w
        .store
        .outbox()
        .delivery_state(alert)
        .await
        .expect("state")
        .expect("row");
    assert_eq!(
        (s.state.as_str(), s.address.as_str()),
        ("delivered", "urp@comune.roma.it")
    );
    let alert = peer.envelopes();
    assert_eq!(alert[0]["rcpt_tos"], json!(["urp@comune.roma.it"]));
    let text = mail::part(&peer.message(1), "text/plain").expect("text");
    assert!(
        text.contains("pratica F-550")
            && text.contains("Motivo tecnico: smtp: RCPT TO")
            && text.contains("550"),
        "{text}"
    );
    drop(peer);

    // A server that takes the message but answers after our timeout: the outcome is unknown.
    let slow_dir = tmp("peer");
    let slow = SmtpPeer::start(&slow_dir, 0, &["--delay-data", "4"]);
    let port = slow.port;
    let cfg = config(port, &[("MESSO_SMTP__TIMEOUT_S", "2")]);
    let w = world(&cfg).await;
    let t = owe_receipt(&w, "F-SLOW", "lento@example.it").await;
    let r = w
        .dispatcher
        .drain(&fixed_clock(at(RECEIVED)), u64::MAX)
        .await
        .expect("drain");
    assert_eq!((r.delivered, r.failed), (0, 1), "{r:?}");
    let id = outbox_id(&w, t, "ricevuta", "email").await;
    let a = w.store.outbox().attempts_of(id).await.expect("attempts");
    assert_eq!(a[0].outcome, "uncertain", "{a:?}");
    let s = w
        .store
        .outbox()
        .delivery_state(id)
        .await
        .expect("state")
        .expect("row");
    assert_eq!(s.state, "retry");
    // The server recovers; the resend carries the same Message-ID and is counted.
    slow.stop();
    let fast = SmtpPeer::start(&slow_dir, port, &[]);
    let later = at(RECEIVED).plus(3600);
    let r = w
        .dispatcher
        .drain(&fixed_clock(later), u64::MAX)
        .await
        .expect("drain");
    assert_eq!((r.delivered, r.resent), (1, 1), "{r:?}");
    let s = w
        .store
        .outbox()
        .delivery_state(id)
        .await
        .expect("state")
        .expect("row");
    assert_eq!((s.state.as_str(), s.resent), ("delivered", 1));
    let first = mail::header(&fast.message(1), "Message-ID");
    let second = mail::header(&fast.message(2), "Message-ID");
    assert!(first.is_some());
    assert_eq!(first, second, "the citizen's client sees one message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_opens_the_breaker_and_a_stale_pooled_connection_is_replaced() {
    // Nothing listens: connection refused twice opens the breaker (threshold 2 in this config).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let cfg = config(port, &[("MESSO_SMTP__POOL_SIZE", "1")]);
    let w = world(&cfg).await;
    for i in 0..4 {
        owe_receipt(&w, &format!("DOWN-{i}"), &format!("c{i}@example.it")).await;
    }
    let r = w
        .dispatcher
        .drain(&fixed_clock(at(RECEIVED)), u64::MAX)
        .await
        .expect("drain");
    assert_eq!(r.delivered, 0);
    // Some attempts failed and opened the breaker; the rest were not tried and keep their
    // attempt count.
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT state, attempts FROM outbox ORDER BY id")
        .fetch_all(w.store.pool())
        .await
        .expect("rows");
    let tried = rows.iter().filter(|(_, a)| *a == 1).count();
    assert_eq!(tried, 2, "{rows:?}");
    assert!(rows.iter().all(|(s, _)| s == "retry"), "{rows:?}");
    let again = w
        .dispatcher
        .drain(&fixed_clock(at(RECEIVED).plus(3600)), u64::MAX)
        .await
        .expect("drain");
    assert_eq!(
        again.delivered + again.failed,
        0,
        "an open breaker takes nothing: {again:?}"
    );

    // A pooled connection that the server closed while idle is replaced without a failure.
    let dir = tmp("peer");
    let peer = SmtpPeer::start(&dir, 0, &[]);
    let port = peer.port;
    let cfg = config(port, &[]);
    let w = world(&cfg).await;
    owe_receipt(&w, "POOL-1", "a@example.it").await;
    let r = w
        .dispatcher
        .drain(&fixed_clock(at(RECEIVED)), u64::MAX)
        .await
        .expect("drain");
    assert_eq!(r.delivered, 1);
    peer.stop();
    let peer = SmtpPeer::start(&dir, port, &[]);
    let t = owe_receipt(&w, "POOL-2", "b@example.it").await;
    let r = w
        .dispatcher
        .drain(&fixed_clock(at(RECEIVED)), u64::MAX)
        .await
        .expect("drain");
    assert_eq!((r.delivered, r.failed), (1, 0), "{r:?}");
    let id = outbox_id(&w, t, "ricevuta", "email").await;
    assert_eq!(
        w.store
            .outbox()
            .attempts_of(id)
            .await
            .expect("attempts")
            .len(),
        1
    );
    // Both messages are in the folder the two server runs shared.
    assert_eq!(peer.envelopes().len(), 2);
}

/// Two daemons' dispatchers share one PostgreSQL store: each of 300 e-mails reaches the server
/// exactly once (rows are leased with SKIP LOCKED; a result is written only under its lease).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_on_postgresql_send_each_message_once() {
    const N: usize = 300;
    let peer = SmtpPeer::start(&tmp("peer"), 0, &[]);
    let cfg = config(peer.port, &[]);
    let db = TestDb::with_config(Backend::Postgres, &cfg).await;
    let store = db.store.clone();
    let tickets: Vec<NewTicket> = (0..N)
        .map(|i| {
            NewTicket::from_json(&json!({
                "number": format!("PG-{i}"),
                "office": "anagrafe",
                "priority": "normale",
                "subject": "Certificato",
                "received_at": RECEIVED,
                "citizen": {"email": format!("c{i}@example.it")}
            }))
            .expect("ticket")
        })
        .collect();
    store
        .tickets()
        .create_many(&tickets, Source::Crm, at(RECEIVED))
        .await
        .expect("seed");
    Engine::new(store.clone(), cfg.notify.clone())
        .cycle(at(RECEIVED))
        .await
        .expect("engine");
    let one = Arc::new(
        Dispatcher::from_config(store.clone(), &cfg, Arc::new(Metrics::default())).expect("one"),
    );
    let other_store = db.second_pool().await;
    let two = Arc::new(
        Dispatcher::from_config(other_store, &cfg, Arc::new(Metrics::default())).expect("two"),
    );
    let c = fixed_clock(at(RECEIVED));
    let (a, b) = tokio::join!(one.drain(&c, u64::MAX), two.drain(&c, u64::MAX));
    let (a, b) = (a.expect("one"), b.expect("two"));
    assert_eq!(a.delivered + b.delivered, N as u64, "{a:?} {b:?}");
    assert!(
        a.delivered > 0 && b.delivered > 0,
        "both took a share: {a:?} {b:?}"
    );
    let env = peer.envelopes();
    assert_eq!(env.len(), N);
    let mut rcpts: Vec<String> = env
        .iter()
        .map(|e| e["rcpt_tos"][0].as_str().unwrap_or("").to_owned())
        .collect();
    rcpts.sort();
    rcpts.dedup();
    assert_eq!(rcpts.len(), N, "no citizen got the receipt twice");
    db.finish().await;
}

/// `messo send-test` sends one real message through the configured channel and says what
/// happened; a refusal exits non-zero with the server's reason.
#[test]
fn send_test_reports_what_the_server_answered() {
    let peer = SmtpPeer::start(&tmp("peer"), 0, &["--fail-rcpt", "nobody@example.it:550"]);
    let send_test = |to: &str| {
        run(
            messo()
                .args(["send-test", "--channel", "email", "--to", to])
                .env("MESSO_CHANNELS__EMAIL", "smtp")
                .env("MESSO_SMTP__HOST", "127.0.0.1")
                .env("MESSO_SMTP__PORT", peer.port.to_string())
                .env("MESSO_SMTP__SECURITY", "plain"),
            None,
        )
    };
    let ok = send_test("anna@example.it");
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{out}");
    assert!(
        out.contains("a***@example.it via smtp: delivered [250]"),
        "{out}"
    );
    let env = peer.envelopes();
    assert_eq!(env[0]["rcpt_tos"], json!(["anna@example.it"]));
    let text = mail::part(&peer.message(1), "text/plain").expect("text");
    assert!(text.contains("Messaggio di prova"), "{text}");
    let refused = send_test("nobody@example.it");
    let out = String::from_utf8_lossy(&refused.stdout);
    assert!(!refused.status.success());
    assert!(out.contains("permanent [550]"), "{out}");
}

/// postfix's smtp-sink as a faulty server: `-q .` drops the connection at the end of DATA
/// without an answer (the message may or may not have been taken: uncertain, resent later with
/// the same Message-ID); `-Q MAIL` answers 421 and hangs up before anything was accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_told_apart_by_stage() {
    let dir = tmp("sink");
    let (after_data, port) = smtp_sink(&dir, &["-q", "."]);
    let w = world(&config(port, &[])).await;
    let t = owe_receipt(&w, "Q-1", "a@example.it").await;
    let r = w
        .dispatcher
        .drain(&fixed_clock(at(RECEIVED)), u64::MAX)
        .await
        .expect("drain");
    assert_eq!((r.delivered, r.failed), (0, 1), "{r:?}");
    let id = outbox_id(&w, t, "ricevuta", "email").await;
    let a = w.store.outbox().attempts_of(id).await.expect("attempts");
    assert_eq!(a[0].outcome, "uncertain", "{a:?}");
    drop(after_data);

    let (at_mail, port) = smtp_sink(&dir, &["-Q", "MAIL"]);
    let w = world(&config(port, &[])).await;
    let t = owe_receipt(&w, "Q-2", "b@example.it").await;
    let r = w
        .dispatcher
        .drain(&fixed_clock(at(RECEIVED)), u64::MAX)
        .await
        .expect("drain");
    assert_eq!((r.delivered, r.failed), (0, 1), "{r:?}");
    let id = outbox_id(&w, t, "ricevuta", "email").await;
    let a = w.store.outbox().attempts_of(id).await.expect("attempts");
    assert_eq!(
        (a[0].outcome.as_str(), a[0].code.as_deref()),
        ("transient", Some("421")),
        "{a:?}"
    );
    let s = w
        .store
        .outbox()
        .delivery_state(id)
        .await
        .expect("state")
        .expect("row");
    assert_eq!((s.state.as_str(), s.resent), ("retry", 0));
    drop(at_mail);
}

/// A citizen with a PEC address gets the message through the PEC account; the receipts that
/// come back (piped into `messo pec-receipt`) are recorded once each, and an error receipt makes
/// the message dead and owes the e-mail instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pec_goes_through_its_account_and_its_receipts_are_recorded() {
    let peer = SmtpPeer::start(&tmp("peer"), 0, &[]);
    let pec_env = [
        ("MESSO_CHANNELS__PEC", "pec"),
        ("MESSO_PEC__HOST", "127.0.0.1"),
        ("MESSO_PEC__SECURITY", "plain"),
        ("MESSO_PEC__SENDER", "urp@pec.comune.roma.it"),
    ];
    let port = peer.port.to_string();
    let mut env: Vec<(&str, &str)> = pec_env.to_vec();
    env.push(("MESSO_PEC__PORT", &port));
    // A PEC that fails falls back to ordinary e-mail, then the office.
    env.push(("MESSO_DELIVERY__FALLBACK", r#"["pec", "email", "office"]"#));
    let cfg = config(peer.port, &env);
    let db = TestDb::with_config(Backend::Sqlite, &cfg).await;
    let (store, url) = (db.store.clone(), db.url.clone());
    let w = World {
        dispatcher: Arc::new(
            Dispatcher::from_config(store.clone(), &cfg, Arc::new(Metrics::default()))
                .expect("dispatcher"),
        ),
        engine: Engine::new(store.clone(), cfg.notify.clone()),
        store,
    };
    let mut ids = Vec::new();
    for n in ["PEC-1", "PEC-2"] {
        let t = NewTicket::from_json(&json!({
            "number": n,
            "office": "protocollo",
            "priority": "normale",
            "subject": "Accesso agli atti",
            "received_at": RECEIVED,
            "citizen": {"pec": "mario.rossi@pec.example.it", "email": "mario@example.it", "preferred_channel": "pec"}
        }))
        .expect("ticket");
        let id = w
            .store
            .tickets()
            .create_ticket(&t, Source::Api, at(RECEIVED))
            .await
            .expect("create")
            .ticket()
            .id;
        w.engine.cycle(at(RECEIVED)).await.expect("engine");
        ids.push((id, outbox_id(&w, id, "ricevuta", "pec").await));
    }
    let r = w
        .dispatcher
        .drain(&fixed_clock(at(RECEIVED)), u64::MAX)
        .await
        .expect("drain");
    assert_eq!(r.delivered, 2, "{r:?}");
    let env = peer.envelopes();
    assert_eq!(env[0]["mail_from"], "urp@pec.comune.roma.it");
    assert_eq!(env[0]["rcpt_tos"], json!(["mario.rossi@pec.example.it"]));
    let sent = peer.message(1);
    let message_id = mail::header(&sent, "Message-ID").expect("Message-ID");
    assert!(message_id.ends_with("@pec.comune.roma.it>"), "{message_id}");

    let pipe = |raw: String| {
        let out = run(
            messo()
                .arg("pec-receipt")
                .env("MESSO_DATABASE__URL", &url)
                .env("MESSO_DELIVERY__FALLBACK", r#"["pec", "email", "office"]"#),
            Some(&raw),
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let receipt = |kind: &str, outbox: i64, ticket: i64| {
        format!(
            "From: posta-certificata@pec.example.it\r\nX-Ricevuta: {kind}\r\n\
             X-Riferimento-Message-ID: <messo.{outbox}.{ticket}@pec.comune.roma.it>\r\n\
             Subject: {}: Richiesta ricevuta\r\n\r\nRicevuta\r\n",
            kind.to_uppercase()
        )
    };
    let (t1, o1) = ids[0];
    let (code, out) = pipe(receipt("accettazione", o1, t1));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("message {o1}: accettazione recorded")),
        "{out}"
    );
    let (_, out) = pipe(receipt("avvenuta-consegna", o1, t1));
    assert!(out.contains("avvenuta-consegna recorded"), "{out}");
    let (code, out) = pipe(receipt("avvenuta-consegna", o1, t1));
    assert_eq!(code, Some(0));
    assert!(out.contains("already recorded"), "{out}");
    let receipts = w.store.outbox().receipts_of(o1).await.expect("receipts");
    assert_eq!(
        receipts
            .iter()
            .map(|r| (r.1.as_str(), r.2.as_str()))
            .collect::<Vec<_>>(),
        [
            ("accettazione", "pending"),
            ("avvenuta-consegna", "delivered")
        ]
    );
    assert_eq!(
        w.store
            .outbox()
            .delivery_state(o1)
            .await
            .expect("s")
            .expect("row")
            .state,
        "delivered"
    );

    // The second one was not delivered by the citizen's PEC server.
    let (t2, o2) = ids[1];
    let (_, out) = pipe(receipt("errore-consegna", o2, t2));
    assert!(out.contains("not delivered, email owed instead"), "{out}");
    let s = w
        .store
        .outbox()
        .delivery_state(o2)
        .await
        .expect("s")
        .expect("row");
    assert_eq!(s.state, "dead");
    let email = outbox_id(&w, t2, "ricevuta", "email").await;
    let e = w
        .store
        .outbox()
        .delivery_state(email)
        .await
        .expect("s")
        .expect("row");
    assert_eq!(
        (e.state.as_str(), e.address.as_str()),
        ("pending", "mario@example.it")
    );
    // Mail that is not a receipt, or not about our messages, is ignored without error.
    let (code, out) = pipe("Subject: ciao\r\n\r\nciao\r\n".to_owned());
    assert_eq!(code, Some(0));
    assert!(out.starts_with("ignored: no X-Ricevuta"), "{out}");
}
