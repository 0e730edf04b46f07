//! Template costs: rendering one message (what the dispatcher pays per message, before its
//! first attempt), checking an edit against every sample (what an admin waits for on each
//! preview, validate and save), and publishing (rebuilding the live set).
//! Run with `cargo bench --bench templates`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use messo::domain::{Channel, Kind, Lang};
use messo::templates::{Audience, Catalog, Key, Live, Settings, Templates};

fn templates() -> (Templates, Catalog) {
    let catalog = Catalog::bundled().expect("bundled templates");
    (
        Templates::new(catalog.clone(), Settings::example()),
        catalog,
    )
}

fn bench_render(c: &mut Criterion) {
    let (t, catalog) = templates();
    let key = Key::new(Audience::Cittadino, "violazione", Lang::It);
    let sample = catalog.defaults[&key].samples[0].clone();
    let mut g = c.benchmark_group("render");
    g.throughput(Throughput::Elements(1));
    for channel in [Channel::Email, Channel::Sms] {
        g.bench_function(format!("violazione/{channel}"), |b| {
            b.iter(|| {
                t.render_message(
                    Audience::Cittadino,
                    Kind::Violazione,
                    Lang::It,
                    black_box(channel),
                    black_box(&sample),
                )
            })
        });
    }
    g.finish();
}

fn bench_check(c: &mut Criterion) {
    let (t, catalog) = templates();
    let mut g = c.benchmark_group("check");
    for kind in ["violazione", "ricevuta"] {
        let key = Key::new(Audience::Cittadino, kind, Lang::It);
        let content = catalog.defaults[&key].content.clone();
        g.bench_function(kind, |b| {
            b.iter(|| t.check(black_box(&key), black_box(&content)))
        });
    }
    let key = Key::new(Audience::Cittadino, "violazione", Lang::It);
    let content = catalog.defaults[&key].content.clone();
    let sample = catalog.defaults[&key].samples[0].clone();
    g.bench_function("preview/violazione", |b| {
        b.iter(|| t.preview(black_box(&key), black_box(&content), black_box(&sample)))
    });
    g.finish();
}

fn bench_publish(c: &mut Criterion) {
    let (t, catalog) = templates();
    let key = Key::new(Audience::Cittadino, "violazione", Lang::It);
    let content = catalog.defaults[&key].content.clone();
    let mut version = 0;
    c.bench_function("publish/install one version", |b| {
        b.iter(|| {
            version += 1;
            t.install(&[Live {
                key: key.clone(),
                version,
                content: content.clone(),
            }])
        })
    });
}

criterion_group!(benches, bench_render, bench_check, bench_publish);
criterion_main!(benches);
