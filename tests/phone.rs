//! The telephone answering backup, driven as a provider drives it: signed Twilio webhooks over
//! real HTTP on loopback, each answer parsed as XML and followed to its next URL, on SQLite and
//! the real PostgreSQL. A citizen calling at 22:00 from their mobile hears what the status page
//! shows; a stranger with the ticket's number hears nothing about it; wrong codes lock the
//! ticket; a message and a call-back request reach the office; the state of a call survives a
//! restart and cannot be forged or moved to another call.

mod common;

use common::phone::{DIGITS, LINK_KEY, NIGHT, NUMBER, OFFICE_LINE, webhooks};
use common::{Backend, TestClock, TestDb, on_both, serve, ts};
use messo::config::Config;
use messo::http::webhooks::router;
use messo::inbound::verify::twilio_signature;
use messo::portal::LinkKeys;
use messo::store::{InboundPolicy, Store};
use messo::ticket::{NewEvent, Source};
use messo::time::Timestamp;
use serde_json::json;

const TWILIO_TOKEN: &str = "twilio-auth-token-0123";
const PUBLIC: &str = "http://127.0.0.1:8080";
const CITIZEN_MOBILE: &str = "+393471234567";
const STRANGER: &str = "+393339998877";
/// The verbs TwiML documents (and the nouns inside them) that Messo may write.
const TWIML_VERBS: [&str; 8] = [
    "Response", "Say", "Gather", "Record", "Dial", "Number", "Redirect", "Hangup",
];

fn config_text() -> String {
    common::phone::config_text(&format!(
        r#"name = "tw"
family = "twilio"
auth_token = "{TWILIO_TOKEN}"
"#
    ))
}

struct Phone {
    base: String,
    store: Store,
    cfg: Config,
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
    common::phone::create_ticket(&store, CITIZEN_MOBILE).await;
    Phone {
        base: serve(router(webhooks(&cfg, &store, &clock))).await,
        policy: messo::store::inbound_policy(&cfg),
        store,
        cfg,
        clock,
        client: reqwest::Client::new(),
        db,
    }
}

/// One answer: its status and body, and the TwiML's next URL (path and query) when it has one.
#[derive(Debug)]
struct Heard {
    status: u16,
    body: String,
    next: Option<String>,
}

