//! The pure part of delivery: what became of an attempt ([`Outcome`], [`Sent`]), the rule that
//! turns it into the row's next state ([`next_step`], with backoff and jitter), the fallback
//! chain ([`fallback`]) and the message a channel sends ([`OutMessage`]). Channels, the
//! circuit breaker and the dispatcher are the `messo` crate's (`delivery`).

pub mod fallback;
pub mod route;

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::domain::{Address, Channel, Kind, Lang, Recipient};
use crate::time::Timestamp;

/// A message owed, to be inserted (the fallback chain, replies, `send-test`). Its address is of
/// its channel's kind ([`Address::fits`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutbox {
    /// 0 when the message is about no ticket.
    pub ticket_id: i64,
    pub kind: Kind,
    pub dedupe_key: String,
    pub recipient: Recipient,
    pub channel: Channel,
    pub address: Address,
    pub language: Lang,
    /// What the template needs.
    pub payload: Value,
    pub not_before: Timestamp,
}

/// The retry rules of `[delivery]`: how long a message may take, and the backoff between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// A message not delivered this long after it was owed goes dead (and falls back).
    pub max_age_s: i64,
    pub backoff_base_s: i64,
    pub backoff_max_s: i64,
}

impl Default for RetryPolicy {
    /// Two days to deliver; retries from 30 s, doubling up to 30 minutes.
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_age_s: 48 * 3600,
            backoff_base_s: 30,
            backoff_max_s: 1800,
        }
    }
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the server or provider, with its id for the message when it gives one.
    Delivered {
        provider_id: Option<String>,
        code: Option<String>,
    },
    /// Not accepted, worth trying again. `provider_down` says the fault is the provider's (it
    /// counts towards its circuit breaker); `retry_after` is the provider's own request.
    Transient {
        reason: String,
        code: Option<String>,
        retry_after: Option<Duration>,
        provider_down: bool,
    },
    /// Refused for good (a bad address, a blacklisted number).
    Permanent {
        reason: String,
        code: Option<String>,
    },
    /// The request may have been acted on: a timeout after the message was handed over.
    Uncertain { reason: String },
}

impl Outcome {
    pub fn transient_down(reason: impl Into<String>, code: Option<String>) -> Outcome {
        Outcome::Transient {
            reason: reason.into(),
            code,
            retry_after: None,
            provider_down: true,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Outcome {
        Outcome::Permanent {
            reason: reason.into(),
            code: None,
        }
    }

    /// The short name stored with each attempt.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Transient { .. } => "transient",
            Outcome::Permanent { .. } => "permanent",
            Outcome::Uncertain { .. } => "uncertain",
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            Outcome::Delivered { code, .. }
            | Outcome::Transient { code, .. }
            | Outcome::Permanent { code, .. } => code.as_deref(),
            Outcome::Uncertain { .. } => None,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Delivered { .. } => None,
            Outcome::Transient { reason, .. }
            | Outcome::Permanent { reason, .. }
            | Outcome::Uncertain { reason } => Some(reason),
        }
    }

    /// Whether the provider showed itself healthy (for its breaker).
    pub fn provider_healthy(&self) -> bool {
        !matches!(
            self,
            Outcome::Transient {
                provider_down: true,
                ..
            } | Outcome::Uncertain { .. }
        )
    }
}

/// A message ready for a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutMessage {
    pub outbox_id: i64,
    pub ticket_id: i64,
    /// The ticket number citizens know.
    pub number: String,
    pub kind: Kind,
    pub recipient: Recipient,
    pub channel: Channel,
    /// Of the channel's kind: an e-mail address for e-mail and PEC, a number for SMS.
    pub address: Address,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// The address a reply goes to, when it names the ticket (`urp+2026.000123@…`); otherwise
    /// the channel's own.
    pub reply_to: Option<String>,
    /// Files sent with an e-mail (the monthly report's CSV); empty for every other message.
    /// Channels that cannot carry files (SMS) ignore them.
    pub attachments: Vec<Attachment>,
    /// The language of its words (a call's text-to-speech voice follows it).
    pub language: Lang,
    /// By when the citizen is asked to act (an integration request's reply-by date): IO shows
    /// it as the message's due date. Other channels carry it in the words only.
    pub due_date: Option<Timestamp>,
}

