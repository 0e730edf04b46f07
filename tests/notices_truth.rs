//! Every notice tells the truth (issue 20): a change of the expected date is told once, with the
//! old and the new date and why; a change that does not move it owes nothing; a resumption says
//! the new date; an automatic closure is announced by a last warning and explained in the
//! citizen's language; the breach notice gives the date the office set. On SQLite and
//! PostgreSQL, with the engine driven at the instants the store asks for.
//!
//! Then the language test: every citizen kind the engine produced here, with its real payload,
//! rendered on every channel in both languages, must be the template's own words, fully filled,
//! and free of the other language's words.

mod common;

use common::{Backend, TestDb, on_both, ts};
use messo::config::{BUILTIN_TOML, Config};
use messo::daemon::Engine;
use messo::domain::{Audience, Channel, Kind, Lang};
use messo::store::Store;
use messo::templates::{Catalog, Settings, Templates};
use messo::ticket::{NewEvent, NewTicket, Source};
use messo::time::Timestamp;
use serde_json::{Value, json};

fn config(env: &[(&str, &str)]) -> Config {
    Config::from_toml(
        BUILTIN_TOML,
        "built-in",
        env.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<(String, String)>>(),
    )
    .expect("config")
}

async fn start(backend: Backend) -> TestDb {
    TestDb::with_config(backend, &config(&[])).await
}

on_both!(start;
    each_date_moving_event_owes_one_notice_with_both_dates,
    changes_made_together_make_one_notice_and_no_move_owes_nothing,
    a_reopening_and_a_resumption_tell_the_new_date,
    the_office_s_new_date_reaches_the_citizen_and_the_breach_notice,
    an_automatic_closure_is_warned_and_explained,
    every_notice_renders_in_one_language_with_real_payloads,
);

/// Received Monday 2 March 2026 10:15 (Rome), Normale: 5 working days, due Monday 9 at 10:15.
fn ticket(number: &str, priority: &str) -> NewTicket {
    NewTicket::from_json(&json!({
        "number": number,
        "office": "anagrafe",
        "priority": priority,
        "subject": "TARI 2025",
        "received_at": "2026-03-02T10:15:00+01:00",
        "citizen": {"email": "anna.bianchi@example.it", "language": "en"}
    }))
    .expect("ticket")
}

async fn create(store: &Store, number: &str, priority: &str) -> i64 {
    store
        .tickets()
        .create_ticket(
            &ticket(number, priority),
            Source::Api,
            ts("2026-03-02T10:15:00+01:00"),
        )
        .await
        .expect("create")
        .ticket()
        .id
}

async fn event(store: &Store, number: &str, v: Value) {
    let e = NewEvent::from_json(&v).expect("event");
    let at = e.at;
    store
        .tickets()
        .append_event(number, &e, None, Source::Api, at)
        .await
        .expect("append");
}

/// Runs the engine at every instant the store asks for, up to `until`, twice each.
async fn drive(store: &Store, engine: &Engine, until: Timestamp) {
    while let Some(t) = store.outbox().earliest_check().await.expect("earliest") {
        if t > until {
            break;
        }
        engine.cycle(t).await.expect("cycle");
        engine
            .cycle(t)
            .await
            .expect("a second pass owes nothing new");
    }
    engine.cycle(until).await.expect("cycle at the end");
}

/// The citizen's notices of a ticket: kind and payload, in order.
async fn citizen_notices(store: &Store, id: i64) -> Vec<(String, Value)> {
    sqlx::query(
        "SELECT kind, payload FROM outbox WHERE ticket_id = $1 AND recipient = 'citizen' ORDER BY id",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await
    .expect("outbox")
    .iter()
    .map(|r| {
        let kind: String = sqlx::Row::get(r, 0);
        let payload: String = sqlx::Row::get(r, 1);
        (kind, serde_json::from_str(&payload).expect("a JSON payload"))
    })
    .collect()
}

fn of_kind<'a>(notices: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    notices
        .iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, p)| p)
        .collect()
}

