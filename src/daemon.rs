//! `messo run`: the long-running process.
//!
//! It applies migrations, records the configuration's calendar and policy versions, serves the
//! HTTP API, and runs one loop that (1) takes the CRM's direct writes, (2) runs the engine over
//! the tickets whose next instant has come, and (3) delivers what is owed. The loop wakes at
//! least every `poll_interval_ms` (a plain timer: no local-time cron), right after an API
//! write, and exactly at the earliest instant the store is waiting for (a warning, a due
//! instant, a reminder, an SMS window opening), so a breach is acted on within a second of its
//! instant. After downtime the first pass catches up on everything that came due, once.
//!
//! Shutdown on SIGTERM or SIGINT: stop taking requests and work, finish what is in flight
//! (bounded), tell systemd, return.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::{Notify as Wake, watch};

use crate::calendar::Calendar;
use crate::config::{Config, Notify};
use crate::delivery::dispatch::Dispatcher;
use crate::engine::{self, Context, Decision};
use crate::http::admin::AdminState;
use crate::http::portal::PortalState;
use crate::http::webhooks::WebhookState;
use crate::http::{self, AppState, TokenBook};
use crate::metrics::Metrics;
use crate::store::{
    Backend, CycleReport, EngineInput, InboundPolicy, InboundWriter, OutboxError, Store, StoreError,
};
use crate::templates::{Catalog, Settings, Templates};
use crate::time::Clock;
use crate::time::Timestamp;

