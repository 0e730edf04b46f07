//! Staff actions from the console over real HTTP, on SQLite and PostgreSQL: a step, an
//! integration request with its list of documents, a note and a closure recorded as the office
//! (source `console`), owing the same notices as the API's events; a double click (the same
//! `Idempotency-Key`) records one event; the same validation (422 naming the field) and the same
//! conflicts (409); a viewer and a missing CSRF token refused; `admin.staff_events = false`
//! turns the actions off.

mod common;

use common::admin::Console;
use common::{Backend, TestClock, on_both};
use messo::config::{BUILTIN_TOML, Config};
use messo::store::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

const EVENTS: &str = "/api/v1/admin/tickets/2026%2F000010/events";

async fn start(backend: Backend, staff_events: bool) -> Console {
    let text = BUILTIN_TOML.replace(
        "staff_events = true",
        &format!("staff_events = {staff_events}"),
    );
    let config = Config::from_toml(&text, "test", Vec::new()).expect("config");
    let h = common::admin::start(
        backend,
        config,
        TestClock::at("2026-03-03T10:00:00+01:00"),
        &[("elena", Role::Editor), ("vito", Role::Viewer)],
    )
    .await;
    h.ticket("2026/000010").await;
    h.engine.cycle(h.now()).await.expect("engine");
    h
}

/// The citizen's notices of `kind` owed so far.
async fn owed(h: &Console, kind: &str) -> i64 {
    h.engine.cycle(h.now()).await.expect("engine");
    h.count(&format!(
        "SELECT COUNT(*) FROM outbox WHERE kind = '{kind}' AND recipient = 'citizen'"
    ))
    .await
}

