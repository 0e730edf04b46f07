//! Citizens' e-mail addresses are parsed once, with the rules the SMTP channel sends with
//! (`messo::domain::EmailAddress`): the ticket API over real HTTP and the CRM's direct writes
//! refuse what no mail server takes, naming the field, on SQLite and on PostgreSQL; a refused
//! direct write keeps its row, with the reason, and does not stop the rows after it.

mod common;

use std::sync::Arc;

use common::{Backend, TestDb, fixed_clock, on_both, serve, ts};
use messo::config::{ApiToken, BUILTIN_TOML, Config, Scope};
use messo::http::{AppState, TokenBook, router};
use messo::store::Store;
use serde_json::{Value, json};

/// Addresses the old shape check let through, and others of the same classes.
fn refused() -> Vec<String> {
    let mut list: Vec<String> = [
        "a..b@example.it",
        ".a@example.it",
        "a.@example.it",
        "a@example..it",
        "a@example.it.",
        "<a@example.it>",
        "Mario Rossi <a@example.it>",
        "a(commento)@example.it",
        "a@example.it;b@example.it",
        "a@example.it,b@example.it",
        "\"mario rossi\"@example.it",
        "a@[192.0.2.1]",
        "a@192.0.2.1",
        "a@-example.it",
        "a@exa_mple.it",
        "mario.rossì@example.it",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    list.push(format!("{}@example.it", "l".repeat(65)));
    list.push(format!("a@{}.it", "d".repeat(64)));
    let label = "d".repeat(63);
    list.push(format!("a@{label}.{label}.{label}.{}.it", "d".repeat(58)));
    list
}

struct Api {
    base: String,
    writer: String,
    store: Store,
    client: reqwest::Client,
    db: TestDb,
}

async fn start(backend: Backend) -> Api {
    messo::install_crypto();
    let config = Config::from_toml(BUILTIN_TOML, "built-in", Vec::new()).expect("config");
    let db = TestDb::with_config(backend, &config).await;
    let made = messo::http::new_token().expect("token");
    let writer = made.token.clone();
    let tokens = TokenBook::new(vec![ApiToken {
        name: "crm".into(),
        id: made.id,
        hash: made.hash,
        scopes: vec![Scope::Read, Scope::Write],
    }]);
    let state = AppState {
        store: db.store.clone(),
        tokens: Arc::new(tokens),
        clock: fixed_clock(ts("2026-03-02T10:15:00+01:00")),
        wake: Arc::new(tokio::sync::Notify::new()),
        metrics: Arc::new(messo::metrics::Metrics::default()),
    };
    Api {
        base: serve(router(state)).await,
        writer,
        store: db.store.clone(),
        client: reqwest::Client::new(),
        db,
    }
}

impl Api {
    async fn post(&self, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/api/v1/tickets", self.base))
            .bearer_auth(&self.writer)
            .json(body)
            .send()
            .await
            .expect("post");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn status_of(&self, number: &str) -> u16 {
        self.client
            .get(format!(
                "{}/api/v1/tickets/{}",
                self.base,
                number.replace('/', "%2F")
            ))
            .bearer_auth(&self.writer)
            .send()
            .await
            .expect("get")
            .status()
            .as_u16()
    }

    async fn finish(self) {
        self.db.finish().await;
    }
}

fn ticket(number: &str, citizen: Value) -> Value {
    json!({
        "number": number,
        "office": "anagrafe",
        "priority": "normale",
        "subject": "Cambio di residenza",
        "received_at": "2026-03-02T10:15:00+01:00",
        "citizen": citizen,
    })
}

/// (field, message) of a problem document's errors.
fn errors(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or("").to_owned(),
                        e["message"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn the_api_refuses_addresses_no_mail_server_takes(api: &Api) {
    for (i, address) in refused().iter().enumerate() {
        for field in ["email", "pec"] {
            let number = format!("2026/{i:03}{}", if field == "pec" { 1 } else { 0 });
            let mut citizen = json!({"mobile": "+393471234567"});
            citizen[field] = json!(address);
            let (status, body) = api.post(&ticket(&number, citizen)).await;
            assert_eq!(status, 422, "{field} {address:?}: {body}");
            let errs = errors(&body);
            let expected = format!("citizen.{field}");
            assert!(
                errs.iter().any(|(f, m)| *f == expected
                    && m.starts_with("is not an e-mail address we can send to")),
                "{address:?}: {body}"
            );
            assert_eq!(api.status_of(&number).await, 404, "nothing was stored");
        }
    }
    // The same address, well formed, is taken (surrounding blanks are the CRM's and dropped).
    let (status, body) = api
        .post(&ticket(
            "2026/999999",
            json!({"email": " mario.rossi@example.it ", "pec": "mario.rossi@pec.example.it"}),
        ))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["citizen"]["email"], "mario.rossi@example.it");
}

async fn direct_writes_with_such_addresses_are_refused_with_a_reason(api: &Api) {
    let store = &api.store;
    let rows: Vec<(String, String)> = refused()
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let number = format!("2026/5{i:05}");
            let body = ticket(&number, json!({"email": a})).to_string();
            (number, body)
        })
        .chain(std::iter::once((
            "2026/600000".to_owned(),
            ticket("2026/600000", json!({"email": "anna.bianchi@example.it"})).to_string(),
        )))
        .collect();
    for (number, payload) in &rows {
        sqlx::query("INSERT INTO crm_inbox (kind, ticket_number, payload) VALUES ($1, $2, $3)")
            .bind("ticket")
            .bind(number)
            .bind(payload)
            .execute(store.pool())
            .await
            .expect("insert");
    }
    let report = store
        .tickets()
        .process_inbox(ts("2026-03-02T10:16:00+01:00"), 1000)
        .await
        .expect("process");
    assert_eq!(
        (report.accepted, report.rejected),
        (1, refused().len() as u64)
    );
    let stored = sqlx::query_as::<_, (String, String, Option<String>, String)>(
        "SELECT ticket_number, status, reason, payload FROM crm_inbox ORDER BY id",
    )
    .fetch_all(store.pool())
    .await
    .expect("rows");
    assert_eq!(stored.len(), rows.len(), "every row is kept");
    for ((number, payload), (n, status, reason, kept)) in rows.iter().zip(&stored) {
        assert_eq!(n, number);
        assert_eq!(kept, payload, "the row is kept as written");
        if number == "2026/600000" {
            assert_eq!(status, "accepted");
            continue;
        }
        assert_eq!(status, "rejected", "{number}");
        let reason = reason.clone().unwrap_or_default();
        assert!(
            reason.contains("citizen.email: is not an e-mail address we can send to"),
            "{number}: {reason}"
        );
        assert!(store.tickets().ticket(number).await.expect("get").is_none());
    }
    assert!(
        store
            .tickets()
            .ticket("2026/600000")
            .await
            .expect("get")
            .is_some()
    );
}

on_both!(start;
    the_api_refuses_addresses_no_mail_server_takes,
    direct_writes_with_such_addresses_are_refused_with_a_reason,
);
