//! Issue 15, points 5–8 and the portal token's limits, over real HTTP: the real routers served on
//! loopback by the daemon's own server (`messo::http::server::serve`), on SQLite and on the real
//! PostgreSQL where users and sessions are stored.
//!
//! - 5: a change of password, role or state ends the user's sessions and revokes her tokens;
//!   creating never re-enables; the last enabled admin stays; the CLI follows the same rules.
//! - 6: a token whose id is unknown costs no hashing; a known one is hashed once; wrong secrets
//!   for a known id are limited before hashing.
//! - 7: the log-in takes only same-origin JSON, is limited per address across user names before
//!   hashing, and every limiter's memory is bounded.
//! - 8: a head that never completes is closed; at the connection cap an idle connection makes
//!   room for `/healthz`; a slow body gets 408.
//! - portal: a portal token is limited per token, before hashing, and asking about many
//!   different citizens raises the audit alarm.
//!
//! Nothing here asserts a duration: timeouts are configured short and the tests only wait (with a
//! generous guard) for what must happen.

#![allow(dead_code)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use common::process::{messo, run};
use common::{Backend, TestDb, on_both};
use messo::config::{ApiToken, BUILTIN_TOML, Config, Scope};
use messo::http::admin::AdminState;
use messo::http::portal::PortalState;
use messo::http::{AppState, TokenBook};
use messo::metrics::Metrics;
use messo::store::{Role, Store};
use messo::templates::{Catalog, Settings, Templates};
use messo::time::Timestamp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::watch;

const PASSWORD: &str = "una-password-lunga-123";
const NEW_PASSWORD: &str = "un'altra-password-456";

fn now() -> Timestamp {
    Timestamp::parse_rfc3339("2026-03-04T12:00:00+01:00").expect("ts")
}

fn config(env: &[(&str, &str)]) -> Config {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_toml(BUILTIN_TOML, "test", env).expect("config")
}

/// A fresh store: a SQLite file, or a schema of the real PostgreSQL.
async fn open(backend: Backend) -> TestDb {
    TestDb::open(backend).await
}

/// A router served by the daemon's server on a loopback port.
struct Served {
    base: String,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
}

