//! The admin API over real HTTP on loopback, on SQLite and on the real PostgreSQL: log-in,
//! sessions, CSRF and roles; broken edits refused with the live version untouched; publish,
//! four-eyes, rollback and history; test sends; and the next message rendered with the new
//! version while a message already rendered keeps its words.

#![allow(dead_code)]

mod common;

use std::sync::Arc;

use common::admin::{Console, PASSWORD, breach_notice};
use common::mail::subjects;
use common::{Backend, TestClock, fixed_clock, on_both, ts};
use messo::config::{BUILTIN_TOML, Config};
use messo::http::admin::{AdminState, hash_secret};
use messo::store::Role;
use messo::templates::{Catalog, Settings, Templates};
use messo::time::Timestamp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

const VIOLAZIONE: &str = "/api/v1/admin/templates/cittadino/violazione/it";

type Admin = Console;

/// `extra`: `key = value` lines replacing those of the `[admin]` section of the shipped file.
async fn start(backend: Backend, extra: &str) -> Admin {
    let mut text = BUILTIN_TOML.to_owned();
    for line in extra.lines().filter(|l| l.contains('=')) {
        let key = line.split('=').next().unwrap_or("").trim();
        let old = BUILTIN_TOML
            .lines()
            .find(|l| l.split('=').next().map(str::trim) == Some(key))
            .expect("a key of the shipped [admin] section");
        text = text.replace(old, line);
    }
    let config = Config::from_toml(&text, "test", Vec::new()).expect("config");
    common::admin::start(
        backend,
        config,
        TestClock::at("2026-03-03T10:00:00+01:00"),
        &[
            ("anna", Role::Admin),
            ("bruno", Role::Admin),
            ("elena", Role::Editor),
            ("vito", Role::Viewer),
        ],
    )
    .await
}

/// A signed-in console session: its cookie jar and CSRF token.
struct Session {
    client: reqwest::Client,
    cookie: String,
    csrf: String,
    base: String,
}

impl Session {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("get");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .json(&body)
            .send()
            .await
            .expect("post");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

impl Admin {
    async fn login(&self, user: &str) -> Session {
        let client = reqwest::Client::new();
        let r = client
            .post(format!("{}/api/v1/admin/login", self.base))
            .json(&json!({"username": user, "password": PASSWORD}))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), StatusCode::OK, "{user} signs in");
        let cookie = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let body: Value = r.json().await.expect("json");
        Session {
            client,
            cookie: cookie.split(';').next().unwrap_or("").to_owned(),
            csrf: body["csrf"].as_str().expect("csrf").to_owned(),
            base: self.base.clone(),
        }
    }
}

fn edited(base: &Value, f: impl Fn(&mut Value)) -> Value {
    let mut v = json!({
        "subject": base["subject"], "text": base["text"], "html": base["html"], "sms": base["sms"],
    });
    f(&mut v);
    v
}

async fn live_of(s: &Session, path: &str) -> Value {
    let (status, t) = s.get(path).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    t["live"].clone()
}

// ---------------------------------------------------------------------------------------------

