//! The office's business calendar: working windows per weekday, closed days (national holidays,
//! the patron saint's day, extra closures), the time zone with its DST changes, and business-time
//! arithmetic over it.
//!
//! Construction lays out every working window from 1969-12-30 to 2199-12-31 (local dates) as UTC
//! instants, with a prefix sum of business seconds. Measuring business time up to an instant is
//! then an O(1) bucket lookup (one bucket per UTC day) and adding business time is a galloping
//! search over the prefix sums: no loop over minutes, seconds or days.

pub mod holidays;

use chrono::{DateTime, NaiveDate, Offset, TimeZone};
use chrono_tz::Tz;

pub use holidays::{HolidayDate, HolidayRule, ITALIAN_NATIONAL_HOLIDAYS};

use crate::time::{
    DAY, Timestamp, civil_from_days, days_from_civil, days_in_month, naive_date, weekday_from_days,
};

/// A working window in local wall-clock time, half-open `[start, end)`, in minutes after
/// midnight; `end` may be 1440 (24:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub start_min: u16,
    pub end_min: u16,
}

impl Window {
    /// A window from `start` to `end`, both `(hour, minute)`.
    pub const fn hm(start: (u16, u16), end: (u16, u16)) -> Window {
        Window {
            start_min: start.0 * 60 + start.1,
            end_min: end.0 * 60 + end.1,
        }
    }
}

/// The comune's patron saint's day: a closure on the same month and day every year.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PatronDay {
    pub month: u32,
    pub day: u32,
    pub name: String,
}

/// An extra whole-day closure on one date.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Closure {
    pub date: NaiveDate,
    pub name: String,
}

/// Everything that defines a calendar. `Calendar::new` turns it into lookup tables.
#[derive(Debug, Clone, PartialEq)]
pub struct CalendarSpec {
    pub time_zone: Tz,
    /// Windows for Monday (index 0) … Sunday (index 6), sorted and disjoint.
    pub weekly: [Vec<Window>; 7],
    pub national: Vec<HolidayRule>,
    pub patron: Option<PatronDay>,
    pub closures: Vec<Closure>,
}

impl CalendarSpec {
    /// The contract's default: Europe/Rome, Monday–Friday 09:00–17:00, national holidays,
    /// patron day 29 June (Roma Capitale).
    pub fn roma_capitale() -> CalendarSpec {
        let day = vec![Window::hm((9, 0), (17, 0))];
        CalendarSpec {
            time_zone: chrono_tz::Europe::Rome,
            weekly: [
                day.clone(),
                day.clone(),
                day.clone(),
                day.clone(),
                day,
                Vec::new(),
                Vec::new(),
            ],
            national: ITALIAN_NATIONAL_HOLIDAYS.to_vec(),
            patron: Some(PatronDay {
                month: 6,
                day: 29,
                name: "Santi Pietro e Paolo".to_owned(),
            }),
            closures: Vec::new(),
        }
    }
}

/// Why a day has no working window although its weekday has some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClosedDay {
    /// A national holiday (the rule's names).
    National(HolidayRule),
    /// The patron saint's day.
    Patron(String),
    /// An extra closure from configuration.
    Closure(String),
}

impl ClosedDay {
    /// A stable machine name of the kind of closure.
    pub fn kind(&self) -> &'static str {
        match self {
            ClosedDay::National(_) => "national_holiday",
            ClosedDay::Patron(_) => "patron_day",
            ClosedDay::Closure(_) => "closure",
        }
    }

    /// The closure's name in Italian.
    pub fn name_it(&self) -> &str {
        match self {
            ClosedDay::National(r) => &r.it,
            ClosedDay::Patron(n) | ClosedDay::Closure(n) => n,
        }
    }

    /// The closure's name in English (configured names are used as they are).
    pub fn name_en(&self) -> &str {
        match self {
            ClosedDay::National(r) => &r.en,
            ClosedDay::Patron(n) | ClosedDay::Closure(n) => n,
        }
    }
}

