//! The telephone answering's cost per request of a call: the pure part (the flow's decision,
//! the prompts rendered from the templates, the TwiML written) and the whole request over
//! loopback HTTP — Twilio's signature checked, the call state opened, the ticket read from
//! SQLite among `BENCH_N` tickets (default 10,000) with its history, the wrong-code count, the
//! status page's view built, the answer sealed and written. Run with `cargo bench --bench phone`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use messo::config::{BUILTIN_TOML, Config};
use messo::domain::Lang;
use messo::http::voice::Answering;
use messo::http::webhooks::{WebhookState, router};
use messo::inbound::verify::twilio_signature;
use messo::phone::flow::{self, Facts, Setup, TicketFacts};
use messo::phone::{CallEvent, CallState, Step};
use messo::portal::LinkKeys;
use messo::store::{InboundWriter, Store};
use messo::templates::{Catalog, Settings, Templates};
use messo::ticket::{NewTicket, Source};
use messo::time::Timestamp;

const TOKEN: &str = "twilio-auth-token-0123";
const PUBLIC: &str = "http://127.0.0.1:8080";
const MOBILE: &str = "+393471234567";

fn config() -> Config {
    // The shipped file has `[voice]` (off): turn the switch rather than write the table twice.
    let at = BUILTIN_TOML.find("[voice]\n").expect("a [voice] table");
    let (head, tail) = BUILTIN_TOML.split_at(at);
    let tail = tail.replacen(
        "enabled = false\n",
        "enabled = true\noffice_number = \"+390612345678\"\n",
        1,
    );
    let text = format!(
        "{head}{tail}\n[[inbound.endpoints]]\nname = \"tw\"\nfamily = \"twilio\"\nauth_token = \"{TOKEN}\"\nrate_per_s = 100000\n"
    );
    Config::from_toml(&text, "bench", Vec::new()).expect("config")
}

fn pure(c: &mut Criterion) {
    let cfg = config();
    let templates = Templates::new(
        Catalog::bundled().expect("catalog"),
        Settings::from_config(&cfg),
    );
    let state = CallState {
        step: Step::Number,
        lang: Lang::It,
        tries: 0,
        ticket: None,
        verified: false,
    };
    let event = CallEvent {
        call_id: "CA1".to_owned(),
        caller: Some(MOBILE.to_owned()),
        digits: Some("2026000123".to_owned()),
        ..CallEvent::default()
    };
    let facts = Facts {
        setup: Setup {
            english: true,
            max_tries: 3,
            record_max_s: 120,
            can_transfer: false,
        },
        ticket: Some(TicketFacts {
            id: 7,
            caller_is_mobile: true,
            failures: 0,
            max_failures: 5,
            code_matches: false,
        }),
    };
    let payload = serde_json::json!({
        "numero_parlato": "2 0 2 6, barra, 0 0 0 1 2 3",
        "stato": {"code": "in_lavorazione", "label": "In lavorazione", "detail": ""},
        "entro": "lunedì sette dicembre alle ore diciassette",
        "in_ritardo": false, "attende": null, "conclusa_il": null,
        "rispondere_email": true, "rispondere_sms": true, "trasferimento": true,
    });
    let mut g = c.benchmark_group("phone");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decide + words + TwiML (state step)", |b| {
        b.iter(|| {
            let plan = flow::decide(Some(&state), black_box(&event), &facts, Lang::It);
            let words: Vec<String> = plan
                .acts
                .iter()
                .flat_map(|a| match a {
                    flow::Act::Gather { prompts, .. } => prompts.clone(),
                    flow::Act::Say(p) => vec![*p],
                    _ => Vec::new(),
                })
                .filter_map(|p| templates.render_spoken(p.as_str(), Lang::It, &payload))
                .collect();
            let script = messo::phone::Script {
                lang: plan.lang,
                verbs: words.into_iter().map(messo::phone::Verb::Say).collect(),
            };
            black_box(messo::phone::twiml::twiml(&script, &|_| String::new()))
        });
    });
    g.finish();
}

