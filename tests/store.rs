//! The ticket store, the same suite on SQLite (a temporary file) and on the machine's real
//! PostgreSQL (a fresh schema per test in database `test`; override the server with
//! MESSO_TEST_PG_URL).

mod common;

use std::sync::atomic::Ordering;

use common::{Backend, TestDb, on_both, ts};
use messo::config::{BUILTIN_TOML, Config};
use messo::domain::{Address, Channel, Kind, Lang, Recipient};
use messo::store::{ListQuery, Outcome, Store, TicketError};
use messo::ticket::{NewEvent, NewTicket, Source};
use serde_json::{Value, json};

fn config(env: Vec<(String, String)>) -> Config {
    Config::from_toml(BUILTIN_TOML, "built-in", env).expect("config")
}

/// A migrated store with the built-in configuration registered.
async fn start(backend: Backend) -> TestDb {
    TestDb::with_config(backend, &config(Vec::new())).await
}

on_both!(start;
    creating_computes_the_deadline_and_is_idempotent,
    events_drive_the_clock_and_bad_ones_change_nothing,
    a_policy_edit_never_moves_a_promised_deadline,
    direct_writes_are_validated_and_never_loop,
    lists_filter_by_state_and_page,
    the_next_check_index_finds_what_came_due,
    a_result_is_written_only_under_its_own_lease,
    a_batch_of_results_and_words_is_kept_exactly,
    a_lease_and_its_words_are_committed_together,
);

fn ticket_body(number: &str, received_at: &str, priority: &str) -> Value {
    json!({
        "number": number,
        "office": "anagrafe",
        "priority": priority,
        "subject": "Certificato di residenza",
        "received_at": received_at,
        "citizen": {"email": "mario.rossi@example.it", "mobile": "+393471234567"}
    })
}

fn new_ticket(number: &str, received_at: &str, priority: &str) -> NewTicket {
    NewTicket::from_json(&ticket_body(number, received_at, priority)).expect("valid ticket")
}

fn event(v: Value) -> NewEvent {
    NewEvent::from_json(&v).expect("valid event")
}

async fn creating_computes_the_deadline_and_is_idempotent(store: &Store) {
    let now = ts("2026-03-02T10:15:00+01:00");
    let t = new_ticket("2026/000001", "2026-03-02T10:15:00+01:00", "urgente");
    let created = store
        .tickets()
        .create_ticket(&t, Source::Api, now)
        .await
        .expect("create");
    let Outcome::Created(rec) = &created else {
        panic!("expected Created, got {created:?}")
    };
    // Urgente, received Monday 10:15: 8 business hours → Tuesday 10:15.
    assert_eq!(rec.sla.due_at, Some(ts("2026-03-03T10:15:00+01:00")));
    assert_eq!(rec.sla.state, "running");
    assert_eq!(rec.sla.target_s, 28_800);
    // Warning at 6 h: Monday 16:15.
    assert_eq!(rec.sla.next_check_at, Some(ts("2026-03-02T16:15:00+01:00")));

    let again = store
        .tickets()
        .create_ticket(&t, Source::Api, now)
        .await
        .expect("again");
    assert!(matches!(again, Outcome::Unchanged(ref r) if r.id == rec.id));

    let mut other = ticket_body("2026/000001", "2026-03-02T10:15:00+01:00", "urgente");
    other["subject"] = json!("Altro oggetto");
    let other = NewTicket::from_json(&other).expect("valid");
    match store
        .tickets()
        .create_ticket(&other, Source::Api, now)
        .await
    {
        Err(TicketError::Conflict(m)) => assert!(m.contains("subject"), "{m}"),
        r => panic!("expected a conflict, got {r:?}"),
    }
    let events = store.tickets().events(rec.id).await.expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "received");
}

