//! The app IO channel (issue 21) against a stand-in of the IO Services API over real HTTP
//! (tests/common/io.rs): a citizen with IO gets every notice of a ticket there, the
//! integration request with its reply-by date as the message's due date; IO off or failing
//! falls back to the citizen's written route; a lost answer is never submitted twice; a
//! message IO refuses after accepting it is replaced; an integration request not read in time
//! also goes by the written route, once (SQLite and PostgreSQL).

mod common;

use std::sync::Arc;

use common::db::count;
use common::io::{Citizen, Fault, IoStub, KEY};
use common::{Backend, TestDb, fixed_clock, on_both, ts as at};
use messo::config::{BUILTIN_TOML, Config};
use messo::daemon::Engine;
use messo::delivery::dispatch::Dispatcher;
use messo::delivery::io::{IoClient, check_messages};
use messo::metrics::Metrics;
use messo::ticket::{NewEvent, NewTicket, Source};
use messo::time::Timestamp;
use serde_json::{Value, json};

const RECEIVED: &str = "2026-03-02T10:15:00+01:00";
const CF: &str = "RSSMRA85T10A562S";

fn io_toml(base_url: &str, timeout_s: u32) -> String {
    format!(
        "\n[io]\nenabled = true\nbase_url = \"{base_url}\"\napi_key = \"{KEY}\"\ntimeout_s = {timeout_s}\n"
    )
}

fn config(base_url: &str, timeout_s: u32) -> Config {
    let text = format!("{BUILTIN_TOML}{}", io_toml(base_url, timeout_s));
    Config::from_toml(&text, "test", Vec::new()).unwrap_or_else(|e| panic!("config: {e}"))
}

struct World {
    db: TestDb,
    stub: IoStub,
    config: Config,
    engine: Engine,
    dispatcher: Arc<Dispatcher>,
}

async fn start(backend: Backend) -> World {
    let (stub, url) = IoStub::start().await;
    let mut config = config(&url, 1);
    let db = TestDb::open(backend).await;
    config.channels.file_dir = db.dir.join("outbox");
    db.register(&config).await;
    World {
        engine: Engine::new(db.store.clone(), config.notify.clone()),
        dispatcher: Arc::new(
            Dispatcher::from_config(db.store.clone(), &config, Arc::new(Metrics::default()))
                .expect("dispatcher"),
        ),
        db,
        stub,
        config,
    }
}

impl std::ops::Deref for World {
    type Target = TestDb;
    fn deref(&self) -> &TestDb {
        &self.db
    }
}

impl World {
    async fn finish(self) {
        self.db.finish().await;
    }

    async fn ticket(&self, number: &str, cf: &str) {
        let t = NewTicket::from_json(&json!({
            "number": number,
            "office": "anagrafe",
            "priority": "normale",
            "subject": "Cambio di residenza",
            "received_at": RECEIVED,
            "citizen": {"email": "anna.bianchi@example.it", "mobile": "+393331112222",
                        "fiscal_code": cf, "preferred_channel": "sms"}
        }))
        .expect("ticket");
        self.store
            .tickets()
            .create_ticket(&t, Source::Api, at(RECEIVED))
            .await
            .expect("create");
    }

    async fn event(&self, number: &str, v: Value) -> Timestamp {
        let e = NewEvent::from_json(&v).expect("event");
        let t = e.at;
        self.store
            .tickets()
            .append_event(number, &e, None, Source::Api, t)
            .await
            .expect("append");
        t
    }

    /// The engine, then the dispatcher, at `t`.
    async fn pass(&self, t: Timestamp) {
        self.engine.cycle(t).await.expect("engine");
        self.dispatcher
            .drain(&fixed_clock(t), u64::MAX)
            .await
            .expect("drain");
    }

    async fn check(&self, t: Timestamp) -> messo::delivery::io::IoCheckReport {
        let client = IoClient::new(self.config.io.as_ref().expect("io")).expect("client");
        check_messages(&self.store, &client, &self.config, t)
            .await
            .expect("check")
    }

    /// The citizen's rows of `number` as (kind, channel, state, dedupe key), in order.
    async fn rows(&self, number: &str) -> Vec<(String, String, String, String)> {
        sqlx::query_as(
            "SELECT o.kind, o.channel, o.state, o.dedupe_key FROM outbox o \
             JOIN tickets t ON t.id = o.ticket_id \
             WHERE t.number = $1 AND o.recipient = 'citizen' ORDER BY o.id",
        )
        .bind(number)
        .fetch_all(self.store.pool())
        .await
        .expect("rows")
    }
}

