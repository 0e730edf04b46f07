//! The `[reports]` section: the bounds of a compliance report, the on-time threshold of the
//! criticalities, and the monthly report e-mail (`[reports.monthly]`) — whether it is sent, at
//! what local time on the first working day of the month, and to whom.

use serde::Deserialize;

use super::Problems;
use crate::domain::EmailAddress;
use messo_core::schedule::RunTime;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReports {
    on_time_threshold_pct: Option<i64>,
    max_tickets: Option<i64>,
    max_replays: Option<i64>,
    #[serde(default)]
    monthly: RawMonthly,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMonthly {
    enabled: Option<bool>,
    at: Option<String>,
    office_email: Option<String>,
    supervisor_email: Option<String>,
}

/// The `[reports]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reports {
    /// An office whose share of tickets closed on time this month falls below this percentage
    /// is a criticality.
    pub on_time_threshold_pct: u8,
    /// The most tickets one report reads; a longer period is refused with that reason.
    pub max_tickets: usize,
    /// The most (ticket, time bucket) replays one report makes; a finer grouping over a long
    /// period is refused with that reason.
    pub max_replays: usize,
    pub monthly: MonthlyReport,
}

/// `[reports.monthly]`: the previous month's compliance report, by e-mail, on the first working
/// day of each month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthlyReport {
    /// Send it (default: off).
    pub enabled: bool,
    /// The office's local time it goes at (default 08:00).
    pub at: RunTime,
    /// The office's copy (default: `notify.office_email`).
    pub office_email: EmailAddress,
    /// The supervisor's copy (default: `notify.supervisor_email`; none when neither is set).
    pub supervisor_email: Option<EmailAddress>,
}

/// 08:00, checked when the program is compiled.
const DEFAULT_AT: RunTime = match RunTime::hm(8, 0) {
    Some(t) => t,
    None => panic!("08:00 is a time of day"),
};

fn address(p: &mut Problems, key: &str, v: Option<String>) -> Option<EmailAddress> {
    let v = v?;
    match EmailAddress::parse(&v) {
        Ok(a) => Some(a),
        Err(why) => {
            p.add(key, format!("{v:?} {why}"));
            None
        }
    }
}

pub(super) fn reports(p: &mut Problems, raw: RawReports, notify: &super::Notify) -> Reports {
    let m = raw.monthly;
    let at = match m.at.as_deref() {
        None => DEFAULT_AT,
        Some(text) => RunTime::parse(text).unwrap_or_else(|e| {
            p.add("reports.monthly.at", e.to_string());
            DEFAULT_AT
        }),
    };
    let office_email = address(p, "reports.monthly.office_email", m.office_email)
        .unwrap_or_else(|| notify.office_email.clone());
    let supervisor_email = address(p, "reports.monthly.supervisor_email", m.supervisor_email)
        .or_else(|| notify.supervisor_email.clone());
    let mut ranged = |key: &str, v: Option<i64>, default: i64, hi: i64| {
        p.ranged(
            key,
            v,
            default,
            if key.ends_with("pct") { 0 } else { 1 },
            hi,
        )
    };
    let on_time = ranged(
        "reports.on_time_threshold_pct",
        raw.on_time_threshold_pct,
        90,
        100,
    );
    let max_tickets = ranged("reports.max_tickets", raw.max_tickets, 250_000, 5_000_000);
    let max_replays = ranged(
        "reports.max_replays",
        raw.max_replays,
        5_000_000,
        100_000_000,
    );
    Reports {
        on_time_threshold_pct: u8::try_from(on_time).unwrap_or(90),
        max_tickets: usize::try_from(max_tickets).unwrap_or(250_000),
        max_replays: usize::try_from(max_replays).unwrap_or(5_000_000),
        monthly: MonthlyReport {
            enabled: m.enabled.unwrap_or(false),
            at,
            office_email,
            supervisor_email,
        },
    }
}
