//! A hand-built month (November 2026, Europe/Rome, Monday–Friday 09:00–17:00, the agreement's
//! targets: a working day is 8 h = 28,800 s) whose every figure was worked out by hand in the
//! comments, and properties of the grouping.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::calendar::CalendarSpec;
use crate::sla::Policy;
use crate::ticket::record::EventRecord;

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).expect("a valid instant")
}

/// The agreement's targets with on-site assistance on the 7 × 24 h calendar clock (the month
/// was worked out by hand on that clock; the on-site term has its own cases in `sla`).
fn sla() -> Sla {
    let mut rules = Policy::agreement_default().rules().to_vec();
    for r in &mut rules {
        if r.clock == ClockKind::OnSite {
            r.clock = ClockKind::Calendar;
        }
    }
    Sla::new(
        Calendar::new(CalendarSpec::roma_capitale()).expect("calendar"),
        Policy::new(rules, 8, 7_500).expect("policy"),
    )
}

/// A history from its receipt and events `(kind, at, fields)`; `system` marks an event
/// recorded by Messo itself.
fn history(
    id: i64,
    office: &str,
    priority: &str,
    category: &str,
    received: &str,
    events: &[(&str, &str, Value)],
) -> History {
    let number = format!("2026/{id:06}");
    let ticket = json!({
        "number": number,
        "office": office,
        "priority": priority,
        "category": category,
        "subject": "Certificato",
        "received_at": received,
        "citizen": {"email": "cittadino@example.it"},
    });
    let mut all = vec![EventRecord {
        id: id * 100,
        kind: "received".into(),
        occurred_at: ts(received),
        source: "api".into(),
        idempotency_key: format!("r{id}"),
        data: json!({"kind": "received", "at": received, "ticket": ticket}),
        recorded_at: ts(received),
    }];
    for (i, (kind, at, fields)) in events.iter().enumerate() {
        let system = fields.get("system").is_some();
        let mut data = fields.clone();
        if let Some(m) = data.as_object_mut() {
            m.remove("system");
            m.insert("kind".into(), Value::String((*kind).into()));
            m.insert("at".into(), Value::String(ts(at).to_string()));
        }
        all.push(EventRecord {
            id: id * 100 + i as i64 + 1,
            kind: (*kind).into(),
            occurred_at: ts(at),
            source: if system { "system" } else { "api" }.into(),
            idempotency_key: format!("e{id}-{i}"),
            data,
            recorded_at: ts(at),
        });
    }
    History {
        ticket_id: id,
        number,
        office: office.into(),
        events: all,
    }
}

fn step(at: &str) -> (&'static str, &str, Value) {
    (
        "step_changed",
        at,
        json!({"step": "istruttoria", "text": "In lavorazione"}),
    )
}

fn closed(at: &str) -> (&'static str, &str, Value) {
    ("closed", at, json!({}))
}