async fn sessions_csrf_and_roles(a: &Admin) {
    let anon = reqwest::Client::new();
    // Wrong password: 401, and the failure is audited.
    let r = anon
        .post(format!("{}/api/v1/admin/login", a.base))
        .json(&json!({"username": "anna", "password": "sbagliata-sbagliata"}))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        a.count("SELECT COUNT(*) FROM audit_log WHERE action = 'login.failed'")
            .await
            >= 1
    );
    // A malformed body names its fault.
    let r = anon
        .post(format!("{}/api/v1/admin/login", a.base))
        .json(&json!({"username": "anna"}))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.expect("json");
    assert!(
        body["detail"].as_str().unwrap_or("").contains("password"),
        "{body}"
    );
    // No session: 401.
    let r = anon
        .get(format!("{}{VIOLAZIONE}", a.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let editor = a.login("elena").await;
    let (status, me) = editor.get("/api/v1/admin/me").await;
    assert_eq!(
        (status, me["role"].as_str()),
        (StatusCode::OK, Some("editor"))
    );
    let live = live_of(&editor, VIOLAZIONE).await;
    let body = edited(&live, |v| v["note"] = json!("prova"));
    // A change without the CSRF header is refused, even with a valid cookie.
    let r = editor
        .client
        .post(format!("{}{VIOLAZIONE}/versions", a.base))
        .header("cookie", &editor.cookie)
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A viewer reads but cannot propose.
    let viewer = a.login("vito").await;
    assert_eq!(viewer.get(VIOLAZIONE).await.0, StatusCode::OK);
    assert_eq!(
        viewer
            .post(&format!("{VIOLAZIONE}/versions"), body.clone())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // The editor can; the audit log has it.
    let (status, v) = editor.post(&format!("{VIOLAZIONE}/versions"), body).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["version"].as_i64(), v["state"].as_str()),
        (Some(1), Some("proposed"))
    );
    assert_eq!(
        a.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'template.propose' AND actor = 'elena'"
        )
        .await,
        1
    );
    // The audit log is for admins only.
    assert_eq!(
        editor.get("/api/v1/admin/audit").await.0,
        StatusCode::FORBIDDEN
    );
    let admin = a.login("anna").await;
    let (status, log) = admin.get("/api/v1/admin/audit?limit=50").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        log.as_array()
            .is_some_and(|l| l.iter().any(|r| r["action"] == "template.propose")),
        "{log}"
    );
    // Log-out ends the session.
    let r = editor
        .client
        .post(format!("{}/api/v1/admin/logout", a.base))
        .header("cookie", &editor.cookie)
        .header("x-csrf-token", &editor.csrf)
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        editor.get("/api/v1/admin/me").await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn broken_edits_are_refused_and_the_live_version_stays(a: &Admin) {
    let s = a.login("anna").await;
    let live = live_of(&s, VIOLAZIONE).await;
    let long_sms = format!("È {} {{{{number}}}}", "una frase lunga ".repeat(12));
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            edited(&live, |v| {
                v["text"] = json!("Gentile cittadino,\nla richiesta {{number}")
            }),
            "text",
            "graffe",
        ),
        (
            edited(&live, |v| v["text"] = json!("{{maiuscolo number}}")),
            "text",
            "«maiuscolo»",
        ),
        (
            edited(&live, |v| {
                v["text"] = json!("Gentile {{nome}},\n{{number}}")
            }),
            "text",
            "«nome»",
        ),
        (
            edited(&live, |v| v["text"] = json!("{{> firma_che_non_esiste}}")),
            "text",
            "«firma_che_non_esiste»",
        ),
        (
            edited(&live, |v| v["sms"] = json!(long_sms)),
            "sms",
            "parti",
        ),
        (
            edited(&live, |v| {
                v["subject"] = json!("<script>alert(1)</script> {{number}}")
            }),
            "subject",
            "HTML",
        ),
    ];
    for (body, part, needle) in cases {
        let (status, p) = s
            .post(&format!("{VIOLAZIONE}/versions"), body.clone())
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
        let err = &p["errors"][0];
        assert_eq!(err["part"], part, "{p}");
        assert!(
            err["message"].as_str().unwrap_or("").contains(needle),
            "{needle}: {p}"
        );
        // Validate says the same without storing anything either.
        let (status, v) = s.post(&format!("{VIOLAZIONE}/validate"), body).await;
        assert_eq!(
            (status, v["ok"].as_bool()),
            (StatusCode::OK, Some(false)),
            "{v}"
        );
    }
    // The unbalanced braces are located: line 2.
    let (_, p) = s
        .post(
            &format!("{VIOLAZIONE}/preview"),
            edited(&live, |v| {
                v["text"] = json!("Gentile cittadino,\nla richiesta {{number}")
            }),
        )
        .await;
    assert_eq!(p["errors"][0]["line"], 2, "{p}");
    assert_eq!(a.count("SELECT COUNT(*) FROM template_versions").await, 0);
    assert_eq!(live_of(&s, VIOLAZIONE).await, live);
}

