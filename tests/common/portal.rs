//! The citizen portal served over real HTTP on a store seeded with one ticket per SLA state,
//! with a settable clock; shared by tests/portal.rs, tests/portal_validity.rs and
//! tests/portal_browser.rs.

use std::path::PathBuf;
use std::sync::Arc;

use messo::config::{ApiToken, BUILTIN_TOML, Config, Scope};
use messo::daemon::Engine;
use messo::delivery::dispatch::Dispatcher;
use messo::http::TokenBook;
use messo::http::portal::{PortalState, link_keys, link_maker, router};
use messo::metrics::Metrics;
use messo::portal::LinkMaker;
use messo::store::Store;
use messo::templates::{Catalog, Settings, Templates};
use messo::ticket::{NewEvent, NewTicket, Source};
use serde_json::{Value, json};
use sqlx::Row;

pub use super::ts;
use super::{Backend, TestClock, TestDb, fixed_clock, serve};

pub const KEY: &str = "a-test-key-for-status-links-0123456789";
pub const CF: &str = "RSSMRA80A01H501U";
pub const OTHER_CF: &str = "VRDGPP75B12F205F";
/// Wednesday 4 March 2026, noon in Rome: the clock of most checks.
pub const NOW: &str = "2026-03-04T12:00:00+01:00";

pub fn config(extra: &[(&str, &str)]) -> Config {
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

pub struct Portal {
    pub base: String,
    pub store: Store,
    pub config: Config,
    pub clock: TestClock,
    pub maker: LinkMaker,
    pub portal_token: String,
    pub read_token: String,
    pub http: reqwest::Client,
    pub out: PathBuf,
    db: TestDb,
}

/// The portal on a fresh store of `backend`, configured with the `extra` variables.
pub async fn start(backend: Backend, extra: &[(&str, &str)]) -> Portal {
    messo::install_crypto();
    let config = config(extra);
    let db = TestDb::with_config(backend, &config).await;
    let store = db.store.clone();
    let clock = TestClock::at(NOW);
    let portal_hash = messo::http::new_token().expect("token");
    let portal_token = portal_hash.token.clone();
    let read_hash = messo::http::new_token().expect("token");
    let read_token = read_hash.token.clone();
    let tokens = Arc::new(TokenBook::new(vec![
        ApiToken {
            name: "portale".into(),
            id: portal_hash.id.clone(),
            hash: portal_hash.hash.clone(),
            scopes: vec![Scope::Portal],
        },
        ApiToken {
            name: "crm".into(),
            id: read_hash.id.clone(),
            hash: read_hash.hash.clone(),
            scopes: vec![Scope::Read, Scope::Write],
        },
    ]));
    let keys = link_keys(&config, &store, ts(NOW)).await.expect("keys");
    let state = PortalState::new(
        store.clone(),
        tokens,
        keys.clone(),
        &config,
        clock.clock(),
        Arc::new(Metrics::default()),
    );
    Portal {
        base: serve(router(state)).await,
        maker: link_maker(&config, keys),
        out: db.dir.join("out"),
        store,
        config,
        clock,
        portal_token,
        read_token,
        http: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client"),
        db,
    }
}

/// The tickets of the scenario, each in one SLA state at `NOW`.
pub async fn seed(p: &Portal) {
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
        s.tickets()
            .create_ticket(
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
            s.tickets()
                .append_event(number, &e, None, Source::Api, e.at)
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
    pub async fn deliver(&self) {
        let now = self.clock.now();
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
        d.drain(&fixed_clock(now), 1000).await.expect("drain");
    }

    pub fn set_now(&self, t: &str) {
        self.clock.set(t);
    }

    /// Tidies up after a test that passed.
    pub async fn finish(self) {
        self.db.finish().await;
    }

    pub async fn id(&self, number: &str) -> i64 {
        self.store
            .tickets()
            .ticket(number)
            .await
            .expect("read")
            .expect("ticket")
            .id
    }

    /// A fresh link to `number`, issued at the test clock.
    pub async fn link(&self, number: &str) -> String {
        let now = self.clock.now();
        self.maker.url(self.id(number).await, now)
    }

    pub fn token_of(url: &str) -> &str {
        url.rsplit('/').next().expect("token")
    }

    /// GET a status link as a citizen's phone would (the link's address is rewritten to ours).
    pub async fn open(&self, url: &str) -> (u16, reqwest::header::HeaderMap, String) {
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

    pub async fn feed(&self, number: &str, bearer: &str, query: &str) -> (u16, Value) {
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

    pub async fn portal_feed(&self, number: &str, cf: &str) -> (u16, Value) {
        self.feed(number, &self.portal_token.clone(), &format!("?cf={cf}"))
            .await
    }

    /// The words of every message sent to the citizen about `number`, as kept in the outbox.
    pub async fn sent_texts(&self, number: &str) -> Vec<(String, String, String)> {
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

pub fn link_in(text: &str) -> Option<String> {
    let start = text.find("https://urp.comune.example.it/s/")?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || "-_:/.".contains(c)))
        .unwrap_or(rest.len());
    Some(rest[..end].trim_end_matches('.').to_owned())
}
