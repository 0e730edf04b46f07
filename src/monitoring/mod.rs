//! Monitoring ("monitoraggio dei tempi e delle criticità", agreement section 1.2): the
//! compliance report and the criticalities list, read from the store and computed by the pure
//! core (`messo_core::reports`), for the API, the command line, the console and the monthly
//! e-mail. Renderings (CSV, Excel CSV, open data, text, HTML) are in [`render`].

pub mod render;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::config::Config;
use crate::reports::{
    self, ContactRow, GroupBy, History, Measure, NoticeRow, Period, ReportError, Row, TimeBucket,
};
use crate::sla::Sla;
use crate::store::{
    RegistryError, ReportStoreError, SatisfactionError, SatisfactionSummary, Store,
    StoredCriticality,
};
use crate::time::Timestamp;

/// Why a report or the criticalities could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MonitoringError {
    #[error(transparent)]
    Store(#[from] ReportStoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Satisfaction(#[from] SatisfactionError),
    /// Each ticket is replayed once per time bucket: too many of both is refused.
    #[error(
        "{tickets} tickets over {buckets} time buckets is too much for one report; \
         choose a coarser grouping (month, not week) or a shorter period"
    )]
    TooMuchWork { tickets: usize, buckets: usize },
}

impl MonitoringError {
    /// Whether the request asked for something that cannot be (a period too long or too big).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            MonitoringError::TooMuchWork { .. }
                | MonitoringError::Store(ReportStoreError::TooMany { .. })
                | MonitoringError::Report(
                    ReportError::Backwards { .. }
                        | ReportError::TooLong { .. }
                        | ReportError::Grouping(_)
                        | ReportError::UnknownMeasure(_)
                )
        )
    }
}

/// What a compliance report is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRequest {
    pub period: Period,
    pub group: GroupBy,
    /// One office only, or all.
    pub office: Option<String>,
    /// The measures whose ticket numbers each row lists.
    pub tickets: Vec<Measure>,
    /// Include the citizens' free-text comments (for the office's staff only: never for an
    /// API token, an export or a public page).
    pub comments: bool,
}

/// The satisfaction answers of one office in one local month (the month of the answer).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SatisfactionOut {
    pub office: String,
    pub month: String,
    pub answers: u64,
    /// From 1.0 to 5.0, to one decimal.
    pub mean: f64,
    /// Answers per score, 1 to 5.
    pub scores: [u64; 5],
}

/// A citizen's comment with their answer (staff only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommentOut {
    pub office: String,
    pub month: String,
    pub ticket: String,
    pub score: u8,
    pub comment: String,
    pub answered_at: String,
}

/// The target of one category and priority under the policy in force.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetOut {
    pub category: &'static str,
    pub priority: &'static str,
    /// Counted seconds: working seconds on the `business` clock, every second on `calendar`.
    pub seconds: i64,
    /// `business` or `calendar`.
    pub clock: &'static str,
}

/// Every (category, priority) of `policy` with its target.
pub fn targets(policy: &crate::sla::Policy) -> Vec<TargetOut> {
    crate::domain::Category::ALL
        .into_iter()
        .flat_map(|c| {
            crate::domain::Priority::ALL.into_iter().map(move |p| {
                let t = policy.target(c, p);
                TargetOut {
                    category: c.as_str(),
                    priority: p.as_str(),
                    seconds: t.seconds,
                    clock: t.clock.as_str(),
                }
            })
        })
        .collect()
}

/// One row of the report as it is published: the measures, the share on time, and on request
/// the ticket numbers behind the counted cells.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ReportRow {
    #[serde(flatten)]
    pub row: Row,
    /// Closed on time over closed, in percent, to one decimal; none when nothing was closed.
    pub on_time_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tickets: Option<BTreeMap<Measure, Vec<String>>>,
}

/// A compliance report: rows by the chosen grouping, the whole period's total, notices and
/// contacts per time bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compliance {
    pub comune: String,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    /// The grouping as asked (`month,priority`), empty for none.
    pub group_by: String,
    pub office: Option<String>,
    /// RFC 3339, local time.
    pub generated_at: String,
    pub rows: Vec<ReportRow>,
    /// The whole period, ungrouped; none when it counts nothing.
    pub total: Option<ReportRow>,
    /// Citizen notices by time bucket, channel and kind (all offices unless one is asked).
    pub notices: Vec<NoticeRow>,
    /// Failed contacts per time bucket (all offices: replies and opt-outs belong to none).
    pub contacts: Vec<ContactRow>,
    /// Satisfaction answers given in the period, per office and month of the answer.
    pub satisfaction: Vec<SatisfactionOut>,
    /// The comments with them, when asked for by staff; otherwise empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<CommentOut>,
    /// The targets of the policy in force now, for every category and priority: what the
    /// times to close are measured against.
    pub targets: Vec<TargetOut>,
    /// Where each measure is defined.
    pub definitions: &'static str,
}