/// A calendar that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error(
        "{weekday}: window {index} ({start}–{end} minutes) must lie within 00:00–24:00 and end after it starts"
    )]
    BadWindow {
        weekday: &'static str,
        index: usize,
        start: u16,
        end: u16,
    },
    #[error("{weekday}: windows {index} and {next} overlap or are out of order")]
    Overlap {
        weekday: &'static str,
        index: usize,
        next: usize,
    },
    #[error("patron day {month:02}-{day:02} is not a date")]
    BadPatron { month: u32, day: u32 },
}

/// Lower-case English weekday names, Monday first.
pub const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// First local date laid out (two days before 1970 so that any 1970 timestamp, whatever its
/// offset, finds its day) and the last one (31 December 2199).
const FIRST_DATE: (i32, u32, u32) = (1969, 12, 30);
const LAST_DATE: (i32, u32, u32) = (2199, 12, 31);

/// The business calendar with its lookup tables. Cheap to share, a few MB in size.
#[derive(Debug, Clone)]
pub struct Calendar {
    spec: CalendarSpec,
    first_day: i64,
    /// Index of each local day's first window; one extra entry at the end.
    day_first: Vec<u32>,
    /// 0 when the day is not closed, else 1 + index into `closed`.
    day_closed: Vec<u16>,
    closed: Vec<ClosedDay>,
    starts: Vec<i64>,
    ends: Vec<i64>,
    /// `cum[i]` = business seconds in all windows before window `i`; `cum[n]` = total.
    cum: Vec<i64>,
    bucket0: i64,
    /// For each UTC day from `bucket0`, the first window that ends after the day starts.
    buckets: Vec<u32>,
    /// The first instant of local year 2200: no due date may reach it.
    limit: Timestamp,
}

fn local_to_utc(tz: Tz, local: i64) -> i64 {
    use chrono::LocalResult;
    let naive = DateTime::from_timestamp(local, 0)
        .unwrap_or(DateTime::UNIX_EPOCH)
        .naive_utc();
    match tz.offset_from_local_datetime(&naive) {
        LocalResult::Single(o) => local - i64::from(o.fix().local_minus_utc()),
        LocalResult::Ambiguous(a, b) => {
            // Clocks went back: the wall time happens twice; take the earlier instant.
            let ia = local - i64::from(a.fix().local_minus_utc());
            let ib = local - i64::from(b.fix().local_minus_utc());
            ia.min(ib)
        }
        LocalResult::None => {
            // Clocks went forward over this wall time: read it with the offset in force before
            // the gap, which moves it forward by the gap's length (02:30 becomes 03:30).
            let before = DateTime::from_timestamp(local - 6 * 3600, 0)
                .unwrap_or(DateTime::UNIX_EPOCH)
                .naive_utc();
            local - i64::from(tz.offset_from_utc_datetime(&before).fix().local_minus_utc())
        }
    }
}

/// Windows within the day and in order, and a patron day that is a date.
fn check_spec(spec: &CalendarSpec) -> Result<(), CalendarError> {
    for (wd, windows) in spec.weekly.iter().enumerate() {
        for (i, w) in windows.iter().enumerate() {
            if w.end_min > 1440 || w.start_min >= w.end_min {
                return Err(CalendarError::BadWindow {
                    weekday: WEEKDAYS[wd],
                    index: i,
                    start: w.start_min,
                    end: w.end_min,
                });
            }
            if let Some(next) = windows.get(i + 1)
                && next.start_min < w.end_min
            {
                return Err(CalendarError::Overlap {
                    weekday: WEEKDAYS[wd],
                    index: i,
                    next: i + 1,
                });
            }
        }
    }
    if let Some(p) = &spec.patron
        && (p.month == 0 || p.month > 12 || p.day == 0 || p.day > days_in_month(2000, p.month))
    {
        return Err(CalendarError::BadPatron {
            month: p.month,
            day: p.day,
        });
    }
    Ok(())
}

