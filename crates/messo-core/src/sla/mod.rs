//! The SLA clock of `sla-spec.md`: elapsed time, due instant, remaining time and state of a
//! ticket, given its receipt, its target and its suspensions. Pure functions: `now` is always an
//! argument.

pub mod explain;
pub mod policy;

use crate::calendar::Calendar;
use crate::domain::{Category, Priority};
use crate::time::Timestamp;

pub use policy::{Amount, ClockKind, Policy, PolicyError, Target, TargetRule};

/// An interval `[from, to)` during which the ticket waits for the citizen's integrazione;
/// `to == None` while it still waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suspension {
    pub from: Timestamp,
    pub to: Option<Timestamp>,
}

/// A suspension whose end comes before its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("suspension ends ({to}) before it starts ({from})")]
pub struct BackwardsSuspension {
    pub from: Timestamp,
    pub to: Timestamp,
}

impl Suspension {
    /// A suspension, refused when `to` is before `from` (a zero-length one is valid and inert).
    pub fn new(from: Timestamp, to: Option<Timestamp>) -> Result<Suspension, BackwardsSuspension> {
        match to {
            Some(to) if to < from => Err(BackwardsSuspension { from, to }),
            _ => Ok(Suspension { from, to }),
        }
    }

    fn end_or_max(&self) -> i64 {
        self.to.map_or(i64::MAX, |t| t.0)
    }

    /// Whether `t` lies inside `[from, to)`.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.from <= t && self.to.is_none_or(|to| t < to)
    }
}

/// Clips suspensions to `[received_at, ∞)`, drops empty ones, sorts them and merges those that
/// overlap or touch. An open suspension absorbs everything after its start. Works in place.
pub fn normalize_suspensions(received_at: Timestamp, list: &mut Vec<Suspension>) {
    list.retain_mut(|s| {
        if s.from < received_at {
            s.from = received_at;
        }
        s.end_or_max() > s.from.0
    });
    if list.len() > 1 {
        list.sort_unstable_by_key(|s| s.from);
        let mut w = 0;
        for r in 1..list.len() {
            let cur = list[r];
            let last = &mut list[w];
            if cur.from.0 <= last.end_or_max() {
                if cur.end_or_max() > last.end_or_max() {
                    last.to = cur.to;
                }
            } else {
                w += 1;
                list[w] = cur;
            }
        }
        list.truncate(w + 1);
    }
}

/// A way of counting seconds: `level(t)` grows by one for each counted second before `t`.
pub trait Measure {
    /// Counted seconds before `t`, and a search hint for [`Measure::instant_at_level`].
    fn level_with_hint(&self, t: Timestamp) -> (i64, usize);
    /// The earliest instant whose level reaches `level` (greater than the level at the hint),
    /// or `None` when that falls past 2199.
    fn instant_at_level(&self, level: i64, hint: usize) -> Option<Timestamp>;
}

/// Counts seconds inside working windows.
#[derive(Debug, Clone, Copy)]
pub struct BusinessTime<'a>(pub &'a Calendar);

impl Measure for BusinessTime<'_> {
    #[inline]
    fn level_with_hint(&self, t: Timestamp) -> (i64, usize) {
        self.0.level_with_hint(t)
    }
    #[inline]
    fn instant_at_level(&self, level: i64, hint: usize) -> Option<Timestamp> {
        self.0.instant_at_level(level, hint)
    }
}

/// Counts every second, up to the end of 2199.
#[derive(Debug, Clone, Copy)]
pub struct CalendarTime {
    pub limit: Timestamp,
}

impl Measure for CalendarTime {
    #[inline]
    fn level_with_hint(&self, t: Timestamp) -> (i64, usize) {
        (t.0, 0)
    }
    #[inline]
    fn instant_at_level(&self, level: i64, _hint: usize) -> Option<Timestamp> {
        (level < self.limit.0).then_some(Timestamp(level))
    }
}

/// The due instant would fall after 31 December 2199.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("due_at would fall after 2199, outside the supported years 1970–2199")]
pub struct OutOfRange;

