//! The telephone answering backup for the Vonage Voice API, driven as Vonage drives it: JSON
//! callbacks signed with a JWT (HS256, the signature secret, `payload_hash` of the body) over
//! real HTTP on loopback, each NCCO answer checked against the documented actions and followed
//! to the eventUrl it names, on SQLite and the real PostgreSQL. The same flow as Twilio's
//! (tests/phone.rs): caller id and access code verification, unknown numbers, out of hours and
//! a transfer in hours, a voice message, English; and callbacks that are unsigned, altered or
//! stale are refused and change nothing.

mod common;

use std::sync::Arc;

use common::phone::{DIGITS, LINK_KEY, NIGHT, NUMBER, webhooks};
use common::{Backend, TestClock, TestDb, on_both, serve, ts};
use messo::config::Config;
use messo::http::webhooks::{WebhookState, router};
use messo::inbound::verify::vonage_token;
use messo::portal::LinkKeys;
use messo::store::{InboundPolicy, InboundWriter, Store};
use messo::ticket::{NewEvent, Source};
use messo::time::Timestamp;
use serde_json::{Value, json};

const SECRET: &str = "vonage-signature-secret-0123456789";
const PUBLIC: &str = "http://127.0.0.1:8080";
/// Vonage writes numbers as E.164 digits without the `+`.
const CITIZEN_MOBILE: &str = "393471234567";
const STRANGER: &str = "393339998877";
const URP_LINE: &str = "390611111111";

fn config_text() -> String {
    common::phone::config_text(&format!(
        r#"name = "vg"
family = "vonage"
secret = "{SECRET}"
"#
    ))
}

struct Phone {
    base: String,
    store: Store,
    clock: TestClock,
    client: reqwest::Client,
    policy: InboundPolicy,
    db: TestDb,
}

async fn start(backend: Backend) -> Phone {
    messo::install_crypto();
    let db = TestDb::open(backend).await;
    let cfg = Config::from_toml(&config_text(), "test", Vec::new()).expect("config");
    db.register(&cfg).await;
    let store = db.store.clone();
    let clock = TestClock::at(NIGHT);
    common::phone::create_ticket(&store, &format!("+{CITIZEN_MOBILE}")).await;
    Phone {
        base: serve(router(webhooks(&cfg, &store, &clock))).await,
        policy: messo::store::inbound_policy(&cfg),
        store,
        clock,
        client: reqwest::Client::new(),
        db,
    }
}

/// One answer: its status, the NCCO (checked) when it is one.
#[derive(Debug)]
struct Heard {
    status: u16,
    body: String,
    ncco: Value,
}