async fn each_date_moving_event_owes_one_notice_with_both_dates(store: &Store) {
    let engine = Engine::new(store.clone(), config(&[]).notify);
    let id = create(store, "DATE-1", "normale").await;
    drive(store, &engine, ts("2026-03-02T10:20:00+01:00")).await;
    // Normale (5 working days) to Urgente (1): due Monday 9 at 10:15 becomes Tuesday 3 at 10:15.
    event(store, "DATE-1", json!({"kind": "priority_changed", "at": "2026-03-02T11:00:00+01:00", "priority": "urgente"})).await;
    // Not told before the changes settle: another change may follow.
    drive(store, &engine, ts("2026-03-02T11:04:00+01:00")).await;
    assert!(of_kind(&citizen_notices(store, id).await, "cambio_data").is_empty());
    drive(store, &engine, ts("2026-03-02T11:06:00+01:00")).await;
    let notices = citizen_notices(store, id).await;
    let receipt = of_kind(&notices, "ricevuta");
    // The receipt tells the date of the request as it arrived.
    assert_eq!(receipt[0]["due_at"], "2026-03-09T10:15:00+01:00");
    let changes = of_kind(&notices, "cambio_data");
    assert_eq!(changes.len(), 1, "{notices:?}");
    assert_eq!(changes[0]["due_before"], "2026-03-09T10:15:00+01:00");
    assert_eq!(changes[0]["due_at"], "2026-03-03T10:15:00+01:00");
    assert_eq!(changes[0]["later"], false);
    assert_eq!(changes[0]["why"], json!({"priority": true}));

    // A category change that moves the date: to on-site assistance (7 calendar days).
    event(store, "DATE-1", json!({"kind": "category_changed", "at": "2026-03-02T12:00:00+01:00", "category": "in_loco"})).await;
    drive(store, &engine, ts("2026-03-02T12:10:00+01:00")).await;
    let notices = citizen_notices(store, id).await;
    let changes = of_kind(&notices, "cambio_data");
    assert_eq!(changes.len(), 2, "{notices:?}");
    assert_eq!(changes[1]["due_before"], "2026-03-03T10:15:00+01:00");
    assert_eq!(changes[1]["why"], json!({"category": true}));
    assert_ne!(changes[1]["due_at"], changes[1]["due_before"]);

    // Any number of later passes owes nothing more.
    drive(store, &engine, ts("2026-03-02T16:00:00+01:00")).await;
    assert_eq!(
        of_kind(&citizen_notices(store, id).await, "cambio_data").len(),
        2
    );

    // A rebaseline onto a calendar with a new closure moves the date: told as such.
    let id2 = create(store, "DATE-2", "normale").await;
    drive(store, &engine, ts("2026-03-02T10:20:00+01:00")).await;
    let closed = BUILTIN_TOML.replace(
        "closures = []",
        "closures = [{ date = \"2026-03-04\", name = \"Chiusura straordinaria\" }]",
    );
    let newer = Config::from_toml(&closed, "built-in", Vec::new()).expect("config");
    store
        .register_config(&newer, ts("2026-03-02T12:55:00+01:00"))
        .await
        .expect("new versions");
    let moved = store
        .tickets()
        .rebaseline(
            Some("DATE-2"),
            "chiusura straordinaria",
            ts("2026-03-02T13:00:00+01:00"),
        )
        .await
        .expect("rebaseline");
    assert_eq!(moved, 1);
    drive(store, &engine, ts("2026-03-02T13:10:00+01:00")).await;
    let changes = citizen_notices(store, id2).await;
    let changes = of_kind(&changes, "cambio_data");
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["due_before"], "2026-03-09T10:15:00+01:00");
    assert_eq!(changes[0]["due_at"], "2026-03-10T10:15:00+01:00");
    assert_eq!(changes[0]["why"], json!({"calendar": true}));
}