on_both!(start;
    a_citizen_in_io_gets_every_notice_there,
    io_turned_off_or_missing_falls_back_to_the_written_route,
    a_lost_answer_is_never_submitted_twice,
    a_rate_limit_waits_and_sends_once,
    a_message_refused_after_acceptance_is_replaced,
    an_unread_integration_request_also_goes_written_once,
);

async fn a_citizen_in_io_gets_every_notice_there(w: &World) {
    w.stub.allow(CF);
    w.ticket("IO-1", CF).await;
    w.pass(at(RECEIVED)).await;
    let steps = [
        json!({"kind": "step_changed", "at": "2026-03-02T10:30:00+01:00", "step": "istruttoria", "text": "La pratica è assegnata all'ufficio anagrafe."}),
        json!({"kind": "integration_requested", "at": "2026-03-02T11:00:00+01:00", "missing": "la copia del documento d'identità"}),
        json!({"kind": "integration_received", "at": "2026-03-03T09:30:00+01:00", "channel": "email"}),
        json!({"kind": "closed", "at": "2026-03-04T10:00:00+01:00", "text": "Il cambio di residenza è registrato."}),
    ];
    for s in steps {
        let t = w.event("IO-1", s).await;
        w.pass(t).await;
    }
    let rows = w.rows("IO-1").await;
    let kinds: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ricevuta",
            "avanzamento",
            "richiesta_integrazione",
            "ripresa",
            "chiusura"
        ],
        "{rows:?}"
    );
    assert!(
        rows.iter().all(|r| r.1 == "io" && r.2 == "delivered"),
        "every notice went to IO: {rows:?}"
    );
    let got = w.stub.messages_to(CF);
    assert_eq!(got.len(), 5, "one message per notice");
    for m in &got {
        assert_eq!(m["feature_level_type"], "STANDARD");
        assert_eq!(m["time_to_live"], 604_800);
        let subject = m["content"]["subject"].as_str().expect("subject");
        assert!(subject.contains("IO-1"), "{subject}");
    }
    // Only the integration request has a due date: the reply-by date (the suspension cap,
    // 30 days after the request), in UTC.
    let due: Vec<&Value> = got
        .iter()
        .filter_map(|m| m["content"].get("due_date"))
        .collect();
    assert_eq!(due, [&json!("2026-04-01T10:00:00.000Z")]);
    // One profile check: the answer is kept for an hour.
    assert_eq!(w.stub.count("POST", "/profiles"), 1);
    // The status pass reads each message back once: PROCESSED is final.
    let r = w.check(at("2026-03-04T10:05:00+01:00")).await;
    assert_eq!((r.checked, r.processed, r.failed), (5, 5, 0));
    let r = w.check(at("2026-03-04T10:10:00+01:00")).await;
    assert_eq!(r.checked, 0, "nothing is read back twice");
    assert_eq!(w.stub.count("GET", "/messages/"), 5);
}

async fn io_turned_off_or_missing_falls_back_to_the_written_route(w: &World) {
    const OFF: &str = "BNCNNA80A41H501R";
    const NOT_IN_IO: &str = "VRDLGU75C12F205G";
    w.stub
        .with(|i| i.citizens.insert(OFF.to_owned(), Citizen::TurnedOff));
    for (n, cf) in [("IO-OFF", OFF), ("IO-NONE", NOT_IN_IO)] {
        w.ticket(n, cf).await;
    }
    let t = at(RECEIVED);
    w.pass(t).await;
    w.pass(t).await;
    for n in ["IO-OFF", "IO-NONE"] {
        let rows = w.rows(n).await;
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!((rows[0].1.as_str(), rows[0].2.as_str()), ("io", "dead"));
        // The written route: the preferred channel, SMS.
        assert_eq!(
            (rows[1].1.as_str(), rows[1].2.as_str(), rows[1].3.as_str()),
            ("sms", "delivered", "receipt>io"),
            "{rows:?}"
        );
    }
    let error: String = sqlx::query_scalar(
        "SELECT o.last_error FROM outbox o JOIN tickets t ON t.id = o.ticket_id \
         WHERE t.number = 'IO-OFF' AND o.channel = 'io'",
    )
    .fetch_one(w.store.pool())
    .await
    .expect("error");
    assert!(error.contains("turned this service off"), "{error}");
    assert!(w.stub.with(|i| i.messages.is_empty()), "nothing submitted");
}