/// `2026-11` as that month's period.
pub fn month_period(v: &str) -> Option<Period> {
    let (y, m) = v.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    Period::month(y.parse().ok()?, m.parse().ok()?)
}

/// The grouping's canonical text.
pub fn group_text(g: &GroupBy) -> String {
    let mut parts = Vec::new();
    match g.time {
        Some(TimeBucket::Month) => parts.push("month"),
        Some(TimeBucket::Week) => parts.push("week"),
        Some(TimeBucket::Period) | None => {}
    }
    for (on, name) in [
        (g.priority, "priority"),
        (g.category, "category"),
        (g.office, "office"),
        (g.channel, "channel"),
    ] {
        if on {
            parts.push(name);
        }
    }
    parts.join(",")
}

/// `t` in RFC 3339 at the calendar's local offset.
pub fn rfc3339(calendar: &crate::calendar::Calendar, t: Timestamp) -> String {
    chrono::DateTime::from_timestamp(t.0, 0)
        .map(|d| d.with_timezone(&calendar.time_zone()).to_rfc3339())
        .unwrap_or_else(|| t.to_string())
}

/// The clock the office works on now: the calendar that cuts report periods into local days.
fn current_sla(store: &Store) -> Result<Arc<Sla>, MonitoringError> {
    let (calendar, policy) = store.versions().current()?;
    Ok(store.versions().sla(calendar, policy)?)
}

fn publish(row: Row, tickets: Option<BTreeMap<Measure, Vec<String>>>) -> ReportRow {
    let on_time_pct = row.on_time_pct().map(|p| (p * 10.0).round() / 10.0);
    ReportRow {
        row,
        on_time_pct,
        tickets,
    }
}

/// The compliance report `req` asks for, as the store stands at `now`.
pub async fn compliance(
    store: &Store,
    config: &Config,
    req: &ReportRequest,
    now: Timestamp,
) -> Result<Compliance, MonitoringError> {
    let cal_sla = current_sla(store)?;
    let calendar = &cal_sla.calendar;
    let whole = reports::buckets(calendar, req.period, TimeBucket::Period);
    let (Some(first), Some(last)) = (whole.first(), whole.last()) else {
        return Err(ReportError::Backwards {
            from: req.period.from,
            to: req.period.to,
        }
        .into());
    };
    // A period that is over is kept once computed, and read back while no event dated inside
    // it has been recorded since (with a margin for transactions in flight and clock skew).
    let (cal_v, _) = store.versions().current()?;
    let key = format!(
        "{}|{}|{}|{}|{}|{cal_v}",
        req.period.from,
        req.period.to,
        group_text(&req.group),
        req.office.as_deref().unwrap_or(""),
        req.tickets
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    let over = last.end <= now;
    let kept = if over {
        match store.reports().cached(&key).await? {
            Some((at, body))
                if !store
                    .reports()
                    .recorded_since(at.plus(-CACHE_MARGIN_S), last.end)
                    .await? =>
            {
                serde_json::from_str::<Kept>(&body).ok()
            }
            _ => None,
        }
    } else {
        None
    };
    let (rows, total) = match kept {
        Some(k) => (k.rows, k.total),
        None => {
            let (rows, total) =
                replay(store, config, req, &cal_sla, (first.start, last.end)).await?;
            if over
                && let Ok(body) = serde_json::to_string(&KeptRef {
                    rows: &rows,
                    total: &total,
                })
            {
                store.reports().keep(&key, now, &body).await?;
            }
            (rows, total)
        }
    };
    let time_buckets = reports::buckets(
        calendar,
        req.period,
        req.group.time.unwrap_or(TimeBucket::Period),
    );
    let counts = store
        .reports()
        .notice_counts(&time_buckets, req.office.as_deref())
        .await?;
    let notices = reports::notice_rows(&time_buckets, &counts);
    let [unreachable, unmatched, opt_outs] = store.reports().contact_counts(&time_buckets).await?;
    let contacts = time_buckets
        .iter()
        .enumerate()
        .map(|(i, b)| ContactRow {
            bucket: b.label.clone(),
            unreachable: unreachable.get(i).copied().unwrap_or(0),
            unmatched_replies: unmatched.get(i).copied().unwrap_or(0),
            opt_outs: opt_outs.get(i).copied().unwrap_or(0),
        })
        .collect();
    let answers = store
        .satisfaction()
        .satisfaction_summary(first.start, last.end)
        .await?;
    let (satisfaction, comments) = satisfaction_out(answers, req, calendar);
    Ok(Compliance {
        comune: config.comune_name.clone(),
        period_from: req.period.from,
        period_to: req.period.to,
        group_by: group_text(&req.group),
        office: req.office.clone(),
        generated_at: rfc3339(calendar, now),
        rows,
        total,
        notices,
        contacts,
        satisfaction,
        comments,
        targets: targets(&cal_sla.policy),
        definitions: "docs/reports.md",
    })
}

/// The answers of `s` for the office asked (or all), comments only when asked for.
fn satisfaction_out(
    s: SatisfactionSummary,
    req: &ReportRequest,
    calendar: &crate::calendar::Calendar,
) -> (Vec<SatisfactionOut>, Vec<CommentOut>) {
    let mine = |office: &str| req.office.as_deref().is_none_or(|o| o == office);
    let rows = s
        .rows
        .into_iter()
        .filter(|r| mine(&r.office))
        .map(|r| SatisfactionOut {
            mean: (r.mean * 10.0).round() / 10.0,
            office: r.office,
            month: r.month,
            answers: r.count,
            scores: r.scores,
        })
        .collect();
    let comments = if req.comments {
        s.comments
            .into_iter()
            .filter(|c| mine(&c.office))
            .map(|c| CommentOut {
                answered_at: rfc3339(calendar, c.answered_at),
                office: c.office,
                month: c.month,
                ticket: c.number,
                score: c.score,
                comment: c.comment,
            })
            .collect()
    } else {
        Vec::new()
    };
    (rows, comments)
}

/// How long before a kept report was computed an event may have been recorded and still not
/// be in it (a transaction in flight, clocks of several daemons).
const CACHE_MARGIN_S: i64 = 300;

/// A kept report: what the events say (rows and total); the rest is read live.
#[derive(serde::Deserialize)]
struct Kept {
    rows: Vec<ReportRow>,
    total: Option<ReportRow>,
}

#[derive(Serialize)]
struct KeptRef<'a> {
    rows: &'a [ReportRow],
    total: &'a Option<ReportRow>,
}

