//! The console's work queues over real HTTP, on SQLite and PostgreSQL: held messages resent,
//! marked delivered or given up; unreachable citizens reached by phone or their contact
//! corrected (the notice sent again through the new address); unmatched replies attached
//! (a waiting ticket resumes its clock and owes `ripresa`) or dismissed; opt-outs lifted. Each
//! action: its effect in the store and its audit record, the double click (one effect, one
//! record, `already`), a viewer refused, a missing CSRF token refused.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::admin::{Console, Session};
use common::{Backend, TestClock, on_both, ts};
use messo::config::{BUILTIN_TOML, Config};
use messo::delivery::{Channel, DoubtPolicy, OutMessage, Outcome, Sending, Sent};
use messo::domain::Channel as ChannelName;
use messo::inbound::{Parsed, Route};
use messo::store::{NewInbound, Role};
use messo::ticket::{NewEvent, NewTicket, Source};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

const NOW: &str = "2026-03-03T10:00:00+01:00";

async fn start(backend: Backend) -> Console {
    let config = Config::from_toml(BUILTIN_TOML, "test", Vec::new()).expect("config");
    common::admin::start(
        backend,
        config,
        TestClock::at(NOW),
        &[("elena", Role::Editor), ("vito", Role::Viewer)],
    )
    .await
}

/// What a stub channel answers.
#[derive(Clone, Copy)]
enum Answer {
    Deliver,
    Uncertain,
    Refuse,
}

/// A channel that answers as told and remembers (outbox id, in doubt, address) of each send.
#[derive(Clone)]
struct Stub {
    answer: Answer,
    got: Arc<Mutex<Vec<(i64, bool, String)>>>,
}

impl Stub {
    fn new(answer: Answer) -> Stub {
        Stub {
            answer,
            got: Arc::default(),
        }
    }
}

impl Channel for Stub {
    fn name(&self) -> &str {
        "stub"
    }

    fn concurrency(&self) -> usize {
        2
    }

    fn doubt_policy(&self) -> DoubtPolicy {
        DoubtPolicy::Hold
    }

    fn ready(&self, _now: Instant) -> bool {
        true
    }

    fn send<'a>(&'a self, msg: &'a OutMessage, in_doubt: bool) -> Sending<'a> {
        Box::pin(async move {
            self.got
                .lock()
                .expect("lock")
                .push((msg.outbox_id, in_doubt, msg.address.to_string()));
            let outcome = match self.answer {
                Answer::Deliver => Outcome::Delivered {
                    provider_id: Some(msg.order_id()),
                    code: None,
                },
                Answer::Uncertain => Outcome::Uncertain {
                    reason: "timeout after the request was sent".into(),
                },
                Answer::Refuse => Outcome::permanent("no such mailbox"),
            };
            Sent::one("stub", outcome, Instant::now(), 0)
        })
    }
}

/// A ticket received the day before with `citizen`.
async fn ticket(h: &Console, number: &str, citizen: Value) {
    let t = NewTicket::from_json(&json!({
        "number": number,
        "office": "tributi",
        "priority": "normale",
        "subject": "Rimborso TARI",
        "received_at": "2026-03-02T10:15:00+01:00",
        "citizen": citizen,
    }))
    .expect("ticket");
    h.store
        .tickets()
        .create_ticket(&t, Source::Api, ts("2026-03-02T10:15:00+01:00"))
        .await
        .expect("create");
}

/// The engine's pass, then the dispatcher with `channel` answering for `name` (files for the
/// others).
async fn send(h: &Console, dir: &Path, name: ChannelName, channel: &Stub) {
    h.engine.cycle(h.now()).await.expect("engine");
    let d = Arc::new(
        Arc::into_inner(h.dispatcher(dir))
            .expect("one dispatcher")
            .with_channel(name, Box::new(channel.clone())),
    );
    d.drain(&h.clock.clock(), 1000).await.expect("drain");
}

/// The citizen's message of `kind` for ticket `number`: (id, state).
async fn message(h: &Console, number: &str, kind: &str) -> (i64, String) {
    let r = sqlx::query(
        "SELECT o.id, o.state FROM outbox o JOIN tickets t ON t.id = o.ticket_id \
         WHERE t.number = $1 AND o.kind = $2 AND o.recipient = 'citizen' ORDER BY o.id LIMIT 1",
    )
    .bind(number)
    .bind(kind)
    .fetch_one(h.store.pool())
    .await
    .expect("message");
    (r.get(0), r.get(1))
}

