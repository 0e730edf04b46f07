//! The console's search over real HTTP on SQLite and on the real PostgreSQL: a ticket found by
//! each key as an officer types it during a phone call (two spellings of a number, a mobile
//! with spaces, an e-mail and a codice fiscale in mixed case), filters by office, state and
//! period alone and together, pages that neither repeat nor skip a ticket (by id, and by
//! receipt with a period), unknown parameters refused by name, contacts always masked.

#![allow(dead_code)]

mod common;

use std::collections::BTreeSet;

use common::admin::{Console, Session};
use common::{Backend, TestClock, on_both, ts};
use messo::config::{BUILTIN_TOML, Config};
use messo::store::Role;
use messo::ticket::{NewEvent, NewTicket, Source};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SEARCH: &str = "/api/v1/admin/tickets";

async fn start(backend: Backend) -> Console {
    let config = Config::from_toml(BUILTIN_TOML, "test", Vec::new()).expect("config");
    let c = common::admin::start(
        backend,
        config,
        TestClock::at("2026-03-20T10:00:00+01:00"),
        &[("elena", Role::Editor), ("vito", Role::Viewer)],
    )
    .await;
    // The citizen on the phone: every contact, typed by the CRM in its own way.
    ticket(
        &c,
        "2026/000123",
        "tributi",
        "2026-03-02T10:15:00+01:00",
        json!({"email": "Mario.Rossi@Example.it", "mobile": "+39 347 123 4567",
               "fiscal_code": "rssmra80a01h501u", "language": "it"}),
    )
    .await;
    // Another citizen's ticket, closed.
    ticket(
        &c,
        "2026/000124",
        "anagrafe",
        "2026-03-03T09:00:00+01:00",
        json!({"email": "anna.bianchi@example.it", "language": "it"}),
    )
    .await;
    let closed = NewEvent::from_json(&json!({"kind": "closed", "at": "2026-03-04T09:00:00+01:00"}))
        .expect("event");
    c.store
        .tickets()
        .append_event("2026/000124", &closed, None, Source::Api, c.now())
        .await
        .expect("close");
    // Seven tickets of one office, received on days out of the order they were written in.
    for (i, day) in [5, 2, 9, 4, 11, 3, 10].iter().enumerate() {
        ticket(
            &c,
            &format!("2026/0002{i:02}"),
            "urbanistica",
            &format!("2026-03-{day:02}T11:00:00+01:00"),
            json!({"email": format!("c{i}@example.it"), "language": "it"}),
        )
        .await;
    }
    c
}

async fn ticket(c: &Console, number: &str, office: &str, received: &str, citizen: Value) {
    let t = NewTicket::from_json(&json!({
        "number": number, "office": office, "priority": "normale",
        "subject": "Richiesta", "received_at": received, "citizen": citizen,
    }))
    .expect("ticket");
    c.store
        .tickets()
        .create_ticket(&t, Source::Api, ts(received))
        .await
        .expect("create");
}