/// The month, ticket by ticket. Counted seconds are working seconds (on-site: every second).
fn month() -> Vec<History> {
    vec![
        // T1 normale (5 days = 144,000 s), received Mon 2 Nov 10:00. Due: Mon 25,200, then
        // Tue–Fri 28,800 each (140,400), Mon 9 3,600 more → Mon 9 Nov 10:00.
        // First response Tue 11:00: 25,200 + 7,200 = 32,400. Closed Thu 12:00: 25,200 +
        // 28,800 + 28,800 + 10,800 = 93,600, on time.
        history(
            1,
            "anagrafe",
            "normale",
            "generale",
            "2026-11-02T10:00:00+01:00",
            &[
                step("2026-11-03T11:00:00+01:00"),
                closed("2026-11-05T12:00:00+01:00"),
            ],
        ),
        // T2 urgente (1 day = 28,800 s), received Tue 3 Nov 16:00: Tue 3,600, then Wed 09:00 +
        // 25,200 → due Wed 4 Nov 16:00. Closed Thu 10:00 (its first response too): 3,600 +
        // 28,800 + 3,600 = 36,000, late.
        history(
            2,
            "anagrafe",
            "urgente",
            "generale",
            "2026-11-03T16:00:00+01:00",
            &[closed("2026-11-05T10:00:00+01:00")],
        ),
        // T3 normale, received Fri 6 Nov 18:30 (closed: counts from Mon 9 09:00). Integration
        // requested Mon 11:00 (first response: 7,200), received Wed 11 Nov 15:00. Suspended:
        // Mon 21,600 + Tue 28,800 + Wed 21,600 = 72,000. Closed Fri 13 Nov 12:00: 7,200 + Wed
        // 7,200 + Thu 28,800 + Fri 10,800 = 54,000. Due: 136,800 left at Wed 15:00 → Wed
        // 7,200, Thu, Fri, Mon, 28,800 each (93,600), Tue 17 28,800 (122,400), Wed 18 09:00 +
        // 14,400 → 13:00: on time.
        history(
            3,
            "tributi",
            "normale",
            "generale",
            "2026-11-06T18:30:00+01:00",
            &[
                (
                    "integration_requested",
                    "2026-11-09T11:00:00+01:00",
                    json!({"missing": "ISEE"}),
                ),
                (
                    "integration_received",
                    "2026-11-11T15:00:00+01:00",
                    json!({"channel": "email"}),
                ),
                closed("2026-11-13T12:00:00+01:00"),
            ],
        ),
        // T4 alta (3 days = 86,400 s), received Mon 16 Nov 09:30, due Thu 19 Nov 09:30. Step
        // Mon 10:00 (first response 1,800). Still open at the end of November: breached.
        history(
            4,
            "tributi",
            "alta",
            "generale",
            "2026-11-16T09:30:00+01:00",
            &[step("2026-11-16T10:00:00+01:00")],
        ),
        // T5 bassa (7 days), received Tue 17 Nov 10:00. Integration requested Tue 12:00 (first
        // response 7,200), never answered; Messo closes it Mon 23 Nov 12:00. Counted 7,200;
        // suspended Tue 18,000 + Wed–Fri 86,400 + Mon 10,800 = 115,200. As the clock stood at
        // the closure, 194,400 s were left from Mon 12:00: Mon 18,000, Tue 24 – Tue 1 Dec six
        // days 172,800 (190,800), Wed 2 Dec 09:00 + 3,600 → due Wed 2 Dec 10:00: not late.
        history(
            5,
            "anagrafe",
            "bassa",
            "generale",
            "2026-11-17T10:00:00+01:00",
            &[
                (
                    "integration_requested",
                    "2026-11-17T12:00:00+01:00",
                    json!({"missing": "documento"}),
                ),
                (
                    "closed",
                    "2026-11-23T12:00:00+01:00",
                    json!({"system": true}),
                ),
            ],
        ),
        // T6 normale, received Mon 23 Nov 09:00, step 10:00 (first response 3,600), closed Tue
        // 12:00 (39,600), reopened Wed 25 10:00, closed again Fri 27 16:00: 39,600 + Wed 25,200
        // + Thu 28,800 + Fri 25,200 = 118,800. Due: 104,400 left at Wed 10:00 → Mon 30 Nov
        // 15:00: on time. One reopening.
        history(
            6,
            "anagrafe",
            "normale",
            "generale",
            "2026-11-23T09:00:00+01:00",
            &[
                step("2026-11-23T10:00:00+01:00"),
                closed("2026-11-24T12:00:00+01:00"),
                (
                    "reopened",
                    "2026-11-25T10:00:00+01:00",
                    json!({"reason": "manca un allegato"}),
                ),
                closed("2026-11-27T16:00:00+01:00"),
            ],
        ),
        // T7 on-site (7 × 24 h = 604,800 s from receipt), received Thu 26 Nov 20:00, due Thu 3
        // Dec 20:00. Step Fri 27 08:00 (first response 12 h = 43,200). Closed Wed 2 Dec 11:00:
        // 5 days 15 h = 486,000, on time (December).
        history(
            7,
            "servizi_sociali",
            "normale",
            "in_loco",
            "2026-11-26T20:00:00+01:00",
            &[
                step("2026-11-27T08:00:00+01:00"),
                closed("2026-12-02T11:00:00+01:00"),
            ],
        ),
        // T8 normale, received Fri 30 Oct 10:00 (after the change to winter time on 25 Oct),
        // due Fri 6 Nov 10:00 (Sunday 1 Nov, Ognissanti, was no working day anyway). Closed
        // Tue 3 Nov 15:00, its first response: Fri 25,200 + Mon 28,800 + Tue 21,600 = 75,600.
        history(
            8,
            "anagrafe",
            "normale",
            "generale",
            "2026-10-30T10:00:00+01:00",
            &[closed("2026-11-03T15:00:00+01:00")],
        ),
    ]
}

fn november() -> Period {
    Period::month(2026, 11).expect("a month")
}