/// The earliest instant at which `target` counted seconds have elapsed since `received_at`
/// outside the (normalized) suspensions; `Ok(None)` when an open suspension starts before the
/// target is reached.
#[inline]
pub fn due_at<M: Measure>(
    m: &M,
    received_at: Timestamp,
    target: i64,
    suspensions: &[Suspension],
) -> Result<Option<Timestamp>, OutOfRange> {
    let (mut level, mut hint) = m.level_with_hint(received_at);
    let mut rem = target;
    for s in suspensions {
        let (at_from, _) = m.level_with_hint(s.from);
        let avail = at_from - level;
        if avail >= rem {
            break;
        }
        rem -= avail;
        match s.to {
            None => return Ok(None),
            Some(to) => (level, hint) = m.level_with_hint(to),
        }
    }
    if rem <= 0 {
        return Ok(Some(received_at));
    }
    m.instant_at_level(level + rem, hint)
        .map(Some)
        .ok_or(OutOfRange)
}

/// Counted seconds in `[received_at, t)` outside the (normalized) suspensions.
#[inline]
pub fn elapsed<M: Measure>(
    m: &M,
    received_at: Timestamp,
    suspensions: &[Suspension],
    t: Timestamp,
) -> i64 {
    if t <= received_at {
        return 0;
    }
    let mut total = 0;
    let mut a = received_at;
    for s in suspensions {
        if s.from >= t {
            break;
        }
        total += m.level_with_hint(s.from).0 - m.level_with_hint(a).0;
        match s.to {
            Some(to) if to < t => a = to,
            _ => return total,
        }
    }
    total + m.level_with_hint(t).0 - m.level_with_hint(a).0
}

/// Where a ticket stands against its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SlaState {
    Running,
    Warning,
    Paused,
    Breached,
}

impl SlaState {
    /// `running`, `warning`, `paused` or `breached`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SlaState::Running => "running",
            SlaState::Warning => "warning",
            SlaState::Paused => "paused",
            SlaState::Breached => "breached",
        }
    }
}

/// The clock's answer for one ticket at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaStatus {
    pub due_at: Option<Timestamp>,
    pub state: SlaState,
    /// Counted seconds at `now`, uncapped (it goes on past the due instant).
    pub elapsed_s: i64,
    pub target_s: i64,
    /// `max(0, target_s − elapsed_s)`.
    pub remaining_s: i64,
    /// The instant from which the clock counts: receipt, or the next opening for a business clock.
    pub counting_from: Timestamp,
    pub clock: ClockKind,
}

/// The calendar and policy together: everything needed to answer for a ticket.
#[derive(Debug, Clone)]
pub struct Sla {
    pub calendar: Calendar,
    pub policy: Policy,
}

impl Sla {
    /// Bundles a calendar and a policy.
    pub fn new(calendar: Calendar, policy: Policy) -> Sla {
        Sla { calendar, policy }
    }

    /// The status at `now` of a ticket with already normalized suspensions (see
    /// [`normalize_suspensions`]).
    pub fn status_normalized(
        &self,
        received_at: Timestamp,
        category: Category,
        priority: Priority,
        suspensions: &[Suspension],
        now: Timestamp,
    ) -> Result<SlaStatus, OutOfRange> {
        let target = self.policy.target(category, priority);
        let seconds = self.target_seconds(category, priority, received_at)?;
        match target.clock {
            ClockKind::Business | ClockKind::OnSite => {
                let m = BusinessTime(&self.calendar);
                let counting_from = self.calendar.next_opening(received_at).ok_or(OutOfRange)?;
                self.status_with(
                    &m,
                    counting_from,
                    received_at,
                    seconds,
                    target.clock,
                    suspensions,
                    now,
                )
            }
            ClockKind::Calendar => {
                let m = CalendarTime {
                    limit: self.calendar.limit(),
                };
                self.status_with(
                    &m,
                    received_at,
                    received_at,
                    seconds,
                    target.clock,
                    suspensions,
                    now,
                )
            }
        }
    }

    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn status_with<M: Measure>(
        &self,
        m: &M,
        counting_from: Timestamp,
        received_at: Timestamp,
        target_s: i64,
        clock: ClockKind,
        suspensions: &[Suspension],
        now: Timestamp,
    ) -> Result<SlaStatus, OutOfRange> {
        let due = due_at(m, received_at, target_s, suspensions)?;
        let elapsed_s = elapsed(m, received_at, suspensions, now);
        let state = if due.is_some_and(|d| now >= d) {
            SlaState::Breached
        } else if now >= received_at && suspensions.iter().any(|s| s.contains(now)) {
            SlaState::Paused
        } else if i128::from(elapsed_s) * 10_000
            >= i128::from(target_s) * i128::from(self.policy.warning_ratio_bp())
        {
            SlaState::Warning
        } else {
            SlaState::Running
        };
        Ok(SlaStatus {
            due_at: due,
            state,
            elapsed_s,
            target_s,
            remaining_s: (target_s - elapsed_s).max(0),
            counting_from,
            clock,
        })
    }

