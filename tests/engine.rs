//! The engine end to end on SQLite and on PostgreSQL with an injected clock: a ticket's life
//! from receipt to closure, driven at exactly the instants the store asks for, and the outbox
//! holding exactly the notices owed — no more after any number of extra passes, and none lost
//! or doubled when a pass dies before it commits.

mod common;

use std::sync::atomic::Ordering;

use common::{Backend, TestDb, fresh_dir, mail, on_both, ts};
use messo::config::{BUILTIN_TOML, Config};
use messo::daemon::Engine;
use messo::store::{OutboxError, Store};
use messo::ticket::{NewEvent, NewTicket, Source};
use messo::time::Timestamp;
use serde_json::json;

fn config() -> Config {
    Config::from_toml(BUILTIN_TOML, "built-in", Vec::new()).expect("config")
}

/// A migrated store with the built-in configuration registered.
async fn start(backend: Backend) -> TestDb {
    TestDb::with_config(backend, &config()).await
}

on_both!(start;
    a_tickets_life_owes_exactly_these_notices,
    a_pass_that_dies_before_commit_owes_nothing_twice,
    reminders_keep_local_time_across_dst_and_sms_waits_for_its_window,
    an_expired_suspension_is_reported_or_closes_the_ticket,
);

fn ticket(number: &str) -> NewTicket {
    NewTicket::from_json(&json!({
        "number": number,
        "office": "anagrafe",
        "priority": "urgente",
        "subject": "Cambio di residenza",
        "received_at": "2026-03-02T10:15:00+01:00",
        "citizen": {"email": "anna.bianchi@example.it", "mobile": "+393331112222"}
    }))
    .expect("ticket")
}

async fn event(store: &Store, number: &str, v: serde_json::Value) {
    let e = NewEvent::from_json(&v).expect("event");
    let at = e.at;
    store
        .tickets()
        .append_event(number, &e, None, Source::Api, at)
        .await
        .expect("append");
}

/// Runs the engine at every instant the store asks for, up to `until` (what the daemon's exact
/// timer does), plus an extra pass at each instant.
async fn drive(store: &Store, engine: &Engine, until: Timestamp) {
    while let Some(t) = store.outbox().earliest_check().await.expect("earliest") {
        if t > until {
            break;
        }
        engine.cycle(t).await.expect("cycle");
        engine.cycle(t).await.expect("second pass owes nothing new");
    }
}

