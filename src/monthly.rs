//! The monthly report e-mail: on the first working day of each month, at the configured local
//! time, the office and the supervisor receive the previous month's compliance report (text and
//! HTML, with a CSV attached), once, however many daemons share the store and however often
//! they restart.
//!
//! - When: the pure core decides ([`messo_core::schedule::due_run`]) on the business calendar,
//!   in the office's time zone. tokio-cron-scheduler only ticks once a minute in UTC and asks;
//!   its own time-zone jobs keep the offset they were created with and would drift an hour at
//!   each change of the clocks.
//! - Once: a run is claimed by inserting its row in `report_schedule` (unique per job and
//!   month), and its e-mails are queued in the outbox in the same transaction
//!   ([`crate::store::Schedule::claim_and_queue`]). Only one daemon wins; a crash leaves both or
//!   neither; a restart finds the row and does nothing.
//! - What: a [`Provider`] writes the words ([`MonthlyMail`]) for a [`Period`]; the reports layer
//!   supplies the real one. The words are stored with the outbox rows, so every attempt sends
//!   the same message, and the outbox's retries, breaker and held outcomes apply.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use messo_core::reports::Period;
use messo_core::schedule::{MonthlyRun, due_run, next_run};
use serde_json::json;
use tokio::sync::{Mutex, Notify};
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::calendar::Calendar;
use crate::config::MonthlyReport;
use crate::domain::{Kind, Recipient};
use crate::store::{Claim, NewRun, ReportMail, ScheduleError, Store};
use crate::templates::{RenderedMessage, StoredAttachment};
use crate::time::Clock;

/// What the monthly mail carries, rendered by the reports layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthlyMail {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub csv_name: String,
    pub csv: Vec<u8>,
}

/// Why a provider could not write the mail (any error of the reports layer).
pub type ProviderError = Box<dyn std::error::Error + Send + Sync>;

/// Writes the monthly mail for the reported period. Called by at most one tick at a time per
/// daemon, and only when the run is due and not yet claimed (two daemons may both call it for the
/// same month; only one of the two mails is queued).
pub type Provider =
    Arc<dyn Fn(Period) -> BoxFuture<'static, Result<MonthlyMail, ProviderError>> + Send + Sync>;

/// A [`Provider`] from an async function or closure:
/// `provider_fn(move |period| { let store = store.clone(); async move { render(&store, period).await } })`.
pub fn provider_fn<F, Fut>(f: F) -> Provider
where
    F: Fn(Period) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<MonthlyMail, ProviderError>> + Send + 'static,
{
    Arc::new(move |period| Box::pin(f(period)))
}

/// The job's name in `report_schedule`.
pub const JOB: &str = "monthly_report";

/// The media type of the CSV attachment.
pub const CSV_TYPE: &str = "text/csv; charset=utf-8";

/// The cron expression of the ticker: second 0 of every minute, in UTC.
pub const EVERY_MINUTE: &str = "0 * * * * *";

/// Why a tick failed. The next tick tries again.
#[derive(Debug, thiserror::Error)]
pub enum MonthlyError {
    #[error(transparent)]
    Store(#[from] ScheduleError),
    #[error("the monthly report for {month} could not be written: {source}")]
    Provider {
        month: String,
        source: ProviderError,
    },
}

/// What one tick did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    /// No run is due now (before this month's instant).
    NotDue,
    /// This month's run was claimed already (by this daemon before a restart, or another one).
    AlreadyClaimed { month: String },
    /// This tick claimed the run and queued its e-mails.
    Queued { month: String, outbox_ids: Vec<i64> },
    /// Another daemon claimed the run while this one was writing it: nothing was queued.
    Lost { month: String },
    /// Another tick of this daemon is still at work.
    Busy,
}

/// The monthly report's scheduler: one per daemon.
pub struct MonthlyScheduler {
    store: Store,
    calendar: Arc<Calendar>,
    settings: MonthlyReport,
    provider: Provider,
    clock: Clock,
    /// Woken when e-mails were queued (the dispatcher).
    wake: Option<Arc<Notify>>,
    /// One tick at a time.
    running: Mutex<()>,
}

impl MonthlyScheduler {
    /// A scheduler over `store`, on `calendar` (the office's), with the `[reports.monthly]`
    /// settings, writing the mail with `provider`, reading the time from `clock`.
    pub fn new(
        store: Store,
        calendar: Arc<Calendar>,
        settings: MonthlyReport,
        provider: Provider,
        clock: Clock,
    ) -> MonthlyScheduler {
        MonthlyScheduler {
            store,
            calendar,
            settings,
            provider,
            clock,
            wake: None,
            running: Mutex::new(()),
        }
    }

    /// Wakes `wake` (the dispatcher) when e-mails are queued.
    pub fn with_wake(mut self, wake: Arc<Notify>) -> MonthlyScheduler {
        self.wake = Some(wake);
        self
    }

    /// The next run after the clock's now.
    pub fn next_run(&self) -> Option<MonthlyRun> {
        next_run(&self.calendar, self.settings.at, (self.clock)())
    }