async fn serve(app: Router, config: &Config) -> Served {
    messo::install_crypto();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = watch::channel(false);
    let limits = config.http.limits.clone();
    tokio::spawn(async move { messo::http::server::serve(listener, app, &limits, rx).await });
    Served {
        base: format!("http://{addr}"),
        addr,
        stop,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

fn admin_state(store: &Store, config: &Config) -> AdminState {
    let templates = Arc::new(Templates::new(
        Catalog::bundled().expect("catalog"),
        Settings::from_config(config),
    ));
    AdminState::from_config(
        store.clone(),
        templates,
        Arc::new(now),
        config,
        Arc::new(tokio::sync::Notify::new()),
    )
}

/// Signs in; the cookie and CSRF token, or the refusal's status.
async fn login(base: &str, user: &str, password: &str) -> Result<(String, String), StatusCode> {
    let r = client()
        .post(format!("{base}/api/v1/admin/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .expect("login");
    if r.status() != StatusCode::OK {
        return Err(r.status());
    }
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .unwrap_or("")
        .to_owned();
    let body: Value = r.json().await.expect("json");
    Ok((cookie, body["csrf"].as_str().unwrap_or("").to_owned()))
}

async fn me_with_cookie(base: &str, cookie: &str) -> StatusCode {
    client()
        .get(format!("{base}/api/v1/admin/me"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("me")
        .status()
}

async fn me_with_token(base: &str, token: &str) -> StatusCode {
    client()
        .get(format!("{base}/api/v1/admin/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("me")
        .status()
}

async fn send(
    base: &str,
    method: reqwest::Method,
    path: &str,
    session: &(String, String),
    body: Value,
) -> (StatusCode, Value) {
    let r = client()
        .request(method, format!("{base}{path}"))
        .header("cookie", &session.0)
        .header("x-csrf-token", &session.1)
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn patch(base: &str, s: &(String, String), user: &str, body: Value) -> (StatusCode, Value) {
    send(
        base,
        reqwest::Method::PATCH,
        &format!("/api/v1/admin/users/{user}"),
        s,
        body,
    )
    .await
}

async fn admin_token(store: &Store, user: &str) -> String {
    let u = store
        .admin()
        .admin_user(user)
        .await
        .expect("read")
        .expect("user");
    let secret = messo::http::admin::new_token_secret().expect("secret");
    let hash = messo::http::admin::hash_secret(&secret).expect("hash");
    let id = store
        .admin()
        .add_admin_token(&u, "script", &hash, now())
        .await
        .expect("token");
    format!("messo_{id}_{secret}")
}

// ---------------------------------------------------------------------------------------------
// 5. Users: a change ends sessions and tokens; create never re-enables; one admin always stays.

async fn a_change_of_credentials_or_rights_ends_sessions_and_tokens(db: &TestDb) {
    let config = config(&[]);
    db.register(&config).await;
    let (store, url) = (db.store.clone(), db.url.clone());
    let hash = messo::http::admin::hash_secret(PASSWORD).expect("hash");
    for (name, role) in [
        ("anna", Role::Admin),
        ("bruno", Role::Admin),
        ("elena", Role::Editor),
    ] {
        store
            .admin()
            .create_admin_user(name, role, &hash, "test", now())
            .await
            .expect("user");
    }
    let admin = admin_state(&store, &config);
    let srv = serve(messo::http::admin::router(admin.clone()), &config).await;
    let base = &srv.base;
    let anna = login(base, "anna", PASSWORD).await.expect("anna signs in");

    // A new password: her session and her token stop at once; the new password works.
    let elena = login(base, "elena", PASSWORD)
        .await
        .expect("elena signs in");
    let token = admin_token(&store, "elena").await;
    assert_eq!(me_with_cookie(base, &elena.0).await, StatusCode::OK);
    assert_eq!(me_with_token(base, &token).await, StatusCode::OK);
    let (status, v) = patch(base, &anna, "elena", json!({"password": NEW_PASSWORD})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["sessions_ended"].as_u64(), v["tokens_revoked"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        me_with_cookie(base, &elena.0).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me_with_token(base, &token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login(base, "elena", PASSWORD).await.err(),
        Some(StatusCode::UNAUTHORIZED)
    );

    // Another role: the same.
    let elena = login(base, "elena", NEW_PASSWORD)
        .await
        .expect("new password");
    let token = admin_token(&store, "elena").await;
    let (status, v) = patch(base, &anna, "elena", json!({"role": "viewer"})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["role"], "viewer");
    assert_eq!(
        me_with_cookie(base, &elena.0).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me_with_token(base, &token).await, StatusCode::UNAUTHORIZED);

    // Disabled, then created again: 409, and she stays disabled with her old password.
    let (status, _) = patch(base, &anna, "elena", json!({"disabled": true})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = send(
        base,
        reqwest::Method::POST,
        "/api/v1/admin/users",
        &anna,
        json!({"username": "elena", "role": "admin", "password": "password-scelta-dall-attaccante"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    let e = store
        .admin()
        .admin_user("elena")
        .await
        .expect("read")
        .expect("elena");
    assert!(e.disabled, "creating does not re-enable");
    assert_eq!(e.role, Role::Viewer, "creating does not overwrite the role");
    assert_eq!(
        login(base, "elena", "password-scelta-dall-attaccante")
            .await
            .err(),
        Some(StatusCode::UNAUTHORIZED)
    );
    // Enabling is explicit, and ends whatever session could exist.
    let (status, v) = patch(base, &anna, "elena", json!({"disabled": false})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(login(base, "elena", NEW_PASSWORD).await.is_ok());

    // The last enabled admin: nobody demotes or disables her, herself included.
    let (status, _) = patch(base, &anna, "bruno", json!({"disabled": true})).await;
    assert_eq!(status, StatusCode::OK);
    for change in [json!({"role": "editor"}), json!({"disabled": true})] {
        let (status, v) = patch(base, &anna, "anna", change).await;
        assert_eq!(status, StatusCode::CONFLICT, "{v}");
    }
    let a = store
        .admin()
        .admin_user("anna")
        .await
        .expect("read")
        .expect("anna");
    assert!(a.role == Role::Admin && !a.disabled);
    assert_eq!(
        me_with_cookie(base, &anna.0).await,
        StatusCode::OK,
        "refusals end nothing"
    );
    // A refused or bad change stores nothing; an unknown user is 404.
    let (status, _) = patch(base, &anna, "nessuno", json!({"role": "viewer"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = patch(base, &anna, "elena", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Two admins demoting each other at the same instant: one of them stays admin.
    let (status, _) = patch(base, &anna, "bruno", json!({"disabled": false})).await;
    assert_eq!(status, StatusCode::OK);
    let bruno = login(base, "bruno", PASSWORD).await.expect("bruno");
    let (a, b) = tokio::join!(
        patch(base, &anna, "bruno", json!({"role": "viewer"})),
        patch(base, &bruno, "anna", json!({"role": "viewer"})),
    );
    let ok = [a.0, b.0].iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "exactly one demotion goes through: {a:?} {b:?}");
    let admins = store
        .admin()
        .admin_users()
        .await
        .expect("users")
        .into_iter()
        .filter(|u| u.role == Role::Admin && !u.disabled)
        .count();
    assert_eq!(admins, 1);

    // The CLI follows the same rules.
    let last = store
        .admin()
        .admin_users()
        .await
        .expect("users")
        .into_iter()
        .find(|u| u.role == Role::Admin && !u.disabled)
        .expect("an admin")
        .username;
    let cli = |args: &[&str]| {
        run(
            messo()
                .args(args)
                .current_dir(&db.dir)
                .env("MESSO_DATABASE__URL", &url)
                .env("MESSO_ADMIN_PASSWORD", "password-dalla-riga-di-comando"),
            None,
        )
    };
    let out = cli(&["admin", "disable", &last]);
    assert!(!out.status.success(), "the last admin is not disabled");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("last enabled admin"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A new password from the CLI keeps her role, ends her session and revokes her token.
    let session = login(base, &last, PASSWORD).await.expect("signs in");
    let token = admin_token(&store, &last).await;
    let out = cli(&["admin", "user", &last]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let u = store
        .admin()
        .admin_user(&last)
        .await
        .expect("read")
        .expect("user");
    assert_eq!(u.role, Role::Admin, "no --role: the role stays");
    assert_eq!(
        me_with_cookie(base, &session.0).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me_with_token(base, &token).await, StatusCode::UNAUTHORIZED);
    // A disabled user given a password by the CLI stays disabled; a token is refused.
    let (status, _) = patch(
        base,
        &login(base, &last, "password-dalla-riga-di-comando")
            .await
            .expect("new password"),
        "elena",
        json!({"disabled": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(cli(&["admin", "user", "elena"]).status.success());
    assert!(
        store
            .admin()
            .admin_user("elena")
            .await
            .expect("read")
            .expect("e")
            .disabled
    );
    assert!(!cli(&["admin", "token", "elena"]).status.success());
    assert!(cli(&["admin", "enable", "elena"]).status.success());
    assert!(
        !store
            .admin()
            .admin_user("elena")
            .await
            .expect("read")
            .expect("e")
            .disabled
    );

    let _ = srv.stop.send(true);
}

on_both!(open; a_change_of_credentials_or_rights_ends_sessions_and_tokens);

// ---------------------------------------------------------------------------------------------
// 6. Tokens: an unknown id costs no hashing; a known token is hashed once; misses are limited.

async fn unknown_token_ids_cost_no_hashing(db: &TestDb) {
    let config = config(&[]);
    db.register(&config).await;
    let store = db.store.clone();
    let crm = messo::http::new_token().expect("token");
    let tokens = Arc::new(TokenBook::new(vec![ApiToken {
        name: "crm".into(),
        id: crm.id.clone(),
        hash: crm.hash.clone(),
        scopes: vec![Scope::Read, Scope::Write],
    }]));
    let state = AppState {
        store: store.clone(),
        tokens: Arc::clone(&tokens),
        clock: Arc::new(now),
        wake: Arc::new(tokio::sync::Notify::new()),
        metrics: Arc::new(Metrics::default()),
    };
    let hash = messo::http::admin::hash_secret(PASSWORD).expect("hash");
    store
        .admin()
        .create_admin_user("anna", Role::Admin, &hash, "test", now())
        .await
        .expect("user");
    let admin = admin_state(&store, &config);
    let app = messo::http::router(state).merge(messo::http::admin::router(admin.clone()));
    let srv = serve(app, &config).await;
    let get = |path: &'static str, token: String| {
        let base = srv.base.clone();
        async move {
            client()
                .get(format!("{base}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .expect("get")
                .status()
        }
    };
    // Random tokens of the right form, tokens of the old form, junk: 401, and no hash at all.
    for _ in 0..20 {
        let random = messo::http::new_token().expect("token").token;
        assert_eq!(
            get("/api/v1/tickets", random).await,
            StatusCode::UNAUTHORIZED
        );
    }
    let old_form = format!("messo_{}", "ab".repeat(24));
    assert_eq!(
        get("/api/v1/tickets", old_form).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get("/api/v1/tickets", "x".repeat(300)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(tokens.verifications(), 0, "no argon2 for an unknown id");
    // Admin tokens: an id that is not in the store costs one indexed read, no hash.
    for id in [1, 2, 999_999] {
        let t = format!("messo_{id}_{}", "0123456789abcdef".repeat(3));
        assert_eq!(me_with_token(&srv.base, &t).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        admin.verifications(),
        0,
        "no argon2 for an unknown admin token id"
    );

    // The real token, first used by 16 requests at once (a client opening its connections):
    // every one answered, hashed once, then remembered. (Each counting as a miss, six were
    // refused 429 with "wait a minute".)
    // (One client, built before: building one takes long enough to stagger the requests.)
    let one_client = client();
    let first: Vec<StatusCode> = futures_util::future::join_all((0..16).map(|_| {
        one_client
            .get(format!("{}/api/v1/tickets", srv.base))
            .bearer_auth(crm.token.clone())
            .send()
    }))
    .await
    .into_iter()
    .map(|r| r.expect("get").status())
    .collect();
    assert_eq!(first, vec![StatusCode::OK; 16]);
    for _ in 0..5 {
        assert_eq!(
            get("/api/v1/tickets", crm.token.clone()).await,
            StatusCode::OK
        );
    }
    assert_eq!(tokens.verifications(), 1, "one argon2 for 21 requests");

    // Wrong secrets for the known id: hashed up to the per-minute allowance (10 checks that miss
    // the cache, the first use above included), then 429 with no hashing.
    let mut statuses = Vec::new();
    for i in 0..15 {
        let wrong = format!("messo_{}_{}{i:02}", crm.id, "f".repeat(46));
        statuses.push(get("/api/v1/tickets", wrong).await);
    }
    let count = |want: StatusCode| statuses.iter().filter(|s| **s == want).count();
    assert!(count(StatusCode::TOO_MANY_REQUESTS) >= 5, "{statuses:?}");
    assert_eq!(
        tokens.verifications(),
        1 + count(StatusCode::UNAUTHORIZED) as u64,
        "only the refusals by secret were hashed: {statuses:?}"
    );
    // The real token still works (it was remembered).
    assert_eq!(
        get("/api/v1/tickets", crm.token.clone()).await,
        StatusCode::OK
    );

    let _ = srv.stop.send(true);
}

on_both!(open; unknown_token_ids_cost_no_hashing);

#[test]
fn a_configured_token_without_id_is_a_named_config_error() {
    let old = format!(
        "{BUILTIN_TOML}\n[[http.tokens]]\nname = \"crm\"\nhash = \"{}\"\nscopes = [\"read\"]\n",
        messo::http::admin::hash_secret("messo_0123456789abcdef").expect("hash")
    );
    let e = Config::from_toml(&old, "test", Vec::new())
        .expect_err("an old-form token is refused")
        .to_string();
    assert!(e.contains("http.tokens[0].id"), "{e}");
    assert!(e.contains("messo token new"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// 7. Log-ins: same-origin JSON only, limited per address before hashing; limiters bounded.

async fn log_ins_are_same_origin_json_and_limited_per_address(db: &TestDb) {
    let config = config(&[
        ("MESSO_ADMIN__LOGIN_ATTEMPTS_PER_ADDRESS_PER_MINUTE", "6"),
        (
            "MESSO_HTTP__PUBLIC_BASE_URL",
            "https://urp.comune.example.it",
        ),
    ]);
    db.register(&config).await;
    let store = db.store.clone();
    let hash = messo::http::admin::hash_secret(PASSWORD).expect("hash");
    store
        .admin()
        .create_admin_user("anna", Role::Admin, &hash, "test", now())
        .await
        .expect("user");
    let admin = admin_state(&store, &config);
    let srv = serve(messo::http::admin::router(admin.clone()), &config).await;
    let url = format!("{}/api/v1/admin/login", srv.base);
    let body = json!({"username": "anna", "password": PASSWORD}).to_string();
    let post = |ct: &'static str, extra: Vec<(&'static str, String)>| {
        let (url, body) = (url.clone(), body.clone());
        async move {
            let mut r = client().post(url).header("content-type", ct).body(body);
            for (k, v) in extra {
                r = r.header(k, v);
            }
            r.send().await.expect("post").status()
        }
    };
    // A cross-site form cannot sign anyone in: not JSON, or JSON from another origin.
    assert_eq!(
        post("text/plain", vec![]).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        post("application/x-www-form-urlencoded", vec![]).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        post(
            "application/json",
            vec![("origin", "https://evil.example".into())]
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(
            "application/json",
            vec![("sec-fetch-site", "cross-site".into())]
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(admin.verifications(), 0, "refused before any hashing");
    // Our own origin (the public URL, or the Host it was reached at) signs in.
    assert_eq!(
        post(
            "application/json",
            vec![
                ("origin", "https://urp.comune.example.it".into()),
                ("sec-fetch-site", "same-origin".into())
            ]
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        post(
            "application/json; charset=utf-8",
            vec![("origin", srv.base.clone())]
        )
        .await,
        StatusCode::OK
    );
    // Password spraying: fresh user names from one address run out of the address's allowance
    // (6 a minute; 2 used above), and the refusals cost no hashing.
    let before = admin.verifications();
    let mut statuses = Vec::new();
    for i in 0..10 {
        let r = client()
            .post(&url)
            .json(&json!({"username": format!("nome{i}"), "password": "indovino-indovino"}))
            .send()
            .await
            .expect("post");
        statuses.push(r.status().as_u16());
    }
    let count = |want: u16| statuses.iter().filter(|s| **s == want).count();
    assert_eq!(&statuses[..4], [401, 401, 401, 401], "{statuses:?}");
    assert!(count(429) >= 5, "{statuses:?}");
    assert_eq!(
        admin.verifications() - before,
        count(401) as u64,
        "a wrong name is hashed like a wrong password; a refusal by the limit is not hashed"
    );
    let (per_user, per_address) = admin.tracked_clients();
    assert!(
        per_user <= 6 && per_address == 1,
        "{per_user} {per_address}"
    );

    let _ = srv.stop.send(true);
}

on_both!(open; log_ins_are_same_origin_json_and_limited_per_address);

/// A codice fiscale with a valid check letter, different for each `n`.
fn fiscal_code(n: u32) -> String {
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    let body = format!("RSSMRA{:02}A01H{:03}", n % 100, n / 100 % 1000);
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, c)| {
            let v = if c.is_ascii_digit() {
                u32::from(c - b'0')
            } else {
                u32::from(c - b'A')
            };
            if i % 2 == 0 { ODD[v as usize] } else { v }
        })
        .sum();
    format!("{body}{}", char::from(b'A' + (sum % 26) as u8))
}

async fn portal(
    config: &Config,
    store: &Store,
) -> (Served, PortalState, Arc<TokenBook>, Arc<Metrics>, String) {
    let portal = messo::http::new_token().expect("token");
    let tokens = Arc::new(TokenBook::new(vec![ApiToken {
        name: "portale".into(),
        id: portal.id.clone(),
        hash: portal.hash.clone(),
        scopes: vec![Scope::Portal],
    }]));
    let keys = messo::http::portal::link_keys(config, store, now())
        .await
        .expect("keys");
    let metrics = Arc::new(Metrics::default());
    let state = PortalState::new(
        store.clone(),
        Arc::clone(&tokens),
        keys,
        config,
        Arc::new(now),
        Arc::clone(&metrics),
    );
    let srv = serve(messo::http::portal::router(state.clone()), config).await;
    (srv, state, tokens, metrics, portal.token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rate_limiter_remembers_a_bounded_number_of_clients() {
    let text = BUILTIN_TOML.replace("trusted_proxies = []", "trusted_proxies = [\"127.0.0.1\"]");
    assert_ne!(text, BUILTIN_TOML);
    let env = vec![(
        "MESSO_HTTP__MAX_TRACKED_CLIENTS".to_owned(),
        "100".to_owned(),
    )];
    let config = Config::from_toml(&text, "test", env).expect("config");
    let db = TestDb::with_config(Backend::Sqlite, &config).await;
    let store = db.store.clone();
    let (srv, state, _, _, _) = portal(&config, &store).await;
    // 300 different clients behind the trusted proxy, each with a forged link.
    let http = client();
    for i in 0..300u32 {
        let r = http
            .get(format!("{}/s/not-a-real-link", srv.base))
            .header(
                "x-forwarded-for",
                format!("10.{}.{}.{}", i / 65536, i / 256 % 256, i % 256),
            )
            .send()
            .await
            .expect("get");
        assert!(matches!(r.status().as_u16(), 404 | 429), "{}", r.status());
        assert!(
            state.tracked_clients() <= 100,
            "{} clients remembered",
            state.tracked_clients()
        );
    }
    let _ = srv.stop.send(true);
    db.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Portal tokens: limited per token before hashing; enumeration raises the alarm.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_token_is_limited_and_enumeration_raises_an_alarm() {
    let config = config(&[
        ("MESSO_PORTAL__TOKEN_REQUESTS_PER_MINUTE", "20"),
        ("MESSO_PORTAL__ENUMERATION_ALARM_PER_HOUR", "10"),
    ]);
    let db = TestDb::with_config(Backend::Sqlite, &config).await;
    let store = db.store.clone();
    let (srv, _, tokens, metrics, token) = portal(&config, &store).await;
    let ask = |cf: String, token: String| {
        let base = srv.base.clone();
        async move {
            client()
                .get(format!("{base}/api/v1/citizen/tickets?cf={cf}"))
                .bearer_auth(token)
                .send()
                .await
                .expect("get")
                .status()
        }
    };
    // An unknown portal token id: refused without hashing.
    let stranger = messo::http::new_token().expect("token").token;
    assert_eq!(
        ask(fiscal_code(1), stranger).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(tokens.verifications(), 0);
    // Nine different citizens: no alarm; the tenth raises it, once.
    for n in 0..9 {
        assert_eq!(ask(fiscal_code(n), token.clone()).await, StatusCode::OK);
    }
    assert_eq!(metrics.portal_enumeration_alarms_total.get(), 0);
    assert_eq!(ask(fiscal_code(9), token.clone()).await, StatusCode::OK);
    assert_eq!(metrics.portal_enumeration_alarms_total.get(), 1);
    for n in 10..15 {
        assert_eq!(ask(fiscal_code(n), token.clone()).await, StatusCode::OK);
    }
    assert_eq!(
        metrics.portal_enumeration_alarms_total.get(),
        1,
        "one alarm per hour"
    );
    // The token's allowance (20 a minute, 15 used): then 429, and a wrong secret for its id is
    // refused by the limit before any hashing.
    let mut statuses = Vec::new();
    for n in 15..25 {
        statuses.push(ask(fiscal_code(n), token.clone()).await.as_u16());
    }
    assert_eq!(&statuses[..5], [200, 200, 200, 200, 200], "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 429).count() >= 3,
        "{statuses:?}"
    );
    let id = messo::http::split_token(&token).expect("form").0.to_owned();
    let mut wrong_statuses = Vec::new();
    for _ in 0..3 {
        let wrong = format!("messo_{id}_{}", "0".repeat(48));
        wrong_statuses.push(ask(fiscal_code(1), wrong).await.as_u16());
    }
    assert!(wrong_statuses.contains(&429), "{wrong_statuses:?}");
    assert_eq!(
        tokens.verifications(),
        1 + wrong_statuses.iter().filter(|s| **s == 401).count() as u64,
        "a request refused by the token's limit is not hashed"
    );
    let _ = srv.stop.send(true);
    db.finish().await;
}

// ---------------------------------------------------------------------------------------------
// 8. The server: slow heads closed, the cap keeps /healthz answering, slow bodies 408.

/// Reads until the server closes the connection; Err if it did not within `guard`.
fn read_to_close(s: &mut TcpStream, guard: Duration) -> Result<String, String> {
    s.set_read_timeout(Some(guard)).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(String::from_utf8_lossy(&out).into_owned()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Ok(String::from_utf8_lossy(&out).into_owned());
            }
            Err(e) => return Err(format!("still open after {guard:?}: {e}")),
        }
    }
}

fn healthz(addr: SocketAddr) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split(' ').nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_are_closed_and_the_cap_keeps_healthz_answering() {
    let guard = Duration::from_secs(30);
    // Heads must arrive within 1 s; a connection that sends half a head, or nothing, is closed.
    let config1 = config(&[
        ("MESSO_HTTP__HEADER_READ_TIMEOUT_S", "1"),
        ("MESSO_HTTP__REQUEST_TIMEOUT_S", "1"),
        ("MESSO_HTTP__IDLE_TIMEOUT_S", "1"),
    ]);
    let db = TestDb::with_config(Backend::Sqlite, &config1).await;
    let store = db.store.clone();
    let admin = admin_state(&store, &config1);
    let app = Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .merge(messo::http::admin::router(admin));
    let srv = serve(app.clone(), &config1).await;
    let addr = srv.addr;
    let closed = tokio::task::spawn_blocking(move || {
        let mut half = TcpStream::connect(addr).expect("connect");
        half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .expect("write");
        let mut silent = TcpStream::connect(addr).expect("connect");
        // A slow body: the head is whole, the body never comes; the request times out (408).
        let mut slow = TcpStream::connect(addr).expect("connect");
        slow.write_all(
            b"POST /api/v1/admin/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"username\":",
        )
        .expect("write");
        (
            read_to_close(&mut half, guard),
            read_to_close(&mut silent, guard),
            read_to_close(&mut slow, guard),
        )
    })
    .await
    .expect("join");
    assert!(closed.0.is_ok(), "a half head: {:?}", closed.0);
    assert!(closed.1.is_ok(), "nothing at all: {:?}", closed.1);
    let slow = closed.2.expect("a slow body is ended");
    assert!(slow.starts_with("HTTP/1.1 408"), "{slow}");
    assert!(
        slow.contains("request-timeout"),
        "a problem that says why: {slow}"
    );
    assert_eq!(
        tokio::task::spawn_blocking(move || healthz(addr))
            .await
            .expect("join"),
        Some(200)
    );
    let _ = srv.stop.send(true);

    // At the cap (8) with every connection idle mid-head, /healthz still gets through: the
    // oldest idle connection makes room. Twelve such connections: the last four could only get
    // in by closing the first four.
    let config2 = config(&[
        ("MESSO_HTTP__MAX_CONNECTIONS", "8"),
        ("MESSO_HTTP__HEADER_READ_TIMEOUT_S", "600"),
    ]);
    let srv = serve(app, &config2).await;
    let addr = srv.addr;
    let (first, statuses) = tokio::task::spawn_blocking(move || {
        let mut idle: Vec<TcpStream> = (0..12)
            .map(|_| {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.write_all(b"GET /healthz HTTP/1.1\r\n").expect("write");
                s
            })
            .collect();
        let statuses: Vec<Option<u16>> = (0..3).map(|_| healthz(addr)).collect();
        let first = read_to_close(&mut idle[0], guard);
        (first, statuses)
    })
    .await
    .expect("join");
    assert_eq!(statuses, [Some(200), Some(200), Some(200)]);
    assert!(
        first.is_ok(),
        "the oldest idle connection was closed: {first:?}"
    );
    let _ = srv.stop.send(true);
    db.finish().await;
}
