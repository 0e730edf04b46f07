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

/// What is stored about the message a receipt is about, loaded before deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReceipts {
    /// The states recorded for each part so far (part number → state).
    pub parts: Vec<(u32, DlrState)>,
    /// The message's overall state so far.
    pub message: Option<DlrState>,
    /// How many parts the message has, when known.
    pub parts_total: Option<i64>,
}

/// What to write for one receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptPlan {
    /// Older news than what is stored for the part: nothing changes.
    Stale {
        receipt: DlrState,
        stored: Option<DlrState>,
    },
    /// The part moves forward.
    Apply(ReceiptWrite),
}

/// The writes of a receipt that moves its part forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptWrite {
    pub part: u32,
    /// The part's new state; `first` when the part had no state before.
    pub part_state: DlrState,
    pub first: bool,
    /// How many parts the message has, the most either side said.
    pub parts_total: Option<i64>,
    /// The message's state after the receipt (unchanged when it does not move it).
    pub message: Option<DlrState>,
    /// The message reached a final failure with this receipt: the text of its error.
    pub failure: Option<String>,
    /// The receipt row: its kind (`dlr:<part>:<state>`), final state and detail.
    pub receipt_kind: String,
    pub receipt_final: &'static str,
    pub receipt_detail: String,
}

/// Decides what a receipt changes, from the receipt and what is stored: the part's state only
/// moves forward, the message's state follows all its parts, and a final failure of the whole
/// message is reported so the fallback chain can take over.
pub fn plan(r: &super::ReceiptFacts, stored: &StoredReceipts) -> ReceiptPlan {
    let part = r.part.unwrap_or(1);
    let current = stored
        .parts
        .iter()
        .find(|(p, _)| *p == part)
        .map(|(_, s)| *s);
    let Some(next) = advance(current, r.state) else {
        return ReceiptPlan::Stale {
            receipt: r.state,
            stored: current,
        };
    };
    let parts_total = match (stored.parts_total, r.parts) {
        (Some(a), Some(b)) => Some(a.max(i64::from(b))),
        (a, b) => a.or(b.map(i64::from)),
    };
    let mut parts: Vec<(u32, DlrState)> = stored
        .parts
        .iter()
        .copied()
        .filter(|(p, _)| *p != part)
        .collect();
    parts.push((part, next));
    let whole = overall(&parts, parts_total.and_then(|t| u32::try_from(t).ok()));
    let moved = whole.and_then(|w| advance(stored.message, w));
    let code = |prefix: &str, suffix: &str| {
        r.code
            .as_deref()
            .map(|c| format!("{prefix}{c}{suffix}"))
            .unwrap_or_default()
    };
    let failure = moved.filter(|w| w.is_failure()).map(|w| {
        format!(
            "the provider reported {} for the SMS{}",
            w.as_str(),
            code(" (code ", ")")
        )
    });
    ReceiptPlan::Apply(ReceiptWrite {
        part,
        part_state: next,
        first: current.is_none(),
        parts_total,
        message: moved.or(stored.message),
        failure,
        receipt_kind: format!("dlr:{part}:{}", r.state.as_str()),
        receipt_final: match r.state {
            DlrState::Delivered => "delivered",
            s if s.is_failure() => "failed",
            _ => "pending",
        },
        receipt_detail: format!("{}{}", r.raw_status, code(" (", ")")),
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

    fn facts(
        state: DlrState,
        part: Option<u32>,
        parts: Option<u32>,
    ) -> crate::inbound::ReceiptFacts {
        crate::inbound::ReceiptFacts {
            provider_id: Some("SM1".into()),
            order_id: None,
            state,
            raw_status: state.as_str().to_owned(),
            code: Some("30003".into()),
            part,
            parts,
        }
    }

    fn write(p: ReceiptPlan) -> ReceiptWrite {
        match p {
            ReceiptPlan::Apply(w) => w,
            ReceiptPlan::Stale { .. } => panic!("expected a write, got {p:?}"),
        }
    }

    #[test]
    fn a_first_receipt_moves_its_part_and_the_message() {
        let w = write(plan(
            &facts(Delivered, None, None),
            &StoredReceipts {
                parts: vec![],
                message: None,
                parts_total: None,
            },
        ));
        assert_eq!((w.part, w.part_state, w.first), (1, Delivered, true));
        assert_eq!(w.message, Some(Delivered));
        assert_eq!(w.failure, None);
        assert_eq!(w.receipt_kind, "dlr:1:delivered");
        assert_eq!(w.receipt_final, "delivered");
        assert_eq!(w.receipt_detail, "delivered (30003)");
    }

    #[test]
    fn older_news_for_a_part_is_stale() {
        let p = plan(
            &facts(Sent, Some(2), Some(2)),
            &StoredReceipts {
                parts: vec![(1, Delivered), (2, Delivered)],
                message: Some(Delivered),
                parts_total: Some(2),
            },
        );
        assert_eq!(
            p,
            ReceiptPlan::Stale {
                receipt: Sent,
                stored: Some(Delivered)
            }
        );
    }

    #[test]
    fn a_message_in_parts_is_delivered_with_its_last_part() {
        let stored = StoredReceipts {
            parts: vec![(1, Delivered)],
            message: Some(Sent),
            parts_total: Some(2),
        };
        let w = write(plan(&facts(Delivered, Some(2), None), &stored));
        assert_eq!(
            (w.first, w.parts_total, w.message),
            (true, Some(2), Some(Delivered))
        );
        // The provider may say there are more parts than we knew: the larger count holds.
        let w = write(plan(&facts(Delivered, Some(2), Some(3)), &stored));
        assert_eq!((w.parts_total, w.message), (Some(3), Some(Sent)));
    }

    #[test]
    fn a_failed_part_fails_the_message_once_and_says_why() {
        let stored = StoredReceipts {
            parts: vec![(1, Sent)],
            message: Some(Sent),
            parts_total: None,
        };
        let w = write(plan(&facts(Undelivered, None, None), &stored));
        assert_eq!(w.message, Some(Undelivered));
        assert_eq!(w.receipt_final, "failed");
        assert_eq!(
            w.failure.as_deref(),
            Some("the provider reported undelivered for the SMS (code 30003)")
        );
        // The message already failed: a later failure of another part changes no message state
        // and does not fail it a second time.
        let after = StoredReceipts {
            parts: vec![(1, Undelivered)],
            message: Some(Undelivered),
            parts_total: Some(2),
        };
        let w = write(plan(&facts(Failed, Some(2), None), &after));
        assert_eq!((w.message, w.failure), (Some(Undelivered), None));
    }

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
