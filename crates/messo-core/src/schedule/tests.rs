use std::sync::LazyLock;

use chrono::{Datelike, NaiveDate};
use proptest::prelude::*;

use super::*;
use crate::calendar::{CalendarSpec, Closure, PatronDay, Window};

static ROME: LazyLock<Calendar> =
    LazyLock::new(|| Calendar::new(CalendarSpec::roma_capitale()).expect("calendar"));

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).expect("timestamp")
}

fn at(s: &str) -> RunTime {
    RunTime::parse(s).expect("run time")
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

/// Hand-checked: the first working day of each month at 08:00 in Rome, and the month reported.
/// Weekdays from the calendar of each year; the DST changes are on 2024-03-31, 2026-03-29,
/// 2026-10-25, 2027-03-28 and 2027-10-31.
#[test]
fn runs_of_the_standard_calendar_are_hand_checked() {
    let cases = [
        // 1 January 2026 is a Thursday and a holiday: Friday the 2nd.
        ((2026, 1), "2026-01-02T08:00:00+01:00", "2025-12"),
        // 1 February and 1 March 2026 are Sundays.
        ((2026, 2), "2026-02-02T08:00:00+01:00", "2026-01"),
        ((2026, 3), "2026-03-02T08:00:00+01:00", "2026-02"),
        // Wednesday, three days after the spring change: 08:00 is now 06:00Z.
        ((2026, 4), "2026-04-01T08:00:00+02:00", "2026-03"),
        // 1 May is a Friday and a holiday, then the weekend: Monday the 4th.
        ((2026, 5), "2026-05-04T08:00:00+02:00", "2026-04"),
        ((2026, 6), "2026-06-01T08:00:00+02:00", "2026-05"),
        // 1 August is a Saturday.
        ((2026, 8), "2026-08-03T08:00:00+02:00", "2026-07"),
        ((2026, 10), "2026-10-01T08:00:00+02:00", "2026-09"),
        // 1 November is a Sunday (and Ognissanti); Monday the 2nd, eight days after the autumn
        // change: 08:00 is 07:00Z again.
        ((2026, 11), "2026-11-02T08:00:00+01:00", "2026-10"),
        ((2026, 12), "2026-12-01T08:00:00+01:00", "2026-11"),
        // 1 January 2027 is a Friday and a holiday, then the weekend: Monday the 4th.
        ((2027, 1), "2027-01-04T08:00:00+01:00", "2026-12"),
        ((2027, 4), "2027-04-01T08:00:00+02:00", "2027-03"),
        // 1 November 2027 is a Monday and a holiday, two days after the autumn change.
        ((2027, 11), "2027-11-02T08:00:00+01:00", "2027-10"),
        // Easter Monday 2024 is 1 April, the day after the spring change.
        ((2024, 4), "2024-04-02T08:00:00+02:00", "2024-03"),
        // 1 May 2028 is a Monday and a holiday.
        ((2028, 5), "2028-05-02T08:00:00+02:00", "2028-04"),
    ];
    for ((y, m), when, month) in cases {
        let r = run_in_month(&ROME, at("08:00"), y, m).expect("a run");
        assert_eq!(
            ROME.format_rfc3339(r.at),
            ts(when).to_rfc3339_with_offset(ROME.offset_at(ts(when))),
            "{y}-{m:02}"
        );
        assert_eq!(r.at, ts(when), "{y}-{m:02}");
        assert_eq!(r.month(), month, "{y}-{m:02}");
        assert_eq!(r.key(), format!("monthly:{month}"));
        assert_eq!(r.day, ROME.local_date(r.at));
    }
}

#[test]
fn the_reported_period_is_the_whole_previous_month() {
    let r = run_in_month(&ROME, at("08:00"), 2026, 3).expect("run");
    assert_eq!(r.period.from, date("2026-02-01"));
    assert_eq!(r.period.to, date("2026-02-28"));
    let r = run_in_month(&ROME, at("08:00"), 2025, 1).expect("run");
    assert_eq!(r.period.from, date("2024-12-01"));
    assert_eq!(r.period.to, date("2024-12-31"));
}

#[test]
fn a_patron_day_on_the_first_moves_the_run() {
    let mut spec = CalendarSpec::roma_capitale();
    spec.patron = Some(PatronDay {
        month: 9,
        day: 1,
        name: "Sant'Egidio".to_owned(),
    });
    let cal = Calendar::new(spec).expect("calendar");
    // 1 September 2026 is a Tuesday: the patron day, so Wednesday the 2nd.
    let r = run_in_month(&cal, at("07:30"), 2026, 9).expect("run");
    assert_eq!(r.at, ts("2026-09-02T07:30:00+02:00"));
    // Rome's own patron day (29 June) changes nothing on the 1st.
    let r = run_in_month(&ROME, at("07:30"), 2026, 9).expect("run");
    assert_eq!(r.at, ts("2026-09-01T07:30:00+02:00"));
}

#[test]
fn next_and_due_runs_around_the_instant() {
    let cal = &*ROME;
    let t = at("08:00");
    let run = ts("2026-11-02T08:00:00+01:00");
    // Before it: not due; the next run is this month's.
    assert_eq!(due_run(cal, t, run.plus(-1)), None);
    assert_eq!(next_run(cal, t, run.plus(-1)).map(|r| r.at), Some(run));
    // At the instant: due; the next one is December's.
    assert_eq!(
        due_run(cal, t, run).map(|r| r.key()).as_deref(),
        Some("monthly:2026-10")
    );
    assert_eq!(
        next_run(cal, t, run).map(|r| r.at),
        Some(ts("2026-12-01T08:00:00+01:00"))
    );
    // Later in the month it stays due (a daemon that was down sends it when it starts).
    assert_eq!(
        due_run(cal, t, ts("2026-11-30T23:59:59+01:00"))
            .map(|r| r.key())
            .as_deref(),
        Some("monthly:2026-10")
    );
    // On the 1st of December before 08:00 nothing is due: October's report is not sent late,
    // November's comes at 08:00.
    assert_eq!(due_run(cal, t, ts("2026-12-01T07:59:59+01:00")), None);
    // 1 November itself (a Sunday, a holiday): nothing due yet.
    assert_eq!(due_run(cal, t, ts("2026-11-01T12:00:00+01:00")), None);
}

#[test]
fn a_time_that_does_not_exist_runs_when_the_clocks_land() {
    // 29 March 2026: 02:00 CET becomes 03:00 CEST.
    let day = days_from_civil(2026, 3, 29);
    assert_eq!(
        local_instant(&ROME, day, 2 * 60 + 30),
        ts("2026-03-29T03:00:00+02:00")
    );
    assert_eq!(
        local_instant(&ROME, day, 3 * 60),
        ts("2026-03-29T03:00:00+02:00")
    );
    assert_eq!(
        local_instant(&ROME, day, 60 + 59),
        ts("2026-03-29T01:59:00+01:00")
    );
}

#[test]
fn a_time_that_happens_twice_runs_at_its_first_occurrence() {
    // 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    let day = days_from_civil(2026, 10, 25);
    assert_eq!(
        local_instant(&ROME, day, 2 * 60 + 30),
        ts("2026-10-25T02:30:00+02:00")
    );
    assert_eq!(
        local_instant(&ROME, day, 3 * 60),
        ts("2026-10-25T03:00:00+01:00")
    );
}

/// A calendar whose first working day of a month is the day of a change: open on Sundays, and
/// closed from the 1st of the month to the day before the change.
fn open_on_the_change(first_closed: (i32, u32, u32), last_closed: u32) -> Calendar {
    let mut spec = CalendarSpec::roma_capitale();
    spec.weekly[6] = vec![Window::hm((9, 0), (12, 0))];
    let (y, m, d0) = first_closed;
    spec.closures = (d0..=last_closed)
        .map(|d| Closure {
            date: NaiveDate::from_ymd_opt(y, m, d).expect("date"),
            name: "chiusura".to_owned(),
        })
        .collect();
    Calendar::new(spec).expect("calendar")
}

#[test]
fn a_run_on_the_day_of_a_change_keeps_the_documented_rule() {
    // October 2026 closed until the 24th: the first working day is Sunday the 25th.
    let cal = open_on_the_change((2026, 10, 1), 24);
    let r = run_in_month(&cal, at("02:30"), 2026, 10).expect("run");
    assert_eq!(r.day, date("2026-10-25"));
    assert_eq!(r.at, ts("2026-10-25T02:30:00+02:00"), "the first 02:30");
    // Once only: just after the second 02:30, the next run is November's.
    let later = ts("2026-10-25T02:30:00+01:00");
    assert_eq!(due_run(&cal, at("02:30"), later).map(|r| r.at), Some(r.at));
    assert_eq!(
        next_run(&cal, at("02:30"), r.at)
            .map(|r| r.key())
            .as_deref(),
        Some("monthly:2026-10")
    );
    // March 2026 closed until the 28th: Sunday the 29th, where 02:30 does not exist.
    let cal = open_on_the_change((2026, 3, 1), 28);
    let r = run_in_month(&cal, at("02:30"), 2026, 3).expect("run");
    assert_eq!(r.at, ts("2026-03-29T03:00:00+02:00"));
}

#[test]
fn run_times_parse_strictly() {
    assert_eq!(at("08:00").minutes(), 480);
    assert_eq!(at("23:59").to_string(), "23:59");
    assert_eq!(at("00:00").to_string(), "00:00");
    for bad in [
        "8:00", "24:00", "08:60", "0800", "08:00:00", "", "ab:cd", "+8:00", "08:+1",
    ] {
        assert!(RunTime::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn out_of_range_months_have_no_run() {
    assert!(run_in_month(&ROME, at("08:00"), 2200, 1).is_none());
    assert!(run_in_month(&ROME, at("08:00"), 2026, 13).is_none());
    assert!(next_run(&ROME, at("08:00"), ts("2199-12-31T12:00:00+01:00")).is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The next run is on a working day, in the month after the one it reports, strictly after
    /// `now`, at the configured local time; nothing is due between `now` and it that was not
    /// due at `now`; and the run after it reports the following month (no month skipped).
    #[test]
    fn runs_are_on_working_days_and_skip_no_month(
        now in ts("1990-01-01T00:00:00Z").0..ts("2190-01-01T00:00:00Z").0,
        hour in 0u16..24,
        minute in 0u16..60,
    ) {
        let cal = &*ROME;
        let t = RunTime::hm(hour, minute).expect("in range");
        let now = Timestamp(now);
        let r = next_run(cal, t, now).expect("a next run");
        prop_assert!(r.at > now);
        let day = cal.local_day(r.at);
        prop_assert!(!cal.day(day).windows.is_empty(), "{} is not a working day", r.day);
        prop_assert_eq!(cal.local_date(r.at), r.day);
        let after = r.period.to.succ_opt().expect("a day after");
        prop_assert_eq!((r.day.year(), r.day.month()), (after.year(), after.month()));
        prop_assert_eq!(r.period.from.day(), 1);
        // Working days in Rome are weekdays, where the wall clock never jumps.
        let (h, m, s) = cal.local_hms(r.at);
        prop_assert_eq!((h as u16, m as u16, s), (hour, minute, 0));
        // Nothing earlier in its month is a working day.
        for d in crate::time::day_number(r.day.with_day(1).expect("1st"))..day {
            prop_assert!(cal.day(d).windows.is_empty());
        }
        // Due from its instant on, not a second before.
        prop_assert_eq!(due_run(cal, t, r.at), Some(r));
        prop_assert_ne!(due_run(cal, t, r.at.plus(-1)), Some(r));
        // The run after it reports the next month.
        let n = next_run(cal, t, r.at).expect("the run after");
        prop_assert_eq!(n.period.from, after);
    }
}