async fn a_lost_answer_is_never_submitted_twice(w: &World) {
    const LOST: &str = "BNCNNA80A41H501R";
    const FIVE_HUNDRED: &str = "VRDLGU75C12F205G";
    w.stub.with(|i| {
        i.citizens.insert(LOST.to_owned(), Citizen::Allowed);
        i.citizens.insert(FIVE_HUNDRED.to_owned(), Citizen::Allowed);
        // Stored, then the answer comes after the client's one-second timeout.
        i.faults.insert(LOST.to_owned(), Fault::LostAnswer(3));
        i.faults
            .insert(FIVE_HUNDRED.to_owned(), Fault::Status(500, 1));
        // Hangs before storing anything: the client cannot tell the difference.
        i.citizens.insert(CF.to_owned(), Citizen::Allowed);
        i.faults.insert(CF.to_owned(), Fault::Hang(3));
    });
    w.ticket("IO-LOST", LOST).await;
    w.ticket("IO-500", FIVE_HUNDRED).await;
    w.ticket("IO-HANG", CF).await;
    let mut t = at(RECEIVED);
    for _ in 0..4 {
        w.pass(t).await;
        t = t.plus(3600);
    }
    // One submit each, whatever came after.
    assert_eq!(w.stub.count("POST", "/messages"), 3);
    assert_eq!(w.stub.messages_to(LOST).len(), 1, "IO has the lost one");
    for n in ["IO-LOST", "IO-500", "IO-HANG"] {
        let rows = w.rows(n).await;
        assert_eq!(
            rows.len(),
            1,
            "no written copy for a message in doubt: {rows:?}"
        );
        assert_eq!(
            (rows[0].1.as_str(), rows[0].2.as_str()),
            ("io", "uncertain")
        );
    }
    // The office is told of each, once.
    assert_eq!(
        count(
            &w.store,
            "SELECT COUNT(*) FROM outbox WHERE kind = 'esito_incerto' AND recipient = 'office'"
        )
        .await,
        3
    );
}

async fn a_rate_limit_waits_and_sends_once(w: &World) {
    w.stub.with(|i| {
        i.citizens.insert(CF.to_owned(), Citizen::Allowed);
        i.faults.insert(CF.to_owned(), Fault::Status(429, 1));
    });
    w.ticket("IO-429", CF).await;
    let t = at(RECEIVED);
    w.pass(t).await;
    assert!(w.stub.messages_to(CF).is_empty());
    let rows = w.rows("IO-429").await;
    assert_eq!(rows[0].2, "retry", "{rows:?}");
    // After Retry-After (and the breaker's pause) the next pass sends it.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.pass(t.plus(120)).await;
    assert_eq!(w.stub.messages_to(CF).len(), 1);
    assert_eq!(w.rows("IO-429").await[0].2, "delivered");
}

async fn a_message_refused_after_acceptance_is_replaced(w: &World) {
    w.stub.allow(CF);
    w.stub
        .with(|i| i.status.insert(CF.to_owned(), "REJECTED".to_owned()));
    w.ticket("IO-REJ", CF).await;
    let t = at(RECEIVED);
    w.pass(t).await;
    assert_eq!(w.rows("IO-REJ").await[0].2, "delivered");
    // Not read back before it settles.
    assert_eq!(w.check(t.plus(10)).await.checked, 0);
    let r = w.check(t.plus(60)).await;
    assert_eq!((r.checked, r.failed), (1, 1));
    w.pass(t.plus(60)).await;
    let rows = w.rows("IO-REJ").await;
    assert_eq!(
        rows.iter()
            .map(|r| (r.1.as_str(), r.2.as_str()))
            .collect::<Vec<_>>(),
        [("io", "dead"), ("sms", "delivered")],
        "{rows:?}"
    );
    let receipts = w
        .store
        .outbox()
        .receipts_of(count(&w.store, "SELECT MIN(id) FROM outbox").await)
        .await
        .expect("receipts");
    assert_eq!(
        receipts,
        [("io".to_owned(), "rejected".to_owned(), "failed".to_owned())]
    );
}