async fn changes_made_together_make_one_notice_and_no_move_owes_nothing(store: &Store) {
    let engine = Engine::new(store.clone(), config(&[]).notify);
    let id = create(store, "DATE-3", "normale").await;
    drive(store, &engine, ts("2026-03-02T10:20:00+01:00")).await;
    // Two changes a minute apart, in one pass: one notice naming both.
    event(
        store,
        "DATE-3",
        json!({"kind": "priority_changed", "at": "2026-03-02T11:00:00+01:00", "priority": "alta"}),
    )
    .await;
    event(store, "DATE-3", json!({"kind": "category_changed", "at": "2026-03-02T11:01:00+01:00", "category": "albo_pretorio"})).await;
    drive(store, &engine, ts("2026-03-02T11:30:00+01:00")).await;
    let notices = citizen_notices(store, id).await;
    let changes = of_kind(&notices, "cambio_data");
    assert_eq!(changes.len(), 1, "{notices:?}");
    assert_eq!(
        changes[0]["why"],
        json!({"priority": true, "category": true})
    );
    assert_eq!(changes[0]["due_before"], "2026-03-09T10:15:00+01:00");
    assert_eq!(changes[0]["due_at"], "2026-03-05T10:15:00+01:00");

    // Alta for the Albo Pretorio to Alta for anything else: 3 working days either way.
    event(store, "DATE-3", json!({"kind": "category_changed", "at": "2026-03-02T12:00:00+01:00", "category": "generale"})).await;
    drive(store, &engine, ts("2026-03-02T12:30:00+01:00")).await;
    // A change and its undoing in one pass leave the date as told.
    event(
        store,
        "DATE-3",
        json!({"kind": "priority_changed", "at": "2026-03-02T13:00:00+01:00", "priority": "bassa"}),
    )
    .await;
    event(
        store,
        "DATE-3",
        json!({"kind": "priority_changed", "at": "2026-03-02T13:02:00+01:00", "priority": "alta"}),
    )
    .await;
    drive(store, &engine, ts("2026-03-02T14:00:00+01:00")).await;
    assert_eq!(
        of_kind(&citizen_notices(store, id).await, "cambio_data").len(),
        1
    );
}

async fn a_reopening_and_a_resumption_tell_the_new_date(store: &Store) {
    let engine = Engine::new(store.clone(), config(&[]).notify);
    let id = create(store, "DATE-4", "urgente").await;
    drive(store, &engine, ts("2026-03-02T10:20:00+01:00")).await;
    // Urgente: due Tuesday 3 at 10:15. Waiting from 11:15 (1 h counted) to Wednesday 9:00.
    event(store, "DATE-4", json!({"kind": "integration_requested", "at": "2026-03-02T11:15:00+01:00", "missing": "ID card"})).await;
    drive(store, &engine, ts("2026-03-03T12:00:00+01:00")).await;
    event(store, "DATE-4", json!({"kind": "integration_received", "at": "2026-03-04T09:00:00+01:00", "channel": "email"})).await;
    drive(store, &engine, ts("2026-03-04T09:30:00+01:00")).await;
    let notices = citizen_notices(store, id).await;
    let resumed = of_kind(&notices, "ripresa");
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0]["due_before"], "2026-03-03T10:15:00+01:00");
    // 7 h left: Wednesday 16:00.
    assert_eq!(resumed[0]["due_at"], "2026-03-04T16:00:00+01:00");
    // The resumption itself is the date's notice: no second one.
    assert!(of_kind(&notices, "cambio_data").is_empty(), "{notices:?}");
    let request = of_kind(&notices, "richiesta_integrazione");
    assert_eq!(request[0]["reply_by"], "2026-04-01T12:15:00+02:00");
    assert_eq!(request[0]["reminders"], 2);
    assert_eq!(request[0]["closes_if_no_reply"], false);

    // Closed at 10:00 with 1 h counted since 9:00, reopened on Thursday at 9:00: the time closed
    // does not count, so the due instant moves from Wednesday 16:00 to Thursday 15:00.
    event(
        store,
        "DATE-4",
        json!({"kind": "closed", "at": "2026-03-04T10:00:00+01:00", "text": "Done."}),
    )
    .await;
    drive(store, &engine, ts("2026-03-04T12:00:00+01:00")).await;
    event(store, "DATE-4", json!({"kind": "reopened", "at": "2026-03-05T09:00:00+01:00", "reason": "wrong certificate"})).await;
    drive(store, &engine, ts("2026-03-05T09:10:00+01:00")).await;
    let notices = citizen_notices(store, id).await;
    let changes = of_kind(&notices, "cambio_data");
    assert_eq!(changes.len(), 1, "{notices:?}");
    assert_eq!(changes[0]["due_before"], "2026-03-04T16:00:00+01:00");
    assert_eq!(changes[0]["due_at"], "2026-03-05T15:00:00+01:00");
    assert_eq!(changes[0]["why"], json!({"reopened": true}));
}

