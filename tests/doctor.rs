//! `messo doctor` against real peers: a local authoritative DNS server (tests/common/dns.rs),
//! SQLite files and PostgreSQL schemas, the aiosmtpd SMTP peer, local HTTP servers speaking
//! Twilio's and REST-IT's documented answers, a public URL answering /healthz, and files with
//! the modes a careless install leaves; and the binary itself, its output and exit status.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use messo::config::{BUILTIN_TOML, Config, Dkim};
use messo::doctor::{self, Finding, Options, Report, Status};

use common::dns::DnsServer;
use common::peers::{self, SmtpPeer};
use common::{Backend, TestDb, fresh_dir, process};

const T: Duration = Duration::from_secs(5);
const ZONE: &str = "example.test";
const DKIM_KEY: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtestkeyAAAB";
const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----\n";

/// The shipped configuration with `extra` TOML appended and `env` variables applied.
fn config_with(extra: &str, env: &[(&str, &str)]) -> Config {
    let mut text = BUILTIN_TOML.to_owned();
    text.push_str(extra);
    let env = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect::<Vec<_>>();
    Config::from_toml(&text, "test", env).expect("config")
}

/// E-mail over SMTP from `sender`, to 127.0.0.1:`port` (plain), with `env` added.
fn mail_config(sender: &str, port: u16, env: &[(&str, &str)]) -> Config {
    let port = port.to_string();
    let mut all = vec![
        ("MESSO_CHANNELS__EMAIL", "smtp"),
        ("MESSO_SMTP__HOST", "127.0.0.1"),
        ("MESSO_SMTP__PORT", port.as_str()),
        ("MESSO_SMTP__SECURITY", "plain"),
        ("MESSO_NOTIFY__SENDER_EMAIL", sender),
    ];
    all.retain(|(k, _)| !env.iter().any(|(e, _)| e == k));
    all.extend_from_slice(env);
    config_with("", &all)
}

fn only<'r>(r: &'r [Finding], check: &str) -> &'r Finding {
    let found: Vec<&Finding> = r.iter().filter(|f| f.check == check).collect();
    assert_eq!(found.len(), 1, "one {check} in {r:#?}");
    found[0]
}

fn options(dns: &DnsServer) -> Options {
    Options {
        nameserver: Some(dns.addr),
        timeout: T,
        ..Options::default()
    }
}

fn record_ok(_: &Dkim) -> Result<String, String> {
    Ok(format!("v=DKIM1; k=rsa; p={DKIM_KEY}"))
}

fn record_other(_: &Dkim) -> Result<String, String> {
    Ok("v=DKIM1; k=rsa; p=MIIBIjANotTheSameKey".to_owned())
}