impl Heard {
    /// Everything the caller hears, one text.
    fn words(&self) -> String {
        self.actions()
            .iter()
            .filter(|a| a["action"] == "talk")
            .filter_map(|a| a["text"].as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn actions(&self) -> Vec<Value> {
        self.ncco.as_array().cloned().unwrap_or_default()
    }

    fn names(&self) -> Vec<String> {
        self.actions()
            .iter()
            .filter_map(|a| a["action"].as_str().map(str::to_owned))
            .collect()
    }

    /// The path and query of the eventUrl of the (last) `action`.
    fn url_of(&self, action: &str) -> String {
        self.actions()
            .iter()
            .rev()
            .find(|a| a["action"] == action)
            .and_then(|a| a["eventUrl"][0].as_str())
            .and_then(|u| u.strip_prefix(PUBLIC))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no {action} in {}", self.body))
    }

    /// Where the caller's keys go.
    fn next(&self) -> String {
        self.url_of("input")
    }
}

/// The keys each documented NCCO action Messo writes may have, and those it must have.
fn documented(action: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match action {
        "talk" => (
            &["action", "text", "language", "style", "bargeIn"],
            &["action", "text"],
        ),
        "input" => (
            &["action", "type", "dtmf", "eventUrl", "eventMethod"],
            &["action", "type", "eventUrl"],
        ),
        "record" => (
            &[
                "action",
                "format",
                "endOnKey",
                "beepStart",
                "endOnSilence",
                "timeOut",
                "eventUrl",
                "eventMethod",
            ],
            &["action", "eventUrl"],
        ),
        "connect" => (
            &[
                "action",
                "endpoint",
                "from",
                "timeout",
                "eventType",
                "eventUrl",
                "eventMethod",
            ],
            &["action", "endpoint"],
        ),
        "notify" => (
            &["action", "payload", "eventUrl", "eventMethod"],
            &["action", "payload", "eventUrl"],
        ),
        _ => return None,
    })
}

fn is_int_in(v: &Value, lo: u64, hi: u64) -> bool {
    v.as_u64().is_some_and(|n| (lo..=hi).contains(&n))
}

/// Every action is one of Vonage's documented actions with only documented keys, the required
/// ones present and each of the documented type and range; every eventUrl is an absolute URL
/// under the public base with a sealed state, posted; a `bargeIn` talk is followed by an input.
fn check_ncco(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let actions = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {body}"));
    for (i, a) in actions.iter().enumerate() {
        let m = a
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {a}"));
        let name = a["action"].as_str().unwrap_or_default();
        let (allowed, required) =
            documented(name).unwrap_or_else(|| panic!("undocumented action {name:?} in {body}"));
        for k in m.keys() {
            assert!(allowed.contains(&k.as_str()), "{name}.{k} in {body}");
        }
        for k in required {
            assert!(m.contains_key(*k), "{name} without {k}: {body}");
        }
        if let Some(url) = a.get("eventUrl") {
            let urls = url.as_array().expect("eventUrl is an array");
            assert_eq!(urls.len(), 1, "{body}");
            let u = urls[0].as_str().expect("a URL");
            assert!(
                u.starts_with(&format!("{PUBLIC}/webhooks/voice/vg?s=")),
                "{u}"
            );
            assert_eq!(a["eventMethod"], "POST", "{body}");
        }
        match name {
            "talk" => {
                let text = a["text"].as_str().expect("text is a string");
                assert!(!text.trim().is_empty(), "an empty talk");
                assert!(!text.contains('<'), "no SSML: {text}");
                assert!(matches!(a["language"].as_str(), Some("it-IT" | "en-GB")));
                assert!(is_int_in(&a["style"], 0, 10));
                assert!(a["bargeIn"].is_boolean());
                if a["bargeIn"] == true {
                    let next = actions[i..]
                        .iter()
                        .find(|x| x["action"] != "talk")
                        .expect("an action after a bargeIn talk");
                    assert_eq!(next["action"], "input", "{body}");
                }
            }
            "input" => {
                assert_eq!(a["type"], json!(["dtmf"]));
                assert!(is_int_in(&a["dtmf"]["maxDigits"], 1, 20), "{body}");
                assert!(is_int_in(&a["dtmf"]["timeOut"], 0, 10), "{body}");
                assert_eq!(a["dtmf"]["submitOnHash"], true);
            }
            "record" => {
                assert!(matches!(a["format"].as_str(), Some("mp3" | "wav" | "ogg")));
                assert_eq!(a["endOnKey"], "#");
                assert!(a["beepStart"].is_boolean());
                assert!(is_int_in(&a["endOnSilence"], 3, 10));
                assert!(is_int_in(&a["timeOut"], 3, 7200));
            }
            "connect" => {
                let eps = a["endpoint"].as_array().expect("endpoint is an array");
                assert_eq!(eps.len(), 1);
                assert_eq!(eps[0]["type"], "phone");
                let n = eps[0]["number"].as_str().expect("number");
                assert!(n.bytes().all(|b| b.is_ascii_digit()), "{n}");
                assert!(a["from"].as_str().is_some());
                assert!(is_int_in(&a["timeout"], 3, 7200));
                assert_eq!(a["eventType"], "synchronous");
            }
            "notify" => assert!(a["payload"].is_object()),
            _ => unreachable!(),
        }
    }
    v
}

fn con(call: &str) -> String {
    format!("CON-{call}")
}

impl Phone {
    async fn finish(self) {
        self.db.finish().await;
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Posts `body` to `path` with `authorization` as it stands.
    async fn send(&self, path: &str, body: &Value, authorization: Option<String>) -> Heard {
        let mut r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(a) = authorization {
            r = r.header("authorization", a);
        }
        let r = r.send().await.expect("post");
        let status = r.status().as_u16();
        let is_json = r
            .headers()
            .get("content-type")
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c == "application/json");
        let body = r.text().await.expect("body");
        let ncco = if status == 200 {
            assert!(is_json, "an NCCO is application/json");
            check_ncco(&body)
        } else {
            Value::Null
        };
        Heard { status, body, ncco }
    }

