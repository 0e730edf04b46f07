//! "Why that date?": the day-by-day account of how a ticket's due instant was reached, for an
//! URP officer to read to a citizen (Italian by default, English on request) or for a machine.

use chrono::NaiveDate;
use serde_json::{Value, json};

use super::{ClockKind, OutOfRange, Sla, SlaStatus, Suspension, normalize_suspensions};
use crate::calendar::{Calendar, ClosedDay};
use crate::domain::{Category, Lang, Priority};
use crate::locale;
use crate::sla::Amount;
use crate::time::{Timestamp, naive_date};

/// Days listed at most; a longer account is cut and says so.
pub const MAX_DAYS: usize = 400;

/// The facts of one ticket that the clock needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketTimes {
    pub id: Option<String>,
    pub received_at: Timestamp,
    pub category: Category,
    pub priority: Priority,
    pub suspensions: Vec<Suspension>,
}

/// Why the clock starts when it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartReason {
    /// Received while the office was open: counting starts at once.
    InHours,
    /// Received on a working day before its first opening.
    BeforeOpening,
    /// Received on a working day after closing (or between two windows).
    OutOfHours,
    /// Received on a weekday with no windows (e.g. a Saturday).
    NonWorkingDay,
    /// Received on a holiday or closure.
    Closed(ClosedDay),
    /// A calendar clock counts every second from receipt.
    CalendarClock,
}

/// How one local day counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DayKind {
    /// Some time counted.
    Counted,
    /// A weekday without working windows.
    NonWorking,
    /// A holiday or closure.
    Closed(ClosedDay),
    /// The whole day lies in a suspension.
    Suspended,
    /// Working day whose windows all fell outside the clock (before receipt, in a suspension, or
    /// after the due instant).
    NotCounted,
}

/// One local day of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayLine {
    pub date: NaiveDate,
    pub kind: DayKind,
    /// Counted intervals of the day.
    pub counted: Vec<(Timestamp, Timestamp)>,
    pub counted_s: i64,
    /// Counted seconds from receipt to the end of this day.
    pub total_s: i64,
}

/// The whole account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub ticket: TicketTimes,
    pub target_amount: Amount,
    pub hours_per_working_day: u32,
    pub start: Timestamp,
    pub start_reason: StartReason,
    /// Suspensions after clipping and merging, each with the counted time it covers (None when
    /// open).
    pub suspensions: Vec<(Suspension, Option<i64>)>,
    pub days: Vec<DayLine>,
    /// True when the account was cut at [`MAX_DAYS`].
    pub truncated: bool,
    pub now: Timestamp,
    pub status: SlaStatus,
}

fn counting_intervals(
    received_at: Timestamp,
    suspensions: &[Suspension],
    end: Timestamp,
) -> Vec<(Timestamp, Timestamp)> {
    let mut out = Vec::new();
    let mut a = received_at;
    for s in suspensions {
        if s.from > a {
            out.push((a, s.from.min(end)));
        }
        match s.to {
            Some(to) => a = to,
            None => return out.into_iter().filter(|(x, y)| x < y).collect(),
        }
    }
    out.push((a, end));
    out.into_iter().filter(|(x, y)| x < y).collect()
}

fn intersect(
    spans: &[(Timestamp, Timestamp)],
    counting: &[(Timestamp, Timestamp)],
) -> Vec<(Timestamp, Timestamp)> {
    let mut out = Vec::new();
    for &(a, b) in spans {
        for &(c, d) in counting {
            let (s, e) = (a.max(c), b.min(d));
            if s < e {
                out.push((s, e));
            }
        }
    }
    out
}

/// Builds the account for `ticket` at `now`.
pub fn explain(sla: &Sla, ticket: TicketTimes, now: Timestamp) -> Result<Explanation, OutOfRange> {
    let cal = &sla.calendar;
    let mut susp = ticket.suspensions.clone();
    normalize_suspensions(ticket.received_at, &mut susp);
    let status = sla.status_normalized(
        ticket.received_at,
        ticket.category,
        ticket.priority,
        &susp,
        now,
    )?;
    let target = *sla.policy.target(ticket.category, ticket.priority);
    let r = ticket.received_at;
    let start_reason = start_reason(cal, target.clock, r);
    let suspensions = susp
        .iter()
        .map(|s| (*s, s.to.map(|to| measured(cal, target.clock, s.from, to))))
        .collect();

    // The account runs to the due instant; without one, to where the open suspension starts.
    let end = match status.due_at {
        Some(d) => d,
        None => susp
            .iter()
            .find(|s| s.to.is_none())
            .map_or(now.max(r), |s| s.from),
    };
    let (days, truncated) = day_lines(cal, target.clock, r, &susp, end);

    Ok(Explanation {
        ticket,
        target_amount: target.amount,
        hours_per_working_day: sla.policy.hours_per_working_day(),
        start: status.counting_from,
        start_reason,
        suspensions,
        days,
        truncated,
        now,
        status,
    })
}

