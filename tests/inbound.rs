//! Inbound webhooks over real HTTP on loopback, on SQLite and on the real PostgreSQL: citizens'
//! replies matched to their tickets (the clock resumes and `ripresa` is owed), forged and
//! replayed requests refused without a trace, duplicates answered once, opt-outs, unmatched
//! replies, delivery receipts moving forward only and starting the fallback chain.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{Backend, TestClock, TestDb, mail, on_both, serve, ts};
use messo::config::{BUILTIN_TOML, Config};
use messo::daemon::Engine;
use messo::domain::{Address, Channel, Kind, Lang, Recipient};
use messo::http::webhooks::{WebhookState, router};
use messo::inbound::verify::{generic_signature, twilio_signature};
use messo::store::{InboundPolicy, InboundWriter, NewOutbox, Store};
use messo::ticket::{NewEvent, NewTicket, Source};
use messo::time::Timestamp;
use serde_json::{Value, json};
use sqlx::Row;

const TWILIO_TOKEN: &str = "twilio-auth-token-0123";
const SKEBBY_TOKEN: &str = "skebby-url-token-0123456789";
const GENERIC_SECRET: &str = "generic-signing-secret-0123";
const MAIL_TOKEN: &str = "mail-url-token-0123456789";
/// What providers call: the configured public base URL, not the loopback address the test
/// server listens on (as behind a TLS proxy).
const PUBLIC: &str = "http://127.0.0.1:8080";

/// The relay whose Authentication-Results the tests' configuration trusts.
const TRUSTED_RELAY: &str = "mx.comune.roma.it";

const CITIZEN_MOBILE: &str = "+393471234567";
const CITIZEN_EMAIL: &str = "mario.rossi@example.it";

fn config(dir: &std::path::Path) -> Config {
    Config::from_toml(&config_text(dir), "test", Vec::new()).expect("config")
}

fn config_text(dir: &std::path::Path) -> String {
    format!(
        r#"{BUILTIN_TOML}
[inbound]
ticket_format = "{{year}}/{{seq:6}}"
reply_address = "urp@comune.roma.it"
attachments_dir = "{}"
trusted_authserv_ids = ["{TRUSTED_RELAY}"]
max_attachment_bytes = 1000

[[inbound.endpoints]]
name = "twilio"
family = "twilio"
auth_token = "{TWILIO_TOKEN}"

[[inbound.endpoints]]
name = "skebby"
family = "rest-it"
token = "{SKEBBY_TOKEN}"

[[inbound.endpoints]]
name = "centralino"
family = "generic"
secret = "{GENERIC_SECRET}"
rate_per_s = 100000

[[inbound.endpoints]]
name = "posta"
family = "mail"
token = "{MAIL_TOKEN}"

[[inbound.endpoints]]
name = "lento"
family = "generic"
secret = "{GENERIC_SECRET}"
rate_per_s = 3
"#,
        dir.join("attachments").display()
    )
}

struct Hook {
    base: String,
    store: Store,
    engine: Engine,
    policy: InboundPolicy,
    clock: TestClock,
    client: reqwest::Client,
    dir: PathBuf,
    db: TestDb,
}

async fn start(backend: Backend) -> Hook {
    messo::install_crypto();
    let db = TestDb::open(backend).await;
    let dir = db.dir.clone();
    let cfg = config(&dir);
    std::fs::write(dir.join("config.toml"), config_text(&dir)).expect("config file");
    db.register(&cfg).await;
    let store = db.store.clone();
    let clock = TestClock::at("2026-03-03T10:00:00+01:00");
    let writer = InboundWriter::spawn(store.clone(), Arc::new(tokio::sync::Notify::new()));
    let state = WebhookState::new(
        &cfg.inbound,
        &cfg.http.public_base_url,
        writer,
        clock.clock(),
    );
    Hook {
        base: serve(router(state)).await,
        engine: Engine::new(store.clone(), cfg.notify.clone()),
        policy: messo::store::inbound_policy(&cfg),
        store,
        clock,
        client: reqwest::Client::new(),
        dir,
        db,
    }
}

impl Hook {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    async fn finish(self) {
        self.db.finish().await;
    }

    /// A ticket of the citizen, waiting for an integrazione when `waiting`.
    async fn ticket(&self, number: &str, waiting: bool) -> i64 {
        let t = NewTicket::from_json(&json!({
            "number": number,
            "office": "anagrafe",
            "priority": "normale",
            "subject": "Cambio di residenza",
            "received_at": "2026-03-02T10:15:00+01:00",
            "citizen": {"email": CITIZEN_EMAIL, "mobile": CITIZEN_MOBILE}
        }))
        .expect("ticket");
        let at = ts("2026-03-02T10:15:00+01:00");
        self.store
            .tickets()
            .create_ticket(&t, Source::Api, at)
            .await
            .expect("create");
        if waiting {
            let e = NewEvent::from_json(&json!({
                "kind": "integration_requested",
                "at": "2026-03-02T11:00:00+01:00",
                "missing": "copia del documento d'identità"
            }))
            .expect("event");
            self.store
                .tickets()
                .append_event(
                    number,
                    &e,
                    None,
                    Source::Api,
                    ts("2026-03-02T11:00:00+01:00"),
                )
                .await
                .expect("append");
        }
        let rec = self
            .store
            .tickets()
            .ticket(number)
            .await
            .expect("get")
            .expect("ticket");
        // Settle what the engine owes so far, so a test sees only what the reply adds.
        self.engine
            .cycle(ts("2026-03-02T11:00:00+01:00"))
            .await
            .expect("engine");
        rec.id
    }

    async fn waiting(&self, number: &str) -> bool {
        let t = self
            .store
            .tickets()
            .ticket(number)
            .await
            .expect("get")
            .expect("ticket");
        t.waiting_since.is_some()
    }