crate::store::from_store_errors!(DaemonError);

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
    #[error(
        "another messo daemon already runs on {0}; SQLite serves one daemon (use PostgreSQL for several)"
    )]
    AlreadyRunning(String),
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
    #[error("calendar: {0}")]
    Calendar(#[from] crate::calendar::CalendarError),
    #[error("delivery: {0}")]
    Delivery(#[from] crate::delivery::dispatch::SetupError),
    #[error("templates: {0}")]
    Templates(String),
    #[error("the monthly report's ticker: {0}")]
    Scheduler(String),
    #[error("digital domicile: {0}")]
    Domicile(#[from] crate::delivery::inad::InadSetupError),
}

/// Runs the engine with the right clock for each ticket's versions.
pub struct Engine {
    store: Store,
    notify: Notify,
    sms: Mutex<HashMap<i64, Arc<Calendar>>>,
}

/// Tickets decided per transaction.
const BATCH: i64 = 500;
/// Tickets decided per pass at most; a longer catch-up continues in the next pass, right away.
const PASS_TICKETS: u64 = 10_000;
/// Inbound records acted on in one pass at most.
const PASS_INBOUND: i64 = 2_000;
/// While webhooks arrive: records per pass, and the least time between passes.
const BUSY_INBOUND: i64 = 100;
const BUSY_PACE: Duration = Duration::from_millis(100);
/// Messages taken per dispatch round at most; the next round starts right away.
const ROUND_MESSAGES: u64 = 20_000;

impl Engine {
    /// An engine over `store` with the `[notify]` settings.
    pub fn new(store: Store, notify: Notify) -> Engine {
        Engine {
            store,
            notify,
            sms: Mutex::new(HashMap::new()),
        }
    }

    /// The engine's decision for one ticket, with the clock of its own versions.
    pub fn decide(&self, input: EngineInput<'_>, now: Timestamp) -> Result<Decision, OutboxError> {
        let t = input.ticket;
        let sla = self
            .store
            .versions()
            .sla(t.calendar_version, t.policy_version)?;
        let sms = {
            let mut cache = self.sms.lock().unwrap_or_else(PoisonError::into_inner);
            match cache.get(&t.calendar_version) {
                Some(c) => Arc::clone(c),
                None => {
                    let c = Arc::new(engine::sms_calendar(&sla.calendar, &self.notify)?);
                    cache.insert(t.calendar_version, Arc::clone(&c));
                    c
                }
            }
        };
        let ctx = Context {
            sla: &sla,
            notify: &self.notify,
            sms_calendar: &sms,
        };
        Ok(engine::decide(
            &ctx,
            t,
            input.received_at,
            input.derived,
            input.events,
            now,
        )?)
    }

    /// Decides every ticket whose next instant has come by `now`.
    pub async fn cycle(&self, now: Timestamp) -> Result<CycleReport, StoreError> {
        self.cycle_bounded(now, u64::MAX).await
    }

    /// Decides tickets whose next instant has come, stopping after about `max` of them (so a
    /// catch-up over many tickets lets deliveries and the watchdog through between passes).
    pub async fn cycle_bounded(&self, now: Timestamp, max: u64) -> Result<CycleReport, StoreError> {
        let mut total = CycleReport::default();
        while total.tickets < max {
            let r = self
                .store
                .outbox()
                .engine_cycle(now, BATCH, |input| self.decide(input, now))
                .await?;
            total.tickets += r.tickets;
            total.owed += r.owed;
            if r.tickets < BATCH as u64 {
                break;
            }
        }
        Ok(total)
    }
}

/// One pass: inbound replies and receipts, direct writes, then the engine; the dispatcher is
/// woken when messages are owed. True when the pass stopped at a bound with work left (the
/// next one should start at once).
#[tracing::instrument(
    name = "engine_pass",
    skip_all,
    fields(inbound_limit = inbound_limit, tickets = tracing::field::Empty, owed = tracing::field::Empty)
)]
#[allow(clippy::too_many_arguments)]
pub async fn pass(
    store: &Store,
    engine: &Engine,
    inbound: &InboundPolicy,
    sms_answering: Option<&crate::store::SmsAnswering>,
    inbound_limit: i64,
    clock: &Clock,
    metrics: &Metrics,
    send_wake: &Wake,
) -> Result<bool, StoreError> {
    let started = Instant::now();
    // Inbound records first (a reply resumes a clock the engine then looks at), bounded so a
    // flood of webhooks never starves the engine; what is left goes in the next pass, at once.
    let r = store
        .inbound()
        .process_inbound_answering(inbound, sms_answering, clock(), inbound_limit)
        .await?;
    let inbound_full = r.processed >= inbound_limit as u64;
    metrics.inbound_total.inc_by(r.processed);
    metrics.inbound_integrations_total.inc_by(r.integrations);
    metrics.inbound_unmatched_total.inc_by(r.unmatched);
    metrics.inbound_opt_outs_total.inc_by(r.opt_outs);
    metrics.inbound_receipts_total.inc_by(r.receipts);
    metrics.sms_answers_total.inc_by(r.sms_answers);
    metrics
        .sms_answers_limited_total
        .inc_by(r.sms_answers_limited);
    if r.processed > 0 {
        tracing::info!(
            processed = r.processed,
            integrations = r.integrations,
            notes = r.notes,
            unmatched = r.unmatched,
            opt_outs = r.opt_outs,
            receipts = r.receipts,
            fallbacks = r.fallbacks,
            survey_answers = r.survey_answers,
            sms_answers = r.sms_answers,
            sms_answers_limited = r.sms_answers_limited,
            "inbound pass"
        );
        // Office alerts, answers and replacements may be owed.
        send_wake.notify_one();
    }
    loop {
        let r = store.tickets().process_inbox(clock(), BATCH).await?;
        let n = r.accepted + r.unchanged + r.rejected;
        metrics.inbox_rows_total.inc_by(n);
        if n < BATCH as u64 {
            break;
        }
    }
    let now = clock();
    let report = engine.cycle_bounded(now, PASS_TICKETS).await?;
    metrics.owed_total.inc_by(report.owed);
    tracing::Span::current()
        .record("tickets", report.tickets)
        .record("owed", report.owed);
    let took = started.elapsed();
    metrics.cycles.inc();
    metrics
        .last_cycle_ms
        .set(i64::try_from(took.as_millis()).unwrap_or(i64::MAX));
    metrics.last_cycle_at.set(now.0);
    metrics.observe_pass(took);
    // Woken after the pass is counted, so a message it owed is never counted sent before it.
    if report.owed > 0 {
        send_wake.notify_one();
    }
    if report.tickets > 0 {
        tracing::info!(tickets = report.tickets, owed = report.owed, "engine pass");
    }
    Ok(report.tickets >= PASS_TICKETS || inbound_full)
}

/// The dispatcher's loop: sends what is due, then sleeps until woken (new messages owed), until
/// the earliest queued message is due, or until the next tick.
async fn send_loop(
    dispatcher: Arc<Dispatcher>,
    store: Store,
    clock: Clock,
    wake: Arc<Wake>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let mut idle = true;
        match dispatcher.drain(&clock, ROUND_MESSAGES).await {
            Ok(r) => {
                idle = r.delivered + r.failed == 0;
                if !idle {
                    tracing::info!(
                        delivered = r.delivered,
                        retried_or_failed = r.failed,
                        dead = r.dead,
                        held = r.uncertain,
                        fallbacks = r.fallbacks,
                        "dispatch round"
                    );
                }
            }
            Err(e) => tracing::error!(error = %e, "dispatch failed; retrying at the next tick"),
        }
        if *shutdown.borrow() {
            break;
        }
        let wait = if !idle {
            Duration::ZERO
        } else {
            match store.outbox().earliest_message().await {
                Ok(Some(t)) => {
                    let ms = t.0 * 1000 - chrono::Utc::now().timestamp_millis();
                    // Due now but nothing went (every provider's circuit open): look again soon.
                    Duration::from_millis(ms.max(250) as u64)
                }
                _ => interval,
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait.min(interval)) => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
        if *shutdown.borrow() {
            break;
        }
    }
}