/// For each local day from `first_day` to `last_day`, 0 when open, else 1 + its index in the
/// list of closed days returned with it. National rules come first, then the patron day,
/// then extra closures, so the most general name wins where two fall on the same date.
fn closed_days(spec: &CalendarSpec, first_day: i64, last_day: i64) -> (Vec<u16>, Vec<ClosedDay>) {
    let ndays = (last_day - first_day + 1) as usize;
    let mut day_closed = vec![0u16; ndays];
    let mut closed: Vec<ClosedDay> = Vec::new();
    let mut mark = |day: i64, what: ClosedDay, closed: &mut Vec<ClosedDay>| {
        if (first_day..=last_day).contains(&day) {
            let slot = &mut day_closed[(day - first_day) as usize];
            if *slot == 0 {
                if let Some(pos) = closed.iter().position(|c| *c == what) {
                    *slot = (pos + 1) as u16;
                } else {
                    closed.push(what);
                    *slot = closed.len() as u16;
                }
            }
        }
    };
    for year in FIRST_DATE.0..=LAST_DATE.0 {
        for rule in &spec.national {
            if let Some(day) = rule.day_in(year) {
                mark(day, ClosedDay::National(rule.clone()), &mut closed);
            }
        }
        if let Some(p) = &spec.patron
            && p.day <= days_in_month(year, p.month)
        {
            let day = days_from_civil(year, p.month, p.day);
            mark(day, ClosedDay::Patron(p.name.clone()), &mut closed);
        }
    }
    for c in &spec.closures {
        let day = crate::time::day_number(c.date);
        mark(day, ClosedDay::Closure(c.name.clone()), &mut closed);
    }
    (day_closed, closed)
}

/// Every working window from `first_day` to `last_day` in UTC seconds (starts, ends), and the
/// index of each day's first window with one extra entry at the end.
fn windows(
    spec: &CalendarSpec,
    first_day: i64,
    last_day: i64,
    day_closed: &[u16],
) -> (Vec<u32>, Vec<i64>, Vec<i64>) {
    let ndays = (last_day - first_day + 1) as usize;
    let mut day_first = Vec::with_capacity(ndays + 1);
    let mut starts = Vec::with_capacity(ndays);
    let mut ends = Vec::with_capacity(ndays);
    for (i, day) in (first_day..=last_day).enumerate() {
        day_first.push(starts.len() as u32);
        if day_closed[i] != 0 {
            continue;
        }
        let midnight = day * DAY;
        for w in &spec.weekly[weekday_from_days(day) as usize] {
            let s = local_to_utc(spec.time_zone, midnight + i64::from(w.start_min) * 60);
            let e = local_to_utc(spec.time_zone, midnight + i64::from(w.end_min) * 60);
            // A window swallowed by a DST gap has no length left.
            let s = s.max(ends.last().copied().unwrap_or(i64::MIN));
            if e > s {
                starts.push(s);
                ends.push(e);
            }
        }
    }
    day_first.push(starts.len() as u32);
    (day_first, starts, ends)
}

