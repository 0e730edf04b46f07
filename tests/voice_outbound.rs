//! Outbound calls (`[voice.outbound]`, issue 19 point 5) against a local provider over real
//! HTTP: the request each provider gets (Twilio's form and basic auth; Vonage's JSON and its
//! RS256 JWT, checked with the test key's public half), how answers are classified, and when
//! the fallback chain places a call — never when the SMS arrived, once after SMS and e-mail
//! failed, only inside the SMS window, and never twice (SQLite and PostgreSQL).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::db::count;
use common::{Backend, TestClock, TestDb, on_both, serve};
use messo::config::{BUILTIN_TOML, Config};
use messo::delivery::dispatch::Dispatcher;
use messo::delivery::voice::VoiceChannel;
use messo::delivery::{Channel, DoubtPolicy, OutMessage, Outcome, Sending, Sent};
use messo::domain::Channel as ChannelName;
use messo::domain::{Address, Kind, Lang, Recipient};
use messo::store::NewOutbox;
use messo::ticket::{NewTicket, Source};
use messo::time::Timestamp;
use ring::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use serde_json::{Value, json};

const KEY: &str = include_str!("data/voice-test-key.pem");
const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "a-twilio-auth-token-for-tests-only";
const APP: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

/// What the stub provider got: path, headers, body.
type Got = Arc<Mutex<Vec<(String, HeaderMap, String)>>>;

/// A provider stub: records every request and answers with the status and JSON it is set to.
#[derive(Clone)]
struct Stub {
    got: Got,
    answer: Arc<Mutex<(u16, Value)>>,
}

impl Stub {
    async fn start(status: u16, body: Value) -> (Stub, String) {
        let stub = Stub {
            got: Arc::default(),
            answer: Arc::new(Mutex::new((status, body))),
        };
        async fn answer(
            State(s): State<Stub>,
            uri: axum::http::Uri,
            headers: HeaderMap,
            body: String,
        ) -> impl IntoResponse {
            s.got
                .lock()
                .expect("lock")
                .push((uri.path().to_owned(), headers, body));
            let (status, body) = s.answer.lock().expect("lock").clone();
            (
                StatusCode::from_u16(status).expect("a status"),
                [("retry-after", "7")],
                axum::Json(body),
            )
        }
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(stub.clone());
        let url = serve(app).await;
        (stub, url)
    }

    fn set(&self, status: u16, body: Value) {
        *self.answer.lock().expect("lock") = (status, body);
    }

    fn requests(&self) -> Vec<(String, HeaderMap, String)> {
        self.got.lock().expect("lock").clone()
    }
}

fn twilio_toml(base_url: &str) -> String {
    format!(
        "[voice.outbound]\nenabled = true\nprovider = \"twilio\"\nfrom = \"+390612345678\"\n\
         account_sid = \"{SID}\"\nauth_token = \"{TOKEN}\"\nbase_url = \"{base_url}\"\ntimeout_s = 5\n"
    )
}

fn vonage_toml(base_url: &str) -> String {
    format!(
        "[voice.outbound]\nenabled = true\nprovider = \"vonage\"\nfrom = \"+390612345678\"\n\
         application_id = \"{APP}\"\nprivate_key = '''\n{KEY}'''\nbase_url = \"{base_url}\"\ntimeout_s = 5\n"
    )
}

fn config(voice: &str) -> Config {
    let text = format!(
        "{BUILTIN_TOML}\n[delivery]\nfallback = [\"pec\", \"email\", \"sms\", \"voice\", \"office\"]\n{voice}"
    );
    Config::from_toml(&text, "test", Vec::new()).unwrap_or_else(|e| panic!("config: {e}"))
}

fn channel(voice: &str) -> VoiceChannel {
    let c = config(voice);
    VoiceChannel::new(c.voice.outbound.as_ref().expect("outbound"), &c.delivery)
        .expect("a voice channel")
}