// ---------------------------------------------------------------------------------------------
// DNS.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_spf_dmarc_and_dkim_pass() {
    let dkim_value = format!("v=DKIM1; k=rsa; p={}", DKIM_KEY);
    let dns = DnsServer::start(
        ZONE,
        &[
            ("good.example.test", "v=spf1 mx ip4:192.0.2.10 -all"),
            ("good.example.test", "google-site-verification=abc"),
            (
                "_dmarc.good.example.test",
                "v=DMARC1; p=reject; rua=mailto:d@good.example.test",
            ),
            ("sel1._domainkey.good.example.test", &dkim_value),
        ],
    )
    .await;
    let cfg = mail_config(
        "urp@good.example.test",
        1,
        &[
            ("MESSO_SMTP__DKIM__DOMAIN", "good.example.test"),
            ("MESSO_SMTP__DKIM__SELECTOR", "sel1"),
            ("MESSO_SMTP__DKIM__PRIVATE_KEY", PEM),
        ],
    );
    // Without the key's record: the published one is a DKIM key.
    let found = doctor::dns::check(&cfg, &options(&dns)).await;
    for check in ["dns.spf", "dns.dmarc", "dns.dkim"] {
        assert_eq!(only(&found, check).status, Status::Ok, "{found:#?}");
    }
    assert!(
        only(&found, "dns.spf").detail.contains("-all"),
        "{found:#?}"
    );
    assert!(only(&found, "dns.dmarc").detail.contains("p=reject"));

    // With it: the published key is compared with the configured one.
    let mut o = options(&dns);
    o.dkim_record = Some(record_ok);
    let found = doctor::dns::check(&cfg, &o).await;
    let dkim = only(&found, "dns.dkim");
    assert_eq!(dkim.status, Status::Ok, "{dkim:?}");
    assert!(dkim.detail.contains("configured one"), "{dkim:?}");

    o.dkim_record = Some(record_other);
    let found = doctor::dns::check(&cfg, &o).await;
    let dkim = only(&found, "dns.dkim");
    assert_eq!(dkim.status, Status::Fail, "{dkim:?}");
    let fix = dkim.fix.as_deref().expect("fix");
    assert!(
        fix.contains("sel1._domainkey.good.example.test") && fix.contains("MIIBIjANotTheSameKey"),
        "{fix}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_weak_records_are_named_with_their_fixes() {
    let dns = DnsServer::start(
        ZONE,
        &[
            ("nodmarc.example.test", "v=spf1 mx -all"),
            ("none.example.test", "v=spf1 mx ~all"),
            ("_dmarc.none.example.test", "v=DMARC1; p=none"),
            ("twospf.example.test", "v=spf1 mx -all"),
            (
                "twospf.example.test",
                "v=spf1 include:_spf.provider.test -all",
            ),
            ("_dmarc.twospf.example.test", "v=DMARC1; p=quarantine"),
            ("plusall.example.test", "v=spf1 +all"),
            ("_dmarc.plusall.example.test", "v=DMARC1; p=reject"),
            ("nokey.example.test", "v=spf1 -all"),
        ],
    )
    .await;
    let run = |sender: &'static str| {
        let o = options(&dns);
        async move {
            let cfg = mail_config(sender, 1, &[]);
            doctor::dns::check(&cfg, &o).await
        }
    };

    let found = run("urp@nodmarc.example.test").await;
    assert_eq!(only(&found, "dns.spf").status, Status::Ok);
    let dmarc = only(&found, "dns.dmarc");
    assert_eq!(dmarc.status, Status::Warn, "{dmarc:?}");
    assert!(dmarc.detail.contains("no DMARC record"), "{dmarc:?}");
    assert!(
        dmarc
            .fix
            .as_deref()
            .unwrap()
            .contains("_dmarc.nodmarc.example.test"),
        "{dmarc:?}"
    );
    // No [smtp.dkim]: a warning pointing at the operations guide.
    let dkim = only(&found, "dns.dkim");
    assert_eq!(dkim.status, Status::Warn, "{dkim:?}");
    assert!(
        dkim.fix.as_deref().unwrap().contains("docs/operations.md"),
        "{dkim:?}"
    );

    let found = run("urp@none.example.test").await;
    assert_eq!(only(&found, "dns.spf").status, Status::Ok, "~all is fine");
    let dmarc = only(&found, "dns.dmarc");
    assert_eq!(dmarc.status, Status::Warn, "{dmarc:?}");
    assert!(dmarc.detail.contains("p=none"), "{dmarc:?}");
    assert!(dmarc.fix.as_deref().unwrap().contains("p=quarantine"));

    let found = run("urp@twospf.example.test").await;
    let spf = only(&found, "dns.spf");
    assert_eq!(spf.status, Status::Fail, "{spf:?}");
    assert!(spf.detail.contains("2 SPF records"), "{spf:?}");
    assert!(spf.fix.as_deref().unwrap().contains("merge"), "{spf:?}");
    assert_eq!(only(&found, "dns.dmarc").status, Status::Ok);

    let found = run("urp@plusall.example.test").await;
    let spf = only(&found, "dns.spf");
    assert_eq!(spf.status, Status::Warn, "{spf:?}");
    assert!(spf.detail.contains("+all"), "{spf:?}");
    assert!(spf.fix.as_deref().unwrap().contains("-all"), "{spf:?}");

    // A DKIM key configured but not published.
    let cfg = mail_config(
        "urp@nokey.example.test",
        1,
        &[
            ("MESSO_SMTP__DKIM__DOMAIN", "nokey.example.test"),
            ("MESSO_SMTP__DKIM__SELECTOR", "s2026"),
            ("MESSO_SMTP__DKIM__PRIVATE_KEY", PEM),
        ],
    );
    let found = doctor::dns::check(&cfg, &options(&dns)).await;
    let dkim = only(&found, "dns.dkim");
    assert_eq!(dkim.status, Status::Fail, "{dkim:?}");
    assert!(
        dkim.fix
            .as_deref()
            .unwrap()
            .contains("s2026._domainkey.nokey.example.test")
    );
    // A domain that does not exist at all has no SPF.
    let found = run("urp@absent.example.test").await;
    assert_eq!(only(&found, "dns.spf").status, Status::Fail, "{found:#?}");
}

// ---------------------------------------------------------------------------------------------
// The store.