async fn events_drive_the_clock_and_bad_ones_change_nothing(store: &Store) {
    let n = "2026/000002";
    let t = new_ticket(n, "2026-03-02T10:15:00+01:00", "urgente");
    store
        .tickets()
        .create_ticket(&t, Source::Api, ts("2026-03-02T10:15:00+01:00"))
        .await
        .expect("create");

    // Not waiting yet: a reply is refused and nothing is recorded.
    let reply = event(
        json!({"kind": "integration_received", "at": "2026-03-04T09:30:00+01:00", "channel": "sms", "text": "inviato"}),
    );
    let early = event(
        json!({"kind": "integration_received", "at": "2026-03-02T10:20:00+01:00", "channel": "sms"}),
    );
    let r = store
        .tickets()
        .append_event(
            n,
            &early,
            None,
            Source::Api,
            ts("2026-03-02T10:30:00+01:00"),
        )
        .await;
    assert!(matches!(r, Err(TicketError::Conflict(_))), "{r:?}");

    let request = event(
        json!({"kind": "integration_requested", "at": "2026-03-02T11:00:00+01:00", "missing": "copia del documento d'identità"}),
    );
    let paused = store
        .tickets()
        .append_event(
            n,
            &request,
            None,
            Source::Api,
            ts("2026-03-02T11:00:00+01:00"),
        )
        .await
        .expect("request");
    assert_eq!(paused.ticket().sla.state, "paused");
    assert_eq!(paused.ticket().sla.due_at, None);
    assert_eq!(paused.ticket().sla.next_check_at, None);
    // The same event again is recorded once.
    let dup = store
        .tickets()
        .append_event(
            n,
            &request,
            None,
            Source::Crm,
            ts("2026-03-02T11:05:00+01:00"),
        )
        .await
        .expect("duplicate");
    assert!(matches!(dup, Outcome::Unchanged(_)));

    let resumed = store
        .tickets()
        .append_event(
            n,
            &reply,
            Some("reply-1"),
            Source::Webhook,
            ts("2026-03-04T09:30:00+01:00"),
        )
        .await
        .expect("reply");
    // The spec's example: 45 min on Monday, then 7 h 15 min from Wednesday 09:30.
    assert_eq!(
        resumed.ticket().sla.due_at,
        Some(ts("2026-03-04T16:45:00+01:00"))
    );
    assert_eq!(resumed.ticket().sla.state, "running");
    assert_eq!(resumed.ticket().waiting_since, None);

    // Same key, other content: refused.
    let note =
        event(json!({"kind": "note", "at": "2026-03-04T10:00:00+01:00", "text": "telefonata"}));
    let r = store
        .tickets()
        .append_event(
            n,
            &note,
            Some("reply-1"),
            Source::Api,
            ts("2026-03-04T10:00:00+01:00"),
        )
        .await;
    assert!(matches!(r, Err(TicketError::KeyReused(_))), "{r:?}");
    // Unknown ticket, out-of-order event, future event.
    let r = store
        .tickets()
        .append_event(
            "2026/999999",
            &note,
            None,
            Source::Api,
            ts("2026-03-04T10:00:00+01:00"),
        )
        .await;
    assert!(matches!(r, Err(TicketError::NotFound(_))), "{r:?}");
    let old = event(json!({"kind": "note", "at": "2026-03-03T10:00:00+01:00", "text": "x"}));
    let r = store
        .tickets()
        .append_event(n, &old, None, Source::Api, ts("2026-03-04T10:00:00+01:00"))
        .await;
    assert!(matches!(r, Err(TicketError::Invalid(_))), "{r:?}");

    let closed = event(
        json!({"kind": "closed", "at": "2026-03-05T12:00:00+01:00", "text": "certificato inviato"}),
    );
    let rec = store
        .tickets()
        .append_event(
            n,
            &closed,
            None,
            Source::Api,
            ts("2026-03-05T12:00:00+01:00"),
        )
        .await
        .expect("close");
    assert_eq!(rec.ticket().sla.state, "closed");
    assert_eq!(rec.ticket().sla.closed_late, Some(true));
    assert_eq!(rec.ticket().sla.next_check_at, None);

    let kinds: Vec<String> = store
        .tickets()
        .events(rec.ticket().id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "received",
            "integration_requested",
            "integration_received",
            "closed"
        ]
    );
}