async fn the_office_s_new_date_reaches_the_citizen_and_the_breach_notice(store: &Store) {
    let engine = Engine::new(store.clone(), config(&[]).notify);
    let id = create(store, "DATE-5", "urgente").await;
    drive(store, &engine, ts("2026-03-02T10:20:00+01:00")).await;
    // Before the breach the office says it needs until Friday: told at once, and the breach
    // notice on Tuesday gives that date.
    event(store, "DATE-5", json!({"kind": "expected_date_set", "at": "2026-03-02T15:00:00+01:00", "expected_at": "2026-03-06T12:00:00+01:00", "reason": "the registry must confirm the address"})).await;
    drive(store, &engine, ts("2026-03-03T11:00:00+01:00")).await;
    let notices = citizen_notices(store, id).await;
    let changes = of_kind(&notices, "cambio_data");
    assert_eq!(changes.len(), 1, "{notices:?}");
    assert_eq!(changes[0]["due_before"], "2026-03-03T10:15:00+01:00");
    assert_eq!(changes[0]["due_at"], "2026-03-06T12:00:00+01:00");
    assert_eq!(changes[0]["why"], json!({"office": true}));
    assert_eq!(
        changes[0]["office_reason"],
        "the registry must confirm the address"
    );
    let breach = of_kind(&notices, "violazione");
    assert_eq!(breach.len(), 1);
    assert_eq!(breach[0]["breached_at"], "2026-03-03T10:15:00+01:00");
    assert_eq!(breach[0]["new_expected_at"], "2026-03-06T12:00:00+01:00");
    assert_eq!(breach[0]["office_name"], "anagrafe");

    // A date set after the breach is told too; an invalid one is refused with its reason.
    event(store, "DATE-5", json!({"kind": "expected_date_set", "at": "2026-03-04T09:00:00+01:00", "expected_at": "2026-03-10T12:00:00+01:00", "reason": "waiting for the registry"})).await;
    drive(store, &engine, ts("2026-03-04T09:10:00+01:00")).await;
    let changes = citizen_notices(store, id).await;
    let changes = of_kind(&changes, "cambio_data");
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[1]["due_before"], "2026-03-06T12:00:00+01:00");
    assert_eq!(changes[1]["due_at"], "2026-03-10T12:00:00+01:00");
    let past = NewEvent::from_json(&json!({"kind": "expected_date_set", "at": "2026-03-04T10:00:00+01:00", "expected_at": "2026-03-01T12:00:00+01:00", "reason": "x"})).expect("valid shape");
    let refused = store
        .tickets()
        .append_event(
            "DATE-5",
            &past,
            None,
            Source::Api,
            ts("2026-03-04T10:00:00+01:00"),
        )
        .await;
    let why = format!("{:?}", refused.expect_err("a date in the past is refused"));
    assert!(why.contains("expected_at"), "{why}");
}

async fn an_automatic_closure_is_warned_and_explained(store: &Store) {
    let closing = config(&[("MESSO_NOTIFY__SUSPENSION_CAP_OUTCOME", "close")]);
    assert_eq!(closing.notify.last_warning_working_days, 3);
    let engine = Engine::new(store.clone(), closing.notify.clone());
    let id = create(store, "DATE-6", "normale").await;
    event(store, "DATE-6", json!({"kind": "integration_requested", "at": "2026-03-02T11:00:00+01:00", "missing": "the signed form"})).await;
    // Cap: 30 days later, Wednesday 1 April at 12:00 (summer time). Three working days before:
    // Friday 27 March, at the opening.
    drive(store, &engine, ts("2026-03-27T08:59:59+01:00")).await;
    assert!(of_kind(&citizen_notices(store, id).await, "ultimo_avviso").is_empty());
    drive(store, &engine, ts("2026-03-27T09:00:00+01:00")).await;
    let notices = citizen_notices(store, id).await;
    let warning = of_kind(&notices, "ultimo_avviso");
    assert_eq!(warning.len(), 1, "{notices:?}");
    assert_eq!(warning[0]["closes_at"], "2026-04-01T12:00:00+02:00");
    assert_eq!(warning[0]["missing"], "the signed form");
    let request = of_kind(&notices, "richiesta_integrazione");
    assert_eq!(request[0]["closes_if_no_reply"], true);

    drive(store, &engine, ts("2026-04-02T00:00:00+02:00")).await;
    let notices = citizen_notices(store, id).await;
    let kinds: Vec<&str> = notices.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ricevuta",
            "richiesta_integrazione",
            "sollecito_integrazione",
            "sollecito_integrazione",
            "ultimo_avviso",
            "chiusura"
        ]
    );
    let closure = of_kind(&notices, "chiusura");
    assert_eq!(closure[0]["text"], Value::Null);
    assert_eq!(
        closure[0]["automatic"],
        json!({"reason": "suspension_cap", "requested_at": "2026-03-02T11:00:00+01:00", "cap_days": 30})
    );
    // The closed event records the reason as data, not as Italian words.
    let events = store.tickets().events(id).await.expect("events");
    let last = events.last().expect("the closure");
    assert_eq!(last.kind, "closed");
    assert_eq!(last.data["automatic"]["reason"], "suspension_cap");
    assert_eq!(last.data["text"], Value::Null);
}