fn message(lang: Lang) -> OutMessage {
    OutMessage {
        outbox_id: 42,
        ticket_id: 7,
        number: "2026/000123".to_owned(),
        kind: Kind::Violazione,
        recipient: Recipient::Citizen,
        channel: ChannelName::Voice,
        address: Address::parse(ChannelName::Voice, "347 123 4567").expect("a number"),
        subject: String::new(),
        text: "La sua richiesta numero 2 0 2 6, barra, 0 0 0 1 2 3 è in ritardo & ci scusiamo."
            .to_owned(),
        html: None,
        reply_to: None,
        attachments: Vec::new(),
        language: lang,
        due_date: None,
    }
}

fn outcome(sent: &Sent) -> &Outcome {
    sent.outcome().expect("an attempt")
}

#[tokio::test]
async fn twilio_gets_a_form_with_twiml_and_basic_auth() {
    let (stub, url) = Stub::start(
        201,
        json!({"sid": "CA11112222333344445555666677778888", "status": "queued"}),
    )
    .await;
    let ch = channel(&twilio_toml(&url));
    let sent = ch.send(&message(Lang::It), false).await;
    assert_eq!(
        outcome(&sent),
        &Outcome::Delivered {
            provider_id: Some("CA11112222333344445555666677778888".to_owned()),
            code: Some("201".to_owned()),
        }
    );
    assert_eq!(sent.attempts[0].provider, "twilio");
    let got = stub.requests();
    assert_eq!(got.len(), 1);
    let (path, headers, body) = &got[0];
    assert_eq!(path, &format!("/2010-04-01/Accounts/{SID}/Calls.json"));
    let auth = headers["authorization"].to_str().expect("ascii");
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"));
    assert_eq!(auth, format!("Basic {expected}"));
    assert!(
        headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/x-www-form-urlencoded")
    );
    let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k} in {form:?}"))
    };
    assert_eq!(field("To"), "+393471234567");
    assert_eq!(field("From"), "+390612345678");
    let twiml = field("Twiml");
    let doc = roxmltree::Document::parse(&twiml).expect("TwiML is XML");
    let says: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("Say"))
        .collect();
    assert_eq!(says.len(), 3, "{twiml}");
    assert_eq!(says[0].attribute("language"), Some("it-IT"));
    assert_eq!(
        says[0].text(),
        Some("La sua richiesta numero 2 0 2 6, barra, 0 0 0 1 2 3 è in ritardo & ci scusiamo.")
    );
    assert!(doc.descendants().any(|n| n.has_tag_name("Hangup")));
}