    /// Looks at the clock once: notes the runs whose e-mails were all delivered, and when this
    /// month's run is due and unclaimed, writes the mail and claims the run with its e-mails.
    pub async fn tick(&self) -> Result<Tick, MonthlyError> {
        let Ok(_one) = self.running.try_lock() else {
            return Ok(Tick::Busy);
        };
        let now = (self.clock)();
        let schedule = self.store.schedule();
        let sent = schedule.record_sent(now).await?;
        if sent > 0 {
            tracing::info!(runs = sent, "monthly report delivered");
        }
        let Some(run) = due_run(&self.calendar, self.settings.at, now) else {
            return Ok(Tick::NotDue);
        };
        let month = run.month();
        if schedule.is_claimed(JOB, &month).await? {
            return Ok(Tick::AlreadyClaimed { month });
        }
        let mail = (self.provider)(run.period)
            .await
            .map_err(|source| MonthlyError::Provider {
                month: month.clone(),
                source,
            })?;
        let mails = self.mails(&run, mail);
        let claim = schedule
            .claim_and_queue(
                &NewRun {
                    job: JOB,
                    period: &month,
                    due_at: run.at,
                },
                &mails,
                now,
            )
            .await?;
        Ok(match claim {
            Claim::Won { outbox_ids } => {
                tracing::info!(
                    month = %month,
                    due_at = %self.calendar.format_rfc3339(run.at),
                    late_s = now.0 - run.at.0,
                    to = ?mails.iter().map(|m| crate::redact::mask(m.address.as_str())).collect::<Vec<_>>(),
                    outbox_ids = ?outbox_ids,
                    "monthly report queued"
                );
                if let Some(w) = &self.wake {
                    w.notify_one();
                }
                Tick::Queued { month, outbox_ids }
            }
            Claim::Taken => Tick::Lost { month },
        })
    }

    /// The e-mails of `run`: the office's, and the supervisor's when it has an address of its
    /// own.
    fn mails(&self, run: &MonthlyRun, mail: MonthlyMail) -> Vec<ReportMail> {
        let words = RenderedMessage {
            subject: mail.subject,
            text: mail.text,
            html: (!mail.html.is_empty()).then_some(mail.html),
            template: Kind::RapportoMensile.as_str().to_owned(),
            version: 0,
            attachments: vec![StoredAttachment::new(&mail.csv_name, CSV_TYPE, &mail.csv)],
        };
        let payload = json!({
            "period": run.month(),
            "from": run.period.from.to_string(),
            "to": run.period.to.to_string(),
        });
        let mut to = vec![(Recipient::Office, self.settings.office_email.clone())];
        if let Some(s) = &self.settings.supervisor_email
            && *s != self.settings.office_email
        {
            to.push((Recipient::Supervisor, s.clone()));
        }
        to.into_iter()
            .map(|(recipient, address)| ReportMail {
                kind: Kind::RapportoMensile,
                key: run.key(),
                recipient,
                address,
                payload: payload.clone(),
                words: words.clone(),
            })
            .collect()
    }

    /// A tick whose failure is logged (the next one tries again).
    pub async fn tick_logged(&self) {
        match self.tick().await {
            Ok(Tick::Lost { month }) => {
                tracing::info!(month = %month, "monthly report claimed by another daemon")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "monthly report tick failed; retrying at the next tick")
            }
        }
    }
}

/// Starts tokio-cron-scheduler with one job, at `cron` (UTC; [`EVERY_MINUTE`] in the daemon),
/// that ticks `scheduler`, and ticks once at once (a run missed while the daemon was down goes
/// now, not a minute later). Stop it with `JobScheduler::shutdown`.
pub async fn start_ticker(
    scheduler: Arc<MonthlyScheduler>,
    cron: &str,
) -> Result<JobScheduler, JobSchedulerError> {
    let jobs = JobScheduler::new().await?;
    let s = Arc::clone(&scheduler);
    let job = Job::new_async(cron, move |_id, _jobs| {
        let s = Arc::clone(&s);
        Box::pin(async move { s.tick_logged().await })
    })?;
    jobs.add(job).await?;
    jobs.start().await?;
    if let Some(next) = scheduler.next_run() {
        tracing::info!(
            next_at = %scheduler.calendar.format_rfc3339(next.at),
            reports = %next.month(),
            "monthly report scheduled"
        );
    }
    tokio::spawn(async move { scheduler.tick_logged().await });
    Ok(jobs)
}

/// The subject of the monthly mail: `Rapporto mensile URP — Comune di X — novembre 2026`.
pub fn subject(comune: &str, period: Period) -> String {
    use chrono::Datelike;
    let month = crate::locale::month_name(crate::domain::Lang::It, period.from.month0());
    format!(
        "Rapporto mensile URP — {comune} — {month} {}",
        period.from.year()
    )
}

/// The real monthly mail: the month's compliance table by office, its totals and the
/// criticalities standing when it is written (text and HTML, from `monitoring::render`), and
/// the table as a CSV that Italian Excel opens as it is.
pub fn report_provider(store: Store, config: Arc<crate::config::Config>, clock: Clock) -> Provider {
    use crate::monitoring::{self, ReportRequest, render};
    use crate::reports::GroupBy;
    provider_fn(move |period: Period| {
        let (store, config, clock) = (store.clone(), Arc::clone(&config), clock.clone());
        async move {
            let now = clock();
            let req = ReportRequest {
                period,
                group: GroupBy {
                    office: true,
                    ..GroupBy::default()
                },
                office: None,
                tickets: Vec::new(),
                comments: false,
            };
            let report = monitoring::compliance(&store, &config, &req, now)
                .await
                .map_err(|e| Box::new(e) as ProviderError)?;
            let crits = monitoring::criticalities(&store, &config, now)
                .await
                .map_err(|e| Box::new(e) as ProviderError)?;
            Ok::<_, ProviderError>(MonthlyMail {
                subject: subject(&config.comune_name, period),
                text: render::text(&report, &crits),
                html: render::html(&report, &crits),
                csv_name: format!("conformita-{}.csv", period.from.format("%Y-%m")),
                csv: render::csv(&report, render::CsvStyle::Excel),
            })
        }
    })
}