    /// Posts `body` to `path`, signed as Vonage signs it now.
    async fn post(&self, path: &str, body: &Value) -> Heard {
        let jwt = vonage_token(SECRET, body.to_string().as_bytes(), self.now().0);
        self.send(path, body, Some(format!("Bearer {jwt}"))).await
    }

    /// A new call from `from` (the answer webhook, POST).
    async fn call(&self, call: &str, from: &str) -> Heard {
        self.post(
            "/webhooks/voice/vg",
            &json!({
                "from": from, "to": URP_LINE, "uuid": format!("leg-{call}"),
                "conversation_uuid": con(call), "region_url": "https://api-eu-1.nexmo.com",
            }),
        )
        .await
    }

    /// The caller types `digits` at the input `h` waits in (the input webhook).
    async fn keys(&self, h: &Heard, call: &str, from: &str, digits: &str) -> Heard {
        self.post(
            &h.next(),
            &json!({
                "speech": {"results": []},
                "dtmf": {"digits": digits, "timed_out": digits.is_empty()},
                "from": from, "to": URP_LINE, "uuid": format!("leg-{call}"),
                "conversation_uuid": con(call), "timestamp": "2026-12-04T21:00:00.000Z",
            }),
        )
        .await
    }

    async fn ticket_id(&self) -> i64 {
        self.store
            .tickets()
            .ticket(NUMBER)
            .await
            .expect("get")
            .expect("ticket")
            .id
    }

