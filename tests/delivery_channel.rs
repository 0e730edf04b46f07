//! `delivery::Channel` is the extension point for a new way of reaching people: a channel
//! written outside the crate, registered for one `domain::Channel`, receives exactly the
//! messages owed on it, and the dispatcher records its outcome like any other (SQLite and
//! PostgreSQL).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::{Backend, TestDb, on_both};
use messo::delivery::dispatch::Dispatcher;
use messo::delivery::{Channel, DoubtPolicy, OutMessage, Outcome, Sending, Sent};
use messo::domain::Channel as ChannelName;
use messo::domain::{Address, Kind, Lang, Recipient};
use messo::store::NewOutbox;
use messo::time::{Clock, Timestamp};
use serde_json::json;

/// A channel that keeps what it is given: what an App IO or a fax channel would be, minus the
/// network.
#[derive(Clone, Default)]
struct Recorder {
    got: Arc<Mutex<Vec<(String, String, bool)>>>,
}

impl Channel for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }

    fn concurrency(&self) -> usize {
        2
    }

    fn doubt_policy(&self) -> DoubtPolicy {
        DoubtPolicy::Hold
    }

    fn ready(&self, _now: Instant) -> bool {
        true
    }

    fn send<'a>(&'a self, msg: &'a OutMessage, in_doubt: bool) -> Sending<'a> {
        Box::pin(async move {
            self.got.lock().expect("lock").push((
                msg.address.to_string(),
                msg.text.clone(),
                in_doubt,
            ));
            Sent::one(
                "recorder",
                Outcome::Delivered {
                    provider_id: Some(format!("rec-{}", msg.outbox_id)),
                    code: None,
                },
                Instant::now(),
                0,
            )
        })
    }
}

fn owed(channel: ChannelName, address: &str, key: &str) -> NewOutbox {
    NewOutbox {
        ticket_id: 0,
        kind: Kind::RispostaNonAbbinata,
        dedupe_key: key.to_owned(),
        recipient: Recipient::Citizen,
        channel,
        address: Address::parse(channel, address).expect("an address"),
        language: Lang::It,
        payload: json!({"number": "", "example": "2026/000123", "office_phone": "06 0606"}),
        not_before: Timestamp(1_800_000_000),
    }
}

async fn start(backend: Backend) -> TestDb {
    TestDb::open(backend).await
}

on_both!(start; a_new_channel_gets_its_messages_only);

async fn a_new_channel_gets_its_messages_only(db: &TestDb) {
    let store = &db.store;
    let now = Timestamp(1_800_000_000);
    let dir = db.dir.join("outbox");
    let sms = store
        .insert_message(&owed(ChannelName::Sms, "+393471234567", "a"), now)
        .await
        .expect("insert")
        .expect("an id");
    let email = store
        .insert_message(
            &owed(ChannelName::Email, "mario.rossi@example.it", "b"),
            now,
        )
        .await
        .expect("insert")
        .expect("an id");
    let recorder = Recorder::default();
    let d = Dispatcher::files(store.clone(), &dir, "urp@comune.example.it", "Roma")
        .expect("dispatcher")
        .with_channel(ChannelName::Sms, Box::new(recorder.clone()));
    let clock: Clock = Arc::new(move || now);
    let report = Arc::new(d).drain(&clock, 100).await.expect("drain");
    assert_eq!(report.delivered, 2, "{report:?}");
    let got = recorder.got.lock().expect("lock").clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "+393471234567");
    assert!(got[0].1.contains("2026/000123"), "{}", got[0].1);
    assert!(!got[0].2, "a first attempt is not in doubt");
    let state = store.delivery_state(sms).await.expect("read").expect("row");
    assert_eq!(state.state, "delivered");
    assert_eq!(state.provider.as_deref(), Some("recorder"));
    assert_eq!(state.provider_id.as_deref(), Some(&*format!("rec-{sms}")));
    // The e-mail went through the file channel as before.
    let state = store
        .delivery_state(email)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(state.provider.as_deref(), Some("file"));
}