/// Takes the single-daemon lock of a SQLite file (`<file>.lock`), held until the process ends.
fn sqlite_lock(database_url: &str) -> Result<Option<File>, DaemonError> {
    let path = database_url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return Ok(None);
    }
    let lock_path = format!("{path}.lock");
    if let Some(dir) = std::path::Path::new(&lock_path).parent()
        && !dir.as_os_str().is_empty()
    {
        crate::private_files::create_dir_all(dir).map_err(|source| DaemonError::Lock {
            path: lock_path.clone(),
            source,
        })?;
    }
    let file =
        crate::private_files::create_file(std::path::Path::new(&lock_path)).map_err(|source| {
            DaemonError::Lock {
                path: lock_path.clone(),
                source,
            }
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(DaemonError::AlreadyRunning(path.to_owned())),
        Err(std::fs::TryLockError::Error(source)) => Err(DaemonError::Lock {
            path: lock_path,
            source,
        }),
    }
}

/// The soft limit of open files of this process (Linux: `/proc/self/limits`), if it is known.
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn sd_notify(state: &[sd_notify::NotifyState<'_>]) {
    // A no-op unless systemd started us with NOTIFY_SOCKET.
    let _ = sd_notify::notify(state);
}

/// Locks a SQLite file to this daemon, connects, migrates, records the configuration's
/// versions and says what needs saying at start.
async fn open_store(config: &Config, clock: &Clock) -> Result<(Option<File>, Store), DaemonError> {
    let lock = if config.database_url.starts_with("sqlite:") {
        sqlite_lock(&config.database_url)?
    } else {
        None
    };
    let store = Store::connect(&config.database_url).await?;
    store.migrate().await?;
    let (cal_v, pol_v) = store.register_config(config, clock()).await?;
    tracing::info!(
        backend = ?store.backend(),
        calendar_version = cal_v,
        policy_version = pol_v,
        "store ready"
    );
    if let Some(w) = config.inbound.mail_auth_warning() {
        tracing::warn!("{w}");
    }
    if store.backend() == Backend::Sqlite {
        // Alone on the file (the lock says so): leases left by a crashed run are dead.
        let released = store.outbox().release_leases(clock()).await?;
        if released > 0 {
            tracing::warn!(
                rows = released,
                "released messages left in flight by a previous run"
            );
        }
    }
    if config.http.tokens.is_empty() {
        tracing::warn!(
            "no API tokens configured: the ticket API refuses every request (see `messo token new`)"
        );
    }
    Ok((lock, store))
}

/// Every rate limiter forgets, once a minute, the clients whose allowance is full again.
fn spawn_pruner(
    tokens: Arc<TokenBook>,
    webhooks: WebhookState,
    admin: AdminState,
    portal: Option<PortalState>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.wait_for(|stop| *stop) => break,
            }
            tokens.prune();
            webhooks.prune();
            admin.prune();
            if let Some(p) = &portal {
                p.prune();
            }
        }
    })
}

/// The daemon's tasks, stopped in order by [`stop_tasks`].
struct Tasks {
    /// The monthly report's ticker, when enabled.
    reports: Option<tokio_cron_scheduler::JobScheduler>,
    dispatcher: Arc<Dispatcher>,
    send_wake: Arc<Wake>,
    sender: tokio::task::JoinHandle<()>,
    imap: Option<tokio::task::JoinHandle<()>>,
    /// The IO status pass, when `[io]` is on.
    io: Option<tokio::task::JoinHandle<()>>,
    /// The digital domicile look-ups, when `[domicile.inad]` is configured.
    domicile: Option<tokio::task::JoinHandle<()>>,
    housekeeping: tokio::task::JoinHandle<()>,
    pruner: tokio::task::JoinHandle<()>,
    server: tokio::task::JoinHandle<Result<(), std::io::Error>>,
}

