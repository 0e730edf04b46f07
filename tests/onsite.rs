//! On-site assistance as an appointment, on SQLite and on PostgreSQL with an injected clock: the
//! term of an `in_loco` request (from the request, or from the switch to on-site), an
//! appointment's life (proposal → confirmation with a calendar file, the reminder the working
//! day before inside the SMS window, a change with SEQUENCE + 1, the visit held: the term met,
//! no breach later), a cancellation and a missed visit, and proposals refused with their
//! reasons. The calendar file also goes through a real SMTP server and is parsed back.

mod common;

use std::sync::Arc;

use common::peers::SmtpPeer;
use common::{Backend, TestDb, fixed_clock, on_both, ts};
use messo::config::{BUILTIN_TOML, Config};
use messo::daemon::Engine;
use messo::delivery::dispatch::Dispatcher;
use messo::domain::Channel;
use messo::metrics::Metrics;
use messo::store::{Store, TicketError};
use messo::ticket::{NewEvent, NewTicket, Source};
use messo::time::Timestamp;
use serde_json::{Value, json};

fn config() -> Config {
    Config::from_toml(BUILTIN_TOML, "built-in", Vec::new()).expect("config")
}

async fn start(backend: Backend) -> TestDb {
    TestDb::with_config(backend, &config()).await
}

on_both!(start;
    an_appointments_life,
    a_cancelled_and_a_missed_appointment,
    a_switch_to_on_site_starts_the_term_at_the_switch,
    invalid_proposals_are_refused_with_reasons,
    the_console_records_an_appointment_as_a_staff_event,
);

fn ticket(number: &str, category: &str, received: &str) -> NewTicket {
    NewTicket::from_json(&json!({
        "number": number,
        "office": "Servizi Demografici",
        "category": category,
        "priority": "normale",
        "subject": "Accompagnamento allo sportello",
        "received_at": received,
        "citizen": {"email": "anna.bianchi@example.it", "mobile": "+393331112222"}
    }))
    .expect("ticket")
}

async fn create(store: &Store, t: &NewTicket) -> i64 {
    store
        .tickets()
        .create_ticket(t, Source::Api, t.received_at)
        .await
        .expect("create")
        .ticket()
        .id
}

async fn try_event(
    store: &Store,
    number: &str,
    v: Value,
    now: Timestamp,
) -> Result<(), TicketError> {
    let e = NewEvent::from_json(&v).map_err(TicketError::Invalid)?;
    store
        .tickets()
        .append_event(number, &e, None, Source::Console, now)
        .await
        .map(|_| ())
}

async fn event(store: &Store, number: &str, v: Value) {
    let now = ts(v["at"].as_str().expect("at"));
    try_event(store, number, v, now).await.expect("append");
}

/// Runs the engine at every instant the store asks for, up to `until`.
async fn drive(store: &Store, engine: &Engine, until: Timestamp) {
    while let Some(t) = store.outbox().earliest_check().await.expect("earliest") {
        if t > until {
            break;
        }
        engine.cycle(t).await.expect("cycle");
    }
}

/// The outbox rows of a ticket: (kind, key, channel, not_before, payload), in id order.
async fn rows(store: &Store, ticket: i64) -> Vec<(String, String, String, Timestamp, Value)> {
    let rows: Vec<(String, String, String, i64, String)> = sqlx::query_as(
        "SELECT kind, dedupe_key, channel, not_before, payload FROM outbox WHERE ticket_id = $1 \
         ORDER BY id",
    )
    .bind(ticket)
    .fetch_all(store.pool())
    .await
    .expect("outbox");
    rows.into_iter()
        .map(|(k, key, c, nb, p)| {
            (
                k,
                key,
                c,
                Timestamp(nb),
                serde_json::from_str(&p).expect("payload"),
            )
        })
        .collect()
}

fn kinds(rows: &[(String, String, String, Timestamp, Value)]) -> Vec<&str> {
    rows.iter().map(|r| r.0.as_str()).collect()
}

