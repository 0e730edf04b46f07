//! Instants and civil dates without a time zone database: the strict RFC 3339 form the SLA
//! contract accepts, and proleptic Gregorian day arithmetic.
//!
//! An instant is a [`Timestamp`], whole seconds since 1970-01-01T00:00:00Z. Converting to the
//! office's local time is the calendar's job; this module only knows fixed offsets.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};

/// Where the edges read the time: the system clock in the daemon, a fixed or stepped one in
/// tests. The core itself never calls it: `now` is always an argument.
pub type Clock = std::sync::Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    std::sync::Arc::new(|| Timestamp::from_chrono(&chrono::Utc::now()))
}

/// Seconds in a civil day.
pub const DAY: i64 = 86_400;

/// First and last year a timestamp may be written with (spec rule 11).
pub const MIN_YEAR: i32 = 1970;
/// See [`MIN_YEAR`].
pub const MAX_YEAR: i32 = 2199;

/// An instant, in whole seconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Seconds since the Unix epoch.
    pub const fn secs(self) -> i64 {
        self.0
    }

    /// The instant `secs` seconds later (earlier when negative).
    pub const fn plus(self, secs: i64) -> Timestamp {
        Timestamp(self.0 + secs)
    }

    /// Parses the strict RFC 3339 form of the SLA contract:
    /// `YYYY-MM-DDTHH:MM:SS` then `Z` or `±HH:MM`, upper-case `T`/`Z`, whole seconds, years 1970–2199.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, TimestampError> {
        parse_rfc3339(text)
    }

    /// Formats with the given UTC offset (seconds east of UTC), `Z` never used: `2026-03-04T16:45:00+01:00`.
    pub fn to_rfc3339_with_offset(self, offset_s: i32) -> String {
        let mut out = String::with_capacity(25);
        write_rfc3339(&mut out, self, offset_s);
        out
    }

    /// The same instant as a chrono UTC date-time.
    pub fn to_chrono(self) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(self.0, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// From a chrono date-time, dropping any sub-second part.
    pub fn from_chrono<Tz: chrono::TimeZone>(dt: &DateTime<Tz>) -> Timestamp {
        Timestamp(dt.timestamp())
    }
}

/// Why a timestamp was refused. The messages are meant for the person who wrote the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("expected an RFC 3339 timestamp like 2026-03-02T10:15:00+01:00, found {0:?}")]
    Shape(String),
    #[error("fractional seconds are not accepted in {0:?}; use whole seconds")]
    Fraction(String),
    #[error("{0:?} has no UTC offset; add Z or ±HH:MM")]
    MissingOffset(String),
    #[error("'T' and 'Z' must be upper case in {0:?}")]
    LowerCase(String),
    #[error("year {year} in {text:?} is outside the supported range 1970–2199")]
    Year { year: i32, text: String },
    #[error("{text:?} is not a real date or time ({what})")]
    Field { text: String, what: &'static str },
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

fn parse_rfc3339(text: &str) -> Result<Timestamp, TimestampError> {
    let b = text.as_bytes();
    let shape = || TimestampError::Shape(text.to_owned());
    if b.len() < 19 {
        return Err(shape());
    }
    if b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return Err(shape());
    }
    match b[10] {
        b'T' => {}
        b't' => return Err(TimestampError::LowerCase(text.to_owned())),
        _ => return Err(shape()),
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        digits(&b[0..4]),
        digits(&b[5..7]),
        digits(&b[8..10]),
        digits(&b[11..13]),
        digits(&b[14..16]),
        digits(&b[17..19]),
    ) else {
        return Err(shape());
    };
    let offset_s: i64 = match &b[19..] {
        [] => return Err(TimestampError::MissingOffset(text.to_owned())),
        [b'Z'] => 0,
        [b'z'] => return Err(TimestampError::LowerCase(text.to_owned())),
        [b'.', ..] => return Err(TimestampError::Fraction(text.to_owned())),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (Some(oh), Some(om)) = (digits(&[*h1, *h2]), digits(&[*m1, *m2])) else {
                return Err(shape());
            };
            if oh > 23 || om > 59 {
                return Err(TimestampError::Field {
                    text: text.to_owned(),
                    what: "UTC offset out of range",
                });
            }
            let v = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' { -v } else { v }
        }
        _ => return Err(shape()),
    };
    let year = year as i32;
    if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
        return Err(TimestampError::Year {
            year,
            text: text.to_owned(),
        });
    }
    let field = |what| TimestampError::Field {
        text: text.to_owned(),
        what,
    };
    if !(1..=12).contains(&month) {
        return Err(field("month must be 01–12"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(field("no such day in that month"));
    }
    if hour > 23 {
        return Err(field("hour must be 00–23"));
    }
    if minute > 59 {
        return Err(field("minute must be 00–59"));
    }
    if second > 59 {
        return Err(field("second must be 00–59; leap seconds are not accepted"));
    }
    let days = days_from_civil(year, month, day);
    let local = days * DAY + i64::from(hour * 3600 + minute * 60 + second);
    Ok(Timestamp(local - offset_s))
}

fn push_2(out: &mut String, v: u32) {
    out.push(char::from(b'0' + (v / 10) as u8));
    out.push(char::from(b'0' + (v % 10) as u8));
}

/// Appends `ts` in RFC 3339 with the given offset (seconds east of UTC) to `out`.
pub fn write_rfc3339(out: &mut String, ts: Timestamp, offset_s: i32) {
    let local = ts.0 + i64::from(offset_s);
    let days = local.div_euclid(DAY);
    let sod = local.rem_euclid(DAY) as u32;
    let (y, m, d) = civil_from_days(days);
    let y = y.clamp(0, 9999) as u32;
    push_2(out, y / 100);
    push_2(out, y % 100);
    out.push('-');
    push_2(out, m);
    out.push('-');
    push_2(out, d);
    out.push('T');
    push_2(out, sod / 3600);
    out.push(':');
    push_2(out, sod / 60 % 60);
    out.push(':');
    push_2(out, sod % 60);
    out.push(if offset_s < 0 { '-' } else { '+' });
    let off = offset_s.unsigned_abs();
    push_2(out, off / 3600);
    out.push(':');
    push_2(out, off / 60 % 60);
}

/// Serialized as Unix seconds (content hashes, stored event data).
impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(25);
        write_rfc3339(&mut s, *self, 0);
        f.write_str(&s)
    }
}

