//! The console's ticket page over real HTTP on SQLite and on the real PostgreSQL: a ticket whose
//! SMS and e-mail went out through the real dispatcher (the file channel) shows the exact words
//! each carried, every attempt, and the Italian day-by-day account of its deadline; a viewer
//! sees the contacts masked (in the header, the messages and the events) and is refused
//! `reveal=contacts`; an editor's reveal shows them and writes one audit record, listed on the
//! page; attachments of a reply are downloaded by editors (audited), refused to viewers, and
//! unknown or unkept ones are 404.

#![allow(dead_code)]

mod common;

use std::path::PathBuf;

use common::admin::Console;
use common::{Backend, TestClock, fixed_clock, fresh_dir, on_both, ts};
use messo::config::{BUILTIN_TOML, Config};
use messo::inbound::{Parsed, Route};
use messo::store::Role;
use messo::ticket::{NewTicket, Source};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

const NUMBER: &str = "2026/000123";
const PAGE: &str = "/api/v1/admin/tickets/2026%2F000123";
/// Past the ticket's five working days: the breach notices are owed.
const LATE: &str = "2026-03-10T12:00:00+01:00";

struct World {
    c: Console,
    attachments: PathBuf,
}

impl World {
    async fn finish(self) {
        let _ = std::fs::remove_dir_all(&self.attachments);
        self.c.finish().await;
    }
}

async fn start(backend: Backend) -> World {
    let mut config = Config::from_toml(BUILTIN_TOML, "test", Vec::new()).expect("config");
    let attachments = fresh_dir("desk_attachments");
    config.inbound.attachments_dir = attachments.clone();
    let c = common::admin::start(
        backend,
        config,
        TestClock::at(LATE),
        &[("elena", Role::Editor), ("vito", Role::Viewer)],
    )
    .await;
    // A citizen who prefers SMS: her notices go by SMS, the office's alert by e-mail.
    let t = NewTicket::from_json(&json!({
        "number": NUMBER, "office": "tributi", "priority": "normale",
        "subject": "Rimborso TARI", "received_at": "2026-03-02T10:15:00+01:00",
        "received_via": "phone",
        "citizen": {"email": "mario.rossi@example.it", "mobile": "347 123 4567",
                    "fiscal_code": "RSSMRA80A01H501U", "preferred_channel": "sms",
                    "language": "it"}
    }))
    .expect("ticket");
    c.store
        .tickets()
        .create_ticket(&t, Source::Api, ts("2026-03-02T10:15:00+01:00"))
        .await
        .expect("create");
    let out = c.dir.join("out");
    let d = c.dispatcher(&out);
    let received = ts("2026-03-02T10:16:00+01:00");
    c.engine.cycle(received).await.expect("engine");
    d.drain(&fixed_clock(received), 100).await.expect("drain");
    let late = ts(LATE);
    c.engine.cycle(late).await.expect("engine");
    d.drain(&fixed_clock(late), 100).await.expect("drain");
    World { c, attachments }
}

/// The files the file channel wrote for outbox row `id`.
fn written(out: &std::path::Path, id: i64) -> Vec<PathBuf> {
    let prefix = format!("{id:08}-");
    let mut files: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("out")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect();
    files.sort();
    files
}

