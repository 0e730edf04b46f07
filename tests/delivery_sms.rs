//! SMS delivery over real HTTP to local provider stubs that speak each provider's documented
//! shapes: the Italian REST family (token and login auth), Twilio, a generic JSON API. Success,
//! refusals, 401, 429 with Retry-After, 500 with failover to the backup, a hang past the timeout
//! settled by asking the provider, landlines refused before any request.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::process::{messo, run};
use common::{Backend, TestDb, fixed_clock, ts as at};
use messo::config::{BUILTIN_TOML, Config};
use messo::daemon::Engine;
use messo::delivery::dispatch::Dispatcher;
use messo::metrics::Metrics;
use messo::store::Store;
use messo::ticket::{NewTicket, Source};
use messo::time::Timestamp;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const RECEIVED: &str = "2026-03-02T10:15:00+01:00";

/// SMS over HTTP with the given provider variables (`P0`/`P1` stand for the provider prefixes).
fn config(vars: &[(&str, &str)]) -> Config {
    let mut env = vec![
        ("MESSO_CHANNELS__SMS".to_owned(), "http".to_owned()),
        (
            "MESSO_DELIVERY__BREAKER_FAILURES".to_owned(),
            "3".to_owned(),
        ),
    ];
    for (k, v) in vars {
        let k = k
            .replace("P0_", "MESSO_SMS__PROVIDERS__0__")
            .replace("P1_", "MESSO_SMS__PROVIDERS__1__");
        env.push((k, (*v).to_owned()));
    }
    // Provider tables are created by the file text; the variables fill them in.
    let n = vars
        .iter()
        .filter(|(k, _)| k.ends_with("P1_NAME") || *k == "P1_NAME")
        .count();
    let mut text = BUILTIN_TOML.to_owned();
    text.push_str("\n[sms]\nsender = \"ComuneRoma\"\nreply_number = \"+393470000000\"\n[[sms.providers]]\nname = \"primary\"\n");
    if n > 0 {
        text.push_str("[[sms.providers]]\nname = \"backup\"\n");
    }
    Config::from_toml(&text, "test", env).expect("config")
}

struct World {
    store: Store,
    dispatcher: Arc<Dispatcher>,
    engine: Engine,
    outbox: std::path::PathBuf,
}

async fn world(config: &mut Config) -> World {
    let db = TestDb::open(Backend::Sqlite).await;
    config.channels.file_dir = db.dir.join("outbox");
    db.register(config).await;
    World {
        dispatcher: Arc::new(
            Dispatcher::from_config(db.store.clone(), config, Arc::new(Metrics::default()))
                .expect("dispatcher"),
        ),
        engine: Engine::new(db.store.clone(), config.notify.clone()),
        outbox: db.dir.join("outbox"),
        store: db.store,
    }
}

/// A ticket whose citizen prefers SMS; returns the receipt's outbox id.
async fn owe_sms(w: &World, number: &str, mobile: &str) -> i64 {
    owe_sms_in(w, number, mobile, "it").await
}

async fn owe_sms_in(w: &World, number: &str, mobile: &str, language: &str) -> i64 {
    let t = NewTicket::from_json(&json!({
        "number": number,
        "office": "anagrafe",
        "priority": "normale",
        "subject": "Carta d'identità",
        "received_at": RECEIVED,
        "citizen": {"mobile": mobile, "email": "anna@example.it", "preferred_channel": "sms", "language": language}
    }))
    .expect("ticket");
    let id = w
        .store
        .tickets()
        .create_ticket(&t, Source::Api, at(RECEIVED))
        .await
        .expect("create")
        .ticket()
        .id;
    w.engine.cycle(at(RECEIVED)).await.expect("engine");
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT id FROM outbox WHERE ticket_id = $1 AND channel = 'sms'")
            .bind(id)
            .fetch_all(w.store.pool())
            .await
            .expect("row");
    rows[0].0
}

async fn drain(w: &World, t: Timestamp) -> messo::delivery::dispatch::DispatchReport {
    w.dispatcher
        .drain(&fixed_clock(t), u64::MAX)
        .await
        .expect("drain")
}

fn rest_it(server: &MockServer) -> Vec<(&'static str, String)> {
    vec![
        ("P0_KIND", "rest-it".to_owned()),
        ("P0_BASE_URL", format!("{}/API/v1.0/REST", server.uri())),
        ("P0_USER_KEY", "UK1".to_owned()),
        ("P0_ACCESS_TOKEN", "AT1".to_owned()),
        // Generous: only the hang test waits for it on purpose.
        ("P0_TIMEOUT_S", "10".to_owned()),
    ]
}