impl Calendar {
    /// Lays out the calendar. Takes tens of milliseconds; build it once and share it.
    pub fn new(spec: CalendarSpec) -> Result<Calendar, CalendarError> {
        check_spec(&spec)?;
        let first_day = days_from_civil(FIRST_DATE.0, FIRST_DATE.1, FIRST_DATE.2);
        let last_day = days_from_civil(LAST_DATE.0, LAST_DATE.1, LAST_DATE.2);
        let (day_closed, closed) = closed_days(&spec, first_day, last_day);
        let (day_first, starts, ends) = windows(&spec, first_day, last_day, &day_closed);

        let mut cum = Vec::with_capacity(starts.len() + 1);
        let mut total = 0i64;
        cum.push(0);
        for (s, e) in starts.iter().zip(&ends) {
            total += e - s;
            cum.push(total);
        }

        let bucket0 = (first_day - 1) * DAY;
        let nbuckets = (last_day - first_day + 4) as usize;
        let mut buckets = Vec::with_capacity(nbuckets);
        let mut w = 0usize;
        for u in 0..nbuckets {
            let at = bucket0 + u as i64 * DAY;
            while w < ends.len() && ends[w] <= at {
                w += 1;
            }
            buckets.push(w as u32);
        }

        let limit = Timestamp(local_to_utc(
            spec.time_zone,
            days_from_civil(LAST_DATE.0 + 1, 1, 1) * DAY,
        ));
        Ok(Calendar {
            spec,
            first_day,
            day_first,
            day_closed,
            closed,
            starts,
            ends,
            cum,
            bucket0,
            buckets,
            limit,
        })
    }

    /// What the calendar was built from.
    pub fn spec(&self) -> &CalendarSpec {
        &self.spec
    }

    /// The time zone of the office.
    pub fn time_zone(&self) -> Tz {
        self.spec.time_zone
    }

    /// The first instant of local year 2200; instants from here on are out of range.
    pub fn limit(&self) -> Timestamp {
        self.limit
    }

    /// Index of the first window that ends after `t` (`n` when none does).
    #[inline]
    fn first_ending_after(&self, t: i64) -> usize {
        if t < self.bucket0 {
            return 0;
        }
        let u = ((t - self.bucket0) / DAY) as usize;
        let Some(&b) = self.buckets.get(u) else {
            return self.ends.len();
        };
        let mut i = b as usize;
        while i < self.ends.len() && self.ends[i] <= t {
            i += 1;
        }
        i
    }

    /// Business seconds in all windows before `t`, with the index of the first window ending
    /// after `t` (a hint for [`Calendar::instant_at_level`]).
    #[inline]
    pub fn level_with_hint(&self, t: Timestamp) -> (i64, usize) {
        let i = self.first_ending_after(t.0);
        if i == self.starts.len() {
            return (self.cum[i], i);
        }
        let s = self.starts[i];
        if s < t.0 {
            (self.cum[i] + (t.0 - s), i)
        } else {
            (self.cum[i], i)
        }
    }

    /// Business seconds from the start of the table to `t`; differences of levels are business
    /// durations.
    #[inline]
    pub fn level(&self, t: Timestamp) -> i64 {
        self.level_with_hint(t).0
    }

    /// The earliest instant at which the level reaches `level` (> the level at window `from`'s
    /// start), or `None` past the end of the table. An instant found this way lies in
    /// `(open, close]` of a window: a level reached exactly at closing time gives the closing time.
    #[inline]
    pub fn instant_at_level(&self, level: i64, from: usize) -> Option<Timestamp> {
        let n = self.starts.len();
        let reached = &self.cum[1..];
        let mut lo = from.min(n);
        let mut step = 1usize;
        let hi = loop {
            let hi = lo + step;
            if hi >= n {
                break n;
            }
            if reached[hi - 1] >= level {
                break hi;
            }
            lo = hi;
            step *= 2;
        };
        let idx = lo + reached[lo..hi].partition_point(|&c| c < level);
        if idx >= n {
            return None;
        }
        Some(Timestamp(self.starts[idx] + (level - self.cum[idx])))
    }

    /// Business seconds in `[a, b)` (0 when `b <= a`).
    pub fn business_between(&self, a: Timestamp, b: Timestamp) -> i64 {
        if b <= a {
            return 0;
        }
        self.level(b) - self.level(a)
    }

    /// The earliest instant `t >= a` with `business_between(a, t) == secs`, or `None` when it
    /// would fall past 2199. For `secs == 0` that is `a` itself.
    pub fn add_business(&self, a: Timestamp, secs: i64) -> Option<Timestamp> {
        if secs <= 0 {
            return Some(a);
        }
        let (level, hint) = self.level_with_hint(a);
        self.instant_at_level(level + secs, hint)
            .filter(|t| *t < self.limit)
    }