/// The rows and total of `req` replayed from the events of `[start, end)`.
async fn replay(
    store: &Store,
    config: &Config,
    req: &ReportRequest,
    cal_sla: &Arc<Sla>,
    (start, end): (Timestamp, Timestamp),
) -> Result<(Vec<ReportRow>, Option<ReportRow>), MonitoringError> {
    let calendar = &cal_sla.calendar;
    let loaded = store
        .reports()
        .histories(
            start,
            end,
            req.office.as_deref(),
            config.reports.max_tickets,
        )
        .await?;
    let time_buckets = reports::buckets(
        calendar,
        req.period,
        req.group.time.unwrap_or(TimeBucket::Period),
    );
    // The grouped report, and the total when grouped: one replay per bucket, plus one.
    let replays = loaded.len().saturating_mul(time_buckets.len() + 1);
    if replays > config.reports.max_replays {
        return Err(MonitoringError::TooMuchWork {
            tickets: loaded.len(),
            buckets: time_buckets.len(),
        });
    }
    // Each ticket's clock, by its position: histories come in ticket order, so a ticket is
    // found by a binary search on its id (no hashing per ticket and bucket).
    let mut slas: HashMap<(i64, i64), Arc<Sla>> = HashMap::new();
    let mut clock_of: Vec<Arc<Sla>> = Vec::with_capacity(loaded.len());
    let mut histories: Vec<History> = Vec::with_capacity(loaded.len());
    for t in loaded {
        let key = (t.calendar_version, t.policy_version);
        let sla = match slas.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => Arc::clone(o.get()),
            std::collections::hash_map::Entry::Vacant(v) => {
                Arc::clone(v.insert(store.versions().sla(key.0, key.1)?))
            }
        };
        clock_of.push(sla);
        histories.push(t.history);
    }
    let sla_of = |h: &History| -> &Sla {
        histories
            .binary_search_by_key(&h.ticket_id, |x| x.ticket_id)
            .ok()
            .and_then(|i| clock_of.get(i))
            .map_or(cal_sla.as_ref(), |s| s)
    };
    let grouped = reports::build(&histories, sla_of, calendar, req.period, req.group)?;
    let total = grouped.total.clone();
    let wanted = |m: &BTreeMap<Measure, Vec<String>>| {
        (!req.tickets.is_empty()).then(|| {
            m.iter()
                .filter(|(k, _)| req.tickets.contains(k))
                .map(|(k, v)| (*k, v.clone()))
                .collect()
        })
    };
    let rows = grouped
        .rows
        .into_iter()
        .zip(&grouped.tickets)
        .map(|(row, t)| publish(row, wanted(t)))
        .collect();
    Ok((rows, total.map(|r| publish(r, None))))
}

