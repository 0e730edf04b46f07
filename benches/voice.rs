//! Outbound calls per second through `delivery::voice::VoiceChannel` against a provider stub
//! (axum on 127.0.0.1:0, in this process, on its own runtime): the request built (TwiML or
//! NCCO; for Vonage a fresh RS256 JWT each time), sent over loopback HTTP and classified.
//! Run with `cargo bench --bench voice`. The stub answers at once, so this is Messo's own cost
//! per call, far above any provider's calls-per-second limit (Twilio's default is 1 CPS).

use axum::Router;
use axum::http::StatusCode;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use messo::config::{BUILTIN_TOML, Config};
use messo::delivery::voice::VoiceChannel;
use messo::delivery::{Channel, OutMessage, Outcome};
use messo::domain::{Address, Channel as ChannelName, Kind, Lang, Recipient};

const KEY: &str = include_str!("../tests/data/voice-test-key.pem");

fn config(provider: &str, url: &str) -> Config {
    let creds = match provider {
        "twilio" => "account_sid = \"AC0123456789abcdef0123456789abcdef\"\n\
                     auth_token = \"a-twilio-auth-token-for-benches\"\n"
            .to_owned(),
        _ => format!(
            "application_id = \"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\"\nprivate_key = '''\n{KEY}'''\n"
        ),
    };
    let text = format!(
        "{BUILTIN_TOML}\n[delivery]\nfallback = [\"email\", \"sms\", \"voice\", \"office\"]\n\
         [voice.outbound]\nenabled = true\nprovider = \"{provider}\"\nfrom = \"+390612345678\"\n\
         base_url = \"{url}\"\nconcurrency = 32\n{creds}"
    );
    Config::from_toml(&text, "bench", Vec::new()).unwrap_or_else(|e| panic!("config: {e}"))
}

fn message() -> OutMessage {
    OutMessage {
        outbox_id: 1,
        ticket_id: 1,
        number: "2026/000123".to_owned(),
        kind: Kind::Violazione,
        recipient: Recipient::Citizen,
        channel: ChannelName::Voice,
        address: Address::parse(ChannelName::Voice, "+393471234567").expect("a number"),
        subject: String::new(),
        text: "Buongiorno, questo è un messaggio automatico dell'URP. La sua richiesta numero 2 0 2 6, \
               barra, 0 0 0 1 2 3 non è stata conclusa entro il termine previsto."
            .to_owned(),
        html: None,
        reply_to: None,
        attachments: Vec::new(),
        language: Lang::It,
        due_date: None,
    }
}

fn bench(c: &mut Criterion) {
    let server = tokio::runtime::Runtime::new().expect("runtime");
    let url = server.block_on(async {
        let app = Router::new().fallback(|| async {
            (
                StatusCode::CREATED,
                axum::Json(serde_json::json!({"sid": "CA0000", "uuid": "63f61863-4a51-4f6b-86e1-46edebcf9356"})),
            )
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    });
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut g = c.benchmark_group("voice");
    const BATCH: u64 = 64;
    g.throughput(Throughput::Elements(BATCH));
    for provider in ["twilio", "vonage"] {
        let cfg = config(provider, &url);
        let ch = std::sync::Arc::new(
            VoiceChannel::new(
                cfg.voice.outbound.as_ref().expect("outbound"),
                &cfg.delivery,
            )
            .expect("channel"),
        );
        let msg = std::sync::Arc::new(message());
        g.bench_function(format!("{provider}_calls"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..BATCH {
                        let (ch, msg) = (ch.clone(), msg.clone());
                        set.spawn(async move { ch.send(&msg, false).await });
                    }
                    while let Some(r) = set.join_next().await {
                        let sent = r.expect("join");
                        assert!(matches!(sent.outcome(), Some(Outcome::Delivered { .. })));
                    }
                })
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
