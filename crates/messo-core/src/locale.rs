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

/// The name of month `month0` (0 = January) in `lang`, as a date is written (`novembre`).
pub fn month_name(lang: Lang, month0: u32) -> &'static str {
    let names = match lang {
        Lang::It => &MONTHS_IT,
        Lang::En => &MONTHS_EN,
    };
    names.get(month0 as usize).copied().unwrap_or("")
}

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

/// `giovedì 5 marzo 2026 alle ore 10:45` from an RFC 3339 text written in the office's offset
/// (the text itself when it is not one).
pub fn when(lang: Lang, rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => {
            let hm = t.format("%H:%M");
            match lang {
                Lang::It => format!("{} alle ore {hm}", date(lang, t.date_naive())),
                Lang::En => format!("{} at {hm}", date(lang, t.date_naive())),
            }
        }
        Err(_) => rfc3339.to_owned(),
    }
}

fn hm(min: u16) -> String {
    format!("{:02}:{:02}", min / 60, min % 60)
}

/// The office's weekly hours in words: `dal lunedì al venerdì, dalle 09:00 alle 17:00` (days with
/// the same windows are grouped; `Monday to Friday, 09:00 to 17:00` in English).
pub fn office_hours(lang: Lang, weekly: &[Vec<crate::calendar::Window>; 7]) -> String {
    let it = lang == Lang::It;
    let windows = |ws: &[crate::calendar::Window]| {
        ws.iter()
            .map(|w| {
                if it {
                    format!("dalle {} alle {}", hm(w.start_min), hm(w.end_min))
                } else {
                    format!("{} to {}", hm(w.start_min), hm(w.end_min))
                }
            })
            .collect::<Vec<_>>()
            .join(if it { " e " } else { " and " })
    };
    let mut groups: Vec<String> = Vec::new();
    let mut d = 0;
    while d < 7 {
        if weekly[d].is_empty() {
            d += 1;
            continue;
        }
        let mut e = d;
        while e + 1 < 7 && weekly[e + 1] == weekly[d] {
            e += 1;
        }
        let (a, b) = (weekday_name(lang, d as u32), weekday_name(lang, e as u32));
        let days = match (e - d, it) {
            (0, _) => a.to_owned(),
            (1, true) => format!("{a} e {b}"),
            (1, false) => format!("{a} and {b}"),
            (_, true) => format!("dal {a} al {b}"),
            (_, false) => format!("{a} to {b}"),
        };
        groups.push(format!("{days}, {}", windows(&weekly[d])));
        d = e + 1;
    }
    groups.join("; ")
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