    async fn kinds(&self, ticket_number: &str) -> Vec<String> {
        let t = self
            .store
            .tickets()
            .ticket(ticket_number)
            .await
            .expect("get")
            .expect("ticket");
        self.store
            .tickets()
            .events(t.id)
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    /// (kind, recipient, channel, state) of every outbox row, oldest first.
    async fn outbox(&self) -> Vec<(String, String, String, String)> {
        sqlx::query("SELECT kind, recipient, channel, state FROM outbox ORDER BY id")
            .fetch_all(self.store.pool())
            .await
            .expect("outbox")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    }

    async fn process(&self) -> messo::store::InboundReport {
        self.store
            .inbound()
            .process_inbound(&self.policy, self.now(), 100)
            .await
            .expect("process")
    }

    async fn twilio(
        &self,
        route: &str,
        pairs: &[(&str, &str)],
        sign: Option<&str>,
    ) -> (u16, String) {
        let path = format!("/webhooks/{route}/twilio");
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let sig = twilio_signature(
            &format!("{PUBLIC}{path}"),
            &owned,
            sign.unwrap_or(TWILIO_TOKEN),
        );
        let body = form(pairs);
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if sign.is_none() || sign != Some("") {
            req = req.header("X-Twilio-Signature", sig);
        }
        let r = req.send().await.expect("post");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    async fn generic(&self, endpoint: &str, route: &str, body: &Value, at: i64) -> (u16, Value) {
        let text = body.to_string();
        let sig = generic_signature(GENERIC_SECRET, &at.to_string(), text.as_bytes());
        let r = self
            .client
            .post(format!("{}/webhooks/{route}/{endpoint}", self.base))
            .header("content-type", "application/json")
            .header("X-Messo-Timestamp", at.to_string())
            .header("X-Messo-Signature", format!("v1={sig}"))
            .body(text)
            .send()
            .await
            .expect("post");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

on_both!(start;
    a_forged_email_reply_is_a_note_and_an_authenticated_one_resumes_the_clock,
    an_sms_reply_resumes_the_clock_and_ripresa_is_owed,
    a_hundred_copies_at_once_are_one_reply,
    forged_and_replayed_requests_leave_no_trace,
    receipts_move_forward_only_and_a_failure_starts_the_fallback,
    a_senders_messages_are_acted_on_in_their_order,
    a_digit_by_sms_rates_the_closed_ticket_once_and_reopens_nothing,
);

// Anyone can write the citizen's address in From. A reply whose sender the provider or a
// trusted relay did not authenticate is kept as a note, the office is told, and the ticket
// stays suspended; an authenticated one resumes the clock.
async fn a_forged_email_reply_is_a_note_and_an_authenticated_one_resumes_the_clock(h: &Hook) {
    h.ticket("2026/000960", true).await;
    let post = |extra: &[(&str, &str)], id: &str| {
        let mut pairs: Vec<(&str, &str)> = vec![
            ("from", "Mario Rossi <mario.rossi@example.it>"),
            ("to", "URP <urp+2026.000960@comune.roma.it>"),
            ("subject", "Re: integrazione"),
            ("text", "Ecco il documento richiesto."),
            ("Message-Id", id),
        ];
        pairs.extend_from_slice(extra);
        let body = form(&pairs);
        async move {
            h.client
                .post(format!("{}/webhooks/mail/posta/{MAIL_TOKEN}", h.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .expect("post")
                .status()
                .as_u16()
        }
    };
    let forgeries: [(&[(&str, &str)], &str); 6] = [
        // SendGrid: SPF failed, DKIM passed only for the forger's own domain.
        (
            &[
                ("SPF", "fail"),
                ("dkim", "{@evil.example.com : pass}"),
                (
                    "envelope",
                    r#"{"to":["urp@comune.roma.it"],"from":"x@evil.example.com"}"#,
                ),
            ],
            "<f1@evil.example.com>",
        ),
        // SPF passed, for the forger's envelope sender: not aligned with From.
        (
            &[
                ("SPF", "pass"),
                ("envelope", r#"{"from":"bounce@evil.example.com"}"#),
            ],
            "<f2@evil.example.com>",
        ),
        // No verdict at all.
        (&[], "<f3@evil.example.com>"),
        // A verdict the forger wrote himself, from a relay nobody trusts.
        (
            &[(
                "Authentication-Results",
                "mx.evil.example.com; dmarc=pass header.from=example.it",
            )],
            "<f4@evil.example.com>",
        ),
        // The trusted relay says DMARC failed.
        (
            &[(
                "Authentication-Results",
                "mx.comune.roma.it; spf=softfail smtp.mailfrom=x@evil.example.com; dmarc=fail header.from=example.it",
            )],
            "<f5@evil.example.com>",
        ),
        // A provider verdict given twice (the forger's copy beside the provider's).
        (
            &[
                ("X-Mailgun-Spf", "Pass"),
                ("X-Mailgun-Spf", "Fail"),
                ("sender", CITIZEN_EMAIL),
            ],
            "<f6@evil.example.com>",
        ),
    ];
    for (n, (extra, id)) in forgeries.iter().enumerate() {
        assert_eq!(post(extra, id).await, 200, "forgery {n}");
        let r = h.process().await;
        assert_eq!((r.integrations, r.notes), (0, 1), "forgery {n}");
        assert!(
            h.waiting("2026/000960").await,
            "forgery {n} resumed the clock"
        );
        assert_eq!(
            h.kinds("2026/000960").await.last().map(String::as_str),
            Some("note"),
            "forgery {n}"
        );
    }
    let alerts = h
        .outbox()
        .await
        .into_iter()
        .filter(|(k, rcp, ..)| k == "risposta_non_autenticata" && rcp == "office")
        .count();
    assert_eq!(alerts, forgeries.len(), "the office is told of each");
    let rows = h.store.inbound().inbound_rows().await.expect("rows");
    let notes: Vec<_> = rows
        .iter()
        .filter(|r| r.outcome.as_deref() == Some("note"))
        .collect();
    assert_eq!(notes.len(), forgeries.len());
    for r in &notes {
        let detail = r.detail.as_deref().unwrap_or_default();
        assert!(detail.contains("not authenticated"), "{detail}");
    }
    let t = h
        .store
        .tickets()
        .ticket("2026/000960")
        .await
        .expect("get")
        .expect("ticket");
    let last = h
        .store
        .tickets()
        .events(t.id)
        .await
        .expect("events")
        .pop()
        .expect("event");
    let text = last.data["text"].as_str().unwrap_or_default();
    assert!(text.contains("mittente non verificato"), "{text}");
    assert!(text.contains("Ecco il documento richiesto."), "{text}");

    // Authenticated by the trusted relay (topmost), with a forged copy below it.
    assert_eq!(
        post(
            &[
                (
                    "headers",
                    "Received: from mail.example.it\r\nAuthentication-Results: mx.comune.roma.it;\r\n \
                     spf=pass smtp.mailfrom=mario.rossi@example.it;\r\n dkim=pass header.d=example.it;\r\n \
                     dmarc=pass header.from=example.it\r\nAuthentication-Results: mx.comune.roma.it; dmarc=fail\r\n",
                ),
            ],
            "<real@example.it>",
        )
        .await,
        200
    );
    let r = h.process().await;
    assert_eq!((r.integrations, r.notes), (1, 0));
    assert!(!h.waiting("2026/000960").await, "the clock resumed");
    assert_eq!(
        h.kinds("2026/000960").await.last().map(String::as_str),
        Some("integration_received")
    );
}

// On PostgreSQL records are acted on in several lanes at once; a sender's STOP and then START
// still happen in that order, for every sender.
async fn a_senders_messages_are_acted_on_in_their_order(h: &Hook) {
    // 120 records: more than one group, so PostgreSQL spreads them over its lanes.
    let at = h.now().0;
    for round in ["STOP", "START"] {
        for i in 0..60 {
            let from = format!("+39347000{i:04}");
            let (s, _) = h
                .generic(
                    "centralino",
                    "sms",
                    &json!({"id": format!("{round}-{i}"), "from": from, "text": round}),
                    at,
                )
                .await;
            assert_eq!(s, 200);
        }
    }
    let r = h
        .store
        .inbound()
        .process_inbound(&h.policy, h.now(), 500)
        .await
        .expect("process");
    assert_eq!((r.processed, r.opt_outs), (120, 60));
    let numbers: Vec<String> = (0..60).map(|i| format!("+39347000{i:04}")).collect();
    let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();
    assert!(
        h.store
            .inbound()
            .opted_out(&refs)
            .await
            .expect("opt")
            .is_empty(),
        "every START came after its STOP"
    );
    let owed = h.outbox().await;
    assert_eq!(owed.iter().filter(|(k, ..)| k == "revoca_sms").count(), 60);
    assert_eq!(
        owed.iter()
            .filter(|(k, ..)| k == "riattivazione_sms")
            .count(),
        60
    );
}

// The end-to-end path: SMS reply → matched → integration_received → clock resumed → ripresa.
async fn an_sms_reply_resumes_the_clock_and_ripresa_is_owed(h: &Hook) {
    h.ticket("2026/000123", true).await;
    assert!(h.waiting("2026/000123").await);
    let (status, body) = h
        .twilio(
            "sms",
            &[
                ("MessageSid", "SM0000000000000000000000000000001"),
                ("AccountSid", "AC1"),
                ("From", CITIZEN_MOBILE),
                ("To", "+390612345678"),
                (
                    "Body",
                    "Buongiorno, ho inviato la carta d'identità per la pratica 2026 123",
                ),
                ("NumMedia", "0"),
                ("ApiVersion", "2010-04-01"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<Response>"), "TwiML answer: {body}");
    // Stored, not yet acted on: the clock is still stopped.
    assert!(h.waiting("2026/000123").await);
    let r = h.process().await;
    assert_eq!((r.processed, r.integrations), (1, 1));
    assert!(
        !h.waiting("2026/000123").await,
        "the reply resumes the clock"
    );
    assert_eq!(
        h.kinds("2026/000123").await.last().map(String::as_str),
        Some("integration_received")
    );
    h.engine.cycle(h.now()).await.expect("engine");
    let owed = h.outbox().await;
    assert!(
        owed.iter()
            .any(|(k, rcp, _, _)| k == "ripresa" && rcp == "citizen"),
        "ripresa owed: {owed:?}"
    );
    let rows = h.store.inbound().inbound_rows().await.expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome.as_deref(), Some("integration"));
    assert!(rows[0].has_raw, "the raw payload is kept for audit");
}

// Providers retry and duplicate: 100 copies at once are stored once and acted on once.
async fn a_hundred_copies_at_once_are_one_reply(h: &Hook) {
    h.ticket("2026/000200", true).await;
    let body =
        json!({"id": "gen-42", "from": CITIZEN_MOBILE, "text": "pratica 2026/000200: allego"});
    let at = h.now().0;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (client, base) = (h.client.clone(), h.base.clone());
        let text = body.to_string();
        let sig = generic_signature(GENERIC_SECRET, &at.to_string(), text.as_bytes());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(format!("{base}/webhooks/sms/centralino"))
                .header("content-type", "application/json")
                .header("X-Messo-Timestamp", at.to_string())
                .header("X-Messo-Signature", format!("v1={sig}"))
                .body(text)
                .send()
                .await
                .expect("post");
            let status = r.status().as_u16();
            let v: Value = r.json().await.expect("json");
            (status, v["status"].as_str().unwrap_or("").to_owned())
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        let (status, what) = t.await.expect("task");
        assert_eq!(status, 200);
        accepted += usize::from(what == "accepted");
    }
    assert_eq!(accepted, 1, "exactly one copy is new; 99 are duplicates");
    assert_eq!(
        h.store.inbound().inbound_rows().await.expect("rows").len(),
        1
    );
    let r = h.process().await;
    assert_eq!(r.integrations, 1);
    // A provider's retry a day later: still a duplicate, no second event.
    h.clock.advance(86_400);
    let (status, v) = h.generic("centralino", "sms", &body, h.now().0).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(h.process().await.processed, 0);
    let kinds = h.kinds("2026/000200").await;
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "integration_received")
            .count(),
        1
    );
}

async fn forged_and_replayed_requests_leave_no_trace(h: &Hook) {
    h.ticket("2026/000300", true).await;
    let pairs = [
        ("MessageSid", "SM0000000000000000000000000000300"),
        ("From", CITIZEN_MOBILE),
        ("Body", "pratica 2026/000300"),
    ];
    // No signature: 401. A signature made with another token: 403.
    assert_eq!(h.twilio("sms", &pairs, Some("")).await.0, 401);
    assert_eq!(h.twilio("sms", &pairs, Some("not-the-token")).await.0, 403);
    // A body changed after signing: 403.
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let sig = twilio_signature(
        &format!("{PUBLIC}/webhooks/sms/twilio"),
        &owned,
        TWILIO_TOKEN,
    );
    let r = h
        .client
        .post(format!("{}/webhooks/sms/twilio", h.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", sig)
        .body(form(&[
            ("MessageSid", "SM0000000000000000000000000000300"),
            ("From", "+393330000000"),
            ("Body", "pratica 2026/000300"),
        ]))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 403);
    let problem: Value = r.json().await.expect("problem");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or("")
            .contains("does not match"),
        "{problem}"
    );
    // A generic request replayed after the tolerance window: 403.
    let body = json!({"id": "g-300", "from": CITIZEN_MOBILE, "text": "2026/000300"});
    let (status, v) = h.generic("centralino", "sms", &body, h.now().0 - 301).await;
    assert_eq!(status, 403, "{v}");
    // The REST family's token: wrong → 403, missing → 404 (no such URL).
    let r = h
        .client
        .post(format!(
            "{}/webhooks/sms/skebby/wrong-token-0123456789",
            h.base
        ))
        .form(&[("sender", CITIZEN_MOBILE), ("text", "2026/000300")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 403);
    let r = h
        .client
        .post(format!("{}/webhooks/sms/skebby", h.base))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 404);
    // Unknown provider and route: 404.
    let r = h
        .client
        .post(format!("{}/webhooks/sms/nessuno", h.base))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 404);
    let r = h
        .client
        .post(format!("{}/webhooks/fax/twilio", h.base))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 404);
    // Over 64 KiB: 413, before anything is read.
    let big = "x".repeat(70 * 1024);
    // Its own client: the server closes the connection after refusing the unread body.
    let r = reqwest::Client::new()
        .post(format!("{}/webhooks/sms/centralino", h.base))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 413);
    // Signed but malformed: 400 with the reason.
    let (status, v) = h
        .generic(
            "centralino",
            "sms",
            &json!({"from": CITIZEN_MOBILE}),
            h.now().0,
        )
        .await;
    assert_eq!(status, 400);
    assert!(v["detail"].as_str().unwrap_or("").contains("`id`"), "{v}");
    let (status, v) = h
        .generic(
            "centralino",
            "dlr",
            &json!({"id": "x", "status": "teleported"}),
            h.now().0,
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        v["detail"].as_str().unwrap_or("").contains("teleported"),
        "{v}"
    );
    // Nothing was stored and the ticket did not move.
    assert!(
        h.store
            .inbound()
            .inbound_rows()
            .await
            .expect("rows")
            .is_empty()
    );
    assert!(h.waiting("2026/000300").await);
    assert_eq!(
        h.kinds("2026/000300").await,
        vec!["received", "integration_requested"]
    );
}

/// An SMS that went out through provider `provider` under `provider_id`.
async fn sent_sms(
    h: &Hook,
    ticket_id: i64,
    key: &str,
    provider: &str,
    provider_id: Option<&str>,
) -> i64 {
    h.store
        .outbox()
        .insert_message(
            &NewOutbox {
                ticket_id,
                kind: Kind::Avanzamento,
                dedupe_key: key.into(),
                recipient: Recipient::Citizen,
                channel: Channel::Sms,
                address: Address::parse(Channel::Sms, CITIZEN_MOBILE).expect("a number"),
                language: Lang::It,
                payload: json!({"number": "2026/000400", "subject": "Cambio di residenza",
                    "office": "anagrafe", "category": "generale", "priority": "normale",
                    "received_at": "2026-03-02T10:15:00+01:00", "due_at": null,
                    "office_phone": "060606", "office_email": "urp@comune.roma.it",
                    "step": "in_lavorazione", "text": "in lavorazione"}),
                not_before: h.now(),
            },
            h.now(),
        )
        .await
        .expect("insert");
    let id: i64 = sqlx::query_scalar("SELECT id FROM outbox WHERE dedupe_key = $1")
        .bind(key)
        .fetch_one(h.store.pool())
        .await
        .expect("id");
    if let Some(pid) = provider_id {
        mark_sent(h, id, provider, pid).await;
    }
    id
}

async fn mark_sent(h: &Hook, id: i64, provider: &str, pid: &str) {
    sqlx::query(
        "UPDATE outbox SET state = 'delivered', provider = $1, provider_id = $2 WHERE id = $3",
    )
    .bind(provider)
    .bind(pid)
    .bind(id)
    .execute(h.store.pool())
    .await
    .expect("mark sent");
}

async fn receipts_move_forward_only_and_a_failure_starts_the_fallback(h: &Hook) {
    let tid = h.ticket("2026/000400", false).await;
    // 1. Out of order: delivered, then a late "sent" that changes nothing.
    let a = sent_sms(h, tid, "a", "twilio", Some("SMaaaa")).await;
    for status in ["delivered", "sent"] {
        let (s, b) = h
            .twilio(
                "dlr",
                &[("MessageSid", "SMaaaa"), ("MessageStatus", status)],
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    h.process().await;
    assert_eq!(
        h.store
            .inbound()
            .dlr_state(a)
            .await
            .expect("dlr")
            .0
            .as_deref(),
        Some("delivered")
    );

    // 2. A receipt before the send is recorded: kept and applied once the send is.
    let b = sent_sms(h, tid, "b", "twilio", None).await;
    let (s, _) = h
        .twilio(
            "dlr",
            &[("MessageSid", "SMbbbb"), ("MessageStatus", "delivered")],
            None,
        )
        .await;
    assert_eq!(s, 200);
    let r = h.process().await;
    assert_eq!(r.deferred, 1);
    mark_sent(h, b, "twilio", "SMbbbb").await;
    h.clock.advance(60);
    let r = h.process().await;
    assert_eq!(r.receipts, 1);
    assert_eq!(
        h.store
            .inbound()
            .dlr_state(b)
            .await
            .expect("dlr")
            .0
            .as_deref(),
        Some("delivered")
    );

    // 3. A multi-part message: part 1 delivered, part 2 failed → the whole message failed,
    // the row is dead and the fallback chain owes the e-mail.
    let c = sent_sms(h, tid, "c", "centralino", Some("gen-c")).await;
    let at = h.now().0;
    let (s, v) = h
        .generic(
            "centralino",
            "dlr",
            &json!({"id": "gen-c", "status": "delivered", "part": 1, "parts": 2}),
            at,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    h.process().await;
    let (state, _) = h.store.inbound().dlr_state(c).await.expect("dlr");
    assert_eq!(
        state.as_deref(),
        Some("sent"),
        "one part of two is not the message"
    );
    let (s, _) = h.generic("centralino", "dlr", &json!({"id": "gen-c", "status": "undelivered", "part": 2, "parts": 2, "code": "EC_ABSENT"}), at).await;
    assert_eq!(s, 200);
    let r = h.process().await;
    assert_eq!(r.fallbacks, 1);
    let (state, parts) = h.store.inbound().dlr_state(c).await.expect("dlr");
    assert_eq!(state.as_deref(), Some("undelivered"));
    assert_eq!(
        parts,
        vec![(1, "delivered".to_owned()), (2, "undelivered".to_owned())]
    );
    let rows = h.outbox().await;
    assert!(
        rows.iter()
            .any(|(k, _, ch, st)| k == "avanzamento" && ch == "sms" && st == "dead"),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|(k, _, ch, st)| k == "avanzamento" && ch == "email" && st == "pending"),
        "{rows:?}"
    );
    // Every raw receipt is kept.
    let n = h
        .store
        .inbound()
        .inbound_rows()
        .await
        .expect("rows")
        .iter()
        .filter(|r| r.route == "dlr")
        .count();
    assert_eq!(n, 5);
    // A receipt from another provider does not touch a message it did not send.
    let (s, _) = h
        .generic(
            "centralino",
            "dlr",
            &json!({"id": "SMaaaa", "status": "failed"}),
            at,
        )
        .await;
    assert_eq!(s, 200);
    h.process().await;
    assert_eq!(
        h.store
            .inbound()
            .dlr_state(a)
            .await
            .expect("dlr")
            .0
            .as_deref(),
        Some("delivered")
    );
}

// ---------------------------------------------------------------------------------------------
// SQLite only from here: the rules are the store's, the same on both back ends.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_turns_sms_off_once_and_the_ticket_goes_on_by_email() {
    let h = start(Backend::Sqlite).await;
    let tid = h.ticket("2026/000500", false).await;
    for _ in 0..2 {
        let r = h
            .client
            .post(format!("{}/webhooks/sms/skebby/{SKEBBY_TOKEN}", h.base))
            .form(&[
                ("sender", "347 123 4567"),
                ("text", " Stop! "),
                ("date", "2026-03-03 10:00:00"),
            ])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 200);
        // A second STOP with another time is another message.
        h.clock.advance(10);
        let r = h
            .client
            .post(format!("{}/webhooks/sms/skebby/{SKEBBY_TOKEN}", h.base))
            .form(&[
                ("sender", CITIZEN_MOBILE),
                ("text", "BASTA"),
                ("date", "2026-03-03 10:05:00"),
            ])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 200);
    }
    let r = h.process().await;
    assert_eq!(r.processed, 2, "the repeated posts were duplicates");
    assert_eq!(r.opt_outs, 2);
    assert_eq!(
        h.store
            .inbound()
            .opted_out(&[CITIZEN_MOBILE])
            .await
            .expect("opt"),
        vec![CITIZEN_MOBILE.to_owned()]
    );
    let confirmations: Vec<_> = h
        .outbox()
        .await
        .into_iter()
        .filter(|(k, ..)| k == "revoca_sms")
        .collect();
    assert_eq!(confirmations.len(), 1, "said once");
    // The next SMS notice is not sent: it dies at once and goes by e-mail.
    sent_sms(&h, tid, "after-stop", "twilio", None).await;
    let out = h.dir.join("files");
    let d = Arc::new(
        messo::delivery::dispatch::Dispatcher::files(
            h.store.clone(),
            &out,
            "urp@comune.roma.it",
            "Roma Capitale",
        )
        .expect("dispatcher"),
    );
    d.drain(&h.clock.clock(), 100).await.expect("drain");
    let rows = h.outbox().await;
    assert!(
        rows.iter()
            .any(|(k, _, ch, st)| k == "avanzamento" && ch == "sms" && st == "dead"),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|(k, _, ch, st)| k == "avanzamento" && ch == "email" && st == "delivered"),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|(k, _, ch, st)| k == "revoca_sms" && ch == "sms" && st == "delivered"),
        "the confirmation itself goes: {rows:?}"
    );
    // The confirmation's real payload fits its template (no emergency wording).
    let confirmation: String = sqlx::query_scalar(
        "SELECT rendered FROM outbox WHERE kind = 'revoca_sms' AND rendered IS NOT NULL",
    )
    .fetch_one(h.store.pool())
    .await
    .expect("rendered");
    assert!(
        confirmation.contains("\"version\":0") && confirmation.contains("ATTIVA"),
        "{confirmation}"
    );
    // START turns SMS back on.
    let r = h
        .client
        .post(format!("{}/webhooks/sms/skebby/{SKEBBY_TOKEN}", h.base))
        .form(&[
            ("id", "sk-9"),
            ("sender", CITIZEN_MOBILE),
            ("text", "attiva"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    h.process().await;
    assert!(
        h.store
            .inbound()
            .opted_out(&[CITIZEN_MOBILE])
            .await
            .expect("opt")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_naming_no_ticket_is_kept_the_office_told_and_the_citizen_answered_once() {
    let h = start(Backend::Sqlite).await;
    h.ticket("2026/000600", false).await;
    for (i, text) in ["Buongiorno, quando è pronta?", "Scusate, nessuna risposta?"]
        .iter()
        .enumerate()
    {
        let (s, _) = h
            .generic(
                "centralino",
                "sms",
                &json!({"id": format!("u{i}"), "from": CITIZEN_MOBILE, "text": text}),
                h.now().0,
            )
            .await;
        assert_eq!(s, 200);
    }
    let r = h.process().await;
    assert_eq!(r.unmatched, 2);
    let rows = h.store.inbound().inbound_rows().await.expect("rows");
    assert!(rows.iter().all(|r| r.status == "unmatched"));
    let owed = h.outbox().await;
    let hints: Vec<_> = owed
        .iter()
        .filter(|(k, rcp, ..)| k == "risposta_non_abbinata" && rcp == "citizen")
        .collect();
    let alerts: Vec<_> = owed
        .iter()
        .filter(|(k, rcp, ..)| k == "risposta_non_abbinata" && rcp == "office")
        .collect();
    assert_eq!(
        (hints.len(), alerts.len()),
        (1, 1),
        "once per sender per period: {owed:?}"
    );
    // The ticket did not change.
    assert_eq!(h.kinds("2026/000600").await, vec!["received"]);
    // A day later the citizen hears again.
    h.clock.advance(86_400);
    h.generic(
        "centralino",
        "sms",
        &json!({"id": "u9", "from": CITIZEN_MOBILE, "text": "?"}),
        h.now().0,
    )
    .await;
    h.process().await;
    let hints = h
        .outbox()
        .await
        .into_iter()
        .filter(|(k, rcp, ..)| k == "risposta_non_abbinata" && rcp == "citizen")
        .count();
    assert_eq!(hints, 2);
    // The hint's wording explains how to quote the number.
    let payload: String = sqlx::query_scalar("SELECT payload FROM outbox WHERE kind = 'risposta_non_abbinata' AND recipient = 'citizen' ORDER BY id LIMIT 1")
        .fetch_one(h.store.pool())
        .await
        .expect("payload");
    assert!(
        payload.contains("2026/000123"),
        "an example number in the configured format: {payload}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_alone_finds_the_one_waiting_ticket_and_a_stranger_only_leaves_a_note() {
    let h = start(Backend::Sqlite).await;
    h.ticket("2026/000700", true).await;
    h.ticket("2026/000701", false).await;
    // No number in the text: the sender has exactly one ticket waiting.
    let (s, _) = h
        .generic(
            "centralino",
            "sms",
            &json!({"id": "s1", "from": "0039 347 123 4567", "text": "Ecco il documento"}),
            h.now().0,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(h.process().await.integrations, 1);
    assert!(!h.waiting("2026/000700").await);
    // A number quoted from a phone that is not the citizen's: a note, the clock stays stopped.
    h.ticket("2026/000702", true).await;
    let (s, _) = h
        .generic(
            "centralino",
            "sms",
            &json!({"id": "s2", "from": "+393389998877", "text": "per la pratica 2026/702"}),
            h.now().0,
        )
        .await;
    assert_eq!(s, 200);
    let r = h.process().await;
    assert_eq!((r.integrations, r.notes), (0, 1));
    assert!(h.waiting("2026/000702").await);
    assert_eq!(
        h.kinds("2026/000702").await.last().map(String::as_str),
        Some("note")
    );
    assert!(
        h.outbox()
            .await
            .iter()
            .any(|(k, rcp, ..)| k == "risposta_mittente_diverso" && rcp == "office")
    );
    // A reply to a ticket that is not waiting is a note.
    let (s, _) = h
        .generic(
            "centralino",
            "sms",
            &json!({"id": "s3", "from": CITIZEN_MOBILE, "text": "2026/000701 grazie"}),
            h.now().0,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(h.process().await.notes, 1);
    assert_eq!(
        h.kinds("2026/000701").await.last().map(String::as_str),
        Some("note")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_reply_with_documents_resumes_the_clock_and_keeps_the_files() {
    let h = start(Backend::Sqlite).await;
    h.ticket("2026/000800", true).await;
    let boundary = "XyZmesso";
    let pdf = b"%PDF-1.4 documento di identita".to_vec();
    let big = vec![b'a'; 2000];
    let mut body = Vec::new();
    let field = |b: &mut Vec<u8>, name: &str, value: &str| {
        b.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    };
    field(&mut body, "from", "Mario Rossi <Mario.Rossi@example.it>");
    field(&mut body, "to", "URP <urp+2026.000800@comune.roma.it>");
    field(&mut body, "subject", "Re: integrazione");
    field(&mut body, "text", "In allegato il documento richiesto.");
    field(&mut body, "Message-Id", "<reply-800@example.it>");
    // The provider's verdict: SPF passed for an envelope sender of the citizen's domain.
    field(&mut body, "SPF", "pass");
    field(
        &mut body,
        "envelope",
        r#"{"to":["urp@comune.roma.it"],"from":"mario.rossi@example.it"}"#,
    );
    for (name, bytes) in [("../../carta.pdf", &pdf), ("grande.bin", &big)] {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"{name}\"\r\nContent-Type: application/pdf\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let post = |token: String, body: Vec<u8>| {
        h.client
            .post(format!("{}/webhooks/mail/posta/{token}", h.base))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
    };
    let r = post("wrong-token-0123456789".into(), body.clone())
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 403);
    assert!(
        !h.dir.join("attachments").exists(),
        "a refused request keeps no file"
    );
    let r = post(MAIL_TOKEN.into(), body).await.expect("post");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        h.process().await.integrations,
        1,
        "the plus-address names the ticket"
    );
    assert!(!h.waiting("2026/000800").await);
    let t = h
        .store
        .tickets()
        .ticket("2026/000800")
        .await
        .expect("get")
        .expect("ticket");
    let last = h
        .store
        .tickets()
        .events(t.id)
        .await
        .expect("events")
        .pop()
        .expect("event");
    let text = last.data["text"].as_str().unwrap_or("").to_owned();
    assert!(
        text.contains("carta.pdf (30 byte)") && text.contains("grande.bin (2000 byte)"),
        "{text}"
    );
    // The small file is kept under its hash; the one over the limit is not.
    let files: Vec<_> = std::fs::read_dir(h.dir.join("attachments"))
        .expect("dir")
        .collect();
    assert_eq!(files.len(), 1);
    let kept = files[0].as_ref().expect("entry").path();
    assert_eq!(std::fs::read(kept).expect("read"), pdf);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_the_phone_line_with_the_number_typed_is_a_note_and_an_alert_not_an_integration()
{
    let h = start(Backend::Sqlite).await;
    h.ticket("2026/000900", true).await;
    let (s, _) = h
        .twilio(
            "voice",
            &[
                ("CallSid", "CA0000000000000000000000000000900"),
                ("From", CITIZEN_MOBILE),
                ("To", "+390612345678"),
                ("Digits", "2026000900"),
                ("RecordingSid", "RE900"),
                ("RecordingUrl", "https://api.twilio.com/recordings/RE900"),
            ],
            None,
        )
        .await;
    assert_eq!(s, 200);
    // A recording may or may not hold what was asked for: the office listens and confirms, so
    // the clock of the waiting ticket stays stopped (issue 19).
    assert_eq!(h.process().await.integrations, 0);
    let owed = h.outbox().await;
    assert!(
        owed.iter()
            .any(|(k, rcp, ..)| k == "chiamata_ricevuta" && rcp == "office"),
        "{owed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_is_told_to_wait() {
    let h = start(Backend::Sqlite).await;
    let mut statuses = Vec::new();
    for i in 0..10 {
        let (s, _) = h
            .generic(
                "lento",
                "sms",
                &json!({"id": format!("r{i}"), "from": CITIZEN_MOBILE, "text": "x"}),
                h.now().0,
            )
            .await;
        statuses.push(s);
    }
    assert!(
        statuses.iter().filter(|s| **s == 200).count() >= 3,
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_payloads_are_erased_after_the_retention_period() {
    let h = start(Backend::Sqlite).await;
    h.generic(
        "centralino",
        "sms",
        &json!({"id": "old", "from": CITIZEN_MOBILE, "text": "x"}),
        h.now().0,
    )
    .await;
    let later = h.now().plus(10 * 86_400);
    assert_eq!(
        h.store
            .inbound()
            .inbound_housekeeping(h.now())
            .await
            .expect("hk"),
        0
    );
    assert_eq!(
        h.store
            .inbound()
            .inbound_housekeeping(later)
            .await
            .expect("hk"),
        1
    );
    let rows = h.store.inbound().inbound_rows().await.expect("rows");
    assert!(!rows[0].has_raw);
}

// Our e-mail to the citizen carries a reply address naming the ticket; the reply to it, posted
// by the mail service, finds the ticket through that address alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reply_address_of_our_email_names_the_ticket() {
    let h = start(Backend::Sqlite).await;
    h.ticket("2026/000950", true).await;
    let out = h.dir.join("outbox");
    let env = vec![(
        "MESSO_CHANNELS__FILE_DIR".to_owned(),
        out.display().to_string(),
    )];
    let toml = std::fs::read_to_string(h.dir.join("config.toml")).expect("config");
    let cfg = Config::from_toml(&toml, "test", env).expect("config");
    let d = Arc::new(
        messo::delivery::dispatch::Dispatcher::from_config(
            h.store.clone(),
            &cfg,
            Arc::new(Default::default()),
        )
        .expect("dispatcher"),
    );
    d.drain(&h.clock.clock(), 100).await.expect("drain");
    let eml = std::fs::read_dir(&out)
        .expect("outbox dir")
        .filter_map(Result::ok)
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .find(|m| mail::header(m, "X-Messo-Kind").as_deref() == Some("richiesta_integrazione"))
        .expect("the integration request went out by e-mail");
    let reply_to = mail::header(&eml, "Reply-To").expect("Reply-To");
    assert_eq!(reply_to, "urp+2026.000950@comune.roma.it");
    let r = h
        .client
        .post(format!("{}/webhooks/mail/posta/{MAIL_TOKEN}", h.base))
        .form(&[
            ("from", CITIZEN_EMAIL),
            ("to", reply_to.as_str()),
            ("subject", "Re: la sua richiesta"),
            (
                "text",
                "Ecco il documento (senza numero di pratica nel testo).",
            ),
            ("X-Mailgun-Spf", "Pass"),
            ("sender", CITIZEN_EMAIL),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(h.process().await.integrations, 1);
    assert!(!h.waiting("2026/000950").await);
}

// A record that cannot be acted on is set aside with its reason; the ones behind it go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_cannot_be_acted_on_does_not_block_the_others() {
    let h = start(Backend::Sqlite).await;
    h.ticket("2026/000990", true).await;
    sqlx::query(
        "INSERT INTO inbound_messages (endpoint, route, external_id, received_at, parsed, status, next_try_at) \
         VALUES ('centralino', 'sms', 'broken', $1, 'not json', 'pending', $1)",
    )
    .bind(h.now().0)
    .execute(h.store.pool())
    .await
    .expect("insert");
    let (s, _) = h
        .generic(
            "centralino",
            "sms",
            &json!({"id": "after", "from": CITIZEN_MOBILE, "text": "2026/000990"}),
            h.now().0,
        )
        .await;
    assert_eq!(s, 200);
    let r = h.process().await;
    assert_eq!((r.processed, r.integrations), (2, 1));
    let rows = h.store.inbound().inbound_rows().await.expect("rows");
    assert_eq!(rows[0].status, "failed");
    assert!(
        rows[0].detail.as_deref().unwrap_or("").contains("inbound"),
        "{:?}",
        rows[0]
    );
    assert_eq!(rows[1].status, "done");
}

// The closure notice asks for a score from 1 to 5 by SMS. A bare digit from the citizen's number
// is the latest recently closed ticket's answer: recorded once, no event on the ticket, no alert
// to the office; anything else, a repeat, or the survey turned off goes the usual way.
async fn a_digit_by_sms_rates_the_closed_ticket_once_and_reopens_nothing(h: &Hook) {
    let id = h.ticket("2026/000700", false).await;
    let close = NewEvent::from_json(&json!({"kind": "closed", "at": "2026-03-02T16:00:00+01:00"}))
        .expect("event");
    h.store
        .tickets()
        .append_event("2026/000700", &close, None, Source::Api, close.at)
        .await
        .expect("close");
    let mut on = h.policy.clone();
    on.survey_window_s = Some(30 * 86_400);
    let sms = |sid: &'static str, body: &'static str| async move {
        let (status, text) = h
            .twilio(
                "sms",
                &[
                    ("MessageSid", sid),
                    ("AccountSid", "AC1"),
                    ("From", CITIZEN_MOBILE),
                    ("To", "+390612345678"),
                    ("Body", body),
                ],
                None,
            )
            .await;
        assert_eq!(status, 200, "{text}");
    };
    let process = |policy: InboundPolicy| async move {
        h.store
            .inbound()
            .process_inbound(&policy, h.now(), 100)
            .await
            .expect("process")
    };
    let last = || async {
        let rows = h.store.inbound().inbound_rows().await.expect("rows");
        let r = rows.last().expect("a row").clone();
        (r.outcome.unwrap_or_default(), r.ticket_id)
    };
    let events_before = h.kinds("2026/000700").await;
    let outbox_before = h.outbox().await;

    sms("SM0000000000000000000000000000701", " Voto: 4 ").await;
    let r = process(on.clone()).await;
    assert_eq!((r.processed, r.survey_answers, r.unmatched), (1, 1, 0));
    assert_eq!(last().await, ("survey".to_owned(), Some(id)));
    let a = h
        .store
        .satisfaction()
        .answer(id)
        .await
        .expect("read")
        .expect("recorded");
    assert_eq!(
        (a.score, a.channel, a.comment),
        (4, messo::store::AnswerChannel::Sms, None)
    );
    assert_eq!(
        h.kinds("2026/000700").await,
        events_before,
        "no event: nothing reopens"
    );
    assert_eq!(h.outbox().await, outbox_before, "no alert, no hint");

    // A second digit is ignored: the first answer stands.
    sms("SM0000000000000000000000000000702", "1").await;
    let r = process(on.clone()).await;
    assert_eq!(r.survey_answers, 0);
    assert_eq!(last().await, ("survey_repeat".to_owned(), Some(id)));
    let a = h.store.satisfaction().answer(id).await.expect("read");
    assert_eq!(a.map(|a| a.score), Some(4));
    assert_eq!(h.outbox().await, outbox_before);

    // Not a bare digit: an ordinary reply (the sender has no open ticket: unmatched).
    sms("SM0000000000000000000000000000703", "5 grazie").await;
    let r = process(on.clone()).await;
    assert_eq!((r.survey_answers, r.unmatched), (0, 1));

    // With a ticket waiting for an integrazione, a digit is not taken as a score.
    let other = h.ticket("2026/000701", true).await;
    let close = NewEvent::from_json(&json!({"kind": "closed", "at": "2026-03-02T17:00:00+01:00"}))
        .expect("event");
    let waiting = h.ticket("2026/000702", true).await;
    h.store
        .tickets()
        .append_event("2026/000701", &close, None, Source::Api, close.at)
        .await
        .expect("close");
    sms("SM0000000000000000000000000000704", "3").await;
    let r = process(on.clone()).await;
    assert_eq!(r.survey_answers, 0);
    assert_eq!(
        h.store.satisfaction().answer(other).await.expect("read"),
        None
    );
    assert_eq!(
        last().await.1,
        Some(waiting),
        "it went to the waiting ticket"
    );

    // The survey off: a digit is never a score.
    sms("SM0000000000000000000000000000705", "5").await;
    let r = process(h.policy.clone()).await;
    assert_eq!(r.survey_answers, 0);
    assert_eq!(
        h.store.satisfaction().answer(other).await.expect("read"),
        None
    );
}
