//! The ticket API over real HTTP on loopback: a CRM creating tickets and appending events,
//! with every kind of bad request refused with a problem document that names the field.

mod common;

use std::sync::Arc;

use common::{Backend, TestClock, TestDb, serve};
use messo::config::{ApiToken, BUILTIN_TOML, Config, Scope};
use messo::http::{AppState, TokenBook, router};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Api {
    addr: std::net::SocketAddr,
    clock: TestClock,
    writer: String,
    reader: String,
}

struct Reply {
    status: u16,
    headers: String,
    body: Value,
}

async fn start() -> Api {
    let config = Config::from_toml(BUILTIN_TOML, "built-in", Vec::new()).expect("config");
    // The store lives as long as the test's runtime; its folder stays in target/tmp.
    let store = TestDb::with_config(Backend::Sqlite, &config).await.store;
    let wh = messo::http::new_token().expect("token");
    let writer = wh.token.clone();
    let rh = messo::http::new_token().expect("token");
    let reader = rh.token.clone();
    let tokens = TokenBook::new(vec![
        ApiToken {
            name: "crm".into(),
            id: wh.id.clone(),
            hash: wh.hash.clone(),
            scopes: vec![Scope::Read, Scope::Write],
        },
        ApiToken {
            name: "dashboard".into(),
            id: rh.id.clone(),
            hash: rh.hash.clone(),
            scopes: vec![Scope::Read],
        },
    ]);
    let clock = TestClock::at("2026-03-02T10:15:00+01:00");
    let state = AppState {
        store,
        tokens: Arc::new(tokens),
        clock: clock.clock(),
        wake: Arc::new(tokio::sync::Notify::new()),
        metrics: Arc::new(messo::metrics::Metrics::default()),
    };
    let base = serve(router(state)).await;
    Api {
        addr: base
            .trim_start_matches("http://")
            .parse()
            .expect("the server's address"),
        clock,
        writer,
        reader,
    }
}

impl Api {
    fn set_now(&self, t: &str) {
        self.clock.set(t);
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = body.unwrap_or("");
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        let mut s = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").expect("a response");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status");
        Reply {
            status,
            headers: head.to_ascii_lowercase(),
            body: serde_json::from_str(rest).unwrap_or(Value::String(rest.to_owned())),
        }
    }

    async fn post(&self, path: &str, body: &Value, extra: &[(&str, &str)]) -> Reply {
        let mut headers = vec![("Content-Type", "application/json")];
        headers.extend_from_slice(extra);
        self.call(
            "POST",
            path,
            Some(&self.writer.clone()),
            &headers,
            Some(&body.to_string()),
        )
        .await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, Some(&self.reader.clone()), &[], None)
            .await
    }
}

fn ticket(number: &str) -> Value {
    json!({
        "number": number,
        "office": "anagrafe",
        "priority": "urgente",
        "subject": "Cambio di residenza",
        "received_at": "2026-03-02T10:15:00+01:00",
        "citizen": {"email": "anna.bianchi@example.it", "mobile": "+393331112222", "fiscal_code": "RSSMRA80A01H501U"}
    })
}

fn fields(r: &Reply) -> Vec<String> {
    r.body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn creating_a_ticket_returns_its_deadline_and_repeats_are_harmless() {
    let api = start().await;
    let r = api
        .post("/api/v1/tickets", &ticket("2026/000123"), &[])
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.headers.contains("content-type: application/json"));
    assert_eq!(r.body["sla"]["due_at"], "2026-03-03T10:15:00+01:00");
    assert_eq!(r.body["sla"]["state"], "running");
    assert_eq!(r.body["citizen"]["fiscal_code"], "RSSMRA80A01H501U");

    let again = api
        .post("/api/v1/tickets", &ticket("2026/000123"), &[])
        .await;
    assert_eq!(again.status, 200);
    let mut other = ticket("2026/000123");
    other["subject"] = json!("Altro");
    let conflict = api.post("/api/v1/tickets", &other, &[]).await;
    assert_eq!(conflict.status, 409);
    assert!(
        conflict
            .headers
            .contains("content-type: application/problem+json")
    );
    assert!(
        conflict.body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("subject"),
        "{}",
        conflict.body
    );

    let got = api.get("/api/v1/tickets/2026%2F000123").await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["events"][0]["kind"], "received");
    assert_eq!(
        got.body["explanation"]["due_at"],
        "2026-03-03T10:15:00+01:00"
    );
}

