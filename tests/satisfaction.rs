//! Satisfaction answers in the store, on SQLite and on the machine's real PostgreSQL: one answer
//! per ticket (a second is ignored and the first returned), scores and comments checked, the
//! table's own checks, and the summary per office and local month counted by hand.

mod common;

use common::{Backend, TestDb, on_both, ts};
use messo::config::{BUILTIN_TOML, Config};
use messo::store::{AnswerChannel, NewAnswer, Recorded, SatisfactionRow};
use messo::ticket::{NewEvent, NewTicket, Source};
use messo::time::Timestamp;
use serde_json::json;

async fn start(backend: Backend) -> TestDb {
    let config = Config::from_toml(BUILTIN_TOML, "test", Vec::new()).expect("config");
    TestDb::with_config(backend, &config).await
}

/// A ticket of `office`, closed on 2 March 2026; its id.
async fn closed(db: &TestDb, number: &str, office: &str) -> i64 {
    let received = "2026-03-02T10:15:00+01:00";
    let t = NewTicket::from_json(&json!({
        "number": number, "office": office, "priority": "normale",
        "subject": "Certificato", "received_at": received,
        "citizen": {"mobile": "+393471234567"},
    }))
    .expect("ticket");
    db.tickets()
        .create_ticket(&t, Source::Api, ts(received))
        .await
        .expect("create");
    let e = NewEvent::from_json(&json!({"kind": "closed", "at": "2026-03-02T16:00:00+01:00"}))
        .expect("event");
    db.tickets()
        .append_event(number, &e, None, Source::Api, e.at)
        .await
        .expect("close")
        .ticket()
        .id
}

fn answer(ticket_id: i64, score: u8, comment: Option<&str>, at: &str) -> NewAnswer {
    NewAnswer {
        ticket_id,
        score,
        comment: comment.map(str::to_owned),
        channel: AnswerChannel::Portal,
        answered_at: ts(at),
        inbound_id: None,
    }
}

async fn one_answer_per_ticket_the_first_stands(db: &TestDb) {
    let id = closed(db, "2026/000001", "anagrafe").await;
    let s = db.satisfaction();
    let first = answer(id, 4, Some("  cortesi  "), "2026-03-03T10:00:00+01:00");
    assert_eq!(
        s.record_answer(&first).await.expect("record"),
        Recorded::New
    );
    let mut second = answer(id, 1, None, "2026-03-04T10:00:00+01:00");
    second.channel = AnswerChannel::Sms;
    let Recorded::Already(kept) = s.record_answer(&second).await.expect("record") else {
        panic!("a second answer must be ignored");
    };
    assert_eq!(
        (
            kept.score,
            kept.comment.as_deref(),
            kept.channel,
            kept.answered_at
        ),
        (
            4,
            Some("cortesi"),
            AnswerChannel::Portal,
            ts("2026-03-03T10:00:00+01:00")
        )
    );
    assert_eq!(s.answer(id).await.expect("read"), Some(kept));
    // Refused before the store: scores outside 1–5, comments over 1000 characters.
    let other = closed(db, "2026/000002", "anagrafe").await;
    for bad in [
        answer(other, 0, None, "2026-03-03T10:00:00+01:00"),
        answer(other, 6, None, "2026-03-03T10:00:00+01:00"),
        answer(
            other,
            3,
            Some(&"x".repeat(1001)),
            "2026-03-03T10:00:00+01:00",
        ),
    ] {
        let e = s.record_answer(&bad).await.expect_err("refused");
        assert!(e.is_client_error(), "{e}");
    }
    assert_eq!(s.answer(other).await.expect("read"), None);
    // The table refuses what the code would: a score of 9 written directly.
    let direct = sqlx::query(
        "INSERT INTO satisfaction (ticket_id, score, channel, answered_at) VALUES ($1, 9, 'sms', 0)",
    )
    .bind(other)
    .execute(db.pool())
    .await;
    assert!(direct.is_err(), "CHECK on the score");
    let direct = sqlx::query(
        "INSERT INTO satisfaction (ticket_id, score, channel, answered_at) VALUES ($1, 3, 'fax', 0)",
    )
    .bind(other)
    .execute(db.pool())
    .await;
    assert!(direct.is_err(), "CHECK on the channel");
    // `/readyz` reads the new table too.
    db.check_tables().await.expect("tables");
}

