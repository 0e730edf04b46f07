//! Compliance measures (the agreement's "monitoraggio dei tempi e delle criticità"): what one
//! ticket's history contributes to a report ([`facts`]), and the table of those contributions
//! for a period, by month or week and by priority, category and office ([`build`]).
//!
//! Pure and computed from the event history, never from the SLA cache: a figure is what the
//! clock says of the events as they were at the end of each time bucket. Every measure's
//! definition is in `docs/reports.md`; the doc comments of [`Row`] repeat them in short.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::domain::{Category, Priority, ReceivedVia};
use crate::sla::{ClockKind, OutOfRange, Sla};
use crate::ticket::record::{EventRecord, HistoryError, derive, evaluate};
use crate::time::{Timestamp, day_number, naive_date};

#[cfg(test)]
mod tests;

/// Why a report cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    OutOfRange(#[from] OutOfRange),
    #[error("the period ends ({to}) before it begins ({from})")]
    Backwards { from: NaiveDate, to: NaiveDate },
    #[error("the period is longer than {max} days")]
    TooLong { max: i64 },
    #[error("group_by: {0}")]
    Grouping(String),
    #[error("unknown measure {0:?}")]
    UnknownMeasure(String),
}

/// A period of whole local days, both ends included (`2026-11-01` … `2026-11-30`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// The longest period a report covers: ten years.
pub const MAX_PERIOD_DAYS: i64 = 3_660;

impl Period {
    /// The period, or why it is not one.
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Period, ReportError> {
        if to < from {
            return Err(ReportError::Backwards { from, to });
        }
        if day_number(to) - day_number(from) >= MAX_PERIOD_DAYS {
            return Err(ReportError::TooLong {
                max: MAX_PERIOD_DAYS,
            });
        }
        Ok(Period { from, to })
    }

    /// The calendar month `year`-`month`.
    pub fn month(year: i32, month: u32) -> Option<Period> {
        let from = NaiveDate::from_ymd_opt(year, month, 1)?;
        let next = if month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)?
        };
        Some(Period {
            from,
            to: next.pred_opt()?,
        })
    }
}

/// How the period is cut in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeBucket {
    /// One bucket: the whole period.
    Period,
    /// Calendar months (`2026-11`), cut at the period's ends.
    Month,
    /// ISO weeks, Monday to Sunday (`2026-W47`), cut at the period's ends.
    Week,
}

/// How a report is grouped: a time bucket, and any of priority, category, office and the
/// channel the request came by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupBy {
    pub time: Option<TimeBucket>,
    pub priority: bool,
    pub category: bool,
    pub office: bool,
    pub channel: bool,
}

impl GroupBy {
    /// Reads `month,priority,office` (any order, any subset of month|week|priority|category|
    /// office|channel; `week` or `month`, not both).
    pub fn parse(s: &str) -> Result<GroupBy, ReportError> {
        let mut g = GroupBy::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let time = |g: &mut GroupBy, t| {
                if g.time.is_some() {
                    return Err(ReportError::Grouping(
                        "one time bucket at most: month or week".to_owned(),
                    ));
                }
                g.time = Some(t);
                Ok(())
            };
            match part {
                "month" => time(&mut g, TimeBucket::Month)?,
                "week" => time(&mut g, TimeBucket::Week)?,
                "priority" => g.priority = true,
                "category" => g.category = true,
                "office" => g.office = true,
                "channel" => g.channel = true,
                other => {
                    return Err(ReportError::Grouping(format!(
                        "unknown grouping {other:?}; expected month|week|priority|category|office|channel"
                    )));
                }
            }
        }
        Ok(g)
    }
}

/// One ticket's stored history, as the store loads it for a report.
#[derive(Debug, Clone)]
pub struct History {
    pub ticket_id: i64,
    pub number: String,
    pub office: String,
    /// Every stored event, in order, the `received` event first.
    pub events: Vec<EventRecord>,
}

/// The group of tickets whose channel of receipt the CRM did not give.
pub const CHANNEL_NOT_GIVEN: &str = "not_given";

