//! kill -9 the daemon while it sends 1,000 SMS through a REST-IT provider (a stub on loopback that
//! keeps what it received and answers the status query); restart it. Every message ends
//! delivered, none is lost, and none is sent twice: the messages in flight at the kill are
//! settled by asking the provider about their order id, not by sending again.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use common::daemon::{run_in, run_then_kill_9, shipped_config, spawn, sqlite_url, stop};
use common::db::count;
use common::process::{eventually, free_port};
use common::{fresh_dir, serve};
use messo::domain::{Address, Channel, Kind, Lang, Recipient};
use messo::store::{NewOutbox, Store};
use serde_json::{Value, json};

const MESSAGES: usize = 1000;

type Seen = Arc<Mutex<HashMap<String, u32>>>;

async fn send(State(seen): State<Seen>, body: String) -> (StatusCode, String) {
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let order = v["order_id"].as_str().unwrap_or("").to_owned();
    // A provider that takes a few milliseconds, so the kill finds messages in flight.
    tokio::time::sleep(Duration::from_millis(3)).await;
    *seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(order.clone())
        .or_default() += 1;
    (
        StatusCode::CREATED,
        json!({"result": "OK", "order_id": order}).to_string(),
    )
}

async fn status(State(seen): State<Seen>, Path(order): Path<String>) -> (StatusCode, String) {
    let known = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains_key(&order);
    if known {
        (
            StatusCode::OK,
            json!({"result": "OK", "recipient_number": 1, "recipients": [{"status": "DLVRD"}]})
                .to_string(),
        )
    } else {
        (StatusCode::NOT_FOUND, String::new())
    }
}

#[test]
fn kill_9_while_sending_sms_loses_nothing_and_sends_nothing_twice() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/API/v1.0/REST/sms", post(send))
        .route("/API/v1.0/REST/sms/{order}", get(status))
        .with_state(Arc::clone(&seen));
    let stub = rt.block_on(serve(app));

    let dir = fresh_dir("messo-crash-sms");
    let config_text = shipped_config(free_port()).replace("sms = \"file\"", "sms = \"http\"")
        + &format!(
            "\n[sms]\nsender = \"ComuneRoma\"\n[[sms.providers]]\nname = \"stub\"\nkind = \"rest-it\"\n\
             base_url = \"{stub}/API/v1.0/REST\"\nuser_key = \"u\"\naccess_token = \"t\"\n\
             concurrency = 16\n"
        );
    std::fs::write(dir.join("messo.toml"), &config_text).expect("config");
    let url = sqlite_url(&dir);

    // The messages are owed before the daemon starts (directly: this test is about delivery,
    // whatever the day and the SMS window).
    let store = rt.block_on(async {
        let store = Store::connect(&url).await.expect("store");
        store.migrate().await.expect("migrate");
        let config =
            messo::config::Config::from_toml(&config_text, "test", Vec::new()).expect("config");
        let now = messo::time::Timestamp::from_chrono(&chrono::Utc::now());
        store.register_config(&config, now).await.expect("register");
        let ticket = messo::ticket::NewTicket::from_json(&json!({
            "number": "SMS-CRASH",
            "office": "anagrafe",
            "priority": "normale",
            "subject": "Certificato",
            "received_at": now.to_string(),
            // The ticket's own receipt goes by e-mail (into a file): the SMS are the 1,000 below.
            "citizen": {"email": "anna@example.it"}
        }))
        .expect("ticket");
        let id = store
            .tickets()
            .create_ticket(&ticket, messo::ticket::Source::Api, now)
            .await
            .expect("ticket")
            .ticket()
            .id;
        for i in 0..MESSAGES {
            store
                .outbox()
                .insert_message(
                    &NewOutbox {
                        ticket_id: id,
                        kind: Kind::Avanzamento,
                        dedupe_key: format!("step:{i}"),
                        recipient: Recipient::Citizen,
                        channel: Channel::Sms,
                        address: Address::parse(Channel::Sms, &format!("+39347{i:07}"))
                            .expect("a number"),
                        language: Lang::It,
                        payload: json!({"number": "SMS-CRASH", "text": format!("passo {i}")}),
                        not_before: now,
                    },
                    now,
                )
                .await
                .expect("owe");
        }
        store
    });

    let received = || {
        seen.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    };
    let at_kill = run_then_kill_9(&dir, 100, received);
    assert!(
        at_kill < MESSAGES,
        "the kill came too late to test anything"
    );

    let second = spawn(&mut run_in(&dir), &dir);
    eventually(Duration::from_secs(120), || {
        let delivered = rt.block_on(count(
            &store,
            "SELECT COUNT(*) FROM outbox WHERE channel = 'sms' AND state = 'delivered'",
        ));
        if delivered == MESSAGES as i64 {
            return Ok(());
        }
        let depth = rt.block_on(store.monitor().outbox_depth()).expect("depth");
        Err(format!("not all delivered: {depth:?}"))
    });
    let (clean, log) = stop(second);
    assert!(clean, "{log}");

    let seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert_eq!(seen.len(), MESSAGES, "every message reached the provider");
    let twice = seen.values().filter(|n| **n > 1).count();
    let in_doubt = rt.block_on(count(
        &store,
        "SELECT COUNT(*) FROM delivery_attempts WHERE provider = 'stub:query'",
    ));
    let settled_by_query = rt.block_on(count(
        &store,
        "SELECT COUNT(*) FROM delivery_attempts WHERE provider = 'stub:query' AND outcome = 'delivered'",
    ));
    assert_eq!(twice, 0, "no SMS was sent twice");
    assert!(in_doubt > 0, "some messages were in flight at the kill");
    println!(
        "kill -9 after {at_kill} of {MESSAGES} SMS; after restart all delivered; {in_doubt} asked about \
         (in flight at the kill), {settled_by_query} of them found already delivered; 0 sent twice"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