/// Lets what is in flight finish (messages 60 s, IMAP 10 s, requests 20 s), then stops.
async fn stop_tasks(t: Tasks) -> Result<(), DaemonError> {
    let Tasks {
        reports,
        dispatcher,
        send_wake,
        sender,
        imap,
        io,
        domicile,
        housekeeping,
        pruner,
        server,
    } = t;
    sd_notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("stopping: finishing requests and messages in flight");
    // No new run is claimed from here; a claim under way commits or rolls back as a whole.
    if let Some(mut jobs) = reports
        && let Err(e) = jobs.shutdown().await
    {
        tracing::warn!(error = %e, "stopping the monthly report's ticker");
    }
    dispatcher.stop();
    send_wake.notify_one();
    if tokio::time::timeout(Duration::from_secs(60), sender)
        .await
        .is_err()
    {
        tracing::warn!(
            "messages still in flight after 60 s; their leases bring them back in doubt"
        );
    }
    if let Some(task) = imap {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    if let Some(task) = io {
        task.abort();
    }
    if let Some(task) = domicile {
        // A look-up cut short caches nothing: the code is asked again after the restart.
        task.abort();
    }
    housekeeping.abort();
    pruner.abort();
    match tokio::time::timeout(Duration::from_secs(20), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(DaemonError::Serve(e)),
        Ok(Err(join)) => tracing::error!(error = %join, "HTTP server task failed"),
        Err(_) => tracing::warn!("requests still in flight after 20 s; leaving them"),
    }
    Ok(())
}

/// The portal's state and the link maker of the dispatcher, when the portal is on.
async fn portal(
    config: &Config,
    store: &Store,
    state: &AppState,
    metrics: &Arc<Metrics>,
) -> Result<Option<(PortalState, Arc<crate::portal::LinkMaker>)>, DaemonError> {
    if !config.portal.enabled {
        tracing::info!("the citizen portal is off (portal.enabled = false): no status links");
        return Ok(None);
    }
    let keys = http::portal::link_keys(config, store, (state.clock)()).await?;
    Ok(Some((
        PortalState::new(
            store.clone(),
            Arc::clone(&state.tokens),
            keys.clone(),
            config,
            state.clock.clone(),
            Arc::clone(metrics),
        ),
        Arc::new(http::portal::link_maker(config, keys)),
    )))
}

/// Installs the live templates again when another instance published (their stamp changed).
async fn reload_if_published(store: &Store, admin: &AdminState, stamp: &mut (i64, i64)) {
    match store.templates().live_templates_stamp().await {
        Ok(now) if now != *stamp => {
            *stamp = now;
            if let Err(e) = admin.reload().await {
                tracing::error!(error = %e, "reloading the live templates failed");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "reading the live templates failed"),
    }
}

/// How long until the earliest instant a ticket is due for a look (at most `interval`).
async fn until_earliest_check(store: &Store, interval: Duration) -> Duration {
    match store.outbox().earliest_check().await {
        Ok(Some(t)) => {
            // Wake at the instant itself, to the millisecond of the system clock.
            let ms = t.0 * 1000 - chrono::Utc::now().timestamp_millis();
            Duration::from_millis(ms.max(20) as u64)
        }
        _ => interval,
    }
}

/// The daemon's passes (inbound → inbox → engine), each followed by a sleep until the next
/// tick, an API write or the earliest instant something is due.
struct Passes<'a> {
    store: &'a Store,
    engine: &'a Engine,
    inbound_policy: &'a InboundPolicy,
    sms_answering: Option<&'a crate::store::SmsAnswering>,
    writer: &'a InboundWriter,
    clock: &'a Clock,
    metrics: &'a Arc<Metrics>,
    send_wake: &'a Arc<Wake>,
    wake: &'a Arc<Wake>,
    admin: &'a AdminState,
    interval: Duration,
}

impl Passes<'_> {
    /// Until `shutdown` turns true; `templates_stamp` is the live templates' stamp at start.
    async fn run(self, mut templates_stamp: (i64, i64), shutdown: &mut watch::Receiver<bool>) {
        loop {
            // While webhooks pour in, act on at most 100 records per pass and pass at most every
            // 100 ms (1,000 records a second): answering providers comes first.
            let busy = self.writer.busy();
            let limit = if busy { BUSY_INBOUND } else { PASS_INBOUND };
            let started = Instant::now();
            let run = pass(
                self.store,
                self.engine,
                self.inbound_policy,
                self.sms_answering,
                limit,
                self.clock,
                self.metrics,
                self.send_wake,
            );
            // A panic in a pass is logged and the next tick tries again: the loop, and with it the
            // watchdog, the HTTP server and the dispatcher, go on.
            // A pass that stopped at a bound with work left is followed by the next one at once.
            let backlog = match std::panic::AssertUnwindSafe(run).catch_unwind().await {
                Ok(Ok(full)) => full,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "pass failed; retrying at the next tick");
                    false
                }
                Err(p) => {
                    tracing::error!(panic = %http::panic_message(p.as_ref()),
                        "the pass panicked; retrying at the next tick");
                    false
                }
            };
            // A version published through another instance goes live here too.
            reload_if_published(self.store, self.admin, &mut templates_stamp).await;
            sd_notify(&[sd_notify::NotifyState::Watchdog]);
            // Sleep until the next tick, an API write, or the earliest instant something is due.
            if busy {
                let pause = BUSY_PACE.saturating_sub(started.elapsed());
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.wait_for(|stop| *stop) => break,
                }
                if backlog {
                    continue;
                }
            }
            let exact = if backlog {
                Duration::ZERO
            } else {
                until_earliest_check(self.store, self.interval).await
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(exact.min(self.interval)) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
    }
}

