//! Speed of the SLA clock: building the calendar, one ticket's status with 0–3 suspensions, and
//! `sla batch` over one million generated lines.
//!
//! Run with `cargo bench --bench sla`; figures are recorded in docs/performance.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use messo::calendar::{Calendar, CalendarSpec};
use messo::domain::{Category, Priority};
use messo::sla::{Policy, Sla, Suspension, normalize_suspensions};
use messo::time::Timestamp;

/// A small deterministic generator, so every run measures the same tickets.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const FROM_2025: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z
const SPAN: i64 = 3 * 365 * 86_400;

struct Ticket {
    received_at: Timestamp,
    category: Category,
    priority: Priority,
    suspensions: Vec<Suspension>,
    now: Timestamp,
}

fn tickets(n: usize, suspensions: usize, seed: u64) -> Vec<Ticket> {
    let mut g = Lcg(seed);
    (0..n)
        .map(|_| {
            let r = Timestamp(FROM_2025 + g.below(SPAN as u64) as i64);
            let mut s: Vec<Suspension> = (0..suspensions)
                .map(|k| {
                    let from = r.plus((k as i64) * 2 * 86_400 + g.below(86_400) as i64);
                    Suspension {
                        from,
                        to: Some(from.plus(g.below(2 * 86_400) as i64)),
                    }
                })
                .collect();
            normalize_suspensions(r, &mut s);
            Ticket {
                received_at: r,
                category: if g.below(10) == 0 {
                    Category::InLoco
                } else {
                    Category::Generale
                },
                priority: Priority::ALL[g.below(4) as usize],
                suspensions: s,
                now: r.plus(g.below(12 * 86_400) as i64),
            }
        })
        .collect()
}

fn sla() -> Sla {
    Sla::new(
        Calendar::new(CalendarSpec::roma_capitale()).expect("calendar"),
        Policy::agreement_default(),
    )
}

fn rfc(t: Timestamp) -> String {
    t.to_rfc3339_with_offset(3600)
}

/// One million lines in the shape of the spec's example, a tenth of them invalid in some way.
pub fn batch_input(lines: usize) -> Vec<u8> {
    let mut g = Lcg(42);
    let mut out = Vec::with_capacity(lines * 220);
    for (i, t) in tickets(lines, 0, 7).into_iter().enumerate() {
        let susp = match g.below(4) {
            0 => String::new(),
            k => {
                let parts: Vec<String> = (0..k)
                    .map(|j| {
                        let from = t.received_at.plus(j as i64 * 86_400 + 3_600);
                        let to = if j + 1 == k && g.below(5) == 0 {
                            "null".to_owned()
                        } else {
                            format!("\"{}\"", rfc(from.plus(20_000)))
                        };
                        format!("{{\"from\":\"{}\",\"to\":{to}}}", rfc(from))
                    })
                    .collect();
                format!(",\"suspensions\":[{}]", parts.join(","))
            }
        };
        let priority = if g.below(50) == 0 {
            "Urgent"
        } else {
            t.priority.as_str()
        };
        out.extend_from_slice(
            format!(
                "{{\"id\":\"T-{i}\",\"received_at\":\"{}\",\"priority\":\"{priority}\",\"category\":\"{}\"{susp},\"now\":\"{}\"}}\n",
                rfc(t.received_at),
                t.category.as_str(),
                rfc(t.now)
            )
            .as_bytes(),
        );
    }
    out
}

fn bench_calendar(c: &mut Criterion) {
    let mut g = c.benchmark_group("calendar");
    g.sample_size(10);
    g.bench_function("build 1969-2199", |b| {
        b.iter(|| Calendar::new(black_box(CalendarSpec::roma_capitale())))
    });
    g.finish();
}

fn bench_status(c: &mut Criterion) {
    let sla = sla();
    let mut g = c.benchmark_group("status");
    const N: usize = 10_000;
    g.throughput(Throughput::Elements(N as u64));
    for k in 0..=3 {
        let ts = tickets(N, k, 1 + k as u64);
        g.bench_with_input(BenchmarkId::new("suspensions", k), &ts, |b, ts| {
            b.iter(|| {
                let mut breached = 0u32;
                for t in ts {
                    let s = sla
                        .status_normalized(
                            t.received_at,
                            t.category,
                            t.priority,
                            &t.suspensions,
                            t.now,
                        )
                        .expect("in range");
                    breached += u32::from(s.due_at.is_some_and(|d| d <= t.now));
                }
                black_box(breached)
            })
        });
    }
    g.finish();
}

fn bench_batch(c: &mut Criterion) {
    let sla = sla();
    let input = batch_input(1_000_000);
    let mut g = c.benchmark_group("batch");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(1_000_000));
    g.bench_function("1M lines", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(130 * 1_000_000);
            messo::batch::run(&sla, &input[..], &mut out).expect("in memory");
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench_calendar, bench_status, bench_batch);
criterion_main!(benches);