/// Why a clock of kind `clock` for a ticket received at `r` starts when it does.
fn start_reason(cal: &Calendar, clock: ClockKind, r: Timestamp) -> StartReason {
    match clock {
        ClockKind::Calendar => StartReason::CalendarClock,
        ClockKind::Business | ClockKind::OnSite if cal.is_open(r) => StartReason::InHours,
        ClockKind::Business | ClockKind::OnSite => {
            let info = cal.day(cal.local_day(r));
            match (info.closed, info.windows.first()) {
                (Some(c), _) => StartReason::Closed(c.clone()),
                (None, None) => StartReason::NonWorkingDay,
                (None, Some(&(open, _))) if r < open => StartReason::BeforeOpening,
                (None, Some(_)) => StartReason::OutOfHours,
            }
        }
    }
}

/// The time from `a` to `b` that a clock of kind `clock` counts.
fn measured(cal: &Calendar, clock: ClockKind, a: Timestamp, b: Timestamp) -> i64 {
    match clock {
        ClockKind::Business | ClockKind::OnSite => cal.business_between(a, b),
        ClockKind::Calendar => (b.0 - a.0).max(0),
    }
}

/// Each local day from receipt (`r`) to `end`, with the time it counted, outside the
/// suspensions `susp`; at most [`MAX_DAYS`] (then true: the list was cut).
fn day_lines(
    cal: &Calendar,
    clock: ClockKind,
    r: Timestamp,
    susp: &[Suspension],
    end: Timestamp,
) -> (Vec<DayLine>, bool) {
    let counting = counting_intervals(r, susp, end);
    let first = cal.local_day(r);
    let last = cal.local_day(end);
    let mut days = Vec::new();
    let mut total = 0i64;
    for d in first..=last {
        if days.len() == MAX_DAYS {
            return (days, true);
        }
        let info = cal.day(d);
        let day_span = (cal.local_midnight(d), cal.local_midnight(d + 1));
        let whole_day_suspended = susp
            .iter()
            .any(|s| s.from <= day_span.0.max(r) && s.to.is_none_or(|to| to >= day_span.1))
            && day_span.1 > r;
        let spans = match clock {
            ClockKind::Business | ClockKind::OnSite => info.windows.clone(),
            ClockKind::Calendar => vec![day_span],
        };
        let counted = intersect(&spans, &counting);
        let counted_s: i64 = counted
            .iter()
            .map(|(a, b)| measured(cal, clock, *a, *b))
            .sum();
        total += counted_s;
        let kind = if counted_s > 0 {
            DayKind::Counted
        } else if whole_day_suspended {
            DayKind::Suspended
        } else if clock == ClockKind::Calendar {
            DayKind::NotCounted
        } else if let Some(c) = info.closed {
            DayKind::Closed(c.clone())
        } else if info.windows.is_empty() {
            DayKind::NonWorking
        } else {
            DayKind::NotCounted
        };
        days.push(DayLine {
            date: naive_date(d),
            kind,
            counted,
            counted_s,
            total_s: total,
        });
    }
    (days, false)
}