async fn store_states(backend: Backend) {
    // Empty: no migration applied.
    let db = TestDb::connect(backend).await;
    let found = doctor::store::check(&db.url, T).await;
    assert_eq!(
        only(&found, "store.reachable").status,
        Status::Ok,
        "{found:#?}"
    );
    let m = only(&found, "store.migrated");
    assert_eq!(m.status, Status::Warn, "{m:?}");
    assert!(m.fix.as_deref().unwrap().contains("messo migrate"), "{m:?}");

    // Migrated.
    db.store.migrate().await.expect("migrate");
    let found = doctor::store::check(&db.url, T).await;
    let m = only(&found, "store.migrated");
    assert_eq!(m.status, Status::Ok, "{m:?}");
    assert!(m.detail.contains("none pending"), "{m:?}");

    // One migration less than the binary has: pending.
    let last: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(db.store.pool())
        .await
        .expect("last");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM _sqlx_migrations WHERE version = {last}"
    )))
    .execute(db.store.pool())
    .await
    .expect("forget the last migration");
    let found = doctor::store::check(&db.url, T).await;
    let m = only(&found, "store.migrated");
    assert_eq!(m.status, Status::Warn, "{m:?}");
    assert!(m.detail.contains(&format!("the first is {last}")), "{m:?}");

    // A newer Messo's migration.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99999, 'from a newer Messo', TRUE, $1, 0)",
    )
    .bind(vec![0u8; 48])
    .execute(db.store.pool())
    .await
    .expect("a newer migration");
    let found = doctor::store::check(&db.url, T).await;
    let m = only(&found, "store.migrated");
    assert_eq!(m.status, Status::Fail, "{m:?}");
    assert!(
        m.detail.contains("newer Messo") && m.detail.contains("99999"),
        "{m:?}"
    );
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_empty_migrated_pending_and_newer_on_sqlite() {
    store_states(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_empty_migrated_pending_and_newer_on_postgres() {
    store_states(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_not_made_yet_warns_an_unreachable_one_fails_neither_is_created() {
    // A fresh install: the daemon makes the SQLite file at its first start.
    let dir = fresh_dir("doctor_missing");
    let file = dir.join("nothing-here.db");
    let found = doctor::store::check(&format!("sqlite://{}", file.display()), T).await;
    let r = only(&found, "store.reachable");
    assert_eq!(r.status, Status::Warn, "{r:?}");
    assert!(r.detail.contains("does not exist"), "{r:?}");
    assert!(r.fix.as_deref().unwrap().contains("messo migrate"), "{r:?}");
    assert!(!file.exists(), "the doctor only reads");

    // PostgreSQL where nothing listens; the password never shows.
    let port = process::free_port();
    let url = format!("postgres://messo:s3cret-pw@127.0.0.1:{port}/messo");
    let found = doctor::store::check(&url, T).await;
    let r = only(&found, "store.reachable");
    assert_eq!(r.status, Status::Fail, "{r:?}");
    assert!(!format!("{found:?}").contains("s3cret-pw"), "{found:#?}");
    assert_eq!(only(&found, "store.migrated").status, Status::Skip);
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------------
// SMTP.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_session_up_to_auth_and_no_mail_unless_asked() {
    let peer = SmtpPeer::start(&fresh_dir("doctor_smtp"), 0, &["--auth", "urp:segreto"]);
    let good = mail_config(
        "urp@comune.example.it",
        peer.port,
        &[
            ("MESSO_SMTP__USERNAME", "urp"),
            ("MESSO_SMTP__PASSWORD", "segreto"),
        ],
    );
    let o = Options {
        timeout: T,
        ..Options::default()
    };
    let found = doctor::smtp::check_smtp(&good, &o).await;
    assert_eq!(
        only(&found, "smtp.connect").status,
        Status::Ok,
        "{found:#?}"
    );
    assert_eq!(
        only(&found, "smtp.tls").status,
        Status::Skip,
        "plain to loopback"
    );
    assert_eq!(only(&found, "smtp.auth").status, Status::Ok, "{found:#?}");
    assert!(
        peer.envelopes().is_empty(),
        "no mail without --send-test-to"
    );

    let bad = mail_config(
        "urp@comune.example.it",
        peer.port,
        &[
            ("MESSO_SMTP__USERNAME", "urp"),
            ("MESSO_SMTP__PASSWORD", "sbagliata"),
        ],
    );
    let found = doctor::smtp::check_smtp(&bad, &o).await;
    let auth = only(&found, "smtp.auth");
    assert_eq!(auth.status, Status::Fail, "{auth:?}");
    assert!(
        auth.fix
            .as_deref()
            .unwrap()
            .contains("MESSO_SMTP__PASSWORD_FILE")
    );
    assert!(!format!("{found:?}").contains("sbagliata"), "{found:#?}");

    // Asked: one test message.
    let asked = Options {
        send_test_to: Some("tecnico@comune.example.it".to_owned()),
        timeout: T,
        ..Options::default()
    };
    let found = doctor::smtp::check_smtp(&good, &asked).await;
    assert_eq!(
        only(&found, "smtp.send_test").status,
        Status::Ok,
        "{found:#?}"
    );
    let env = peer.envelopes();
    assert_eq!(env.len(), 1);
    assert_eq!(env[0]["rcpt_tos"][0], "tecnico@comune.example.it");
    peer.stop();

    // Nothing listening.
    let closed = mail_config("urp@comune.example.it", process::free_port(), &[]);
    let found = doctor::smtp::check_smtp(&closed, &o).await;
    let c = only(&found, "smtp.connect");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.fix.as_deref().unwrap().contains("smtp.port"), "{c:?}");
    assert_eq!(only(&found, "smtp.auth").status, Status::Skip);

    // [pec], checked the same way when configured.
    let closed_port = process::free_port().to_string();
    let pec = mail_config(
        "urp@comune.example.it",
        1,
        &[
            ("MESSO_PEC__HOST", "127.0.0.1"),
            ("MESSO_PEC__PORT", &closed_port),
            ("MESSO_PEC__SECURITY", "tls"),
            ("MESSO_PEC__SENDER", "urp@pec.comune.example.it"),
        ],
    );
    let found = doctor::smtp::check_pec(&pec, &o).await;
    let c = only(&found, "pec.connect");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.fix.as_deref().unwrap().contains("pec.port"), "{c:?}");
    assert!(
        doctor::smtp::check_pec(&good, &o).await.is_empty(),
        "no [pec]: nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_is_verified_against_the_configured_ca() {
    let dir = fresh_dir("doctor_tls");
    let (ca, leaf, key) = peers::certs(&dir);
    let (ca, leaf, key) = (
        ca.display().to_string(),
        leaf.display().to_string(),
        key.display().to_string(),
    );
    let peer = SmtpPeer::start(
        &fresh_dir("doctor_tls_peer"),
        0,
        &[
            "--tls-cert",
            &leaf,
            "--tls-key",
            &key,
            "--require-starttls",
            "--auth",
            "urp:segreto",
        ],
    );
    let o = Options {
        timeout: T,
        ..Options::default()
    };
    let base = [
        ("MESSO_SMTP__SECURITY", "starttls"),
        ("MESSO_SMTP__HOST", "localhost"),
        ("MESSO_SMTP__USERNAME", "urp"),
        ("MESSO_SMTP__PASSWORD", "segreto"),
    ];
    let mut with_ca = base.to_vec();
    with_ca.push(("MESSO_SMTP__CA_BUNDLE", &ca));
    let found = doctor::smtp::check_smtp(
        &mail_config("urp@comune.example.it", peer.port, &with_ca),
        &o,
    )
    .await;
    let tls = only(&found, "smtp.tls");
    assert_eq!(tls.status, Status::Ok, "{found:#?}");
    assert!(tls.detail.contains("STARTTLS"), "{tls:?}");
    assert_eq!(only(&found, "smtp.auth").status, Status::Ok, "{found:#?}");

    // Without the CA, the certificate is not trusted.
    let found =
        doctor::smtp::check_smtp(&mail_config("urp@comune.example.it", peer.port, &base), &o).await;
    let tls = only(&found, "smtp.tls");
    assert_eq!(tls.status, Status::Fail, "{found:#?}");
    assert!(
        tls.fix.as_deref().unwrap().contains("smtp.ca_bundle"),
        "{tls:?}"
    );
    peer.stop();
}

// ---------------------------------------------------------------------------------------------
// SMS providers.

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "right-token-0123456789";

/// Twilio's account resource and REST-IT's user status, as documented.
fn providers_mock() -> Router {
    use base64::Engine;
    Router::new()
        .route(
            "/2010-04-01/Accounts/{file}",
            get(|axum::extract::Path(file): axum::extract::Path<String>, h: HeaderMap| async move {
                let want = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"))
                );
                let auth = h.get("authorization").and_then(|v| v.to_str().ok());
                if file != format!("{SID}.json") || auth != Some(want.as_str()) {
                    return (
                        StatusCode::UNAUTHORIZED,
                        axum::Json(serde_json::json!({
                            "code": 20003, "message": "Authenticate", "status": 401
                        })),
                    );
                }
                (
                    StatusCode::OK,
                    axum::Json(serde_json::json!({
                        "sid": SID, "friendly_name": "Comune", "status": "active", "type": "Full"
                    })),
                )
            }),
        )
        .route(
            "/API/v1.0/REST/login",
            get(
                |axum::extract::Query(q): axum::extract::Query<
                    std::collections::HashMap<String, String>,
                >| async move {
                    if q.get("username").map(String::as_str) == Some("urp")
                        && q.get("password").map(String::as_str) == Some("pw-rest")
                    {
                        (StatusCode::OK, "U2;S2".to_owned())
                    } else {
                        (StatusCode::NOT_FOUND, String::new())
                    }
                },
            ),
        )
        .route(
            "/API/v1.0/REST/status",
            get(|h: HeaderMap| async move {
                let user = h.get("user_key").and_then(|v| v.to_str().ok());
                let token = h
                    .get("Access_token")
                    .or_else(|| h.get("Session_key"))
                    .and_then(|v| v.to_str().ok());
                if !matches!((user, token), (Some("U1"), Some("rest-token")) | (Some("U2"), Some("S2"))) {
                    return (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({})));
                }
                (
                    StatusCode::OK,
                    axum::Json(serde_json::json!({
                        "money": 12.5, "sms": [{"type": "GP", "quantity": 120}], "email": {}
                    })),
                )
            }),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_providers_credentials_are_asked_of_their_documented_endpoints() {
    let base = common::serve(providers_mock()).await;
    let extra = format!(
        "\n[sms]\nsender = \"Comune\"\n\
         [[sms.providers]]\nname = \"twilio-ok\"\nkind = \"twilio\"\nbase_url = \"{base}\"\n\
         account_sid = \"{SID}\"\nauth_token = \"{TOKEN}\"\n\
         [[sms.providers]]\nname = \"twilio-bad\"\nkind = \"twilio\"\nbase_url = \"{base}\"\n\
         account_sid = \"{SID}\"\nauth_token = \"wrong-token-0123456789\"\n\
         [[sms.providers]]\nname = \"skebby\"\nkind = \"rest-it\"\nbase_url = \"{base}/API/v1.0/REST\"\n\
         user_key = \"U1\"\naccess_token = \"rest-token\"\n\
         [[sms.providers]]\nname = \"aruba\"\nkind = \"rest-it\"\nbase_url = \"{base}/API/v1.0/REST\"\n\
         username = \"urp\"\npassword = \"pw-wrong\"\n\
         [[sms.providers]]\nname = \"aruba-ok\"\nkind = \"rest-it\"\nbase_url = \"{base}/API/v1.0/REST\"\n\
         username = \"urp\"\npassword = \"pw-rest\"\n\
         [[sms.providers]]\nname = \"altro\"\nkind = \"generic\"\nbase_url = \"{base}/send\"\n\
         body = '{{\"to\": \"{{{{to}}}}\", \"text\": \"{{{{text}}}}\"}}'\n"
    );
    let cfg = config_with(&extra, &[]);
    let found = doctor::sms::check(&cfg, T).await;
    assert_eq!(found.len(), 6, "{found:#?}");
    assert_eq!(found[0].status, Status::Ok, "{found:#?}");
    assert!(found[0].detail.contains("twilio-ok") && found[0].detail.contains("active"));
    assert_eq!(found[1].status, Status::Fail, "{found:#?}");
    assert!(found[1].detail.contains("401"), "{:?}", found[1]);
    assert!(
        found[1]
            .fix
            .as_deref()
            .unwrap()
            .contains("MESSO_SMS__PROVIDERS__1__AUTH_TOKEN_FILE"),
        "{:?}",
        found[1]
    );
    assert_eq!(found[2].status, Status::Ok, "{found:#?}");
    assert!(
        found[2].detail.contains("120 GP SMS left"),
        "{:?}",
        found[2]
    );
    assert_eq!(found[3].status, Status::Fail, "{found:#?}");
    assert!(found[3].detail.contains("log-in of urp"), "{:?}", found[3]);
    assert!(
        found[3]
            .fix
            .as_deref()
            .unwrap()
            .contains("MESSO_SMS__PROVIDERS__3__PASSWORD_FILE"),
        "{:?}",
        found[3]
    );
    assert_eq!(found[4].status, Status::Ok, "logged in: {found:#?}");
    assert!(
        found[4].detail.contains("120 GP SMS left"),
        "{:?}",
        found[4]
    );
    assert_eq!(found[5].status, Status::Skip, "{found:#?}");
    let all = format!("{found:?}");
    assert!(
        !all.contains("wrong-token") && !all.contains("pw-wrong"),
        "no secret is shown"
    );
}

// ---------------------------------------------------------------------------------------------
// The public URL.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_url_must_answer_healthz_itself() {
    let up = common::serve(Router::new().route("/healthz", get(|| async { "ok" }))).await;
    let found = doctor::web::check(&up, T).await;
    assert_eq!(only(&found, "web.healthz").status, Status::Ok, "{found:#?}");
    assert!(
        found.iter().all(|f| f.check != "web.https"),
        "loopback is exempt"
    );

    let down = common::serve(Router::new().route(
        "/healthz",
        get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "proxy: no upstream") }),
    ))
    .await;
    let found = doctor::web::check(&down, T).await;
    let h = only(&found, "web.healthz");
    assert_eq!(h.status, Status::Fail, "{h:?}");
    assert!(h.detail.contains("503"), "{h:?}");
    assert!(h.fix.as_deref().unwrap().contains("messo run"), "{h:?}");

    let redirect = common::serve(Router::new().route(
        "/healthz",
        get(|| async {
            (
                StatusCode::MOVED_PERMANENTLY,
                [("location", "https://urp.example.test/healthz")],
            )
        }),
    ))
    .await;
    let found = doctor::web::check(&redirect, T).await;
    let h = only(&found, "web.healthz");
    assert_eq!(h.status, Status::Fail, "{h:?}");
    assert!(
        h.detail.contains("https://urp.example.test/healthz"),
        "{h:?}"
    );
}