fn cfg(vars: Vec<(&'static str, String)>) -> Config {
    let v: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    config(&v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_it_gets_the_documented_request_and_its_answer_is_recorded() {
    let server = MockServer::start().await;
    let mut c = cfg(rest_it(&server));
    let w = world(&mut c).await;
    let id = owe_sms(&w, "S-1", "347 123 4567").await;
    Mock::given(method("POST"))
        .and(path("/API/v1.0/REST/sms"))
        .and(header("user_key", "UK1"))
        .and(header("Access_token", "AT1"))
        .and(body_partial_json(json!({
            "message_type": "GP",
            "recipient": ["+393471234567"],
            "sender": "ComuneRoma",
            "order_id": format!("messo-{id}"),
            "encoding": "gsm",
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "result": "OK", "order_id": format!("messo-{id}"), "internal_order_id": "IOD-77", "total_sent": 1
        })))
        .expect(1)
        .mount(&server)
        .await;
    let r = drain(&w, at(RECEIVED)).await;
    assert_eq!(r.delivered, 1, "{r:?}");
    let s = w
        .store
        .outbox()
        .delivery_state(id)
        .await
        .expect("state")
        .expect("row");
    assert_eq!(
        (s.state.as_str(), s.provider_id.as_deref()),
        ("delivered", Some("IOD-77"))
    );
    // The text on the air: GSM, short, the number, where to reply (the alias is one-way).
    let req = &server.received_requests().await.expect("requests")[0];
    let body: Value = serde_json::from_slice(&req.body).expect("json");
    let text = body["message"].as_str().expect("text");
    assert!(
        text.contains("S-1") && text.contains("Risposte al +393470000000"),
        "{text}"
    );
    assert!(body["max_fragments"].as_u64().is_some_and(|n| n >= 1));
}

/// The reply line comes from the template partial in the citizen's language.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_english_citizen_is_told_where_to_reply_in_english() {
    let server = MockServer::start().await;
    let mut c = cfg(rest_it(&server));
    let w = world(&mut c).await;
    let id = owe_sms_in(&w, "S-EN", "347 123 4568", "en").await;
    Mock::given(method("POST"))
        .and(path("/API/v1.0/REST/sms"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "result": "OK", "order_id": format!("messo-{id}"), "internal_order_id": "IOD-78", "total_sent": 1
        })))
        .expect(1)
        .mount(&server)
        .await;
    let r = drain(&w, at(RECEIVED)).await;
    assert_eq!(r.delivered, 1, "{r:?}");
    let req = &server.received_requests().await.expect("requests")[0];
    let body: Value = serde_json::from_slice(&req.body).expect("json");
    let text = body["message"].as_str().expect("text");
    assert!(
        text.contains("S-EN") && text.ends_with(" Replies to +393470000000"),
        "{text}"
    );
    assert!(!text.contains("Risposte"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_fall_back_to_email_and_rate_limits_wait_as_asked() {
    let server = MockServer::start().await;
    let mut c = cfg(rest_it(&server));
    let w = world(&mut c).await;
    let blacklisted = owe_sms(&w, "S-BL", "+393471111111").await;
    let limited = owe_sms(&w, "S-429", "+393472222222").await;
    let landline = owe_sms(&w, "S-06", "06 6710 1234").await;
    Mock::given(method("POST"))
        .and(body_string_contains("+393471111111"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"result": "KO", "error": "BLACKLISTED"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("+393472222222"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
        .mount(&server)
        .await;
    let r = drain(&w, at(RECEIVED)).await;
    assert_eq!((r.delivered, r.dead, r.fallbacks), (2, 2, 2), "{r:?}");

    let s = w
        .store
        .outbox()
        .delivery_state(blacklisted)
        .await
        .expect("state")
        .expect("row");
    assert_eq!(s.state, "dead");
    assert!(
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("BLACKLISTED")),
        "{s:?}"
    );
    let s = w
        .store
        .outbox()
        .delivery_state(landline)
        .await
        .expect("state")
        .expect("row");
    assert!(
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("landline")),
        "{s:?}"
    );
    // Both fell back to e-mail (the file channel here), which went out in the same drain.
    let mails: Vec<String> = std::fs::read_dir(&w.outbox)
        .expect("outbox dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".eml"))
        .collect();
    assert_eq!(mails.len(), 2, "{mails:?}");
    // 429: retried exactly when the provider asked, not before.
    let s = w
        .store
        .outbox()
        .delivery_state(limited)
        .await
        .expect("state")
        .expect("row");
    assert_eq!(s.state, "retry");
    let nb: (i64,) = sqlx::query_as("SELECT not_before FROM outbox WHERE id = $1")
        .bind(limited)
        .fetch_one(w.store.pool())
        .await
        .expect("not_before");
    assert_eq!(nb.0, at(RECEIVED).0 + 7);
    // Only the landline never reached the provider.
    assert_eq!(server.received_requests().await.expect("requests").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_primary_fails_over_to_twilio_and_twilio_refusals_are_final() {
    let primary = MockServer::start().await;
    let twilio = MockServer::start().await;
    let mut vars = rest_it(&primary);
    vars.extend([
        ("P1_NAME", "backup".to_owned()),
        ("P1_KIND", "twilio".to_owned()),
        ("P1_BASE_URL", twilio.uri()),
        ("P1_ACCOUNT_SID", "AC123".to_owned()),
        ("P1_AUTH_TOKEN", "twilio-auth-token-0123".to_owned()),
    ]);
    let mut c = cfg(vars);
    let w = world(&mut c).await;
    let ok = owe_sms(&w, "T-1", "+393471234567").await;
    let bad = owe_sms(&w, "T-2", "+393479999999").await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("maintenance"))
        .mount(&primary)
        .await;
    Mock::given(method("POST"))
        .and(path("/2010-04-01/Accounts/AC123/Messages.json"))
        .and(header(
            "authorization",
            "Basic QUMxMjM6dHdpbGlvLWF1dGgtdG9rZW4tMDEyMw==",
        ))
        .and(body_string_contains("To=%2B393471234567"))
        .and(body_string_contains("From=ComuneRoma"))
        .and(body_string_contains("StatusCallback=http"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"sid": "SM42", "status": "queued"})),
        )
        .mount(&twilio)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("To=%2B393479999999"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400}),
        ))
        .mount(&twilio)
        .await;
    let r = drain(&w, at(RECEIVED)).await;
    assert_eq!((r.delivered - r.fallbacks, r.dead), (1, 1), "{r:?}");
    let s = w
        .store
        .outbox()
        .delivery_state(ok)
        .await
        .expect("state")
        .expect("row");
    assert_eq!(
        (
            s.state.as_str(),
            s.provider.as_deref(),
            s.provider_id.as_deref()
        ),
        ("delivered", Some("backup"), Some("SM42"))
    );
    let a = w.store.outbox().attempts_of(ok).await.expect("attempts");
    let seen: Vec<(&str, &str, Option<&str>)> = a
        .iter()
        .map(|a| (a.provider.as_str(), a.outcome.as_str(), a.code.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("primary", "transient", Some("500")),
            ("backup", "delivered", Some("201"))
        ]
    );
    let s = w
        .store
        .outbox()
        .delivery_state(bad)
        .await
        .expect("state")
        .expect("row");
    assert!(
        s.last_error.as_deref().is_some_and(|e| e.contains("21211")),
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_past_the_timeout_is_settled_by_asking_the_provider_not_by_resending() {
    let server = MockServer::start().await;
    let mut vars = rest_it(&server);
    for (k, v) in &mut vars {
        if *k == "P0_TIMEOUT_S" {
            *v = "1".to_owned();
        }
    }
    let mut c = cfg(vars);
    let w = world(&mut c).await;
    let id = owe_sms(&w, "H-1", "+393471234567").await;
    let other = owe_sms(&w, "H-2", "+393477654321").await;
    // The first POST of each hangs past our 1 s timeout (the provider got it or not: unknown).
    Mock::given(method("POST"))
        .and(path("/API/v1.0/REST/sms"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_delay(Duration::from_secs(3))
                .set_body_json(json!({"result": "OK"})),
        )
        .up_to_n_times(2)
        .mount(&server)
        .await;
    let r = drain(&w, at(RECEIVED)).await;
    assert_eq!((r.delivered, r.failed, r.uncertain), (0, 2, 0), "{r:?}");
    let a = w.store.outbox().attempts_of(id).await.expect("attempts");
    assert_eq!(a[0].outcome, "uncertain", "{a:?}");

    // Asked later: the provider has the first (delivered), never saw the second (404).
    Mock::given(method("GET"))
        .and(path(format!("/API/v1.0/REST/sms/messo-{id}")))
        .and(header("user_key", "UK1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "recipient_number": 1, "result": "OK",
            "recipients": [{"destination": "+393471234567", "status": "DLVRD"}]
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/API/v1.0/REST/sms/messo-{other}")))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/API/v1.0/REST/sms"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"result": "OK", "internal_order_id": "X2"})),
        )
        .mount(&server)
        .await;
    let r = drain(&w, at(RECEIVED).plus(3600)).await;
    assert_eq!((r.delivered, r.resent), (2, 0), "{r:?}");
    let posts = |reqs: &[wiremock::Request], n: &str| {
        reqs.iter()
            .filter(|r| r.method.as_str() == "POST" && String::from_utf8_lossy(&r.body).contains(n))
            .count()
    };
    let reqs = server.received_requests().await.expect("requests");
    assert_eq!(
        posts(&reqs, "+393471234567"),
        1,
        "the delivered one is not sent again"
    );
    assert_eq!(
        posts(&reqs, "+393477654321"),
        2,
        "the one the provider never got is sent"
    );
    let s = w
        .store
        .outbox()
        .delivery_state(id)
        .await
        .expect("state")
        .expect("row");
    assert_eq!((s.state.as_str(), s.resent), ("delivered", 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_sessions_and_the_generic_json_provider() {
    // REST-IT with username/password: a login, then the session headers; a 401 logs in again.
    let server = MockServer::start().await;
    let mut c = cfg(vec![
        ("P0_KIND", "rest-it".to_owned()),
        ("P0_BASE_URL", format!("{}/API/v1.0/REST", server.uri())),
        ("P0_USERNAME", "urp".to_owned()),
        ("P0_PASSWORD", "pw".to_owned()),
    ]);
    let w = world(&mut c).await;
    owe_sms(&w, "L-1", "+393471234567").await;
    Mock::given(method("GET"))
        .and(path("/API/v1.0/REST/login"))
        .respond_with(ResponseTemplate::new(200).set_body_string("UKX;SESS1"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(header("user_key", "UKX"))
        .and(header("Session_key", "SESS1"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"result": "OK"})))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(drain(&w, at(RECEIVED)).await.delivered, 1);

    // A token the provider no longer accepts: the provider's fault, not the message's; the row
    // waits and the provider's breaker counts it.
    let refused = MockServer::start().await;
    let mut c = cfg(rest_it(&refused));
    let w = world(&mut c).await;
    let id = owe_sms(&w, "L-401", "+393471234567").await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_string("invalid token"))
        .mount(&refused)
        .await;
    let r = drain(&w, at(RECEIVED)).await;
    assert_eq!((r.delivered, r.dead, r.failed), (0, 0, 1), "{r:?}");
    let s = w
        .store
        .outbox()
        .delivery_state(id)
        .await
        .expect("state")
        .expect("row");
    assert_eq!(s.state, "retry");
    assert!(
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("credentials (401)")),
        "{s:?}"
    );

    // Generic: our body template, our headers, the id where the pointer says.
    let generic = MockServer::start().await;
    let mut c = cfg(vec![
        ("P0_KIND", "generic".to_owned()),
        ("P0_BASE_URL", format!("{}/v2/messages", generic.uri())),
        (
            "P0_BODY",
            r#"{"dest":"{{to}}","msg":"{{text}}","ref":"{{order_id}}","from":"{{sender}}"}"#
                .to_owned(),
        ),
        ("P0_ID_POINTER", "/data/id".to_owned()),
        ("P0_HEADERS__X_API_KEY", "k-1".to_owned()),
    ]);
    let w = world(&mut c).await;
    let id = owe_sms(&w, "G-1", "+393471234567").await;
    Mock::given(method("POST"))
        .and(path("/v2/messages"))
        .and(header("x_api_key", "k-1"))
        .and(body_partial_json(
            json!({"dest": "+393471234567", "ref": format!("messo-{id}"), "from": "ComuneRoma"}),
        ))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"data": {"id": 991}})))
        .expect(1)
        .mount(&generic)
        .await;
    assert_eq!(drain(&w, at(RECEIVED)).await.delivered, 1);
    let s = w
        .store
        .outbox()
        .delivery_state(id)
        .await
        .expect("state")
        .expect("row");
    assert_eq!(s.provider_id.as_deref(), Some("991"));
}