    /// `t` itself when the office is open at `t`, else the next opening (`None` past 2199).
    pub fn next_opening(&self, t: Timestamp) -> Option<Timestamp> {
        let i = self.first_ending_after(t.0);
        if i == self.starts.len() {
            return None;
        }
        Some(Timestamp(self.starts[i].max(t.0)))
    }

    /// The closing instant of the last working window that ends at or before `t` and after
    /// `after` (`None` when no window closes in `(after, t]`).
    pub fn last_close_between(&self, after: Timestamp, t: Timestamp) -> Option<Timestamp> {
        let i = self.first_ending_after(t.0);
        let end = *self.ends.get(i.checked_sub(1)?)?;
        (end > after.0).then_some(Timestamp(end))
    }

    /// The closing instant of the first working window that ends after `t` (`None` past 2199).
    pub fn next_close(&self, t: Timestamp) -> Option<Timestamp> {
        self.ends
            .get(self.first_ending_after(t.0))
            .map(|&e| Timestamp(e))
    }

    /// Whether `t` lies inside a working window.
    pub fn is_open(&self, t: Timestamp) -> bool {
        let i = self.first_ending_after(t.0);
        i < self.starts.len() && self.starts[i] <= t.0
    }

    /// The UTC offset, in seconds east of UTC, in force at `t`.
    pub fn offset_at(&self, t: Timestamp) -> i32 {
        let naive = DateTime::from_timestamp(t.0, 0)
            .unwrap_or(DateTime::UNIX_EPOCH)
            .naive_utc();
        self.spec
            .time_zone
            .offset_from_utc_datetime(&naive)
            .fix()
            .local_minus_utc()
    }

    /// `t` in RFC 3339 with the office's offset at that instant.
    pub fn format_rfc3339(&self, t: Timestamp) -> String {
        t.to_rfc3339_with_offset(self.offset_at(t))
    }

    /// The instant the local day `day` (days since 1970-01-01) begins.
    pub fn local_midnight(&self, day: i64) -> Timestamp {
        Timestamp(local_to_utc(self.spec.time_zone, day * DAY))
    }

    /// The local day number (days since 1970-01-01) of `t`.
    pub fn local_day(&self, t: Timestamp) -> i64 {
        (t.0 + i64::from(self.offset_at(t))).div_euclid(DAY)
    }

    /// The local date of `t`.
    pub fn local_date(&self, t: Timestamp) -> NaiveDate {
        naive_date(self.local_day(t))
    }

    /// Local (hour, minute, second) of `t`.
    pub fn local_hms(&self, t: Timestamp) -> (u32, u32, u32) {
        let sod = (t.0 + i64::from(self.offset_at(t))).rem_euclid(DAY) as u32;
        (sod / 3600, sod / 60 % 60, sod % 60)
    }

    /// What is known of one local day.
    pub fn day(&self, day: i64) -> DayInfo<'_> {
        let (year, month, mday) = civil_from_days(day);
        let idx = day - self.first_day;
        let (closed, windows) = if idx < 0 || idx as usize >= self.day_closed.len() {
            (None, 0..0)
        } else {
            let i = idx as usize;
            let c = self.day_closed[i];
            let closed = (c != 0).then(|| &self.closed[usize::from(c) - 1]);
            (
                closed,
                self.day_first[i] as usize..self.day_first[i + 1] as usize,
            )
        };
        DayInfo {
            day,
            year,
            month,
            mday,
            weekday: weekday_from_days(day),
            closed,
            windows: windows
                .map(|w| (Timestamp(self.starts[w]), Timestamp(self.ends[w])))
                .collect(),
        }
    }

    /// The working windows (as UTC instants) overlapping `[a, b)`, clipped to it, in order.
    pub fn windows_between(&self, a: Timestamp, b: Timestamp) -> Vec<(Timestamp, Timestamp)> {
        let mut out = Vec::new();
        let mut i = self.first_ending_after(a.0);
        while i < self.starts.len() && self.starts[i] < b.0 {
            out.push((
                Timestamp(self.starts[i].max(a.0)),
                Timestamp(self.ends[i].min(b.0)),
            ));
            i += 1;
        }
        out
    }
}

