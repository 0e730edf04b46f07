//! The monthly report e-mail on real stores: the run is claimed once with its e-mails (two
//! daemons at the same instant, a restart, a run missed while down), at the office's local time
//! across the changes of the clocks (an injected clock), and the e-mail as a real SMTP server
//! receives it, with its text, HTML and CSV parts.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::peers::SmtpPeer;
use common::{Backend, TestClock, TestDb, fixed_clock, mail, on_both, ts};
use messo::calendar::{Calendar, CalendarSpec};
use messo::config::{BUILTIN_TOML, Config};
use messo::delivery::dispatch::Dispatcher;
use messo::metrics::Metrics;
use messo::monthly::{
    JOB, MonthlyMail, MonthlyScheduler, Provider, ProviderError, Tick, provider_fn, start_ticker,
};
use messo::store::Store;
use messo::templates::RenderedMessage;
use messo_core::reports::Period;
use serde_json::json;
use tokio::sync::Barrier;

/// The shipped configuration with the monthly report on, plus `extra` variables.
fn config(extra: &[(&str, &str)]) -> Config {
    let mut env = vec![(
        "MESSO_REPORTS__MONTHLY__ENABLED".to_owned(),
        "true".to_owned(),
    )];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Config::from_toml(BUILTIN_TOML, "built-in", env).expect("config")
}

fn rome() -> Arc<Calendar> {
    Arc::new(Calendar::new(CalendarSpec::roma_capitale()).expect("calendar"))
}

/// A provider that writes a small mail naming the period, counts its calls, and (when given a
/// barrier) waits at it first, so two daemons are both past their first look before either
/// claims.
fn provider(calls: Arc<AtomicUsize>, barrier: Option<Arc<Barrier>>) -> Provider {
    provider_fn(move |p: Period| {
        let calls = Arc::clone(&calls);
        let barrier = barrier.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            if let Some(b) = barrier {
                b.wait().await;
            }
            Ok::<_, ProviderError>(MonthlyMail {
                subject: format!("Rapporto mensile {}", p.from.format("%Y-%m")),
                text: format!(
                    "Periodo dal {} al {}.\nTicket chiusi in tempo: 42.",
                    p.from, p.to
                ),
                html: format!(
                    "<p>Periodo dal {} al {}.</p><p>Ticket chiusi in tempo: <b>42</b>.</p>",
                    p.from, p.to
                ),
                csv_name: format!("rapporto-{}.csv", p.from.format("%Y-%m")),
                csv: "periodo,priorità,chiusi_in_tempo\r\n2026-10,alta,42\r\n"
                    .as_bytes()
                    .to_vec(),
            })
        }
    })
}

fn scheduler(
    store: &Store,
    cfg: &Config,
    clock: messo::time::Clock,
    p: Provider,
) -> MonthlyScheduler {
    MonthlyScheduler::new(store.clone(), rome(), cfg.reports.monthly.clone(), p, clock)
}

async fn count(db: &Store, sql: &str) -> i64 {
    common::db::count(db, sql).await
}

async fn report_rows(store: &Store) -> i64 {
    count(
        store,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'rapporto_mensile'",
    )
    .await
}

/// 2 November 2026 at 08:00 in Rome: the run that reports October.
const NOVEMBER_RUN: &str = "2026-11-02T08:00:00+01:00";

async fn start(backend: Backend) -> TestDb {
    TestDb::open(backend).await
}

on_both!(start;
    two_daemons_at_the_same_instant_queue_the_mails_once,
    a_restart_after_the_claim_sends_nothing_again,
    a_run_missed_while_down_is_sent_when_the_daemon_starts,
    the_run_follows_the_local_time_across_the_autumn_change,
    the_run_follows_the_local_time_across_the_spring_change,
);