async fn staff_actions_are_events_of_the_office(h: &Console) {
    let editor = h.session("elena").await;
    let viewer = h.session("vito").await;
    let step = json!({"kind": "step_changed", "step": "istruttoria", "text": "La pratica è in istruttoria."});
    let key = [("idempotency-key", "form-1")];

    let (status, p) = viewer.post_with(EVENTS, step.clone(), &key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
    let no_csrf = editor
        .client
        .post(format!("{}{EVENTS}", editor.base))
        .header("cookie", &editor.cookie)
        .json(&step)
        .send()
        .await
        .expect("post");
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);

    // A step: recorded once however often the form is sent.
    let (status, first) = editor.post_with(EVENTS, step.clone(), &key).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["event"]["source"], "console");
    assert_eq!(first["event"]["kind"], "step_changed");
    assert_eq!(first["ticket"]["step"]["code"], "istruttoria");
    assert!(
        first["ticket"]["citizen"]["email"]
            .as_str()
            .is_some_and(|e| e.contains("***")),
        "masked: {first}"
    );
    h.clock.advance(5);
    let (status, again) = editor.post_with(EVENTS, step.clone(), &key).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["event"]["id"], first["event"]["id"]);
    assert_eq!(again["event"]["at"], first["event"]["at"]);
    assert_eq!(
        h.count("SELECT COUNT(*) FROM ticket_events WHERE kind = 'step_changed'")
            .await,
        1
    );
    assert_eq!(
        h.count("SELECT COUNT(*) FROM audit_log WHERE action = 'ticket.event'")
            .await,
        1
    );
    assert_eq!(owed(h, "avanzamento").await, 1);
    // The same key for another kind of event.
    let (status, p) = editor
        .post_with(EVENTS, json!({"kind": "note", "text": "x"}), &key)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");

    // The API's validation, each field named.
    for (body, field) in [
        (json!({"kind": "step_changed", "step": "x"}), "text"),
        (json!({"kind": "reopened", "reason": "x"}), "kind"),
        (
            json!({"kind": "integration_requested", "missing": []}),
            "missing",
        ),
        (
            json!({"kind": "integration_requested", "missing": "ISEE"}),
            "missing",
        ),
        (json!({"kind": "note", "text": "x", "at": "ieri"}), "at"),
        (
            json!({"kind": "note", "text": "x", "colour": "red"}),
            "colour",
        ),
    ] {
        let (status, p) = editor
            .post_with(EVENTS, body.clone(), &[("idempotency-key", "bad")])
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {p}");
        let fields: Vec<&str> = p["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{body}: {p}");
    }
    let (status, _) = editor
        .post_with(
            EVENTS,
            json!({"kind": "note", "text": "x"}),
            &[("idempotency-key", "bad key")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // An integration request with its list of documents: the clock stops, the citizen is told.
    let (status, asked) = editor
        .post_with(
            EVENTS,
            json!({"kind": "integration_requested", "missing": ["Copia della carta d'identità", "ISEE 2026"]}),
            &[("idempotency-key", "form-2")],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{asked}");
    assert_eq!(
        asked["event"]["data"]["missing"],
        "- Copia della carta d'identità\n- ISEE 2026"
    );
    assert!(asked["ticket"]["waiting_since"].is_string(), "{asked}");
    assert_eq!(owed(h, "richiesta_integrazione").await, 1);
    let (status, p) = editor
        .post_with(
            EVENTS,
            json!({"kind": "integration_requested", "missing": ["Altro"]}),
            &[("idempotency-key", "form-3")],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "already waiting: {p}");

    // A note, then the closure with its outcome.
    let (status, _) = editor
        .post_with(
            EVENTS,
            json!({"kind": "note", "text": "Sollecitato l'ufficio tributi"}),
            &[("idempotency-key", "form-4")],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // A new expected date for the citizen, and one in the past refused naming the field.
    let (status, set) = editor
        .post_with(
            EVENTS,
            json!({"kind": "expected_date_set", "expected_at": "2026-03-20T12:00:00+01:00", "reason": "Serve il parere della Ragioneria."}),
            &[("idempotency-key", "form-4b")],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{set}");
    assert_eq!(set["event"]["kind"], "expected_date_set", "{set}");
    let (status, p) = editor
        .post_with(
            EVENTS,
            json!({"kind": "expected_date_set", "expected_at": "2026-03-01T12:00:00+01:00", "reason": "x"}),
            &[("idempotency-key", "form-4c")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(p.to_string().contains("expected_at"), "{p}");
    let (status, closed) = editor
        .post_with(
            EVENTS,
            json!({"kind": "closed", "text": "Rimborso disposto."}),
            &[("idempotency-key", "form-5")],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{closed}");
    assert!(closed["ticket"]["closed_at"].is_string(), "{closed}");
    assert_eq!(owed(h, "chiusura").await, 1);
    let (status, p) = editor
        .post_with(
            EVENTS,
            json!({"kind": "step_changed", "step": "x", "text": "y"}),
            &[("idempotency-key", "form-6")],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "closed: {p}");
    let (status, _) = editor
        .post_with(
            "/api/v1/admin/tickets/2026%2F999999/events",
            json!({"kind": "note", "text": "x"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let sources: Vec<Value> = h
        .store
        .tickets()
        .events(
            h.store
                .tickets()
                .ticket("2026/000010")
                .await
                .expect("read")
                .expect("ticket")
                .id,
        )
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.kind != "received")
        .map(|e| json!(e.source))
        .collect();
    assert_eq!(sources, vec![json!("console"); 5]);
}

async fn staff_actions_off_leave_the_crm_the_only_writer(h: &Console) {
    let editor = h.session("elena").await;
    let (status, p) = editor
        .post_with(
            EVENTS,
            json!({"kind": "note", "text": "x"}),
            &[("idempotency-key", "k")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
    assert_eq!(p["detail"], "staff actions are off: the CRM records events");
    // Reaching the citizen stays the office's: a contact correction is recorded (the CRM
    // reads it as a `contact_changed` event), and a contact made is refused only for a
    // message that is not there.
    let (status, p) = editor
        .post(
            "/api/v1/admin/tickets/2026%2F000010/contact",
            json!({"email": "nuovo@example.it", "reason": "al telefono"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let (status, _) = editor
        .post(
            "/api/v1/admin/messages/999999/contact-made",
            json!({"channel": "phone", "text": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        h.count("SELECT COUNT(*) FROM ticket_events WHERE kind = 'contact_changed'")
            .await,
        1
    );
    assert_eq!(
        h.count("SELECT COUNT(*) FROM ticket_events WHERE source = 'console'")
            .await,
        1
    );
}

on_both!(start;
    staff_actions_are_events_of_the_office(true),
    staff_actions_off_leave_the_crm_the_only_writer(false),
);