impl Heard {
    /// Everything the caller hears, one text.
    fn words(&self) -> String {
        let doc = roxmltree::Document::parse(&self.body).expect("well-formed TwiML");
        doc.descendants()
            .filter(|n| n.has_tag_name("Say"))
            .filter_map(|n| n.text())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn has(&self, verb: &str) -> bool {
        roxmltree::Document::parse(&self.body)
            .expect("well-formed TwiML")
            .descendants()
            .any(|n| n.has_tag_name(verb))
    }
}

impl Phone {
    async fn finish(self) {
        self.db.finish().await;
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Posts a call's request to `path` (a first request, or the URL an answer named), signed
    /// as Twilio signs it, and reads the TwiML answer.
    async fn post_to(&self, base: &str, path: &str, pairs: &[(&str, &str)]) -> Heard {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let sig = twilio_signature(&format!("{PUBLIC}{path}"), &owned, TWILIO_TOKEN);
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let r = self
            .client
            .post(format!("{base}{path}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", sig)
            .body(body)
            .send()
            .await
            .expect("post");
        let status = r.status().as_u16();
        let body = r.text().await.expect("body");
        let next = if status == 200 {
            check_twiml(&body);
            next_of(&body)
        } else {
            None
        };
        Heard { status, body, next }
    }

    async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> Heard {
        self.post_to(&self.base, path, pairs).await
    }

    /// A new call from `from`.
    async fn call(&self, sid: &str, from: &str) -> Heard {
        self.post(
            "/webhooks/voice/tw",
            &[("CallSid", sid), ("From", from), ("To", OFFICE_LINE)],
        )
        .await
    }

    /// The caller types `digits` at the step `h` waits in.
    async fn keys(&self, h: &Heard, sid: &str, from: &str, digits: &str) -> Heard {
        let next = h
            .next
            .clone()
            .unwrap_or_else(|| panic!("no next step in {}", h.body));
        self.post(
            &next,
            &[("CallSid", sid), ("From", from), ("Digits", digits)],
        )
        .await
    }

    fn code(&self, id: i64) -> String {
        LinkKeys::new(LINK_KEY, None).access_code(id, None)
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

    /// What the status page shows of the ticket now, in Italian.
    async fn page(&self) -> messo::portal::CitizenView {
        let t = self
            .store
            .portal()
            .portal_ticket_by_number(NUMBER)
            .await
            .expect("read")
            .expect("ticket");
        messo::http::portal::citizen_view(&self.store, &t, None, self.now(), 8 * 3600, false)
            .await
            .expect("view")
            .0
    }

    async fn failures(&self) -> i64 {
        common::db::count(&self.store, "SELECT COUNT(*) FROM access_code_failures").await
    }
}

/// Every element is a documented TwiML verb or noun, every `<Say>` names its language, and
/// every callback is an absolute URL under the public base.
fn check_twiml(body: &str) {
    let doc = roxmltree::Document::parse(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(doc.root_element().has_tag_name("Response"), "{body}");
    for n in doc.descendants().filter(roxmltree::Node::is_element) {
        let name = n.tag_name().name();
        assert!(
            TWIML_VERBS.contains(&name),
            "undocumented <{name}> in {body}"
        );
        if name == "Say" {
            assert!(
                matches!(n.attribute("language"), Some("it-IT" | "en-GB")),
                "{body}"
            );
            assert!(
                !n.text().unwrap_or_default().trim().is_empty(),
                "an empty <Say>"
            );
        }
        if let Some(action) = n.attribute("action") {
            assert!(
                action.starts_with(&format!("{PUBLIC}/webhooks/voice/tw?s=")),
                "{action}"
            );
        }
        if name == "Gather" {
            assert_eq!(n.attribute("input"), Some("dtmf"));
            assert_eq!(n.attribute("finishOnKey"), Some("#"));
        }
    }
}

/// The URL (path and query) the answer sends the next request to.
fn next_of(body: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(body).ok()?;
    let url = doc.descendants().find_map(|n| {
        n.attribute("action").map(str::to_owned).or_else(|| {
            n.has_tag_name("Redirect")
                .then(|| n.text().unwrap_or_default().to_owned())
        })
    })?;
    url.strip_prefix(PUBLIC).map(str::to_owned)
}

async fn the_citizen_calling_at_night_from_their_mobile_hears_what_the_status_page_shows(
    p: &Phone,
) {
    let greeting = p.call("CA-night-1", CITIZEN_MOBILE).await;
    assert_eq!(greeting.status, 200, "{}", greeting.body);
    let words = greeting.words();
    assert!(
        words.contains(
            "In questo momento l'ufficio è chiuso: riapre lunedì sette dicembre alle ore nove."
        ),
        "{words}"
    );
    assert!(
        words.contains("digiti 2 0 2 6 0 0 0 1 2 3, e poi cancelletto"),
        "{words}"
    );
    assert!(words.contains("For English, press 9."), "{words}");

    let state = p
        .keys(&greeting, "CA-night-1", CITIZEN_MOBILE, DIGITS)
        .await;
    let words = state.words();
    let page = p.page().await;
    assert!(
        words.contains("Richiesta numero 2 0 2 6, barra, 0 0 0 1 2 3."),
        "{words}"
    );
    assert!(
        words.contains(&format!("{}.", page.status.label)),
        "{words} / {:?}",
        page.status
    );
    let due = page.expected_closure.as_ref().expect("an expected closure");
    let spoken = messo::phone::speech::date_time(
        messo::domain::Lang::It,
        &p.cfg.sla().expect("sla").calendar,
        Timestamp::parse_rfc3339(&due.at).expect("rfc3339"),
        p.now(),
    );
    assert!(
        words.contains(&format!("Prevediamo di concluderla entro {spoken}.")),
        "{words}"
    );
    assert!(words.contains("Per riascoltare, prema 1."), "{words}");
    // The lookup is audited, without the number that called.
    let audit = p.store.admin().audit_log(10).await.expect("audit");
    let lookup = audit
        .iter()
        .find(|a| a.action == "status_lookup")
        .expect("audited");
    assert_eq!(lookup.object, format!("ticket/{NUMBER}"));
    assert!(!format!("{lookup:?}").contains("3471234567"), "{lookup:?}");

    // 1 repeats the state; 0 at night says the hours and puts nobody through.
    let again = p.keys(&state, "CA-night-1", CITIZEN_MOBILE, "1").await;
    assert!(again.words().contains("Prevediamo di concluderla entro"));
    let zero = p.keys(&again, "CA-night-1", CITIZEN_MOBILE, "0").await;
    assert!(
        zero.words()
            .contains("In questo momento l'ufficio è chiuso."),
        "{}",
        zero.words()
    );
    assert!(!zero.has("Dial"));
}

async fn a_stranger_with_the_number_learns_nothing_and_wrong_codes_lock_the_ticket(p: &Phone) {
    let page = p.page().await;
    let mut locked = false;
    // Two calls of three wrong codes each: the fifth failure locks the ticket.
    for call in 0..2 {
        let sid = format!("CA-stranger-{call}");
        let greeting = p.call(&sid, STRANGER).await;
        let mut h = p.keys(&greeting, &sid, STRANGER, DIGITS).await;
        assert!(
            h.words().contains("digiti il codice di accesso di 6 cifre"),
            "{}",
            h.words()
        );
        for _ in 0..3 {
            let before = h.words();
            h = p.keys(&h, &sid, STRANGER, "000000").await;
            let words = h.words();
            assert!(!words.contains("Prevediamo"), "{words}");
            assert!(!words.contains(&page.status.label), "{words}");
            assert!(!before.contains("Prevediamo"));
            if words.contains("bloccato") {
                locked = true;
                break;
            }
        }
        // Out of tries or locked: the general information, never the state.
        assert!(
            h.words()
                .contains("Possiamo dare informazioni su una richiesta solo"),
            "{}",
            h.words()
        );
        let repeat = p.keys(&h, &sid, STRANGER, "1").await;
        assert!(!repeat.words().contains("Prevediamo"), "{}", repeat.words());
    }
    assert!(locked, "the fifth wrong code locks");
    assert_eq!(p.failures().await, 5);
    // Locked: even the right code opens nothing now.
    let id = p.ticket_id().await;
    let greeting = p.call("CA-stranger-9", STRANGER).await;
    let h = p.keys(&greeting, "CA-stranger-9", STRANGER, DIGITS).await;
    assert!(h.words().contains("bloccato"), "{}", h.words());
    assert!(!h.words().contains("Prevediamo"));
    let _ = p.code(id);
    // The ticket's own mobile is not locked out.
    let g = p.call("CA-owner", CITIZEN_MOBILE).await;
    assert!(
        p.keys(&g, "CA-owner", CITIZEN_MOBILE, DIGITS)
            .await
            .words()
            .contains("Prevediamo")
    );
}

async fn the_right_code_opens_the_state_to_another_phone(p: &Phone) {
    let id = p.ticket_id().await;
    let greeting = p.call("CA-code", STRANGER).await;
    let ask = p.keys(&greeting, "CA-code", STRANGER, DIGITS).await;
    let wrong = p.keys(&ask, "CA-code", STRANGER, "123").await;
    assert!(
        wrong
            .words()
            .starts_with("Il codice digitato non è corretto."),
        "{}",
        wrong.words()
    );
    let right = p.keys(&wrong, "CA-code", STRANGER, &p.code(id)).await;
    assert!(
        right.words().contains("Prevediamo di concluderla entro"),
        "{}",
        right.words()
    );
    assert_eq!(p.failures().await, 1);
    // The same request twice (a provider's retry) counts once.
    let _ = p.keys(&ask, "CA-code", STRANGER, "123").await;
    assert_eq!(p.failures().await, 1);
}

async fn a_voice_message_and_a_call_back_reach_the_office_and_the_clock_stays_stopped(p: &Phone) {
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
    let g = p.call("CA-msg", CITIZEN_MOBILE).await;
    let state = p.keys(&g, "CA-msg", CITIZEN_MOBILE, DIGITS).await;
    assert!(
        state
            .words()
            .contains("L'ufficio attende da lei: copia del documento d'identità."),
        "{}",
        state.words()
    );
    let rec = p.keys(&state, "CA-msg", CITIZEN_MOBILE, "2").await;
    assert!(rec.has("Record"), "{}", rec.body);
    assert!(rec.words().contains("Dopo il segnale acustico"));
    let recorded = [
        ("CallSid", "CA-msg"),
        ("From", CITIZEN_MOBILE),
        ("RecordingSid", "RE-msg-1"),
        ("RecordingUrl", "https://api.twilio.com/recordings/RE-msg-1"),
        ("RecordingDuration", "14"),
    ];
    let next = rec.next.clone().expect("the recording's action");
    let thanks = p.post(&next, &recorded).await;
    assert!(
        thanks
            .words()
            .contains("il suo messaggio è stato registrato"),
        "{}",
        thanks.words()
    );
    // Twilio repeats the callback: still one message.
    let again = p.post(&next, &recorded).await;
    assert_eq!(again.status, 200);
    let back = p.keys(&thanks, "CA-msg", CITIZEN_MOBILE, "3").await;
    assert!(
        back.words().contains("l'ufficio la richiamerà"),
        "{}",
        back.words()
    );
    assert!(back.has("Hangup"));
    let stored = common::db::count(&p.store, "SELECT COUNT(*) FROM inbound_messages").await;
    assert_eq!(stored, 2, "one recording, one call-back request");
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
    assert_eq!(report.notes, 2);
    let t = p
        .store
        .tickets()
        .ticket(NUMBER)
        .await
        .expect("get")
        .expect("ticket");
    assert!(t.waiting_since.is_some());
    let alerts = common::db::count(
        &p.store,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'chiamata_ricevuta' AND recipient = 'office'",
    )
    .await;
    assert_eq!(alerts, 2);
}

/// A provider that sends the same request twice at once (a retry racing the first) gets the
/// same answer twice, and the store holds one of everything.
async fn the_same_request_twice_at_once_counts_once(p: &Phone) {
    let greeting = p.call("CA-race", STRANGER).await;
    let ask = p.keys(&greeting, "CA-race", STRANGER, DIGITS).await;
    let (a, b) = tokio::join!(
        p.keys(&ask, "CA-race", STRANGER, "111111"),
        p.keys(&ask, "CA-race", STRANGER, "111111"),
    );
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(a.words(), b.words());
    assert_eq!(
        p.failures().await,
        1,
        "one wrong code, however often it comes"
    );
    // The citizen's own mobile leaves a message; the recording's callback races itself.
    let g = p.call("CA-race-rec", CITIZEN_MOBILE).await;
    let state = p.keys(&g, "CA-race-rec", CITIZEN_MOBILE, DIGITS).await;
    let rec = p.keys(&state, "CA-race-rec", CITIZEN_MOBILE, "2").await;
    let next = rec.next.clone().expect("the recording's action");
    let recorded = [
        ("CallSid", "CA-race-rec"),
        ("From", CITIZEN_MOBILE),
        ("RecordingSid", "RE-race-1"),
        (
            "RecordingUrl",
            "https://api.twilio.com/recordings/RE-race-1",
        ),
        ("RecordingDuration", "9"),
    ];
    let (a, b) = tokio::join!(p.post(&next, &recorded), p.post(&next, &recorded));
    assert_eq!((a.status, b.status), (200, 200), "{} / {}", a.body, b.body);
    let stored = common::db::count(&p.store, "SELECT COUNT(*) FROM inbound_messages").await;
    assert_eq!(stored, 1, "one recording");
    // And the call-back asked twice at once is one request for the office.
    let thanks = a;
    let (c, d) = tokio::join!(
        p.keys(&thanks, "CA-race-rec", CITIZEN_MOBILE, "3"),
        p.keys(&thanks, "CA-race-rec", CITIZEN_MOBILE, "3"),
    );
    assert_eq!((c.status, d.status), (200, 200));
    let stored = common::db::count(&p.store, "SELECT COUNT(*) FROM inbound_messages").await;
    assert_eq!(stored, 2, "one recording, one call-back");
}

on_both!(start;
    the_citizen_calling_at_night_from_their_mobile_hears_what_the_status_page_shows,
    the_same_request_twice_at_once_counts_once,
    a_stranger_with_the_number_learns_nothing_and_wrong_codes_lock_the_ticket,
    the_right_code_opens_the_state_to_another_phone,
    a_voice_message_and_a_call_back_reach_the_office_and_the_clock_stays_stopped,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn english_on_request_and_unknown_numbers_get_three_tries() {
    let p = start(Backend::Sqlite).await;
    let g = p.call("CA-en", STRANGER).await;
    let en = p.keys(&g, "CA-en", STRANGER, "9").await;
    assert!(en.body.contains("language=\"en-GB\""), "{}", en.body);
    assert!(
        en.words()
            .contains("Please type the number of your request"),
        "{}",
        en.words()
    );
    let mut h = en;
    for _ in 0..2 {
        h = p.keys(&h, "CA-en", STRANGER, "999").await;
        assert!(
            h.words().starts_with("We cannot find a request"),
            "{}",
            h.words()
        );
        assert!(h.has("Gather"));
    }
    let bye = p.keys(&h, "CA-en", STRANGER, "").await;
    assert!(bye.words().contains("Goodbye."), "{}", bye.words());
    assert!(bye.has("Hangup"));
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_office_hours_zero_puts_the_caller_through() {
    let p = start(Backend::Sqlite).await;
    p.clock.set("2026-12-07T10:00:00+01:00");
    let g = p.call("CA-day", CITIZEN_MOBILE).await;
    assert!(
        g.words().contains("In questo momento l'ufficio è aperto."),
        "{}",
        g.words()
    );
    let s = p.keys(&g, "CA-day", CITIZEN_MOBILE, DIGITS).await;
    assert!(s.words().contains("Per parlare con l'ufficio, prema 0."));
    let dial = p.keys(&s, "CA-day", CITIZEN_MOBILE, "0").await;
    let doc = roxmltree::Document::parse(&dial.body).expect("xml");
    let number = doc
        .descendants()
        .find(|n| n.has_tag_name("Number"))
        .and_then(|n| n.text())
        .expect("a <Dial><Number>");
    assert_eq!(number, OFFICE_LINE);
    let missed = p
        .post(
            &dial.next.clone().expect("dial action"),
            &[
                ("CallSid", "CA-day"),
                ("From", CITIZEN_MOBILE),
                ("DialCallStatus", "no-answer"),
            ],
        )
        .await;
    assert!(
        missed
            .words()
            .contains("In questo momento l'ufficio non può rispondere.")
    );
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_state_survives_a_restart_and_cannot_be_forged_or_moved_to_another_call() {
    let p = start(Backend::Sqlite).await;
    let g = p.call("CA-restart", CITIZEN_MOBILE).await;
    let next = g.next.clone().expect("next");
    // Another daemon (a restart) takes the next request of the same call.
    let other = serve(router(webhooks(&p.cfg, &p.store, &p.clock))).await;
    let state = p
        .post_to(
            &other,
            &next,
            &[
                ("CallSid", "CA-restart"),
                ("From", CITIZEN_MOBILE),
                ("Digits", DIGITS),
            ],
        )
        .await;
    assert!(
        state.words().contains("Prevediamo di concluderla entro"),
        "{}",
        state.words()
    );
    // The state of one call does not fit another.
    let moved = p
        .post(
            &next,
            &[
                ("CallSid", "CA-other"),
                ("From", STRANGER),
                ("Digits", DIGITS),
            ],
        )
        .await;
    assert_eq!(moved.status, 403, "{}", moved.body);
    // An altered state does not verify.
    let verified_menu = state.next.clone().expect("menu");
    let forged = verified_menu.replacen("s=", "s=x", 1);
    let h = p
        .post(
            &forged,
            &[
                ("CallSid", "CA-restart"),
                ("From", STRANGER),
                ("Digits", "1"),
            ],
        )
        .await;
    assert_eq!(h.status, 403, "{}", h.body);
    // A state older than voice.state_valid_s starts the call again.
    p.clock.advance(3601);
    let stale = p
        .post(
            &verified_menu,
            &[
                ("CallSid", "CA-restart"),
                ("From", CITIZEN_MOBILE),
                ("Digits", "1"),
            ],
        )
        .await;
    assert!(stale.words().starts_with("Buongiorno"), "{}", stale.words());
    // An unsigned request is refused before anything is read.
    let r = p
        .client
        .post(format!("{}/webhooks/voice/tw", p.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("CallSid=CA-x&From=%2B393471234567")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 401);
    p.finish().await;
}