    async fn count(&self, sql: &str) -> i64 {
        common::db::count(&self.store, sql).await
    }
}

async fn the_citizen_calling_at_night_from_their_mobile_is_verified_by_caller_id(p: &Phone) {
    let greeting = p.call("night", CITIZEN_MOBILE).await;
    assert_eq!(greeting.status, 200, "{}", greeting.body);
    assert_eq!(greeting.names().last().map(String::as_str), Some("input"));
    let words = greeting.words();
    assert!(
        words.contains(
            "In questo momento l'ufficio è chiuso: riapre lunedì sette dicembre alle ore nove."
        ),
        "{words}"
    );
    assert!(words.contains("For English, press 9."), "{words}");
    let state = p.keys(&greeting, "night", CITIZEN_MOBILE, DIGITS).await;
    let words = state.words();
    assert!(
        words.contains("Richiesta numero 2 0 2 6, barra, 0 0 0 1 2 3."),
        "{words}"
    );
    assert!(words.contains("Prevediamo di concluderla entro"), "{words}");
    let audit = p.store.admin().audit_log(10).await.expect("audit");
    let lookup = audit
        .iter()
        .find(|a| a.action == "status_lookup")
        .expect("audited");
    assert_eq!(lookup.object, format!("ticket/{NUMBER}"));
    assert!(!format!("{lookup:?}").contains("3471234567"), "{lookup:?}");
    // Out of hours, 0 says the hours and puts nobody through.
    let zero = p.keys(&state, "night", CITIZEN_MOBILE, "0").await;
    assert!(
        zero.words()
            .contains("In questo momento l'ufficio è chiuso."),
        "{}",
        zero.words()
    );
    assert!(!zero.names().contains(&"connect".to_owned()));
}

async fn another_phone_is_verified_by_the_access_code_and_learns_nothing_before(p: &Phone) {
    let id = p.ticket_id().await;
    let greeting = p.call("code", STRANGER).await;
    let ask = p.keys(&greeting, "code", STRANGER, DIGITS).await;
    assert!(
        ask.words()
            .contains("digiti il codice di accesso di 6 cifre"),
        "{}",
        ask.words()
    );
    assert!(!ask.words().contains("Prevediamo"));
    let wrong = p.keys(&ask, "code", STRANGER, "123").await;
    assert!(
        wrong
            .words()
            .starts_with("Il codice digitato non è corretto."),
        "{}",
        wrong.words()
    );
    assert_eq!(
        p.count("SELECT COUNT(*) FROM access_code_failures").await,
        1
    );
    // Vonage repeats the callback: counted once.
    let _ = p.keys(&ask, "code", STRANGER, "123").await;
    assert_eq!(
        p.count("SELECT COUNT(*) FROM access_code_failures").await,
        1
    );
    let code = LinkKeys::new(LINK_KEY, None).access_code(id, None);
    let right = p.keys(&wrong, "code", STRANGER, &code).await;
    assert!(
        right.words().contains("Prevediamo di concluderla entro"),
        "{}",
        right.words()
    );
}

async fn a_voice_message_reaches_the_office_once_and_the_clock_stays_stopped(p: &Phone) {
    let e = NewEvent::from_json(&json!({
        "kind": "integration_requested",
        "at": "2026-12-04T11:00:00+01:00",
        "missing": "copia del documento d'identità"
    }))
    .expect("event");
    p.store
        .tickets()
        .append_event(
            NUMBER,
            &e,
            None,
            Source::Api,
            ts("2026-12-04T11:00:00+01:00"),
        )
        .await
        .expect("append");
    let g = p.call("msg", CITIZEN_MOBILE).await;
    let state = p.keys(&g, "msg", CITIZEN_MOBILE, DIGITS).await;
    let rec = p.keys(&state, "msg", CITIZEN_MOBILE, "2").await;
    assert_eq!(rec.names(), ["talk", "record", "notify"], "{}", rec.body);
    assert!(rec.words().contains("Dopo il segnale acustico"));
    // The NCCO goes on: notify fetches what follows, while the recording comes apart.
    let notify = rec.actions()[2].clone();
    let thanks = p.post(&rec.url_of("notify"), &notify["payload"]).await;
    assert!(
        thanks
            .words()
            .contains("il suo messaggio è stato registrato"),
        "{}",
        thanks.words()
    );
    let recorded = json!({
        "start_time": "2026-12-04T21:00:00Z",
        "recording_url": "https://api.nexmo.com/v1/files/rec-msg-1",
        "size": 12222,
        "recording_uuid": "rec-msg-1",
        "end_time": "2026-12-04T21:00:14Z",
        "conversation_uuid": con("msg"),
        "timestamp": "2026-12-04T21:00:15.000Z",
    });
    let first = p.post(&rec.url_of("record"), &recorded).await;
    assert_eq!(first.status, 200, "{}", first.body);
    // Vonage repeats the event: still one message.
    let again = p.post(&rec.url_of("record"), &recorded).await;
    assert_eq!(again.status, 200);
    assert_eq!(p.count("SELECT COUNT(*) FROM inbound_messages").await, 1);
    let raw = p.count(
        "SELECT COUNT(*) FROM inbound_messages WHERE raw LIKE '%api.nexmo.com/v1/files/rec-msg-1%'",
    );
    assert_eq!(raw.await, 1, "the message keeps the recording's link");
    let report = p
        .store
        .inbound()
        .process_inbound(&p.policy, p.now(), 100)
        .await
        .expect("process");
    assert_eq!(
        report.integrations, 0,
        "a call never resumes the clock by itself"
    );
    assert_eq!(report.notes, 1);
    let t = p
        .store
        .tickets()
        .ticket(NUMBER)
        .await
        .expect("get")
        .expect("ticket");
    assert!(t.waiting_since.is_some());
}

async fn unsigned_altered_or_stale_callbacks_are_refused_and_change_nothing(p: &Phone) {
    let g = p.call("edge", STRANGER).await;
    let next = g.next();
    let body = json!({
        "dtmf": {"digits": "000000", "timed_out": false}, "from": STRANGER, "to": URP_LINE,
        "uuid": "leg-edge", "conversation_uuid": con("edge"),
    });
    let now = p.now().0;
    let cases = [
        ("unsigned", None, 401, "Authorization"),
        ("not a bearer", Some(SECRET.to_owned()), 403, "Bearer"),
        (
            "another secret",
            Some(format!(
                "Bearer {}",
                vonage_token("another", body.to_string().as_bytes(), now)
            )),
            403,
            "signature",
        ),
        (
            "another body",
            Some(format!(
                "Bearer {}",
                vonage_token(SECRET, b"{\"dtmf\":{\"digits\":\"1\"}}", now)
            )),
            403,
            "payload_hash",
        ),
        (
            "stale",
            Some(format!(
                "Bearer {}",
                vonage_token(SECRET, body.to_string().as_bytes(), now - 301)
            )),
            403,
            "301s",
        ),
    ];
    for (what, auth, status, reason) in cases {
        let h = p.send(&next, &body, auth).await;
        assert_eq!(h.status, status, "{what}: {}", h.body);
        assert!(h.body.contains(reason), "{what}: {}", h.body);
    }
    // A first request refused the same way.
    let first = p
        .send(
            "/webhooks/voice/vg",
            &json!({"from": STRANGER, "to": URP_LINE, "conversation_uuid": con("x")}),
            None,
        )
        .await;
    assert_eq!(first.status, 401);
    assert_eq!(p.count("SELECT COUNT(*) FROM inbound_messages").await, 0);
    assert_eq!(
        p.count("SELECT COUNT(*) FROM access_code_failures").await,
        0
    );
    let audit = p.store.admin().audit_log(10).await.expect("audit");
    assert!(
        audit.iter().all(|a| a.action != "status_lookup"),
        "{audit:?}"
    );
    // The same request signed goes through: the refusals were the signature's.
    let ok = p.post(&next, &body).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

on_both!(start;
    the_citizen_calling_at_night_from_their_mobile_is_verified_by_caller_id,
    another_phone_is_verified_by_the_access_code_and_learns_nothing_before,
    a_voice_message_reaches_the_office_once_and_the_clock_stays_stopped,
    unsigned_altered_or_stale_callbacks_are_refused_and_change_nothing,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn english_on_request_and_unknown_numbers_get_three_tries() {
    let p = start(Backend::Sqlite).await;
    let g = p.call("en", STRANGER).await;
    let en = p.keys(&g, "en", STRANGER, "9").await;
    assert!(
        en.actions()
            .iter()
            .filter(|a| a["action"] == "talk")
            .all(|a| a["language"] == "en-GB"),
        "{}",
        en.body
    );
    assert!(
        en.words()
            .contains("Please type the number of your request"),
        "{}",
        en.words()
    );
    let mut h = en;
    for _ in 0..2 {
        h = p.keys(&h, "en", STRANGER, "999").await;
        assert!(
            h.words().starts_with("We cannot find a request"),
            "{}",
            h.words()
        );
        assert_eq!(h.names().last().map(String::as_str), Some("input"));
    }
    // Silence (the input times out with no digits) is the third try.
    let bye = p.keys(&h, "en", STRANGER, "").await;
    assert!(bye.words().contains("Goodbye."), "{}", bye.words());
    assert!(
        bye.names().iter().all(|n| n == "talk"),
        "the NCCO ends, so the call does: {}",
        bye.body
    );
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_office_hours_zero_connects_the_office_and_a_missed_transfer_brings_the_menu_back() {
    let p = start(Backend::Sqlite).await;
    p.clock.set("2026-12-07T10:00:00+01:00");
    let g = p.call("day", CITIZEN_MOBILE).await;
    assert!(
        g.words().contains("In questo momento l'ufficio è aperto."),
        "{}",
        g.words()
    );
    let s = p.keys(&g, "day", CITIZEN_MOBILE, DIGITS).await;
    let dial = p.keys(&s, "day", CITIZEN_MOBILE, "0").await;
    let connect = dial
        .actions()
        .into_iter()
        .find(|a| a["action"] == "connect")
        .unwrap_or_else(|| panic!("a connect in {}", dial.body));
    assert_eq!(connect["endpoint"][0]["number"], "390612345678");
    assert_eq!(connect["from"], URP_LINE);
    let event = |status: &str| {
        json!({
            "status": status, "uuid": "office-leg", "conversation_uuid": con("day"),
            "from": URP_LINE, "to": "390612345678", "direction": "outbound",
            "timestamp": "2026-12-07T09:00:05.000Z",
        })
    };
    // Progress needs no answer: the call goes on with the NCCO it has.
    let ringing = p.post(&dial.url_of("connect"), &event("ringing")).await;
    assert_eq!(ringing.status, 204, "{}", ringing.body);
    let missed = p.post(&dial.url_of("connect"), &event("unanswered")).await;
    assert!(
        missed
            .words()
            .contains("In questo momento l'ufficio non può rispondere."),
        "{}",
        missed.words()
    );
    assert_eq!(missed.names().last().map(String::as_str), Some("input"));
    // The application's event URL gets the call's statuses without a state: acknowledged only.
    let app_event = p.post("/webhooks/voice/vg", &event("completed")).await;
    assert_eq!(app_event.status, 204, "{}", app_event.body);
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_state_cannot_be_moved_to_another_conversation() {
    let p = start(Backend::Sqlite).await;
    let g = p.call("mine", CITIZEN_MOBILE).await;
    let moved = p
        .post(
            &g.next(),
            &json!({"dtmf": {"digits": DIGITS, "timed_out": false}, "from": STRANGER,
                    "conversation_uuid": con("other")}),
        )
        .await;
    assert_eq!(moved.status, 403, "{}", moved.body);
    // A form-encoded request is not Vonage's.
    let body = "conversation_uuid=CON-mine";
    let jwt = vonage_token(SECRET, body.as_bytes(), p.now().0);
    let r = p
        .client
        .post(format!("{}/webhooks/voice/vg", p.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", format!("Bearer {jwt}"))
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 400);
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_answering_a_vonage_callback_is_verified_then_refused_with_its_reason() {
    messo::install_crypto();
    let db = TestDb::open(Backend::Sqlite).await;
    let text = config_text().replacen(
        "enabled = true\noffice_number",
        "enabled = false\noffice_number",
        1,
    );
    let cfg = Config::from_toml(&text, "test", Vec::new()).expect("config");
    assert!(!cfg.voice.enabled);
    db.register(&cfg).await;
    let clock = TestClock::at(NIGHT);
    let writer = InboundWriter::spawn(db.store.clone(), Arc::new(tokio::sync::Notify::new()));
    let base = serve(router(WebhookState::new(
        &cfg.inbound,
        &cfg.http.public_base_url,
        writer,
        clock.clock(),
    )))
    .await;
    let body =
        json!({"from": STRANGER, "to": URP_LINE, "conversation_uuid": con("off")}).to_string();
    let post = |auth: Option<String>| {
        let mut r = reqwest::Client::new()
            .post(format!("{base}/webhooks/voice/vg"))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    let unsigned = post(None).await.expect("post");
    assert_eq!(unsigned.status().as_u16(), 401, "verified first");
    let jwt = vonage_token(SECRET, body.as_bytes(), clock.now().0);
    let r = post(Some(format!("Bearer {jwt}"))).await.expect("post");
    assert_eq!(r.status().as_u16(), 404);
    assert!(r.text().await.expect("body").contains("[voice] enabled"));
    assert_eq!(
        common::db::count(&db.store, "SELECT COUNT(*) FROM inbound_messages").await,
        0
    );
    db.finish().await;
}
