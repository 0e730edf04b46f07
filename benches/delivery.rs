//! Delivery throughput, end to end from outbox row to recorded attempt, and recovery after a
//! provider outage. Run with `cargo bench --bench delivery` (needs `/usr/sbin/smtp-sink` from
//! `scripts/install-peers.sh`).
//!
//! - e-mail: N receipts through the SMTP pool to postfix's `smtp-sink` on loopback;
//! - SMS: N receipts to a REST-IT provider stub (axum, in this process, on its own runtime);
//! - outage: N SMS queued while the stub answers 503 for `OUTAGE_S` seconds (default 600), then
//!   the time from its recovery until every message is recorded delivered.
//!
//! Environment: `BENCH_N` (default 10000), `OUTAGE_S` (default 600, 0 skips the outage run),
//! `BENCH_DKIM_KEY=FILE` to sign every e-mail with that PEM key (`BENCH_DKIM_ALG`, default
//! `rsa-sha256`, or `ed25519-sha256`),
//! `BENCH_DB=postgres` to use a new schema in PostgreSQL instead of SQLite (drop the
//! `messo_bench_*` schemas afterwards). On PostgreSQL the outbox is analysed once the messages
//! are owed, as autovacuum does within a minute of a large change (`BENCH_ANALYZE=0`: not).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use messo::config::{BUILTIN_TOML, Config};
use messo::daemon::Engine;
use messo::delivery::dispatch::Dispatcher;
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// A fresh store: SQLite in a temporary folder, or (with `BENCH_DB=postgres`) a new schema in
/// the PostgreSQL database of `MESSO_TEST_PG_URL` (default the local `test` database).
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
    let dir =
        std::env::temp_dir().join(format!("messo-bench-delivery-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Store::connect(&format!("sqlite://{}/messo.db", dir.display()))
        .await
        .expect("store")
}

/// A store with `n` receipts owed on `channel` (email or sms), all due now.
async fn store_with(n: usize, config: &Config, channel: &str) -> (Store, Timestamp) {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let store = fresh_store(&format!("{channel}{}", RUN.fetch_add(1, Ordering::Relaxed))).await;
    store.migrate().await.expect("migrate");
    // A weekday at 10:00 in Rome: inside the office hours and the SMS window.
    let now = Timestamp::parse_rfc3339("2026-03-03T10:00:00+01:00").expect("ts");
    store.register_config(config, now).await.expect("register");
    let tickets: Vec<NewTicket> = (0..n)
        .map(|i| {
            let citizen = if channel == "sms" {
                serde_json::json!({"mobile": format!("+39347{:07}", i), "preferred_channel": "sms"})
            } else {
                serde_json::json!({"email": format!("c{i}@example.it")})
            };
            NewTicket::from_json(&serde_json::json!({
                "number": format!("B-{i}"),
                "office": "anagrafe",
                "priority": "normale",
                "subject": "Certificato",
                "received_at": now.to_string(),
                "citizen": citizen,
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
    let engine = Engine::new(store.clone(), config.notify.clone());
    engine.cycle(now).await.expect("engine");
    // A table never analysed has no statistics: the planner then guesses that few rows are
    // ready and sorts all of them at every lease instead of reading the index in order. A
    // daemon's outbox is analysed by autovacuum; the bench sends before autovacuum comes.
    if store.backend() == messo::store::Backend::Postgres && env_n("BENCH_ANALYZE", 1) == 1 {
        sqlx::query("ANALYZE outbox")
            .execute(store.pool())
            .await
            .expect("analyze");
    }
    (store, now)
}

async fn drain_all(d: &Arc<Dispatcher>, clock: &Clock) -> u64 {
    let mut delivered = 0;
    loop {
        let r = d.drain(clock, u64::MAX).await.expect("drain");
        delivered += r.delivered;
        if r.delivered + r.failed == 0 {
            return delivered;
        }
    }
}

fn config(env: &[(&str, String)]) -> Config {
    let mut text = BUILTIN_TOML.to_owned();
    if env
        .iter()
        .any(|(k, _)| k.starts_with("MESSO_SMS__PROVIDERS"))
    {
        text.push_str("\n[[sms.providers]]\nname = \"stub\"\n");
    }
    let env = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect::<Vec<_>>();
    Config::from_toml(&text, "bench", env).expect("config")
}

/// The provider stub: 201 with a REST-IT body, or 503 while `down` is set.
fn start_stub(down: Arc<AtomicBool>, hits: Arc<AtomicU64>) -> u16 {
    let port = free_port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("stub runtime");
        rt.block_on(async move {
            let app = Router::new().route(
                "/API/v1.0/REST/sms",
                post(move || {
                    let (down, hits) = (Arc::clone(&down), Arc::clone(&hits));
                    async move {
                        hits.fetch_add(1, Ordering::Relaxed);
                        if down.load(Ordering::Relaxed) {
                            (StatusCode::SERVICE_UNAVAILABLE, "maintenance".to_owned())
                        } else {
                            (
                                StatusCode::CREATED,
                                r#"{"result":"OK","order_id":"x","total_sent":1}"#.to_owned(),
                            )
                        }
                    }
                }),
            );
            let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("bind");
            axum::serve(l, app).await.expect("serve");
        });
    });
    std::thread::sleep(Duration::from_millis(200));
    port
}

fn main() {
    messo::install_crypto();
    let n = env_n("BENCH_N", 10_000) as usize;
    let outage_s = env_n("OUTAGE_S", 600);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // E-mail to smtp-sink.
    let port = free_port();
    let mut sink = Command::new("/usr/sbin/smtp-sink")
        .args(["-u", "root", "-a", &format!("127.0.0.1:{port}"), "1000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("smtp-sink (run scripts/install-peers.sh)");
    std::thread::sleep(Duration::from_millis(300));
    for pool in [8u32, 16] {
        let mut env = vec![
            ("MESSO_CHANNELS__EMAIL", "smtp".to_owned()),
            ("MESSO_SMTP__HOST", "127.0.0.1".to_owned()),
            ("MESSO_SMTP__PORT", port.to_string()),
            ("MESSO_SMTP__SECURITY", "plain".to_owned()),
            ("MESSO_SMTP__POOL_SIZE", pool.to_string()),
        ];
        if let Ok(path) = std::env::var("BENCH_DKIM_KEY") {
            let pem = std::fs::read_to_string(&path).expect("BENCH_DKIM_KEY: a PEM key file");
            let algorithm =
                std::env::var("BENCH_DKIM_ALG").unwrap_or_else(|_| "rsa-sha256".to_owned());
            println!("email signed with DKIM ({algorithm}, key {path})");
            env.extend([
                ("MESSO_SMTP__DKIM__DOMAIN", "comune.roma.it".to_owned()),
                ("MESSO_SMTP__DKIM__SELECTOR", "bench".to_owned()),
                ("MESSO_SMTP__DKIM__ALGORITHM", algorithm),
                ("MESSO_SMTP__DKIM__PRIVATE_KEY", pem),
            ]);
        }
        let cfg = config(&env);
        let (store, now) = rt.block_on(store_with(n, &cfg, "email"));
        let d = Arc::new(
            Dispatcher::from_config(store.clone(), &cfg, Arc::new(Metrics::default()))
                .expect("dispatcher"),
        );
        let clock: Clock = Arc::new(move || now);
        let t = Instant::now();
        let delivered = rt.block_on(drain_all(&d, &clock));
        let s = t.elapsed().as_secs_f64();
        println!(
            "email  pool {pool:>2}: {delivered} delivered in {s:.2} s = {:.0} messages/s (outbox row → SMTP 250 → attempt recorded)",
            delivered as f64 / s
        );
    }
    let _ = sink.kill();
    let _ = sink.wait();

    // SMS to the provider stub.
    let down = Arc::new(AtomicBool::new(false));
    let hits = Arc::new(AtomicU64::new(0));
    let stub = start_stub(Arc::clone(&down), Arc::clone(&hits));
    let sms_env = |concurrency: u32| {
        vec![
            ("MESSO_CHANNELS__SMS", "http".to_owned()),
            ("MESSO_SMS__PROVIDERS__0__KIND", "rest-it".to_owned()),
            (
                "MESSO_SMS__PROVIDERS__0__BASE_URL",
                format!("http://127.0.0.1:{stub}/API/v1.0/REST"),
            ),
            ("MESSO_SMS__PROVIDERS__0__USER_KEY", "u".to_owned()),
            ("MESSO_SMS__PROVIDERS__0__ACCESS_TOKEN", "t".to_owned()),
            (
                "MESSO_SMS__PROVIDERS__0__CONCURRENCY",
                concurrency.to_string(),
            ),
        ]
    };
    for concurrency in [32u32, 64] {
        let cfg = config(&sms_env(concurrency));
        let (store, now) = rt.block_on(store_with(n, &cfg, "sms"));
        let d = Arc::new(
            Dispatcher::from_config(store.clone(), &cfg, Arc::new(Metrics::default()))
                .expect("dispatcher"),
        );
        let clock: Clock = Arc::new(move || now);
        let t = Instant::now();
        let delivered = rt.block_on(drain_all(&d, &clock));
        let s = t.elapsed().as_secs_f64();
        println!(
            "sms    concurrency {concurrency:>2}: {delivered} delivered in {s:.2} s = {:.0} messages/s (outbox row → HTTP 201 → attempt recorded)",
            delivered as f64 / s
        );
    }

    if outage_s == 0 {
        return;
    }
    // Outage: the provider answers 503 for outage_s seconds while n messages are queued.
    let cfg = config(&sms_env(64));
    let (store, _) = rt.block_on(store_with(n, &cfg, "sms"));
    let d = Arc::new(
        Dispatcher::from_config(store.clone(), &cfg, Arc::new(Metrics::default()))
            .expect("dispatcher"),
    );
    let clock: Clock = Arc::new(|| Timestamp::from_chrono(&chrono::Utc::now()));
    down.store(true, Ordering::Relaxed);
    hits.store(0, Ordering::Relaxed);
    let outage = Duration::from_secs(outage_s);
    let t0 = Instant::now();
    let mut recovered_at = None;
    let mut delivered = 0u64;
    rt.block_on(async {
        loop {
            if recovered_at.is_none() && t0.elapsed() >= outage {
                down.store(false, Ordering::Relaxed);
                recovered_at = Some(Instant::now());
                println!(
                    "outage: provider back after {outage_s} s; it saw {} requests while down",
                    hits.load(Ordering::Relaxed)
                );
            }
            let r = d.drain(&clock, u64::MAX).await.expect("drain");
            delivered += r.delivered;
            if delivered as usize >= n {
                break;
            }
            // The daemon's loop: nothing went, look again shortly.
            if r.delivered + r.failed == 0 {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    });
    let rec = recovered_at
        .map(|t| t.elapsed().as_secs_f64())
        .unwrap_or(0.0);
    println!("outage: {n} queued SMS all delivered {rec:.1} s after the provider came back");
}
