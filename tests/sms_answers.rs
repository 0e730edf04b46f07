//! The SMS answering (issue 19, point 2), driven as a provider drives it: signed Twilio SMS
//! webhooks over real HTTP on loopback, then the daemon's inbound pass with the answering on,
//! on SQLite and the real PostgreSQL. The answer queued is rendered with the bundled templates,
//! so each test reads the words the citizen would get.

mod common;

use std::sync::Arc;

use common::{Backend, TestClock, TestDb, on_both, serve, ts};
use messo::config::{BUILTIN_TOML, Config};
use messo::daemon::Engine;
use messo::domain::{Channel, Kind, Lang};
use messo::http::webhooks::{WebhookState, router};
use messo::inbound::verify::twilio_signature;
use messo::portal::LinkKeys;
use messo::store::{InboundPolicy, InboundReport, InboundWriter, SmsAnswering, Store};
use messo::templates::{Audience, Catalog, Settings, Templates};
use messo::ticket::{NewEvent, NewTicket, Source};
use messo::time::Timestamp;
use serde_json::{Value, json};
use sqlx::Row;

const TWILIO_TOKEN: &str = "twilio-auth-token-0123";
const PUBLIC: &str = "http://127.0.0.1:8080";
const CITIZEN_MOBILE: &str = "+393471234567";
const STRANGER: &str = "+393339998877";
const LINK_KEY: &[u8] = b"a link key for the sms answering tests";
const NUMBER: &str = "2026/000123";
const WAITING: &str = "2026/000124";

fn config_text() -> String {
    format!(
        r#"{BUILTIN_TOML}
[inbound]
ticket_format = "{{year}}/{{seq:6}}"

[[inbound.endpoints]]
name = "tw"
family = "twilio"
auth_token = "{TWILIO_TOKEN}"
"#
    )
}

struct Sms {
    base: String,
    store: Store,
    clock: TestClock,
    client: reqwest::Client,
    policy: InboundPolicy,
    answering: SmsAnswering,
    templates: Templates,
    keys: LinkKeys,
    db: TestDb,
    seq: std::sync::atomic::AtomicU32,
}

async fn start(backend: Backend) -> Sms {
    messo::install_crypto();
    let db = TestDb::open(backend).await;
    let cfg = Config::from_toml(&config_text(), "test", Vec::new()).expect("config");
    db.register(&cfg).await;
    let store = db.store.clone();
    // Friday 4 December 2026, 22:00 in Rome: outside the SMS window of notices (8–20).
    let clock = TestClock::at("2026-12-04T22:00:00+01:00");
    let engine = Engine::new(store.clone(), cfg.notify.clone());
    for (number, waiting) in [(NUMBER, false), (WAITING, true)] {
        let t = NewTicket::from_json(&json!({
            "number": number,
            "office": "anagrafe",
            "priority": "normale",
            "subject": "Cambio di residenza",
            "received_at": "2026-12-03T10:15:00+01:00",
            "citizen": {"email": "mario.rossi@example.it", "mobile": CITIZEN_MOBILE}
        }))
        .expect("ticket");
        store
            .tickets()
            .create_ticket(&t, Source::Api, ts("2026-12-03T10:15:00+01:00"))
            .await
            .expect("create");
        if waiting {
            let e = NewEvent::from_json(&json!({
                "kind": "integration_requested",
                "at": "2026-12-03T11:00:00+01:00",
                "missing": "copia del documento d'identità"
            }))
            .expect("event");
            store
                .tickets()
                .append_event(
                    number,
                    &e,
                    None,
                    Source::Api,
                    ts("2026-12-03T11:00:00+01:00"),
                )
                .await
                .expect("append");
        }
    }
    engine
        .cycle(ts("2026-12-03T11:00:00+01:00"))
        .await
        .expect("engine");
    sqlx::query("DELETE FROM outbox")
        .execute(store.pool())
        .await
        .expect("clear the receipts");
    let writer = InboundWriter::spawn(store.clone(), Arc::new(tokio::sync::Notify::new()));
    let state = WebhookState::new(
        &cfg.inbound,
        &cfg.http.public_base_url,
        writer,
        clock.clock(),
    );
    let keys = LinkKeys::new(LINK_KEY, None);
    Sms {
        base: serve(router(state)).await,
        policy: messo::store::inbound_policy(&cfg),
        answering: SmsAnswering::from_config(&cfg, keys.clone()).expect("on by default"),
        templates: Templates::new(Catalog::bundled().expect("catalog"), Settings::example()),
        keys,
        store,
        clock,
        client: reqwest::Client::new(),
        db,
        seq: std::sync::atomic::AtomicU32::new(0),
    }
}

/// One queued answer: its kind, recipient, ticket, when it may go, and its SMS words.
#[derive(Debug)]
struct Answer {
    kind: String,
    to: String,
    ticket_id: i64,
    not_before: i64,
    words: String,
}

impl Sms {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    async fn finish(self) {
        self.db.finish().await;
    }