/// The one VEVENT of a calendar file, as (name → value) after unfolding; with the METHOD.
fn parse_ics(text: &str) -> (String, std::collections::BTreeMap<String, String>) {
    let mut parser = ical::IcalParser::new(std::io::BufReader::new(text.as_bytes()));
    let cal = parser
        .next()
        .expect("a calendar")
        .unwrap_or_else(|e| panic!("the calendar file parses: {e}\n{text}"));
    assert!(parser.next().is_none(), "one calendar");
    let method = cal
        .properties
        .iter()
        .find(|p| p.name == "METHOD")
        .and_then(|p| p.value.clone())
        .expect("METHOD");
    assert_eq!(cal.events.len(), 1, "one event");
    let props = cal.events[0]
        .properties
        .iter()
        .map(|p| (p.name.clone(), p.value.clone().unwrap_or_default()))
        .collect();
    (method, props)
}

/// The calendar file an e-mail of this payload would carry, parsed.
fn ics_of(payload: &Value) -> (String, std::collections::BTreeMap<String, String>) {
    let templates = messo::templates::Templates::new(
        messo::templates::Catalog::bundled().expect("catalog"),
        messo::templates::Settings::example(),
    );
    let ctx = templates
        .settings()
        .context(payload, messo::domain::Lang::It, Channel::Email);
    let files = messo::templates::calendar_attachment(
        Channel::Email,
        payload,
        templates.calendar_words(messo::domain::Lang::It, &ctx),
    );
    assert_eq!(files.len(), 1, "one calendar file: {payload}");
    let file = files[0].decode().expect("base64");
    assert!(file.content_type.starts_with("text/calendar"));
    parse_ics(std::str::from_utf8(&file.data).expect("UTF-8"))
}

