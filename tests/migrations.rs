//! Upgrading a store that already holds data: the SQLite migration that rebuilds the outbox (to
//! let a message be about no ticket) keeps every row, every attempt that points at it, and the
//! foreign keys; the PostgreSQL one alters in place.

mod common;

use std::path::PathBuf;

use common::{Backend, TestDb, on_both};
use messo::store::Store;
use sqlx::Row;

/// A store with no table yet.
async fn empty(backend: Backend) -> TestDb {
    TestDb::connect(backend).await
}

on_both!(empty;
    an_upgrade_keeps_rows_and_foreign_keys,
    a_store_from_a_newer_messo_is_refused,
);

async fn an_upgrade_keeps_rows_and_foreign_keys(db: &TestDb) {
    upgrade(db).await;
    check(db).await;
}

/// Migrations only go forward: a store that a newer binary migrated (it holds a migration this
/// one does not know) is refused with a reason, and nothing in it changes.
async fn a_store_from_a_newer_messo_is_refused(db: &TestDb) {
    db.store.migrate().await.expect("migrate");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from a newer Messo', TRUE, $1, 0)",
    )
    .bind(vec![0u8; 48])
    .execute(db.store.pool())
    .await
    .expect("a newer migration");
    let err = db.store.migrate().await.expect_err("refused");
    assert!(
        matches!(err, messo::store::OpenError::NewerStore { version: 9999 }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("newer Messo") && text.contains("9999"),
        "{text}"
    );
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(db.store.pool())
        .await
        .expect("count");
    let known = std::fs::read_dir(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(db.backend.name()),
    )
    .expect("migrations")
    .count() as i64;
    assert_eq!(rows, known + 1, "nothing applied or removed");
}

async fn upgrade(db: &TestDb) {
    // The first four migrations, as a store from before the inbound work has them.
    let old = db.dir.join("old-migrations");
    std::fs::create_dir_all(&old).expect("dir");
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(db.backend.name());
    for f in std::fs::read_dir(&src).expect("migrations") {
        let f = f.expect("entry").path();
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        if name.as_str() < "0005" {
            std::fs::copy(&f, old.join(&name)).expect("copy");
        }
    }
    let store = &db.store;
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .expect("old migrator")
        .run(store.pool())
        .await
        .expect("old migrations");
    let p = store.pool();
    for sql in [
        "INSERT INTO calendar_versions (id, hash, spec, created_at) VALUES (1, 'c', '{}', 0)",
        "INSERT INTO policy_versions (id, hash, spec, created_at) VALUES (1, 'p', '{}', 0)",
        "INSERT INTO tickets (id, number, office, category, priority, subject, citizen, received_at, \
         policy_version, calendar_version, create_hash, sla_state, sla_elapsed_s, sla_computed_at, \
         last_event_at, created_at, updated_at) VALUES (7, '2026/000001', 'anagrafe', 'generale', \
         'normale', 'x', '{\"email\":\"Anna@Example.it\",\"mobile\":\"+393331112222\"}', 0, 1, 1, 'h', \
         'running', 0, 0, 0, 0, 0)",
        "INSERT INTO outbox (id, ticket_id, kind, dedupe_key, recipient, channel, address, language, \
         payload, not_before, state, attempts, created_at, updated_at, provider, provider_id) \
         VALUES (41, 7, 'ricevuta', 'k', 'citizen', 'sms', '+393331112222', 'it', '{}', 0, \
         'delivered', 1, 0, 0, 'twilio', 'SM1')",
        "INSERT INTO delivery_attempts (outbox_id, attempt, started_at_ms, latency_ms, channel, \
         provider, outcome) VALUES (41, 1, 0, 5, 'sms', 'twilio', 'delivered')",
    ] {
        sqlx::query(sql).execute(p).await.expect("seed");
    }
    store.migrate().await.expect("upgrade");
}

async fn check(store: &Store) {
    let p = store.pool();
    let row = sqlx::query("SELECT state, provider_id, ticket_id FROM outbox WHERE id = 41")
        .fetch_one(p)
        .await
        .expect("row kept");
    assert_eq!(row.get::<String, _>(0), "delivered");
    assert_eq!(row.get::<String, _>(1), "SM1");
    assert_eq!(row.get::<i64, _>(2), 7);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery_attempts WHERE outbox_id = 41")
        .fetch_one(p)
        .await
        .expect("attempts");
    assert_eq!(n, 1);
    // The citizen's addresses were copied into their columns (e-mail lowercased).
    let r = sqlx::query("SELECT citizen_mobile, citizen_email FROM tickets WHERE id = 7")
        .fetch_one(p)
        .await
        .expect("ticket");
    assert_eq!(r.get::<String, _>(0), "+393331112222");
    assert_eq!(r.get::<String, _>(1), "anna@example.it");
    // A message about no ticket is allowed now, once per kind, key and recipient.
    for _ in 0..2 {
        sqlx::query(
            "INSERT INTO outbox (ticket_id, kind, dedupe_key, recipient, channel, address, language, \
             payload, not_before, state, attempts, created_at, updated_at) VALUES (NULL, 'revoca_sms', \
             'x', 'citizen', 'sms', '+39333', 'it', '{}', 0, 'pending', 0, 0, 0) ON CONFLICT DO NOTHING",
        )
        .execute(p)
        .await
        .expect("ticketless");
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE ticket_id IS NULL")
        .fetch_one(p)
        .await
        .expect("count");
    assert_eq!(n, 1);
    // Foreign keys still hold: an attempt for a message that does not exist is refused.
    let bad = sqlx::query(
        "INSERT INTO delivery_attempts (outbox_id, attempt, started_at_ms, latency_ms, channel, \
         provider, outcome) VALUES (999, 1, 0, 5, 'sms', 'twilio', 'delivered')",
    )
    .execute(p)
    .await;
    assert!(bad.is_err(), "foreign keys are on after the rebuild");
}