fn target_phrase(lang: Lang, e: &Explanation) -> String {
    let h = e.hours_per_working_day;
    match (lang, e.target_amount) {
        (Lang::It, Amount::WorkingDays(n)) => format!(
            "{} ({} h di tempo lavorativo; un giorno lavorativo vale {h} h)",
            locale::count(
                lang,
                n.into(),
                ("giorno lavorativo", "giorni lavorativi"),
                ("", "")
            ),
            n * h
        ),
        (Lang::En, Amount::WorkingDays(n)) => format!(
            "{} ({} business hours; one working day counts {h} h)",
            locale::count(lang, n.into(), ("", ""), ("working day", "working days")),
            n * h
        ),
        (Lang::It, Amount::Hours(n)) if e.status.clock == ClockKind::Business => locale::count(
            lang,
            n.into(),
            ("ora lavorativa", "ore lavorative"),
            ("", ""),
        ),
        (Lang::It, Amount::Hours(n)) => locale::count(
            lang,
            n.into(),
            ("ora di calendario", "ore di calendario"),
            ("", ""),
        ),
        (Lang::En, Amount::Hours(n)) if e.status.clock == ClockKind::Business => locale::count(
            lang,
            n.into(),
            ("", ""),
            ("business hour", "business hours"),
        ),
        (Lang::En, Amount::Hours(n)) => locale::count(
            lang,
            n.into(),
            ("", ""),
            ("calendar hour", "calendar hours"),
        ),
        (Lang::It, Amount::Days(n)) if e.status.clock == ClockKind::OnSite => format!(
            "{} per l'assistenza in loco: il termine scade alla chiusura dell'ufficio \
             dell'ultimo giorno lavorativo entro il {n}º giorno ({})",
            locale::count(lang, n.into(), ("giorno", "giorni"), ("", "")),
            locale::duration(e.status.target_s)
        ),
        (Lang::En, Amount::Days(n)) if e.status.clock == ClockKind::OnSite => format!(
            "{} for on-site assistance: the term ends when the office closes on the last \
             working day within day {n} ({} of office time)",
            locale::count(lang, n.into(), ("", ""), ("day", "days")),
            locale::duration(e.status.target_s)
        ),
        (Lang::It, Amount::Days(n)) => format!(
            "{} di calendario (contati tutti i giorni, festivi compresi)",
            locale::count(lang, n.into(), ("giorno", "giorni"), ("", ""))
        ),
        (Lang::En, Amount::Days(n)) => format!(
            "{} (every day counts, holidays included)",
            locale::count(lang, n.into(), ("", ""), ("calendar day", "calendar days"))
        ),
    }
}

fn state_phrase(lang: Lang, s: &SlaStatus) -> &'static str {
    use super::SlaState::*;
    match (lang, s.state) {
        (Lang::It, Running) => "nei termini",
        (Lang::It, Warning) => "nei termini, ma vicina alla scadenza",
        (Lang::It, Paused) => "sospesa in attesa dell'integrazione",
        (Lang::It, Breached) => "termine superato",
        (Lang::En, Running) => "on time",
        (Lang::En, Warning) => "on time, but close to the deadline",
        (Lang::En, Paused) => "suspended, waiting for the citizen's documents",
        (Lang::En, Breached) => "deadline exceeded",
    }
}