    async fn ticket_id(&self, number: &str) -> i64 {
        self.store
            .tickets()
            .ticket(number)
            .await
            .expect("get")
            .expect("ticket")
            .id
    }

    /// Posts a signed Twilio SMS with a fresh MessageSid (or `sid`), returns the status.
    async fn text_with(&self, from: &str, body: &str, sid: Option<&str>) -> u16 {
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let fresh = format!("SM{n:032}");
        let sid = sid.unwrap_or(&fresh);
        let pairs = [("MessageSid", sid), ("From", from), ("Body", body)];
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let sig = twilio_signature(&format!("{PUBLIC}/webhooks/sms/tw"), &owned, TWILIO_TOKEN);
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        let r = self
            .client
            .post(format!("{}/webhooks/sms/tw", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", sig)
            .body(s.finish())
            .send()
            .await
            .expect("post");
        r.status().as_u16()
    }

    async fn text(&self, from: &str, body: &str) -> u16 {
        self.text_with(from, body, None).await
    }

    async fn pass(&self) -> InboundReport {
        self.store
            .inbound()
            .process_inbound_answering(&self.policy, Some(&self.answering), self.now(), 100)
            .await
            .expect("pass")
    }

    /// The answers queued so far, rendered as the citizen's SMS.
    async fn answers(&self) -> Vec<Answer> {
        let rows = sqlx::query(
            "SELECT kind, address, ticket_id, not_before, language, payload, channel FROM outbox \
             ORDER BY id",
        )
        .fetch_all(self.store.pool())
        .await
        .expect("outbox");
        rows.iter()
            .map(|r| {
                let kind: String = r.get("kind");
                assert_eq!(
                    r.get::<String, _>("channel"),
                    "sms",
                    "answers go by SMS only"
                );
                let payload: Value =
                    serde_json::from_str(&r.get::<String, _>("payload")).expect("payload");
                let lang: String = r.get("language");
                let words = self
                    .templates
                    .render_message(
                        Audience::Cittadino,
                        Kind::parse(&kind).expect("kind"),
                        lang.parse::<Lang>().expect("lang"),
                        Channel::Sms,
                        &payload,
                    )
                    .expect("renders")
                    .text;
                Answer {
                    kind,
                    to: r.get("address"),
                    ticket_id: r.get::<Option<i64>, _>("ticket_id").unwrap_or(0),
                    not_before: r.get("not_before"),
                    words,
                }
            })
            .collect()
    }

    async fn audits(&self) -> Vec<Value> {
        sqlx::query("SELECT object, detail FROM audit_log WHERE actor = 'sms' ORDER BY id")
            .fetch_all(self.store.pool())
            .await
            .expect("audit")
            .iter()
            .map(|r| json!({"object": r.get::<String, _>(0), "detail": r.get::<String, _>(1)}))
            .collect()
    }

    async fn outcomes(&self) -> Vec<String> {
        sqlx::query("SELECT outcome FROM inbound_messages ORDER BY id")
            .fetch_all(self.store.pool())
            .await
            .expect("inbound")
            .iter()
            .map(|r| r.get::<Option<String>, _>(0).unwrap_or_default())
            .collect()
    }
}

on_both!(start;
    the_verified_sender_gets_the_state_at_once_at_22,
    a_stranger_gets_general_words_whether_the_ticket_exists_or_not,
    the_access_code_verifies_and_wrong_codes_lock_out,
    help_limit_opt_out_and_duplicates,
    a_reply_to_a_waiting_ticket_goes_the_usual_way,
);

async fn the_verified_sender_gets_the_state_at_once_at_22(h: &Sms) {
    assert_eq!(h.text(CITIZEN_MOBILE, "stato  2026/000123").await, 200);
    let r = h.pass().await;
    assert_eq!((r.processed, r.sms_answers), (1, 1), "{r:?}");
    let a = h.answers().await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].kind, "risposta_stato");
    assert_eq!(a[0].to, CITIZEN_MOBILE);
    assert_eq!(a[0].ticket_id, h.ticket_id(NUMBER).await);
    // 22:00: a direct answer is not held for the morning.
    assert_eq!(a[0].not_before, h.now().0);
    assert!(a[0].words.contains("2026/000123"), "{}", a[0].words);
    assert!(a[0].words.contains("in lavorazione"), "{}", a[0].words);
    assert!(a[0].words.contains("entro"), "{}", a[0].words);
    assert_eq!(h.outcomes().await, ["sms_answer"]);
    let audits = h.audits().await;
    assert_eq!(audits.len(), 1);
    assert_eq!(audits[0]["object"], "ticket/2026/000123");
    assert!(
        audits[0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("\"sender\""),
        "{audits:?}"
    );
    assert!(
        !audits[0].to_string().contains("347"),
        "no number in the audit"
    );
    // A keyword query about the ticket that waits says what the office waits for.
    assert_eq!(h.text(CITIZEN_MOBILE, "INFO 2026/000124").await, 200);
    h.pass().await;
    let a = h.answers().await;
    assert!(a[1].words.contains("copia del documento"), "{}", a[1].words);
}

async fn a_stranger_gets_general_words_whether_the_ticket_exists_or_not(h: &Sms) {
    h.text(STRANGER, "STATO 2026/000123").await;
    h.text(STRANGER, "STATO 2026/009999").await;
    let r = h.pass().await;
    assert_eq!(r.sms_answers, 2);
    let a = h.answers().await;
    assert_eq!(a.len(), 2);
    for x in &a {
        assert_eq!(x.kind, "risposta_info");
        assert_eq!(x.ticket_id, 0, "no link, no ticket");
        assert!(!x.words.contains("lavorazione"), "{}", x.words);
        assert!(x.words.contains("STATO 2026/000123 123456"), "{}", x.words);
    }
    assert_eq!(a[0].words, a[1].words, "no existence oracle");
    // The existing ticket's lookup is audited as not verified; the other one is not a ticket.
    let audits = h.audits().await;
    assert_eq!(audits.len(), 1);
    assert!(audits[0]["detail"].as_str().unwrap_or("").contains("none"));
}

async fn the_access_code_verifies_and_wrong_codes_lock_out(h: &Sms) {
    let id = h.ticket_id(NUMBER).await;
    let code = h.keys.access_code(id, None);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    h.text(STRANGER, &format!("STATO 2026/000123 {code}")).await;
    h.pass().await;
    let a = h.answers().await;
    assert_eq!(a[0].kind, "risposta_stato", "the right code opens");
    assert_eq!(a[0].to, STRANGER);
    // Five wrong codes (from several numbers) lock the ticket: then even the right code opens
    // nothing, and the answer is the general one.
    let senders = ["+393330000001", "+393330000002", "+393330000003"];
    for i in 0..5 {
        h.text(senders[i % 3], &format!("stato 2026/000123 {wrong}"))
            .await;
    }
    h.pass().await;
    let failures: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM access_code_failures WHERE ticket_id = $1 AND channel = 'sms'",
    )
    .bind(id)
    .fetch_one(h.store.pool())
    .await
    .expect("count");
    assert_eq!(failures, 5);
    h.text(STRANGER, &format!("2026/000123 {code}")).await;
    h.pass().await;
    let a = h.answers().await;
    assert_eq!(a.len(), 7);
    assert!(a[1..].iter().all(|x| x.kind == "risposta_info"), "{a:?}");
    let last = h.audits().await.pop().expect("audit");
    assert!(
        last["detail"]
            .as_str()
            .unwrap_or("")
            .contains("\"locked\":true"),
        "{last}"
    );
    // The ticket's own mobile still gets the state.
    h.text(CITIZEN_MOBILE, "pratica 2026/000123").await;
    h.pass().await;
    assert_eq!(h.answers().await[7].kind, "risposta_stato");
}