/// Issue 21: the IO parts are edited, previewed and stored like the others; a body shorter than
/// the app takes is refused, nothing is stored and the live version stays.
async fn io_parts_are_previewed_stored_and_refused_when_too_short(a: &Admin) {
    let s = a.login("anna").await;
    let live = live_of(&s, VIOLAZIONE).await;
    assert!(
        live["io_subject"].is_string() && live["io_markdown"].is_string(),
        "{live}"
    );
    let (status, list) = s.get("/api/v1/admin/templates").await;
    assert_eq!(status, StatusCode::OK);
    let channels = list
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|t| t["kind"] == "violazione" && t["audience"] == "cittadino")
        })
        .map(|t| t["channels"].clone());
    assert_eq!(channels, Some(json!(["email", "sms", "io"])));

    let (status, p) = s.post(&format!("{VIOLAZIONE}/preview"), live.clone()).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let io = &p["io"];
    assert!(
        io["subject"]
            .as_str()
            .unwrap_or("")
            .starts_with("Richiesta 2026/"),
        "{p}"
    );
    assert!(
        io["markdown"].as_str().unwrap_or("").contains("**2026/"),
        "{p}"
    );
    assert!(
        io["html"].as_str().unwrap_or("").contains("<strong>2026/"),
        "{p}"
    );

    let short = edited(&live, |v| {
        v["io_subject"] = live["io_subject"].clone();
        v["io_markdown"] = json!("Richiesta {{number}}: tempi superati.");
    });
    let (status, p) = s.post(&format!("{VIOLAZIONE}/versions"), short).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["errors"][0]["part"], "io_markdown", "{p}");
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("almeno 80"),
        "{p}"
    );
    assert_eq!(a.count("SELECT COUNT(*) FROM template_versions").await, 0);
    assert_eq!(live_of(&s, VIOLAZIONE).await, live);

    // A good edit keeps its IO words in the store.
    let good = edited(&live, |v| {
        v["io_subject"] = json!("Richiesta {{number}}: termine superato");
        v["io_markdown"] = live["io_markdown"].clone();
    });
    let (status, v) = s.post(&format!("{VIOLAZIONE}/versions"), good).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (_, t) = s.get(VIOLAZIONE).await;
    assert_eq!(
        t["proposed"][0]["io_subject"], "Richiesta {{number}}: termine superato",
        "{t}"
    );
    assert_eq!(t["proposed"][0]["io_markdown"], live["io_markdown"], "{t}");
    // An edit without IO parts (a client from before them) keeps the live IO words.
    let (status, v) = s
        .post(
            &format!("{VIOLAZIONE}/versions"),
            edited(&live, |v| {
                v["subject"] = json!("Richiesta {{number}}: in ritardo")
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["io_subject"], live["io_subject"], "{v}");
    // One IO part alone is refused.
    let (status, p) = s
        .post(
            &format!("{VIOLAZIONE}/validate"),
            edited(&live, |v| {
                v["io_subject"] = json!("Richiesta {{number}}: in ritardo")
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["ok"], false, "{p}");
    assert_eq!(p["errors"][0]["part"], "io_markdown", "{p}");
}

async fn publish_reaches_the_next_message_and_queued_ones_keep_their_words(a: &Admin) {
    let out = a.dir.join("out");
    // A message rendered and kept before the edit, that could not go out yet (the folder is
    // blocked by a file, as a full disk or a down server would).
    std::fs::write(&out, b"not a folder").expect("block");
    a.ticket("2026/000001").await;
    let d = a.dispatcher(&out);
    a.engine.cycle(a.now()).await.expect("engine");
    // Breached: five working days later, plus one.
    let late = ts("2026-03-10T12:00:00+01:00");
    a.engine.cycle(late).await.expect("engine");
    d.drain(&fixed_clock(late), 100).await.expect("drain");
    assert_eq!(
        a.count("SELECT COUNT(*) FROM outbox WHERE kind = 'violazione' AND recipient = 'citizen' AND rendered IS NOT NULL AND state <> 'delivered'")
            .await,
        1,
        "the breach notice is rendered and waits for a retry"
    );

    // The admin changes the breach notice's subject and publishes it.
    let s = a.login("anna").await;
    let live = live_of(&s, VIOLAZIONE).await;
    let body = edited(&live, |v| {
        v["subject"] = json!("Ci scusiamo: la richiesta {{number}} è in ritardo — {{comune}}");
        v["note"] = json!("oggetto più chiaro");
    });
    let (status, preview) = s.post(&format!("{VIOLAZIONE}/preview"), body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert!(
        preview["subject"]
            .as_str()
            .unwrap_or("")
            .starts_with("Ci scusiamo: la richiesta 2026/")
    );
    assert!(
        preview["sms"]["parts"].as_u64().is_some_and(|p| p <= 2),
        "{preview}"
    );
    let (status, v) = s.post(&format!("{VIOLAZIONE}/versions"), body).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (status, v) = s
        .post(&format!("{VIOLAZIONE}/versions/1/publish"), json!({}))
        .await;
    assert_eq!(
        (status, v["state"].as_str()),
        (StatusCode::OK, Some("live")),
        "{v}"
    );
    assert_eq!(live_of(&s, VIOLAZIONE).await["version"], 1);

    // A second ticket breaches after the publish.
    a.ticket("2026/000002").await;
    a.engine.cycle(late).await.expect("engine");
    std::fs::remove_file(&out).expect("unblock");
    let later = late.plus(3600);
    d.drain(&fixed_clock(later), 100).await.expect("drain");
    let subjects = subjects(&out, "violazione");
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    let old = subjects
        .iter()
        .filter(|s| s.contains("tempi superati"))
        .count();
    let new = subjects.iter().filter(|s| s.contains("in ritardo")).count();
    assert_eq!((old, new), (1, 1), "{subjects:?}");
    let versions: Vec<String> = sqlx::query(
        "SELECT rendered FROM outbox WHERE kind = 'violazione' AND recipient = 'citizen' ORDER BY id",
    )
    .fetch_all(a.store.pool())
    .await
    .expect("rows")
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect();
    assert!(
        versions[0].contains("\"version\":0") && versions[1].contains("\"version\":1"),
        "{versions:?}"
    );
}

async fn four_eyes_rollback_and_history(a: &Admin) {
    let editor = a.login("elena").await;
    let anna = a.login("anna").await;
    let bruno = a.login("bruno").await;
    let (_, me) = anna.get("/api/v1/admin/me").await;
    assert_eq!(me["four_eyes"], true);
    let live = live_of(&anna, VIOLAZIONE).await;
    let propose = |who: &'static str, subject: &'static str| {
        let live = live.clone();
        let s = match who {
            "elena" => &editor,
            "anna" => &anna,
            _ => &bruno,
        };
        async move {
            let (status, v) = s
                .post(
                    &format!("{VIOLAZIONE}/versions"),
                    edited(&live, |v| v["subject"] = json!(subject)),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{v}");
            v["version"].as_i64().expect("version")
        }
    };
    let v1 = propose("elena", "Versione uno {{number}}").await;
    // An editor cannot publish under four eyes; nor can an admin publish their own.
    assert_eq!(
        editor
            .post(&format!("{VIOLAZIONE}/versions/{v1}/publish"), json!({}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let v2 = propose("anna", "Versione due {{number}}").await;
    let (status, p) = anna
        .post(&format!("{VIOLAZIONE}/versions/{v2}/publish"), json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
    assert!(
        p["detail"].as_str().unwrap_or("").contains("quattro occhi"),
        "{p}"
    );
    // Another admin publishes each.
    assert_eq!(
        bruno
            .post(&format!("{VIOLAZIONE}/versions/{v1}/publish"), json!({}))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        bruno
            .post(&format!("{VIOLAZIONE}/versions/{v2}/publish"), json!({}))
            .await
            .0,
        StatusCode::OK
    );
    // Publishing twice is not possible: it is no longer a proposal.
    assert_eq!(
        bruno
            .post(&format!("{VIOLAZIONE}/versions/{v2}/publish"), json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let render = || a.live_breach_notice();
    assert_eq!(
        (render().subject.as_str(), render().version),
        ("Versione due 2026/000777", v2)
    );
    // Roll back to version 1: a new version with its words, live at once.
    let (status, v3) = anna
        .post(&format!("{VIOLAZIONE}/rollback"), json!({"version": v1}))
        .await;
    assert_eq!(
        (status, v3["state"].as_str()),
        (StatusCode::OK, Some("live")),
        "{v3}"
    );
    assert_eq!(render().subject, "Versione uno 2026/000777");
    // And to the bundled default (version 0).
    let (status, v4) = anna
        .post(&format!("{VIOLAZIONE}/rollback"), json!({"version": 0}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v4}");
    assert!(
        render().subject.contains("tempi superati"),
        "{}",
        render().subject
    );
    // Editors cannot roll back.
    assert_eq!(
        editor
            .post(&format!("{VIOLAZIONE}/rollback"), json!({"version": v1}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // History: newest first, who and when, a diff of what changed.
    let (status, h) = anna.get(&format!("{VIOLAZIONE}/history")).await;
    assert_eq!(status, StatusCode::OK);
    let h = h.as_array().cloned().unwrap_or_default();
    let states: Vec<(i64, String)> = h
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap_or(-1),
                v["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            (4, "live".to_owned()),
            (3, "retired".to_owned()),
            (2, "retired".to_owned()),
            (1, "retired".to_owned()),
            (0, "retired".to_owned())
        ]
    );
    let d2 = h[2]["diff"].as_str().unwrap_or("");
    assert!(
        d2.contains("-Versione uno {{number}}") && d2.contains("+Versione due {{number}}"),
        "{d2}"
    );
    assert_eq!(h[2]["published_by"], "bruno");
    assert_eq!(h[1]["author"], "anna");
}

async fn test_send_preview_with_a_ticket_tokens_and_at_risk(a: &Admin) {
    a.ticket("2026/000050").await;
    a.engine
        .cycle(ts("2026-03-10T12:00:00+01:00"))
        .await
        .expect("engine");
    let s = a.login("elena").await;
    let live = live_of(&s, VIOLAZIONE).await;
    // Preview with the real ticket: its own subject and number.
    let mut body = edited(&live, |_| {});
    body["ticket"] = json!("2026/000050");
    let (status, p) = s.post(&format!("{VIOLAZIONE}/preview"), body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert!(
        p["text"].as_str().unwrap_or("").contains("Rimborso TARI"),
        "{p}"
    );
    assert!(
        p["subject"].as_str().unwrap_or("").contains("2026/000050"),
        "{p}"
    );
    body["ticket"] = json!("2026/999999");
    assert_eq!(
        s.post(&format!("{VIOLAZIONE}/preview"), body).await.0,
        StatusCode::NOT_FOUND
    );
    // A test send is queued already rendered and goes out through the dispatcher.
    let (status, r) = s
        .post(
            &format!("{VIOLAZIONE}/test-send"),
            edited(&live, |v| {
                v["channel"] = json!("email");
                v["to"] = json!("prove@comune.example.it");
            }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{r}");
    let (status, r2) = s
        .post(
            &format!("{VIOLAZIONE}/test-send"),
            edited(&live, |v| {
                v["channel"] = json!("sms");
                v["to"] = json!("347 123 4567");
            }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{r2}");
    let (status, bad) = s
        .post(
            &format!("{VIOLAZIONE}/test-send"),
            edited(&live, |v| {
                v["channel"] = json!("email");
                v["to"] = json!("non-un-indirizzo");
            }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    let out = a.dir.join("test-out");
    let later = ts("2026-03-10T12:00:00+01:00");
    a.dispatcher(&out)
        .drain(&fixed_clock(later), 100)
        .await
        .expect("drain");
    let files: Vec<String> = std::fs::read_dir(&out)
        .expect("out")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-prova-"))
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    let eml = files.iter().find(|n| n.ends_with(".eml")).expect("eml");
    let text = std::fs::read_to_string(out.join(eml)).expect("read");
    assert!(text.contains("Subject: [PROVA]"), "{text}");
    let sms = files.iter().find(|n| n.ends_with(".json")).expect("sms");
    let sms: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(sms)).expect("read")).expect("json");
    assert_eq!(sms["to"], "+393471234567");
    assert_eq!(sms["encoding"], "gsm-7");

    // Tickets at risk: the breached one is listed with its deadline.
    let (status, list) = s.get("/api/v1/admin/tickets/at-risk").await;
    assert_eq!(status, StatusCode::OK);
    let row = list
        .as_array()
        .and_then(|l| l.iter().find(|t| t["number"] == "2026/000050"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(row["state"], "breached", "{list}");
    assert!(
        row["due_at"]
            .as_str()
            .is_some_and(|d| d.starts_with("2026-03-09")),
        "{row}"
    );

    // A bearer token works without a session or CSRF; a disabled user's token stops.
    let user = a
        .store
        .admin()
        .admin_user("vito")
        .await
        .expect("user")
        .expect("vito");
    let secret = messo::http::admin::new_token_secret().expect("secret");
    let id = a
        .store
        .admin()
        .add_admin_token(
            &user,
            "script",
            &hash_secret(&secret).expect("hash"),
            a.now(),
        )
        .await
        .expect("token");
    let bearer = |token: String| {
        let base = a.base.clone();
        async move {
            reqwest::Client::new()
                .get(format!("{base}/api/v1/admin/templates"))
                .bearer_auth(token)
                .send()
                .await
                .expect("get")
                .status()
        }
    };
    assert_eq!(bearer(format!("messo_{id}_{secret}")).await, StatusCode::OK);
    assert_eq!(
        bearer(format!("messo_{id}_{secret}x")).await,
        StatusCode::UNAUTHORIZED
    );
    a.store
        .admin()
        .disable_admin_user("vito", "test", a.now())
        .await
        .expect("disable");
    assert_eq!(
        bearer(format!("messo_{id}_{secret}")).await,
        StatusCode::UNAUTHORIZED
    );
}

/// An editor turns off a ticket's status links with a reason; a viewer may not; the revocation
/// is audited and stored on the ticket.
async fn status_links_are_revoked_by_an_editor(a: &Admin) {
    a.ticket("2026/000501").await;
    let path = "/api/v1/admin/tickets/2026%2F000501/revoke-links";
    let vito = a.login("vito").await;
    let (status, _) = vito.post(path, json!({"reason": "prova"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a viewer may not revoke");
    let elena = a.login("elena").await;
    let (status, v) = elena.post(path, json!({"reason": "  "})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (status, v) = elena.post(path, json!({"motivo": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, v) = elena
        .post(
            "/api/v1/admin/tickets/2026%2F999999/revoke-links",
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(
        a.count("SELECT COUNT(*) FROM tickets WHERE links_revoked_at IS NOT NULL")
            .await,
        0,
        "refusals change nothing"
    );
    let (status, v) = elena
        .post(path, json!({"reason": "il cittadino ha inoltrato il link"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["number"], "2026/000501");
    let at = Timestamp::parse_rfc3339(v["links_revoked_at"].as_str().expect("instant"))
        .expect("rfc3339");
    assert_eq!(at, a.now());
    assert_eq!(
        a.count("SELECT COUNT(*) FROM tickets WHERE links_revoked_at IS NOT NULL")
            .await,
        1
    );
    let audit = a.store.admin().audit_log(5).await.expect("audit");
    let entry = audit
        .iter()
        .find(|e| e.action == "revoke_links")
        .expect("audited");
    assert_eq!(entry.actor, "elena");
    assert_eq!(entry.object, "ticket/2026/000501");
    assert_eq!(entry.detail["reason"], "il cittadino ha inoltrato il link");
}

// ---------------------------------------------------------------------------------------------
// Issue 15, points 1–4.

/// Point 1: a recursive inline partial (and other recursion, nesting and size tricks) is
/// refused with 422 on every route that compiles or renders an editor's words, and the daemon
/// keeps answering. Before the fix the first preview overflowed a worker's stack and aborted
/// the whole process.
async fn recursive_templates_are_refused_on_every_route(a: &Admin) {
    let anna = a.login("anna").await;
    let live = live_of(&anna, VIOLAZIONE).await;
    let bombs = [
        "{{#*inline \"x\"}}a{{> x}}{{/inline}}{{> x}}".to_owned(),
        format!(
            "{{{{#if number}}}}{}{{{{/if}}}}",
            "{{else if number}}".repeat(2000)
        ),
        format!("{}x{}", "{{#if number}}".repeat(400), "{{/if}}".repeat(400)),
        "{{#> layout_html titolo=\"x\"}}{{> @partial-block}}{{/layout_html}}".to_owned(),
        "{{> firma_it}}".repeat(40),
        "{{number}}".repeat(4000),
    ];
    for (i, bomb) in bombs.iter().enumerate() {
        for part in [
            ["text", "html", "sms"][i % 3],
            ["html", "sms", "text"][i % 3],
        ] {
            let body = edited(&live, |v| v[part] = json!(bomb));
            for route in ["preview", "versions", "test-send"] {
                let mut body = body.clone();
                body["to"] = json!("prove@comune.example.it");
                let (status, p) = anna.post(&format!("{VIOLAZIONE}/{route}"), body).await;
                assert_eq!(
                    status,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "{route} {part}: {p}"
                );
                assert_eq!(p["errors"][0]["part"], part, "{p}");
            }
            let (status, v) = anna.post(&format!("{VIOLAZIONE}/validate"), body).await;
            assert_eq!((status, v["ok"].as_bool()), (StatusCode::OK, Some(false)));
        }
    }
    // Still up, nothing stored, nothing queued, the default still live.
    assert_eq!(anna.get("/api/v1/admin/me").await.0, StatusCode::OK);
    assert_eq!(a.count("SELECT COUNT(*) FROM template_versions").await, 0);
    assert_eq!(a.count("SELECT COUNT(*) FROM outbox").await, 0);
    assert_eq!(live_of(&anna, VIOLAZIONE).await["version"], 0);
}

/// Points 2 and 3: a test send passes the gate of a save. `<script>` (and every other way to
/// put markup or a remote image in the HTML) is a 422 naming the reason, and nothing reaches
/// the outbox nor the dispatcher's files. Before the fix the first one was a 202 and the mail
/// went out.
async fn test_send_passes_the_gate_of_a_save(a: &Admin) {
    let elena = a.login("elena").await;
    let live = live_of(&elena, VIOLAZIONE).await;
    let html = live["html"].as_str().unwrap_or("").to_owned();
    let cases = [
        ("<script>alert(1)</script>", "<script>"),
        ("<scr{{!}}ipt>alert(1)</script>", "<script>"),
        ("<p>{{~{subject}~}}</p>", "senza escape"),
        ("<p>{{ &subject}}</p>", "senza escape"),
        ("<a href=\"&#106;avascript:alert(1)\">x</a>", "javascript"),
        ("<a href=\"java{{!}}script:alert(1)\">x</a>", "javascript"),
        ("<img/src=x/onerror=alert(1)>", "src="),
        ("<img src=\"https://t.example/p.gif\" alt=\"\">", "remota"),
        (
            "<meta http-equiv=\"refresh\" content=\"0;url=https://x.example\">",
            "http-equiv",
        ),
    ];
    for (bad, needle) in cases {
        let body = edited(&live, |v| {
            v["html"] =
                json!(html.replace("{{/layout_html}}", &format!("{bad}{{{{/layout_html}}}}")));
            v["channel"] = json!("email");
            v["to"] = json!("prove@comune.example.it");
        });
        let (status, p) = elena
            .post(&format!("{VIOLAZIONE}/test-send"), body.clone())
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {p}");
        assert_eq!(p["type"], "urn:messo:problem:template", "{p}");
        assert!(
            p["errors"].as_array().is_some_and(|e| e.iter().any(
                |e| e["part"] == "html" && e["message"].as_str().unwrap_or("").contains(needle)
            )),
            "{bad}: {p}"
        );
        // The save of the same words is refused the same way.
        let (status, _) = elena.post(&format!("{VIOLAZIONE}/versions"), body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    assert_eq!(a.count("SELECT COUNT(*) FROM outbox").await, 0);
    let out = a.dir.join("gate-out");
    let later = ts("2026-03-10T12:00:00+01:00");
    a.dispatcher(&out)
        .drain(&fixed_clock(later), 100)
        .await
        .expect("drain");
    let sent = std::fs::read_dir(&out).map_or(0, |d| d.count());
    assert_eq!(sent, 0, "nothing went out");
    // The words as they are still go out.
    let (status, r) = elena
        .post(
            &format!("{VIOLAZIONE}/test-send"),
            edited(&live, |v| {
                v["channel"] = json!("email");
                v["to"] = json!("prove@comune.example.it");
            }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{r}");
}

/// Point 1: at start, a stored live version that fails the gate (written by an older release,
/// or straight into the database) is not installed; the bundled default stays live.
async fn a_stored_version_that_fails_the_gate_is_not_installed_at_start(a: &Admin) {
    let key = messo::templates::Key::new(
        messo::templates::Audience::Cittadino,
        "violazione",
        messo::domain::Lang::It,
    );
    let mut content = a.templates.catalog().defaults[&key].content.clone();
    content.html = Some(
        "{{#> layout_html titolo=\"x\"}}<p>{{{subject}}}</p><script>alert(1)</script>{{/layout_html}}"
            .to_owned(),
    );
    let v = a
        .store
        .templates()
        .add_template_version(
            &key,
            &content,
            "scritta da una versione precedente",
            "anna",
            "live",
            None,
            a.now(),
            &json!({}),
        )
        .await
        .expect("stored");
    // The daemon starts: its templates are loaded from the store.
    let templates = Arc::new(Templates::new(
        Catalog::bundled().expect("catalog"),
        Settings::from_config(&a.config),
    ));
    let state = AdminState::new(
        a.store.clone(),
        Arc::clone(&templates),
        a.clock.clock(),
        a.config.admin.clone(),
        a.config.calendar.time_zone,
        &a.config.http.public_base_url,
        Arc::new(tokio::sync::Notify::new()),
    );
    state.reload().await.expect("reload");
    assert_eq!(
        templates.live(&key).map(|l| l.0),
        Some(0),
        "v{} refused",
        v.version
    );
    let sample = templates.catalog().defaults[&key].samples[0].clone();
    let m = breach_notice(&templates, &sample);
    assert_eq!(m.version, 0);
    assert!(!m.html.unwrap_or_default().contains("<script"));
}

async fn propose_subject(s: &Session, live: &Value, subject: &str) -> i64 {
    let body = edited(live, |v| v["subject"] = json!(subject));
    let (status, v) = s.post(&format!("{VIOLAZIONE}/versions"), body).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v["version"].as_i64().expect("version")
}

async fn rollback_to(s: &Session, version: i64) -> (StatusCode, Value) {
    s.post(
        &format!("{VIOLAZIONE}/rollback"),
        json!({"version": version}),
    )
    .await
}

/// Point 4, with four eyes: a rollback restores only words that were live before, and only
/// words two people approved. Before the fix anna rolled back to her own proposal and it went
/// live with her as publisher.
async fn rollback_cannot_bypass_four_eyes(a: &Admin) {
    let anna = a.login("anna").await;
    let bruno = a.login("bruno").await;
    let elena = a.login("elena").await;
    let live = live_of(&anna, VIOLAZIONE).await;
    let propose = |s, subject| propose_subject(s, &live, subject);
    let rollback = rollback_to;
    // Her own proposal, and someone else's: never live, so never by rollback.
    let own = propose(&anna, "Mia versione {{number}}").await;
    let other = propose(&elena, "Versione di Elena {{number}}").await;
    for v in [own, other] {
        let (status, p) = rollback(&anna, v).await;
        assert_eq!(status, StatusCode::CONFLICT, "{p}");
        assert!(
            p["detail"]
                .as_str()
                .unwrap_or("")
                .contains("mai stata in uso"),
            "{p}"
        );
    }
    assert_eq!(live_of(&anna, VIOLAZIONE).await["version"], 0);
    assert_eq!(
        a.count("SELECT COUNT(*) FROM template_versions WHERE state = 'live'")
            .await,
        0,
        "nothing went live"
    );
    // Published by another admin: reviewed by two people, so a rollback may restore it.
    let (status, _) = bruno
        .post(&format!("{VIOLAZIONE}/versions/{other}/publish"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = rollback(&anna, 0).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["restores"], 0);
    let (status, v) = rollback(&anna, other).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["restores"], other);
    let again = v["version"].as_i64().expect("version");
    // A rollback of that rollback is judged on the words it restores.
    assert_eq!(rollback(&anna, 0).await.0, StatusCode::OK);
    let (status, v) = rollback(&anna, again).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["restores"], other);
    // Words published by their own author (when four eyes was off) need a second person.
    let key = messo::templates::Key::new(
        messo::templates::Audience::Cittadino,
        "violazione",
        messo::domain::Lang::It,
    );
    let mut content = a.templates.catalog().defaults[&key].content.clone();
    content.subject = "Pubblicata da sola {{number}}".to_owned();
    let solo = a
        .store
        .templates()
        .add_template_version(
            &key,
            &content,
            "",
            "anna",
            "live",
            None,
            a.now(),
            &json!({}),
        )
        .await
        .expect("stored")
        .version;
    assert_eq!(rollback(&bruno, 0).await.0, StatusCode::OK);
    for s in [&anna, &bruno] {
        let (status, p) = rollback(s, solo).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
        assert!(
            p["detail"].as_str().unwrap_or("").contains("quattro occhi"),
            "{p}"
        );
    }
    // Editors never roll back.
    assert_eq!(rollback(&elena, 0).await.0, StatusCode::FORBIDDEN);
    // The audit log tells rollbacks from publications.
    assert_eq!(
        a.count("SELECT COUNT(*) FROM audit_log WHERE action = 'template.rollback'")
            .await,
        5
    );
}

/// Point 4, without four eyes: still only words that were live before.
async fn rollback_restores_only_what_was_live(a: &Admin) {
    let anna = a.login("anna").await;
    let live = live_of(&anna, VIOLAZIONE).await;
    let (status, v) = anna
        .post(
            &format!("{VIOLAZIONE}/versions"),
            edited(&live, |v| v["subject"] = json!("Proposta {{number}}")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let n = v["version"].as_i64().expect("version");
    let (status, p) = anna
        .post(&format!("{VIOLAZIONE}/rollback"), json!({"version": n}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    assert_eq!(live_of(&anna, VIOLAZIONE).await["version"], 0);
    // Published, it may be restored later by anyone with the role.
    let (status, _) = anna
        .post(&format!("{VIOLAZIONE}/versions/{n}/publish"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = anna
        .post(&format!("{VIOLAZIONE}/rollback"), json!({"version": 0}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = anna
        .post(&format!("{VIOLAZIONE}/rollback"), json!({"version": n}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

/// The telephone answering's prompts are templates like any other: the console lists them,
/// previews show the words that will be spoken, the gate refuses what a voice cannot say, and
/// four eyes apply before the next call hears an edit.
async fn telephone_prompts_go_through_the_same_gate_preview_and_four_eyes(a: &Admin) {
    const MENU: &str = "/api/v1/admin/templates/telefono/menu/it";
    let elena = a.login("elena").await;
    let bruno = a.login("bruno").await;
    let live = live_of(&elena, MENU).await;
    assert!(
        live["text"].as_str().unwrap_or("").contains("prema 1"),
        "{live}"
    );
    let (status, p) = elena
        .post(
            &format!("{MENU}/versions"),
            edited(&live, |v| {
                v["text"] = json!("Per i dettagli visiti https://comune.example.it e prema 1.")
            }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("indirizzo web"),
        "{p}"
    );
    let words = "Per sentire di nuovo lo stato della richiesta, prema 1. Per lasciare un messaggio, prema 2. Per essere richiamati, prema 3.";
    let edit = edited(&live, |v| v["text"] = json!(words));
    let (status, preview) = elena.post(&format!("{MENU}/preview"), edit.clone()).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert!(
        preview.to_string().contains("Per sentire di nuovo"),
        "{preview}"
    );
    let (status, v) = elena.post(&format!("{MENU}/versions"), edit).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let version = v["version"].as_i64().expect("version");
    let spoken = || {
        a.templates
            .render_spoken(
                "menu",
                messo::domain::Lang::It,
                &json!({"trasferimento": false}),
            )
            .unwrap_or_default()
    };
    assert!(
        spoken().starts_with("Per riascoltare"),
        "not live before a second person approves"
    );
    let (status, p) = bruno
        .post(&format!("{MENU}/versions/{version}/publish"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(spoken(), words);
}

on_both!(start;
    sessions_csrf_and_roles(""),
    broken_edits_are_refused_and_the_live_version_stays(""),
    io_parts_are_previewed_stored_and_refused_when_too_short(""),
    publish_reaches_the_next_message_and_queued_ones_keep_their_words(""),
    four_eyes_rollback_and_history("four_eyes = true"),
    test_send_preview_with_a_ticket_tokens_and_at_risk(""),
    status_links_are_revoked_by_an_editor(""),
    recursive_templates_are_refused_on_every_route(""),
    test_send_passes_the_gate_of_a_save(""),
    a_stored_version_that_fails_the_gate_is_not_installed_at_start(""),
    rollback_cannot_bypass_four_eyes("four_eyes = true"),
    rollback_restores_only_what_was_live(""),
    telephone_prompts_go_through_the_same_gate_preview_and_four_eyes("four_eyes = true"),
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_attempts_are_limited_per_user_and_address() {
    let a = start(Backend::Sqlite, "login_attempts_per_minute = 3").await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = client
            .post(format!("{}/api/v1/admin/login", a.base))
            .json(&json!({"username": "anna", "password": "indovino-indovino"}))
            .send()
            .await
            .expect("login");
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers().contains_key("retry-after"));
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, vec![401, 401, 401, 429, 429]);
    // Another user name from the same address is not locked out by them.
    let r = client
        .post(format!("{}/api/v1/admin/login", a.base))
        .json(&json!({"username": "bruno", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), StatusCode::OK);
    a.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_with_a_strict_policy() {
    let a = start(Backend::Sqlite, "").await;
    let r = reqwest::get(format!("{}/admin", a.base))
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let html = r.text().await.expect("text");
    assert!(
        html.contains("/admin/assets/app.js"),
        "the page loads its script from us"
    );
    assert!(!html.contains("<script>"), "no inline script");
    let js = reqwest::get(format!("{}/admin/assets/app.js", a.base))
        .await
        .expect("get");
    assert_eq!(js.status(), StatusCode::OK);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/javascript")
    );
    assert_eq!(
        reqwest::get(format!("{}/admin/assets/../config", a.base))
            .await
            .expect("get")
            .status(),
        StatusCode::NOT_FOUND
    );
    a.finish().await;
}
