//! The personal-data lifecycle (issue 20, point 7) on SQLite and the real PostgreSQL: the
//! retention of each kind of data on a clock the test sets (rows just younger than the limit
//! kept, older ones cleared, in batches smaller than the rows), the compliance report's figures
//! the same before and after; a citizen's export by codice fiscale; the erasure on request, its
//! round trip (nothing personal left, the record kept), its refusal while a ticket is open; the
//! `messo privacy` commands as a real process; `[retention]` errors naming their key.

mod common;

use common::db::count;
use common::{Backend, TestDb, on_both, ts};
use messo::config::{BUILTIN_TOML, Config, Retention};
use messo::domain::FiscalCode;
use messo::metrics::Metrics;
use messo::monitoring::{self, ReportRequest};
use messo::reports::{GroupBy, Measure, Period};
use messo::store::{Erasure, RetentionCounts, Store};
use messo::ticket::{NewEvent, NewTicket, Source};
use messo::time::Timestamp;
use serde_json::{Value, json};

/// Citizens: the one whose data the tests follow, and another who must not be touched.
const CF: &str = "RSSMRA85T10A562S";
const OTHER_CF: &str = "BNCLRA90A41H501F";
const OPEN_CF: &str = "VRDGPP80C12F205H";
const EMAIL: &str = "mario.rossi@example.it";
const MOBILE: &str = "+393471234567";
const REPLY: &str = "Allego la carta di identita richiesta";
const COMMENT: &str = "Gentilissimi allo sportello";

/// When the "old" data was last touched; the "young" data is two hours later.
const A: &str = "2026-01-15T10:00:00+01:00";

fn config() -> Config {
    Config::from_toml(BUILTIN_TOML, "built-in", Vec::new()).expect("config")
}

async fn start(backend: Backend) -> TestDb {
    TestDb::with_config(backend, &config()).await
}

on_both!(start;
    retention_clears_each_kind_at_its_age_in_batches,
    reports_give_the_same_figures_after_retention,
    the_daemon_pass_counts_each_kind,
    export_gathers_what_is_held_about_a_citizen,
    erase_leaves_nothing_personal_and_is_recorded,
    erase_is_refused_while_a_ticket_is_open,
    the_privacy_commands_run_as_a_process,
);

fn retention(days: u32, batch_size: u32) -> Retention {
    Retention {
        message_bodies_days: days,
        closed_ticket_contacts_days: days,
        inbound_days: days,
        audit_days: days,
        batch_size,
    }
}

fn citizen(cf: &str, email: &str) -> Value {
    json!({"email": email, "mobile": MOBILE, "fiscal_code": cf, "language": "it"})
}