    /// The end of an on-site term of `days` calendar days starting at `start` (the request, or
    /// the switch to on-site): the last office closing on or before the end of the local day
    /// `days` after the start's, so never later than the seventh calendar day; when the office
    /// does not close at all in between (a closure over the whole term), the first closing
    /// after that day.
    pub fn on_site_term_end(&self, start: Timestamp, days: u32) -> Result<Timestamp, OutOfRange> {
        let cal = &self.calendar;
        let end_of_last_day = cal.local_midnight(cal.local_day(start) + i64::from(days) + 1);
        cal.last_close_between(start, end_of_last_day)
            .or_else(|| cal.next_close(end_of_last_day))
            .filter(|t| *t < cal.limit())
            .ok_or(OutOfRange)
    }

    /// The target in counted seconds of a ticket whose clock starts at `start`: the policy's,
    /// or for the on-site clock the office time from `start` to the end of its term.
    pub fn target_seconds(
        &self,
        category: Category,
        priority: Priority,
        start: Timestamp,
    ) -> Result<i64, OutOfRange> {
        let target = self.policy.target(category, priority);
        match (target.clock, target.amount) {
            (ClockKind::OnSite, Amount::Days(n)) => {
                let end = self.on_site_term_end(start, n)?;
                Ok(self.calendar.business_between(start, end))
            }
            _ => Ok(target.seconds),
        }
    }

    /// The status at `now` of a ticket; suspensions may be in any order and overlap.
    pub fn status(
        &self,
        received_at: Timestamp,
        category: Category,
        priority: Priority,
        suspensions: &[Suspension],
        now: Timestamp,
    ) -> Result<SlaStatus, OutOfRange> {
        let mut list = suspensions.to_vec();
        normalize_suspensions(received_at, &mut list);
        self.status_normalized(received_at, category, priority, &list, now)
    }

    /// The earliest instant at which `secs` counted seconds have elapsed for this ticket
    /// (normalized suspensions); `None` when an open suspension comes first.
    pub fn instant_of_elapsed(
        &self,
        received_at: Timestamp,
        category: Category,
        priority: Priority,
        suspensions: &[Suspension],
        secs: i64,
    ) -> Result<Option<Timestamp>, OutOfRange> {
        match self.policy.target(category, priority).clock {
            ClockKind::Business | ClockKind::OnSite => due_at(
                &BusinessTime(&self.calendar),
                received_at,
                secs,
                suspensions,
            ),
            ClockKind::Calendar => due_at(
                &CalendarTime {
                    limit: self.calendar.limit(),
                },
                received_at,
                secs,
                suspensions,
            ),
        }
    }

    /// The next instant after `now` at which the ticket's state can change without a new event:
    /// the warning threshold, the due instant, or a suspension's start or end.
    pub fn next_change(
        &self,
        received_at: Timestamp,
        category: Category,
        priority: Priority,
        suspensions: &[Suspension],
        now: Timestamp,
    ) -> Result<Option<Timestamp>, OutOfRange> {
        let target = self.target_seconds(category, priority, received_at)?;
        let bp = i64::from(self.policy.warning_ratio_bp());
        // Warning when elapsed × 10,000 ≥ target × bp, i.e. elapsed ≥ ⌈target × bp / 10,000⌉.
        let warn_secs = (target * bp + 9_999) / 10_000;
        let warn =
            self.instant_of_elapsed(received_at, category, priority, suspensions, warn_secs)?;
        let due = self.instant_of_elapsed(received_at, category, priority, suspensions, target)?;
        let bounds = suspensions
            .iter()
            .flat_map(|s| [Some(s.from), s.to])
            .flatten();
        Ok([warn, due]
            .into_iter()
            .flatten()
            .chain(bounds)
            .filter(|t| *t > now)
            .min())
    }