/// One criticality ("criticità rilevata"): what, why in plain Italian, and the ticket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Criticality {
    /// `breached`, `warning`, `suspension_past_cap`, `message_held`, `citizen_unreachable`,
    /// `unmatched_reply` or `office_below_threshold`.
    pub kind: &'static str,
    pub reason: String,
    pub ticket: Option<String>,
    pub office: Option<String>,
    pub priority: Option<String>,
    /// The instant it dates from (RFC 3339, local time): the due instant, the start of the
    /// wait, the message, the reply.
    pub since: Option<String>,
}

/// The most criticalities of each kind listed.
pub const CRITICALITIES_PER_KIND: i64 = 500;

/// The criticalities at `now`: the store's lists, and the offices whose share of tickets
/// closed on time this month (local month of `now`, to today) is below the threshold.
pub async fn criticalities(
    store: &Store,
    config: &Config,
    now: Timestamp,
) -> Result<Vec<Criticality>, MonitoringError> {
    let sla = current_sla(store)?;
    let calendar = &sla.calendar;
    let cap = now.plus(-i64::from(config.notify.suspension_cap_days) * 86_400);
    let recent = now.plus(-30 * 86_400);
    let stale = now.plus(-86_400);
    let listed = store
        .reports()
        .criticalities(cap, recent, stale, CRITICALITIES_PER_KIND)
        .await?;
    let when = |t: Option<Timestamp>| t.map(|t| render::local_datetime(calendar, t));
    let mut out: Vec<Criticality> = listed
        .into_iter()
        .map(|c| {
            let at = when(c.since).unwrap_or_default();
            let reason = reason(&c, &at, config.notify.suspension_cap_days);
            Criticality {
                kind: c.kind,
                reason,
                ticket: c.number,
                office: c.office,
                priority: c.priority,
                since: c.since.map(|t| rfc3339(calendar, t)),
            }
        })
        .collect();
    // The month's days that are over (on the 1st, the whole previous month): a period that is
    // over is kept once computed, so the list does not replay the month at every request.
    let today = calendar.local_date(now);
    let yesterday = today.pred_opt().unwrap_or(today);
    let month_start =
        NaiveDate::from_ymd_opt(yesterday.year(), yesterday.month(), 1).unwrap_or(yesterday);
    let req = ReportRequest {
        period: Period::new(month_start, yesterday)?,
        group: GroupBy {
            office: true,
            ..GroupBy::default()
        },
        office: None,
        tickets: Vec::new(),
        comments: false,
    };
    let month = compliance(store, config, &req, now).await?;
    let threshold = f64::from(config.reports.on_time_threshold_pct);
    for r in month.rows {
        if let Some(pct) = r.on_time_pct.filter(|p| *p < threshold) {
            let office = r.row.office.clone().unwrap_or_default();
            out.push(Criticality {
                kind: "office_below_threshold",
                reason: format!(
                    "Ufficio {office}: {} delle richieste chiuse dal {} al {} ({} di {}) nei termini, sotto la soglia del {}%",
                    render::percent_it(pct),
                    render::date_it(month_start),
                    render::date_it(yesterday),
                    r.row.closed_on_time,
                    r.row.closed,
                    config.reports.on_time_threshold_pct
                ),
                ticket: None,
                office: Some(office),
                priority: None,
                since: None,
            });
        }
    }
    Ok(out)
}

/// Why a stored criticality is one, in plain Italian for the office.
fn reason(c: &StoredCriticality, at: &str, cap_days: u32) -> String {
    let detail = c.detail.as_deref().unwrap_or("");
    match c.kind {
        "breached" => format!("Termine scaduto il {at}: la richiesta è ancora aperta"),
        "warning" => format!("Termine in scadenza il {at}"),
        "suspension_past_cap" => {
            format!("In attesa dell'integrazione dal {at}, da più di {cap_days} giorni")
        }
        "message_held" => {
            format!("Messaggio al cittadino con esito incerto dal {at}: {detail}")
        }
        "citizen_unreachable" => {
            format!("Cittadino non raggiungibile su nessun canale (segnalato il {at})")
        }
        "unmatched_reply" => format!(
            "Risposta ricevuta il {at} ({detail}) non abbinata ad alcuna pratica da più di un giorno"
        ),
        other => other.to_owned(),
    }
}
