//! What deciding one ticket costs (`engine::decide`, pure): its whole history replayed, the
//! date the citizen was told kept along it (issue 20), the notices owed derived. Tickets with 1,
//! 8, 32 and 128 events (steps, priority changes, notes, integration requests and replies).
//!
//! Run with `cargo bench --bench engine_decide`; figures are recorded in docs/performance.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use messo::calendar::Calendar;
use messo::config::{BUILTIN_TOML, Config};
use messo::engine::{Context, decide, sms_calendar};
use messo::sla::Sla;
use messo::ticket::NewTicket;
use messo::ticket::record::{EventRecord, TicketRecord, derive, evaluate};
use messo::time::Timestamp;
use serde_json::{Value, json};

const RECEIVED: &str = "2026-03-02T10:15:00+01:00";

/// A history of `n` events after the receipt, 20 minutes apart.
fn history(n: usize) -> (NewTicket, Vec<EventRecord>) {
    let t = NewTicket::from_json(&json!({
        "number": "2026/000001", "office": "anagrafe", "priority": "normale",
        "subject": "Certificato di residenza", "received_at": RECEIVED,
        "citizen": {"email": "anna.bianchi@example.it", "mobile": "+393331112222"}
    }))
    .expect("ticket");
    let start = t.received_at;
    let mut events = vec![record(
        1,
        "received",
        start,
        json!({"kind": "received", "at": start.to_string(), "ticket": t.to_json()}),
    )];
    let mut urgent = false;
    let mut waiting = false;
    for i in 0..n {
        let at = start.plus(1_200 * (i as i64 + 1));
        let data = match i % 5 {
            0 => json!({"kind": "step_changed", "step": "s", "text": "In lavorazione."}),
            1 => {
                urgent = !urgent;
                json!({"kind": "priority_changed", "priority": if urgent { "urgente" } else { "normale" }})
            }
            2 => json!({"kind": "note", "text": "Nota."}),
            _ if waiting => {
                waiting = false;
                json!({"kind": "integration_received", "channel": "email"})
            }
            _ => {
                waiting = true;
                json!({"kind": "integration_requested", "missing": "Documento."})
            }
        };
        let mut data = data;
        data["at"] = json!(at.to_string());
        let kind = data["kind"].as_str().unwrap_or_default().to_owned();
        events.push(record(i as i64 + 2, &kind, at, data));
    }
    (t, events)
}

fn record(id: i64, kind: &str, at: Timestamp, data: Value) -> EventRecord {
    EventRecord {
        id,
        kind: kind.to_owned(),
        occurred_at: at,
        source: "api".to_owned(),
        idempotency_key: format!("k{id}"),
        data,
        recorded_at: at,
    }
}

fn bench(c: &mut Criterion) {
    let config = Config::from_toml(BUILTIN_TOML, "built-in", Vec::new()).expect("config");
    let calendar = Calendar::new(config.calendar.clone()).expect("calendar");
    let sms = sms_calendar(&calendar, &config.notify).expect("SMS calendar");
    let sla = Sla::new(calendar, config.policy.clone());
    let ctx = Context {
        sla: &sla,
        notify: &config.notify,
        sms_calendar: &sms,
    };
    let mut group = c.benchmark_group("engine_decide");
    group.measurement_time(Duration::from_secs(4));
    for n in [1usize, 8, 32, 128] {
        let (t, events) = history(n);
        let (received_at, d) = derive(1, &events).expect("replays");
        let now = events
            .last()
            .map_or(t.received_at, |e| e.occurred_at)
            .plus(3_600);
        let ticket = TicketRecord {
            id: 1,
            number: t.number.to_string(),
            office: t.office.clone(),
            category: d.category,
            priority: d.priority,
            subject: t.subject.clone(),
            step: None,
            citizen: t.citizen.clone(),
            received_at,
            closed_at: d.closed_at,
            waiting_since: d.waiting_since,
            policy_version: 1,
            calendar_version: 1,
            sla: evaluate(&sla, received_at, &d, now).expect("in range"),
        };
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                black_box(
                    decide(&ctx, &ticket, received_at, &d, black_box(&events), now)
                        .expect("decides"),
                )
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