fn report(group: &str, period: Period) -> Report {
    let s = sla();
    build(
        &month(),
        |_| &s,
        &s.calendar,
        period,
        GroupBy::parse(group).expect("grouping"),
    )
    .expect("report")
}

#[test]
fn each_tickets_facts_are_the_hand_computed_ones() {
    let s = sla();
    let end = ts("2026-11-30T23:59:59+01:00");
    let f = |i: usize| {
        facts(&s, &month()[i], end)
            .expect("facts")
            .expect("received")
    };
    let t1 = f(0);
    assert_eq!(t1.due_at, Some(ts("2026-11-09T10:00:00+01:00")));
    assert_eq!((t1.counted_s, t1.first_response_s), (93_600, Some(32_400)));
    assert_eq!(t1.late(), Some(false));
    let t2 = f(1);
    assert_eq!(t2.due_at, Some(ts("2026-11-04T16:00:00+01:00")));
    assert_eq!((t2.counted_s, t2.late()), (36_000, Some(true)));
    let t3 = f(2);
    assert_eq!(t3.due_at, Some(ts("2026-11-18T13:00:00+01:00")));
    assert_eq!(
        (t3.counted_s, t3.suspended_s, t3.first_response_s),
        (54_000, 72_000, Some(7_200))
    );
    let t4 = f(3);
    assert_eq!(t4.due_at, Some(ts("2026-11-19T09:30:00+01:00")));
    assert!(t4.breached_open(end));
    let t5 = f(4);
    assert_eq!(
        (t5.counted_s, t5.suspended_s, t5.auto_closed, t5.due_at),
        (7_200, 115_200, true, Some(ts("2026-12-02T10:00:00+01:00")))
    );
    assert_eq!(t5.late(), Some(false));
    let t6 = f(5);
    assert_eq!(t6.due_at, Some(ts("2026-11-30T15:00:00+01:00")));
    assert_eq!(
        (t6.counted_s, t6.closed_at, t6.reopenings.len()),
        (118_800, Some(ts("2026-11-27T16:00:00+01:00")), 1)
    );
    let t7 = f(6);
    assert_eq!(t7.clock, ClockKind::Calendar);
    assert_eq!(
        (t7.due_at, t7.closed_at, t7.first_response_s),
        (Some(ts("2026-12-03T20:00:00+01:00")), None, Some(43_200))
    );
    let t7_closed = facts(&s, &month()[6], ts("2026-12-31T23:59:59+01:00"))
        .expect("facts")
        .expect("received");
    assert_eq!(
        (t7_closed.counted_s, t7_closed.late()),
        (486_000, Some(false))
    );
    let t8 = f(7);
    assert_eq!(t8.due_at, Some(ts("2026-11-06T10:00:00+01:00")));
    assert_eq!((t8.counted_s, t8.first_response_s), (75_600, Some(75_600)));
    // Before its receipt a ticket has no facts; as it stood mid-month, T6 was closed once.
    assert_eq!(facts(&s, &month()[6], end.plus(-5 * 86_400)), Ok(None));
    let t6_then = facts(&s, &month()[5], ts("2026-11-24T18:00:00+01:00"))
        .expect("facts")
        .expect("received");
    assert_eq!(
        (t6_then.closed_at, t6_then.counted_s),
        (Some(ts("2026-11-24T12:00:00+01:00")), 39_600)
    );
}