    /// When a request received at `at` would be due, with no suspension.
    pub fn due_for_new(
        &self,
        at: Timestamp,
        category: Category,
        priority: Priority,
    ) -> Result<Timestamp, OutOfRange> {
        let status = self.status_normalized(at, category, priority, &[], at)?;
        status.due_at.ok_or(OutOfRange)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::CalendarSpec;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn sus(from: &str, to: Option<&str>) -> Suspension {
        Suspension::new(ts(from), to.map(ts)).unwrap()
    }

    #[test]
    fn normalizing_clips_merges_and_drops() {
        let r = ts("2026-03-02T10:00:00+01:00");
        let mut v = vec![
            sus(
                "2026-03-05T10:00:00+01:00",
                Some("2026-03-06T10:00:00+01:00"),
            ),
            sus(
                "2026-03-01T10:00:00+01:00",
                Some("2026-03-02T11:00:00+01:00"),
            ),
            sus(
                "2026-03-01T10:00:00+01:00",
                Some("2026-03-01T12:00:00+01:00"),
            ),
            sus(
                "2026-03-04T10:00:00+01:00",
                Some("2026-03-05T12:00:00+01:00"),
            ),
            sus(
                "2026-03-03T10:00:00+01:00",
                Some("2026-03-03T10:00:00+01:00"),
            ),
            sus("2026-03-09T10:00:00+01:00", None),
            sus(
                "2026-03-10T10:00:00+01:00",
                Some("2026-03-11T10:00:00+01:00"),
            ),
        ];
        normalize_suspensions(r, &mut v);
        assert_eq!(
            v,
            vec![
                sus(
                    "2026-03-02T10:00:00+01:00",
                    Some("2026-03-02T11:00:00+01:00")
                ),
                sus(
                    "2026-03-04T10:00:00+01:00",
                    Some("2026-03-06T10:00:00+01:00")
                ),
                sus("2026-03-09T10:00:00+01:00", None),
            ]
        );
        assert!(
            Suspension::new(ts("2026-03-02T10:00:00Z"), Some(ts("2026-03-02T09:00:00Z"))).is_err()
        );
    }

    #[test]
    fn the_spec_example() {
        let sla = Sla::new(
            Calendar::new(CalendarSpec::roma_capitale()).unwrap(),
            Policy::agreement_default(),
        );
        let s = sla
            .status(
                ts("2026-03-02T10:15:00+01:00"),
                Category::Generale,
                Priority::Urgente,
                &[sus(
                    "2026-03-02T11:00:00+01:00",
                    Some("2026-03-04T09:30:00+01:00"),
                )],
                ts("2026-03-05T12:00:00+01:00"),
            )
            .unwrap();
        assert_eq!(s.due_at, Some(ts("2026-03-04T16:45:00+01:00")));
        assert_eq!(s.state, SlaState::Breached);
        assert_eq!(
            (s.elapsed_s, s.target_s, s.remaining_s),
            (40_500, 28_800, 0)
        );
    }

    #[test]
    fn the_on_site_term_ends_at_the_last_close_within_seven_days() {
        let sla = Sla::new(
            Calendar::new(CalendarSpec::roma_capitale()).unwrap(),
            Policy::agreement_default(),
        );
        let end = |s: &str| sla.on_site_term_end(ts(s), 7).unwrap();
        // Day 7 a working day: its close, even when the request came later in the day.
        assert_eq!(
            end("2026-03-02T16:59:59+01:00"),
            ts("2026-03-09T17:00:00+01:00")
        );
        // Day 7 a Saturday, a holiday (8 December), the patron day: the working day before.
        assert_eq!(
            end("2026-03-07T11:00:00+01:00"),
            ts("2026-03-13T17:00:00+01:00")
        );
        assert_eq!(
            end("2026-12-01T10:00:00+01:00"),
            ts("2026-12-07T17:00:00+01:00")
        );
        assert_eq!(
            end("2026-06-22T00:00:00+02:00"),
            ts("2026-06-26T17:00:00+02:00")
        );
        // Day 7 is the Sunday the clocks go back: Friday 17:00 local, not 02:30 on Sunday.
        assert_eq!(
            end("2026-10-18T02:30:00+02:00"),
            ts("2026-10-23T17:00:00+02:00")
        );
        // A closure over the whole term: the first close after the seventh day.
        let mut spec = CalendarSpec::roma_capitale();
        for d in 10..=21 {
            spec.closures.push(crate::calendar::Closure {
                date: chrono::NaiveDate::from_ymd_opt(2026, 8, d).unwrap(),
                name: "Chiusura estiva".into(),
            });
        }
        let closed = Sla::new(Calendar::new(spec).unwrap(), Policy::agreement_default());
        assert_eq!(
            closed.on_site_term_end(ts("2026-08-10T10:00:00+02:00"), 7),
            Ok(ts("2026-08-24T17:00:00+02:00"))
        );
        // The target is the office time up to that close: 7 h + 4 × 8 h + 8 h.
        assert_eq!(
            sla.target_seconds(
                Category::InLoco,
                Priority::Bassa,
                ts("2026-03-02T10:00:00+01:00")
            ),
            Ok(47 * 3600)
        );
    }
}