/// Polls the IMAP mailbox, when configured, under `supervise`.
fn spawn_imap(
    config: &Config,
    writer: &InboundWriter,
    clock: &Clock,
    shutdown: &watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    config.inbound.imap.clone().map(|polling| {
        let (inbound, writer, clock, stop) = (
            config.inbound.clone(),
            writer.clone(),
            clock.clone(),
            shutdown.clone(),
        );
        tokio::spawn(supervise("imap", shutdown.clone(), move || {
            imap_loop(
                polling.clone(),
                inbound.clone(),
                writer.clone(),
                clock.clone(),
                stop.clone(),
            )
        }))
    })
}

/// How often the IO status pass runs.
const IO_CHECK_EVERY: Duration = Duration::from_secs(30);

/// The IO status pass ([`crate::delivery::io::check_messages`]), every 30 s, when `[io]` is on.
fn spawn_io_checker(
    config: &Config,
    store: &Store,
    clock: &Clock,
    metrics: &Arc<Metrics>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>, DaemonError> {
    let Some(io) = &config.io else {
        return Ok(None);
    };
    let client = Arc::new(
        crate::delivery::io::IoClient::new(io).map_err(|e| DaemonError::Delivery(e.into()))?,
    );
    let (config, store, clock, metrics, mut stop) = (
        Arc::new(config.clone()),
        store.clone(),
        clock.clone(),
        Arc::clone(metrics),
        shutdown.clone(),
    );
    Ok(Some(tokio::spawn(async move {
        let mut every = tokio::time::interval(IO_CHECK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.wait_for(|stop| *stop) => break,
            }
            match crate::delivery::io::check_messages(&store, &client, &config, clock()).await {
                Ok(r) => {
                    metrics.io_readbacks_total.inc_by(r.checked);
                    metrics.io_unread_copies_total.inc_by(r.unread_copies);
                    if r.failed + r.unread_copies > 0 {
                        tracing::info!(
                            checked = r.checked,
                            processed = r.processed,
                            failed = r.failed,
                            read = r.read,
                            unread_copies = r.unread_copies,
                            "io status pass"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "io status pass failed; next in 30 s"),
            }
        }
    })))
}

/// Looks citizens' digital domiciles up in INAD, when `[domicile.inad]` is configured, under
/// `supervise`: a pass at the start, then at most once a minute.
fn spawn_domicile(
    config: &Config,
    store: &Store,
    clock: &Clock,
    metrics: &Arc<Metrics>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>, DaemonError> {
    let Some(inad) = &config.domicile.inad else {
        return Ok(None);
    };
    let client = Arc::new(crate::delivery::inad::InadClient::new(inad)?);
    let (store, clock, metrics, stop) = (
        store.clone(),
        clock.clone(),
        Arc::clone(metrics),
        shutdown.clone(),
    );
    Ok(Some(tokio::spawn(supervise(
        "domicile",
        shutdown.clone(),
        move || {
            domicile_loop(
                Arc::clone(&client),
                store.clone(),
                clock.clone(),
                Arc::clone(&metrics),
                stop.clone(),
            )
        },
    ))))
}

/// The INAD look-ups, once a minute; a pass that fails is logged and the next one tries again.
async fn domicile_loop(
    client: Arc<crate::delivery::inad::InadClient>,
    store: Store,
    clock: Clock,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    const EVERY: Duration = Duration::from_secs(60);
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        let pass = crate::delivery::inad::resolve_and_count(&store, &client, &metrics, clock());
        tokio::select! {
            r = pass => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "digital domicile pass failed; trying again in a minute");
                }
            }
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
}

/// The dispatcher: the configured channels, the SMS window for fallbacks, the live templates
/// and, with the portal on, status links.
fn dispatcher(
    config: &Config,
    store: &Store,
    metrics: &Arc<Metrics>,
    templates: &Arc<Templates>,
    links: Option<Arc<crate::portal::LinkMaker>>,
) -> Result<Dispatcher, DaemonError> {
    let sms_calendar = Arc::new(engine::sms_calendar(
        &config.sla()?.calendar,
        &config.notify,
    )?);
    let mut dispatcher = Dispatcher::from_config(store.clone(), config, Arc::clone(metrics))?
        .with_sms_opening(Arc::new(move |t| sms_calendar.next_opening(t).unwrap_or(t)))
        .with_templates(Arc::clone(templates));
    if let Some(links) = links {
        dispatcher = dispatcher.with_status_links(links);
    }
    Ok(dispatcher)
}

/// The dispatcher's loop, under `supervise`.
fn spawn_sender(
    dispatcher: &Arc<Dispatcher>,
    store: &Store,
    clock: &Clock,
    send_wake: &Arc<Wake>,
    interval: Duration,
    shutdown: &watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let (dispatcher, store, clock, wake, stop) = (
        Arc::clone(dispatcher),
        store.clone(),
        clock.clone(),
        Arc::clone(send_wake),
        shutdown.clone(),
    );
    tokio::spawn(supervise("send", shutdown.clone(), move || {
        send_loop(
            Arc::clone(&dispatcher),
            store.clone(),
            clock.clone(),
            Arc::clone(&wake),
            interval,
            stop.clone(),
        )
    }))
}

/// Runs until `shutdown` turns true. The monthly report e-mail (when enabled) is the
/// reports layer's (`monthly::report_provider`).
pub async fn run(
    config: Config,
    clock: Clock,
    shutdown: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    run_with(config, clock, shutdown, None).await
}

/// Runs until `shutdown` turns true; `monthly` writes the monthly report e-mail (`None`: the
/// reports layer's).
// Long because it is the daemon's wiring, read top to bottom in start order: the shared state
// each part is given, the listener, the tasks, the passes, the stop. Each step is a function.
pub async fn run_with(
    config: Config,
    clock: Clock,
    mut shutdown: watch::Receiver<bool>,
    monthly: Option<crate::monthly::Provider>,
) -> Result<(), DaemonError> {
    let (_lock, store) = open_store(&config, &clock).await?;
    let monthly = monthly.unwrap_or_else(|| {
        crate::monthly::report_provider(store.clone(), Arc::new(config.clone()), clock.clone())
    });
    let wake = Arc::new(Wake::new());
    let metrics = Arc::new(Metrics::default());
    let limits = config.http.limits.clone();
    if !http::set_parallel_hashes(limits.parallel_hashes) {
        tracing::warn!("argon2 parallelism was set before the daemon started; keeping it");
    }
    let state = AppState {
        store: store.clone(),
        tokens: Arc::new(TokenBook::with_limit(
            config.http.tokens.clone(),
            limits.max_tracked_clients,
        )),
        clock: clock.clone(),
        wake: Arc::clone(&wake),
        metrics: Arc::clone(&metrics),
    };
    let templates = Arc::new(Templates::new(
        Catalog::bundled().map_err(|e| DaemonError::Templates(e.to_string()))?,
        Settings::from_config(&config),
    ));
    let send_wake = Arc::new(Wake::new());
    let admin = AdminState::from_config(
        store.clone(),
        Arc::clone(&templates),
        clock.clone(),
        &config,
        Arc::clone(&send_wake),
    );
    admin.reload().await?;
    let templates_stamp = store.templates().live_templates_stamp().await?;
    let writer = InboundWriter::spawn(store.clone(), Arc::clone(&wake));
    let webhooks = WebhookState::with_max_clients(
        &config.inbound,
        &config.http.public_base_url,
        writer.clone(),
        clock.clone(),
        limits.max_tracked_clients,
    )
    .with_metrics(Arc::clone(&metrics));
    let portal = portal(&config, &store, &state, &metrics).await?;
    let webhooks = if config.voice.enabled {
        let keys = http::portal::link_keys(&config, &store, (state.clock)()).await?;
        tracing::info!(
            office_number = %config.voice.office_number.as_ref().map(|n| crate::redact::mask(n.as_str())).unwrap_or_default(),
            "the telephone answering backup answers the voice webhooks"
        );
        webhooks.with_answering(http::voice::Answering::new(
            store.clone(),
            Arc::clone(&templates),
            keys,
            &config,
            Arc::new(config.sla()?),
        ))
    } else {
        webhooks
    };
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: config.http.listen,
            source,
        })?;
    if let Some(files) = open_files_limit()
        && files < limits.max_connections as u64 + 256
    {
        tracing::warn!(
            open_files = files,
            max_connections = limits.max_connections,
            "the open-files limit is below http.max_connections + 256: raise LimitNOFILE \
             (systemd/messo.service) or lower http.max_connections"
        );
    }
    tracing::info!(
        addr = %config.http.listen,
        max_connections = limits.max_connections,
        header_read_timeout_s = limits.header_read_timeout.as_secs(),
        "HTTP API listening"
    );

    let pruner = spawn_pruner(
        Arc::clone(&state.tokens),
        webhooks.clone(),
        admin.clone(),
        portal.as_ref().map(|(p, _)| p.clone()),
        shutdown.clone(),
    );

    let admin_routes = admin.clone();
    let portal_routes = portal.as_ref().map(|(p, _)| p.clone());
    let report_routes = http::reports::ReportsState::new(
        store.clone(),
        Arc::new(config.clone()),
        Arc::clone(&state.tokens),
        admin.clone(),
        clock.clone(),
    );
    let server_stop = shutdown.clone();
    let server = tokio::spawn(async move {
        let (app, _) = http::app(state, webhooks, admin_routes, portal_routes, report_routes);
        // A panic in one request is a 500 for that request, never the end of the daemon.
        let app = http::catch_panics(app);
        http::server::serve(listener, app, &limits, server_stop).await
    });

    // The loop below wakes at least every poll interval (its own timer), so no tick job is
    // needed; housekeeping is a plain hourly interval. The one calendar schedule, the monthly
    // report, is a UTC ticker that asks the calendar (`start_monthly`).
    let interval = Duration::from_millis(config.poll_interval_ms);
    let housekeeping = tokio::spawn(housekeeping_loop(
        store.clone(),
        clock.clone(),
        Housekeeping::from_config(&config),
        Arc::clone(&metrics),
        shutdown.clone(),
    ));

    let engine = Engine::new(store.clone(), config.notify.clone());
    let inbound_policy = crate::store::inbound_policy(&config);
    // The SMS answering (STATO/AIUTO): the access codes come from the portal's keys.
    let sms_answering = if config.voice.sms_answers.enabled {
        let keys = http::portal::link_keys(&config, &store, clock()).await?;
        crate::store::SmsAnswering::from_config(&config, keys)
    } else {
        None
    };
    let imap = spawn_imap(&config, &writer, &clock, &shutdown);
    let io = spawn_io_checker(&config, &store, &clock, &metrics, &shutdown)?;
    let domicile = spawn_domicile(&config, &store, &clock, &metrics, &shutdown)?;
    let links = portal.as_ref().map(|(_, links)| Arc::clone(links));
    let dispatcher = Arc::new(dispatcher(&config, &store, &metrics, &templates, links)?);
    let sender = spawn_sender(&dispatcher, &store, &clock, &send_wake, interval, &shutdown);
    let reports = start_monthly(&config, &store, &clock, &send_wake, monthly).await?;
    sd_notify(&[sd_notify::NotifyState::Ready]);
    Passes {
        store: &store,
        engine: &engine,
        inbound_policy: &inbound_policy,
        sms_answering: sms_answering.as_ref(),
        writer: &writer,
        clock: &clock,
        metrics: &metrics,
        send_wake: &send_wake,
        wake: &wake,
        admin: &admin,
        interval,
    }
    .run(templates_stamp, &mut shutdown)
    .await;
    stop_tasks(Tasks {
        reports,
        dispatcher,
        send_wake,
        sender,
        imap,
        io,
        domicile,
        housekeeping,
        pruner,
        server,
    })
    .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Starts the monthly report's ticker when `reports.monthly.enabled` (once a minute, UTC; the