async fn audits(h: &Console, action: &str) -> i64 {
    h.count(&format!(
        "SELECT COUNT(*) FROM audit_log WHERE action = '{action}'"
    ))
    .await
}

/// POST with the session's cookie but no CSRF token.
async fn post_without_csrf(s: &Session, path: &str, body: Value) -> StatusCode {
    s.client
        .post(format!("{}{path}", s.base))
        .header("cookie", &s.cookie)
        .json(&body)
        .send()
        .await
        .expect("post")
        .status()
}

/// The refusals every action shares: a viewer (403), an editor without CSRF token (403).
async fn refused(viewer: &Session, editor: &Session, path: &str, body: Value) {
    let (status, p) = viewer.post(path, body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "viewer on {path}: {p}");
    assert_eq!(
        post_without_csrf(editor, path, body).await,
        StatusCode::FORBIDDEN,
        "no CSRF token on {path}"
    );
}

async fn uncertain_messages_are_resent_delivered_or_given_up(h: &Console) {
    let both = |email: &str| json!({"email": email, "mobile": "+393471234567", "preferred_channel": "sms"});
    for (n, e) in [
        ("2026/000001", "a@example.it"),
        ("2026/000002", "b@example.it"),
        ("2026/000003", "c@example.it"),
    ] {
        ticket(h, n, both(e)).await;
    }
    let dir = common::fresh_dir("desk_uncertain");
    send(h, &dir, ChannelName::Sms, &Stub::new(Answer::Uncertain)).await;
    let (a, state) = message(h, "2026/000001", "ricevuta").await;
    assert_eq!(state, "uncertain");
    let (b, _) = message(h, "2026/000002", "ricevuta").await;
    let (c, _) = message(h, "2026/000003", "ricevuta").await;

    let editor = h.session("elena").await;
    let viewer = h.session("vito").await;
    let (status, counts) = viewer.get("/api/v1/admin/queues").await;
    assert_eq!(status, StatusCode::OK, "{counts}");
    assert_eq!(counts["uncertain"], 3, "{counts}");
    let (_, page) = viewer.get("/api/v1/admin/queues/uncertain?limit=2").await;
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{page}");
    assert_eq!(items[0]["id"], a);
    assert_eq!(items[0]["number"], "2026/000001");
    assert_eq!(items[0]["channel"], "sms");
    assert!(
        items[0]["address"]
            .as_str()
            .is_some_and(|s| s.contains("***")),
        "masked: {page}"
    );
    let next = page["next"].as_str().expect("a next page").to_owned();
    let (_, rest) = viewer
        .get(&format!(
            "/api/v1/admin/queues/uncertain?limit=2&after={next}"
        ))
        .await;
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1), "{rest}");
    assert_eq!(rest["next"], Value::Null);
    let (status, p) = viewer
        .get("/api/v1/admin/queues/uncertain?limit=0&sort=x")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    let named: Vec<&str> = p["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(named, ["limit", "sort"]);

    // Resend: the same row back to the queue, not in doubt, the resend counted.
    let resend = format!("/api/v1/admin/messages/{a}/resend");
    refused(&viewer, &editor, &resend, json!({})).await;
    let (status, done) = editor
        .post(&resend, json!({"reason": "il gestore non risponde"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(
        (done["already"].clone(), done["state"].clone()),
        (json!(false), json!("pending"))
    );
    let (status, again) = editor
        .post(&resend, json!({"reason": "il gestore non risponde"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["already"], true, "{again}");
    let row = sqlx::query("SELECT state, in_doubt, resent FROM outbox WHERE id = $1")
        .bind(a)
        .fetch_one(h.store.pool())
        .await
        .expect("row");
    assert_eq!(
        (
            row.get::<String, _>(0),
            row.get::<i64, _>(1),
            row.get::<i64, _>(2)
        ),
        ("pending".into(), 0, 1)
    );
    assert_eq!(audits(h, "message.resend").await, 1);
    // The ticket page tells who resent it and why.
    let (_, page) = viewer.get("/api/v1/admin/tickets/2026%2F000001").await;
    let shown = page["messages"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["id"] == a))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(shown["resolution"]["action"], "resend", "{shown}");
    assert_eq!(shown["resolution"]["by"], "elena", "{shown}");
    assert_eq!(
        shown["resolution"]["reason"], "il gestore non risponde",
        "{shown}"
    );
    // The dispatcher sends it, the same row (the same order id), not held again.
    let ok = Stub::new(Answer::Deliver);
    send(h, &dir, ChannelName::Sms, &ok).await;
    assert_eq!(message(h, "2026/000001", "ricevuta").await.1, "delivered");
    assert_eq!(
        ok.got.lock().expect("lock").as_slice(),
        [(a, false, "+393471234567".to_owned())]
    );

    // Mark delivered: the reason is required.
    let mark = format!("/api/v1/admin/messages/{b}/mark-delivered");
    refused(&viewer, &editor, &mark, json!({"reason": "x"})).await;
    let (status, p) = editor.post(&mark, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["errors"][0]["field"], "reason");
    let (status, done) = editor
        .post(
            &mark,
            json!({"reason": "il cittadino conferma al telefono"}),
        )
        .await;
    assert_eq!(
        (status, done["state"].clone()),
        (StatusCode::OK, json!("delivered")),
        "{done}"
    );
    let (_, again) = editor
        .post(
            &mark,
            json!({"reason": "il cittadino conferma al telefono"}),
        )
        .await;
    assert_eq!(again["already"], true);
    assert_eq!(message(h, "2026/000002", "ricevuta").await.1, "delivered");
    assert_eq!(audits(h, "message.mark_delivered").await, 1);
    let (status, p) = editor
        .post(&format!("/api/v1/admin/messages/{b}/resend"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("delivered")),
        "{p}"
    );

    // Give up: dead, and the fallback chain owes the e-mail at once.
    let give_up = format!("/api/v1/admin/messages/{c}/give-up");
    refused(&viewer, &editor, &give_up, json!({})).await;
    let (status, done) = editor
        .post(&give_up, json!({"reason": "numero inesistente"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let replacement = done["replacement"].as_i64().expect("a replacement");
    let (_, again) = editor
        .post(&give_up, json!({"reason": "numero inesistente"}))
        .await;
    assert_eq!(
        (again["already"].clone(), again["replacement"].clone()),
        (json!(true), json!(replacement))
    );
    let r = sqlx::query(
        "SELECT kind, channel, address, dedupe_key, state, not_before FROM outbox WHERE id = $1",
    )
    .bind(replacement)
    .fetch_one(h.store.pool())
    .await
    .expect("replacement");
    assert_eq!(
        (
            r.get::<String, _>(0),
            r.get::<String, _>(1),
            r.get::<String, _>(2),
            r.get::<String, _>(3),
            r.get::<String, _>(4)
        ),
        (
            "ricevuta".into(),
            "email".into(),
            "c@example.it".into(),
            "receipt>sms".into(),
            "pending".into()
        )
    );
    assert_eq!(r.get::<i64, _>(5), h.now().0);
    assert_eq!(message(h, "2026/000003", "ricevuta").await.1, "dead");
    assert_eq!(audits(h, "message.give_up").await, 1);
    assert_eq!(
        h.count("SELECT COUNT(*) FROM outbox WHERE state = 'uncertain'")
            .await,
        0
    );
    let (status, _) = editor
        .post("/api/v1/admin/messages/999999/resend", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let audit = sqlx::query("SELECT actor, object FROM audit_log WHERE action = 'message.give_up'")
        .fetch_one(h.store.pool())
        .await
        .expect("audit");
    assert_eq!(
        (audit.get::<String, _>(0), audit.get::<String, _>(1)),
        ("elena".into(), "2026/000003".into())
    );
}

async fn unreachable_citizens_are_reached_or_corrected(h: &Console) {
    ticket(h, "2026/000004", json!({"email": "sbagliato@example.it"})).await;
    ticket(h, "2026/000005", json!({"email": "errato@example.it"})).await;
    let dir = common::fresh_dir("desk_unreachable");
    // The e-mails are refused: no channel is left, the office is told.
    send(h, &dir, ChannelName::Email, &Stub::new(Answer::Refuse)).await;
    let (d, state) = message(h, "2026/000004", "ricevuta").await;
    assert_eq!(state, "dead");
    let (e, _) = message(h, "2026/000005", "ricevuta").await;
    assert_eq!(
        h.count("SELECT COUNT(*) FROM outbox WHERE kind = 'cittadino_irraggiungibile'")
            .await,
        2
    );
    let editor = h.session("elena").await;
    let viewer = h.session("vito").await;
    let (_, counts) = viewer.get("/api/v1/admin/queues").await;
    assert_eq!(counts["unreachable"], 2, "{counts}");
    let (_, page) = viewer.get("/api/v1/admin/queues/unreachable").await;
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{page}");
    assert_eq!(
        (items[0]["id"].clone(), items[0]["tried"].clone()),
        (json!(d), json!(["email"]))
    );

    // A contact made by phone: an event on the ticket, the message handled.
    let made = format!("/api/v1/admin/messages/{d}/contact-made");
    let body = json!({"channel": "phone", "text": "Richiamato: la pratica è in lavorazione"});
    refused(&viewer, &editor, &made, body.clone()).await;
    let (status, p) = editor
        .post(&made, json!({"channel": "fax", "text": "x"}))
        .await;
    assert!(
        status.is_client_error() && p["detail"].as_str().is_some_and(|d| d.contains("channel")),
        "{status} {p}"
    );
    let (status, done) = editor.post(&made, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let event_id = done["event_id"].as_i64().expect("event");
    let (_, again) = editor.post(&made, body).await;
    assert_eq!(
        (again["already"].clone(), again["event_id"].clone()),
        (json!(true), json!(event_id))
    );
    let t = h
        .store
        .tickets()
        .ticket("2026/000004")
        .await
        .expect("read")
        .expect("ticket");
    let events = h.store.tickets().events(t.id).await.expect("events");
    let contact: Vec<_> = events.iter().filter(|e| e.kind == "contact_made").collect();
    assert_eq!(contact.len(), 1);
    assert_eq!(
        (contact[0].id, contact[0].source.as_str()),
        (event_id, "console")
    );
    assert_eq!(contact[0].data["channel"], "phone");
    assert_eq!(audits(h, "message.contact_made").await, 1);
    // The engine owes nothing for it.
    let before = h.count("SELECT COUNT(*) FROM outbox").await;
    h.engine.cycle(h.now()).await.expect("engine");
    assert_eq!(h.count("SELECT COUNT(*) FROM outbox").await, before);

    // The contact corrected: the notice that never arrived goes to the new address.
    let contact = "/api/v1/admin/tickets/2026%2F000005/contact";
    let body = json!({"email": "giusto@example.it", "reason": "il cittadino ha telefonato"});
    refused(&viewer, &editor, contact, body.clone()).await;
    let (status, p) = editor
        .post(contact, json!({"email": "non-un-indirizzo", "reason": "x"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["errors"][0]["field"], "email");
    let (status, done) = editor.post(contact, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let requeued = done["detail"]["requeued"]
        .as_array()
        .expect("requeued")
        .clone();
    assert_eq!(requeued.len(), 1, "{done}");
    assert_eq!(requeued[0]["replaces"], json!([e]));
    let (_, again) = editor.post(contact, body).await;
    assert_eq!(again["already"], true, "{again}");
    assert_eq!(audits(h, "ticket.contact_changed").await, 1);
    let row =
        sqlx::query("SELECT citizen_email, citizen FROM tickets WHERE number = '2026/000005'")
            .fetch_one(h.store.pool())
            .await
            .expect("ticket");
    assert_eq!(row.get::<String, _>(0), "giusto@example.it");
    assert!(row.get::<String, _>(1).contains("giusto@example.it"));
    let new_id = requeued[0]["id"].as_i64().expect("id");
    let key: String = sqlx::query_scalar("SELECT dedupe_key FROM outbox WHERE id = $1")
        .bind(new_id)
        .fetch_one(h.store.pool())
        .await
        .expect("key");
    assert_eq!(key, format!("receipt~c{}", done["event_id"]));
    // The dispatcher sends it through the new address.
    let ok = Stub::new(Answer::Deliver);
    send(h, &dir, ChannelName::Email, &ok).await;
    let got = ok.got.lock().expect("lock").clone();
    assert!(
        got.contains(&(new_id, false, "giusto@example.it".to_owned())),
        "{got:?}"
    );
    let (_, counts) = viewer.get("/api/v1/admin/queues").await;
    assert_eq!(counts["unreachable"], 0, "{counts}");
    let (status, p) = editor
        .post(
            &format!("/api/v1/admin/messages/{e}/contact-made"),
            json!({"channel": "desk", "text": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    let (status, _) = editor
        .post(
            "/api/v1/admin/tickets/2026%2F999999/contact",
            json!({"email": "a@b.it", "reason": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A reply stored as the webhooks store it, then the daemon's pass over it.
async fn reply(h: &Console, id: &str, sender: &str, text: &str) -> i64 {
    let p = Parsed {
        route: Route::Sms,
        external_id: id.into(),
        sender: Some(sender.into()),
        text: Some(text.into()),
        occurred_at: Some(h.now().0 - 60),
        ..Parsed::default()
    };
    let accepted = h
        .store
        .inbound()
        .accept_inbound(&[NewInbound {
            endpoint: "skebby".into(),
            parsed: p,
            raw: "{}".into(),
            received_at: h.now(),
        }])
        .await
        .expect("accept");
    let policy = messo::store::inbound_policy(&h.config);
    h.store
        .inbound()
        .process_inbound(&policy, h.now(), 100)
        .await
        .expect("process");
    match accepted[0] {
        messo::store::Accepted::New(id) | messo::store::Accepted::Duplicate(id) => id,
    }
}

async fn unmatched_replies_are_attached_or_dismissed(h: &Console) {
    ticket(h, "2026/000006", json!({"email": "mario@example.it"})).await;
    let wait = NewEvent::from_json(&json!({"kind": "integration_requested",
        "at": "2026-03-02T12:00:00+01:00", "missing": "Copia dell'ISEE"}))
    .expect("event");
    h.store
        .tickets()
        .append_event("2026/000006", &wait, None, Source::Api, h.now())
        .await
        .expect("wait");
    h.engine.cycle(h.now()).await.expect("engine");
    let first = reply(h, "sm-1", "+393339998877", "Ecco il documento richiesto").await;
    let second = reply(
        h,
        "sm-2",
        "+393339998877",
        "Pubblicità: offerta imperdibile",
    )
    .await;
    let editor = h.session("elena").await;
    let viewer = h.session("vito").await;
    let (_, page) = viewer.get("/api/v1/admin/queues/unmatched").await;
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{page}");
    assert_eq!(items[0]["id"], first);
    assert_eq!(items[0]["text"], "Ecco il documento richiesto");
    assert_ne!(items[0]["sender"], "+393339998877", "masked");

    let attach = format!("/api/v1/admin/inbound/{first}/attach");
    let body = json!({"number": "2026/000006", "note": "il cittadino scrive da un altro numero"});
    refused(&viewer, &editor, &attach, body.clone()).await;
    let (status, done) = editor.post(&attach, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(
        (done["outcome"].clone(), done["number"].clone()),
        (json!("integration"), json!("2026/000006"))
    );
    let (_, again) = editor.post(&attach, body).await;
    assert_eq!(again["already"], true, "{again}");
    assert_eq!(audits(h, "inbound.attached").await, 1);
    // The clock resumed, and the engine owes `ripresa`.
    let t = h
        .store
        .tickets()
        .ticket("2026/000006")
        .await
        .expect("read")
        .expect("ticket");
    assert_eq!(t.waiting_since, None);
    assert_ne!(t.sla.state, "paused");
    let kinds: Vec<String> = h
        .store
        .tickets()
        .events(t.id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "integration_received")
            .count(),
        1,
        "{kinds:?}"
    );
    h.engine.cycle(h.now()).await.expect("engine");
    assert_eq!(
        h.count(&format!(
            "SELECT COUNT(*) FROM outbox WHERE ticket_id = {} AND kind = 'ripresa'",
            t.id
        ))
        .await,
        1
    );
    let row = sqlx::query(
        "SELECT status, outcome, ticket_id, detail FROM inbound_messages WHERE id = $1",
    )
    .bind(first)
    .fetch_one(h.store.pool())
    .await
    .expect("row");
    assert_eq!(
        (
            row.get::<String, _>(0),
            row.get::<String, _>(1),
            row.get::<i64, _>(2)
        ),
        ("done".into(), "integration".into(), t.id)
    );
    assert!(row.get::<String, _>(3).contains("elena"));

    // Dismissed with a note (required).
    let dismiss = format!("/api/v1/admin/inbound/{second}/dismiss");
    refused(&viewer, &editor, &dismiss, json!({"note": "x"})).await;
    let (status, p) = editor.post(&dismiss, json!({})).await;
    assert_eq!(
        (status, p["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("note"))
    );
    let (status, done) = editor.post(&dismiss, json!({"note": "pubblicità"})).await;
    assert_eq!(
        (status, done["state"].clone()),
        (StatusCode::OK, json!("dismissed")),
        "{done}"
    );
    let (_, again) = editor.post(&dismiss, json!({"note": "pubblicità"})).await;
    assert_eq!(again["already"], true);
    assert_eq!(audits(h, "inbound.dismissed").await, 1);
    let (status, p) = editor
        .post(
            &format!("/api/v1/admin/inbound/{second}/attach"),
            json!({"number": "2026/000006"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("dismissed")),
        "{p}"
    );
    let (status, _) = editor
        .post("/api/v1/admin/inbound/999999/dismiss", json!({"note": "x"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, counts) = viewer.get("/api/v1/admin/queues").await;
    assert_eq!(counts["unmatched"], 0, "{counts}");
}

async fn opt_outs_are_listed_and_lifted(h: &Console) {
    reply(h, "sm-stop", "+393471234567", "STOP").await;
    assert_eq!(h.count("SELECT COUNT(*) FROM sms_opt_out").await, 1);
    let editor = h.session("elena").await;
    let viewer = h.session("vito").await;
    let (_, page) = viewer.get("/api/v1/admin/queues/opt-outs").await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["items"][0]["keyword"], "STOP");
    assert!(
        page["items"][0]["number"]
            .as_str()
            .is_some_and(|n| n.contains("***")),
        "{page}"
    );
    let (_, one) = viewer
        .get("/api/v1/admin/queues/opt-outs?number=347%20123%204567")
        .await;
    assert_eq!(one["items"].as_array().map(Vec::len), Some(1), "{one}");
    let (_, none) = viewer
        .get("/api/v1/admin/queues/opt-outs?number=%2B393330000000")
        .await;
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0), "{none}");
    let (status, _) = viewer.get("/api/v1/admin/queues/opt-outs?number=abc").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let lift = "/api/v1/admin/opt-outs/lift";
    let body = json!({"number": "347 123 4567", "reason": "richiesta allo sportello"});
    refused(&viewer, &editor, lift, body.clone()).await;
    let (status, done) = editor.post(lift, body.clone()).await;
    assert_eq!(
        (status, done["state"].clone()),
        (StatusCode::OK, json!("lifted")),
        "{done}"
    );
    let (status, again) = editor.post(lift, body).await;
    assert_eq!(
        (status, again["already"].clone()),
        (StatusCode::OK, json!(true)),
        "{again}"
    );
    assert_eq!(h.count("SELECT COUNT(*) FROM sms_opt_out").await, 0);
    assert_eq!(audits(h, "opt_out.lifted").await, 1);
    let object: String =
        sqlx::query_scalar("SELECT object FROM audit_log WHERE action = 'opt_out.lifted'")
            .fetch_one(h.store.pool())
            .await
            .expect("audit");
    assert!(
        !object.contains("1234567") && object.contains("***"),
        "{object}"
    );
    let (status, _) = editor.post(lift, json!({"number": "+393330000000"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

on_both!(start;
    uncertain_messages_are_resent_delivered_or_given_up,
    unreachable_citizens_are_reached_or_corrected,
    unmatched_replies_are_attached_or_dismissed,
    opt_outs_are_listed_and_lifted,
);