async fn a_policy_edit_never_moves_a_promised_deadline(store: &Store) {
    let now = ts("2026-03-02T10:15:00+01:00");
    let before = store
        .tickets()
        .create_ticket(
            &new_ticket("2026/000003", "2026-03-02T10:15:00+01:00", "urgente"),
            Source::Api,
            now,
        )
        .await
        .expect("create")
        .ticket()
        .clone();

    // The administration edits its policy: urgente becomes 2 working days.
    let edited = config(vec![(
        "MESSO_SLA__TARGETS__0__WORKING_DAYS".to_owned(),
        "2".to_owned(),
    )]);
    let (_, new_policy) = store.register_config(&edited, now).await.expect("register");
    assert_ne!(new_policy, before.policy_version);

    // A later event recomputes the old ticket under its own version: same deadline.
    let note = event(
        json!({"kind": "note", "at": "2026-03-02T11:00:00+01:00", "text": "presa in carico"}),
    );
    let after = store
        .tickets()
        .append_event(
            "2026/000003",
            &note,
            None,
            Source::Api,
            ts("2026-03-02T11:00:00+01:00"),
        )
        .await
        .expect("note");
    assert_eq!(after.ticket().sla.due_at, before.sla.due_at);
    assert_eq!(after.ticket().policy_version, before.policy_version);

    // A new ticket opens under the new policy.
    let fresh = store
        .tickets()
        .create_ticket(
            &new_ticket("2026/000004", "2026-03-02T10:15:00+01:00", "urgente"),
            Source::Api,
            now,
        )
        .await
        .expect("create");
    assert_eq!(
        fresh.ticket().sla.due_at,
        Some(ts("2026-03-04T10:15:00+01:00"))
    );

    // Rebaselining moves the old one on purpose, and says so in its history.
    let moved = store
        .tickets()
        .rebaseline(
            Some("2026/000003"),
            "delibera di giunta n. 12",
            ts("2026-03-02T12:00:00+01:00"),
        )
        .await
        .expect("rebaseline");
    assert_eq!(moved, 1);
    let t = store
        .tickets()
        .ticket("2026/000003")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(t.policy_version, new_policy);
    assert_eq!(t.sla.due_at, Some(ts("2026-03-04T10:15:00+01:00")));
    let events = store.tickets().events(t.id).await.expect("events");
    let last = events.last().expect("event");
    assert_eq!(last.kind, "rebaselined");
    assert_eq!(last.data["reason"], "delibera di giunta n. 12");
    // Nothing left to move.
    assert_eq!(
        store
            .tickets()
            .rebaseline(None, "again", ts("2026-03-02T12:05:00+01:00"))
            .await
            .expect("rebaseline"),
        0
    );
}

async fn insert_inbox(store: &Store, kind: &str, number: &str, payload: &str, key: Option<&str>) {
    sqlx::query(
        "INSERT INTO crm_inbox (kind, ticket_number, payload, idempotency_key) VALUES ($1, $2, $3, $4)",
    )
    .bind(kind)
    .bind(number)
    .bind(payload)
    .bind(key)
    .execute(store.pool())
    .await
    .expect("insert inbox row");
}

async fn direct_writes_are_validated_and_never_loop(store: &Store) {
    let good = ticket_body("2026/000010", "2026-03-02T10:15:00+01:00", "alta").to_string();
    let mut bad = ticket_body("2026/000011", "2026-03-02T10:15:00+01:00", "Urgent");
    bad["received_at"] = json!("2026-03-02T10:15:00");
    insert_inbox(store, "ticket", "2026/000010", &good, None).await;
    insert_inbox(store, "ticket", "2026/000011", &bad.to_string(), None).await;
    insert_inbox(store, "ticket", "2026/000012", "{not json", None).await;
    insert_inbox(
        store,
        "event",
        "2026/000099",
        r#"{"kind":"note","at":"2026-03-02T11:00:00+01:00","text":"x"}"#,
        None,
    )
    .await;
    insert_inbox(
        store,
        "event",
        "2026/000010",
        r#"{"kind":"integration_requested","at":"2026-03-02T11:00:00+01:00","missing":"delega"}"#,
        Some("crm-1"),
    )
    .await;
    insert_inbox(
        store,
        "event",
        "2026/000010",
        r#"{"kind":"integration_requested","at":"2026-03-02T11:00:00+01:00","missing":"delega"}"#,
        Some("crm-1"),
    )
    .await;
    insert_inbox(store, "bogus", "2026/000010", "{}", None).await;

    let now = ts("2026-03-02T11:01:00+01:00");
    let report = store
        .tickets()
        .process_inbox(now, 100)
        .await
        .expect("process");
    assert_eq!(
        (report.accepted, report.unchanged, report.rejected),
        (2, 1, 4)
    );
    // A second pass finds nothing: rejected rows stay rejected with their reason.
    let again = store
        .tickets()
        .process_inbox(now, 100)
        .await
        .expect("process");
    assert_eq!((again.accepted, again.unchanged, again.rejected), (0, 0, 0));

    let rows = sqlx::query_as::<_, (String, String, Option<String>)>(
        "SELECT ticket_number, status, reason FROM crm_inbox ORDER BY id",
    )
    .fetch_all(store.pool())
    .await
    .expect("rows");
    let reason = |i: usize| rows[i].2.clone().unwrap_or_default();
    assert_eq!(rows[0].1, "accepted");
    assert_eq!(rows[1].1, "rejected");
    assert!(
        reason(1).contains("priority: unknown priority \"Urgent\""),
        "{}",
        reason(1)
    );
    assert!(reason(1).contains("received_at"), "{}", reason(1));
    assert!(reason(2).contains("not valid JSON"), "{}", reason(2));
    assert!(reason(3).contains("not found"), "{}", reason(3));
    assert_eq!(rows[4].1, "accepted");
    assert_eq!(rows[5].1, "accepted");
    assert!(reason(5).contains("duplicate"), "{}", reason(5));
    assert!(reason(6).contains("unknown row kind"), "{}", reason(6));

    let t = store
        .tickets()
        .ticket("2026/000010")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(t.sla.state, "paused");
    assert!(
        store
            .tickets()
            .ticket("2026/000011")
            .await
            .expect("get")
            .is_none()
    );
    let events = store.tickets().events(t.id).await.expect("events");
    assert_eq!(events.iter().filter(|e| e.source == "crm").count(), 2);
}