/// calendar decides when a run is due).
async fn start_monthly(
    config: &Config,
    store: &Store,
    clock: &Clock,
    send_wake: &Arc<Wake>,
    provider: crate::monthly::Provider,
) -> Result<Option<tokio_cron_scheduler::JobScheduler>, DaemonError> {
    let settings = config.reports.monthly.clone();
    if !settings.enabled {
        return Ok(None);
    }
    let scheduler = crate::monthly::MonthlyScheduler::new(
        store.clone(),
        Arc::new(config.sla()?.calendar),
        settings,
        provider,
        clock.clone(),
    )
    .with_wake(Arc::clone(send_wake));
    crate::monthly::start_ticker(Arc::new(scheduler), crate::monthly::EVERY_MINUTE)
        .await
        .map(Some)
        .map_err(|e| DaemonError::Scheduler(e.to_string()))
}

/// Runs the loop `start` makes as its own task, and starts it again if it panics: the panic
/// is logged as an error and the restart waits 1 s, doubling up to 60 s while the loop keeps
/// panicking at once. A loop that returns (on shutdown) ends the supervision.
///
/// Restarting in the process, rather than exiting for systemd to restart us, keeps the HTTP
/// server (webhooks, portal, admin) and the other loops running; a panic tied to one message
/// would otherwise restart the whole daemon over and over until systemd gives up. The message
/// whose send panicked keeps its lease, which expires: it comes back in doubt, as after a crash.
pub async fn supervise<F, Fut>(name: &'static str, mut shutdown: watch::Receiver<bool>, start: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    const FIRST: Duration = Duration::from_secs(1);
    const MOST: Duration = Duration::from_secs(60);
    let mut wait = FIRST;
    loop {
        let started = Instant::now();
        match tokio::spawn(start()).await {
            Ok(()) => return,
            Err(e) if e.is_panic() => {
                let p = e.into_panic();
                if started.elapsed() > MOST {
                    wait = FIRST;
                }
                tracing::error!(task = name, panic = %http::panic_message(p.as_ref()),
                    restart_in_ms = wait.as_millis() as u64,
                    "a daemon loop panicked; it starts again");
            }
            Err(e) => {
                tracing::error!(task = name, error = %e, "a daemon loop was cancelled");
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        wait = (wait * 2).min(MOST);
    }
}

/// What the hourly housekeeping applies: `[retention]` per kind of personal data, the CRM
/// inbox's payloads (after `retention.message_bodies_days`), inbound raw payloads (after
/// `inbound.raw_retention_days`), and where attachment files are kept.
#[derive(Debug, Clone)]
pub struct Housekeeping {
    pub retention: crate::config::Retention,
    pub raw_retention_days: u32,
    pub attachments_dir: std::path::PathBuf,
}

impl Housekeeping {
    pub fn from_config(config: &Config) -> Housekeeping {
        Housekeeping {
            retention: config.retention,
            raw_retention_days: config.inbound.raw_retention_days,
            attachments_dir: config.inbound.attachments_dir.clone(),
        }
    }
}

/// One housekeeping pass as the clock stands at `now` (tests drive it with their own clock):
/// the retention of every kind of personal data in batches of `retention.batch_size` rows,
/// counted in `metrics` and logged with counts only; the CRM inbox's payloads; idempotency
/// answers older than a day; inbound raw payloads. A failure is logged and the rest goes on.
pub async fn housekeeping(
    store: &Store,
    h: &Housekeeping,
    metrics: &Metrics,
    now: Timestamp,
) -> Option<crate::store::RetentionReport> {
    let started = Instant::now();
    let report = match store
        .privacy()
        .apply_retention(
            &h.retention,
            &h.attachments_dir,
            now,
            crate::store::MAX_BATCHES_PER_PASS,
        )
        .await
    {
        Ok(r) => {
            for (kind, n) in r.counts.by_kind() {
                metrics.count_retention(kind, n);
            }
            if r.counts.total() > 0 || r.unfinished {
                let c = &r.counts;
                tracing::info!(
                    message_bodies = c.message_bodies,
                    closed_ticket_contacts = c.closed_ticket_contacts,
                    inbound = c.inbound,
                    attachments = c.attachments,
                    audit = c.audit,
                    domiciles = c.domiciles,
                    batches = r.batches,
                    unfinished = r.unfinished,
                    took_ms = started.elapsed().as_millis() as u64,
                    "retention applied"
                );
            }
            Some(r)
        }
        Err(e) => {
            tracing::warn!(error = %e, "retention pass failed; the next pass tries again");
            None
        }
    };
    let bodies = now.plus(-crate::config::Retention::seconds(
        h.retention.message_bodies_days,
    ));
    match store
        .outbox()
        .inbox_housekeeping(bodies, now.plus(-86_400))
        .await
    {
        Ok((i, k)) if i + k > 0 => {
            tracing::info!(inbox_rows = i, idempotency_keys = k, "housekeeping")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
    }
    match store
        .inbound()
        .inbound_housekeeping(now.plus(-crate::config::Retention::seconds(h.raw_retention_days)))
        .await
    {
        Ok(n) if n > 0 => tracing::info!(raw_payloads = n, "inbound raw payloads erased"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "inbound housekeeping failed"),
    }
    report
}

/// Housekeeping, hourly (the first an hour after the start): [`housekeeping`] at the clock's
/// time.
async fn housekeeping_loop(
    store: Store,
    clock: Clock,
    h: Housekeeping,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    const EVERY: Duration = Duration::from_secs(3600);
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        housekeeping(&store, &h, &metrics, clock()).await;
    }
}

/// Polls the IMAP mailbox for e-mail replies: each new message is parsed and stored like a
/// webhook before it is marked processed on the server.
async fn imap_loop(
    polling: crate::config::ImapPolling,
    inbound: crate::config::Inbound,
    writer: InboundWriter,
    clock: Clock,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = Duration::from_secs(polling.poll_interval_s);
    loop {
        let r = crate::inbound::mailbox::poll(&polling.account, &inbound, &writer, &clock).await;
        match r {
            Ok(report) if report.fetched > 0 => tracing::info!(
                fetched = report.fetched,
                accepted = report.accepted,
                too_large = report.too_large,
                failed = report.failed,
                "IMAP poll"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "IMAP poll failed; trying again at the next interval")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
}

#[cfg(test)]
mod supervise_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_loop_that_panics_is_started_again_and_ends_on_its_own_return() {
        let runs = Arc::new(AtomicUsize::new(0));
        let (_stop, shutdown) = watch::channel(false);
        let r = Arc::clone(&runs);
        supervise("test", shutdown, move || {
            let r = Arc::clone(&r);
            async move {
                if r.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("the first run panics");
                }
            }
        })
        .await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "restarted once, then returned"
        );
    }

    #[tokio::test]
    async fn shutdown_ends_the_supervision_of_a_loop_that_keeps_panicking() {
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(supervise("test", shutdown, || async {
            panic!("always");
        }));
        tokio::task::yield_now().await;
        stop.send(true).expect("send");
        task.await.expect("supervision ends without panicking");
    }
}
