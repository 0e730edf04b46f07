//! The `[survey]` section: the one satisfaction question asked with the closure notice.
//!
//! Off by default: asking citizens for a rating is the administration's choice (its privacy
//! notice must say so), and turning it on changes the words of every closure notice.

use serde::Deserialize;

use super::Problems;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSurvey {
    enabled: Option<bool>,
    answer_days: Option<i64>,
}

/// The `[survey]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Survey {
    /// Ask the question in the closure notice, take answers by SMS and on the status page.
    pub enabled: bool,
    /// How many days after closure an answer is accepted (1–365, default 30).
    pub answer_days: u16,
}

impl Survey {
    /// The answering window in seconds, when the survey is on.
    pub fn window_s(&self) -> Option<i64> {
        self.enabled.then_some(i64::from(self.answer_days) * 86_400)
    }
}

pub(super) fn survey(p: &mut Problems, raw: RawSurvey) -> Survey {
    Survey {
        enabled: raw.enabled.unwrap_or(false),
        answer_days: p.ranged("survey.answer_days", raw.answer_days, 30, 1, 365) as u16,
    }
}