fn spans_text(cal: &crate::calendar::Calendar, spans: &[(Timestamp, Timestamp)]) -> String {
    spans
        .iter()
        .map(|(a, b)| {
            // An interval that runs to the next midnight ends at 24:00, not at 00:00.
            let end = if cal.local_hms(*b) == (0, 0, 0) && b > a {
                "24:00".to_owned()
            } else {
                locale::clock_time(cal, *b)
            };
            format!("{}–{end}", locale::clock_time(cal, *a))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The account as text for people.
pub fn render_text(sla: &Sla, e: &Explanation, lang: Lang) -> String {
    let cal = &sla.calendar;
    let it = lang == Lang::It;
    let mut out = String::new();
    let t = &e.ticket;
    let id = t.id.as_deref().map(|i| format!(" {i}")).unwrap_or_default();
    if it {
        out.push_str(&format!(
            "Pratica{id}: priorità {}, categoria {}.\n",
            t.priority,
            t.category.italian()
        ));
        out.push_str(&format!("Termine: {}.\n", target_phrase(lang, e)));
    } else {
        out.push_str(&format!(
            "Ticket{id}: priority {}, category {}.\n",
            t.priority.english(),
            t.category.english()
        ));
        out.push_str(&format!("Target: {}.\n", target_phrase(lang, e)));
    }
    out.push_str(&start_line(cal, e, lang));
    out.push('\n');
    suspensions_text(&mut out, cal, e, lang);
    count_text(&mut out, cal, e, lang);
    status_text(&mut out, cal, e, lang);
    out
}

/// When the clock starts, and why.
fn start_line(cal: &Calendar, e: &Explanation, lang: Lang) -> String {
    let it = lang == Lang::It;
    let received = locale::date_time(lang, cal, e.ticket.received_at);
    let start = locale::date_time(lang, cal, e.start);
    match (&e.start_reason, it) {
        (StartReason::InHours, true) => {
            format!("Ricevuta {received}, in orario d'ufficio: il termine decorre subito.")
        }
        (StartReason::InHours, false) => {
            format!("Received {received}, during office hours: the clock starts at once.")
        }
        (StartReason::BeforeOpening, true) => format!(
            "Ricevuta {received}, prima dell'apertura: il termine decorre dall'apertura, {start}."
        ),
        (StartReason::BeforeOpening, false) => format!(
            "Received {received}, before opening time: the clock starts at opening, {start}."
        ),
        (StartReason::OutOfHours, true) => format!(
            "Ricevuta {received}, fuori orario d'ufficio: il termine decorre dalla riapertura, {start}."
        ),
        (StartReason::OutOfHours, false) => format!(
            "Received {received}, outside office hours: the clock starts when the office reopens, {start}."
        ),
        (StartReason::NonWorkingDay, true) => format!(
            "Ricevuta {received}, giorno non lavorativo: il termine decorre dal primo giorno lavorativo, {start}."
        ),
        (StartReason::NonWorkingDay, false) => format!(
            "Received {received}, not a working day: the clock starts on the next working day, {start}."
        ),
        (StartReason::Closed(c), true) => format!(
            "Ricevuta {received}, giorno di chiusura ({}): il termine decorre dal primo giorno lavorativo, {start}.",
            c.name_it()
        ),
        (StartReason::Closed(c), false) => format!(
            "Received {received}, the office is closed ({}): the clock starts on the next working day, {start}.",
            c.name_en()
        ),
        (StartReason::CalendarClock, true) => {
            format!("Ricevuta {received}: il termine in giorni di calendario decorre subito.")
        }
        (StartReason::CalendarClock, false) => {
            format!("Received {received}: the calendar-day clock starts at once.")
        }
    }
}

/// The suspensions, each with the counted time it covers; nothing when there are none.
fn suspensions_text(out: &mut String, cal: &Calendar, e: &Explanation, lang: Lang) {
    if e.suspensions.is_empty() {
        return;
    }
    let dt = |t| locale::date_time(lang, cal, t);
    let it = lang == Lang::It;
    let business = e.status.clock != ClockKind::Calendar;
    out.push_str(if it {
        "Sospensioni (in attesa dell'integrazione del cittadino):\n"
    } else {
        "Suspensions (waiting for the citizen's additional documents):\n"
    });
    for (s, covered) in &e.suspensions {
        let text = match (s.to, covered, it) {
            (Some(to), Some(c), true) => format!(
                "  - da {} a {}: non contato {}{}",
                dt(s.from),
                dt(to),
                locale::duration(*c),
                if business { " di tempo lavorativo" } else { "" }
            ),
            (Some(to), Some(c), false) => format!(
                "  - from {} to {}: {}{} not counted",
                dt(s.from),
                dt(to),
                locale::duration(*c),
                if business { " of business time" } else { "" }
            ),
            (_, _, true) => format!("  - da {}, ancora in corso", dt(s.from)),
            (_, _, false) => format!("  - from {}, still open", dt(s.from)),
        };
        out.push_str(&text);
        out.push('\n');
    }
}

/// The count, one line a day; a run of suspended days is one line.
fn count_text(out: &mut String, cal: &Calendar, e: &Explanation, lang: Lang) {
    let it = lang == Lang::It;
    out.push_str(if it { "Conteggio:\n" } else { "Count:\n" });
    let mut i = 0;
    while i < e.days.len() {
        let day = &e.days[i];
        let date = locale::date(lang, day.date);
        // Suspended days in a row make one line.
        let mut j = i;
        while day.kind == DayKind::Suspended
            && j + 1 < e.days.len()
            && e.days[j + 1].kind == DayKind::Suspended
        {
            j += 1;
        }
        let text = if j > i {
            let to = locale::date(lang, e.days[j].date);
            if it {
                format!("  da {date} a {to}: sospeso, non contato")
            } else {
                format!("  from {date} to {to}: suspended, not counted")
            }
        } else {
            day_text(cal, day, &date, it)
        };
        out.push_str(&text);
        out.push('\n');
        i = j + 1;
    }
    if e.truncated {
        out.push_str(if it {
            "  (elenco interrotto dopo 400 giorni)\n"
        } else {
            "  (list cut after 400 days)\n"
        });
    }
}

/// The line of one day.
fn day_text(cal: &Calendar, day: &DayLine, date: &str, it: bool) -> String {
    match &day.kind {
        DayKind::Counted => {
            if it {
                format!(
                    "  {date}: tempo contato {} ({}); totale {}",
                    locale::duration(day.counted_s),
                    spans_text(cal, &day.counted),
                    locale::duration(day.total_s)
                )
            } else {
                format!(
                    "  {date}: counted {} ({}); total {}",
                    locale::duration(day.counted_s),
                    spans_text(cal, &day.counted),
                    locale::duration(day.total_s)
                )
            }
        }
        DayKind::Closed(c) => {
            if it {
                format!("  {date}: festivo o chiusura, {}: non contato", c.name_it())
            } else {
                format!("  {date}: holiday or closure, {}: not counted", c.name_en())
            }
        }
        DayKind::NonWorking => {
            if it {
                format!("  {date}: giorno non lavorativo, non contato")
            } else {
                format!("  {date}: not a working day, not counted")
            }
        }
        DayKind::Suspended => {
            if it {
                format!("  {date}: sospeso, non contato")
            } else {
                format!("  {date}: suspended, not counted")
            }
        }
        DayKind::NotCounted => {
            if it {
                format!("  {date}: nessun tempo contato")
            } else {
                format!("  {date}: no time counted")
            }
        }
    }
}

/// The due instant (or why there is none yet) and the state at `now`.
fn status_text(out: &mut String, cal: &Calendar, e: &Explanation, lang: Lang) {
    let dt = |t| locale::date_time(lang, cal, t);
    let it = lang == Lang::It;
    let s = &e.status;
    match (s.due_at, it) {
        (Some(d), true) => out.push_str(&format!("Scadenza: {}.\n", dt(d))),
        (Some(d), false) => out.push_str(&format!("Due: {}.\n", dt(d))),
        (None, true) => out.push_str(
            "Scadenza: da ricalcolare al ricevimento dell'integrazione (il termine è sospeso).\n",
        ),
        (None, false) => out
            .push_str("Due: to be computed when the documents arrive (the clock is suspended).\n"),
    }
    let (el, tg) = (locale::duration(s.elapsed_s), locale::duration(s.target_s));
    if it {
        out.push_str(&format!(
            "Situazione di {}: {}; {} trascorso {el} su {tg}.\n",
            dt(e.now),
            state_phrase(lang, s),
            if s.clock != ClockKind::Calendar {
                "tempo lavorativo"
            } else {
                "tempo"
            }
        ));
    } else {
        out.push_str(&format!(
            "Status on {}: {}; {el} of {tg} elapsed.\n",
            dt(e.now),
            state_phrase(lang, s)
        ));
    }
}

/// The account for machines.
pub fn render_json(sla: &Sla, e: &Explanation) -> Value {
    let cal = &sla.calendar;
    let f = |t: Timestamp| Value::String(cal.format_rfc3339(t));
    let reason = match &e.start_reason {
        StartReason::InHours => json!({"kind": "in_hours"}),
        StartReason::BeforeOpening => json!({"kind": "before_opening"}),
        StartReason::OutOfHours => json!({"kind": "out_of_hours"}),
        StartReason::NonWorkingDay => json!({"kind": "non_working_day"}),
        StartReason::Closed(c) => json!({"kind": c.kind(), "name": c.name_it()}),
        StartReason::CalendarClock => json!({"kind": "calendar_clock"}),
    };
    let days: Vec<Value> = e
        .days
        .iter()
        .map(|d| {
            let (kind, name) = match &d.kind {
                DayKind::Counted => ("counted", None),
                DayKind::NonWorking => ("non_working", None),
                DayKind::Closed(c) => (c.kind(), Some(c.name_it())),
                DayKind::Suspended => ("suspended", None),
                DayKind::NotCounted => ("not_counted", None),
            };
            json!({
                "date": d.date.to_string(),
                "kind": kind,
                "name": name,
                "counted": d.counted.iter().map(|(a, b)| json!({"from": f(*a), "to": f(*b)})).collect::<Vec<_>>(),
                "counted_s": d.counted_s,
                "total_s": d.total_s,
            })
        })
        .collect();
    let s = &e.status;
    json!({
        "id": e.ticket.id,
        "received_at": f(e.ticket.received_at),
        "category": e.ticket.category.as_str(),
        "priority": e.ticket.priority.as_str(),
        "clock": s.clock.as_str(),
        "target_s": s.target_s,
        "clock_start": {"at": f(e.start), "reason": reason},
        "suspensions": e.suspensions.iter().map(|(su, covered)| json!({
            "from": f(su.from),
            "to": su.to.map(f),
            "not_counted_s": covered,
        })).collect::<Vec<_>>(),
        "days": days,
        "truncated": e.truncated,
        "due_at": s.due_at.map(f),
        "now": f(e.now),
        "state": s.state.as_str(),
        "elapsed_s": s.elapsed_s,
        "remaining_s": s.remaining_s,
    })
}