impl History {
    /// How the request reached the office, as its `received` event keeps it (`None` when the
    /// CRM did not say).
    pub fn received_via(&self) -> Option<ReceivedVia> {
        let first = self.events.first().filter(|e| e.kind == "received")?;
        first
            .data
            .get("ticket")?
            .get("received_via")?
            .as_str()?
            .parse()
            .ok()
    }
}

/// What a ticket's history says at one instant (`as_of`), for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFacts {
    pub ticket_id: i64,
    pub received_at: Timestamp,
    /// As they stand at `as_of`.
    pub priority: Priority,
    pub category: Category,
    /// The ticket's clock: working time, or every second (on-site assistance).
    pub clock: ClockKind,
    /// The closure standing at `as_of` (the last `closed` not undone by a reopening).
    pub closed_at: Option<Timestamp>,
    /// That closure was made by Messo, after an integrazione that did not come in time.
    pub auto_closed: bool,
    /// The due instant as the history stands at `as_of`, or for a closed ticket as it stood
    /// when the ticket was closed (none while the clock is suspended before reaching it).
    pub due_at: Option<Timestamp>,
    /// Counted seconds from receipt to the closure, or to `as_of` while open, suspensions
    /// (waits for the citizen, time closed) excluded.
    pub counted_s: i64,
    /// The first processing step, integration request or closure after the receipt.
    pub first_response_at: Option<Timestamp>,
    /// Counted seconds from receipt to the first response.
    pub first_response_s: Option<i64>,
    /// When each integration request was made.
    pub integration_requests: Vec<Timestamp>,
    /// Counted seconds the clock stood still waiting for the citizen, up to the closure or
    /// `as_of`.
    pub suspended_s: i64,
    /// When each reopening happened.
    pub reopenings: Vec<Timestamp>,
}

impl TicketFacts {
    /// Closed at `as_of`, at or after its due instant.
    pub fn late(&self) -> Option<bool> {
        self.closed_at
            .map(|c| self.due_at.is_some_and(|due| due <= c))
    }

    /// Open at `as_of` with its due instant come.
    pub fn breached_open(&self, as_of: Timestamp) -> bool {
        self.closed_at.is_none() && self.due_at.is_some_and(|due| due <= as_of)
    }
}

/// What `h` says at `as_of`: the events up to `as_of` replayed, and the clock of `sla` (the
/// ticket's own policy and calendar versions). `None` when the ticket was received after
/// `as_of`.
pub fn facts(sla: &Sla, h: &History, as_of: Timestamp) -> Result<Option<TicketFacts>, ReportError> {
    // Events are stored in time order: those up to `as_of` are a prefix, read in place.
    let known = &h.events[..h.events.partition_point(|e| e.occurred_at <= as_of)];
    if known.is_empty() {
        return Ok(None);
    }
    let (received_at, d) = derive(h.ticket_id, known)?;
    if received_at > as_of {
        return Ok(None);
    }
    let end = d.closed_at.unwrap_or(as_of);
    // The clock as it stood when the ticket was closed: without the suspension the closure
    // opens, the due instant is the one the closure met (or did not).
    let mut running = d.clone();
    if let Some(c) = d.closed_at {
        if running
            .suspensions
            .last()
            .is_some_and(|s| s.to.is_none() && s.from == c)
        {
            running.suspensions.pop();
        }
        running.closed_at = None;
    }
    let view = evaluate(sla, received_at, &running, end)?;
    let clock = sla.policy.target(d.category, d.priority).clock;
    let counted = |a: Timestamp, b: Timestamp| counted_between(&sla.calendar, clock, a, b);
    let mut f = TicketFacts {
        ticket_id: h.ticket_id,
        received_at,
        priority: d.priority,
        category: d.category,
        clock,
        closed_at: d.closed_at,
        auto_closed: false,
        due_at: view.due_at,
        counted_s: view.elapsed_s,
        first_response_at: None,
        first_response_s: None,
        integration_requests: Vec::new(),
        suspended_s: 0,
        reopenings: Vec::new(),
    };
    let mut waiting: Option<Timestamp> = None;
    for e in known.iter().filter(|e| e.kind != "received") {
        let responds = matches!(
            e.kind.as_str(),
            "step_changed" | "integration_requested" | "closed"
        );
        if responds && f.first_response_at.is_none() {
            f.first_response_at = Some(e.occurred_at);
            f.first_response_s = Some(counted(received_at, e.occurred_at));
        }
        match e.kind.as_str() {
            "integration_requested" => {
                f.integration_requests.push(e.occurred_at);
                waiting = Some(e.occurred_at);
            }
            "integration_received" | "closed" => {
                if let Some(from) = waiting.take() {
                    f.suspended_s += counted(from, e.occurred_at);
                }
                if e.kind == "closed" {
                    f.auto_closed = e.source == "system";
                }
            }
            "reopened" => {
                f.reopenings.push(e.occurred_at);
                f.auto_closed = false;
            }
            _ => {}
        }
    }
    if let Some(from) = waiting {
        f.suspended_s += counted(from, end);
    }
    if f.closed_at.is_none() {
        f.auto_closed = false;
    }
    Ok(Some(f))
}

