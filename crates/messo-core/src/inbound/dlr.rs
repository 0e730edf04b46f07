//! Delivery receipts: every provider's vocabulary mapped onto one state machine that only moves
//! forward — queued → sent → delivered | failed | undelivered | expired — and the state of a
//! message sent in several parts.

/// Where a message stands according to the provider's receipts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DlrState {
    Queued,
    Sent,
    Delivered,
    /// Refused by the provider or the network (a bad number, a blocked one).
    Failed,
    /// The network gave up on the handset.
    Undelivered,
    /// The message's validity ran out before it reached the handset.
    Expired,
}

impl DlrState {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            DlrState::Queued => "queued",
            DlrState::Sent => "sent",
            DlrState::Delivered => "delivered",
            DlrState::Failed => "failed",
            DlrState::Undelivered => "undelivered",
            DlrState::Expired => "expired",
        }
    }

    /// A stored name back.
    pub fn parse(s: &str) -> Option<DlrState> {
        [
            DlrState::Queued,
            DlrState::Sent,
            DlrState::Delivered,
            DlrState::Failed,
            DlrState::Undelivered,
            DlrState::Expired,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }

    /// 0 queued, 1 sent, 2 any final state.
    pub const fn rank(self) -> u8 {
        match self {
            DlrState::Queued => 0,
            DlrState::Sent => 1,
            _ => 2,
        }
    }

    /// Delivered or one of the failures: nothing comes after it.
    pub const fn is_final(self) -> bool {
        self.rank() == 2
    }

    /// A final failure: the citizen did not get the message.
    pub const fn is_failure(self) -> bool {
        matches!(
            self,
            DlrState::Failed | DlrState::Undelivered | DlrState::Expired
        )
    }
}

/// The state after a receipt: `Some(new)` when it moves the state forward, `None` when it is
/// older news (a `sent` after `delivered`, a second final state) and changes nothing.
pub fn advance(current: Option<DlrState>, receipt: DlrState) -> Option<DlrState> {
    match current {
        None => Some(receipt),
        Some(c) if receipt.rank() > c.rank() => Some(receipt),
        Some(_) => None,
    }
}

/// The state of a whole message from the states of its parts (part number → state) and, when
/// the provider says it, how many parts there are. A message is delivered only when every part
/// is and none failed; one failed part makes the whole message failed.
pub fn overall(parts: &[(u32, DlrState)], total: Option<u32>) -> Option<DlrState> {
    if parts.is_empty() {
        return None;
    }
    if let Some((_, f)) = parts.iter().find(|(_, s)| s.is_failure()) {
        return Some(*f);
    }
    let delivered = parts
        .iter()
        .filter(|(_, s)| *s == DlrState::Delivered)
        .count() as u32;
    let expected = total.unwrap_or(1).max(1);
    let all_seen = match total {
        Some(t) => (1..=t).all(|n| parts.iter().any(|(p, _)| *p == n)),
        None => true,
    };
    if all_seen && delivered >= expected && delivered as usize == parts.len() {
        return Some(DlrState::Delivered);
    }
    // Not all parts delivered yet: the least advanced part tells, but never "delivered".
    let least = parts
        .iter()
        .map(|(_, s)| *s)
        .min()
        .unwrap_or(DlrState::Queued);
    Some(if least == DlrState::Delivered {
        DlrState::Sent
    } else {
        least
    })
}

/// Twilio's `MessageStatus` values.
pub fn twilio(status: &str) -> Option<DlrState> {
    Some(match status.to_ascii_lowercase().as_str() {
        "accepted" | "scheduled" | "queued" | "sending" => DlrState::Queued,
        "sent" => DlrState::Sent,
        "delivered" | "read" => DlrState::Delivered,
        "failed" | "canceled" => DlrState::Failed,
        "undelivered" => DlrState::Undelivered,
        _ => return None,
    })
}

/// The Italian REST family's recipient statuses (as its message-status answer lists them).
pub fn rest_it(status: &str) -> Option<DlrState> {
    Some(match status.to_ascii_uppercase().as_str() {
        "WAITING" | "SCHEDULED" | "WAIT4DLVR" => DlrState::Queued,
        "SENT" => DlrState::Sent,
        "DLVRD" => DlrState::Delivered,
        "ERROR" | "BLACKLISTED" | "UNKNRCPT" | "UNKNPFX" | "INVALIDDST" | "KO" => DlrState::Failed,
        "TIMEOUT" => DlrState::Expired,
        "TOOM4NUM" | "TOOM4USER" => DlrState::Undelivered,
        _ => return None,
    })
}

/// The generic provider's words: our own state names, plus the common synonyms.
pub fn generic(status: &str) -> Option<DlrState> {
    let s = status.to_ascii_lowercase();
    DlrState::parse(&s).or(match s.as_str() {
        "accepted" | "buffered" | "enroute" | "pending" => Some(DlrState::Queued),
        "submitted" => Some(DlrState::Sent),
        "delivrd" | "dlvrd" | "ok" => Some(DlrState::Delivered),
        "rejected" | "rejectd" | "error" | "undeliv" => Some(DlrState::Failed),
        "expird" => Some(DlrState::Expired),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::DlrState::*;
    use super::*;

    #[test]
    fn only_forward() {
        assert_eq!(advance(None, Sent), Some(Sent));
        assert_eq!(advance(Some(Queued), Sent), Some(Sent));
        assert_eq!(advance(Some(Sent), Delivered), Some(Delivered));
        assert_eq!(advance(Some(Delivered), Sent), None);
        assert_eq!(advance(Some(Delivered), Failed), None);
        assert_eq!(advance(Some(Failed), Delivered), None);
        assert_eq!(advance(Some(Sent), Sent), None);
        assert_eq!(advance(Some(Queued), Undelivered), Some(Undelivered));
    }

    #[test]
    fn parts_are_delivered_together_or_not_at_all() {
        assert_eq!(overall(&[], None), None);
        assert_eq!(overall(&[(1, Delivered)], None), Some(Delivered));
        assert_eq!(overall(&[(1, Delivered)], Some(2)), Some(Sent));
        assert_eq!(
            overall(&[(1, Delivered), (2, Delivered)], Some(2)),
            Some(Delivered)
        );
        assert_eq!(
            overall(&[(1, Delivered), (2, Failed)], Some(2)),
            Some(Failed)
        );
        assert_eq!(
            overall(&[(2, Expired), (1, Delivered)], None),
            Some(Expired)
        );
        assert_eq!(
            overall(&[(1, Queued), (2, Delivered)], Some(2)),
            Some(Queued)
        );
        assert_eq!(
            overall(&[(1, Delivered), (3, Delivered)], Some(3)),
            Some(Sent)
        );
    }

    #[test]
    fn vocabularies() {
        assert_eq!(twilio("delivered"), Some(Delivered));
        assert_eq!(twilio("undelivered"), Some(Undelivered));
        assert_eq!(twilio("sending"), Some(Queued));
        assert_eq!(twilio("receiving"), None);
        assert_eq!(rest_it("DLVRD"), Some(Delivered));
        assert_eq!(rest_it("TIMEOUT"), Some(Expired));
        assert_eq!(rest_it("BLACKLISTED"), Some(Failed));
        assert_eq!(generic("DELIVRD"), Some(Delivered));
        assert_eq!(generic("expired"), Some(Expired));
        assert_eq!(generic("who knows"), None);
    }
}
