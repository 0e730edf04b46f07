//! A stand-in for the IO Services API over real HTTP: the profile check (`POST /profiles`),
//! the submit with the fiscal code in the body (`POST /messages`) and the read-back
//! (`GET /messages/{fiscal_code}/{id}`), each checking the subscription key and the documented
//! request shape (a wrong one gets 400 with a problem document, as IO answers), with faults
//! set per fiscal code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The subscription key the stub accepts.
pub const KEY: &str = "io-subscription-key-for-tests-0001";

/// What the stub does with a fiscal code.
#[derive(Debug, Clone, PartialEq)]
pub enum Citizen {
    /// In IO, our service allowed.
    Allowed,
    /// In IO, our service turned off (`sender_allowed: false`).
    TurnedOff,
}

/// A fault on submit for one fiscal code.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer this status (with `Retry-After: 1` on 429) this many times, then behave.
    Status(u16, usize),
    /// Store the message, then answer only after `secs` (the client's timeout comes first:
    /// the answer is lost after acceptance).
    LostAnswer(u64),
    /// Hang before storing anything.
    Hang(u64),
}

#[derive(Default)]
pub struct Inner {
    pub citizens: HashMap<String, Citizen>,
    pub faults: HashMap<String, Fault>,
    /// Read-back status per fiscal code (default `PROCESSED`) and read status (default none).
    pub status: HashMap<String, String>,
    pub read_status: HashMap<String, String>,
    /// Stored messages: id, the submit body.
    pub messages: Vec<(String, Value)>,
    /// Every request: method and path.
    pub requests: Vec<(String, String)>,
    /// Profile checks answered 503 while set.
    pub profiles_down: bool,
}

#[derive(Clone, Default)]
pub struct IoStub(pub Arc<Mutex<Inner>>);

fn problem(status: u16, detail: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "application/problem+json")],
        json!({"type": "about:blank", "title": "problem", "status": status, "detail": detail})
            .to_string(),
    )
        .into_response()
}

fn keyed(headers: &HeaderMap) -> bool {
    headers
        .get("Ocp-Apim-Subscription-Key")
        .and_then(|v| v.to_str().ok())
        == Some(KEY)
}

fn valid_cf(v: &Value) -> Option<String> {
    let s = v.as_str()?;
    (s.len() == 16
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()))
    .then(|| s.to_owned())
}

/// Why a submit body is not what IO documents, if it is not.
fn shape_problem(body: &Value) -> Option<String> {
    let content = &body["content"];
    let subject = content["subject"].as_str()?;
    let markdown = content["markdown"].as_str()?;
    if !(10..=120).contains(&subject.chars().count()) {
        return Some("content.subject must be 10-120 characters".into());
    }
    if !(80..=10_000).contains(&markdown.chars().count()) {
        return Some("content.markdown must be 80-10000 characters".into());
    }
    if let Some(ttl) = body.get("time_to_live") {
        let ok = ttl.as_u64().is_some_and(|t| (3600..=604_800).contains(&t));
        if !ok {
            return Some("time_to_live out of range".into());
        }
    }
    if let Some(level) = body.get("feature_level_type")
        && !matches!(level.as_str(), Some("STANDARD" | "ADVANCED"))
    {
        return Some("feature_level_type".into());
    }
    if let Some(due) = content.get("due_date") {
        let ok = due
            .as_str()
            .is_some_and(|d| d.ends_with('Z') && d.len() == 24);
        if !ok {
            return Some("content.due_date must be a UTC ISO-8601 timestamp".into());
        }
    }
    let known = [
        "fiscal_code",
        "time_to_live",
        "feature_level_type",
        "content",
        "default_addresses",
    ];
    body.as_object()?
        .keys()
        .find(|k| !known.contains(&k.as_str()))
        .map(|k| format!("unknown field {k}"))
}