async fn an_appointments_life(store: &Store) {
    let engine = Engine::new(store.clone(), config().notify);
    let n = "2026/004518";
    // Tuesday 1 December 2026: day 7 is Tuesday 8 December (Immacolata), so the term is Monday
    // 7 December at 17:00.
    let id = create(store, &ticket(n, "in_loco", "2026-12-01T10:00:00+01:00")).await;
    drive(store, &engine, ts("2026-12-01T10:00:00+01:00")).await;
    let t = store
        .tickets()
        .ticket(n)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(t.sla.due_at, Some(ts("2026-12-07T17:00:00+01:00")));
    let receipt = &rows(store, id).await[0];
    assert_eq!(receipt.0, "ricevuta");
    assert_eq!(receipt.4["on_site"], json!(true));
    assert_eq!(receipt.4["out_of_hours"], json!(false));
    assert_eq!(receipt.4["book_by"], json!("2026-12-07T17:00:00+01:00"));

    // Proposed on Tuesday for Friday 4 December, 10:30–11:00.
    event(
        store,
        n,
        json!({"kind": "appointment_proposed", "at": "2026-12-01T11:00:00+01:00",
        "starts_at": "2026-12-04T10:30:00+01:00", "minutes": 30,
        "place": "Sportello Anagrafe, Via Roma 1; piano terra", "officer": "Giulia Neri"}),
    )
    .await;
    drive(store, &engine, ts("2026-12-01T11:00:00+01:00")).await;
    let r = rows(store, id).await;
    assert_eq!(kinds(&r), ["ricevuta", "appuntamento"]);
    let confirmation = &r[1].4;
    assert_eq!(
        confirmation["appointment"]["starts_at"],
        json!("2026-12-04T10:30:00+01:00")
    );
    let (method, ics) = ics_of(confirmation);
    assert_eq!(method, "PUBLISH");
    let uid = ics["UID"].clone();
    assert_eq!(uid, "appuntamento-1-2026-004518@comune.roma.it");
    assert_eq!(ics["SEQUENCE"], "0");
    assert_eq!(ics["DTSTART"], "20261204T093000Z");
    assert_eq!(ics["DTEND"], "20261204T100000Z");
    assert_eq!(
        ics["LOCATION"],
        "Sportello Anagrafe\\, Via Roma 1\\; piano terra"
    );
    // Title and description from the template partials, in the citizen's language.
    assert_eq!(
        ics["SUMMARY"],
        "Appuntamento con l'URP\\, richiesta 2026/004518"
    );
    assert!(
        ics["DESCRIPTION"].starts_with("Assistenza in loco per la richiesta 2026/004518"),
        "{}",
        ics["DESCRIPTION"]
    );

    // The reminder: Thursday 3 December (the working day before) when the SMS window opens,
    // 08:00, not earlier and not at night; nothing before it.
    drive(store, &engine, ts("2026-12-03T07:59:59+01:00")).await;
    assert_eq!(rows(store, id).await.len(), 2);
    drive(store, &engine, ts("2026-12-03T12:00:00+01:00")).await;
    let r = rows(store, id).await;
    assert_eq!(
        kinds(&r),
        ["ricevuta", "appuntamento", "promemoria_appuntamento"]
    );
    assert_eq!(r[2].3, ts("2026-12-03T08:00:00+01:00"));
    assert_eq!(
        r[2].4["appointment"]["starts_at"],
        json!("2026-12-04T10:30:00+01:00")
    );

    // Moved on Thursday to Monday 7 December 09:30: the change carries SEQUENCE 1, same UID.
    event(
        store,
        n,
        json!({"kind": "appointment_changed", "at": "2026-12-03T12:00:00+01:00",
        "starts_at": "2026-12-07T09:30:00+01:00", "minutes": 30,
        "place": "Sportello Anagrafe, Via Roma 1; piano terra", "officer": "Marco Gialli",
        "reason": "L'operatrice è assente venerdì"}),
    )
    .await;
    drive(store, &engine, ts("2026-12-03T12:00:00+01:00")).await;
    let r = rows(store, id).await;
    assert_eq!(kinds(&r)[3], "appuntamento_modificato");
    let change = &r[3].4;
    assert_eq!(
        change["appointment"]["previous_starts_at"],
        json!("2026-12-04T10:30:00+01:00")
    );
    let (method, ics) = ics_of(change);
    assert_eq!(method, "PUBLISH");
    assert_eq!(
        (ics["UID"].as_str(), ics["SEQUENCE"].as_str()),
        (uid.as_str(), "1")
    );
    assert_eq!(ics["DTSTART"], "20261207T083000Z");

    // Held on Monday at 10:00, before the term: the ticket is closed, no breach ever follows.
    drive(store, &engine, ts("2026-12-07T09:59:59+01:00")).await;
    event(
        store,
        n,
        json!({"kind": "appointment_held", "at": "2026-12-07T10:00:00+01:00",
        "text": "Carta d'identità richiesta allo sportello"}),
    )
    .await;
    drive(store, &engine, ts("2026-12-31T00:00:00+01:00")).await;
    let t = store
        .tickets()
        .ticket(n)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!((t.sla.state, t.sla.closed_late), ("closed", Some(false)));
    let r = rows(store, id).await;
    assert_eq!(
        kinds(&r),
        [
            "ricevuta",
            "appuntamento",
            "promemoria_appuntamento",
            "appuntamento_modificato",
            "promemoria_appuntamento",
            "preavviso_scadenza",
        ]
    );
    // The second reminder: Friday 4 December 08:00, for Monday's appointment (the office's
    // warning follows at 15:15, three quarters of the term's 39 h of office time).
    assert_eq!(r[4].3, ts("2026-12-04T08:00:00+01:00"));
    assert_eq!(
        r[4].4["appointment"]["starts_at"],
        json!("2026-12-07T09:30:00+01:00")
    );
    // Another pass owes nothing new.
    engine
        .cycle(ts("2026-12-31T00:00:00+01:00"))
        .await
        .expect("cycle");
    assert_eq!(rows(store, id).await.len(), 6);
}