async fn a_tickets_life_owes_exactly_these_notices(store: &Store) {
    let engine = Engine::new(store.clone(), config().notify);
    let n = "E2E-1";
    let rec = store
        .tickets()
        .create_ticket(&ticket(n), Source::Api, ts("2026-03-02T10:15:00+01:00"))
        .await
        .expect("create");
    let id = rec.ticket().id;
    drive(store, &engine, ts("2026-03-02T10:15:00+01:00")).await;

    event(store, n, json!({"kind": "step_changed", "at": "2026-03-02T10:30:00+01:00", "step": "istruttoria", "text": "La pratica è assegnata all'ufficio anagrafe."})).await;
    drive(store, &engine, ts("2026-03-02T10:30:00+01:00")).await;
    event(store, n, json!({"kind": "integration_requested", "at": "2026-03-02T11:00:00+01:00", "missing": "la copia del documento d'identità"})).await;
    drive(store, &engine, ts("2026-03-04T09:29:59+01:00")).await;
    let t = store
        .tickets()
        .ticket(n)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(t.sla.state, "paused");

    event(store, n, json!({"kind": "integration_received", "at": "2026-03-04T09:30:00+01:00", "channel": "email"})).await;
    // Resumed: due Wednesday 16:45; warning at 14:45 (6 h of 8 counted); breach at 16:45.
    drive(store, &engine, ts("2026-03-05T09:59:59+01:00")).await;
    event(store, n, json!({"kind": "closed", "at": "2026-03-05T10:00:00+01:00", "text": "Il cambio di residenza è registrato."})).await;
    drive(store, &engine, ts("2026-03-31T00:00:00+02:00")).await;

    let rows = store.outbox().outbox_of(id).await.expect("outbox");
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|(kind, _key, recipient, channel, _)| {
            (kind.clone(), recipient.clone(), channel.clone())
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("ricevuta", "citizen", "email"),
        ("avanzamento", "citizen", "email"),
        ("richiesta_integrazione", "citizen", "email"),
        ("ripresa", "citizen", "email"),
        ("preavviso_scadenza", "office", "email"),
        ("violazione", "citizen", "email"),
        ("violazione", "office", "email"),
        ("violazione", "supervisor", "email"),
        ("chiusura", "citizen", "email"),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    .collect();
    assert_eq!(got, expected);
    // The breach was decided at its instant, not at a later poll.
    let breach_key = &rows[5].1;
    assert_eq!(
        breach_key,
        &format!("due:{}", ts("2026-03-04T16:45:00+01:00").0)
    );

    // Delivered as files: one per row, with the right words.
    let dir = fresh_dir("outbox");
    let report = messo::delivery::file::dispatch_files(
        store,
        &dir,
        "urp@comune.roma.it",
        "Roma Capitale",
        ts("2026-03-31T00:00:00+02:00"),
    )
    .await
    .expect("dispatch");
    assert_eq!(report.delivered, 9);
    let again = messo::delivery::file::dispatch_files(
        store,
        &dir,
        "urp@comune.roma.it",
        "Roma Capitale",
        ts("2026-03-31T00:00:01+02:00"),
    )
    .await
    .expect("dispatch");
    assert_eq!(again.delivered, 0, "nothing is sent twice");
    // Every real payload the engine wrote fits its default template: none needed the emergency
    // wording, and each row keeps the words and the version it went out with.
    let rendered: Vec<String> =
        sqlx::query("SELECT rendered FROM outbox WHERE ticket_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(store.pool())
            .await
            .expect("rendered")
            .iter()
            .map(|r| sqlx::Row::get::<Option<String>, _>(r, 0).unwrap_or_default())
            .collect();
    assert_eq!(rendered.len(), 9);
    for r in &rendered {
        let v: serde_json::Value = serde_json::from_str(r).expect("rendered JSON");
        assert_eq!(v["version"], 0, "{r}");
        assert!(!r.contains("{{"), "{r}");
    }
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    files.sort();
    assert_eq!(files.len(), 9, "{files:?}");
    let eml = std::fs::read_to_string(dir.join(&files[0])).expect("receipt");
    assert!(files[0].ends_with("-ricevuta-citizen.eml"), "{}", files[0]);
    assert_eq!(
        mail::header(&eml, "To").as_deref(),
        Some("anna.bianchi@example.it")
    );
    let receipt = mail::part(&eml, "text/plain").expect("a text part");
    assert!(mail::part(&eml, "text/html").is_some(), "{eml}");
    assert!(receipt.contains("il numero E2E-1"), "{receipt}");
    assert!(
        receipt.contains("entro martedì 3 marzo 2026 alle ore 10:15"),
        "{receipt}"
    );
    let breach = mail::part(
        &std::fs::read_to_string(dir.join(&files[5])).expect("breach"),
        "text/plain",
    )
    .expect("a text part");
    assert!(breach.contains("ci scusiamo"), "{breach}");
    let _ = std::fs::remove_dir_all(&dir);

    // A year on, housekeeping removes the personal content but keeps the rows (their unique
    // keys are what stop a message from being owed twice).
    let later = ts("2027-04-01T00:00:00+02:00");
    let (redacted, _, _) = store
        .outbox()
        .housekeeping(later.plus(-365 * 86_400 + 86_400), later)
        .await
        .expect("housekeeping");
    assert_eq!(redacted, 9);
    assert_eq!(store.outbox().outbox_of(id).await.expect("outbox").len(), 9);
}

async fn a_pass_that_dies_before_commit_owes_nothing_twice(store: &Store) {
    let engine = Engine::new(store.clone(), config().notify);
    let now = ts("2026-03-02T10:15:00+01:00");
    for n in ["K-1", "K-2", "K-3"] {
        store
            .tickets()
            .create_ticket(&ticket(n), Source::Api, now)
            .await
            .expect("create");
    }
    // A pass that decides the first two tickets (their rows are written inside its
    // transaction) and then dies before its commit.
    let calls = std::sync::atomic::AtomicU32::new(0);
    let died = store
        .outbox()
        .engine_cycle(now, 100, |input| {
            if calls.fetch_add(1, Ordering::SeqCst) == 2 {
                return Err(OutboxError::Corrupt("simulated crash before commit".into()));
            }
            engine.decide(input, now)
        })
        .await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(died.is_err());
    let owed: usize = {
        let mut total = 0;
        for n in ["K-1", "K-2", "K-3"] {
            let t = store
                .tickets()
                .ticket(n)
                .await
                .expect("get")
                .expect("exists");
            total += store.outbox().outbox_of(t.id).await.expect("outbox").len();
        }
        total
    };
    assert_eq!(owed, 0, "nothing from the dead pass survives");
    // The next pass owes everything once; more passes add nothing.
    let r = engine.cycle(now).await.expect("cycle");
    assert_eq!((r.tickets, r.owed), (3, 3));
    let r = engine.cycle(now).await.expect("cycle");
    assert_eq!(r.owed, 0);
    for n in ["K-1", "K-2", "K-3"] {
        let t = store
            .tickets()
            .ticket(n)
            .await
            .expect("get")
            .expect("exists");
        let rows = store.outbox().outbox_of(t.id).await.expect("outbox");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, "ricevuta");
    }
}

async fn reminders_keep_local_time_across_dst_and_sms_waits_for_its_window(store: &Store) {
    let engine = Engine::new(store.clone(), config().notify);
    let sms_only = NewTicket::from_json(&json!({
        "number": "DST-1",
        "office": "tributi",
        "priority": "bassa",
        "subject": "Rimborso TARI",
        "received_at": "2026-03-26T19:30:00+01:00",
        "citizen": {"mobile": "+393331112222", "preferred_channel": "sms"}
    }))
    .expect("ticket");
    let rec = store
        .tickets()
        .create_ticket(&sms_only, Source::Api, ts("2026-03-26T19:30:00+01:00"))
        .await
        .expect("create");
    engine
        .cycle(ts("2026-03-26T19:30:00+01:00"))
        .await
        .expect("cycle");
    // Integration requested on Friday 27 March at 10:00 (CET); the clocks go forward on
    // Sunday 29 March. Five working days later is Friday 3 April at 10:00 local time (CEST).
    event(store, "DST-1", json!({"kind": "integration_requested", "at": "2026-03-27T10:00:00+01:00", "missing": "l'IBAN"})).await;
    engine
        .cycle(ts("2026-03-27T10:00:00+01:00"))
        .await
        .expect("cycle");
    let next = store.outbox().earliest_check().await.expect("earliest");
    assert_eq!(next, Some(ts("2026-04-03T10:00:00+02:00")));
    engine
        .cycle(ts("2026-04-03T10:00:00+02:00"))
        .await
        .expect("cycle");

    let dir = fresh_dir("sms");
    // The receipt was decided at 19:30, inside the 08:00-20:00 SMS window: it may go at once.
    // Everything owed is an SMS; nothing may go out on the Sunday.
    let rows = store
        .outbox()
        .outbox_of(rec.ticket().id)
        .await
        .expect("outbox");
    let kinds: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ricevuta",
            "richiesta_integrazione",
            "sollecito_integrazione"
        ]
    );
    assert!(rows.iter().all(|r| r.3 == "sms"));
    let sent = messo::delivery::file::dispatch_files(
        store,
        &dir,
        "urp@comune.roma.it",
        "Roma Capitale",
        ts("2026-04-03T10:00:00+02:00"),
    )
    .await
    .expect("dispatch");
    assert_eq!(sent.delivered, 3);
    let _ = std::fs::remove_dir_all(&dir);

    // A citizen who opted out of the only channel they gave: the office is told instead.
    let unreachable = NewTicket::from_json(&json!({
        "number": "DST-3",
        "office": "tributi",
        "priority": "bassa",
        "subject": "Rimborso",
        "received_at": "2026-04-07T10:00:00+02:00",
        "citizen": {"mobile": "+393331112224", "opt_out": ["sms"]}
    }))
    .expect("ticket");
    let rec = store
        .tickets()
        .create_ticket(&unreachable, Source::Api, ts("2026-04-07T10:00:00+02:00"))
        .await
        .expect("create");
    engine
        .cycle(ts("2026-04-07T10:00:00+02:00"))
        .await
        .expect("cycle");
    let rows = store
        .outbox()
        .outbox_of(rec.ticket().id)
        .await
        .expect("outbox");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str(), rows[0].2.as_str()),
        ("cittadino_irraggiungibile", "ricevuta:receipt", "office")
    );
    let told = messo::delivery::file::dispatch_files(
        store,
        &dir,
        "urp@comune.roma.it",
        "Roma Capitale",
        ts("2026-04-07T10:00:00+02:00"),
    )
    .await
    .expect("dispatch");
    assert_eq!(told.delivered, 1);

    // An SMS decided at 21:00 waits for 08:00 the next morning.
    let late = NewTicket::from_json(&json!({
        "number": "DST-2",
        "office": "tributi",
        "priority": "bassa",
        "subject": "Rimborso",
        "received_at": "2026-04-07T21:00:00+02:00",
        "citizen": {"mobile": "+393331112223"}
    }))
    .expect("ticket");
    store
        .tickets()
        .create_ticket(&late, Source::Api, ts("2026-04-07T21:00:00+02:00"))
        .await
        .expect("create");
    engine
        .cycle(ts("2026-04-07T21:00:00+02:00"))
        .await
        .expect("cycle");
    let held = messo::delivery::file::dispatch_files(
        store,
        &dir,
        "urp@comune.roma.it",
        "Roma Capitale",
        ts("2026-04-08T07:59:59+02:00"),
    )
    .await
    .expect("dispatch");
    assert_eq!(held.delivered, 0, "no SMS before 08:00");
    let morning = messo::delivery::file::dispatch_files(
        store,
        &dir,
        "urp@comune.roma.it",
        "Roma Capitale",
        ts("2026-04-08T08:00:00+02:00"),
    )
    .await
    .expect("dispatch");
    assert_eq!(morning.delivered, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two daemons on one PostgreSQL: their engines and dispatchers run at the same time over the
/// same tickets; every notice is owed once and delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_daemons_on_postgres_never_double_a_message() {
    let db = start(Backend::Postgres).await;
    let a = db.store.clone();
    let b = db.second_pool().await;
    b.register_config(&config(), ts("2026-01-01T00:00:00Z"))
        .await
        .expect("register");
    let now = ts("2026-03-02T10:15:00+01:00");
    for i in 0..60 {
        a.tickets()
            .create_ticket(&ticket(&format!("T2-{i}")), Source::Api, now)
            .await
            .expect("create");
    }
    let dir = fresh_dir("two");
    let mut tasks = Vec::new();
    for store in [a.clone(), b.clone()] {
        let dir = dir.clone();
        tasks.push(tokio::spawn(async move {
            let engine = Engine::new(store.clone(), config().notify);
            let mut delivered = 0;
            for _ in 0..5 {
                engine.cycle(now).await.expect("cycle");
                delivered += messo::delivery::file::dispatch_files(
                    &store,
                    &dir,
                    "urp@comune.roma.it",
                    "Roma Capitale",
                    now,
                )
                .await
                .expect("dispatch")
                .delivered;
            }
            delivered
        }));
    }
    let mut delivered = 0;
    for t in tasks {
        delivered += t.await.expect("daemon");
    }
    assert_eq!(
        delivered, 60,
        "each receipt delivered exactly once between the two"
    );
    let depth = a.monitor().outbox_depth().await.expect("depth");
    assert_eq!(depth, vec![("delivered".to_owned(), 60)]);
    let files = std::fs::read_dir(&dir).expect("dir").count();
    assert_eq!(files, 60);
    let _ = std::fs::remove_dir_all(&dir);
    db.finish().await;
}

