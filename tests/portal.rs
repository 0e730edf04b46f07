//! The citizen's status page and the portal feed over real HTTP, on SQLite and on the machine's
//! real PostgreSQL: the link every citizen message carries opens that ticket's page; the feed
//! says the right thing for a ticket in each SLA state (running, suspended, overdue, closed on
//! time, closed late, received out of hours) and nothing internal; forged, foreign, expired and
//! revoked links show nothing; the portal's token sees only the named citizen's tickets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use messo::config::{ApiToken, BUILTIN_TOML, Config, Scope};
use messo::daemon::{Engine, Metrics};
use messo::delivery::dispatch::Dispatcher;
use messo::http::TokenBook;
use messo::http::portal::{PortalState, link_keys, link_maker, router};
use messo::portal::{LinkKeys, LinkMaker};
use messo::store::Store;
use messo::templates::{Catalog, Settings, Templates};
use messo::ticket::{NewEvent, NewTicket, Source};
use messo::time::Timestamp;
use serde_json::{Value, json};
use sqlx::Row;

static COUNTER: AtomicU32 = AtomicU32::new(0);

const KEY: &str = "a-test-key-for-status-links-0123456789";
const CF: &str = "RSSMRA80A01H501U";
const OTHER_CF: &str = "VRDGPP75B12F205F";
/// Wednesday 4 March 2026, noon in Rome: the clock of most checks.
const NOW: &str = "2026-03-04T12:00:00+01:00";

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).expect("timestamp")
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn pg_base() -> String {
    std::env::var("MESSO_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn config(extra: &[(&str, &str)]) -> Config {
    let mut env = vec![
        ("MESSO_PORTAL__LINK_KEY".to_owned(), KEY.to_owned()),
        (
            "MESSO_PORTAL__BASE_URL".to_owned(),
            "https://urp.comune.example.it".to_owned(),
        ),
    ];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Config::from_toml(BUILTIN_TOML, "test", env).expect("config")
}

async fn sqlite_store() -> Store {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("portal"));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::connect(&format!("sqlite://{}/messo.db", dir.display()))
        .await
        .expect("sqlite");
    store.migrate().await.expect("migrate");
    store
}

async fn postgres_store() -> (Store, String) {
    let schema = unique("messo_portal");
    let admin = Store::connect(&pg_base()).await.expect(
        "PostgreSQL must run on 127.0.0.1:5432 (start it with pg_ctlcluster; .ci/run does)",
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(admin.pool())
        .await
        .expect("create schema");
    let sep = if pg_base().contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}options=-c%20search_path%3D{schema}", pg_base());
    let store = Store::connect(&url).await.expect("connect postgres");
    store.migrate().await.expect("migrate");
    (store, schema)
}

async fn drop_schema(schema: &str) {
    if let Ok(admin) = Store::connect(&pg_base()).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(admin.pool())
            .await;
    }
}

struct Portal {
    base: String,
    store: Store,
    config: Config,
    now: Arc<AtomicI64>,
    maker: LinkMaker,
    portal_token: String,
    read_token: String,
    http: reqwest::Client,
    out: PathBuf,
}