/// A file attached to an e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The file name the reader sees (`rapporto-2026-11.csv`).
    pub name: String,
    /// Its media type with parameters (`text/csv; charset=utf-8`).
    pub content_type: String,
    pub data: Vec<u8>,
}

impl OutMessage {
    /// The id providers get for this message: stable across attempts, so a provider can be
    /// asked about it and a resend is recognisable.
    pub fn order_id(&self) -> String {
        format!("messo-{}", self.outbox_id)
    }

    /// The plus-address naming ticket `number` on `base` (`urp@comune.it` → `urp+2026.000123@
    /// comune.it`); `/` becomes `.`, which every mail system takes in an address.
    pub fn tagged_reply(base: &str, number: &str) -> Option<String> {
        let (local, domain) = base.rsplit_once('@')?;
        let tag: String = number
            .chars()
            .map(|c| if c == '/' { '.' } else { c })
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .collect();
        (!tag.is_empty()).then(|| format!("{local}+{tag}@{domain}"))
    }

    /// The Message-ID of the e-mail: the same on every attempt of the row.
    pub fn message_id(&self, domain: &str) -> String {
        format!("<messo.{}.{}@{domain}>", self.outbox_id, self.ticket_id)
    }
}

/// One try through one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub provider: String,
    pub outcome: Outcome,
    pub started_at_ms: i64,
    pub latency_ms: i64,
}

/// What a channel did with a message: its attempts in order (a failover makes several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub attempts: Vec<Attempt>,
    /// A message was sent that may already have gone through (a duplicate we allowed).
    pub resent: bool,
}

impl Sent {
    pub fn one(provider: &str, outcome: Outcome, started: Instant, started_at_ms: i64) -> Sent {
        Sent {
            attempts: vec![Attempt {
                provider: provider.to_owned(),
                outcome,
                started_at_ms,
                latency_ms: started.elapsed().as_millis() as i64,
            }],
            resent: false,
        }
    }

    /// The outcome that decides the row: the last attempt's.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.attempts.last().map(|a| &a.outcome)
    }
}

/// The wait before attempt `attempt + 1`: exponential from `base`, capped at `max`, with
/// "equal jitter" (half fixed, half random from `random`), so retries of many messages after
/// an outage spread out instead of arriving together.
pub fn backoff(attempt: i64, base_s: i64, max_s: i64, random: u64) -> i64 {
    let exp = (attempt.clamp(1, 30) - 1) as u32;
    let full = base_s.saturating_mul(1i64 << exp.min(20)).min(max_s).max(1);
    let half = full / 2;
    half + (random % (full - half + 1) as u64) as i64
}

/// The state a leased row moves to after its attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Delivered {
        provider: String,
        provider_id: Option<String>,
    },
    /// Try again at `at`. `in_doubt`: the earlier attempt may have gone through.
    Retry {
        at: Timestamp,
        error: String,
        in_doubt: bool,
    },
    /// Dead: refused for good or too old. The fallback chain is tried.
    Dead { error: String },
    /// The outcome is unknown and may not be resent: held, and the office is told.
    Uncertain { error: String },
    /// Not tried (every provider's circuit open): back to the queue without using an attempt.
    Deferred { at: Timestamp },
}

/// How a channel treats a message whose outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoubtPolicy {
    /// Send again (e-mail, with the same Message-ID); each resend is counted.
    Resend,
    /// Hold the message and tell the office.
    Hold,
}

/// The leased row's facts the rule needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowFacts {
    pub attempts: i64,
    pub created_at: Timestamp,
}

