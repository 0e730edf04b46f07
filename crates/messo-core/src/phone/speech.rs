//! Dates, times and numbers written as they are spoken, so every provider's text-to-speech says
//! them the same way and the console's preview shows exactly what the caller hears: "entro
//! lunedì sette dicembre alle ore diciassette", not "07/12 17:00".

use chrono::Datelike;

use crate::calendar::Calendar;
use crate::domain::Lang;
use crate::locale;
use crate::time::Timestamp;

const UNITS_IT: [&str; 20] = [
    "zero",
    "uno",
    "due",
    "tre",
    "quattro",
    "cinque",
    "sei",
    "sette",
    "otto",
    "nove",
    "dieci",
    "undici",
    "dodici",
    "tredici",
    "quattordici",
    "quindici",
    "sedici",
    "diciassette",
    "diciotto",
    "diciannove",
];
const TENS_IT: [&str; 10] = [
    "",
    "",
    "venti",
    "trenta",
    "quaranta",
    "cinquanta",
    "sessanta",
    "settanta",
    "ottanta",
    "novanta",
];
const UNITS_EN: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS_EN: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// A number from 0 to 99 in words: `ventuno`, `ventotto`, `trentatré`; `twenty-one`.
/// Larger numbers are written with digits (never needed for days, hours and minutes).
pub fn number(lang: Lang, n: u32) -> String {
    if n >= 100 {
        return n.to_string();
    }
    let (units, tens) = match lang {
        Lang::It => (&UNITS_IT, &TENS_IT),
        Lang::En => (&UNITS_EN, &TENS_EN),
    };
    if n < 20 {
        return units[n as usize].to_owned();
    }
    let (t, u) = ((n / 10) as usize, (n % 10) as usize);
    match (lang, u) {
        (_, 0) => tens[t].to_owned(),
        // Italian drops the tens' last vowel before uno and otto, and accents tre.
        (Lang::It, 1 | 8) => format!("{}{}", &tens[t][..tens[t].len() - 1], units[u]),
        (Lang::It, 3) => format!("{}tré", tens[t]),
        (Lang::It, _) => format!("{}{}", tens[t], units[u]),
        (Lang::En, _) => format!("{}-{}", tens[t], units[u]),
    }
}

/// The day of the month as spoken: Italian says "primo" for the first.
fn day(lang: Lang, d: u32) -> String {
    match (lang, d) {
        (Lang::It, 1) => "primo".to_owned(),
        _ => number(lang, d),
    }
}

/// A clock time as spoken: `diciassette`, `nove e trenta`, `mezzanotte`; `five p.m.`,
/// `nine thirty a.m.`, `noon`.
pub fn clock(lang: Lang, h: u32, m: u32) -> String {
    match lang {
        Lang::It => {
            let hour = match h {
                0 => "mezzanotte".to_owned(),
                // One o'clock is feminine (l'ora una).
                1 => "una".to_owned(),
                12 if m == 0 => "mezzogiorno".to_owned(),
                _ => number(lang, h),
            };
            if m == 0 {
                hour
            } else {
                format!("{hour} e {}", number(lang, m))
            }
        }
        Lang::En => {
            if m == 0 && h == 12 {
                return "noon".to_owned();
            }
            if m == 0 && h == 0 {
                return "midnight".to_owned();
            }
            let h12 = match h % 12 {
                0 => 12,
                x => x,
            };
            let half = if h < 12 { "a.m." } else { "p.m." };
            let minutes = match m {
                0 => String::new(),
                1..=9 => format!(" oh {}", number(lang, m)),
                _ => format!(" {}", number(lang, m)),
            };
            format!("{}{minutes} {half}", number(lang, h12))
        }
    }
}

/// An instant in the office's time zone, as spoken: `lunedì sette dicembre alle ore
/// diciassette`, `Monday the seventh of December at five p.m.`. The year is said only when
/// it is not the year of `now`.
pub fn date_time(lang: Lang, cal: &Calendar, t: Timestamp, now: Timestamp) -> String {
    let d = cal.local_date(t);
    let (h, m, _) = cal.local_hms(t);
    let weekday = locale::weekday_name(lang, d.weekday().num_days_from_monday());
    let month = locale::month_name(lang, d.month0());
    let year = (d.year() != cal.local_date(now).year()).then(|| d.year());
    let time = clock(lang, h, m);
    match lang {
        Lang::It => {
            let y = year.map(|y| format!(" {y}")).unwrap_or_default();
            // "alle ore una" is wrong Italian: one o'clock is "all'una".
            let at = match (h, m) {
                (0, 0) => "a mezzanotte".to_owned(),
                (12, 0) => "a mezzogiorno".to_owned(),
                (1, _) => format!("all'{time}"),
                _ => format!("alle ore {time}"),
            };
            format!("{weekday} {} {month}{y} {at}", day(lang, d.day()))
        }
        Lang::En => {
            let y = year.map(|y| format!(", {y}")).unwrap_or_default();
            format!("{weekday} {} {month}{y}, at {time}", number(lang, d.day()))
        }
    }
}

