//! The service agreement as data: category × priority → a target on a business or calendar clock.

use crate::domain::{Category, Priority};

/// Which seconds count towards a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClockKind {
    /// Only seconds inside working windows.
    Business,
    /// Every second (sla-spec v1's reading of on-site assistance, 7 × 86,400 s).
    Calendar,
    /// On-site assistance "entro 7 giorni" as an appointment the citizen can attend: N calendar
    /// days from the request (or from the switch to on-site), ending at the last office closing
    /// on or before the Nth day; counted in office time, so suspensions move it by the office
    /// time they cover (`docs/sla.md`).
    OnSite,
}

impl ClockKind {
    /// `business` or `calendar`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ClockKind::Business => "business",
            ClockKind::Calendar => "calendar",
            ClockKind::OnSite => "on_site",
        }
    }
}

/// A target as the agreement states it; [`Policy`] converts it to seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Amount {
    /// Working days of `hours_per_working_day` business hours each (business clock).
    WorkingDays(u32),
    /// Hours, business or calendar according to the clock.
    Hours(u32),
    /// Calendar days of 86,400 s (calendar clock), or calendar days of the on-site term.
    Days(u32),
}

/// One row of the targets table. `None` in `category` or `priority` means "any".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TargetRule {
    pub category: Option<Category>,
    pub priority: Option<Priority>,
    pub clock: ClockKind,
    pub amount: Amount,
}

/// The target that applies to one (category, priority).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub clock: ClockKind,
    pub amount: Amount,
    /// The target in counted seconds. For the on-site clock it depends on when the term starts
    /// (see `Sla::target_seconds`); here it is the nominal `days × hours_per_working_day`.
    pub seconds: i64,
    /// Index of the rule in the targets table that gave it.
    pub rule: usize,
}

/// A policy that cannot be used; `rule` is the index in the targets table where one applies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("targets[{rule}]: {message}")]
    Rule { rule: usize, message: String },
    #[error("no target for category {category} and priority {priority}; add a row that covers it")]
    Uncovered {
        category: Category,
        priority: Priority,
    },
    #[error("hours_per_working_day must be 1–24, found {0}")]
    Hours(u32),
    #[error("warning_ratio must be greater than 0 and at most 1, found {0}/10000")]
    Ratio(u32),
}

/// The SLA policy: targets, the length of a working day and the warning threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<TargetRule>,
    hours_per_working_day: u32,
    /// Warning threshold in ten-thousandths of the target (7500 = 0.75), kept exact.
    warning_ratio_bp: u32,
    table: [[Target; 4]; 3],
}

fn specificity(rule: &TargetRule) -> u8 {
    // A row naming the category beats any row that does not (spec rule 13); then a row naming
    // the priority beats one that does not.
    u8::from(rule.category.is_some()) * 2 + u8::from(rule.priority.is_some())
}

/// Row `i` of the targets table on its own: a unit its clock counts, an amount from 1 to
/// 3650, and a (category, priority) no row `before` it names.
fn check_rule(i: usize, r: &TargetRule, before: &[TargetRule]) -> Result<(), PolicyError> {
    let rule_err = |rule, message: String| PolicyError::Rule { rule, message };
    let (n, unit_ok) = match (r.clock, r.amount) {
        (ClockKind::Business, Amount::WorkingDays(n)) => (n, true),
        (ClockKind::Business | ClockKind::Calendar, Amount::Hours(n)) => (n, true),
        (ClockKind::Calendar | ClockKind::OnSite, Amount::Days(n)) => (n, true),
        (_, Amount::WorkingDays(n) | Amount::Hours(n) | Amount::Days(n)) => (n, false),
    };
    if !unit_ok {
        let msg = match r.clock {
            ClockKind::Business => {
                "a business clock counts working_days or hours, not calendar days"
            }
            ClockKind::Calendar => "a calendar clock counts days or hours, not working_days",
            ClockKind::OnSite => "an on_site clock counts days only",
        };
        return Err(rule_err(i, msg.to_owned()));
    }
    if n == 0 || n > 3650 {
        return Err(rule_err(
            i,
            format!("target must be between 1 and 3650, found {n}"),
        ));
    }
    if let Some(j) = before
        .iter()
        .position(|o| o.category == r.category && o.priority == r.priority)
    {
        return Err(rule_err(
            i,
            format!("repeats the category and priority of targets[{j}]"),
        ));
    }
    Ok(())
}

/// The target of every (category, priority): the most specific row that covers it, the
/// first of equals; a combination no row covers is an error.
fn resolve(
    rules: &[TargetRule],
    hours_per_working_day: u32,
) -> Result<[[Target; 4]; 3], PolicyError> {
    let placeholder = Target {
        clock: ClockKind::Business,
        amount: Amount::Hours(1),
        seconds: 3600,
        rule: 0,
    };
    let mut table = [[placeholder; 4]; 3];
    for c in Category::ALL {
        for p in Priority::ALL {
            let best = rules
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    r.category.is_none_or(|rc| rc == c) && r.priority.is_none_or(|rp| rp == p)
                })
                .max_by_key(|(i, r)| (specificity(r), std::cmp::Reverse(*i)));
            let Some((i, r)) = best else {
                return Err(PolicyError::Uncovered {
                    category: c,
                    priority: p,
                });
            };
            let seconds = match r.amount {
                Amount::WorkingDays(n) => i64::from(n) * i64::from(hours_per_working_day) * 3600,
                Amount::Hours(n) => i64::from(n) * 3600,
                Amount::Days(n) if r.clock == ClockKind::OnSite => {
                    i64::from(n) * i64::from(hours_per_working_day) * 3600
                }
                Amount::Days(n) => i64::from(n) * 86_400,
            };
            table[c.index()][p.index()] = Target {
                clock: r.clock,
                amount: r.amount,
                seconds,
                rule: i,
            };
        }
    }
    Ok(table)
}

