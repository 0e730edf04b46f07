//! Italian national public holidays, kept as data: each rule says from which year and until which
//! year it applies, so a change in the law adds a rule instead of editing one, and a deadline
//! already computed for a past year never moves.

use std::borrow::Cow;

use crate::time::{days_from_civil, easter_sunday};

/// How the date of a holiday is found in a given year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HolidayDate {
    /// The same month and day every year.
    Fixed { month: u32, day: u32 },
    /// The Monday after Gregorian Easter Sunday (Lunedì dell'Angelo).
    EasterMonday,
}

/// One national holiday rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HolidayRule {
    /// Stable identifier, used in `--json` explanations and stored calendar versions.
    pub id: Cow<'static, str>,
    /// Name in Italian.
    pub it: Cow<'static, str>,
    /// Name in English.
    pub en: Cow<'static, str>,
    pub date: HolidayDate,
    /// First year the rule applies.
    pub from_year: i32,
    /// Last year the rule applies, if it has ended.
    pub until_year: Option<i32>,
}

impl HolidayRule {
    /// Whether the rule is in force in `year`.
    pub const fn applies_in(&self, year: i32) -> bool {
        year >= self.from_year
            && match self.until_year {
                Some(last) => year <= last,
                None => true,
            }
    }

    /// Day number (days since 1970-01-01) of the holiday in `year`, if the rule applies then.
    pub const fn day_in(&self, year: i32) -> Option<i64> {
        if !self.applies_in(year) {
            return None;
        }
        Some(match self.date {
            HolidayDate::Fixed { month, day } => days_from_civil(year, month, day),
            HolidayDate::EasterMonday => {
                let (m, d) = easter_sunday(year);
                days_from_civil(year, m, d) + 1
            }
        })
    }
}

const fn fixed(
    id: &'static str,
    it: &'static str,
    en: &'static str,
    month: u32,
    day: u32,
    from_year: i32,
) -> HolidayRule {
    HolidayRule {
        id: Cow::Borrowed(id),
        it: Cow::Borrowed(it),
        en: Cow::Borrowed(en),
        date: HolidayDate::Fixed { month, day },
        from_year,
        until_year: None,
    }
}

/// The national holidays of the SLA contract (`sla-spec.md`). The contract fixes the list for every
/// supported year, with one dated rule: 4 October counts from 2026 on. Earlier historical changes
/// (for example the 1977–1985 suspension of Epiphany) are outside the contract and not modelled;
/// they would be added here as rules with their own years.
pub const ITALIAN_NATIONAL_HOLIDAYS: &[HolidayRule] = &[
    fixed("capodanno", "Capodanno", "New Year's Day", 1, 1, 1970),
    fixed("epifania", "Epifania", "Epiphany", 1, 6, 1970),
    HolidayRule {
        id: Cow::Borrowed("lunedi_angelo"),
        it: Cow::Borrowed("Lunedì dell'Angelo"),
        en: Cow::Borrowed("Easter Monday"),
        date: HolidayDate::EasterMonday,
        from_year: 1970,
        until_year: None,
    },
    fixed(
        "liberazione",
        "Festa della Liberazione",
        "Liberation Day",
        4,
        25,
        1970,
    ),
    fixed("lavoro", "Festa del Lavoro", "Labour Day", 5, 1, 1970),
    fixed(
        "repubblica",
        "Festa della Repubblica",
        "Republic Day",
        6,
        2,
        1970,
    ),
    fixed(
        "ferragosto",
        "Ferragosto (Assunzione)",
        "Assumption Day",
        8,
        15,
        1970,
    ),
    fixed(
        "san_francesco",
        "San Francesco d'Assisi",
        "Saint Francis of Assisi",
        10,
        4,
        2026,
    ),
    fixed("ognissanti", "Ognissanti", "All Saints' Day", 11, 1, 1970),
    fixed(
        "immacolata",
        "Immacolata Concezione",
        "Immaculate Conception",
        12,
        8,
        1970,
    ),
    fixed("natale", "Natale", "Christmas Day", 12, 25, 1970),
    fixed(
        "santo_stefano",
        "Santo Stefano",
        "Saint Stephen's Day",
        12,
        26,
        1970,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::days_from_civil;

    fn holidays_in(year: i32) -> Vec<i64> {
        let mut v: Vec<i64> = ITALIAN_NATIONAL_HOLIDAYS
            .iter()
            .filter_map(|r| r.day_in(year))
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn four_october_only_from_2026() {
        assert!(!holidays_in(2025).contains(&days_from_civil(2025, 10, 4)));
        assert!(holidays_in(2026).contains(&days_from_civil(2026, 10, 4)));
        assert!(holidays_in(2027).contains(&days_from_civil(2027, 10, 4)));
        assert_eq!(holidays_in(2025).len(), 11);
        assert_eq!(holidays_in(2026).len(), 12);
    }

    #[test]
    fn easter_monday_lands_on_a_monday() {
        assert!(holidays_in(2026).contains(&days_from_civil(2026, 4, 6)));
        assert!(holidays_in(2027).contains(&days_from_civil(2027, 3, 29)));
        for year in 1970..=2199 {
            let rule = &ITALIAN_NATIONAL_HOLIDAYS[2];
            let day = rule.day_in(year).unwrap();
            assert_eq!(crate::time::weekday_from_days(day), 0, "{year}");
        }
    }
}