async fn create(store: &Store, number: &str, citizen: Value, received: Timestamp) -> i64 {
    let t = NewTicket::from_json(&json!({
        "number": number,
        "office": "anagrafe",
        "priority": "normale",
        "subject": "Certificato di residenza",
        "received_at": received.to_string(),
        "citizen": citizen,
    }))
    .expect("ticket");
    store
        .tickets()
        .create_ticket(&t, Source::Api, received)
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

async fn close(store: &Store, number: &str, at: Timestamp) {
    event(
        store,
        number,
        json!({"kind": "closed", "at": at.to_string(), "text": "Certificato pronto"}),
    )
    .await;
}

async fn sql(store: &Store, text: &str) {
    sqlx::query(sqlx::AssertSqlSafe(text.to_owned()))
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{text}: {e}"));
}

/// A sent message of ticket `id` with its words, last changed at `at`.
async fn message(store: &Store, id: i64, key: &str, state: &str, at: Timestamp) {
    message_to(store, id, key, state, at, EMAIL).await;
}

/// [`message`] to address `to`.
async fn message_to(store: &Store, id: i64, key: &str, state: &str, at: Timestamp, to: &str) {
    let rendered = json!({"subject": "La sua richiesta", "text": format!("Gentile cittadino, scriviamo a {to}")});
    sqlx::query(
        "INSERT INTO outbox (ticket_id, kind, dedupe_key, recipient, channel, address, language, \
         payload, not_before, state, created_at, updated_at, delivered_at, rendered, last_error) \
         VALUES ($1, 'ricevuta', $2, 'citizen', 'email', $3, 'it', $4, $5, $6, $5, $5, $5, $7, $8)",
    )
    .bind(id)
    .bind(key)
    .bind(to)
    .bind(json!({"email": to}).to_string())
    .bind(at.0)
    .bind(state)
    .bind(rendered.to_string())
    .bind(format!("550 {to} unknown"))
    .execute(store.pool())
    .await
    .expect("outbox row");
}

/// A processed e-mail reply to ticket `id`, received at `at`, naming attachment file `file`.
async fn reply(store: &Store, id: Option<i64>, ext: &str, status: &str, at: Timestamp, file: &str) {
    let parsed = json!({
        "route": "mail", "external_id": ext, "sender": EMAIL, "recipient": "urp@comune.it",
        "subject": "Re: la sua richiesta", "text": REPLY, "digits": null,
        "occurred_at": at.0, "receipt": null,
        "attachments": [{"name": "carta.pdf", "content_type": "application/pdf", "size": 3,
                         "sha256": file, "stored_as": file}],
    });
    sqlx::query(
        "INSERT INTO inbound_messages (endpoint, route, external_id, received_at, sender, parsed, \
         raw, status, ticket_id, next_try_at, processed_at) \
         VALUES ('imap', 'mail', $1, $2, $3, $4, $5, $6, $7, $2, $2)",
    )
    .bind(ext)
    .bind(at.0)
    .bind(EMAIL)
    .bind(parsed.to_string())
    .bind(format!("From: {EMAIL}\r\n\r\n{REPLY}"))
    .bind(status)
    .bind(id)
    .execute(store.pool())
    .await
    .expect("inbound row");
}

fn file_name(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// The old and young data of every kind. Returns the ids of the old tickets.
async fn write_world(db: &TestDb, old_tickets: usize) -> Vec<i64> {
    let store = &db.store;
    let a = ts(A);
    let young = a.plus(7200);
    let received = ts("2026-01-12T10:00:00+01:00");
    let mut ids = Vec::new();
    for i in 0..old_tickets {
        let n = format!("2026/{:06}", i + 1);
        let id = create(store, &n, citizen(CF, EMAIL), received).await;
        close(store, &n, a).await;
        message(store, id, "old", "delivered", a).await;
        ids.push(id);
    }
    let young_id = create(
        store,
        "2026/000900",
        citizen(OTHER_CF, "anna@example.it"),
        received,
    )
    .await;
    close(store, "2026/000900", young).await;
    message(store, young_id, "young", "delivered", young).await;
    let open_id = create(
        store,
        "2026/000901",
        citizen(OPEN_CF, "luca@example.it"),
        received,
    )
    .await;
    message(store, open_id, "pending", "pending", a).await;
    // Replies: file 1 named by old records only, file 2 by an old and a young one, file 3 by
    // a record not yet acted on.
    std::fs::create_dir_all(db.dir.join("attachments")).expect("folder");
    for n in [1, 2, 3] {
        std::fs::write(db.dir.join("attachments").join(file_name(n)), b"pdf").expect("file");
    }
    reply(store, Some(ids[0]), "m1", "done", a, &file_name(1)).await;
    reply(store, Some(ids[1]), "m2", "done", a, &file_name(2)).await;
    reply(store, None, "m3", "unmatched", a, &file_name(1)).await;
    reply(store, Some(young_id), "m4", "done", young, &file_name(2)).await;
    reply(store, None, "m5", "pending", a, &file_name(3)).await;
    for (at, actor) in [(a, "old"), (young, "young")] {
        sql(
            store,
            &format!(
                "INSERT INTO audit_log (at, actor, action, object, detail) \
                 VALUES ({}, '{actor}', 'contacts.shown', '2026/000001', '{{}}')",
                at.0
            ),
        )
        .await;
    }
    sql(
        store,
        &format!(
            "INSERT INTO satisfaction (ticket_id, score, comment, channel, answered_at) \
             VALUES ({}, 5, '{COMMENT}', 'portal', {})",
            ids[0], a.0
        ),
    )
    .await;
    let d = store.domiciles();
    let expired = a.plus(86_400);
    d.record(CF, Some("mario@pec.it"), "inad", a, expired)
        .await
        .expect("cache");
    d.record(OPEN_CF, None, "inad", a, expired)
        .await
        .expect("cache");
    d.record(OTHER_CF, None, "inad", a, ts("2030-01-01T00:00:00Z"))
        .await
        .expect("cache");
    ids
}

fn attachments(db: &TestDb) -> std::path::PathBuf {
    db.dir.join("attachments")
}

async fn retention_clears_each_kind_at_its_age_in_batches(db: &TestDb) {
    write_world(db, 23).await;
    let store = &db.store;
    let days = 400;
    let limit = ts(A).plus(Retention::seconds(days));
    let r = retention(days, 10);

    // One second before the old data's limit: nothing goes.
    let early = store
        .privacy()
        .apply_retention(&r, &attachments(db), limit.plus(-1), 200)
        .await
        .expect("pass");
    assert_eq!(
        early.counts,
        RetentionCounts {
            domiciles: 1,
            ..RetentionCounts::default()
        },
        "only the expired domicile of a code with no open ticket goes at once"
    );

    // Just past it (the young data is still two hours short of its own).
    let now = limit.plus(3600);
    let pass = store
        .privacy()
        .apply_retention(&r, &attachments(db), now, 200)
        .await
        .expect("pass");
    let c = pass.counts;
    assert_eq!(c.message_bodies, 23, "{pass:?}");
    assert_eq!(c.closed_ticket_contacts, 23, "{pass:?}");
    assert_eq!(
        c.inbound, 3,
        "two replies and one unmatched, not the pending one"
    );
    assert_eq!(c.attachments, 1, "file 2 is still named by the young reply");
    assert_eq!(c.audit, 1);
    assert_eq!(c.domiciles, 0, "gone in the first pass");
    assert!(!pass.unfinished);
    // 23 rows in batches of 10: three batches each for messages and tickets, one for each
    // other kind.
    assert_eq!(pass.batches, 3 + 3 + 1 + 1 + 1, "{pass:?}");

    // The old tickets keep what the record needs, not the citizen.
    let t = store
        .tickets()
        .ticket("2026/000001")
        .await
        .expect("read")
        .expect("ticket");
    assert!(t.closed_at.is_some() && t.citizen.email.is_none() && t.citizen.mobile.is_none());
    assert!(t.citizen.fiscal_code.is_none());
    assert_eq!(
        count(
            store,
            &format!(
                "SELECT COUNT(*) FROM tickets WHERE fiscal_code = '{CF}' OR citizen LIKE '%{EMAIL}%'"
            )
        )
        .await,
        0
    );
    assert_eq!(
        count(
            store,
            &format!("SELECT COUNT(*) FROM ticket_events WHERE data LIKE '%{EMAIL}%'")
        )
        .await,
        0
    );
    assert_eq!(
        count(
            store,
            "SELECT COUNT(*) FROM satisfaction WHERE comment IS NULL AND score = 5"
        )
        .await,
        1,
        "the score stays for the reports, the comment goes"
    );
    // Messages: rows kept, words gone; the young message and the pending one untouched.
    assert_eq!(count(store, "SELECT COUNT(*) FROM outbox").await, 25);
    assert_eq!(
        count(
            store,
            "SELECT COUNT(*) FROM outbox WHERE rendered IS NOT NULL OR address <> '' OR last_error IS NOT NULL"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            store,
            "SELECT COUNT(*) FROM outbox WHERE rendered IS NOT NULL AND dedupe_key IN ('young', 'pending')"
        )
        .await,
        2
    );
    // Inbound: the young and the pending record keep everything.
    assert_eq!(
        count(
            store,
            &format!(
                "SELECT COUNT(*) FROM inbound_messages WHERE sender IS NOT NULL OR raw IS NOT NULL \
                 OR parsed LIKE '%{REPLY}%'"
            )
        )
        .await,
        2
    );
    assert!(!attachments(db).join(file_name(1)).exists());
    assert!(attachments(db).join(file_name(2)).exists());
    assert!(attachments(db).join(file_name(3)).exists());
    assert_eq!(count(store, "SELECT COUNT(*) FROM audit_log").await, 1);
    assert_eq!(
        count(store, "SELECT COUNT(*) FROM digital_domiciles").await,
        2
    );
    // The young ticket still has its citizen.
    let young = store
        .tickets()
        .ticket("2026/000900")
        .await
        .expect("read")
        .expect("ticket");
    assert_eq!(young.citizen.email.as_deref(), Some("anna@example.it"));

    // A pass again at the same instant finds nothing; two hours on, the young data goes.
    let again = store
        .privacy()
        .apply_retention(&r, &attachments(db), now, 200)
        .await
        .expect("pass");
    assert_eq!(again.counts.total(), 0, "{again:?}");
    let later = store
        .privacy()
        .apply_retention(&r, &attachments(db), now.plus(7200), 200)
        .await
        .expect("pass");
    assert_eq!(
        (
            later.counts.message_bodies,
            later.counts.closed_ticket_contacts,
            later.counts.inbound,
            later.counts.attachments,
            later.counts.audit
        ),
        (1, 1, 1, 1, 1),
        "{later:?}"
    );

    // A pass capped at one batch per kind stops early and says so; the next finishes.
    let more = write_more_closed(store, 25, now).await;
    let capped = store
        .privacy()
        .apply_retention(
            &r,
            &attachments(db),
            now.plus(Retention::seconds(days) + 7200 + 3600),
            1,
        )
        .await
        .expect("pass");
    assert!(capped.unfinished, "{capped:?}");
    assert_eq!(capped.counts.closed_ticket_contacts, 10);
    let rest = store
        .privacy()
        .apply_retention(
            &r,
            &attachments(db),
            now.plus(Retention::seconds(days) + 7200 + 3600),
            200,
        )
        .await
        .expect("pass");
    assert_eq!(rest.counts.closed_ticket_contacts, more - 10);

    // An erased ticket still replays: it can be reopened.
    event(
        store,
        "2026/000001",
        json!({"kind": "reopened", "at": now.plus(60).to_string(), "reason": "ricorso"}),
    )
    .await;
    let t = store
        .tickets()
        .ticket("2026/000001")
        .await
        .expect("read")
        .expect("ticket");
    assert!(t.closed_at.is_none());
    // Contacts given again are personal data again: gone after the next closure's period.
    let change = messo::ticket::contact_change(
        &json!({"email": "nuovo@example.it", "reason": "al telefono"}),
    )
    .expect("a correction");
    store
        .queues()
        .correct_contact("2026/000001", "urp1", change, now, now.plus(120))
        .await
        .expect("corrected");
    close(store, "2026/000001", now.plus(180)).await;
    let past = now.plus(180 + Retention::seconds(days) + 3600);
    store
        .privacy()
        .apply_retention(&r, &attachments(db), past, 200)
        .await
        .expect("pass");
    assert_eq!(
        count(
            store,
            "SELECT COUNT(*) FROM ticket_events WHERE data LIKE '%nuovo@example.it%'"
        )
        .await
            + count(
                store,
                "SELECT COUNT(*) FROM tickets WHERE citizen LIKE '%nuovo@example.it%' \
             OR citizen_email IS NOT NULL AND number = '2026/000001'"
            )
            .await,
        0
    );
}

/// `n` more tickets closed at `at`; how many.
async fn write_more_closed(store: &Store, n: usize, at: Timestamp) -> u64 {
    for i in 0..n {
        let number = format!("2027/{:06}", i + 1);
        create(
            store,
            &number,
            citizen(OTHER_CF, "b@example.it"),
            at.plus(-86_400),
        )
        .await;
        close(store, &number, at).await;
    }
    n as u64
}

fn january() -> ReportRequest {
    ReportRequest {
        period: Period::new(
            chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("date"),
            chrono::NaiveDate::from_ymd_opt(2026, 1, 31).expect("date"),
        )
        .expect("period"),
        group: GroupBy::parse("office").expect("grouping"),
        office: None,
        tickets: Measure::ALL.to_vec(),
        comments: false,
    }
}

/// The report's figures, as JSON, computed afresh (the kept copy is dropped first).
async fn report(store: &Store, at: Timestamp) -> Value {
    sql(store, "DELETE FROM report_cache").await;
    let r = monitoring::compliance(store, &config(), &january(), at)
        .await
        .expect("report");
    let mut v = serde_json::to_value(&r).expect("json");
    v.as_object_mut().expect("object").remove("generated_at");
    v
}

async fn reports_give_the_same_figures_after_retention(db: &TestDb) {
    write_world(db, 12).await;
    let store = &db.store;
    let at = ts("2026-02-10T09:00:00+01:00");
    let before = report(store, at).await;
    assert!(
        before["total"]["received"].as_i64().unwrap_or(0) >= 12,
        "{before}"
    );
    let pass = store
        .privacy()
        .apply_retention(
            &retention(180, 10),
            &attachments(db),
            ts(A).plus(Retention::seconds(180) + 86_400),
            200,
        )
        .await
        .expect("pass");
    assert!(pass.counts.closed_ticket_contacts >= 12, "{pass:?}");
    let after = report(store, at).await;
    assert_eq!(before, after);
}

async fn the_daemon_pass_counts_each_kind(db: &TestDb) {
    write_world(db, 3).await;
    let metrics = Metrics::new();
    let mut config = config();
    config.retention = retention(400, 10);
    config.inbound.attachments_dir = attachments(db);
    let h = messo::daemon::Housekeeping::from_config(&config);
    let now = ts(A).plus(Retention::seconds(400) + 3600);
    let r = messo::daemon::housekeeping(&db.store, &h, &metrics, now)
        .await
        .expect("a report");
    assert_eq!(r.counts.closed_ticket_contacts, 3);
    assert_eq!(metrics.retention_rows("closed_ticket_contacts"), 3);
    assert_eq!(metrics.retention_rows("message_bodies"), 3);
    assert_eq!(metrics.retention_rows("attachments"), 1);
    let text = metrics.render(&messo::metrics::Scrape::default());
    assert!(
        text.contains("messo_retention_rows_total{kind=\"inbound\"} 3"),
        "{text}"
    );
}

fn cf(s: &str) -> FiscalCode {
    FiscalCode::parse(s).expect("codice fiscale")
}

/// One citizen with a closed ticket: a message, a reply with its integration, a satisfaction
/// answer, an opt-out, a cached domicile; another citizen beside.
async fn write_citizen(db: &TestDb) -> i64 {
    let store = &db.store;
    let received = ts("2026-03-02T10:00:00+01:00");
    let id = create(store, "2026/000010", citizen(CF, EMAIL), received).await;
    event(
        store,
        "2026/000010",
        json!({"kind": "integration_requested", "at": "2026-03-03T10:00:00+01:00", "missing": "documento"}),
    )
    .await;
    event(
        store,
        "2026/000010",
        json!({"kind": "integration_received", "at": "2026-03-04T10:00:00+01:00", "channel": "email", "text": REPLY}),
    )
    .await;
    close(store, "2026/000010", ts("2026-03-05T10:00:00+01:00")).await;
    message(store, id, "m", "delivered", ts("2026-03-05T10:00:00+01:00")).await;
    std::fs::create_dir_all(attachments(db)).expect("folder");
    std::fs::write(attachments(db).join(file_name(7)), b"pdf").expect("file");
    reply(
        store,
        Some(id),
        "r1",
        "done",
        ts("2026-03-04T10:00:00+01:00"),
        &file_name(7),
    )
    .await;
    sql(
        store,
        &format!(
            "INSERT INTO satisfaction (ticket_id, score, comment, channel, answered_at) \
             VALUES ({id}, 4, '{COMMENT}', 'portal', {})",
            ts("2026-03-06T10:00:00+01:00").0
        ),
    )
    .await;
    sql(
        store,
        &format!(
            "INSERT INTO sms_opt_out (number, keyword, opted_out_at) VALUES ('{MOBILE}', 'STOP', {})",
            ts("2026-03-06T11:00:00+01:00").0
        ),
    )
    .await;
    store
        .domiciles()
        .record(
            CF,
            Some("mario@pec.it"),
            "inad",
            received,
            ts("2026-04-01T00:00:00Z"),
        )
        .await
        .expect("cache");
    let other = create(
        store,
        "2026/000011",
        citizen(OTHER_CF, "anna@example.it"),
        received,
    )
    .await;
    close(store, "2026/000011", ts("2026-03-05T10:00:00+01:00")).await;
    message_to(
        store,
        other,
        "m",
        "delivered",
        ts("2026-03-05T10:00:00+01:00"),
        "anna@example.it",
    )
    .await;
    id
}

async fn export_gathers_what_is_held_about_a_citizen(db: &TestDb) {
    write_citizen(db).await;
    let now = ts("2026-03-10T10:00:00+01:00");
    let v = db.privacy().export(&cf(CF), now).await.expect("export");
    assert_eq!(v["fiscal_code"], CF);
    let tickets = v["tickets"].as_array().expect("tickets");
    assert_eq!(tickets.len(), 1, "only this citizen's: {v:#}");
    let t = &tickets[0];
    assert_eq!(t["number"], "2026/000010");
    assert_eq!(t["citizen"]["email"], EMAIL);
    assert_eq!(t["fiscal_code"], CF);
    let kinds: Vec<&str> = t["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "received",
            "integration_requested",
            "integration_received",
            "closed"
        ]
    );
    assert_eq!(t["events"][2]["data"]["text"], REPLY);
    assert_eq!(t["messages"][0]["address"], EMAIL);
    assert!(
        t["messages"][0]["content"]["text"]
            .as_str()
            .is_some_and(|s| s.contains(EMAIL)),
        "the words as sent: {t:#}"
    );
    assert_eq!(t["inbound"][0]["sender"], EMAIL);
    assert_eq!(t["inbound"][0]["content"]["text"], REPLY);
    assert_eq!(t["satisfaction"]["comment"], COMMENT);
    assert_eq!(v["digital_domicile"]["pec"], "mario@pec.it");
    assert_eq!(v["sms_opt_outs"][0]["number"], MOBILE);
    assert_eq!(v["sms_opt_outs"][0]["keyword"], "STOP");
    assert_eq!(v["erasures"], json!([]));
    // Someone with nothing held gets an empty answer, not an error.
    let none = db
        .privacy()
        .export(&cf("NREFNC75D15L219Y"), now)
        .await
        .expect("export");
    assert_eq!(none["tickets"], json!([]));
    assert_eq!(none["digital_domicile"], Value::Null);
}

/// How many rows still hold `needle` in a column that can hold personal data.
async fn traces(store: &Store, needle: &str) -> i64 {
    let columns = [
        ("tickets", "citizen"),
        ("tickets", "fiscal_code"),
        ("tickets", "citizen_email"),
        ("tickets", "citizen_mobile"),
        ("ticket_events", "data"),
        ("outbox", "address"),
        ("outbox", "payload"),
        ("outbox", "rendered"),
        ("outbox", "last_error"),
        ("inbound_messages", "sender"),
        ("inbound_messages", "parsed"),
        ("inbound_messages", "raw"),
        ("satisfaction", "comment"),
        ("digital_domiciles", "fiscal_code"),
        ("digital_domiciles", "pec"),
        ("privacy_erasures", "cf_hash"),
        ("privacy_erasures", "counts"),
        ("audit_log", "detail"),
        ("audit_log", "object"),
    ];
    let mut n = 0;
    for (table, column) in columns {
        n += count(
            store,
            &format!("SELECT COUNT(*) FROM {table} WHERE {column} LIKE '%{needle}%'"),
        )
        .await;
    }
    n
}

async fn erase_leaves_nothing_personal_and_is_recorded(db: &TestDb) {
    let id = write_citizen(db).await;
    let store = &db.store;
    let now = ts("2026-03-10T10:00:00+01:00");
    let before = report_march(store, now).await;
    let done = store
        .privacy()
        .erase(
            &cf(CF),
            "mrossi",
            "richiesta prot. 1234/2026",
            &attachments(db),
            now,
        )
        .await
        .expect("erase");
    let Erasure::Erased {
        counts, tickets, ..
    } = done
    else {
        panic!("refused: {done:?}");
    };
    assert_eq!(tickets, ["2026/000010"]);
    assert_eq!(counts.closed_ticket_contacts, 1);
    assert_eq!(counts.message_bodies, 1);
    assert_eq!(counts.inbound, 1);
    assert_eq!(counts.attachments, 1);
    assert_eq!(counts.domiciles, 1);
    assert!(!attachments(db).join(file_name(7)).exists());

    // Nothing personal is left anywhere…
    for needle in [CF, EMAIL, REPLY, COMMENT, "mario@pec.it"] {
        assert_eq!(traces(store, needle).await, 0, "{needle} is still stored");
    }
    // …and the export for the same code shows only the erasure's record.
    let v = store.privacy().export(&cf(CF), now).await.expect("export");
    assert_eq!(v["tickets"], json!([]), "{v:#}");
    assert_eq!(v["digital_domicile"], Value::Null);
    assert_eq!(v["sms_opt_outs"], json!([]));
    let erasures = v["erasures"].as_array().expect("erasures");
    assert_eq!(erasures.len(), 1);
    assert_eq!(erasures[0]["operator"], "mrossi");
    assert_eq!(erasures[0]["reason"], "richiesta prot. 1234/2026");
    assert_eq!(erasures[0]["counts"]["closed_ticket_contacts"], 1);
    assert_eq!(
        count(
            store,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'privacy.erase' AND actor = 'mrossi'"
        )
        .await,
        1
    );

    // What must be kept is kept: the ticket, its dates, its history, the opt-out, the figures.
    let t = store
        .tickets()
        .ticket("2026/000010")
        .await
        .expect("read")
        .expect("ticket");
    assert_eq!(t.id, id);
    assert_eq!(t.closed_at, Some(ts("2026-03-05T10:00:00+01:00")));
    assert_eq!(
        count(
            store,
            &format!("SELECT COUNT(*) FROM ticket_events WHERE ticket_id = {id}")
        )
        .await,
        4
    );
    assert_eq!(
        count(
            store,
            &format!("SELECT COUNT(*) FROM sms_opt_out WHERE number = '{MOBILE}'")
        )
        .await,
        1
    );
    assert_eq!(report_march(store, now).await, before);
    // The other citizen is untouched.
    let other = store
        .privacy()
        .export(&cf(OTHER_CF), now)
        .await
        .expect("export");
    assert_eq!(other["tickets"][0]["citizen"]["email"], "anna@example.it");
    assert_eq!(
        other["tickets"][0]["messages"][0]["address"],
        "anna@example.it"
    );

    // A second request finds nothing more and is recorded too.
    let again = store
        .privacy()
        .erase(
            &cf(CF),
            "mrossi",
            "seconda richiesta",
            &attachments(db),
            now,
        )
        .await
        .expect("erase");
    assert!(
        matches!(&again, Erasure::Erased { counts, .. } if counts.total() == 0),
        "{again:?}"
    );
    assert_eq!(
        store
            .privacy()
            .erasures_of(&cf(CF))
            .await
            .expect("records")
            .len(),
        2
    );
}

async fn report_march(store: &Store, at: Timestamp) -> Value {
    sql(store, "DELETE FROM report_cache").await;
    let req = ReportRequest {
        period: Period::month(2026, 3).expect("month"),
        ..january()
    };
    let r = monitoring::compliance(store, &config(), &req, at)
        .await
        .expect("report");
    let mut v = serde_json::to_value(&r).expect("json");
    v.as_object_mut().expect("object").remove("generated_at");
    v
}

async fn erase_is_refused_while_a_ticket_is_open(db: &TestDb) {
    write_citizen(db).await;
    let store = &db.store;
    let received = ts("2026-03-08T10:00:00+01:00");
    create(store, "2026/000020", citizen(CF, EMAIL), received).await;
    let now = ts("2026-03-10T10:00:00+01:00");
    let before = store.privacy().export(&cf(CF), now).await.expect("export");
    let done = store
        .privacy()
        .erase(&cf(CF), "mrossi", "richiesta", &attachments(db), now)
        .await
        .expect("erase");
    assert_eq!(
        done,
        Erasure::Refused {
            open: vec!["2026/000020".to_owned()],
            sending: Vec::new()
        }
    );
    assert_eq!(
        store.privacy().export(&cf(CF), now).await.expect("export"),
        before,
        "nothing changed"
    );
    assert!(attachments(db).join(file_name(7)).exists());
    assert_eq!(
        count(store, "SELECT COUNT(*) FROM privacy_erasures").await,
        0
    );

    // Closed, with its closure notice still to be sent: refused too.
    close(store, "2026/000020", ts("2026-03-09T10:00:00+01:00")).await;
    let id = store
        .tickets()
        .ticket("2026/000020")
        .await
        .expect("read")
        .expect("ticket")
        .id;
    message(store, id, "closing", "retry", now).await;
    let done = store
        .privacy()
        .erase(&cf(CF), "mrossi", "richiesta", &attachments(db), now)
        .await
        .expect("erase");
    assert_eq!(
        done,
        Erasure::Refused {
            open: Vec::new(),
            sending: vec!["2026/000020".to_owned()]
        }
    );
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn the_privacy_commands_run_as_a_process(db: &TestDb) {
    write_citizen(db).await;
    create(
        &db.store,
        "2026/000020",
        citizen(CF, EMAIL),
        ts("2026-03-08T10:00:00+01:00"),
    )
    .await;
    let run = |args: &'static [&'static str]| {
        let db_url = db.url.clone();
        let dir = attachments(db);
        async move {
            tokio::task::spawn_blocking(move || {
                common::process::run(
                    common::process::messo()
                        .args(args)
                        .env("MESSO_DATABASE__URL", &db_url)
                        .env("MESSO_INBOUND__ATTACHMENTS_DIR", dir),
                    None,
                )
            })
            .await
            .expect("the command")
        }
    };

    let out = run(&["privacy", "export", "--cf", "RSSMRA85T10A562T"]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--cf: is not a valid codice fiscale"),
        "{}",
        text(&out.stderr)
    );

    let out = run(&["privacy", "export", "--cf", "rssmra85t10a562s"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on standard output");
    assert_eq!(v["tickets"].as_array().map(Vec::len), Some(2), "{v:#}");

    let out = run(&["privacy", "erase", "--cf", CF, "--reason", " "]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--reason"),
        "{}",
        text(&out.stderr)
    );

    let out = run(&[
        "privacy",
        "erase",
        "--cf",
        CF,
        "--reason",
        "prot. 99",
        "--operator",
        "urp1",
    ])
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("2026/000020 still open: the request is still being handled"),
        "{stderr}"
    );
    assert!(stderr.contains("SMS opt-outs"), "{stderr}");

    close(&db.store, "2026/000020", ts("2026-03-09T10:00:00+01:00")).await;
    let out = run(&[
        "privacy",
        "erase",
        "--cf",
        CF,
        "--reason",
        "prot. 99",
        "--operator",
        "urp1",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("2 ticket(s) pseudonymised (2026/000010, 2026/000020)"),
        "{stdout}"
    );
    assert!(stdout.contains("kept:"), "{stdout}");

    let out = run(&["privacy", "export", "--cf", CF]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["tickets"], json!([]));
    assert_eq!(v["erasures"][0]["operator"], "urp1");
    assert_eq!(traces(&db.store, EMAIL).await, 0);
    assert!(
        traces(&db.store, "anna@example.it").await > 0,
        "the other citizen's data stays"
    );
}

fn problems(toml: &str, env: &[(&str, &str)]) -> String {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    match Config::from_toml(toml, "test", env) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn retention_keys_are_checked_and_named() {
    let c = config();
    assert_eq!(
        c.retention,
        Retention {
            message_bodies_days: 365,
            closed_ticket_contacts_days: 730,
            inbound_days: 365,
            audit_days: 730,
            batch_size: 500,
        }
    );
    // notify.retention_days stays the default of the message bodies' period.
    let older = BUILTIN_TOML.replace("retention_days = 365", "retention_days = 200");
    let c = Config::from_toml(&older, "test", Vec::new()).expect("config");
    assert_eq!(c.retention.message_bodies_days, 200);
    let both = BUILTIN_TOML.replace("# message_bodies_days = 365", "message_bodies_days = 90");
    let c = Config::from_toml(&both, "test", Vec::new()).expect("config");
    assert_eq!(c.retention.message_bodies_days, 90);

    let e = problems(BUILTIN_TOML, &[("MESSO_RETENTION__AUDIT_DAYS", "30")]);
    assert!(
        e.contains("retention.audit_days: must be at least 180 days, found 30"),
        "{e}"
    );
    assert!(e.contains("MESSO_RETENTION__AUDIT_DAYS"), "{e}");
    let e = problems(
        &BUILTIN_TOML.replace("batch_size = 500", "batch_size = 0"),
        &[],
    );
    assert!(
        e.contains("retention.batch_size: must be between 10 and 5000, found 0"),
        "{e}"
    );
    let e = problems(
        &BUILTIN_TOML.replace("inbound_days = 365", "inbound_days = 4000"),
        &[],
    );
    assert!(
        e.contains("retention.inbound_days: must be between 1 and 3650, found 4000"),
        "{e}"
    );
    let e = problems(
        &BUILTIN_TOML.replace("inbound_days = 365", "inbound_dayz = 365"),
        &[],
    );
    assert!(e.contains("inbound_dayz"), "{e}");
}

/// The rate of the retention pass: `PRIVACY_ROWS` (20,000) closed tickets, each with its
/// `received` and `closed` events and a sent message, pseudonymised and cleared in batches of
/// 500 on SQLite; the figures in docs/performance.md come from
/// `cargo test --release --test privacy -- --ignored --nocapture retention_rate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn retention_rate() {
    let n: i64 = std::env::var("PRIVACY_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let db = start(Backend::Sqlite).await;
    let store = &db.store;
    let a = ts(A);
    create(store, "SEED", citizen(CF, EMAIL), a.plus(-86_400)).await;
    close(store, "SEED", a).await;
    sql(
        store,
        &format!(
            "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {n}) \
             INSERT INTO tickets (number, office, category, priority, subject, step, step_text, \
             citizen, fiscal_code, received_at, closed_at, waiting_since, policy_version, \
             calendar_version, create_hash, sla_due_at, sla_state, sla_elapsed_s, \
             sla_computed_at, next_check_at, last_event_at, created_at, updated_at, \
             citizen_mobile, citizen_email) \
             SELECT 'B-' || n, office, category, priority, subject, step, step_text, citizen, \
             fiscal_code, received_at, closed_at, waiting_since, policy_version, \
             calendar_version, create_hash, sla_due_at, sla_state, sla_elapsed_s, \
             sla_computed_at, next_check_at, last_event_at, created_at, updated_at, \
             citizen_mobile, citizen_email FROM tickets, seq WHERE number = 'SEED'"
        ),
    )
    .await;
    sql(
        store,
        "INSERT INTO ticket_events (ticket_id, kind, occurred_at, source, idempotency_key, \
         content_hash, data, recorded_at) \
         SELECT t.id, e.kind, e.occurred_at, e.source, e.idempotency_key, e.content_hash, \
         e.data, e.recorded_at FROM tickets t, ticket_events e \
         WHERE t.number LIKE 'B-%' AND e.ticket_id = (SELECT id FROM tickets WHERE number = 'SEED')",
    )
    .await;
    sql(
        store,
        &format!(
            "INSERT INTO outbox (ticket_id, kind, dedupe_key, recipient, channel, address, \
             language, payload, not_before, state, created_at, updated_at, delivered_at, rendered) \
             SELECT id, 'ricevuta', 'b', 'citizen', 'email', '{EMAIL}', 'it', '{{}}', {at}, \
             'delivered', {at}, {at}, {at}, '{{\"text\": \"Gentile cittadino\"}}' \
             FROM tickets WHERE number LIKE 'B-%'",
            at = a.0
        ),
    )
    .await;
    let now = a.plus(Retention::seconds(400) + 3600);
    let started = std::time::Instant::now();
    let pass = store
        .privacy()
        .apply_retention(&retention(400, 500), &attachments(&db), now, 1000)
        .await
        .expect("pass");
    let took = started.elapsed().as_secs_f64();
    assert_eq!(pass.counts.closed_ticket_contacts, n as u64 + 1);
    assert_eq!(pass.counts.message_bodies, n as u64);
    let rows = pass.counts.closed_ticket_contacts + pass.counts.message_bodies;
    println!(
        "{} tickets and {} messages in {} batches of 500: {took:.2} s, {:.0} rows/s",
        pass.counts.closed_ticket_contacts,
        pass.counts.message_bodies,
        pass.batches,
        rows as f64 / took
    );
    db.finish().await;
}
