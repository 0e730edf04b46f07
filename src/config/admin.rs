//! The `[templates]` and `[admin]` sections: SMS budgets, and how the admin console signs in.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Problems;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTemplates {
    sms_plain_punctuation: Option<bool>,
    sms_max_parts: Option<i64>,
    #[serde(default)]
    sms_max_parts_by_kind: BTreeMap<String, i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    four_eyes: Option<bool>,
    session_hours: Option<i64>,
    login_attempts_per_minute: Option<i64>,
    login_attempts_per_address_per_minute: Option<i64>,
    staff_events: Option<bool>,
}

/// The `[templates]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplatesConfig {
    /// Replace typographic quotes, apostrophes and dashes in SMS with plain ones (default on).
    pub sms_plain_punctuation: bool,
    /// The most parts a citizen SMS may take (default 2), and per-kind exceptions.
    pub sms_max_parts: u32,
    pub sms_max_parts_by_kind: BTreeMap<String, u32>,
}

/// The `[admin]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// An edit goes live only when an admin other than its author publishes it.
    pub four_eyes: bool,
    /// How long a console session lasts without signing in again.
    pub session_hours: u32,
    /// Failed log-ins allowed per user name and client address per minute.
    pub login_attempts_per_minute: u32,
    /// Log-in attempts allowed per client address per minute, whatever the user names (password
    /// spraying).
    pub login_attempts_per_address_per_minute: u32,
    /// Whether the console may record workflow events on tickets (a step, an integration
    /// request, a closure, a note) as the office; off when the CRM must stay the only writer.
    /// Contacts made or corrected are recorded either way.
    pub staff_events: bool,
}

fn bounded(p: &mut Problems, key: &str, v: Option<i64>, default: i64, lo: i64, hi: i64) -> u32 {
    p.ranged(key, v, default, lo, hi) as u32
}

pub(super) fn templates(p: &mut Problems, raw: RawTemplates) -> TemplatesConfig {
    let sms_max_parts = bounded(p, "templates.sms_max_parts", raw.sms_max_parts, 2, 1, 10);
    let mut by_kind = BTreeMap::new();
    // Whether each kind exists is the catalog's to say (`templates::check_config`).
    for (kind, n) in raw.sms_max_parts_by_kind {
        let key = format!("templates.sms_max_parts_by_kind.{kind}");
        by_kind.insert(kind, bounded(p, &key, Some(n), 2, 1, 10));
    }
    TemplatesConfig {
        sms_plain_punctuation: raw.sms_plain_punctuation.unwrap_or(true),
        sms_max_parts,
        sms_max_parts_by_kind: by_kind,
    }
}

pub(super) fn admin(p: &mut Problems, raw: RawAdmin) -> Admin {
    Admin {
        four_eyes: raw.four_eyes.unwrap_or(false),
        session_hours: bounded(p, "admin.session_hours", raw.session_hours, 8, 1, 24 * 30),
        login_attempts_per_minute: bounded(
            p,
            "admin.login_attempts_per_minute",
            raw.login_attempts_per_minute,
            5,
            1,
            1000,
        ),
        login_attempts_per_address_per_minute: bounded(
            p,
            "admin.login_attempts_per_address_per_minute",
            raw.login_attempts_per_address_per_minute,
            30,
            1,
            100_000,
        ),
        staff_events: raw.staff_events.unwrap_or(true),
    }
}