/// Seconds the clock counts in `[a, b)`: working seconds of the calendar, or every second.
fn counted_between(calendar: &Calendar, clock: ClockKind, a: Timestamp, b: Timestamp) -> i64 {
    if b <= a {
        return 0;
    }
    match clock {
        ClockKind::Business | ClockKind::OnSite => calendar.business_between(a, b),
        ClockKind::Calendar => b.0 - a.0,
    }
}

/// One row of a report: a time bucket and the values of the grouped dimensions (`None`: not
/// grouped by it), and every measure. Definitions in `docs/reports.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `2026-11` (month), `2026-W47` (week), or the period `2026-11-01..2026-11-30`.
    pub bucket: String,
    /// The bucket's first and last local day.
    pub bucket_from: NaiveDate,
    pub bucket_to: NaiveDate,
    pub priority: Option<Priority>,
    pub category: Option<Category>,
    pub office: Option<String>,
    /// The channel of receipt (`desk`, `phone`, … or `not_given`).
    pub channel: Option<String>,
    /// Received in the bucket.
    pub received: u64,
    /// Closed in the bucket (the closure standing at the bucket's end).
    pub closed: u64,
    /// Of those, closed before their due instant.
    pub closed_on_time: u64,
    /// Of those, closed at or after their due instant.
    pub closed_late: u64,
    /// Open at the bucket's end with their due instant come.
    pub open_breached: u64,
    /// Median and 90th percentile (nearest rank) of the counted seconds from receipt to
    /// closure, over the tickets closed in the bucket.
    pub close_median_s: Option<i64>,
    pub close_p90_s: Option<i64>,
    /// Tickets whose first response came in the bucket, and the median and 90th percentile of
    /// the counted seconds from receipt to it.
    pub first_responses: u64,
    pub first_response_median_s: Option<i64>,
    pub first_response_p90_s: Option<i64>,
    /// Counted seconds the clock stood still waiting for the citizen, summed over the tickets
    /// closed in the bucket.
    pub suspended_s: i64,
    /// Integration requests made in the bucket.
    pub integration_requests: u64,
    /// Closures in the bucket made by Messo after an integrazione that did not come.
    pub auto_closed: u64,
    /// Reopenings in the bucket.
    pub reopenings: u64,
}

impl Row {
    /// Closed on time over closed, in percent; none when nothing was closed.
    pub fn on_time_pct(&self) -> Option<f64> {
        (self.closed > 0).then(|| self.closed_on_time as f64 * 100.0 / self.closed as f64)
    }
}

/// A measure whose tickets a report can list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    Received,
    Closed,
    ClosedOnTime,
    ClosedLate,
    OpenBreached,
    FirstResponse,
    IntegrationRequested,
    AutoClosed,
    Reopened,
}

impl Measure {
    pub const ALL: [Measure; 9] = [
        Measure::Received,
        Measure::Closed,
        Measure::ClosedOnTime,
        Measure::ClosedLate,
        Measure::OpenBreached,
        Measure::FirstResponse,
        Measure::IntegrationRequested,
        Measure::AutoClosed,
        Measure::Reopened,
    ];