async fn a_cancelled_and_a_missed_appointment(store: &Store) {
    let engine = Engine::new(store.clone(), config().notify);
    let n = "2026/004519";
    let id = create(store, &ticket(n, "in_loco", "2026-12-01T10:00:00+01:00")).await;
    event(
        store,
        n,
        json!({"kind": "appointment_proposed", "at": "2026-12-01T10:05:00+01:00",
        "starts_at": "2026-12-02T15:00:00+01:00", "minutes": 45, "place": "Via Roma 1",
        "officer": "Giulia Neri"}),
    )
    .await;
    event(
        store,
        n,
        json!({"kind": "appointment_cancelled", "at": "2026-12-01T10:10:00+01:00",
        "reason": "Il certificato è stato rilasciato online"}),
    )
    .await;
    // Booked after the reminder's instant (Tuesday 08:00 for Wednesday): no reminder for it.
    event(
        store,
        n,
        json!({"kind": "appointment_proposed", "at": "2026-12-01T10:15:00+01:00",
        "starts_at": "2026-12-02T16:00:00+01:00", "minutes": 30, "place": "Via Roma 1",
        "officer": "Giulia Neri"}),
    )
    .await;
    event(
        store,
        n,
        json!({"kind": "appointment_missed", "at": "2026-12-02T16:40:00+01:00"}),
    )
    .await;
    drive(store, &engine, ts("2026-12-02T16:40:00+01:00")).await;
    let r = rows(store, id).await;
    assert_eq!(
        kinds(&r),
        [
            "ricevuta",
            "appuntamento",
            "appuntamento_annullato",
            "appuntamento",
            "appuntamento_mancato",
        ]
    );
    let (_, first) = ics_of(&r[1].4);
    let (method, cancel) = ics_of(&r[2].4);
    assert_eq!(method, "CANCEL");
    assert_eq!(cancel["UID"], first["UID"]);
    assert_eq!(
        (cancel["SEQUENCE"].as_str(), cancel["STATUS"].as_str()),
        ("1", "CANCELLED")
    );
    let (_, second) = ics_of(&r[3].4);
    assert_ne!(
        second["UID"], first["UID"],
        "a new appointment has its own UID"
    );
    assert!(
        messo::templates::calendar_attachment(
            Channel::Email,
            &r[4].4,
            Some(("x".to_owned(), "y".to_owned()))
        )
        .is_empty()
    );
    // The ticket stays open; a new appointment can be booked.
    let t = store
        .tickets()
        .ticket(n)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(t.closed_at, None);
    try_event(
        store,
        n,
        json!({"kind": "appointment_proposed", "at": "2026-12-02T16:45:00+01:00",
        "starts_at": "2026-12-03T09:00:00+01:00", "minutes": 30, "place": "Via Roma 1",
        "officer": "Giulia Neri"}),
        ts("2026-12-02T16:45:00+01:00"),
    )
    .await
    .expect("a new proposal after a missed visit");
}

async fn a_switch_to_on_site_starts_the_term_at_the_switch(store: &Store) {
    let engine = Engine::new(store.clone(), config().notify);
    let n = "2026/000777";
    // Received Monday 2 March as a general request; switched to on-site on Thursday 12 March at
    // 11:00. From the receipt, seven days would have ended on 9 March: breached at once. From
    // the switch: day 7 is Thursday 19 March, so 17:00 that day.
    let id = create(store, &ticket(n, "generale", "2026-03-02T10:00:00+01:00")).await;
    drive(store, &engine, ts("2026-03-02T10:00:00+01:00")).await;
    event(
        store,
        n,
        json!({"kind": "category_changed", "at": "2026-03-12T11:00:00+01:00",
        "category": "in_loco"}),
    )
    .await;
    drive(store, &engine, ts("2026-03-12T11:00:00+01:00")).await;
    let t = store
        .tickets()
        .ticket(n)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(t.sla.due_at, Some(ts("2026-03-19T17:00:00+01:00")));
    assert_eq!(t.sla.state, "running");
    assert_eq!(kinds(&rows(store, id).await), ["ricevuta"]);
    // An appointment by the term is accepted; one after it needs a reason.
    let late = json!({"kind": "appointment_proposed", "at": "2026-03-12T11:05:00+01:00",
        "starts_at": "2026-03-20T10:00:00+01:00", "minutes": 30, "place": "Via Roma 1",
        "officer": "Giulia Neri"});
    let err = try_event(store, n, late.clone(), ts("2026-03-12T11:05:00+01:00"))
        .await
        .expect_err("after the term");
    assert!(err.to_string().contains("after the on-site term"), "{err}");
    let mut with_reason = late;
    with_reason["reason"] = json!("La cittadina è disponibile solo venerdì 20");
    try_event(store, n, with_reason, ts("2026-03-12T11:05:00+01:00"))
        .await
        .expect("with a reason");
}

