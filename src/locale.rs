//! Dates, times and durations written for people, in Italian (the default) and English.

use chrono::{Datelike, NaiveDate};

use crate::calendar::Calendar;
use crate::domain::Lang;
use crate::time::{Timestamp, day_number, weekday_from_days};

const WEEKDAYS_IT: [&str; 7] = [
    "lunedì",
    "martedì",
    "mercoledì",
    "giovedì",
    "venerdì",
    "sabato",
    "domenica",
];
const WEEKDAYS_EN: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS_IT: [&str; 12] = [
    "gennaio",
    "febbraio",
    "marzo",
    "aprile",
    "maggio",
    "giugno",
    "luglio",
    "agosto",
    "settembre",
    "ottobre",
    "novembre",
    "dicembre",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Name of a weekday (0 = Monday).
pub fn weekday_name(lang: Lang, weekday: u32) -> &'static str {
    let i = (weekday % 7) as usize;
    match lang {
        Lang::It => WEEKDAYS_IT[i],
        Lang::En => WEEKDAYS_EN[i],
    }
}

/// `giovedì 5 marzo 2026` / `Thursday 5 March 2026`.
pub fn date(lang: Lang, d: NaiveDate) -> String {
    let wd = weekday_from_days(day_number(d));
    let m = d.month0() as usize;
    match lang {
        Lang::It => format!(
            "{} {} {} {}",
            WEEKDAYS_IT[wd as usize],
            d.day(),
            MONTHS_IT[m],
            d.year()
        ),
        Lang::En => format!(
            "{} {} {} {}",
            WEEKDAYS_EN[wd as usize],
            d.day(),
            MONTHS_EN[m],
            d.year()
        ),
    }
}

/// Local wall-clock time `10:45`, or `16:59:59` when the seconds are not zero.
pub fn clock_time(cal: &Calendar, t: Timestamp) -> String {
    let (h, m, s) = cal.local_hms(t);
    if s == 0 {
        format!("{h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// `giovedì 5 marzo 2026 alle 10:45` / `Thursday 5 March 2026 at 10:45`, in the office's time zone.
pub fn date_time(lang: Lang, cal: &Calendar, t: Timestamp) -> String {
    let d = date(lang, cal.local_date(t));
    let time = clock_time(cal, t);
    match lang {
        Lang::It => format!("{d} alle {time}"),
        Lang::En => format!("{d} at {time}"),
    }
}

/// A duration in hours and minutes (`7 h 15 min`, `45 min`, `8 h`), with seconds when present.
pub fn duration(secs: i64) -> String {
    let neg = secs < 0;
    let s = secs.unsigned_abs();
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h} h"));
    }
    if m > 0 {
        parts.push(format!("{m} min"));
    }
    if sec > 0 || parts.is_empty() {
        parts.push(format!("{sec} s"));
    }
    let body = parts.join(" ");
    if neg { format!("-{body}") } else { body }
}

/// `1 giorno` / `3 giorni`, with the noun chosen by count.
pub fn count(lang: Lang, n: i64, it: (&str, &str), en: (&str, &str)) -> String {
    let (one, many) = match lang {
        Lang::It => it,
        Lang::En => en,
    };
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::CalendarSpec;

    #[test]
    fn writes_dates_the_italian_way() {
        let cal = Calendar::new(CalendarSpec::roma_capitale()).unwrap();
        let t = Timestamp::parse_rfc3339("2026-03-05T09:45:00Z").unwrap();
        assert_eq!(
            date_time(Lang::It, &cal, t),
            "giovedì 5 marzo 2026 alle 10:45"
        );
        assert_eq!(
            date_time(Lang::En, &cal, t),
            "Thursday 5 March 2026 at 10:45"
        );
        let summer = Timestamp::parse_rfc3339("2026-07-01T14:59:59Z").unwrap();
        assert_eq!(
            date_time(Lang::It, &cal, summer),
            "mercoledì 1 luglio 2026 alle 16:59:59"
        );
        assert_eq!(duration(26_100), "7 h 15 min");
        assert_eq!(duration(2_700), "45 min");
        assert_eq!(duration(28_800), "8 h");
        assert_eq!(duration(0), "0 s");
        assert_eq!(
            count(Lang::It, 1, ("giorno", "giorni"), ("day", "days")),
            "1 giorno"
        );
        assert_eq!(
            count(Lang::En, 3, ("giorno", "giorni"), ("day", "days")),
            "3 days"
        );
    }
}