async fn start(store: Store, extra: &[(&str, &str)]) -> Portal {
    messo::install_crypto();
    let config = config(extra);
    store
        .register_config(&config, ts("2026-01-01T00:00:00Z"))
        .await
        .expect("register");
    let now = Arc::new(AtomicI64::new(ts(NOW).0));
    let n = Arc::clone(&now);
    let clock: messo::http::Clock = Arc::new(move || Timestamp(n.load(Ordering::SeqCst)));
    let (portal_token, portal_hash) = messo::http::new_token().expect("token");
    let (read_token, read_hash) = messo::http::new_token().expect("token");
    let tokens = Arc::new(TokenBook::new(vec![
        ApiToken {
            name: "portale".into(),
            hash: portal_hash,
            scopes: vec![Scope::Portal],
        },
        ApiToken {
            name: "crm".into(),
            hash: read_hash,
            scopes: vec![Scope::Read, Scope::Write],
        },
    ]));
    let keys = link_keys(&config, &store, ts(NOW)).await.expect("keys");
    let state = PortalState::new(
        store.clone(),
        tokens,
        keys.clone(),
        &config,
        clock,
        Arc::new(Metrics::default()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("portal_out"));
    Portal {
        base: format!("http://{addr}"),
        maker: link_maker(&config, keys),
        store,
        config,
        now,
        portal_token,
        read_token,
        http: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client"),
        out,
    }
}

/// The tickets of the scenario, each in one SLA state at `NOW`.
async fn seed(p: &Portal) {
    let citizen = json!({"email": "mario.rossi@example.it", "mobile": "+393471234567",
                         "fiscal_code": CF, "language": "it"});
    let mk = |number: &str, priority: &str, received: &str, citizen: &Value| {
        NewTicket::from_json(&json!({
            "number": number, "office": "anagrafe", "priority": priority,
            "subject": format!("Certificato {number}"), "received_at": received,
            "citizen": citizen,
        }))
        .expect("ticket")
    };
    let event = |v: Value| NewEvent::from_json(&v).expect("event");
    let s = &p.store;
    let mon = "2026-03-02T10:15:00+01:00";
    for (number, priority, received, citizen) in [
        ("2026/000101", "normale", mon, citizen.clone()),
        ("2026/000102", "normale", mon, citizen.clone()),
        ("2026/000103", "urgente", mon, citizen.clone()),
        ("2026/000104", "normale", mon, citizen.clone()),
        ("2026/000105", "urgente", mon, citizen.clone()),
        (
            "2026/000106",
            "normale",
            "2026-02-28T21:10:00+01:00",
            json!({"email": "jane@example.org", "fiscal_code": CF, "language": "en"}),
        ),
        (
            "2026/000107",
            "normale",
            mon,
            json!({"email": "giuseppe.verdi@example.it", "fiscal_code": OTHER_CF}),
        ),
    ] {
        s.create_ticket(
            &mk(number, priority, received, &citizen),
            Source::Api,
            ts(received),
        )
        .await
        .expect("create");
    }
    let append = |number: &'static str, v: Value| {
        let e = event(v);
        async move {
            s.append_event(number, &e, None, Source::Api, e.at)
                .await
                .expect("append");
        }
    };
    append(
        "2026/000102",
        json!({"kind": "integration_requested", "at": "2026-03-03T11:00:00+01:00",
               "missing": "Copia del documento d'identità"}),
    )
    .await;
    append(
        "2026/000104",
        json!({"kind": "step_changed", "at": "2026-03-03T09:30:00+01:00",
               "step": "assegnata", "text": "La pratica è stata assegnata all'ufficio anagrafe."}),
    )
    .await;
    append(
        "2026/000104",
        json!({"kind": "note", "at": "2026-03-03T10:00:00+01:00",
               "text": "NOTA INTERNA: sollecitare il collega Bianchi"}),
    )
    .await;
    append(
        "2026/000104",
        json!({"kind": "closed", "at": "2026-03-03T15:00:00+01:00",
               "text": "Il certificato è pronto allo sportello."}),
    )
    .await;
    append(
        "2026/000105",
        json!({"kind": "closed", "at": "2026-03-04T11:00:00+01:00"}),
    )
    .await;
    append(
        "2026/000106",
        json!({"kind": "note", "at": "2026-03-02T10:00:00+01:00",
               "text": "NOTA INTERNA: cittadino già noto"}),
    )
    .await;
}

impl Portal {
    /// Runs the engine and delivers everything owed as files, with status links.
    async fn deliver(&self) {
        let now = Timestamp(self.now.load(Ordering::SeqCst));
        Engine::new(self.store.clone(), self.config.notify.clone())
            .cycle(now)
            .await
            .expect("engine");
        let templates = Arc::new(Templates::new(
            Catalog::bundled().expect("catalog"),
            Settings::from_config(&self.config),
        ));
        let d = Arc::new(
            Dispatcher::files(
                self.store.clone(),
                &self.out,
                "urp@comune.example.it",
                &self.config.comune_name,
            )
            .expect("dispatcher")
            .with_templates(templates)
            .with_status_links(Arc::new(self.maker.clone())),
        );
        let c: messo::http::Clock = Arc::new(move || now);
        d.drain(&c, 1000).await.expect("drain");
    }