async fn the_summary_counts_per_office_and_local_month(db: &TestDb) {
    let s = db.satisfaction();
    // (number, office, score, comment, answered at)
    let rows: [(&str, &str, u8, Option<&str>, &str); 7] = [
        (
            "2026/000011",
            "anagrafe",
            5,
            None,
            "2026-03-03T10:00:00+01:00",
        ),
        (
            "2026/000012",
            "anagrafe",
            3,
            Some("attesa lunga"),
            "2026-03-20T09:00:00+01:00",
        ),
        // 23:30 UTC on 31 March is 01:30 on 1 April in Rome: April.
        ("2026/000013", "anagrafe", 4, None, "2026-03-31T23:30:00Z"),
        (
            "2026/000014",
            "anagrafe",
            2,
            Some("non chiaro"),
            "2026-04-15T12:00:00+02:00",
        ),
        (
            "2026/000015",
            "tributi",
            1,
            Some("nessuna risposta"),
            "2026-03-10T12:00:00+01:00",
        ),
        (
            "2026/000016",
            "tributi",
            1,
            None,
            "2026-03-11T12:00:00+01:00",
        ),
        // After the range's end: not counted.
        (
            "2026/000017",
            "tributi",
            5,
            Some("fuori periodo"),
            "2026-05-01T00:00:00+02:00",
        ),
    ];
    for (number, office, score, comment, at) in rows {
        let id = closed(db, number, office).await;
        assert_eq!(
            s.record_answer(&answer(id, score, comment, at))
                .await
                .expect("record"),
            Recorded::New
        );
    }
    let from = ts("2026-03-01T00:00:00+01:00");
    let to = ts("2026-05-01T00:00:00+02:00");
    let sum = s.satisfaction_summary(from, to).await.expect("summary");
    // By hand: anagrafe March {5, 3} → 2, mean 4.0; anagrafe April {4, 2} → 2, mean 3.0;
    // tributi March {1, 1} → 2, mean 1.0; the May answer is outside [from, to).
    assert_eq!(
        sum.rows,
        [
            SatisfactionRow {
                office: "anagrafe".into(),
                month: "2026-03".into(),
                count: 2,
                mean: 4.0,
                scores: [0, 0, 1, 0, 1],
            },
            SatisfactionRow {
                office: "anagrafe".into(),
                month: "2026-04".into(),
                count: 2,
                mean: 3.0,
                scores: [0, 1, 0, 1, 0],
            },
            SatisfactionRow {
                office: "tributi".into(),
                month: "2026-03".into(),
                count: 2,
                mean: 1.0,
                scores: [2, 0, 0, 0, 0],
            },
        ]
    );
    let comments: Vec<(&str, &str, u8, &str, Timestamp)> = sum
        .comments
        .iter()
        .map(|c| {
            (
                c.office.as_str(),
                c.number.as_str(),
                c.score,
                c.comment.as_str(),
                c.answered_at,
            )
        })
        .collect();
    assert_eq!(
        comments,
        [
            (
                "anagrafe",
                "2026/000012",
                3,
                "attesa lunga",
                ts("2026-03-20T09:00:00+01:00")
            ),
            (
                "anagrafe",
                "2026/000014",
                2,
                "non chiaro",
                ts("2026-04-15T12:00:00+02:00")
            ),
            (
                "tributi",
                "2026/000015",
                1,
                "nessuna risposta",
                ts("2026-03-10T12:00:00+01:00")
            ),
        ]
    );
    // A range is half-open: the instant of the May answer starts the next one.
    let may = s
        .satisfaction_summary(to, ts("2026-06-01T00:00:00+02:00"))
        .await
        .expect("summary");
    assert_eq!(may.rows.len(), 1);
    assert_eq!(
        (may.rows[0].month.as_str(), may.rows[0].count),
        ("2026-05", 1)
    );
    let none = s
        .satisfaction_summary(ts("2025-01-01T00:00:00Z"), ts("2025-12-31T00:00:00Z"))
        .await
        .expect("summary");
    assert!(none.rows.is_empty() && none.comments.is_empty());
}

on_both!(start;
    one_answer_per_ticket_the_first_stands,
    the_summary_counts_per_office_and_local_month,
);