/// Digits spelt one by one and other characters named, for a ticket number or a phone number:
/// `2026/000123` → `2 0 2 6, barra, 0 0 0 1 2 3`. Text-to-speech reads single digits one at a
/// time; a long run of digits would be read as one large number.
pub fn spell(lang: Lang, text: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Vec<String> = Vec::new();
    let flush = |run: &mut Vec<String>, parts: &mut Vec<String>| {
        if !run.is_empty() {
            parts.push(run.join(" "));
            run.clear();
        }
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c.to_string());
            continue;
        }
        flush(&mut run, &mut parts);
        let name = match (lang, c) {
            (Lang::It, '/') => "barra".to_owned(),
            (Lang::En, '/') => "slash".to_owned(),
            (Lang::It, '-') => "trattino".to_owned(),
            (Lang::En, '-') => "dash".to_owned(),
            (Lang::It, '+') => "più".to_owned(),
            (Lang::En, '+') => "plus".to_owned(),
            (_, c) if c.is_alphanumeric() => c.to_uppercase().to_string(),
            _ => continue,
        };
        parts.push(name);
    }
    flush(&mut run, &mut parts);
    parts.join(", ")
}

/// The keys to press for a ticket number: its digits (`2026/000123` → `2026000123`).
pub fn keys_of(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::CalendarSpec;

    fn cal() -> Calendar {
        match Calendar::new(CalendarSpec::roma_capitale()) {
            Ok(c) => c,
            Err(e) => panic!("the default calendar: {e}"),
        }
    }

    fn at(rfc3339: &str) -> Timestamp {
        match chrono::DateTime::parse_from_rfc3339(rfc3339) {
            Ok(t) => Timestamp(t.timestamp()),
            Err(e) => panic!("{rfc3339}: {e}"),
        }
    }

    #[test]
    fn numbers_in_words() {
        let it: Vec<String> = [0, 1, 7, 17, 20, 21, 23, 28, 30, 31, 45, 59]
            .iter()
            .map(|n| number(Lang::It, *n))
            .collect();
        assert_eq!(
            it,
            [
                "zero",
                "uno",
                "sette",
                "diciassette",
                "venti",
                "ventuno",
                "ventitré",
                "ventotto",
                "trenta",
                "trentuno",
                "quarantacinque",
                "cinquantanove"
            ]
        );
        assert_eq!(number(Lang::En, 21), "twenty-one");
        assert_eq!(number(Lang::En, 40), "forty");
        assert_eq!(number(Lang::It, 2026), "2026");
    }

    #[test]
    fn dates_and_times_as_a_caller_hears_them() {
        let c = cal();
        let now = at("2026-12-04T22:00:00+01:00");
        let cases = [
            (
                "2026-12-07T17:00:00+01:00",
                "lunedì sette dicembre alle ore diciassette",
                "Monday seven December, at five p.m.",
            ),
            (
                "2026-12-01T09:30:00+01:00",
                "martedì primo dicembre alle ore nove e trenta",
                "Tuesday one December, at nine thirty a.m.",
            ),
            (
                // Summer time: the wall clock of Rome, not UTC.
                "2027-07-01T13:05:00+02:00",
                "giovedì primo luglio 2027 alle ore tredici e cinque",
                "Thursday one July, 2027, at one oh five p.m.",
            ),
            (
                "2026-12-08T01:00:00+01:00",
                "martedì otto dicembre all'una",
                "Tuesday eight December, at one a.m.",
            ),
            (
                "2026-12-11T12:00:00+01:00",
                "venerdì undici dicembre a mezzogiorno",
                "Friday eleven December, at noon",
            ),
        ];
        for (t, it, en) in cases {
            assert_eq!(date_time(Lang::It, &c, at(t), now), it, "{t}");
            assert_eq!(date_time(Lang::En, &c, at(t), now), en, "{t}");
        }
    }

    #[test]
    fn numbers_are_spelt_digit_by_digit() {
        assert_eq!(
            spell(Lang::It, "2026/000123"),
            "2 0 2 6, barra, 0 0 0 1 2 3"
        );
        assert_eq!(
            spell(Lang::En, "2026/000123"),
            "2 0 2 6, slash, 0 0 0 1 2 3"
        );
        assert_eq!(
            spell(Lang::It, "URP-2026-7"),
            "U, R, P, trattino, 2 0 2 6, trattino, 7"
        );
        assert_eq!(spell(Lang::It, "<&>"), "");
        assert_eq!(keys_of("2026/000123"), "2026000123");
    }
}