    fn set_now(&self, t: &str) {
        self.now.store(ts(t).0, Ordering::SeqCst);
    }

    async fn id(&self, number: &str) -> i64 {
        self.store
            .ticket(number)
            .await
            .expect("read")
            .expect("ticket")
            .id
    }

    /// A fresh link to `number`, issued at the test clock.
    async fn link(&self, number: &str) -> String {
        let now = Timestamp(self.now.load(Ordering::SeqCst));
        self.maker.url(self.id(number).await, now)
    }

    fn token_of(url: &str) -> &str {
        url.rsplit('/').next().expect("token")
    }

    /// GET a status link as a citizen's phone would (the link's address is rewritten to ours).
    async fn open(&self, url: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let path = url
            .strip_prefix("https://urp.comune.example.it")
            .expect("our base address");
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, headers, r.text().await.expect("body"))
    }

    async fn feed(&self, number: &str, bearer: &str, query: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!(
                "{}/api/v1/citizen/tickets/{}{query}",
                self.base,
                number.replace('/', "%2F")
            ))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn portal_feed(&self, number: &str, cf: &str) -> (u16, Value) {
        self.feed(number, &self.portal_token.clone(), &format!("?cf={cf}"))
            .await
    }

    /// The words of every message sent to the citizen about `number`, as kept in the outbox.
    async fn sent_texts(&self, number: &str) -> Vec<(String, String, String)> {
        let id = self.id(number).await;
        let rows = sqlx::query(
            "SELECT kind, channel, rendered FROM outbox WHERE ticket_id = $1 \
             AND recipient = 'citizen' ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.store.pool())
        .await
        .expect("outbox");
        rows.iter()
            .map(|r| {
                let rendered: Option<String> = r.get("rendered");
                let v: Value = serde_json::from_str(rendered.as_deref().unwrap_or("null"))
                    .unwrap_or(Value::Null);
                (
                    r.get::<String, _>("kind"),
                    r.get::<String, _>("channel"),
                    v["text"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

fn link_in(text: &str) -> Option<String> {
    let start = text.find("https://urp.comune.example.it/s/")?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || "-_:/.".contains(c)))
        .unwrap_or(rest.len());
    Some(rest[..end].trim_end_matches('.').to_owned())
}

// ---------------------------------------------------------------------------------------------

async fn every_message_carries_a_link_that_opens_its_ticket(p: Portal) {
    seed(&p).await;
    p.deliver().await;
    let sent = p.sent_texts("2026/000101").await;
    assert!(
        sent.iter().any(|(k, c, _)| k == "ricevuta" && c == "email"),
        "{sent:?}"
    );
    for (kind, channel, text) in &sent {
        let url = link_in(text).unwrap_or_else(|| panic!("{kind}/{channel} has no link: {text}"));
        let (status, headers, body) = p.open(&url).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("Richiesta n. 2026/000101"), "{body}");
        assert!(body.contains("In lavorazione"));
        assert!(body.contains("<html lang=\"it\">"));
        assert_eq!(headers["cache-control"], "no-store, max-age=0");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers["strict-transport-security"].to_str().is_ok());
        let csp = headers["content-security-policy"].to_str().expect("csp");
        assert!(
            csp.starts_with("default-src 'none'; style-src 'sha256-"),
            "{csp}"
        );
        assert!(!body.contains("<script"), "no script on the page");
        assert!(
            !body.contains(" src=") && !body.contains("<link"),
            "no external asset"
        );
    }
    // The SMS went out with the link too, within its budget.
    let sms: Vec<_> = sent.iter().filter(|(_, c, _)| c == "sms").collect();
    for (_, _, text) in &sms {
        assert!(link_in(text).is_some(), "{text}");
    }
    // The page lists the messages it was told about, with their channel and state.
    let (_, _, body) = p.open(&p.link("2026/000101").await).await;
    assert!(body.contains("Conferma di ricezione"), "{body}");
    assert!(body.contains("e-mail · "), "{body}");
    assert!(body.contains("esito-inviato"), "{body}");
    // The English-speaking citizen's page is in English, and offers Italian.
    let (status, _, body) = p.open(&p.link("2026/000106").await).await;
    assert_eq!(status, 200);
    assert!(body.contains("<html lang=\"en\">") && body.contains("Request no. 2026/000106"));
    assert!(body.contains("href=\"?lang=it\""));
    assert!(!body.contains("NOTA INTERNA"), "office notes stay internal");
    let (_, _, it) = p
        .open(&format!("{}?lang=it", p.link("2026/000106").await))
        .await;
    assert!(it.contains("<html lang=\"it\">") && it.contains("Richiesta n. 2026/000106"));
}

async fn the_feed_tells_each_state_in_plain_words(p: Portal) {
    seed(&p).await;
    p.deliver().await;
    let feed = |number: &'static str| {
        let p = &p;
        async move {
            let link = p.link(number).await;
            let (status, v) = p.feed(number, Portal::token_of(&link), "").await;
            assert_eq!(status, 200, "{number}: {v}");
            // The portal's token with the citizen's codice fiscale sees exactly the same.
            let (status, w) = p.portal_feed(number, CF).await;
            assert_eq!(status, 200, "{number}: {w}");
            assert_eq!(v, w, "{number}: link and portal views differ");
            v
        }
    };

    // Running: the expected closure, five working days after Monday 10:15.
    let v = feed("2026/000101").await;
    assert_eq!(v["status"]["code"], "in_lavorazione");
    assert_eq!(v["expected_closure"]["at"], "2026-03-09T10:15:00+01:00");
    assert_eq!(
        v["expected_closure"]["text"],
        "lunedì 9 marzo 2026 alle 10:15"
    );
    assert_eq!(
        v["status"]["detail"],
        "Prevediamo di concluderla entro lunedì 9 marzo 2026 alle 10:15."
    );
    assert_eq!(v["term_exceeded"], false);
    assert_eq!(v["suspension"], Value::Null);
    assert_eq!(v["office"], "anagrafe");
    assert_eq!(v["current_step"]["kind"], "received");
    let kinds: Vec<&str> = v["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["kind"].as_str().unwrap_or(""))
        .collect();
    assert!(kinds.contains(&"ricevuta"), "{kinds:?}");
    for m in v["messages"].as_array().expect("messages") {
        assert_eq!(m["state"], "inviato", "{m}");
        assert!(["email", "sms"].contains(&m["channel"].as_str().unwrap_or("")));
    }
    let text = v.to_string();
    for private in ["mario.rossi@example.it", "+393471234567", CF] {
        assert!(!text.contains(private), "{private} leaked: {text}");
    }

    // Suspended: since when, what is missing, and the working time left afterwards.
    let v = feed("2026/000102").await;
    assert_eq!(v["status"]["code"], "sospesa");
    assert_eq!(v["suspension"]["since"]["at"], "2026-03-03T11:00:00+01:00");
    assert_eq!(v["suspension"]["missing"], "Copia del documento d'identità");
    assert_eq!(
        v["status"]["detail"],
        "Sospesa: in attesa della sua integrazione dal martedì 3 marzo 2026 alle 11:00. \
         I tempi di lavorazione ripartono quando riceviamo la sua risposta."
    );
    // 40 h of target, 6 h 45 min on Monday and 2 h on Tuesday used: 31 h 15 min left.
    assert_eq!(v["suspension"]["remaining"], "3 giorni lavorativi e 7 ore");
    assert_eq!(v["expected_closure"], Value::Null);
    assert_eq!(v["due_at"], Value::Null);
    assert_eq!(v["current_step"]["kind"], "integration_requested");
    assert!(
        v["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .any(|m| m["kind"] == "richiesta_integrazione"),
        "{v}"
    );

    // Overdue: urgent, one working day from Monday 10:15, so due Tuesday 10:15.
    let v = feed("2026/000103").await;
    assert_eq!(v["status"]["code"], "in_ritardo");
    assert_eq!(v["term_exceeded"], true);
    assert_eq!(v["due_at"]["at"], "2026-03-03T10:15:00+01:00");
    assert_eq!(v["expected_closure"], Value::Null);
    assert!(
        v["status"]["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("Il termine previsto (martedì 3 marzo 2026 alle 10:15) è stato superato."),
        "{v}"
    );

    // Closed on time: the steps the citizen was told of, never the office note.
    let v = feed("2026/000104").await;
    assert_eq!(v["status"]["code"], "conclusa");
    assert_eq!(v["term_exceeded"], false);
    assert_eq!(v["closed_at"]["at"], "2026-03-03T15:00:00+01:00");
    let steps: Vec<(&str, &str)> = v["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap_or(""),
                s["at"]["at"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("received", "2026-03-02T10:15:00+01:00"),
            ("step_changed", "2026-03-03T09:30:00+01:00"),
            ("closed", "2026-03-03T15:00:00+01:00"),
        ]
    );
    assert_eq!(
        v["steps"][1]["detail"],
        "La pratica è stata assegnata all'ufficio anagrafe."
    );
    assert_eq!(
        v["steps"][2]["detail"],
        "Il certificato è pronto allo sportello."
    );
    assert!(!v.to_string().contains("NOTA INTERNA"), "{v}");
    assert!(!v.to_string().contains("Bianchi"), "{v}");

    // Closed late: completed, and the term was exceeded.
    let v = feed("2026/000105").await;
    assert_eq!(v["status"]["code"], "conclusa");
    assert_eq!(v["term_exceeded"], true);
    assert!(
        v["status"]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("oltre il termine previsto"),
        "{v}"
    );

    // Received on a Saturday night: the time counts from Monday's opening; English.
    let v = feed("2026/000106").await;
    assert_eq!(v["lang"], "en");
    assert_eq!(v["counting_from"]["at"], "2026-03-02T09:00:00+01:00");
    assert_eq!(v["counting_from"]["text"], "Monday 2 March 2026 at 09:00");
    assert_eq!(v["status"]["label"], "In progress");
    assert_eq!(v["can_reply_sms"], false);
    assert_eq!(v["can_reply_email"], true);
    assert!(
        v["steps"][0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("the time counts from Monday 2 March 2026 at 09:00"),
        "{v}"
    );
    // ?lang= overrides the citizen's language.
    let (_, v) = p.portal_feed("2026/000106", &format!("{CF}&lang=it")).await;
    assert_eq!(v["status"]["label"], "In lavorazione");

    // The clock moves: the running ticket becomes overdue on the next request, with no write.
    p.set_now("2026-03-09T10:15:00+01:00");
    let (_, v) = p.portal_feed("2026/000101", CF).await;
    assert_eq!(v["status"]["code"], "in_ritardo", "{v}");
}

async fn the_portal_sees_only_the_named_citizen(p: Portal) {
    seed(&p).await;
    let (status, v) = p.portal_feed("2026/000107", CF).await;
    assert_eq!(status, 404, "another citizen's ticket is not found: {v}");
    assert!(!v.to_string().contains("Certificato"), "{v}");
    let (status, _) = p.portal_feed("2026/000107", OTHER_CF).await;
    assert_eq!(status, 200);
    let (status, v) = p.portal_feed("2026/000101", "RSSMRA80A01H501X").await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["type"], "urn:messo:problem:invalid-fiscal-code");
    let (status, v) = p.feed("2026/000101", &p.portal_token.clone(), "").await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["type"], "urn:messo:problem:missing-citizen");
    // A token without the portal scope is refused; an unknown one too.
    let (status, _) = p
        .feed("2026/000101", &p.read_token.clone(), &format!("?cf={CF}"))
        .await;
    assert_eq!(status, 403);
    let (status, _) = p
        .feed(
            "2026/000101",
            "messo_0000000000000000",
            &format!("?cf={CF}"),
        )
        .await;
    assert_eq!(status, 401);

    // "My requests": newest first, only this citizen's, in pages.
    let list = |q: String| {
        let p = &p;
        async move {
            let r = p
                .http
                .get(format!("{}/api/v1/citizen/tickets{q}", p.base))
                .bearer_auth(&p.portal_token)
                .send()
                .await
                .expect("request");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, v) = list(format!("?cf={CF}&limit=4")).await;
    assert_eq!(status, 200, "{v}");
    let numbers = |v: &Value| -> Vec<String> {
        v["tickets"]
            .as_array()
            .expect("tickets")
            .iter()
            .map(|t| t["number"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        numbers(&v),
        ["2026/000106", "2026/000105", "2026/000104", "2026/000103"]
    );
    let next = v["next"].as_i64().expect("a next page");
    let (_, w) = list(format!("?cf={CF}&limit=4&before={next}")).await;
    assert_eq!(numbers(&w), ["2026/000102", "2026/000101"]);
    assert_eq!(w["next"], Value::Null);
    assert_eq!(v["tickets"][2]["status"]["code"], "conclusa");
    let (_, o) = list(format!("?cf={OTHER_CF}")).await;
    assert_eq!(numbers(&o), ["2026/000107"]);
    let (status, e) = list(format!("?cf={CF}&limit=1000")).await;
    assert_eq!(status, 422, "{e}");
    // A status link is not a way into the list.
    let link = p.link("2026/000101").await;
    let r = p
        .http
        .get(format!("{}/api/v1/citizen/tickets?cf={CF}", p.base))
        .bearer_auth(Portal::token_of(&link))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 401);
}

async fn forged_expired_and_revoked_links_show_nothing(p: Portal) {
    seed(&p).await;
    let good = p.link("2026/000101").await;
    let (status, _, body) = p.open(&good).await;
    assert_eq!(status, 200, "{body}");

    let refused = |body: &str| {
        assert!(!body.contains("2026/000101"), "the number leaked: {body}");
        assert!(!body.contains("Certificato"), "the subject leaked: {body}");
    };
    // One character changed.
    let token = Portal::token_of(&good).to_owned();
    let mut chars: Vec<char> = token.chars().collect();
    let last = chars.len() - 1;
    chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
    let altered: String = chars.into_iter().collect();
    let (status, headers, body) = p
        .open(&format!("https://urp.comune.example.it/s/{altered}"))
        .await;
    assert_eq!(status, 404);
    assert!(body.contains("Link non valido"), "{body}");
    assert_eq!(headers["cache-control"], "no-store, max-age=0");
    refused(&body);
    // Signed with another key, for the same ticket.
    let other = LinkKeys::new(b"somebody else's key, not ours at all", None).sign(
        p.id("2026/000101").await,
        ts(NOW),
        30,
    );
    let (status, _, body) = p
        .open(&format!("https://urp.comune.example.it/s/{other}"))
        .await;
    assert_eq!(status, 404);
    refused(&body);
    // Plain junk and path tricks.
    for junk in ["x", "..%2F..%2Fetc%2Fpasswd", "2026%2F000101"] {
        let (status, _, body) = p
            .open(&format!("https://urp.comune.example.it/s/{junk}"))
            .await;
        assert_eq!(status, 404, "{junk}");
        refused(&body);
    }
    // A link to a ticket that does not exist.
    let ghost = p.maker.url(9_999_999, ts(NOW));
    let (status, _, body) = p.open(&ghost).await;
    assert_eq!(status, 404);
    refused(&body);
    // The feed with a link for another ticket's number.
    let (status, v) = p.feed("2026/000102", Portal::token_of(&good), "").await;
    assert_eq!(status, 404, "{v}");
    assert!(!v.to_string().contains("Certificato"));

    // Expired: the configured validity later (180 days), the link shows nothing.
    p.set_now("2026-09-01T12:00:00+02:00");
    let (status, _, body) = p.open(&good).await;
    assert_eq!(status, 410);
    assert!(body.contains("Link scaduto"), "{body}");
    refused(&body);
    let (status, v) = p.feed("2026/000101", Portal::token_of(&good), "").await;
    assert_eq!(status, 410, "{v}");
    p.set_now(NOW);
    let (status, _, _) = p.open(&good).await;
    assert_eq!(status, 200, "the same link still opens inside its validity");

    // Revoked: links issued up to now stop; a link issued afterwards opens.
    p.store
        .revoke_links("2026/000101", ts(NOW), "test", "inoltrato per errore")
        .await
        .expect("revoke")
        .expect("ticket");
    let (status, _, body) = p.open(&good).await;
    assert_eq!(status, 410);
    assert!(body.contains("Link disattivato"), "{body}");
    refused(&body);
    let (status, v) = p.feed("2026/000101", Portal::token_of(&good), "").await;
    assert_eq!(status, 410, "{v}");
    p.set_now("2026-03-04T12:00:01+01:00");
    let fresh = p.link("2026/000101").await;
    let (status, _, _) = p.open(&fresh).await;
    assert_eq!(status, 200, "a link issued after the revocation opens");
    // The revocation is in the audit log, with who and why.
    let audit = p.store.audit_log(10).await.expect("audit");
    assert!(
        audit
            .iter()
            .any(|a| a.action == "revoke_links" && a.object == "ticket/2026/000101"),
        "{audit:?}"
    );
}

async fn one_client_is_limited(p: Portal) {
    seed(&p).await;
    let good = p.link("2026/000101").await;
    let mut codes = Vec::new();
    for _ in 0..7 {
        let (status, headers, body) = p.open(&good).await;
        if status == 429 {
            assert_eq!(headers["retry-after"], "60");
            assert!(!body.contains("2026/000101"));
        }
        codes.push(status);
    }
    assert_eq!(codes, [200, 200, 200, 200, 200, 429, 429]);
    // The portal's own token is not limited per client.
    for _ in 0..3 {
        let (status, _) = p.portal_feed("2026/000101", CF).await;
        assert_eq!(status, 200);
    }
}

macro_rules! on_both {
    ($($name:ident $(, $extra:expr)?);* $(;)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let extra: &[(&str, &str)] = &[$($extra)?];
                    super::$name(super::start(super::sqlite_store().await, extra).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let extra: &[(&str, &str)] = &[$($extra)?];
                    let (store, schema) = super::postgres_store().await;
                    super::$name(super::start(store, extra).await).await;
                    super::drop_schema(&schema).await;
                }
            )*
        }
    };
}

on_both! {
    every_message_carries_a_link_that_opens_its_ticket;
    the_feed_tells_each_state_in_plain_words;
    the_portal_sees_only_the_named_citizen;
    forged_expired_and_revoked_links_show_nothing;
    one_client_is_limited, ("MESSO_PORTAL__REQUESTS_PER_MINUTE", "5");
}

#[tokio::test]
async fn a_key_kept_in_the_store_is_made_once_and_shared() {
    let store = sqlite_store().await;
    let config = Config::from_toml(BUILTIN_TOML, "test", Vec::new()).expect("config");
    assert!(config.portal.link_key.is_none());
    let a = link_keys(&config, &store, ts(NOW)).await.expect("keys");
    let b = link_keys(&config, &store, ts(NOW)).await.expect("keys");
    let t = a.sign(5, ts(NOW), 10);
    assert_eq!(b.verify(&t, ts(NOW)).map(|l| l.ticket_id), Ok(5));
    // A configured key is another key: the stored one's links do not open with it.
    let configured = link_keys(&config_with_key(), &store, ts(NOW))
        .await
        .expect("keys");
    assert!(configured.verify(&t, ts(NOW)).is_err());
}

fn config_with_key() -> Config {
    config(&[])
}