async fn an_expired_suspension_is_reported_or_closes_the_ticket(store: &Store) {
    let closing = Config::from_toml(
        BUILTIN_TOML,
        "built-in",
        vec![(
            "MESSO_NOTIFY__SUSPENSION_CAP_OUTCOME".to_owned(),
            "close".to_owned(),
        )],
    )
    .expect("config");
    for (number, notify, closes) in [
        ("CAP-1", config().notify, false),
        ("CAP-2", closing.notify, true),
    ] {
        let engine = Engine::new(store.clone(), notify);
        store
            .tickets()
            .create_ticket(
                &ticket(number),
                Source::Api,
                ts("2026-03-02T10:15:00+01:00"),
            )
            .await
            .expect("create");
        event(store, number, json!({"kind": "integration_requested", "at": "2026-03-02T11:00:00+01:00", "missing": "la delega firmata"})).await;
        drive(store, &engine, ts("2026-04-30T00:00:00+02:00")).await;
        let t = store
            .tickets()
            .ticket(number)
            .await
            .expect("get")
            .expect("exists");
        let kinds: Vec<String> = store
            .outbox()
            .outbox_of(t.id)
            .await
            .expect("outbox")
            .into_iter()
            .map(|r| r.0)
            .collect();
        // Reminders after 5 and 10 working days, then the 30-day cap.
        let mut expected = vec![
            "ricevuta",
            "richiesta_integrazione",
            "sollecito_integrazione",
            "sollecito_integrazione",
            "sospensione_scaduta",
        ];
        if closes {
            // The last warning three working days before the cap (Friday 27 March), before
            // the office's alert at the cap, then the closure.
            expected.insert(4, "ultimo_avviso");
            expected.push("chiusura");
            assert_eq!(t.sla.state, "closed");
            assert_eq!(t.closed_at, Some(ts("2026-04-01T12:00:00+02:00")));
            let events = store.tickets().events(t.id).await.expect("events");
            let last = events.last().expect("closed");
            assert_eq!(
                (last.kind.as_str(), last.source.as_str()),
                ("closed", "system")
            );
        } else {
            assert_eq!(t.sla.state, "paused");
        }
        assert_eq!(kinds, expected, "{number}");
        // Each of these real payloads renders with its default template, in both channels the
        // citizen has (no emergency wording).
        let dir = fresh_dir("cap");
        messo::delivery::file::dispatch_files(
            store,
            &dir,
            "urp@comune.roma.it",
            "Roma Capitale",
            ts("2026-04-30T00:00:00+02:00"),
        )
        .await
        .expect("dispatch");
        let versions: Vec<String> =
            sqlx::query("SELECT rendered FROM outbox WHERE ticket_id = $1 ORDER BY id")
                .bind(t.id)
                .fetch_all(store.pool())
                .await
                .expect("rendered")
                .iter()
                .map(|r| sqlx::Row::get::<Option<String>, _>(r, 0).unwrap_or_default())
                .collect();
        assert_eq!(versions.len(), expected.len());
        for r in &versions {
            assert!(r.contains("\"version\":0"), "{number}: {r}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