/// Words that give a message away as Italian, and as English (none of them a name, an address
/// or a number a message carries in either language).
const ITALIAN: &[&str] = &[
    "richiesta",
    "gentile",
    "giorni",
    "entro",
    "della",
    "prevista",
    "ufficio",
    "chiusa",
    "cordiali",
    "risposta",
    "numero",
    "documenti",
    "grazie",
    "sospesi",
    "tempi",
    "alle",
    "risposte",
    "lunedì",
    "marzo",
    "aprile",
];
const ENGLISH: &[&str] = &[
    "request",
    "dear",
    "days",
    "please",
    "expected",
    "office",
    "closed",
    "regards",
    "reply",
    "replies",
    "documents",
    "thank",
    "your",
    "the",
    "monday",
    "march",
    "april",
];

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != 'ì' && c != 'è')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

async fn every_notice_renders_in_one_language_with_real_payloads(store: &Store) {
    // Real payloads: the engine's notices for tickets that lived through every citizen kind.
    let closing = config(&[("MESSO_NOTIFY__SUSPENSION_CAP_OUTCOME", "close")]);
    let engine = Engine::new(store.clone(), closing.notify.clone());
    let a = create(store, "LANG-1", "normale").await;
    event(store, "LANG-1", json!({"kind": "step_changed", "at": "2026-03-02T10:30:00+01:00", "step": "check", "text": "Assigned."})).await;
    event(
        store,
        "LANG-1",
        json!({"kind": "priority_changed", "at": "2026-03-02T10:40:00+01:00", "priority": "bassa"}),
    )
    .await;
    event(store, "LANG-1", json!({"kind": "integration_requested", "at": "2026-03-02T11:00:00+01:00", "missing": "ID card"})).await;
    drive(store, &engine, ts("2026-04-02T00:00:00+02:00")).await;
    let b = create(store, "LANG-2", "urgente").await;
    event(store, "LANG-2", json!({"kind": "integration_requested", "at": "2026-03-02T11:00:00+01:00", "missing": "ID card"})).await;
    event(store, "LANG-2", json!({"kind": "integration_received", "at": "2026-03-02T12:00:00+01:00", "channel": "email"})).await;
    event(store, "LANG-2", json!({"kind": "expected_date_set", "at": "2026-03-02T12:30:00+01:00", "expected_at": "2026-03-06T12:00:00+01:00", "reason": "TARI 2025"})).await;
    drive(store, &engine, ts("2026-03-04T12:00:00+01:00")).await;
    event(
        store,
        "LANG-2",
        json!({"kind": "closed", "at": "2026-03-04T12:00:00+01:00", "text": "TARI 2025"}),
    )
    .await;
    drive(store, &engine, ts("2026-03-05T12:00:00+01:00")).await;

    // On-site assistance: an appointment booked, moved (with its reminder), cancelled, booked
    // again and missed.
    let t = NewTicket::from_json(&json!({
        "number": "LANG-3", "office": "anagrafe", "priority": "normale", "category": "in_loco",
        "subject": "TARI 2025", "received_at": "2026-03-02T10:15:00+01:00",
        "citizen": {"email": "anna.bianchi@example.it", "language": "en"}
    }))
    .expect("ticket");
    let c = store
        .tickets()
        .create_ticket(&t, Source::Api, ts("2026-03-02T10:15:00+01:00"))
        .await
        .expect("create")
        .ticket()
        .id;
    let slot = |at: &str, starts: &str| {
        json!({"kind": "appointment_proposed", "at": at, "starts_at": starts, "minutes": 30,
               "place": "Via Roma 1", "officer": "Anna Neri"})
    };
    event(
        store,
        "LANG-3",
        slot("2026-03-02T10:30:00+01:00", "2026-03-04T10:00:00+01:00"),
    )
    .await;
    event(
        store,
        "LANG-3",
        json!({"kind": "appointment_changed", "at": "2026-03-02T11:00:00+01:00",
        "starts_at": "2026-03-05T10:00:00+01:00", "minutes": 30, "place": "Via Roma 1",
        "officer": "Anna Neri", "reason": "TARI 2025"}),
    )
    .await;
    drive(store, &engine, ts("2026-03-04T12:00:00+01:00")).await;
    event(store, "LANG-3", json!({"kind": "appointment_cancelled", "at": "2026-03-04T12:00:00+01:00", "reason": "TARI 2025"})).await;
    event(
        store,
        "LANG-3",
        slot("2026-03-04T12:30:00+01:00", "2026-03-06T10:00:00+01:00"),
    )
    .await;
    drive(store, &engine, ts("2026-03-06T11:30:00+01:00")).await;
    event(
        store,
        "LANG-3",
        json!({"kind": "appointment_missed", "at": "2026-03-06T11:30:00+01:00"}),
    )
    .await;
    drive(store, &engine, ts("2026-03-06T12:00:00+01:00")).await;

    let mut payloads = citizen_notices(store, a).await;
    payloads.extend(citizen_notices(store, b).await);
    payloads.extend(citizen_notices(store, c).await);
    let produced: std::collections::BTreeSet<&str> =
        payloads.iter().map(|(k, _)| k.as_str()).collect();
    let engine_kinds = [
        "ricevuta",
        "avanzamento",
        "richiesta_integrazione",
        "sollecito_integrazione",
        "ultimo_avviso",
        "ripresa",
        "cambio_data",
        "violazione",
        "chiusura",
        "appuntamento",
        "appuntamento_modificato",
        "appuntamento_annullato",
        "appuntamento_mancato",
        "promemoria_appuntamento",
    ];
    assert_eq!(
        produced,
        engine_kinds.into_iter().collect(),
        "every citizen kind the engine owes was produced"
    );

    let templates = Templates::new(
        Catalog::bundled().expect("catalog"),
        Settings::from_config(&closing),
    );
    for (kind_name, payload) in &payloads {
        let kind = Kind::parse(kind_name).expect("a kind");
        for lang in [Lang::It, Lang::En] {
            let (own, other) = match lang {
                Lang::It => (ITALIAN, ENGLISH),
                Lang::En => (ENGLISH, ITALIAN),
            };
            // The calendar file's words, when the notice carries one.
            if payload["calendar"].is_object() {
                let ctx = templates.settings().context(payload, lang, Channel::Email);
                let (title, description) = templates
                    .calendar_words(lang, &ctx)
                    .unwrap_or_else(|| panic!("{kind_name}/{lang:?}: calendar words"));
                for text in [title, description] {
                    let ws = words(&text);
                    let foreign: Vec<&&str> = other
                        .iter()
                        .filter(|w| ws.iter().any(|x| x == **w))
                        .collect();
                    assert!(
                        foreign.is_empty(),
                        "{kind_name}/{lang:?} calendar: {foreign:?} in {text}"
                    );
                }
            }
            let mut channels = vec![Channel::Email, Channel::Sms, Channel::Io, Channel::Pec];
            // The notices an automated call may speak when every written channel failed.
            if matches!(kind, Kind::RichiestaIntegrazione | Kind::Violazione) {
                channels.push(Channel::Voice);
            }
            for channel in channels {
                let at = format!("{kind_name}/{lang:?}/{channel:?}");
                let m = templates
                    .render_message(Audience::Cittadino, kind, lang, channel, payload)
                    .unwrap_or_else(|e| panic!("{at}: {e}"));
                // The template's own words: not the fallback's or the emergency wording.
                assert_eq!(m.version, 0, "{at}: {m:?}");
                let mut parts = vec![("text", m.text.clone())];
                if !matches!(channel, Channel::Sms | Channel::Voice) {
                    parts.push(("subject", m.subject.clone()));
                }
                if let Some(html) = &m.html {
                    parts.push(("html", html.clone()));
                }
                for (part, text) in parts {
                    assert!(!text.trim().is_empty(), "{at} {part}: empty");
                    for bad in ["{{", "}}", "undefined", "[object"] {
                        assert!(!text.contains(bad), "{at} {part}: {bad:?} in {text}");
                    }
                    let ws = words(&text);
                    assert!(
                        !ws.iter().any(|w| w == "null"),
                        "{at} {part}: null in {text}"
                    );
                    let foreign: Vec<&&str> = other
                        .iter()
                        .filter(|w| ws.iter().any(|x| x == **w))
                        .collect();
                    assert!(foreign.is_empty(), "{at} {part}: {foreign:?} in {text}");
                    // And it is in its own language.
                    assert!(
                        own.iter().any(|w| ws.iter().any(|x| x == w)),
                        "{at} {part}: no word of its language in {text}"
                    );
                }
            }
        }
    }
}