#[tokio::test]
async fn bad_requests_get_a_reason_and_change_nothing() {
    let api = start().await;
    let mut bad = ticket("2026/000124");
    bad["priority"] = json!("Urgent");
    bad["received_at"] = json!("2026-03-02T10:15:00");
    bad["citizen"]["mobile"] = json!("+39 12");
    let r = api.post("/api/v1/tickets", &bad, &[]).await;
    assert_eq!(r.status, 422);
    let f = fields(&r);
    for expected in ["priority", "received_at", "citizen.mobile"] {
        assert!(
            f.contains(&expected.to_owned()),
            "{expected} missing in {}",
            r.body
        );
    }
    assert_eq!(api.get("/api/v1/tickets/2026%2F000124").await.status, 404);

    let malformed = api
        .call(
            "POST",
            "/api/v1/tickets",
            Some(&api.writer.clone()),
            &[("Content-Type", "application/json")],
            Some("{\"number\":"),
        )
        .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.body["type"], "urn:messo:problem:malformed-json");
    let text = api
        .call(
            "POST",
            "/api/v1/tickets",
            Some(&api.writer.clone()),
            &[("Content-Type", "text/plain")],
            Some("{}"),
        )
        .await;
    assert_eq!(text.status, 415);
    let huge = json!({"number": "X-1", "subject": "a".repeat(70_000)});
    let r = api.post("/api/v1/tickets", &huge, &[]).await;
    assert_eq!(r.status, 413);
    assert_eq!(
        api.call(
            "POST",
            "/api/v1/tickets",
            None,
            &[("Content-Type", "application/json")],
            Some("{}")
        )
        .await
        .status,
        401
    );
    let read_only = api
        .call(
            "POST",
            "/api/v1/tickets",
            Some(&api.reader.clone()),
            &[("Content-Type", "application/json")],
            Some(&ticket("R-1").to_string()),
        )
        .await;
    assert_eq!(read_only.status, 403);
    assert_eq!(api.get("/api/v1/tickets?state=late").await.status, 422);
    assert_eq!(api.get("/api/v1/tickets?colour=red").await.status, 422);
    assert_eq!(api.get("/api/v1/nothing").await.status, 404);
    let listed = api.get("/api/v1/tickets").await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn idempotency_keys_replay_the_same_answer() {
    let api = start().await;
    let key = [("Idempotency-Key", "crm-req-1")];
    let first = api.post("/api/v1/tickets", &ticket("K-1"), &key).await;
    assert_eq!(first.status, 201);
    let replay = api.post("/api/v1/tickets", &ticket("K-1"), &key).await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.body, first.body);
    assert!(replay.headers.contains("idempotent-replayed: true"));
    let other = api.post("/api/v1/tickets", &ticket("K-2"), &key).await;
    assert_eq!(other.status, 422);
    assert_eq!(fields(&other), ["Idempotency-Key"]);
    assert_eq!(api.get("/api/v1/tickets/K-2").await.status, 404);
}

#[tokio::test]
async fn events_pause_and_resume_the_clock() {
    let api = start().await;
    api.post("/api/v1/tickets", &ticket("E-1"), &[]).await;
    let path = "/api/v1/tickets/E-1/events";

    let unknown = api
        .post(
            "/api/v1/tickets/E-404/events",
            &json!({"kind": "note", "at": "2026-03-02T10:20:00+01:00", "text": "x"}),
            &[],
        )
        .await;
    assert_eq!(unknown.status, 404);
    let not_waiting = api.post(path, &json!({"kind": "integration_received", "at": "2026-03-02T10:20:00+01:00", "channel": "sms"}), &[]).await;
    assert_eq!(not_waiting.status, 409, "{}", not_waiting.body);

    api.set_now("2026-03-02T11:00:00+01:00");
    let asked = api.post(path, &json!({"kind": "integration_requested", "at": "2026-03-02T11:00:00+01:00", "missing": "copia del documento d'identità"}), &[]).await;
    assert_eq!(asked.status, 201, "{}", asked.body);
    assert_eq!(asked.body["sla"]["state"], "paused");
    assert_eq!(asked.body["sla"]["due_at"], Value::Null);
    let paused = api.get("/api/v1/tickets?state=paused").await;
    assert_eq!(paused.body["items"][0]["number"], "E-1");

    api.set_now("2026-03-04T09:30:00+01:00");
    let reply = json!({"kind": "integration_received", "at": "2026-03-04T09:30:00+01:00", "channel": "email", "text": "allego il documento"});
    let resumed = api
        .post(path, &reply, &[("Idempotency-Key", "mail-77")])
        .await;
    assert_eq!(resumed.status, 201, "{}", resumed.body);
    assert_eq!(resumed.body["sla"]["due_at"], "2026-03-04T16:45:00+01:00");
    let dup = api
        .post(path, &reply, &[("Idempotency-Key", "mail-77")])
        .await;
    assert_eq!(dup.status, 201);
    assert!(dup.headers.contains("idempotent-replayed: true"));

    let future = api
        .post(
            path,
            &json!({"kind": "note", "at": "2026-03-05T09:30:00+01:00", "text": "x"}),
            &[],
        )
        .await;
    assert_eq!(future.status, 422);
    assert_eq!(fields(&future), ["at"]);

    api.set_now("2026-03-05T12:00:00+01:00");
    let got = api.get("/api/v1/tickets/E-1").await;
    assert_eq!(got.body["sla"]["state"], "breached");
    assert_eq!(got.body["sla"]["elapsed_s"], 40_500);
    let kinds: Vec<&str> = got.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["received", "integration_requested", "integration_received"]
    );
    assert_eq!(got.body["events"][2]["data"]["text"], "allego il documento");
}
