//! IO throughput, end to end from outbox row to recorded attempt: N receipts owed to N citizens
//! in IO (each with its own codice fiscale, so every message makes both requests: the profile
//! check and the submit) through the dispatcher to a stand-in of the IO Services API (axum, in
//! this process, on its own runtime thread). Run with `cargo bench --bench io`.
//!
//! Environment: `BENCH_N` (default 10000), `BENCH_DB=postgres` for a new schema in the local
//! PostgreSQL instead of SQLite (drop the `messo_bench_*` schemas afterwards). A second round
//! spreads the N notices over `BENCH_CITIZENS` citizens (default N/10), so that most profile
//! checks are answered from the channel's cache (a citizen's notices within the hour).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use messo::config::{BUILTIN_TOML, Config};
use messo::daemon::Engine;
use messo::delivery::dispatch::Dispatcher;
use messo::domain::FiscalCode;
use messo::metrics::Metrics;
use messo::store::Store;
use messo::ticket::{NewTicket, Source};
use messo::time::{Clock, Timestamp};

fn env_n(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `i`-th valid codice fiscale: its seven digit places carry `i`, the check letter is the
/// one that makes it valid.
fn fiscal_code(i: usize) -> String {
    let d = format!("{i:07}");
    let b = d.as_bytes();
    let stem = format!(
        "RSSMRA{}{}A{}{}H{}{}{}",
        b[0] as char,
        b[1] as char,
        b[2] as char,
        b[3] as char,
        b[4] as char,
        b[5] as char,
        b[6] as char
    );
    ('A'..='Z')
        .map(|c| format!("{stem}{c}"))
        .find(|cf| FiscalCode::parse(cf).is_ok())
        .expect("a check letter")
}

async fn fresh_store(tag: &str) -> Store {
    if std::env::var("BENCH_DB").as_deref() == Ok("postgres") {
        let base = std::env::var("MESSO_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let schema = format!("messo_bench_{}_{tag}", std::process::id());
        let admin = Store::connect(&base).await.expect("PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(admin.pool())
            .await
            .expect("schema");
        return Store::connect(&format!("{base}?options=-c%20search_path%3D{schema}"))
            .await
            .expect("store");
    }
    let dir = std::env::temp_dir().join(format!("messo-bench-io-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Store::connect(&format!("sqlite://{}/messo.db", dir.display()))
        .await
        .expect("store")
}

/// A store with `n` receipts owed in IO to `citizens` citizens, all due now.
async fn store_with(n: usize, citizens: usize, config: &Config, tag: &str) -> (Store, Timestamp) {
    let store = fresh_store(tag).await;
    store.migrate().await.expect("migrate");
    // A weekday at 10:00 in Rome: inside the office hours and the SMS window.
    let now = Timestamp::parse_rfc3339("2026-03-03T10:00:00+01:00").expect("ts");
    store.register_config(config, now).await.expect("register");
    let tickets: Vec<NewTicket> = (0..n)
        .map(|i| {
            NewTicket::from_json(&serde_json::json!({
                "number": format!("IO-{i}"),
                "office": "anagrafe",
                "priority": "normale",
                "subject": "Certificato",
                "received_at": now.to_string(),
                "citizen": {"email": format!("c{i}@example.it"), "fiscal_code": fiscal_code(i % citizens)},
            }))
            .expect("ticket")
        })
        .collect();
    for chunk in tickets.chunks(500) {
        store
            .tickets()
            .create_many(chunk, Source::Crm, now)
            .await
            .expect("seed");
    }
    Engine::new(store.clone(), config.notify.clone())
        .cycle(now)
        .await
        .expect("engine");
    if store.backend() == messo::store::Backend::Postgres {
        sqlx::query("ANALYZE outbox")
            .execute(store.pool())
            .await
            .expect("analyze");
    }
    (store, now)
}

/// The stand-in: every profile allows our service, every submit is accepted with a fresh id.
fn start_stub(hits: Arc<AtomicU64>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("stub runtime");
        rt.block_on(async move {
            let ids = Arc::clone(&hits);
            let app = Router::new()
                .route(
                    "/api/v1/profiles",
                    post(|| async { (StatusCode::OK, r#"{"sender_allowed":true}"#) }),
                )
                .route(
                    "/api/v1/messages",
                    post(move || {
                        let n = ids.fetch_add(1, Ordering::Relaxed);
                        async move { (StatusCode::CREATED, format!(r#"{{"id":"01BENCH{n:019}"}}"#)) }
                    }),
                );
            let l = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(l, app).await.expect("serve");
        });
    });
    std::thread::sleep(Duration::from_millis(200));
    port
}

fn main() {
    messo::install_crypto();
    let n = env_n("BENCH_N", 10_000) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let hits = Arc::new(AtomicU64::new(0));
    let port = start_stub(Arc::clone(&hits));
    let few = env_n("BENCH_CITIZENS", (n / 10).max(1) as u64) as usize;
    for (concurrency, citizens) in [(32u32, n), (64, n), (64, few)] {
        let text = format!(
            "{BUILTIN_TOML}\n[io]\nenabled = true\nbase_url = \"http://127.0.0.1:{port}/api/v1\"\n\
             api_key = \"io-bench-subscription-key\"\nconcurrency = {concurrency}\n"
        );
        let cfg = Config::from_toml(&text, "bench", Vec::new()).expect("config");
        let (store, now) = rt.block_on(store_with(
            n,
            citizens,
            &cfg,
            &format!("c{concurrency}x{citizens}"),
        ));
        let d = Arc::new(
            Dispatcher::from_config(store.clone(), &cfg, Arc::new(Metrics::default()))
                .expect("dispatcher"),
        );
        let clock: Clock = Arc::new(move || now);
        let before = hits.load(Ordering::Relaxed);
        let t = Instant::now();
        let mut delivered = 0;
        rt.block_on(async {
            loop {
                let r = d.drain(&clock, u64::MAX).await.expect("drain");
                delivered += r.delivered;
                if r.delivered + r.failed == 0 {
                    break;
                }
            }
        });
        let s = t.elapsed().as_secs_f64();
        println!(
            "io     concurrency {concurrency:>3}, {citizens:>5} citizens: {delivered} delivered in {s:.2} s = {:.0} messages/s \
             (outbox row → profile check → submit 201 → attempt recorded; {} submits seen)",
            delivered as f64 / s,
            hits.load(Ordering::Relaxed) - before
        );
    }
}