async fn two_daemons_at_the_same_instant_queue_the_mails_once(db: &TestDb) {
    let cfg = config(&[]);
    let calls = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(2));
    let second = db.second_pool().await;
    let clock = fixed_clock(ts(NOVEMBER_RUN));
    let a = scheduler(
        &db.store,
        &cfg,
        clock.clone(),
        provider(Arc::clone(&calls), Some(Arc::clone(&barrier))),
    );
    let b = scheduler(
        &second,
        &cfg,
        clock,
        provider(Arc::clone(&calls), Some(barrier)),
    );
    let (ra, rb) = tokio::join!(a.tick(), b.tick());
    let (ra, rb) = (ra.expect("tick a"), rb.expect("tick b"));
    // Both wrote the mail (both saw the run unclaimed); exactly one claimed it.
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let won: Vec<&Tick> = [&ra, &rb]
        .into_iter()
        .filter(|t| matches!(t, Tick::Queued { .. }))
        .collect();
    assert_eq!(won.len(), 1, "{ra:?} {rb:?}");
    assert!(
        [&ra, &rb].contains(&&Tick::Lost {
            month: "2026-10".to_owned()
        }),
        "{ra:?} {rb:?}"
    );
    // The office and the supervisor, once each.
    assert_eq!(report_rows(&db.store).await, 2);
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT recipient, address, dedupe_key FROM outbox WHERE kind = 'rapporto_mensile' ORDER BY recipient",
    )
    .fetch_all(db.store.pool())
    .await
    .expect("rows");
    assert_eq!(
        rows,
        vec![
            (
                "office".to_owned(),
                "urp@comune.roma.it".to_owned(),
                "monthly:2026-10".to_owned()
            ),
            (
                "supervisor".to_owned(),
                "dirigente.urp@comune.roma.it".to_owned(),
                "monthly:2026-10".to_owned()
            ),
        ]
    );
    let run = db
        .store
        .schedule()
        .run(JOB, "2026-10")
        .await
        .expect("run")
        .expect("claimed");
    assert_eq!(run.due_at, ts(NOVEMBER_RUN));
    assert_eq!(run.claimed_at, ts(NOVEMBER_RUN));
    assert_eq!(run.sent_at, None);
    let Tick::Queued { outbox_ids, .. } = won[0] else {
        unreachable!("filtered above")
    };
    assert_eq!(&run.outbox_ids, outbox_ids);
    // A later tick of either finds it claimed.
    assert_eq!(
        b.tick().await.expect("tick"),
        Tick::AlreadyClaimed {
            month: "2026-10".to_owned()
        }
    );
    assert_eq!(
        count(&db.store, "SELECT COUNT(*) FROM report_schedule").await,
        1
    );
}

async fn a_restart_after_the_claim_sends_nothing_again(db: &TestDb) {
    let cfg = config(&[]);
    let clock = TestClock::at(NOVEMBER_RUN);
    let first_calls = Arc::new(AtomicUsize::new(0));
    let first = scheduler(
        &db.store,
        &cfg,
        clock.clock(),
        provider(Arc::clone(&first_calls), None),
    );
    assert!(matches!(
        first.tick().await.expect("tick"),
        Tick::Queued { .. }
    ));
    drop(first);
    // The daemon restarts an hour later on a new connection pool.
    clock.advance(3600);
    let store = db.second_pool().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let again = scheduler(
        &store,
        &cfg,
        clock.clock(),
        provider(Arc::clone(&calls), None),
    );
    assert_eq!(
        again.tick().await.expect("tick"),
        Tick::AlreadyClaimed {
            month: "2026-10".to_owned()
        }
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the mail is not even written again"
    );
    assert_eq!(report_rows(&db.store).await, 2);
    assert_eq!(first_calls.load(Ordering::SeqCst), 1);
}