async fn seeded(n: usize, cfg: &Config) -> (Store, Timestamp) {
    let dir = std::env::temp_dir().join(format!("messo-bench-phone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let store = Store::connect(&format!("sqlite://{}/messo.db", dir.display()))
        .await
        .expect("store");
    store.migrate().await.expect("migrate");
    let at = Timestamp::parse_rfc3339("2026-12-01T10:00:00+01:00").expect("ts");
    store.register_config(cfg, at).await.expect("register");
    let tickets: Vec<NewTicket> = (0..n)
        .map(|i| {
            NewTicket::from_json(&serde_json::json!({
                "number": format!("2026/{:06}", i + 1),
                "office": "anagrafe",
                "priority": "normale",
                "subject": "Cambio di residenza",
                "received_at": at.to_string(),
                "citizen": {"mobile": format!("+39347{:07}", i + 1)},
            }))
            .expect("ticket")
        })
        .collect();
    for chunk in tickets.chunks(500) {
        store
            .tickets()
            .create_many(chunk, Source::Crm, at)
            .await
            .expect("create");
    }
    let now = Timestamp::parse_rfc3339("2026-12-04T22:00:00+01:00").expect("ts");
    (store, now)
}

fn over_http(c: &mut Criterion) {
    messo::install_crypto();
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let cfg = config();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (store, now) = rt.block_on(seeded(n, &cfg));
    let clock_value = Arc::new(AtomicI64::new(now.0));
    let clock: messo::time::Clock =
        Arc::new(move || Timestamp(clock_value.load(std::sync::atomic::Ordering::Relaxed)));
    let base = rt.block_on(async {
        let templates = Arc::new(Templates::new(
            Catalog::bundled().expect("catalog"),
            Settings::from_config(&cfg),
        ));
        let writer = InboundWriter::spawn(store.clone(), Arc::new(tokio::sync::Notify::new()));
        let answering = Answering::new(
            store.clone(),
            templates,
            LinkKeys::new(b"a link key for the phone bench, 32+ chars", None),
            &cfg,
            Arc::new(cfg.sla().expect("sla")),
        );
        let state = WebhookState::new(&cfg.inbound, &cfg.http.public_base_url, writer, clock)
            .with_answering(answering);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            axum::serve(
                listener,
                router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
        });
        format!("http://{addr}")
    });
    let client = reqwest::Client::new();
    let post = |path: String, pairs: Vec<(String, String)>| {
        let sig = twilio_signature(&format!("{PUBLIC}{path}"), &pairs, TOKEN);
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        let client = client.clone();
        let url = format!("{base}{path}");
        async move {
            let r = client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("X-Twilio-Signature", sig)
                .body(body)
                .send()
                .await
                .expect("post");
            assert_eq!(r.status().as_u16(), 200);
            r.text().await.expect("body")
        }
    };
    // The greeting's answer names the next step's URL: every iteration types a number there.
    let greeting = rt.block_on(post(
        "/webhooks/voice/tw".to_owned(),
        vec![
            ("CallSid".into(), "CA-bench".into()),
            ("From".into(), MOBILE.into()),
        ],
    ));
    let start = greeting.find("action=\"").expect("action") + 8;
    let end = greeting[start..].find('"').expect("end") + start;
    let next = greeting[start..end]
        .replace("&amp;", "&")
        .strip_prefix(PUBLIC)
        .expect("public")
        .to_owned();
    let mut g = c.benchmark_group("phone");
    g.throughput(Throughput::Elements(1));
    g.sample_size(30);
    let mut i = 0usize;
    g.bench_function(
        format!("state request over HTTP, SQLite, {n} tickets"),
        |b| {
            b.iter(|| {
                i = (i + 7919) % n;
                let digits = format!("2026{:06}", i + 1);
                let mobile = format!("+39347{:07}", i + 1);
                let body = rt.block_on(post(
                    next.clone(),
                    vec![
                        ("CallSid".into(), "CA-bench".into()),
                        ("From".into(), mobile),
                        ("Digits".into(), digits),
                    ],
                ));
                assert!(body.contains("Prevediamo"), "{body}");
                black_box(body)
            });
        },
    );
    g.finish();
}

criterion_group!(benches, pure, over_http);
criterion_main!(benches);