/// A server that never stops answering: the check reads the start of the body and hangs up,
/// instead of reading until its timeout (which, on loopback, is gigabytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_answer_is_read_only_up_to_its_limit() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let sent = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&sent);
    let endless = common::serve(Router::new().route(
        "/healthz",
        get(move || {
            let counter = Arc::clone(&counter);
            async move {
                let chunk = axum::body::Bytes::from(vec![b'x'; 64 * 1024]);
                let stream = futures_util::stream::repeat_with(move || {
                    counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    Ok::<_, std::io::Error>(chunk.clone())
                });
                axum::body::Body::from_stream(stream)
            }
        }),
    ))
    .await;
    let found = doctor::web::check(&endless, Duration::from_secs(30)).await;
    let h = only(&found, "web.healthz");
    assert_eq!(h.status, Status::Warn, "200, but not Messo's answer: {h:?}");
    assert!(h.detail.len() < 500, "{h:?}");
    // What the server could push into the socket's buffers before the client hung up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pushed = sent.load(Ordering::Relaxed);
    assert!(pushed < 32 * 1024 * 1024, "{pushed} bytes were pulled");
}

// ---------------------------------------------------------------------------------------------
// Files.

#[test]
fn secret_files_and_configuration_files_are_checked_by_mode() {
    let dir = fresh_dir("doctor_files");
    let secret = dir.join("smtp-password");
    std::fs::write(&secret, "segreto\n").expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let f = doctor::files::secret_file("MESSO_SMTP__PASSWORD_FILE", &secret);
    assert_eq!(f.status, Status::Fail, "{f:?}");
    assert!(f.fix.as_deref().unwrap().contains("chmod 0600"), "{f:?}");
    assert!(!f.detail.contains("segreto"), "{f:?}");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(
        doctor::files::secret_file("MESSO_SMTP__PASSWORD_FILE", &secret).status,
        Status::Ok
    );

    // Found through the process's variables, as the daemon would read them.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o604)).expect("chmod");
    let cfg = config_with("", &[]);
    let found = doctor::files::check_with_env(
        &cfg,
        [(
            "MESSO_SMTP__PASSWORD_FILE".to_owned(),
            secret.display().to_string(),
        )],
    );
    assert_eq!(
        only(&found, "files.secret").status,
        Status::Fail,
        "{found:#?}"
    );

    // A configuration file holding a password, readable by everyone.
    let file = dir.join("messo.toml");
    std::fs::write(
        &file,
        "[smtp]\nhost = \"x\"\nusername = \"u\"\npassword = \"p\"\n",
    )
    .expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let f = doctor::files::config_file(&file);
    assert_eq!(f.status, Status::Fail, "{f:?}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    assert_eq!(doctor::files::config_file(&file).status, Status::Warn);
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------------
// The binary.

fn finding_line<'o>(out: &'o str, check: &str) -> &'o str {
    out.lines()
        .find(|l| {
            l.get(6..)
                .is_some_and(|rest| rest.starts_with(&format!("{check} ")))
        })
        .unwrap_or_else(|| panic!("no {check} line in\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_each_finding_and_exits_by_them() {
    let dns = DnsServer::start(
        ZONE,
        &[
            ("ok.example.test", "v=spf1 mx -all"),
            ("_dmarc.ok.example.test", "v=DMARC1; p=quarantine"),
        ],
    )
    .await;
    let web = common::serve(Router::new().route("/healthz", get(|| async { "ok" }))).await;
    let db = TestDb::open(Backend::Sqlite).await;
    let peer = SmtpPeer::start(&fresh_dir("doctor_bin_peer"), 0, &[]);
    let file = db.dir.join("messo.toml");
    std::fs::write(&file, BUILTIN_TOML).expect("config");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let port = peer.port.to_string();
    let state = db.dir.display().to_string();
    let env: Vec<(&str, String)> = vec![
        ("MESSO_DATABASE__URL", db.url.clone()),
        ("MESSO_CHANNELS__EMAIL", "smtp".to_owned()),
        ("MESSO_CHANNELS__FILE_DIR", format!("{state}/outbox")),
        (
            "MESSO_INBOUND__ATTACHMENTS_DIR",
            format!("{state}/attachments"),
        ),
        ("MESSO_SMTP__HOST", "127.0.0.1".to_owned()),
        ("MESSO_SMTP__PORT", port),
        ("MESSO_SMTP__SECURITY", "plain".to_owned()),
        (
            "MESSO_NOTIFY__SENDER_EMAIL",
            "urp@ok.example.test".to_owned(),
        ),
        ("MESSO_HTTP__PUBLIC_BASE_URL", web.clone()),
    ];
    let ns = dns.addr.to_string();
    let run = move |args: Vec<String>, env: Vec<(&'static str, String)>| {
        tokio::task::spawn_blocking(move || {
            let mut cmd = process::messo();
            cmd.args(&args);
            for (k, v) in env {
                cmd.env(k, v);
            }
            let out = process::run(&mut cmd, None);
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    let args = |extra: &[&str]| {
        let mut a = vec![
            "--config".to_owned(),
            file.display().to_string(),
            "doctor".to_owned(),
            "--nameserver".to_owned(),
            ns.clone(),
        ];
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };

    let (code, out, err) = run(args(&[]), env.clone()).await.expect("run");
    for check in [
        "config.valid",
        "files.config",
        "store.reachable",
        "store.migrated",
        "smtp.connect",
        "web.healthz",
        "dns.spf",
        "dns.dmarc",
    ] {
        assert!(
            finding_line(&out, check).starts_with("OK    "),
            "{check}:\n{out}\n{err}"
        );
    }
    let dkim = finding_line(&out, "dns.dkim");
    assert!(dkim.starts_with("WARN  "), "{out}");
    assert!(out.contains("      fix: configure [smtp.dkim]"), "{out}");
    assert_eq!(code, Some(0), "warnings alone pass:\n{out}\n{err}");
    assert!(peer.envelopes().is_empty(), "no mail was sent");

    // --strict: the DKIM warning fails.
    let (code, _, _) = run(args(&["--strict"]), env.clone()).await.expect("run");
    assert_eq!(code, Some(1));

    // JSON, for scripts.
    let (code, out, _) = run(args(&["--format", "json"]), env.clone())
        .await
        .expect("run");
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
    let spf = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["check"] == "dns.spf")
        .expect("dns.spf");
    assert_eq!(spf["status"], "ok", "{v}");
    assert_eq!(v["fail"], 0, "{v}");

    // A usage error.
    let (code, _, err) = run(args(&["--format", "yaml"]), env.clone())
        .await
        .expect("run");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--format"), "{err}");

    // The public URL down: a failure, exit status 1.
    let mut down = env.clone();
    down.retain(|(k, _)| *k != "MESSO_HTTP__PUBLIC_BASE_URL");
    down.push((
        "MESSO_HTTP__PUBLIC_BASE_URL",
        format!("http://127.0.0.1:{}", process::free_port()),
    ));
    let (code, out, _) = run(args(&[]), down).await.expect("run");
    assert!(
        finding_line(&out, "web.healthz").starts_with("FAIL  "),
        "{out}"
    );
    assert_eq!(code, Some(1), "{out}");

    // An invalid configuration: its key path, exit status 1.
    let mut bad = env.clone();
    bad.push(("MESSO_SMTP__PORT", "70000".to_owned()));
    bad.retain(|(k, v)| *k != "MESSO_SMTP__PORT" || v == "70000");
    let (code, out, _) = run(args(&[]), bad).await.expect("run");
    assert_eq!(code, Some(1), "{out}");
    let line = finding_line(&out, "config.valid");
    assert!(
        line.starts_with("FAIL  ") && line.contains("smtp.port"),
        "{out}"
    );

    peer.stop();
    db.finish().await;
}

/// The report of a whole run keeps every module's findings in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_run_lists_the_checks_in_order() {
    let cfg = config_with(
        "",
        &[(
            "MESSO_DATABASE__URL",
            "sqlite:///nonexistent-dir-for-doctor/x.db",
        )],
    );
    let report: Report = doctor::run(
        &cfg,
        &Options {
            timeout: T,
            ..Options::default()
        },
    )
    .await;
    let order: Vec<&str> = report.findings.iter().map(|f| f.check).collect();
    let pos = |c: &str| order.iter().position(|x| *x == c).unwrap_or(usize::MAX);
    assert!(pos("config.valid") < pos("clock.synced"), "{order:?}");
    assert!(pos("clock.synced") < pos("store.reachable"), "{order:?}");
    assert!(pos("store.reachable") < pos("web.healthz"), "{order:?}");
    assert!(pos("web.healthz") < pos("dns.spf"), "{order:?}");
    // A store not made yet is a warning (the daemon makes it): --strict fails on it.
    assert_eq!(
        report.of("store.reachable").next().unwrap().status,
        Status::Warn
    );
    assert_eq!(report.exit_code(true), 1);
}

/// The binary with a real signing key: `dns.dkim` compares the record published under the
/// selector with the key Messo signs with (the record `check-config` prints), so a forgotten
/// rotation (the old key still published) is a failure with the record to publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_compares_the_published_dkim_key_with_the_signing_key() {
    let dir = fresh_dir("doctor_dkim_key");
    let genkey = |name: &str| {
        let path = dir.join(name);
        let out = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&path)
            .output()
            .expect("the openssl CLI (scripts/install-peers.sh)");
        assert!(out.status.success(), "{out:?}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    };
    let signing = genkey("signing.pem");
    let old = genkey("old.pem");
    let record = |key: &std::path::Path, selector: &str| {
        let pem = std::fs::read_to_string(key).expect("key");
        let cfg = config_with(
            "",
            &[
                ("MESSO_SMTP__HOST", "127.0.0.1"),
                ("MESSO_SMTP__DKIM__DOMAIN", "signed.example.test"),
                ("MESSO_SMTP__DKIM__SELECTOR", selector),
                ("MESSO_SMTP__DKIM__ALGORITHM", "ed25519-sha256"),
                ("MESSO_SMTP__DKIM__PRIVATE_KEY", pem.as_str()),
            ],
        );
        let dkim = cfg
            .smtp
            .as_ref()
            .and_then(|s| s.dkim.as_ref())
            .expect("[smtp.dkim]");
        messo::delivery::dkim::public_key_record(dkim).expect("a record")
    };
    let current = record(&signing, "now");
    let stale = record(&old, "stale");
    assert!(current.starts_with("v=DKIM1; k=ed25519; p="), "{current}");
    let dns = DnsServer::start(
        ZONE,
        &[
            ("signed.example.test", "v=spf1 mx -all"),
            ("_dmarc.signed.example.test", "v=DMARC1; p=reject"),
            ("now._domainkey.signed.example.test", &current),
            // The selector still carries the key of before the rotation.
            ("stale._domainkey.signed.example.test", &stale),
        ],
    )
    .await;
    let conf = dir.join("messo.toml");
    std::fs::write(&conf, BUILTIN_TOML).expect("config");
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let run = |selector: &'static str| {
        let mut cmd = process::messo();
        cmd.arg("--config")
            .arg(&conf)
            .args(["doctor", "--nameserver", &dns.addr.to_string()])
            .env("MESSO_NOTIFY__SENDER_EMAIL", "urp@signed.example.test")
            .env("MESSO_CHANNELS__EMAIL", "smtp")
            .env("MESSO_SMTP__HOST", "127.0.0.1")
            .env("MESSO_SMTP__PORT", process::free_port().to_string())
            .env("MESSO_SMTP__DKIM__DOMAIN", "signed.example.test")
            .env("MESSO_SMTP__DKIM__SELECTOR", selector)
            .env("MESSO_SMTP__DKIM__ALGORITHM", "ed25519-sha256")
            .env("MESSO_SMTP__DKIM__PRIVATE_KEY_FILE", &signing);
        tokio::task::spawn_blocking(move || {
            let out = process::run(&mut cmd, None);
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };

    let out = run("now").await.expect("run");
    let line = finding_line(&out, "dns.dkim");
    assert!(line.starts_with("OK    "), "{out}");
    let key = std::fs::read_to_string(&signing).expect("key");
    let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!out.contains(&body), "the private key is never printed");

    let out = run("stale").await.expect("run");
    let line = finding_line(&out, "dns.dkim");
    assert!(line.starts_with("FAIL  "), "{out}");
    assert!(
        out.contains(current.trim_start_matches("v=DKIM1; k=ed25519; ")),
        "the fix gives the record to publish:\n{out}"
    );
}