async fn lists_filter_by_state_and_page(store: &Store) {
    let now = ts("2026-03-06T12:00:00+01:00");
    // Received Monday: urgente is breached by Friday, bassa (7 days) is running.
    for i in 0..5 {
        let prio = if i % 2 == 0 { "urgente" } else { "bassa" };
        let t = new_ticket(&format!("L-{i}"), "2026-03-02T10:00:00+01:00", prio);
        store
            .tickets()
            .create_ticket(&t, Source::Api, now)
            .await
            .expect("create");
    }
    let breached = store
        .tickets()
        .list_tickets(&ListQuery {
            state: Some("breached".into()),
            limit: 2,
            ..ListQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(
        breached
            .iter()
            .map(|t| t.number.as_str())
            .collect::<Vec<_>>(),
        ["L-0", "L-2"]
    );
    let rest = store
        .tickets()
        .list_tickets(&ListQuery {
            state: Some("breached".into()),
            after: breached.last().map(|t| t.id),
            limit: 2,
            ..ListQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(
        rest.iter().map(|t| t.number.as_str()).collect::<Vec<_>>(),
        ["L-4"]
    );
    let other_office = store
        .tickets()
        .list_tickets(&ListQuery {
            office: Some("tributi".into()),
            limit: 50,
            ..ListQuery::default()
        })
        .await
        .expect("list");
    assert!(other_office.is_empty());
}

async fn the_next_check_index_finds_what_came_due(store: &Store) {
    let created_at = ts("2026-03-02T10:00:00+01:00");
    let t = new_ticket("N-1", "2026-03-02T10:00:00+01:00", "urgente");
    let rec = store
        .tickets()
        .create_ticket(&t, Source::Api, created_at)
        .await
        .expect("create");
    let warn = rec.ticket().sla.next_check_at.expect("a warning instant");
    assert_eq!(warn, ts("2026-03-02T16:00:00+01:00"));
    // A write marks the ticket for a look at once; the look sets its real next instant.
    assert_eq!(
        store
            .tickets()
            .due_for_check(created_at, 10)
            .await
            .expect("due"),
        vec![rec.ticket().id]
    );
    assert_eq!(
        store
            .tickets()
            .refresh_due(created_at, 10)
            .await
            .expect("refresh"),
        1
    );
    assert!(
        store
            .tickets()
            .due_for_check(warn.plus(-1), 10)
            .await
            .expect("due")
            .is_empty()
    );
    assert_eq!(
        store.tickets().due_for_check(warn, 10).await.expect("due"),
        vec![rec.ticket().id]
    );
    assert_eq!(
        store
            .tickets()
            .refresh_due(warn, 10)
            .await
            .expect("refresh"),
        1
    );
    let t = store
        .tickets()
        .ticket("N-1")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(t.sla.state, "warning");
    assert_eq!(t.sla.next_check_at, Some(ts("2026-03-03T10:00:00+01:00")));
    assert_eq!(
        store
            .tickets()
            .refresh_due(ts("2026-03-03T10:00:00+01:00"), 10)
            .await
            .expect("refresh"),
        1
    );
    let t = store
        .tickets()
        .ticket("N-1")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(t.sla.state, "breached");
    assert_eq!(t.sla.next_check_at, None);
}

/// Writers whose transactions commit in a different order from their ids, while two pollers
/// run: every row is taken exactly once. An `id > cursor` reader would skip the rows that
/// committed late.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_polling_misses_nothing_with_concurrent_writers() {
    let store = start(Backend::Postgres).await;
    let now = ts("2026-03-02T12:00:00+01:00");
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 25;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let pool = store.pool().clone();
        writers.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                let number = format!("C-{w}-{i}");
                let body = ticket_body(&number, "2026-03-02T10:00:00+01:00", "normale").to_string();
                let mut tx = pool.begin().await.expect("begin");
                sqlx::query("INSERT INTO crm_inbox (kind, ticket_number, payload) VALUES ('ticket', $1, $2)")
                    .bind(&number)
                    .bind(&body)
                    .execute(&mut *tx)
                    .await
                    .expect("insert");
                // Hold the row uncommitted for a while: later ids commit first.
                let pause = ((w * 7 + i * 13) % 9) as u64;
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                tx.commit().await.expect("commit");
            }
        }));
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut pollers = Vec::new();
    for _ in 0..2 {
        let store = store.clone();
        let done = done.clone();
        pollers.push(tokio::spawn(async move {
            let mut taken = 0u64;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let r = store.tickets().process_inbox(now, 7).await.expect("poll");
                assert_eq!(r.rejected, 0);
                assert_eq!(r.unchanged, 0, "a row was taken twice");
                taken += r.accepted;
                if finished && r.accepted == 0 {
                    return taken;
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    done.store(true, Ordering::SeqCst);
    let mut taken = 0;
    for p in pollers {
        taken += p.await.expect("poller");
    }
    let total = (WRITERS * PER_WRITER) as u64;
    assert_eq!(taken, total);
    let tickets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets")
        .fetch_one(store.pool())
        .await
        .expect("count");
    let pending: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM crm_inbox WHERE status <> 'accepted'")
            .fetch_one(store.pool())
            .await
            .expect("count");
    assert_eq!((tickets as u64, pending), (total, 0));
    store.finish().await;
}

/// A worker whose lease expired (it stalled; another took the row over, in doubt) cannot
/// overwrite the row with its late result; the new holder's result is the one written.
async fn a_result_is_written_only_under_its_own_lease(store: &Store) {
    let t0 = ts("2026-03-02T10:15:00+01:00");
    let rec = store
        .tickets()
        .create_ticket(
            &new_ticket("L-1", "2026-03-02T10:15:00+01:00", "normale"),
            Source::Api,
            t0,
        )
        .await
        .expect("create");
    let id = rec.ticket().id;
    let owed = messo::store::NewOutbox {
        ticket_id: id,
        kind: Kind::Ricevuta,
        dedupe_key: "k".to_owned(),
        recipient: Recipient::Citizen,
        channel: Channel::Email,
        address: Address::parse(Channel::Email, "mario.rossi@example.it").expect("an address"),
        language: Lang::It,
        payload: json!({"number": "L-1"}),
        not_before: t0,
    };
    let row_id = store
        .outbox()
        .insert_message(&owed, t0)
        .await
        .expect("insert")
        .expect("id");
    let first = store
        .outbox()
        .lease_outbox(t0, 10, 60, Some(&[Channel::Email]))
        .await
        .expect("lease")
        .rows;
    assert_eq!(
        (first.len(), first[0].in_doubt, first[0].attempts),
        (1, false, 1)
    );
    // Nothing more to lease while the lease holds; after it expires, the row comes back in doubt.
    assert!(
        store
            .outbox()
            .lease_outbox(t0.plus(30), 10, 60, None)
            .await
            .expect("lease")
            .is_empty()
    );
    let second = store
        .outbox()
        .lease_outbox(t0.plus(61), 10, 60, None)
        .await
        .expect("lease")
        .rows;
    assert_eq!(
        (second.len(), second[0].in_doubt, second[0].attempts),
        (1, true, 2)
    );
    assert_ne!(first[0].lease_token, second[0].lease_token);
    let result = |token: i64, state: &'static str| messo::store::Finished {
        id: row_id,
        lease_token: token,
        attempt: 1,
        channel: "email".to_owned(),
        attempts: vec![],
        state,
        not_before: None,
        error: Some(state.to_owned()),
        provider: Some("smtp".to_owned()),
        provider_id: None,
        in_doubt: false,
        resent: false,
        refund: false,
        delivered_at: None,
        replacement: None,
    };
    store
        .outbox()
        .finish(t0.plus(62), &[result(first[0].lease_token, "dead")])
        .await
        .expect("finish");
    let s = store
        .outbox()
        .delivery_state(row_id)
        .await
        .expect("state")
        .expect("row");
    assert_eq!(s.state, "sending", "the stale result changed nothing");
    store
        .outbox()
        .finish(t0.plus(63), &[result(second[0].lease_token, "delivered")])
        .await
        .expect("finish");
    let s = store
        .outbox()
        .delivery_state(row_id)
        .await
        .expect("state")
        .expect("row");
    assert_eq!((s.state.as_str(), s.attempts), ("delivered", 2));
}

/// The dispatcher's lease: on PostgreSQL the lease and the words of its rows are one
/// transaction (no row is out with no words kept; a lease dropped before its commit leaves the
/// rows due, as they were); on SQLite the lease is committed at once and stands.
async fn a_lease_and_its_words_are_committed_together(db: &TestDb) {
    use messo::store::NewOutbox;
    use messo::templates::RenderedMessage;
    let store = &db.store;
    let t0 = ts("2026-03-02T10:15:00+01:00");
    let rec = store
        .tickets()
        .create_ticket(
            &new_ticket("W-1", "2026-03-02T10:15:00+01:00", "normale"),
            Source::Api,
            t0,
        )
        .await
        .expect("create");
    for i in 0..3 {
        let owed = NewOutbox {
            ticket_id: rec.ticket().id,
            kind: Kind::Ricevuta,
            dedupe_key: format!("w{i}"),
            recipient: Recipient::Citizen,
            channel: Channel::Email,
            address: Address::parse(Channel::Email, &format!("w{i}@example.it"))
                .expect("an address"),
            language: Lang::It,
            payload: json!({"number": "W-1"}),
            not_before: t0,
        };
        store
            .outbox()
            .insert_message(&owed, t0)
            .await
            .expect("insert");
    }
    // Words of about 15 KB (one to a statement) or 1 KB (several to a statement), with what
    // SQL and JSON must carry untouched.
    let words_of = |id: i64, repeat: usize| RenderedMessage {
        subject: format!("Ricevuta {id} \"n\" — perché"),
        text: "Gentile cittadino,\n\tla pratica è registrata. C:\\ 'ok' ✓".to_owned(),
        html: Some("<p>È registrata &amp; \"citata\".</p>".repeat(repeat)),
        template: "cittadino/ricevuta/it".to_owned(),
        version: 1,
        attachments: Vec::new(),
    };
    let words = |id: i64| words_of(id, 400);
    let outbox = store.outbox();
    let (mut lease, leased) = outbox.begin_lease(t0, 10, 60, None).await.expect("lease");
    assert_eq!(leased.rows.len(), 3);
    let kept: Vec<(i64, RenderedMessage)> =
        leased.rows.iter().map(|r| (r.id, words(r.id))).collect();
    lease.save_rendered(&kept).await.expect("words");
    // While the lease is open, another dispatcher takes none of its rows.
    assert!(
        outbox
            .lease_outbox(t0, 10, 60, None)
            .await
            .expect("lease")
            .is_empty()
    );
    drop(lease);
    let again = outbox.lease_outbox(t0, 10, 60, None).await.expect("lease");
    match db.backend {
        Backend::Postgres => {
            // Undone: the rows are due as they were, not in doubt, with no words kept.
            let seen: Vec<(i64, bool, bool)> = again
                .rows
                .iter()
                .map(|r| (r.attempts, r.in_doubt, r.rendered.is_some()))
                .collect();
            assert_eq!(seen, vec![(1, false, false); 3]);
        }
        Backend::Sqlite => {
            // Committed at once: the lease stands, and once it expires the rows come back in
            // doubt with the words first kept.
            assert!(again.is_empty());
            let back = outbox
                .lease_outbox(t0.plus(61), 10, 60, None)
                .await
                .expect("lease");
            for r in &back.rows {
                assert_eq!((r.attempts, r.in_doubt), (2, true));
                assert_eq!(r.rendered.as_ref(), Some(&words(r.id)));
            }
            assert_eq!(back.rows.len(), 3);
        }
    }
    // Committed, the words are there for every later attempt.
    let (mut lease, leased) = outbox
        .begin_lease(t0.plus(200), 10, 60, None)
        .await
        .expect("lease");
    assert_eq!(leased.rows.len(), 3);
    let kept: Vec<(i64, RenderedMessage)> = leased
        .rows
        .iter()
        .map(|r| (r.id, words_of(r.id, 25)))
        .collect();
    lease.save_rendered(&kept).await.expect("words");
    lease.commit().await.expect("commit");
    for (id, w) in &kept {
        let (row, state) = outbox.outbox_row(*id).await.expect("read").expect("row");
        // On SQLite the rows already had the words first kept, which are never replaced.
        let expected = match db.backend {
            Backend::Postgres => w.clone(),
            Backend::Sqlite => words(*id),
        };
        assert_eq!(row.expect("readable").rendered, Some(expected));
        assert_eq!(state, "sending");
    }
}

/// The dispatcher's two batched writes, with more rows than one PostgreSQL statement carries:
/// the words of each message are kept exactly (and never replaced once kept); each result writes
/// its attempts, its state only under its own lease, and the replacement it owes.
async fn a_batch_of_results_and_words_is_kept_exactly(db: &TestDb) {
    let store = db.store.clone();
    use messo::store::{AttemptRecord, Finished, NewOutbox};
    use messo::templates::RenderedMessage;
    const N: usize = 60;
    let t0 = ts("2026-03-02T10:15:00+01:00");
    let rec = store
        .tickets()
        .create_ticket(
            &new_ticket("B-1", "2026-03-02T10:15:00+01:00", "normale"),
            Source::Api,
            t0,
        )
        .await
        .expect("create");
    let ticket_id = rec.ticket().id;
    let owed = |i: usize, channel: Channel| NewOutbox {
        ticket_id,
        kind: Kind::Ricevuta,
        dedupe_key: format!("k{i}"),
        recipient: Recipient::Citizen,
        channel,
        address: match channel {
            Channel::Sms => Address::parse(channel, &format!("+39347{i:07}")),
            _ => Address::parse(channel, &format!("c{i}@example.it")),
        }
        .expect("an address"),
        language: Lang::It,
        payload: json!({"number": "B-1"}),
        not_before: t0,
    };
    for i in 0..N {
        store
            .outbox()
            .insert_message(&owed(i, Channel::Email), t0)
            .await
            .expect("insert");
    }
    let rows = store
        .outbox()
        .lease_outbox(t0, 100, 60, None)
        .await
        .expect("lease")
        .rows;
    assert_eq!(rows.len(), N);

    // Words of about 3 KB each, with what JSON and SQL must carry untouched.
    let words = |i: usize, tag: &str| RenderedMessage {
        subject: format!("Ricevuta n. {i} \"{tag}\" — perché"),
        text: format!("Gentile cittadino,\n\tla pratica {i} è registrata. C:\\ 'ok' ✓ {tag}"),
        html: (!i.is_multiple_of(7)).then(|| {
            format!(
                "<p class=\"x\">{}</p>",
                "È lunga &amp; \"citata\" ".repeat(120)
            )
        }),
        template: "cittadino/ricevuta/it".to_owned(),
        version: i as i64,
        attachments: Vec::new(),
    };
    let first: Vec<(i64, RenderedMessage)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id, words(i, "a")))
        .collect();
    store.outbox().save_rendered(&first).await.expect("save");
    let again: Vec<(i64, RenderedMessage)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id, words(i, "b")))
        .collect();
    store
        .outbox()
        .save_rendered(&again)
        .await
        .expect("save again");
    for (id, w) in &first {
        let (row, state) = store
            .outbox()
            .outbox_row(*id)
            .await
            .expect("read")
            .expect("row");
        let row = row.expect("a readable row");
        assert_eq!(row.rendered.as_ref(), Some(w), "the words first kept stay");
        assert_eq!(state, "sending");
    }

    // One result per row: delivered, retried, dead owing an SMS, deferred with no attempt,
    // two attempts in one result, and a stale lease that must change nothing.
    let long_error = format!(
        "452 4.2.2 casella \"piena\" — riprovare più tardi {}",
        "x".repeat(300)
    );
    let attempt = |i: usize, outcome: &'static str| AttemptRecord {
        provider: "smtp".to_owned(),
        outcome,
        code: (outcome != "delivered").then(|| "452".to_owned()),
        provider_id: (outcome == "delivered").then(|| format!("<{i}@messo> \"q\"")),
        error: (outcome != "delivered").then(|| long_error.clone()),
        started_at_ms: 1_772_443_000_000 + i as i64,
        latency_ms: i as i64,
    };
    let results: Vec<Finished> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut f = Finished {
                id: r.id,
                lease_token: r.lease_token,
                attempt: r.attempts,
                channel: r.channel.as_str().to_owned(),
                attempts: vec![attempt(i, "delivered")],
                state: "delivered",
                not_before: None,
                error: None,
                provider: Some("smtp".to_owned()),
                provider_id: Some(format!("<{i}@messo> \"q\"")),
                in_doubt: false,
                resent: false,
                refund: false,
                delivered_at: Some(t0.plus(5)),
                replacement: None,
            };
            match i % 6 {
                1 => {
                    f.state = "retry";
                    f.attempts = vec![attempt(i, "transient")];
                    f.not_before = Some(t0.plus(300));
                    f.error = Some(long_error.clone());
                    (f.provider, f.provider_id, f.delivered_at) = (None, None, None);
                }
                2 => {
                    f.state = "dead";
                    f.attempts = vec![attempt(i, "permanent")];
                    f.error = Some(long_error.clone());
                    f.replacement = Some(NewOutbox {
                        dedupe_key: format!("k{i}/sms"),
                        ..owed(i, Channel::Sms)
                    });
                    (f.provider, f.provider_id, f.delivered_at) = (None, None, None);
                }
                3 => {
                    f.state = "retry";
                    f.attempts = vec![];
                    f.refund = true;
                    f.not_before = Some(t0.plus(60));
                    (f.provider, f.provider_id, f.delivered_at) = (None, None, None);
                }
                4 => {
                    f.attempts = vec![attempt(i, "transient"), attempt(i, "delivered")];
                    f.resent = true;
                }
                5 => f.lease_token = r.lease_token.wrapping_add(1),
                _ => {}
            }
            f
        })
        .collect();
    store
        .outbox()
        .finish(t0.plus(6), &results)
        .await
        .expect("finish");

    for (i, f) in results.iter().enumerate() {
        let s = store
            .outbox()
            .delivery_state(f.id)
            .await
            .expect("state")
            .expect("row");
        let expected = match i % 6 {
            5 => "sending",
            _ => f.state,
        };
        assert_eq!(s.state, expected, "row {i}");
        let attempts_count = if i % 6 == 3 { 0 } else { 1 };
        assert_eq!(
            (s.attempts, s.resent),
            (attempts_count, i64::from(i % 6 == 4)),
            "row {i}"
        );
        if i % 6 != 5 {
            assert_eq!(s.last_error, f.error, "row {i}");
            assert_eq!(s.provider_id, f.provider_id, "row {i}");
        }
        // Attempts are history: written even under a stale lease, field for field.
        let seen = store.outbox().attempts_of(f.id).await.expect("attempts");
        let want: Vec<_> = f
            .attempts
            .iter()
            .map(|a| {
                (
                    1,
                    a.started_at_ms,
                    a.latency_ms,
                    "email".to_owned(),
                    a.provider.clone(),
                    a.outcome.to_owned(),
                    a.code.clone(),
                    a.provider_id.clone(),
                    a.error.clone(),
                )
            })
            .collect();
        let got: Vec<_> = seen
            .into_iter()
            .map(|a| {
                (
                    a.attempt,
                    a.started_at_ms,
                    a.latency_ms,
                    a.channel,
                    a.provider,
                    a.outcome,
                    a.code,
                    a.provider_id,
                    a.error,
                )
            })
            .collect();
        assert_eq!(got, want, "row {i}");
    }
    let sms: Vec<_> = store
        .outbox()
        .outbox_of(ticket_id)
        .await
        .expect("outbox")
        .into_iter()
        .filter(|(_, _, _, channel, _)| channel == "sms")
        .collect();
    assert_eq!(sms.len(), N.div_ceil(6), "one replacement per dead row");
    assert!(sms.iter().all(|(.., state)| state == "pending"));
}