async fn help_limit_opt_out_and_duplicates(h: &Sms) {
    // AIUTO: the keywords.
    h.text(STRANGER, "aiuto").await;
    // The same message delivered twice by the provider: one answer.
    h.text_with(STRANGER, "HELP", Some("SM-dup-0001")).await;
    h.text_with(STRANGER, "HELP", Some("SM-dup-0001")).await;
    h.pass().await;
    let a = h.answers().await;
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(a.iter().all(|x| x.kind == "aiuto_sms"));
    assert!(a[0].words.contains("STATO"), "{}", a[0].words);
    // Three more make five today; the sixth is not answered and counted.
    for _ in 0..4 {
        h.text(STRANGER, "STATO 2026/000123").await;
    }
    let r = h.pass().await;
    assert_eq!((r.sms_answers, r.sms_answers_limited), (3, 1), "{r:?}");
    assert_eq!(h.answers().await.len(), 5);
    // Another number is not limited by this one.
    h.text("+393330000009", "aiuto").await;
    h.pass().await;
    assert_eq!(h.answers().await.len(), 6);
    // A number that opted out gets nothing, not even the state of its own ticket.
    h.text(CITIZEN_MOBILE, "STOP").await;
    h.pass().await;
    let before = h.answers().await.len();
    h.text(CITIZEN_MOBILE, "STATO 2026/000123").await;
    let r = h.pass().await;
    assert_eq!(r.sms_answers, 0);
    let after = h.answers().await;
    assert_eq!(after.len(), before, "{after:?}");
    assert!(after.iter().all(|x| x.kind != "risposta_stato"));
}

async fn a_reply_to_a_waiting_ticket_goes_the_usual_way(h: &Sms) {
    // The number alone from the citizen whose ticket waits: their reply, as before.
    h.text(CITIZEN_MOBILE, "2026/000124").await;
    // A longer text naming the ticket is a reply too, never a query.
    let r = h.pass().await;
    assert_eq!((r.integrations, r.sms_answers), (1, 0), "{r:?}");
    assert!(h.answers().await.iter().all(|a| a.kind != "risposta_stato"));
    h.text(CITIZEN_MOBILE, "pratica 2026/000123: allego il documento")
        .await;
    let r = h.pass().await;
    assert_eq!((r.notes, r.sms_answers), (1, 0), "{r:?}");
}