#[tokio::test]
async fn vonage_gets_json_with_ncco_and_a_verifiable_rs256_jwt() {
    let (stub, url) = Stub::start(
        201,
        json!({"uuid": "63f61863-4a51-4f6b-86e1-46edebcf9356", "status": "started",
               "direction": "outbound", "conversation_uuid": "CON-f972836a-550f-45fa-956c-12a2ab5b7d22"}),
    )
    .await;
    let ch = channel(&vonage_toml(&url));
    let before = chrono::Utc::now().timestamp();
    let sent = ch.send(&message(Lang::En), false).await;
    assert_eq!(
        outcome(&sent),
        &Outcome::Delivered {
            provider_id: Some("63f61863-4a51-4f6b-86e1-46edebcf9356".to_owned()),
            code: Some("201".to_owned()),
        }
    );
    assert_eq!(sent.attempts[0].provider, "vonage");
    let got = stub.requests();
    let (path, headers, body) = &got[0];
    assert_eq!(path, "/v1/calls");
    let body: Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(
        body["to"],
        json!([{"type": "phone", "number": "393471234567"}])
    );
    assert_eq!(
        body["from"],
        json!({"type": "phone", "number": "390612345678"})
    );
    let ncco = body["ncco"].as_array().expect("an NCCO");
    assert_eq!(ncco.len(), 3);
    for a in ncco {
        assert_eq!(a["action"], "talk");
        assert_eq!(a["language"], "en-GB");
    }
    assert_eq!(ncco[0]["text"], message(Lang::En).text);
    // The JWT: RS256, signed by the application's key, with its claims.
    let auth = headers["authorization"].to_str().expect("ascii");
    let jwt = auth.strip_prefix("Bearer ").expect("a bearer token");
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("json");
    assert_eq!(header["alg"], "RS256");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    assert_eq!(claims["application_id"], APP);
    let iat = claims["iat"].as_i64().expect("iat");
    assert!(iat >= before && iat <= before + 5, "{claims}");
    assert!(claims["exp"].as_i64().expect("exp") > iat);
    assert_eq!(claims["jti"].as_str().expect("jti").len(), 32);
    let der = pem_body(KEY);
    let pair = RsaKeyPair::from_pkcs8(&der).expect("the test key");
    let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pair.public_key().as_ref());
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("b64");
    public
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the signature verifies with the public half");
    // A tampered token does not.
    assert!(
        public
            .verify(format!("{}.{}x", parts[0], parts[1]).as_bytes(), &signature)
            .is_err()
    );
    // Each request has its own jti.
    ch.send(&message(Lang::En), false).await;
    let got = stub.requests();
    let jti = |i: usize| {
        let jwt = got[i].1["authorization"].to_str().expect("ascii")[7..].to_owned();
        let c = jwt.split('.').nth(1).expect("claims").to_owned();
        let c: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).expect("b64")).expect("j");
        c["jti"].clone()
    };
    assert_ne!(jti(0), jti(1));
}

fn pem_body(pem: &str) -> Vec<u8> {
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("PEM")
}

#[tokio::test]
async fn errors_are_retryable_or_permanent_like_sms() {
    for (toml, bad_number, bad_body) in [
        (
            twilio_toml as fn(&str) -> String,
            400,
            json!({"code": 21211, "message": "Invalid 'To' Phone Number", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}),
        ),
        (
            vonage_toml,
            400,
            json!({"type": "https://developer.nexmo.com/api-errors#bad-request", "title": "Bad Request", "detail": "Invalid phone number"}),
        ),
    ] {
        let (stub, url) = Stub::start(bad_number, bad_body).await;
        let ch = channel(&toml(&url));
        let m = message(Lang::It);
        match outcome(&ch.send(&m, false).await) {
            Outcome::Permanent { reason, code } => {
                assert!(
                    reason.contains("Invalid") && reason.contains("(400)"),
                    "{reason}"
                );
                assert!(code.is_some());
            }
            other => panic!("a 400 is permanent: {other:?}"),
        }
        stub.set(503, json!({"message": "Service Unavailable"}));
        assert!(matches!(
            outcome(&ch.send(&m, false).await),
            Outcome::Transient {
                provider_down: true,
                ..
            }
        ));
        stub.set(401, json!({"code": 20003, "message": "Authenticate"}));
        assert!(matches!(
            outcome(&ch.send(&m, false).await),
            Outcome::Transient {
                provider_down: true,
                ..
            }
        ));
        stub.set(429, json!({"code": 20429, "message": "Too Many Requests"}));
        assert!(matches!(
            outcome(&ch.send(&m, false).await),
            Outcome::Transient {
                provider_down: false,
                retry_after: Some(d),
                ..
            } if d.as_secs() == 7
        ));
    }
    // Nobody listening: transient, before anything was sent.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let ch = channel(&twilio_toml(&url));
    assert!(matches!(
        outcome(&ch.send(&message(Lang::It), false).await),
        Outcome::Transient { .. }
    ));
    assert_eq!(
        ch.doubt_policy(),
        DoubtPolicy::Hold,
        "a call is never placed twice"
    );
}