async fn the_page_shows_the_exact_words_and_their_fate(w: &World) {
    let c = &w.c;
    let s = c.session("vito").await;
    let (status, p) = s.get(PAGE).await;
    assert_eq!(status, StatusCode::OK, "{p}");

    // The header, with the contacts masked for a viewer.
    let t = &p["ticket"];
    assert_eq!(t["number"], NUMBER);
    assert_eq!(t["office"], "tributi");
    assert_eq!(t["received_via"], "phone");
    assert_eq!(t["received_at"], "2026-03-02T10:15:00+01:00");
    assert!(t["policy_version"].is_i64() && t["calendar_version"].is_i64());
    assert_eq!(
        t["citizen"],
        json!({"language": "it", "preferred_channel": "sms", "email": "m***@example.it",
               "mobile": "+39***567", "pec": null, "fiscal_code": "RSS***01U",
               "opt_out": [], "revealed": false})
    );
    assert_eq!(p["actions_allowed"], false, "a viewer does not act");

    // The SLA now, with its account in Italian.
    assert_eq!(p["sla"]["state"], "breached", "{}", p["sla"]);
    let text = p["sla"]["explanation_text"].as_str().expect("text");
    assert!(text.starts_with("Pratica 2026/000123: priorità"), "{text}");
    assert!(
        !p["sla"]["explanation"]["days"]
            .as_array()
            .expect("days")
            .is_empty()
    );

    // The events; the citizen's addresses in the received event are masked too.
    let events = p["events"].as_array().expect("events");
    assert_eq!(events[0]["kind"], "received");
    let stored = events[0]["data"]["ticket"]["citizen"].clone();
    assert_eq!(stored["email"], "m***@example.it", "{stored}");
    assert!(
        !p.to_string().contains("mario.rossi@"),
        "no address unmasked"
    );
    assert!(!p.to_string().contains("3471234567"), "no number unmasked");

    // Every message, with the words stored before its first attempt.
    let messages = p["messages"].as_array().expect("messages");
    let out = c.dir.join("out");
    let rows =
        sqlx::query("SELECT id, rendered FROM outbox WHERE rendered IS NOT NULL ORDER BY id")
            .fetch_all(c.store.pool())
            .await
            .expect("rows");
    assert_eq!(rows.len(), messages.len(), "{messages:#?}");
    let (mut sms, mut email) = (0, 0);
    for (m, r) in messages.iter().zip(&rows) {
        let id: i64 = r.get("id");
        let kept: Value = serde_json::from_str(&r.get::<String, _>("rendered")).expect("json");
        assert_eq!(m["id"], id);
        let words = &m["words"];
        for key in ["subject", "text", "html", "template", "version"] {
            assert_eq!(words[key], kept[key], "message {id}: {key}");
        }
        assert_eq!(m["state"], "delivered", "{m}");
        let log = m["attempt_log"].as_array().expect("attempts");
        assert_eq!(log.len(), 1, "{m}");
        assert_eq!(log[0]["attempt"], 1);
        assert_eq!(log[0]["channel"], m["channel"]);
        let files = written(&out, id);
        assert_eq!(files.len(), 1, "message {id}: {files:?}");
        let file = std::fs::read_to_string(&files[0]).expect("file");
        match m["channel"].as_str() {
            Some("sms") => {
                sms += 1;
                assert_eq!(m["recipient"], "citizen");
                assert_eq!(m["address"], "+39***567");
                let sent: Value = serde_json::from_str(&file).expect("sms file");
                assert_eq!(words["sms"]["text"], sent["text"], "the SMS as it went");
                assert_eq!(words["sms"]["parts"], sent["parts"]);
                assert_eq!(
                    words["sms"]["encoding"].as_str().map(str::to_lowercase),
                    sent["encoding"].as_str().map(str::to_owned)
                );
            }
            Some("email") => {
                email += 1;
                assert_eq!(words["sms"], Value::Null);
                let subject = common::mail::header(&file, "Subject").expect("subject");
                assert!(!subject.is_empty());
                let plain = common::mail::part(&file, "text/plain").expect("text part");
                // The e-mail's text part is the stored text (the reader of the part stops at
                // the `--` line that opens the signature, as at a MIME boundary).
                let stored = words["text"].as_str().expect("text");
                let sent = plain.trim_end();
                assert!(
                    sent.len() > 100 && stored.starts_with(sent),
                    "{sent}\n---\n{stored}"
                );
            }
            other => panic!("channel {other:?}"),
        }
    }
    assert!(sms >= 2 && email >= 1, "sms {sms}, e-mail {email}");
    assert_eq!(p["replies"], json!([]));
    assert_eq!(p["truncated"], json!([]));
    assert_eq!(p["links"]["revoked_at"], Value::Null);

    // An unknown ticket, an unknown parameter.
    let (status, _) = s.get("/api/v1/admin/tickets/2026%2F999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, v) = s.get(&format!("{PAGE}?colour=red")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["field"], "colour");
}

async fn contacts_are_shown_to_editors_and_audited(w: &World) {
    let c = &w.c;
    let reveal = format!("{PAGE}?reveal=contacts");
    let viewer = c.session("vito").await;
    let (status, v) = viewer.get(&reveal).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let audited = "SELECT COUNT(*) FROM audit_log WHERE action = 'contacts.revealed'";
    assert_eq!(c.count(audited).await, 0);

    let editor = c.session("elena").await;
    let (status, masked) = editor.get(PAGE).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(masked["ticket"]["citizen"]["revealed"], false);
    assert_eq!(masked["actions_allowed"], true);
    assert_eq!(c.count(audited).await, 0, "reading masked is not audited");
    let (status, p) = editor.get(&reveal).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let citizen = &p["ticket"]["citizen"];
    assert_eq!(citizen["email"], "mario.rossi@example.it");
    assert_eq!(citizen["mobile"], "+393471234567");
    assert_eq!(citizen["fiscal_code"], "RSSMRA80A01H501U");
    assert_eq!(citizen["revealed"], true);
    let sms = p["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["channel"] == "sms")
        .expect("an SMS");
    assert_eq!(sms["address"], "+393471234567");
    assert_eq!(c.count(audited).await, 1);
    let row = sqlx::query("SELECT actor, object FROM audit_log WHERE action = 'contacts.revealed'")
        .fetch_one(c.store.pool())
        .await
        .expect("audit");
    assert_eq!(row.get::<String, _>("actor"), "elena");
    assert_eq!(row.get::<String, _>("object"), NUMBER);
    // The page lists it.
    assert_eq!(
        p["audit"][0]["action"], "contacts.revealed",
        "{}",
        p["audit"]
    );
    assert_eq!(p["audit"][0]["actor"], "elena");
    // No record for a ticket that is not there.
    let (status, _) = editor
        .get("/api/v1/admin/tickets/2026%2F999999?reveal=contacts")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(c.count(audited).await, 1);
}

async fn attachments_are_downloaded_by_editors(w: &World) {
    let c = &w.c;
    let pdf = b"%PDF-1.4 ricevuta".to_vec();
    let kept = messo::inbound::files::save(
        &w.attachments,
        1024,
        "../../ricevuta pagamento è.pdf",
        "application/pdf",
        &pdf,
    )
    .await
    .expect("save");
    let big = messo::inbound::files::save(&w.attachments, 4, "grande.bin", "x/y", b"0123456789")
        .await
        .expect("save");
    let parsed = Parsed {
        route: Route::Mail,
        external_id: "<r1@example.it>".into(),
        sender: Some("mario.rossi@example.it".into()),
        subject: Some("Re: Rimborso TARI".into()),
        text: Some("Ecco la ricevuta.".into()),
        attachments: vec![kept.clone(), big],
        ..Parsed::default()
    };
    let ticket_id: i64 = sqlx::query_scalar("SELECT id FROM tickets WHERE number = $1")
        .bind(NUMBER)
        .fetch_one(c.store.pool())
        .await
        .expect("ticket");
    let now = c.now().0;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO inbound_messages (endpoint, route, external_id, received_at, sender, \
         parsed, status, outcome, ticket_id, next_try_at) \
         VALUES ('imap', 'mail', 'r1', $1, 'mario.rossi@example.it', $2, 'done', 'note', $3, $1) \
         RETURNING id",
    )
    .bind(now)
    .bind(serde_json::to_string(&parsed).expect("json"))
    .bind(ticket_id)
    .fetch_one(c.store.pool())
    .await
    .expect("inbound");

    // The page lists the reply and its attachments, the sender masked for a viewer.
    let viewer = c.session("vito").await;
    let (_, p) = viewer.get(PAGE).await;
    let reply = &p["replies"][0];
    assert_eq!(reply["id"], id);
    assert_eq!(reply["sender"], "m***@example.it");
    assert_eq!(reply["text"], "Ecco la ricevuta.");
    assert_eq!(
        reply["attachments"][0],
        json!({"index": 0, "name": "ricevuta pagamento è.pdf", "content_type": "application/pdf",
               "size": pdf.len(), "sha256": kept.sha256, "stored": true})
    );
    assert_eq!(reply["attachments"][1]["stored"], false);

    let path = |i: usize| format!("/api/v1/admin/inbound/{id}/attachments/{i}");
    let audited = "SELECT COUNT(*) FROM audit_log WHERE action = 'attachment.downloaded'";
    assert_eq!(
        viewer.get_raw(&path(0)).await.status(),
        StatusCode::FORBIDDEN
    );
    let editor = c.session("elena").await;
    let r = editor.get_raw(&path(0)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers();
    assert_eq!(h["content-type"], "application/octet-stream");
    assert_eq!(
        h["content-disposition"],
        "attachment; filename*=UTF-8''ricevuta%20pagamento%20%C3%A8.pdf"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "sandbox; default-src 'none'");
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), pdf);
    assert_eq!(c.count(audited).await, 1);
    let object: String =
        sqlx::query_scalar("SELECT object FROM audit_log WHERE action = 'attachment.downloaded'")
            .fetch_one(c.store.pool())
            .await
            .expect("audit");
    assert_eq!(object, NUMBER);
    // Not kept (over the size limit), past the last one, an unknown reply: 404, not audited.
    for p in [
        path(1),
        path(2),
        format!("/api/v1/admin/inbound/{}/attachments/0", id + 1000),
    ] {
        assert_eq!(
            editor.get_raw(&p).await.status(),
            StatusCode::NOT_FOUND,
            "{p}"
        );
    }
    assert_eq!(
        editor
            .get_raw(&format!("/api/v1/admin/inbound/{id}/attachments/x"))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(c.count(audited).await, 1);
}

on_both!(start;
    the_page_shows_the_exact_words_and_their_fate,
    contacts_are_shown_to_editors_and_audited,
    attachments_are_downloaded_by_editors,
);