#[test]
fn november_as_a_whole() {
    let r = report("", november());
    assert_eq!(r.rows.len(), 1);
    let row = &r.rows[0];
    assert_eq!(row.bucket, "2026-11-01..2026-11-30");
    // Received: T1–T7 (T8 came in October). Closed: T1, T2 (late), T3, T5, T6, T8; T7 closes
    // in December. Open and breached at the end: T4.
    assert_eq!(
        (
            row.received,
            row.closed,
            row.closed_on_time,
            row.closed_late,
            row.open_breached
        ),
        (7, 6, 5, 1, 1)
    );
    // Close times sorted: 7,200 36,000 54,000 75,600 93,600 118,800: rank ⌈3⌉ and ⌈5.4⌉.
    assert_eq!(
        (row.close_median_s, row.close_p90_s),
        (Some(54_000), Some(118_800))
    );
    // First responses in November, all eight: 1,800 3,600 7,200 7,200 32,400 36,000 43,200
    // 75,600: rank 4 and ⌈7.2⌉ = 8.
    assert_eq!(row.first_responses, 8);
    assert_eq!(
        (row.first_response_median_s, row.first_response_p90_s),
        (Some(7_200), Some(75_600))
    );
    // Suspended, over the closed tickets: T3 72,000 + T5 115,200.
    assert_eq!(row.suspended_s, 187_200);
    assert_eq!(
        (row.integration_requests, row.auto_closed, row.reopenings),
        (2, 1, 1)
    );
    let pct = row.on_time_pct().expect("some closed");
    assert!((pct - 500.0 / 6.0).abs() < 1e-9, "{pct}");
    // Every cell says which tickets it counts.
    let numbers = |m| r.tickets_behind(0, m).join(" ");
    assert_eq!(numbers(Measure::ClosedLate), "2026/000002");
    assert_eq!(numbers(Measure::OpenBreached), "2026/000004");
    assert_eq!(numbers(Measure::AutoClosed), "2026/000005");
    assert_eq!(numbers(Measure::Reopened), "2026/000006");
    assert_eq!(
        numbers(Measure::Closed),
        "2026/000001 2026/000002 2026/000003 2026/000005 2026/000006 2026/000008"
    );
    assert_eq!(
        numbers(Measure::IntegrationRequested),
        "2026/000003 2026/000005"
    );
}

#[test]
fn november_by_office() {
    let r = report("office", november());
    let offices: Vec<&str> = r.rows.iter().filter_map(|x| x.office.as_deref()).collect();
    assert_eq!(offices, ["anagrafe", "servizi_sociali", "tributi"]);
    // anagrafe: T1, T2, T5, T6 received; T8 closed too. Close times 7,200 36,000 75,600
    // 93,600 118,800 → rank 3 and ⌈4.5⌉ = 5. First responses 3,600 7,200 32,400 36,000 75,600.
    let a = &r.rows[0];
    assert_eq!(
        (
            a.received,
            a.closed,
            a.closed_on_time,
            a.closed_late,
            a.open_breached
        ),
        (4, 5, 4, 1, 0)
    );
    assert_eq!(
        (a.close_median_s, a.close_p90_s),
        (Some(75_600), Some(118_800))
    );
    assert_eq!(
        (
            a.first_responses,
            a.first_response_median_s,
            a.first_response_p90_s
        ),
        (5, Some(32_400), Some(75_600))
    );
    assert_eq!(
        (
            a.suspended_s,
            a.integration_requests,
            a.auto_closed,
            a.reopenings
        ),
        (115_200, 1, 1, 1)
    );
    // servizi_sociali: T7 received, responded, not closed.
    let s = &r.rows[1];
    assert_eq!((s.received, s.closed, s.first_responses), (1, 0, 1));
    assert_eq!(s.on_time_pct(), None);
    assert_eq!(s.first_response_median_s, Some(43_200));
    // tributi: T3 closed on time, T4 open and breached; first responses 1,800 and 7,200.
    let t = &r.rows[2];
    assert_eq!(
        (t.received, t.closed, t.closed_on_time, t.open_breached),
        (2, 1, 1, 1)
    );
    assert_eq!(
        (t.first_response_median_s, t.first_response_p90_s),
        (Some(1_800), Some(7_200))
    );
    assert_eq!((t.suspended_s, t.integration_requests), (72_000, 1));
}

#[test]
fn three_months_by_month() {
    let period = Period::new(
        NaiveDate::from_ymd_opt(2026, 10, 1).expect("date"),
        NaiveDate::from_ymd_opt(2026, 12, 31).expect("date"),
    )
    .expect("period");
    let r = report("month", period);
    let buckets: Vec<&str> = r.rows.iter().map(|x| x.bucket.as_str()).collect();
    assert_eq!(buckets, ["2026-10", "2026-11", "2026-12"]);
    // October: T8 received, nothing else (due in November).
    let oct = &r.rows[0];
    assert_eq!((oct.received, oct.closed, oct.open_breached), (1, 0, 0));
    assert_eq!(oct.first_responses, 0);
    // November as a whole, above.
    assert_eq!(
        r.rows[1],
        report("", november()).rows[0].clone_with_bucket("2026-11")
    );
    // December: T7 closed on time after 486,000 s; T4 still open and breached.
    let dec = &r.rows[2];
    assert_eq!(
        (
            dec.received,
            dec.closed,
            dec.closed_on_time,
            dec.open_breached
        ),
        (0, 1, 1, 1)
    );
    assert_eq!(dec.close_median_s, Some(486_000));
}

