//! The citizen portal's pure costs per request: checking a status link (valid and forged),
//! building the citizen's view of a ticket with a realistic history, and writing the page.
//! The loopback figures with a store of a million tickets come from `scripts/bench-portal.sh`.
//! Run with `cargo bench --bench portal`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use messo::calendar::{Calendar, CalendarSpec};
use messo::domain::Lang;
use messo::portal::LinkKeys;
use messo::portal::page::{self, Office};
use messo::portal::view::{Facts, SentMessage, citizen_view};
use messo::sla::policy::ClockKind;
use messo::store::{EventRecord, SlaView, TicketRecord};
use messo::time::Timestamp;
use serde_json::json;

const NOW: Timestamp = Timestamp(1_772_622_000); // Wednesday 4 March 2026, 12:00 in Rome

fn ticket() -> TicketRecord {
    TicketRecord {
        id: 987_654,
        number: "2026/987654".into(),
        office: "servizi_sociali".into(),
        category: "generale".parse().expect("category"),
        priority: "normale".parse().expect("priority"),
        subject: "Richiesta di contributo per il canone di locazione".into(),
        step: Some(("istruttoria".into(), "La pratica è in istruttoria.".into())),
        citizen: serde_json::from_value(json!({"email": "mario.rossi@example.it",
            "mobile": "+393471234567", "fiscal_code": "RSSMRA80A01H501U", "language": "it"}))
        .expect("a citizen"),
        received_at: Timestamp(1_772_442_900),
        closed_at: None,
        waiting_since: None,
        policy_version: 1,
        calendar_version: 1,
        sla: SlaView {
            state: "running",
            due_at: Some(Timestamp(1_773_047_700)),
            elapsed_s: 63_900,
            target_s: 144_000,
            remaining_s: 80_100,
            next_check_at: Some(Timestamp(1_772_900_000)),
            closed_late: None,
            computed_at: NOW,
        },
    }
}

fn events() -> Vec<EventRecord> {
    let kinds = [
        ("received", json!({})),
        (
            "step_changed",
            json!({"step": "assegnata", "text": "Assegnata all'ufficio."}),
        ),
        ("note", json!({"text": "nota interna"})),
        (
            "integration_requested",
            json!({"missing": "Contratto di locazione registrato"}),
        ),
        ("integration_received", json!({"channel": "email"})),
        (
            "step_changed",
            json!({"step": "istruttoria", "text": "La pratica è in istruttoria."}),
        ),
    ];
    kinds
        .iter()
        .enumerate()
        .map(|(i, (kind, data))| EventRecord {
            id: i as i64 + 1,
            kind: (*kind).into(),
            occurred_at: Timestamp(1_772_442_900 + i as i64 * 7200),
            source: "api".into(),
            idempotency_key: format!("k{i}"),
            data: data.clone(),
            recorded_at: Timestamp(1_772_442_900 + i as i64 * 7200),
        })
        .collect()
}

fn messages() -> Vec<SentMessage> {
    [
        "ricevuta",
        "avanzamento",
        "richiesta_integrazione",
        "ripresa",
        "avanzamento",
    ]
    .iter()
    .enumerate()
    .flat_map(|(i, kind)| {
        ["email", "sms"].map(|channel| SentMessage {
            kind: (*kind).into(),
            channel: channel.into(),
            created_at: Timestamp(1_772_442_960 + i as i64 * 7200),
            delivered_at: Some(Timestamp(1_772_442_965 + i as i64 * 7200)),
            state: "delivered".into(),
            dlr_state: (channel == "sms").then(|| "delivered".into()),
        })
    })
    .collect()
}

fn bench_links(c: &mut Criterion) {
    let keys = LinkKeys::new(b"a benchmark key of thirty-two bytes!", None);
    let good = keys.sign(987_654, NOW, 180);
    let mut forged = good.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");
    let mut g = c.benchmark_group("link");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sign", |b| {
        b.iter(|| keys.sign(black_box(987_654), NOW, 180))
    });
    g.bench_function("verify/valid", |b| {
        b.iter(|| keys.verify(black_box(&good), NOW))
    });
    g.bench_function("verify/forged", |b| {
        b.iter(|| keys.verify(black_box(&forged), NOW))
    });
    g.finish();
}

fn bench_page(c: &mut Criterion) {
    let calendar = Calendar::new(CalendarSpec::roma_capitale()).expect("calendar");
    let (t, ev, msgs) = (ticket(), events(), messages());
    let facts = Facts {
        ticket: &t,
        events: &ev,
        sla: &t.sla,
        clock: ClockKind::Business,
        messages: &msgs,
        calendar: &calendar,
        working_day_s: 8 * 3600,
        show_office: true,
    };
    let office = Office {
        comune: "Roma Capitale".into(),
        phone: "060606".into(),
        email: "urp@comune.roma.it".into(),
        hours_it: "dal lunedì al venerdì, dalle 9:00 alle 17:00".into(),
        hours_en: "Monday to Friday, 9:00 to 17:00".into(),
    };
    let v = citizen_view(&facts, Lang::It);
    let html = page::status_page(&v, Lang::It, &office, Some("?lang=en"), "adesso");
    println!("status page: {} bytes", html.len());
    let mut g = c.benchmark_group("page");
    g.throughput(Throughput::Elements(1));
    g.bench_function("view", |b| {
        b.iter(|| citizen_view(black_box(&facts), Lang::It))
    });
    g.bench_function("html", |b| {
        b.iter(|| page::status_page(black_box(&v), Lang::It, &office, Some("?lang=en"), "adesso"))
    });
    g.bench_function("json", |b| b.iter(|| serde_json::to_string(black_box(&v))));
    g.finish();
}

criterion_group!(benches, bench_links, bench_page);
criterion_main!(benches);