/// Decides the row's next state from the attempt's outcome. Pure.
pub fn next_step(
    row: RowFacts,
    sent: &Sent,
    policy: &RetryPolicy,
    doubt: DoubtPolicy,
    now: Timestamp,
    random: u64,
) -> Step {
    let too_old = now.0 - row.created_at.0 >= policy.max_age_s;
    let Some(last) = sent.attempts.last() else {
        if too_old {
            return Step::Dead {
                error: format!(
                    "not delivered within {} hours: no provider was available",
                    policy.max_age_s / 3600
                ),
            };
        }
        return Step::Deferred { at: now.plus(1) };
    };
    match &last.outcome {
        Outcome::Delivered { provider_id, .. } => Step::Delivered {
            provider: last.provider.clone(),
            provider_id: provider_id.clone(),
        },
        Outcome::Permanent { reason, .. } => Step::Dead {
            error: format!("{}: {reason}", last.provider),
        },
        Outcome::Transient {
            reason,
            retry_after,
            ..
        } => {
            if too_old {
                return Step::Dead {
                    error: format!(
                        "not delivered within {} hours; last error from {}: {reason}",
                        policy.max_age_s / 3600,
                        last.provider
                    ),
                };
            }
            let wait = match retry_after {
                Some(d) => (d.as_secs() as i64).max(1),
                None => backoff(
                    row.attempts,
                    policy.backoff_base_s,
                    policy.backoff_max_s,
                    random,
                ),
            };
            Step::Retry {
                at: now.plus(wait),
                error: format!("{}: {reason}", last.provider),
                in_doubt: false,
            }
        }
        Outcome::Uncertain { reason } => match doubt {
            DoubtPolicy::Resend if !too_old => Step::Retry {
                at: now.plus(backoff(
                    row.attempts,
                    policy.backoff_base_s,
                    policy.backoff_max_s,
                    random,
                )),
                error: format!("{}: {reason}", last.provider),
                in_doubt: true,
            },
            _ => Step::Uncertain {
                error: format!("{}: {reason}", last.provider),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(outcome: Outcome) -> Sent {
        Sent {
            attempts: vec![Attempt {
                provider: "p".to_owned(),
                outcome,
                started_at_ms: 0,
                latency_ms: 1,
            }],
            resent: false,
        }
    }

    const NOW: Timestamp = Timestamp(1_800_000_000);

    fn facts(attempts: i64, age_s: i64) -> RowFacts {
        RowFacts {
            attempts,
            created_at: NOW.plus(-age_s),
        }
    }

    #[test]
    fn backoff_grows_caps_and_jitters_within_half() {
        for attempt in 1..=12 {
            let full = (30i64 << (attempt - 1)).min(1800);
            let lo = backoff(attempt, 30, 1800, 0);
            let hi = backoff(attempt, 30, 1800, u64::MAX - 7);
            assert_eq!(lo, full / 2, "attempt {attempt}");
            assert!(hi <= full && hi >= full / 2, "attempt {attempt}: {hi}");
        }
        assert_eq!(backoff(1000, 30, 1800, 0), 900);
    }

    #[test]
    fn outcomes_map_to_steps() {
        let d = RetryPolicy::default();
        let ok = sent(Outcome::Delivered {
            provider_id: Some("x1".into()),
            code: None,
        });
        assert_eq!(
            next_step(facts(1, 0), &ok, &d, DoubtPolicy::Hold, NOW, 0),
            Step::Delivered {
                provider: "p".into(),
                provider_id: Some("x1".into())
            }
        );
        let busy = sent(Outcome::transient_down("503", None));
        assert_eq!(
            next_step(facts(3, 60), &busy, &d, DoubtPolicy::Hold, NOW, 0),
            Step::Retry {
                at: NOW.plus(60),
                error: "p: 503".into(),
                in_doubt: false
            }
        );
        // Too old: dead, so the fallback chain takes over.
        assert!(matches!(
            next_step(facts(3, d.max_age_s), &busy, &d, DoubtPolicy::Hold, NOW, 0),
            Step::Dead { .. }
        ));
        let limited = sent(Outcome::Transient {
            reason: "429".into(),
            code: None,
            retry_after: Some(Duration::from_secs(17)),
            provider_down: false,
        });
        assert!(matches!(
            next_step(facts(5, 0), &limited, &d, DoubtPolicy::Hold, NOW, 0),
            Step::Retry { at, .. } if at == NOW.plus(17)
        ));
        let bad = sent(Outcome::permanent("no such user"));
        assert!(matches!(
            next_step(facts(1, 0), &bad, &d, DoubtPolicy::Resend, NOW, 0),
            Step::Dead { .. }
        ));
        let lost = sent(Outcome::Uncertain {
            reason: "timeout".into(),
        });
        assert!(matches!(
            next_step(facts(1, 0), &lost, &d, DoubtPolicy::Resend, NOW, 0),
            Step::Retry { in_doubt: true, .. }
        ));
        assert!(matches!(
            next_step(facts(1, 0), &lost, &d, DoubtPolicy::Hold, NOW, 0),
            Step::Uncertain { .. }
        ));
    }
}