#[test]
fn check_config_names_the_key_paths() {
    let keys = |voice: &str, fallback: &str| -> Vec<String> {
        let text = format!("{BUILTIN_TOML}\n[delivery]\nfallback = {fallback}\n{voice}");
        match Config::from_toml(&text, "test", Vec::new()) {
            Ok(_) => Vec::new(),
            Err(messo::config::ConfigError::Invalid { problems, .. }) => {
                problems.into_iter().map(|p| p.key).collect()
            }
            Err(e) => panic!("{e}"),
        }
    };
    let chain = "[\"email\", \"sms\", \"voice\", \"office\"]";
    let mut k = keys(
        "[voice.outbound]\nenabled = true\nprovider = \"twilio\"\n",
        chain,
    );
    k.sort();
    assert_eq!(
        k,
        [
            "delivery.fallback",
            "voice.outbound.account_sid",
            "voice.outbound.auth_token",
            "voice.outbound.from",
        ]
    );
    assert_eq!(
        keys(
            "[voice.outbound]\nenabled = true\nprovider = \"sip\"\nfrom = \"+390612345678\"\n",
            chain
        ),
        ["voice.outbound.provider", "delivery.fallback"]
    );
    // The link without the section, the section without the link.
    assert_eq!(keys("", chain), ["delivery.fallback"]);
    assert_eq!(
        keys(
            &twilio_toml("http://127.0.0.1:9"),
            "[\"email\", \"office\"]"
        ),
        ["voice.outbound.enabled"]
    );
    assert_eq!(
        keys(
            &twilio_toml("http://127.0.0.1:9").replace("timeout_s = 5", "timeout_s = 0"),
            chain
        ),
        ["voice.outbound.timeout_s"]
    );
    assert!(keys(&vonage_toml("http://127.0.0.1:9"), chain).is_empty());
    assert!(keys(&twilio_toml("http://127.0.0.1:9"), chain).is_empty());
    // Off by default: the shipped file places no call.
    let c = Config::from_toml(BUILTIN_TOML, "built-in", Vec::new()).expect("config");
    assert!(c.voice.outbound.is_none());
    // A Vonage key ring cannot sign stops the channel's setup, naming the key.
    let bad = vonage_toml("http://127.0.0.1:9").replace(
        KEY,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    let c = config(&bad);
    let e = VoiceChannel::new(c.voice.outbound.as_ref().expect("outbound"), &c.delivery)
        .err()
        .expect("refused");
    assert!(
        e.to_string().starts_with("voice.outbound.private_key"),
        "{e}"
    );
}

/// A written channel that fails for good, or delivers.
#[derive(Clone)]
struct Written {
    name: &'static str,
    delivers: bool,
    got: Arc<Mutex<u32>>,
    /// The test clock and where a send moves it (a send that ends as the window closes).
    then: Option<(TestClock, &'static str)>,
}

impl Written {
    fn new(name: &'static str, delivers: bool) -> Written {
        Written {
            name,
            delivers,
            got: Arc::default(),
            then: None,
        }
    }
}

impl Channel for Written {
    fn name(&self) -> &str {
        self.name
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
    fn send<'a>(&'a self, _msg: &'a OutMessage, _in_doubt: bool) -> Sending<'a> {
        Box::pin(async move {
            *self.got.lock().expect("lock") += 1;
            if let Some((clock, t)) = &self.then {
                clock.set(t);
            }
            let outcome = if self.delivers {
                Outcome::Delivered {
                    provider_id: None,
                    code: None,
                }
            } else {
                Outcome::permanent("refused (test)")
            };
            Sent::one(self.name, outcome, Instant::now(), 0)
        })
    }
}

/// The SMS window of the tests: 08:00–20:00 UTC.
fn window(t: Timestamp) -> Timestamp {
    let day = t.0.div_euclid(86_400) * 86_400;
    let (open, close) = (day + 8 * 3600, day + 20 * 3600);
    if t.0 < open {
        Timestamp(open)
    } else if t.0 >= close {
        Timestamp(open + 86_400)
    } else {
        t
    }
}

struct World {
    db: TestDb,
    stub: Stub,
    url: String,
}

async fn start(backend: Backend) -> World {
    let (stub, url) = Stub::start(201, json!({"sid": "CA00000000000000000000000000000001"})).await;
    let db = TestDb::with_config(backend, &config(&twilio_toml(&url))).await;
    World { db, stub, url }
}

impl std::ops::Deref for World {
    type Target = TestDb;
    fn deref(&self) -> &TestDb {
        &self.db
    }
}

impl World {
    async fn finish(self) {
        self.db.finish().await;
    }

    /// A dispatcher as the daemon builds it (the voice channel on the stub), with the written
    /// channels replaced by `email` and `sms`.
    fn dispatcher(&self, email: &Written, sms: &Written) -> Arc<Dispatcher> {
        let c = config(&twilio_toml(&self.url));
        Arc::new(
            Dispatcher::from_config(self.db.store.clone(), &c, Arc::default())
                .expect("dispatcher")
                .with_channel(ChannelName::Email, Box::new(email.clone()))
                .with_channel(ChannelName::Sms, Box::new(sms.clone()))
                .with_sms_opening(Arc::new(window)),
        )
    }

    /// A ticket whose citizen has an e-mail address and a mobile, and its `kind` notice owed
    /// by e-mail.
    async fn notice(&self, kind: Kind, key: &str, now: Timestamp) -> i64 {
        let t = NewTicket::from_json(&json!({
            "number": format!("2026/{:06}", now.0 % 1_000_000),
            "office": "anagrafe",
            "priority": "normale",
            "subject": "Cambio di residenza",
            "received_at": "2027-01-15T09:00:00+01:00",
            "citizen": {"email": "mario.rossi@example.it", "mobile": "+393471234567"}
        }))
        .expect("ticket");
        let ticket_id = self
            .store
            .tickets()
            .create_ticket(&t, Source::Api, now)
            .await
            .expect("create")
            .ticket()
            .id;
        let payload = json!({"number": format!("2026/{:06}", now.0 % 1_000_000),
            "subject": "Cambio di residenza", "office": "Anagrafe", "missing": "un documento",
            "breached_at": "2027-01-20T09:00:00+01:00", "due_at": null});
        self.store
            .outbox()
            .insert_message(
                &NewOutbox {
                    ticket_id,
                    kind,
                    dedupe_key: key.to_owned(),
                    recipient: Recipient::Citizen,
                    channel: ChannelName::Email,
                    address: Address::parse(ChannelName::Email, "mario.rossi@example.it")
                        .expect("address"),
                    language: Lang::It,
                    payload,
                    not_before: now,
                },
                now,
            )
            .await
            .expect("insert")
            .expect("an id")
    }

    async fn voice_rows(&self) -> i64 {
        count(
            &self.store,
            "SELECT COUNT(*) FROM outbox WHERE channel = 'voice'",
        )
        .await
    }
}

on_both!(start; no_call_when_the_sms_arrived, one_call_after_sms_and_email_failed, no_call_outside_the_window_until_it_opens, a_refused_call_goes_to_the_office);

async fn no_call_when_the_sms_arrived(w: &World) {
    let clock = TestClock::at("2027-01-20T10:00:00Z");
    w.notice(Kind::Violazione, "violazione:1", clock.now())
        .await;
    let (email, sms) = (Written::new("mail", false), Written::new("sms", true));
    let d = w.dispatcher(&email, &sms);
    for _ in 0..3 {
        d.drain(&clock.clock(), 100).await.expect("drain");
    }
    assert_eq!(
        (*email.got.lock().expect("l"), *sms.got.lock().expect("l")),
        (1, 1)
    );
    assert_eq!(w.voice_rows().await, 0);
    assert!(w.stub.requests().is_empty());
}

async fn one_call_after_sms_and_email_failed(w: &World) {
    let clock = TestClock::at("2027-01-20T10:00:00Z");
    w.notice(Kind::Violazione, "violazione:2", clock.now())
        .await;
    // Another kind never calls.
    w.notice(Kind::Ricevuta, "ricevuta:2", clock.now()).await;
    let (email, sms) = (Written::new("mail", false), Written::new("sms", false));
    let d = w.dispatcher(&email, &sms);
    for _ in 0..4 {
        d.drain(&clock.clock(), 100).await.expect("drain");
    }
    let got = w.stub.requests();
    assert_eq!(got.len(), 1, "one call");
    let form: Vec<(String, String)> = form_urlencoded::parse(got[0].2.as_bytes())
        .into_owned()
        .collect();
    let twiml = &form.iter().find(|(k, _)| k == "Twiml").expect("Twiml").1;
    assert!(
        twiml.contains("non è stata conclusa entro il termine"),
        "{twiml}"
    );
    assert!(!twiml.contains("http"), "{twiml}");
    let id = count(
        &w.store,
        "SELECT MAX(id) FROM outbox WHERE channel = 'voice'",
    )
    .await;
    let state = w
        .store
        .outbox()
        .delivery_state(id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(state.state, "delivered");
    assert_eq!(state.kind, "violazione");
    assert_eq!(state.address, "+393471234567");
    assert_eq!(state.provider.as_deref(), Some("twilio"));
    assert_eq!(
        state.provider_id.as_deref(),
        Some("CA00000000000000000000000000000001")
    );
    let attempts = w.store.outbox().attempts_of(id).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].channel, "voice");
    assert_eq!(attempts[0].outcome, "delivered");
    // A restart (a new dispatcher, as another daemon would be) places no second call, and the
    // same death recorded again owes no second call row.
    let again = w.dispatcher(&email, &sms);
    clock.advance(3600);
    for _ in 0..2 {
        again.drain(&clock.clock(), 100).await.expect("drain");
    }
    assert_eq!(w.stub.requests().len(), 1);
    assert_eq!(w.voice_rows().await, 1);
    let dup = w
        .store
        .outbox()
        .insert_message(
            &NewOutbox {
                ticket_id: count(
                    &w.store,
                    &format!("SELECT ticket_id FROM outbox WHERE id = {id}"),
                )
                .await,
                kind: Kind::Violazione,
                dedupe_key: "violazione:2>email>sms".to_owned(),
                recipient: Recipient::Citizen,
                channel: ChannelName::Voice,
                address: Address::parse(ChannelName::Voice, "+393471234567").expect("n"),
                language: Lang::It,
                payload: json!({}),
                not_before: clock.now(),
            },
            clock.now(),
        )
        .await
        .expect("insert");
    assert_eq!(dup, Some(id), "the unique key keeps it to one call");
    assert_eq!(w.voice_rows().await, 1);
}

async fn no_call_outside_the_window_until_it_opens(w: &World) {
    // Both written channels fail at 19:59:50: the call is owed, but the window closes.
    let clock = TestClock::at("2027-01-20T19:59:50Z");
    w.notice(
        Kind::RichiestaIntegrazione,
        "richiesta_integrazione:3",
        clock.now(),
    )
    .await;
    let email = Written::new("mail", false);
    // The SMS fails as the window closes: the call it owes waits for the morning.
    let mut sms = Written::new("sms", false);
    sms.then = Some((clock.clone(), "2027-01-20T20:00:01Z"));
    let d = w.dispatcher(&email, &sms);
    for _ in 0..3 {
        d.drain(&clock.clock(), 100).await.expect("drain");
    }
    assert_eq!(*sms.got.lock().expect("l"), 1);
    for _ in 0..2 {
        d.drain(&clock.clock(), 100).await.expect("drain");
    }
    assert_eq!(w.voice_rows().await, 1);
    clock.set("2027-01-20T23:30:00Z");
    d.drain(&clock.clock(), 100).await.expect("drain");
    clock.set("2027-01-21T07:59:59Z");
    d.drain(&clock.clock(), 100).await.expect("drain");
    assert!(w.stub.requests().is_empty(), "no call at night");
    let id = count(
        &w.store,
        "SELECT MAX(id) FROM outbox WHERE channel = 'voice'",
    )
    .await;
    let state = w
        .store
        .outbox()
        .delivery_state(id)
        .await
        .expect("read")
        .expect("row");
    assert_ne!(state.state, "delivered");
    assert_eq!(state.attempts, 0, "waiting is no attempt");
    clock.set("2027-01-21T08:00:00Z");
    d.drain(&clock.clock(), 100).await.expect("drain");
    let got = w.stub.requests();
    assert_eq!(got.len(), 1, "called when the window opened");
    assert!(got[0].2.contains("informazioni"), "{}", got[0].2);
    let state = w
        .store
        .outbox()
        .delivery_state(id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(state.state, "delivered");
    // A call owed outside the window (a restart at night, a row queued by hand) is leased but
    // not tried: no attempt, back to the queue until the window opens.
    clock.set("2027-01-21T21:00:00Z");
    w.notice(Kind::Violazione, "violazione:3b", clock.now())
        .await;
    let row = count(
        &w.store,
        "SELECT MAX(id) FROM outbox WHERE kind = 'violazione'",
    )
    .await;
    let ticket = count(
        &w.store,
        &format!("SELECT ticket_id FROM outbox WHERE id = {row}"),
    )
    .await;
    let call = w
        .store
        .outbox()
        .insert_message(
            &NewOutbox {
                ticket_id: ticket,
                kind: Kind::Violazione,
                dedupe_key: "violazione:3b>email>sms".to_owned(),
                recipient: Recipient::Citizen,
                channel: ChannelName::Voice,
                address: Address::parse(ChannelName::Voice, "+393471234567").expect("n"),
                language: Lang::It,
                payload: json!({"number": "2026/000777"}),
                not_before: clock.now(),
            },
            clock.now(),
        )
        .await
        .expect("insert")
        .expect("an id");
    let quiet = Written::new("mail", true);
    let d = w.dispatcher(&quiet, &quiet);
    d.drain(&clock.clock(), 100).await.expect("drain");
    assert_eq!(w.stub.requests().len(), 1, "no call at 21:00");
    let state = w
        .store
        .outbox()
        .delivery_state(call)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(
        (state.state.as_str(), state.attempts),
        ("retry", 0),
        "{state:?}"
    );
    assert!(
        w.store
            .outbox()
            .attempts_of(call)
            .await
            .expect("a")
            .is_empty()
    );
    clock.set("2027-01-22T08:00:00Z");
    d.drain(&clock.clock(), 100).await.expect("drain");
    assert_eq!(w.stub.requests().len(), 2, "called at 08:00");
}

async fn a_refused_call_goes_to_the_office(w: &World) {
    w.stub.set(
        400,
        json!({"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}),
    );
    let clock = TestClock::at("2027-01-20T10:00:00Z");
    w.notice(Kind::Violazione, "violazione:4", clock.now())
        .await;
    let (email, sms) = (Written::new("mail", false), Written::new("sms", false));
    let d = w.dispatcher(&email, &sms);
    for _ in 0..5 {
        d.drain(&clock.clock(), 100).await.expect("drain");
    }
    assert_eq!(w.stub.requests().len(), 1, "a refused call is not repeated");
    let id = count(
        &w.store,
        "SELECT MAX(id) FROM outbox WHERE channel = 'voice'",
    )
    .await;
    let state = w
        .store
        .outbox()
        .delivery_state(id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(state.state, "dead");
    assert!(
        state
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("21211") || e.contains("Invalid")),
        "{state:?}"
    );
    assert_eq!(
        count(
            &w.store,
            "SELECT COUNT(*) FROM outbox WHERE kind = 'cittadino_irraggiungibile' AND dedupe_key = 'violazione:violazione:4'"
        )
        .await,
        1
    );
    // A provider error: a transient attempt recorded, retried later.
    w.stub.set(503, json!({"message": "busy"}));
    w.notice(Kind::Violazione, "violazione:5", clock.now())
        .await;
    for _ in 0..4 {
        d.drain(&clock.clock(), 100).await.expect("drain");
    }
    let id = count(
        &w.store,
        "SELECT MAX(id) FROM outbox WHERE channel = 'voice'",
    )
    .await;
    let state = w
        .store
        .outbox()
        .delivery_state(id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(state.state, "retry", "{state:?}");
    let attempts = w.store.outbox().attempts_of(id).await.expect("attempts");
    assert_eq!(attempts[0].outcome, "transient");
    assert_eq!(attempts[0].code.as_deref(), Some("503"));
}

/// `messo doctor`'s `voice.auth`: the credentials checked without placing a call; nothing said
/// when calls are off.
#[tokio::test]
async fn doctor_checks_the_voice_credentials() {
    use messo::doctor::Status;
    use std::time::Duration;
    let off = Config::from_toml(BUILTIN_TOML, "built-in", Vec::new()).expect("config");
    assert!(
        messo::doctor::voice::check(&off, Duration::from_secs(2))
            .await
            .is_empty()
    );
    let (stub, url) = Stub::start(200, json!({"sid": SID, "status": "active"})).await;
    let c = config(&twilio_toml(&url));
    let f = messo::doctor::voice::check(&c, Duration::from_secs(2)).await;
    assert_eq!(
        (f.len(), f[0].check, f[0].status),
        (1, "voice.auth", Status::Ok),
        "{f:?}"
    );
    assert_eq!(
        stub.requests()[0].0,
        format!("/2010-04-01/Accounts/{SID}.json")
    );
    stub.set(401, json!({"code": 20003, "message": "Authenticate"}));
    let f = messo::doctor::voice::check(&c, Duration::from_secs(2)).await;
    assert_eq!(f[0].status, Status::Fail);
    assert!(!format!("{f:?}").contains(TOKEN), "never the token");
    // Vonage: the key signs, the API takes the token.
    stub.set(
        200,
        json!({"count": 0, "page_size": 1, "_embedded": {"calls": []}}),
    );
    let c = config(&vonage_toml(&url));
    let f = messo::doctor::voice::check(&c, Duration::from_secs(2)).await;
    assert_eq!(f[0].status, Status::Ok, "{f:?}");
    let got = stub.requests();
    let last = got.last().expect("a request");
    assert_eq!(last.0, "/v1/calls");
    assert!(
        last.1["authorization"]
            .to_str()
            .expect("ascii")
            .starts_with("Bearer ey")
    );
}

/// The secrets come by environment (or a `_FILE`), the way systemd hands credentials over, and
/// are taken as text whatever they look like.
#[test]
fn secrets_come_from_the_environment() {
    let text = format!(
        "{BUILTIN_TOML}\n[delivery]\nfallback = [\"email\", \"sms\", \"voice\", \"office\"]\n\
         [voice.outbound]\nenabled = true\nprovider = \"twilio\"\nfrom = \"+390612345678\"\n\
         account_sid = \"{SID}\"\n"
    );
    let env = vec![(
        "MESSO_VOICE__OUTBOUND__AUTH_TOKEN".to_owned(),
        "12345678901234567890".to_owned(),
    )];
    let c = Config::from_toml(&text, "test", env).unwrap_or_else(|e| panic!("{e}"));
    match &c.voice.outbound.as_ref().expect("outbound").provider {
        messo::config::VoiceProvider::Twilio { auth_token, .. } => {
            assert_eq!(auth_token, "12345678901234567890");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !format!("{:?}", c.voice).contains("12345678901234567890"),
        "Debug hides it"
    );
}