#[test]
fn weeks_are_iso_weeks_cut_at_the_period() {
    let r = report("week", november());
    let buckets: Vec<&str> = r.rows.iter().map(|x| x.bucket.as_str()).collect();
    // Sunday 1 November belongs to week 44 (26 Oct – 1 Nov); Monday 30 to week 49. Week 44's
    // one day saw nothing and has no row.
    assert_eq!(
        buckets,
        ["2026-W45", "2026-W46", "2026-W47", "2026-W48", "2026-W49"]
    );
    let received: Vec<u64> = r.rows.iter().map(|x| x.received).collect();
    // W45 (2–8 Nov): T1, T2, T3. W46: none. W47 (16–22): T4, T5. W48 (23–29): T6, T7.
    assert_eq!(received, [3, 0, 2, 2, 0]);
    // T4 is breached from Thu 19 Nov: at the end of W47, W48 and W49 (30 Nov).
    let breached: Vec<u64> = r.rows.iter().map(|x| x.open_breached).collect();
    assert_eq!(breached, [0, 0, 1, 1, 1]);
}

#[test]
fn the_channel_of_receipt_groups_tickets_and_unknown_ones_are_not_given() {
    let s = sla();
    let mut hs = month();
    // T1 came to the desk, T2 and T3 by e-mail; the rest say nothing.
    let mut via = |i: usize, v: &str| {
        hs[i].events[0].data["ticket"]["received_via"] = Value::String(v.into());
    };
    via(0, "desk");
    via(1, "email");
    via(2, "email");
    assert_eq!(hs[0].received_via(), Some(ReceivedVia::Desk));
    assert_eq!(hs[3].received_via(), None);
    let g = GroupBy::parse("channel").expect("grouping");
    let r = build(&hs, |_| &s, &s.calendar, november(), g).expect("report");
    let by: Vec<(&str, u64, u64)> = r
        .rows
        .iter()
        .map(|x| (x.channel.as_deref().unwrap_or("-"), x.received, x.closed))
        .collect();
    // Rows in key order: desk, email, not_given. Received: T1 | T2, T3 | T4–T7 (T8 came in
    // October). Closed in November: T1 | T2, T3 | T5, T6, T8 (T4 and T7 are open).
    assert_eq!(by, [("desk", 1, 1), ("email", 2, 2), ("not_given", 4, 3)]);
    // The groups add up to the whole, which is also the report's total.
    let whole = report("", november());
    assert_eq!(whole.rows[0].received, 7);
    assert_eq!(whole.rows[0].closed, 6);
    assert_eq!(r.total.as_ref(), Some(&whole.rows[0]));
}

#[test]
fn groupings_and_periods_are_checked() {
    assert!(GroupBy::parse("month,week").is_err());
    assert!(GroupBy::parse("colour").is_err());
    let g = GroupBy::parse("priority, office").expect("valid");
    assert!(g.priority && g.office && !g.category && g.time.is_none());
    let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).expect("date");
    assert!(matches!(
        Period::new(d(2026, 11, 2), d(2026, 11, 1)),
        Err(ReportError::Backwards { .. })
    ));
    assert!(matches!(
        Period::new(d(2000, 1, 1), d(2026, 1, 1)),
        Err(ReportError::TooLong { .. })
    ));
    assert_eq!(
        Period::month(2026, 12),
        Some(Period {
            from: d(2026, 12, 1),
            to: d(2026, 12, 31)
        })
    );
    let mut v = vec![5, 1, 3];
    assert_eq!(percentiles(&mut v), (Some(3), Some(5)));
    assert_eq!(percentiles(&mut []), (None, None));
    assert_eq!("open_breached".parse(), Ok(Measure::OpenBreached));
}

impl Row {
    fn clone_with_bucket(&self, bucket: &str) -> Row {
        Row {
            bucket: bucket.to_owned(),
            ..self.clone()
        }
    }
}

