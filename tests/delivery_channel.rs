//! `delivery::Channel` is the extension point for a new way of reaching people: a channel
//! written outside the crate, registered for one `domain::Channel`, receives exactly the
//! messages owed on it, and the dispatcher records its outcome like any other (SQLite and
//! PostgreSQL).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::{Backend, TestDb, on_both};
use messo::config::{BUILTIN_TOML, Config};
use messo::delivery::dispatch::Dispatcher;
use messo::delivery::{Channel, DoubtPolicy, OutMessage, Outcome, Sending, Sent};
use messo::domain::Channel as ChannelName;
use messo::domain::{Address, Kind, Lang, Recipient};
use messo::store::NewOutbox;
use messo::ticket::{NewTicket, Source};
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
        .outbox()
        .insert_message(&owed(ChannelName::Sms, "+393471234567", "a"), now)
        .await
        .expect("insert")
        .expect("an id");
    let email = store
        .outbox()
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
    let state = store
        .outbox()
        .delivery_state(sms)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(state.state, "delivered");
    assert_eq!(state.provider.as_deref(), Some("recorder"));
    assert_eq!(state.provider_id.as_deref(), Some(&*format!("rec-{sms}")));
    // The e-mail went through the file channel as before.
    let state = store
        .outbox()
        .delivery_state(email)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(state.provider.as_deref(), Some("file"));
}

async fn configured(backend: Backend) -> TestDb {
    let config = Config::from_toml(BUILTIN_TOML, "built-in", Vec::new()).expect("config");
    TestDb::with_config(backend, &config).await
}

on_both!(configured; a_row_this_version_cannot_read_ends_dead_and_the_rest_go_out);

/// Rows with a stored value that no longer parses (an address from an older release, a kind it
/// no longer has) do not stop the dispatcher: each ends dead with what does not parse as its
/// error, the address masked, and nothing is sent for it. A row whose only fault is its address
/// is served by the fallback chain, as when a channel refuses an address.
async fn a_row_this_version_cannot_read_ends_dead_and_the_rest_go_out(db: &TestDb) {
    let store = &db.store;
    let now = Timestamp(1_800_000_000);
    let t = NewTicket::from_json(&json!({
        "number": "2026/000777",
        "office": "anagrafe",
        "priority": "normale",
        "subject": "Cambio di residenza",
        "received_at": "2027-01-15T09:00:00+01:00",
        "citizen": {"email": "mario.rossi@example.it", "mobile": "+393471234567",
                    "preferred_channel": "sms"}
    }))
    .expect("ticket");
    let ticket_id = store
        .tickets()
        .create_ticket(&t, Source::Api, now)
        .await
        .expect("create")
        .ticket()
        .id;
    let step = |key: &str, channel: ChannelName, address: &str| NewOutbox {
        ticket_id,
        kind: Kind::Avanzamento,
        dedupe_key: key.to_owned(),
        recipient: Recipient::Citizen,
        channel,
        address: Address::parse(channel, address).expect("an address"),
        language: Lang::It,
        payload: json!({"number": "2026/000777", "step": "in_lavorazione", "text": "in lavorazione"}),
        not_before: now,
    };
    let mut ids = Vec::new();
    for (key, channel, address) in [
        ("bad-number", ChannelName::Sms, "+393471234567"),
        ("old-kind", ChannelName::Email, "mario.rossi@example.it"),
        ("fine", ChannelName::Email, "mario.rossi@example.it"),
    ] {
        ids.push(
            store
                .outbox()
                .insert_message(&step(key, channel, address), now)
                .await
                .expect("insert")
                .expect("an id"),
        );
    }
    let (bad_number, old_kind, fine) = (ids[0], ids[1], ids[2]);
    // What an older release could have left behind.
    for (sql, value, id) in [
        (
            "UPDATE outbox SET address = $1 WHERE id = $2",
            "mario.rossi@example.it",
            bad_number,
        ),
        (
            "UPDATE outbox SET kind = $1 WHERE id = $2",
            "vecchio_avviso",
            old_kind,
        ),
    ] {
        sqlx::query(sql)
            .bind(value)
            .bind(id)
            .execute(store.pool())
            .await
            .expect("update");
    }
    let recorder = Recorder::default();
    let d = Dispatcher::files(
        store.clone(),
        &db.dir.join("outbox"),
        "urp@comune.example.it",
        "Roma",
    )
    .expect("dispatcher")
    .with_channel(ChannelName::Sms, Box::new(recorder.clone()));
    let clock: Clock = Arc::new(move || now);
    let report = Arc::new(d).drain(&clock, 100).await.expect("drain");
    // The readable row, and the e-mail owed instead of the unreadable SMS.
    assert_eq!(
        (report.delivered, report.dead, report.fallbacks),
        (2, 2, 1),
        "{report:?}"
    );
    assert!(
        recorder.got.lock().expect("lock").is_empty(),
        "nothing went by SMS"
    );
    let state = |id| async move {
        store
            .outbox()
            .delivery_state(id)
            .await
            .expect("read")
            .expect("row")
    };
    assert_eq!(state(fine).await.state, "delivered");
    let s = state(bad_number).await;
    let error = s.last_error.unwrap_or_default();
    assert_eq!(s.state, "dead");
    assert!(
        error.starts_with("outbox: the stored address") && error.contains("is not a phone number"),
        "{error}"
    );
    assert!(
        !error.contains("mario.rossi"),
        "the address is masked: {error}"
    );
    let a = store
        .outbox()
        .attempts_of(bad_number)
        .await
        .expect("attempts");
    assert_eq!(
        a.iter()
            .map(|a| (a.provider.as_str(), a.outcome.as_str(), a.channel.as_str()))
            .collect::<Vec<_>>(),
        [("outbox", "permanent", "sms")]
    );
    let s = state(old_kind).await;
    assert_eq!(s.state, "dead");
    assert_eq!(
        s.last_error.as_deref(),
        Some("outbox: unknown kind \"vecchio_avviso\"")
    );
    let owed = store.outbox().outbox_of(ticket_id).await.expect("outbox");
    assert!(
        owed.iter()
            .any(|(kind, key, rcp, channel, state)| kind == "avanzamento"
                && key == "bad-number>sms"
                && rcp == "citizen"
                && channel == "email"
                && state == "delivered"),
        "{owed:?}"
    );
    assert_eq!(
        owed.len(),
        4,
        "no replacement for the kind no one knows: {owed:?}"
    );
}