async fn an_unread_integration_request_also_goes_written_once(w: &World) {
    w.stub.allow(CF);
    w.stub
        .with(|i| i.read_status.insert(CF.to_owned(), "UNREAD".to_owned()));
    w.ticket("IO-UNREAD", CF).await;
    w.pass(at(RECEIVED)).await;
    let asked = w
        .event(
            "IO-UNREAD",
            json!({"kind": "integration_requested", "at": "2026-03-02T11:00:00+01:00", "missing": "la delega firmata"}),
        )
        .await;
    w.pass(asked).await;
    let r = w.check(asked.plus(60)).await;
    assert_eq!(r.processed, 2);
    // 47 hours later: still within its time to be read.
    assert_eq!(w.check(asked.plus(47 * 3600)).await.unread_copies, 0);
    // After 48 hours, the written route gets the integration request too; the receipt (a
    // notice IO replaces) gets no copy.
    let r = w.check(asked.plus(49 * 3600)).await;
    assert_eq!(r.unread_copies, 1);
    assert_eq!(w.check(asked.plus(50 * 3600)).await.checked, 0, "once");
    w.pass(asked.plus(49 * 3600)).await;
    let rows = w.rows("IO-UNREAD").await;
    let written: Vec<_> = rows.iter().filter(|r| r.1 != "io").collect();
    assert_eq!(written.len(), 1, "{rows:?}");
    assert_eq!(written[0].0, "richiesta_integrazione");
    assert_eq!(written[0].1, "sms");
    // The SMS window (08:00–20:00) holds it until the morning when 49 h falls at night.
    assert!(matches!(written[0].2.as_str(), "delivered" | "pending"));
}

#[test]
fn check_config_names_the_io_keys() {
    let keys = |extra: &str| -> Vec<String> {
        match Config::from_toml(&format!("{BUILTIN_TOML}\n{extra}"), "test", Vec::new()) {
            Ok(_) => Vec::new(),
            Err(e) => match e {
                messo::config::ConfigError::Invalid { problems, .. } => {
                    problems.into_iter().map(|p| p.key).collect()
                }
                other => panic!("{other}"),
            },
        }
    };
    assert_eq!(keys("[io]\nenabled = true\n"), ["io.api_key"]);
    assert_eq!(
        keys(&format!(
            "[io]\nenabled = true\napi_key = \"{KEY}\"\nkinds = [\"ricevuta\", \"aiuto_sms\"]\n"
        )),
        ["io.kinds[1]"]
    );
    assert_eq!(
        keys(&format!(
            "[io]\nenabled = true\napi_key = \"{KEY}\"\nfeature_level = \"GOLD\"\ntime_to_live_s = 60\n"
        )),
        ["io.feature_level", "io.time_to_live_s"]
    );
    // Off by default: nothing goes to IO.
    let c = Config::from_toml(BUILTIN_TOML, "test", Vec::new()).expect("config");
    assert!(c.io.is_none());
    assert!(c.notify.routing.io_kinds.is_empty());
}

#[test]
fn the_key_comes_from_a_credential_file() {
    let dir = common::fresh_dir("io-key");
    let file = dir.join("io-key");
    std::fs::write(&file, format!("{KEY}\n")).expect("write");
    let c = Config::from_toml(
        &format!("{BUILTIN_TOML}\n[io]\nenabled = true\n"),
        "test",
        vec![(
            "MESSO_IO__API_KEY_FILE".to_owned(),
            file.display().to_string(),
        )],
    )
    .expect("config");
    let io = c.io.expect("io");
    assert_eq!(io.api_key, KEY);
    assert!(!format!("{io:?}").contains(KEY), "the key is never shown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_sends_one_io_message_and_explains_a_refusal() {
    let (stub, url) = IoStub::start().await;
    stub.allow(CF);
    let run = |to: &'static str| {
        let url = url.clone();
        std::thread::spawn(move || {
            common::process::run(
                common::process::messo()
                    .args(["send-test", "--channel", "io", "--to", to])
                    .env("MESSO_IO__ENABLED", "true")
                    .env("MESSO_IO__BASE_URL", url)
                    .env("MESSO_IO__API_KEY", KEY),
                None,
            )
        })
        .join()
        .expect("thread")
    };
    let ok = run(CF);
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(out.contains("delivered [201]"), "{out}");
    let sent = stub.messages_to(CF);
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0]["content"]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("prova")),
        "{sent:?}"
    );
    // A citizen not in IO: refused, with the reason, and nothing submitted.
    let missing = run("BNCNNA80A41H501R");
    let out = String::from_utf8_lossy(&missing.stdout);
    assert!(!missing.status.success());
    assert!(out.contains("no IO profile"), "{out}");
    assert_eq!(stub.count("POST", "/messages"), 1);
}