    /// `received`, `closed`, … as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Received => "received",
            Measure::Closed => "closed",
            Measure::ClosedOnTime => "closed_on_time",
            Measure::ClosedLate => "closed_late",
            Measure::OpenBreached => "open_breached",
            Measure::FirstResponse => "first_response",
            Measure::IntegrationRequested => "integration_requested",
            Measure::AutoClosed => "auto_closed",
            Measure::Reopened => "reopened",
        }
    }
}

impl std::str::FromStr for Measure {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Measure, ReportError> {
        Measure::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| ReportError::UnknownMeasure(s.to_owned()))
    }
}

/// A report: its rows in order, and the tickets behind every counted cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub rows: Vec<Row>,
    /// The whole period as one ungrouped row (each ticket as it stood at the period's end);
    /// none when it counts nothing.
    pub total: Option<Row>,
    /// Per row, per measure: the ticket numbers counted (a ticket with two integration
    /// requests in a bucket is listed twice).
    pub tickets: Vec<BTreeMap<Measure, Vec<String>>>,
}

impl Report {
    /// The ticket numbers behind `measure` in row `row`.
    pub fn tickets_behind(&self, row: usize, measure: Measure) -> &[String] {
        self.tickets
            .get(row)
            .and_then(|m| m.get(&measure))
            .map_or(&[], Vec::as_slice)
    }
}

/// A time bucket: its label and its instants `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub label: String,
    /// The first and last local day of the bucket.
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// The buckets of `period` in the calendar's local time: local midnights, so a month or week
/// that spans a DST change is 1 hour shorter or longer.
pub fn buckets(calendar: &Calendar, period: Period, time: TimeBucket) -> Vec<Bucket> {
    let (first, last) = (day_number(period.from), day_number(period.to));
    let mut out = Vec::new();
    let mut day = first;
    while day <= last {
        let date = naive_date(day);
        let (label, next) = match time {
            TimeBucket::Period => (format!("{}..{}", period.from, period.to), last + 1),
            TimeBucket::Month => {
                let next_month = if date.month() == 12 {
                    NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)
                };
                (
                    format!("{:04}-{:02}", date.year(), date.month()),
                    next_month.map_or(last + 1, day_number),
                )
            }
            TimeBucket::Week => {
                let iso = date.iso_week();
                let monday = day - i64::from(date.weekday().num_days_from_monday());
                (format!("{:04}-W{:02}", iso.year(), iso.week()), monday + 7)
            }
        };
        let next = next.min(last + 1);
        out.push(Bucket {
            label,
            first_day: date,
            last_day: naive_date(next - 1),
            start: calendar.local_midnight(day),
            end: calendar.local_midnight(next),
        });
        day = next;
    }
    out
}

/// The key of a row: bucket index, then the grouped dimensions.
type RowKey = (
    usize,
    Option<Priority>,
    Option<Category>,
    Option<String>,
    Option<String>,
);

/// Accumulates one row: the row, the values of its percentiles, the tickets behind it.
struct Acc {
    row: Row,
    close_s: Vec<i64>,
    first_s: Vec<i64>,
    tickets: BTreeMap<Measure, Vec<String>>,
}

impl Row {
    /// A row with nothing counted yet.
    fn empty(bucket: &Bucket, key: &RowKey) -> Row {
        Row {
            bucket: bucket.label.clone(),
            bucket_from: bucket.first_day,
            bucket_to: bucket.last_day,
            priority: key.1,
            category: key.2,
            office: key.3.clone(),
            channel: key.4.clone(),
            received: 0,
            closed: 0,
            closed_on_time: 0,
            closed_late: 0,
            open_breached: 0,
            close_median_s: None,
            close_p90_s: None,
            first_responses: 0,
            first_response_median_s: None,
            first_response_p90_s: None,
            suspended_s: 0,
            integration_requests: 0,
            auto_closed: 0,
            reopenings: 0,
        }
    }
}