impl Policy {
    /// Checks the rules and resolves the table. Every (category, priority) must be covered, and
    /// two rows may not claim the same combination at the same specificity.
    pub fn new(
        rules: Vec<TargetRule>,
        hours_per_working_day: u32,
        warning_ratio_bp: u32,
    ) -> Result<Policy, PolicyError> {
        if !(1..=24).contains(&hours_per_working_day) {
            return Err(PolicyError::Hours(hours_per_working_day));
        }
        if warning_ratio_bp == 0 || warning_ratio_bp > 10_000 {
            return Err(PolicyError::Ratio(warning_ratio_bp));
        }
        for (i, r) in rules.iter().enumerate() {
            check_rule(i, r, &rules[..i])?;
        }
        let table = resolve(&rules, hours_per_working_day)?;
        Ok(Policy {
            rules,
            hours_per_working_day,
            warning_ratio_bp,
            table,
        })
    }

    /// The default policy of the agreement (section 2, and on-site assistance within 7 days as
    /// an appointment: the on-site term).
    pub fn agreement_default() -> Policy {
        let business = |priority, days| TargetRule {
            category: None,
            priority: Some(priority),
            clock: ClockKind::Business,
            amount: Amount::WorkingDays(days),
        };
        let rules = vec![
            business(Priority::Urgente, 1),
            business(Priority::Alta, 3),
            business(Priority::Normale, 5),
            business(Priority::Bassa, 7),
            TargetRule {
                category: Some(Category::AlboPretorio),
                priority: Some(Priority::Alta),
                clock: ClockKind::Business,
                amount: Amount::WorkingDays(3),
            },
            TargetRule {
                category: Some(Category::InLoco),
                priority: None,
                clock: ClockKind::OnSite,
                amount: Amount::Days(7),
            },
        ];
        // The default rows are known to cover every combination.
        match Policy::new(rules, 8, 7_500) {
            Ok(p) => p,
            Err(e) => unreachable!("default policy is valid: {e}"),
        }
    }

    /// The target for a ticket of this category and priority.
    #[inline]
    pub fn target(&self, category: Category, priority: Priority) -> &Target {
        &self.table[category.index()][priority.index()]
    }

    /// The rows of the targets table.
    pub fn rules(&self) -> &[TargetRule] {
        &self.rules
    }

    /// Business hours in one working day.
    pub fn hours_per_working_day(&self) -> u32 {
        self.hours_per_working_day
    }

    /// The warning threshold in ten-thousandths of the target.
    pub fn warning_ratio_bp(&self) -> u32 {
        self.warning_ratio_bp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_row_wins() {
        let p = Policy::agreement_default();
        assert_eq!(
            p.target(Category::Generale, Priority::Urgente).seconds,
            28_800
        );
        assert_eq!(
            p.target(Category::AlboPretorio, Priority::Alta).seconds,
            3 * 28_800
        );
        let in_loco = p.target(Category::InLoco, Priority::Urgente);
        assert_eq!(in_loco.clock, ClockKind::OnSite);
        assert_eq!(in_loco.amount, Amount::Days(7));
        assert_eq!(
            p.target(Category::AlboPretorio, Priority::Bassa).seconds,
            7 * 28_800
        );
    }

    #[test]
    fn gaps_duplicates_and_wrong_units_are_refused() {
        let row = |priority, clock, amount| TargetRule {
            category: None,
            priority,
            clock,
            amount,
        };
        let only_urgent = vec![row(
            Some(Priority::Urgente),
            ClockKind::Business,
            Amount::WorkingDays(1),
        )];
        assert!(matches!(
            Policy::new(only_urgent, 8, 7500),
            Err(PolicyError::Uncovered { .. })
        ));
        let dup = vec![
            row(None, ClockKind::Business, Amount::WorkingDays(1)),
            row(None, ClockKind::Business, Amount::WorkingDays(2)),
        ];
        assert!(matches!(
            Policy::new(dup, 8, 7500),
            Err(PolicyError::Rule { rule: 1, .. })
        ));
        let wrong = vec![row(None, ClockKind::Calendar, Amount::WorkingDays(1))];
        assert!(matches!(
            Policy::new(wrong, 8, 7500),
            Err(PolicyError::Rule { rule: 0, .. })
        ));
        for amount in [Amount::Hours(4), Amount::WorkingDays(2)] {
            let on_site = vec![row(None, ClockKind::OnSite, amount)];
            assert!(matches!(
                Policy::new(on_site, 8, 7500),
                Err(PolicyError::Rule { rule: 0, .. })
            ));
        }
        let any = vec![row(None, ClockKind::Business, Amount::Hours(4))];
        assert!(Policy::new(any.clone(), 8, 0).is_err());
        assert!(Policy::new(any.clone(), 0, 7500).is_err());
        assert_eq!(
            Policy::new(any, 8, 7500)
                .unwrap()
                .target(Category::InLoco, Priority::Bassa)
                .seconds,
            4 * 3600
        );
    }
}
