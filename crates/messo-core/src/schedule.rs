//! When the monthly report goes out: on the first working day of each month, at a configured
//! local time, about the month before.
//!
//! Pure: the business [`Calendar`] says which days are working days and gives the office's time
//! zone; `now` is an argument. The daemon asks [`due_run`] on every tick and claims the run it
//! answers in its own table (so a run is sent once, whichever daemon asks first).
//!
//! Local times on the days the clocks change (a calendar with working hours on Sunday, or a
//! closure that pushes the first working day onto the day of a change):
//! - a time that does not exist (in Europe/Rome 02:00–02:59 on the last Sunday of March) is run
//!   when the clocks land, at the first minute that exists after the gap (03:00);
//! - a time that happens twice (02:00–02:59 on the last Sunday of October) is run once, at its
//!   first occurrence (still in summer time).
//!
//! With the standard calendar neither can happen: the first working day of a month is among its
//! first days, and the changes are on the last Sunday of the month.

use std::fmt;

use chrono::{LocalResult, NaiveDate, TimeZone};

use crate::calendar::Calendar;
use crate::reports::Period;
use crate::time::{MAX_YEAR, MIN_YEAR, Timestamp, days_from_civil, days_in_month};

/// A local time of day, minute precision (`08:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunTime {
    minutes: u16,
}

/// Why a text is not a time of day.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a local time like \"08:00\" (00:00–23:59), found {0:?}")]
pub struct RunTimeError(pub String);

impl RunTime {
    /// `hour`:`minute`, when both are in range (00:00–23:59).
    pub const fn hm(hour: u16, minute: u16) -> Option<RunTime> {
        if hour < 24 && minute < 60 {
            Some(RunTime {
                minutes: hour * 60 + minute,
            })
        } else {
            None
        }
    }

    /// Parses `HH:MM` (two digits each).
    pub fn parse(text: &str) -> Result<RunTime, RunTimeError> {
        let bad = || RunTimeError(text.to_owned());
        let (h, m) = text.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let (h, m) = (
            h.parse::<u16>().map_err(|_| bad())?,
            m.parse::<u16>().map_err(|_| bad())?,
        );
        RunTime::hm(h, m).ok_or_else(bad)
    }

    /// Minutes after local midnight.
    pub const fn minutes(self) -> u16 {
        self.minutes
    }
}

impl fmt::Display for RunTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.minutes / 60, self.minutes % 60)
    }
}

/// One monthly run: when it goes out, and the month it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthlyRun {
    /// The instant it is due.
    pub at: Timestamp,
    /// Its local date (the first working day of the month after `period`).
    pub day: NaiveDate,
    /// The month it reports, first to last day.
    pub period: Period,
}

impl MonthlyRun {
    /// The reported month as `YYYY-MM` (`2026-11`), the run's identity.
    pub fn month(&self) -> String {
        use chrono::Datelike;
        format!(
            "{:04}-{:02}",
            self.period.from.year(),
            self.period.from.month()
        )
    }

    /// `monthly:YYYY-MM`: the key its messages are kept under.
    pub fn key(&self) -> String {
        format!("monthly:{}", self.month())
    }
}

/// The instant the local wall time `minutes` after midnight happens on local day `day` (days
/// since 1970-01-01): the first occurrence of a time that happens twice, and the first minute
/// after the gap for a time that does not exist (see the module's notes).
pub fn local_instant(cal: &Calendar, day: i64, minutes: u16) -> Timestamp {
    let tz = cal.time_zone();
    let date = crate::time::naive_date(day);
    let mut m = u32::from(minutes);
    // A gap is at most a few hours long: the search ends long before the day does.
    while m < 24 * 60 {
        let Some(naive) = date.and_hms_opt(m / 60, m % 60, 0) else {
            break;
        };
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => return Timestamp(t.timestamp()),
            LocalResult::Ambiguous(a, b) => return Timestamp(a.timestamp().min(b.timestamp())),
            LocalResult::None => m += 1,
        }
    }
    // Unreachable with real zones; the next local midnight stands in.
    cal.local_midnight(day + 1)
}

/// The local day (days since 1970-01-01) of the first working day of `year`-`month`: the first
/// day with a working window (weekends, national holidays, the patron day and closures have
/// none). A month without any working day (a calendar closed all month) runs on its 1st, so
/// that no month's report is skipped.
pub fn first_working_day(cal: &Calendar, year: i32, month: u32) -> i64 {
    let first = days_from_civil(year, month, 1);
    (first..first + i64::from(days_in_month(year, month)))
        .find(|&d| !cal.day(d).windows.is_empty())
        .unwrap_or(first)
}

/// The run held in `year`-`month` (reporting the month before), or `None` outside the years
/// instants are kept for (1970–2199).
pub fn run_in_month(cal: &Calendar, at: RunTime, year: i32, month: u32) -> Option<MonthlyRun> {
    if !(MIN_YEAR..=MAX_YEAR).contains(&year) || !(1..=12).contains(&month) {
        return None;
    }
    let (py, pm) = if month == 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    };
    let period = Period::month(py, pm)?;
    let day = first_working_day(cal, year, month);
    Some(MonthlyRun {
        at: local_instant(cal, day, at.minutes()),
        day: crate::time::naive_date(day),
        period,
    })
}

/// The local (year, month) of `t`.
fn local_month(cal: &Calendar, t: Timestamp) -> (i32, u32) {
    let (y, m, _) = crate::time::civil_from_days(cal.local_day(t));
    (y, m)
}

const fn next_month(year: i32, month: u32) -> (i32, u32) {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

/// The first run strictly after `now`, or `None` past 2199.
pub fn next_run(cal: &Calendar, at: RunTime, now: Timestamp) -> Option<MonthlyRun> {
    let (y, m) = local_month(cal, now);
    match run_in_month(cal, at, y, m) {
        Some(r) if r.at > now => Some(r),
        _ => {
            let (y, m) = next_month(y, m);
            run_in_month(cal, at, y, m)
        }
    }
}

/// The run that should have gone out by `now`: this local month's, once its instant has come.
///
/// Only the current month's run is ever due. A daemon that was down when a run came due sends it
/// when it starts again, within the same month; once the next month begins, the old report is
/// superseded by the new one (due on its own first working day) and is not sent late.
pub fn due_run(cal: &Calendar, at: RunTime, now: Timestamp) -> Option<MonthlyRun> {
    let (y, m) = local_month(cal, now);
    run_in_month(cal, at, y, m).filter(|r| r.at <= now)
}

#[cfg(test)]
mod tests;