/// The numbers of a search's items, and the whole answer.
async fn numbers(s: &Session, query: &str) -> (Vec<String>, Value) {
    let (status, v) = s.get(&format!("{SEARCH}?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{query}: {v}");
    let n = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["number"].as_str().expect("number").to_owned())
        .collect();
    (n, v)
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn found_by_each_key_as_typed_on_the_phone(c: &Console) {
    let s = c.session("vito").await;
    let one = vec!["2026/000123".to_owned()];
    for (query, by) in [
        (format!("q={}", enc("2026 123")), "number"),
        (format!("q={}", enc("pratica 2026-000123")), "number"),
        (format!("q={}", enc("000123/2026")), "number"),
        (format!("number={}", enc("2026-123")), "number"),
        (format!("q={}", enc("347 123 4567")), "mobile"),
        (format!("mobile={}", enc("0039 347 1234567")), "mobile"),
        (format!("q={}", enc("MARIO.rossi@example.IT")), "email"),
        (format!("email={}", enc(" mario.ROSSI@example.it")), "email"),
        (format!("q={}", enc("RssMra80A01h501U")), "fiscal_code"),
        (
            format!("fiscal_code={}", enc("rssmra80a01h501u")),
            "fiscal_code",
        ),
    ] {
        let (n, v) = numbers(&s, &query).await;
        assert_eq!(n, one, "{query}: {v}");
        assert_eq!(v["matched_by"], by, "{query}");
        assert_eq!(v["next"], Value::Null, "{query}");
    }
    // Contacts in a list are masked, whoever asks.
    let (_, v) = numbers(&s, "q=2026%2F000123").await;
    let item = &v["items"][0];
    assert_eq!(
        item["citizen"],
        json!({"email": "m***@example.it", "mobile": "+39***567", "fiscal_code": "RSS***01U"})
    );
    assert_eq!(item["office"], "tributi");
    assert_eq!(item["state"], "running");
    assert_eq!(item["received_at"], "2026-03-02T10:15:00+01:00");
    assert!(item["due_at"].is_string(), "{item}");
    // Nothing for a number that is not there, nor for a key combined with a filter it fails.
    assert!(numbers(&s, "q=2026%2F999999").await.0.is_empty());
    assert!(
        numbers(&s, "q=2026%2F000123&office=anagrafe")
            .await
            .0
            .is_empty()
    );
    // A number exactly as stored, outside the configured format.
    assert!(numbers(&s, "number=H-1").await.0.is_empty());
}

async fn filters_alone_and_together(c: &Console) {
    let s = c.session("elena").await;
    let set = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();
    let urbanistica: BTreeSet<String> = (0..7).map(|i| format!("2026/0002{i:02}")).collect();
    let (n, v) = numbers(&s, "office=urbanistica").await;
    assert_eq!(set(n), urbanistica);
    assert_eq!(v["matched_by"], "filters");
    assert_eq!(
        numbers(&s, "state=closed").await.0,
        vec!["2026/000124".to_owned()]
    );
    let (open, _) = numbers(&s, "state=open").await;
    assert_eq!(open.len(), 8, "{open:?}");
    assert!(!open.contains(&"2026/000124".to_owned()));
    // On 20 March every open ticket received by the 11th is past its five working days.
    let (breached, _) = numbers(&s, "state=breached").await;
    let (running, _) = numbers(&s, "state=running").await;
    assert_eq!(
        breached.len() + running.len(),
        8,
        "{breached:?} {running:?}"
    );
    assert!(numbers(&s, "state=paused").await.0.is_empty());
    // A period: local days of receipt, both ends included.
    let (n, _) = numbers(&s, "from=2026-03-03&to=2026-03-05").await;
    assert_eq!(
        n,
        ["2026/000200", "2026/000203", "2026/000205", "2026/000124"],
        "newest received first"
    );
    let (n, _) = numbers(&s, "office=urbanistica&from=2026-03-09").await;
    assert_eq!(n, ["2026/000204", "2026/000206", "2026/000202"]);
    let (n, _) = numbers(&s, "to=2026-03-02").await;
    assert_eq!(n, ["2026/000201", "2026/000123"]);
    assert_eq!(
        numbers(&s, "office=anagrafe&state=closed").await.0,
        ["2026/000124"]
    );
    assert!(numbers(&s, "office=anagrafe&state=open").await.0.is_empty());
    assert_eq!(
        set(numbers(&s, "office=urbanistica&state=open").await.0),
        urbanistica
    );
    let (n, _) = numbers(&s, "state=closed&from=2026-03-01&to=2026-03-31").await;
    assert_eq!(n, ["2026/000124"]);
    let (n, _) = numbers(&s, "state=open&from=2026-03-10&to=2026-03-11").await;
    assert_eq!(n, ["2026/000204", "2026/000206"]);

    // What the console cannot read is refused, naming the field.
    for (query, field) in [
        ("colour=red", "colour"),
        ("state=lost", "state"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("from=03%2F03%2F2026", "from"),
        ("from=2026-03-05&to=2026-03-04", "to"),
        ("after=x", "after"),
        ("mobile=abc", "mobile"),
        ("q=2026%2F000123&number=2026%2F000124", "q"),
    ] {
        let (status, p) = s.get(&format!("{SEARCH}?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {p}");
        assert_eq!(p["errors"][0]["field"], field, "{query}: {p}");
    }
    // Signed out: 401.
    let r = reqwest::get(format!("{}{SEARCH}", c.base))
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// Every page of `query` in `limit`s, following `next`.
async fn all_pages(s: &Session, query: &str, limit: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = match &after {
            Some(a) => format!("{query}&limit={limit}&after={}", enc(a)),
            None => format!("{query}&limit={limit}"),
        };
        let (n, v) = numbers(s, &q).await;
        assert!(n.len() <= limit);
        pages.push(n);
        match v["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
        assert!(pages.len() < 20, "pages never end");
    }
    pages
}

async fn pages_neither_repeat_nor_skip(c: &Console) {
    let s = c.session("vito").await;
    let (whole, _) = numbers(&s, "office=urbanistica&limit=100").await;
    assert_eq!(whole.len(), 7);
    let pages = all_pages(&s, "office=urbanistica", 3).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    assert_eq!(
        pages.concat(),
        whole,
        "newest first by id, no repeat, no gap"
    );
    let expected: Vec<String> = (0..7).rev().map(|i| format!("2026/0002{i:02}")).collect();
    assert_eq!(whole, expected);

    // With a period the pages go by receipt.
    let (whole, _) = numbers(&s, "from=2026-03-01&to=2026-03-31&limit=100").await;
    assert_eq!(whole.len(), 9);
    let pages = all_pages(&s, "from=2026-03-01&to=2026-03-31", 2).await;
    assert_eq!(pages.len(), 5);
    assert_eq!(pages.concat(), whole);
    // A cursor of a search without a period does not continue one with it.
    let (_, first) = numbers(&s, "office=urbanistica&limit=2").await;
    let next = first["next"].as_str().expect("next").to_owned();
    let (status, p) = s
        .get(&format!("{SEARCH}?from=2026-03-01&after={}", enc(&next)))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
}

on_both!(start;
    found_by_each_key_as_typed_on_the_phone,
    filters_alone_and_together,
    pages_neither_repeat_nor_skip,
);