/// The report of `histories` over `period`, grouped by `group`. `sla_of` gives each ticket's
/// clock (its own policy and calendar versions); `calendar` cuts the period into local days.
/// Each ticket is looked at as it stood at the end of each bucket (its last second). A row
/// that counts nothing is left out.
pub fn build<'a>(
    histories: &[History],
    sla_of: impl Fn(&History) -> &'a Sla,
    calendar: &Calendar,
    period: Period,
    group: GroupBy,
) -> Result<Report, ReportError> {
    let bs = buckets(calendar, period, group.time.unwrap_or(TimeBucket::Period));
    let mut rows: BTreeMap<RowKey, Acc> = BTreeMap::new();
    // The total is the whole period as one bucket: its instant is the last bucket's, so it
    // takes the facts computed for that bucket, counted over the whole period.
    let whole = buckets(calendar, period, TimeBucket::Period).pop();
    let empty_key: RowKey = (0, None, None, None, None);
    let mut total = whole.as_ref().map(|w| Acc {
        row: Row::empty(w, &empty_key),
        close_s: Vec::new(),
        first_s: Vec::new(),
        tickets: BTreeMap::new(),
    });
    for (bi, b) in bs.iter().enumerate() {
        let as_of = Timestamp(b.end.0 - 1);
        let last = bi + 1 == bs.len();
        for h in histories {
            let Some(f) = facts(sla_of(h), h, as_of)? else {
                continue;
            };
            if let (true, Some(acc), Some(w)) = (last, total.as_mut(), whole.as_ref()) {
                contribute(acc, &f, &h.number, w, as_of);
            }
            let key: RowKey = (
                bi,
                group.priority.then_some(f.priority),
                group.category.then_some(f.category),
                group.office.then(|| h.office.clone()),
                group.channel.then(|| {
                    h.received_via()
                        .map_or(CHANNEL_NOT_GIVEN, ReceivedVia::as_str)
                        .to_owned()
                }),
            );
            let acc = rows.entry(key).or_insert_with_key(|key| Acc {
                row: Row::empty(b, key),
                close_s: Vec::new(),
                first_s: Vec::new(),
                tickets: BTreeMap::new(),
            });
            contribute(acc, &f, &h.number, b, as_of);
        }
    }
    let total = total.filter(|acc| !acc.tickets.is_empty()).map(|mut acc| {
        (acc.row.close_median_s, acc.row.close_p90_s) = percentiles(&mut acc.close_s);
        (
            acc.row.first_response_median_s,
            acc.row.first_response_p90_s,
        ) = percentiles(&mut acc.first_s);
        acc.row
    });
    let mut report = Report {
        period_from: period.from,
        period_to: period.to,
        rows: Vec::new(),
        total,
        tickets: Vec::new(),
    };
    for (_, mut acc) in rows {
        if acc.tickets.is_empty() {
            continue;
        }
        (acc.row.close_median_s, acc.row.close_p90_s) = percentiles(&mut acc.close_s);
        (
            acc.row.first_response_median_s,
            acc.row.first_response_p90_s,
        ) = percentiles(&mut acc.first_s);
        report.rows.push(acc.row);
        report.tickets.push(acc.tickets);
    }
    Ok(report)
}

