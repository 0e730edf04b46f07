//! Calendar and policy versions: each distinct configuration, written as a canonical JSON
//! document with a content hash, so a ticket can keep the rules it was opened under and be
//! recomputed with them years later, whatever the configuration says today.

use std::borrow::Cow;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::calendar::{CalendarSpec, Closure, HolidayDate, HolidayRule, PatronDay, Window};
use crate::domain::{Category, Priority};
use crate::sla::{Amount, ClockKind, Policy, TargetRule};

/// A stored document that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored {what} version is unreadable: {message}")]
pub struct VersionError {
    pub what: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct HolidayDoc {
    id: String,
    it: String,
    en: String,
    /// `fixed` or `easter_monday`.
    rule: String,
    month: u32,
    day: u32,
    from_year: i32,
    until_year: Option<i32>,
}

/// The calendar as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarDoc {
    time_zone: String,
    /// Monday first; each window `[start_minute, end_minute]`.
    weekly: Vec<Vec<[u16; 2]>>,
    national: Vec<HolidayDoc>,
    patron: Option<(u32, u32, String)>,
    closures: Vec<(String, String)>,
}

/// The policy as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDoc {
    hours_per_working_day: u32,
    warning_ratio_bp: u32,
    /// `[category or "any", priority or "any", clock, unit, amount]`.
    targets: Vec<(String, String, String, String, u32)>,
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl CalendarDoc {
    /// The document of a calendar.
    pub fn of(spec: &CalendarSpec) -> CalendarDoc {
        CalendarDoc {
            time_zone: spec.time_zone.name().to_owned(),
            weekly: spec
                .weekly
                .iter()
                .map(|day| day.iter().map(|w| [w.start_min, w.end_min]).collect())
                .collect(),
            national: spec
                .national
                .iter()
                .map(|r| {
                    let (rule, month, day) = match r.date {
                        HolidayDate::Fixed { month, day } => ("fixed", month, day),
                        HolidayDate::EasterMonday => ("easter_monday", 0, 0),
                    };
                    HolidayDoc {
                        id: r.id.to_string(),
                        it: r.it.to_string(),
                        en: r.en.to_string(),
                        rule: rule.to_owned(),
                        month,
                        day,
                        from_year: r.from_year,
                        until_year: r.until_year,
                    }
                })
                .collect(),
            patron: spec
                .patron
                .as_ref()
                .map(|p| (p.month, p.day, p.name.clone())),
            closures: spec
                .closures
                .iter()
                .map(|c| (c.date.to_string(), c.name.clone()))
                .collect(),
        }
    }

    /// Canonical JSON text and its SHA-256.
    pub fn canonical(&self) -> (String, String) {
        let text = serde_json::to_string(self).unwrap_or_default();
        let hash = sha256_hex(&text);
        (text, hash)
    }

    /// Reads a stored document back into a calendar specification.
    pub fn parse(text: &str) -> Result<CalendarSpec, VersionError> {
        let err = |message: String| VersionError {
            what: "calendar",
            message,
        };
        let doc: CalendarDoc = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        let time_zone = doc
            .time_zone
            .parse()
            .map_err(|_| err(format!("unknown time zone {}", doc.time_zone)))?;
        if doc.weekly.len() != 7 {
            return Err(err("weekly must have 7 days".to_owned()));
        }
        let mut weekly: [Vec<Window>; 7] = Default::default();
        for (i, day) in doc.weekly.iter().enumerate() {
            weekly[i] = day
                .iter()
                .map(|[s, e]| Window {
                    start_min: *s,
                    end_min: *e,
                })
                .collect();
        }
        let national = doc
            .national
            .into_iter()
            .map(|h| {
                let date = match h.rule.as_str() {
                    "fixed" => HolidayDate::Fixed {
                        month: h.month,
                        day: h.day,
                    },
                    "easter_monday" => HolidayDate::EasterMonday,
                    other => return Err(err(format!("unknown holiday rule {other}"))),
                };
                Ok(HolidayRule {
                    id: Cow::Owned(h.id),
                    it: Cow::Owned(h.it),
                    en: Cow::Owned(h.en),
                    date,
                    from_year: h.from_year,
                    until_year: h.until_year,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let closures = doc
            .closures
            .into_iter()
            .map(|(d, name)| {
                NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                    .map(|date| Closure { date, name })
                    .map_err(|e| err(format!("closure date {d}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CalendarSpec {
            time_zone,
            weekly,
            national,
            patron: doc
                .patron
                .map(|(month, day, name)| PatronDay { month, day, name }),
            closures,
        })
    }
}

impl PolicyDoc {
    /// The document of a policy.
    pub fn of(policy: &Policy) -> PolicyDoc {
        PolicyDoc {
            hours_per_working_day: policy.hours_per_working_day(),
            warning_ratio_bp: policy.warning_ratio_bp(),
            targets: policy
                .rules()
                .iter()
                .map(|r| {
                    let (unit, n) = match r.amount {
                        Amount::WorkingDays(n) => ("working_days", n),
                        Amount::Hours(n) => ("hours", n),
                        Amount::Days(n) => ("days", n),
                    };
                    (
                        r.category.map_or("any", Category::as_str).to_owned(),
                        r.priority.map_or("any", Priority::as_str).to_owned(),
                        r.clock.as_str().to_owned(),
                        unit.to_owned(),
                        n,
                    )
                })
                .collect(),
        }
    }

    /// Canonical JSON text and its SHA-256.
    pub fn canonical(&self) -> (String, String) {
        let text = serde_json::to_string(self).unwrap_or_default();
        let hash = sha256_hex(&text);
        (text, hash)
    }

    /// Reads a stored document back into a policy.
    pub fn parse(text: &str) -> Result<Policy, VersionError> {
        let err = |message: String| VersionError {
            what: "policy",
            message,
        };
        let doc: PolicyDoc = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        let rules = doc
            .targets
            .iter()
            .map(|(c, p, clock, unit, n)| {
                let category = match c.as_str() {
                    "any" => None,
                    c => Some(c.parse::<Category>().map_err(|e| err(e.to_string()))?),
                };
                let priority = match p.as_str() {
                    "any" => None,
                    p => Some(p.parse::<Priority>().map_err(|e| err(e.to_string()))?),
                };
                let clock = match clock.as_str() {
                    "business" => ClockKind::Business,
                    "calendar" => ClockKind::Calendar,
                    "on_site" => ClockKind::OnSite,
                    other => return Err(err(format!("unknown clock {other}"))),
                };
                let amount = match unit.as_str() {
                    "working_days" => Amount::WorkingDays(*n),
                    "hours" => Amount::Hours(*n),
                    "days" => Amount::Days(*n),
                    other => return Err(err(format!("unknown unit {other}"))),
                };
                Ok(TargetRule {
                    category,
                    priority,
                    clock,
                    amount,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Policy::new(rules, doc.hours_per_working_day, doc.warning_ratio_bp)
            .map_err(|e| err(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip_and_hash_stably() {
        let mut spec = CalendarSpec::roma_capitale();
        spec.closures.push(Closure {
            date: NaiveDate::from_ymd_opt(2026, 12, 24).unwrap(),
            name: "Chiusura".to_owned(),
        });
        let (text, hash) = CalendarDoc::of(&spec).canonical();
        assert_eq!(CalendarDoc::parse(&text).unwrap(), spec);
        assert_eq!(CalendarDoc::of(&spec).canonical().1, hash);
        let policy = Policy::agreement_default();
        let (ptext, phash) = PolicyDoc::of(&policy).canonical();
        assert_eq!(PolicyDoc::parse(&ptext).unwrap(), policy);
        let other = Policy::new(policy.rules().to_vec(), 7, 7500).unwrap();
        assert_ne!(PolicyDoc::of(&other).canonical().1, phash);
    }
}