async fn a_run_missed_while_down_is_sent_when_the_daemon_starts(db: &TestDb) {
    let cfg = config(&[]);
    let calls = Arc::new(AtomicUsize::new(0));
    // Down from 30 October to the 20th of November: October's report goes at the start.
    let clock = TestClock::at("2026-11-20T10:17:00+01:00");
    let s = scheduler(
        &db.store,
        &cfg,
        clock.clock(),
        provider(Arc::clone(&calls), None),
    );
    assert!(
        matches!(s.tick().await.expect("tick"), Tick::Queued { ref month, .. } if month == "2026-10")
    );
    let run = db
        .store
        .schedule()
        .run(JOB, "2026-10")
        .await
        .expect("run")
        .expect("row");
    assert_eq!(
        (run.due_at, run.claimed_at),
        (ts(NOVEMBER_RUN), clock.now())
    );
    // Down again from the 25th of November to 1 December 07:59: November's run is not due yet,
    // and October's is not sent twice; at 08:00 November's goes.
    clock.set("2026-12-01T07:59:59+01:00");
    assert_eq!(s.tick().await.expect("tick"), Tick::NotDue);
    clock.set("2026-12-01T08:00:00+01:00");
    assert!(
        matches!(s.tick().await.expect("tick"), Tick::Queued { ref month, .. } if month == "2026-11")
    );
    // Down for the whole of January 2027's run day and until February's: only the latest
    // report (January's, due 1 February) is sent; December's is superseded and never sent.
    clock.set("2027-02-03T09:00:00+01:00");
    assert!(
        matches!(s.tick().await.expect("tick"), Tick::Queued { ref month, .. } if month == "2027-01")
    );
    let periods: Vec<String> = db
        .store
        .schedule()
        .runs(JOB)
        .await
        .expect("runs")
        .into_iter()
        .map(|r| r.period)
        .collect();
    assert_eq!(periods, ["2026-10", "2026-11", "2027-01"]);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// Ticks every `step` seconds from `from` until the run is queued; the instant it was.
async fn first_queued(s: &MonthlyScheduler, clock: &TestClock, from: &str, step: i64) -> i64 {
    clock.set(from);
    for _ in 0..20_000 {
        if let Tick::Queued { .. } = s.tick().await.expect("tick") {
            return clock.now().0;
        }
        clock.advance(step);
    }
    panic!("never queued");
}

async fn the_run_follows_the_local_time_across_the_autumn_change(db: &TestDb) {
    // The clocks go back on Sunday 25 October 2026. A job that kept the summer offset would run
    // at 08:00 CEST = 06:00Z; the run is at 08:00 CET = 07:00Z on Monday 2 November.
    let cfg = config(&[]);
    let clock = TestClock::at("2026-10-24T12:00:00+02:00");
    let s = scheduler(
        &db.store,
        &cfg,
        clock.clock(),
        provider(Arc::new(AtomicUsize::new(0)), None),
    );
    // October's own run (1 October, September's report) was never claimed: the first tick,
    // still in October, sends it.
    assert!(
        matches!(s.tick().await.expect("tick"), Tick::Queued { ref month, .. } if month == "2026-09")
    );
    // Hour by hour across the change (10:00Z, 11:00Z, …): the first due tick is 07:00Z.
    assert_eq!(
        first_queued(&s, &clock, "2026-10-24T12:00:00+02:00", 3600).await,
        ts("2026-11-02T07:00:00Z").0
    );
    // Minute by minute over the morning of the run: not at 06:00Z, at 07:00Z.
    for sql in [
        "DELETE FROM outbox WHERE dedupe_key = 'monthly:2026-10'",
        "DELETE FROM report_schedule WHERE period = '2026-10'",
    ] {
        sqlx::query(sql).execute(db.store.pool()).await.expect(sql);
    }
    assert_eq!(
        first_queued(&s, &clock, "2026-11-02T05:30:00Z", 60).await,
        ts("2026-11-02T07:00:00Z").0
    );
    assert_eq!(report_rows(&db.store).await, 4);
}

async fn the_run_follows_the_local_time_across_the_spring_change(db: &TestDb) {
    // The clocks go forward on Sunday 29 March 2026; Wednesday 1 April at 08:00 CEST is 06:00Z
    // (a job that kept the winter offset would run an hour late, at 07:00Z).
    let cfg = config(&[("MESSO_REPORTS__MONTHLY__AT", "08:00")]);
    let clock = TestClock::at("2026-03-28T12:00:00+01:00");
    let s = scheduler(
        &db.store,
        &cfg,
        clock.clock(),
        provider(Arc::new(AtomicUsize::new(0)), None),
    );
    // March's run (2 March, February's report) was never claimed: sent while still in March.
    assert!(
        matches!(s.tick().await.expect("tick"), Tick::Queued { ref month, .. } if month == "2026-02")
    );
    assert_eq!(
        first_queued(&s, &clock, "2026-03-28T12:00:00+01:00", 3600).await,
        ts("2026-04-01T06:00:00Z").0
    );
    let run = db
        .store
        .schedule()
        .run(JOB, "2026-03")
        .await
        .expect("run")
        .expect("row");
    assert_eq!(run.due_at, ts("2026-04-01T08:00:00+02:00"));
    assert_eq!(run.claimed_at, ts("2026-04-01T06:00:00Z"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_email_reaches_a_real_smtp_server_with_text_html_and_the_csv() {
    let peer = SmtpPeer::start(&common::fresh_dir("peer"), 0, &[]);
    let port = peer.port.to_string();
    let cfg = config(&[
        ("MESSO_CHANNELS__EMAIL", "smtp"),
        ("MESSO_SMTP__HOST", "127.0.0.1"),
        ("MESSO_SMTP__PORT", &port),
        ("MESSO_SMTP__SECURITY", "plain"),
        ("MESSO_SMTP__TIMEOUT_S", "10"),
    ]);
    let db = TestDb::with_config(Backend::Sqlite, &cfg).await;
    let clock = TestClock::at(NOVEMBER_RUN);
    let s = scheduler(
        &db.store,
        &cfg,
        clock.clock(),
        provider(Arc::new(AtomicUsize::new(0)), None),
    );
    let Tick::Queued { outbox_ids, .. } = s.tick().await.expect("tick") else {
        panic!("not queued");
    };
    let dispatcher = Arc::new(
        Dispatcher::from_config(db.store.clone(), &cfg, Arc::new(Metrics::default()))
            .expect("dispatcher"),
    );
    let r = dispatcher
        .drain(&clock.clock(), u64::MAX)
        .await
        .expect("drain");
    assert_eq!(r.delivered, 2, "{r:?}");

    let mut to: Vec<String> = peer
        .envelopes()
        .iter()
        .map(|e| e["rcpt_tos"][0].as_str().unwrap_or("").to_owned())
        .collect();
    to.sort();
    assert_eq!(to, ["dirigente.urp@comune.roma.it", "urp@comune.roma.it"]);
    for n in 1..=2 {
        let eml = peer.message(n);
        assert_eq!(
            mail::header(&eml, "Subject").as_deref(),
            Some("Rapporto mensile 2026-10")
        );
        assert_eq!(
            mail::header(&eml, "X-Messo-Kind").as_deref(),
            Some("rapporto_mensile")
        );
        assert!(
            mail::header(&eml, "Content-Type").is_some_and(|c| c.starts_with("multipart/mixed")),
            "{eml}"
        );
        let text = mail::part(&eml, "text/plain").expect("text/plain part");
        assert!(
            text.contains("Periodo dal 2026-10-01 al 2026-10-31."),
            "{text}"
        );
        let html = mail::part(&eml, "text/html").expect("text/html part");
        assert!(html.contains("<b>42</b>"), "{html}");
        let csv = mail::part(&eml, "text/csv").expect("text/csv part");
        assert_eq!(csv, "periodo,priorità,chiusi_in_tempo\n2026-10,alta,42\n");
        let lower = eml.to_ascii_lowercase();
        assert!(
            lower.contains("content-type: text/csv; charset=utf-8"),
            "{eml}"
        );
        assert!(
            lower.contains("content-disposition: attachment; filename=\"rapporto-2026-10.csv\""),
            "{eml}"
        );
    }
    // Delivered: the next tick records the run as sent; nothing goes twice.
    clock.advance(60);
    assert_eq!(
        s.tick().await.expect("tick"),
        Tick::AlreadyClaimed {
            month: "2026-10".to_owned()
        }
    );
    let run = db
        .store
        .schedule()
        .run(JOB, "2026-10")
        .await
        .expect("run")
        .expect("row");
    assert_eq!(run.outbox_ids, outbox_ids);
    assert_eq!(run.sent_at, Some(clock.now()));
    let again = dispatcher
        .drain(&clock.clock(), u64::MAX)
        .await
        .expect("drain");
    assert_eq!(again.delivered, 0);
    assert_eq!(peer.envelopes().len(), 2);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_channel_writes_the_report_with_its_attachment() {
    let cfg = config(&[(
        "MESSO_REPORTS__MONTHLY__SUPERVISOR_EMAIL",
        "urp@comune.roma.it",
    )]);
    let db = TestDb::with_config(Backend::Sqlite, &cfg).await;
    let clock = TestClock::at(NOVEMBER_RUN);
    let s = scheduler(
        &db.store,
        &cfg,
        clock.clock(),
        provider(Arc::new(AtomicUsize::new(0)), None),
    );
    assert!(
        matches!(s.tick().await.expect("tick"), Tick::Queued { ref outbox_ids, .. } if outbox_ids.len() == 1),
        "the supervisor's address is the office's: one e-mail"
    );
    let out = db.dir.join("outbox");
    let r = messo::delivery::file::dispatch_files(
        &db.store,
        &out,
        "urp@comune.roma.it",
        "Roma",
        clock.now(),
    )
    .await
    .expect("dispatch");
    assert_eq!(r.delivered, 1);
    let files: Vec<_> = std::fs::read_dir(&out)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1);
    let name = files[0]
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_owned();
    assert!(name.ends_with("-rapporto_mensile-office.eml"), "{name}");
    let eml = std::fs::read_to_string(&files[0]).expect("eml");
    assert_eq!(
        mail::part(&eml, "text/csv").as_deref(),
        Some("periodo,priorità,chiusi_in_tempo\n2026-10,alta,42\n")
    );
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cron_ticker_asks_the_injected_clock_and_claims_the_due_run() {
    let cfg = config(&[]);
    let db = TestDb::open(Backend::Sqlite).await;
    // A clock that counts how often it is read (once per tick, once for the start's log line).
    let now = TestClock::at("2026-11-02T07:59:00+01:00");
    let reads = Arc::new(AtomicUsize::new(0));
    let (r, n) = (Arc::clone(&reads), now.clone());
    let clock: messo::time::Clock = Arc::new(move || {
        r.fetch_add(1, Ordering::SeqCst);
        n.now()
    });
    let s = Arc::new(scheduler(
        &db.store,
        &cfg,
        clock,
        provider(Arc::new(AtomicUsize::new(0)), None),
    ));
    // Every second, so the test does not wait a minute; the daemon ticks every minute.
    let mut jobs = start_ticker(Arc::clone(&s), "* * * * * *")
        .await
        .expect("ticker");
    // Not due yet: the start's tick and at least two of the ticker's find nothing to do.
    let mut waited = 0;
    while reads.load(Ordering::SeqCst) < 4 {
        waited += 1;
        assert!(waited < 600, "the ticker does not tick");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(report_rows(&db.store).await, 0);
    // The clock reaches 08:00: the next tick claims the run.
    now.set(NOVEMBER_RUN);
    let mut waited = 0;
    while report_rows(&db.store).await < 2 {
        waited += 1;
        assert!(waited < 600, "the ticker never claimed the run");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    jobs.shutdown().await.expect("shutdown");
    assert_eq!(report_rows(&db.store).await, 2);
    db.finish().await;
}

#[test]
fn words_of_other_kinds_are_stored_as_before() {
    let words = RenderedMessage {
        subject: "s".to_owned(),
        text: "t".to_owned(),
        html: None,
        template: "cittadino/ricevuta/it".to_owned(),
        version: 3,
        attachments: Vec::new(),
    };
    assert_eq!(
        serde_json::to_value(&words).expect("json"),
        json!({"subject": "s", "text": "t", "html": null, "template": "cittadino/ricevuta/it", "version": 3})
    );
    // Words stored before this version read back with no attachment.
    let old: RenderedMessage = serde_json::from_str(
        r#"{"subject":"s","text":"t","html":null,"template":"cittadino/ricevuta/it","version":3}"#,
    )
    .expect("old words");
    assert_eq!(old, words);
}

#[test]
fn a_malformed_time_names_its_key() {
    let e = Config::from_toml(
        "[reports.monthly]\nenabled = true\nat = \"8:00\"\n",
        "test.toml",
        Vec::new(),
    )
    .expect_err("refused");
    let text = e.to_string();
    assert!(text.contains("reports.monthly.at"), "{text}");
    let e = Config::from_toml(
        "[reports.monthly]\nsupervisor_email = \"not an address\"\n",
        "test.toml",
        Vec::new(),
    )
    .expect_err("refused");
    assert!(
        e.to_string().contains("reports.monthly.supervisor_email"),
        "{e}"
    );
    let c = Config::from_toml("", "test.toml", Vec::new()).expect("defaults");
    assert!(!c.reports.monthly.enabled);
    assert_eq!(c.reports.monthly.at.to_string(), "08:00");
    assert_eq!(c.reports.monthly.office_email, c.notify.office_email);
    assert_eq!(
        c.reports.monthly.supervisor_email,
        c.notify.supervisor_email
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_sends_the_report_with_the_provider_it_is_given() {
    messo::install_crypto();
    let dir = common::fresh_dir("daemon");
    let out = dir.join("outbox");
    let db_url = format!("sqlite://{}/messo.db", dir.display());
    let out_text = out.display().to_string();
    let cfg = config(&[
        ("MESSO_DATABASE__URL", &db_url),
        ("MESSO_HTTP__LISTEN", "127.0.0.1:0"),
        ("MESSO_CHANNELS__FILE_DIR", &out_text),
    ]);
    let calls = Arc::new(AtomicUsize::new(0));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let daemon = tokio::spawn(messo::daemon::run_with(
        cfg,
        fixed_clock(ts(NOVEMBER_RUN)),
        shutdown,
        Some(provider(Arc::clone(&calls), None)),
    ));
    // The run is due at the daemon's start: its two e-mails are written by the file channel.
    let reports = || -> Vec<String> {
        std::fs::read_dir(&out)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                    .filter(|n| n.contains("-rapporto_mensile-") && n.ends_with(".eml"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut waited = 0;
    while reports().len() < 2 {
        waited += 1;
        assert!(
            waited < 600 && !daemon.is_finished(),
            "the daemon wrote no report"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    stop.send(true).expect("stop");
    daemon
        .await
        .expect("join")
        .expect("the daemon stops cleanly");
    let mut names = reports();
    names.sort();
    assert!(
        names[0].ends_with("-rapporto_mensile-office.eml"),
        "{names:?}"
    );
    assert!(
        names[1].ends_with("-rapporto_mensile-supervisor.eml"),
        "{names:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