impl IoStub {
    /// Starts the stub; returns it and its API root (`…/api/v1`).
    pub async fn start() -> (IoStub, String) {
        let stub = IoStub::default();
        let app = axum::Router::new()
            .route("/api/v1/profiles", post(profile))
            .route("/api/v1/messages", post(submit))
            .route("/api/v1/messages/{cf}/{id}", get(read_back))
            .with_state(stub.clone());
        let url = super::serve(app).await;
        (stub, format!("{url}/api/v1"))
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.0.lock().expect("lock"))
    }

    pub fn allow(&self, cf: &str) {
        self.with(|i| i.citizens.insert(cf.to_owned(), Citizen::Allowed));
    }

    pub fn messages_to(&self, cf: &str) -> Vec<Value> {
        self.with(|i| {
            i.messages
                .iter()
                .filter(|(_, b)| b["fiscal_code"] == cf)
                .map(|(_, b)| b.clone())
                .collect()
        })
    }

    pub fn count(&self, method: &str, prefix: &str) -> usize {
        self.with(|i| {
            i.requests
                .iter()
                .filter(|(m, p)| m == method && p.starts_with(prefix))
                .count()
        })
    }
}

async fn profile(State(s): State<IoStub>, headers: HeaderMap, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let (down, known) = s.with(|i| {
        i.requests.push(("POST".into(), "/profiles".into()));
        let cf = valid_cf(&body["fiscal_code"]);
        (i.profiles_down, cf.map(|cf| i.citizens.get(&cf).cloned()))
    });
    if !keyed(&headers) {
        return problem(401, "missing or wrong subscription key");
    }
    if down {
        return problem(503, "unavailable");
    }
    match known {
        None => problem(400, "fiscal_code is required and must be a fiscal code"),
        Some(None) => problem(404, "no user found for the provided fiscal code"),
        Some(Some(c)) => (
            StatusCode::OK,
            axum::Json(json!({
                "sender_allowed": c == Citizen::Allowed,
                "preferred_languages": ["it_IT"],
            })),
        )
            .into_response(),
    }
}

async fn submit(State(s): State<IoStub>, headers: HeaderMap, body: String) -> Response {
    s.with(|i| i.requests.push(("POST".into(), "/messages".into())));
    if !keyed(&headers) {
        return problem(401, "missing or wrong subscription key");
    }
    let body: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(_) => return problem(400, "not JSON"),
    };
    let Some(cf) = valid_cf(&body["fiscal_code"]) else {
        return problem(400, "fiscal_code is required");
    };
    if let Some(why) = shape_problem(&body) {
        return problem(400, &why);
    }
    let fault = s.with(|i| match i.faults.get_mut(&cf) {
        Some(Fault::Status(status, left)) if *left > 0 => {
            *left -= 1;
            Some(Fault::Status(*status, 1))
        }
        Some(Fault::Status(..)) => None,
        other => other.cloned(),
    });
    match fault {
        Some(Fault::Status(429, _)) => {
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "").into_response();
        }
        Some(Fault::Status(status, _)) => {
            return problem(status, "the message cannot be delivered");
        }
        Some(Fault::Hang(secs)) => {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            return problem(504, "late");
        }
        _ => {}
    }
    let id = s.with(|i| {
        let id = format!("01IOSTUB{:018}", i.messages.len() + 1);
        i.messages.push((id.clone(), body));
        id
    });
    if let Some(Fault::LostAnswer(secs)) = fault {
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    (
        StatusCode::CREATED,
        [("location", format!("/api/v1/messages/{cf}/{id}"))],
        axum::Json(json!({"id": id})),
    )
        .into_response()
}

async fn read_back(
    State(s): State<IoStub>,
    headers: HeaderMap,
    Path((cf, id)): Path<(String, String)>,
) -> Response {
    s.with(|i| {
        i.requests
            .push(("GET".into(), format!("/messages/{cf}/{id}")))
    });
    if !keyed(&headers) {
        return problem(401, "missing or wrong subscription key");
    }
    let found = s.with(|i| {
        let msg = i
            .messages
            .iter()
            .find(|(m, b)| *m == id && b["fiscal_code"] == cf.as_str())
            .map(|(_, b)| b.clone())?;
        let status = i
            .status
            .get(&cf)
            .cloned()
            .unwrap_or_else(|| "PROCESSED".into());
        Some((msg, status, i.read_status.get(&cf).cloned()))
    });
    match found {
        None => problem(404, "no message found for the provided ID"),
        Some((msg, status, read)) => {
            let mut answer = json!({
                "message": {
                    "id": id,
                    "fiscal_code": cf,
                    "content": msg["content"],
                    "feature_level_type": msg["feature_level_type"],
                },
                "status": status,
            });
            if let Some(r) = read {
                answer["read_status"] = json!(r);
            }
            (StatusCode::OK, axum::Json(answer)).into_response()
        }
    }
}
