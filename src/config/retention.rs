//! The `[retention]` section: how long each kind of personal data is kept before the daemon's
//! housekeeping removes or pseudonymises it (GDPR art. 5.1.e, storage limitation), in small
//! batches. What each kind covers and why the defaults are what they are: docs/security.md,
//! "Personal data lifecycle".

use serde::Deserialize;

use super::Problems;

/// The shortest `retention.audit_days` accepted: the audit trail is the office's evidence of
/// who saw and changed personal data (accountability, GDPR art. 5.2), and an access log that
/// lasts less than about six months answers no complaint.
pub const AUDIT_FLOOR_DAYS: i64 = 180;

/// The longest period of any kind, in days (ten years).
pub const MAX_DAYS: i64 = 3650;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    message_bodies_days: Option<i64>,
    closed_ticket_contacts_days: Option<i64>,
    inbound_days: Option<i64>,
    audit_days: Option<i64>,
    batch_size: Option<i64>,
}

/// The `[retention]` section, in days per kind of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Sent, dead and uncertain messages lose their words (`outbox.rendered`), address and
    /// payload after this (default: `notify.retention_days`).
    pub message_bodies_days: u32,
    /// Closed tickets lose the citizen's contacts and codice fiscale this long after closure.
    pub closed_ticket_contacts_days: u32,
    /// Processed inbound records lose their sender, text and attachments after this (their
    /// raw payload goes earlier, after `inbound.raw_retention_days`).
    pub inbound_days: u32,
    /// Audit records (`audit_log`, `privacy_erasures`) go after this; at least
    /// [`AUDIT_FLOOR_DAYS`].
    pub audit_days: u32,
    /// Rows per statement.
    pub batch_size: u32,
}

impl Retention {
    /// A day in seconds times `days`.
    pub fn seconds(days: u32) -> i64 {
        i64::from(days) * 86_400
    }
}

/// `[retention]`, with `notify.retention_days` as the default of `message_bodies_days`.
pub(super) fn retention(p: &mut Problems, raw: RawRetention, notify_days: u32) -> Retention {
    let days = |p: &mut Problems, key: &str, v: Option<i64>, default: i64| {
        p.ranged(&format!("retention.{key}"), v, default, 1, MAX_DAYS) as u32
    };
    let audit_days = match raw.audit_days {
        Some(d) if d < AUDIT_FLOOR_DAYS => {
            p.add(
                "retention.audit_days",
                format!(
                    "must be at least {AUDIT_FLOOR_DAYS} days, found {d}: the audit trail is the \
                     office's evidence of who saw and changed personal data"
                ),
            );
            730
        }
        v => p.ranged("retention.audit_days", v, 730, AUDIT_FLOOR_DAYS, MAX_DAYS) as u32,
    };
    Retention {
        message_bodies_days: days(
            p,
            "message_bodies_days",
            raw.message_bodies_days,
            i64::from(notify_days),
        ),
        closed_ticket_contacts_days: days(
            p,
            "closed_ticket_contacts_days",
            raw.closed_ticket_contacts_days,
            730,
        ),
        inbound_days: days(p, "inbound_days", raw.inbound_days, 365),
        audit_days,
        batch_size: p.ranged("retention.batch_size", raw.batch_size, 500, 10, 5000) as u32,
    }
}