/// Whether `year` is a Gregorian leap year.
pub const fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1–12) of `year`.
pub const fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1–12, day 1–31).
pub const fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year } as i64;
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date `days` days after 1970-01-01, as (year, month, day).
pub const fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

/// Day of the week of a day number: 0 = Monday … 6 = Sunday.
pub const fn weekday_from_days(days: i64) -> u32 {
    // 1970-01-01 was a Thursday (3).
    (days + 3).rem_euclid(7) as u32
}

/// The date of a day number as chrono's `NaiveDate`.
pub fn naive_date(days: i64) -> NaiveDate {
    let (y, m, d) = civil_from_days(days);
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

/// The day number of a chrono `NaiveDate`.
pub fn day_number(date: NaiveDate) -> i64 {
    use chrono::Datelike;
    days_from_civil(date.year(), date.month(), date.day())
}

/// Easter Sunday of a Gregorian year (anonymous Gregorian computus), as (month, day).
pub const fn easter_sunday(year: i32) -> (u32, u32) {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    (month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_over_the_supported_range() {
        let first = days_from_civil(1969, 1, 1);
        let last = days_from_civil(2200, 12, 31);
        for d in first..=last {
            let (y, m, day) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, day), d);
            assert!((1..=days_in_month(y, m)).contains(&day));
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(weekday_from_days(days_from_civil(2026, 11, 27)), 4); // a Friday
    }

    #[test]
    fn easter_matches_published_dates() {
        for (year, md) in [
            (1970, (3, 29)),
            (2000, (4, 23)),
            (2019, (4, 21)),
            (2024, (3, 31)),
            (2025, (4, 20)),
            (2026, (4, 5)),
            (2027, (3, 28)),
            (2038, (4, 25)),
            (2049, (4, 18)),
            (2285, (3, 22)),
        ] {
            assert_eq!(easter_sunday(year), md, "Easter {year}");
        }
    }

    #[test]
    fn parses_the_accepted_forms() {
        let t = Timestamp::parse_rfc3339("2026-03-02T10:15:00+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-03-02T09:15:00+00:00");
        assert_eq!(Timestamp::parse_rfc3339("2026-03-02T09:15:00Z"), Ok(t));
        assert_eq!(Timestamp::parse_rfc3339("2026-03-02T09:15:00-00:00"), Ok(t));
        assert_eq!(Timestamp::parse_rfc3339("2026-03-02T04:15:00-05:00"), Ok(t));
        assert_eq!(
            Timestamp::parse_rfc3339("1970-01-01T00:00:00Z"),
            Ok(Timestamp(0))
        );
        assert_eq!(t.to_rfc3339_with_offset(3600), "2026-03-02T10:15:00+01:00");
        assert_eq!(t.to_rfc3339_with_offset(-9000), "2026-03-02T06:45:00-02:30");
    }

    #[test]
    fn refuses_everything_else_with_a_reason() {
        use TimestampError as E;
        type Check = fn(&E) -> bool;
        let cases: &[(&str, Check)] = &[
            ("2026-03-02T10:15:00.5+01:00", |e| {
                matches!(e, E::Fraction(_))
            }),
            ("2026-03-02T10:15:00", |e| matches!(e, E::MissingOffset(_))),
            ("2026-03-02t10:15:00Z", |e| matches!(e, E::LowerCase(_))),
            ("2026-03-02T10:15:00z", |e| matches!(e, E::LowerCase(_))),
            ("2026-03-02T10:15:60Z", |e| matches!(e, E::Field { .. })),
            ("2026-02-29T10:15:00Z", |e| matches!(e, E::Field { .. })),
            ("2026-13-01T10:15:00Z", |e| matches!(e, E::Field { .. })),
            ("2026-03-02T24:00:00Z", |e| matches!(e, E::Field { .. })),
            ("1969-12-31T23:59:59Z", |e| matches!(e, E::Year { .. })),
            ("2200-01-01T00:00:00Z", |e| matches!(e, E::Year { .. })),
            ("2026-03-02 10:15:00Z", |e| matches!(e, E::Shape(_))),
            ("2026-3-02T10:15:00Z", |e| matches!(e, E::Shape(_))),
            ("2026-03-02T10:15:00+0100", |e| matches!(e, E::Shape(_))),
            ("2026-03-02T10:15:00+01:00 ", |e| matches!(e, E::Shape(_))),
            ("2026-03-02T10:15:00+24:00", |e| {
                matches!(e, E::Field { .. })
            }),
            ("", |e| matches!(e, E::Shape(_))),
            ("２026-03-02T10:15:00Z", |e| matches!(e, E::Shape(_))),
        ];
        for (text, ok) in cases {
            let err = Timestamp::parse_rfc3339(text).unwrap_err();
            assert!(ok(&err), "{text:?} gave {err:?}");
            assert!(!err.to_string().is_empty());
        }
        assert!(Timestamp::parse_rfc3339("2024-02-29T10:15:00Z").is_ok());
    }
}