/// One local day as the calendar sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayInfo<'a> {
    pub day: i64,
    pub year: i32,
    pub month: u32,
    pub mday: u32,
    /// 0 = Monday … 6 = Sunday.
    pub weekday: u32,
    /// Set when a holiday or closure removes the day's windows.
    pub closed: Option<&'a ClosedDay>,
    /// The day's working windows as UTC instants.
    pub windows: Vec<(Timestamp, Timestamp)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn rome() -> Calendar {
        Calendar::new(CalendarSpec::roma_capitale()).unwrap()
    }

    #[test]
    fn windows_follow_the_wall_clock_across_dst() {
        let cal = rome();
        // Friday before the spring change: 09:00 is 08:00Z; the Monday after: 09:00 is 07:00Z.
        assert_eq!(
            cal.next_opening(ts("2026-03-27T17:00:00+01:00")),
            Some(ts("2026-03-30T09:00:00+02:00"))
        );
        assert_eq!(
            cal.business_between(
                ts("2026-03-27T16:00:00+01:00"),
                ts("2026-03-30T10:00:00+02:00")
            ),
            2 * 3600
        );
        assert_eq!(cal.offset_at(ts("2026-10-25T00:30:00Z")), 7200);
        assert_eq!(cal.offset_at(ts("2026-10-25T01:30:00Z")), 3600);
    }

    #[test]
    fn closed_days_have_no_windows_and_a_name() {
        let cal = rome();
        let easter_monday = cal.day(days_from_civil(2026, 4, 6));
        assert!(easter_monday.windows.is_empty());
        assert_eq!(
            easter_monday.closed.map(ClosedDay::name_it),
            Some("Lunedì dell'Angelo")
        );
        let patron = cal.day(days_from_civil(2026, 6, 29));
        assert_eq!(patron.closed.map(ClosedDay::kind), Some("patron_day"));
        let saturday = cal.day(days_from_civil(2025, 10, 4));
        assert!(saturday.closed.is_none() && saturday.windows.is_empty());
        let oct4_2027 = cal.day(days_from_civil(2027, 10, 4));
        assert_eq!(oct4_2027.weekday, 0);
        assert!(oct4_2027.windows.is_empty());
        let plain = cal.day(days_from_civil(2026, 3, 2));
        assert_eq!(
            plain.windows,
            vec![(
                ts("2026-03-02T09:00:00+01:00"),
                ts("2026-03-02T17:00:00+01:00")
            )]
        );
    }

    #[test]
    fn adding_reaches_closing_time_not_the_next_opening() {
        let cal = rome();
        assert_eq!(
            cal.add_business(ts("2026-03-02T09:00:00+01:00"), 8 * 3600),
            Some(ts("2026-03-02T17:00:00+01:00"))
        );
        assert_eq!(
            cal.add_business(ts("2026-03-02T17:00:00+01:00"), 1),
            Some(ts("2026-03-03T09:00:01+01:00"))
        );
        assert_eq!(
            cal.add_business(ts("2199-12-31T16:00:00+01:00"), 2 * 3600),
            None
        );
    }

    #[test]
    fn overlapping_windows_are_refused() {
        let mut spec = CalendarSpec::roma_capitale();
        spec.weekly[2] = vec![Window::hm((9, 0), (13, 0)), Window::hm((12, 0), (17, 0))];
        assert!(matches!(
            Calendar::new(spec),
            Err(CalendarError::Overlap {
                weekday: "wednesday",
                ..
            })
        ));
    }
}