/// What ticket `f` (number `number`), as it stood at `as_of`, the last second of bucket `b`,
/// adds to its row.
fn contribute(acc: &mut Acc, f: &TicketFacts, number: &str, b: &Bucket, as_of: Timestamp) {
    let inside = |t: Timestamp| b.start <= t && t < b.end;
    let row = &mut acc.row;
    let mut count = |m: Measure| acc.tickets.entry(m).or_default().push(number.to_owned());
    if inside(f.received_at) {
        row.received += 1;
        count(Measure::Received);
    }
    if f.closed_at.is_some_and(inside) {
        row.closed += 1;
        count(Measure::Closed);
        if f.late() == Some(true) {
            row.closed_late += 1;
            count(Measure::ClosedLate);
        } else {
            row.closed_on_time += 1;
            count(Measure::ClosedOnTime);
        }
        acc.close_s.push(f.counted_s);
        row.suspended_s += f.suspended_s;
        if f.auto_closed {
            row.auto_closed += 1;
            count(Measure::AutoClosed);
        }
    }
    if f.breached_open(as_of) {
        row.open_breached += 1;
        count(Measure::OpenBreached);
    }
    if let (Some(at), Some(s)) = (f.first_response_at, f.first_response_s)
        && inside(at)
    {
        row.first_responses += 1;
        acc.first_s.push(s);
        count(Measure::FirstResponse);
    }
    for _ in f.integration_requests.iter().filter(|t| inside(**t)) {
        row.integration_requests += 1;
        count(Measure::IntegrationRequested);
    }
    for _ in f.reopenings.iter().filter(|t| inside(**t)) {
        row.reopenings += 1;
        count(Measure::Reopened);
    }
}

/// The median and 90th percentile by nearest rank: the value at rank ⌈p·n⌉ of the sorted
/// values (1-based). None for no values.
pub fn percentiles(values: &mut [i64]) -> (Option<i64>, Option<i64>) {
    if values.is_empty() {
        return (None, None);
    }
    values.sort_unstable();
    let rank = |pct: usize| {
        let r = (pct * values.len()).div_ceil(100).max(1);
        values[r - 1]
    };
    (Some(rank(50)), Some(rank(90)))
}

/// Notices owed to citizens in one bucket (by the instant the row was made), on one channel,
/// of one kind, and what became of them by the time of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeRow {
    pub bucket: String,
    pub channel: String,
    pub kind: String,
    /// Rows made in the bucket: notices owed, and replacements made by the fallback chain.
    pub owed: u64,
    /// Of those, confirmed delivered (by the channel, or by a receipt where one is awaited).
    pub delivered: u64,
    /// Of those, given up after their attempts (the fallback chain took over, or the office
    /// was told the citizen is unreachable).
    pub dead: u64,
    /// Of those, held because the outcome of a send is not known ("esito incerto").
    pub held: u64,
    /// Of those, still pending, retrying or being sent.
    pub in_flight: u64,
    /// Of the rows owed, the replacements on another channel made by the fallback chain.
    pub fallbacks: u64,
}

/// What the store counts of the outbox: rows made in bucket `bucket` (an index into the
/// report's buckets) with this channel, kind, state and fallback flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeCount {
    pub bucket: usize,
    pub channel: String,
    pub kind: String,
    pub state: String,
    pub fallback: bool,
    pub count: u64,
}

/// The notice rows of `counts`, in bucket, channel and kind order.
pub fn notice_rows(buckets: &[Bucket], counts: &[NoticeCount]) -> Vec<NoticeRow> {
    let mut rows: BTreeMap<(usize, &str, &str), NoticeRow> = BTreeMap::new();
    for c in counts {
        let Some(b) = buckets.get(c.bucket) else {
            continue;
        };
        let row = rows
            .entry((c.bucket, &c.channel, &c.kind))
            .or_insert_with(|| NoticeRow {
                bucket: b.label.clone(),
                channel: c.channel.clone(),
                kind: c.kind.clone(),
                owed: 0,
                delivered: 0,
                dead: 0,
                held: 0,
                in_flight: 0,
                fallbacks: 0,
            });
        row.owed += c.count;
        match c.state.as_str() {
            "delivered" => row.delivered += c.count,
            "dead" => row.dead += c.count,
            "uncertain" => row.held += c.count,
            _ => row.in_flight += c.count,
        }
        if c.fallback {
            row.fallbacks += c.count;
        }
    }
    rows.into_values().collect()
}

/// Per bucket: what went wrong in reaching citizens, and what came back unasked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactRow {
    pub bucket: String,
    /// Office alerts made in the bucket that a citizen could not be reached on any channel.
    pub unreachable: u64,
    /// Replies received in the bucket that matched no ticket.
    pub unmatched_replies: u64,
    /// Numbers that asked in the bucket to receive no more SMS.
    pub opt_outs: u64,
}