/// `messo send-test --channel sms` through a configured provider: the request the provider gets,
/// and a landline refused with its reason before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_sends_one_sms_and_explains_a_refusal() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/API/v1.0/REST/sms"))
        .and(body_partial_json(json!({"recipient": ["+393471234567"]})))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"result": "OK", "internal_order_id": "T-9"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let base = format!("{}/API/v1.0/REST", server.uri());
    let run = |to: &'static str| {
        let base = base.clone();
        std::thread::spawn(move || {
            run(
                messo()
                    .args(["send-test", "--channel", "sms", "--to", to])
                    .env("MESSO_CHANNELS__SMS", "http")
                    .env(
                        "MESSO_SMS__PROVIDERS",
                        r#"[{name = "primary", kind = "rest-it"}]"#,
                    )
                    .env("MESSO_SMS__PROVIDERS__0__BASE_URL", base)
                    .env("MESSO_SMS__PROVIDERS__0__USER_KEY", "u")
                    .env("MESSO_SMS__PROVIDERS__0__ACCESS_TOKEN", "t"),
                None,
            )
        })
        .join()
        .expect("thread")
    };
    let ok = run("347 123 4567");
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(out.contains("via primary: delivered [201] id T-9"), "{out}");
    let landline = run("06 6710 1234");
    let out = String::from_utf8_lossy(&landline.stdout);
    assert!(!landline.status.success());
    assert!(
        out.contains("permanent") && out.contains("a landline cannot receive SMS"),
        "{out}"
    );
}