/// A random history: receipt within October–November, then up to eight events in order,
/// each legal where it comes (the replay refuses the rest, so only legal ones are kept).
fn random_history(id: i64, office: u8, priority: u8, start_h: i64, steps: &[(u8, i64)]) -> History {
    let base = ts("2026-10-01T00:00:00+02:00").plus(start_h * 3600);
    let received = base.to_string();
    let priorities = ["urgente", "alta", "normale", "bassa"];
    let offices = ["anagrafe", "tributi", "urp"];
    let mut at = base;
    let (mut waiting, mut closed) = (false, false);
    let mut events: Vec<(String, String, Value)> = Vec::new();
    for (kind, gap_h) in steps {
        at = at.plus(gap_h * 3600 + 60);
        let e = match (kind % 5, waiting, closed) {
            (0, _, false) => Some(("step_changed", json!({"step": "s", "text": "t"}))),
            (1, false, false) => {
                waiting = true;
                Some(("integration_requested", json!({"missing": "x"})))
            }
            (1, true, false) | (2, true, false) => {
                waiting = false;
                Some(("integration_received", json!({"channel": "sms"})))
            }
            (3, _, false) => {
                waiting = false;
                closed = true;
                Some((
                    "closed",
                    if gap_h % 2 == 0 {
                        json!({"system": true})
                    } else {
                        json!({})
                    },
                ))
            }
            (4, _, true) => {
                closed = false;
                Some(("reopened", json!({"reason": "r"})))
            }
            _ => None,
        };
        if let Some((k, v)) = e {
            events.push((k.to_owned(), at.to_string(), v));
        }
    }
    let refs: Vec<(&str, &str, Value)> = events
        .iter()
        .map(|(k, a, v)| (k.as_str(), a.as_str(), v.clone()))
        .collect();
    history(
        id,
        offices[usize::from(office) % 3],
        priorities[usize::from(priority) % 4],
        "generale",
        &received,
        &refs,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Per office (and per priority), the counts add up to the ungrouped report's, bucket by
    /// bucket; and each count is the number of tickets listed behind it.
    #[test]
    fn groups_add_up_to_the_totals(
        tickets in prop::collection::vec(
            (0u8..3, 0u8..4, 0i64..1_400, prop::collection::vec((0u8..5, 0i64..90), 0..8)),
            1..25,
        ),
    ) {
        let histories: Vec<History> = tickets
            .iter()
            .enumerate()
            .map(|(i, (o, p, h, steps))| random_history(i as i64 + 1, *o, *p, *h, steps))
            .collect();
        let s = sla();
        let period = Period::new(
            NaiveDate::from_ymd_opt(2026, 10, 1).expect("date"),
            NaiveDate::from_ymd_opt(2026, 12, 31).expect("date"),
        ).expect("period");
        let run = |g: &str| build(&histories, |_| &s, &s.calendar, period, GroupBy::parse(g).expect("g")).expect("report");
        let total = run("month");
        // The total of any grouping is the ungrouped report of the whole period.
        let ungrouped = run("");
        prop_assert_eq!(total.total.as_ref(), ungrouped.rows.first());
        prop_assert_eq!(run("week,office").total, ungrouped.total.clone());
        for grouped in [run("month,office"), run("month,priority"), run("month,office,priority")] {
            for t in &total.rows {
                let parts: Vec<&Row> = grouped.rows.iter().filter(|r| r.bucket == t.bucket).collect();
                let sum = |f: fn(&Row) -> u64| parts.iter().map(|r| f(r)).sum::<u64>();
                prop_assert_eq!(sum(|r| r.received), t.received);
                prop_assert_eq!(sum(|r| r.closed), t.closed);
                prop_assert_eq!(sum(|r| r.closed_on_time), t.closed_on_time);
                prop_assert_eq!(sum(|r| r.closed_late), t.closed_late);
                prop_assert_eq!(sum(|r| r.open_breached), t.open_breached);
                prop_assert_eq!(sum(|r| r.first_responses), t.first_responses);
                prop_assert_eq!(sum(|r| r.integration_requests), t.integration_requests);
                prop_assert_eq!(sum(|r| r.auto_closed), t.auto_closed);
                prop_assert_eq!(sum(|r| r.reopenings), t.reopenings);
                prop_assert_eq!(parts.iter().map(|r| r.suspended_s).sum::<i64>(), t.suspended_s);
            }
        }
        for (i, row) in total.rows.iter().enumerate() {
            prop_assert_eq!(total.tickets_behind(i, Measure::Received).len() as u64, row.received);
            prop_assert_eq!(total.tickets_behind(i, Measure::Closed).len() as u64, row.closed);
            prop_assert_eq!(row.closed_on_time + row.closed_late, row.closed);
            prop_assert_eq!(total.tickets_behind(i, Measure::OpenBreached).len() as u64, row.open_breached);
            prop_assert!(row.close_median_s <= row.close_p90_s);
        }
    }
}