async fn invalid_proposals_are_refused_with_reasons(store: &Store) {
    let now = ts("2026-12-01T11:00:00+01:00");
    create(
        store,
        &ticket("G-1", "generale", "2026-12-01T10:00:00+01:00"),
    )
    .await;
    create(
        store,
        &ticket("L-1", "in_loco", "2026-12-01T10:00:00+01:00"),
    )
    .await;
    let propose = |starts_at: &str, minutes: u32| {
        json!({"kind": "appointment_proposed", "at": "2026-12-01T11:00:00+01:00",
            "starts_at": starts_at, "minutes": minutes, "place": "Via Roma 1",
            "officer": "Giulia Neri"})
    };
    let conflict = |r: Result<(), TicketError>| match r {
        Err(TicketError::Conflict(m)) => m,
        other => panic!("expected a conflict, got {other:?}"),
    };
    let invalid = |r: Result<(), TicketError>| match r {
        Err(TicketError::Invalid(errors)) => (errors[0].field.clone(), errors[0].message.clone()),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let m = conflict(try_event(store, "G-1", propose("2026-12-02T10:00:00+01:00", 30), now).await);
    assert!(m.contains("in_loco"), "{m}");
    let (f, m) =
        invalid(try_event(store, "L-1", propose("2026-12-05T10:00:00+01:00", 30), now).await);
    assert_eq!(f, "starts_at");
    assert!(m.contains("outside office hours"), "{m}");
    let (f, m) =
        invalid(try_event(store, "L-1", propose("2026-12-02T16:45:00+01:00", 30), now).await);
    assert_eq!(f, "minutes");
    assert!(m.contains("after the office closes"), "{m}");
    let (f, m) =
        invalid(try_event(store, "L-1", propose("2026-12-01T10:30:00+01:00", 30), now).await);
    assert_eq!(f, "starts_at");
    assert!(m.contains("in the past"), "{m}");
    let (f, _) =
        invalid(try_event(store, "L-1", propose("2026-12-02T10:00:00+01:00", 2), now).await);
    assert_eq!(f, "minutes");
    let m = conflict(
        try_event(
            store,
            "L-1",
            json!({"kind": "appointment_cancelled",
            "at": "2026-12-01T11:00:00+01:00", "reason": "x"}),
            now,
        )
        .await,
    );
    assert!(m.contains("no appointment"), "{m}");
    // Nothing was recorded: a valid proposal is still the first.
    try_event(store, "L-1", propose("2026-12-02T10:00:00+01:00", 30), now)
        .await
        .expect("valid");
    let m = conflict(try_event(store, "L-1", propose("2026-12-03T10:00:00+01:00", 30), now).await);
    assert!(m.contains("already has an appointment"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_confirmation_reaches_a_real_smtp_server_with_its_calendar_file() {
    let peer = SmtpPeer::start(&common::fresh_dir("onsite-peer"), 0, &[]);
    let cfg = Config::from_toml(
        BUILTIN_TOML,
        "built-in",
        vec![
            ("MESSO_CHANNELS__EMAIL".to_owned(), "smtp".to_owned()),
            ("MESSO_SMTP__HOST".to_owned(), "127.0.0.1".to_owned()),
            ("MESSO_SMTP__PORT".to_owned(), peer.port.to_string()),
            ("MESSO_SMTP__SECURITY".to_owned(), "plain".to_owned()),
        ],
    )
    .expect("config");
    let db = TestDb::with_config(Backend::Sqlite, &cfg).await;
    let store = db.store.clone();
    let engine = Engine::new(store.clone(), cfg.notify.clone());
    let dispatcher = Arc::new(
        Dispatcher::from_config(store.clone(), &cfg, Arc::new(Metrics::default()))
            .expect("dispatcher"),
    );
    let n = "2026/004520";
    create(&store, &ticket(n, "in_loco", "2026-12-01T10:00:00+01:00")).await;
    event(
        &store,
        n,
        json!({"kind": "appointment_proposed", "at": "2026-12-01T10:30:00+01:00",
        "starts_at": "2026-12-04T10:30:00+01:00", "minutes": 30,
        "place": "Sportello Anagrafe, Via Roma 1", "officer": "Giulia Neri"}),
    )
    .await;
    let at = ts("2026-12-01T10:30:00+01:00");
    engine.cycle(at).await.expect("engine");
    let report = dispatcher
        .drain(&fixed_clock(at), u64::MAX)
        .await
        .expect("drain");
    assert_eq!(report.delivered, 2, "{report:?}");
    // The receipt and the confirmation go out together: find the confirmation.
    let eml = [peer.message(1), peer.message(2)]
        .into_iter()
        .find(|m| common::mail::header(m, "X-Messo-Kind").as_deref() == Some("appuntamento"))
        .expect("the confirmation was delivered");
    let text = common::mail::part(&eml, "text/plain").expect("text part");
    assert!(
        text.contains("venerdì 4 dicembre 2026 alle 10:30"),
        "{text}"
    );
    assert!(text.contains("Sportello Anagrafe, Via Roma 1"), "{text}");
    let ics = common::mail::part(&eml, "text/calendar").expect("a text/calendar attachment");
    let (method, props) = parse_ics(&ics.replace('\n', "\r\n"));
    assert_eq!(method, "PUBLISH");
    assert_eq!(props["DTSTART"], "20261204T093000Z");
    assert_eq!(props["DTEND"], "20261204T100000Z");
    assert_eq!(props["LOCATION"], "Sportello Anagrafe\\, Via Roma 1");
    assert_eq!(props["UID"], "appuntamento-1-2026-004520@comune.roma.it");
    db.finish().await;
}

async fn the_console_records_an_appointment_as_a_staff_event(store: &Store) {
    create(
        store,
        &ticket("L-2", "in_loco", "2026-12-01T10:00:00+01:00"),
    )
    .await;
    let e = NewEvent::from_json(&json!({"kind": "appointment_proposed",
        "at": "2026-12-01T11:00:00+01:00", "starts_at": "2026-12-02T10:00:00+01:00",
        "minutes": 30, "place": "Via Roma 1", "officer": "Giulia Neri"}))
    .expect("event");
    let now = ts("2026-12-01T11:00:00+01:00");
    let done = store
        .queues()
        .staff_event("L-2", &e.body, None, Some("form-1"), "anna", now)
        .await
        .expect("recorded");
    assert_eq!(
        (done.event.kind.as_str(), done.event.source.as_str()),
        ("appointment_proposed", "console")
    );
    assert_eq!(
        done.event.data["starts_at"],
        json!("2026-12-02T09:00:00+00:00")
    );
    // The same form again answers the event recorded the first time.
    let again = store
        .queues()
        .staff_event("L-2", &e.body, None, Some("form-1"), "anna", now.plus(5))
        .await
        .expect("replayed");
    assert!(again.replayed);
    // Outside office hours: refused as from the API.
    let saturday = NewEvent::from_json(&json!({"kind": "appointment_changed",
        "at": "2026-12-01T11:00:00+01:00", "starts_at": "2026-12-05T10:00:00+01:00",
        "minutes": 30, "place": "Via Roma 1", "officer": "Giulia Neri", "reason": "x"}))
    .expect("event");
    let err = store
        .queues()
        .staff_event(
            "L-2",
            &saturday.body,
            None,
            Some("form-2"),
            "anna",
            now.plus(10),
        )
        .await
        .expect_err("outside office hours");
    assert!(err.to_string().contains("outside office hours"), "{err}");
}
